//! [`RedbStore`]: the embedded, crash-safe [`EntryStore`] on one redb file.
//!
//! Tables (all names carry a version so a future layout can live beside this one):
//!
//! - `entries_v1`: entry id → encoded entry (see `codec.rs`);
//! - `exact_v1`: exact key → entry id (at most one entry per exact key);
//! - `hits_v1`: entry id → (last_hit_ms, hit_count), written only by [`EntryStore::flush`]
//!   so a hit never rewrites an entry with its (possibly large) answer; when present it
//!   overrides the hit fields inside the encoded entry;
//! - `tags_v1` (multimap): tag → ids of the entries carrying it, so invalidating a tag
//!   reads only its entries;
//! - `counters_v1`: counter name → value (one row per [`Counters`] field);
//! - `meta_v1`: `format_version` → 1; `write_seq` → how many write transactions have
//!   changed entries (see [`RedbStore::write_seq`]).
//!
//! `entries_v1` is the source of truth; `exact_v1`, `hits_v1` and `tags_v1` are changed in
//! the same write transaction as the entry they describe, so they never disagree with it
//! after a commit.
//!
//! Hits are buffered in memory and written in one transaction by `flush`; reads add the
//! buffered hits so `hit_count` is current. A crash loses at most the hits since the last
//! flush, never an entry (with [`StoreDurability::Strict`]).
//!
//! redb is synchronous; the async trait methods call it directly. Reads take a few
//! microseconds; a strict write waits for an fsync (milliseconds).
//!
//! After an I/O error (a full disk, say) the store re-opens the file by itself and reports
//! itself degraded until it writes again; see `recovery.rs`.
//!
//! The entries reads found most recently are kept decoded in memory (`hot.rs`), so a
//! repeated exact hit reads no table; every write forgets what it changed before it
//! returns.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU32};
use std::time::Instant;

use async_trait::async_trait;
use parking_lot::{Mutex, RwLock};
use redb::{
    Database, Durability, MultimapTableDefinition, ReadableTable, ReadableTableMetadata,
    TableDefinition,
};

use deja_core::{
    Counters, Entry, EntryId, EntryMeta, EntryStore, ExactKey, PartitionKey, StoreError,
    StoreHealth,
};

use crate::codec;

mod hot;
mod recovery;

use hot::HotEntries;
use recovery::{WriteHealth, WRITE_RETRY_MIN};

const ENTRIES: TableDefinition<u64, &[u8]> = TableDefinition::new("entries_v1");
const EXACT: TableDefinition<&[u8; 16], u64> = TableDefinition::new("exact_v1");
const HITS: TableDefinition<u64, (u64, u64)> = TableDefinition::new("hits_v1");
const TAGS: MultimapTableDefinition<&str, u64> = MultimapTableDefinition::new("tags_v1");
const COUNTERS: TableDefinition<&str, u64> = TableDefinition::new("counters_v1");
const META: TableDefinition<&str, u64> = TableDefinition::new("meta_v1");
/// The engine's own named state ([`EntryStore::save_state`]).
const STATE: TableDefinition<&str, &[u8]> = TableDefinition::new("state_v1");
/// The engine's named counters (`EntryStore::add_state_counts`): (name, counter) → value.
const STATE_COUNTS: TableDefinition<(&str, &str), i64> = TableDefinition::new("state_counts_v1");

/// Every counter kept under `name`, in counter order.
fn counts_in(
    table: &impl ReadableTable<(&'static str, &'static str), i64>,
    name: &str,
) -> Result<Vec<(String, i64)>, StoreError> {
    let mut totals = Vec::new();
    for row in table.range((name, "")..).map_err(backend)? {
        let (key, value) = row.map_err(backend)?;
        let (of, counter) = key.value();
        if of != name {
            break;
        }
        totals.push((counter.to_string(), value.value()));
    }
    Ok(totals)
}

const FORMAT_VERSION: u64 = 1;
const WRITE_SEQ: &str = "write_seq";
/// A `meta_v1` row only [`EntryStore::health`]'s write probe changes.
const PROBES: &str = "health_probes";
const BACKEND: &str = "redb";

/// When a write is durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StoreDurability {
    /// Each `put`, `remove` and `add_counters` is committed with an fsync before it returns.
    #[default]
    Strict,
    /// Writes are committed in memory (redb `Durability::None`: readers see them at once)
    /// and written to the file, with one fsync, at the next `flush` (the server flushes
    /// every second), strict commit, clean close, or every [`FAST_DURABLE_EVERY`]th write,
    /// whichever comes first. A crash of the process or the machine may lose the writes
    /// since then, never the file's integrity. (redb's `Durability::Eventual` was used
    /// before: on Linux it still calls `fdatasync` on every commit.)
    Fast,
}

/// With [`StoreDurability::Fast`], every this many writes one is committed durably. redb
/// frees the pages a transaction replaced only at a durable commit, so without one the file
/// grows by every write's copied pages (about 160 KB a stored entry at 100k entries: 13 GB
/// in a minute of inserts); it also bounds what a crash can lose to this many writes when
/// nothing flushes.
pub const FAST_DURABLE_EVERY: u32 = 128;

