//! Azure OpenAI's routes, as its SDKs call them (`AzureOpenAI(azure_endpoint=http://deja…)`),
//! to the `[azure]` upstream:
//!
//! - `POST /openai/deployments/{deployment}/chat/completions` and `.../embeddings`: the
//!   deployment names the model (the body may leave `model` out);
//! - `POST /openai/v1/chat/completions`, `/openai/v1/embeddings` and `/openai/v1/responses`
//!   (the Responses API, [`super::responses::answer`]): Azure's v1 API, the body's `model`
//!   naming the deployment;
//! - any other path under `/openai/`: passed through ([`super::passthrough`], under the API
//!   base `/openai`).
//!
//! The cached routes are OpenAI's chat, embeddings and Responses routes ([`super::chat::answer`],
//! [`super::embeddings::answer`]) with their [`Via`]: the same engine, controls, tags,
//! categories and never-cache rules; the query string (`api-version`) is keyed and
//! forwarded as it came, and the API and deployment are keyed, so Azure and OpenAI entries,
//! and two deployments' entries, never answer one another. The tenant is the hash of the
//! client's `api-key` or bearer token ([`crate::tenant`]); `azure.api_key`, when set,
//! replaces both on the way upstream.
//!
//! Without `azure.base_url` every route here answers a 404 saying what to configure, and
//! nothing is sent anywhere ([`super::via::azure_not_configured`]).

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Uri};
use axum::response::Response;

use crate::error::ApiError;
use crate::routes::passthrough::{forward, percent_decode};
use crate::routes::via::{azure_not_configured, Via};
use crate::routes::{chat, embeddings, responses};
use crate::state::AppState;

/// The API base every path forwarded to Azure stays under.
const BASE: &str = "/openai";

/// `POST /openai/deployments/{deployment}/chat/completions`.
pub async fn deployment_chat(
    State(app): State<AppState>,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let deployment = deployment(uri.path())?;
    let api = Via::AzureDeployment(&deployment);
    chat::answer(&app, api, &uri, &headers, body).await
}

/// `POST /openai/deployments/{deployment}/embeddings`.
pub async fn deployment_embeddings(
    State(app): State<AppState>,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let deployment = deployment(uri.path())?;
    let api = Via::AzureDeployment(&deployment);
    embeddings::answer(&app, api, &uri, &headers, body).await
}

/// `POST /openai/v1/chat/completions`.
pub async fn v1_chat(
    State(app): State<AppState>,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    chat::answer(&app, Via::AzureV1, &uri, &headers, body).await
}

/// `POST /openai/v1/embeddings`.
pub async fn v1_embeddings(
    State(app): State<AppState>,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    embeddings::answer(&app, Via::AzureV1, &uri, &headers, body).await
}

/// `POST /openai/v1/responses`: the Responses API through Azure's v1 API.
pub async fn v1_responses(
    State(app): State<AppState>,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    responses::answer(&app, Via::AzureV1, &uri, &headers, body).await
}

/// Any other path under `/openai/`: forwarded to Azure unchanged, body streamed both ways.
pub async fn passthrough(State(app): State<AppState>, req: Request) -> Result<Response, ApiError> {
    let upstream = app.azure().ok_or_else(azure_not_configured)?;
    forward(&app, upstream, BASE, req).await
}

/// The deployment a `/openai/deployments/{deployment}/...` path names, percent-decoded
/// once. It is keyed, counted and forwarded as the path's own segment, so one that would
/// move the forwarded path (`.`, `..`, a `/` or `\` once decoded) is refused, and so is one
/// that is not text or holds control characters (a NUL would make the key ambiguous).
fn deployment(path: &str) -> Result<String, ApiError> {
    let raw = path
        .strip_prefix("/openai/deployments/")
        .and_then(|rest| rest.split('/').next())
        .unwrap_or_default();
    let refused = || {
        ApiError::bad_request(
            format!("{raw:?} is not a deployment name (the path is /openai/deployments/{{deployment}}/...)"),
            None,
        )
    };
    let name = String::from_utf8(percent_decode(raw.as_bytes())).map_err(|_| refused())?;
    if matches!(name.as_str(), "" | "." | "..")
        || name.contains(['/', '\\'])
        || name.chars().any(char::is_control)
    {
        return Err(refused());
    }
    Ok(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deployment_names_are_decoded_and_never_move_the_path() {
        // (path, the deployment; None: refused)
        let cases: &[(&str, Option<&str>)] = &[
            (
                "/openai/deployments/gpt-4o/chat/completions",
                Some("gpt-4o"),
            ),
            (
                "/openai/deployments/my.model_2/embeddings",
                Some("my.model_2"),
            ),
            (
                "/openai/deployments/gpt%2D4o/chat/completions",
                Some("gpt-4o"),
            ),
            ("/openai/deployments/caf%C3%A9/embeddings", Some("café")),
            ("/openai/deployments//chat/completions", None),
            ("/openai/deployments/../chat/completions", None),
            ("/openai/deployments/%2e%2E/chat/completions", None),
            ("/openai/deployments/.%2e/chat/completions", None),
            ("/openai/deployments/a%2fb/chat/completions", None),
            ("/openai/deployments/a%5cb/chat/completions", None),
            ("/openai/deployments/a%00b/chat/completions", None),
            ("/openai/deployments/%ff/chat/completions", None),
        ];
        for (path, want) in cases {
            match (deployment(path), want) {
                (Ok(got), Some(want)) => assert_eq!(got, *want, "{path}"),
                (Err(ApiError::BadRequest { .. }), None) => {}
                (got, want) => panic!("{path}: got {got:?}, want {want:?}"),
            }
        }
    }
}
