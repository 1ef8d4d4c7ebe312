//! Embedding items shared by every replica through Memcached: a second tier behind each
//! replica's own store (`[store] shared_embeddings = "memcached://HOST:PORT"`).
//!
//! An embedding item is the same vector whoever asked for it (the key covers the model,
//! `dimensions`, the tenant and the input), so replicas that each keep their own store
//! can share them without a shared store: a replica looks up what its own store lacks
//! here, in one round trip, before it sends the rest upstream, and adds what the upstream
//! returned. Items found here are served, not copied into the replica's store, so an
//! invalidation on any replica reaches them:
//!
//! - every stored value carries the **generation** it was written in, and a lookup reads
//!   the current generation in the same `get` as the items: a value of another generation
//!   is a miss;
//! - an invalidation on any replica (any kind: by tag, model, namespace, tenant, id, age,
//!   all) moves the generation on, so nothing written before it is served again;
//! - if Memcached evicted the generation key itself, nothing is served until it is set
//!   again, to the current time in microseconds: never to a generation used before, since
//!   the clock runs far faster than invalidations (each is at least a network round trip)
//!   can move a generation on.
//!
//! Memcached faults never fail a request: a read that fails or takes longer than
//! `shared_timeout_ms` counts as a miss, a write that fails is dropped; both are logged and
//! counted (`deja_shared_embeddings_total{result="error"}`).
//!
//! The client speaks Memcached's text protocol (`get`, `set … noreply`, `incr`, `add`) over a
//! small pool of connections; a connection that saw an error is closed, not reused.

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use deja_core::ExactKey;
use parking_lot::Mutex;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufStream};
use tokio::net::TcpStream;

/// Connections kept open for reuse.
const POOL: usize = 8;

/// First bytes of every stored value: the format, so another writer's values under our
/// keys are misses, not garbage.
const MAGIC: &[u8; 4] = b"DJE1";

/// Memcached reads an expiry above 30 days as a point in time.
pub const MAX_TTL_SECS: u64 = 30 * 24 * 3600;

/// Why Memcached could not be used.
#[derive(Debug, thiserror::Error)]
pub enum SharedError {
    #[error("memcached at {addr}: {source}")]
    Io {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    #[error("memcached at {addr} did not answer within {millis} ms")]
    Timeout { addr: String, millis: u128 },
    #[error("memcached at {addr} answered {line:?}")]
    Protocol { addr: String, line: String },
}

/// The address in a `memcached://HOST:PORT` URL, or why it is not one.
pub fn parse_url(url: &str) -> Result<String, String> {
    let rest = url
        .strip_prefix("memcached://")
        .ok_or_else(|| format!("{url:?} is not a memcached://HOST:PORT URL"))?;
    let rest = rest.trim_end_matches('/');
    match rest.rsplit_once(':') {
        Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok() => {
            Ok(rest.to_string())
        }
        _ => Err(format!("{url:?}: use memcached://HOST:PORT")),
    }
}

/// A Memcached text-protocol client over a pool of connections.
pub struct Memcached {
    addr: String,
    timeout: Duration,
    idle: Mutex<Vec<Conn>>,
}

impl Memcached {
    pub fn new(addr: String, timeout: Duration) -> Memcached {
        Memcached {
            addr,
            timeout,
            idle: Mutex::new(Vec::new()),
        }
    }

