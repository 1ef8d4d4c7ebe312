//! Request errors in OpenAI's shape. A [`WireError`] is what parsing and conversion return;
//! [`error_body`] renders any error as `{"error":{"message","type","param","code"}}`, the
//! body OpenAI clients know how to read.

use serde::Serialize;

/// A request or answer that does not have the shape the OpenAI API defines. `param` names
/// the offending field when known (`temperature`, `messages[1].content`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct WireError {
    pub message: String,
    pub param: Option<String>,
    pub code: Option<String>,
}

impl WireError {
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            param: None,
            code: None,
        }
    }

    pub fn with_param(message: impl Into<String>, param: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            param: Some(param.into()),
            code: None,
        }
    }

    /// This error as an `invalid_request_error` body.
    pub fn to_body(&self) -> Vec<u8> {
        error_body(
            &self.message,
            "invalid_request_error",
            self.param.as_deref(),
            self.code.as_deref(),
        )
    }
}

/// Field order is fixed by the struct, not by `serde_json`'s map type, so the body is the
/// same whichever map features other crates enable.
#[derive(Serialize)]
struct ErrorBody<'a> {
    error: ErrorFields<'a>,
}

#[derive(Serialize)]
struct ErrorFields<'a> {
    message: &'a str,
    #[serde(rename = "type")]
    kind: &'a str,
    param: Option<&'a str>,
    code: Option<&'a str>,
}

/// `{"error":{"message":..,"type":..,"param":..,"code":..}}`, with `null` for absent
/// `param` and `code`.
pub fn error_body(message: &str, kind: &str, param: Option<&str>, code: Option<&str>) -> Vec<u8> {
    let body = ErrorBody {
        error: ErrorFields {
            message,
            kind,
            param,
            code,
        },
    };
    // Serialising string fields cannot fail. (Not `json::to_vec`: the JSON module reports
    // its errors through this one, and this one knows nothing of it.)
    serde_json::to_vec(&body).unwrap_or_default()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn error_body_snapshots() {
        type Case<'a> = (&'a str, &'a str, Option<&'a str>, Option<&'a str>, &'a str);
        let cases: [Case; 3] = [
            (
                "bad",
                "invalid_request_error",
                None,
                None,
                r#"{"error":{"message":"bad","type":"invalid_request_error","param":null,"code":null}}"#,
            ),
            (
                "temperature must be a number",
                "invalid_request_error",
                Some("temperature"),
                Some("invalid_type"),
                r#"{"error":{"message":"temperature must be a number","type":"invalid_request_error","param":"temperature","code":"invalid_type"}}"#,
            ),
            (
                "say \"hi\"",
                "server_error",
                None,
                None,
                r#"{"error":{"message":"say \"hi\"","type":"server_error","param":null,"code":null}}"#,
            ),
        ];
        for (message, kind, param, code, want) in cases {
            let got = error_body(message, kind, param, code);
            assert_eq!(String::from_utf8_lossy(&got), want);
        }
    }

    #[test]
    fn wire_error_display_and_body() {
        let e = WireError::with_param("bad temperature", "temperature");
        assert_eq!(e.to_string(), "bad temperature");
        assert_eq!(
            String::from_utf8_lossy(&e.to_body()),
            r#"{"error":{"message":"bad temperature","type":"invalid_request_error","param":"temperature","code":null}}"#
        );
    }
}
