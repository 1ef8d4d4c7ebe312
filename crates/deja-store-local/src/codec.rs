//! The on-disk encoding of an [`Entry`], and the int8 vector quantisation shared by the
//! store and the index.
//!
//! An encoded entry is a small versioned binary record, not JSON: answers are stored as raw
//! bytes (no escaping, no base64), and the vector as int8 codes plus one f32 scale, about a
//! quarter of its f32 size. Layout of version 2 (all integers little-endian):
//!
//! ```text
//! u8  version (= 2; 1 is still read)
//! u64 created_at_ms, last_hit_ms, hit_count, prompt_tokens, completion_tokens
//! [u8; 16] partition, [u8; 16] exact_key
//! str prompt, str model, str embedder_id, str category   (str = u32 length + UTF-8 bytes)
//! str namespace, u32 tag count + count × str tag
//! u8  answer kind: 0 = body (bytes), 1 = chunks (u32 count + count × bytes)
//!                                               (bytes = u32 length + bytes)
//! u32 vector dimension (0 = no vector), then if non-zero: f32 scale + dim × i8 codes
//! u8  request recorded: 0 = no, 1 = yes, then bytes request         (version 2 only)
//! ```
//!
//! Version 1 records (written before requests were recorded) end after the vector and
//! decode with no request; new records are always written as version 2. The request comes
//! last so that every reader that stops before it (metadata, vectors, hits) reads both
//! versions the same way.
//!
//! The hit fields sit at fixed offsets right after the version byte so the store can read
//! them without decoding the rest; everything but the answer and the vector comes before
//! the answer, so metadata is read without copying either. The entry id is the table key
//! and is not repeated.
//!
//! This module is not the place for table layout or transactions; see `store.rs`. Other
//! backends (`deja-store-redis`) store the same records, so one format is read everywhere.

use deja_core::{Answer, Entry, EntryId, ExactKey, PartitionKey, StoreError, Usage};

const VERSION: u8 = 2;
/// Records without the trailing request, still read.
const VERSION_1: u8 = 1;
const ANSWER_BODY: u8 = 0;
const ANSWER_CHUNKS: u8 = 1;

/// Offset of `last_hit_ms` and `hit_count` in an encoded entry (after version and
/// `created_at_ms`).
const HITS_OFFSET: usize = 1 + 8;

/// A vector quantised to int8: `x[i] ≈ codes[i] * scale`.
#[derive(Debug, Clone, PartialEq)]
pub struct Quantized {
    pub scale: f32,
    pub codes: Vec<i8>,
}

/// Quantises symmetrically so the largest component maps to ±127. A zero (or non-finite)
/// vector quantises to all zeros with scale 0.
pub fn quantize(v: &[f32]) -> Quantized {
    let mut codes = vec![0i8; v.len()];
    let scale = quantize_into(v, &mut codes);
    Quantized { scale, codes }
}

/// [`quantize`] into a caller-provided buffer of the same length; returns the scale.
pub fn quantize_into(v: &[f32], codes: &mut [i8]) -> f32 {
    let max = v.iter().fold(0f32, |m, x| m.max(x.abs()));
    if !(max.is_finite() && max > 0.0) {
        codes.iter_mut().for_each(|c| *c = 0);
        return 0.0;
    }
    let inv = 127.0 / max;
    for (c, x) in codes.iter_mut().zip(v) {
        // In range by construction: |x| <= max, so |x * inv| <= 127.
        *c = (x * inv).round().clamp(-127.0, 127.0) as i8;
    }
    max / 127.0
}

/// Dequantises and rescales to unit length (the traits promise unit-length vectors). The
/// scale cancels out in the normalisation; it is kept on disk for other readers.
pub fn dequantize_unit(codes: &[i8]) -> Vec<f32> {
    let norm_sq: i64 = codes.iter().map(|&c| i64::from(c) * i64::from(c)).sum();
    if norm_sq == 0 {
        return vec![0.0; codes.len()];
    }
    let inv = 1.0 / (norm_sq as f64).sqrt();
    codes.iter().map(|&c| (f64::from(c) * inv) as f32).collect()
}

