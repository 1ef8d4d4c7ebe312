//! The admin API under `/admin/` (the tags it invalidates by are [`crate::tags`]).
//!
//! Off unless `admin.token` (or `DEJA_ADMIN_TOKEN`) is set: then every admin route answers
//! 404, as if it did not exist. With a token, a request must carry
//! `Authorization: Bearer <token>`, else 401. Errors use the OpenAI error shape like every
//! other route.
//!
//! - `GET /admin/stats?days=N`: entry count, counters (persisted and pending), hit rate,
//!   the staleness job's settings and spending today, and the cost ledger of the last `N`
//!   UTC days (default 30): per day and per model, with totals ([`crate::observe::ledger`]);
//! - `POST /admin/invalidate`: `{"tag": ..}` | `{"model": ..}` | `{"namespace": ..}` |
//!   `{"tenant": ..}` | `{"id": ..}` | `{"older_than_secs": N}` | `{"all": true}` →
//!   `{"removed": N}`;
//! - `GET /admin/entries?q=&tag=&model=&namespace=&tenant=&limit=&cursor=`: a page of
//!   entries' metadata, with the cursor of the next page ([`entries`]);
//! - `GET /admin/entries/{id}`: one entry (no vector);
//! - `GET /admin/config`: the effective configuration, secrets redacted;
//! - `GET /admin/export`: every entry as JSON Lines, streamed ([`transfer`]);
//! - `POST /admin/import`: JSON Lines in the export's format, streamed → `{"imported": N}`;
//! - `GET /admin/dashboard.json`: what the dashboard draws ([`crate::dashboard`]);
//! - `POST /admin/feedback`: `{"hit": ID}` | `{"near_miss": ID}` with `"verdict": "right"`
//!   or `"wrong"`, a person's verdict on a row the dashboard lists ([`verdicts`]).
//!
//! This module is not the place for the invalidation logic itself
//! ([`deja_core::Cache::invalidate`]) nor for how tags are stored (the store's tag index).

pub mod entries;
pub mod transfer;
pub mod verdicts;

use axum::body::Body;
use axum::extract::{Path, RawQuery, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use bytes::Bytes;
use deja_core::{Answer, EntryId, ErrorChain, Invalidate};
use futures::StreamExt;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::error::ApiError;
use crate::state::AppState;
use crate::store_view::store_view;

/// The admin routes, to be nested under `/admin`; `state` is needed by the token check.
pub fn router(state: AppState) -> Router<AppState> {
    Router::new()
        .route("/stats", get(stats))
        .route("/invalidate", post(invalidate))
        .route("/entries", get(list_entries))
        .route("/entries/{id}", get(entry))
        .route("/config", get(config))
        .route("/export", get(export))
        .route("/import", post(import))
        .route("/dashboard.json", get(crate::dashboard::data))
        .route("/feedback", post(verdicts::verdict))
        // Unknown admin paths stay here (and behind the token check) rather than falling
        // through to the upstream with the admin token in their headers.
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(state, require_token))
}

async fn not_found() -> ApiError {
    ApiError::NotFound {
        message: "no such admin route".into(),
    }
}

async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}

/// 404 while the admin API is off; 401 without the right bearer token.
async fn require_token(
    State(app): State<AppState>,
    req: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let Some(token) = app.config().admin.token.as_deref() else {
        return Err(ApiError::NotFound {
            message: "the admin API is off; set admin.token or DEJA_ADMIN_TOKEN".into(),
        });
    };
    let given = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, rest) = v.trim().split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
        });
    // Comparing hashes takes the same time wherever the tokens differ (blake3's `Hash`
    // compares in constant time), so the token cannot be guessed byte by byte.
    match given {
        Some(g) if blake3::hash(g.as_bytes()) == blake3::hash(token.as_bytes()) => {
            Ok(next.run(req).await)
        }
        _ => Err(ApiError::Unauthorized),
    }
}

fn internal(what: &str, e: &dyn std::error::Error) -> ApiError {
    ApiError::Internal {
        detail: format!("{what}: {}", ErrorChain(e)),
    }
}

/// Days of the ledger `/admin/stats` shows unless `?days=N` says otherwise.
pub const STATS_DAYS: u64 = 30;

