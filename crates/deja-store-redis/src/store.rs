//! [`RedisStore`]: the [`EntryStore`] on Redis, standalone or Redis Cluster, shared by
//! every deja replica that points at it.
//!
//! Keys (`P` is the configured prefix, ids are 16 hex digits, exact keys 32):
//!
//! - `P:e:{ID}` string: the encoded entry (`deja_store_local::codec`, int8 vector), with
//!   the entry TTL as a Redis expiry when one is configured;
//! - `P:h:{ID}` hash `n`, `l`: hits flushed since the entry was stored (count, latest time
//!   in ms), added to the hit fields inside the record; created by the first flushed hit;
//! - `P:x:{EXACT}` string: the id stored under that exact key;
//! - `P:t:{TAG}` set: ids of the entries carrying the tag;
//! - `P:ids:{P/B}` set, B in 0..64: every id, sharded so a scan walks 64 sets spread over
//!   the cluster's shards instead of a `SCAN` of every node;
//! - `P:counters` hash: one field per counter;
//! - `P:events` stream: one event per stored (`op put`) or removed (`op del`, with the
//!   partition) entry, tagged with the writing handle's origin, trimmed to about
//!   [`EVENTS_MAXLEN`] events; replicas follow it to keep their in-process index current
//!   (`follow.rs`).
//!
//! The braces are Redis Cluster hash tags: an entry's record and its hits share a slot, so
//! the scripts that read-and-change both are atomic on a cluster too. Keys of other slots
//! (exact key, tags, id shards) are changed by separate commands, in an order that never
//! lets a reader see a wrong answer: the record is written before the exact key points at
//! it, and every read through the exact key checks that the record it reaches carries that
//! key. What a crash between two commands can leave behind is a dangling id (in a tag or a
//! shard set, or under an exact key), which readers skip and removals clean up.
//!
//! Commands for one slot go in one pipeline; pipelines of different slots run
//! concurrently on a cluster and are merged into one pipeline on a standalone server.
//!
//! Hits are buffered in memory and written by `flush` (the server flushes every second),
//! like the embedded store; reads add the buffered hits of this process.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures::{StreamExt, TryStreamExt};
use parking_lot::Mutex;
use redis::{Cmd, Pipeline, Value};

use deja_core::{
    Counters, Entry, EntryId, EntryMeta, EntryStore, ExactKey, PartitionKey, StoreError,
};
use deja_store_local::codec;

use crate::conn::{open_conn, redact, Conn};

const BACKEND: &str = "redis";

/// Shards of the id registry (`P:ids:{P/B}`).
const ID_SHARDS: u64 = 64;

/// Entries read per pipeline in scans and batch removals.
const SCAN_CHUNK: usize = 512;

/// Pipelines in flight at once on a cluster (each goes to its slot's node).
const CLUSTER_CONCURRENCY: usize = 64;

/// Events kept in `P:events` (approximately: trimmed with `MAXLEN ~`). A replica that
/// falls further behind than this misses index updates; it serves exact hits all the
/// same, and its index is complete again after a restart.
pub const EVENTS_MAXLEN: u64 = 1_000_000;

/// Stores the record, drops the hits of an earlier record under the same id, and returns
/// that earlier record (nil if none). KEYS: record, hits. ARGV: bytes, ttl in ms (0: none).
const PUT_RECORD: &str = r"
local prev = redis.call('GET', KEYS[1])
if tonumber(ARGV[2]) > 0 then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
else
  redis.call('SET', KEYS[1], ARGV[1])
end
redis.call('DEL', KEYS[2])
return prev
";

/// Removes a record and its hits; returns {record, hit count, last hit} or nil.
/// KEYS: record, hits.
const TAKE_RECORD: &str = r"
local d = redis.call('GET', KEYS[1])
if not d then return false end
local h = redis.call('HMGET', KEYS[2], 'n', 'l')
redis.call('DEL', KEYS[1], KEYS[2])
return {d, h[1], h[2]}
";

/// Deletes KEYS[1] only if it still holds ARGV[1] (an exact key that may have been
/// pointed at another entry since).
const DEL_IF_EQUAL: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
";

/// Adds hits to a record that still exists (a hit must not resurrect a removed entry).
/// KEYS: record, hits. ARGV: count, last hit ms.
const ADD_HITS: &str = r"
local ttl = redis.call('PTTL', KEYS[1])
if ttl == -2 then return 0 end
redis.call('HINCRBY', KEYS[2], 'n', ARGV[1])
local l = tonumber(redis.call('HGET', KEYS[2], 'l') or '0')
if tonumber(ARGV[2]) > l then redis.call('HSET', KEYS[2], 'l', ARGV[2]) end
if ttl > 0 then redis.call('PEXPIRE', KEYS[2], ttl) end
return 1
";

