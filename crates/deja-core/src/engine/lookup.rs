//! Lookups: exact first (no embedding computed), then the nearest candidates of the request's
//! partition through the freshness, veto and verification checks (and, under an error
//! budget, its certified similarity), then a miss. Every candidate is re-read from the
//! store before it is served.

use std::time::Instant;

use crate::entry::{Entry, EntryId};
use crate::key::ExactKey;
use crate::policy::{CategoryId, Policy};
use crate::traits::EmbedError;
use crate::verify::RejectReason;

use super::alias::Alias;
use super::{
    category_ttl_secs, younger_than, BypassReason, Cache, ErrorChain, LabelTicket, Labelled,
    Lookup, LookupRequest, SemanticMode, Space, StageTimes, VerifyMode, DEFAULT_GATE,
    SAME_REQUEST_FLOOR,
};

impl Cache {
    /// Whether an entry may still be served: younger than its category's TTL and the
    /// request's `max-age`.
    pub(super) fn is_fresh(
        &self,
        policy: &Policy,
        entry: &Entry,
        max_age_secs: Option<u64>,
        now_ms: u64,
    ) -> bool {
        let limit = match (category_ttl_secs(policy, &entry.category), max_age_secs) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        limit.is_none_or(|secs| younger_than(entry.created_at_ms, now_ms, secs))
    }

    /// Exact, then semantic, then miss. Never fails: a backend fault is a bypass.
    pub async fn lookup(&self, req: &LookupRequest<'_>) -> Lookup {
        self.lookup_timed(req).await.0
    }

    /// [`Cache::lookup`], also saying where the time went.
    pub async fn lookup_timed(&self, req: &LookupRequest<'_>) -> (Lookup, StageTimes) {
        let mut times = StageTimes::default();
        let found = self.lookup_inner(req, &mut times).await;
        let mut pending = self.inner.pending.lock();
        match &found {
            Lookup::ExactHit(e) => {
                pending.exact_hits += 1;
                pending.prompt_tokens_saved += e.usage.prompt_tokens;
                pending.completion_tokens_saved += e.usage.completion_tokens;
            }
            Lookup::SemanticHit { entry: e, .. } => {
                pending.semantic_hits += 1;
                pending.prompt_tokens_saved += e.usage.prompt_tokens;
                pending.completion_tokens_saved += e.usage.completion_tokens;
            }
            Lookup::Miss { rejected, .. } => {
                pending.misses += 1;
                if rejected.is_some() {
                    pending.verification_rejects += 1;
                }
            }
            Lookup::Bypass(_) => pending.bypasses += 1,
        }
        (found, times)
    }