async fn stats(
    State(app): State<AppState>,
    RawQuery(query): RawQuery,
) -> Result<Json<Value>, ApiError> {
    let days = stats_days(query.as_deref())?;
    let cache = app.cache();
    let store = store_view(cache).await;
    Ok(Json(json!({
        "entries": store.entries,
        "counters": store.counters,
        "hit_rate": store.counters.as_ref().map(deja_core::Counters::hit_rate),
        "store_error": store.error,
        "staleness": staleness_status(app.config(), cache.now_ms()),
        "ledger": app.ledger().report(cache.now_ms(), days),
        "error_budget": crate::budget_view::error_budget(cache),
    })))
}

/// The `days` of `/admin/stats?days=N`: 1 to the days the ledger keeps.
fn stats_days(query: Option<&str>) -> Result<u64, ApiError> {
    let max = crate::observe::ledger::KEEP_DAYS as u64;
    let bad = || {
        ApiError::bad_request(
            format!("days must be a whole number of days from 1 to {max}"),
            Some("days"),
        )
    };
    let pairs = entries::parse_query(query.unwrap_or_default())
        .map_err(|e| ApiError::bad_request(e, None))?;
    match pairs.iter().rev().find(|(k, _)| k == "days") {
        None => Ok(STATS_DAYS),
        Some((_, v)) => match v.parse::<u64>() {
            Ok(n) if (1..=max).contains(&n) => Ok(n),
            _ => Err(bad()),
        },
    }
}

/// The staleness job's settings and today's spending (from its state file, which it
/// writes after every check).
pub fn staleness_status(config: &crate::config::Config, now_ms: u64) -> Value {
    let s = &config.staleness;
    let state =
        crate::staleness::BudgetState::load(&config.data_dir.join(crate::staleness::STATE_FILE));
    let today = now_ms / (24 * 3600 * 1000);
    let (calls, tokens) = if state.day == today {
        (state.calls, state.tokens)
    } else {
        (0, 0)
    };
    json!({
        "enabled": s.enabled,
        "action": s.action,
        "calls_today": calls,
        "tokens_today": tokens,
        "max_calls_per_day": s.max_calls_per_day,
        "max_tokens_per_day": s.max_tokens_per_day,
    })
}

/// Body of `POST /admin/invalidate`: exactly one field.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct InvalidateBody {
    tag: Option<String>,
    model: Option<String>,
    /// As given in `x-deja-namespace` (without the `ns:` the tenant label adds): the
    /// namespace under every credential, and the shared namespace of that name.
    namespace: Option<String>,
    /// A tenant label as stored and listed: `key:<hash>` (per-key tenants), `anonymous`,
    /// `shared`, each optionally narrowed by `/ns:<name>`, or `ns:<name>` (a shared
    /// namespace). A principal selects its namespaces too.
    tenant: Option<String>,
    id: Option<String>,
    older_than_secs: Option<u64>,
    all: Option<bool>,
}

const INVALIDATE_USAGE: &str = "send exactly one of {\"tag\": \"...\"}, {\"model\": \"...\"}, {\"namespace\": \"...\"}, {\"tenant\": \"key:...|anonymous|shared[/ns:...]|ns:...\"}, {\"id\": \"<16 hex digits>\"}, {\"older_than_secs\": N}, {\"all\": true}";

impl InvalidateBody {
    fn selector(self) -> Result<Invalidate, ApiError> {
        let InvalidateBody {
            tag,
            model,
            namespace,
            tenant,
            id,
            older_than_secs,
            all,
        } = self;
        let given = [
            tag.is_some(),
            model.is_some(),
            namespace.is_some(),
            tenant.is_some(),
            id.is_some(),
            older_than_secs.is_some(),
            all.is_some(),
        ];
        if given.iter().filter(|g| **g).count() != 1 {
            return Err(ApiError::bad_request(INVALIDATE_USAGE, None));
        }
        let non_empty = |v: String, field: &str| {
            let v = v.trim().to_string();
            if v.is_empty() {
                Err(ApiError::bad_request(
                    format!("{field} must not be empty"),
                    Some(field),
                ))
            } else {
                Ok(v)
            }
        };
        Ok(if let Some(t) = tag {
            Invalidate::Tag(non_empty(t, "tag")?)
        } else if let Some(m) = model {
            Invalidate::Model(non_empty(m, "model")?)
        } else if let Some(ns) = namespace {
            Invalidate::Namespace(format!("ns:{}", non_empty(ns, "namespace")?))
        } else if let Some(t) = tenant {
            Invalidate::Namespace(parse_tenant(&non_empty(t, "tenant")?)?)
        } else if let Some(id) = id {
            Invalidate::Id(parse_id(&id)?)
        } else if let Some(secs) = older_than_secs {
            Invalidate::OlderThan { secs }
        } else if all == Some(true) {
            Invalidate::All
        } else {
            return Err(ApiError::bad_request(
                "\"all\" must be true (to remove every entry)",
                Some("all"),
            ));
        })
    }
}