/// How to reach Redis and how to lay keys out there.
#[derive(Debug, Clone)]
pub struct RedisStoreOptions {
    /// Prefix of every key, so several caches (or tests) can share one Redis.
    pub prefix: String,
    /// Redis expiry of every entry (its record, hits and exact key). `None`: entries stay
    /// until invalidated or evicted by deja. The engine's category TTLs still apply; this
    /// is what keeps abandoned entries from staying in Redis forever.
    pub entry_ttl_secs: Option<u64>,
    /// How long one command may take before it fails (and the request bypasses the
    /// cache). The `redis` crate's own default (none for connection managers, 500 ms
    /// elsewhere) is too short for a bulk scan and too long to hang a request on.
    pub response_timeout: Duration,
    /// How long connecting may take.
    pub connection_timeout: Duration,
    /// Entries kept in the in-process L1 in front of Redis for exact lookups (0: none).
    /// An L1 hit costs no round trip; entries removed or replaced by any replica leave
    /// it through the events stream (when followed) within milliseconds.
    pub l1_max_entries: u64,
    /// How long an entry stays in the L1: the bound on serving an entry removed by another
    /// replica whose removal event was missed (Redis unreachable at that moment).
    pub l1_ttl: Duration,
}

impl Default for RedisStoreOptions {
    fn default() -> Self {
        RedisStoreOptions {
            prefix: "deja".into(),
            entry_ttl_secs: None,
            response_timeout: Duration::from_secs(5),
            connection_timeout: Duration::from_secs(2),
            l1_max_entries: 0,
            l1_ttl: Duration::from_secs(10),
        }
    }
}

/// Hits noted since the last flush, per entry.
#[derive(Debug, Clone, Copy, Default)]
struct PendingHit {
    count: u64,
    last_ms: u64,
}

/// The shared entry store on Redis (see the module docs for the key layout).
pub struct RedisStore {
    conn: Conn,
    /// The URL as given, to open the follower's own connection.
    url: String,
    /// The URL without credentials, for messages.
    display_url: String,
    opts: RedisStoreOptions,
    /// Identifies this handle's events in `P:events`, so its own follower skips them (its
    /// engine has already updated its index).
    origin: String,
    pending: Mutex<HashMap<u64, PendingHit>>,
    /// Exact key → entry, for exact lookups without a round trip (see
    /// [`RedisStoreOptions::l1_max_entries`]).
    l1: Option<L1>,
}

/// The in-process L1: entries as read from Redis, plus the hits this process recorded
/// on them since, so an L1 hit reports the same hit counts a Redis read would (other
/// replicas' hits since it was cached excepted).
struct L1 {
    entries: moka::sync::Cache<[u8; 16], Arc<Entry>>,
    since: Arc<Mutex<HashMap<u64, PendingHit>>>,
}

impl L1 {
    fn new(max_entries: u64, ttl: Duration) -> L1 {
        let since: Arc<Mutex<HashMap<u64, PendingHit>>> = Arc::default();
        let on_evict = since.clone();
        let entries = moka::sync::Cache::builder()
            .max_capacity(max_entries)
            .time_to_live(ttl)
            .eviction_listener(move |_key, e: Arc<Entry>, _cause| {
                on_evict.lock().remove(&e.id.0);
            })
            .build();
        L1 { entries, since }
    }

    fn get(&self, key: &ExactKey) -> Option<Entry> {
        let cached = self.entries.get(&key.0)?;
        let mut e = Entry::clone(&cached);
        if let Some(h) = self.since.lock().get(&e.id.0) {
            e.hit_count += h.count;
            e.last_hit_ms = e.last_hit_ms.max(h.last_ms);
        }
        Some(e)
    }

    fn insert(&self, e: &Entry) {
        self.since.lock().insert(e.id.0, PendingHit::default());
        self.entries.insert(e.exact_key.0, Arc::new(e.clone()));
    }

    fn record_hit(&self, id: EntryId, at_ms: u64) {
        if let Some(h) = self.since.lock().get_mut(&id.0) {
            h.count += 1;
            h.last_ms = h.last_ms.max(at_ms);
        }
    }
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("url", &self.display_url)
            .field("prefix", &self.opts.prefix)
            .finish_non_exhaustive()
    }
}

fn backend(e: redis::RedisError) -> StoreError {
    StoreError::Backend {
        backend: BACKEND,
        source: Box::new(e),
    }
}

fn corrupt(what: &str, reason: impl Into<String>) -> StoreError {
    StoreError::Corrupt {
        id: what.to_string(),
        reason: reason.into(),
    }
}

/// A random 64-bit value (the origin of a handle's events), from the standard library's
/// randomly seeded hasher, so no RNG crate is needed for one number.
fn rand_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    h.finish()
}

fn id_hex(id: EntryId) -> String {
    format!("{:016x}", id.0)
}

fn parse_id(bytes: &[u8]) -> Option<EntryId> {
    std::str::from_utf8(bytes).ok().and_then(EntryId::parse_hex)
}

