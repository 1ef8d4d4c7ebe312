//! Graph inserts on a thread of their own ([`HnswIndex::insert_in_background`]), so the
//! caller of an insert (the engine, after its store write) goes on while the graph work is
//! done beside it, on another core.
//!
//! What an insert promises does not change: a vector handed over is found by every search
//! from then on. Until its graph insert is done it waits here, its codes kept beside the
//! queue, and searches of its partition score it directly (the same f32 · int8 score the
//! graph's final re-scoring gives, so a result does not change when the vector moves into
//! the graph). Removals and inserts of one id are applied in the order they were asked:
//! removing a queued vector drops it from the queue; removing the one being inserted waits
//! until it is in the graph, then removes it there; a newer vector of a waiting id
//! replaces the queued one.
//!
//! Only partitions searched through a graph hand their inserts over (a brute-force
//! partition inserts by appending its codes, which costs less than handing over), and an id
//! still waiting here (queued or being inserted) also queues its next insert, so order
//! holds. At most [`MAX_WAITING`] vectors wait: an insert beyond that waits for the thread,
//! which bounds memory and the direct scoring a search does. [`Background::settle`] waits
//! until nothing does (a snapshot is written only then).

use std::collections::VecDeque;
use std::sync::{Arc, Weak};

use parking_lot::{Condvar, Mutex};

use deja_core::{EntryId, Neighbor, PartitionKey};

use super::{inv_norm, HnswIndex};
use crate::codec::quantize_into;
use crate::simd::Kernels;

/// The most vectors waiting for their graph insert at once.
pub(super) const MAX_WAITING: usize = 512;

/// The queue and the thread's state, shared by the index and its thread.
pub(super) struct Background {
    state: Mutex<State>,
    /// Signalled whenever the queue or the insert in flight changes.
    changed: Condvar,
}

#[derive(Default)]
struct State {
    /// Inserts not started, oldest first.
    queue: VecDeque<Waiting>,
    /// The insert the thread is doing.
    in_flight: Option<Waiting>,
    /// Set when the index is dropped: the thread ends.
    stop: bool,
}

struct Waiting {
    partition: PartitionKey,
    id: u64,
    vector: Vec<f32>,
    codes: Vec<i8>,
    inv: f32,
}

impl Waiting {
    /// `vector` with its codes and their inverse norm, scored as the graph would.
    fn new(partition: PartitionKey, id: EntryId, vector: &[f32]) -> Waiting {
        let mut codes = vec![0i8; vector.len()];
        quantize_into(vector, &mut codes);
        let inv = inv_norm(&codes);
        Waiting {
            partition,
            id: id.0,
            vector: vector.to_vec(),
            codes,
            inv,
        }
    }

    fn is(&self, partition: PartitionKey, id: u64) -> bool {
        self.partition == partition && self.id == id
    }
}

impl Background {
    /// Starts the thread for `index` (held weakly: the thread ends when the index is
    /// dropped).
    pub(super) fn start(index: &Arc<HnswIndex>) -> std::io::Result<Arc<Background>> {
        let bg = Arc::new(Background {
            state: Mutex::new(State::default()),
            changed: Condvar::new(),
        });
        let weak = Arc::downgrade(index);
        let shared = bg.clone();
        std::thread::Builder::new()
            .name("deja-index".into())
            .spawn(move || shared.run(weak))?;
        Ok(bg)
    }

    /// Hands `vector` over if its partition is searched through a graph (`graph`) or `id`
    /// is still waiting (so its inserts stay in order); false when the caller inserts it
    /// itself. Waits while [`MAX_WAITING`] vectors do.
    pub(super) fn hand_over(
        &self,
        partition: PartitionKey,
        id: EntryId,
        vector: &[f32],
        graph: bool,
    ) -> bool {
        if !graph && !self.state.lock().waits(partition, id.0) {
            return false;
        }
        // Quantised before the lock every search of a graph partition takes.
        let waiting = Waiting::new(partition, id, vector);
        let mut s = self.state.lock();
        while s.waiting() >= MAX_WAITING && !s.stop {
            self.changed.wait(&mut s);
        }
        // A newer vector of the same id replaces a queued one (one in flight is inserted
        // first, then replaced by this one).
        s.forget_queued(partition, id.0);
        s.queue.push_back(waiting);
        self.changed.notify_all();
        true
    }

