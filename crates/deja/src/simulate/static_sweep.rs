//! The "best single static threshold" baseline of `deja simulate`: what a cache with one
//! fixed cosine threshold would have served on a query stream, for many thresholds at once,
//! judged in hindsight.
//!
//! The model is one partition with no eviction. For each query in stream order: if an entry
//! with the identical text is cached, it is an exact hit (always correct). Otherwise the
//! cached entry most similar to the query is found; if its similarity is at least the
//! threshold, the query is a semantic hit, correct when that entry's intent equals the
//! query's; otherwise it is a miss and the query's text becomes a new entry. Which entries
//! exist therefore depends on the threshold, so every threshold needs its own walk.
//!
//! Tie rule: when several cached entries share the highest similarity, the one inserted
//! earliest serves — what a linear scan that only replaces its best on a strictly higher
//! similarity does, and what [`sweep`] reproduces exactly.
//!
//! Invariant the fast path rests on: a text is only ever inserted at its first occurrence.
//! If that occurrence was served, the entry that served it stays cached (nothing is
//! evicted), so every later occurrence is served too. Hence entries are inserted in the
//! order their texts first appeared in the stream.
//!
//! Rescanning the cache for every query and threshold costs
//! queries × entries × dimension × thresholds multiply-adds, far too slow for tens of
//! thousands of queries. Instead the similarities are computed once: for each stream
//! position, the `m` most similar distinct texts seen earlier in the stream, ties in
//! order of first appearance. The cache at that position only holds such texts, so by the
//! invariant the first cached text in that list is the entry the tie rule picks. Only when
//! no text of the list is cached and the list's last similarity still reaches the
//! threshold can an entry beyond the list serve; then that one query falls back to
//! scanning the cache.
//!
//! This module is not the adaptive policy being compared against; it knows nothing of
//! categories, verification or TTLs.

use std::cmp::Reverse;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Neighbours kept per stream position. With real embeddings the nearest cached entry is
/// almost always among the 32 most similar earlier texts, so the fallback scan stays rare.
const NEIGHBOURS_PER_QUERY: usize = 32;

/// Texts whose similarity rows are computed together, so each earlier text's vector is
/// read from memory once per block instead of once per text.
const ROWS_PER_BLOCK: usize = 32;

/// Bytes of earlier texts' vectors visited per pass over a block: small enough to stay in
/// L2 cache while every row of the block is multiplied against them.
const COLUMN_TILE_BYTES: usize = 128 * 1024;

/// What a static-threshold cache did on one stream at one threshold.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StaticOutcome {
    pub threshold: f32,
    /// Queries served from an entry with different text (right or wrong).
    pub semantic_hits: usize,
    /// Semantic hits served from an entry of another intent.
    pub wrong_hits: usize,
    /// Queries whose identical text was already cached.
    pub exact_hits: usize,
    /// Queries that went upstream and were inserted.
    pub misses: usize,
}

impl StaticOutcome {
    /// Share of semantic hits that were wrong; 0 when nothing was served semantically.
    fn wrong_share(&self) -> f64 {
        if self.semantic_hits == 0 {
            0.0
        } else {
            self.wrong_hits as f64 / self.semantic_hits as f64
        }
    }
}

/// Simulates a static-threshold cache on `stream` once per threshold.
///
/// `stream[i]` is the text index of query `i`; `vectors[text]` is that text's unit-length
/// embedding (all of one dimension, finite) and `intents[text]` its intent. Texts that are
/// not in the stream are ignored. Outcomes come back in the order of `thresholds`, equal to
/// a plain simulation with the tie rule of the module documentation.
///
/// # Panics
///
/// If a stream entry is out of range of `vectors` or `intents`.
pub fn sweep(
    vectors: &[Vec<f32>],
    intents: &[u32],
    stream: &[usize],
    thresholds: &[f32],
) -> Vec<StaticOutcome> {
    sweep_with(vectors, intents, stream, thresholds, NEIGHBOURS_PER_QUERY)
}

/// The most semantic hits among outcomes whose wrong share (wrong_hits / semantic_hits, 0
/// when no hits) is at most `max_false_hit_rate`; None when none qualifies.
///
/// Among outcomes with equally many hits, the first one wins.
pub fn best_at(outcomes: &[StaticOutcome], max_false_hit_rate: f64) -> Option<StaticOutcome> {
    outcomes
        .iter()
        .filter(|outcome| outcome.wrong_share() <= max_false_hit_rate)
        // `max_by_key` keeps the last maximum; reversing the order keeps the first.
        .rev()
        .max_by_key(|outcome| outcome.semantic_hits)
        .copied()
}

