//! Maintenance: expired and cold entries, and the capacity limits (LRU or LFU
//! victims), each counted by cause.

use crate::entry::EntryId;

use super::{
    category_ttl_secs, last_used_ms, younger_than, Cache, CapacityLimits, Eviction, InsertError,
    MaintenanceReport, EVICT_TO_PERCENT,
};

impl Cache {
    /// Removes every entry whose category TTL has passed (lookups already refuse to serve
    /// them; this gives their space back). Entries of a category no longer configured
    /// follow the `default` category, as lookups do. Returns how many were removed.
    pub async fn sweep_expired(&self) -> Result<u64, InsertError> {
        let policy = self.policy();
        let now = self.inner.clock.now_ms();
        let mut ids = Vec::new();
        self.inner
            .store
            .scan_meta(&mut |m| {
                let expired = category_ttl_secs(&policy, m.category)
                    .is_some_and(|secs| !younger_than(m.created_at_ms, now, secs));
                if expired {
                    ids.push(m.id);
                }
            })
            .await?;
        let removed = self.remove_ids(&ids).await?;
        self.inner.pending.lock().removed_expired += removed;
        Ok(removed)
    }

    /// Removes every entry not hit for `after_secs` (never-hit entries count from their
    /// creation); counted as evictions. Returns how many were removed.
    pub async fn remove_cold(&self, after_secs: u64) -> Result<u64, InsertError> {
        let now = self.inner.clock.now_ms();
        let mut ids = Vec::new();
        self.inner
            .store
            .scan_meta(&mut |m| {
                if !younger_than(last_used_ms(m), now, after_secs) {
                    ids.push(m.id);
                }
            })
            .await?;
        let removed = self.remove_ids(&ids).await?;
        self.inner.pending.lock().removed_evicted += removed;
        Ok(removed)
    }

    /// If the cache holds more than `limits.max_entries` entries or `limits.max_bytes`
    /// bytes, removes the least valuable entries (by `limits.eviction`) until it is at
    /// about 95% of each limit exceeded. One metadata scan collects (score, id, size);
    /// the victims of an entry limit are selected without sorting every entry, those of
    /// a byte limit by sorting what remains after them. They are removed store-first, in
    /// transactions of up to 10,000. Returns how many were removed. (`cold_after_secs` is
    /// not applied here; see [`Cache::remove_cold`].)
    pub async fn enforce_capacity(&self, limits: &CapacityLimits) -> Result<u64, InsertError> {
        if limits.max_entries.is_none() && limits.max_bytes.is_none() {
            return Ok(0);
        }
        // (score, id, size): the smallest score is the least valuable entry.
        let mut all: Vec<((u64, u64), EntryId, u64)> = Vec::new();
        let mut total_bytes = 0u64;
        self.inner
            .store
            .scan_meta(&mut |m| {
                let score = match limits.eviction {
                    Eviction::Lru => (last_used_ms(m), m.created_at_ms),
                    Eviction::Lfu => (m.hit_count, m.created_at_ms),
                };
                total_bytes = total_bytes.saturating_add(m.size_bytes);
                all.push((score, m.id, m.size_bytes));
            })
            .await?;
        let count = all.len() as u64;
        let over_entries = limits.max_entries.is_some_and(|max| count > max);
        let over_bytes = limits.max_bytes.is_some_and(|max| total_bytes > max);
        if !over_entries && !over_bytes {
            return Ok(0);
        }
        let target = |max: u64| max / 100 * EVICT_TO_PERCENT + max % 100 * EVICT_TO_PERCENT / 100;
        // Victims by count: the `k` least valuable, found without sorting everything.
        let mut k = match limits.max_entries {
            Some(max) if over_entries => (count - target(max)) as usize,
            _ => 0,
        };
        if k > 0 && k < all.len() {
            all.select_nth_unstable_by(k - 1, |a, b| a.0.cmp(&b.0).then(a.1.cmp(&b.1)));
        }
        // Victims by size: if removing those `k` is not enough, take more in order.
        if let Some(max) = limits.max_bytes.filter(|_| over_bytes) {
            let want = target(max);
            let mut left = total_bytes.saturating_sub(all[..k].iter().map(|v| v.2).sum::<u64>());
            if left > want {
                all[k..].sort_unstable_by(|a, b| a.0.cmp(&b.0).then(a.1.cmp(&b.1)));
                while left > want && k < all.len() {
                    left = left.saturating_sub(all[k].2);
                    k += 1;
                }
            }
        }
        let victims: Vec<EntryId> = all[..k].iter().map(|v| v.1).collect();
        let removed = self.remove_ids(&victims).await?;
        self.inner.pending.lock().removed_evicted += removed;
        Ok(removed)
    }

    /// One maintenance pass: expired entries, then cold ones, then whatever still exceeds
    /// the capacity limits. What the server runs periodically.
    pub async fn maintain(
        &self,
        limits: &CapacityLimits,
    ) -> Result<MaintenanceReport, InsertError> {
        let expired = self.sweep_expired().await?;
        let cold = match limits.cold_after_secs {
            Some(secs) => self.remove_cold(secs).await?,
            None => 0,
        };
        let evicted = self.enforce_capacity(limits).await?;
        Ok(MaintenanceReport {
            expired,
            cold,
            evicted,
        })
    }
}
