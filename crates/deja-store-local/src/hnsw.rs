//! [`HnswIndex`]: the in-process [`VectorIndex`], one structure per partition.
//!
//! Every partition keeps its vectors as int8 codes (symmetric, per-vector scale; only the
//! inverse norm of the codes is kept, since vectors are unit length and only cosines are
//! asked for). A partition with fewer than [`HnswParams::flat_below`] vectors is searched
//! exactly by brute force; once it grows to that size an HNSW graph (Malkov & Yashunin,
//! 2016, with the neighbour-selection heuristic) is built for it and kept up to date.
//!
//! Graph traversal compares int8 codes (i32 dot products); the candidates it ends with
//! (`ef_search` of them) are re-scored with the f32 query against the stored codes, which
//! is the exact cosine to the vector the entry store returns (it stores the same codes).
//! A caller that can use only candidates above a floor (`search_near`, the engine's
//! lookups) gets a wider search when the first found none: on graphs of weakly clustered
//! vectors a width of 64 loses near-duplicates ([`MAX_WIDE_EF`]).
//!
//! Removal marks a slot deleted (a tombstone): deleted slots still route graph searches
//! but are never returned. When tombstones outnumber live vectors the partition is rebuilt
//! without them. Inserting an id that is present tombstones its old slot and adds a new one.
//!
//! With [`HnswIndex::insert_in_background`], inserts into graph partitions are done on a
//! thread of the index's own while the caller goes on; a vector waiting for it is scored
//! directly by searches, so it is found from the moment it was inserted
//! (`background.rs`).
//!
//! Persistence is a snapshot file (`snapshot.rs`) written at a clean shutdown and used at
//! the next start only if the store has not changed since; otherwise the index is rebuilt
//! from the entry store. Not here: embedder checks on insert (the trait carries no
//! embedder id; the engine checks it once).

use std::cmp::Ordering;
use std::collections::{BinaryHeap, HashMap};
use std::sync::{Arc, OnceLock};

use async_trait::async_trait;
use parking_lot::RwLock;

use deja_core::{EntryId, IndexError, Neighbor, PartitionKey, VectorIndex};

use crate::codec::quantize_into;
use crate::simd::Kernels;

mod background;
mod snapshot;
pub use snapshot::SnapshotError;

use background::Background;

/// HNSW tuning. The defaults give recall@1 ≥ 0.99 on 384-d embeddings at 100k vectors per
/// partition with sub-millisecond searches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HnswParams {
    /// Links per node on upper layers; layer 0 allows `2 * m`.
    pub m: usize,
    /// Candidate list size while inserting (bigger: better graph, slower inserts).
    pub ef_construction: usize,
    /// Candidate list size while searching (bigger: better recall, slower searches); all of
    /// them are re-scored exactly.
    pub ef_search: usize,
    /// Partitions smaller than this are searched by brute force, without a graph.
    pub flat_below: usize,
}

/// How much wider [`HnswIndex::search_near_sync`] searches again when it found nothing at
/// or above its floor.
pub const WIDEN: usize = 4;

/// [`HnswIndex::search_near_sync`] widens a partition's search up to one candidate in this
/// many of its vectors (within [`MAX_WIDE_EF`]), so a small graph, whose narrow search finds
/// its near-duplicates anyway, is not searched wider for a query that finds nothing: on
/// uniformly random 384-d vectors the default width of 64 found all of 2,000 near-duplicates
/// at 10k vectors (no widening: 10,000 / 200 < 64), 99.3% at 30k (widened up to 150: all),
/// 84.2% at 100k (up to 500).
pub const WIDEST_SHARE: usize = 200;

/// The widest search [`HnswIndex::search_near_sync`] makes. On 100k uniformly random 384-d
/// vectors (no clusters: the hardest case for a graph) near-duplicates at cosine 0.95 are
/// found first 84% of the time at the default width of 64, 99.5% at 256 and all of 2,000 at
/// 512; widening as needed (up to 500 there) finds all 2,000, and costs a query that finds
/// nothing 2.5 ms p50 instead of 0.27 ms (`examples/recall_uniform.rs`, one core). A limit
/// of 1024 cost those 3.2 ms and found no more.
pub const MAX_WIDE_EF: usize = 512;

impl Default for HnswParams {
    fn default() -> Self {
        Self {
            m: 16,
            ef_construction: 100,
            ef_search: 64,
            flat_below: 1024,
        }
    }
}

/// The in-process vector index: per-partition int8 vectors, brute force for small
/// partitions, HNSW for big ones. Searches run concurrently; writes to one partition are
/// serialised.
pub struct HnswIndex {
    embedder_id: String,
    dim: usize,
    params: HnswParams,
    kernels: Kernels,
    /// The global lock is held (shared) for the whole of every operation and taken
    /// exclusively only to add or drop a partition, so a partition is never written after
    /// it has been dropped from the map.
    partitions: RwLock<HashMap<PartitionKey, RwLock<PartitionIndex>>>,
    /// Graph inserts handed to the index's own thread, once
    /// [`HnswIndex::insert_in_background`] started it.
    background: OnceLock<Arc<Background>>,
}