pub fn encode_entry(e: &Entry) -> Vec<u8> {
    let Entry {
        id: _,
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
    let mut out = Vec::with_capacity(
        1 + 5 * 8
            + 32
            + 12
            + prompt.len()
            + model.len()
            + embedder_id.len()
            + 4
            + category.len()
            + 8
            + namespace.len()
            + tags.iter().map(|t| 4 + t.len()).sum::<usize>()
            + 5
            + answer.len_bytes()
            + 8
            + vector.len()
            + 5
            + request.as_ref().map_or(0, Vec::len),
    );
    out.push(VERSION);
    for n in [
        *created_at_ms,
        *last_hit_ms,
        *hit_count,
        usage.prompt_tokens,
        usage.completion_tokens,
    ] {
        out.extend_from_slice(&n.to_le_bytes());
    }
    out.extend_from_slice(&partition.0);
    out.extend_from_slice(&exact_key.0);
    put_bytes(&mut out, prompt.as_bytes());
    put_bytes(&mut out, model.as_bytes());
    put_bytes(&mut out, embedder_id.as_bytes());
    put_bytes(&mut out, category.as_bytes());
    put_bytes(&mut out, namespace.as_bytes());
    put_len(&mut out, tags.len());
    for t in tags {
        put_bytes(&mut out, t.as_bytes());
    }
    match answer {
        Answer::Body(b) => {
            out.push(ANSWER_BODY);
            put_bytes(&mut out, b);
        }
        Answer::Chunks(chunks) => {
            out.push(ANSWER_CHUNKS);
            put_len(&mut out, chunks.len());
            for c in chunks {
                put_bytes(&mut out, c);
            }
        }
    }
    put_len(&mut out, vector.len());
    if !vector.is_empty() {
        let q = quantize(vector);
        out.extend_from_slice(&q.scale.to_le_bytes());
        out.extend(q.codes.iter().map(|&c| c as u8));
    }
    match request {
        None => out.push(0),
        Some(r) => {
            out.push(1);
            put_bytes(&mut out, r);
        }
    }
    out
}

fn put_len(out: &mut Vec<u8>, n: usize) {
    // Lengths above 4 GiB cannot occur: redb values are limited to well below that.
    out.extend_from_slice(&(n as u32).to_le_bytes());
}

fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    put_len(out, b.len());
    out.extend_from_slice(b);
}

/// Decodes a whole entry; `id` is the table key it was stored under.
pub fn decode_entry(id: EntryId, bytes: &[u8]) -> Result<Entry, StoreError> {
    let mut r = Reader::new(id, bytes);
    let version = r.version()?;
    let created_at_ms = r.u64()?;
    let last_hit_ms = r.u64()?;
    let hit_count = r.u64()?;
    let prompt_tokens = r.u64()?;
    let completion_tokens = r.u64()?;
    let partition = PartitionKey(r.array16()?);
    let exact_key = ExactKey(r.array16()?);
    let prompt = r.string()?;
    let model = r.string()?;
    let embedder_id = r.string()?;
    let category = r.string()?;
    let namespace = r.string()?;
    let tags = r.tags()?.into_iter().map(str::to_string).collect();
    let answer = match r.u8()? {
        ANSWER_BODY => Answer::Body(r.bytes()?.to_vec()),
        ANSWER_CHUNKS => {
            let n = r.len()?;
            // Each chunk needs at least its 4-byte length, so a corrupt count cannot make
            // us allocate more than the record could hold.
            let mut chunks = Vec::with_capacity(n.min(r.remaining() / 4));
            for _ in 0..n {
                chunks.push(r.bytes()?.to_vec());
            }
            Answer::Chunks(chunks)
        }
        other => return Err(r.corrupt(format!("unknown answer kind {other}"))),
    };
    let vector = r.vector()?;
    let request = match version {
        VERSION_1 => None,
        _ => match r.u8()? {
            0 => None,
            1 => Some(r.bytes()?.to_vec()),
            other => return Err(r.corrupt(format!("unknown request flag {other}"))),
        },
    };
    r.end()?;
    Ok(Entry {
        id,
        partition,
        exact_key,
        prompt,
        model,
        answer,
        usage: Usage {
            prompt_tokens,
            completion_tokens,
        },
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

/// The parts of an entry the index needs, without copying the answer.
pub struct VectorParts<'a> {
    pub partition: PartitionKey,
    pub embedder_id: &'a str,
    pub vector: Vec<f32>,
}

pub fn decode_vector_parts(id: EntryId, bytes: &[u8]) -> Result<VectorParts<'_>, StoreError> {
    let mut r = Reader::new(id, bytes);
    r.version()?;
    r.skip(5 * 8)?;
    let partition = PartitionKey(r.array16()?);
    r.skip(16)?; // exact key
    r.bytes()?; // prompt
    r.bytes()?; // model
    let embedder_id = r.str()?;
    r.bytes()?; // category
    r.bytes()?; // namespace
    r.tags()?;
    r.skip_answer()?;
    let vector = r.vector()?;
    Ok(VectorParts {
        partition,
        embedder_id,
        vector,
    })
}

/// Everything of an entry but its prompt, answer and vector, borrowed from the record.
#[derive(Debug, PartialEq)]
pub struct MetaParts<'a> {
    pub created_at_ms: u64,
    pub last_hit_ms: u64,
    pub hit_count: u64,
    pub partition: PartitionKey,
    pub exact_key: ExactKey,
    pub model: &'a str,
    pub category: &'a str,
    pub namespace: &'a str,
    pub tags: Vec<&'a str>,
    pub has_vector: bool,
    /// Prompt plus answer bytes (see [`deja_core::EntryMeta::size_bytes`]).
    pub size_bytes: u64,
}