/// A tenant label as the server writes it (see [`crate::tenant`]): a principal
/// (`key:<hash>`, `anonymous`, `shared`), optionally narrowed by a namespace
/// (`…/ns:<name>`), or a shared namespace (`ns:<name>`). Anything else would match no
/// entry, so it is refused rather than silently removing nothing.
pub fn parse_tenant(label: &str) -> Result<String, ApiError> {
    let principal_ok = |p: &str| {
        p == "shared"
            || p == "anonymous"
            || p.strip_prefix("key:")
                .is_some_and(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
    };
    let namespace_ok = |n: &str| n.strip_prefix("ns:").is_some_and(|n| !n.is_empty());
    let ok = if label.starts_with("ns:") {
        namespace_ok(label)
    } else {
        match label.split_once('/') {
            Some((p, ns)) => principal_ok(p) && namespace_ok(ns),
            None => principal_ok(label),
        }
    };
    if ok {
        Ok(label.to_string())
    } else {
        Err(ApiError::bad_request(
            format!("tenant {label:?} is not a tenant label; use key:<64 hex digits>, anonymous or shared, each optionally followed by /ns:<namespace>, or ns:<namespace>"),
            Some("tenant"),
        ))
    }
}

fn parse_id(s: &str) -> Result<EntryId, ApiError> {
    parse_hex_id(s, "id")
}

/// An entry id (or a cursor, which is one): 16 hex digits.
fn parse_hex_id(s: &str, param: &str) -> Result<EntryId, ApiError> {
    let s = s.trim();
    (s.len() == 16)
        .then(|| EntryId::parse_hex(s))
        .flatten()
        .ok_or_else(|| {
            ApiError::bad_request(format!("{param} {s:?} is not 16 hex digits"), Some(param))
        })
}

async fn invalidate(State(app): State<AppState>, body: Bytes) -> Result<Json<Value>, ApiError> {
    let body: InvalidateBody = serde_json::from_slice(&body).map_err(|e| {
        ApiError::bad_request(
            format!("invalid invalidation request ({e}); {INVALIDATE_USAGE}"),
            None,
        )
    })?;
    let what = body.selector()?;
    let removed = app
        .cache()
        .invalidate(&what)
        .await
        .map_err(|e| internal("invalidating", &e))?;
    tracing::info!(?what, removed, "invalidated");
    // Nothing shared with other replicas before this may be served after it.
    if let Some(shared) = app.shared_embeddings() {
        if let Err(e) = shared.invalidate().await {
            app.metrics().shared_embeddings_error();
            return Err(ApiError::Unavailable {
                message: format!(
                    "removed {removed} entries here, but the shared embedding items could not \
                     be invalidated ({}); retry",
                    ErrorChain(&e)
                ),
            });
        }
    }
    Ok(Json(json!({ "removed": removed })))
}

/// The filter, cursor and limit of `GET /admin/entries`, from its query string.
fn list_params(
    query: Option<&str>,
) -> Result<(entries::EntryFilter, Option<EntryId>, usize), ApiError> {
    let pairs = entries::parse_query(query.unwrap_or_default())
        .map_err(|e| ApiError::bad_request(format!("invalid query string: {e}"), None))?;
    let mut filter = entries::EntryFilter::default();
    let mut cursor = None;
    let mut limit = entries::DEFAULT_LIMIT;
    let mut seen: Vec<&str> = Vec::new();
    for (name, value) in &pairs {
        if seen.contains(&name.as_str()) {
            return Err(ApiError::bad_request(
                format!("query parameter {name:?} is given more than once"),
                Some(name),
            ));
        }
        seen.push(name);
        let non_empty = || {
            let v = value.trim();
            if v.is_empty() {
                Err(ApiError::bad_request(
                    format!("{name} must not be empty"),
                    Some(name),
                ))
            } else {
                Ok(v.to_string())
            }
        };
        match name.as_str() {
            "q" => filter.text = Some(non_empty()?),
            "tag" => filter.tag = Some(non_empty()?),
            "model" => filter.model = Some(non_empty()?),
            "namespace" => filter.tenant = Some(format!("ns:{}", non_empty()?)),
            "tenant" => filter.tenant = Some(non_empty()?),
            "cursor" => cursor = Some(parse_hex_id(value, "cursor")?),
            "limit" => {
                limit = value
                    .trim()
                    .parse::<usize>()
                    .ok()
                    .filter(|n| (1..=entries::MAX_LIMIT).contains(n))
                    .ok_or_else(|| {
                        ApiError::bad_request(
                            format!(
                                "limit must be a whole number from 1 to {}, got {value:?}",
                                entries::MAX_LIMIT
                            ),
                            Some("limit"),
                        )
                    })?
            }
            other => {
                return Err(ApiError::bad_request(
                    format!(
                        "unknown query parameter {other:?}; use q, tag, model, namespace, tenant, limit, cursor"
                    ),
                    Some(other),
                ))
            }
        }
    }
    if seen.contains(&"namespace") && seen.contains(&"tenant") {
        return Err(ApiError::bad_request(
            "give namespace (as in x-deja-namespace) or tenant (the stored label), not both",
            Some("tenant"),
        ));
    }
    Ok((filter, cursor, limit))
}

async fn list_entries(
    State(app): State<AppState>,
    RawQuery(query): RawQuery,
) -> Result<Json<entries::Page>, ApiError> {
    let (filter, cursor, limit) = list_params(query.as_deref())?;
    let page = entries::list(app.cache().store().as_ref(), &filter, cursor, limit)
        .await
        .map_err(|e| internal("listing entries", &e))?;
    Ok(Json(page))
}

async fn entry(
    State(app): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let id = parse_id(&id)?;
    let Some(e) = app
        .cache()
        .store()
        .get(id)
        .await
        .map_err(|e| internal("reading an entry", &e))?
    else {
        return Err(ApiError::NotFound {
            message: format!("no entry {id}"),
        });
    };
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    let answer = match &e.answer {
        Answer::Body(b) => json!({ "body": text(b) }),
        Answer::Chunks(c) => json!({ "chunks": c.iter().map(|c| text(c)).collect::<Vec<_>>() }),
    };
    Ok(Json(json!({
        "id": e.id.to_string(),
        "prompt": e.prompt,
        "model": e.model,
        "namespace": e.namespace,
        "tags": e.tags,
        "category": e.category,
        "created_at_ms": e.created_at_ms,
        "last_hit_ms": e.last_hit_ms,
        "hit_count": e.hit_count,
        "usage": e.usage,
        "embedder_id": e.embedder_id,
        "answer": answer,
    })))
}

async fn config(State(app): State<AppState>) -> Result<Response, ApiError> {
    let mut v =
        serde_json::to_value(app.config()).map_err(|e| internal("serialising the config", &e))?;
    for path in [
        ["upstream", "api_key"],
        ["admin", "token"],
        ["embedder", "api_key"],
        ["anthropic", "api_key"],
        ["azure", "api_key"],
    ] {
        if let Some(secret) = v
            .get_mut(path[0])
            .and_then(|section| section.get_mut(path[1]))
            .filter(|s| !s.is_null())
        {
            *secret = json!("***");
        }
    }
    // Shared namespaces' tokens are secrets too (their key lists are hashes).
    if let Some(namespaces) = v.get_mut("namespaces").and_then(|n| n.as_object_mut()) {
        for ns in namespaces.values_mut() {
            if let Some(token) = ns.get_mut("token").filter(|t| !t.is_null()) {
                *token = json!("***");
            }
        }
    }
    // A Redis URL may carry a password; the rest of it is worth showing.
    if let Some(url) = v.pointer_mut("/store/url") {
        if let Some(s) = url.as_str() {
            *url = json!(crate::config::redact_url(s));
        }
    }
    Ok(Json(v).into_response())
}

/// Streams every entry as one JSON line. A store failure midway aborts the body, so a
/// client never mistakes a partial export for a complete one.
async fn export(State(app): State<AppState>) -> Response {
    let rx = transfer::export_lines(app.cache().store().clone());
    let lines = tokio_stream::wrappers::ReceiverStream::new(rx).map(|item| {
        item.map(Bytes::from).inspect_err(|e| {
            tracing::error!(error = %ErrorChain(e), "export failed");
        })
    });
    (
        [(header::CONTENT_TYPE, "application/x-ndjson")],
        Body::from_stream(lines),
    )
        .into_response()
}

/// Stores and indexes each line of the body as it arrives (vectors of another embedder
/// stay exact-only, as at start). Lines before a bad one stay imported; the error names
/// the bad line.
async fn import(State(app): State<AppState>, body: Body) -> Result<Json<Value>, ApiError> {
    let cache = app.cache();
    // Each of the cache's embedders (two with `embedder.model = "auto"`) and its dimension.
    let dims = cache
        .indexes()
        .map(|(embedder, _)| (embedder.id().to_string(), embedder.dim()))
        .collect();
    let mut importer = transfer::Importer::new(transfer::ImportTarget::Cache(cache.clone()), dims);
    let mut stream = body.into_data_stream();
    let result = async {
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| {
                ApiError::bad_request(format!("reading the request body failed: {e}"), None)
            })?;
            importer.push(&chunk).await.map_err(import_error)?;
        }
        importer.finish().await.map_err(import_error)
    }
    .await;
    let imported = importer.imported();
    if imported > 0 {
        tracing::info!(imported, "entries imported");
    }
    match result {
        Ok(n) => Ok(Json(json!({ "imported": n }))),
        Err(ApiError::BadRequest { message, param }) => Err(ApiError::BadRequest {
            message: format!("{message} ({imported} entries before it were imported)"),
            param,
        }),
        Err(e) => Err(e),
    }
}