/// [`sweep`] keeping `m` neighbours per query (at least one), so tests can force the
/// fallback scan with a tiny `m`.
fn sweep_with(
    vectors: &[Vec<f32>],
    intents: &[u32],
    stream: &[usize],
    thresholds: &[f32],
    m: usize,
) -> Vec<StaticOutcome> {
    let neighbourhoods = earlier_neighbours(vectors, stream, m.max(1));
    parallel_map(thresholds, |&threshold| {
        walk(vectors, intents, stream, &neighbourhoods, threshold)
    })
}

/// An earlier distinct text and its similarity to the query.
#[derive(Debug, Clone, Copy)]
struct Neighbour {
    text: usize,
    similarity: f32,
}

/// The distinct texts seen before one stream position (other than the position's own
/// text) that are most similar to it.
#[derive(Debug, Clone)]
struct Neighbourhood {
    /// Most similar first, earlier first appearance first among equals; every earlier
    /// text left out comes after the last in that order.
    nearest: Vec<Neighbour>,
    /// Whether `nearest` holds every earlier distinct text, so nothing lies beyond it.
    complete: bool,
}

/// Runs the cache over the stream at one threshold, using the precomputed neighbourhoods
/// (one per stream position).
fn walk(
    vectors: &[Vec<f32>],
    intents: &[u32],
    stream: &[usize],
    neighbourhoods: &[Neighbourhood],
    threshold: f32,
) -> StaticOutcome {
    let mut cache = Cache {
        holds: vec![false; vectors.len()],
        entries: Vec::new(),
    };
    let mut outcome = StaticOutcome {
        threshold,
        semantic_hits: 0,
        wrong_hits: 0,
        exact_hits: 0,
        misses: 0,
    };
    for (&text, neighbourhood) in stream.iter().zip(neighbourhoods) {
        if cache.holds[text] {
            outcome.exact_hits += 1;
            continue;
        }
        match serving_entry(&cache, neighbourhood, &vectors[text], vectors, threshold) {
            Some(entry) => {
                outcome.semantic_hits += 1;
                if intents[entry] != intents[text] {
                    outcome.wrong_hits += 1;
                }
            }
            None => {
                outcome.misses += 1;
                cache.holds[text] = true;
                cache.entries.push(text);
            }
        }
    }
    outcome
}

/// The cached texts of one walk.
struct Cache {
    /// Per text index: whether it is cached.
    holds: Vec<bool>,
    /// Cached texts in insertion order.
    entries: Vec<usize>,
}

/// The entry that serves a query whose text is not cached, or None for a miss.
fn serving_entry(
    cache: &Cache,
    neighbourhood: &Neighbourhood,
    query: &[f32],
    vectors: &[Vec<f32>],
    threshold: f32,
) -> Option<usize> {
    let nearest = &neighbourhood.nearest;
    if let Some(first_cached) = nearest.iter().find(|n| cache.holds[n.text]) {
        // Entries beyond the list are at most as similar and, when equal, inserted later
        // (module invariant), so this is the entry the tie rule picks.
        return (first_cached.similarity >= threshold).then_some(first_cached.text);
    }
    // No listed text is cached, so every cached entry lies beyond the list and is at most
    // as similar as its last member.
    match nearest.last() {
        Some(last) if !neighbourhood.complete && last.similarity >= threshold => {
            nearest_by_scan(cache, query, vectors, threshold)
        }
        _ => None,
    }
}

/// The serving entry found by scanning every cached entry in insertion order; only a
/// strictly higher similarity replaces the best, which is the tie rule.
fn nearest_by_scan(
    cache: &Cache,
    query: &[f32],
    vectors: &[Vec<f32>],
    threshold: f32,
) -> Option<usize> {
    let mut best: Option<(usize, f32)> = None;
    for &entry in &cache.entries {
        let similarity = dot(query, &vectors[entry]);
        if best.is_none_or(|(_, best_similarity)| similarity > best_similarity) {
            best = Some((entry, similarity));
        }
    }
    best.filter(|&(_, similarity)| similarity >= threshold)
        .map(|(entry, _)| entry)
}

