//! Export and import of cache entries as JSON Lines: one self-contained JSON object per
//! entry, carrying everything needed to restore it exactly (id, keys, labels, times, hit
//! counts, usage, the vector as base64 little-endian f32, the answer as base64, and the
//! recorded request as base64 when there is one).
//!
//! Both directions stream: [`export_lines`] feeds a bounded channel from a blocking task
//! that reads one entry at a time, and [`Importer`] stores each line as it arrives. The
//! admin API (`GET /admin/export`, `POST /admin/import`) and the `deja export` / `deja
//! import` commands share this module.
//!
//! Imported entries go either through a running cache ([`deja_core::Cache::restore`]: store,
//! then index the current embedder's vectors; others stay exact-only, as at start) or
//! straight into a stopped store, which indexes them when a server next starts.

use std::collections::HashMap;
use std::sync::Arc;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use deja_core::{Answer, Entry, EntryId, EntryStore, ExactKey, PartitionKey, StoreError, Usage};
use serde::{Deserialize, Serialize};

use crate::tags::{MAX_TAGS, MAX_TAG_CHARS};

/// Longest line [`Importer`] accepts, so a malformed file cannot make it buffer without
/// bound.
pub const MAX_LINE_BYTES: usize = 64 * 1024 * 1024;

/// How many encoded lines [`export_lines`] buffers ahead of a slow reader.
const EXPORT_CHANNEL_LINES: usize = 64;

/// One line of an export.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportLine {
    /// 16 hex digits.
    pub id: String,
    /// 32 hex digits.
    pub partition: String,
    /// 32 hex digits; must equal the hash of `partition` and `prompt`.
    pub exact_key: String,
    pub prompt: String,
    pub model: String,
    pub namespace: String,
    pub tags: Vec<String>,
    pub category: String,
    pub created_at_ms: u64,
    pub last_hit_ms: u64,
    pub hit_count: u64,
    pub usage: Usage,
    /// Empty exactly when `vector` is.
    pub embedder_id: String,
    /// Base64 of the little-endian f32 components; empty for exact-only entries.
    pub vector: String,
    pub answer: ExportAnswer,
    /// Base64 of the request the answer was given to, when it was recorded (for staleness
    /// checks). Absent in older exports.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request: Option<String>,
}

/// An answer's bytes, base64-encoded: `{"body": ".."}` or `{"chunks": [..]}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", deny_unknown_fields)]
pub enum ExportAnswer {
    Body(String),
    Chunks(Vec<String>),
}

impl ExportLine {
    pub fn from_entry(e: &Entry) -> ExportLine {
        let Entry {
            id,
            partition,
            exact_key,
            prompt,
            model,
            answer,
            usage,
            created_at_ms,
            last_hit_ms,
            hit_count,
            category,
            namespace,
            tags,
            embedder_id,
            vector,
            request,
        } = e;
        let vector_bytes: Vec<u8> = vector.iter().flat_map(|x| x.to_le_bytes()).collect();
        ExportLine {
            id: id.to_string(),
            partition: partition.to_string(),
            exact_key: exact_key.to_string(),
            prompt: prompt.clone(),
            model: model.clone(),
            namespace: namespace.clone(),
            tags: tags.clone(),
            category: category.clone(),
            created_at_ms: *created_at_ms,
            last_hit_ms: *last_hit_ms,
            hit_count: *hit_count,
            usage: *usage,
            embedder_id: embedder_id.clone(),
            vector: B64.encode(vector_bytes),
            answer: match answer {
                Answer::Body(b) => ExportAnswer::Body(B64.encode(b)),
                Answer::Chunks(c) => {
                    ExportAnswer::Chunks(c.iter().map(|c| B64.encode(c)).collect())
                }
            },
            request: request.as_ref().map(|r| B64.encode(r)),
        }
    }

