//! The compute threads a local model runs on, shared by every local embedder.
//!
//! Callers enqueue jobs; each worker thread takes every job waiting when it becomes free (up
//! to `max_batch` texts), runs them as one forward pass, and sends each job its result
//! through its own channel. So concurrent requests are batched without a timer, and an idle
//! embedder answers a lone request immediately. The async calls never block the runtime.
//!
//! What a forward pass is belongs to the model ([`Compute`]); this module only queues,
//! batches and answers.

use std::collections::VecDeque;
use std::sync::{Arc, Weak};

use deja_core::{EmbedError, PairScorer};
use parking_lot::{Condvar, Mutex};

use crate::l2_normalize;

/// A model the pool runs: texts to vectors, and optionally pairs to logits. The pool
/// batches, runs forward passes of at most `max_batch` texts and normalises the vectors.
pub(crate) trait Compute: Send + Sync + 'static {
    /// Work buffers one thread reuses across forward passes.
    type Scratch: Default;
    /// The token ids `text` runs as, within what [`Compute::forward`] takes (ids in the
    /// vocabulary, at least one token, no more than the longest sequence).
    fn encode(&self, text: &str) -> Result<Vec<u32>, EmbedError>;
    /// One pooled, not yet normalised, vector per sequence, in one forward pass.
    fn forward(&self, seqs: &[Vec<u32>], scratch: &mut Self::Scratch, out: &mut [Vec<f32>]);
    /// One logit per pair; an error when the model has no pair head.
    fn score_pairs(
        &self,
        pairs: &[(&str, &str)],
        max_batch: usize,
        scratch: &mut Self::Scratch,
    ) -> Result<Vec<f32>, EmbedError>;
}

/// One unit-length vector per text, in forward passes of at most `max_batch` texts.
fn embed<C: Compute>(
    compute: &C,
    texts: &[&str],
    max_batch: usize,
    scratch: &mut C::Scratch,
) -> Result<Vec<Vec<f32>>, EmbedError> {
    let mut out = Vec::with_capacity(texts.len());
    for chunk in texts.chunks(max_batch) {
        let seqs = chunk
            .iter()
            .map(|t| compute.encode(t))
            .collect::<Result<Vec<_>, _>>()?;
        let mut vectors = vec![Vec::new(); chunk.len()];
        compute.forward(&seqs, scratch, &mut vectors);
        for v in &mut vectors {
            l2_normalize(v);
        }
        out.extend(vectors);
    }
    Ok(out)
}

pub(crate) type Reply = Result<Vec<Vec<f32>>, EmbedError>;
pub(crate) type PairReply = Result<Vec<f32>, EmbedError>;

/// Where a job's result goes: an async caller's oneshot or a blocking caller's channel.
enum ReplyTo<R> {
    Async(tokio::sync::oneshot::Sender<R>),
    Blocking(std::sync::mpsc::SyncSender<R>),
}

impl<R> ReplyTo<R> {
    fn send(self, reply: R) {
        // A caller that went away (e.g. a cancelled request) no longer wants the result.
        match self {
            ReplyTo::Async(tx) => drop(tx.send(reply)),
            ReplyTo::Blocking(tx) => drop(tx.send(reply)),
        }
    }
}

/// Work for the compute threads: texts to embed, or pairs for the pair model.
enum Job {
    Embed {
        texts: Vec<String>,
        reply: ReplyTo<Reply>,
    },
    Pairs {
        pairs: Vec<(String, String)>,
        reply: ReplyTo<PairReply>,
    },
}

impl Job {
    fn len(&self) -> usize {
        match self {
            Job::Embed { texts, .. } => texts.len(),
            Job::Pairs { pairs, .. } => pairs.len(),
        }
    }

    fn is_pairs(&self) -> bool {
        matches!(self, Job::Pairs { .. })
    }
}

struct Queue {
    jobs: VecDeque<Job>,
    /// Set when the pool is dropped; workers finish the queued jobs and exit.
    closed: bool,
}

struct Shared<C> {
    queue: Mutex<Queue>,
    ready: Condvar,
    compute: C,
    max_batch: usize,
}

/// A model and its compute threads. Dropping the pool stops the threads once the queued
/// jobs are answered.
pub(crate) struct Pool<C: Compute> {
    shared: Arc<Shared<C>>,
}

