//! The index snapshot loader (`HnswIndex::read_snapshot`, the body of `load_snapshot`).
//!
//! The first input byte is a mode; the rest is the file. In mode 0 the file is used as it
//! is, so the fuzzer exercises the header checks and every length check (a count claiming
//! 2^60 items must be refused, not allocated). Otherwise the file's BLAKE3 hash is
//! appended, so that mutations get past the hash check and reach the structural checks of
//! the partitions and graphs.
//!
//! Whatever the bytes, loading returns an index or an error, never panics and never
//! allocates much more than the file's size. An index it returns must be usable: searches,
//! inserts and removals on it do not panic, and saving it and loading the copy gives an
//! index that answers the same searches.
#![no_main]

use std::io::Cursor;
use std::sync::OnceLock;

use deja_core::{EntryId, PartitionKey};
use deja_store_local::{HnswIndex, HnswParams};
use libfuzzer_sys::fuzz_target;

/// What the seed snapshots were written with (see `fuzz/examples/make_seeds.rs`).
const EMBEDDER: &str = "fuzz:e";
const DIM: usize = 8;
const PARAMS: HnswParams = HnswParams {
    m: 4,
    ef_construction: 16,
    ef_search: 8,
    flat_below: 16,
};

fn scratch() -> &'static std::path::Path {
    static DIR: OnceLock<std::path::PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("deja-fuzz-snapshot-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("a scratch directory");
        dir
    })
}

fn load(file: &[u8]) -> Option<(HnswIndex, u64)> {
    HnswIndex::read_snapshot(
        Cursor::new(file),
        file.len() as u64,
        "fuzz",
        EMBEDDER,
        DIM,
        PARAMS,
    )
    .ok()
}

/// Bytes at `at`, if the file has them (partition keys and ids are read from where the
/// format puts the first partition, so the operations below touch real contents).
fn bytes_at<const N: usize>(file: &[u8], at: usize) -> Option<[u8; N]> {
    file.get(at..at + N)?.try_into().ok()
}

fn query(seed: u64) -> Vec<f32> {
    let mut s = seed | 1;
    (0..DIM)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 40) as f32 / (1u64 << 24) as f32) - 0.5
        })
        .collect()
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, body)) = data.split_first() else {
        return;
    };
    let mut file = body.to_vec();
    if mode != 0 {
        file.extend_from_slice(blake3::hash(body).as_bytes());
    }
    let Some((index, state)) = load(&file) else {
        return;
    };
    let _ = index.len_sync();
    let _ = index.memory_bytes();

    // The first partition: after magic, version, embedder id, five parameters, state and
    // the partition count; then its key, seed, slot count and ids.
    let first = 8 + 4 + 4 + EMBEDDER.len() + 5 * 4 + 8 + 8;
    let key = PartitionKey(bytes_at::<16>(&file, first).unwrap_or([0; 16]));
    let ids_at = first + 16 + 8 + 8;
    let ids: Vec<u64> = (0..4)
        .filter_map(|i| bytes_at::<8>(&file, ids_at + 8 * i).map(u64::from_le_bytes))
        .collect();
    let queries: Vec<Vec<f32>> = (0..4).map(|i| query(state ^ i)).collect();
    let searched = |index: &HnswIndex| -> Vec<Vec<(u64, u32)>> {
        queries
            .iter()
            .map(|q| {
                index
                    .search_sync(key, q, 5)
                    .expect("the right dimension")
                    .into_iter()
                    .map(|n| (n.id.0, n.similarity.to_bits()))
                    .collect()
            })
            .collect()
    };
    let before = searched(&index);

    // Saved and loaded again, it answers the same.
    let path = scratch().join("copy.snapshot");
    index
        .save_snapshot(&path, state)
        .expect("a loaded index saves");
    let (copy, copy_state) =
        HnswIndex::load_snapshot(&path, EMBEDDER, DIM, PARAMS).expect("a saved index loads");
    assert_eq!(copy_state, state);
    assert_eq!(copy.len_sync(), index.len_sync());
    assert_eq!(searched(&copy), before);

    // It goes on taking writes.
    for (i, id) in ids.iter().enumerate() {
        if i % 2 == 0 {
            index.remove_sync(key, EntryId(*id)).expect("removal");
        } else {
            index
                .insert_sync(key, EntryId(*id), &query(*id))
                .expect("the right dimension");
        }
    }
    for i in 0..24u64 {
        index
            .insert_sync(key, EntryId(u64::MAX - i), &query(i))
            .expect("the right dimension");
    }
    let _ = searched(&index);
});
