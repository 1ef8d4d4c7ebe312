//! Listing and searching stored entries, a page at a time: what `GET /admin/entries` and
//! `deja entries` show.
//!
//! Pages are ordered by entry id and the cursor is the last id a page looked at, so paging
//! is stable while entries come and go: every entry that exists from the first page to the
//! last is listed exactly once (ids are random, so new entries land anywhere in the order
//! and may or may not be seen; removed ones are skipped). A page with a tag filter starts
//! from the store's tag index; any other page scans the entries' metadata once, keeping
//! only the next few ids in memory. Then it reads just the entries it examines. A
//! prompt-text search (or a tag listing) reads candidate entries whole, so a page examines
//! at most [`TEXT_SCAN_LIMIT`] of them and may come back short (even empty) with a cursor
//! to go on from.
//!
//! This module is not the place for the HTTP handler (`admin.rs`) nor for invalidation.

use std::collections::BinaryHeap;

use deja_core::{Answer, EntryId, EntryStore, StoreError};
use serde::{Deserialize, Serialize};

/// Most entries one page returns.
pub const MAX_LIMIT: usize = 1000;
/// Entries a page returns when the caller does not say.
pub const DEFAULT_LIMIT: usize = 100;
/// Most entries a prompt-text search reads per page.
pub const TEXT_SCAN_LIMIT: usize = 5000;
/// Characters of the prompt shown in a listing (the whole prompt is in
/// `GET /admin/entries/{id}`).
pub const PREVIEW_CHARS: usize = 200;

/// Which entries to list; every given field must match.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EntryFilter {
    /// Case-insensitive substring of the prompt.
    pub text: Option<String>,
    pub tag: Option<String>,
    pub model: Option<String>,
    /// The tenant label as stored (`ns:<name>`, `key:<hash>`, `shared`, `anonymous`).
    pub tenant: Option<String>,
}

/// What a listing shows of one entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntrySummary {
    pub id: String,
    /// The first [`PREVIEW_CHARS`] characters of the prompt.
    pub prompt: String,
    pub model: String,
    pub namespace: String,
    pub tags: Vec<String>,
    pub category: String,
    pub created_at_ms: u64,
    pub last_hit_ms: u64,
    pub hit_count: u64,
    /// Prompt plus answer bytes (what `max_bytes` counts).
    pub size_bytes: u64,
    /// Whether the answer was recorded from a stream.
    pub streamed: bool,
}

/// One page of a listing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Page {
    pub entries: Vec<EntrySummary>,
    /// Where the next page starts (16 hex digits); `None` when the listing is complete.
    pub next_cursor: Option<String>,
}

/// The page of entries after `after` (from the start when `None`) that match `filter`,
/// at most `limit` of them.
pub async fn list(
    store: &dyn EntryStore,
    filter: &EntryFilter,
    after: Option<EntryId>,
    limit: usize,
) -> Result<Page, StoreError> {
    let limit = limit.clamp(1, MAX_LIMIT);
    let needle = filter
        .text
        .as_deref()
        .map(str::to_lowercase)
        .filter(|t| !t.is_empty());
    let (ids, more_beyond) = match &filter.tag {
        // The store's tag index lists the tag's entries without a scan; the other filters
        // are then checked on each entry read.
        Some(tag) => {
            let mut ids = store.ids_with_tag(tag).await?;
            ids.retain(|id| after.is_none_or(|a| *id > a));
            ids.sort_unstable();
            ids.dedup();
            let more_beyond = ids.len() > TEXT_SCAN_LIMIT;
            ids.truncate(TEXT_SCAN_LIMIT);
            (ids, more_beyond)
        }
        None => {
            // How many candidates to read whole: the metadata scan applies every filter but
            // the text one.
            let examine = if needle.is_some() {
                TEXT_SCAN_LIMIT
            } else {
                limit
            };
            next_ids(store, filter, after, examine).await?
        }
    };
    let mut entries = Vec::new();
    let mut last_examined = None;
    for (i, id) in ids.iter().enumerate() {
        last_examined = Some(*id);
        let Some(e) = store.get(*id).await? else {
            // Removed since it was listed.
            continue;
        };
        let matches = filter.model.as_deref().is_none_or(|x| e.model == x)
            && filter
                .tenant
                .as_deref()
                .is_none_or(|x| deja_core::tenant_matches(&e.namespace, x))
            && filter
                .tag
                .as_deref()
                .is_none_or(|x| e.tags.iter().any(|t| t == x))
            && needle
                .as_deref()
                .is_none_or(|n| e.prompt.to_lowercase().contains(n));
        if !matches {
            continue;
        }
        entries.push(EntrySummary {
            id: e.id.to_string(),
            prompt: e.prompt.chars().take(PREVIEW_CHARS).collect(),
            model: e.model,
            namespace: e.namespace,
            tags: e.tags,
            category: e.category,
            created_at_ms: e.created_at_ms,
            last_hit_ms: e.last_hit_ms,
            hit_count: e.hit_count,
            size_bytes: (e.prompt.len() + e.answer.len_bytes()) as u64,
            streamed: matches!(e.answer, Answer::Chunks(_)),
        });
        if entries.len() == limit {
            let rest = i + 1 < ids.len() || more_beyond;
            return Ok(Page {
                entries,
                next_cursor: rest.then(|| id.to_string()),
            });
        }
    }
    Ok(Page {
        entries,
        next_cursor: if more_beyond {
            last_examined.map(|id| id.to_string())
        } else {
            None
        },
    })
}