/// A handle that does not keep the threads alive (a pair scorer outliving its embedder
/// answers [`EmbedError::WorkerGone`]).
pub(crate) struct WeakPool<C: Compute> {
    shared: Weak<Shared<C>>,
}

impl<C: Compute> std::fmt::Debug for WeakPool<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WeakPool").finish_non_exhaustive()
    }
}

impl<C: Compute> Pool<C> {
    /// Starts `threads` compute threads named `deja-embed-<i>` over `compute`.
    pub(crate) fn start(compute: C, threads: usize, max_batch: usize) -> std::io::Result<Pool<C>> {
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue {
                jobs: VecDeque::new(),
                closed: false,
            }),
            ready: Condvar::new(),
            compute,
            max_batch: max_batch.max(1),
        });
        let pool = Pool { shared };
        for i in 0..threads.max(1) {
            let shared = Arc::clone(&pool.shared);
            // On an error `pool` is dropped, which stops the threads already started.
            std::thread::Builder::new()
                .name(format!("deja-embed-{i}"))
                .spawn(move || worker(&shared))?;
        }
        Ok(pool)
    }

    pub(crate) fn compute(&self) -> &C {
        &self.shared.compute
    }

    pub(crate) fn downgrade(&self) -> WeakPool<C> {
        WeakPool {
            shared: Arc::downgrade(&self.shared),
        }
    }

    pub(crate) async fn embed(&self, texts: &[String]) -> Reply {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        let (tx, rx) = tokio::sync::oneshot::channel();
        submit(
            &self.shared,
            Job::Embed {
                texts: texts.to_vec(),
                reply: ReplyTo::Async(tx),
            },
        );
        rx.await.map_err(|_| EmbedError::WorkerGone)?
    }

    /// [`Pool::embed`], blocking the calling thread (benchmarks, command-line tools).
    pub(crate) fn embed_blocking(&self, texts: &[&str]) -> Reply {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        submit(
            &self.shared,
            Job::Embed {
                texts: texts.iter().map(|t| (*t).to_owned()).collect(),
                reply: ReplyTo::Blocking(tx),
            },
        );
        rx.recv().map_err(|_| EmbedError::WorkerGone)?
    }

    /// Pair logits, blocking the calling thread.
    pub(crate) fn score_pairs_blocking(&self, pairs: &[(&str, &str)]) -> PairReply {
        if pairs.is_empty() {
            return Ok(Vec::new());
        }
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        submit(
            &self.shared,
            Job::Pairs {
                pairs: pairs
                    .iter()
                    .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
                    .collect(),
                reply: ReplyTo::Blocking(tx),
            },
        );
        rx.recv().map_err(|_| EmbedError::WorkerGone)?
    }
}

impl<C: Compute> WeakPool<C> {
    pub(crate) async fn score_pairs(&self, pairs: &[(String, String)]) -> PairReply {
        if pairs.is_empty() {
            return Ok(Vec::new());
        }
        let shared = self.shared.upgrade().ok_or(EmbedError::WorkerGone)?;
        let (tx, rx) = tokio::sync::oneshot::channel();
        submit(
            &shared,
            Job::Pairs {
                pairs: pairs.to_vec(),
                reply: ReplyTo::Async(tx),
            },
        );
        drop(shared);
        rx.await.map_err(|_| EmbedError::WorkerGone)?
    }
}

/// A pool's pair jobs, whatever model the pool runs.
#[async_trait::async_trait]
trait ScorePairs: Send + Sync {
    async fn score(&self, pairs: &[(String, String)]) -> PairReply;
}

#[async_trait::async_trait]
impl<C: Compute> ScorePairs for WeakPool<C> {
    async fn score(&self, pairs: &[(String, String)]) -> PairReply {
        self.score_pairs(pairs).await
    }
}

/// The pair model of a local embedder ([`crate::BertEmbedder`], [`crate::E5Embedder`]),
/// as a [`PairScorer`]: its pairs are queued with the embedder's texts and run on the same
/// compute threads. It holds the threads weakly, so dropping the embedder still stops
/// them; a scorer that outlives its embedder answers [`EmbedError::WorkerGone`].
pub struct LocalPairScorer {
    id: String,
    multilingual: bool,
    pool: Box<dyn ScorePairs>,
}

