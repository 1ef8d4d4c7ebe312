#![allow(clippy::unwrap_used, clippy::expect_used)]
//! multilingual-e5-small as `deja serve --embedder-model multilingual-e5-small` composes it
//! (`build_state`): its own verifier (`verifier-e5.json`) and category-example threshold,
//! a German prompt served to its lowercase, unpunctuated repeat, and the same request in
//! another language, or an antonym, refused. The upstream is the mock.

use deja_testkit::mock_upstream::MockUpstream;

/// (cache header, rejection header) of one chat request.
async fn ask(client: &reqwest::Client, base: &str, text: &str) -> (String, Option<String>) {
    let r = common::chat(client, base, text).await;
    let header = |name: &str| {
        r.headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_string())
    };
    (header("x-deja-cache").unwrap(), header("x-deja-rejected"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_multilingual_model_serves_a_repeat_and_refuses_another_language() {
    let installed = deja_embed::default_e5_dir().join(deja_embed::E5_FILE);
    if !installed.is_file() {
        assert_ne!(
            std::env::var("DEJA_REQUIRE_MODEL").as_deref(),
            Ok("1"),
            "DEJA_REQUIRE_MODEL=1 but multilingual-e5-small is not at {} ({})",
            installed.display(),
            deja_embed::E5_INSTALL_HINT
        );
        eprintln!("skipped: no model at {}", installed.display());
        return;
    }
    let mock = MockUpstream::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut config = common::config(dir.path(), mock.base_url());
    config
        .set_embedder_model("--embedder-model", "multilingual-e5-small")
        .unwrap();
    let state = deja_server::build_state(config).await.unwrap();
    let mut served = common::Served::serve(state).await;
    let client = reqwest::Client::new();
    let base = served.base.clone();
    for stored in [
        "Wie kann ich mein Passwort zurücksetzen?",
        "Comment activer la double authentification ?",
    ] {
        assert_eq!(ask(&client, &base, stored).await.0, "miss");
        let mut hit = false;
        for _ in 0..100 {
            if ask(&client, &base, stored).await.0 == "hit-exact" {
                hit = true;
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        assert!(hit, "{stored} was never stored");
    }
    let calls = mock.stats().chat_calls;
    assert_eq!(
        ask(&client, &base, "wie kann ich mein passwort zurücksetzen").await,
        ("hit-semantic".to_string(), None)
    );
    assert_eq!(
        mock.stats().chat_calls,
        calls,
        "a hit does not call the upstream"
    );
    assert_eq!(
        ask(&client, &base, "How can I reset my password?").await,
        ("miss".to_string(), Some("language".to_string()))
    );
    let (outcome, _) = ask(
        &client,
        &base,
        "Comment désactiver la double authentification ?",
    )
    .await;
    assert_eq!(outcome, "miss");
    served.stop().await;
}

mod common;