fn hex16(bytes: &[u8; 16]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A Redis reply as bytes, if it is a string.
fn bulk(v: &Value) -> Option<&[u8]> {
    match v {
        Value::BulkString(b) => Some(b),
        Value::SimpleString(s) => Some(s.as_bytes()),
        _ => None,
    }
}

fn int_of(v: &Value) -> u64 {
    match v {
        Value::Int(n) => u64::try_from(*n).unwrap_or(0),
        other => bulk(other)
            .and_then(|b| std::str::from_utf8(b).ok())
            .and_then(|s| s.parse().ok())
            .unwrap_or(0),
    }
}

/// Applies the hits stored beside a record (`n`, `l`) to the values inside it.
fn with_hits(rec: (u64, u64), n: &Value, l: &Value) -> (u64, u64) {
    let (last, count) = rec;
    (last.max(int_of(l)), count + int_of(n))
}

fn script(src: &str, keys: &[&str], args: &[&[u8]]) -> Cmd {
    let mut c = redis::cmd("EVAL");
    c.arg(src).arg(keys.len());
    for k in keys {
        c.arg(*k);
    }
    for a in args {
        c.arg(*a);
    }
    c
}

fn one(cmd: Cmd) -> Pipeline {
    let mut p = Pipeline::with_capacity(1);
    p.add_command(cmd);
    p
}

impl RedisStore {
    /// Connects to `redis://HOST:PORT[/DB]` (or `rediss://`), or to a cluster through any
    /// of its nodes: `redis+cluster://HOST:PORT,HOST:PORT`.
    pub async fn connect(url: &str, opts: RedisStoreOptions) -> Result<RedisStore, StoreError> {
        let conn = open_conn(url, opts.connection_timeout, opts.response_timeout).await?;
        let l1 = (opts.l1_max_entries > 0).then(|| L1::new(opts.l1_max_entries, opts.l1_ttl));
        Ok(RedisStore {
            l1,
            conn,
            url: url.to_string(),
            display_url: redact(url),
            opts,
            origin: format!("{:016x}", rand_u64()),
            pending: Mutex::new(HashMap::new()),
        })
    }

    /// A second connection to the same Redis, for commands that block (`XREAD BLOCK`)
    /// and must not hold up the requests multiplexed on the main one.
    pub(crate) async fn open_another(&self) -> Result<Conn, StoreError> {
        let mut opts = self.opts.clone();
        // A blocking read waits up to its own timeout; the response may take that long.
        opts.response_timeout = opts.response_timeout.max(Duration::from_secs(5));
        open_conn(&self.url, opts.connection_timeout, opts.response_timeout).await
    }

    /// Drops an exact key from the L1 (after a removal or replacement, here or elsewhere).
    pub(crate) fn forget_exact(&self, key: &ExactKey) {
        if let Some(l1) = &self.l1 {
            l1.entries.invalidate(&key.0);
        }
    }

    pub(crate) fn origin(&self) -> &str {
        &self.origin
    }

    pub(crate) fn events_key(&self) -> String {
        format!("{}:events", self.opts.prefix)
    }

    /// The record of `id`, if stored (for the follower).
    pub(crate) async fn get_record(&self, id: EntryId) -> Result<Option<Vec<u8>>, StoreError> {
        let v = self
            .query(redis::cmd("GET").arg(self.record_key(id)).clone())
            .await?;
        Ok(bulk(&v).map(<[u8]>::to_vec))
    }

    /// The id of the newest event (`0-0` if none): a replica that loads its index after
    /// reading this follows the events from here, so nothing written during the load is
    /// missed (events replayed twice are harmless: inserts replace, removals of absent
    /// ids are no-ops).
    pub async fn events_tail(&self) -> Result<String, StoreError> {
        let v = self
            .query(
                redis::cmd("XREVRANGE")
                    .arg(self.events_key())
                    .arg("+")
                    .arg("-")
                    .arg("COUNT")
                    .arg(1)
                    .clone(),
            )
            .await?;
        let reply: redis::streams::StreamRangeReply =
            redis::from_redis_value(&v).map_err(backend)?;
        Ok(reply
            .ids
            .first()
            .map_or_else(|| "0-0".to_string(), |e| e.id.clone()))
    }

    /// The id of the oldest event still in the stream (`None`: no stream). Events older
    /// than it were trimmed (the stream keeps about [`EVENTS_MAXLEN`]) or never existed,
    /// so a replica whose index is current as of event `P` can catch up from the stream
    /// only if this is at or before `P`.
    pub async fn events_head(&self) -> Result<Option<String>, StoreError> {
        let v = self
            .query(
                redis::cmd("XRANGE")
                    .arg(self.events_key())
                    .arg("-")
                    .arg("+")
                    .arg("COUNT")
                    .arg(1)
                    .clone(),
            )
            .await?;
        let reply: redis::streams::StreamRangeReply =
            redis::from_redis_value(&v).map_err(backend)?;
        Ok(reply.ids.first().map(|e| e.id.clone()))
    }

    /// `XADD P:events` of one event.
    fn event(
        &self,
        op: &str,
        id: EntryId,
        partition: Option<&PartitionKey>,
        exact: Option<&ExactKey>,
    ) -> Pipeline {
        let mut c = redis::cmd("XADD");
        c.arg(self.events_key())
            .arg("MAXLEN")
            .arg("~")
            .arg(EVENTS_MAXLEN)
            .arg("*")
            .arg("o")
            .arg(&self.origin)
            .arg("op")
            .arg(op)
            .arg("id")
            .arg(id_hex(id));
        if let Some(p) = partition {
            c.arg("p").arg(hex16(&p.0));
        }
        if let Some(x) = exact {
            c.arg("x").arg(hex16(&x.0));
        }
        one(c)
    }

    /// The URL this store talks to, without credentials.
    pub fn display_url(&self) -> &str {
        &self.display_url
    }

    fn record_key(&self, id: EntryId) -> String {
        format!("{}:e:{{{}}}", self.opts.prefix, id_hex(id))
    }
    fn hits_key(&self, id: EntryId) -> String {
        format!("{}:h:{{{}}}", self.opts.prefix, id_hex(id))
    }
    fn exact_key(&self, key: &ExactKey) -> String {
        format!("{}:x:{{{}}}", self.opts.prefix, hex16(&key.0))
    }
    fn tag_key(&self, tag: &str) -> String {
        format!("{}:t:{{{tag}}}", self.opts.prefix)
    }
    fn shard_key(&self, shard: u64) -> String {
        let p = &self.opts.prefix;
        format!("{p}:ids:{{{p}/{shard}}}")
    }
    fn id_shard_key(&self, id: EntryId) -> String {
        self.shard_key(id.0 % ID_SHARDS)
    }
    fn counters_key(&self) -> String {
        format!("{}:counters", self.opts.prefix)
    }
    fn state_key(&self, name: &str) -> String {
        format!("{}:state:{name}", self.opts.prefix)
    }

    fn ttl_ms(&self) -> u64 {
        self.opts
            .entry_ttl_secs
            .map_or(0, |s| s.saturating_mul(1000))
    }

    /// Runs single-slot pipelines and returns each one's replies, in order.
    async fn exec(&self, groups: Vec<Pipeline>) -> Result<Vec<Vec<Value>>, StoreError> {
        if groups.iter().all(|g| g.is_empty()) {
            return Ok(groups.iter().map(|_| Vec::new()).collect());
        }
        match &self.conn {
            Conn::Single(c) => {
                let total = groups.iter().map(Pipeline::len).sum();
                let mut all = Pipeline::with_capacity(total);
                for g in &groups {
                    for cmd in g.cmd_iter() {
                        all.add_command(cmd.clone());
                    }
                }
                let replies: Vec<Value> = all.query_async(&mut c.clone()).await.map_err(backend)?;
                if replies.len() != total {
                    return Err(corrupt(
                        "pipeline",
                        format!("{} replies to {total} commands", replies.len()),
                    ));
                }
                let mut out = Vec::with_capacity(groups.len());
                let mut rest = replies.into_iter();
                for g in &groups {
                    out.push(rest.by_ref().take(g.len()).collect());
                }
                Ok(out)
            }
            Conn::Cluster(c) => futures::stream::iter(groups)
                .map(|g| {
                    let mut c = c.clone();
                    async move {
                        if g.is_empty() {
                            return Ok(Vec::new());
                        }
                        g.query_async::<Vec<Value>>(&mut c).await
                    }
                })
                .buffered(CLUSTER_CONCURRENCY)
                .try_collect()
                .await
                .map_err(backend),
        }
    }

    async fn query(&self, cmd: Cmd) -> Result<Value, StoreError> {
        cmd.query_async(&mut self.conn.clone())
            .await
            .map_err(backend)
    }

    /// [`EntryStore::get_exact`] from Redis, bypassing the L1.
    async fn get_exact_remote(&self, key: &ExactKey) -> Result<Option<Entry>, StoreError> {
        let v = self
            .query(redis::cmd("GET").arg(self.exact_key(key)).clone())
            .await?;
        let Some(id) = bulk(&v).and_then(parse_id) else {
            return Ok(None);
        };
        // The exact key may lag behind a concurrent replacement or removal: only a record
        // that carries this key answers for it.
        Ok(self.get(id).await?.filter(|e| e.exact_key == *key))
    }

    /// The pending (unflushed) hits of this process for `id`.
    fn pending_of(&self, id: EntryId) -> Option<PendingHit> {
        self.pending.lock().get(&id.0).copied()
    }

    /// Decodes a record read with its hits (`GET`, `HMGET n l` replies).
    fn decode(&self, id: EntryId, rec: &[u8], n: &Value, l: &Value) -> Result<Entry, StoreError> {
        let mut e = codec::decode_entry(id, rec)?;
        (e.last_hit_ms, e.hit_count) = with_hits((e.last_hit_ms, e.hit_count), n, l);
        if let Some(p) = self.pending_of(id) {
            e.hit_count += p.count;
            e.last_hit_ms = e.last_hit_ms.max(p.last_ms);
        }
        Ok(e)
    }

    fn read_group(&self, id: EntryId) -> Pipeline {
        let mut p = Pipeline::with_capacity(2);
        p.add_command(redis::cmd("GET").arg(self.record_key(id)).clone());
        p.add_command(
            redis::cmd("HMGET")
                .arg(self.hits_key(id))
                .arg("n")
                .arg("l")
                .clone(),
        );
        p
    }

    /// Splits the replies of [`RedisStore::read_group`]: the record, if present, and its
    /// hit fields.
    fn split_read(replies: &[Value]) -> Option<(&[u8], &Value, &Value)> {
        let rec = bulk(replies.first()?)?;
        match replies.get(1) {
            Some(Value::Array(h)) if h.len() == 2 => Some((rec, &h[0], &h[1])),
            _ => Some((rec, &Value::Nil, &Value::Nil)),
        }
    }

    /// Cleans up after records removed from their slot: exact keys that still point at
    /// them, their tags and their id shard.
    async fn unlink(&self, removed: &[Unlink]) -> Result<(), StoreError> {
        let mut groups = Vec::with_capacity(removed.len() * 4);
        for Unlink {
            id,
            partition,
            exact,
            tags,
        } in removed
        {
            let hex = id_hex(*id);
            if let Some(exact) = exact {
                self.forget_exact(exact);
            }
            if partition.is_some() || exact.is_some() {
                groups.push(self.event("del", *id, partition.as_ref(), exact.as_ref()));
            }
            if let Some(exact) = exact {
                groups.push(one(script(
                    DEL_IF_EQUAL,
                    &[&self.exact_key(exact)],
                    &[hex.as_bytes()],
                )));
            }
            for t in tags {
                groups.push(one(redis::cmd("SREM")
                    .arg(self.tag_key(t))
                    .arg(&hex)
                    .clone()));
            }
            groups.push(one(redis::cmd("SREM")
                .arg(self.id_shard_key(*id))
                .arg(&hex)
                .clone()));
        }
        let mut groups = groups.into_iter();
        loop {
            let batch: Vec<Pipeline> = groups.by_ref().take(4 * SCAN_CHUNK).collect();
            if batch.is_empty() {
                return Ok(());
            }
            self.exec(batch).await?;
        }
    }

    /// The ids of one registry shard.
    async fn shard_ids(&self, shard: u64) -> Result<Vec<EntryId>, StoreError> {
        let v = self
            .query(redis::cmd("SMEMBERS").arg(self.shard_key(shard)).clone())
            .await?;
        Ok(members(&v))
    }

    /// Reads `ids`' records with their hits; absent records are dropped from the registry.
    async fn read_records(
        &self,
        ids: &[EntryId],
    ) -> Result<Vec<(EntryId, Vec<Value>)>, StoreError> {
        let replies = self
            .exec(ids.iter().map(|&id| self.read_group(id)).collect())
            .await?;
        let mut found = Vec::with_capacity(ids.len());
        let mut stale = Vec::new();
        for (&id, r) in ids.iter().zip(replies) {
            if matches!(r.first(), Some(Value::BulkString(_))) {
                found.push((id, r));
            } else {
                stale.push(id);
            }
        }
        if !stale.is_empty() {
            // Expired by Redis (or removed by a crashed writer): forget them.
            let groups = stale
                .iter()
                .map(|&id| {
                    one(redis::cmd("SREM")
                        .arg(self.id_shard_key(id))
                        .arg(id_hex(id))
                        .clone())
                })
                .collect();
            self.exec(groups).await?;
        }
        Ok(found)
    }

    /// Visits every stored record (with its hit fields), shard by shard, in chunks.
    async fn scan_records(
        &self,
        mut visit: impl FnMut(EntryId, &[u8], &Value, &Value),
    ) -> Result<(), StoreError> {
        for shard in 0..ID_SHARDS {
            let ids = self.shard_ids(shard).await?;
            for chunk in ids.chunks(SCAN_CHUNK) {
                for (id, r) in self.read_records(chunk).await? {
                    if let Some((rec, n, l)) = Self::split_read(&r) {
                        visit(id, rec, n, l);
                    }
                }
            }
        }
        Ok(())
    }

    async fn take_records(
        &self,
        ids: &[EntryId],
    ) -> Result<Vec<(EntryId, Vec<Value>)>, StoreError> {
        let groups = ids
            .iter()
            .map(|&id| {
                one(script(
                    TAKE_RECORD,
                    &[&self.record_key(id), &self.hits_key(id)],
                    &[],
                ))
            })
            .collect();
        let replies = self.exec(groups).await?;
        Ok(ids
            .iter()
            .zip(replies)
            .filter_map(|(&id, mut r)| match r.pop() {
                Some(Value::Array(parts)) => Some((id, parts)),
                _ => None,
            })
            .collect())
    }
}

/// What removing one record leaves to clean up in other slots.
struct Unlink {
    id: EntryId,
    /// Announced in the events stream so replicas drop the vector; `None` when unknown.
    partition: Option<PartitionKey>,
    /// Deleted if it still points at `id`.
    exact: Option<ExactKey>,
    tags: Vec<String>,
}

/// The ids in a set reply.
fn members(v: &Value) -> Vec<EntryId> {
    match v {
        Value::Array(items) | Value::Set(items) => items
            .iter()
            .filter_map(|m| bulk(m).and_then(parse_id))
            .collect(),
        _ => Vec::new(),
    }
}

/// Every counter with its name, through `Counters`' serde field names, so a counter added
/// to the engine is stored here without a change.
fn counter_fields(c: &Counters) -> Result<Vec<(String, u64)>, StoreError> {
    let value = serde_json::to_value(c).map_err(|e| StoreError::Backend {
        backend: BACKEND,
        source: Box::new(e),
    })?;
    let serde_json::Value::Object(map) = value else {
        return Err(corrupt("counters", "counters do not serialise as a map"));
    };
    Ok(map
        .into_iter()
        .filter_map(|(k, v)| v.as_u64().map(|v| (k, v)))
        .collect())
}

/// Counters from their stored fields; absent fields are zero, unknown ones ignored.
fn counters_from(stored: &HashMap<String, u64>) -> Result<Counters, StoreError> {
    let mut map = serde_json::Map::new();
    for (name, _) in counter_fields(&Counters::default())? {
        let v = stored.get(&name).copied().unwrap_or(0);
        map.insert(name, v.into());
    }
    serde_json::from_value(serde_json::Value::Object(map)).map_err(|e| StoreError::Backend {
        backend: BACKEND,
        source: Box::new(e),
    })
}

#[async_trait]
impl EntryStore for RedisStore {
    async fn get_exact(&self, key: &ExactKey) -> Result<Option<Entry>, StoreError> {
        if let Some(e) = self.l1.as_ref().and_then(|l1| l1.get(key)) {
            return Ok(Some(e));
        }
        let found = self.get_exact_remote(key).await?;
        if let (Some(l1), Some(e)) = (&self.l1, &found) {
            l1.insert(e);
        }
        Ok(found)
    }

    async fn get(&self, id: EntryId) -> Result<Option<Entry>, StoreError> {
        let mut replies = self.exec(vec![self.read_group(id)]).await?;
        let r = replies.pop().unwrap_or_default();
        match Self::split_read(&r) {
            Some((rec, n, l)) => self.decode(id, rec, n, l).map(Some),
            None => Ok(None),
        }
    }

    async fn put(&self, entry: &Entry) -> Result<Option<EntryId>, StoreError> {
        let id = entry.id;
        let hex = id_hex(id);
        let bytes = codec::encode_entry(entry);
        let ttl_ms = self.ttl_ms().to_string();
        // 1. The record (and the hits of an earlier record under this id, now stale).
        let prev = self
            .query(script(
                PUT_RECORD,
                &[&self.record_key(id), &self.hits_key(id)],
                &[&bytes, ttl_ms.as_bytes()],
            ))
            .await?;
        // 2. The exact key points here now; whatever it pointed at is replaced.
        let mut set = redis::cmd("SET");
        set.arg(self.exact_key(&entry.exact_key)).arg(&hex);
        if self.ttl_ms() > 0 {
            set.arg("PX").arg(self.ttl_ms());
        }
        set.arg("GET");
        let old = self.query(set).await?;
        let replaced = bulk(&old).and_then(parse_id).filter(|&o| o != id);
        // 3. Links: the id shard and the tags; and what the earlier record under this id
        // linked that the new one does not.
        let mut groups = vec![one(redis::cmd("SADD")
            .arg(self.id_shard_key(id))
            .arg(&hex)
            .clone())];
        for t in &entry.tags {
            groups.push(one(redis::cmd("SADD")
                .arg(self.tag_key(t))
                .arg(&hex)
                .clone()));
        }
        if let Some(prev) = bulk(&prev) {
            match codec::decode_meta(id, prev) {
                Ok(m) => {
                    for t in m
                        .tags
                        .iter()
                        .filter(|t| !entry.tags.iter().any(|n| n == *t))
                    {
                        groups.push(one(redis::cmd("SREM")
                            .arg(self.tag_key(t))
                            .arg(&hex)
                            .clone()));
                    }
                    if m.exact_key != entry.exact_key {
                        groups.push(one(script(
                            DEL_IF_EQUAL,
                            &[&self.exact_key(&m.exact_key)],
                            &[hex.as_bytes()],
                        )));
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %deja_core::ErrorChain(&e), "replacing a corrupt record; its links cannot be removed")
                }
            }
        }
        // Replicas add the vector once the record and its exact key are in place.
        groups.push(self.event("put", id, None, Some(&entry.exact_key)));
        self.forget_exact(&entry.exact_key);
        self.exec(groups).await?;
        // 4. The replaced entry goes, with its links (its exact key already points here).
        if let Some(old_id) = replaced {
            for (old_id, parts) in self.take_records(&[old_id]).await? {
                let rec = parts.first().and_then(bulk).unwrap_or_default();
                let tags = codec::decode_meta(old_id, rec)
                    .map(|m| m.tags.iter().map(|t| t.to_string()).collect())
                    .unwrap_or_default();
                let keys = codec::read_keys(old_id, rec).ok();
                // The exact key now points at the new entry; deleting it only if it
                // still names the old one leaves it alone.
                self.unlink(&[Unlink {
                    id: old_id,
                    partition: keys.map(|(p, _)| p),
                    exact: keys.map(|(_, k)| k),
                    tags,
                }])
                .await?;
            }
        }
        let mut pending = self.pending.lock();
        pending.remove(&id.0);
        if let Some(old_id) = replaced {
            pending.remove(&old_id.0);
        }
        Ok(replaced)
    }

    async fn remove(&self, id: EntryId) -> Result<Option<Entry>, StoreError> {
        let Some((_, parts)) = self.take_records(&[id]).await?.pop() else {
            self.pending.lock().remove(&id.0);
            return Ok(None);
        };
        let rec = parts.first().and_then(bulk).unwrap_or_default();
        let nil = Value::Nil;
        let decoded = self.decode(
            id,
            rec,
            parts.get(1).unwrap_or(&nil),
            parts.get(2).unwrap_or(&nil),
        );
        self.pending.lock().remove(&id.0);
        match decoded {
            Ok(e) => {
                self.unlink(&[Unlink {
                    id,
                    partition: Some(e.partition),
                    exact: Some(e.exact_key),
                    tags: e.tags.clone(),
                }])
                .await?;
                Ok(Some(e))
            }
            Err(err) => {
                let keys = codec::read_keys(id, rec).ok();
                self.unlink(&[Unlink {
                    id,
                    partition: keys.map(|(p, _)| p),
                    exact: keys.map(|(_, k)| k),
                    tags: Vec::new(),
                }])
                .await?;
                Err(err)
            }
        }
    }

    async fn record_hit(&self, id: EntryId, at_ms: u64) -> Result<(), StoreError> {
        if let Some(l1) = &self.l1 {
            l1.record_hit(id, at_ms);
        }
        let mut pending = self.pending.lock();
        let p = pending.entry(id.0).or_default();
        p.count += 1;
        p.last_ms = p.last_ms.max(at_ms);
        Ok(())
    }

    async fn scan_vectors(
        &self,
        visit: &mut (dyn for<'a> FnMut(EntryId, PartitionKey, &'a str, &'a [f32]) + Send),
    ) -> Result<(), StoreError> {
        self.scan_records(|id, rec, _, _| match codec::decode_vector_parts(id, rec) {
            Ok(p) => visit(id, p.partition, p.embedder_id, &p.vector),
            Err(e) => {
                tracing::warn!(error = %deja_core::ErrorChain(&e), "skipping corrupt entry in vector scan")
            }
        })
        .await
    }

    async fn len(&self) -> Result<u64, StoreError> {
        let groups = (0..ID_SHARDS)
            .map(|s| one(redis::cmd("SCARD").arg(self.shard_key(s)).clone()))
            .collect();
        Ok(self.exec(groups).await?.iter().flatten().map(int_of).sum())
    }

    async fn ids_with_tag(&self, tag: &str) -> Result<Vec<EntryId>, StoreError> {
        let v = self
            .query(redis::cmd("SMEMBERS").arg(self.tag_key(tag)).clone())
            .await?;
        Ok(members(&v))
    }

    async fn scan_meta(
        &self,
        visit: &mut (dyn for<'a> FnMut(&'a EntryMeta<'a>) + Send),
    ) -> Result<(), StoreError> {
        let pending = self.pending.lock().clone();
        self.scan_records(|id, rec, n, l| {
            let m = match codec::decode_meta(id, rec) {
                Ok(m) => m,
                Err(e) => {
                    tracing::warn!(error = %deja_core::ErrorChain(&e), "skipping corrupt entry in metadata scan");
                    return;
                }
            };
            let (mut last_hit_ms, mut hit_count) = with_hits((m.last_hit_ms, m.hit_count), n, l);
            if let Some(p) = pending.get(&id.0) {
                hit_count += p.count;
                last_hit_ms = last_hit_ms.max(p.last_ms);
            }
            visit(&EntryMeta {
                id,
                partition: m.partition,
                model: m.model,
                namespace: m.namespace,
                category: m.category,
                created_at_ms: m.created_at_ms,
                last_hit_ms,
                hit_count,
                has_vector: m.has_vector,
                tags: m.tags,
                size_bytes: m.size_bytes,
            });
        })
        .await
    }

    async fn remove_many(
        &self,
        ids: &[EntryId],
    ) -> Result<Vec<(EntryId, PartitionKey, bool)>, StoreError> {
        let mut removed = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(SCAN_CHUNK) {
            let taken = self.take_records(chunk).await?;
            let mut links = Vec::with_capacity(taken.len());
            for (id, parts) in &taken {
                let Some(rec) = parts.first().and_then(bulk) else {
                    continue;
                };
                match codec::decode_meta(*id, rec) {
                    Ok(m) => {
                        removed.push((*id, m.partition, m.has_vector));
                        links.push(Unlink {
                            id: *id,
                            partition: Some(m.partition),
                            exact: Some(m.exact_key),
                            tags: m.tags.iter().map(|t| t.to_string()).collect(),
                        });
                    }
                    // A damaged record is removed all the same; its keys sit at fixed
                    // offsets, and "has a vector" is assumed so the index drops it.
                    Err(e) => {
                        tracing::warn!(error = %deja_core::ErrorChain(&e), "removing a corrupt entry");
                        if let Ok((p, k)) = codec::read_keys(*id, rec) {
                            removed.push((*id, p, true));
                            links.push(Unlink {
                                id: *id,
                                partition: Some(p),
                                exact: Some(k),
                                tags: Vec::new(),
                            });
                        }
                    }
                }
            }
            self.unlink(&links).await?;
        }
        let mut pending = self.pending.lock();
        for id in ids {
            pending.remove(&id.0);
        }
        Ok(removed)
    }

    async fn add_counters(&self, delta: &Counters) -> Result<(), StoreError> {
        let key = self.counters_key();
        let mut p = Pipeline::new();
        for (name, add) in counter_fields(delta)? {
            if add > 0 {
                p.add_command(redis::cmd("HINCRBY").arg(&key).arg(name).arg(add).clone());
            }
        }
        self.exec(vec![p]).await.map(|_| ())
    }

    async fn load_state(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let v = self
            .query(redis::cmd("GET").arg(self.state_key(name)).clone())
            .await?;
        redis::from_redis_value(&v).map_err(backend)
    }

    async fn save_state(&self, name: &str, bytes: &[u8]) -> Result<(), StoreError> {
        self.query(
            redis::cmd("SET")
                .arg(self.state_key(name))
                .arg(bytes)
                .clone(),
        )
        .await
        .map(|_| ())
    }

    async fn add_state_counts(
        &self,
        name: &str,
        delta: &[(String, i64)],
    ) -> Result<Option<Vec<(String, i64)>>, StoreError> {
        // One hash per name: each addition is an HINCRBY (atomic, so replicas adding at
        // once lose nothing), and the read that follows sees them and everyone's before.
        let key = self.state_key(&format!("{name}:counts"));
        let mut p = Pipeline::new();
        for (counter, add) in delta.iter().filter(|(_, add)| *add != 0) {
            p.add_command(
                redis::cmd("HINCRBY")
                    .arg(&key)
                    .arg(counter)
                    .arg(*add)
                    .clone(),
            );
        }
        p.add_command(redis::cmd("HGETALL").arg(&key).clone());
        let mut replies = self.exec(vec![p]).await?;
        let all = replies
            .pop()
            .and_then(|mut g| g.pop())
            .ok_or_else(|| corrupt("HGETALL", "no reply"))?;
        let totals: Vec<(String, i64)> = redis::from_redis_value::<HashMap<String, i64>>(&all)
            .map_err(backend)?
            .into_iter()
            .collect();
        Ok(Some(totals))
    }

    async fn counters(&self) -> Result<Counters, StoreError> {
        let v = self
            .query(redis::cmd("HGETALL").arg(self.counters_key()).clone())
            .await?;
        let map: HashMap<String, u64> = redis::from_redis_value(&v).map_err(backend)?;
        counters_from(&map)
    }

    async fn flush(&self) -> Result<(), StoreError> {
        let pending = std::mem::take(&mut *self.pending.lock());
        if pending.is_empty() {
            return Ok(());
        }
        let groups = pending
            .iter()
            .map(|(&id, p)| {
                let id = EntryId(id);
                one(script(
                    ADD_HITS,
                    &[&self.record_key(id), &self.hits_key(id)],
                    &[
                        p.count.to_string().as_bytes(),
                        p.last_ms.to_string().as_bytes(),
                    ],
                ))
            })
            .collect();
        let result = self.exec(groups).await.map(|_| ());
        if result.is_err() {
            // Put the hits back so the next flush tries again.
            let mut now = self.pending.lock();
            for (id, p) in pending {
                let slot = now.entry(id).or_default();
                slot.count += p.count;
                slot.last_ms = slot.last_ms.max(p.last_ms);
            }
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_hits_add_to_the_record() {
        let cases = [
            ((10, 2), Value::Nil, Value::Nil, (10, 2)),
            (
                (10, 2),
                Value::BulkString(b"3".to_vec()),
                Value::BulkString(b"50".to_vec()),
                (50, 5),
            ),
            (
                (90, 0),
                Value::Int(1),
                Value::BulkString(b"50".to_vec()),
                (90, 1),
            ),
        ];
        for (rec, n, l, want) in cases {
            assert_eq!(with_hits(rec, &n, &l), want);
        }
    }
}
