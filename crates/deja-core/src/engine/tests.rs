//! The flow against small in-memory fakes; the real backends run the conformance
//! suites in deja-testkit.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use async_trait::async_trait;

use super::*;
use crate::budget::Certified;
use crate::clock::ManualClock;
use crate::key::ExactKey;
use crate::traits::{EntryMeta, Neighbor};

/// Embeds by hashing words into 8 buckets: texts sharing words are similar. Like an
/// English model before Chinese, it does not see words that are not ASCII; with
/// `pieces`, like WordPiece, not those outside its vocabulary either.
#[derive(Default)]
struct WordsEmbedder {
    calls: AtomicUsize,
    fail: AtomicBool,
    vocab: Option<crate::verify::Vocabulary>,
    pieces: bool,
}

#[async_trait]
impl Embedder for WordsEmbedder {
    fn id(&self) -> &str {
        "test:words"
    }
    fn dim(&self) -> usize {
        8
    }
    async fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        if self.fail.load(Ordering::SeqCst) {
            return Err(EmbedError::WorkerGone);
        }
        Ok(texts
            .iter()
            .map(|t| {
                let mut v = [0f32; 8];
                for w in t.to_lowercase().split_whitespace().filter(|w| w.is_ascii()) {
                    let h = blake3::hash(w.as_bytes()).as_bytes()[0] as usize;
                    v[h % 8] += 1.0;
                }
                let n = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-9);
                v.iter().map(|x| x / n).collect()
            })
            .collect())
    }
    fn vocabulary(&self) -> Option<&crate::verify::Vocabulary> {
        self.vocab.as_ref()
    }

    fn unseen(&self, text: &str) -> Vec<String> {
        let outside = |w: &str| {
            self.pieces
                && self
                    .vocab
                    .as_ref()
                    .is_some_and(|v| w.len() > 1 && !v.contains(w))
        };
        text.split_whitespace()
            .filter(|w| !w.is_ascii() || outside(w))
            .map(str::to_string)
            .collect()
    }
}

// `pub(super)`: the engine's submodules' tests (`stale.rs`) use the same fakes.
#[derive(Default)]
pub(super) struct MemStore {
    pub(super) entries: Mutex<HashMap<EntryId, Entry>>,
    fail: AtomicBool,
    state: Mutex<HashMap<String, Vec<u8>>>,
    /// `add_state_counts`'s counters, when `keeps_counts` (a store that keeps none
    /// answers `None`).
    counts: Mutex<HashMap<String, HashMap<String, i64>>>,
    keeps_counts: AtomicBool,
    /// `add_state_counts` calls made, and the one (counting from 1) that fails; 0: none.
    count_calls: AtomicUsize,
    fail_count_call: AtomicUsize,
}

fn backend_err() -> StoreError {
    StoreError::Backend {
        backend: "mem",
        source: "injected fault".into(),
    }
}

#[async_trait]
impl EntryStore for MemStore {
    async fn get_exact(&self, key: &ExactKey) -> Result<Option<Entry>, StoreError> {
        if self.fail.load(Ordering::SeqCst) {
            return Err(backend_err());
        }
        Ok(self
            .entries
            .lock()
            .values()
            .find(|e| e.exact_key == *key)
            .cloned())
    }
    async fn get(&self, id: EntryId) -> Result<Option<Entry>, StoreError> {
        Ok(self.entries.lock().get(&id).cloned())
    }
    async fn put(&self, entry: &Entry) -> Result<Option<EntryId>, StoreError> {
        let mut m = self.entries.lock();
        let old = m
            .values()
            .find(|e| e.exact_key == entry.exact_key)
            .map(|e| e.id);
        if let Some(old) = old {
            m.remove(&old);
        }
        m.insert(entry.id, entry.clone());
        Ok(old)
    }
    async fn remove(&self, id: EntryId) -> Result<Option<Entry>, StoreError> {
        Ok(self.entries.lock().remove(&id))
    }
    async fn record_hit(&self, id: EntryId, at_ms: u64) -> Result<(), StoreError> {
        if let Some(e) = self.entries.lock().get_mut(&id) {
            e.hit_count += 1;
            e.last_hit_ms = at_ms;
        }
        Ok(())
    }
    async fn scan_vectors(
        &self,
        visit: &mut (dyn for<'a> FnMut(EntryId, PartitionKey, &'a str, &'a [f32]) + Send),
    ) -> Result<(), StoreError> {
        for e in self.entries.lock().values() {
            visit(e.id, e.partition, &e.embedder_id, &e.vector);
        }
        Ok(())
    }
    async fn len(&self) -> Result<u64, StoreError> {
        Ok(self.entries.lock().len() as u64)
    }
    async fn ids_with_tag(&self, tag: &str) -> Result<Vec<EntryId>, StoreError> {
        Ok(self
            .entries
            .lock()
            .values()
            .filter(|e| e.tags.iter().any(|t| t == tag))
            .map(|e| e.id)
            .collect())
    }
    async fn scan_meta(
        &self,
        visit: &mut (dyn for<'a> FnMut(&'a EntryMeta<'a>) + Send),
    ) -> Result<(), StoreError> {
        for e in self.entries.lock().values() {
            visit(&EntryMeta {
                id: e.id,
                partition: e.partition,
                model: &e.model,
                namespace: &e.namespace,
                category: &e.category,
                created_at_ms: e.created_at_ms,
                last_hit_ms: e.last_hit_ms,
                hit_count: e.hit_count,
                has_vector: !e.vector.is_empty(),
                tags: e.tags.iter().map(String::as_str).collect(),
                size_bytes: (e.prompt.len() + e.answer.len_bytes()) as u64,
            });
        }
        Ok(())
    }
    async fn remove_many(
        &self,
        ids: &[EntryId],
    ) -> Result<Vec<(EntryId, PartitionKey, bool)>, StoreError> {
        let mut m = self.entries.lock();
        Ok(ids
            .iter()
            .filter_map(|id| m.remove(id))
            .map(|e| (e.id, e.partition, !e.vector.is_empty()))
            .collect())
    }
    async fn add_counters(&self, _: &Counters) -> Result<(), StoreError> {
        Ok(())
    }
    async fn counters(&self) -> Result<Counters, StoreError> {
        Ok(Counters::default())
    }
    async fn flush(&self) -> Result<(), StoreError> {
        Ok(())
    }
    async fn load_state(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.state.lock().get(name).cloned())
    }
    async fn save_state(&self, name: &str, bytes: &[u8]) -> Result<(), StoreError> {
        self.state.lock().insert(name.to_string(), bytes.to_vec());
        Ok(())
    }
    async fn add_state_counts(
        &self,
        name: &str,
        delta: &[(String, i64)],
    ) -> Result<Option<Vec<(String, i64)>>, StoreError> {
        let call = self.count_calls.fetch_add(1, Ordering::SeqCst) + 1;
        if self.fail.load(Ordering::SeqCst) || self.fail_count_call.load(Ordering::SeqCst) == call {
            return Err(backend_err());
        }
        if !self.keeps_counts.load(Ordering::SeqCst) {
            return Ok(None);
        }
        let mut all = self.counts.lock();
        let counts = all.entry(name.to_string()).or_default();
        for (k, v) in delta {
            *counts.entry(k.clone()).or_default() += v;
        }
        Ok(Some(counts.iter().map(|(k, v)| (k.clone(), *v)).collect()))
    }
}

pub(super) struct FlatIndex {
    pub(super) vectors: Mutex<HashMap<(PartitionKey, EntryId), Vec<f32>>>,
    fail_inserts: AtomicBool,
    embedder_id: &'static str,
}

impl Default for FlatIndex {
    fn default() -> Self {
        FlatIndex {
            vectors: Mutex::default(),
            fail_inserts: AtomicBool::default(),
            embedder_id: "test:words",
        }
    }
}

#[async_trait]
impl VectorIndex for FlatIndex {
    fn embedder_id(&self) -> &str {
        self.embedder_id
    }
    fn dim(&self) -> usize {
        8
    }
    async fn insert(
        &self,
        partition: PartitionKey,
        id: EntryId,
        vector: &[f32],
    ) -> Result<(), IndexError> {
        if self.fail_inserts.load(Ordering::SeqCst) {
            return Err(IndexError::Backend {
                backend: "flat",
                source: "injected fault".into(),
            });
        }
        self.vectors.lock().insert((partition, id), vector.to_vec());
        Ok(())
    }
    async fn remove(&self, partition: PartitionKey, id: EntryId) -> Result<(), IndexError> {
        self.vectors.lock().remove(&(partition, id));
        Ok(())
    }
    async fn search(
        &self,
        partition: PartitionKey,
        query: &[f32],
        k: usize,
    ) -> Result<Vec<Neighbor>, IndexError> {
        let mut out: Vec<Neighbor> = self
            .vectors
            .lock()
            .iter()
            .filter(|((p, _), _)| *p == partition)
            .map(|((_, id), v)| Neighbor {
                id: *id,
                similarity: v.iter().zip(query).map(|(a, b)| a * b).sum(),
            })
            .collect();
        out.sort_by(|a, b| b.similarity.total_cmp(&a.similarity));
        out.truncate(k);
        Ok(out)
    }
    async fn len(&self) -> Result<u64, IndexError> {
        Ok(self.vectors.lock().len() as u64)
    }
}

pub(super) struct Fixture {
    pub(super) cache: Cache,
    pub(super) store: Arc<MemStore>,
    pub(super) index: Arc<FlatIndex>,
    embedder: Arc<WordsEmbedder>,
    pub(super) clock: Arc<ManualClock>,
}

pub(super) fn fixture(options: CacheOptions) -> Fixture {
    fixture_with(options, WordsEmbedder::default())
}

fn fixture_with(options: CacheOptions, embedder: WordsEmbedder) -> Fixture {
    let store = Arc::new(MemStore::default());
    let index = Arc::new(FlatIndex::default());
    let embedder = Arc::new(embedder);
    let clock = Arc::new(ManualClock::new(1_000_000));
    let cache = Cache::new(
        store.clone(),
        index.clone(),
        embedder.clone(),
        clock.clone(),
        options,
    )
    .unwrap();
    Fixture {
        cache,
        store,
        index,
        embedder,
        clock,
    }
}

pub(super) const P1: PartitionKey = PartitionKey([1; 16]);
const P2: PartitionKey = PartitionKey([2; 16]);

pub(super) fn new_entry(partition: PartitionKey, prompt: &str) -> NewEntry {
    NewEntry {
        partition,
        prompt: prompt.into(),
        model: "m".into(),
        answer: Answer::Body(prompt.as_bytes().to_vec()),
        usage: Usage {
            prompt_tokens: 3,
            completion_tokens: 5,
        },
        semantic: SemanticMode::Allowed,
        vector: None,
        category: None,
    }
}

pub(super) fn req(partition: PartitionKey, prompt: &str) -> LookupRequest<'_> {
    LookupRequest::new(partition, prompt)
}