/// Decodes an entry's metadata; the answer is skipped by its lengths, never copied.
pub fn decode_meta(id: EntryId, bytes: &[u8]) -> Result<MetaParts<'_>, StoreError> {
    let mut r = Reader::new(id, bytes);
    r.version()?;
    let created_at_ms = r.u64()?;
    let last_hit_ms = r.u64()?;
    let hit_count = r.u64()?;
    r.skip(2 * 8)?; // usage
    let partition = PartitionKey(r.array16()?);
    let exact_key = ExactKey(r.array16()?);
    let prompt_len = r.bytes()?.len();
    let model = r.str()?;
    r.bytes()?; // embedder id
    let category = r.str()?;
    let namespace = r.str()?;
    let tags = r.tags()?;
    let answer_len = r.skip_answer()?;
    let has_vector = r.len()? != 0;
    Ok(MetaParts {
        created_at_ms,
        last_hit_ms,
        hit_count,
        partition,
        exact_key,
        model,
        category,
        namespace,
        tags,
        has_vector,
        size_bytes: (prompt_len + answer_len) as u64,
    })
}

/// Reads `(last_hit_ms, hit_count)` from an encoded entry without decoding it.
pub fn read_hits(id: EntryId, bytes: &[u8]) -> Result<(u64, u64), StoreError> {
    let mut r = Reader::new(id, bytes);
    r.version()?;
    r.skip(HITS_OFFSET - 1)?;
    Ok((r.u64()?, r.u64()?))
}

/// Reads the exact key of an encoded entry without decoding it.
pub fn read_exact_key(id: EntryId, bytes: &[u8]) -> Result<ExactKey, StoreError> {
    read_keys(id, bytes).map(|(_, exact)| exact)
}

/// Reads the partition and exact key of an encoded entry (fixed offsets), so even a
/// record damaged further on can be unlinked from the exact-key table and the index.
pub fn read_keys(id: EntryId, bytes: &[u8]) -> Result<(PartitionKey, ExactKey), StoreError> {
    let mut r = Reader::new(id, bytes);
    r.version()?;
    r.skip(5 * 8)?;
    Ok((PartitionKey(r.array16()?), ExactKey(r.array16()?)))
}

