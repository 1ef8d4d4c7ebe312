//! Start-up work: the categories' example prompts embedded, and the index rebuilt from
//! the store's vectors.

use std::sync::Arc;

use crate::entry::EntryId;
use crate::key::PartitionKey;
use crate::traits::EmbedError;

use super::{Cache, InsertError};

impl Cache {
    /// Embeds the categories' example prompts so prompts can be classified by their
    /// nearest example. Call once at start; until then only hints and keywords classify.
    pub async fn embed_category_examples(&self) -> Result<usize, EmbedError> {
        let policy = self.policy();
        let examples = policy.example_texts();
        if examples.is_empty() {
            return Ok(0);
        }
        let texts: Vec<String> = examples
            .iter()
            .map(|(_, t)| crate::key::normalize_prompt(t))
            .collect();
        let mut updated = (*policy).clone();
        // Each space's embedder embeds them all: a prompt is compared with the examples in
        // its own space.
        for (no, space) in self.inner.spaces.iter().enumerate() {
            let vectors = space.embedder.embed(&texts).await?;
            if vectors.len() != texts.len() {
                return Err(EmbedError::Shape {
                    want: texts.len(),
                    got: vectors.len(),
                    dim: space.embedder.dim(),
                });
            }
            updated.set_space_examples(
                no,
                space.examples_min_similarity,
                examples.iter().map(|(id, _)| *id).zip(vectors).collect(),
            );
        }
        *self.inner.policy.write() = Arc::new(updated);
        Ok(texts.len())
    }

    /// Loads every stored vector of the cache's embedders into their indexes. Entries
    /// embedded by another model stay exact-only. Returns how many vectors were indexed.
    pub async fn rebuild_index(&self) -> Result<u64, InsertError> {
        self.rebuild_from(0).await
    }

    /// [`Cache::rebuild_index`] for the other languages' index only (when the first one
    /// came from a snapshot); 0 without one.
    pub async fn rebuild_other_languages_index(&self) -> Result<u64, InsertError> {
        if self.inner.spaces.len() < 2 {
            return Ok(0);
        }
        self.rebuild_from(1).await
    }

    /// Loads the stored vectors of the spaces from `first` on into their indexes.
    async fn rebuild_from(&self, first: usize) -> Result<u64, InsertError> {
        let spaces = &self.inner.spaces;
        let mut batch: Vec<(usize, EntryId, PartitionKey, Vec<f32>)> = Vec::new();
        let mut skipped = 0u64;
        self.inner
            .store
            .scan_vectors(&mut |id, partition, embedder_id, vector| {
                if vector.is_empty() {
                    return;
                }
                match spaces.iter().position(|s| s.embedder.id() == embedder_id) {
                    Some(no) if no >= first => batch.push((no, id, partition, vector.to_vec())),
                    Some(_) => {}
                    None => skipped += 1,
                }
            })
            .await?;
        if skipped > 0 {
            tracing::warn!(
                skipped,
                embedder = %spaces[0].embedder.id(),
                "entries embedded by another model are served by exact match only"
            );
        }
        let n = batch.len() as u64;
        for (no, id, partition, vector) in batch {
            spaces[no].index.insert(partition, id, &vector).await?;
        }
        Ok(n)
    }
}