/// The fake embedder is a bag of words, so these tests pair reorderings of the same
/// words ("order 4821 where is"); the learned verifier rightly refuses those (swapped
/// roles), so tests about partitions, categories and storage verify with the rules.
/// `the_learned_verifier_refuses_swapped_roles` covers the model.
pub(super) fn options(min_similarity: f32) -> CacheOptions {
    CacheOptions {
        min_similarity,
        verify: VerifyMode::Rules,
        ..CacheOptions::default()
    }
}

#[tokio::test]
async fn prompts_that_differ_where_the_embedder_is_blind_are_not_served() {
    for verify in [VerifyMode::Model, VerifyMode::Rules] {
        let f = fixture(CacheOptions {
            min_similarity: 0.5,
            verify,
            ..CacheOptions::default()
        });
        f.cache
            .insert(new_entry(P1, "how much is 猫粮 per bag"))
            .await
            .unwrap();
        // The embedder sees "how much is per bag" in both: cosine 1, blind to the rest.
        for other in ["how much is 狗粮 per bag", "how much is per bag"] {
            match f.cache.lookup(&req(P1, other)).await {
                Lookup::Miss {
                    rejected, nearest, ..
                } => {
                    assert_eq!(rejected, Some(RejectReason::Unseen), "{verify:?} {other}");
                    assert!(nearest.is_some_and(|s| s > 0.999), "{nearest:?}");
                }
                got => panic!("{verify:?} {other}: {got:?}"),
            }
        }
        // The same unseen words, in the same places: similarity may vouch for the rest.
        assert!(
            matches!(
                f.cache.lookup(&req(P1, "How much is 猫粮 per bag")).await,
                Lookup::SemanticHit { .. }
            ),
            "{verify:?}"
        );
    }
    // With verification off, similarity alone decides (the measuring baseline).
    let off = fixture(CacheOptions {
        min_similarity: 0.5,
        verify: VerifyMode::Off,
        ..CacheOptions::default()
    });
    off.cache
        .insert(new_entry(P1, "how much is 猫粮 per bag"))
        .await
        .unwrap();
    assert!(matches!(
        off.cache.lookup(&req(P1, "how much is 狗粮 per bag")).await,
        Lookup::SemanticHit { .. }
    ));
}

#[tokio::test]
async fn the_learned_verifier_refuses_swapped_roles() {
    let f = fixture(CacheOptions {
        min_similarity: 0.5,
        ..CacheOptions::default()
    });
    assert_eq!(f.cache.options().verify, VerifyMode::Model);
    f.cache
        .insert(new_entry(P1, "Germany beat Brazil in the final"))
        .await
        .unwrap();
    // The same words, so the bag-of-words embedder gives cosine 1.
    match f
        .cache
        .lookup(&req(P1, "Brazil beat Germany in the final"))
        .await
    {
        Lookup::Miss { rejected, .. } => assert_eq!(rejected, Some(RejectReason::Model)),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        f.cache
            .lookup(&req(P1, "germany beat brazil in the final"))
            .await,
        Lookup::SemanticHit { .. }
    ));
    // Veto rules still name their reason.
    f.cache
        .insert(new_entry(P1, "where is order 4821"))
        .await
        .unwrap();
    match f.cache.lookup(&req(P1, "where is order 4812")).await {
        Lookup::Miss { rejected, .. } => assert_eq!(rejected, Some(RejectReason::Number)),
        other => panic!("{other:?}"),
    }
    // A category may ask for more confidence than the model's default.
    let strict = fixture(CacheOptions {
        min_similarity: 0.5,
        min_confidence: Some(1.0),
        ..CacheOptions::default()
    });
    strict
        .cache
        .insert(new_entry(P1, "Germany beat Brazil in the final"))
        .await
        .unwrap();
    // (Not merely another case: prompts that differ only in case, punctuation or
    // contractions are the same request, whatever the confidence.)
    assert!(matches!(
        strict
            .cache
            .lookup(&req(P1, "germany beat brazil in the final"))
            .await,
        Lookup::SemanticHit { .. }
    ));
    assert!(matches!(
        strict
            .cache
            .lookup(&req(P1, "germany beat brazil in the final game"))
            .await,
        Lookup::Miss {
            rejected: Some(RejectReason::Model),
            ..
        }
    ));
}

/// Below the threshold, only the same request in other wording is served; never when
/// the client raised the threshold, nor past a veto.
#[tokio::test]
async fn the_same_request_in_other_wording_is_served_below_the_threshold() {
    let f = fixture(CacheOptions {
        min_similarity: 0.99,
        verify: VerifyMode::Rules,
        ..CacheOptions::default()
    });
    f.cache
        .insert(new_entry(P1, "Where is my order?"))
        .await
        .unwrap();
    match f.cache.lookup(&req(P1, "where's my order")).await {
        Lookup::SemanticHit { similarity, .. } => assert!(similarity < 0.99, "{similarity}"),
        other => panic!("{other:?}"),
    }
    // Similar words, another request.
    assert!(matches!(
        f.cache.lookup(&req(P1, "where is my car order")).await,
        Lookup::Miss { .. }
    ));
    // The client's own threshold is kept.
    let mut raised = req(P1, "where's my order");
    raised.min_similarity = Some(0.99);
    assert!(matches!(f.cache.lookup(&raised).await, Lookup::Miss { .. }));
}

/// A pair model that answers a fixed logit, or fails; counts what it was asked.
#[derive(Debug, Default)]
struct FixedPair {
    logit: f32,
    fail: bool,
    multilingual: bool,
    asked: parking_lot::Mutex<Vec<(String, String)>>,
}

#[async_trait]
impl crate::PairScorer for FixedPair {
    fn id(&self) -> &str {
        "pair:test"
    }
    fn multilingual(&self) -> bool {
        self.multilingual
    }
    async fn score(&self, pairs: &[(String, String)]) -> Result<Vec<f32>, EmbedError> {
        self.asked.lock().extend(pairs.iter().cloned());
        if self.fail {
            return Err(EmbedError::WorkerGone);
        }
        Ok(vec![self.logit; pairs.len()])
    }
}

/// A verifier of the features alone that never serves.
fn never() -> Arc<Model> {
    let mut file = Model::shipped().unwrap().file().clone();
    file.weights.iter_mut().for_each(|w| *w = 0.0);
    file.bias = -50.0;
    Arc::new(Model::from_file(file).unwrap())
}

/// A verifier of the pair model's logit alone (every feature weight 0).
fn stacked_on(model: &str) -> Arc<Model> {
    Arc::new(
        Model::from_file(crate::verify::model::ModelFile {
            min_similarity: 0.5,
            pair: Some(crate::verify::model::PairInput {
                model: model.into(),
                mean: 0.0,
                scale: 1.0,
                weight: 1.0,
            }),
            ..crate::verify::model::neutral_file()
        })
        .unwrap(),
    )
}

/// A cache whose first path never serves, with `pair` behind a verifier stacked on the
/// pair model `model` (the second path), over `words`.
fn with_pair(words: WordsEmbedder, pair: Arc<FixedPair>, model: &str) -> Fixture {
    fixture_with(
        CacheOptions {
            min_similarity: 0.5,
            verify: VerifyMode::Model,
            verifier: Some(never()),
            pair_verifier: Some(stacked_on(model)),
            pair_scorer: Some(pair),
            ..CacheOptions::default()
        },
        words,
    )
}

