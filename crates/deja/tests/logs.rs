#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Logs of the real binary: JSON lines that carry the request id (the client's
//! `x-request-id`, or one made by deja and returned in `x-deja-request-id`), and never the
//! prompt or the API key at the default level.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

mod common;
use common::{free_addr, have_model, wait_ready, Proc};

/// The JSON log lines written so far.
fn log_lines(path: &std::path::Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

/// The request id of a JSON log line.
fn request_id(line: &Value) -> Option<&str> {
    line["request_id"].as_str()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_lines_carry_the_request_id_and_never_the_prompt_or_key() {
    if !have_model() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let log_path = dir.path().join("deja.log");
    let addr = free_addr();
    // Nothing listens here: every upstream call fails, which deja logs as a warning.
    let upstream = format!("http://{}/v1", free_addr());
    let mut server = Proc(
        Command::new(env!("CARGO_BIN_EXE_deja"))
            .args(["serve", "--listen", &addr, "--upstream", &upstream])
            .args(["--log-format", "json", "--data-dir"])
            .arg(dir.path().join("data"))
            .env_remove("DEJA_LOG")
            .env("DEJA_ADMIN_TOKEN", "admin-token-marker")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log_path).unwrap())
            .spawn()
            .unwrap(),
    );
    let client = reqwest::Client::new();
    let base = format!("http://{addr}");
    wait_ready(&client, &format!("{base}/health"), &mut server).await;

    let ask = |id: Option<&'static str>| {
        let mut rb = client
            .post(format!("{base}/v1/chat/completions"))
            .header("authorization", "Bearer sk-key-marker-6f1d")
            .json(&json!({
                "model": "gpt-4o-mini",
                "messages": [{"role": "user", "content": "prompt-marker-93ab: what is a lighthouse?"}]
            }));
        if let Some(id) = id {
            rb = rb.header("x-request-id", id);
        }
        rb.send()
    };
    // The client's id is kept and returned.
    let r = ask(Some("client-req-42")).await.unwrap();
    assert_eq!(r.status(), 502);
    assert_eq!(r.headers()["x-deja-request-id"], "client-req-42");
    // An unusable one is replaced by deja's own.
    let r = ask(Some("has space")).await.unwrap();
    let made = r.headers()["x-deja-request-id"]
        .to_str()
        .unwrap()
        .to_string();
    assert_eq!(made.len(), 16, "{made}");
    assert_ne!(made, "has space");
    // Other routes get one too.
    let r = client.get(format!("{base}/health")).send().await.unwrap();
    assert!(r.headers().contains_key("x-deja-request-id"));

    // The warnings about the failed upstream calls carry the ids.
    let deadline = Instant::now() + Duration::from_secs(10);
    let lines = loop {
        let lines = log_lines(&log_path);
        let ids: Vec<&str> = lines.iter().filter_map(request_id).collect();
        if ids.contains(&"client-req-42") && ids.contains(&made.as_str()) {
            break lines;
        }
        assert!(
            Instant::now() < deadline,
            "no log line carries both ids: {lines:#?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let upstream_warnings = lines
        .iter()
        .filter(|l| l["level"] == "WARN" && request_id(l) == Some("client-req-42"))
        .count();
    assert!(upstream_warnings >= 1, "{lines:#?}");
    drop(server);

    let text = std::fs::read_to_string(&log_path).unwrap();
    for secret in [
        "prompt-marker-93ab",
        "sk-key-marker-6f1d",
        "admin-token-marker",
    ] {
        assert!(!text.contains(secret), "{secret} was logged:\n{text}");
    }
}