    /// The entry this line describes, after checking it is one the cache could have
    /// stored: well-formed keys that agree with the prompt, valid tags, a unit-length
    /// vector recorded with its embedder.
    pub fn into_entry(self) -> Result<Entry, String> {
        let ExportLine {
            id,
            partition,
            exact_key,
            prompt,
            model,
            namespace,
            tags,
            category,
            created_at_ms,
            last_hit_ms,
            hit_count,
            usage,
            embedder_id,
            vector,
            answer,
            request,
        } = self;
        let id = (id.len() == 16)
            .then(|| EntryId::parse_hex(&id))
            .flatten()
            .ok_or_else(|| format!("id {id:?} is not 16 hex digits"))?;
        let partition = PartitionKey(hex16("partition", &partition)?);
        let exact_key = ExactKey(hex16("exact_key", &exact_key)?);
        if exact_key != ExactKey::new(&partition, &prompt) {
            return Err("exact_key does not match partition and prompt".into());
        }
        if tags.len() > MAX_TAGS {
            return Err(format!("at most {MAX_TAGS} tags, got {}", tags.len()));
        }
        for t in &tags {
            let chars = t.chars().count();
            if !(1..=MAX_TAG_CHARS).contains(&chars) || t.chars().any(char::is_control) {
                return Err(format!(
                    "tag {t:?} must be 1 to {MAX_TAG_CHARS} printable characters"
                ));
            }
        }
        let bytes = B64
            .decode(&vector)
            .map_err(|e| format!("vector is not base64: {e}"))?;
        if bytes.len() % 4 != 0 {
            return Err(format!(
                "vector has {} bytes, not a whole number of f32",
                bytes.len()
            ));
        }
        let vector: Vec<f32> = bytes
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        if vector.is_empty() != embedder_id.is_empty() {
            return Err("embedder_id must be given exactly when vector is".into());
        }
        if !vector.is_empty() {
            let norm = vector.iter().map(|x| x * x).sum::<f32>().sqrt();
            if !norm.is_finite() || (norm - 1.0).abs() > 1e-2 {
                return Err(format!("vector is not unit length (norm {norm})"));
            }
        }
        let b64 = |s: &str| {
            B64.decode(s)
                .map_err(|e| format!("answer is not base64: {e}"))
        };
        let answer = match answer {
            ExportAnswer::Body(b) => Answer::Body(b64(&b)?),
            ExportAnswer::Chunks(c) => {
                Answer::Chunks(c.iter().map(|c| b64(c)).collect::<Result<_, _>>()?)
            }
        };
        let request = request
            .map(|r| {
                B64.decode(&r)
                    .map_err(|e| format!("request is not base64: {e}"))
            })
            .transpose()?;
        Ok(Entry {
            id,
            partition,
            exact_key,
            prompt,
            model,
            answer,
            usage,
            created_at_ms,
            last_hit_ms,
            hit_count,
            category,
            namespace,
            tags,
            embedder_id,
            vector,
            request,
        })
    }
}

/// The entry of one line of an export (without its line break), checked as
/// [`ExportLine::into_entry`] checks it; `None` for a blank line, which imports skip. What
/// [`Importer`] does with each line before it compares vector dimensions across lines.
pub fn parse_line(bytes: &[u8]) -> Result<Option<Entry>, String> {
    let text = std::str::from_utf8(bytes).map_err(|_| "not valid UTF-8".to_string())?;
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    let parsed: ExportLine =
        serde_json::from_str(text).map_err(|e| format!("invalid entry: {e}"))?;
    parsed.into_entry().map(Some)
}

fn hex16(field: &str, s: &str) -> Result<[u8; 16], String> {
    let bad = || format!("{field} {s:?} is not 32 hex digits");
    if s.len() != 32 || !s.is_ascii() {
        return Err(bad());
    }
    let mut out = [0u8; 16];
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).map_err(|_| bad())?;
    }
    Ok(out)
}