    /// Runs `talk` on a pooled connection within the timeout; the connection goes back to
    /// the pool only if `talk` succeeded. A pooled connection that fails is likely stale
    /// (Memcached restarted): the pool is emptied and `talk` runs once more on a new
    /// connection. Every command here may be repeated (a repeated `incr` only moves the
    /// generation on further). `talk` takes the connection and hands it back, so its
    /// future borrows nothing of it.
    async fn with_conn<T, Fut>(&self, talk: impl Fn(Conn) -> Fut) -> Result<T, SharedError>
    where
        Fut: std::future::Future<Output = (Conn, Result<T, SharedError>)>,
    {
        let run = async {
            let pooled = self.idle.lock().pop();
            if let Some(conn) = pooled {
                match talk(conn).await {
                    (conn, Ok(out)) => {
                        self.put_back(conn);
                        return Ok(out);
                    }
                    (_, Err(SharedError::Io { .. } | SharedError::Protocol { .. })) => {
                        self.idle.lock().clear();
                    }
                    (_, Err(e)) => return Err(e),
                }
            }
            let (conn, out) = talk(self.connect().await?).await;
            let out = out?;
            self.put_back(conn);
            Ok(out)
        };
        match tokio::time::timeout(self.timeout, run).await {
            Ok(r) => r,
            Err(_) => Err(SharedError::Timeout {
                addr: self.addr.clone(),
                millis: self.timeout.as_millis(),
            }),
        }
    }

    async fn connect(&self) -> Result<Conn, SharedError> {
        let s = TcpStream::connect(&self.addr)
            .await
            .map_err(io(&self.addr))?;
        s.set_nodelay(true).map_err(io(&self.addr))?;
        Ok(BufStream::new(s))
    }

    fn put_back(&self, conn: Conn) {
        let mut idle = self.idle.lock();
        if idle.len() < POOL {
            idle.push(conn);
        }
    }

    /// The values stored under `keys` (absent keys are left out), in one round trip.
    pub async fn get_many(&self, keys: &[String]) -> Result<HashMap<String, Vec<u8>>, SharedError> {
        let addr = self.addr.as_str();
        self.with_conn(|mut c| async move {
            let r = get_many(&mut c, addr, keys).await;
            (c, r)
        })
        .await
    }

    /// Stores each `(key, value)` with expiry `ttl_secs` (0: none), pipelined, without
    /// waiting for replies (`noreply`).
    pub async fn set_many(
        &self,
        items: &[(String, Vec<u8>)],
        ttl_secs: u64,
    ) -> Result<(), SharedError> {
        let addr = self.addr.as_str();
        self.with_conn(|mut c| async move {
            let r = set_many(&mut c, addr, items, ttl_secs).await;
            (c, r)
        })
        .await
    }

    /// Adds one to the number under `key`, setting it to `initial` if absent; the new value.
    pub async fn incr_or_add(&self, key: &str, initial: u64) -> Result<u64, SharedError> {
        let addr = self.addr.as_str();
        self.with_conn(|mut c| async move {
            let r = incr_or_add(&mut c, addr, key, initial).await;
            (c, r)
        })
        .await
    }

    /// Sets `key` to `value` unless it exists; whether it was set.
    pub async fn add(&self, key: &str, value: u64) -> Result<bool, SharedError> {
        let addr = self.addr.as_str();
        self.with_conn(|mut c| async move {
            let r = add(&mut c, addr, key, value).await;
            (c, r)
        })
        .await
    }
}

/// One connection to Memcached.
type Conn = BufStream<TcpStream>;

async fn get_many(
    c: &mut Conn,
    addr: &str,
    keys: &[String],
) -> Result<HashMap<String, Vec<u8>>, SharedError> {
    let mut cmd = String::from("get");
    for k in keys {
        cmd.push(' ');
        cmd.push_str(k);
    }
    cmd.push_str("\r\n");
    send(c, addr, cmd.as_bytes()).await?;
    let mut found = HashMap::new();
    loop {
        let line = read_line(c, addr).await?;
        if line == "END" {
            return Ok(found);
        }
        // VALUE <key> <flags> <bytes>
        let mut parts = line.split(' ');
        let (Some("VALUE"), Some(key), Some(_flags), Some(len)) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(protocol(addr, &line));
        };
        let len: usize = len.parse().map_err(|_| protocol(addr, &line))?;
        let mut data = vec![0u8; len + 2];
        c.read_exact(&mut data).await.map_err(io(addr))?;
        if !data.ends_with(b"\r\n") {
            return Err(protocol(addr, "a value not ended by CRLF"));
        }
        data.truncate(len);
        found.insert(key.to_string(), data);
    }
}

