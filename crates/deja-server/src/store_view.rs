//! What the stats pages, the dashboard and `GET /metrics` read from the store, each read
//! bounded by [`STORE_READ_TIMEOUT`] so that a page answers with what it has while the
//! store (Redis) is away; and the most-hit entries, from a scan reused for a few seconds.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::Arc;

use deja_core::{Cache, EntryId, ErrorChain, StoreError};
use serde::Serialize;

/// Entries listed as the most hit.
pub const TOP_ENTRIES: usize = 10;
/// How long a top-entries scan of a large store is reused: the page refreshes every few
/// seconds, and a scan visits every entry's metadata.
const TOP_ENTRIES_TTL_MS: u64 = 10_000;
/// Stores with fewer entries are scanned on every refresh (a few milliseconds at most).
const TOP_ENTRIES_SCAN_ALWAYS: u64 = 10_000;
/// Characters of a stored prompt shown.
const PREVIEW_CHARS: usize = 200;

/// How long the stats pages wait for each store read before answering without it.
pub const STORE_READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

/// The store's entry count and counters as the stats pages show them. What could not be
/// read (an error, or no answer within [`STORE_READ_TIMEOUT`]) is `None` and `error` says
/// why, so the pages answer with what they have while the store (Redis) is away.
pub struct StoreView {
    pub entries: Option<u64>,
    pub counters: Option<deja_core::Counters>,
    pub error: Option<String>,
}

/// Reads the [`StoreView`].
pub async fn store_view(cache: &deja_core::Cache) -> StoreView {
    let mut errors = Vec::new();
    let entries = bounded("counting entries", cache.store().len(), &mut errors).await;
    let counters = bounded("reading counters", cache.counters(), &mut errors).await;
    let error = (!errors.is_empty()).then(|| errors.join("; "));
    if let Some(e) = &error {
        tracing::warn!(error = %e, "the store could not be read for the stats");
    }
    StoreView {
        entries,
        counters,
        error,
    }
}

/// `read`'s value, or `None` with why in `errors` when it fails or does not answer within
/// [`STORE_READ_TIMEOUT`].
pub async fn bounded<T, E: std::error::Error>(
    what: &str,
    read: impl std::future::Future<Output = Result<T, E>>,
    errors: &mut Vec<String>,
) -> Option<T> {
    match tokio::time::timeout(STORE_READ_TIMEOUT, read).await {
        Ok(Ok(v)) => Some(v),
        Ok(Err(e)) => {
            errors.push(format!("{what}: {}", ErrorChain(&e)));
            None
        }
        Err(_) => {
            errors.push(format!(
                "{what}: no answer within {} s",
                STORE_READ_TIMEOUT.as_secs()
            ));
            None
        }
    }
}

/// One of the most-hit entries.
#[derive(Debug, Clone, Serialize)]
pub struct TopEntry {
    pub id: String,
    /// The first [`PREVIEW_CHARS`] characters of the prompt.
    pub prompt: String,
    pub model: String,
    pub category: String,
    pub hit_count: u64,
    pub created_at_ms: u64,
    pub last_hit_ms: u64,
    /// Prompt plus completion tokens the answer cost upstream: what each hit saves.
    pub tokens_per_hit: u64,
}

/// The last top-entries scan, shared by concurrent refreshes (one scans, the others wait
/// and reuse it).
#[derive(Default)]
pub struct TopEntriesCache {
    last: tokio::sync::Mutex<Option<(u64, Arc<Vec<TopEntry>>)>>,
}

impl TopEntriesCache {
    /// The [`TOP_ENTRIES`] entries with the most hits (at least one), most first; in a store
    /// of `entries` entries, from a scan at most [`TOP_ENTRIES_TTL_MS`] old (a small store's
    /// is always fresh).
    pub async fn get(
        &self,
        cache: &Cache,
        entries: u64,
        now_ms: u64,
    ) -> Result<Arc<Vec<TopEntry>>, StoreError> {
        let mut last = self.last.lock().await;
        if let Some((at, top)) = last.as_ref() {
            if entries >= TOP_ENTRIES_SCAN_ALWAYS && now_ms.saturating_sub(*at) < TOP_ENTRIES_TTL_MS
            {
                return Ok(top.clone());
            }
        }
        let store = cache.store();
        // A min-heap of the most hit so far: the least of them drops out when it is full.
        let mut heap: BinaryHeap<Reverse<(u64, EntryId)>> = BinaryHeap::new();
        store
            .scan_meta(&mut |m| {
                if m.hit_count == 0 {
                    return;
                }
                heap.push(Reverse((m.hit_count, m.id)));
                if heap.len() > TOP_ENTRIES {
                    heap.pop();
                }
            })
            .await?;
        let mut top = Vec::with_capacity(heap.len());
        // `into_sorted_vec` of `Reverse` is most hits first.
        for Reverse((hits, id)) in heap.into_sorted_vec() {
            let Some(e) = store.get(id).await? else {
                // Removed since the scan.
                continue;
            };
            top.push(TopEntry {
                id: id.to_string(),
                prompt: e.prompt.chars().take(PREVIEW_CHARS).collect(),
                model: e.model,
                category: e.category,
                // The scan's count: the entry read may lag the buffered hit counts.
                hit_count: hits.max(e.hit_count),
                created_at_ms: e.created_at_ms,
                last_hit_ms: e.last_hit_ms,
                tokens_per_hit: e.usage.prompt_tokens + e.usage.completion_tokens,
            });
        }
        let top = Arc::new(top);
        *last = Some((now_ms, top.clone()));
        Ok(top)
    }
}
