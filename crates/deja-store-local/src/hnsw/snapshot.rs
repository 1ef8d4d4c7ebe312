//! Index snapshots: the whole [`HnswIndex`] (codes, graphs, tombstones) written to one
//! file, so a restart loads it in seconds instead of rebuilding every graph from the store
//! (minutes at a million entries).
//!
//! A snapshot is only a cache of the store: it records an opaque `state` token the caller
//! takes from the store (the embedded server uses [`crate::RedbStore::write_seq`]) and
//! is used only when the store is still in that state; otherwise the index is rebuilt.
//! It also records the embedder id, dimension and graph parameters, and ends with a BLAKE3
//! hash of everything before it, so a truncated, corrupt or foreign file is refused rather
//! than half-loaded. Files are written to a temporary name and renamed into place.
//!
//! Layout (little-endian): magic `DEJAHNSW`, format version (u32), embedder id (its u32
//! length, then its bytes), dim, m, ef_construction, ef_search, flat_below (u32 each),
//! state (u64), partition count (u64), the partitions, then the 32-byte hash. A partition: key (16
//! bytes), seed (u64), slots (u64), ids (u64 each), deleted flags (u8 each), codes (`dim`
//! i8 each), inverse norms (f32 each), then 0 (no graph) or 1 and the graph: rng (u64),
//! entry (u32), max_level (u8), graph slots (u64), levels (u8 each), layer-0 links
//! (u32 each), and the upper layers (count, then slot, word count, words).

use std::collections::HashMap;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::Path;

use parking_lot::RwLock;

use deja_core::PartitionKey;

use super::{Graph, HnswIndex, HnswParams, PartitionIndex, Vectors, MAX_LEVEL};

const MAGIC: &[u8; 8] = b"DEJAHNSW";
const FORMAT_VERSION: u32 = 1;

/// Why a snapshot was not written or not loaded.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("index snapshot i/o failed at {path}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("index snapshot {path} is unusable: {reason}")]
    Invalid { path: String, reason: String },
}

/// A writer that hashes what passes through it.
struct Hashing<W> {
    inner: W,
    hasher: blake3::Hasher,
}

impl<W: Write> Hashing<W> {
    fn put(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.hasher.update(bytes);
        self.inner.write_all(bytes)
    }
    fn u8(&mut self, v: u8) -> std::io::Result<()> {
        self.put(&[v])
    }
    fn u32(&mut self, v: u32) -> std::io::Result<()> {
        self.put(&v.to_le_bytes())
    }
    fn u64(&mut self, v: u64) -> std::io::Result<()> {
        self.put(&v.to_le_bytes())
    }
    fn usize(&mut self, v: usize) -> std::io::Result<()> {
        self.u64(v as u64)
    }
    fn u32s(&mut self, vs: &[u32]) -> std::io::Result<()> {
        // Whole arrays at once: a million-entry index is over a gigabyte of words.
        let mut buf = Vec::with_capacity(vs.len() * 4);
        vs.iter()
            .for_each(|v| buf.extend_from_slice(&v.to_le_bytes()));
        self.put(&buf)
    }
}

/// A reader that hashes what passes through it and refuses absurd lengths.
struct Checked<R> {
    inner: R,
    hasher: blake3::Hasher,
    /// Bytes left in the file before the trailing hash: no length may exceed it.
    left: u64,
}

/// An invalid-data error, for lengths and values a valid snapshot cannot hold.
fn invalid(reason: impl Into<String>) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, reason.into())
}

impl<R: Read> Checked<R> {
    fn take(&mut self, n: usize) -> std::io::Result<Vec<u8>> {
        if n as u64 > self.left {
            return Err(invalid("a length runs past the end of the file"));
        }
        let mut buf = vec![0u8; n];
        self.inner.read_exact(&mut buf)?;
        self.hasher.update(&buf);
        self.left -= n as u64;
        Ok(buf)
    }
    fn array<const N: usize>(&mut self) -> std::io::Result<[u8; N]> {
        let v = self.take(N)?;
        let mut a = [0u8; N];
        a.copy_from_slice(&v);
        Ok(a)
    }
    fn u8(&mut self) -> std::io::Result<u8> {
        Ok(self.array::<1>()?[0])
    }
    fn u32(&mut self) -> std::io::Result<u32> {
        Ok(u32::from_le_bytes(self.array()?))
    }
    fn u64(&mut self) -> std::io::Result<u64> {
        Ok(u64::from_le_bytes(self.array()?))
    }
    /// A count of items of `item_bytes` each, checked against what is left of the file.
    fn count(&mut self, item_bytes: usize) -> std::io::Result<usize> {
        let n = self.u64()?;
        if n.saturating_mul(item_bytes as u64) > self.left {
            return Err(invalid(format!(
                "a count of {n} runs past the end of the file"
            )));
        }
        usize::try_from(n).map_err(|_| invalid("a count does not fit in memory"))
    }
    fn u32s(&mut self, n: usize) -> std::io::Result<Vec<u32>> {
        let bytes = self.take(n * 4)?;
        Ok(bytes
            .chunks_exact(4)
            .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect())
    }
}

