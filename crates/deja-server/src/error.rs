//! The one error type handlers return. It renders OpenAI's error shape
//! `{"error":{"message","type","param","code"}}` through one exhaustive match, or, wrapped
//! in [`AnthropicError`] by the `/v1/messages` route, Anthropic's
//! `{"type":"error","error":{"type","message"}}`; internal details go to the log, never to
//! the client.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

#[derive(Debug)]
pub enum ApiError {
    /// The request is malformed (JSON, types, UTF-8, headers).
    BadRequest {
        message: String,
        param: Option<String>,
    },
    /// An admin request without the configured bearer token.
    Unauthorized,
    /// No such route or resource (e.g. the admin API while it is off, an unknown entry).
    NotFound { message: String },
    /// The request conflicts with what was done before (a second verdict on one row).
    Conflict { message: String },
    /// A route whose upstream is not configured (Azure OpenAI's without `azure.base_url`):
    /// nothing is sent anywhere, and the message says what to configure.
    NotConfigured { message: String },
    /// The route exists, but not for this method (the `Allow` header lists those it has).
    MethodNotAllowed,
    /// The body exceeds `limits.max_body_bytes`.
    TooLarge { limit: usize },
    /// The client stopped sending the request body for `limits.body_read_timeout_secs`.
    BodyTimeout { secs: u64 },
    /// The upstream could not be reached or broke off before answering.
    UpstreamUnavailable { detail: String },
    /// The upstream took longer than `upstream.timeout_secs`.
    UpstreamTimeout,
    /// Something in deja itself failed where no bypass is possible.
    Internal { detail: String },
    /// An admin operation only partly done because a backend it needs is away; the
    /// message (shown to the admin) says what was done and that it can be retried.
    Unavailable { message: String },
}

impl ApiError {
    pub fn bad_request(message: impl Into<String>, param: Option<&str>) -> Self {
        ApiError::BadRequest {
            message: message.into(),
            param: param.map(str::to_string),
        }
    }
}

/// What a client is told: status, message, OpenAI error type, param and code.
type ErrorParts = (
    StatusCode,
    String,
    &'static str,
    Option<String>,
    Option<&'static str>,
);

impl ApiError {
    fn parts(self) -> ErrorParts {
        match self {
            ApiError::BadRequest { message, param } => (
                StatusCode::BAD_REQUEST,
                message,
                "invalid_request_error",
                param,
                None,
            ),
            ApiError::Unauthorized => (
                StatusCode::UNAUTHORIZED,
                "missing or invalid admin token; send `Authorization: Bearer <admin.token>`"
                    .to_string(),
                "invalid_request_error",
                None,
                Some("invalid_api_key"),
            ),
            ApiError::NotFound { message } => (
                StatusCode::NOT_FOUND,
                message,
                "invalid_request_error",
                None,
                Some("not_found"),
            ),
            ApiError::Conflict { message } => (
                StatusCode::CONFLICT,
                message,
                "invalid_request_error",
                None,
                Some("conflict"),
            ),
            // A 404, as for a path deja does not serve: SDKs do not retry it.
            ApiError::NotConfigured { message } => (
                StatusCode::NOT_FOUND,
                message,
                "invalid_request_error",
                None,
                Some("not_configured"),
            ),
            ApiError::MethodNotAllowed => (
                StatusCode::METHOD_NOT_ALLOWED,
                "this method is not allowed on this path; the Allow header lists those that are"
                    .to_string(),
                "invalid_request_error",
                None,
                Some("method_not_allowed"),
            ),
            ApiError::BodyTimeout { secs } => (
                StatusCode::REQUEST_TIMEOUT,
                format!("the request body stalled: nothing received for {secs} s"),
                "invalid_request_error",
                None,
                Some("request_timeout"),
            ),
            ApiError::TooLarge { limit } => (
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("request body is larger than the limit of {limit} bytes"),
                "invalid_request_error",
                None,
                Some("request_too_large"),
            ),
            ApiError::UpstreamUnavailable { detail } => {
                tracing::warn!(%detail, "upstream unavailable");
                (
                    StatusCode::BAD_GATEWAY,
                    "the upstream API could not be reached".to_string(),
                    "upstream_error",
                    None,
                    Some("upstream_unavailable"),
                )
            }
            ApiError::UpstreamTimeout => (
                StatusCode::GATEWAY_TIMEOUT,
                "the upstream API did not answer in time".to_string(),
                "upstream_error",
                None,
                Some("upstream_timeout"),
            ),
            ApiError::Unavailable { message } => {
                tracing::warn!(%message, "admin operation incomplete");
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    message,
                    "server_error",
                    None,
                    Some("backend_unavailable"),
                )
            }
            ApiError::Internal { detail } => {
                tracing::error!(%detail, "internal error");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal error in the deja proxy".to_string(),
                    "server_error",
                    None,
                    None,
                )
            }
        }
    }
}

fn json_error(status: StatusCode, body: Vec<u8>) -> Response {
    let mut resp = (status, body).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, message, kind, param, code) = self.parts();
        let body = deja_openai::error::error_body(&message, kind, param.as_deref(), code);
        json_error(status, body)
    }
}

/// An [`ApiError`] answered in Anthropic's shape (same status and message; the error type
/// is Anthropic's for the status, e.g. `invalid_request_error`, `api_error`), for clients of
/// `/v1/messages`. Handlers return it and `?` converts their `ApiError`s.
#[derive(Debug)]
pub struct AnthropicError(pub ApiError);

impl From<ApiError> for AnthropicError {
    fn from(e: ApiError) -> Self {
        AnthropicError(e)
    }
}

impl IntoResponse for AnthropicError {
    fn into_response(self) -> Response {
        let (status, message, ..) = self.0.parts();
        let kind = deja_openai::anthropic::error_kind(status.as_u16());
        json_error(status, deja_openai::anthropic::error_body(kind, &message))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    async fn body_of(resp: Response) -> (StatusCode, String) {
        let status = resp.status();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        (status, String::from_utf8_lossy(&bytes).into_owned())
    }

    #[tokio::test]
    async fn the_same_error_in_both_shapes() {
        let (status, openai) =
            body_of(ApiError::bad_request("bad", Some("x")).into_response()).await;
        assert_eq!(status, 400);
        assert_eq!(
            openai,
            r#"{"error":{"message":"bad","type":"invalid_request_error","param":"x","code":null}}"#
        );
        let cases = [
            (
                ApiError::bad_request("bad", Some("x")),
                400,
                r#"{"type":"error","error":{"type":"invalid_request_error","message":"bad"}}"#,
            ),
            (
                ApiError::TooLarge { limit: 10 },
                413,
                r#"{"type":"error","error":{"type":"request_too_large","message":"request body is larger than the limit of 10 bytes"}}"#,
            ),
            (
                ApiError::UpstreamTimeout,
                504,
                r#"{"type":"error","error":{"type":"api_error","message":"the upstream API did not answer in time"}}"#,
            ),
            (
                ApiError::UpstreamUnavailable {
                    detail: "connection refused".into(),
                },
                502,
                r#"{"type":"error","error":{"type":"api_error","message":"the upstream API could not be reached"}}"#,
            ),
        ];
        for (error, want_status, want_body) in cases {
            let resp = AnthropicError::from(error).into_response();
            assert_eq!(resp.headers()[header::CONTENT_TYPE], "application/json");
            let (status, body) = body_of(resp).await;
            assert_eq!(status.as_u16(), want_status);
            assert_eq!(body, want_body);
        }
    }
}
