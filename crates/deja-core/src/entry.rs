//! What the cache stores: one [`Entry`] per answered prompt, and the counters the cache
//! keeps about itself.

use serde::{Deserialize, Serialize};

use crate::key::{ExactKey, PartitionKey};

/// An entry's identity: random 64 bits, so replicas sharing a backend never collide in
/// practice. Shown to users as 16 hex digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct EntryId(pub u64);

impl EntryId {
    pub fn random() -> Self {
        Self(rand::random())
    }
    pub fn parse_hex(s: &str) -> Option<Self> {
        u64::from_str_radix(s, 16).ok().map(Self)
    }
}

impl std::fmt::Display for EntryId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

/// A recorded upstream answer, opaque to the engine: the wire crate decides what the bytes
/// mean and how to convert between the two shapes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Answer {
    /// A complete, non-streamed response body.
    Body(Vec<u8>),
    /// The `data:` payloads of a streamed response, in order, as the upstream sent them
    /// (without the `data: ` prefix and the blank line; without the final `[DONE]`).
    Chunks(Vec<Vec<u8>>),
}

impl Answer {
    /// Bytes held by the answer itself (what "beyond the response text" excludes).
    pub fn len_bytes(&self) -> usize {
        match self {
            Answer::Body(b) => b.len(),
            Answer::Chunks(c) => c.iter().map(Vec::len).sum(),
        }
    }
}

/// Token usage the upstream reported for an answer; what a hit saves.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
}

/// One cached answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    pub id: EntryId,
    pub partition: PartitionKey,
    pub exact_key: ExactKey,
    /// The normalised prompt (last user message) the answer was given to.
    pub prompt: String,
    pub model: String,
    pub answer: Answer,
    pub usage: Usage,
    pub created_at_ms: u64,
    pub last_hit_ms: u64,
    pub hit_count: u64,
    /// The category the request was classified in (its TTL applies to the entry).
    pub category: String,
    /// The tenant the entry belongs to, as the server labels it (`key:<hash>`,
    /// `anonymous`, `shared`, each possibly narrowed as `…/ns:<name>`, or a shared
    /// namespace `ns:<name>`; see [`tenant_matches`]); empty when the caller gave none.
    /// Recorded so a tenant's entries can be invalidated; the partition already keeps
    /// tenants apart.
    pub namespace: String,
    /// Labels the client attached (e.g. `product:123`) so every answer about one thing can
    /// be invalidated at once. Not part of the key.
    pub tags: Vec<String>,
    /// Which embedder produced `vector` (e.g. `local:all-MiniLM-L6-v2`); empty when the
    /// entry has no vector (exact-only entries).
    pub embedder_id: String,
    /// The prompt's unit-length embedding; empty for exact-only entries. Backends may
    /// store it quantised; what they return must still be unit length.
    pub vector: Vec<f32>,
    /// The request the answer was given to, as the client sent it (JSON bytes), so a
    /// staleness check can ask the upstream again. Recorded only while staleness checks
    /// are on (it makes an entry larger); `None` for other entries, embedding items and
    /// entries stored before it existed. Never holds a credential: those travel in
    /// headers, which are not recorded.
    #[serde(default)]
    pub request: Option<Vec<u8>>,
}

/// Running totals the cache keeps about itself. Backends persist them so `deja stats`
/// can read them from a stopped data directory. Missing fields read as zero, so a newer `deja stats` can read an older server's.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Counters {
    pub exact_hits: u64,
    pub semantic_hits: u64,
    pub misses: u64,
    pub bypasses: u64,
    /// Calls that reached the upstream (misses, bypasses, refreshes, pass-through).
    pub upstream_calls: u64,
    pub prompt_tokens_saved: u64,
    pub completion_tokens_saved: u64,
    /// Embedding-cache items served without the upstream, and items sent upstream.
    pub embedding_hits: u64,
    pub embedding_misses: u64,
    /// Semantic candidates above the threshold that verification refused to serve.
    pub verification_rejects: u64,
    /// Entries removed because their category's TTL had passed ([`crate::Cache::sweep_expired`]).
    pub removed_expired: u64,
    /// Entries removed to stay within capacity, or because nobody asked for them for too
    /// long ([`crate::Cache::enforce_capacity`], [`crate::Cache::remove_cold`]).
    pub removed_evicted: u64,
    /// Entries removed by [`crate::Cache::invalidate`].
    pub removed_invalidated: u64,
    /// Entries a staleness check re-asked the upstream about (answers compared).
    pub stale_checks: u64,
    /// Tokens the upstream reported for those checks (prompt plus completion).
    pub stale_check_tokens: u64,
    /// Checks that could not compare (upstream error, unreadable answer, embedder fault).
    pub stale_check_failures: u64,
    /// Entries removed because the upstream's answer had changed
    /// ([`crate::Cache::remove_stale`]).
    pub removed_stale: u64,
    /// Entries whose answer was replaced by the upstream's changed one
    /// ([`crate::Cache::replace_answer`]).
    pub stale_replaced: u64,
}