impl HnswIndex {
    /// Writes the index to `path` (through a temporary file renamed into place), tagged
    /// with the store `state` it reflects. Writers are held off while it is written;
    /// searches are not.
    pub fn save_snapshot(&self, path: &Path, state: u64) -> Result<(), SnapshotError> {
        let io = |source| SnapshotError::Io {
            path: path.display().to_string(),
            source,
        };
        let tmp = path.with_extension("tmp");
        let file = std::fs::File::create(&tmp).map_err(io)?;
        let mut w = Hashing {
            inner: BufWriter::with_capacity(1 << 20, file),
            hasher: blake3::Hasher::new(),
        };
        self.write_to(&mut w, state).map_err(io)?;
        let hash = *w.hasher.finalize().as_bytes();
        w.inner.write_all(&hash).map_err(io)?;
        let file = w.inner.into_inner().map_err(|e| io(e.into_error()))?;
        file.sync_all().map_err(io)?;
        drop(file);
        std::fs::rename(&tmp, path).map_err(io)?;
        Ok(())
    }

    fn write_to<W: Write>(&self, w: &mut Hashing<W>, state: u64) -> std::io::Result<()> {
        // Every vector handed to the background thread is in its graph first.
        self.settle();
        w.put(MAGIC)?;
        w.u32(FORMAT_VERSION)?;
        w.u32(self.embedder_id.len() as u32)?;
        w.put(self.embedder_id.as_bytes())?;
        let HnswParams {
            m,
            ef_construction,
            ef_search,
            flat_below,
        } = self.params;
        for v in [self.dim, m, ef_construction, ef_search, flat_below] {
            w.u32(u32::try_from(v).map_err(|_| invalid("a parameter exceeds u32"))?)?;
        }
        w.u64(state)?;
        // The map's shared lock is held throughout: partitions are neither added nor
        // dropped, and each partition's read lock keeps it whole while it is written.
        let map = self.partitions.read();
        w.usize(map.len())?;
        for (key, p) in map.iter() {
            let p = p.read();
            w.put(&key.0)?;
            w.u64(p.seed)?;
            w.usize(p.ids.len())?;
            let mut ids = Vec::with_capacity(p.ids.len() * 8);
            p.ids
                .iter()
                .for_each(|v| ids.extend_from_slice(&v.to_le_bytes()));
            w.put(&ids)?;
            let deleted: Vec<u8> = p.deleted.iter().map(|&d| u8::from(d)).collect();
            w.put(&deleted)?;
            let codes: Vec<u8> = p.vectors.codes.iter().map(|&c| c as u8).collect();
            w.put(&codes)?;
            let mut norms = Vec::with_capacity(p.vectors.inv_norms.len() * 4);
            p.vectors
                .inv_norms
                .iter()
                .for_each(|v| norms.extend_from_slice(&v.to_le_bytes()));
            w.put(&norms)?;
            match &p.graph {
                None => w.u8(0)?,
                Some(g) => {
                    w.u8(1)?;
                    w.u64(g.rng)?;
                    w.u32(g.entry)?;
                    w.u8(g.max_level)?;
                    w.usize(g.len)?;
                    w.put(&g.levels)?;
                    w.u32s(&g.links0)?;
                    w.usize(g.upper.len())?;
                    let mut upper: Vec<(&u32, &Vec<u32>)> = g.upper.iter().collect();
                    upper.sort_unstable_by_key(|(slot, _)| **slot);
                    for (slot, words) in upper {
                        w.u32(*slot)?;
                        w.usize(words.len())?;
                        w.u32s(words)?;
                    }
                }
            }
        }
        Ok(())
    }