/// The `examine` smallest ids after `after` whose metadata matches the model and tenant
/// filters, in order, from one metadata scan; and whether more match beyond them.
async fn next_ids(
    store: &dyn EntryStore,
    filter: &EntryFilter,
    after: Option<EntryId>,
    examine: usize,
) -> Result<(Vec<EntryId>, bool), StoreError> {
    // One more than asked is kept, to learn whether any is left.
    let mut heap: BinaryHeap<EntryId> = BinaryHeap::with_capacity(examine + 2);
    store
        .scan_meta(&mut |m| {
            if after.is_some_and(|a| m.id <= a)
                || filter.model.as_deref().is_some_and(|x| m.model != x)
                || filter
                    .tenant
                    .as_deref()
                    .is_some_and(|x| !deja_core::tenant_matches(m.namespace, x))
                || filter.tag.as_deref().is_some_and(|x| !m.tags.contains(&x))
            {
                return;
            }
            // A max-heap of the smallest ids seen: the largest is dropped when full.
            heap.push(m.id);
            if heap.len() > examine + 1 {
                heap.pop();
            }
        })
        .await?;
    let more_beyond = heap.len() > examine;
    let mut ids = heap.into_sorted_vec();
    ids.truncate(examine);
    Ok((ids, more_beyond))
}

/// Decodes an `application/x-www-form-urlencoded` query string into (name, value) pairs:
/// `+` is a space, `%XX` a byte; the bytes must be UTF-8.
pub fn parse_query(query: &str) -> Result<Vec<(String, String)>, String> {
    fn decode(s: &str) -> Result<String, String> {
        let b = s.as_bytes();
        let mut out = Vec::with_capacity(b.len());
        let mut i = 0;
        while i < b.len() {
            match b[i] {
                b'+' => out.push(b' '),
                b'%' => {
                    let hex = b
                        .get(i + 1..i + 3)
                        .and_then(|h| std::str::from_utf8(h).ok())
                        .and_then(|h| u8::from_str_radix(h, 16).ok())
                        .ok_or_else(|| format!("bad percent escape in {s:?}"))?;
                    out.push(hex);
                    i += 2;
                }
                c => out.push(c),
            }
            i += 1;
        }
        String::from_utf8(out).map_err(|_| format!("{s:?} is not UTF-8 once decoded"))
    }
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            Ok((decode(k)?, decode(v)?))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_decoding_table() {
        type Pairs = Option<Vec<(&'static str, &'static str)>>;
        let cases: &[(&str, Pairs)] = &[
            ("", Some(vec![])),
            ("a=1&b=two", Some(vec![("a", "1"), ("b", "two")])),
            (
                "q=capital+of%20France",
                Some(vec![("q", "capital of France")]),
            ),
            ("tag=product%3A123", Some(vec![("tag", "product:123")])),
            ("q=caf%C3%A9", Some(vec![("q", "café")])),
            ("flag&x=", Some(vec![("flag", ""), ("x", "")])),
            ("a=1&&b=2", Some(vec![("a", "1"), ("b", "2")])),
            ("q=%zz", None),
            ("q=%4", None),
            ("q=%ff", None),
        ];
        for (q, want) in cases {
            let got = parse_query(q).ok();
            let want: Option<Vec<(String, String)>> = want.as_ref().map(|w| {
                w.iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect()
            });
            assert_eq!(got, want, "{q}");
        }
    }
}
