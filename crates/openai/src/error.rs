use std::borrow::Cow;

use serde::Serialize;

/// The `type` of an OpenAI-shaped error, as the official SDKs read it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The request is wrong (400, 404, 413).
    InvalidRequest,
    /// Too many requests or tokens (429).
    RateLimit,
    /// Credentials missing or wrong (401).
    Authentication,
    /// The upstream failed or timed out (502, 504).
    Upstream,
    /// The gateway itself failed (500, 503).
    Server,
    /// A policy refused the request or the answer (400).
    PolicyViolation,
}

impl ErrorKind {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidRequest => "invalid_request_error",
            Self::RateLimit => "rate_limit_error",
            Self::Authentication => "authentication_error",
            Self::Upstream => "upstream_error",
            Self::Server => "server_error",
            Self::PolicyViolation => "policy_violation",
        }
    }
}

/// An error in the shape every OpenAI client understands:
/// `{"error": {"message", "type", "code", "param"}}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// Human-readable, safe to show to the caller.
    pub message: String,
    /// The error class.
    pub kind: ErrorKind,
    /// Stable machine-readable code, e.g. `model_not_found`; a policy names its own.
    pub code: Option<Cow<'static, str>>,
    /// The request parameter at fault, e.g. `messages[0].role`.
    pub param: Option<String>,
}

#[derive(Serialize)]
struct Envelope<'a> {
    error: Body<'a>,
}

#[derive(Serialize)]
struct Body<'a> {
    message: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    code: Option<&'a str>,
    param: Option<&'a str>,
}

impl ApiError {
    /// An error without a parameter.
    pub fn new(kind: ErrorKind, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            kind,
            code: Some(Cow::Borrowed(code)),
            param: None,
        }
    }

    /// The JSON document, as a response body.
    pub fn to_json(&self) -> Vec<u8> {
        let envelope = Envelope {
            error: Body {
                message: &self.message,
                kind: self.kind.as_str(),
                code: self.code.as_deref(),
                param: self.param.as_deref(),
            },
        };
        // Serialising these plain string fields cannot fail; an empty object is the fallback
        // that keeps this function infallible.
        serde_json::to_vec(&envelope).unwrap_or_else(|_| b"{}".to_vec())
    }

    /// The error as one SSE event (`data: {...}\n\n`), which the official SDKs raise as an
    /// `APIError` when it arrives mid-stream.
    pub fn to_sse_event(&self) -> Vec<u8> {
        let json = self.to_json();
        let mut event = Vec::with_capacity(json.len() + 8);
        event.extend_from_slice(b"data: ");
        event.extend_from_slice(&json);
        event.extend_from_slice(b"\n\n");
        event
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_shape_matches_openai() {
        let mut error = ApiError::new(ErrorKind::InvalidRequest, "invalid_type", "bad \"x\"");
        error.param = Some("messages[0].role".into());
        let value: serde_json::Value = serde_json::from_slice(&error.to_json()).unwrap();
        assert_eq!(
            value,
            serde_json::json!({"error": {"message": "bad \"x\"", "type": "invalid_request_error",
                "code": "invalid_type", "param": "messages[0].role"}})
        );
        let event = error.to_sse_event();
        assert!(event.starts_with(b"data: {\"error\":"));
        assert!(event.ends_with(b"}\n\n"));
    }
}
