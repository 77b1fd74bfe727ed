//! Request probes: read the few fields the gateway routes and limits on, check the types of the
//! fields a model server would reject anyway, and leave the body untouched.
//!
//! Validation mirrors the OpenAI API's own errors (`missing_required_parameter`, `invalid_type`,
//! `invalid_value`, with `param` naming the field) so that a client gets the same error whether
//! the gateway or the model server catches the mistake.

use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_json::value::RawValue;

use crate::{ApiError, ErrorKind};

/// The guarded OpenAI routes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Endpoint {
    /// `POST /v1/chat/completions`.
    ChatCompletions,
    /// `POST /v1/completions`.
    Completions,
    /// `POST /v1/embeddings`.
    Embeddings,
}

impl Endpoint {
    /// Path below the API prefix, e.g. `/chat/completions`.
    pub fn path(self) -> &'static str {
        match self {
            Self::ChatCompletions => "/chat/completions",
            Self::Completions => "/completions",
            Self::Embeddings => "/embeddings",
        }
    }

    /// A short, bounded name for metrics and logs.
    pub fn label(self) -> &'static str {
        match self {
            Self::ChatCompletions => "chat_completions",
            Self::Completions => "completions",
            Self::Embeddings => "embeddings",
        }
    }
}

/// What the gateway needs to know about a request before forwarding it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestProbe {
    /// The requested model.
    pub model: String,
    /// Whether the client asked for an SSE stream.
    pub stream: bool,
    /// Whether the client asked for a final usage chunk in the stream.
    pub include_usage: bool,
    /// Number of chat messages (0 for other endpoints).
    pub messages: usize,
    /// Bytes of prompt text as sent (message contents, `prompt`, `input`, JSON escapes
    /// included): the base of a prompt-token estimate, not a count.
    pub prompt_bytes: usize,
}

impl RequestProbe {
    /// A cheap upper-leaning estimate of the prompt's tokens: about four bytes per token plus a
    /// few tokens of framing per message, as OpenAI's own accounting adds.
    pub fn prompt_tokens_estimate(&self) -> u64 {
        let text = self.prompt_bytes.div_ceil(4) as u64;
        text.saturating_add(4 * self.messages as u64)
    }
}

#[derive(Deserialize)]
struct StreamOptions {
    #[serde(default)]
    include_usage: Option<bool>,
}

#[derive(Deserialize)]
struct ChatMessage<'a> {
    role: &'a str,
    #[serde(default, borrow)]
    content: Option<&'a RawValue>,
    // Everything else (name, tool_calls, tool_call_id, ...) passes through untouched.
    #[serde(flatten)]
    _rest: IgnoredAny,
}

#[derive(Deserialize)]
struct Probe<'a> {
    model: String,
    #[serde(default)]
    stream: Option<bool>,
    #[serde(default)]
    stream_options: Option<StreamOptions>,
    #[serde(default, borrow)]
    messages: Option<Vec<ChatMessage<'a>>>,
    #[serde(default, borrow)]
    prompt: Option<&'a RawValue>,
    #[serde(default, borrow)]
    input: Option<&'a RawValue>,
}