/// Streams every entry of `store` as JSON lines (each ending in `\n`) through a bounded
/// channel, so at most a few dozen entries are in memory whatever the store's size. The
/// ids are listed first (8 bytes each), then each entry is read; an entry removed in
/// between is skipped. Stops early when the receiver is dropped.
pub fn export_lines(
    store: Arc<dyn EntryStore>,
) -> tokio::sync::mpsc::Receiver<Result<String, StoreError>> {
    let (tx, rx) = tokio::sync::mpsc::channel(EXPORT_CHANNEL_LINES);
    let handle = tokio::runtime::Handle::current();
    // The embedded store does its I/O synchronously inside its async methods, so the scan
    // runs on a blocking thread rather than holding a runtime worker.
    tokio::task::spawn_blocking(move || {
        handle.block_on(async move {
            let mut ids = Vec::new();
            if let Err(e) = store.scan_meta(&mut |m| ids.push(m.id)).await {
                let _ = tx.send(Err(e)).await;
                return;
            }
            for id in ids {
                let item = match store.get(id).await {
                    Ok(None) => continue,
                    Ok(Some(e)) => match serde_json::to_string(&ExportLine::from_entry(&e)) {
                        Ok(mut line) => {
                            line.push('\n');
                            Ok(line)
                        }
                        Err(err) => Err(StoreError::Corrupt {
                            id: id.to_string(),
                            reason: format!("cannot be encoded: {err}"),
                        }),
                    },
                    Err(e) => Err(e),
                };
                let failed = item.is_err();
                if tx.send(item).await.is_err() || failed {
                    return;
                }
            }
        });
    });
    rx
}

/// Why an import stopped.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("line {line}: {reason}")]
    Line { line: u64, reason: String },
    #[error("storing the entries of lines {line} to {last} failed")]
    Store {
        line: u64,
        last: u64,
        #[source]
        source: StoreError,
    },
    #[error("storing or indexing the entries of lines {line} to {last} failed: {reason}")]
    Index {
        line: u64,
        last: u64,
        reason: String,
    },
}

/// Entries [`Importer`] writes in one store transaction: one commit per entry would cap an
/// import at the commit rate (about a thousand a second), far below what parsing allows;
/// 8,192 imported 1.6× faster than 1,024 into a stopped store (`deja bench --transfer`).
const IMPORT_BATCH_ENTRIES: usize = 8192;
/// ... or fewer, when their answers are large, so a batch's memory stays bounded.
const IMPORT_BATCH_BYTES: usize = 64 * 1024 * 1024;

/// Stores JSON lines as they arrive, in batches written whole (one store transaction
/// each); an entry with the same id or exact key as a stored one replaces it. One batch is
/// written in the background while the next is parsed, so parsing and writing share the
/// two halves of the work. A bad line stops the import after the lines before it are
/// written.
pub struct Importer {
    target: ImportTarget,
    /// Vector dimension per embedder id, from the caller (the current embedder, what is
    /// stored) and from earlier lines: a vector of another dimension under a known
    /// embedder id would make the index refuse the store's vectors at the next start.
    dims: HashMap<String, usize>,
    /// Bytes of the line being received.
    pending: Vec<u8>,
    /// Where the search for the next newline in `pending` resumes.
    scanned: usize,
    line: u64,
    imported: u64,
    /// Parsed entries not yet written, and the lines of the first and last of them.
    batch: Vec<Entry>,
    batch_bytes: usize,
    batch_lines: (u64, u64),
    /// The batch being written (yielding how many entries it stored), and its lines.
    in_flight: Option<(Writing, (u64, u64))>,
}

/// A batch being written in the background; it yields how many entries it stored.
type Writing = tokio::task::JoinHandle<Result<u64, ImportError>>;

/// Where imported entries go.
#[derive(Clone)]
pub enum ImportTarget {
    /// A running cache: each entry is stored and indexed.
    Cache(deja_core::Cache),
    /// A stopped store: entries are indexed when a server opens it.
    Store(Arc<dyn EntryStore>),
}

