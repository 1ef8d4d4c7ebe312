#![allow(clippy::unwrap_used, clippy::expect_used)]
//! multilingual-e5-small as `deja serve --embedder-model multilingual-e5-small` composes it
//! (`build_state`): its own verifier (`verifier-e5.json`) and category-example threshold,
//! a German prompt served to its lowercase, unpunctuated repeat, and the same request in
//! another language, or an antonym, refused; and the multilingual pair model
//! (`deja-pair-model-e5.safetensors`, installed beside the model) serving a French
//! rewording the verifier of the features alone refuses; and the default, both models by
//! language. The upstream is the mock.

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

/// Whether `file` (a model file the install script puts in place) is installed; a skip
/// note when not, a failure with `DEJA_REQUIRE_MODEL=1`.
fn installed(file: &std::path::Path) -> bool {
    if file.is_file() {
        return true;
    }
    assert_ne!(
        std::env::var("DEJA_REQUIRE_MODEL").as_deref(),
        Ok("1"),
        "DEJA_REQUIRE_MODEL=1 but {} is not installed ({})",
        file.display(),
        deja_embed::E5_INSTALL_HINT
    );
    eprintln!("skipped: no model at {}", file.display());
    false
}

/// A server of multilingual-e5-small with the pair model setting `pair_model` (the
/// upstream is `mock`).
async fn serve_e5(
    mock: &MockUpstream,
    dir: &std::path::Path,
    pair_model: deja_server::config::PairModelSetting,
) -> common::Served {
    let mut config = common::config(dir, mock.base_url());
    config
        .set_embedder_model("--embedder-model", "multilingual-e5-small")
        .unwrap();
    if let deja_server::config::EmbedderConfig::Local { pair_model: p, .. } = &mut config.embedder {
        *p = pair_model;
    }
    common::Served::serve(deja_server::build_state(config).await.unwrap()).await
}

/// Asks `stored` (a miss) until its answer is stored (an exact hit).
async fn store(client: &reqwest::Client, base: &str, stored: &str) {
    assert_eq!(ask(client, base, stored).await.0, "miss");
    for _ in 0..100 {
        if ask(client, base, stored).await.0 == "hit-exact" {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("{stored} was never stored");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_multilingual_model_serves_a_repeat_and_refuses_another_language() {
    if !installed(&deja_embed::default_e5_dir().join(deja_embed::E5_FILE)) {
        return;
    }
    let mock = MockUpstream::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut served = serve_e5(
        &mock,
        dir.path(),
        deja_server::config::PairModelSetting::Auto,
    )
    .await;
    let client = reqwest::Client::new();
    let base = served.base.clone();
    for stored in [
        "Wie kann ich mein Passwort zurücksetzen?",
        "Comment activer la double authentification ?",
    ] {
        store(&client, &base, stored).await;
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

/// Stores `stored` through a server of multilingual-e5-small with the pair model setting
/// `pair_model`, then asks `asked`: the cache header.
async fn ask_after_storing(
    pair_model: deja_server::config::PairModelSetting,
    stored: &str,
    asked: &str,
) -> String {
    let mock = MockUpstream::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut served = serve_e5(&mock, dir.path(), pair_model).await;
    let client = reqwest::Client::new();
    store(&client, &served.base, stored).await;
    let got = ask(&client, &served.base, asked).await.0;
    served.stop().await;
    got
}

/// The pair is one the shipped multilingual pair model scores well above its stacked
/// verifier's confidence (logit 6.7 where it asks about 5.9; the features alone refuse
/// it): a retrained pair model may need another example.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_multilingual_pair_model_serves_a_french_rewording() {
    if !installed(&deja_embed::default_e5_dir().join(deja_embed::E5_PAIR_FILE)) {
        return;
    }
    use deja_server::config::PairModelSetting;
    let (stored, asked) = (
        "Comment réinitialiser mon mot de passe ?",
        "coment reinitialiser mon mot de pase",
    );
    assert_eq!(
        ask_after_storing(PairModelSetting::Auto, stored, asked).await,
        "hit-semantic"
    );
    assert_eq!(
        ask_after_storing(PairModelSetting::Off, stored, asked).await,
        "miss"
    );
}

/// The default, `embedder.model = "auto"`, as `deja serve` composes it: an English prompt
/// embedded, indexed and served by all-MiniLM-L6-v2 with its pair model, a French one by
/// multilingual-e5-small with its own, each entry recording its embedder; a French
/// rewording served, the English question in French refused (another language), and after
/// a restart (the index snapshot holds the English index; the French one is rebuilt from
/// the store) both are served again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_default_reads_each_language_with_its_own_model() {
    if !installed(&deja_embed::default_e5_dir().join(deja_embed::E5_PAIR_FILE))
        || !installed(&deja_embed::default_model_dir().join(deja_embed::PAIR_FILE))
    {
        return;
    }
    let mock = MockUpstream::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut config = common::config(dir.path(), mock.base_url());
    const TOKEN: &str = "multilingual-admin-token";
    config.admin.token = Some(TOKEN.into());
    assert!(matches!(
        config.embedder,
        deja_server::config::EmbedderConfig::Local {
            model: deja_server::config::LocalModel::Auto,
            ..
        }
    ));
    let client = reqwest::Client::new();
    let (english, french) = (
        "How do I reset my password?",
        "Comment réinitialiser mon mot de passe ?",
    );
    let asked = [
        ("how do i reset my password", "hit-semantic"),
        ("coment reinitialiser mon mot de pase", "hit-semantic"),
        ("Comment désactiver la double authentification ?", "miss"),
    ];
    let mut served =
        common::Served::serve(deja_server::build_state(config.clone()).await.unwrap()).await;
    let base = served.base.clone();
    store(&client, &base, english).await;
    store(&client, &base, french).await;
    let calls = mock.stats().chat_calls;
    for (text, want) in asked {
        assert_eq!(ask(&client, &base, text).await.0, want, "{text}");
    }
    assert_eq!(mock.stats().chat_calls, calls + 1);
    assert_eq!(
        ask(
            &client,
            &base,
            "Comment réinitialiser mon mot de passe anglais ?"
        )
        .await
        .0,
        "miss"
    );
    // Each entry records the model that embedded it.
    let embedder_of = |asked: &'static str| {
        let (client, base) = (client.clone(), base.clone());
        async move {
            let hit = common::chat(&client, &base, asked).await;
            let id = hit.headers()["x-deja-entry"].to_str().unwrap().to_string();
            let entry =
                common::admin_get(&client, &base, &format!("/admin/entries/{id}"), TOKEN).await;
            entry["embedder_id"].as_str().unwrap().to_string()
        }
    };
    let en_id = embedder_of("how do i reset my password").await;
    let fr_id = embedder_of("coment reinitialiser mon mot de pase").await;
    assert!(en_id.starts_with("local:bert"), "{en_id}");
    assert!(fr_id.starts_with("local:e5"), "{fr_id}");
    served.stop().await;
    drop(served);
    assert!(dir.path().join("index.snapshot").is_file());

    let mut restarted =
        common::Served::serve(deja_server::build_state(config).await.unwrap()).await;
    // (The third, a miss, was stored.)
    for (text, want) in &asked[..2] {
        assert_eq!(
            ask(&client, &restarted.base, text).await.0,
            *want,
            "{text}, after a restart"
        );
    }
    restarted.stop().await;
}

mod common;
