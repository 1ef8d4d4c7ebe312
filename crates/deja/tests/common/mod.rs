//! What the `deja` binary's integration tests share: whether the real model is installed,
//! free ports, child processes killed on drop, waiting for a server to answer.

// Each test binary uses its own part of this module.
#![allow(dead_code)]

use std::process::Child;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Whether the real model is installed (checked once per test binary); `false` (the test
/// prints why and skips) unless `DEJA_REQUIRE_MODEL=1`.
pub fn have_model() -> bool {
    static HAVE: OnceLock<bool> = OnceLock::new();
    *HAVE.get_or_init(|| {
        let dir = deja_embed::default_model_dir();
        match deja_embed::BertEmbedder::load(&dir, deja_embed::BertOptions::default()) {
            Ok(_) => true,
            Err(e) => {
                if std::env::var("DEJA_REQUIRE_MODEL").as_deref() == Ok("1") {
                    panic!("DEJA_REQUIRE_MODEL=1 but the model cannot be loaded: {e}");
                }
                eprintln!("skipped: {e}");
                false
            }
        }
    })
}

/// A free 127.0.0.1 address.
pub fn free_addr() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().to_string()
}

/// A child process killed (SIGKILL) when dropped.
pub struct Proc(pub Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Waits up to 60 s for `url` to answer with success; fails the test if `child` exits
/// first.
pub async fn wait_ready(client: &reqwest::Client, url: &str, child: &mut Proc) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if let Ok(r) = client.get(url).send().await {
            if r.status().is_success() {
                return;
            }
        }
        if let Some(status) = child.0.try_wait().unwrap() {
            panic!("process exited early: {status}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{url} never became ready");
}
