#![allow(clippy::unwrap_used, clippy::expect_used)]
//! `embedder.model = "auto"` (the default) on a machine where multilingual-e5-small is not
//! installed: every prompt goes to all-MiniLM-L6-v2 (a warning, not a failure); a broken
//! e5 file still fails the start. Its own test binary: it sets `DEJA_E5_DIR`.

#[test]
fn auto_falls_back_to_the_english_model_only_when_e5_is_missing() {
    let minilm = deja_embed::default_model_dir();
    if !minilm.join("model.safetensors").is_file() {
        assert_ne!(
            std::env::var("DEJA_REQUIRE_MODEL").as_deref(),
            Ok("1"),
            "DEJA_REQUIRE_MODEL=1 but all-MiniLM-L6-v2 is not installed"
        );
        eprintln!("skipped: all-MiniLM-L6-v2 is not installed");
        return;
    }
    let empty = tempfile::tempdir().unwrap();
    // The only test of this binary: nothing else reads the variable meanwhile.
    std::env::set_var("DEJA_E5_DIR", empty.path());
    let config = deja_server::config::Config::default();
    let built = deja_server::build_embedders(&config).unwrap();
    assert!(built.other.is_none(), "no e5 installed: no second embedder");
    assert!(built.embedder.id().starts_with("local:bert"));

    std::fs::write(empty.path().join(deja_embed::E5_FILE), b"not a model").unwrap();
    let err = match deja_server::build_embedders(&config) {
        Ok(_) => panic!("a broken e5 file was accepted"),
        Err(e) => e,
    };
    assert!(
        format!("{err:#}").contains(deja_embed::E5_FILE),
        "the error names the file: {err:#}"
    );
}