/// For every stream position, its [`Neighbourhood`] of at most `m` texts.
///
/// Distinct texts are ranked by first appearance, so the texts seen before a position are
/// a prefix of that ranking. Each distinct text needs similarities to the prefix seen
/// before its last occurrence; the lists for its earlier occurrences are snapshots taken
/// while going through that row in rank order.
fn earlier_neighbours(vectors: &[Vec<f32>], stream: &[usize], m: usize) -> Vec<Neighbourhood> {
    let mut rank_of: Vec<Option<usize>> = vec![None; vectors.len()];
    let mut text_of_rank: Vec<usize> = Vec::new();
    let mut occurrences: Vec<Vec<usize>> = Vec::new();
    // Per stream position: how many distinct texts appeared before it.
    let mut seen_before: Vec<usize> = Vec::with_capacity(stream.len());
    for (position, &text) in stream.iter().enumerate() {
        seen_before.push(text_of_rank.len());
        let rank = *rank_of[text].get_or_insert_with(|| {
            text_of_rank.push(text);
            occurrences.push(Vec::new());
            text_of_rank.len() - 1
        });
        occurrences[rank].push(position);
    }

    // The vectors in rank order, back to back, so blocks read them sequentially.
    let dim = text_of_rank.first().map_or(0, |&text| vectors[text].len());
    let by_rank: Vec<f32> = text_of_rank
        .iter()
        .flat_map(|&text| vectors[text].iter().copied())
        .collect();
    let ranks = Ranks {
        dim,
        by_rank: &by_rank,
        text_of_rank: &text_of_rank,
        occurrences: &occurrences,
        seen_before: &seen_before,
    };

    // Rows with similar lengths share a block, so no block idles on one long row; the
    // longest go first so the last blocks to finish are short ones.
    let mut rows: Vec<usize> = (0..text_of_rank.len()).collect();
    rows.sort_by_key(|&rank| Reverse(ranks.row_len(rank)));
    let blocks: Vec<&[usize]> = rows.chunks(ROWS_PER_BLOCK).collect();
    let mut by_position: Vec<(usize, Neighbourhood)> =
        parallel_map(&blocks, |block| ranks.block_neighbourhoods(block, m))
            .into_iter()
            .flatten()
            .collect();
    // Every position is an occurrence of exactly one distinct text, so this is a
    // permutation of 0..stream.len().
    by_position.sort_unstable_by_key(|&(position, _)| position);
    by_position
        .into_iter()
        .map(|(_, neighbourhood)| neighbourhood)
        .collect()
}

/// The stream's distinct texts ranked by first appearance.
struct Ranks<'a> {
    dim: usize,
    /// Rank `r`'s vector at `r * dim..(r + 1) * dim`.
    by_rank: &'a [f32],
    text_of_rank: &'a [usize],
    /// Per rank: the stream positions of that text, ascending.
    occurrences: &'a [Vec<usize>],
    /// Per stream position: how many distinct texts appeared before it.
    seen_before: &'a [usize],
}

impl Ranks<'_> {
    fn vector(&self, rank: usize) -> &[f32] {
        &self.by_rank[rank * self.dim..(rank + 1) * self.dim]
    }

    /// How many ranks a row needs similarities for: those seen before its last
    /// occurrence (its own rank included when it lies in that prefix; it is skipped later).
    fn row_len(&self, rank: usize) -> usize {
        self.occurrences[rank]
            .last()
            .map_or(0, |&position| self.seen_before[position])
    }

    /// The neighbourhoods of every occurrence of the block's texts, with their positions.
    fn block_neighbourhoods(&self, block: &[usize], m: usize) -> Vec<(usize, Neighbourhood)> {
        let mut similarities: Vec<Vec<f32>> = block
            .iter()
            .map(|&rank| vec![0.0; self.row_len(rank)])
            .collect();
        let queries: Vec<&[f32]> = block.iter().map(|&rank| self.vector(rank)).collect();
        fill_similarities(&queries, self.by_rank, self.dim, &mut similarities);
        block
            .iter()
            .zip(&similarities)
            .flat_map(|(&rank, row)| self.row_neighbourhoods(rank, row, m))
            .collect()
    }

    /// Goes through one text's similarities in rank order, keeping the `m` best, and
    /// takes a snapshot at each occurrence of the text.
    fn row_neighbourhoods(
        &self,
        own_rank: usize,
        similarities: &[f32],
        m: usize,
    ) -> Vec<(usize, Neighbourhood)> {
        let mut nearest: Vec<Neighbour> = Vec::with_capacity(m + 1);
        let mut candidates = 0;
        let mut next_rank = 0;
        let mut snapshots = Vec::with_capacity(self.occurrences[own_rank].len());
        for &position in &self.occurrences[own_rank] {
            let seen = self.seen_before[position];
            for (rank, &similarity) in (next_rank..).zip(&similarities[next_rank..seen]) {
                if rank == own_rank {
                    continue;
                }
                candidates += 1;
                keep_if_among_best(
                    &mut nearest,
                    m,
                    Neighbour {
                        text: self.text_of_rank[rank],
                        // Adding +0 turns -0 into +0, so `total_cmp` in the list orders
                        // similarities exactly as `>` does in a scan.
                        similarity: similarity + 0.0,
                    },
                );
            }
            next_rank = seen;
            snapshots.push((
                position,
                Neighbourhood {
                    nearest: nearest.clone(),
                    complete: candidates <= m,
                },
            ));
        }
        snapshots
    }
}

