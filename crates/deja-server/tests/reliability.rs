#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The proxy under faults, through a real listener, the real embedder and the embedded
//! store, in front of the mock upstream: a store that cannot write (a full disk) recovers
//! by itself and says so on `/health`.

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

struct Proxy {
    base: String,
    mock: MockUpstream,
    client: reqwest::Client,
    served: Served,
}

impl Proxy {
    async fn start(embedder: Arc<dyn Embedder>, data_dir: &Path) -> Proxy {
        let mock = MockUpstream::start().await.unwrap();
        let mut config = Config {
            data_dir: data_dir.to_path_buf(),
            ..Config::default()
        };
        config.upstream.base_url = mock.base_url();
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

    fn chat_request(&self, body: &Value) -> reqwest::RequestBuilder {
        self.client
            .post(format!("{}/v1/chat/completions", self.base))
            .header("authorization", "Bearer sk-test-a")
            .json(body)
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
    let r = p.chat_request(&body).send().await.unwrap();
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
    let r = p.chat_request(&body).send().await.unwrap();
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
    let r = p.chat_request(&body).send().await.unwrap();
    assert_eq!(outcome(&r), "miss");
    let r = p.chat_request(&body).send().await.unwrap();
    assert_eq!(outcome(&r), "hit-exact", "the store writes again");
    assert_eq!(p.chat_calls(), calls + 1);
    assert_eq!(p.health().await, (200, "ok".to_string()));
    let mut served = p.served;
    served.stop().await;
    drop(tmpfs);
}