async fn set_many(
    c: &mut Conn,
    addr: &str,
    items: &[(String, Vec<u8>)],
    ttl_secs: u64,
) -> Result<(), SharedError> {
    for (key, value) in items {
        let head = format!("set {key} 0 {ttl_secs} {} noreply\r\n", value.len());
        send_part(c, addr, head.as_bytes()).await?;
        send_part(c, addr, value).await?;
        send_part(c, addr, b"\r\n").await?;
    }
    c.flush().await.map_err(io(addr))
}

async fn incr_or_add(
    c: &mut Conn,
    addr: &str,
    key: &str,
    initial: u64,
) -> Result<u64, SharedError> {
    for _ in 0..3 {
        send(c, addr, format!("incr {key} 1\r\n").as_bytes()).await?;
        let line = read_line(c, addr).await?;
        if let Ok(n) = line.parse::<u64>() {
            return Ok(n);
        }
        if line != "NOT_FOUND" {
            return Err(protocol(addr, &line));
        }
        if add(c, addr, key, initial).await? {
            return Ok(initial);
        }
        // Another replica added it meanwhile: increment that.
    }
    Err(protocol(addr, "incr and add kept racing"))
}

async fn add(c: &mut Conn, addr: &str, key: &str, value: u64) -> Result<bool, SharedError> {
    let v = value.to_string();
    send(
        c,
        addr,
        format!("add {key} 0 0 {}\r\n{v}\r\n", v.len()).as_bytes(),
    )
    .await?;
    match read_line(c, addr).await?.as_str() {
        "STORED" => Ok(true),
        "NOT_STORED" => Ok(false),
        other => Err(protocol(addr, other)),
    }
}

/// Turns an I/O error talking to `addr` into ours.
fn io(addr: &str) -> impl FnOnce(std::io::Error) -> SharedError + '_ {
    move |source| SharedError::Io {
        addr: addr.to_string(),
        source,
    }
}

fn protocol(addr: &str, line: &str) -> SharedError {
    SharedError::Protocol {
        addr: addr.to_string(),
        line: line.chars().take(200).collect(),
    }
}

async fn send_part(c: &mut Conn, addr: &str, bytes: &[u8]) -> Result<(), SharedError> {
    c.write_all(bytes).await.map_err(io(addr))
}

async fn send(c: &mut Conn, addr: &str, bytes: &[u8]) -> Result<(), SharedError> {
    send_part(c, addr, bytes).await?;
    c.flush().await.map_err(io(addr))
}

/// One reply line without its CRLF.
async fn read_line(c: &mut Conn, addr: &str) -> Result<String, SharedError> {
    let mut line = String::new();
    let n = c.read_line(&mut line).await.map_err(io(addr))?;
    if n == 0 {
        return Err(protocol(addr, "connection closed"));
    }
    Ok(line.trim_end_matches(['\r', '\n']).to_string())
}

/// An embedding item as shared: its vector and the prompt tokens the upstream charged.
#[derive(Debug, Clone, PartialEq)]
pub struct SharedItem {
    pub vector: Vec<f32>,
    pub prompt_tokens: u64,
}

/// The shared tier; see the module docs.
pub struct SharedEmbeddings {
    client: Memcached,
    prefix: String,
    ttl_secs: u64,
}

impl SharedEmbeddings {
    /// Items under `prefix` (the store's key prefix) at `addr`.
    pub fn new(addr: String, prefix: &str, timeout: Duration, ttl_secs: u64) -> SharedEmbeddings {
        SharedEmbeddings {
            client: Memcached::new(addr, timeout),
            prefix: prefix.to_string(),
            ttl_secs: ttl_secs.min(MAX_TTL_SECS),
        }
    }

    fn generation_key(&self) -> String {
        format!("{}:emb:gen", self.prefix)
    }

    fn item_key(&self, key: &ExactKey) -> String {
        format!("{}:emb:{}", self.prefix, key)
    }

