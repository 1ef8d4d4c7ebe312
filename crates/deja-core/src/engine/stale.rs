//! The engine's side of staleness checks: which entries to check next, and what to do
//! with one whose answer the upstream no longer gives. Asking the upstream and comparing
//! answers is the server's job (it has the HTTP client and the wire format).
//!
//! Entries are checked in rotation by id: a check pass takes the next ids after where the
//! previous one stopped, wrapping around at the end. Ids are random, so the rotation is a
//! uniform sample of the cache that reaches every entry once per round, and needs no
//! per-entry bookkeeping: the caller keeps one cursor.

use std::collections::BinaryHeap;

use super::{category_ttl_secs, younger_than, Cache, InsertError};
use crate::entry::{Answer, EntryId, Usage};
use crate::traits::StoreError;

/// Which entries [`Cache::stale_candidates`] picks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StaleCheck {
    /// Where the previous pass stopped: ids after it come first, then the rotation wraps
    /// to the smallest ids.
    pub after: Option<EntryId>,
    /// Most ids returned.
    pub count: usize,
    /// Entries younger than this are not checked (their answer was just given).
    pub min_age_secs: u64,
}

impl Cache {
    /// Up to `sel.count` entry ids to check next, in rotation order (see the module
    /// docs). Expired entries (which are never served) and entries younger than
    /// `sel.min_age_secs` are skipped. One metadata scan; memory is bounded by the count.
    pub async fn stale_candidates(&self, sel: &StaleCheck) -> Result<Vec<EntryId>, StoreError> {
        if sel.count == 0 {
            return Ok(Vec::new());
        }
        let policy = self.policy();
        let now = self.now_ms();
        // Max-heaps of the smallest ids after the cursor and up to it: when one grows past
        // the count, its largest id is dropped.
        let mut later: BinaryHeap<EntryId> = BinaryHeap::with_capacity(sel.count + 1);
        let mut wrapped: BinaryHeap<EntryId> = BinaryHeap::with_capacity(sel.count + 1);
        self.inner
            .store
            .scan_meta(&mut |m| {
                if younger_than(m.created_at_ms, now, sel.min_age_secs) {
                    return;
                }
                let expired = category_ttl_secs(&policy, m.category)
                    .is_some_and(|secs| !younger_than(m.created_at_ms, now, secs));
                if expired {
                    return;
                }
                let heap = if sel.after.is_some_and(|a| m.id <= a) {
                    &mut wrapped
                } else {
                    &mut later
                };
                heap.push(m.id);
                if heap.len() > sel.count {
                    heap.pop();
                }
            })
            .await?;
        let mut ids = later.into_sorted_vec();
        ids.extend(wrapped.into_sorted_vec());
        ids.truncate(sel.count);
        Ok(ids)
    }

    /// Removes an entry whose answer went stale (store first, then index, as
    /// [`Cache::invalidate`] does); counted as `removed_stale`. Returns whether it existed.
    pub async fn remove_stale(&self, id: EntryId) -> Result<bool, InsertError> {
        let removed = self.remove_ids(&[id]).await?;
        self.inner.pending.lock().removed_stale += removed;
        Ok(removed > 0)
    }