impl Counters {
    pub fn add(&mut self, other: &Counters) {
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
        } = other;
        self.exact_hits += exact_hits;
        self.semantic_hits += semantic_hits;
        self.misses += misses;
        self.bypasses += bypasses;
        self.upstream_calls += upstream_calls;
        self.prompt_tokens_saved += prompt_tokens_saved;
        self.completion_tokens_saved += completion_tokens_saved;
        self.embedding_hits += embedding_hits;
        self.embedding_misses += embedding_misses;
        self.verification_rejects += verification_rejects;
        self.removed_expired += removed_expired;
        self.removed_evicted += removed_evicted;
        self.removed_invalidated += removed_invalidated;
        self.stale_checks += stale_checks;
        self.stale_check_tokens += stale_check_tokens;
        self.stale_check_failures += stale_check_failures;
        self.removed_stale += removed_stale;
        self.stale_replaced += stale_replaced;
    }

    pub fn is_zero(&self) -> bool {
        *self == Counters::default()
    }

    /// Share of cacheable chat requests answered from the cache.
    pub fn hit_rate(&self) -> f64 {
        let hits = self.exact_hits + self.semantic_hits;
        let total = hits + self.misses;
        if total == 0 {
            0.0
        } else {
            hits as f64 / total as f64
        }
    }
}

/// Whether an entry's tenant label falls under `filter`, as invalidation and listing
/// select them. A label is a principal (`key:<hash>`, `anonymous`, `shared`; none holds a
/// `/`) optionally narrowed by a namespace (`key:<hash>/ns:<name>`), or a shared
/// namespace on its own (`ns:<name>`). A principal selects itself and its namespaces; a
/// namespace `ns:<name>` selects that namespace under every principal and the shared one;
/// a narrowed label selects only itself.
pub fn tenant_matches(label: &str, filter: &str) -> bool {
    if label == filter {
        return true;
    }
    if filter.starts_with("ns:") {
        // The namespace part starts after the principal's first `/` (a namespace name may
        // itself hold `/`, a principal never does).
        return !label.starts_with("ns:")
            && label.split_once('/').is_some_and(|(_, ns)| ns == filter);
    }
    !filter.contains('/')
        && label
            .strip_prefix(filter)
            .is_some_and(|rest| rest.starts_with("/ns:"))
}

#[cfg(test)]
mod tests {
    use super::tenant_matches;

    #[test]
    fn tenant_filters_select_principals_and_namespaces() {
        let key = format!("key:{}", "ab".repeat(32));
        let other = format!("key:{}", "cd".repeat(32));
        let labels = [
            key.clone(),
            format!("{key}/ns:acme"),
            format!("{key}/ns:team/ns:acme"),
            format!("{other}/ns:acme"),
            "anonymous/ns:acme".to_string(),
            "ns:acme".to_string(),
            "shared".to_string(),
        ];
        let selected = |filter: &str| -> Vec<usize> {
            (0..labels.len())
                .filter(|i| tenant_matches(&labels[*i], filter))
                .collect()
        };
        assert_eq!(selected(&key), vec![0, 1, 2]);
        assert_eq!(selected("ns:acme"), vec![1, 3, 4, 5]);
        assert_eq!(selected("ns:team/ns:acme"), vec![2]);
        assert_eq!(selected(&format!("{key}/ns:acme")), vec![1]);
        assert_eq!(selected("anonymous"), vec![4]);
        assert_eq!(selected("shared"), vec![6]);
        assert_eq!(
            selected("key:ab"),
            Vec::<usize>::new(),
            "no prefix matching"
        );
    }
}
