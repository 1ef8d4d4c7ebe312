//! Removals: one entry, or every entry a selector names (tag, model, namespace, tenant,
//! age, all): the store first, then the index, so no removed entry is served after the
//! call returns (lookups re-read every candidate from the store).

use crate::entry::EntryId;

use super::{Cache, InsertError, Invalidate, INVALIDATE_BATCH};

impl Cache {
    /// Removes an entry from store and index.
    pub async fn remove(&self, id: EntryId) -> Result<bool, InsertError> {
        match self.inner.store.remove(id).await? {
            Some(entry) => {
                if let Some(c) = &self.inner.calibration {
                    c.forget(id);
                }
                if let Some(space) = self.indexed_in(&entry) {
                    space.index.remove(entry.partition, id).await?;
                }
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// Removes every entry `what` selects; returns how many were removed.
    ///
    /// The store is written first: once a batch's removal has committed, no lookup can
    /// serve its entries (lookups re-read every candidate from the store), whatever the
    /// index still lists. Their vectors are then dropped from the index; a failure there
    /// is logged, not returned, because it cannot make a removed entry servable.
    ///
    /// Entries stored while an invalidation runs may survive it: it removes what existed
    /// when it looked.
    pub async fn invalidate(&self, what: &Invalidate) -> Result<u64, InsertError> {
        let store = &self.inner.store;
        let ids: Vec<EntryId> = match what {
            Invalidate::Id(id) => vec![*id],
            Invalidate::Tag(tag) => store.ids_with_tag(tag).await?,
            Invalidate::Model(_)
            | Invalidate::Namespace(_)
            | Invalidate::OlderThan { .. }
            | Invalidate::All => {
                let now = self.inner.clock.now_ms();
                let selects = |m: &crate::traits::EntryMeta<'_>| match what {
                    Invalidate::Model(model) => m.model == model,
                    Invalidate::Namespace(ns) => crate::entry::tenant_matches(m.namespace, ns),
                    Invalidate::OlderThan { secs } => {
                        now.saturating_sub(m.created_at_ms) >= secs.saturating_mul(1000)
                    }
                    Invalidate::All => true,
                    Invalidate::Id(_) | Invalidate::Tag(_) => false,
                };
                let mut ids = Vec::new();
                store
                    .scan_meta(&mut |m| {
                        if selects(m) {
                            ids.push(m.id);
                        }
                    })
                    .await?;
                ids
            }
        };
        let removed = self.remove_ids(&ids).await?;
        self.inner.pending.lock().removed_invalidated += removed;
        Ok(removed)
    }

    /// Removes `ids` from the store (in transactions of [`INVALIDATE_BATCH`]), then drops
    /// the removed entries' vectors from the index; returns how many entries existed and
    /// were removed. The order is what makes removal safe for concurrent lookups (see
    /// [`Cache::invalidate`]): an index failure is logged, not returned, because it cannot
    /// make a removed entry servable.
    pub(super) async fn remove_ids(&self, ids: &[EntryId]) -> Result<u64, InsertError> {
        let mut removed = 0u64;
        for batch in ids.chunks(INVALIDATE_BATCH) {
            let gone = self.inner.store.remove_many(batch).await?;
            removed += gone.len() as u64;
            for (id, partition, had_vector) in gone {
                if let Some(c) = &self.inner.calibration {
                    c.forget(id);
                }
                if !had_vector {
                    continue;
                }
                self.unindex(partition, id).await;
            }
        }
        Ok(removed)
    }
}
