#![allow(clippy::unwrap_used, clippy::expect_used)]
//! `RedisSearchIndex` passes the shared `VectorIndex` conformance suite on a real Redis
//! Stack server (RediSearch loaded; started by deja-testkit on 127.0.0.1, stopped by PID).

use std::sync::Arc;

use deja_core::{EntryId, PartitionKey, VectorIndex};
use deja_store_redis::{RedisSearchIndex, RedisStoreOptions};
use deja_testkit::conformance::{test_vector, vector_index_suite, INDEX_DIM, INDEX_EMBEDDER};
use deja_testkit::redis_server::RedisServer;

async fn index(url: &str, embedder: &str, dim: usize) -> RedisSearchIndex {
    let opts = RedisStoreOptions {
        prefix: format!("search-{:08x}", rand::random::<u32>()),
        ..RedisStoreOptions::default()
    };
    RedisSearchIndex::connect(url, &opts, embedder, dim)
        .await
        .unwrap()
}

#[tokio::test]
async fn redis_search_index_conforms() {
    let Some(server) = RedisServer::stack_or_skip() else {
        return;
    };
    // The suite builds its indexes synchronously; connect them all up front.
    let mut made = Vec::new();
    for _ in 0..8 {
        made.push(Arc::new(
            index(&server.url(), INDEX_EMBEDDER, INDEX_DIM).await,
        ));
    }
    let made = parking_lot::Mutex::new(made);
    vector_index_suite(|| made.lock().pop().expect("enough indexes") as Arc<dyn VectorIndex>).await;
}

#[tokio::test]
async fn two_handles_share_one_search_index() {
    let Some(server) = RedisServer::stack_or_skip() else {
        return;
    };
    let opts = RedisStoreOptions {
        prefix: format!("shared-{:08x}", rand::random::<u32>()),
        ..RedisStoreOptions::default()
    };
    let a = RedisSearchIndex::connect(&server.url(), &opts, "test:emb", 384)
        .await
        .unwrap();
    let b = RedisSearchIndex::connect(&server.url(), &opts, "test:emb", 384)
        .await
        .unwrap();
    let p = PartitionKey([3; 16]);
    for i in 0..100 {
        a.insert(p, EntryId(i), &test_vector(i, 384)).await.unwrap();
    }
    assert_eq!(b.len().await.unwrap(), 100);
    let got = b.search(p, &test_vector(42, 384), 1).await.unwrap();
    assert_eq!(got[0].id, EntryId(42));
    assert!(got[0].similarity > 0.999);
    // Another embedder's index under the same prefix shares nothing.
    let other = RedisSearchIndex::connect(&server.url(), &opts, "test:other", 384)
        .await
        .unwrap();
    assert_eq!(other.len().await.unwrap(), 0);
}
