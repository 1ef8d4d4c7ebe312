#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The proxy under faults, through a real listener, the real embedder and the embedded
//! store, in front of the mock upstream: coalesced requests neither depend on the first
//! client's reading speed nor retry one after another when the upstream fails, and a store
//! that cannot write (a full disk) recovers by itself and says so on `/health`.

#[macro_use]
mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::Served;
use deja_core::Embedder;
use deja_server::config::Config;
use deja_testkit::mock_upstream::MockUpstream;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

struct Proxy {
    base: String,
    mock: MockUpstream,
    client: reqwest::Client,
    served: Served,
}

impl Proxy {
    async fn start(embedder: Arc<dyn Embedder>, data_dir: &Path) -> Proxy {
        Self::start_with(embedder, data_dir, |_| {}).await
    }

    async fn start_with(
        embedder: Arc<dyn Embedder>,
        data_dir: &Path,
        tweak: impl FnOnce(&mut Config),
    ) -> Proxy {
        let mock = MockUpstream::start().await.unwrap();
        let mut config = common::config(data_dir, mock.base_url());
        tweak(&mut config);
        let served = Served::start(config, embedder).await;
        Proxy {
            base: served.base.clone(),
            mock,
            // Bounded, so that a request the proxy holds fails the test instead of hanging it.
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(60))
                .build()
                .unwrap(),
            served,
        }
    }

    fn chat_request(&self, body: &Value, fault: Option<&str>) -> reqwest::RequestBuilder {
        let rb = self
            .client
            .post(format!("{}/v1/chat/completions", self.base))
            .header("authorization", "Bearer sk-test-a")
            .json(body);
        match fault {
            Some(f) => rb.header("x-mock-fault", f),
            None => rb,
        }
    }

    async fn health(&self) -> (u16, String) {
        let r = self
            .client
            .get(format!("{}/health", self.base))
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    }

    fn chat_calls(&self) -> u64 {
        self.mock.stats().chat_calls
    }
}

fn ask(text: &str) -> Value {
    json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": text}]})
}

fn outcome(resp: &reqwest::Response) -> String {
    resp.headers()
        .get("x-deja-cache")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default()
}

/// A streamed miss whose client reads the response headers and then stops reading (but
/// keeps the connection open) must not hold back an identical request: the leader records
/// the stream at the upstream's pace, stores it and releases the waiter.
#[tokio::test]
async fn a_stalled_streaming_client_does_not_hold_identical_requests() {
    let embedder = need_model!();
    let dir = tempfile::tempdir().unwrap();
    let p = Proxy::start(embedder, dir.path()).await;
    // A long answer in many choices: several MB of SSE chunks, more than the kernel's socket
    // buffers hold for a client that does not read.
    let words: Vec<String> = (0..300).map(|i| format!("word{i}")).collect();
    let prompt = format!("Repeat these words back to me: {}", words.join(" "));
    let mut body = ask(&prompt);
    body["n"] = json!(128);
    let mut streamed = body.clone();
    streamed["stream"] = json!(true);
    let payload = serde_json::to_vec(&streamed).unwrap();

    // The stalled client: raw TCP with a small receive buffer, so that it holds little.
    let addr: std::net::SocketAddr = p.base.trim_start_matches("http://").parse().unwrap();
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut stalled = socket.connect(addr).await.unwrap();
    let head = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nhost: {addr}\r\nauthorization: Bearer sk-test-a\r\n\
         content-type: application/json\r\ncontent-length: {}\r\n\r\n",
        payload.len()
    );
    stalled.write_all(head.as_bytes()).await.unwrap();
    stalled.write_all(&payload).await.unwrap();
    let mut seen = Vec::new();
    let mut buf = [0u8; 1024];
    while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = tokio::time::timeout(Duration::from_secs(60), stalled.read(&mut buf))
            .await
            .expect("the streamed response's headers arrive")
            .unwrap();
        assert!(n > 0, "the proxy closed the streamed response");
        seen.extend_from_slice(&buf[..n]);
    }
    let headers = String::from_utf8_lossy(&seen).to_lowercase();
    assert!(headers.starts_with("http/1.1 200"), "{headers}");
    assert!(headers.contains("x-deja-cache: miss"), "{headers}");
    // From here on the client reads nothing, and keeps its connection open.

    let started = Instant::now();
    let r = p.chat_request(&body, None).send().await.unwrap();
    let elapsed = started.elapsed();
    assert_eq!(r.status(), 200);
    let served = outcome(&r);
    let answer: Value = r.json().await.unwrap();
    assert_eq!(answer["choices"].as_array().unwrap().len(), 128);
    // Before the leader's recording was decoupled from its client, the identical request
    // waited for as long as the stalled client kept its connection (here: until the
    // client's 60 s timeout). Now a second or so, a few on a loaded machine.
    assert!(
        elapsed < Duration::from_secs(15),
        "the identical request waited {elapsed:?} for a client that does not read"
    );
    assert!(p.chat_calls() <= 2, "{} upstream calls", p.chat_calls());
    eprintln!(
        "identical request: {served} after {elapsed:?}, {} upstream call(s)",
        p.chat_calls()
    );
    drop(stalled);
    let mut served = p.served;
    served.stop().await;
}