    /// The items stored under `keys` in the current generation, in order.
    pub async fn get(&self, keys: &[ExactKey]) -> Result<Vec<Option<SharedItem>>, SharedError> {
        let gen_key = self.generation_key();
        let mut names = Vec::with_capacity(keys.len() + 1);
        names.push(gen_key.clone());
        names.extend(keys.iter().map(|k| self.item_key(k)));
        let found = self.client.get_many(&names).await?;
        let Some(generation) = found.get(&gen_key).and_then(|v| parse_u64(v)) else {
            // Never set, or evicted: start a generation no value can carry.
            self.client.add(&gen_key, now_us()).await?;
            return Ok(vec![None; keys.len()]);
        };
        Ok(names[1..]
            .iter()
            .map(|n| found.get(n).and_then(|v| decode(v, generation)))
            .collect())
    }

    /// Stores `items` in the current generation (none while it is unknown).
    pub async fn put(&self, items: &[(ExactKey, SharedItem)]) -> Result<(), SharedError> {
        if items.is_empty() {
            return Ok(());
        }
        let gen_key = self.generation_key();
        let found = self.client.get_many(std::slice::from_ref(&gen_key)).await?;
        let Some(generation) = found.get(&gen_key).and_then(|v| parse_u64(v)) else {
            self.client.add(&gen_key, now_us()).await?;
            return Ok(());
        };
        let values: Vec<(String, Vec<u8>)> = items
            .iter()
            .map(|(k, item)| (self.item_key(k), encode(generation, item)))
            .collect();
        self.client.set_many(&values, self.ttl_secs).await
    }

    /// Makes everything stored so far unreachable (an invalidation happened).
    pub async fn invalidate(&self) -> Result<(), SharedError> {
        self.client
            .incr_or_add(&self.generation_key(), now_us())
            .await
            .map(|_| ())
    }
}

/// A new generation: the time in microseconds.
fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(1)
}

fn parse_u64(v: &[u8]) -> Option<u64> {
    std::str::from_utf8(v).ok()?.trim().parse().ok()
}

/// `MAGIC`, generation, prompt tokens (u64 LE), then the vector as f32 LE.
fn encode(generation: u64, item: &SharedItem) -> Vec<u8> {
    let mut out = Vec::with_capacity(20 + 4 * item.vector.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&generation.to_le_bytes());
    out.extend_from_slice(&item.prompt_tokens.to_le_bytes());
    for x in &item.vector {
        out.extend_from_slice(&x.to_le_bytes());
    }
    out
}

/// The item in `v` if it is in our format and of `generation`.
fn decode(v: &[u8], generation: u64) -> Option<SharedItem> {
    let rest = v.strip_prefix(MAGIC)?;
    if rest.len() < 16 || (rest.len() - 16) % 4 != 0 {
        return None;
    }
    let (head, floats) = rest.split_at(16);
    let stored_gen = u64::from_le_bytes(head[..8].try_into().ok()?);
    if stored_gen != generation {
        return None;
    }
    let prompt_tokens = u64::from_le_bytes(head[8..16].try_into().ok()?);
    let vector = floats
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    Some(SharedItem {
        vector,
        prompt_tokens,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_name_host_and_port() {
        assert_eq!(
            parse_url("memcached://127.0.0.1:11211").unwrap(),
            "127.0.0.1:11211"
        );
        assert_eq!(parse_url("memcached://cache:1/").unwrap(), "cache:1");
        for bad in [
            "redis://h:1",
            "memcached://h",
            "memcached://:1",
            "memcached://h:x",
        ] {
            assert!(parse_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn values_round_trip_only_in_their_generation() {
        let item = SharedItem {
            vector: vec![0.25, -1.5, 3.0],
            prompt_tokens: 7,
        };
        let v = encode(42, &item);
        assert_eq!(decode(&v, 42), Some(item));
        assert_eq!(decode(&v, 43), None);
        assert_eq!(decode(&v[..v.len() - 1], 42), None);
        assert_eq!(decode(b"something else", 42), None);
    }
}