/// Hits noted since the last flush, per entry.
#[derive(Debug, Clone, Copy, Default)]
struct PendingHit {
    count: u64,
    last_ms: u64,
}

/// The embedded entry store: one redb file (the server uses `<data_dir>/deja.redb`).
pub struct RedbStore {
    /// `None` only while it is re-opened after an I/O error, or when that failed.
    /// Operations hold the read lock for their whole length, so re-opening (the write
    /// lock) waits until no transaction of the old database is left, which redb needs to
    /// release the file.
    db: RwLock<Option<Database>>,
    path: PathBuf,
    durability: StoreDurability,
    cache_bytes: usize,
    /// Buffered [`EntryStore::record_hit`] calls; drained by `flush`.
    pending: Mutex<HashMap<u64, PendingHit>>,
    /// Set by an I/O error: redb refuses everything until the file is opened again.
    poisoned: AtomicBool,
    /// Whether an operation is re-opening the file (the others do not wait for it).
    reopening: AtomicBool,
    health: Mutex<WriteHealth>,
    /// Entries read most recently, decoded (see `hot.rs`).
    hot: HotEntries,
    /// Write transactions begun with [`StoreDurability::Fast`] (see [`FAST_DURABLE_EVERY`]).
    fast_writes: AtomicU32,
}

impl std::fmt::Debug for RedbStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedbStore")
            .field("path", &self.path)
            .field("durability", &self.durability)
            .finish_non_exhaustive()
    }
}

/// Every redb error as a [`redb::Error`], so [`is_io_error`] can tell I/O errors by one
/// type.
fn backend<E: Into<redb::Error>>(e: E) -> StoreError {
    StoreError::Backend {
        backend: BACKEND,
        source: Box::new(e.into()),
    }
}

/// Opens (creating if absent) the redb file.
fn open_database(path: &Path, cache_bytes: usize) -> Result<Database, redb::DatabaseError> {
    redb::Builder::new()
        .set_cache_size(cache_bytes)
        .create(path)
}

/// Page cache redb keeps in memory by default. Entries are read with one small lookup, so a
/// modest cache serves hot entries while keeping memory per stored entry low (the OS page
/// cache holds the rest of the file).
pub const DEFAULT_CACHE_BYTES: usize = 64 * 1024 * 1024;

/// Memory for decoded hot entries by default (see [`RedbStore::with_hot_entries`]).
pub const DEFAULT_HOT_BYTES: usize = 16 * 1024 * 1024;

impl RedbStore {
    /// Opens (creating if absent, with its parent directory) the store at `path`, with the
    /// default page cache.
    pub fn open(path: &Path, durability: StoreDurability) -> Result<RedbStore, StoreError> {
        Self::open_with_cache(path, durability, DEFAULT_CACHE_BYTES)
    }