impl Drop for HnswIndex {
    fn drop(&mut self) {
        if let Some(bg) = self.background.get() {
            bg.stop();
        }
    }
}

impl std::fmt::Debug for HnswIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HnswIndex")
            .field("embedder_id", &self.embedder_id)
            .field("dim", &self.dim)
            .field("params", &self.params)
            .field("kernels", &self.kernels)
            .finish_non_exhaustive()
    }
}

impl HnswIndex {
    pub fn new(embedder_id: &str, dim: usize, params: HnswParams) -> HnswIndex {
        HnswIndex {
            embedder_id: embedder_id.to_string(),
            dim,
            params: HnswParams {
                // m < 2 would make the level distribution degenerate (1 / ln 1).
                m: params.m.max(2),
                ef_construction: params.ef_construction.max(1),
                ef_search: params.ef_search.max(1),
                flat_below: params.flat_below,
            },
            kernels: Kernels::detect(),
            partitions: RwLock::new(HashMap::new()),
            background: OnceLock::new(),
        }
    }

    /// From now on, inserts into partitions searched through a graph are done on a thread
    /// of the index's own, so the caller goes on while the graph work is done on another
    /// core; every search still finds each vector from the moment it was inserted (see
    /// `background.rs`). Calling it again does nothing.
    pub fn insert_in_background(self: &Arc<Self>) -> std::io::Result<()> {
        if self.background.get().is_none() {
            let bg = Background::start(self)?;
            if self.background.set(bg.clone()).is_err() {
                // Another call started one first: this thread ends.
                bg.stop();
            }
        }
        Ok(())
    }

    /// Waits until every vector handed to the background thread is in its graph (at once
    /// without one). Snapshots are written only then.
    pub fn settle(&self) {
        if let Some(bg) = self.background.get() {
            bg.settle();
        }
    }

    /// Whether `partition` is searched through a graph.
    fn has_graph(&self, partition: PartitionKey) -> bool {
        self.partitions
            .read()
            .get(&partition)
            .is_some_and(|p| p.read().graph.is_some())
    }

    /// Adds what still waits for the background thread to a search's results.
    fn with_waiting(
        &self,
        partition: PartitionKey,
        query: &[f32],
        k: usize,
        mut found: Vec<Neighbor>,
    ) -> Vec<Neighbor> {
        if let Some(bg) = self.background.get() {
            if k > 0 {
                bg.merge_waiting(partition, query, k, self.kernels, &mut found);
            }
        }
        found
    }

    pub fn params(&self) -> HnswParams {
        self.params
    }

