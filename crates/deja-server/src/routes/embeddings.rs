//! `POST /v1/embeddings`: the embedding cache. One entry per input item (and model,
//! `dimensions`, tenant), stored as compact little-endian float32; only the misses go
//! upstream, in one batched call, each distinct item once; the response keeps the
//! request's order and `encoding_format`. Each stored item carries the request's tenant
//! label and `x-deja-tags`, so invalidation by namespace, tenant or tag reaches it.
//!
//! Azure OpenAI's embeddings routes ([`super::azure`]) are answered here too, through
//! [`answer`] with their [`Via`].

use std::collections::HashMap;
use std::time::Instant;

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use deja_core::{Answer, ExactKey, NewEntry, SemanticMode, Usage};
use deja_openai::embeddings::{self as wire, EncodingFormat};

use crate::controls::Controls;
use crate::error::ApiError;
use crate::observe::summary::Endpoint;
use crate::routes::record::RequestRecord;
use crate::routes::via::Via;
use crate::routes::{read_body, wire_error, CacheHeader};
use crate::shared_embeddings::SharedItem;
use crate::state::AppState;
use crate::upstream::{map_send_error, response_headers};

pub async fn embeddings(
    State(app): State<AppState>,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    answer(&app, Via::OpenAi, &uri, &headers, body).await
}