impl Importer {
    pub fn new(target: ImportTarget, dims: HashMap<String, usize>) -> Importer {
        Importer {
            target,
            dims,
            pending: Vec::new(),
            scanned: 0,
            line: 0,
            imported: 0,
            batch: Vec::new(),
            batch_bytes: 0,
            batch_lines: (0, 0),
            in_flight: None,
        }
    }

    /// Entries stored so far.
    pub fn imported(&self) -> u64 {
        self.imported
    }

    /// Feeds the next bytes of the input; stores every line they complete.
    pub async fn push(&mut self, bytes: &[u8]) -> Result<(), ImportError> {
        self.pending.extend_from_slice(bytes);
        while let Some(pos) = self.pending[self.scanned..]
            .iter()
            .position(|b| *b == b'\n')
        {
            let end = self.scanned + pos;
            let line: Vec<u8> = self.pending.drain(..=end).collect();
            self.scanned = 0;
            self.store_line(&line[..line.len() - 1]).await?;
        }
        self.scanned = self.pending.len();
        if self.pending.len() > MAX_LINE_BYTES {
            self.write_batch().await?;
            self.settle().await?;
            return Err(ImportError::Line {
                line: self.line + 1,
                reason: format!("longer than {MAX_LINE_BYTES} bytes"),
            });
        }
        Ok(())
    }

    /// Stores the last line if the input did not end with a newline, and every entry
    /// still batched.
    pub async fn finish(&mut self) -> Result<u64, ImportError> {
        if !self.pending.is_empty() {
            let line = std::mem::take(&mut self.pending);
            self.scanned = 0;
            self.store_line(&line).await?;
        }
        self.write_batch().await?;
        self.settle().await?;
        Ok(self.imported)
    }

    /// Starts writing the batched entries (in one store transaction, then indexing them
    /// for a running cache), after the batch before them is written.
    async fn write_batch(&mut self) -> Result<(), ImportError> {
        self.settle().await?;
        if self.batch.is_empty() {
            return Ok(());
        }
        let batch = std::mem::take(&mut self.batch);
        let (line, last) = self.batch_lines;
        self.batch_bytes = 0;
        let target = self.target.clone();
        let writing = tokio::spawn(async move {
            match &target {
                ImportTarget::Store(store) => store
                    .put_many(&batch)
                    .await
                    .map(drop)
                    .map_err(|source| ImportError::Store { line, last, source })?,
                ImportTarget::Cache(cache) => {
                    cache
                        .restore_many(&batch)
                        .await
                        .map_err(|e| ImportError::Index {
                            line,
                            last,
                            reason: deja_core::ErrorChain(&e).to_string(),
                        })?
                }
            }
            Ok(batch.len() as u64)
        });
        self.in_flight = Some((writing, (line, last)));
        Ok(())
    }

    /// Waits for the batch being written.
    async fn settle(&mut self) -> Result<(), ImportError> {
        let Some((writing, (line, last))) = self.in_flight.take() else {
            return Ok(());
        };
        let written = writing.await.map_err(|e| ImportError::Index {
            line,
            last,
            reason: format!("the writer task failed: {e}"),
        })??;
        self.imported += written;
        Ok(())
    }

    /// Batches the entry of the next line. A bad line stops the import, after the entries
    /// of the lines before it have been written.
    async fn store_line(&mut self, bytes: &[u8]) -> Result<(), ImportError> {
        self.line += 1;
        let entry = match self.parse_line(bytes) {
            Ok(Some(entry)) => entry,
            Ok(None) => return Ok(()),
            Err(e) => {
                self.write_batch().await?;
                self.settle().await?;
                return Err(e);
            }
        };
        if self.batch.is_empty() {
            self.batch_lines.0 = self.line;
        }
        self.batch_lines.1 = self.line;
        self.batch_bytes += bytes.len();
        self.batch.push(entry);
        if self.batch.len() >= IMPORT_BATCH_ENTRIES || self.batch_bytes >= IMPORT_BATCH_BYTES {
            self.write_batch().await?;
        }
        Ok(())
    }