    /// Which dot-product kernels were selected at runtime (`avx2` or `portable`).
    pub fn kernel_name(&self) -> &'static str {
        self.kernels.name()
    }

    fn check_dim(&self, v: &[f32]) -> Result<(), IndexError> {
        if v.len() == self.dim {
            Ok(())
        } else {
            Err(IndexError::Dimension {
                want: self.dim,
                got: v.len(),
            })
        }
    }

    /// Synchronous [`VectorIndex::insert`].
    pub fn insert_sync(
        &self,
        partition: PartitionKey,
        id: EntryId,
        vector: &[f32],
    ) -> Result<(), IndexError> {
        self.check_dim(vector)?;
        if let Some(bg) = self.background.get() {
            if bg.hand_over(partition, id, vector, self.has_graph(partition)) {
                return Ok(());
            }
        }
        self.insert_now(partition, id, vector);
        Ok(())
    }

    /// Inserts into the partition's structure now, on the caller's thread.
    fn insert_now(&self, partition: PartitionKey, id: EntryId, vector: &[f32]) {
        {
            let map = self.partitions.read();
            if let Some(p) = map.get(&partition) {
                p.write().insert(id.0, vector, &self.params, self.kernels);
                return;
            }
        }
        let mut map = self.partitions.write();
        let p = map
            .entry(partition)
            .or_insert_with(|| RwLock::new(PartitionIndex::new(self.dim, seed_for(&partition))));
        p.get_mut().insert(id.0, vector, &self.params, self.kernels);
    }

    /// Synchronous [`VectorIndex::remove`].
    pub fn remove_sync(&self, partition: PartitionKey, id: EntryId) -> Result<(), IndexError> {
        if let Some(bg) = self.background.get() {
            bg.forget(partition, id);
        }
        self.remove_now(partition, id);
        Ok(())
    }

    /// Removes from the partition's structure now.
    fn remove_now(&self, partition: PartitionKey, id: EntryId) {
        let now_empty = {
            let map = self.partitions.read();
            let Some(p) = map.get(&partition) else {
                return;
            };
            let mut p = p.write();
            p.remove(id.0, &self.params, self.kernels);
            p.live == 0
        };
        if now_empty {
            let mut map = self.partitions.write();
            // Re-checked under the exclusive lock: an insert may have come in between.
            if map
                .get_mut(&partition)
                .is_some_and(|p| p.get_mut().live == 0)
            {
                map.remove(&partition);
            }
        }
    }

    /// Synchronous [`VectorIndex::search`].
    pub fn search_sync(
        &self,
        partition: PartitionKey,
        query: &[f32],
        k: usize,
    ) -> Result<Vec<Neighbor>, IndexError> {
        self.search_sync_at_width(partition, query, k, self.params.ef_search)
    }

    /// [`HnswIndex::search_sync`] at another search width than the configured one, to
    /// measure what width buys (`examples/recall_uniform.rs`).
    pub fn search_sync_at_width(
        &self,
        partition: PartitionKey,
        query: &[f32],
        k: usize,
        ef_search: usize,
    ) -> Result<Vec<Neighbor>, IndexError> {
        let found = self.in_partition(partition, query, k, |p| {
            p.search(query, k, ef_search.max(1), self.kernels)
        })?;
        Ok(self.with_waiting(partition, query, k, found))
    }

    /// Synchronous [`VectorIndex::search_near`]: a graph search that finds nothing at or
    /// above `floor` is repeated [`WIDEN`] times wider, up to one candidate in
    /// [`WIDEST_SHARE`] of the partition's vectors and at most [`MAX_WIDE_EF`].
    pub fn search_near_sync(
        &self,
        partition: PartitionKey,
        query: &[f32],
        k: usize,
        floor: f32,
    ) -> Result<Vec<Neighbor>, IndexError> {
        let found = self.in_partition(partition, query, k, |p| {
            let mut ef = self.params.ef_search;
            // A brute-force partition is exact already.
            let widest = match p.graph {
                None => ef,
                Some(_) => (p.live / WIDEST_SHARE).clamp(ef, MAX_WIDE_EF),
            };
            loop {
                let found = p.search(query, k, ef, self.kernels);
                let reached = found.first().is_some_and(|n| n.similarity >= floor);
                if reached || ef >= widest {
                    return found;
                }
                ef = (ef * WIDEN).min(widest);
            }
        })?;
        Ok(self.with_waiting(partition, query, k, found))
    }

    /// Runs a search of `k` neighbours of `query` on `partition` under its read lock:
    /// nothing for `k == 0` or an unknown partition, an error for a query of another
    /// dimension.
    fn in_partition(
        &self,
        partition: PartitionKey,
        query: &[f32],
        k: usize,
        search: impl FnOnce(&PartitionIndex) -> Vec<Neighbor>,
    ) -> Result<Vec<Neighbor>, IndexError> {
        self.check_dim(query)?;
        if k == 0 {
            return Ok(Vec::new());
        }
        let map = self.partitions.read();
        let Some(p) = map.get(&partition) else {
            return Ok(Vec::new());
        };
        let found = search(&p.read());
        Ok(found)
    }

    /// Live vectors in all partitions, counting those waiting for the background thread.
    pub fn len_sync(&self) -> u64 {
        let map = self.partitions.read();
        // Every partition read-locked at once, so the background thread cannot move a
        // vector into a graph between counting the graphs and counting what waits.
        let locked: HashMap<&PartitionKey, _> = map.iter().map(|(k, p)| (k, p.read())).collect();
        let graphs: u64 = locked.values().map(|p| p.live as u64).sum();
        let waiting = self.background.get().map_or(0, |bg| {
            bg.waiting_new(|partition, id| {
                locked
                    .get(&partition)
                    .is_some_and(|p| p.slot_of.contains_key(&id))
            })
        });
        graphs + waiting as u64
    }

    /// Heap bytes held by the index's data structures (vectors, ids, id map, graph links),
    /// computed from allocated capacities; allocator overhead is not included.
    pub fn memory_bytes(&self) -> usize {
        let map = self.partitions.read();
        let table = map.capacity()
            * (std::mem::size_of::<PartitionKey>()
                + std::mem::size_of::<RwLock<PartitionIndex>>()
                + 1);
        table + map.values().map(|p| p.read().heap_bytes()).sum::<usize>()
    }
}

/// A fixed per-partition seed keeps graph construction reproducible.
fn seed_for(p: &PartitionKey) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&p.0[..8]);
    u64::from_le_bytes(b) ^ 0x9E37_79B9_7F4A_7C15
}

#[async_trait]
impl VectorIndex for HnswIndex {
    fn embedder_id(&self) -> &str {
        &self.embedder_id
    }

    fn dim(&self) -> usize {
        self.dim
    }

    async fn insert(
        &self,
        partition: PartitionKey,
        id: EntryId,
        vector: &[f32],
    ) -> Result<(), IndexError> {
        self.insert_sync(partition, id, vector)
    }

    async fn remove(&self, partition: PartitionKey, id: EntryId) -> Result<(), IndexError> {
        self.remove_sync(partition, id)
    }