    /// Takes `id` out of what waits: dropped from the queue, and if it is being inserted,
    /// waited for until it is in the graph. The caller then removes it from the graph.
    pub(super) fn forget(&self, partition: PartitionKey, id: EntryId) {
        let mut s = self.state.lock();
        s.forget_queued(partition, id.0);
        self.changed.notify_all();
        while s.in_flight.as_ref().is_some_and(|w| w.is(partition, id.0)) {
            self.changed.wait(&mut s);
        }
    }

    /// Adds the waiting vectors of `partition` to `found` (graph results, best first),
    /// keeping the best `k`. A waiting vector replaces an id the graph also found (the
    /// graph holds an older vector of it).
    pub(super) fn merge_waiting(
        &self,
        partition: PartitionKey,
        query: &[f32],
        k: usize,
        kernels: Kernels,
        found: &mut Vec<Neighbor>,
    ) {
        let s = self.state.lock();
        let mut added = false;
        for w in s.queue.iter().chain(&s.in_flight) {
            if w.partition != partition {
                continue;
            }
            let similarity = (kernels.dot_f32_i8)(query, &w.codes) * w.inv;
            match found.iter_mut().find(|n| n.id.0 == w.id) {
                Some(n) => n.similarity = similarity,
                None => found.push(Neighbor {
                    id: EntryId(w.id),
                    similarity,
                }),
            }
            added = true;
        }
        drop(s);
        if added {
            found.sort_by(|a, b| b.similarity.total_cmp(&a.similarity));
            found.truncate(k);
        }
    }

    /// Vectors waiting (queued, or in flight).
    #[cfg(test)]
    pub(super) fn waiting(&self) -> usize {
        self.state.lock().waiting()
    }

    /// Waiting vectors whose id `in_graph` does not already count (a replacement's id is
    /// live in the graph with its older vector).
    pub(super) fn waiting_new(&self, in_graph: impl Fn(PartitionKey, u64) -> bool) -> usize {
        let s = self.state.lock();
        s.queue
            .iter()
            .chain(&s.in_flight)
            .filter(|w| !in_graph(w.partition, w.id))
            .count()
    }

    /// Waits until every handed-over vector is in its graph.
    pub(super) fn settle(&self) {
        let mut s = self.state.lock();
        while !s.queue.is_empty() || s.in_flight.is_some() {
            self.changed.wait(&mut s);
        }
    }

    /// Waits (at most ten seconds) until the thread was told to stop.
    #[cfg(test)]
    fn wait_for_stop(&self) -> bool {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let mut s = self.state.lock();
        while !s.stop {
            if self.changed.wait_until(&mut s, deadline).timed_out() {
                break;
            }
        }
        s.stop
    }

    /// Ends the thread (the index is being dropped).
    pub(super) fn stop(&self) {
        self.state.lock().stop = true;
        self.changed.notify_all();
    }

    fn run(&self, index: Weak<HnswIndex>) {
        loop {
            // Taken from the queue and marked in flight at once, so searches see it
            // throughout.
            let (partition, id, vector) = {
                let mut s = self.state.lock();
                loop {
                    if s.stop {
                        return;
                    }
                    if let Some(w) = s.queue.pop_front() {
                        let taken = (w.partition, EntryId(w.id), w.vector.clone());
                        s.in_flight = Some(w);
                        break taken;
                    }
                    self.changed.wait(&mut s);
                }
            };
            let Some(index) = index.upgrade() else {
                return;
            };
            // A panic here must not end the thread: the queue would fill and every later
            // insert wait forever. The vector is then missing from the graph (a miss, never
            // a wrong answer: lookups re-read the store).
            let inserted = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                index.insert_now(partition, id, &vector)
            }));
            if inserted.is_err() {
                tracing::error!(entry = %id, "the index's insert thread caught a panic; the entry is left out of the index");
            }
            self.state.lock().in_flight = None;
            self.changed.notify_all();
        }
    }
}

impl State {
    /// Drops `id`'s queued vector.
    fn forget_queued(&mut self, partition: PartitionKey, id: u64) {
        self.queue.retain(|w| !w.is(partition, id));
    }

    fn waiting(&self) -> usize {
        self.queue.len() + usize::from(self.in_flight.is_some())
    }

