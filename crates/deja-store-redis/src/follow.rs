//! Keeps a replica's in-process vector index current from the `P:events` stream that
//! every [`RedisStore`] writes: a vector stored by another replica becomes searchable
//! here, and one removed there (invalidation, expiry, eviction, replacement) is dropped.
//!
//! The follower reads with `XREAD BLOCK` on its own connection (a blocking read would
//! otherwise hold up the requests multiplexed on the store's connection), so an event is
//! applied as soon as it is written: replicas converge in milliseconds, not at a polling
//! interval. Its own handle's events are skipped (its engine has already updated the
//! index). A stored vector is re-read from its record, so an event about an entry that is
//! gone again is a no-op.
//!
//! The follower publishes its position (the last event applied, [`EventsPosition`]), so a
//! replica can save its index with that position and, at its next start, load it and
//! follow from there instead of reading every entry again (see `deja_server::snapshot`).
//!
//! This is not what keeps answers correct: the store is the source of truth, and every
//! candidate the index returns is re-read from it before it is served. A replica that
//! misses events (Redis unreachable, or more than `EVENTS_MAXLEN` behind) serves fewer
//! semantic hits until its next start, never a removed answer.

use std::sync::{Arc, Weak};
use std::time::Duration;

use deja_core::{EntryId, ExactKey, PartitionKey, StoreError, VectorIndex};
use deja_store_local::codec;
use redis::Value;

use crate::store::RedisStore;

/// How long one `XREAD` waits for events before it is issued again (and the follower
/// checks whether its index still exists).
const BLOCK_MS: u64 = 500;

/// Pause after a failed read before the next attempt.
const RETRY: Duration = Duration::from_millis(250);

/// Events read per `XREAD`.
const BATCH: usize = 512;

/// One event of `P:events`.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Event {
    /// Stored (or replaced) under an exact key.
    Put(EntryId, Option<ExactKey>),
    /// Removed; its exact key, when known, leaves the L1.
    Del(EntryId, PartitionKey, Option<ExactKey>),
}

fn field<'a>(map: &'a std::collections::HashMap<String, Value>, name: &str) -> Option<&'a [u8]> {
    match map.get(name)? {
        Value::BulkString(b) => Some(b),
        Value::SimpleString(s) => Some(s.as_bytes()),
        _ => None,
    }
}