    async fn search(
        &self,
        partition: PartitionKey,
        query: &[f32],
        k: usize,
    ) -> Result<Vec<Neighbor>, IndexError> {
        self.search_sync(partition, query, k)
    }

    async fn search_near(
        &self,
        partition: PartitionKey,
        query: &[f32],
        k: usize,
        floor: f32,
    ) -> Result<Vec<Neighbor>, IndexError> {
        self.search_near_sync(partition, query, k, floor)
    }

    async fn len(&self) -> Result<u64, IndexError> {
        Ok(self.len_sync())
    }
}

/// The int8 codes of every slot of a partition, live or deleted.
struct Vectors {
    dim: usize,
    /// `dim` codes per slot.
    codes: Vec<i8>,
    /// 1 / ‖codes‖ per slot (0 for a zero vector), so `dot · inv · inv'` is a cosine.
    inv_norms: Vec<f32>,
}

impl Vectors {
    fn code(&self, slot: u32) -> &[i8] {
        let s = slot as usize * self.dim;
        &self.codes[s..s + self.dim]
    }

    /// Asks the CPU to start loading a slot's codes: a graph search reads vectors at random,
    /// and without this every one waits for memory while the one before it is scored.
    #[inline]
    fn prefetch(&self, slot: u32) {
        #[cfg(target_arch = "x86_64")]
        {
            use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
            let code = self.code(slot);
            for line in (0..code.len()).step_by(64) {
                // SAFETY: a prefetch is a hint; the address is inside `code`.
                unsafe { _mm_prefetch::<_MM_HINT_T0>(code.as_ptr().add(line)) };
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = slot;
    }

    fn push(&mut self, v: &[f32]) {
        let start = self.codes.len();
        self.codes.resize(start + self.dim, 0);
        let codes = &mut self.codes[start..];
        quantize_into(v, codes);
        self.inv_norms.push(inv_norm(codes));
    }

    fn sim(&self, k: Kernels, a: u32, b: u32) -> f32 {
        (k.dot_i8)(self.code(a), self.code(b)) as f32
            * self.inv_norms[a as usize]
            * self.inv_norms[b as usize]
    }
}

fn inv_norm(codes: &[i8]) -> f32 {
    let n: i64 = codes.iter().map(|&c| i64::from(c) * i64::from(c)).sum();
    if n == 0 {
        0.0
    } else {
        (1.0 / (n as f64).sqrt()) as f32
    }
}

/// A query as the graph sees it: int8 codes and their inverse norm.
struct Query<'a> {
    codes: &'a [i8],
    inv: f32,
}

impl Query<'_> {
    fn sim(&self, k: Kernels, v: &Vectors, slot: u32) -> f32 {
        (k.dot_i8)(self.codes, v.code(slot)) as f32 * self.inv * v.inv_norms[slot as usize]
    }
}

struct PartitionIndex {
    /// Entry id per slot.
    ids: Vec<u64>,
    vectors: Vectors,
    deleted: Vec<bool>,
    /// Live slot of each id.
    slot_of: HashMap<u64, u32>,
    live: usize,
    graph: Option<Graph>,
    seed: u64,
}

impl PartitionIndex {
    fn new(dim: usize, seed: u64) -> Self {
        Self {
            ids: Vec::new(),
            vectors: Vectors {
                dim,
                codes: Vec::new(),
                inv_norms: Vec::new(),
            },
            deleted: Vec::new(),
            slot_of: HashMap::new(),
            live: 0,
            graph: None,
            seed,
        }
    }

    fn heap_bytes(&self) -> usize {
        self.ids.capacity() * 8
            + self.vectors.codes.capacity()
            + self.vectors.inv_norms.capacity() * 4
            + self.deleted.capacity()
            // hashbrown: one control byte plus the (u64, u32) pair, padded to 16 bytes.
            + self.slot_of.capacity() * (16 + 1)
            + self.graph.as_ref().map_or(0, Graph::heap_bytes)
    }

    fn insert(&mut self, id: u64, v: &[f32], params: &HnswParams, k: Kernels) {
        if let Some(old) = self.slot_of.remove(&id) {
            self.deleted[old as usize] = true;
            self.live -= 1;
        }
        let Ok(slot) = u32::try_from(self.ids.len()) else {
            // 4 billion slots in one partition would need terabytes; rebuilding drops the
            // tombstones, which is the only way to get here with less.
            self.rebuild(params, k);
            return self.insert(id, v, params, k);
        };
        self.ids.push(id);
        self.vectors.push(v);
        self.deleted.push(false);
        self.slot_of.insert(id, slot);
        self.live += 1;
        match &mut self.graph {
            Some(g) => g.insert(slot, &self.vectors, params, k),
            None if self.live >= params.flat_below => self.rebuild(params, k),
            None => {}
        }
        self.maybe_compact(params, k);
    }

