//! The error budget's labels ([`crate::budget`]): a miss's fresh answer compared with its
//! nearest candidate's, a served hit's audit, a client's verdict, and the calibration's
//! persistence in the store. Nothing here runs on the request path.

use crate::entry::{Answer, EntryId};
use crate::traits::{EmbedError, StoreError};

use super::{
    Cache, InsertError, LabelTicket, Labelled, Observation, CALIBRATION_COUNTS, CALIBRATION_STATE,
    LABELS_PER_MISS,
};

/// The counter that says the store's label counters were seeded from saved labels.
const SEEDED: &str = "seeded";

impl Cache {
    /// The cosine similarity of two texts' embeddings by the cache's embedder (1 for equal
    /// texts, without embedding them): how close two answers to one request are.
    pub async fn text_similarity(&self, a: &str, b: &str) -> Result<f32, EmbedError> {
        if a == b {
            return Ok(1.0);
        }
        // The first text's embedder: answers to one request are in one language.
        let embedder = self.embedder_for(a);
        let vectors = embedder.embed(&[a.to_string(), b.to_string()]).await?;
        match vectors.as_slice() {
            [x, y] => Ok(x.iter().zip(y).map(|(p, q)| p * q).sum()),
            _ => Err(EmbedError::Shape {
                want: 2,
                got: vectors.len(),
                dim: embedder.dim(),
            }),
        }
    }

    /// Whether two answers to one request agree ([`crate::verify::answer`]): the text an
    /// answer stored for a similar prompt, and the upstream's fresh one. Embeds both unless
    /// they are identical or structured.
    pub async fn answers_agree(&self, cached: &str, fresh: &str) -> Result<bool, EmbedError> {
        if let Some(decided) = crate::verify::answer::agree_without_embedding(cached, fresh) {
            return Ok(decided);
        }
        let cosine = self.text_similarity(cached, fresh).await?;
        let least = self.inner.options.answer_min_similarity.unwrap_or_else(|| {
            crate::verify::answer::default_min_similarity(self.embedder_for(cached).id())
        });
        Ok(crate::verify::answer::agree(cached, fresh, cosine, least))
    }

    /// Labels a miss once the upstream has answered it (off the request path). The first
    /// of the ticket's candidates that is still stored and passes [`Cache::hard_checks`]
    /// — the one a lookup would have served — has its stored answer compared with the
    /// fresh one ([`crate::verify::answer`]), and the calibration learns whether serving it
    /// would have been right. `new_entry`, the entry that stored the fresh answer (if it
    /// was stored), joins the answer group of the first candidate whose answer agrees (up
    /// to [`LABELS_PER_MISS`] are compared), else it starts its own. `text_of` gives an
    /// answer's text (the caller knows the wire format); a candidate whose text it cannot
    /// give is passed over. Returns the label recorded, if any.
    pub async fn label(
        &self,
        ticket: &LabelTicket,
        query: &str,
        fresh: &str,
        new_entry: Option<EntryId>,
        text_of: impl Fn(&Answer) -> Option<String>,
    ) -> Result<Option<Observation>, InsertError> {
        let inner = &self.inner;
        let Some(calibration) = &inner.calibration else {
            return Ok(None);
        };
        let space = self.space_for(query);
        let mut query_unseen = None;
        let mut label = None;
        let mut compared = 0;
        let mut group = None;
        for &Labelled {
            id,
            similarity,
            support,
            vouched,
        } in &ticket.candidates
        {
            if compared == LABELS_PER_MISS
                || (label.is_some() && (group.is_some() || new_entry.is_none()))
            {
                break;
            }
            let Some(entry) = inner.store.get(id).await? else {
                continue;
            };
            if self
                .hard_checks(space, &entry.prompt, query, &mut query_unseen)
                .is_err()
            {
                continue;
            }
            let Some(cached) = text_of(&entry.answer) else {
                continue;
            };
            compared += 1;
            let agreed = self.answers_agree(&cached, fresh).await?;
            if label.is_none() {
                calibration.observe(&ticket.category, support, similarity, agreed, vouched);
                label = Some(Observation {
                    candidate: id,
                    similarity,
                    support,
                    vouched,
                    agreed,
                });
            }
            if agreed && group.is_none() {
                group = Some(id);
            }
        }
        if let Some(new) = new_entry {
            match group {
                Some(id) => calibration.join(new, id, true),
                None => calibration.join(new, new, false),
            }
        }
        Ok(label)
    }

    /// Records a client's verdict on a semantic hit it was served under an error budget
    /// (`ticket` is the hit's audit ticket): a label like an audit's, right or wrong.
    /// Returns the label, or `None` without a budget.
    pub fn feedback(&self, ticket: &LabelTicket, right: bool) -> Option<Observation> {
        let calibration = self.inner.calibration.as_ref()?;
        let c = ticket.candidates.first()?;
        calibration.observe(&ticket.category, c.support, c.similarity, right, c.vouched);
        Some(Observation {
            candidate: c.id,
            similarity: c.similarity,
            support: c.support,
            vouched: c.vouched,
            agreed: right,
        })
    }

