//! [`RedisSearchIndex`]: the [`VectorIndex`] on Redis Stack's (or Redis 8's) query
//! engine, for teams that run it: vectors live in Redis, shared by every replica at once
//! (no per-replica index to load or keep current), searched with an HNSW `FT.CREATE`
//! index and `FT.SEARCH … KNN` filtered by partition (a TAG field).
//!
//! Keys (`P` is the prefix): `P:v:ID` hash with `p` (partition, 32 hex digits, TAG) and
//! `v` (the vector, float32 little-endian); the index `P:vidx` covers the `P:v:` prefix.
//! RediSearch speaks cosine *distance* (1 − cosine); it is converted to similarity here.
//!
//! Not for Redis Cluster: open-source Redis Stack searches one node only.

use async_trait::async_trait;
use deja_core::{EntryId, IndexError, Neighbor, PartitionKey, VectorIndex};
use redis::Value;

use crate::conn::{open_conn, Conn};
use crate::store::RedisStoreOptions;

const BACKEND: &str = "redis-search";

/// Deletes a vector only if it is in the given partition. KEYS: vector. ARGV: partition.
const DEL_IN_PARTITION: &str = r"
if redis.call('HGET', KEYS[1], 'p') == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
";

fn backend(e: impl std::error::Error + Send + Sync + 'static) -> IndexError {
    IndexError::Backend {
        backend: BACKEND,
        source: Box::new(e),
    }
}

/// A reply that does not have the shape `FT.SEARCH` / `FT.INFO` promise.
#[derive(Debug, thiserror::Error)]
#[error("unexpected reply from the query engine: {0}")]
struct ReplyError(String);

fn hex16(bytes: &[u8; 16]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn blob(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn text(v: &Value) -> Option<String> {
    match v {
        Value::BulkString(b) => String::from_utf8(b.clone()).ok(),
        Value::SimpleString(s) => Some(s.clone()),
        Value::Int(n) => Some(n.to_string()),
        Value::Double(d) => Some(d.to_string()),
        _ => None,
    }
}

/// Vector search in Redis Stack, shared by every replica.
pub struct RedisSearchIndex {
    conn: Conn,
    prefix: String,
    embedder_id: String,
    dim: usize,
}

impl std::fmt::Debug for RedisSearchIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisSearchIndex")
            .field("prefix", &self.prefix)
            .field("embedder_id", &self.embedder_id)
            .field("dim", &self.dim)
            .finish_non_exhaustive()
    }
}

impl RedisSearchIndex {
    /// Connects (`redis://HOST:PORT` of a Redis Stack or Redis 8 server) and creates the
    /// search index under `opts.prefix` if it does not exist. The embedder id and
    /// dimension are part of the index name, so vectors of another model never mix in.
    pub async fn connect(
        url: &str,
        opts: &RedisStoreOptions,
        embedder_id: &str,
        dim: usize,
    ) -> Result<RedisSearchIndex, IndexError> {
        let conn = open_conn(url, opts.connection_timeout, opts.response_timeout)
            .await
            .map_err(backend)?;
        let model = hex16(&fingerprint(embedder_id));
        let index = RedisSearchIndex {
            conn,
            prefix: format!("{}:{model}:{dim}", opts.prefix),
            embedder_id: embedder_id.to_string(),
            dim,
        };
        index.create().await?;
        Ok(index)
    }

    fn index_name(&self) -> String {
        format!("{}:vidx", self.prefix)
    }

    fn key(&self, id: EntryId) -> String {
        format!("{}:v:{:016x}", self.prefix, id.0)
    }

    async fn create(&self) -> Result<(), IndexError> {
        let mut c = redis::cmd("FT.CREATE");
        c.arg(self.index_name())
            .arg("ON")
            .arg("HASH")
            .arg("PREFIX")
            .arg(1)
            .arg(format!("{}:v:", self.prefix))
            .arg("SCHEMA")
            .arg("p")
            .arg("TAG")
            .arg("v")
            .arg("VECTOR")
            .arg("HNSW")
            .arg(6)
            .arg("TYPE")
            .arg("FLOAT32")
            .arg("DIM")
            .arg(self.dim)
            .arg("DISTANCE_METRIC")
            .arg("COSINE");
        match c.query_async::<Value>(&mut self.conn.clone()).await {
            Ok(_) => Ok(()),
            Err(e) if e.to_string().contains("already exists") => Ok(()),
            Err(e) => Err(backend(e)),
        }
    }

    fn check_dim(&self, v: &[f32]) -> Result<(), IndexError> {
        if v.len() != self.dim {
            return Err(IndexError::Dimension {
                want: self.dim,
                got: v.len(),
            });
        }
        Ok(())
    }
}

