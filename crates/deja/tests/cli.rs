#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The built `deja` binary: `stats | invalidate | export | import` on a stopped data
//! directory and against a running `deja serve` (with `deja mock-upstream` as its upstream),
//! and the store's durability when the server is killed with SIGKILL under load.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use deja_core::{Answer, Entry, EntryId, ExactKey, PartitionKey, Usage};
use deja_server::admin::transfer::ExportLine;
use serde_json::{json, Value};

mod common;
use common::{free_addr, have_model, wait_ready, Proc};

const TOKEN: &str = "cli-test-admin-token";

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

/// Runs `deja` and returns its standard output, failing the test if it fails.
fn ok(args: &[&str]) -> String {
    let out = run(args);
    assert!(
        out.status.success(),
        "deja {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn entry(i: u64, tags: &[&str], created_at_ms: u64) -> Entry {
    let partition = PartitionKey([i as u8 % 2; 16]);
    let prompt = format!("question number {i}");
    let v = [0.5f32, 0.5, 0.5, 0.5];
    Entry {
        id: EntryId(0x1000 + i),
        exact_key: ExactKey::new(&partition, &prompt),
        partition,
        prompt,
        model: "gpt-4o-mini".into(),
        answer: if i.is_multiple_of(2) {
            Answer::Body(format!("{{\"answer\": {i}}}").into_bytes())
        } else {
            Answer::Chunks(vec![b"{\"a\":1}".to_vec(), b"{\"b\":2}".to_vec()])
        },
        usage: Usage {
            prompt_tokens: i,
            completion_tokens: 2 * i,
        },
        created_at_ms,
        last_hit_ms: created_at_ms,
        hit_count: i,
        category: "default".into(),
        namespace: "ns:team".into(),
        tags: tags.iter().map(|t| t.to_string()).collect(),
        embedder_id: "test:fake".into(),
        vector: v.to_vec(),
        request: None,
    }
}

fn lines(entries: &[Entry]) -> String {
    entries
        .iter()
        .map(|e| serde_json::to_string(&ExportLine::from_entry(e)).unwrap() + "\n")
        .collect()
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

#[test]
fn key_hash_prints_the_hash_a_shared_namespace_lists() {
    use std::io::Write;
    let want = deja_server::tenant::key_hash(b"sk-A").to_hex().to_string();
    for input in ["sk-A", "sk-A\n", "Bearer sk-A\n"] {
        let mut child = deja()
            .arg("key-hash")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "{input:?}");
        assert_eq!(
            String::from_utf8(out.stdout).unwrap().trim(),
            want,
            "{input:?}"
        );
    }
    let empty = deja()
        .arg("key-hash")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert!(!empty.status.success(), "no key is an error");
}

#[test]
fn data_dir_export_import_round_trip_and_invalidate() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let dir = dir.to_str().unwrap();
    let now = now_ms();
    // In id order, which is the order an export lists entries in.
    let entries = [
        entry(1, &["product:1"], now),
        entry(2, &["product:1", "policy:x"], now),
        entry(3, &[], now),
        entry(4, &[], 1_000),
    ];
    let file = tmp.path().join("in.jsonl");
    std::fs::write(&file, lines(&entries)).unwrap();

    let out = run(&["import", file.to_str().unwrap(), "--data-dir", dir]);
    assert!(out.status.success(), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("imported 4 entries"),
        "{out:?}"
    );
    assert_eq!(ok(&["export", "--data-dir", dir]), lines(&entries));
    let out_file = tmp.path().join("out.jsonl");
    ok(&[
        "export",
        "--data-dir",
        dir,
        "--out",
        out_file.to_str().unwrap(),
    ]);
    assert_eq!(std::fs::read_to_string(&out_file).unwrap(), lines(&entries));
    let stats: Value = serde_json::from_str(&ok(&["stats", "--data-dir", dir, "--json"])).unwrap();
    assert_eq!(stats["entries"], 4);

    assert_eq!(
        ok(&["invalidate", "--tag", "product:1", "--data-dir", dir]),
        "removed 2\n"
    );
    assert_eq!(
        ok(&["invalidate", "--older-than", "30d", "--data-dir", dir]),
        "removed 1\n"
    );
    assert_eq!(ok(&["export", "--data-dir", dir]), lines(&entries[2..3]));
    assert_eq!(
        ok(&["invalidate", "--namespace", "team", "--data-dir", dir]),
        "removed 1\n"
    );
    assert_eq!(ok(&["export", "--data-dir", dir]), "");

    // A bad line stops the import and is named; the lines before it stay imported.
    let mut bad = lines(&entries[..1]);
    bad.push_str("{\"id\": \"nope\"}\n");
    std::fs::write(&file, bad).unwrap();
    let out = run(&["import", file.to_str().unwrap(), "--data-dir", dir]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("line 2"), "{err}");
    assert!(err.contains("1 entries before the error"), "{err}");
    assert_eq!(ok(&["export", "--data-dir", dir]), lines(&entries[..1]));

    // Exactly one selector.
    assert!(!run(&["invalidate", "--data-dir", dir]).status.success());
    assert!(
        !run(&["invalidate", "--all", "--tag", "a", "--data-dir", dir])
            .status
            .success()
    );
    assert!(
        !run(&["invalidate", "--older-than", "3w", "--data-dir", dir])
            .status
            .success()
    );
}