struct Reader<'a> {
    id: EntryId,
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn new(id: EntryId, buf: &'a [u8]) -> Self {
        Self { id, buf, pos: 0 }
    }

    fn corrupt(&self, reason: String) -> StoreError {
        StoreError::Corrupt {
            id: self.id.to_string(),
            reason,
        }
    }

    fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], StoreError> {
        if self.remaining() < n {
            return Err(self.corrupt(format!(
                "record truncated at byte {} (wanted {n} more, {} left)",
                self.pos,
                self.remaining()
            )));
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    fn skip(&mut self, n: usize) -> Result<(), StoreError> {
        self.take(n).map(|_| ())
    }

    /// The record's version, if it is one this code reads.
    fn version(&mut self) -> Result<u8, StoreError> {
        match self.u8()? {
            v @ (VERSION | VERSION_1) => Ok(v),
            v => Err(self.corrupt(format!("unknown record version {v}"))),
        }
    }

    fn u8(&mut self) -> Result<u8, StoreError> {
        Ok(self.take(1)?[0])
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], StoreError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }

    fn array16(&mut self) -> Result<[u8; 16], StoreError> {
        self.array::<16>()
    }

    fn u64(&mut self) -> Result<u64, StoreError> {
        Ok(u64::from_le_bytes(self.array()?))
    }

    fn len(&mut self) -> Result<usize, StoreError> {
        Ok(u32::from_le_bytes(self.array()?) as usize)
    }

    fn bytes(&mut self) -> Result<&'a [u8], StoreError> {
        let n = self.len()?;
        self.take(n)
    }

    fn str(&mut self) -> Result<&'a str, StoreError> {
        let b = self.bytes()?;
        std::str::from_utf8(b).map_err(|e| self.corrupt(format!("invalid UTF-8: {e}")))
    }

    fn string(&mut self) -> Result<String, StoreError> {
        self.str().map(str::to_string)
    }

    fn tags(&mut self) -> Result<Vec<&'a str>, StoreError> {
        let n = self.len()?;
        // Each tag needs at least its 4-byte length (see the chunks in `decode_entry`).
        let mut tags = Vec::with_capacity(n.min(self.remaining() / 4));
        for _ in 0..n {
            tags.push(self.str()?);
        }
        Ok(tags)
    }

    /// Skips the answer; returns its length in bytes (what [`deja_core::Answer::len_bytes`]
    /// would say).
    fn skip_answer(&mut self) -> Result<usize, StoreError> {
        match self.u8()? {
            ANSWER_BODY => Ok(self.bytes()?.len()),
            ANSWER_CHUNKS => {
                let mut n = 0;
                for _ in 0..self.len()? {
                    n += self.bytes()?.len();
                }
                Ok(n)
            }
            other => Err(self.corrupt(format!("unknown answer kind {other}"))),
        }
    }

    fn vector(&mut self) -> Result<Vec<f32>, StoreError> {
        let dim = self.len()?;
        if dim == 0 {
            return Ok(Vec::new());
        }
        let _scale = f32::from_le_bytes(self.array()?);
        let codes = self.take(dim)?;
        // Reinterpreting u8 as i8 is a bit-for-bit cast.
        let codes: Vec<i8> = codes.iter().map(|&b| b as i8).collect();
        Ok(dequantize_unit(&codes))
    }

    fn end(&self) -> Result<(), StoreError> {
        if self.remaining() == 0 {
            Ok(())
        } else {
            Err(self.corrupt(format!("{} trailing bytes", self.remaining())))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unit(v: Vec<f32>) -> Vec<f32> {
        let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        v.into_iter().map(|x| x / n).collect()
    }

    fn sample(answer: Answer, vector: Vec<f32>) -> Entry {
        Entry {
            id: EntryId(7),
            partition: PartitionKey([3; 16]),
            exact_key: ExactKey([4; 16]),
            prompt: "héllo".into(),
            model: "gpt-x".into(),
            answer,
            usage: Usage {
                prompt_tokens: 11,
                completion_tokens: 22,
            },
            created_at_ms: 1,
            last_hit_ms: 2,
            hit_count: 3,
            category: "faq".into(),
            namespace: "ns:team-1".into(),
            tags: vec!["product:123".into(), "policy:returns".into()],
            embedder_id: "test:fake".into(),
            vector,
            request: None,
        }
    }

    #[test]
    fn round_trip_table() {
        let v = unit(
            (0..384)
                .map(|i| ((i * 37 % 101) as f32 - 50.0) / 7.0)
                .collect(),
        );
        let untagged = Entry {
            namespace: String::new(),
            tags: Vec::new(),
            ..sample(Answer::Body(b"x".to_vec()), Vec::new())
        };
        let cases = [
            untagged,
            sample(Answer::Body(b"{\"a\":1}".to_vec()), v.clone()),
            sample(Answer::Body(Vec::new()), Vec::new()),
            sample(
                Answer::Chunks(vec![b"x".to_vec(), Vec::new(), vec![0xff; 300]]),
                v.clone(),
            ),
            sample(Answer::Chunks(Vec::new()), unit(vec![1.0, 0.0, 0.0])),
            Entry {
                request: Some(br#"{"model":"gpt-x","messages":[]}"#.to_vec()),
                ..sample(Answer::Body(b"y".to_vec()), v.clone())
            },
            Entry {
                request: Some(Vec::new()),
                ..sample(Answer::Chunks(vec![b"z".to_vec()]), Vec::new())
            },
        ];
        for e in cases {
            let bytes = encode_entry(&e);
            let d = decode_entry(e.id, &bytes).unwrap();
            let cos: f32 = d.vector.iter().zip(&e.vector).map(|(a, b)| a * b).sum();
            if !e.vector.is_empty() {
                assert!(cos > 0.9999, "cos {cos}");
                let norm: f32 = d.vector.iter().map(|x| x * x).sum();
                assert!((norm - 1.0).abs() < 1e-5);
            }
            assert_eq!(
                Entry {
                    vector: e.vector.clone(),
                    ..d.clone()
                },
                e
            );
            let parts = decode_vector_parts(e.id, &bytes).unwrap();
            assert_eq!(parts.partition, e.partition);
            assert_eq!(parts.embedder_id, e.embedder_id);
            assert_eq!(parts.vector, d.vector);
            let meta = decode_meta(e.id, &bytes).unwrap();
            assert_eq!(
                meta,
                MetaParts {
                    created_at_ms: 1,
                    last_hit_ms: 2,
                    hit_count: 3,
                    partition: e.partition,
                    exact_key: e.exact_key,
                    model: "gpt-x",
                    category: "faq",
                    namespace: &e.namespace,
                    tags: e.tags.iter().map(String::as_str).collect(),
                    has_vector: !e.vector.is_empty(),
                    size_bytes: (e.prompt.len() + e.answer.len_bytes()) as u64,
                }
            );
            assert_eq!(read_hits(e.id, &bytes).unwrap(), (2, 3));
            assert_eq!(read_exact_key(e.id, &bytes).unwrap(), e.exact_key);
        }
    }

    #[test]
    fn corrupt_records_are_errors_not_panics() {
        let bytes = encode_entry(&sample(Answer::Chunks(vec![b"abc".to_vec()]), vec![1.0]));
        for cut in 0..bytes.len() {
            assert!(
                decode_entry(EntryId(1), &bytes[..cut]).is_err(),
                "cut {cut}"
            );
        }
        let mut bad = bytes.clone();
        bad[0] = 99;
        assert!(matches!(
            decode_entry(EntryId(1), &bad),
            Err(StoreError::Corrupt { .. })
        ));
    }

    /// A record written before requests were recorded (version 1: no trailing request
    /// flag) still decodes, with no request, through every reader.
    #[test]
    fn version_1_records_still_decode() {
        for vector in [Vec::new(), vec![0.6, 0.8]] {
            let e = sample(Answer::Chunks(vec![b"abc".to_vec()]), vector);
            let mut v1 = encode_entry(&e);
            assert_eq!(v1.pop(), Some(0), "the v2 record ends in its request flag");
            v1[0] = VERSION_1;
            let d = decode_entry(e.id, &v1).unwrap();
            assert_eq!(d.request, None);
            assert_eq!(d.answer, e.answer);
            assert_eq!(d.prompt, e.prompt);
            assert_eq!(
                decode_meta(e.id, &v1).unwrap().tags,
                ["product:123", "policy:returns"]
            );
            assert_eq!(
                decode_vector_parts(e.id, &v1).unwrap().vector.len(),
                e.vector.len()
            );
            assert_eq!(read_hits(e.id, &v1).unwrap(), (2, 3));
            // A version 1 record with anything after its vector is corrupt.
            let mut extra = v1.clone();
            extra.push(0);
            assert!(decode_entry(e.id, &extra).is_err());
        }
        let mut bad_flag = encode_entry(&sample(Answer::Body(b"x".to_vec()), Vec::new()));
        *bad_flag.last_mut().unwrap() = 7;
        assert!(decode_entry(EntryId(7), &bad_flag).is_err());
    }

    #[test]
    fn requantising_a_decoded_vector_is_lossless() {
        let v = unit((0..64).map(|i| (i as f32 * 0.37).sin()).collect());
        let q1 = quantize(&v);
        let q2 = quantize(&dequantize_unit(&q1.codes));
        assert_eq!(q1.codes, q2.codes);
    }
}