fn import_error(e: transfer::ImportError) -> ApiError {
    match e {
        transfer::ImportError::Line { .. } => ApiError::bad_request(e.to_string(), None),
        transfer::ImportError::Store { .. } | transfer::ImportError::Index { .. } => {
            internal("importing", &e)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY_TENANT_BODY: &str =
        r#"{"tenant": "key:abababababababababababababababababababababababababababababababab"}"#;

    #[test]
    fn invalidate_body_needs_exactly_one_selector() {
        let parse = |s: &str| -> Result<Invalidate, String> {
            let body: InvalidateBody = serde_json::from_str(s).map_err(|e| e.to_string())?;
            body.selector().map_err(|e| format!("{e:?}"))
        };
        let cases: &[(&str, Option<Invalidate>)] = &[
            (
                r#"{"tag": "product:1"}"#,
                Some(Invalidate::Tag("product:1".into())),
            ),
            (
                r#"{"model": "gpt-4o"}"#,
                Some(Invalidate::Model("gpt-4o".into())),
            ),
            (
                r#"{"namespace": "team-1"}"#,
                Some(Invalidate::Namespace("ns:team-1".into())),
            ),
            (
                r#"{"tenant": "shared"}"#,
                Some(Invalidate::Namespace("shared".into())),
            ),
            (
                r#"{"tenant": "ns:team-1"}"#,
                Some(Invalidate::Namespace("ns:team-1".into())),
            ),
            (
                KEY_TENANT_BODY,
                Some(Invalidate::Namespace(format!("key:{}", "ab".repeat(32)))),
            ),
            (
                r#"{"tenant": "anonymous/ns:team-1"}"#,
                Some(Invalidate::Namespace("anonymous/ns:team-1".into())),
            ),
            (r#"{"tenant": "anonymous/team-1"}"#, None),
            (r#"{"tenant": "bogus/ns:team-1"}"#, None),
            (r#"{"tenant": "team-1"}"#, None),
            (r#"{"tenant": "key:abc"}"#, None),
            (r#"{"tenant": "ns:"}"#, None),
            (r#"{"tenant": "shared", "namespace": "x"}"#, None),
            (
                r#"{"id": "00000000000000ff"}"#,
                Some(Invalidate::Id(EntryId(255))),
            ),
            (
                r#"{"older_than_secs": 60}"#,
                Some(Invalidate::OlderThan { secs: 60 }),
            ),
            (r#"{"all": true}"#, Some(Invalidate::All)),
            (r#"{"all": false}"#, None),
            (r#"{}"#, None),
            (r#"{"tag": "a", "model": "b"}"#, None),
            (r#"{"tag": " "}"#, None),
            (r#"{"id": "ff"}"#, None),
            (r#"{"id": "zzzzzzzzzzzzzzzz"}"#, None),
            (r#"{"colour": "red"}"#, None),
            (r#"{"older_than_secs": -1}"#, None),
        ];
        for (body, want) in cases {
            assert_eq!(parse(body).ok(), *want, "{body}");
        }
    }
}