/// With a verifier stacked on a pair model, the pair model decides the candidates the
/// veto rules let through: a high logit serves, a low one refuses, a veto is never
/// sent to it, and a pair model that fails refuses (a fault costs a hit, not a wrong
/// answer). A verifier stacked on another pair model never asks this one.
#[tokio::test]
async fn a_stacked_verifier_asks_the_pair_model_after_the_vetoes() {
    let run = |logit: f32, fail: bool, model: &'static str| async move {
        let pair = Arc::new(FixedPair {
            logit,
            fail,
            ..FixedPair::default()
        });
        let words = WordsEmbedder {
            vocab: Some(crate::verify::Vocabulary::new([
                "how", "do", "not", "reset", "my", "password", "please", "comment", "le", "volume",
            ])),
            ..WordsEmbedder::default()
        };
        let f = with_pair(words, pair.clone(), model);
        f.cache
            .insert(new_entry(P1, "how do i reset my password"))
            .await
            .unwrap();
        let paraphrase = f
            .cache
            .lookup(&req(P1, "how do i reset my password please"))
            .await;
        let negated = f
            .cache
            .lookup(&req(P1, "how do i not reset my password"))
            .await;
        // A difference the vocabulary cannot read is not sent to the pair model.
        f.cache
            .insert(new_entry(P2, "comment flurbiser le volume"))
            .await
            .unwrap();
        let foreign = f.cache.lookup(&req(P2, "comment gronker le volume")).await;
        assert!(matches!(foreign, Lookup::Miss { .. }), "{foreign:?}");
        let asked = pair.asked.lock().clone();
        (paraphrase, negated, asked)
    };
    let (served, negated, asked) = run(3.0, false, "pair:test").await;
    assert!(matches!(served, Lookup::SemanticHit { .. }), "{served:?}");
    assert!(matches!(negated, Lookup::Miss { .. }), "{negated:?}");
    assert_eq!(
        asked,
        vec![(
            "how do i reset my password".to_string(),
            "how do i reset my password please".to_string()
        )],
        "only the candidate no veto refused reaches the pair model"
    );
    let (refused, _, _) = run(-3.0, false, "pair:test").await;
    assert!(
        matches!(
            refused,
            Lookup::Miss {
                rejected: Some(RejectReason::Pair),
                ..
            }
        ),
        "{refused:?}"
    );
    let (failed, _, _) = run(3.0, true, "pair:test").await;
    assert!(matches!(failed, Lookup::Miss { .. }), "{failed:?}");
    // Stacked on another pair model: this one is never asked, and only the first path
    // (here: never serving) decides.
    let (other, _, asked) = run(3.0, false, "pair:other").await;
    assert!(asked.is_empty());
    assert!(matches!(other, Lookup::Miss { .. }), "{other:?}");
}

/// A multilingual pair model (trained on many languages) is asked about prompts whose
/// words the embedder's vocabulary does not hold whole ("augmenter" / "monter"); an
/// English one is not, and the first path's refusal stands.
#[tokio::test]
async fn a_multilingual_pair_model_reads_every_language() {
    for multilingual in [false, true] {
        let pair = Arc::new(FixedPair {
            logit: 3.0,
            multilingual,
            ..FixedPair::default()
        });
        let words = WordsEmbedder {
            vocab: Some(crate::verify::Vocabulary::new(["comment", "le", "volume"])),
            ..WordsEmbedder::default()
        };
        let f = with_pair(words, pair.clone(), "pair:test");
        f.cache
            .insert(new_entry(P1, "comment augmenter le volume"))
            .await
            .unwrap();
        let got = f.cache.lookup(&req(P1, "comment monter le volume")).await;
        assert_eq!(
            matches!(got, Lookup::SemanticHit { .. }),
            multilingual,
            "{got:?}"
        );
        assert_eq!(pair.asked.lock().len(), usize::from(multilingual));
    }
}

/// A word the embedding does not see (outside its vocabulary) that differs from the
/// cached prompt's only by a slip ("refund" / "refnud") is read by the pair model, which
/// decides; any other unseen difference is refused without asking it.
#[tokio::test]
async fn unseen_slips_go_to_the_pair_model() {
    let pair = Arc::new(FixedPair {
        logit: 3.0,
        ..FixedPair::default()
    });
    let words = WordsEmbedder {
        vocab: Some(crate::verify::Vocabulary::new([
            "how", "do", "get", "a", "my", "please",
        ])),
        pieces: true,
        ..WordsEmbedder::default()
    };
    let f = with_pair(words, pair.clone(), "pair:test");
    for p in [P1, P2] {
        f.cache
            .insert(new_entry(p, "how do i get a refund"))
            .await
            .unwrap();
    }
    let slip = f.cache.lookup(&req(P1, "how do i get a refnud")).await;
    assert!(matches!(slip, Lookup::SemanticHit { .. }), "{slip:?}");
    let other = f.cache.lookup(&req(P2, "how do i get a rebate")).await;
    assert!(
        matches!(
            other,
            Lookup::Miss {
                rejected: Some(RejectReason::Unseen),
                ..
            }
        ),
        "{other:?}"
    );
    assert_eq!(
        pair.asked.lock().clone(),
        vec![(
            "how do i get a refund".to_string(),
            "how do i get a refnud".to_string()
        )]
    );
}

fn body_text(answer: &Answer) -> Option<String> {
    match answer {
        Answer::Body(b) => String::from_utf8(b.clone()).ok(),
        Answer::Chunks(_) => None,
    }
}

#[tokio::test]
async fn an_error_budget_serves_only_what_its_labels_certify() {
    assert!(matches!(
        Cache::new(
            Arc::new(MemStore::default()),
            Arc::new(FlatIndex::default()),
            Arc::new(WordsEmbedder::default()),
            Arc::new(ManualClock::new(0)),
            CacheOptions {
                max_false_hit_rate: Some(0.7),
                ..CacheOptions::default()
            },
        ),
        Err(BuildError::Budget(_))
    ));
    let f = fixture(CacheOptions {
        max_false_hit_rate: Some(0.05),
        ..CacheOptions::default()
    });
    let stored = f
        .cache
        .insert(new_entry(P1, "where is my parcel"))
        .await
        .unwrap();
    // The same words in another order: cosine 1 for the bag-of-words embedder.
    let asked = "is my parcel where";
    // No labels yet: no semantic hit, and the miss says what to label.
    let Lookup::Miss {
        label: Some(ticket),
        ..
    } = f.cache.lookup(&req(P1, asked)).await
    else {
        panic!("an untrained budget served a semantic hit");
    };
    assert_eq!(ticket.category, "default");
    assert_eq!(ticket.candidates.len(), 1);
    assert_eq!(ticket.candidates[0].id, stored);
    // The upstream gave the stored answer again, 100 times: enough to certify 5% (89).
    for i in 0..100 {
        let o = f
            .cache
            .label(&ticket, asked, "where is my parcel", None, body_text)
            .await
            .unwrap()
            .unwrap();
        assert!(o.agreed, "{i}");
    }
    let calibration = f.cache.calibration().unwrap();
    let certified = calibration.certified("default", 0);
    assert!(matches!(certified, Some(Certified::From(t)) if t <= 1.0));
    // Saved with the store when changed, and taken over by the next start.
    assert!(f.cache.sync_calibration().await.unwrap());
    assert!(!f.cache.sync_calibration().await.unwrap(), "unchanged");
    let restarted = Cache::new(
        f.store.clone(),
        f.index.clone(),
        f.embedder.clone(),
        f.clock.clone(),
        f.cache.options().clone(),
    )
    .unwrap();
    assert!(restarted.load_calibration().await.unwrap());
    assert_eq!(
        restarted.calibration().unwrap().certified("default", 0),
        certified
    );
    let Lookup::SemanticHit {
        entry,
        audit: Some(audit),
        ..
    } = f.cache.lookup(&req(P1, asked)).await
    else {
        panic!("the certified candidate was not served");
    };
    assert_eq!(entry.id, stored);
    // Its certificate may be taken away: no alias lets a repeat skip the decision.
    assert_eq!(f.cache.alias_count(), 0);
    // An audit that finds another answer counts as wrong and as a label.
    let o = f
        .cache
        .audit(&audit, asked, "the shop opens at nine", body_text)
        .await
        .unwrap()
        .unwrap();
    assert!(!o.agreed);
    assert_eq!(
        calibration.audits(),
        vec![(
            "default".to_string(),
            crate::budget::AuditTally {
                checked: 1,
                wrong: 1
            }
        )]
    );
    // Wrong labels at the top take the certificate away again.
    for _ in 0..20 {
        f.cache
            .label(&ticket, asked, "the shop opens at nine", None, body_text)
            .await
            .unwrap();
    }
    assert_eq!(
        calibration.certified("default", 0),
        Some(Certified::Nothing)
    );
    assert!(matches!(
        f.cache.lookup(&req(P1, asked)).await,
        Lookup::Miss { .. }
    ));
    // A new entry whose answer agreed joins the candidate's answer group; removing an
    // entry forgets it.
    let other = f
        .cache
        .insert(new_entry(P1, "is my parcel where"))
        .await
        .unwrap();
    f.cache
        .label(&ticket, asked, "where is my parcel", Some(other), body_text)
        .await
        .unwrap();
    assert_eq!(calibration.support(stored, &[stored, other]), 1);
    f.cache.remove(other).await.unwrap();
    assert_eq!(calibration.support(stored, &[stored, other]), 0);
}

