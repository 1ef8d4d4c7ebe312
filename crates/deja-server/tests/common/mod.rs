//! What the proxy's integration tests share: the real model, loaded once per test binary,
//! and a proxy served on a free 127.0.0.1 port over the embedded store and the in-process
//! index, built as `deja serve` builds it.

// Each test binary uses its own part of this module.
#![allow(dead_code, unused_macros)]

use std::sync::{Arc, OnceLock};

use deja_core::{Cache, Clock, Embedder, EntryStore, SystemClock};
use deja_server::config::Config;
use deja_server::AppState;

/// The real model, loaded once per test binary. `None` (the test is skipped, with a
/// message) when it is not installed, unless `DEJA_REQUIRE_MODEL=1`.
pub fn model() -> Option<Arc<dyn Embedder>> {
    static EMBEDDER: OnceLock<Option<Arc<dyn Embedder>>> = OnceLock::new();
    EMBEDDER
        .get_or_init(|| {
            let dir = deja_embed::default_model_dir();
            match deja_embed::BertEmbedder::load(&dir, deja_embed::BertOptions::default()) {
                Ok(e) => Some(Arc::new(e) as Arc<dyn Embedder>),
                Err(e) => {
                    if std::env::var("DEJA_REQUIRE_MODEL").as_deref() == Ok("1") {
                        panic!("DEJA_REQUIRE_MODEL=1 but the model cannot be loaded: {e}");
                    }
                    eprintln!("skipped: {e}");
                    None
                }
            }
        })
        .clone()
}

/// The real model, or return from the test (skipped; see [`model`]).
macro_rules! need_model {
    () => {
        match common::model() {
            Some(e) => e,
            None => return,
        }
    };
}

/// A proxy serving until [`Served::stop`].
pub struct Served {
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    pub state: AppState,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

impl Served {
    /// Serves `config` (its `data_dir` holds the store) with `embedder`.
    pub async fn start(config: Config, embedder: Arc<dyn Embedder>) -> Served {
        Self::start_with(config, embedder, Arc::new(SystemClock), |s| s).await
    }

    /// As [`Served::start`], the cache reading `clock`, and its store wrapped by `wrap`
    /// (to inject faults).
    pub async fn start_with(
        config: Config,
        embedder: Arc<dyn Embedder>,
        clock: Arc<dyn Clock>,
        wrap: impl FnOnce(Arc<dyn EntryStore>) -> Arc<dyn EntryStore>,
    ) -> Served {
        let store = wrap(Arc::new(deja_server::open_store(&config).unwrap()));
        let index = Arc::new(deja_store_local::HnswIndex::new(
            embedder.id(),
            embedder.dim(),
            deja_store_local::HnswParams::default(),
        ));
        let cache = Cache::new(
            store,
            index,
            embedder,
            clock,
            deja_server::cache_options(&config),
        )
        .unwrap();
        cache.rebuild_index().await.unwrap();
        cache.embed_category_examples().await.unwrap();
        Self::serve(AppState::new(config, cache).unwrap()).await
    }

    /// Serves a state built elsewhere (e.g. by `deja_server::build_state`, as `deja
    /// serve` builds it).
    pub async fn serve(state: AppState) -> Served {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (tx, rx) = tokio::sync::oneshot::channel();
        let task = tokio::spawn(deja_server::serve_on(listener, state.clone(), async {
            let _ = rx.await;
        }));
        Served {
            base,
            state,
            shutdown: Some(tx),
            task: Some(task),
        }
    }

    /// `GET /metrics` (no credentials needed): the exposition text.
    pub async fn scrape(&self) -> String {
        let r = reqwest::get(format!("{}/metrics", self.base))
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        r.text().await.unwrap()
    }

    /// Stops the server and waits until it has shut down cleanly (store flushed).
    pub async fn stop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.unwrap().unwrap();
        }
    }
}

/// One chat completion request with `text` as the user's message, as an SDK sends it with a
/// key; the response, whose status must be 200.
pub async fn chat(client: &reqwest::Client, base: &str, text: &str) -> reqwest::Response {
    let r = client
        .post(format!("{base}/v1/chat/completions"))
        .header("authorization", "Bearer sk-test")
        .json(&serde_json::json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": text}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    r
}

/// `GET {base}{path}` of the admin API with `token`: its JSON body.
pub async fn admin_get(
    client: &reqwest::Client,
    base: &str,
    path: &str,
    token: &str,
) -> serde_json::Value {
    client
        .get(format!("{base}{path}"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// The defaults, with the store in `data_dir` and the upstream at `upstream_base_url`.
pub fn config(data_dir: &std::path::Path, upstream_base_url: String) -> Config {
    let mut config = Config {
        data_dir: data_dir.to_path_buf(),
        ..Config::default()
    };
    config.upstream.base_url = upstream_base_url;
    config
}

/// Paraphrases of one question, for error-budget tests: the mock upstream is told to give
/// them all [`PARCEL_ANSWER`], so their labels agree.
pub const PARCEL: [&str; 11] = [
    "where is my parcel",
    "where is my parcel please",
    "can you tell me where my parcel is",
    "I want to know where my parcel is",
    "where is my package",
    "where exactly is my package",
    "has my parcel been shipped",
    "track my parcel please",
    "I need to track my parcel",
    "what is the status of my parcel",
    "my parcel, where is it",
];

/// The one answer the mock gives every question of [`PARCEL`].
pub const PARCEL_ANSWER: &str = "Your parcel usually arrives within three working days.";

/// The value of a sample of a Prometheus exposition text, by its name and labels as they
/// are written (`name{label="v"}`, or `name ` for one without labels), if present.
pub fn sample(text: &str, name_and_labels: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name_and_labels)?.trim().parse().ok())
}