/// Twenty identical requests (half of them streamed) on an upstream that answers `fault`
/// slowly: one upstream call (two at most, for a request that arrives after the first
/// finished), its error returned to all twenty, in about the time of one call rather than
/// twenty in a row.
async fn concurrent_requests_share_an_error(fault: &str, status: u16) -> Vec<reqwest::Response> {
    // The callers have checked that the model is installed.
    let embedder = common::model().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let p = Arc::new(Proxy::start(embedder, dir.path()).await);
    let body = ask("Summarise the history of the printing press");
    let started = Instant::now();
    let tasks: Vec<_> = (0..20)
        .map(|i| {
            let p = Arc::clone(&p);
            // Every other one streamed: the same error either way, whichever leads.
            let mut body = body.clone();
            if i % 2 == 1 {
                body["stream"] = json!(true);
            }
            let fault = fault.to_string();
            tokio::spawn(async move { p.chat_request(&body, Some(&fault)).send().await.unwrap() })
        })
        .collect();
    let mut responses = Vec::new();
    for t in tasks {
        responses.push(t.await.unwrap());
    }
    let elapsed = started.elapsed();
    for r in &responses {
        assert_eq!(r.status().as_u16(), status);
    }
    let calls = p.chat_calls();
    eprintln!("{fault}: 20 answers after {elapsed:?}, {calls} upstream call(s)");
    assert!(
        calls <= 2,
        "{calls} upstream calls for 20 identical requests"
    );
    // One call takes 1.5 s; twenty in a row would take 30 s.
    assert!(
        elapsed < Duration::from_secs(8),
        "20 identical requests took {elapsed:?}"
    );
    let p = Arc::try_unwrap(p).ok().unwrap();
    let mut served = p.served;
    served.stop().await;
    responses
}

#[tokio::test]
async fn an_upstream_500_is_shared_with_coalesced_requests() {
    if common::model().is_none() {
        return;
    }
    let responses = concurrent_requests_share_an_error("500,slow=1500", 500).await;
    for r in responses {
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["error"]["type"], "server_error", "{v}");
    }
}

#[tokio::test]
async fn an_upstream_429_is_shared_with_coalesced_requests_with_its_retry_after() {
    if common::model().is_none() {
        return;
    }
    let responses = concurrent_requests_share_an_error("429,slow=1500", 429).await;
    for r in responses {
        assert_eq!(
            r.headers().get("retry-after").map(|v| v.to_str().unwrap()),
            Some("1")
        );
    }
}

/// When the leader fails without an error to share (the upstream broke off its answer),
/// the requests waiting for it go upstream on their own, together, not one after another.
#[tokio::test]
async fn waiters_of_a_broken_answer_do_not_queue() {
    let embedder = need_model!();
    let dir = tempfile::tempdir().unwrap();
    let p = Arc::new(Proxy::start(embedder, dir.path()).await);
    let body = ask("Describe the water cycle");
    let started = Instant::now();
    let tasks: Vec<_> = (0..10)
        .map(|_| {
            let p = Arc::clone(&p);
            let body = body.clone();
            tokio::spawn(async move { p.chat_request(&body, Some("cut=1,slow=1000")).send().await })
        })
        .collect();
    for t in tasks {
        // A broken upstream answer is an error for the client (or a cut-off body).
        if let Ok(r) = t.await.unwrap() {
            assert!(!r.status().is_success() || r.bytes().await.is_err());
        }
    }
    let elapsed = started.elapsed();
    eprintln!(
        "10 requests on a broken answer: {elapsed:?}, {} upstream call(s)",
        p.chat_calls()
    );
    // Each call takes 1 s: in a row, ten would take 10 s; the first plus the others
    // together about 2 s.
    assert!(
        elapsed < Duration::from_secs(6),
        "10 requests took {elapsed:?}"
    );
    let p = Arc::try_unwrap(p).ok().unwrap();
    let mut served = p.served;
    served.stop().await;
}