/// A cache over `store` with an index and clock of its own, as a replica sharing the store.
fn replica_of(store: &Arc<MemStore>, options: &CacheOptions) -> Cache {
    Cache::new(
        store.clone(),
        Arc::new(FlatIndex::default()),
        Arc::new(WordsEmbedder::default()),
        Arc::new(ManualClock::new(0)),
        options.clone(),
    )
    .unwrap()
}

#[tokio::test]
async fn replicas_sharing_a_store_learn_from_each_others_labels() {
    let store = Arc::new(MemStore::default());
    store.keeps_counts.store(true, Ordering::SeqCst);
    let options = CacheOptions {
        max_false_hit_rate: Some(0.05),
        ..CacheOptions::default()
    };
    let replica = || replica_of(&store, &options);
    let (a, b) = (replica(), replica());
    assert!(!a.load_calibration().await.unwrap(), "nothing learned yet");
    assert!(!b.load_calibration().await.unwrap());
    let (ca, cb) = (a.calibration().unwrap(), b.calibration().unwrap());
    // 5% needs 89 agreeing labels: each replica alone has 60 of them.
    for _ in 0..60 {
        ca.observe("default", 1, 0.9, true, false);
        cb.observe("default", 1, 0.9, true, false);
    }
    ca.audited("default", false);
    cb.audited("default", true);
    assert_eq!(ca.certified("default", 1), Some(Certified::Untrained));
    // A's labels go to the store; B takes them with its own; A then takes B's.
    assert!(a.sync_calibration().await.unwrap());
    assert!(b.sync_calibration().await.unwrap());
    assert_eq!(cb.certified("default", 1), Some(Certified::From(0.9)));
    assert_eq!(ca.certified("default", 1), Some(Certified::Untrained));
    assert!(
        a.sync_calibration().await.unwrap(),
        "A's view changed: saved"
    );
    assert_eq!(ca.certified("default", 1), Some(Certified::From(0.9)));
    let labels = |c: &crate::budget::Calibration| {
        c.report()
            .iter()
            .map(|r| (r.key.support, r.labels))
            .collect::<Vec<_>>()
    };
    assert_eq!(labels(ca), vec![(0, 120), (1, 120)]);
    assert_eq!(labels(cb), labels(ca));
    let tally = crate::budget::AuditTally {
        checked: 2,
        wrong: 1,
    };
    assert_eq!(ca.audits(), vec![("default".to_string(), tally)]);
    assert_eq!(cb.audits(), ca.audits());
    // Nothing new anywhere: nothing written, nothing counted twice.
    assert!(!a.sync_calibration().await.unwrap());
    assert!(!b.sync_calibration().await.unwrap());
    assert_eq!(labels(ca), vec![(0, 120), (1, 120)]);

    // A store that fails keeps nothing, and loses nothing: the labels go at the next sync.
    store.fail.store(true, Ordering::SeqCst);
    ca.observe("default", 0, 0.5, false, false);
    assert!(a.sync_calibration().await.is_err());
    assert_eq!(labels(ca), vec![(0, 121), (1, 120)]);
    store.fail.store(false, Ordering::SeqCst);
    assert!(a.sync_calibration().await.unwrap());
    assert!(b.sync_calibration().await.unwrap());
    assert_eq!(labels(ca), vec![(0, 121), (1, 120)]);
    assert_eq!(labels(cb), labels(ca));

    // A new replica takes everything at start.
    let c = replica();
    assert!(c.load_calibration().await.unwrap());
    assert_eq!(labels(c.calibration().unwrap()), labels(ca));
    assert_eq!(c.calibration().unwrap().audits(), ca.audits());
}

#[tokio::test]
async fn labels_saved_before_the_store_kept_counts_seed_them_once() {
    let store = Arc::new(MemStore::default());
    let options = CacheOptions {
        max_false_hit_rate: Some(0.05),
        ..CacheOptions::default()
    };
    let replica = || replica_of(&store, &options);
    // Learned and saved where the store kept no counters (as before they existed).
    let old = replica();
    for _ in 0..100 {
        old.calibration()
            .unwrap()
            .observe("default", 0, 0.8, true, false);
    }
    assert!(old.sync_calibration().await.unwrap());
    assert!(store.counts.lock().is_empty());
    // The store keeps counters now: the first replica to start seeds them, the second
    // takes them as they are.
    store.keeps_counts.store(true, Ordering::SeqCst);
    let (a, b) = (replica(), replica());
    assert!(a.load_calibration().await.unwrap());
    assert!(b.load_calibration().await.unwrap());
    for r in [&a, &b] {
        let report = r.calibration().unwrap().report();
        assert_eq!(report.len(), 1);
        assert_eq!(report[0].labels, 100);
        assert_eq!(report[0].certified, Certified::From(0.8));
    }
    // A restart of either does not seed again.
    let again = replica();
    assert!(again.load_calibration().await.unwrap());
    assert_eq!(again.calibration().unwrap().report()[0].labels, 100);

    // Seeding that fails after the marker was taken loses nothing: the saved labels go
    // with the next sync.
    store.counts.lock().clear();
    let first = store.count_calls.load(Ordering::SeqCst) + 1;
    store.fail_count_call.store(first + 1, Ordering::SeqCst);
    let unlucky = replica();
    assert!(unlucky.load_calibration().await.is_err());
    assert!(unlucky.sync_calibration().await.unwrap());
    let late = replica();
    assert!(late.load_calibration().await.unwrap());
    assert_eq!(late.calibration().unwrap().report()[0].labels, 100);
}

#[tokio::test]
async fn exact_hit_computes_no_embedding() {
    let f = fixture(options(0.9));
    f.cache
        .insert(new_entry(P1, "red green blue"))
        .await
        .unwrap();
    let before = f.embedder.calls.load(Ordering::SeqCst);
    assert!(matches!(
        f.cache.lookup(&req(P1, "red green blue")).await,
        Lookup::ExactHit(_)
    ));
    assert_eq!(f.embedder.calls.load(Ordering::SeqCst), before);
}

#[tokio::test]
async fn semantic_hits_stay_inside_their_partition() {
    let f = fixture(options(0.5));
    f.cache
        .insert(new_entry(P1, "red green blue"))
        .await
        .unwrap();
    match f.cache.lookup(&req(P1, "blue green red")).await {
        Lookup::SemanticHit { similarity, .. } => assert!(similarity > 0.99),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        f.cache.lookup(&req(P2, "blue green red")).await,
        Lookup::Miss { .. }
    ));
}

#[tokio::test]
async fn a_repeated_paraphrase_is_served_through_its_alias_until_its_entry_changes() {
    let f = fixture(options(0.5));
    let stored = f
        .cache
        .insert(new_entry(P1, "red green blue"))
        .await
        .unwrap();
    let asked = "red green blue white";
    let first = f.cache.lookup(&req(P1, asked)).await;
    let Lookup::SemanticHit {
        similarity,
        aliased: false,
        ..
    } = first
    else {
        panic!("{first:?}");
    };
    assert_eq!(f.cache.alias_count(), 1);
    // The repeat: the same entry at the same similarity, with no embedding.
    let calls = f.embedder.calls.load(Ordering::SeqCst);
    let again = f.cache.lookup(&req(P1, asked)).await;
    assert!(
        matches!(again, Lookup::SemanticHit { ref entry, similarity: s, aliased: true, .. }
            if entry.id == stored && s == similarity),
        "{again:?}"
    );
    assert_eq!(f.embedder.calls.load(Ordering::SeqCst), calls);
    // Another partition has no alias; a client asking more than the hit had is decided
    // anew (and refused), without the alias.
    assert!(matches!(
        f.cache.lookup(&req(P2, asked)).await,
        Lookup::Miss { .. }
    ));
    let mut strict = req(P1, asked);
    strict.min_similarity = Some(similarity + 0.05);
    assert!(matches!(f.cache.lookup(&strict).await, Lookup::Miss { .. }));
    // An entry changed in place (the staleness job's replaced answer keeps its id, with a
    // new creation time) is decided anew, not through the alias.
    let Lookup::SemanticHit { mut entry, .. } = again else {
        unreachable!()
    };
    entry.created_at_ms += 1;
    entry.answer = Answer::Body(b"a checked answer".to_vec());
    f.cache.restore(&entry).await.unwrap();
    let found = f.cache.lookup(&req(P1, asked)).await;
    assert!(
        matches!(found, Lookup::SemanticHit { ref entry, aliased: false, .. } if entry.id == stored),
        "{found:?}"
    );
    // A replaced entry is another entry: the alias is not used, the new one is found.
    let mut replacement = new_entry(P1, "red green blue");
    replacement.answer = Answer::Body(b"a newer answer".to_vec());
    f.clock.advance_ms(1);
    let replaced = f.cache.insert(replacement).await.unwrap();
    assert_ne!(replaced, stored);
    let found = f.cache.lookup(&req(P1, asked)).await;
    assert!(
        matches!(found, Lookup::SemanticHit { ref entry, aliased: false, .. } if entry.id == replaced),
        "{found:?}"
    );
    // Removed, the entry is not served through its alias, which goes with it.
    assert!(f.cache.remove(replaced).await.unwrap());
    assert!(matches!(
        f.cache.lookup(&req(P1, asked)).await,
        Lookup::Miss { .. }
    ));
    assert_eq!(f.cache.alias_count(), 0);
    // Off, nothing is remembered.
    let off = fixture(CacheOptions {
        max_aliases: 0,
        ..options(0.5)
    });
    off.cache
        .insert(new_entry(P1, "red green blue"))
        .await
        .unwrap();
    for _ in 0..2 {
        assert!(matches!(
            off.cache.lookup(&req(P1, asked)).await,
            Lookup::SemanticHit { aliased: false, .. }
        ));
    }
    assert_eq!(off.cache.alias_count(), 0);
}