/// `deja mock-upstream` and `deja serve` on free ports over `data_dir`.
struct Server {
    base: String,
    upstream: String,
    server: Proc,
    _mock: Option<Proc>,
    client: reqwest::Client,
}

impl Server {
    async fn start(data_dir: &Path, durability: &str) -> Server {
        let mock_addr = free_addr();
        let mut mock = Proc(
            deja()
                .args(["mock-upstream", "--listen", &mock_addr])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        );
        let client = reqwest::Client::new();
        wait_ready(
            &client,
            &format!("http://{mock_addr}/mock/stats"),
            &mut mock,
        )
        .await;
        let upstream = format!("http://{mock_addr}/v1");
        let mut s = Self::serve(data_dir, durability, &upstream, client).await;
        s._mock = Some(mock);
        s
    }

    async fn serve(
        data_dir: &Path,
        durability: &str,
        upstream: &str,
        client: reqwest::Client,
    ) -> Server {
        let addr = free_addr();
        let mut server = Proc(
            deja()
                .args(["serve", "--listen", &addr, "--upstream", upstream])
                .args(["--durability", durability, "--data-dir"])
                .arg(data_dir)
                .env("DEJA_ADMIN_TOKEN", TOKEN)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        );
        let base = format!("http://{addr}");
        wait_ready(&client, &format!("{base}/health"), &mut server).await;
        Server {
            base,
            upstream: upstream.to_string(),
            server,
            _mock: None,
            client,
        }
    }

    async fn ask(&self, text: &str, cache_control: Option<&str>) -> reqwest::Result<String> {
        ask(&self.client, &self.base, text, cache_control).await
    }