    fn remove(&mut self, id: u64, params: &HnswParams, k: Kernels) {
        if let Some(slot) = self.slot_of.remove(&id) {
            self.deleted[slot as usize] = true;
            self.live -= 1;
            self.maybe_compact(params, k);
        }
    }

    fn maybe_compact(&mut self, params: &HnswParams, k: Kernels) {
        let tombstones = self.ids.len() - self.live;
        if tombstones > self.live.max(32) {
            self.rebuild(params, k);
        }
    }

    /// Drops tombstones and (re)builds the graph if the partition is big enough for one.
    fn rebuild(&mut self, params: &HnswParams, k: Kernels) {
        let dim = self.vectors.dim;
        let mut fresh = PartitionIndex::new(dim, self.seed);
        fresh.ids.reserve(self.live);
        fresh.vectors.codes.reserve(self.live * dim);
        fresh.vectors.inv_norms.reserve(self.live);
        for (slot, &id) in self.ids.iter().enumerate() {
            if self.deleted[slot] {
                continue;
            }
            let new_slot = fresh.ids.len() as u32;
            fresh.ids.push(id);
            // Codes are copied as they are: re-quantising would be lossless but slower.
            fresh
                .vectors
                .codes
                .extend_from_slice(self.vectors.code(slot as u32));
            fresh.vectors.inv_norms.push(self.vectors.inv_norms[slot]);
            fresh.deleted.push(false);
            fresh.slot_of.insert(id, new_slot);
        }
        fresh.live = fresh.ids.len();
        if fresh.live >= params.flat_below && fresh.live > 0 {
            let mut g = Graph::new(params, self.seed);
            for slot in 0..fresh.live as u32 {
                g.insert(slot, &fresh.vectors, params, k);
            }
            fresh.graph = Some(g);
        }
        *self = fresh;
    }

    fn search(&self, query: &[f32], k: usize, ef_search: usize, kern: Kernels) -> Vec<Neighbor> {
        let q_norm = query.iter().map(|x| x * x).sum::<f32>().sqrt();
        let q_scale = if q_norm > 0.0 { 1.0 / q_norm } else { 0.0 };
        let exact = |slot: u32| -> f32 {
            (kern.dot_f32_i8)(query, self.vectors.code(slot))
                * q_scale
                * self.vectors.inv_norms[slot as usize]
        };
        let mut scored: Vec<(f32, u32)> = match &self.graph {
            None => (0..self.ids.len() as u32)
                .filter(|&s| !self.deleted[s as usize])
                .map(|s| (exact(s), s))
                .collect(),
            Some(g) => {
                let mut codes = vec![0i8; query.len()];
                quantize_into(query, &mut codes);
                let q = Query {
                    inv: inv_norm(&codes),
                    codes: &codes,
                };
                g.search(&q, ef_search.max(k), &self.vectors, &self.deleted, kern)
                    .into_iter()
                    .map(|s| (exact(s), s))
                    .collect()
            }
        };
        let by_sim_desc = |a: &(f32, u32), b: &(f32, u32)| b.0.total_cmp(&a.0);
        if scored.len() > k {
            scored.select_nth_unstable_by(k - 1, by_sim_desc);
            scored.truncate(k);
        }
        scored.sort_unstable_by(by_sim_desc);
        scored
            .into_iter()
            .map(|(s, slot)| Neighbor {
                id: EntryId(self.ids[slot as usize]),
                similarity: s.clamp(-1.0, 1.0),
            })
            .collect()
    }
}

/// A scored node; ordered by similarity, then slot (so heaps are deterministic).
#[derive(Clone, Copy, Debug)]
struct Scored {
    sim: f32,
    slot: u32,
}

impl PartialEq for Scored {
    fn eq(&self, o: &Self) -> bool {
        self.cmp(o) == Ordering::Equal
    }
}
impl Eq for Scored {}
impl PartialOrd for Scored {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Scored {
    fn cmp(&self, o: &Self) -> Ordering {
        self.sim
            .total_cmp(&o.sim)
            .then_with(|| self.slot.cmp(&o.slot))
    }
}

/// Worst-first wrapper, so a `BinaryHeap` of results pops its least similar member.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Worst(std::cmp::Reverse<Scored>);

/// Visited set for one traversal: a bitset over slots.
struct Visited(Vec<u64>);

impl Visited {
    fn new(n: usize) -> Self {
        Visited(vec![0; n.div_ceil(64)])
    }