    /// Loads a snapshot written by [`HnswIndex::save_snapshot`] for this embedder,
    /// dimension and parameters; returns it with the store state it reflects. Any
    /// mismatch, truncation or corruption is an error: the caller rebuilds instead.
    pub fn load_snapshot(
        path: &Path,
        embedder_id: &str,
        dim: usize,
        params: HnswParams,
    ) -> Result<(HnswIndex, u64), SnapshotError> {
        let shown = path.display().to_string();
        let io = |source| SnapshotError::Io {
            path: shown.clone(),
            source,
        };
        let file = std::fs::File::open(path).map_err(io)?;
        let len = file.metadata().map_err(io)?.len();
        let reader = BufReader::with_capacity(1 << 20, file);
        Self::read_snapshot(reader, len, &shown, embedder_id, dim, params)
    }

    /// [`HnswIndex::load_snapshot`] from the first `len` bytes of `reader` (the hash is
    /// their last 32); `name` stands for the path in errors. No length read from the
    /// snapshot makes it allocate more than `len` allows, so `len` must be the true size.
    pub fn read_snapshot<R: Read>(
        reader: R,
        len: u64,
        name: &str,
        embedder_id: &str,
        dim: usize,
        params: HnswParams,
    ) -> Result<(HnswIndex, u64), SnapshotError> {
        let io = |source| SnapshotError::Io {
            path: name.to_string(),
            source,
        };
        let bad = |reason: String| SnapshotError::Invalid {
            path: name.to_string(),
            reason,
        };
        if len < 32 {
            return Err(bad("shorter than its hash".into()));
        }
        let mut r = Checked {
            inner: reader,
            hasher: blake3::Hasher::new(),
            left: len - 32,
        };
        let index = HnswIndex::new(embedder_id, dim, params);
        let read = Self::read_from(&mut r, &index);
        let state = match read {
            Ok(state) => state,
            Err(e) if e.kind() == std::io::ErrorKind::InvalidData => {
                return Err(bad(e.to_string()))
            }
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                return Err(bad("truncated".into()))
            }
            Err(e) => return Err(io(e)),
        };
        if r.left != 0 {
            return Err(bad(format!("{} bytes after the last partition", r.left)));
        }
        let mut hash = [0u8; 32];
        r.inner.read_exact(&mut hash).map_err(|e| match e.kind() {
            std::io::ErrorKind::UnexpectedEof => bad("truncated".into()),
            _ => io(e),
        })?;
        if hash != *r.hasher.finalize().as_bytes() {
            return Err(bad("its hash does not match its contents".into()));
        }
        Ok((index, state))
    }

    /// Reads into `index` (built with the wanted embedder, dim and parameters), checking
    /// the header against them.
    fn read_from<R: Read>(r: &mut Checked<R>, index: &HnswIndex) -> std::io::Result<u64> {
        if &r.array::<8>()? != MAGIC {
            return Err(invalid("not an index snapshot"));
        }
        let version = r.u32()?;
        if version != FORMAT_VERSION {
            return Err(invalid(format!(
                "format version {version} (this build reads {FORMAT_VERSION})"
            )));
        }
        let n = r.u32()? as usize;
        let embedder = String::from_utf8(r.take(n)?).map_err(|_| invalid("embedder id"))?;
        if embedder != index.embedder_id {
            return Err(invalid(format!(
                "made for embedder {embedder}, not {}",
                index.embedder_id
            )));
        }
        let HnswParams {
            m,
            ef_construction,
            ef_search,
            flat_below,
        } = index.params;
        for (name, want) in [
            ("dim", index.dim),
            ("m", m),
            ("ef_construction", ef_construction),
            ("ef_search", ef_search),
            ("flat_below", flat_below),
        ] {
            let got = r.u32()? as usize;
            if got != want {
                return Err(invalid(format!("made with {name} {got}, not {want}")));
            }
        }
        let state = r.u64()?;
        let dim = index.dim;
        let parts = r.count(16)?;
        let mut map = HashMap::with_capacity(parts);
        for _ in 0..parts {
            let key = PartitionKey(r.array::<16>()?);
            let seed = r.u64()?;
            let slots = r.count(8 + 1 + dim + 4)?;
            let ids: Vec<u64> = r
                .take(slots * 8)?
                .chunks_exact(8)
                .map(|c| u64::from_le_bytes(c.try_into().unwrap_or([0; 8])))
                .collect();
            let deleted: Vec<bool> = r.take(slots)?.into_iter().map(|d| d != 0).collect();
            let codes: Vec<i8> = r.take(slots * dim)?.into_iter().map(|c| c as i8).collect();
            // The quantiser never writes -128, and the search kernels count on it.
            if codes.contains(&i8::MIN) {
                return Err(invalid("a vector code is out of range (-128)"));
            }
            let inv_norms: Vec<f32> = r
                .take(slots * 4)?
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect();
            let mut slot_of = HashMap::with_capacity(slots);
            for (slot, (&id, &gone)) in ids.iter().zip(&deleted).enumerate() {
                if !gone && slot_of.insert(id, slot as u32).is_some() {
                    return Err(invalid(format!("entry {id} is live twice")));
                }
            }
            let live = slot_of.len();
            let graph = match r.u8()? {
                0 => None,
                1 => Some(Self::read_graph(r, index.params, seed, slots)?),
                other => return Err(invalid(format!("graph flag {other}"))),
            };
            let p = PartitionIndex {
                ids,
                vectors: Vectors {
                    dim,
                    codes,
                    inv_norms,
                },
                deleted,
                slot_of,
                live,
                graph,
                seed,
            };
            if map.insert(key, RwLock::new(p)).is_some() {
                return Err(invalid("a partition appears twice"));
            }
        }
        *index.partitions.write() = map;
        Ok(state)
    }

    fn read_graph<R: Read>(
        r: &mut Checked<R>,
        params: HnswParams,
        seed: u64,
        slots: usize,
    ) -> std::io::Result<Graph> {
        let mut g = Graph::new(&params, seed);
        g.rng = r.u64()?;
        g.entry = r.u32()?;
        g.max_level = r.u8()?;
        g.len = r.count(1)?;
        // A graph always holds every slot of its partition (deleted ones too).
        if g.len != slots || g.entry as usize >= g.len {
            return Err(invalid("graph does not cover its partition"));
        }
        g.levels = r.take(g.len)?;
        if g.levels.iter().any(|&l| l > MAX_LEVEL) {
            return Err(invalid("a graph level above the maximum"));
        }
        // Searches start at the entry on the top layer, so it must have every layer.
        if g.levels[g.entry as usize] != g.max_level {
            return Err(invalid("the graph's entry is not on its top layer"));
        }
        g.links0 = r.u32s(g.len * (g.m0 + 1))?;
        let upper = r.count(8)?;
        // Exactly the nodes above layer 0 have upper-layer links.
        if upper != g.levels.iter().filter(|&&l| l > 0).count() {
            return Err(invalid(format!("{upper} nodes with upper layers")));
        }
        g.upper.reserve(upper);
        for _ in 0..upper {
            let slot = r.u32()?;
            let words = r.count(4)?;
            let level = g.levels.get(slot as usize).copied().unwrap_or(0);
            if level == 0 || words != level as usize * (g.m + 1) {
                return Err(invalid(format!(
                    "slot {slot} has {words} upper-layer words"
                )));
            }
            if g.upper.insert(slot, r.u32s(words)?).is_some() {
                return Err(invalid(format!("slot {slot} has upper layers twice")));
            }
        }
        // Every link must name a slot of the graph that is on the link's layer, or a
        // search would index out of bounds.
        let bad = |words: &[u32], cap: usize, level: u8| {
            words[0] as usize > cap
                || words[1..=words[0] as usize]
                    .iter()
                    .any(|&to| g.levels.get(to as usize).is_none_or(|&l| l < level))
        };
        let bad0 = g.links0.chunks_exact(g.m0 + 1).any(|w| bad(w, g.m0, 0));
        let bad_upper = g.upper.values().any(|layers| {
            // Levels are at most MAX_LEVEL, so the layer numbers fit.
            (1..=MAX_LEVEL)
                .zip(layers.chunks_exact(g.m + 1))
                .any(|(level, w)| bad(w, g.m, level))
        });
        if bad0 || bad_upper {
            return Err(invalid(
                "a graph link points outside the graph or its layer",
            ));
        }
        Ok(g)
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::rng_vec;
    use super::*;
    use deja_core::EntryId;

    fn params() -> HnswParams {
        HnswParams {
            flat_below: 64,
            ..HnswParams::default()
        }
    }

    /// A graph partition (with tombstones), a flat one, searched before and after.
    #[test]
    fn a_snapshot_searches_exactly_like_the_index_it_was_taken_of() {
        let dim = 32;
        let index = HnswIndex::new("test:e", dim, params());
        let (big, small) = (PartitionKey([1; 16]), PartitionKey([2; 16]));
        let mut seed = 7;
        for id in 0..500u64 {
            index
                .insert_sync(big, EntryId(id), &rng_vec(&mut seed, dim))
                .unwrap();
        }
        for id in 0..100u64 {
            index.remove_sync(big, EntryId(id * 3)).unwrap();
        }
        for id in 1000..1010u64 {
            index
                .insert_sync(small, EntryId(id), &rng_vec(&mut seed, dim))
                .unwrap();
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("index.snapshot");
        index.save_snapshot(&path, 42).unwrap();
        let (loaded, state) = HnswIndex::load_snapshot(&path, "test:e", dim, params()).unwrap();
        assert_eq!(state, 42);
        assert_eq!(loaded.len_sync(), index.len_sync());
        for _ in 0..50 {
            let q = rng_vec(&mut seed, dim);
            for p in [big, small] {
                let want = index.search_sync(p, &q, 5).unwrap();
                let got = loaded.search_sync(p, &q, 5).unwrap();
                assert_eq!(got, want);
            }
        }
        // The loaded index goes on taking writes like the original.
        let v = rng_vec(&mut seed, dim);
        loaded.insert_sync(big, EntryId(9999), &v).unwrap();
        assert_eq!(loaded.search_sync(big, &v, 1).unwrap()[0].id, EntryId(9999));
    }

    /// Offset of the partition count: magic, version, embedder id, five parameters, state.
    fn partition_count_at(embedder: &str) -> usize {
        8 + 4 + 4 + embedder.len() + 5 * 4 + 8
    }

    /// A snapshot whose counts claim 2^60 partitions, slots or graph nodes is refused
    /// before anything of that size is allocated, even with a hash that matches.
    #[test]
    fn huge_counts_are_refused_before_allocating() {
        let dim = 4;
        let index = HnswIndex::new("test:e", dim, params());
        let mut seed = 9;
        for id in 0..80u64 {
            index
                .insert_sync(PartitionKey([6; 16]), EntryId(id), &rng_vec(&mut seed, dim))
                .unwrap();
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("index.snapshot");
        index.save_snapshot(&path, 1).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        let parts = partition_count_at("test:e");
        let slots = parts + 8 + 16 + 8;
        let graph_len = slots + 8 + 80 * (8 + 1 + dim + 4) + 1 + 8 + 4 + 1;
        assert_eq!(&bytes[slots..slots + 8], &80u64.to_le_bytes());
        assert_eq!(&bytes[graph_len..graph_len + 8], &80u64.to_le_bytes());
        for at in [parts, slots, graph_len] {
            for huge in [1u64 << 60, u64::MAX, u64::MAX / 8 + 1] {
                let mut file = bytes[..bytes.len() - 32].to_vec();
                file[at..at + 8].copy_from_slice(&huge.to_le_bytes());
                let hash = *blake3::hash(&file).as_bytes();
                file.extend_from_slice(&hash);
                let len = file.len() as u64;
                let got = HnswIndex::read_snapshot(
                    std::io::Cursor::new(file),
                    len,
                    "huge",
                    "test:e",
                    dim,
                    params(),
                );
                match got {
                    Err(SnapshotError::Invalid { reason, .. }) => {
                        assert!(reason.contains("count"), "{reason}")
                    }
                    other => panic!("count {huge} at {at} not refused: {other:?}"),
                }
            }
        }
    }

    /// A snapshot whose hash matches but whose graph is inconsistent (a level, the top
    /// layer, an upper-layer count or link changed) is refused, or loads into an index
    /// whose searches and inserts work: it never makes them panic. Found by the
    /// `index_snapshot` fuzz target: a node's upper-layer links naming a node that is not
    /// on that layer made searches index past the end of its links.
    #[test]
    fn a_hashed_but_inconsistent_graph_is_refused_or_harmless() {
        let dim = 4;
        let p = HnswParams {
            m: 4,
            ef_construction: 16,
            ef_search: 8,
            flat_below: 16,
        };
        let key = PartitionKey([6; 16]);
        let index = HnswIndex::new("test:e", dim, p);
        let mut seed = 12;
        for id in 0..60u64 {
            index
                .insert_sync(key, EntryId(id), &rng_vec(&mut seed, dim))
                .unwrap();
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("index.snapshot");
        index.save_snapshot(&path, 1).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        let body = &bytes[..bytes.len() - 32];
        // The graph: after the partition's key, seed, slot count, ids, deleted flags, codes,
        // inverse norms and graph flag; its levels follow rng, entry, max level and length.
        let graph = partition_count_at("test:e") + 8 + 16 + 8 + 8 + 60 * (8 + 1 + dim + 4) + 1;
        let levels = graph + 8 + 4 + 1 + 8;
        let upper = levels + 60 + 60 * (2 * p.m + 1) * 4;
        let positions = (graph + 8..levels + 60).chain(upper..body.len());
        let queries: Vec<Vec<f32>> = (0..3).map(|_| rng_vec(&mut seed, dim)).collect();
        let mut refused = 0;
        for at in positions {
            for value in [0u8, 1, 2, 3, 0xff] {
                let mut file = body.to_vec();
                if file[at] == value {
                    continue;
                }
                file[at] = value;
                let hash = *blake3::hash(&file).as_bytes();
                file.extend_from_slice(&hash);
                let len = file.len() as u64;
                let cursor = std::io::Cursor::new(file);
                match HnswIndex::read_snapshot(cursor, len, "mutated", "test:e", dim, p) {
                    Err(_) => refused += 1,
                    Ok((loaded, _)) => {
                        for q in &queries {
                            loaded.search_sync(key, q, 5).unwrap();
                        }
                        loaded.insert_sync(key, EntryId(1000), &queries[0]).unwrap();
                        loaded.search_sync(key, &queries[1], 5).unwrap();
                    }
                }
            }
        }
        assert!(refused > 0);
    }

    /// `read_snapshot` loads from memory what `load_snapshot` loads from the file.
    #[test]
    fn a_snapshot_reads_from_memory_like_from_its_file() {
        let dim = 4;
        let index = HnswIndex::new("test:e", dim, params());
        let mut seed = 4;
        for id in 0..70u64 {
            index
                .insert_sync(PartitionKey([8; 16]), EntryId(id), &rng_vec(&mut seed, dim))
                .unwrap();
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("index.snapshot");
        index.save_snapshot(&path, 77).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        let len = bytes.len() as u64;
        let (from_memory, state) = HnswIndex::read_snapshot(
            std::io::Cursor::new(bytes),
            len,
            "memory",
            "test:e",
            dim,
            params(),
        )
        .unwrap();
        assert_eq!(state, 77);
        let (from_file, _) = HnswIndex::load_snapshot(&path, "test:e", dim, params()).unwrap();
        let q = rng_vec(&mut seed, dim);
        assert_eq!(
            from_memory
                .search_sync(PartitionKey([8; 16]), &q, 5)
                .unwrap(),
            from_file.search_sync(PartitionKey([8; 16]), &q, 5).unwrap()
        );
    }

    #[test]
    fn foreign_truncated_or_corrupt_snapshots_are_refused() {
        let dim = 16;
        let index = HnswIndex::new("test:e", dim, params());
        let mut seed = 3;
        for id in 0..200u64 {
            index
                .insert_sync(PartitionKey([5; 16]), EntryId(id), &rng_vec(&mut seed, dim))
                .unwrap();
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("index.snapshot");
        index.save_snapshot(&path, 1).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        let refused = |path: &Path, embedder: &str, dim: usize, p: HnswParams| {
            match HnswIndex::load_snapshot(path, embedder, dim, p) {
                Err(SnapshotError::Invalid { reason, .. }) => reason,
                Err(e) => panic!("not refused as invalid: {e}"),
                Ok(_) => panic!("accepted"),
            }
        };
        let r = refused(&path, "test:other", dim, params());
        assert!(r.contains("embedder"), "{r}");
        let r = refused(&path, "test:e", dim + 1, params());
        assert!(r.contains("dim"), "{r}");
        let r = refused(&path, "test:e", dim, HnswParams { m: 8, ..params() });
        assert!(r.contains("made with m"), "{r}");
        let cut = dir.path().join("cut");
        for at in [0, 10, bytes.len() / 2, bytes.len() - 1] {
            std::fs::write(&cut, &bytes[..at]).unwrap();
            refused(&cut, "test:e", dim, params());
        }
        let mut flipped = bytes.clone();
        let mid = flipped.len() / 2;
        flipped[mid] ^= 0x40;
        std::fs::write(&cut, &flipped).unwrap();
        let r = refused(&cut, "test:e", dim, params());
        assert!(
            r.contains("hash") || r.contains("link") || r.contains("count"),
            "{r}"
        );
        assert!(matches!(
            HnswIndex::load_snapshot(&dir.path().join("absent"), "test:e", dim, params()),
            Err(SnapshotError::Io { .. })
        ));
    }
}