/// A request waits for an identical one at most `cache.coalesce_wait_ms`, then calls the
/// upstream itself; the waiters that gave up do so together, not one after another.
#[tokio::test]
async fn waiters_give_up_on_a_slow_leader_after_the_bound_together() {
    let embedder = need_model!();
    let dir = tempfile::tempdir().unwrap();
    let p =
        Arc::new(Proxy::start_with(embedder, dir.path(), |c| c.cache.coalesce_wait_ms = 200).await);
    let body = ask("Explain the rules of cricket");
    let started = Instant::now();
    let tasks: Vec<_> = (0..6)
        .map(|_| {
            let p = Arc::clone(&p);
            let body = body.clone();
            tokio::spawn(async move {
                let r = p
                    .chat_request(&body, Some("slow=3000"))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), 200);
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let elapsed = started.elapsed();
    let calls = p.chat_calls();
    eprintln!("6 requests on a 3 s upstream, 200 ms bound: {elapsed:?}, {calls} upstream call(s)");
    assert!(calls >= 2, "no waiter gave up on the leader");
    // Each call takes 3 s: those that gave up went together (in a row: 6 s and more).
    assert!(elapsed < Duration::from_millis(5800), "took {elapsed:?}");
    let p = Arc::try_unwrap(p).ok().unwrap();
    let mut served = p.served;
    served.stop().await;
}

/// A small tmpfs mounted on a directory, unmounted when dropped.
struct Tmpfs {
    dir: PathBuf,
}

impl Tmpfs {
    /// Mounts a tmpfs of `size` (as `mount -o size=` reads it) on `dir`; `None` when this
    /// process may not mount (not root).
    fn mount(dir: &Path, size: &str) -> Option<Tmpfs> {
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .output()
            .ok()?;
        if !out.status.success() {
            eprintln!(
                "skipped: cannot mount a tmpfs ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            );
            return None;
        }
        Some(Tmpfs {
            dir: dir.to_path_buf(),
        })
    }

    fn resize(&self, size: &str) {
        let out = Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(&self.dir)
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
    }

    /// Writes a file until the file system is full.
    fn fill(&self) -> PathBuf {
        use std::io::Write;
        let path = self.dir.join("filler");
        let mut f = std::fs::File::create(&path).unwrap();
        let block = vec![0xa5u8; 4096];
        while f.write_all(&block).is_ok() {}
        let _ = f.sync_all();
        path
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        // Lazy, so that a file still open (a failed test) does not keep it mounted.
        let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
    }
}

/// A full disk: the answer is served but not stored and `/health` says the store is
/// degraded; once there is room again the store recovers by itself (no restart): `/health`
/// says ok, and the next miss is stored and then served.
#[tokio::test]
async fn a_full_disk_degrades_the_store_until_it_recovers_by_itself() {
    let embedder = need_model!();
    let dir = tempfile::tempdir().unwrap();
    // Dropped before `dir`, which it is mounted on.
    let Some(tmpfs) = Tmpfs::mount(dir.path(), "2m") else {
        return;
    };
    let p = Proxy::start(embedder, dir.path()).await;
    assert_eq!(p.health().await, (200, "ok".to_string()));
    let filler = tmpfs.fill();

    // A long prompt, so that the entry needs new pages in the store's file.
    let words: Vec<String> = (0..2000).map(|i| format!("w{i}")).collect();
    let body = ask(&format!(
        "What do these tokens have in common: {}",
        words.join(" ")
    ));
    let r = p.chat_request(&body, None).send().await.unwrap();
    assert_eq!(
        r.status(),
        200,
        "a store that cannot write fails no request"
    );
    assert_eq!(outcome(&r), "miss");
    // With `store.durability = "fast"` the answer is stored after the response: wait.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, text) = p.health().await;
        if status == 503 {
            assert!(text.starts_with("store: degraded"), "{text}");
            break;
        }
        assert!(Instant::now() < deadline, "never degraded: {status} {text}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let metrics = p.served.scrape().await;
    assert!(metrics.contains("\ndeja_store_degraded 1\n"), "{metrics}");
    let r = p.chat_request(&body, None).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(outcome(&r), "miss", "nothing was stored");

    // Room again: the store recovers by itself, without traffic.
    tmpfs.resize("64m");
    std::fs::remove_file(filler).unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (status, text) = p.health().await;
        if status == 200 {
            assert_eq!(text, "ok");
            break;
        }
        assert!(Instant::now() < deadline, "still degraded: {text}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let calls = p.chat_calls();
    let r = p.chat_request(&body, None).send().await.unwrap();
    assert_eq!(outcome(&r), "miss");
    let r = p.chat_request(&body, None).send().await.unwrap();
    assert_eq!(outcome(&r), "hit-exact", "the store writes again");
    assert_eq!(p.chat_calls(), calls + 1);
    assert_eq!(p.health().await, (200, "ok".to_string()));
    let metrics = p.served.scrape().await;
    assert!(metrics.contains("\ndeja_store_degraded 0\n"), "{metrics}");
    let mut served = p.served;
    served.stop().await;
    drop(tmpfs);
}