impl LocalPairScorer {
    /// The pair model `id` on `pool`'s threads ([`PairScorer::multilingual`] says whether
    /// it was trained on many languages).
    pub(crate) fn new<C: Compute>(
        id: String,
        multilingual: bool,
        pool: &Pool<C>,
    ) -> LocalPairScorer {
        LocalPairScorer {
            id,
            multilingual,
            pool: Box::new(pool.downgrade()),
        }
    }
}

impl std::fmt::Debug for LocalPairScorer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalPairScorer")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

#[async_trait::async_trait]
impl PairScorer for LocalPairScorer {
    fn id(&self) -> &str {
        &self.id
    }

    fn multilingual(&self) -> bool {
        self.multilingual
    }

    async fn score(&self, pairs: &[(String, String)]) -> PairReply {
        self.pool.score(pairs).await
    }
}

impl<C: Compute> Drop for Pool<C> {
    fn drop(&mut self) {
        self.shared.queue.lock().closed = true;
        self.shared.ready.notify_all();
    }
}

fn submit<C>(shared: &Shared<C>, job: Job) {
    shared.queue.lock().jobs.push_back(job);
    shared.ready.notify_one();
}

fn worker<C: Compute>(shared: &Shared<C>) {
    let mut scratch = C::Scratch::default();
    let mut jobs = Vec::new();
    loop {
        {
            let mut queue = shared.queue.lock();
            while queue.jobs.is_empty() {
                if queue.closed {
                    return;
                }
                shared.ready.wait(&mut queue);
            }
            // Take the first job whatever its size, then whole jobs of the same kind while
            // they fit the batch.
            let mut items = 0;
            while let Some(job) = queue.jobs.front() {
                if let Some(first) = jobs.first() {
                    if items + job.len() > shared.max_batch
                        || Job::is_pairs(first) != job.is_pairs()
                    {
                        break;
                    }
                }
                items += job.len();
                jobs.extend(queue.jobs.pop_front());
            }
        }
        if jobs.first().is_some_and(Job::is_pairs) {
            run_pairs(shared, &mut jobs, &mut scratch);
        } else {
            run_batch(shared, &mut jobs, &mut scratch);
        }
    }
}

/// Embeds all texts of `jobs` and answers each job. Leaves `jobs` empty.
fn run_batch<C: Compute>(shared: &Shared<C>, jobs: &mut Vec<Job>, scratch: &mut C::Scratch) {
    let texts: Vec<&str> = jobs
        .iter()
        .flat_map(|j| match j {
            Job::Embed { texts, .. } => texts.as_slice(),
            Job::Pairs { .. } => &[],
        })
        .map(String::as_str)
        .collect();
    let result = embed(&shared.compute, &texts, shared.max_batch, scratch);
    drop(texts);
    let mut result = result.map(Vec::into_iter);
    for job in jobs.drain(..) {
        if let Job::Embed { texts, reply } = job {
            reply.send(match &mut result {
                Ok(vectors) => Ok(vectors.by_ref().take(texts.len()).collect()),
                // EmbedError is not Clone; every job gets an equivalent error.
                Err(err) => Err(EmbedError::Tokenizer(err.to_string().into())),
            });
        }
    }
}

/// Scores all pairs of `jobs` and answers each job. Leaves `jobs` empty.
fn run_pairs<C: Compute>(shared: &Shared<C>, jobs: &mut Vec<Job>, scratch: &mut C::Scratch) {
    let pairs: Vec<(&str, &str)> = jobs
        .iter()
        .flat_map(|j| match j {
            Job::Pairs { pairs, .. } => pairs.as_slice(),
            Job::Embed { .. } => &[],
        })
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    let result = shared
        .compute
        .score_pairs(&pairs, shared.max_batch, scratch);
    drop(pairs);
    let mut result = result.map(Vec::into_iter);
    for job in jobs.drain(..) {
        if let Job::Pairs { pairs, reply } = job {
            reply.send(match &mut result {
                Ok(logits) => Ok(logits.by_ref().take(pairs.len()).collect()),
                Err(err) => Err(EmbedError::Tokenizer(err.to_string().into())),
            });
        }
    }
}