    /// Whether `id` of `partition` is queued or being inserted.
    fn waits(&self, partition: PartitionKey, id: u64) -> bool {
        self.queue
            .iter()
            .chain(&self.in_flight)
            .any(|w| w.is(partition, id))
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::rng_vec;
    use super::super::HnswParams;
    use super::*;

    /// An index whose partitions are graphs from the first vector, inserting in the
    /// background.
    fn index(dim: usize) -> Arc<HnswIndex> {
        let params = HnswParams {
            flat_below: 0,
            ..HnswParams::default()
        };
        let idx = Arc::new(HnswIndex::new("test", dim, params));
        idx.insert_in_background().unwrap();
        idx
    }

    fn finds(idx: &HnswIndex, p: PartitionKey, id: u64, v: &[f32]) -> bool {
        idx.search_near_sync(p, v, 4, 0.99)
            .unwrap()
            .iter()
            .any(|n| n.id.0 == id)
    }

    #[test]
    fn a_vector_is_found_from_the_moment_it_is_inserted() {
        let idx = index(32);
        let p = PartitionKey([1; 16]);
        let mut seed = 7;
        let vs: Vec<Vec<f32>> = (0..2_000).map(|_| rng_vec(&mut seed, 32)).collect();
        let mut waited = 0;
        for (i, v) in vs.iter().enumerate() {
            idx.insert_sync(p, EntryId(i as u64), v).unwrap();
            waited += idx.background.get().unwrap().waiting();
            assert!(
                finds(&idx, p, i as u64, v),
                "vector {i} right after its insert"
            );
            // Its score does not depend on where it is.
            let top = idx.search_sync(p, v, 1).unwrap();
            assert_eq!(top.first().map(|n| n.id.0), Some(i as u64));
        }
        assert!(
            waited > 0,
            "nothing ever waited: the test saw no background insert"
        );
        idx.settle();
        assert_eq!(idx.background.get().unwrap().waiting(), 0);
        assert_eq!(idx.len_sync(), 2_000);
        for (i, v) in vs.iter().enumerate() {
            assert!(finds(&idx, p, i as u64, v), "vector {i} once settled");
        }
    }

    #[test]
    fn a_removed_vector_is_never_found_whatever_its_state() {
        let idx = index(32);
        let (p, other) = (PartitionKey([2; 16]), PartitionKey([3; 16]));
        let mut seed = 11;
        let vs: Vec<Vec<f32>> = (0..1_500).map(|_| rng_vec(&mut seed, 32)).collect();
        for (i, v) in vs.iter().enumerate() {
            idx.insert_sync(p, EntryId(i as u64), v).unwrap();
            // Removed at once (queued), one insert later (often in flight), or from the
            // graph later on.
            for gone in [i, i.saturating_sub(1), i.saturating_sub(300)] {
                if gone % 3 == 0 {
                    idx.remove_sync(p, EntryId(gone as u64)).unwrap();
                    assert!(!finds(&idx, p, gone as u64, &vs[gone]), "vector {gone}");
                }
            }
            // Another partition's removal of the same id changes nothing here.
            idx.remove_sync(other, EntryId(i as u64)).unwrap();
        }
        // Inserted again after its removal: found again, in order.
        idx.insert_sync(p, EntryId(0), &vs[0]).unwrap();
        idx.settle();
        let kept = (0..vs.len()).filter(|i| i % 3 != 0).count() + 1;
        assert_eq!(idx.len_sync(), kept as u64);
        for (i, v) in vs.iter().enumerate() {
            assert_eq!(
                finds(&idx, p, i as u64, v),
                i % 3 != 0 || i == 0,
                "vector {i}"
            );
        }
    }

    #[test]
    fn inserts_wait_when_too_many_are_waiting_and_the_thread_ends_with_the_index() {
        let idx = index(64);
        let p = PartitionKey([4; 16]);
        let mut seed = 3;
        for i in 0..(MAX_WAITING as u64 * 3) {
            idx.insert_sync(p, EntryId(i), &rng_vec(&mut seed, 64))
                .unwrap();
            assert!(idx.background.get().unwrap().waiting() <= MAX_WAITING);
        }
        let bg = idx.background.get().unwrap().clone();
        drop(idx);
        // Dropping the index (here, or on its thread when that held it last) ends the
        // thread.
        assert!(bg.wait_for_stop());
    }
}