/// Validates a request body for `endpoint` and returns its probe, or an OpenAI-shaped 400
/// error naming the parameter at fault.
pub fn probe_request(endpoint: Endpoint, body: &[u8]) -> Result<RequestProbe, ApiError> {
    // serde would accept an array for a struct; the API takes only objects.
    match body.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'{') => {}
        Some(_) if serde_json::from_slice::<IgnoredAny>(body).is_ok() => {
            return Err(ApiError::new(
                ErrorKind::InvalidRequest,
                "invalid_type",
                "the request body must be a JSON object",
            ));
        }
        _ => return Err(invalid_json()),
    }
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    let probe: Probe<'_> =
        serde_path_to_error::deserialize(&mut deserializer).map_err(deserialize_error)?;
    deserializer.end().map_err(|_| invalid_json())?;

    if probe.model.is_empty() {
        return Err(invalid(
            "invalid_value",
            "model",
            "'model' must not be empty",
        ));
    }
    let messages = match endpoint {
        Endpoint::ChatCompletions => check_messages(probe.messages.as_deref())?,
        Endpoint::Completions => {
            require(probe.prompt.is_some(), "prompt")?;
            0
        }
        Endpoint::Embeddings => {
            require(probe.input.is_some(), "input")?;
            0
        }
    };
    let stream = probe.stream.unwrap_or(false);
    if stream && endpoint == Endpoint::Embeddings {
        return Err(invalid(
            "invalid_value",
            "stream",
            "embeddings cannot be streamed",
        ));
    }
    let raw_len = |raw: Option<&RawValue>| raw.map_or(0, |raw| raw.get().len());
    let prompt_bytes = probe
        .messages
        .as_deref()
        .unwrap_or_default()
        .iter()
        .map(|message| raw_len(message.content))
        .sum::<usize>()
        + raw_len(probe.prompt)
        + raw_len(probe.input);
    Ok(RequestProbe {
        model: probe.model,
        prompt_bytes,
        stream,
        include_usage: probe
            .stream_options
            .and_then(|o| o.include_usage)
            .unwrap_or(false),
        messages,
    })
}

fn check_messages(messages: Option<&[ChatMessage<'_>]>) -> Result<usize, ApiError> {
    let messages = messages.ok_or_else(|| missing("messages"))?;
    if messages.is_empty() {
        return Err(invalid(
            "invalid_value",
            "messages",
            "'messages' must contain at least one message",
        ));
    }
    for (i, message) in messages.iter().enumerate() {
        if !matches!(
            message.role,
            "system" | "developer" | "user" | "assistant" | "tool" | "function"
        ) {
            return Err(invalid(
                "invalid_value",
                &format!("messages[{i}].role"),
                &format!("invalid role `{}`", truncate(message.role, 40)),
            ));
        }
        let content_ok = message
            .content
            .is_none_or(|raw| matches!(raw.get().as_bytes().first(), Some(b'"' | b'[' | b'n')));
        if !content_ok {
            return Err(invalid(
                "invalid_type",
                &format!("messages[{i}].content"),
                &format!(
                    "invalid type for 'messages[{i}].content': expected a string or an array of content parts"
                ),
            ));
        }
    }
    Ok(messages.len())
}

fn require(present: bool, field: &str) -> Result<(), ApiError> {
    if present { Ok(()) } else { Err(missing(field)) }
}

fn missing(field: &str) -> ApiError {
    invalid(
        "missing_required_parameter",
        field,
        &format!("missing required parameter: '{field}'"),
    )
}

fn invalid(code: &'static str, param: &str, message: &str) -> ApiError {
    ApiError {
        message: message.to_string(),
        kind: ErrorKind::InvalidRequest,
        code: Some(std::borrow::Cow::Borrowed(code)),
        param: Some(param.to_string()),
    }
}

fn invalid_json() -> ApiError {
    ApiError::new(
        ErrorKind::InvalidRequest,
        "invalid_json",
        "the request body is not valid JSON",
    )
}

fn deserialize_error(error: serde_path_to_error::Error<serde_json::Error>) -> ApiError {
    let path = error.path().to_string();
    let inner = error.into_inner();
    if !inner.is_data() {
        return invalid_json();
    }
    let text = inner.to_string();
    // serde reports a missing field at the struct that lacks it: take the name from the message.
    if let Some(rest) = text.strip_prefix("missing field `") {
        let field = rest.split('`').next().unwrap_or("");
        let param = if path == "." || path.is_empty() {
            field.to_string()
        } else {
            format!("{path}.{field}")
        };
        return missing(&param);
    }
    let param = if path == "." { String::new() } else { path };
    // Drop serde's " at line 1 column 9" suffix: the param already says where.
    let detail = text.split(" at line ").next().unwrap_or(&text);
    invalid(
        "invalid_type",
        &param,
        &format!("invalid type for '{param}': {detail}"),
    )
}

fn truncate(text: &str, max: usize) -> &str {
    match text.char_indices().nth(max) {
        Some((i, _)) => &text[..i],
        None => text,
    }
}

#[cfg(test)]
mod tests;