    /// Shares the error budget's labels through the store: the counts added since the
    /// last call go to the store's counters ([`EntryStore::add_state_counts`]), and the
    /// counters as the store then holds them — this replica's labels and those of every
    /// replica sharing the store — become the calibration's. The rest of what it learned
    /// (answer groups, and the whole view for a store that keeps no counters) is saved
    /// ([`EntryStore::save_state`]) if it changed since the last save. Returns whether
    /// anything was written. Counts the store did not take are kept for the next call.
    ///
    /// [`EntryStore::add_state_counts`]: crate::traits::EntryStore::add_state_counts
    /// [`EntryStore::save_state`]: crate::traits::EntryStore::save_state
    pub async fn sync_calibration(&self) -> Result<bool, StoreError> {
        let Some(calibration) = &self.inner.calibration else {
            return Ok(false);
        };
        let delta = calibration.take_pending();
        let added = !delta.is_empty();
        match self
            .inner
            .store
            .add_state_counts(CALIBRATION_COUNTS, &delta)
            .await
        {
            Ok(Some(totals)) => calibration.adopt(&totals),
            Ok(None) => {}
            Err(e) => {
                calibration.return_pending(delta);
                return Err(e);
            }
        }
        let Some((version, snapshot)) = calibration.unsaved() else {
            return Ok(added);
        };
        let bytes = serde_json::to_vec(&snapshot).map_err(|e| StoreError::Backend {
            backend: "calibration",
            source: Box::new(e),
        })?;
        self.inner
            .store
            .save_state(CALIBRATION_STATE, &bytes)
            .await?;
        calibration.saved(version);
        Ok(true)
    }

    /// Takes over the error budget's labels kept with the store (at start); returns
    /// whether there were any. The saved state gives the answer groups; the store's
    /// counters, where it keeps them, give the labels and tallies of every replica. A store
    /// that has no counters yet is seeded once with the labels saved before it kept any
    /// (the first replica to start seeds it, a `seeded` counter says which). Saved state
    /// that cannot be read is logged and left alone (the budget learns again, and the next
    /// save replaces it).
    pub async fn load_calibration(&self) -> Result<bool, StoreError> {
        let Some(c) = &self.inner.calibration else {
            return Ok(false);
        };
        let mut loaded = false;
        if let Some(bytes) = self.inner.store.load_state(CALIBRATION_STATE).await? {
            match serde_json::from_slice(&bytes) {
                Ok(snapshot) => {
                    c.restore(snapshot);
                    loaded = true;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "the error budget's saved labels are unreadable; learning again");
                }
            }
        }
        let seed = [(SEEDED.to_string(), 1)];
        let Some(mut totals) = self
            .inner
            .store
            .add_state_counts(CALIBRATION_COUNTS, &seed)
            .await?
        else {
            return Ok(loaded);
        };
        let first = totals.iter().any(|(k, v)| k == SEEDED && *v == 1);
        let counts = c.counts();
        if first && !counts.is_empty() {
            match self
                .inner
                .store
                .add_state_counts(CALIBRATION_COUNTS, &counts)
                .await
            {
                Ok(Some(seeded)) => totals = seeded,
                Ok(None) => {}
                // The marker is taken: the saved labels go with the next sync instead.
                Err(e) => {
                    c.return_pending(counts);
                    return Err(e);
                }
            }
        }
        c.adopt(&totals);
        Ok(loaded || totals.iter().any(|(k, v)| k != SEEDED && *v > 0))
    }

    /// Checks the answer comparison itself on an exact hit of `category` served under an
    /// error budget, once the upstream has answered the same request again (off the request
    /// path): the stored answer (`stored`, its comparable text) is right by definition, so
    /// calling the fresh one different is the comparison's own error, which the budget's
    /// certificates then discount ([`crate::budget`]). Returns whether the two were judged
    /// to agree; `None` when the category has no budget.
    pub async fn check_judge(
        &self,
        category: &str,
        stored: &str,
        fresh: &str,
    ) -> Result<Option<bool>, EmbedError> {
        let Some(calibration) = &self.inner.calibration else {
            return Ok(None);
        };
        if calibration.budgets().of(category).is_none() {
            return Ok(None);
        }
        let agreed = self.answers_agree(stored, fresh).await?;
        calibration.judged(category, !agreed);
        Ok(Some(agreed))
    }

    /// Audits a semantic hit served under an error budget, once the upstream has answered
    /// the same request (off the request path): the served answer is compared with the
    /// fresh one, the verdict counts in the live audit's tally, and it is a label like a
    /// miss's, so the labels keep covering the similarities the budget now serves (which
    /// produce no misses any more). Returns the label, if the entry could be compared.
    pub async fn audit(
        &self,
        ticket: &LabelTicket,
        query: &str,
        fresh: &str,
        text_of: impl Fn(&Answer) -> Option<String>,
    ) -> Result<Option<Observation>, InsertError> {
        let label = self.label(ticket, query, fresh, None, text_of).await?;
        if let (Some(o), Some(c)) = (&label, &self.inner.calibration) {
            c.audited(&ticket.category, !o.agreed);
        }
        Ok(label)
    }
}