/// A stable 128-bit fingerprint of the embedder id (for key names).
fn fingerprint(s: &str) -> [u8; 16] {
    // FNV-1a, twice with different offsets: stable across builds, unlike std's hasher.
    let mut out = [0u8; 16];
    for (half, offset) in [0xcbf2_9ce4_8422_2325u64, 0x6c62_272e_07bb_0142]
        .iter()
        .enumerate()
    {
        let mut h = *offset;
        for b in s.bytes() {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        out[half * 8..half * 8 + 8].copy_from_slice(&h.to_le_bytes());
    }
    out
}

#[async_trait]
impl VectorIndex for RedisSearchIndex {
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
        self.check_dim(vector)?;
        redis::cmd("HSET")
            .arg(self.key(id))
            .arg("p")
            .arg(hex16(&partition.0))
            .arg("v")
            .arg(blob(vector))
            .query_async::<Value>(&mut self.conn.clone())
            .await
            .map_err(backend)?;
        Ok(())
    }

    async fn remove(&self, partition: PartitionKey, id: EntryId) -> Result<(), IndexError> {
        redis::cmd("EVAL")
            .arg(DEL_IN_PARTITION)
            .arg(1)
            .arg(self.key(id))
            .arg(hex16(&partition.0))
            .query_async::<Value>(&mut self.conn.clone())
            .await
            .map_err(backend)?;
        Ok(())
    }

    async fn search(
        &self,
        partition: PartitionKey,
        query: &[f32],
        k: usize,
    ) -> Result<Vec<Neighbor>, IndexError> {
        self.check_dim(query)?;
        if k == 0 {
            return Ok(Vec::new());
        }
        let q = format!(
            "(@p:{{{}}})=>[KNN {k} @v $vec AS dist]",
            hex16(&partition.0)
        );
        let reply: Value = redis::cmd("FT.SEARCH")
            .arg(self.index_name())
            .arg(q)
            .arg("PARAMS")
            .arg(2)
            .arg("vec")
            .arg(blob(query))
            .arg("SORTBY")
            .arg("dist")
            .arg("RETURN")
            .arg(1)
            .arg("dist")
            .arg("LIMIT")
            .arg(0)
            .arg(k)
            .arg("DIALECT")
            .arg(2)
            .query_async(&mut self.conn.clone())
            .await
            .map_err(backend)?;
        parse_search(&reply)
    }

    async fn len(&self) -> Result<u64, IndexError> {
        let reply: Value = redis::cmd("FT.INFO")
            .arg(self.index_name())
            .query_async(&mut self.conn.clone())
            .await
            .map_err(backend)?;
        let Value::Array(items) = &reply else {
            return Err(backend(ReplyError("FT.INFO is not a list".into())));
        };
        items
            .chunks(2)
            .find(|kv| text(&kv[0]).as_deref() == Some("num_docs"))
            .and_then(|kv| kv.get(1).and_then(text))
            .and_then(|n| n.parse::<f64>().ok())
            .map(|n| n as u64)
            .ok_or_else(|| backend(ReplyError("FT.INFO has no num_docs".into())))
    }
}

/// `[total, key, [dist, "0.12"], key, [...], …]` → neighbours, most similar first.
fn parse_search(reply: &Value) -> Result<Vec<Neighbor>, IndexError> {
    let Value::Array(items) = reply else {
        return Err(backend(ReplyError(format!("FT.SEARCH gave {reply:?}"))));
    };
    let mut out = Vec::with_capacity(items.len() / 2);
    for pair in items.get(1..).unwrap_or_default().chunks(2) {
        let key = pair.first().and_then(text).unwrap_or_default();
        let id = key
            .rsplit(':')
            .next()
            .and_then(EntryId::parse_hex)
            .ok_or_else(|| backend(ReplyError(format!("key {key:?}"))))?;
        let dist = match pair.get(1) {
            Some(Value::Array(fields)) => fields
                .chunks(2)
                .find(|kv| text(&kv[0]).as_deref() == Some("dist"))
                .and_then(|kv| kv.get(1).and_then(text))
                .and_then(|d| d.parse::<f32>().ok()),
            _ => None,
        }
        .ok_or_else(|| backend(ReplyError(format!("no distance for {key:?}"))))?;
        out.push(Neighbor {
            id,
            similarity: (1.0 - dist).clamp(-1.0, 1.0),
        });
    }
    out.sort_by(|a, b| b.similarity.total_cmp(&a.similarity));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(s: &str) -> Value {
        Value::BulkString(s.as_bytes().to_vec())
    }

    #[test]
    fn search_replies_become_similarities() {
        let reply = Value::Array(vec![
            Value::Int(2),
            bulk("deja:x:v:0000000000000002"),
            Value::Array(vec![bulk("dist"), bulk("0.5")]),
            bulk("deja:x:v:00000000000000ff"),
            Value::Array(vec![bulk("dist"), bulk("0.01")]),
        ]);
        let got = parse_search(&reply).unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].id, EntryId(255));
        assert!((got[0].similarity - 0.99).abs() < 1e-6);
        assert!((got[1].similarity - 0.5).abs() < 1e-6);
        assert!(parse_search(&Value::Array(vec![Value::Int(0)]))
            .unwrap()
            .is_empty());
        assert!(parse_search(&Value::Nil).is_err());
    }

    #[test]
    fn embedder_fingerprints_are_stable_and_distinct() {
        assert_eq!(fingerprint("local:a"), fingerprint("local:a"));
        assert_ne!(fingerprint("local:a"), fingerprint("local:b"));
        // FNV-1a of nothing is its offset basis (little-endian), twice.
        assert_eq!(hex16(&fingerprint("")), "25232284e49cf2cb4201bb072e27626c");
    }
}
