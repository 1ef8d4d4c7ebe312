//! The tags a request attaches to the entry its answer is stored as (`x-deja-tags`), which
//! `POST /admin/invalidate` removes entries by.

use axum::http::HeaderMap;

use crate::error::ApiError;

/// Request header carrying an entry's tags: `x-deja-tags: product:123, policy:returns`.
pub const TAGS_HEADER: &str = "x-deja-tags";
/// Most tags one request may attach.
pub const MAX_TAGS: usize = 32;
/// Longest tag, in characters.
pub const MAX_TAG_CHARS: usize = 128;

/// The tags a request attaches to the entry its answer is stored as: every
/// `x-deja-tags` header, split on commas, trimmed, duplicates dropped (first kept). Each
/// tag is 1 to 128 printable characters; at most 32 tags. An absent or blank header means
/// no tags.
pub fn tags_from_headers(headers: &HeaderMap) -> Result<Vec<String>, ApiError> {
    let bad = |why: String| ApiError::bad_request(format!("{TAGS_HEADER}: {why}"), None);
    let mut tags: Vec<String> = Vec::new();
    for value in headers.get_all(TAGS_HEADER) {
        let value = std::str::from_utf8(value.as_bytes())
            .map_err(|_| bad("the header is not valid UTF-8".into()))?;
        if value.trim().is_empty() {
            continue;
        }
        for tag in value.split(',').map(str::trim) {
            let chars = tag.chars().count();
            if !(1..=MAX_TAG_CHARS).contains(&chars) {
                return Err(bad(format!(
                    "each comma-separated tag must be 1 to {MAX_TAG_CHARS} characters, got {chars}"
                )));
            }
            if tag.chars().any(char::is_control) {
                return Err(bad(format!("tag {tag:?} contains a control character")));
            }
            if !tags.iter().any(|t| t == tag) {
                tags.push(tag.to_string());
            }
        }
    }
    if tags.len() > MAX_TAGS {
        return Err(bad(format!(
            "at most {MAX_TAGS} tags per request, got {}",
            tags.len()
        )));
    }
    Ok(tags)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn tags_header_table() {
        let long = "x".repeat(MAX_TAG_CHARS);
        let too_long = "x".repeat(MAX_TAG_CHARS + 1);
        let many = (0..=MAX_TAGS)
            .map(|i| format!("t{i}"))
            .collect::<Vec<_>>()
            .join(",");
        let cases: Vec<(Vec<&str>, Option<Vec<&str>>)> = vec![
            (vec![], Some(vec![])),
            (vec!["  "], Some(vec![])),
            (
                vec!["product:123, policy:returns"],
                Some(vec!["product:123", "policy:returns"]),
            ),
            (vec!["a,a , b"], Some(vec!["a", "b"])),
            (vec!["a", "b, c"], Some(vec!["a", "b", "c"])),
            (vec!["produit:é"], Some(vec!["produit:é"])),
            (vec![&long], Some(vec![&long])),
            (vec![&too_long], None),
            (vec!["a,,b"], None),
            (vec!["a,"], None),
            (vec!["a\tb"], None),
            (vec![&many], None),
        ];
        for (values, want) in cases {
            let mut h = HeaderMap::new();
            for v in &values {
                h.append(TAGS_HEADER, HeaderValue::from_bytes(v.as_bytes()).unwrap());
            }
            let got = tags_from_headers(&h).ok();
            let want: Option<Vec<String>> = want.map(|w| w.into_iter().map(String::from).collect());
            assert_eq!(got, want, "{values:?}");
        }
    }
}