#[tokio::test]
async fn threshold_can_be_raised_not_lowered() {
    let f = fixture(options(0.99));
    f.cache
        .insert(new_entry(P1, "one two three four"))
        .await
        .unwrap();
    // "one two three five" shares 3 of 4 words: similar, but below 0.99.
    let mut r = req(P1, "one two three five");
    let Lookup::Miss {
        nearest, vector, ..
    } = f.cache.lookup(&r).await
    else {
        panic!("expected a miss");
    };
    assert!(nearest.is_some_and(|s| s < 0.99));
    assert!(vector.is_some(), "a miss hands its embedding to the insert");
    r.min_similarity = Some(0.1);
    assert!(
        matches!(f.cache.lookup(&r).await, Lookup::Miss { .. }),
        "lowering is ignored"
    );
}

#[tokio::test]
async fn removed_entry_is_never_served_even_if_the_index_lists_it() {
    let f = fixture(options(0.5));
    let id = f.cache.insert(new_entry(P1, "alpha beta")).await.unwrap();
    // Remove from the store only, as if a removal raced the index.
    f.store.entries.lock().remove(&id);
    assert_eq!(f.index.vectors.lock().len(), 1);
    assert!(matches!(
        f.cache.lookup(&req(P1, "beta alpha")).await,
        Lookup::Miss { .. }
    ));
    assert!(matches!(
        f.cache.lookup(&req(P1, "alpha beta")).await,
        Lookup::Miss { .. }
    ));
}

#[tokio::test]
async fn ttl_and_max_age_follow_the_injected_clock() {
    let f = fixture(CacheOptions {
        min_similarity: 0.9,
        ttl_secs: Some(60),
        ..CacheOptions::default()
    });
    f.cache.insert(new_entry(P1, "x y")).await.unwrap();
    f.clock.advance_ms(30_000);
    let mut r = req(P1, "x y");
    assert!(matches!(f.cache.lookup(&r).await, Lookup::ExactHit(_)));
    r.max_age_secs = Some(10);
    assert!(matches!(f.cache.lookup(&r).await, Lookup::Miss { .. }));
    r.max_age_secs = None;
    f.clock.advance_ms(30_000);
    assert!(
        matches!(f.cache.lookup(&r).await, Lookup::Miss { .. }),
        "expired at 60 s"
    );
}

#[tokio::test]
async fn replacing_an_exact_key_drops_the_old_vector() {
    let f = fixture(options(0.9));
    let old = f.cache.insert(new_entry(P1, "same prompt")).await.unwrap();
    let new = f.cache.insert(new_entry(P1, "same prompt")).await.unwrap();
    assert_ne!(old, new);
    assert_eq!(f.store.entries.lock().len(), 1);
    let ids: Vec<EntryId> = f.index.vectors.lock().keys().map(|(_, id)| *id).collect();
    assert_eq!(ids, vec![new]);
}

#[tokio::test]
async fn faults_bypass_and_failed_indexing_rolls_back() {
    let f = fixture(options(0.9));
    f.embedder.fail.store(true, Ordering::SeqCst);
    assert!(matches!(
        f.cache.lookup(&req(P1, "anything")).await,
        Lookup::Bypass(BypassReason::EmbedError)
    ));
    f.embedder.fail.store(false, Ordering::SeqCst);
    f.store.fail.store(true, Ordering::SeqCst);
    assert!(matches!(
        f.cache.lookup(&req(P1, "anything")).await,
        Lookup::Bypass(BypassReason::StoreError)
    ));
    f.store.fail.store(false, Ordering::SeqCst);
    f.index.fail_inserts.store(true, Ordering::SeqCst);
    assert!(f.cache.insert(new_entry(P1, "p q")).await.is_err());
    assert!(f.store.entries.lock().is_empty(), "no half-inserted entry");
}

