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
        let vectors = self.inner.embedder.embed(&texts).await?;
        if vectors.len() != texts.len() {
            return Err(EmbedError::Shape {
                want: texts.len(),
                got: vectors.len(),
                dim: self.inner.embedder.dim(),
            });
        }
        let mut updated = (*policy).clone();
        updated.set_example_vectors(
            examples
                .into_iter()
                .map(|(id, _)| id)
                .zip(vectors)
                .collect(),
        );
        *self.inner.policy.write() = Arc::new(updated);
        Ok(texts.len())
    }

    /// Loads every stored vector of the current embedder into the index. Entries embedded
    /// by another model stay exact-only. Returns how many vectors were indexed.
    pub async fn rebuild_index(&self) -> Result<u64, InsertError> {
        let want = self.inner.embedder.id().to_string();
        let mut batch: Vec<(EntryId, PartitionKey, Vec<f32>)> = Vec::new();
        let mut skipped = 0u64;
        self.inner
            .store
            .scan_vectors(&mut |id, partition, embedder_id, vector| {
                if vector.is_empty() {
                    return;
                }
                if embedder_id == want {
                    batch.push((id, partition, vector.to_vec()));
                } else {
                    skipped += 1;
                }
            })
            .await?;
        if skipped > 0 {
            tracing::warn!(
                skipped,
                embedder = %want,
                "entries embedded by another model are served by exact match only"
            );
        }
        let n = batch.len() as u64;
        for (id, partition, vector) in batch {
            self.inner.index.insert(partition, id, &vector).await?;
        }
        Ok(n)
    }
}
