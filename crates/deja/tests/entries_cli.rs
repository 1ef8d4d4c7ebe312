#![allow(clippy::unwrap_used, clippy::expect_used)]
//! `deja entries` (and what `deja stats` shows of lifecycle work) on a stopped data
//! directory and against a running server (in-process, on 127.0.0.1, with the testkit's
//! hash embedder), through the built binary.

use std::collections::HashSet;
use std::process::{Command, Output};
use std::sync::Arc;

use deja_core::{Answer, Cache, Entry, EntryId, ExactKey, PartitionKey, SystemClock, Usage};
use deja_server::admin::transfer::ExportLine;
use deja_server::config::Config;
use deja_testkit::conformance::{HashEmbedder, INDEX_DIM, INDEX_EMBEDDER};
use serde_json::Value;

const TOKEN: &str = "entries-cli-token";

fn deja() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_deja"));
    for var in ["DEJA_ADMIN_TOKEN", "DEJA_DATA_DIR", "DEJA_CONFIG"] {
        c.env_remove(var);
    }
    c
}

fn run(args: &[&str]) -> Output {
    deja().args(args).output().unwrap()
}

fn ok(args: &[&str]) -> String {
    let out = run(args);
    assert!(
        out.status.success(),
        "deja {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn entry(i: u64, model: &str, namespace: &str, tags: &[&str]) -> Entry {
    let partition = PartitionKey([9; 16]);
    let prompt = format!("Question {i} about the {model} plan");
    Entry {
        id: EntryId(0x2000 + i),
        exact_key: ExactKey::new(&partition, &prompt),
        partition,
        prompt,
        model: model.into(),
        answer: Answer::Body(format!("{{\"answer\": {i}}}").into_bytes()),
        usage: Usage::default(),
        created_at_ms: 1_000 + i,
        last_hit_ms: 1_000 + i,
        hit_count: i,
        category: "default".into(),
        namespace: namespace.into(),
        tags: tags.iter().map(|t| t.to_string()).collect(),
        embedder_id: String::new(),
        vector: Vec::new(),
        request: None,
    }
}

fn fixture_entries() -> Vec<Entry> {
    (0..25)
        .map(|i| {
            let model = if i % 5 == 0 { "gpt-big" } else { "gpt-small" };
            let ns = if i % 2 == 0 { "ns:team-a" } else { "shared" };
            let tags: &[&str] = if i % 3 == 0 { &["doc:7"] } else { &[] };
            entry(i, model, ns, tags)
        })
        .collect()
}

/// Every page of `deja entries <args> --json --limit N --cursor ...`, followed by hand.
fn pages(target: &[&str], filter: &[&str], limit: usize) -> Vec<String> {
    let mut ids = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let limit_s = limit.to_string();
        let mut args: Vec<&str> = vec!["entries", "--json", "--limit", &limit_s];
        args.extend(target);
        args.extend(filter);
        if let Some(c) = &cursor {
            args.extend(["--cursor", c.as_str()]);
        }
        let page: Value = serde_json::from_str(ok(&args).trim()).unwrap();
        for e in page["entries"].as_array().unwrap() {
            ids.push(e["id"].as_str().unwrap().to_string());
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => return ids,
        }
    }
}

fn want_ids(entries: &[Entry], keep: impl Fn(&Entry) -> bool) -> Vec<String> {
    entries
        .iter()
        .filter(|e| keep(e))
        .map(|e| e.id.to_string())
        .collect()
}

/// The same listing checks against a data dir and a server.
fn check_listing(target: &[&str], entries: &[Entry]) {
    let all = pages(target, &[], 4);
    assert_eq!(all, want_ids(entries, |_| true));
    assert_eq!(all.iter().collect::<HashSet<_>>().len(), all.len());
    let cases: Vec<(Vec<&str>, Vec<String>)> = vec![
        (
            vec!["--model", "gpt-big"],
            want_ids(entries, |e| e.model == "gpt-big"),
        ),
        (
            vec!["--tag", "doc:7"],
            want_ids(entries, |e| e.tags.contains(&"doc:7".to_string())),
        ),
        (
            vec!["--namespace", "team-a"],
            want_ids(entries, |e| e.namespace == "ns:team-a"),
        ),
        (
            vec!["--tenant", "shared", "--model", "gpt-small"],
            want_ids(entries, |e| {
                e.namespace == "shared" && e.model == "gpt-small"
            }),
        ),
        (
            vec!["-q", "QUESTION 1"],
            want_ids(entries, |e| e.prompt.starts_with("Question 1")),
        ),
    ];
    for (filter, want) in cases {
        assert_eq!(pages(target, &filter, 3), want, "{filter:?}");
    }
    // Text output: one line per entry, then where to go on.
    let mut args = vec!["entries", "--limit", "10"];
    args.extend(target);
    let out = run(&args);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(text.lines().count(), 10, "{text}");
    assert!(text.contains(&entries[0].id.to_string()), "{text}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("more with --cursor"), "{stderr}");
    let mut args = vec!["entries", "--all"];
    args.extend(target);
    assert_eq!(ok(&args).lines().count(), entries.len());
    // Bad arguments fail with a message.
    for bad in [
        vec!["--cursor", "xyz"],
        vec!["--tenant", "team-a"],
        vec!["--limit", "0"],
    ] {
        let mut args = vec!["entries"];
        args.extend(target);
        args.extend(bad.iter().copied());
        let out = run(&args);
        assert!(!out.status.success(), "{bad:?}");
    }
}

#[test]
fn entries_on_a_data_dir() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let dir = dir.to_str().unwrap();
    let entries = fixture_entries();
    let file = tmp.path().join("in.jsonl");
    let lines: String = entries
        .iter()
        .map(|e| serde_json::to_string(&ExportLine::from_entry(e)).unwrap() + "\n")
        .collect();
    std::fs::write(&file, lines).unwrap();
    ok(&[
        "import",
        "--quiet",
        file.to_str().unwrap(),
        "--data-dir",
        dir,
    ]);
    check_listing(&["--data-dir", dir], &entries);
    // Invalidation by tenant label, then what stats shows of removals.
    assert_eq!(
        ok(&["invalidate", "--tenant", "shared", "--data-dir", dir]),
        "removed 12\n"
    );
    let stats = ok(&["stats", "--data-dir", dir]);
    assert!(
        stats.contains("removed             0 expired, 0 evicted, 12 invalidated, 0 stale"),
        "{stats}"
    );
    assert!(stats.contains("staleness checks    0"), "{stats}");
    assert!(
        stats.contains("staleness today     0 calls, 0 tokens"),
        "{stats}"
    );
}

#[test]
fn entries_against_a_server() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let entries = fixture_entries();
    let (base, shutdown, task) = rt.block_on(async {
        let mut config = Config {
            data_dir: tmp.path().to_path_buf(),
            ..Config::default()
        };
        config.upstream.base_url = "http://127.0.0.1:9/v1".into();
        config.admin.token = Some(TOKEN.into());
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
        for e in &entries {
            cache.restore(e).await.unwrap();
        }
        let app = deja_server::AppState::new(config, cache).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(deja_server::serve_on(listener, app, async {
            let _ = rx.await;
        }));
        (base, tx, task)
    });
    check_listing(&["--server", &base, "--token", TOKEN], &entries);
    let out = run(&["entries", "--server", &base, "--token", "wrong"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("401"),
        "{out:?}"
    );
    let stats = ok(&["stats", "--server", &base, "--token", TOKEN]);
    assert!(stats.contains("staleness today     off"), "{stats}");
    let _ = shutdown.send(());
    rt.block_on(task).unwrap().unwrap();
}