/// Sets `similarities[i][column]` to `dot(queries[i], vector of column)` for every column
/// below that row's length, `columns` holding the vectors back to back.
///
/// On x86-64 CPUs with AVX2 the same loop is compiled for 8-lane registers, about 2.5 times
/// as fast as the SSE2 baseline. The arithmetic and its order are unchanged (separate
/// multiply and add, no fused multiply-add), so the similarities are bit for bit those of
/// [`dot`] elsewhere.
fn fill_similarities(
    queries: &[&[f32]],
    columns: &[f32],
    dim: usize,
    similarities: &mut [Vec<f32>],
) {
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx2") {
        x86::fill_similarities_avx2(queries, columns, dim, similarities);
        return;
    }
    fill_similarities_body(queries, columns, dim, similarities);
}

/// The loop of [`fill_similarities`]: the columns are visited one tile at a time, so a
/// tile read from memory serves every query of the block from cache.
#[inline(always)]
fn fill_similarities_body(
    queries: &[&[f32]],
    columns: &[f32],
    dim: usize,
    similarities: &mut [Vec<f32>],
) {
    let longest = similarities.iter().map(Vec::len).max().unwrap_or(0);
    let tile = (COLUMN_TILE_BYTES / (dim.max(1) * size_of::<f32>())).max(1);
    for tile_start in (0..longest).step_by(tile) {
        for (query, row) in queries.iter().zip(similarities.iter_mut()) {
            // Rows are shorter than the longest; a tile may end before it starts.
            let tile_columns = tile_start.min(row.len())..(tile_start + tile).min(row.len());
            for (column, similarity) in tile_columns.clone().zip(&mut row[tile_columns]) {
                *similarity = dot(query, &columns[column * dim..(column + 1) * dim]);
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    #[target_feature(enable = "avx2")]
    unsafe fn fill_similarities_avx2_inner(
        queries: &[&[f32]],
        columns: &[f32],
        dim: usize,
        similarities: &mut [Vec<f32>],
    ) {
        super::fill_similarities_body(queries, columns, dim, similarities);
    }

    /// [`super::fill_similarities_body`] compiled for AVX2; only call after checking the
    /// CPU has it.
    pub(super) fn fill_similarities_avx2(
        queries: &[&[f32]],
        columns: &[f32],
        dim: usize,
        similarities: &mut [Vec<f32>],
    ) {
        debug_assert!(std::is_x86_feature_detected!("avx2"));
        // SAFETY: the only caller, `fill_similarities`, checks that the CPU supports AVX2
        // first; the body itself is safe Rust.
        unsafe { fill_similarities_avx2_inner(queries, columns, dim, similarities) }
    }
}

/// Inserts `candidate` into `nearest` (most similar first, at most `m` long) if it is among
/// the `m` most similar so far. Candidates arrive in order of first appearance, and one
/// never displaces or passes an equally similar one, which keeps that order among equals.
fn keep_if_among_best(nearest: &mut Vec<Neighbour>, m: usize, candidate: Neighbour) {
    let more_similar = |a: &Neighbour, b: &Neighbour| a.similarity.total_cmp(&b.similarity);
    if nearest.len() == m
        && nearest
            .last()
            .is_some_and(|last| more_similar(&candidate, last).is_le())
    {
        return;
    }
    let at = nearest.partition_point(|kept| more_similar(kept, &candidate).is_ge());
    nearest.insert(at, candidate);
    nearest.truncate(m);
}

/// Multiply-adds summed in one fixed order, so the same pair gives the same similarity in
/// the precomputation, the fallback scan and any reference simulation.
///
/// 32 independent sums (four 8-lane vectors) let the compiler vectorise the loop without
/// reordering floating-point additions, and hide the latency of each add. Always inlined,
/// so it takes on the instruction set of the loop it sits in.
#[inline(always)]
fn dot(a: &[f32], b: &[f32]) -> f32 {
    const WIDTH: usize = 32;
    let (a_chunks, a_rest) = a.as_chunks::<WIDTH>();
    let (b_chunks, b_rest) = b.as_chunks::<WIDTH>();
    let mut sums = [0.0f32; WIDTH];
    for (x, y) in a_chunks.iter().zip(b_chunks) {
        for lane in 0..WIDTH {
            sums[lane] += x[lane] * y[lane];
        }
    }
    let mut total = 0.0;
    for sum in sums {
        total += sum;
    }
    for (x, y) in a_rest.iter().zip(b_rest) {
        total += x * y;
    }
    total
}

/// `f` over `items` on every available core, results in the order of `items`. Items are
/// handed out one at a time, so uneven items still share the work evenly.
fn parallel_map<T: Sync, R: Send>(items: &[T], f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(items.len());
    if threads <= 1 {
        return items.iter().map(f).collect();
    }
    let next = AtomicUsize::new(0);
    let mut done: Vec<(usize, R)> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| {
                    let mut mine = Vec::new();
                    loop {
                        let index = next.fetch_add(1, Ordering::Relaxed);
                        let Some(item) = items.get(index) else {
                            break mine;
                        };
                        mine.push((index, f(item)));
                    }
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|worker| {
                worker
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            })
            .collect()
    });
    done.sort_unstable_by_key(|&(index, _)| index);
    done.into_iter().map(|(_, result)| result).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A small linear congruential generator: reproducible data without a dependency.
    struct Lcg(u64);

    impl Lcg {
        fn next_u32(&mut self) -> u32 {
            self.0 = self
                .0
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (self.0 >> 33) as u32
        }

        fn below(&mut self, n: usize) -> usize {
            self.next_u32() as usize % n
        }

        /// Uniform in [-1, 1).
        fn signed_unit(&mut self) -> f32 {
            self.next_u32() as f32 / (1u64 << 30) as f32 - 1.0
        }
    }

    fn normalised(mut v: Vec<f32>) -> Vec<f32> {
        let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        v.iter_mut().for_each(|x| *x /= norm);
        v
    }

    fn random_vectors(rng: &mut Lcg, count: usize, dim: usize) -> Vec<Vec<f32>> {
        (0..count)
            .map(|_| normalised((0..dim).map(|_| rng.signed_unit()).collect()))
            .collect()
    }

    /// Vectors within a hair of one another: every similarity is near 1, so a short
    /// neighbour list rarely reaches a cached entry and the fallback scan runs often.
    fn nearly_identical_vectors(rng: &mut Lcg, count: usize, dim: usize) -> Vec<Vec<f32>> {
        let base: Vec<f32> = (0..dim).map(|_| rng.signed_unit()).collect();
        (0..count)
            .map(|_| normalised(base.iter().map(|x| x + 0.01 * rng.signed_unit()).collect()))
            .collect()
    }

    /// Texts made of one or two of four orthogonal directions: similarities take a handful
    /// of exact values, so several cached entries often tie for nearest and the tie rule
    /// decides which intent serves.
    fn tied_vectors(rng: &mut Lcg, count: usize, dim: usize) -> Vec<Vec<f32>> {
        (0..count)
            .map(|_| {
                let mut v = vec![0.0; dim];
                v[rng.below(4)] = 1.0;
                v[rng.below(4)] = 1.0;
                normalised(v)
            })
            .collect()
    }

    /// The model as stated: scan the cache in insertion order for every query.
    fn naive(
        vectors: &[Vec<f32>],
        intents: &[u32],
        stream: &[usize],
        threshold: f32,
    ) -> StaticOutcome {
        let mut cache: Vec<usize> = Vec::new();
        let mut outcome = StaticOutcome {
            threshold,
            semantic_hits: 0,
            wrong_hits: 0,
            exact_hits: 0,
            misses: 0,
        };
        for &text in stream {
            if cache.contains(&text) {
                outcome.exact_hits += 1;
                continue;
            }
            let mut best: Option<(usize, f32)> = None;
            for &entry in &cache {
                let similarity = dot(&vectors[text], &vectors[entry]);
                match best {
                    Some((_, best_similarity)) if similarity <= best_similarity => {}
                    _ => best = Some((entry, similarity)),
                }
            }
            match best {
                Some((entry, similarity)) if similarity >= threshold => {
                    outcome.semantic_hits += 1;
                    if intents[entry] != intents[text] {
                        outcome.wrong_hits += 1;
                    }
                }
                _ => {
                    outcome.misses += 1;
                    cache.push(text);
                }
            }
        }
        outcome
    }

    #[test]
    fn sweep_equals_the_naive_simulation() {
        type Make = fn(&mut Lcg, usize, usize) -> Vec<Vec<f32>>;
        // (name, vectors, dimension, thresholds)
        let cases: [(&str, Make, usize, Vec<f32>); 4] = [
            (
                "random",
                random_vectors,
                16,
                (0..=20).map(|i| i as f32 * 0.05).collect(),
            ),
            (
                "nearly identical",
                nearly_identical_vectors,
                16,
                (0..=20).map(|i| 0.998 + i as f32 * 0.0001).collect(),
            ),
            (
                "tied",
                tied_vectors,
                16,
                (0..=20).map(|i| i as f32 * 0.05).collect(),
            ),
            // Wide enough that a block's rows span several column tiles.
            (
                "wide",
                random_vectors,
                1024,
                (0..=5).map(|i| i as f32 * 0.02).collect(),
            ),
        ];
        for (name, make, dim, thresholds) in cases {
            for seed in 1..=3 {
                let mut rng = Lcg(seed);
                let vectors = make(&mut rng, 120, dim);
                let intents: Vec<u32> = (0..120).map(|_| rng.below(6) as u32).collect();
                // Squaring skews the draw toward low indices, so some texts repeat often.
                let stream: Vec<usize> = (0..300)
                    .map(|_| {
                        let u = rng.below(1000) as f32 / 1000.0;
                        (u * u * 120.0) as usize
                    })
                    .collect();
                let want: Vec<StaticOutcome> = thresholds
                    .iter()
                    .map(|&t| naive(&vectors, &intents, &stream, t))
                    .collect();
                for m in [1, 2, 5, 32, 1000] {
                    let got = sweep_with(&vectors, &intents, &stream, &thresholds, m);
                    assert_eq!(got, want, "{name}, seed {seed}, m = {m}");
                }
            }
        }
    }

    #[test]
    fn filled_similarities_are_those_of_dot() {
        // 100 leaves a remainder after dot's chunks; 1024 makes rows span several tiles.
        for dim in [100, 1024] {
            let mut rng = Lcg(dim as u64);
            let queries = random_vectors(&mut rng, 7, dim);
            let columns = random_vectors(&mut rng, 300, dim);
            // Rows of uneven length, as in a block; NaN marks a slot the fill missed.
            let empty: Vec<Vec<f32>> = [300, 0, 5, 299, 40, 1, 150]
                .map(|len| vec![f32::NAN; len])
                .to_vec();
            let query_slices: Vec<&[f32]> = queries.iter().map(Vec::as_slice).collect();
            // The dispatching fill (AVX2 where the CPU has it) and the baseline body.
            let mut dispatched = empty.clone();
            fill_similarities(&query_slices, &columns.concat(), dim, &mut dispatched);
            let mut baseline = empty;
            fill_similarities_body(&query_slices, &columns.concat(), dim, &mut baseline);
            for filled in [&dispatched, &baseline] {
                for (query, row) in queries.iter().zip(filled) {
                    assert_eq!(row.len(), row.iter().filter(|s| !s.is_nan()).count());
                    for (column, similarity) in columns.iter().zip(row) {
                        let want = dot(query, column);
                        assert_eq!(similarity.to_bits(), want.to_bits(), "dim {dim}");
                    }
                }
            }
        }
    }

    #[test]
    fn sweep_handles_empty_inputs() {
        let vectors = vec![vec![1.0, 0.0]];
        assert_eq!(sweep(&vectors, &[0], &[], &[0.5]).len(), 1);
        assert_eq!(sweep(&vectors, &[0], &[0, 0], &[]), Vec::new());
    }

    fn outcome(threshold: f32, semantic_hits: usize, wrong_hits: usize) -> StaticOutcome {
        StaticOutcome {
            threshold,
            semantic_hits,
            wrong_hits,
            exact_hits: 0,
            misses: 0,
        }
    }

    #[test]
    fn best_at_picks_the_most_hits_within_the_rate() {
        let outcomes = [
            outcome(0.80, 100, 20),
            outcome(0.85, 60, 3),
            outcome(0.90, 40, 0),
            outcome(0.95, 0, 0),
        ];
        let cases = [
            (0.25, Some(0.80)),
            (0.20, Some(0.80)),
            (0.10, Some(0.85)),
            (0.05, Some(0.85)),
            (0.01, Some(0.90)),
            (0.0, Some(0.90)),
        ];
        for (rate, want) in cases {
            assert_eq!(
                best_at(&outcomes, rate).map(|o| o.threshold),
                want,
                "rate {rate}"
            );
        }
    }

    #[test]
    fn best_at_prefers_the_first_of_equal_hits() {
        let outcomes = [outcome(0.80, 10, 0), outcome(0.85, 10, 0)];
        assert_eq!(best_at(&outcomes, 0.0).map(|o| o.threshold), Some(0.80));
    }

    #[test]
    fn best_at_is_none_when_nothing_qualifies() {
        let outcomes = [outcome(0.80, 100, 20), outcome(0.85, 10, 5)];
        assert_eq!(best_at(&outcomes, 0.1), None);
        assert_eq!(best_at(&[], 1.0), None);
    }

    #[test]
    fn cached_repeats_are_exact_hits_never_semantic() {
        // Texts 0 and 1 are orthogonal (similarity 0). At -1 text 1 is served by text 0
        // and never inserted, so its repeats are semantic; text 0's repeats stay exact.
        let vectors = vec![vec![1.0, 0.0], vec![0.0, 1.0]];
        let intents = [0, 1];
        let stream = [0, 0, 1, 0, 1, 1];
        // (threshold, exact hits, semantic hits, misses)
        let cases = [(-1.0, 2, 3, 1), (0.5, 4, 0, 2), (1.0, 4, 0, 2)];
        let thresholds = cases.map(|(threshold, ..)| threshold);
        let got = sweep(&vectors, &intents, &stream, &thresholds);
        for (outcome, (_, exact_hits, semantic_hits, misses)) in got.iter().zip(cases) {
            assert_eq!(outcome.exact_hits, exact_hits, "{outcome:?}");
            assert_eq!(outcome.semantic_hits, semantic_hits, "{outcome:?}");
            assert_eq!(outcome.misses, misses, "{outcome:?}");
        }
    }

    #[test]
    fn a_repeat_served_semantically_the_first_time_is_still_looked_up() {
        // Text 1 is close to 0: the first time it is a semantic hit and is not inserted,
        // so its repeat is a semantic hit again rather than an exact one.
        let vectors = vec![vec![1.0, 0.0], normalised(vec![1.0, 0.1])];
        let intents = [0, 0];
        let got = sweep(&vectors, &intents, &[0, 1, 1], &[0.9]);
        assert_eq!(
            got,
            [StaticOutcome {
                threshold: 0.9,
                semantic_hits: 2,
                wrong_hits: 0,
                exact_hits: 0,
                misses: 1,
            }]
        );
    }

    /// `cargo test --release -- --ignored --nocapture static_sweep_speed`
    #[test]
    #[ignore = "timing, release builds only"]
    fn static_sweep_speed() {
        let (texts, queries, dim) = (14_000, 20_000, 384);
        let mut rng = Lcg(7);
        let vectors = random_vectors(&mut rng, texts, dim);
        let intents: Vec<u32> = (0..texts).map(|_| rng.below(1000) as u32).collect();
        // Every text once, plus repeats, shuffled.
        let mut stream: Vec<usize> = (0..texts)
            .chain((0..queries - texts).map(|_| rng.below(texts)))
            .collect();
        for i in (1..stream.len()).rev() {
            stream.swap(i, rng.below(i + 1));
        }
        let thresholds: Vec<f32> = (0..50).map(|i| 0.50 + i as f32 * 0.01).collect();
        let started = std::time::Instant::now();
        let outcomes = sweep(&vectors, &intents, &stream, &thresholds);
        println!(
            "sweep: {queries} queries, {texts} texts, {dim}-d, {} thresholds: {:.2?}",
            thresholds.len(),
            started.elapsed()
        );
        assert_eq!(outcomes.len(), thresholds.len());
    }
}
