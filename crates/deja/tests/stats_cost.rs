#![allow(clippy::unwrap_used, clippy::expect_used)]
//! `deja stats` shows the cost ledger: against a running server (in-process, with the
//! testkit's hash embedder and mock upstream) and, after a clean stop, on its data
//! directory (reading `ledger.json`), through the built binary. Expected dollars come from
//! the mock's reported usage and the configured prices, in integer billionths.

use std::process::Command;
use std::sync::Arc;

use deja_core::{Cache, SystemClock};
use deja_server::config::Config;
use deja_server::pricing::ModelPrice;
use deja_testkit::conformance::{HashEmbedder, INDEX_DIM, INDEX_EMBEDDER};
use deja_testkit::mock_upstream::MockUpstream;
use serde_json::{json, Value};

const TOKEN: &str = "stats-cost-token";

fn deja(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_deja"))
        .env_remove("DEJA_ADMIN_TOKEN")
        .env_remove("DEJA_DATA_DIR")
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "deja {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The words of the table line that starts with `label`.
fn row<'a>(table: &'a str, label: &str) -> Vec<&'a str> {
    table
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .find(|w| w.first() == Some(&label))
        .unwrap_or_else(|| panic!("no {label} row in\n{table}"))
}

#[test]
fn stats_shows_money_saved_per_model_and_day() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let client = reqwest::Client::new();
    let (base, shutdown, task, _upstream, usage) = rt.block_on(async {
        let upstream = MockUpstream::start().await.unwrap();
        let mut config = Config {
            data_dir: tmp.path().to_path_buf(),
            ..Config::default()
        };
        config.upstream.base_url = upstream.base_url();
        config.admin.token = Some(TOKEN.into());
        config.store.durability = deja_server::config::Durability::Strict;
        config.prices.insert(
            "my-model".into(),
            ModelPrice {
                input_per_mtok: 3.0,
                output_per_mtok: 7.0,
            },
        );
        let store = Arc::new(deja_server::open_store(&config).unwrap());
        let index = Arc::new(deja_store_local::HnswIndex::new(
            INDEX_EMBEDDER,
            INDEX_DIM,
            deja_store_local::HnswParams::default(),
        ));
        let cache = Cache::new(
            store,
            index,
            Arc::new(HashEmbedder),
            Arc::new(SystemClock),
            deja_server::cache_options(&config),
        )
        .unwrap();
        let app = deja_server::AppState::new(config, cache).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(deja_server::serve_on(listener, app, async {
            let _ = rx.await;
        }));
        // A miss, then two exact hits of the same answer; one request to an unpriced model.
        let mut usage = (0, 0);
        for (model, want) in [
            ("my-model", "miss"),
            ("my-model", "hit-exact"),
            ("my-model", "hit-exact"),
            ("unpriced-model", "miss"),
        ] {
            let r = client
                .post(format!("{base}/v1/chat/completions"))
                .header("authorization", "Bearer sk-test")
                .json(&json!({"model": model, "messages": [{"role": "user", "content": "Tell me a joke about cats"}]}))
                .send()
                .await
                .unwrap();
            assert_eq!(r.headers()["x-deja-cache"], want, "{model}");
            let v: Value = r.json().await.unwrap();
            if model == "my-model" {
                usage = (
                    v["usage"]["prompt_tokens"].as_u64().unwrap(),
                    v["usage"]["completion_tokens"].as_u64().unwrap(),
                );
            }
        }
        (base, tx, task, upstream, usage)
    });
    let (p, c) = usage;
    // Two hits at $3 / $7 per 1M tokens, in billionths of a dollar.
    let nano = 2 * (p * 3_000 + c * 7_000);
    let dollars = format!("${:.4}", nano as f64 / 1e9);

    let server = ["stats", "--server", &base, "--token", TOKEN];
    let table = deja(&server);
    let tokens = format!("{}+{}", 2 * p, 2 * c);
    assert_eq!(
        row(&table, "my-model"),
        ["my-model", "3", "2+0", "66.7%", &tokens, &dollars],
        "{table}"
    );
    assert_eq!(
        row(&table, "unpriced-model"),
        ["unpriced-model", "1", "0+0", "0.0%", "0+0", "$0.0000"],
        "{table}"
    );
    assert_eq!(
        row(&table, "total"),
        ["total", "4", "2+0", "50.0%", &tokens, &dollars],
        "{table}"
    );
    assert!(table.contains(" (UTC): what the hits would have cost upstream"));

    let json_of = |args: &[&str]| -> Value {
        let mut a = args.to_vec();
        a.push("--json");
        serde_json::from_str(&deja(&a)).unwrap()
    };
    let from_server = json_of(&server)["ledger"].clone();
    assert_eq!(from_server["totals"]["saved_nano_usd"], nano);
    assert_eq!(from_server["totals"]["requests"], 4);
    assert_eq!(from_server["days"].as_array().unwrap().len(), 1);
    assert_eq!(from_server["models"][0]["model"], "my-model");
    let mut one_day = server.to_vec();
    one_day.extend(["--days", "1"]);
    assert_eq!(json_of(&one_day)["ledger"]["from"], from_server["to"]);

    let _ = shutdown.send(());
    rt.block_on(task).unwrap().unwrap();

    // The stopped server's data dir: the same ledger, from ledger.json.
    let dir = tmp.path().to_str().unwrap();
    let local = ["stats", "--data-dir", dir];
    assert_eq!(json_of(&local)["ledger"], from_server);
    let table = deja(&local);
    assert_eq!(
        row(&table, "my-model"),
        ["my-model", "3", "2+0", "66.7%", &tokens, &dollars],
        "{table}"
    );
}