    /// Gives an entry the upstream's current answer, keeping its id, key, labels, hit
    /// counts, vector and recorded request; its age starts again (its TTL counts from now,
    /// as for a refreshed answer). Counted as `stale_replaced`.
    ///
    /// Only if the entry still holds `expected` (the answer that was compared): an entry
    /// removed or refreshed meanwhile is left alone and `false` returned. The entry is
    /// removed and then stored again, so an invalidation that has returned is never undone
    /// by a replacement (as with any write, one still running may miss the new version).
    pub async fn replace_answer(
        &self,
        id: EntryId,
        expected: &Answer,
        answer: Answer,
        usage: Usage,
    ) -> Result<bool, InsertError> {
        let Some(mut entry) = self.inner.store.get(id).await? else {
            return Ok(false);
        };
        if entry.answer != *expected {
            return Ok(false);
        }
        if self.remove_ids(&[id]).await? == 0 {
            return Ok(false);
        }
        entry.answer = answer;
        entry.usage = usage;
        entry.created_at_ms = self.now_ms();
        self.restore(&entry).await?;
        self.inner.pending.lock().stale_replaced += 1;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    //! Against the engine tests' in-memory fakes (`super::super::tests`).

    use super::super::tests::{fixture, new_entry, options, req, P1};
    use super::*;
    use crate::engine::{Invalidate, Lookup};

    #[tokio::test]
    async fn candidates_rotate_by_id_and_skip_young_and_expired_entries() {
        let f = fixture(crate::CacheOptions {
            ttl_secs: Some(1_000),
            ..options(0.9)
        });
        let mut old = Vec::new();
        for i in 0..10 {
            old.push(
                f.cache
                    .insert(new_entry(P1, &format!("old entry {i}")))
                    .await
                    .unwrap(),
            );
        }
        f.clock.advance_ms(900_000);
        let young = f.cache.insert(new_entry(P1, "young entry")).await.unwrap();
        f.clock.advance_ms(60_000);
        old.sort();
        let pick = |after, count| StaleCheck {
            after,
            count,
            min_age_secs: 120,
        };
        let first = f.cache.stale_candidates(&pick(None, 4)).await.unwrap();
        assert_eq!(first, old[..4]);
        let second = f
            .cache
            .stale_candidates(&pick(Some(old[3]), 4))
            .await
            .unwrap();
        assert_eq!(second, old[4..8]);
        // The rotation wraps: the last two, then the first two again.
        let third = f
            .cache
            .stale_candidates(&pick(Some(old[7]), 4))
            .await
            .unwrap();
        assert_eq!(third, [old[8], old[9], old[0], old[1]]);
        let all = f.cache.stale_candidates(&pick(None, 100)).await.unwrap();
        assert_eq!(all, old, "the young entry waits");
        assert!(!all.contains(&young));
        assert!(f
            .cache
            .stale_candidates(&pick(None, 0))
            .await
            .unwrap()
            .is_empty());
        // Past the TTL the old entries are not worth checking; the young one now is.
        f.clock.advance_ms(70_000);
        let left = f.cache.stale_candidates(&pick(None, 100)).await.unwrap();
        assert_eq!(left, [young]);
    }

    #[tokio::test]
    async fn replace_keeps_the_entry_and_refuses_a_changed_or_removed_one() {
        let f = fixture(options(0.5));
        let id = f
            .cache
            .insert(new_entry(P1, "alpha beta gamma"))
            .await
            .unwrap();
        let before = f.store.entries.lock()[&id].clone();
        f.clock.advance_ms(5_000);
        let fresh = Answer::Body(b"a new answer".to_vec());
        let usage = Usage {
            prompt_tokens: 1,
            completion_tokens: 2,
        };
        // Compared against an answer the entry no longer holds: left alone.
        let wrong = Answer::Body(b"something else".to_vec());
        assert!(!f
            .cache
            .replace_answer(id, &wrong, fresh.clone(), usage)
            .await
            .unwrap());
        assert!(f
            .cache
            .replace_answer(id, &before.answer, fresh.clone(), usage)
            .await
            .unwrap());
        let after = f.store.entries.lock()[&id].clone();
        assert_eq!(after.answer, fresh);
        assert_eq!(after.usage, usage);
        assert_eq!(after.created_at_ms, before.created_at_ms + 5_000);
        assert_eq!(
            (&after.prompt, &after.vector, after.exact_key),
            (&before.prompt, &before.vector, before.exact_key)
        );
        // Still served, exactly and semantically.
        match f.cache.lookup(&req(P1, "gamma beta alpha")).await {
            Lookup::SemanticHit { entry, .. } => assert_eq!(entry.answer, fresh),
            other => panic!("{other:?}"),
        }
        // Once invalidated, a replacement does not bring it back.
        f.cache.invalidate(&Invalidate::Id(id)).await.unwrap();
        assert!(!f
            .cache
            .replace_answer(id, &fresh, Answer::Body(b"x".to_vec()), usage)
            .await
            .unwrap());
        assert!(f.store.entries.lock().is_empty());
        assert!(f.index.vectors.lock().is_empty());
        let c = f.cache.counters().await.unwrap();
        assert_eq!((c.stale_replaced, c.removed_stale), (1, 0));
    }

    #[tokio::test]
    async fn remove_stale_counts_its_own_cause() {
        let f = fixture(options(0.5));
        let id = f.cache.insert(new_entry(P1, "red green")).await.unwrap();
        assert!(f.cache.remove_stale(id).await.unwrap());
        assert!(!f.cache.remove_stale(id).await.unwrap());
        assert!(f.index.vectors.lock().is_empty());
        let c = f.cache.counters().await.unwrap();
        assert_eq!((c.removed_stale, c.removed_invalidated), (1, 0));
    }
}