#[tokio::test]
async fn exact_only_entries_have_no_vector() {
    let f = fixture(options(0.5));
    let mut e = new_entry(P1, "tool result follows");
    e.semantic = SemanticMode::ExactOnly;
    f.cache.insert(e).await.unwrap();
    assert!(f.index.vectors.lock().is_empty());
    let mut r = req(P1, "tool result follows");
    r.semantic = SemanticMode::ExactOnly;
    assert!(matches!(f.cache.lookup(&r).await, Lookup::ExactHit(_)));
    assert_eq!(f.embedder.calls.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn counters_count_outcomes_and_savings() {
    let f = fixture(options(0.9));
    f.cache.insert(new_entry(P1, "a b c")).await.unwrap();
    f.cache.lookup(&req(P1, "a b c")).await;
    f.cache.lookup(&req(P1, "zzz")).await;
    let c = f.cache.counters().await.unwrap();
    assert_eq!((c.exact_hits, c.misses), (1, 1));
    assert_eq!((c.prompt_tokens_saved, c.completion_tokens_saved), (3, 5));
}

#[test]
fn another_embedder_is_refused() {
    struct Other;
    #[async_trait]
    impl Embedder for Other {
        fn id(&self) -> &str {
            "test:other"
        }
        fn dim(&self) -> usize {
            8
        }
        fn vocabulary(&self) -> Option<&crate::verify::Vocabulary> {
            None
        }

        fn unseen(&self, _text: &str) -> Vec<String> {
            Vec::new()
        }
        async fn embed(&self, _: &[String]) -> Result<Vec<Vec<f32>>, EmbedError> {
            Ok(vec![])
        }
    }
    let r = Cache::new(
        Arc::new(MemStore::default()),
        Arc::new(FlatIndex::default()),
        Arc::new(Other),
        Arc::new(ManualClock::new(0)),
        CacheOptions::default(),
    );
    assert!(matches!(
        r,
        Err(BuildError::Index(IndexError::Embedder { .. }))
    ));
}

#[tokio::test]
async fn verification_rejects_a_similar_prompt_with_other_numbers() {
    let f = fixture(options(0.5));
    f.cache
        .insert(new_entry(P1, "where is order 4821"))
        .await
        .unwrap();
    match f.cache.lookup(&req(P1, "where is order 4812")).await {
        Lookup::Miss { rejected, .. } => assert_eq!(rejected, Some(RejectReason::Number)),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        f.cache.lookup(&req(P1, "order 4821 where is")).await,
        Lookup::SemanticHit { .. }
    ));
    let c = f.cache.counters().await.unwrap();
    assert_eq!(c.verification_rejects, 1);
}

#[tokio::test]
async fn categories_set_threshold_ttl_and_cacheability() {
    let spec = |name: &str, min: f32, ttl: Option<u64>, cacheable: bool, kw: &str| CategorySpec {
        name: name.into(),
        min_similarity: min,
        min_confidence: None,
        max_false_hit_rate: None,
        ttl_secs: ttl,
        cacheable,
        keywords: vec![kw.into()],
        examples: Vec::new(),
    };
    let f = fixture(CacheOptions {
        min_similarity: 0.99,
        verify: VerifyMode::Rules,
        categories: vec![
            spec("loose", 0.5, Some(10), true, "loose"),
            spec("transactional", 0.99, None, false, "transfer"),
        ],
        ..CacheOptions::default()
    });
    // The keyword puts both prompts in "loose": threshold 0.5 applies.
    let mut e = new_entry(P1, "loose red green blue");
    e.category = Some("loose".into());
    f.cache.insert(e).await.unwrap();
    assert!(matches!(
        f.cache.lookup(&req(P1, "blue green loose")).await,
        Lookup::SemanticHit { .. }
    ));
    // The entry's category TTL (10 s) applies to exact hits too.
    f.clock.advance_ms(11_000);
    assert!(matches!(
        f.cache.lookup(&req(P1, "loose red green blue")).await,
        Lookup::Miss { .. }
    ));
    // Uncacheable categories bypass before any lookup; so does a hint naming one.
    assert!(matches!(
        f.cache.lookup(&req(P1, "transfer 10 to bob")).await,
        Lookup::Bypass(BypassReason::UncacheableCategory)
    ));
    let mut r = req(P1, "anything at all");
    r.category = Some("transactional");
    assert!(matches!(
        f.cache.lookup(&r).await,
        Lookup::Bypass(BypassReason::UncacheableCategory)
    ));
    match f.cache.lookup(&req(P1, "plain question")).await {
        Lookup::Miss { category, .. } => assert_eq!(category, "default"),
        other => panic!("{other:?}"),
    }
    // A hint may only tighten: naming a cacheable category does not make a prompt the
    // transactional category refuses cacheable.
    for hint in ["default", "loose"] {
        let mut r = req(P1, "transfer 10 to bob");
        r.category = Some(hint);
        assert!(
            matches!(
                f.cache.lookup(&r).await,
                Lookup::Bypass(BypassReason::UncacheableCategory)
            ),
            "{hint}"
        );
    }
    // Nor does it loosen the threshold: "loose" (0.5) named for a default-category
    // prompt still needs the default's 0.99.
    let mut e = new_entry(P1, "red green blue yellow");
    e.category = Some("default".into());
    f.cache.insert(e).await.unwrap();
    let mut r = req(P1, "red green blue purple");
    r.category = Some("loose");
    assert!(matches!(f.cache.lookup(&r).await, Lookup::Miss { .. }));
    // (The same prompt is a hit in "loose" proper: the entry is what the hint cannot
    // reach, not the prompt.)
    let mut e = new_entry(P1, "loose red green blue yellow");
    e.category = Some("loose".into());
    f.cache.insert(e).await.unwrap();
    assert!(matches!(
        f.cache
            .lookup(&req(P1, "loose red green blue purple"))
            .await,
        Lookup::SemanticHit { .. }
    ));
}

async fn insert_labelled(f: &Fixture, prompt: &str, model: &str, ns: &str, tags: &[&str]) {
    let mut e = new_entry(P1, prompt);
    e.model = model.into();
    let labels = EntryLabels {
        namespace: Some(ns.into()),
        tags: tags.iter().map(|t| t.to_string()).collect(),
    };
    f.cache.insert_labelled(e, labels).await.unwrap();
}

fn stored_prompts(f: &Fixture) -> Vec<String> {
    let mut p: Vec<String> = f
        .store
        .entries
        .lock()
        .values()
        .map(|e| e.prompt.clone())
        .collect();
    p.sort();
    p
}

#[tokio::test]
async fn invalidate_removes_exactly_what_it_selects() {
    let all = ["alpha one", "beta two", "gamma three", "delta four"];
    let cases: Vec<(Invalidate, Vec<&str>)> = vec![
        (
            Invalidate::Tag("product:1".into()),
            vec!["alpha one", "beta two"],
        ),
        (Invalidate::Tag("nobody".into()), vec![]),
        (Invalidate::Model("m2".into()), vec!["gamma three"]),
        (Invalidate::Namespace("ns:b".into()), vec!["delta four"]),
        // Created 100 s before the others.
        (Invalidate::OlderThan { secs: 50 }, vec!["alpha one"]),
        (Invalidate::OlderThan { secs: 1000 }, vec![]),
        (Invalidate::All, all.to_vec()),
    ];
    for (what, want_removed) in cases {
        let f = fixture(options(0.5));
        insert_labelled(&f, all[0], "m1", "ns:a", &["product:1", "x"]).await;
        f.clock.advance_ms(100_000);
        insert_labelled(&f, all[1], "m1", "ns:a", &["product:1"]).await;
        insert_labelled(&f, all[2], "m2", "ns:a", &["product:2"]).await;
        insert_labelled(&f, all[3], "m1", "ns:b", &[]).await;
        let removed = f.cache.invalidate(&what).await.unwrap();
        assert_eq!(removed, want_removed.len() as u64, "{what:?}");
        let mut want: Vec<String> = all
            .iter()
            .filter(|p| !want_removed.contains(p))
            .map(|p| p.to_string())
            .collect();
        want.sort();
        assert_eq!(stored_prompts(&f), want, "{what:?}");
        assert_eq!(
            f.index.vectors.lock().len(),
            want.len(),
            "{what:?}: vectors of removed entries leave the index"
        );
        for p in want_removed {
            assert!(
                matches!(f.cache.lookup(&req(P1, p)).await, Lookup::Miss { .. }),
                "{what:?}: {p} is still served"
            );
        }
    }
}

#[tokio::test]
async fn invalidate_by_id_and_labels_are_stored() {
    let f = fixture(options(0.5));
    let labels = EntryLabels {
        namespace: Some("ns:t".into()),
        tags: vec!["a".into(), "b".into()],
    };
    let id = f
        .cache
        .insert_labelled(new_entry(P1, "red green"), labels)
        .await
        .unwrap();
    let e = f.store.entries.lock().get(&id).cloned().unwrap();
    assert_eq!((e.namespace.as_str(), e.tags.len()), ("ns:t", 2));
    let plain = f.cache.insert(new_entry(P1, "blue")).await.unwrap();
    let e = f.store.entries.lock().get(&plain).cloned().unwrap();
    assert!(e.namespace.is_empty() && e.tags.is_empty());
    assert_eq!(f.cache.invalidate(&Invalidate::Id(id)).await.unwrap(), 1);
    assert_eq!(f.cache.invalidate(&Invalidate::Id(id)).await.unwrap(), 0);
    assert_eq!(stored_prompts(&f), vec!["blue".to_string()]);
}

/// Lookups race an invalidation on other threads; once `invalidate` has returned, no
/// lookup that starts afterwards may serve a removed entry, exactly or semantically.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_removed_entry_is_served_after_invalidate_returns() {
    let f = fixture(options(0.5));
    let prompts: Vec<String> = (0..200).map(|i| format!("item {i} colour red")).collect();
    let mut doomed = std::collections::HashSet::new();
    for (i, p) in prompts.iter().enumerate() {
        let tags = if i % 2 == 0 {
            vec!["gone".to_string()]
        } else {
            vec![]
        };
        let id = f
            .cache
            .insert_labelled(
                new_entry(P1, p),
                EntryLabels {
                    namespace: None,
                    tags,
                },
            )
            .await
            .unwrap();
        if i % 2 == 0 {
            doomed.insert(id);
        }
    }
    let done = Arc::new(AtomicBool::new(false));
    let doomed = Arc::new(doomed);
    let mut readers = Vec::new();
    for r in 0..2 {
        let (cache, done, doomed, prompts) = (
            f.cache.clone(),
            done.clone(),
            doomed.clone(),
            prompts.clone(),
        );
        readers.push(tokio::spawn(async move {
            let mut after = 0;
            // Keep reading for a while after the invalidation finished.
            while after < 400 {
                for p in prompts.iter().skip(r).step_by(3) {
                    let finished_before = done.load(Ordering::SeqCst);
                    // Exact, then a reordering of the same words (semantic).
                    let reordered = p.split(' ').rev().collect::<Vec<_>>().join(" ");
                    for q in [p.as_str(), reordered.as_str()] {
                        let served = match cache.lookup(&req(P1, q)).await {
                            Lookup::ExactHit(e) => Some(e.id),
                            Lookup::SemanticHit { entry, .. } => Some(entry.id),
                            _ => None,
                        };
                        if let Some(id) = served {
                            assert!(
                                !(finished_before && doomed.contains(&id)),
                                "removed entry {id} served after invalidate returned"
                            );
                        }
                    }
                    if finished_before {
                        after += 1;
                    }
                }
                tokio::task::yield_now().await;
            }
        }));
    }
    tokio::task::yield_now().await;
    let removed = f
        .cache
        .invalidate(&Invalidate::Tag("gone".into()))
        .await
        .unwrap();
    done.store(true, Ordering::SeqCst);
    assert_eq!(removed, 100);
    for r in readers {
        r.await.unwrap();
    }
    assert_eq!(f.store.entries.lock().len(), 100);
}

/// Every vector in the index belongs to a stored entry that has one, and every stored
/// entry with a vector is indexed under its partition.
fn assert_store_and_index_agree(f: &Fixture) {
    let mut stored: Vec<(PartitionKey, EntryId)> = f
        .store
        .entries
        .lock()
        .values()
        .filter(|e| !e.vector.is_empty())
        .map(|e| (e.partition, e.id))
        .collect();
    let mut indexed: Vec<(PartitionKey, EntryId)> =
        f.index.vectors.lock().keys().copied().collect();
    stored.sort();
    indexed.sort();
    assert_eq!(stored, indexed, "store and index disagree");
}

fn category(name: &str, ttl_secs: Option<u64>) -> CategorySpec {
    CategorySpec {
        name: name.into(),
        min_similarity: 0.9,
        min_confidence: None,
        max_false_hit_rate: None,
        ttl_secs,
        cacheable: true,
        keywords: Vec::new(),
        examples: Vec::new(),
    }
}

#[tokio::test]
async fn sweep_removes_only_entries_past_their_category_ttl() {
    let f = fixture(CacheOptions {
        ttl_secs: Some(100),
        categories: vec![category("short", Some(10)), category("forever", None)],
        ..options(0.9)
    });
    let insert = |prompt: &'static str, cat: Option<&str>, semantic: SemanticMode| {
        let mut e = new_entry(P1, prompt);
        e.category = cat.map(str::to_string);
        e.semantic = semantic;
        f.cache.insert(e)
    };
    insert("short one", Some("short"), SemanticMode::Allowed)
        .await
        .unwrap();
    insert("short exact", Some("short"), SemanticMode::ExactOnly)
        .await
        .unwrap();
    insert("default one", None, SemanticMode::Allowed)
        .await
        .unwrap();
    insert("forever one", Some("forever"), SemanticMode::Allowed)
        .await
        .unwrap();
    // An entry of a category no longer configured follows `default`.
    insert("gone category", Some("retired"), SemanticMode::Allowed)
        .await
        .unwrap();
    f.clock.advance_ms(9_999);
    assert_eq!(f.cache.sweep_expired().await.unwrap(), 0);
    f.clock.advance_ms(1);
    assert_eq!(f.cache.sweep_expired().await.unwrap(), 2);
    assert_eq!(
        stored_prompts(&f),
        ["default one", "forever one", "gone category"]
    );
    assert_store_and_index_agree(&f);
    f.clock.advance_ms(90_000);
    assert_eq!(f.cache.sweep_expired().await.unwrap(), 2);
    assert_eq!(stored_prompts(&f), ["forever one"]);
    assert_store_and_index_agree(&f);
    assert_eq!(f.index.vectors.lock().len(), 1);
    let c = f.cache.counters().await.unwrap();
    assert_eq!((c.removed_expired, c.removed_evicted), (4, 0));
}