    /// The entry of line `self.line`, checked, also against the dimensions seen so far;
    /// `None` for a blank line.
    fn parse_line(&mut self, bytes: &[u8]) -> Result<Option<Entry>, ImportError> {
        let line = self.line;
        let bad = |reason: String| ImportError::Line { line, reason };
        let Some(entry) = parse_line(bytes).map_err(bad)? else {
            return Ok(None);
        };
        if !entry.vector.is_empty() {
            let dim = *self
                .dims
                .entry(entry.embedder_id.clone())
                .or_insert(entry.vector.len());
            if dim != entry.vector.len() {
                return Err(bad(format!(
                    "vector of dimension {} for embedder {}, whose vectors have dimension {dim}",
                    entry.vector.len(),
                    entry.embedder_id
                )));
            }
        }
        Ok(Some(entry))
    }
}

/// The dimension of the stored vectors of each embedder id (the first one seen), for
/// [`Importer::new`] when no embedder is loaded.
pub async fn stored_dims(store: &dyn EntryStore) -> Result<HashMap<String, usize>, StoreError> {
    let mut dims = HashMap::new();
    store
        .scan_vectors(&mut |_, _, embedder, v| {
            if !v.is_empty() && !dims.contains_key(embedder) {
                dims.insert(embedder.to_string(), v.len());
            }
        })
        .await?;
    Ok(dims)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(answer: Answer, vector: Vec<f32>) -> Entry {
        let partition = PartitionKey([7; 16]);
        let prompt = "what is the capital of france".to_string();
        Entry {
            id: EntryId(0x0123_4567_89ab_cdef),
            exact_key: ExactKey::new(&partition, &prompt),
            partition,
            prompt,
            model: "gpt-4o".into(),
            answer,
            usage: Usage {
                prompt_tokens: 3,
                completion_tokens: 5,
            },
            created_at_ms: 1_000,
            last_hit_ms: 2_000,
            hit_count: 4,
            category: "default".into(),
            namespace: "ns:team".into(),
            tags: vec!["product:1".into()],
            embedder_id: if vector.is_empty() {
                String::new()
            } else {
                "test:e".into()
            },
            vector,
            request: None,
        }
    }

    #[test]
    fn lines_round_trip() {
        for e in [
            entry(Answer::Body(b"{\"x\":1}".to_vec()), vec![0.6, 0.8]),
            entry(Answer::Chunks(vec![b"a".to_vec(), vec![0xff, 0]]), vec![]),
            Entry {
                request: Some(br#"{"model":"gpt-4o","messages":[]}"#.to_vec()),
                ..entry(Answer::Body(b"r".to_vec()), vec![])
            },
        ] {
            let line = serde_json::to_string(&ExportLine::from_entry(&e)).unwrap();
            let back: ExportLine = serde_json::from_str(&line).unwrap();
            assert_eq!(back.into_entry().unwrap(), e);
        }
    }

    #[tokio::test]
    async fn importer_splits_lines_across_chunks_and_checks_dimensions() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn EntryStore> = Arc::new(
            deja_store_local::RedbStore::open(
                &dir.path().join("s.redb"),
                deja_store_local::StoreDurability::Fast,
            )
            .unwrap(),
        );
        // The store quantises vectors; this one survives that unchanged.
        let mut a = entry(Answer::Body(b"a".to_vec()), vec![1.0, 0.0]);
        let mut b = entry(Answer::Chunks(vec![b"b".to_vec()]), vec![]);
        b.id = EntryId(2);
        b.prompt = "another".into();
        b.exact_key = ExactKey::new(&b.partition, &b.prompt);
        let line = |e: &Entry| serde_json::to_string(&ExportLine::from_entry(e)).unwrap();
        // CRLF, a blank line, and no newline at the end.
        let input = format!("{}\r\n\n{}", line(&a), line(&b));
        let mut imp = Importer::new(ImportTarget::Store(store.clone()), HashMap::new());
        for byte in input.as_bytes() {
            imp.push(std::slice::from_ref(byte)).await.unwrap();
        }
        assert_eq!(imp.finish().await.unwrap(), 2);
        assert_eq!(store.get(a.id).await.unwrap().unwrap(), a);
        assert_eq!(store.get(b.id).await.unwrap().unwrap(), b);

        // A known embedder's vectors must keep its dimension.
        a.vector = vec![1.0, 0.0, 0.0];
        let mut imp = Importer::new(
            ImportTarget::Store(store.clone()),
            [("test:e".to_string(), 2)].into(),
        );
        let err = imp.push(format!("{}\n", line(&a)).as_bytes()).await;
        let err = err.unwrap_err().to_string();
        assert!(err.starts_with("line 1: vector of dimension 3"), "{err}");
    }

    #[tokio::test]
    async fn importer_writes_in_batches_and_keeps_the_lines_before_a_bad_one() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn EntryStore> = Arc::new(
            deja_store_local::RedbStore::open(
                &dir.path().join("s.redb"),
                deja_store_local::StoreDurability::Fast,
            )
            .unwrap(),
        );
        let n = IMPORT_BATCH_ENTRIES * 2 + 10;
        let bad_at = IMPORT_BATCH_ENTRIES + 7;
        let mut input = String::new();
        for i in 0..n {
            if i + 1 == bad_at {
                input.push_str("{\"id\": \"oops\"}\n");
                continue;
            }
            let mut e = entry(Answer::Body(i.to_string().into_bytes()), vec![0.6, 0.8]);
            e.id = EntryId(i as u64 + 1);
            e.prompt = format!("prompt {i}");
            e.exact_key = ExactKey::new(&e.partition, &e.prompt);
            input.push_str(&serde_json::to_string(&ExportLine::from_entry(&e)).unwrap());
            input.push('\n');
        }
        let mut imp = Importer::new(ImportTarget::Store(store.clone()), HashMap::new());
        let err = imp.push(input.as_bytes()).await.unwrap_err().to_string();
        assert!(err.starts_with(&format!("line {bad_at}:")), "{err}");
        // Every line before the bad one was written, in batches, and nothing after it.
        assert_eq!(imp.imported(), bad_at as u64 - 1);
        assert_eq!(store.len().await.unwrap(), bad_at as u64 - 1);
        for id in [1, IMPORT_BATCH_ENTRIES as u64, bad_at as u64 - 1] {
            let e = store.get(EntryId(id)).await.unwrap().unwrap();
            assert_eq!(e.answer, Answer::Body((id - 1).to_string().into_bytes()));
        }
        assert!(store
            .get(EntryId(bad_at as u64 + 1))
            .await
            .unwrap()
            .is_none());
    }

    #[test]
    fn bad_lines_are_refused_with_a_reason() {
        let good = ExportLine::from_entry(&entry(Answer::Body(b"x".to_vec()), vec![0.6, 0.8]));
        type Edit = fn(&mut ExportLine);
        let cases: &[(Edit, &str)] = &[
            (|l| l.id = "12".into(), "id"),
            (|l| l.partition = "zz".into(), "partition"),
            (|l| l.prompt = "another prompt".into(), "exact_key"),
            (|l| l.vector = "!!".into(), "base64"),
            (|l| l.vector = B64.encode([0u8; 5]), "whole number"),
            (|l| l.vector = B64.encode([0u8; 8]), "unit length"),
            (|l| l.embedder_id = String::new(), "embedder_id"),
            (|l| l.tags = vec![String::new()], "tag"),
            (|l| l.answer = ExportAnswer::Body("%".into()), "answer"),
            (|l| l.request = Some("%".into()), "request"),
        ];
        for (edit, want) in cases {
            let mut l = good.clone();
            edit(&mut l);
            let err = l.into_entry().unwrap_err();
            assert!(err.contains(want), "{err} should mention {want}");
        }
    }
}