/// Answers an embeddings request that came in through `api` at `uri` (its path and query
/// string are forwarded as they came).
pub async fn answer(
    app: &AppState,
    api: Via<'_>,
    uri: &Uri,
    headers: &HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let upstream = api.upstream(app)?;
    let bytes = read_body(body, app.config().limits.max_body_bytes).await?;
    // Counts the request, with its duration, when this function returns.
    let mut record = RequestRecord::new(app, Endpoint::Embeddings);
    let req = match api.path_model() {
        None => wire::parse_embeddings(&bytes),
        Some(_) => wire::parse_embeddings_without_model(&bytes),
    }
    .map_err(wire_error)?;
    // What the entries are stored and counted under, and what the answer names.
    let model = api.path_model().unwrap_or(&req.model).to_string();
    let answer_model = if req.model.is_empty() {
        &model
    } else {
        &req.model
    };
    let controls = Controls::from_headers(headers)?;
    let tenant = app.tenancy().tenant(headers, uri.query())?;
    let scope = api.key_scope(&tenant, uri.query());
    let tags = crate::tags::tags_from_headers(headers)?;
    let partition = wire::partition_key(&req, &scope);
    let items = wire::items(&req);
    let prompts: Vec<String> = items.iter().map(wire::item_prompt).collect();
    // Each item's key, for this replica's store and for the shared tier.
    let keys: Vec<ExactKey> = prompts
        .iter()
        .map(|p| ExactKey::new(&partition, p))
        .collect();

    record.summary.model = Some(model.clone());
    record.normalised();
    let mut avoided = Usage::default();
    let mut vectors: Vec<Option<Vec<f32>>> = vec![None; items.len()];
    let mut store_ok = true;
    if !controls.skip_lookup {
        let started = Instant::now();
        for (slot, key) in vectors.iter_mut().zip(&keys) {
            match app.cache().store().get_exact(key).await {
                Ok(Some(entry)) => {
                    if let Answer::Body(b) = &entry.answer {
                        *slot = wire::le_bytes_to_f32s(b);
                        if slot.is_some() {
                            avoided.prompt_tokens += entry.usage.prompt_tokens;
                        }
                    }
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(error = %deja_core::ErrorChain(&e), "embedding cache read failed; bypassing");
                    store_ok = false;
                    break;
                }
            }
        }
        record.summary.stages.store = started.elapsed();
    }
    // What this replica's store lacks, from the tier shared with the other replicas.
    if let Some(shared) = app
        .shared_embeddings()
        .filter(|_| store_ok && !controls.skip_lookup)
    {
        let lacking: Vec<usize> = (0..vectors.len())
            .filter(|&i| vectors[i].is_none())
            .collect();
        if !lacking.is_empty() {
            let lacking_keys: Vec<ExactKey> = lacking.iter().map(|&i| keys[i]).collect();
            let started = Instant::now();
            match shared.get(&lacking_keys).await {
                Ok(found) => {
                    let mut n = 0;
                    for (&i, item) in lacking.iter().zip(found) {
                        if let Some(item) = item {
                            avoided.prompt_tokens += item.prompt_tokens;
                            vectors[i] = Some(item.vector);
                            n += 1;
                        }
                    }
                    app.metrics().shared_embeddings(n, lacking.len() as u64 - n);
                }
                Err(e) => {
                    app.metrics().shared_embeddings_error();
                    tracing::warn!(error = %deja_core::ErrorChain(&e), "shared embedding tier unavailable; asking upstream");
                }
            }
            record.summary.stages.store += started.elapsed();
        }
    }
    // Distinct missing items, each sent upstream once.
    let mut missing: Vec<usize> = Vec::new();
    let mut first_of: HashMap<&str, usize> = HashMap::new();
    for (i, v) in vectors.iter().enumerate() {
        if v.is_none() && !first_of.contains_key(prompts[i].as_str()) {
            first_of.insert(prompts[i].as_str(), missing.len());
            missing.push(i);
        }
    }
    let hits = vectors.iter().filter(|v| v.is_some()).count() as u64;
    let misses = items.len() as u64 - hits;
    app.cache().count(|c| {
        c.embedding_hits += hits;
        c.embedding_misses += misses;
    });
    app.metrics().embedding_items(hits, misses);
    record.summary.saved = avoided;

    let mut usage = wire::UpstreamUsage::default();
    let outcome = if !store_ok || controls.skip_lookup {
        CacheHeader::Bypass(if store_ok { "no-cache" } else { "store-error" })
    } else if missing.is_empty() {
        CacheHeader::HitExact
    } else {
        CacheHeader::Miss
    };
    record.set(&outcome);
    if !missing.is_empty() {
        let missing_items: Vec<_> = missing.iter().map(|&i| items[i].clone()).collect();
        let upstream_body = wire::build_upstream_request(&req, &missing_items);
        app.cache().count(|c| c.upstream_calls += 1);
        let started = Instant::now();
        let sent = upstream
            .send(
                Method::POST,
                &crate::tenant::upstream_path(uri.path(), uri.query()),
                headers,
                upstream_body.into(),
                true,
            )
            .await;
        let elapsed = started.elapsed();
        app.metrics().upstream_call(Endpoint::Embeddings, elapsed);
        record.summary.upstream = Some(elapsed);
        let resp = sent?;
        let status = resp.status();
        let resp_headers = response_headers(resp.headers());
        let body = resp.bytes().await.map_err(map_send_error)?;
        if !status.is_success() {
            let mut resp_headers = resp_headers;
            outcome.write(&mut resp_headers);
            return Ok((status, resp_headers, body).into_response());
        }
        let (fresh, up_usage) =
            wire::parse_upstream_response(&body, missing.len()).map_err(|e| {
                ApiError::UpstreamUnavailable {
                    detail: format!("upstream embeddings response unusable: {}", e.message),
                }
            })?;
        usage = up_usage;
        let per_item_tokens = up_usage.prompt_tokens / missing.len().max(1) as u64;
        let store = store_ok && !controls.skip_store;
        if let Some(shared) = app.shared_embeddings().filter(|_| store) {
            let items: Vec<(ExactKey, SharedItem)> = missing
                .iter()
                .enumerate()
                .map(|(j, &i)| {
                    let item = SharedItem {
                        vector: fresh[j].clone(),
                        prompt_tokens: per_item_tokens,
                    };
                    (keys[i], item)
                })
                .collect();
            if let Err(e) = shared.put(&items).await {
                app.metrics().shared_embeddings_error();
                tracing::warn!(error = %deja_core::ErrorChain(&e), "sharing embeddings failed");
            }
        }
        for (j, &i) in missing.iter().enumerate() {
            if store {
                let new = NewEntry {
                    partition,
                    prompt: prompts[i].clone(),
                    model: model.clone(),
                    answer: Answer::Body(wire::f32s_to_le_bytes(&fresh[j])),
                    usage: Usage {
                        prompt_tokens: per_item_tokens,
                        completion_tokens: 0,
                    },
                    semantic: SemanticMode::ExactOnly,
                    vector: None,
                    category: None,
                };
                let labels = deja_core::EntryLabels {
                    namespace: Some(tenant.clone()),
                    tags: tags.clone(),
                };
                if let Err(e) = app.cache().insert_labelled(new, labels).await {
                    app.metrics()
                        .not_stored(deja_core::BypassReason::StoreError.as_str());
                    tracing::warn!(error = %deja_core::ErrorChain(&e), "storing an embedding failed");
                }
            }
            vectors[i] = Some(fresh[j].clone());
        }
        // Repeated items in the same request take the vector of their first occurrence.
        for i in 0..vectors.len() {
            if vectors[i].is_none() {
                if let Some(&j) = first_of.get(prompts[i].as_str()) {
                    vectors[i] = Some(fresh[j].clone());
                }
            }
        }
    }
    let vectors: Vec<Vec<f32>> = vectors.into_iter().map(Option::unwrap_or_default).collect();
    let format = req.encoding_format.unwrap_or(EncodingFormat::Float);
    let body = wire::build_response(answer_model, &vectors, format, usage);
    let mut headers = HeaderMap::new();
    outcome.write(&mut headers);
    if let Ok(v) = HeaderValue::from_str(&format!("{hits}/{}", items.len())) {
        headers.insert("x-deja-embedding-hits", v);
    }
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Ok((StatusCode::OK, headers, body).into_response())
}
