#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The pair model as `deja serve` composes it (`build_state`, `embedder.pair_model`
//! "auto": the file `scripts/install-model.sh` puts beside the base model): it serves a
//! paraphrase the verifier of the features alone refuses, below the gate; turned off, the
//! same request is a miss. The upstream is the mock.
//!
//! The pair is one the shipped pair model scores above its stacked verifier's confidence
//! (0.967 against 0.965: logit 6.7, the verifier weighing the cosine too) at a cosine of 0.68,
//! where the first path never looks: a retrained pair model may need another example.

#[macro_use]
mod common;

use common::Served;
use deja_server::config::{EmbedderConfig, PairModelSetting};
use deja_testkit::mock_upstream::MockUpstream;

const STORED: &str = "tell me one more again please.";
const ASKED: &str = "please tell me it once again.";

async fn outcome(client: &reqwest::Client, base: &str, text: &str) -> String {
    let r = common::chat(client, base, text).await;
    r.headers()["x-deja-cache"].to_str().unwrap().to_string()
}

async fn ask_after_storing(pair_model: PairModelSetting) -> String {
    let mock = MockUpstream::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut config = common::config(dir.path(), mock.base_url());
    if let EmbedderConfig::Local { pair_model: p, .. } = &mut config.embedder {
        *p = pair_model;
    }
    let mut served = Served::serve(deja_server::build_state(config).await.unwrap()).await;
    let client = reqwest::Client::new();
    assert_eq!(outcome(&client, &served.base, STORED).await, "miss");
    // Stored once the exact repeat is a hit.
    let mut stored = false;
    for _ in 0..100 {
        if outcome(&client, &served.base, STORED).await == "hit-exact" {
            stored = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(stored, "the first answer was never stored");
    let got = outcome(&client, &served.base, ASKED).await;
    served.stop().await;
    got
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_installed_pair_model_serves_what_the_features_alone_refuse() {
    let _ = need_model!();
    let installed = deja_embed::default_model_dir().join(deja_embed::PAIR_FILE);
    if !installed.is_file() {
        assert_ne!(
            std::env::var("DEJA_REQUIRE_MODEL").as_deref(),
            Ok("1"),
            "DEJA_REQUIRE_MODEL=1 but no pair model at {} (scripts/install-model.sh)",
            installed.display()
        );
        eprintln!("skipped: no pair model at {}", installed.display());
        return;
    }
    assert_eq!(
        ask_after_storing(PairModelSetting::Auto).await,
        "hit-semantic"
    );
    assert_eq!(ask_after_storing(PairModelSetting::Off).await, "miss");
}