/// 40 entries created a second apart; entry 0 is hit 5 times right after it is
/// created, entries 10..30 once each, later, in order.
async fn forty_entries_with_hits(f: &Fixture) {
    for i in 0..40 {
        f.cache
            .insert(new_entry(P1, &format!("entry {i}")))
            .await
            .unwrap();
        if i == 0 {
            for _ in 0..5 {
                f.clock.advance_ms(10);
                f.cache.lookup(&req(P1, "entry 0")).await;
            }
        }
        f.clock.advance_ms(1_000);
    }
    for i in 10..30 {
        let p = format!("entry {i}");
        assert!(matches!(
            f.cache.lookup(&req(P1, &p)).await,
            Lookup::ExactHit(_)
        ));
        f.clock.advance_ms(1_000);
    }
}

fn surviving_numbers(f: &Fixture) -> Vec<u32> {
    let mut n: Vec<u32> = stored_prompts(f)
        .iter()
        .map(|p| p.trim_start_matches("entry ").parse().unwrap())
        .collect();
    n.sort();
    n
}

#[tokio::test]
async fn lru_and_lfu_choose_their_victims() {
    // 40 entries over a limit of 20: trimmed to 19 (95%), so 21 go.
    let cases = [
        // Least recently used: 0 (hit long ago), 1..10 and 30..40 (never hit), then
        // the earliest of the later hits (10).
        (Eviction::Lru, (11..30).collect::<Vec<u32>>()),
        // Least frequently used: the 19 never hit, then the oldest hit once (10, 11);
        // entry 0, hit most often, stays although its hits are old.
        (
            Eviction::Lfu,
            std::iter::once(0).chain(12..30).collect::<Vec<u32>>(),
        ),
    ];
    for (eviction, survivors) in cases {
        let f = fixture(options(0.9));
        forty_entries_with_hits(&f).await;
        let limits = CapacityLimits {
            max_entries: Some(20),
            eviction,
            ..CapacityLimits::default()
        };
        assert_eq!(f.cache.enforce_capacity(&limits).await.unwrap(), 21);
        assert_eq!(surviving_numbers(&f), survivors, "{eviction:?}");
        assert_store_and_index_agree(&f);
        assert_eq!(f.cache.enforce_capacity(&limits).await.unwrap(), 0);
    }
}

#[tokio::test]
async fn max_entries_and_max_bytes_are_enforced() {
    // Prompts "entry 100".."entry 149" (9 bytes) with the prompt as answer: 18 bytes.
    let cases = [
        (
            CapacityLimits {
                max_entries: Some(30),
                ..CapacityLimits::default()
            },
            28,
        ),
        (
            CapacityLimits {
                max_bytes: Some(500),
                ..CapacityLimits::default()
            },
            26,
        ),
        (
            CapacityLimits {
                max_entries: Some(40),
                max_bytes: Some(500),
                eviction: Eviction::Lfu,
                cold_after_secs: None,
            },
            26,
        ),
        (
            CapacityLimits {
                max_entries: Some(50),
                max_bytes: Some(900),
                ..CapacityLimits::default()
            },
            50,
        ),
    ];
    for (limits, kept) in cases {
        let f = fixture(options(0.9));
        for i in 100..150 {
            let mut e = new_entry(P1, &format!("entry {i}"));
            // Embedding-cache items are exact-only; they count the same.
            if i % 5 == 0 {
                e.semantic = SemanticMode::ExactOnly;
            }
            f.cache.insert(e).await.unwrap();
            f.clock.advance_ms(1_000);
        }
        let removed = f.cache.enforce_capacity(&limits).await.unwrap();
        assert_eq!(removed, 50 - kept, "{limits:?}");
        let entries = f.store.entries.lock().len() as u64;
        let bytes: u64 = f
            .store
            .entries
            .lock()
            .values()
            .map(|e| (e.prompt.len() + e.answer.len_bytes()) as u64)
            .sum();
        assert_eq!(entries, kept, "{limits:?}");
        assert!(limits.max_entries.is_none_or(|m| entries <= m));
        assert!(limits.max_bytes.is_none_or(|m| bytes <= m));
        // The oldest went first.
        assert_eq!(surviving_numbers(&f)[0], 150 - kept as u32, "{limits:?}");
        assert_store_and_index_agree(&f);
        assert_eq!(f.cache.counters().await.unwrap().removed_evicted, removed);
    }
}

#[tokio::test]
async fn cold_entries_are_removed_and_maintain_reports_each_cause() {
    let f = fixture(CacheOptions {
        ttl_secs: Some(3_600),
        ..options(0.9)
    });
    for p in ["old red", "old green", "old blue"] {
        f.cache.insert(new_entry(P1, p)).await.unwrap();
    }
    f.clock.advance_ms(50_000);
    f.cache.lookup(&req(P1, "old green")).await;
    f.cache.insert(new_entry(P1, "new one")).await.unwrap();
    f.cache.insert(new_entry(P1, "new two")).await.unwrap();
    f.clock.advance_ms(20_000);
    assert_eq!(f.cache.remove_cold(60).await.unwrap(), 2);
    assert_eq!(stored_prompts(&f), ["new one", "new two", "old green"]);
    assert_store_and_index_agree(&f);

    f.clock.advance_ms(3_600_000 - 20_000);
    for p in ["fresh a", "fresh b", "fresh c"] {
        f.cache.insert(new_entry(P1, p)).await.unwrap();
    }
    f.clock.advance_ms(1);
    f.cache.lookup(&req(P1, "fresh b")).await;
    let limits = CapacityLimits {
        max_entries: Some(2),
        cold_after_secs: Some(3_000),
        ..CapacityLimits::default()
    };
    // "new one" and "new two" expired; "old green" too (created 3,650 s ago; hits do
    // not extend a TTL); nothing is cold; then the limit keeps the most recently used
    // (95% of 2 is 1).
    let report = f.cache.maintain(&limits).await.unwrap();
    assert_eq!(
        report,
        MaintenanceReport {
            expired: 3,
            cold: 0,
            evicted: 2
        }
    );
    assert_eq!(report.total(), 5);
    assert_eq!(stored_prompts(&f), ["fresh b"]);
    assert_store_and_index_agree(&f);
    f.cache.invalidate(&Invalidate::All).await.unwrap();
    let c = f.cache.counters().await.unwrap();
    assert_eq!(
        (c.removed_expired, c.removed_evicted, c.removed_invalidated),
        (3, 4, 1)
    );
}

#[tokio::test]
async fn restore_keeps_the_entry_as_given_and_indexes_own_vectors_only() {
    let f = fixture(options(0.5));
    let id = f
        .cache
        .insert(new_entry(P1, "alpha beta gamma"))
        .await
        .unwrap();
    let mut entry = f.store.entries.lock().get(&id).cloned().unwrap();
    f.cache.remove(id).await.unwrap();
    assert!(f.index.vectors.lock().is_empty());
    entry.hit_count = 7;
    f.cache.restore(&entry).await.unwrap();
    assert_eq!(f.store.entries.lock()[&id].hit_count, 7);
    assert!(matches!(
        f.cache.lookup(&req(P1, "gamma beta alpha")).await,
        Lookup::SemanticHit { .. }
    ));
    // A vector from another embedder is stored but not indexed.
    let mut other = entry.clone();
    other.id = EntryId(42);
    other.partition = P2;
    other.exact_key = ExactKey::new(&P2, &other.prompt);
    other.embedder_id = "test:other".into();
    f.cache.restore(&other).await.unwrap();
    assert!(f.store.entries.lock().contains_key(&EntryId(42)));
    assert_eq!(f.index.vectors.lock().len(), 1);
}

/// Embeds every word, whatever its script, by hashing it into 8 buckets: the other
/// languages' embedder of `the_other_languages_have_their_own_space`.
#[derive(Default)]
struct AllWordsEmbedder {
    calls: AtomicUsize,
}

#[async_trait]
impl Embedder for AllWordsEmbedder {
    fn id(&self) -> &str {
        "test:all-words"
    }
    fn dim(&self) -> usize {
        8
    }
    async fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        Ok(texts
            .iter()
            .map(|t| {
                let mut v = [0f32; 8];
                for w in t.to_lowercase().split_whitespace() {
                    v[blake3::hash(w.as_bytes()).as_bytes()[0] as usize % 8] += 1.0;
                }
                let n = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-9);
                v.iter().map(|x| x / n).collect()
            })
            .collect())
    }
    fn vocabulary(&self) -> Option<&crate::verify::Vocabulary> {
        None
    }
    fn unseen(&self, _: &str) -> Vec<String> {
        Vec::new()
    }
}

