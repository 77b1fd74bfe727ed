//! Pieces of the OpenAI wire format shared by every route: constants, usage, errors, SSE.

use std::collections::VecDeque;

use bytes::Bytes;
use http::header::{CONTENT_TYPE, HeaderValue};
use http::{Response, StatusCode};
use serde::{Deserialize, Serialize};

use crate::body::MockBody;
use crate::error::{Error, Result};

/// `created` of every object: fixed so golden files stay stable.
pub(crate) const CREATED: u64 = 1_700_000_000;
/// `system_fingerprint` of every completion.
pub(crate) const SYSTEM_FINGERPRINT: &str = "fp_portcullis_mock";
/// The last SSE event of every stream.
pub(crate) const DONE_EVENT: &[u8] = b"data: [DONE]\n\n";

pub(crate) const JSON: HeaderValue = HeaderValue::from_static("application/json");
pub(crate) const EVENT_STREAM: HeaderValue = HeaderValue::from_static("text/event-stream");
pub(crate) const HTML: HeaderValue = HeaderValue::from_static("text/html; charset=utf-8");

/// Serializes as JSON `null`, for fields OpenAI always sends as `null` here.
#[derive(Debug, Clone, Copy, Serialize)]
pub(crate) struct Null;

/// A field OpenAI does not send: gateways must pass unknown fields through untouched.
#[derive(Debug, Clone, Copy, Serialize)]
pub(crate) struct MockExtra {
    note: &'static str,
}

/// The value of `x_mock_extra` on every completion object and chunk.
pub(crate) const MOCK_EXTRA: MockExtra = MockExtra {
    note: "unknown fields must pass through",
};

/// `usage` of a completion.
#[derive(Debug, Clone, Copy, Serialize)]
pub(crate) struct Usage {
    pub(crate) prompt_tokens: u64,
    pub(crate) completion_tokens: u64,
    pub(crate) total_tokens: u64,
}

impl Usage {
    pub(crate) fn new(prompt_tokens: usize, completion_tokens: usize) -> Self {
        let prompt_tokens = prompt_tokens as u64;
        let completion_tokens = completion_tokens as u64;
        Usage {
            prompt_tokens,
            completion_tokens,
            total_tokens: prompt_tokens + completion_tokens,
        }
    }
}

/// `stream_options` of a chat or completions request.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct StreamOptions {
    #[serde(default)]
    pub(crate) include_usage: Option<bool>,
}

/// Whether a streamed reply ends with a usage chunk.
pub(crate) fn includes_usage(options: Option<&StreamOptions>) -> bool {
    options.and_then(|options| options.include_usage) == Some(true)
}

#[derive(Serialize)]
struct ErrorEnvelope<'a> {
    error: ErrorObject<'a>,
}

#[derive(Serialize)]
struct ErrorObject<'a> {
    message: &'a str,
    #[serde(rename = "type")]
    kind: &'a str,
    param: Option<&'a str>,
    code: Option<&'a str>,
}

/// The JSON text of an OpenAI error object.
pub(crate) fn error_json(message: &str, kind: &str, code: Option<&str>) -> Vec<u8> {
    let envelope = ErrorEnvelope {
        error: ErrorObject {
            message,
            kind,
            param: None,
            code,
        },
    };
    // Serializing plain strings into a Vec cannot fail; fall back to a constant to stay panic-free.
    serde_json::to_vec(&envelope).unwrap_or_else(|_| {
        br#"{"error":{"message":"mock error","type":"server_error","param":null,"code":null}}"#
            .to_vec()
    })
}

/// An OpenAI-shaped JSON error response.
pub(crate) fn error_response(
    status: StatusCode,
    message: &str,
    kind: &str,
    code: Option<&str>,
) -> Response<MockBody> {
    with_content_type(
        status,
        JSON,
        MockBody::full(error_json(message, kind, code)),
    )
}

/// A 400 `invalid_request_error`, e.g. for a body that is not valid JSON.
pub(crate) fn invalid_request(message: &str) -> Response<MockBody> {
    error_response(
        StatusCode::BAD_REQUEST,
        message,
        "invalid_request_error",
        None,
    )
}

/// A 400 for a body that is not the JSON the route expects.
pub(crate) fn unparsable_body(error: &serde_json::Error) -> Response<MockBody> {
    let message = format!("We could not parse the JSON body of your request: {error}");
    invalid_request(&message)
}

/// A 404 for any route the mock does not serve, worded like OpenAI's.
pub(crate) fn not_found(method: &http::Method, path: &str) -> Response<MockBody> {
    let message = format!("Invalid URL ({method} {path})");
    error_response(
        StatusCode::NOT_FOUND,
        &message,
        "invalid_request_error",
        None,
    )
}

/// A response with the given status, content type and body.
pub(crate) fn with_content_type(
    status: StatusCode,
    content_type: HeaderValue,
    body: MockBody,
) -> Response<MockBody> {
    let mut response = Response::new(body);
    *response.status_mut() = status;
    response.headers_mut().insert(CONTENT_TYPE, content_type);
    response
}

/// A 200 JSON response holding `value`.
pub(crate) fn json_response<T: Serialize>(value: &T) -> Result<Response<MockBody>> {
    let body = serde_json::to_vec(value).map_err(Error::Encode)?;
    Ok(with_content_type(
        StatusCode::OK,
        JSON,
        MockBody::full(body),
    ))
}

/// A 200 `text/event-stream` response with `events` as ready frames.
pub(crate) fn sse_response(events: VecDeque<Bytes>) -> Response<MockBody> {
    let mut response = with_content_type(StatusCode::OK, EVENT_STREAM, MockBody::Frames(events));
    response.headers_mut().insert(
        http::header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache"),
    );
    response
}

/// One `data: {json}\n\n` event.
pub(crate) fn sse_event<T: Serialize>(value: &T) -> Result<Bytes> {
    let mut event = Vec::with_capacity(256);
    event.extend_from_slice(b"data: ");
    serde_json::to_writer(&mut event, value).map_err(Error::Encode)?;
    event.extend_from_slice(b"\n\n");
    Ok(Bytes::from(event))
}

/// The `data: [DONE]` event that ends every stream.
pub(crate) fn done_event() -> Bytes {
    Bytes::from_static(DONE_EVENT)
}

/// A `prompt` or `input` field: a string, strings, a token array or token arrays.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(crate) enum TextInput {
    /// One string.
    Text(String),
    /// Several strings.
    Texts(Vec<String>),
    /// One pre-tokenized input.
    Tokens(Vec<u64>),
    /// Several pre-tokenized inputs.
    TokenLists(Vec<Vec<u64>>),
}

impl TextInput {
    /// Tokens in the whole input: one per word of text, one per given token.
    pub(crate) fn token_count(&self) -> usize {
        match self {
            TextInput::Text(text) => crate::text::count_words(text),
            TextInput::Texts(texts) => texts
                .iter()
                .map(|text| crate::text::count_words(text))
                .sum(),
            TextInput::Tokens(tokens) => tokens.len(),
            TextInput::TokenLists(lists) => lists.iter().map(Vec::len).sum(),
        }
    }
}
