//! The one error type handlers return. It renders OpenAI's error shape
//! `{"error":{"message","type","param","code"}}` through one exhaustive match; internal
//! details go to the log, never to the client.

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
    /// The body exceeds `limits.max_body_bytes`.
    TooLarge { limit: usize },
    /// The upstream could not be reached or broke off before answering.
    UpstreamUnavailable { detail: String },
    /// The upstream took longer than `upstream.timeout_secs`.
    UpstreamTimeout,
    /// Something in deja itself failed where no bypass is possible.
    Internal { detail: String },
}

impl ApiError {
    pub fn bad_request(message: impl Into<String>, param: Option<&str>) -> Self {
        ApiError::BadRequest {
            message: message.into(),
            param: param.map(str::to_string),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, message, kind, param, code) = match self {
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
        };
        let body = deja_openai::error::error_body(&message, kind, param.as_deref(), code);
        let mut resp = (status, body).into_response();
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        resp
    }
}