    /// Opens the store with a page cache of `cache_bytes`.
    pub fn open_with_cache(
        path: &Path,
        durability: StoreDurability,
        cache_bytes: usize,
    ) -> Result<RedbStore, StoreError> {
        let open_err = |source: Box<dyn std::error::Error + Send + Sync>| StoreError::Open {
            path: path.display().to_string(),
            source,
        };
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|e| open_err(Box::new(e)))?;
        }
        let db = open_database(path, cache_bytes).map_err(|e| open_err(Box::new(e)))?;
        init_tables(&db).map_err(|e| match e {
            StoreError::Backend { source, .. } => open_err(source),
            other => open_err(Box::new(other)),
        })?;
        let now = Instant::now();
        Ok(RedbStore {
            db: RwLock::new(Some(db)),
            path: path.to_path_buf(),
            durability,
            cache_bytes,
            pending: Mutex::new(HashMap::new()),
            poisoned: AtomicBool::new(false),
            reopening: AtomicBool::new(false),
            health: Mutex::new(WriteHealth {
                last_error: None,
                next_write: now,
                write_retry: WRITE_RETRY_MIN,
                next_reopen: now,
            }),
            hot: HotEntries::new(DEFAULT_HOT_BYTES),
            fast_writes: AtomicU32::new(0),
        })
    }

    /// Keeps at most `max_bytes` of decoded entries in memory for repeated reads (0: none;
    /// [`DEFAULT_HOT_BYTES`] unless set). A kept entry is a copy the store forgets whenever a
    /// write changes it, so reads answer exactly what they would from the file.
    pub fn with_hot_entries(mut self, max_bytes: usize) -> RedbStore {
        self.hot = HotEntries::new(max_bytes);
        self
    }

    /// A number that changes whenever entries change: it counts the committed write
    /// transactions that stored or removed entries (hits and counters do not count). A
    /// copy of the index taken when it had some value is current exactly while it still
    /// has that value.
    pub fn write_seq(&self) -> Result<u64, StoreError> {
        let db = self.db()?;
        let txn = db.begin_read().map_err(backend)?;
        let meta = txn.open_table(META).map_err(backend)?;
        let seq = meta
            .get(WRITE_SEQ)
            .map_err(backend)?
            .map_or(0, |g| g.value());
        Ok(seq)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn begin_write(&self, db: &Database) -> Result<redb::WriteTransaction, StoreError> {
        self.admit_write()?;
        let mut txn = db.begin_write().map_err(backend)?;
        txn.set_durability(match self.durability {
            StoreDurability::Strict => Durability::Immediate,
            StoreDurability::Fast => {
                let n = self
                    .fast_writes
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if n % FAST_DURABLE_EVERY == FAST_DURABLE_EVERY - 1 {
                    Durability::Immediate
                } else {
                    Durability::None
                }
            }
        });
        Ok(txn)
    }

    /// Adds hits recorded in memory but not yet flushed.
    fn apply_pending(&self, e: &mut Entry) {
        if let Some(p) = self.pending.lock().get(&e.id.0) {
            e.hit_count += p.count;
            e.last_hit_ms = e.last_hit_ms.max(p.last_ms);
        }
    }

    /// Reads one entry inside an open read transaction, with its flushed hits applied.
    fn read_entry(txn: &redb::ReadTransaction, id: EntryId) -> Result<Option<Entry>, StoreError> {
        let entries = txn.open_table(ENTRIES).map_err(backend)?;
        let Some(bytes) = entries.get(id.0).map_err(backend)? else {
            return Ok(None);
        };
        let mut e = codec::decode_entry(id, bytes.value())?;
        let hits = txn.open_table(HITS).map_err(backend)?;
        if let Some(h) = hits.get(id.0).map_err(backend)? {
            (e.last_hit_ms, e.hit_count) = h.value();
        }
        Ok(Some(e))
    }

    fn get_sync(&self, id: EntryId) -> Result<Option<Entry>, StoreError> {
        if let Some(mut e) = self.hot.get_id(id.0) {
            self.apply_pending(&mut e);
            return Ok(Some(e));
        }
        let ticket = self.hot.ticket();
        let db = self.db()?;
        let txn = db.begin_read().map_err(backend)?;
        let mut found = Self::read_entry(&txn, id)?;
        if let Some(e) = &mut found {
            self.hot.fill(ticket, e);
            self.apply_pending(e);
        }
        Ok(found)
    }

    fn get_exact_sync(&self, key: &ExactKey) -> Result<Option<Entry>, StoreError> {
        if let Some(mut e) = self.hot.get(key) {
            self.apply_pending(&mut e);
            return Ok(Some(e));
        }
        let ticket = self.hot.ticket();
        let db = self.db()?;
        let txn = db.begin_read().map_err(backend)?;
        let exact = txn.open_table(EXACT).map_err(backend)?;
        let Some(id) = exact.get(&key.0).map_err(backend)?.map(|g| g.value()) else {
            return Ok(None);
        };
        let mut found = Self::read_entry(&txn, EntryId(id))?;
        if let Some(e) = &mut found {
            self.hot.fill(ticket, e);
            self.apply_pending(e);
        }
        Ok(found)
    }

    fn put_sync(&self, entry: &Entry) -> Result<Option<EntryId>, StoreError> {
        self.put_many_sync(std::slice::from_ref(entry))
            .map(|replaced| replaced.into_iter().next().flatten())
    }

    /// Stores `entries` in one write transaction (one commit, one fsync in strict mode):
    /// the batch is stored whole or not at all. Later entries of the batch see earlier
    /// ones, so a repeated exact key replaces within the batch too.
    fn put_many_sync(&self, entries: &[Entry]) -> Result<Vec<Option<EntryId>>, StoreError> {
        let db = self.db()?;
        let txn = self.begin_write(&db)?;
        let replaced = {
            let mut t = WriteTables {
                entries: txn.open_table(ENTRIES).map_err(backend)?,
                exact: txn.open_table(EXACT).map_err(backend)?,
                hits: txn.open_table(HITS).map_err(backend)?,
                tags: txn.open_multimap_table(TAGS).map_err(backend)?,
            };
            entries
                .iter()
                .map(|e| put_in(&mut t, e))
                .collect::<Result<Vec<_>, _>>()?
        };
        bump_write_seq(&txn)?;
        txn.commit().map_err(backend)?;
        self.wrote();
        let keys: Vec<[u8; 16]> = entries.iter().map(|e| e.exact_key.0).collect();
        let ids: Vec<u64> = (entries.iter().map(|e| e.id.0))
            .chain(replaced.iter().flatten().map(|r| r.0))
            .collect();
        self.hot.forget(&keys, &ids);
        let mut pending = self.pending.lock();
        for (e, r) in entries.iter().zip(&replaced) {
            pending.remove(&e.id.0);
            if let Some(r) = r {
                pending.remove(&r.0);
            }
        }
        Ok(replaced)
    }

    fn remove_sync(&self, id: EntryId) -> Result<Option<Entry>, StoreError> {
        let db = self.db()?;
        let txn = self.begin_write(&db)?;
        let removed = {
            let mut entries = txn.open_table(ENTRIES).map_err(backend)?;
            let mut exact = txn.open_table(EXACT).map_err(backend)?;
            let mut hits = txn.open_table(HITS).map_err(backend)?;
            let mut tags = txn.open_multimap_table(TAGS).map_err(backend)?;
            let decoded = entries
                .remove(id.0)
                .map_err(backend)?
                .map(|bytes| codec::decode_entry(id, bytes.value()));
            match decoded {
                None => None,
                Some(decoded) => {
                    let flushed = hits.remove(id.0).map_err(backend)?.map(|g| g.value());
                    let mut e = decoded?;
                    if let Some((last, count)) = flushed {
                        (e.last_hit_ms, e.hit_count) = (last, count);
                    }
                    let points_here = exact
                        .get(&e.exact_key.0)
                        .map_err(backend)?
                        .map(|g| g.value());
                    if points_here == Some(id.0) {
                        exact.remove(&e.exact_key.0).map_err(backend)?;
                    }
                    unlink_tags(&mut tags, &e.tags, id.0)?;
                    Some(e)
                }
            }
        };
        if removed.is_none() {
            txn.abort().map_err(backend)?;
            return Ok(None);
        }
        bump_write_seq(&txn)?;
        txn.commit().map_err(backend)?;
        self.wrote();
        let keys: Vec<[u8; 16]> = removed.iter().map(|e| e.exact_key.0).collect();
        self.hot.forget(&keys, &[id.0]);
        let pending = self.pending.lock().remove(&id.0);
        Ok(removed.map(|mut e| {
            if let Some(p) = pending {
                e.hit_count += p.count;
                e.last_hit_ms = e.last_hit_ms.max(p.last_ms);
            }
            e
        }))
    }

    fn remove_many_sync(
        &self,
        ids: &[EntryId],
    ) -> Result<Vec<(EntryId, PartitionKey, bool)>, StoreError> {
        let db = self.db()?;
        let txn = self.begin_write(&db)?;
        let mut removed = Vec::with_capacity(ids.len());
        let mut removed_keys = Vec::with_capacity(ids.len());
        {
            let mut entries = txn.open_table(ENTRIES).map_err(backend)?;
            let mut exact = txn.open_table(EXACT).map_err(backend)?;
            let mut hits = txn.open_table(HITS).map_err(backend)?;
            let mut tags = txn.open_multimap_table(TAGS).map_err(backend)?;
            for &id in ids {
                let Some(bytes) = entries.remove(id.0).map_err(backend)? else {
                    continue;
                };
                let (partition, exact_key, has_vector, entry_tags) = match codec::decode_meta(
                    id,
                    bytes.value(),
                ) {
                    Ok(m) => (
                        m.partition,
                        m.exact_key,
                        m.has_vector,
                        m.tags.iter().map(|t| t.to_string()).collect(),
                    ),
                    // A damaged record is removed all the same; its keys sit at fixed
                    // offsets, and "has a vector" is assumed so the index drops it.
                    Err(e) => {
                        tracing::warn!(error = %deja_core::ErrorChain(&e), "removing a corrupt entry");
                        match codec::read_keys(id, bytes.value()) {
                            Ok((p, k)) => (p, k, true, Vec::new()),
                            Err(_) => continue,
                        }
                    }
                };
                drop(bytes);
                hits.remove(id.0).map_err(backend)?;
                let points_here = exact.get(&exact_key.0).map_err(backend)?.map(|g| g.value());
                if points_here == Some(id.0) {
                    exact.remove(&exact_key.0).map_err(backend)?;
                }
                unlink_tags(&mut tags, &entry_tags, id.0)?;
                removed_keys.push(exact_key.0);
                removed.push((id, partition, has_vector));
            }
        }
        if removed.is_empty() {
            txn.abort().map_err(backend)?;
            return Ok(removed);
        }
        bump_write_seq(&txn)?;
        txn.commit().map_err(backend)?;
        self.wrote();
        let removed_ids: Vec<u64> = removed.iter().map(|(id, ..)| id.0).collect();
        self.hot.forget(&removed_keys, &removed_ids);
        let mut pending = self.pending.lock();
        for (id, ..) in &removed {
            pending.remove(&id.0);
        }
        Ok(removed)
    }

    fn ids_with_tag_sync(&self, tag: &str) -> Result<Vec<EntryId>, StoreError> {
        let db = self.db()?;
        let txn = db.begin_read().map_err(backend)?;
        let tags = txn.open_multimap_table(TAGS).map_err(backend)?;
        let mut ids = Vec::new();
        for id in tags.get(tag).map_err(backend)? {
            ids.push(EntryId(id.map_err(backend)?.value()));
        }
        Ok(ids)
    }

    /// Visits every entry's metadata in id order, as [`EntryStore::scan_meta`] does, with
    /// hit counts current; corrupt entries are skipped with a warning.
    pub fn scan_meta_with(
        &self,
        mut visit: impl for<'a> FnMut(&'a EntryMeta<'a>),
    ) -> Result<(), StoreError> {
        let db = self.db()?;
        let txn = db.begin_read().map_err(backend)?;
        let entries = txn.open_table(ENTRIES).map_err(backend)?;
        let hits = txn.open_table(HITS).map_err(backend)?;
        // Both tables are ordered by id: walk them side by side instead of looking every
        // entry up in `hits_v1`.
        let mut hits_iter = hits.iter().map_err(backend)?;
        let mut next_hit = || -> Result<Option<HitRow>, StoreError> {
            Ok(hits_iter
                .next()
                .transpose()
                .map_err(backend)?
                .map(|(k, v)| (k.value(), v.value())))
        };
        let mut hit = next_hit()?;
        for item in entries.iter().map_err(backend)? {
            let (k, v) = item.map_err(backend)?;
            let id = k.value();
            while let Some((hit_id, _)) = hit {
                if hit_id >= id {
                    break;
                }
                hit = next_hit()?;
            }
            let m = match codec::decode_meta(EntryId(id), v.value()) {
                Ok(m) => m,
                Err(e) => {
                    tracing::warn!(error = %deja_core::ErrorChain(&e), "skipping corrupt entry in metadata scan");
                    continue;
                }
            };
            let (mut last_hit_ms, mut hit_count) = match hit {
                Some((hit_id, flushed)) if hit_id == id => flushed,
                _ => (m.last_hit_ms, m.hit_count),
            };
            if let Some(p) = self.pending.lock().get(&id) {
                hit_count += p.count;
                last_hit_ms = last_hit_ms.max(p.last_ms);
            }
            visit(&EntryMeta {
                id: EntryId(id),
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
        }
        Ok(())
    }

    fn flush_sync(&self) -> Result<(), StoreError> {
        let pending = std::mem::take(&mut *self.pending.lock());
        let result = self.write_hits(&pending);
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

    /// Writes buffered hits in one fsynced transaction (which also makes every earlier
    /// `Fast` commit durable).
    fn write_hits(&self, pending: &HashMap<u64, PendingHit>) -> Result<(), StoreError> {
        if pending.is_empty() && self.health.lock().last_error.is_some() {
            // Nothing to write, and an empty commit would only take the next write
            // attempt from a write that can tell whether the store writes again.
            return Ok(());
        }
        let db = self.db()?;
        self.admit_write()?;
        let mut txn = db.begin_write().map_err(backend)?;
        txn.set_durability(Durability::Immediate);
        {
            let entries = txn.open_table(ENTRIES).map_err(backend)?;
            let mut hits = txn.open_table(HITS).map_err(backend)?;
            for (&id, p) in pending {
                let flushed = hits.get(id).map_err(backend)?.map(|g| g.value());
                let base = match flushed {
                    Some(b) => b,
                    None => match entries.get(id).map_err(backend)? {
                        Some(bytes) => codec::read_hits(EntryId(id), bytes.value())?,
                        // Removed since the hit: nothing to count.
                        None => continue,
                    },
                };
                hits.insert(id, (base.0.max(p.last_ms), base.1 + p.count))
                    .map_err(backend)?;
            }
        }
        txn.commit().map_err(backend)?;
        // The hot copies of these entries hold the hit counts flushed before.
        let ids: Vec<u64> = pending.keys().copied().collect();
        self.hot.forget(&[], &ids);
        // An empty commit proves nothing: it can succeed on a full disk.
        if !pending.is_empty() {
            self.wrote();
        }
        Ok(())
    }

    /// Visits every entry's (id, partition, embedder id, vector) in id order, as
    /// [`EntryStore::scan_vectors`] does; corrupt entries are skipped with a warning.
    pub fn scan_vectors_with(
        &self,
        mut visit: impl for<'a> FnMut(EntryId, PartitionKey, &'a str, &'a [f32]),
    ) -> Result<(), StoreError> {
        let db = self.db()?;
        let txn = db.begin_read().map_err(backend)?;
        let entries = txn.open_table(ENTRIES).map_err(backend)?;
        for item in entries.iter().map_err(backend)? {
            let (k, v) = item.map_err(backend)?;
            let id = EntryId(k.value());
            match codec::decode_vector_parts(id, v.value()) {
                Ok(p) => visit(id, p.partition, p.embedder_id, &p.vector),
                // One damaged record must not stop the index from being rebuilt; reading
                // that entry still reports the corruption.
                Err(e) => {
                    tracing::warn!(error = %deja_core::ErrorChain(&e), "skipping corrupt entry in vector scan")
                }
            }
        }
        Ok(())
    }

    /// Visits every entry (hit counts current) in id order, e.g. for stats or export.
    /// Stops at the first corrupt entry.
    pub fn for_each_entry(&self, mut f: impl FnMut(&Entry)) -> Result<(), StoreError> {
        let db = self.db()?;
        let txn = db.begin_read().map_err(backend)?;
        let entries = txn.open_table(ENTRIES).map_err(backend)?;
        let hits = txn.open_table(HITS).map_err(backend)?;
        for item in entries.iter().map_err(backend)? {
            let (k, v) = item.map_err(backend)?;
            let id = EntryId(k.value());
            let mut e = codec::decode_entry(id, v.value())?;
            if let Some(h) = hits.get(id.0).map_err(backend)? {
                (e.last_hit_ms, e.hit_count) = h.value();
            }
            self.apply_pending(&mut e);
            f(&e);
        }
        Ok(())
    }

    /// Size of the store file in bytes (0 if it cannot be read). Includes free pages redb
    /// keeps for reuse, so it is an upper bound of what entries take.
    pub fn approx_bytes(&self) -> u64 {
        std::fs::metadata(&self.path).map_or(0, |m| m.len())
    }

    fn len_sync(&self) -> Result<u64, StoreError> {
        let db = self.db()?;
        let txn = db.begin_read().map_err(backend)?;
        let entries = txn.open_table(ENTRIES).map_err(backend)?;
        entries.len().map_err(backend)
    }

    fn add_counters_sync(&self, delta: &Counters) -> Result<(), StoreError> {
        let db = self.db()?;
        let txn = self.begin_write(&db)?;
        {
            let mut table = txn.open_table(COUNTERS).map_err(backend)?;
            for (name, add) in counter_fields(delta) {
                if add == 0 {
                    continue;
                }
                let cur = table.get(name).map_err(backend)?.map_or(0, |g| g.value());
                table
                    .insert(name, cur.saturating_add(add))
                    .map_err(backend)?;
            }
        }
        txn.commit().map_err(backend)?;
        if !delta.is_zero() {
            self.wrote();
        }
        Ok(())
    }

    fn load_state_sync(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let db = self.db()?;
        let txn = db.begin_read().map_err(backend)?;
        // A store written before the table existed has none: nothing was saved.
        let table = match txn.open_table(STATE) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
            Err(e) => return Err(backend(e)),
        };
        let got = table.get(name).map_err(backend)?;
        Ok(got.map(|g| g.value().to_vec()))
    }

    fn save_state_sync(&self, name: &str, bytes: &[u8]) -> Result<(), StoreError> {
        let db = self.db()?;
        let txn = self.begin_write(&db)?;
        {
            let mut table = txn.open_table(STATE).map_err(backend)?;
            table.insert(name, bytes).map_err(backend)?;
        }
        txn.commit().map_err(backend)?;
        self.wrote();
        Ok(())
    }

    fn add_state_counts_sync(
        &self,
        name: &str,
        delta: &[(String, i64)],
    ) -> Result<Vec<(String, i64)>, StoreError> {
        let db = self.db()?;
        if delta.iter().all(|(_, add)| *add == 0) {
            // Nothing to add: a read.
            let txn = db.begin_read().map_err(backend)?;
            let table = match txn.open_table(STATE_COUNTS) {
                Ok(t) => t,
                Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
                Err(e) => return Err(backend(e)),
            };
            return counts_in(&table, name);
        }
        let txn = self.begin_write(&db)?;
        let totals;
        {
            let mut table = txn.open_table(STATE_COUNTS).map_err(backend)?;
            for (counter, add) in delta.iter().filter(|(_, add)| *add != 0) {
                let cur = table
                    .get((name, counter.as_str()))
                    .map_err(backend)?
                    .map_or(0, |v| v.value());
                table
                    .insert((name, counter.as_str()), cur.saturating_add(*add))
                    .map_err(backend)?;
            }
            totals = counts_in(&table, name)?;
        }
        txn.commit().map_err(backend)?;
        self.wrote();
        Ok(totals)
    }

    fn counters_sync(&self) -> Result<Counters, StoreError> {
        let db = self.db()?;
        let txn = db.begin_read().map_err(backend)?;
        let table = txn.open_table(COUNTERS).map_err(backend)?;
        let get = |name: &str| -> Result<u64, StoreError> {
            Ok(table.get(name).map_err(backend)?.map_or(0, |g| g.value()))
        };
        Ok(Counters {
            exact_hits: get("exact_hits")?,
            semantic_hits: get("semantic_hits")?,
            misses: get("misses")?,
            bypasses: get("bypasses")?,
            upstream_calls: get("upstream_calls")?,
            prompt_tokens_saved: get("prompt_tokens_saved")?,
            completion_tokens_saved: get("completion_tokens_saved")?,
            embedding_hits: get("embedding_hits")?,
            embedding_misses: get("embedding_misses")?,
            verification_rejects: get("verification_rejects")?,
            removed_expired: get("removed_expired")?,
            removed_evicted: get("removed_evicted")?,
            removed_invalidated: get("removed_invalidated")?,
            stale_checks: get("stale_checks")?,
            stale_check_tokens: get("stale_check_tokens")?,
            stale_check_failures: get("stale_check_failures")?,
            removed_stale: get("removed_stale")?,
            stale_replaced: get("stale_replaced")?,
        })
    }
}

/// Creates the tables (so read transactions never meet a missing table) and checks the
/// format version.
fn init_tables(db: &Database) -> Result<(), StoreError> {
    let txn = db.begin_write().map_err(backend)?;
    {
        txn.open_table(ENTRIES).map_err(backend)?;
        txn.open_table(EXACT).map_err(backend)?;
        txn.open_table(HITS).map_err(backend)?;
        txn.open_multimap_table(TAGS).map_err(backend)?;
        txn.open_table(COUNTERS).map_err(backend)?;
        let mut meta = txn.open_table(META).map_err(backend)?;
        let found = meta
            .get("format_version")
            .map_err(backend)?
            .map(|g| g.value());
        match found {
            None => {
                meta.insert("format_version", FORMAT_VERSION)
                    .map_err(backend)?;
            }
            Some(FORMAT_VERSION) => {}
            Some(v) => {
                let reason = format!(
                    "store format version {v} is not supported (this build reads {FORMAT_VERSION})"
                );
                return Err(StoreError::Corrupt {
                    id: "format_version".into(),
                    reason,
                });
            }
        }
    }
    txn.commit().map_err(backend)
}

/// A row of `hits_v1`: entry id, (last_hit_ms, hit_count).
type HitRow = (u64, (u64, u64));

/// The tags recorded in an encoded entry, to unlink them from `tags_v1`. A record too
/// damaged to show its tags gives none (logged): its stale tag rows only point at an id
/// that no longer exists, which removal skips.
fn tags_of(id: EntryId, bytes: &[u8]) -> Vec<String> {
    match codec::decode_meta(id, bytes) {
        Ok(m) => m.tags.into_iter().map(str::to_string).collect(),
        Err(e) => {
            tracing::warn!(error = %deja_core::ErrorChain(&e), "tags of a corrupt entry cannot be unlinked");
            Vec::new()
        }
    }
}

fn unlink_tags(
    table: &mut redb::MultimapTable<&str, u64>,
    tags: &[impl AsRef<str>],
    id: u64,
) -> Result<(), StoreError> {
    for t in tags {
        table.remove(t.as_ref(), id).map_err(backend)?;
    }
    Ok(())
}

/// Every counter with its stored name. Destructured, so a new field does not compile until
/// it is given a name here (and in `counters_sync`).
fn counter_fields(c: &Counters) -> [(&'static str, u64); 18] {
    let Counters {
        exact_hits,
        semantic_hits,
        misses,
        bypasses,
        upstream_calls,
        prompt_tokens_saved,
        completion_tokens_saved,
        embedding_hits,
        embedding_misses,
        verification_rejects,
        removed_expired,
        removed_evicted,
        removed_invalidated,
        stale_checks,
        stale_check_tokens,
        stale_check_failures,
        removed_stale,
        stale_replaced,
    } = *c;
    [
        ("exact_hits", exact_hits),
        ("semantic_hits", semantic_hits),
        ("misses", misses),
        ("bypasses", bypasses),
        ("upstream_calls", upstream_calls),
        ("prompt_tokens_saved", prompt_tokens_saved),
        ("completion_tokens_saved", completion_tokens_saved),
        ("embedding_hits", embedding_hits),
        ("embedding_misses", embedding_misses),
        ("verification_rejects", verification_rejects),
        ("removed_expired", removed_expired),
        ("removed_evicted", removed_evicted),
        ("removed_invalidated", removed_invalidated),
        ("stale_checks", stale_checks),
        ("stale_check_tokens", stale_check_tokens),
        ("stale_check_failures", stale_check_failures),
        ("removed_stale", removed_stale),
        ("stale_replaced", stale_replaced),
    ]
}

impl Drop for RedbStore {
    /// A clean close keeps buffered hits and makes `Fast` writes durable.
    fn drop(&mut self) {
        if let Err(e) = self.flush_sync() {
            tracing::warn!(error = %deja_core::ErrorChain(&e), path = %self.path.display(), "final flush of the store failed");
        }
    }
}

/// Counts a write transaction that changes entries, inside it (see
/// [`RedbStore::write_seq`]).
fn bump_write_seq(txn: &redb::WriteTransaction) -> Result<(), StoreError> {
    let mut meta = txn.open_table(META).map_err(backend)?;
    let seq = meta
        .get(WRITE_SEQ)
        .map_err(backend)?
        .map_or(0, |g| g.value());
    meta.insert(WRITE_SEQ, seq + 1).map_err(backend)?;
    Ok(())
}

/// The tables one stored entry touches, open in one write transaction.
struct WriteTables<'txn> {
    entries: redb::Table<'txn, u64, &'static [u8]>,
    exact: redb::Table<'txn, &'static [u8; 16], u64>,
    hits: redb::Table<'txn, u64, (u64, u64)>,
    tags: redb::MultimapTable<'txn, &'static str, u64>,
}

/// Stores one entry inside an open write transaction; returns the id of the entry it
/// replaced under the same exact key, if any.
fn put_in(t: &mut WriteTables<'_>, entry: &Entry) -> Result<Option<EntryId>, StoreError> {
    let id = entry.id.0;
    let key = entry.exact_key.0;
    let bytes = codec::encode_entry(entry);
    let old = t.exact.get(&key).map_err(backend)?.map(|g| g.value());
    let replaced = match old {
        Some(old) if old != id => {
            let old_tags = match t.entries.remove(old).map_err(backend)? {
                Some(bytes) => tags_of(EntryId(old), bytes.value()),
                None => Vec::new(),
            };
            unlink_tags(&mut t.tags, &old_tags, old)?;
            t.hits.remove(old).map_err(backend)?;
            Some(EntryId(old))
        }
        _ => None,
    };
    // The same id stored before under another exact key: that key must no longer lead
    // here; its former tags no longer either.
    let prev = match t.entries.insert(id, bytes.as_slice()).map_err(backend)? {
        Some(prev) => Some((
            codec::read_exact_key(entry.id, prev.value())?,
            tags_of(entry.id, prev.value()),
        )),
        None => None,
    };
    let prev_key = match prev {
        Some((prev_key, prev_tags)) => {
            unlink_tags(&mut t.tags, &prev_tags, id)?;
            Some(prev_key)
        }
        None => None,
    };
    for tag in &entry.tags {
        t.tags.insert(tag.as_str(), id).map_err(backend)?;
    }
    if let Some(prev_key) = prev_key.filter(|k| k.0 != key) {
        let points_here = t
            .exact
            .get(&prev_key.0)
            .map_err(backend)?
            .map(|g| g.value());
        if points_here == Some(id) {
            t.exact.remove(&prev_key.0).map_err(backend)?;
        }
    }
    t.exact.insert(&key, id).map_err(backend)?;
    // The entry's own hit fields are the truth for a freshly put entry.
    t.hits.remove(id).map_err(backend)?;
    Ok(replaced)
}

#[async_trait]
impl EntryStore for RedbStore {
    async fn get_exact(&self, key: &ExactKey) -> Result<Option<Entry>, StoreError> {
        self.observe(self.get_exact_sync(key))
    }

    async fn get(&self, id: EntryId) -> Result<Option<Entry>, StoreError> {
        self.observe(self.get_sync(id))
    }

    async fn put(&self, entry: &Entry) -> Result<Option<EntryId>, StoreError> {
        self.observe(self.put_sync(entry))
    }

    async fn put_many(&self, entries: &[Entry]) -> Result<Vec<Option<EntryId>>, StoreError> {
        self.observe(self.put_many_sync(entries))
    }

    async fn remove(&self, id: EntryId) -> Result<Option<Entry>, StoreError> {
        self.observe(self.remove_sync(id))
    }

    async fn record_hit(&self, id: EntryId, at_ms: u64) -> Result<(), StoreError> {
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
        self.observe(self.scan_vectors_with(|id, p, e, v| visit(id, p, e, v)))
    }

    async fn len(&self) -> Result<u64, StoreError> {
        self.observe(self.len_sync())
    }

    async fn stored_bytes(&self) -> Result<Option<u64>, StoreError> {
        let meta = std::fs::metadata(&self.path).map_err(|e| StoreError::Backend {
            backend: "redb",
            source: Box::new(e),
        })?;
        Ok(Some(meta.len()))
    }

    async fn ids_with_tag(&self, tag: &str) -> Result<Vec<EntryId>, StoreError> {
        self.observe(self.ids_with_tag_sync(tag))
    }

    async fn scan_meta(
        &self,
        visit: &mut (dyn for<'a> FnMut(&'a EntryMeta<'a>) + Send),
    ) -> Result<(), StoreError> {
        self.observe(self.scan_meta_with(|m| visit(m)))
    }

    async fn remove_many(
        &self,
        ids: &[EntryId],
    ) -> Result<Vec<(EntryId, PartitionKey, bool)>, StoreError> {
        self.observe(self.remove_many_sync(ids))
    }

    async fn add_counters(&self, delta: &Counters) -> Result<(), StoreError> {
        self.observe(self.add_counters_sync(delta))
    }

    async fn counters(&self) -> Result<Counters, StoreError> {
        self.observe(self.counters_sync())
    }

    async fn flush(&self) -> Result<(), StoreError> {
        self.observe(self.flush_sync())
    }

    async fn load_state(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.observe(self.load_state_sync(name))
    }

    async fn save_state(&self, name: &str, bytes: &[u8]) -> Result<(), StoreError> {
        self.observe(self.save_state_sync(name, bytes))
    }

    async fn add_state_counts(
        &self,
        name: &str,
        delta: &[(String, i64)],
    ) -> Result<Option<Vec<(String, i64)>>, StoreError> {
        self.observe(self.add_state_counts_sync(name, delta).map(Some))
    }

    async fn health(&self) -> StoreHealth {
        self.health_sync()
    }
}