    async fn stats(&self) -> Value {
        self.client
            .get(format!("{}/admin/stats", self.base))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    async fn export(&self) -> Vec<Value> {
        let text = self
            .client
            .get(format!("{}/admin/export", self.base))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        text.lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
}

/// The `x-deja-cache` outcome of asking `text`.
async fn ask(
    client: &reqwest::Client,
    base: &str,
    text: &str,
    cache_control: Option<&str>,
) -> reqwest::Result<String> {
    let mut rb = client
        .post(format!("{base}/v1/chat/completions"))
        .header("authorization", "Bearer sk-test-a")
        .json(&json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": text}]}));
    if let Some(cc) = cache_control {
        rb = rb.header("cache-control", cc);
    }
    let r = rb.send().await?.error_for_status()?;
    let outcome = r.headers()["x-deja-cache"].to_str().unwrap().to_string();
    r.bytes().await?;
    Ok(outcome)
}

/// Runs `deja` off the test's runtime (it blocks until the command ends).
async fn ok_async(args: Vec<String>, token: Option<&'static str>) -> Output {
    tokio::task::spawn_blocking(move || {
        let mut c = deja();
        c.args(&args);
        if let Some(t) = token {
            c.env("DEJA_ADMIN_TOKEN", t);
        }
        c.output().unwrap()
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_against_a_running_server() {
    if !have_model() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let s = Server::start(&tmp.path().join("data"), "fast").await;
    let prompts = [
        "What is the capital of Peru?",
        "Name a large river in Africa",
    ];
    for p in prompts {
        assert_eq!(s.ask(p, None).await.unwrap(), "miss");
    }
    for p in prompts {
        while s.ask(p, Some("max-age=3600")).await.unwrap() != "hit-exact" {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    let server = || vec!["--server".to_string(), s.base.clone()];
    let with = |cmd: &[&str]| {
        let mut v: Vec<String> = cmd.iter().map(|s| s.to_string()).collect();
        v.extend(server());
        v
    };

    let out = ok_async(with(&["stats", "--json"]), Some(TOKEN)).await;
    assert!(out.status.success(), "{out:?}");
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["entries"], 2);

    let file = tmp.path().join("export.jsonl");
    let out = ok_async(
        with(&["export", "--out", file.to_str().unwrap()]),
        Some(TOKEN),
    )
    .await;
    assert!(out.status.success(), "{out:?}");
    let exported = std::fs::read_to_string(&file).unwrap();
    assert_eq!(exported.lines().count(), 2);

    let out = ok_async(with(&["invalidate", "--all"]), Some(TOKEN)).await;
    assert_eq!(String::from_utf8_lossy(&out.stdout), "removed 2\n");
    assert_eq!(
        s.ask(prompts[0], Some("no-store")).await.unwrap(),
        "miss",
        "invalidated"
    );

    let mut args = with(&["import", file.to_str().unwrap()]);
    args.extend(["--token".to_string(), TOKEN.to_string()]);
    let out = ok_async(args, None).await;
    assert!(out.status.success(), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("imported 2 entries"),
        "{out:?}"
    );
    for p in prompts {
        assert_eq!(s.ask(p, Some("no-store")).await.unwrap(), "hit-exact");
        let lower = p.to_lowercase();
        assert_eq!(
            s.ask(&lower, Some("no-store")).await.unwrap(),
            "hit-semantic"
        );
    }

    // Without the right token the command fails with the server's reason.
    let out = ok_async(with(&["stats"]), Some("wrong")).await;
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("401"),
        "{out:?}"
    );
    let out = ok_async(with(&["stats"]), None).await;
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("DEJA_ADMIN_TOKEN"),
        "{out:?}"
    );
}

/// Entries a client saw stored survive `kill -9` of a `--durability strict` server.
///
/// With strict durability the server commits (with fsync) a miss's answer before it sends
/// the response, so every 200 `miss` the client received is acknowledged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_entries_survive_kill_9_and_the_index_agrees_with_the_store() {
    if !have_model() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let s = Server::start(&data, "strict").await;
    let acknowledged = Arc::new(Mutex::new(Vec::<String>::new()));
    let mut tasks = Vec::new();
    for t in 0..4 {
        let base = s.base.clone();
        let client = s.client.clone();
        let acknowledged = acknowledged.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0.. {
                let text = format!("What is the capital of country number {t}{i:04}?");
                match ask(&client, &base, &text, None).await {
                    Ok(o) if o == "miss" => acknowledged.lock().unwrap().push(text),
                    _ => return,
                }
            }
        }));
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while acknowledged.lock().unwrap().len() < 40 {
        assert!(Instant::now() < deadline, "too slow");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // SIGKILL while the tasks keep sending.
    let Server {
        mut server,
        _mock,
        upstream,
        client,
        ..
    } = s;
    server.0.kill().unwrap();
    server.0.wait().unwrap();
    for t in tasks {
        t.await.unwrap();
    }
    let acknowledged = acknowledged.lock().unwrap().clone();
    assert!(acknowledged.len() >= 40);

    let s = Server::serve(&data, "strict", &upstream, client).await;
    for text in &acknowledged {
        assert_eq!(
            s.ask(text, Some("no-store")).await.unwrap(),
            "hit-exact",
            "{text}"
        );
    }
    // The store opened cleanly, and every stored entry is found exactly and, through the
    // index rebuilt at start, semantically (the model ignores case; the exact key does not).
    let entries = s.export().await;
    assert_eq!(s.stats().await["entries"], entries.len() as u64);
    assert!(entries.len() >= acknowledged.len());
    for e in &entries {
        assert!(!e["vector"].as_str().unwrap().is_empty(), "{e}");
        let prompt = e["prompt"].as_str().unwrap();
        assert_eq!(s.ask(prompt, Some("no-store")).await.unwrap(), "hit-exact");
        let lower = prompt.to_lowercase();
        assert_eq!(
            s.ask(&lower, Some("no-store")).await.unwrap(),
            "hit-semantic",
            "{prompt}"
        );
    }
    drop(_mock);
}

/// Stops a server as a service manager does (SIGTERM) and waits for it to exit.
fn terminate(mut p: Proc) {
    let pid = p.0.id().to_string();
    let status = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(status) = p.0.try_wait().unwrap() {
            assert!(status.success(), "the server exited with {status}");
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the server did not stop on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clean_stop_keeps_the_index_for_the_next_start_until_entries_change() {
    if !have_model() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let snapshot = data.join("index.snapshot");
    let s = Server::start(&data, "strict").await;
    let prompts: Vec<String> = (0..12)
        .map(|i| format!("How many moons does planet number {i} have?"))
        .collect();
    for p in &prompts {
        assert_eq!(s.ask(p, None).await.unwrap(), "miss");
    }
    let Server {
        server,
        _mock,
        upstream,
        client,
        ..
    } = s;
    terminate(server);
    assert!(snapshot.exists(), "a clean stop writes the index snapshot");

    // Unchanged store: the snapshot is used (and kept), and it finds every entry.
    let s = Server::serve(&data, "strict", &upstream, client.clone()).await;
    for p in &prompts {
        let lower = p.to_lowercase();
        assert_eq!(
            s.ask(&lower, Some("no-store")).await.unwrap(),
            "hit-semantic",
            "{p}"
        );
    }
    assert!(snapshot.exists(), "a current snapshot is kept");
    // A new entry, then a crash: the snapshot no longer matches the store, so the next
    // start deletes it and rebuilds the index, which has the new entry too.
    let extra = "Which river is the longest in country number 9?";
    assert_eq!(s.ask(extra, None).await.unwrap(), "miss");
    let Server { mut server, .. } = s;
    server.0.kill().unwrap();
    server.0.wait().unwrap();
    let s = Server::serve(&data, "strict", &upstream, client).await;
    assert!(!snapshot.exists(), "a stale snapshot is deleted");
    for p in prompts.iter().map(String::as_str).chain([extra]) {
        let lower = p.to_lowercase();
        assert_eq!(
            s.ask(&lower, Some("no-store")).await.unwrap(),
            "hit-semantic",
            "{p}"
        );
    }
    drop(_mock);
}
