//! Embedders for deja: [`BertEmbedder`] runs a BERT-family sentence-transformers model
//! (all-MiniLM-L6-v2 by default) locally on the CPU with a hand-written forward pass (f32
//! arithmetic on f32 or f16 weights, or int8 weights with integer products on AVX2),
//! [`E5Embedder`] runs multilingual-e5-small from a 4-bit model file with int8 kernels, and
//! [`HttpEmbedder`] calls an OpenAI-compatible `/embeddings` endpoint.
//!
//! Both implement [`deja_core::Embedder`] and return unit-length vectors. This crate does not
//! cache embeddings and does not download models; `scripts/install-model.sh` installs the
//! default model.

mod bert;
mod e5;
mod http;
mod int8;
mod kernels;
mod model;
mod packed;
mod pair;
mod pool;
mod q4;

use std::path::PathBuf;

pub use bert::{BertEmbedder, BertOptions};
pub use e5::{
    default_e5_dir, E5Embedder, E5Options, E5_FILE, E5_INSTALL_HINT, E5_MODEL_NAME, E5_PAIR_FILE,
};
pub use http::{HttpEmbedder, HttpEmbedderConfig};
pub use packed::WeightFormat;
pub use pair::{PAIR_FILE, PAIR_FORMAT};
pub use pool::LocalPairScorer;

/// Directory name (and model id suffix) of the default local model.
pub const DEFAULT_MODEL_NAME: &str = "all-MiniLM-L6-v2";

/// The command that installs the default local model, named in `ModelMissing` errors.
pub const INSTALL_HINT: &str = "scripts/install-model.sh";

/// Where the default local model lives: `$DEJA_MODEL_DIR` if set, else
/// `<data dir>/deja/models/all-MiniLM-L6-v2` (`~/.local/share/...` on Linux), else
/// `./models/all-MiniLM-L6-v2` on systems without a data directory.
///
/// This is the same directory `scripts/install-model.sh` installs into.
pub fn default_model_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("DEJA_MODEL_DIR").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    match dirs::data_dir() {
        Some(data) => data.join("deja").join("models").join(DEFAULT_MODEL_NAME),
        None => PathBuf::from("models").join(DEFAULT_MODEL_NAME),
    }
}

/// Scales `v` to unit length in place; a zero vector stays zero.
pub(crate) fn l2_normalize(v: &mut [f32]) {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        let inv = 1.0 / norm;
        v.iter_mut().for_each(|x| *x *= inv);
    }
}
