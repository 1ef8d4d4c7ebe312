//! A real Memcached server for tests: Debian's `memcached` (installed by
//! `scripts/install-memcached.sh`) on 127.0.0.1 at a free port, TCP only, stopped by its
//! PID when the handle is dropped. When it cannot be started, [`MemcachedServer::start_or_skip`]
//! prints `skipped: <why>` and returns `None` — unless `DEJA_REQUIRE_MEMCACHED=1` (set by
//! `scripts/test.sh`), where it panics so CI never passes without the server.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long the server may take to answer `version`.
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// One `memcached` process.
pub struct MemcachedServer {
    port: u16,
    child: Option<Child>,
}

impl MemcachedServer {
    /// Starts `memcached` from the PATH; `None` (after "skipped: …") if it cannot be.
    pub fn start_or_skip() -> Option<MemcachedServer> {
        match Self::start() {
            Ok(s) => Some(s),
            Err(why) => {
                let why = format!(
                    "memcached could not be started (install it with scripts/install-memcached.sh): {why}"
                );
                if std::env::var("DEJA_REQUIRE_MEMCACHED").is_ok_and(|v| v == "1") {
                    panic!("DEJA_REQUIRE_MEMCACHED=1 but {why}");
                }
                eprintln!("skipped: {why}");
                None
            }
        }
    }

    /// Starts `memcached` on a free port of 127.0.0.1 (64 MB, no UDP).
    pub fn start() -> Result<MemcachedServer, String> {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| format!("free port: {e}"))?
            .port();
        let mut server = MemcachedServer { port, child: None };
        server.spawn()?;
        Ok(server)
    }

    fn spawn(&mut self) -> Result<(), String> {
        let mut child = Command::new("memcached")
            .args(["--listen", "127.0.0.1", "--port", &self.port.to_string()])
            .args(["--udp-port", "0", "--memory-limit", "64"])
            .args(["--user", "root"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("memcached: {e}"))?;
        let started = Instant::now();
        while started.elapsed() < START_TIMEOUT {
            if let Ok(Some(status)) = child.try_wait() {
                let mut err = String::new();
                if let Some(mut e) = child.stderr.take() {
                    let _ = e.read_to_string(&mut err);
                }
                return Err(format!("memcached exited ({status}): {err}"));
            }
            if self
                .command("version")
                .is_ok_and(|r| r.starts_with("VERSION"))
            {
                self.child = Some(child);
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
        Err(format!(
            "memcached on port {} did not answer within {START_TIMEOUT:?}",
            self.port
        ))
    }

    /// `memcached://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("memcached://127.0.0.1:{}", self.port)
    }

    /// Stops the server with SIGKILL (by its PID) and reaps it.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts it again, empty, on the same port (after [`MemcachedServer::kill`]).
    pub fn restart(&mut self) -> Result<(), String> {
        self.kill();
        self.spawn()
    }

    /// Sends one text-protocol command and returns the raw reply.
    pub fn command(&self, cmd: &str) -> std::io::Result<String> {
        let mut s = TcpStream::connect(("127.0.0.1", self.port))?;
        s.set_read_timeout(Some(Duration::from_secs(2)))?;
        s.write_all(format!("{cmd}\r\n").as_bytes())?;
        let mut buf = vec![0u8; 64 * 1024];
        let n = s.read(&mut buf)?;
        Ok(String::from_utf8_lossy(&buf[..n]).into_owned())
    }
}

impl Drop for MemcachedServer {
    fn drop(&mut self) {
        self.kill();
    }
}