    pub(super) async fn lookup_inner(
        &self,
        req: &LookupRequest<'_>,
        times: &mut StageTimes,
    ) -> Lookup {
        let inner = &self.inner;
        let policy = self.policy();
        let now = inner.clock.now_ms();
        // Hints and keywords decide before anything is looked up, so an uncacheable
        // category never touches the cache. A hint may only tighten: what the prompt is
        // classified as still counts (see `Policy::tightened`).
        let hint: Option<CategoryId> = req.category.and_then(|name| policy.by_name(name));
        let classified: Option<CategoryId> = policy.classify_text(req.prompt);
        let uncacheable = |c: Option<CategoryId>| c.is_some_and(|c| !policy.get(c).cacheable);
        if uncacheable(hint) || uncacheable(classified) {
            return Lookup::Bypass(BypassReason::UncacheableCategory);
        }
        let exact_key = ExactKey::new(&req.partition, req.prompt);
        let started = Instant::now();
        let exact = inner.store.get_exact(&exact_key).await;
        times.store += started.elapsed();
        match exact {
            Ok(Some(entry)) if self.is_fresh(&policy, &entry, req.max_age_secs, now) => {
                self.note_hit(entry.id, now).await;
                return Lookup::ExactHit(entry);
            }
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(error = %ErrorChain(&e), "store lookup failed; bypassing cache");
                return Lookup::Bypass(BypassReason::StoreError);
            }
        }
        if req.semantic == SemanticMode::Allowed {
            if let Some(found) = self
                .aliased(req, &exact_key, hint, &policy, now, times)
                .await
            {
                return found;
            }
        }
        if req.semantic == SemanticMode::ExactOnly || req.prompt.is_empty() {
            return Lookup::Miss {
                vector: None,
                nearest: None,
                nearest_id: None,
                rejected: None,
                threshold: None,
                category: policy.tightened(hint, classified).name.to_string(),
                label: None,
            };
        }
        // The prompt's embedding space: its embedder, index and verifiers. Where its
        // language was guessed rather than told, a paraphrase may sit in the other space:
        // it is searched too before the miss is final (the miss stays the first space's,
        // whose vector the entry will be stored with).
        let (space_no, space, told) = self.space_at(req.prompt);
        let first = self
            .semantic(
                req, space_no, space, hint, classified, &policy, exact_key, now, times,
            )
            .await;
        if told || !matches!(first, Lookup::Miss { .. }) {
            return first;
        }
        let Some((other_no, other)) = self
            .inner
            .spaces
            .iter()
            .enumerate()
            .find(|(no, _)| *no != space_no)
        else {
            return first;
        };
        match self
            .semantic(
                req, other_no, other, hint, classified, &policy, exact_key, now, times,
            )
            .await
        {
            hit @ Lookup::SemanticHit { .. } => hit,
            _ => first,
        }
    }

    /// The semantic part of a lookup in embedding space `space` (number `space_no`): the
    /// prompt embedded, classified by its nearest category example, the nearest
    /// candidates of its partition through the checks.
    #[allow(clippy::too_many_arguments)]
    async fn semantic(
        &self,
        req: &LookupRequest<'_>,
        space_no: usize,
        space: &Space,
        hint: Option<CategoryId>,
        mut classified: Option<CategoryId>,
        policy: &Policy,
        exact_key: ExactKey,
        now: u64,
        times: &mut StageTimes,
    ) -> Lookup {
        let inner = &self.inner;
        let uncacheable = |c: Option<CategoryId>| c.is_some_and(|c| !policy.get(c).cacheable);
        let started = Instant::now();
        let embedded = space.embedder.embed(&[req.prompt.to_string()]).await;
        times.embed += started.elapsed();
        let vector = match embedded {
            Ok(mut v) if v.len() == 1 => v.swap_remove(0),
            Ok(v) => {
                let e = EmbedError::Shape {
                    want: 1,
                    got: v.len(),
                    dim: space.embedder.dim(),
                };
                tracing::warn!(error = %e, "embedder failed; bypassing cache");
                return Lookup::Bypass(BypassReason::EmbedError);
            }
            Err(e) => {
                tracing::warn!(error = %ErrorChain(&e), "embedder failed; bypassing cache");
                return Lookup::Bypass(BypassReason::EmbedError);
            }
        };
        if classified.is_none() {
            classified = policy.classify_vector_in(space_no, &vector);
            if uncacheable(classified) {
                return Lookup::Bypass(BypassReason::UncacheableCategory);
            }
        }
        let spec = policy.tightened(hint, classified);
        let threshold = req
            .min_similarity
            .map_or(spec.min_similarity, |m| m.max(spec.min_similarity));
        // The pair model's path reaches below the gate, down to its own (unless the client
        // set a threshold or the category is stricter than the default).
        let pair_gate = space
            .pair
            .as_ref()
            .filter(|_| req.min_similarity.is_none() && spec.min_similarity <= DEFAULT_GATE)
            .map(|(m, _)| m.file().min_similarity);
        let floor = pair_gate.map_or(SAME_REQUEST_FLOOR, |g| g.min(SAME_REQUEST_FLOOR));
        let started = Instant::now();
        // Nothing below `floor` (or the threshold, if lower: an error budget's certified
        // one) is ever served, so the index may search wider until it finds something
        // above it.
        let searched = space
            .index
            .search_near(
                req.partition,
                &vector,
                inner.options.candidates.max(1),
                floor.min(threshold),
            )
            .await;
        times.search += started.elapsed();
        let neighbors = match searched {
            Ok(n) => n,
            Err(e) => {
                tracing::warn!(error = %ErrorChain(&e), "index search failed; bypassing cache");
                return Lookup::Bypass(BypassReason::IndexError);
            }
        };
        // The best candidate not served, and its entry.
        let mut nearest: Option<(f32, EntryId)> = None;
        let mut not_served = |n: &crate::traits::Neighbor| {
            if nearest.is_none_or(|(s, _)| n.similarity > s) {
                nearest = Some((n.similarity, n.id));
            }
        };
        let mut rejected = None;
        // What the embedder could not see of the request (computed for the first
        // candidate that reaches verification).
        let mut query_unseen: Option<Vec<String>> = None;
        // The error budget decides where its labels have certified a threshold (never
        // with verification off). Its labels are the first embedder's similarities: in the
        // other languages' space, whose cosines sit elsewhere, the verifiers decide as
        // without a budget.
        let calibration = inner
            .calibration
            .as_ref()
            .filter(|_| inner.options.verify != VerifyMode::Off && space_no == 0);
        let found: Vec<EntryId> = match calibration {
            Some(_) => neighbors.iter().map(|n| n.id).collect(),
            None => Vec::new(),
        };
        let mut ticket: Vec<Labelled> = Vec::new();
        for n in neighbors {
            let decided = calibration.and_then(|c| c.decide(spec.name, n.id, &found));
            if let Some(d) = &decided {
                // Labels start at the floor, so nothing below it is certified; a client's
                // threshold only raises the certified one. The labels were learned on the
                // nearest candidate the hard checks let through, so once it is decided the
                // search ends: one further away is not served in its place.
                if n.similarity < SAME_REQUEST_FLOOR
                    || req.min_similarity.is_some_and(|m| n.similarity < m)
                {
                    not_served(&n);
                    break;
                }
                ticket.push(Labelled {
                    id: n.id,
                    similarity: n.similarity,
                    support: d.support,
                    vouched: false,
                });
            }
            // Below the threshold, a candidate may still be the same request in other
            // wording (case, punctuation, contractions, typos, a question frame), which
            // similarity measures badly for short prompts ("How do I reset my pasword?",
            // 0.63): it is read and checked for that alone, or by the pair model's path
            // (never when the client raised the threshold itself, nor with verification
            // off).
            let below = n.similarity < threshold;
            if decided.is_none()
                && below
                && (n.similarity < floor
                    || req.min_similarity.is_some()
                    || inner.options.verify == VerifyMode::Off)
            {
                not_served(&n);
                continue;
            }
            let started = Instant::now();
            let got = inner.store.get(n.id).await;
            times.store += started.elapsed();
            let entry = match got {
                Ok(Some(entry))
                    if entry.partition == req.partition
                        && entry.embedder_id == space.embedder.id()
                        && self.is_fresh(policy, &entry, req.max_age_secs, now) =>
                {
                    entry
                }
                // Removed, expired or replaced since the index saw it: not servable.
                Ok(_) => continue,
                Err(e) => {
                    tracing::warn!(error = %ErrorChain(&e), "store read failed; bypassing cache");
                    return Lookup::Bypass(BypassReason::StoreError);
                }
            };
            let started = Instant::now();
            // Under an error budget, what no label can make servable (the veto rules, a
            // difference where the embedder is blind) is passed over first, as the
            // labelling passes it over.
            if decided.is_some() {
                if let Err(reason) =
                    self.hard_checks(space, &entry.prompt, req.prompt, &mut query_unseen)
                {
                    times.verify += started.elapsed();
                    rejected.get_or_insert(reason);
                    not_served(&n);
                    continue;
                }
            }
            let verdict = self
                .verdict(
                    space,
                    &entry.prompt,
                    req.prompt,
                    n.similarity,
                    below,
                    pair_gate.is_some_and(|g| n.similarity >= g),
                    decided.is_some(),
                    &spec,
                    &mut query_unseen,
                )
                .await;
            times.verify += started.elapsed();
            let vouched = matches!(verdict, Some(Ok(())));
            match (decided, verdict) {
                // Without a budget the verifier decides.
                (None, None) => {
                    not_served(&n);
                    continue;
                }
                (None, Some(Err(reason))) => {
                    rejected.get_or_insert(reason);
                    not_served(&n);
                    continue;
                }
                (None, Some(Ok(()))) => {}
                // Under one, the labels: at what the plain cells certify whatever the
                // verifier says, or at what the vouched ones certify if it accepted.
                (Some(d), verdict) => {
                    if let Some(last) = ticket.last_mut() {
                        last.vouched = vouched;
                    }
                    if !d.threshold(vouched).is_some_and(|t| n.similarity >= t) {
                        if let Some(Err(reason)) = verdict {
                            rejected.get_or_insert(reason);
                        }
                        not_served(&n);
                        break;
                    }
                }
            }
            self.note_hit(entry.id, now).await;
            let audit = decided.map(|d| LabelTicket {
                category: spec.name.to_string(),
                candidates: vec![Labelled {
                    id: n.id,
                    similarity: n.similarity,
                    support: d.support,
                    vouched,
                }],
            });
            if decided.is_none() {
                // Under no error budget the same request will be decided the same way
                // while this entry stands: a repeat need not embed it again.
                inner.aliases.insert(
                    exact_key,
                    Alias {
                        entry: entry.id,
                        created_at_ms: entry.created_at_ms,
                        similarity: n.similarity,
                        hint,
                    },
                );
            }
            return Lookup::SemanticHit {
                entry,
                similarity: n.similarity,
                aliased: false,
                audit,
            };
        }
        Lookup::Miss {
            vector: Some(vector),
            nearest: nearest.map(|(s, _)| s),
            nearest_id: nearest.map(|(_, id)| id),
            rejected,
            threshold: Some(threshold),
            category: spec.name.to_string(),
            label: (!ticket.is_empty()).then(|| LabelTicket {
                category: spec.name.to_string(),
                candidates: ticket,
            }),
        }
    }

    /// What a candidate must pass whatever its similarity or the labels say: the veto rules
    /// (all of them in [`VerifyMode::Rules`]), and no difference where the embedder is
    /// blind ([`Embedder::unseen`]) unless only a question frame differs.
    pub(super) fn hard_checks(
        &self,
        space: &Space,
        cached: &str,
        query: &str,
        query_unseen: &mut Option<Vec<String>>,
    ) -> Result<(), RejectReason> {
        match self.inner.options.verify {
            VerifyMode::Rules => crate::verify::verify(cached, query)?,
            _ => crate::verify::vetoes(cached, query)?,
        }
        let embedder = &space.embedder;
        let unseen = query_unseen.get_or_insert_with(|| embedder.unseen(query));
        if *unseen != embedder.unseen(cached)
            && !crate::verify::same_request(cached, query, embedder.vocabulary())
        {
            return Err(RejectReason::Unseen);
        }
        Ok(())
    }

    /// What the verifier says of a candidate, as it decides without an error budget:
    /// `None` when it is below the gate (`below`) and not the same request in other
    /// wording, so not a candidate at all; else accepted or refused, and why.
    /// `second_path`: the pair model may read it. `hard_checked`: [`Cache::hard_checks`]
    /// passed, so nothing differs where the embedder is blind (not looked at again).
    /// `query_unseen` keeps what the embedder could not see of the request, found once per
    /// lookup.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn verdict(
        &self,
        space: &Space,
        cached: &str,
        query: &str,
        similarity: f32,
        below: bool,
        second_path: bool,
        hard_checked: bool,
        spec: &crate::policy::Applied<'_>,
        query_unseen: &mut Option<Vec<String>>,
    ) -> Option<Result<(), RejectReason>> {
        let verify = self.inner.options.verify;
        let same_request =
            || crate::verify::same_request(cached, query, space.embedder.vocabulary());
        // Prompts whose unseen parts differ (in order: a swap is unseen too) differ where
        // their similarity is blind, unless all they differ in is a question frame
        // ("Comment puis-je …" / "Comment …"); unseen parts that differ only by slips of
        // the other prompt's words ("refnud" / "refund") are blind to the embedding, not to
        // the pair model, which reads their pieces.
        let blind = |query_unseen: &mut Option<Vec<String>>| {
            if verify == VerifyMode::Off || hard_checked {
                return Blind::No;
            }
            let seen = query_unseen.get_or_insert_with(|| space.embedder.unseen(query));
            let other = space.embedder.unseen(cached);
            if *seen == other || same_request() {
                Blind::No
            } else if second_path
                && space
                    .embedder
                    .vocabulary()
                    .is_some_and(|v| v.unseen_are_slips(query, seen, cached, &other))
            {
                Blind::Slips
            } else {
                Blind::Yes
            }
        };
        if below {
            let same = same_request()
                && match verify {
                    VerifyMode::Rules => crate::verify::verify(cached, query),
                    _ => crate::verify::vetoes(cached, query),
                }
                .is_ok();
            return if same {
                Some(Ok(()))
            } else if second_path {
                Some(match blind(query_unseen) {
                    Blind::Yes => Err(RejectReason::Unseen),
                    Blind::No | Blind::Slips => {
                        self.second_path(space, cached, query, similarity, spec)
                            .await
                    }
                })
            } else {
                // Below the gate and not the same request: not a refusal.
                None
            };
        }
        Some(match (blind(query_unseen), verify, &space.verifier) {
            (Blind::Yes, ..) => Err(RejectReason::Unseen),
            // Only the pair model may judge what the embedding did not see.
            (Blind::Slips, ..) => {
                self.second_path(space, cached, query, similarity, spec)
                    .await
            }
            (Blind::No, VerifyMode::Model, Some(model)) => {
                let confidence = spec.min_confidence(model.file().min_confidence);
                match crate::verify::verify_model(
                    model,
                    cached,
                    query,
                    similarity,
                    None,
                    confidence,
                    space.embedder.vocabulary(),
                ) {
                    Ok(_) => Ok(()),
                    // The features alone were not sure: the pair model reads both.
                    Err(RejectReason::Model) if second_path => {
                        self.second_path(space, cached, query, similarity, spec)
                            .await
                    }
                    Err(reason) => Err(reason),
                }
            }
            (Blind::No, VerifyMode::Rules, _) => crate::verify::verify(cached, query),
            // `Cache::new` loads a model for `Model`.
            (Blind::No, VerifyMode::Model, None) | (Blind::No, VerifyMode::Off, _) => Ok(()),
        })
    }

    /// The second path of the learned verifier: the veto rules (cheaper, and precise),
    /// then the pair model reads both prompts and the verifier stacked with it decides
    /// (at its own confidence, or the category's if that is higher). A pair model that
    /// fails refuses the candidate (logged): a fault costs a hit, never a wrong answer.
    pub(super) async fn second_path(
        &self,
        space: &Space,
        cached: &str,
        query: &str,
        similarity: f32,
        spec: &crate::policy::Applied<'_>,
    ) -> Result<(), RejectReason> {
        let Some((stacked, pair)) = &space.pair else {
            return Err(RejectReason::Model);
        };
        crate::verify::vetoes(cached, query)?;
        // An English pair model judges only what its vocabulary reads: in other languages
        // the first path's refusal stands. A multilingual one reads them all.
        if !pair.multilingual()
            && !space
                .embedder
                .vocabulary()
                .is_some_and(|v| v.reads_both(cached, query))
        {
            return Err(RejectReason::Model);
        }
        let logit = match pair.score(&[(cached.to_string(), query.to_string())]).await {
            Ok(v) if v.len() == 1 && v[0].is_finite() => v[0],
            Ok(v) => {
                tracing::warn!(
                    got = v.len(),
                    "pair model gave no usable score; not serving"
                );
                return Err(RejectReason::Model);
            }
            Err(e) => {
                tracing::warn!(error = %ErrorChain(&e), "pair model failed; not serving");
                return Err(RejectReason::Model);
            }
        };
        let own = stacked.file().min_confidence;
        let confidence = spec.min_confidence(own).max(own);
        match crate::verify::verify_model(
            stacked,
            cached,
            query,
            similarity,
            Some(logit),
            confidence,
            space.embedder.vocabulary(),
        ) {
            Ok(_) => Ok(()),
            Err(RejectReason::Model) => Err(RejectReason::Pair),
            Err(reason) => Err(reason),
        }
    }

    /// The entry an earlier semantic hit served this same request, if it may serve it
    /// again (see `alias.rs`); `None` goes on to the semantic search.
    async fn aliased(
        &self,
        req: &LookupRequest<'_>,
        key: &ExactKey,
        hint: Option<CategoryId>,
        policy: &Policy,
        now: u64,
        times: &mut StageTimes,
    ) -> Option<Lookup> {
        let inner = &self.inner;
        let alias = inner.aliases.get(key)?;
        if alias.hint != hint || req.min_similarity.is_some_and(|m| alias.similarity < m) {
            return None;
        }
        let started = Instant::now();
        let got = inner.store.get(alias.entry).await;
        times.store += started.elapsed();
        match got {
            Ok(Some(entry))
                if entry.partition == req.partition
                    && entry.created_at_ms == alias.created_at_ms
                    // Either space: the alias was made by a verified hit there.
                    && self.space_of(&entry.embedder_id).is_some()
                    && self.is_fresh(policy, &entry, req.max_age_secs, now) =>
            {
                self.note_hit(entry.id, now).await;
                Some(Lookup::SemanticHit {
                    entry,
                    similarity: alias.similarity,
                    aliased: true,
                    audit: None,
                })
            }
            // Removed, replaced or expired: the alias goes with it.
            Ok(_) => {
                inner.aliases.forget(key, alias.entry);
                None
            }
            Err(e) => {
                tracing::warn!(error = %ErrorChain(&e), "store read failed; bypassing cache");
                Some(Lookup::Bypass(BypassReason::StoreError))
            }
        }
    }

    pub(super) async fn note_hit(&self, id: EntryId, now: u64) {
        if let Err(e) = self.inner.store.record_hit(id, now).await {
            tracing::warn!(error = %ErrorChain(&e), entry = %id, "recording a hit failed");
        }
    }
}

/// How a candidate and the request differ where the embedding is blind (its unseen parts).
enum Blind {
    /// Not at all (or only in a question frame, or verification is off).
    No,
    /// Only by slips of the other prompt's words: for the pair model to judge.
    Slips,
    /// Otherwise: refused as `unseen`.
    Yes,
}