    /// True if `slot` was not visited before.
    fn insert(&mut self, slot: u32) -> bool {
        let (w, b) = ((slot / 64) as usize, slot % 64);
        let was = self.0[w] & (1 << b) != 0;
        self.0[w] |= 1 << b;
        !was
    }
}

/// The HNSW graph over a partition's slots (deleted slots included).
struct Graph {
    m: usize,
    m0: usize,
    level_mult: f64,
    rng: u64,
    /// Per slot: `m0 + 1` words: count, then up to `m0` neighbours on layer 0.
    links0: Vec<u32>,
    /// Layers 1.. of nodes that have them: `level × (m + 1)` words, same layout.
    upper: HashMap<u32, Vec<u32>>,
    levels: Vec<u8>,
    entry: u32,
    max_level: u8,
    /// Slots in the graph; the graph is empty until the first insert.
    len: usize,
}

const MAX_LEVEL: u8 = 16;

impl Graph {
    fn new(p: &HnswParams, seed: u64) -> Self {
        Graph {
            m: p.m,
            m0: 2 * p.m,
            level_mult: 1.0 / (p.m as f64).ln(),
            rng: seed | 1,
            links0: Vec::new(),
            upper: HashMap::new(),
            levels: Vec::new(),
            entry: 0,
            max_level: 0,
            len: 0,
        }
    }

    fn heap_bytes(&self) -> usize {
        self.links0.capacity() * 4
            + self.levels.capacity()
            + self.upper.capacity() * (4 + std::mem::size_of::<Vec<u32>>() + 1)
            + self.upper.values().map(|v| v.capacity() * 4).sum::<usize>()
    }