#[tokio::test]
async fn the_other_languages_have_their_own_space() {
    let english = Arc::new(WordsEmbedder {
        vocab: Some(crate::verify::Vocabulary::new([
            "how", "do", "reset", "my", "password", "please",
        ])),
        ..WordsEmbedder::default()
    });
    let other = Arc::new(AllWordsEmbedder::default());
    let store = Arc::new(MemStore::default());
    let build = |first: Arc<FlatIndex>, second: Arc<FlatIndex>| {
        Cache::new(
            store.clone(),
            first,
            english.clone(),
            Arc::new(ManualClock::new(1_000_000)),
            CacheOptions {
                other_languages: Some(OtherLanguages {
                    embedder: other.clone(),
                    index: second,
                    pair_scorer: None,
                    examples_min_similarity: 0.9,
                }),
                ..options(0.5)
            },
        )
        .unwrap()
    };
    let other_index = || {
        Arc::new(FlatIndex {
            embedder_id: "test:all-words",
            ..FlatIndex::default()
        })
    };
    let (first, second) = (Arc::new(FlatIndex::default()), other_index());
    let cache = build(first.clone(), second.clone());

    // Each prompt is embedded, stored and indexed in its own language's space.
    let fr = cache
        .insert(new_entry(P1, "comment réinitialiser mon mot de passe"))
        .await
        .unwrap();
    let zh = cache
        .insert(new_entry(P1, "如何 重置 我的 密码"))
        .await
        .unwrap();
    let en = cache
        .insert(new_entry(P1, "how do i reset my password"))
        .await
        .unwrap();
    let stored = |id: EntryId| store.entries.lock()[&id].embedder_id.clone();
    assert_eq!(stored(fr), "test:all-words");
    assert_eq!(stored(zh), "test:all-words");
    assert_eq!(stored(en), "test:words");
    let ids = |i: &FlatIndex| {
        let mut v: Vec<EntryId> = i.vectors.lock().keys().map(|(_, id)| *id).collect();
        v.sort_by_key(|id| id.0);
        v
    };
    let mut others = vec![fr, zh];
    others.sort_by_key(|id| id.0);
    assert_eq!(ids(&first), vec![en]);
    assert_eq!(ids(&second), others);
    assert_eq!(english.calls.load(Ordering::SeqCst), 1);
    assert_eq!(other.calls.load(Ordering::SeqCst), 2);

    // A French paraphrase is embedded by the other embedder only, and served from there.
    let found = cache
        .lookup(&req(
            P1,
            "comment réinitialiser mon mot de passe s'il vous plaît",
        ))
        .await;
    assert!(
        matches!(&found, Lookup::SemanticHit { entry, .. } if entry.id == fr),
        "{found:?}"
    );
    assert_eq!(english.calls.load(Ordering::SeqCst), 1);
    // An English one by the first only.
    let found = cache
        .lookup(&req(P1, "how do i reset my password please"))
        .await;
    assert!(
        matches!(&found, Lookup::SemanticHit { entry, .. } if entry.id == en),
        "{found:?}"
    );
    assert_eq!(other.calls.load(Ordering::SeqCst), 3);

    // After a restart, each stored vector goes back to its own space's index.
    let (first2, second2) = (Arc::new(FlatIndex::default()), other_index());
    let restarted = build(first2.clone(), second2.clone());
    assert_eq!(restarted.rebuild_index().await.unwrap(), 3);
    assert_eq!(ids(&first2), vec![en]);
    assert_eq!(ids(&second2), others);

    // Removal leaves neither index holding a removed entry.
    restarted.remove(fr).await.unwrap();
    restarted.invalidate(&Invalidate::All).await.unwrap();
    assert!(first2.vectors.lock().is_empty());
    assert!(second2.vectors.lock().is_empty());

    // A prompt whose language is guessed from its words, not told by them, is looked for
    // in the other space too ("mon" is French, "please" English, one each).
    let guessed = restarted
        .insert(new_entry(P1, "comment reset mon password"))
        .await
        .unwrap();
    assert_eq!(stored(guessed), "test:all-words");
    let found = restarted
        .lookup(&req(P1, "reset password please mon"))
        .await;
    assert!(
        matches!(&found, Lookup::SemanticHit { entry, .. } if entry.id == guessed),
        "{found:?}"
    );
    // A prompt told English is looked for in its own space only.
    let calls = other.calls.load(Ordering::SeqCst);
    let found = restarted
        .lookup(&req(P1, "how do i reset the password of my router"))
        .await;
    assert!(matches!(found, Lookup::Miss { .. }), "{found:?}");
    assert_eq!(other.calls.load(Ordering::SeqCst), calls);
    restarted.invalidate(&Invalidate::All).await.unwrap();

    // An error budget learns from the first embedder's similarities only: untrained, it
    // serves no English paraphrase; the other languages are verified as without one.
    let budgeted = Cache::new(
        store.clone(),
        first2.clone(),
        english.clone(),
        Arc::new(ManualClock::new(1_000_000)),
        CacheOptions {
            max_false_hit_rate: Some(0.01),
            other_languages: Some(OtherLanguages {
                embedder: other.clone(),
                index: second2.clone(),
                pair_scorer: None,
                examples_min_similarity: 0.9,
            }),
            ..options(0.5)
        },
    )
    .unwrap();
    let fr2 = budgeted
        .insert(new_entry(P2, "comment réinitialiser mon mot de passe"))
        .await
        .unwrap();
    budgeted
        .insert(new_entry(P2, "how do i reset my password"))
        .await
        .unwrap();
    let found = budgeted
        .lookup(&req(
            P2,
            "comment réinitialiser mon mot de passe s'il vous plaît",
        ))
        .await;
    assert!(
        matches!(&found, Lookup::SemanticHit { entry, .. } if entry.id == fr2),
        "{found:?}"
    );
    let found = budgeted
        .lookup(&req(P2, "how do i reset my password please"))
        .await;
    assert!(matches!(found, Lookup::Miss { .. }), "{found:?}");
    budgeted.invalidate(&Invalidate::All).await.unwrap();

    // The two spaces must be two embedders.
    let same = Cache::new(
        Arc::new(MemStore::default()),
        Arc::new(FlatIndex::default()),
        Arc::new(WordsEmbedder::default()),
        Arc::new(ManualClock::new(0)),
        CacheOptions {
            other_languages: Some(OtherLanguages {
                embedder: Arc::new(WordsEmbedder::default()),
                index: Arc::new(FlatIndex::default()),
                pair_scorer: None,
                examples_min_similarity: 0.9,
            }),
            ..options(0.5)
        },
    );
    assert!(matches!(same, Err(BuildError::SameEmbedder(_))));
}

#[tokio::test]
async fn under_a_budget_the_verifiers_word_counts_where_its_own_labels_certify_it() {
    let f = fixture(CacheOptions {
        max_false_hit_rate: Some(0.05),
        ..CacheOptions::default()
    });
    let stored = f
        .cache
        .insert(new_entry(P1, "where is my parcel"))
        .await
        .unwrap();
    // The learned verifier accepts the first (0.965) and refuses the second (0.953).
    let accepted = "where is my parcel please";
    let refused = "where exactly is my parcel";
    let Lookup::Miss {
        label: Some(ticket),
        ..
    } = f.cache.lookup(&req(P1, accepted)).await
    else {
        panic!("an untrained budget served a semantic hit");
    };
    assert!(ticket.candidates[0].vouched);
    // Around 0.95, candidates the verifier accepted were right; the others were wrong
    // one time in five: only the vouched cell certifies.
    let calibration = f.cache.calibration().unwrap();
    for _ in 0..100 {
        calibration.observe("default", 0, 0.95, true, true);
    }
    for _ in 0..25 {
        calibration.observe("default", 0, 0.95, false, false);
    }
    assert_eq!(
        calibration.certified("default", 0),
        Some(Certified::Nothing)
    );
    assert_eq!(
        calibration.certified_vouched("default", 0),
        Some(Certified::From(0.95))
    );
    let Lookup::SemanticHit {
        entry,
        audit: Some(audit),
        ..
    } = f.cache.lookup(&req(P1, accepted)).await
    else {
        panic!("a vouched candidate above its certified similarity was not served");
    };
    assert_eq!(entry.id, stored);
    assert!(
        audit.candidates[0].vouched,
        "its audit labels the vouched cell"
    );
    let Lookup::Miss {
        label: Some(ticket),
        rejected,
        ..
    } = f.cache.lookup(&req(P1, refused)).await
    else {
        panic!("a candidate the verifier refused was served on the vouched cell");
    };
    assert_eq!(rejected, Some(RejectReason::Model));
    assert!(!ticket.candidates[0].vouched);
    let o = f
        .cache
        .label(&ticket, refused, "where is my parcel", None, body_text)
        .await
        .unwrap()
        .unwrap();
    assert!(o.agreed && !o.vouched);
    // The judge's own errors, measured on exact hits asked again, are counted per
    // category; a category without a budget has none.
    assert_eq!(
        f.cache
            .check_judge("default", "where is my parcel", "the shop opens at nine")
            .await
            .unwrap(),
        Some(false)
    );
    assert_eq!(
        calibration.judge(),
        vec![(
            "default".to_string(),
            crate::budget::AuditTally {
                checked: 1,
                wrong: 1
            }
        )]
    );
}
