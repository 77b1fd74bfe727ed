//! Building admin responses and reading admin request bodies (both bounded).

use std::time::Duration;

use bytes::Bytes;
use http::header::{CACHE_CONTROL, CONTENT_TYPE, HeaderValue, X_CONTENT_TYPE_OPTIONS};
use http::{HeaderMap, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;

use crate::body::{ReadError, read_limited};

/// Every admin response.
pub(crate) type Reply = Response<Full<Bytes>>;

/// Largest admin request body: a decision reason or a login form needs far less.
pub(crate) const MAX_BODY_BYTES: u64 = 64 * 1024;

/// Longest a client may take to send a request body.
const BODY_DEADLINE: Duration = Duration::from_secs(10);

/// Longest decision reason, in characters.
pub(crate) const MAX_REASON_CHARS: usize = 1000;

/// A response with `body` of `content_type`, never cached, never sniffed.
pub(crate) fn with_body(status: StatusCode, content_type: &'static str, body: Bytes) -> Reply {
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    response
}

/// A JSON response.
pub(crate) fn json(status: StatusCode, value: &impl serde::Serialize) -> Reply {
    match serde_json::to_vec(value) {
        Ok(body) => with_body(status, "application/json", Bytes::from(body)),
        // Serialising our own types cannot fail; answer something well-formed anyway.
        Err(_) => with_body(
            StatusCode::INTERNAL_SERVER_ERROR,
            "application/json",
            Bytes::from_static(
                br#"{"error":{"message":"response could not be encoded","type":"internal","code":"internal"}}"#,
            ),
        ),
    }
}

/// Why a request body could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BodyError {
    /// More than [`MAX_BODY_BYTES`].
    TooLarge,
    /// Not sent in time.
    Timeout,
    /// The connection failed.
    Broken,
}

/// Reads a request body of at most [`MAX_BODY_BYTES`].
pub(crate) async fn read_body(body: Incoming) -> Result<Bytes, BodyError> {
    read_limited(body, MAX_BODY_BYTES, BODY_DEADLINE, None)
        .await
        .map_err(|error| match error {
            ReadError::TooLarge => BodyError::TooLarge,
            ReadError::Timeout => BodyError::Timeout,
            ReadError::Broken => BodyError::Broken,
        })
}

/// Whether the request's content type is `expected` (parameters such as `charset` allowed).
pub(crate) fn has_content_type(headers: &HeaderMap, expected: &str) -> bool {
    headers
        .get(CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split(';').next())
        .is_some_and(|essence| essence.trim().eq_ignore_ascii_case(expected))
}

/// A decision's reason, trimmed; `None` when blank.
pub(crate) fn clean_reason(reason: Option<&str>) -> Result<Option<String>, ReasonError> {
    let Some(reason) = reason.map(str::trim).filter(|r| !r.is_empty()) else {
        return Ok(None);
    };
    if reason.chars().count() > MAX_REASON_CHARS {
        return Err(ReasonError::TooLong);
    }
    Ok(Some(reason.to_owned()))
}

/// A reason that cannot be recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ReasonError {
    /// Longer than [`MAX_REASON_CHARS`].
    TooLong,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_types_match_on_their_essence() {
        let mut headers = HeaderMap::new();
        assert!(!has_content_type(&headers, "application/json"));
        headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("Application/JSON; charset=utf-8"),
        );
        assert!(has_content_type(&headers, "application/json"));
        assert!(!has_content_type(
            &headers,
            "application/x-www-form-urlencoded"
        ));
    }

    #[test]
    fn reasons_are_trimmed_and_bounded() {
        assert_eq!(clean_reason(None), Ok(None));
        assert_eq!(clean_reason(Some("  \n")), Ok(None));
        assert_eq!(clean_reason(Some(" ok ")), Ok(Some("ok".into())));
        assert_eq!(
            clean_reason(Some(&"é".repeat(1000))).map(|r| r.map(|r| r.len())),
            Ok(Some(2000))
        );
        assert_eq!(
            clean_reason(Some(&"x".repeat(1001))),
            Err(ReasonError::TooLong)
        );
    }
}
