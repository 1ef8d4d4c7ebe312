//! The flags that choose the local embedding model for the commands that measure hit
//! quality (`eval`, `tune`, `simulate`), and the configuration they run the engine with.

use std::path::PathBuf;

use deja_server::config::{Config, EmbedderConfig};

#[derive(clap::Args, Debug, Clone, Default)]
pub struct ModelArgs {
    /// Directory of the local embedding model.
    #[arg(long)]
    pub model_dir: Option<PathBuf>,
    /// The local embedding model: auto (the default: English by all-minilm-l6-v2, other
    /// languages by multilingual-e5-small), all-minilm-l6-v2 or multilingual-e5-small
    /// (also `DEJA_EMBEDDER_MODEL`).
    #[arg(long)]
    pub embedder_model: Option<String>,
}

impl ModelArgs {
    /// The defaults, the environment, then these flags.
    pub fn config(&self) -> anyhow::Result<Config> {
        let mut config = Config::default();
        config.apply_env(|k| std::env::var(k).ok())?;
        if let Some(v) = &self.embedder_model {
            config.set_embedder_model("--embedder-model", v)?;
        }
        if let Some(v) = &self.model_dir {
            if let EmbedderConfig::Local { model_dir, .. } = &mut config.embedder {
                *model_dir = Some(v.clone());
            }
        }
        Ok(config)
    }
}