fn parse_hex16(s: &[u8]) -> Option<[u8; 16]> {
    let s = std::str::from_utf8(s).ok()?;
    if s.len() != 32 {
        return None;
    }
    let mut out = [0u8; 16];
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

/// The event in a stream entry, unless it is this handle's own (`origin`) or malformed.
fn parse_event(map: &std::collections::HashMap<String, Value>, origin: &str) -> Option<Event> {
    if field(map, "o") == Some(origin.as_bytes()) {
        return None;
    }
    let id = std::str::from_utf8(field(map, "id")?)
        .ok()
        .and_then(EntryId::parse_hex)?;
    let exact = field(map, "x").and_then(parse_hex16).map(ExactKey);
    match field(map, "op")? {
        b"put" => Some(Event::Put(id, exact)),
        b"del" => Some(Event::Del(
            id,
            PartitionKey(parse_hex16(field(map, "p")?)?),
            exact,
        )),
        _ => None,
    }
}

/// Applies one event to the indexes. Errors are the store's (reading a record); index
/// refusals (another embedder, another dimension) are skipped, as at bootstrap.
async fn apply(
    store: &RedisStore,
    indexes: &[Arc<dyn VectorIndex>],
    event: Event,
) -> Result<(), StoreError> {
    match event {
        Event::Put(id, exact) => {
            if let Some(x) = exact {
                store.forget_exact(&x);
            }
            if indexes.is_empty() {
                return Ok(());
            }
            let Some(rec) = store.get_record(id).await? else {
                return Ok(());
            };
            let parts = codec::decode_vector_parts(id, &rec)?;
            let Some(index) = indexes
                .iter()
                .find(|i| i.embedder_id() == parts.embedder_id)
            else {
                return Ok(());
            };
            if parts.vector.is_empty() || parts.vector.len() != index.dim() {
                return Ok(());
            }
            if let Err(e) = index.insert(parts.partition, id, &parts.vector).await {
                tracing::warn!(error = %deja_core::ErrorChain(&e), %id, "indexing a replicated entry failed");
            }
        }
        Event::Del(id, partition, exact) => {
            if let Some(x) = exact {
                store.forget_exact(&x);
            }
            // The entry is gone: which embedder made its vector is not known, and it is
            // in one index at most.
            for index in indexes {
                if let Err(e) = index.remove(partition, id).await {
                    tracing::warn!(error = %deja_core::ErrorChain(&e), %id, "dropping a replicated removal failed");
                }
            }
        }
    }
    Ok(())
}

/// Where a follower is in the events stream: the id of the last event it applied (or the
/// position it started from). Everything up to it is in its index.
#[derive(Debug, Clone)]
pub struct EventsPosition(Arc<parking_lot::Mutex<String>>);

impl EventsPosition {
    pub fn get(&self) -> String {
        self.0.lock().clone()
    }
}

/// A running follower: its task, and its position.
#[derive(Debug)]
pub struct EventsFollower {
    pub task: tokio::task::JoinHandle<()>,
    pub position: EventsPosition,
}

/// Whether stream id `a` is at or before `b` (ids are `MILLIS-SEQ`); `None` if either is
/// not a stream id.
pub fn stream_id_at_or_before(a: &str, b: &str) -> Option<bool> {
    fn parse(id: &str) -> Option<(u64, u64)> {
        let (ms, seq) = id.split_once('-')?;
        Some((ms.parse().ok()?, seq.parse().ok()?))
    }
    Some(parse(a)? <= parse(b)?)
}

impl RedisStore {
    /// Follows the events written after `from` (see [`RedisStore::events_tail`]) into
    /// `indexes` (in-process indexes, one per embedder: each takes the vectors of its
    /// embedder; shared ones need no updates, so there may be none) and the L1, until an
    /// index is dropped or no one but the follower holds this store. Read
    /// `from` before loading the index from the store, so nothing written during the load
    /// is missed.
    pub fn follow_events(
        self: &Arc<Self>,
        indexes: Vec<Weak<dyn VectorIndex>>,
        from: String,
    ) -> EventsFollower {
        let store = self.clone();
        let position = EventsPosition(Arc::new(parking_lot::Mutex::new(from.clone())));
        let published = position.clone();
        EventsFollower {
            task: tokio::spawn(async move { follow(store, indexes, from, published).await }),
            position,
        }
    }
}

async fn follow(
    store: Arc<RedisStore>,
    indexes: Vec<Weak<dyn VectorIndex>>,
    mut last: String,
    position: EventsPosition,
) {
    let key = store.events_key();
    let mut conn = None;
    let mut failing = false;
    let abandoned = |store: &Arc<RedisStore>| {
        Arc::strong_count(store) == 1 || indexes.iter().any(|i| i.strong_count() == 0)
    };
    loop {
        if abandoned(&store) {
            return;
        }
        let c = match &conn {
            Some(c) => c,
            None => match store.open_another().await {
                Ok(c) => conn.insert(c),
                Err(e) => {
                    if !failing {
                        tracing::warn!(error = %deja_core::ErrorChain(&e), "following index events: cannot connect; retrying");
                        failing = true;
                    }
                    tokio::time::sleep(RETRY).await;
                    continue;
                }
            },
        };
        let read: redis::RedisResult<Option<redis::streams::StreamReadReply>> = redis::cmd("XREAD")
            .arg("COUNT")
            .arg(BATCH)
            .arg("BLOCK")
            .arg(BLOCK_MS)
            .arg("STREAMS")
            .arg(&key)
            .arg(&last)
            .query_async(&mut c.clone())
            .await;
        let reply = match read {
            Ok(r) => {
                if failing {
                    tracing::info!("following index events again");
                    failing = false;
                }
                r
            }
            Err(e) => {
                if !failing {
                    tracing::warn!(error = %e, "following index events failed; retrying");
                    failing = true;
                }
                tokio::time::sleep(RETRY).await;
                continue;
            }
        };
        let Some(reply) = reply else {
            continue; // no event within BLOCK_MS
        };
        let Some(idx) = indexes
            .iter()
            .map(Weak::upgrade)
            .collect::<Option<Vec<Arc<dyn VectorIndex>>>>()
        else {
            return;
        };
        for entry in reply.keys.into_iter().flat_map(|k| k.ids) {
            if let Some(event) = parse_event(&entry.map, store.origin()) {
                if let Err(e) = apply(&store, &idx, event).await {
                    // Not applied: read again from here after a pause.
                    tracing::warn!(error = %deja_core::ErrorChain(&e), "applying an index event failed; retrying");
                    tokio::time::sleep(RETRY).await;
                    break;
                }
            }
            last = entry.id;
        }
        position.0.lock().clone_from(&last);
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn map(fields: &[(&str, &str)]) -> HashMap<String, Value> {
        fields
            .iter()
            .map(|(k, v)| (k.to_string(), Value::BulkString(v.as_bytes().to_vec())))
            .collect()
    }

    #[test]
    fn stream_ids_compare_by_millis_then_sequence() {
        for (a, b, want) in [
            ("0-0", "0-0", Some(true)),
            ("5-1", "5-2", Some(true)),
            ("5-2", "5-1", Some(false)),
            ("9-9", "10-0", Some(true)),
            ("10-0", "9-99", Some(false)),
            ("x", "1-0", None),
            ("1-0", "1", None),
        ] {
            assert_eq!(stream_id_at_or_before(a, b), want, "{a} {b}");
        }
    }

    #[test]
    fn events_parse_and_own_events_are_skipped() {
        let p = "0102030405060708090a0b0c0d0e0f10";
        let cases = [
            (
                map(&[("o", "them"), ("op", "put"), ("id", "00000000000000ff")]),
                Some(Event::Put(EntryId(255), None)),
            ),
            (
                map(&[
                    ("o", "them"),
                    ("op", "del"),
                    ("id", "0000000000000001"),
                    ("p", p),
                ]),
                Some(Event::Del(
                    EntryId(1),
                    PartitionKey([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16]),
                    None,
                )),
            ),
            (
                map(&[
                    ("o", "them"),
                    ("op", "put"),
                    ("id", "0000000000000002"),
                    ("x", p),
                ]),
                Some(Event::Put(
                    EntryId(2),
                    Some(ExactKey([
                        1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16,
                    ])),
                )),
            ),
            (
                map(&[("o", "me"), ("op", "put"), ("id", "00000000000000ff")]),
                None,
            ),
            (
                map(&[("o", "them"), ("op", "del"), ("id", "0000000000000001")]),
                None,
            ),
            (
                map(&[("o", "them"), ("op", "del"), ("id", "1"), ("p", "zz")]),
                None,
            ),
            (map(&[("o", "them"), ("op", "upsert"), ("id", "1")]), None),
            (map(&[("o", "them"), ("op", "put")]), None),
        ];
        for (fields, want) in cases {
            assert_eq!(parse_event(&fields, "me"), want, "{fields:?}");
        }
    }
}
