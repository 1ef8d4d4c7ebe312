//! The one write path: the store first (the source of truth), then the index; an entry
//! whose indexing fails is rolled back. `restore` writes entries as given (import,
//! replication).

use crate::entry::{Entry, EntryId};
use crate::key::ExactKey;
use crate::policy::DEFAULT_CATEGORY;
use crate::traits::EmbedError;

use super::{Cache, EntryLabels, ErrorChain, InsertError, NewEntry, SemanticMode};

impl Cache {
    /// Stores an answer: store first, then index. If indexing fails the stored entry is
    /// removed again, so an entry is either fully in or fully out.
    pub async fn insert(&self, new: NewEntry) -> Result<EntryId, InsertError> {
        self.insert_labelled(new, EntryLabels::default()).await
    }

    /// [`Cache::insert`], recording the entry's tenant and tags for invalidation.
    pub async fn insert_labelled(
        &self,
        new: NewEntry,
        labels: EntryLabels,
    ) -> Result<EntryId, InsertError> {
        self.insert_recorded(new, labels, None).await
    }

    /// [`Cache::insert_labelled`], also recording the request the answer was given to (the
    /// client's JSON body), so a staleness check can ask the upstream again.
    pub async fn insert_recorded(
        &self,
        new: NewEntry,
        labels: EntryLabels,
        request: Option<Vec<u8>>,
    ) -> Result<EntryId, InsertError> {
        let inner = &self.inner;
        let EntryLabels { namespace, tags } = labels;
        let NewEntry {
            partition,
            prompt,
            model,
            answer,
            usage,
            semantic,
            vector,
            category,
        } = new;
        // The prompt's embedding space, as its lookup chose it: a vector the caller
        // passes is the one that lookup embedded.
        let space = self.space_for(&prompt);
        let vector = match (semantic, vector) {
            (SemanticMode::ExactOnly, _) => Vec::new(),
            (SemanticMode::Allowed, _) if prompt.is_empty() => Vec::new(),
            (SemanticMode::Allowed, Some(v)) => v,
            (SemanticMode::Allowed, None) => {
                let mut v = space.embedder.embed(std::slice::from_ref(&prompt)).await?;
                if v.len() != 1 {
                    return Err(EmbedError::Shape {
                        want: 1,
                        got: v.len(),
                        dim: space.embedder.dim(),
                    }
                    .into());
                }
                v.swap_remove(0)
            }
        };
        let now = inner.clock.now_ms();
        let entry = Entry {
            id: EntryId::random(),
            exact_key: ExactKey::new(&partition, &prompt),
            partition,
            prompt,
            model,
            answer,
            usage,
            created_at_ms: now,
            last_hit_ms: now,
            hit_count: 0,
            category: category.unwrap_or_else(|| DEFAULT_CATEGORY.to_string()),
            namespace: namespace.unwrap_or_default(),
            tags,
            embedder_id: if vector.is_empty() {
                String::new()
            } else {
                space.embedder.id().to_string()
            },
            vector,
            request,
        };
        if let Some(replaced) = inner.store.put(&entry).await? {
            if let Some(c) = &inner.calibration {
                c.forget(replaced);
            }
            // Harmless for correctness if it fails: lookups re-read the store, and the
            // replaced id is gone from it.
            self.unindex(partition, replaced).await;
        }
        if !entry.vector.is_empty() {
            if let Err(e) = space.index.insert(partition, entry.id, &entry.vector).await {
                if let Err(e2) = inner.store.remove(entry.id).await {
                    tracing::error!(error = %ErrorChain(&e2), entry = %entry.id, "rollback of an unindexed entry failed");
                }
                return Err(e.into());
            }
        }
        Ok(entry.id)
    }

    /// Stores an entry exactly as given (id, keys, times, counts), e.g. from an export, and
    /// indexes its vector if this cache's embedder made it (others stay exact-only, as at
    /// start). Store first, then index, as [`Cache::insert`] does.
    pub async fn restore(&self, entry: &Entry) -> Result<(), InsertError> {
        let inner = &self.inner;
        if let Some(replaced) = inner.store.put(entry).await? {
            // Harmless for correctness if it fails: lookups re-read the store.
            self.unindex(entry.partition, replaced).await;
        }
        if let Some(space) = self.indexed_in(entry) {
            if let Err(e) = space
                .index
                .insert(entry.partition, entry.id, &entry.vector)
                .await
            {
                if let Err(e2) = inner.store.remove(entry.id).await {
                    tracing::error!(error = %ErrorChain(&e2), entry = %entry.id, "rollback of an unindexed entry failed");
                }
                return Err(e.into());
            }
        }
        Ok(())
    }

    /// [`Cache::restore`] for a batch: one store write for all of them (one transaction
    /// where the backend has them), then the index. An entry the index refuses is removed
    /// from the store again before the error is returned, so each entry is fully in or
    /// fully out; entries before it in the batch stay.
    pub async fn restore_many(&self, entries: &[Entry]) -> Result<(), InsertError> {
        let inner = &self.inner;
        let replaced = inner.store.put_many(entries).await?;
        for (entry, replaced) in entries.iter().zip(replaced) {
            if let Some(replaced) = replaced {
                // Harmless for correctness if it fails: lookups re-read the store.
                self.unindex(entry.partition, replaced).await;
            }
        }
        for (i, entry) in entries.iter().enumerate() {
            let Some(space) = self.indexed_in(entry) else {
                continue;
            };
            if let Err(e) = space
                .index
                .insert(entry.partition, entry.id, &entry.vector)
                .await
            {
                let unindexed: Vec<EntryId> = entries[i..].iter().map(|e| e.id).collect();
                if let Err(e2) = inner.store.remove_many(&unindexed).await {
                    tracing::error!(error = %ErrorChain(&e2), entry = %entry.id, "rollback of unindexed entries failed");
                }
                return Err(e.into());
            }
        }
        Ok(())
    }

    /// Drops `id` from every space's index (it is in one of them at most): an entry that
    /// was replaced or removed. A failure is logged: it cannot make the entry servable,
    /// since lookups re-read the store.
    pub(super) async fn unindex(&self, partition: crate::key::PartitionKey, id: EntryId) {
        for space in &self.inner.spaces {
            if let Err(e) = space.index.remove(partition, id).await {
                tracing::warn!(error = %ErrorChain(&e), entry = %id, "index removal failed");
            }
        }
    }
}