    fn next_random(&mut self) -> u64 {
        // splitmix64: fast, good enough for level assignment, and reproducible.
        self.rng = self.rng.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn random_level(&mut self) -> u8 {
        // Uniform in (0, 1]: the top 53 bits, plus one so ln never sees zero.
        let u = ((self.next_random() >> 11) + 1) as f64 / (1u64 << 53) as f64;
        let level = (-u.ln() * self.level_mult).floor();
        (level as u64).min(u64::from(MAX_LEVEL)) as u8
    }

    fn links(&self, slot: u32, level: u8) -> &[u32] {
        let words = if level == 0 {
            let s = slot as usize * (self.m0 + 1);
            &self.links0[s..s + self.m0 + 1]
        } else {
            match self.upper.get(&slot) {
                Some(v) => {
                    let s = (level as usize - 1) * (self.m + 1);
                    &v[s..s + self.m + 1]
                }
                None => return &[],
            }
        };
        &words[1..1 + words[0] as usize]
    }

    fn set_links(&mut self, slot: u32, level: u8, links: &[u32]) {
        let (cap, words) = if level == 0 {
            let s = slot as usize * (self.m0 + 1);
            (self.m0, &mut self.links0[s..s + self.m0 + 1])
        } else {
            let m = self.m;
            let Some(v) = self.upper.get_mut(&slot) else {
                return;
            };
            let s = (level as usize - 1) * (m + 1);
            (m, &mut v[s..s + m + 1])
        };
        let n = links.len().min(cap);
        words[0] = n as u32;
        words[1..1 + n].copy_from_slice(&links[..n]);
    }

    fn insert(&mut self, slot: u32, vectors: &Vectors, p: &HnswParams, k: Kernels) {
        let level = self.random_level();
        let n = slot as usize + 1;
        self.links0.resize(n * (self.m0 + 1), 0);
        self.levels.resize(n, 0);
        self.levels[slot as usize] = level;
        if level > 0 {
            self.upper
                .insert(slot, vec![0; level as usize * (self.m + 1)]);
        }
        if self.len == 0 {
            self.entry = slot;
            self.max_level = level;
            self.len = n;
            return;
        }
        self.len = n;
        let q = Query {
            codes: vectors.code(slot),
            inv: vectors.inv_norms[slot as usize],
        };
        let mut ep = Scored {
            sim: q.sim(k, vectors, self.entry),
            slot: self.entry,
        };
        for lc in (level.saturating_add(1)..=self.max_level).rev() {
            ep = self.greedy(&q, ep, lc, vectors, k);
        }
        let mut eps = vec![ep];
        let mut visited = Visited::new(n);
        for lc in (0..=level.min(self.max_level)).rev() {
            visited.0.iter_mut().for_each(|w| *w = 0);
            let found = self.search_layer(
                &q,
                &eps,
                p.ef_construction,
                lc,
                vectors,
                None,
                &mut visited,
                k,
            );
            let chosen = self.select(&found, self.m, vectors, k);
            self.set_links(slot, lc, &chosen);
            let cap = if lc == 0 { self.m0 } else { self.m };
            for &nb in &chosen {
                self.link_back(nb, slot, lc, cap, vectors, k);
            }
            eps = found;
        }
        if level > self.max_level {
            self.entry = slot;
            self.max_level = level;
        }
    }

    /// Adds `new` to `node`'s links on `level`, pruning with the heuristic when full.
    fn link_back(&mut self, node: u32, new: u32, level: u8, cap: usize, v: &Vectors, k: Kernels) {
        let current = self.links(node, level);
        if current.len() < cap {
            let mut l = current.to_vec();
            l.push(new);
            self.set_links(node, level, &l);
            return;
        }
        let mut cands: Vec<Scored> = current
            .iter()
            .chain(std::iter::once(&new))
            .map(|&s| Scored {
                sim: v.sim(k, node, s),
                slot: s,
            })
            .collect();
        cands.sort_unstable_by(|a, b| b.cmp(a));
        let chosen = self.select(&cands, cap, v, k);
        self.set_links(node, level, &chosen);
    }

    /// The neighbour-selection heuristic: take candidates best first, skipping one that is
    /// closer to an already chosen neighbour than to the base (it is reachable through it).
    /// `cands` must be sorted most similar first.
    fn select(&self, cands: &[Scored], m: usize, v: &Vectors, k: Kernels) -> Vec<u32> {
        let mut out: Vec<u32> = Vec::with_capacity(m);
        for c in cands {
            if out.len() >= m {
                break;
            }
            if out.iter().all(|&r| v.sim(k, c.slot, r) < c.sim) {
                out.push(c.slot);
            }
        }
        out
    }

    fn greedy(
        &self,
        q: &Query<'_>,
        mut best: Scored,
        level: u8,
        v: &Vectors,
        k: Kernels,
    ) -> Scored {
        loop {
            let mut moved = false;
            for &nb in self.links(best.slot, level) {
                let s = q.sim(k, v, nb);
                if s > best.sim {
                    best = Scored { sim: s, slot: nb };
                    moved = true;
                }
            }
            if !moved {
                return best;
            }
        }
    }

    /// Best-first search of one layer; returns up to `ef` nodes, most similar first.
    /// With `deleted`, deleted nodes are traversed but not returned.
    #[allow(clippy::too_many_arguments)]
    fn search_layer(
        &self,
        q: &Query<'_>,
        eps: &[Scored],
        ef: usize,
        level: u8,
        v: &Vectors,
        deleted: Option<&[bool]>,
        visited: &mut Visited,
        k: Kernels,
    ) -> Vec<Scored> {
        let is_deleted = |s: u32| deleted.is_some_and(|d| d[s as usize]);
        let mut cands: BinaryHeap<Scored> = BinaryHeap::with_capacity(ef * 4);
        let mut results: BinaryHeap<Worst> = BinaryHeap::with_capacity(ef + 1);
        for &e in eps {
            if visited.insert(e.slot) {
                cands.push(e);
                if !is_deleted(e.slot) {
                    results.push(Worst(std::cmp::Reverse(e)));
                }
            }
        }
        while results.len() > ef {
            results.pop();
        }
        while let Some(c) = cands.pop() {
            if results.len() >= ef && results.peek().is_some_and(|w| c.sim < w.0 .0.sim) {
                break;
            }
            let links = self.links(c.slot, level);
            if let Some(&first) = links.first() {
                v.prefetch(first);
            }
            for (i, &nb) in links.iter().enumerate() {
                if let Some(&next) = links.get(i + 1) {
                    v.prefetch(next);
                }
                if !visited.insert(nb) {
                    continue;
                }
                let s = q.sim(k, v, nb);
                let worst = results.peek().map_or(f32::NEG_INFINITY, |w| w.0 .0.sim);
                if results.len() < ef || s > worst {
                    let sc = Scored { sim: s, slot: nb };
                    cands.push(sc);
                    if !is_deleted(nb) {
                        results.push(Worst(std::cmp::Reverse(sc)));
                        if results.len() > ef {
                            results.pop();
                        }
                    }
                }
            }
        }
        let mut out: Vec<Scored> = results.into_iter().map(|w| w.0 .0).collect();
        out.sort_unstable_by(|a, b| b.cmp(a));
        out
    }

    /// Up to `ef` live slots near the query.
    fn search(
        &self,
        q: &Query<'_>,
        ef: usize,
        v: &Vectors,
        deleted: &[bool],
        k: Kernels,
    ) -> Vec<u32> {
        if self.len == 0 {
            return Vec::new();
        }
        let mut ep = Scored {
            sim: q.sim(k, v, self.entry),
            slot: self.entry,
        };
        for lc in (1..=self.max_level).rev() {
            ep = self.greedy(q, ep, lc, v, k);
        }
        let mut visited = Visited::new(self.len);
        self.search_layer(q, &[ep], ef, 0, v, Some(deleted), &mut visited, k)
            .into_iter()
            .map(|s| s.slot)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A random unit vector of `dim` from `seed` (also used by the submodules' tests).
    pub(super) fn rng_vec(seed: &mut u64, dim: usize) -> Vec<f32> {
        let v: Vec<f32> = (0..dim)
            .map(|_| {
                *seed = seed
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((*seed >> 33) as f32 / (1u64 << 31) as f32) - 0.5
            })
            .collect();
        let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        v.into_iter().map(|x| x / n).collect()
    }

    /// `n` random unit vectors of `dim` from `seed`, inserted into `p` of `idx` as entries
    /// 0, 1, …; returned in that order.
    fn fill(idx: &HnswIndex, p: PartitionKey, n: usize, seed: &mut u64) -> Vec<Vec<f32>> {
        let vs: Vec<Vec<f32>> = (0..n).map(|_| rng_vec(seed, idx.dim)).collect();
        for (i, v) in vs.iter().enumerate() {
            idx.insert_sync(p, EntryId(i as u64), v).unwrap();
        }
        vs
    }

    fn brute(vs: &[Vec<f32>], q: &[f32]) -> usize {
        let mut best = (f32::NEG_INFINITY, 0);
        for (i, v) in vs.iter().enumerate() {
            let s: f32 = v.iter().zip(q).map(|(a, b)| a * b).sum();
            if s > best.0 {
                best = (s, i);
            }
        }
        best.1
    }

    #[test]
    fn graph_recall_on_random_vectors() {
        let dim = 32;
        let params = HnswParams {
            flat_below: 64,
            ..HnswParams::default()
        };
        let idx = HnswIndex::new("t", dim, params);
        let p = PartitionKey([1; 16]);
        let mut seed = 42;
        let vs = fill(&idx, p, 2000, &mut seed);
        assert!(idx.partitions.read()[&p].read().graph.is_some());
        let mut hits = 0;
        for _ in 0..200 {
            let q = rng_vec(&mut seed, dim);
            let got = idx.search_sync(p, &q, 1).unwrap();
            if got[0].id.0 as usize == brute(&vs, &q) {
                hits += 1;
            }
        }
        assert!(hits >= 190, "recall {hits}/200");
        // Every stored vector finds itself.
        for (i, v) in vs.iter().enumerate().step_by(7) {
            assert_eq!(idx.search_sync(p, v, 1).unwrap()[0].id, EntryId(i as u64));
        }
    }

    /// A search too narrow for its graph loses near-duplicates; `search_near` searches
    /// wider until it finds one above its floor, and does not widen when the first search
    /// found one (nor for a brute-force partition, which is exact).
    #[test]
    fn search_near_widens_until_it_reaches_its_floor() {
        let dim = 64;
        let params = HnswParams {
            m: 16,
            ef_construction: 64,
            ef_search: 1,
            flat_below: 64,
        };
        let idx = HnswIndex::new("t", dim, params);
        let p = PartitionKey([2; 16]);
        let mut seed = 7;
        // Widened up to 12,000 / WIDEST_SHARE = 60 candidates.
        let vs = fill(&idx, p, 12_000, &mut seed);
        let (mut narrow, mut near) = (0, 0);
        for i in (0..vs.len()).step_by(60) {
            // About cosine 0.9 to entry i, far from every other.
            let noise = rng_vec(&mut seed, dim);
            let q: Vec<f32> = vs[i]
                .iter()
                .zip(&noise)
                .map(|(a, b)| a + 0.45 * b)
                .collect();
            let plain = idx.search_sync(p, &q, 1).unwrap();
            narrow += usize::from(plain[0].id == EntryId(i as u64));
            let wide = idx.search_near_sync(p, &q, 1, 0.5).unwrap();
            assert!(wide[0].similarity >= 0.5, "{:?}", wide[0]);
            near += usize::from(wide[0].id == EntryId(i as u64));
            // A floor the first search reached: the same answer as the plain search.
            assert_eq!(idx.search_near_sync(p, &q, 1, -1.0).unwrap(), plain);
        }
        assert_eq!(near, 200, "every near-duplicate found");
        assert!(
            narrow < 190,
            "the narrow search must lose some: {narrow}/200"
        );
        // Nothing above the floor anywhere: the widest search answers, and it is bounded.
        let q = rng_vec(&mut seed, dim);
        assert!(idx.search_near_sync(p, &q, 1, 0.99).unwrap()[0].similarity < 0.99);
    }

    #[test]
    fn removals_compact_and_are_never_returned() {
        let dim = 16;
        let params = HnswParams {
            flat_below: 50,
            ..HnswParams::default()
        };
        let idx = HnswIndex::new("t", dim, params);
        let p = PartitionKey([2; 16]);
        let mut seed = 7;
        let vs = fill(&idx, p, 400, &mut seed);
        for i in (0..400).filter(|i| i % 4 != 0) {
            idx.remove_sync(p, EntryId(i)).unwrap();
        }
        assert_eq!(idx.len_sync(), 100);
        for v in &vs {
            for n in idx.search_sync(p, v, 5).unwrap() {
                assert_eq!(n.id.0 % 4, 0, "removed id returned");
            }
        }
        for i in (0..400).step_by(4) {
            let got = idx.search_sync(p, &vs[i], 1).unwrap();
            assert_eq!(got[0].id, EntryId(i as u64));
            assert!(got[0].similarity > 0.999);
        }
        for i in (0..400).step_by(4) {
            idx.remove_sync(p, EntryId(i as u64)).unwrap();
        }
        assert_eq!(idx.len_sync(), 0);
        assert!(idx.partitions.read().is_empty());
    }
}
