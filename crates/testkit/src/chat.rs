//! `POST /v1/chat/completions`: single replies, SSE streams and tool calls.

use std::collections::VecDeque;

use bytes::Bytes;
use http::Response;
use serde::{Deserialize, Serialize};

use crate::body::MockBody;
use crate::error::Result;
use crate::faults::{self, Outcome};
use crate::router::Shared;
use crate::text::{Reply, count_words};
use crate::wire::{self, MOCK_EXTRA, MockExtra, Null, StreamOptions, Usage};

/// `id` of the one tool call the mock ever makes.
const TOOL_CALL_ID: &str = "call_mock_1";
/// The argument fragments streamed for a tool call, cut the way OpenAI's tokens cut them.
const ARGUMENT_FRAGMENTS: [&str; 6] = ["{\"", "location", "\":", " \"", "Paris", "\"}"];
/// `function.arguments` of the tool call: the fragments joined.
const ARGUMENTS: &str = "{\"location\": \"Paris\"}";

/// The fields of a chat request the mock reads; everything else is ignored.
#[derive(Deserialize)]
struct ChatRequest {
    model: String,
    messages: Vec<Message>,
    #[serde(default)]
    stream: Option<bool>,
    #[serde(default)]
    stream_options: Option<StreamOptions>,
    #[serde(default)]
    tools: Option<Vec<Tool>>,
    #[serde(default)]
    tool_choice: Option<ToolChoice>,
}

/// The model that answers with the last message's text, streamed in [`ECHO_PIECE_BYTES`]
/// pieces (a contract, listed in the crate docs).
pub(crate) const ECHO_MODEL: &str = "mock-echo";
/// Like [`ECHO_MODEL`], echoing the first message (the system prompt, leaked on purpose).
pub(crate) const ECHO_SYSTEM_MODEL: &str = "mock-echo-system";
/// Bytes per streamed echo delta: small, so a secret or a link is split across deltas.
const ECHO_PIECE_BYTES: usize = 7;

impl ChatRequest {
    /// The text of a message (its string content, or its text parts joined).
    fn text_of(&self, message: Option<&Message>) -> String {
        match message.and_then(|m| m.content.as_ref()) {
            Some(serde_json::Value::String(text)) => text.clone(),
            Some(serde_json::Value::Array(parts)) => parts
                .iter()
                .filter_map(|part| part.get("text").and_then(serde_json::Value::as_str))
                .collect::<Vec<_>>()
                .join(""),
            _ => String::new(),
        }
    }
}

#[derive(Deserialize)]
struct Message {
    #[serde(default)]
    content: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct Tool {
    #[serde(default)]
    function: Option<FunctionName>,
}

#[derive(Deserialize)]
struct FunctionName {
    name: String,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum ToolChoice {
    /// `"none"`, `"auto"` or `"required"`.
    Mode(String),
    /// `{"type": "function", "function": {"name": ...}}`.
    Named { function: FunctionName },
    /// Any newer shape: treated like `"auto"`.
    Other(serde::de::IgnoredAny),
}

impl ChatRequest {
    /// Words in all text content, reported as prompt tokens.
    fn prompt_words(&self) -> usize {
        self.messages
            .iter()
            .filter_map(|message| message.content.as_ref())
            .map(content_words)
            .sum()
    }

    /// The function to call, if the request offers tools and does not forbid calling them.
    fn chosen_tool(&self) -> Option<&str> {
        let tools = self.tools.as_deref().unwrap_or_default();
        if tools.is_empty() {
            return None;
        }
        match &self.tool_choice {
            Some(ToolChoice::Mode(mode)) if mode == "none" => None,
            Some(ToolChoice::Named { function }) => Some(function.name.as_str()),
            Some(ToolChoice::Mode(_) | ToolChoice::Other(_)) | None => tools
                .iter()
                .find_map(|tool| tool.function.as_ref())
                .map(|function| function.name.as_str()),
        }
    }
}

/// Words in a message's `content`: a string, or an array of parts with `text`.
fn content_words(content: &serde_json::Value) -> usize {
    if let Some(text) = content.as_str() {
        return count_words(text);
    }
    content
        .as_array()
        .map(|parts| {
            parts
                .iter()
                .filter_map(|part| part.get("text").and_then(serde_json::Value::as_str))
                .map(count_words)
                .sum()
        })
        .unwrap_or(0)
}

/// What the assistant answers.
enum Answer<'a> {
    Text(Reply),
    ToolCall { name: &'a str },
}

impl Answer<'_> {
    fn completion_tokens(&self) -> usize {
        match self {
            Answer::Text(reply) => reply.words,
            Answer::ToolCall { .. } => ARGUMENT_FRAGMENTS.len(),
        }
    }

    fn finish_reason(&self) -> &'static str {
        match self {
            Answer::Text(_) => "stop",
            Answer::ToolCall { .. } => "tool_calls",
        }
    }
}

/// Serves one chat completion request.
pub(crate) async fn handle(shared: &Shared, body: &[u8]) -> Result<Response<MockBody>> {
    let request: ChatRequest = match serde_json::from_slice(body) {
        Ok(request) => request,
        Err(error) => return Ok(wire::unparsable_body(&error)),
    };
    let stream = request.stream == Some(true);
    let cut = match faults::check(&request.model, stream).await? {
        Outcome::Replace(response) => return Ok(response),
        Outcome::Normal => None,
        Outcome::Cut(cut) => Some(cut),
    };

    let id = format!("chatcmpl-mock-{}", shared.next_id());
    let answer = match request.chosen_tool() {
        Some(name) => Answer::ToolCall { name },
        None if request.model == ECHO_MODEL => Answer::Text(Reply::echo(
            &request.text_of(request.messages.last()),
            ECHO_PIECE_BYTES,
        )),
        None if request.model == ECHO_SYSTEM_MODEL => Answer::Text(Reply::echo(
            &request.text_of(request.messages.first()),
            ECHO_PIECE_BYTES,
        )),
        None => {
            let prefix = format!("Mock reply to {} messages: ", request.messages.len());
            Answer::Text(Reply::new(&prefix, &shared.tail, shared.stream_chunks))
        }
    };
    let usage = Usage::new(request.prompt_words(), answer.completion_tokens());
    if !stream {
        return wire::json_response(&completion(&id, &request.model, &answer, usage));
    }
    let writer = ChunkWriter {
        id: &id,
        model: &request.model,
        include_usage: wire::includes_usage(request.stream_options.as_ref()),
    };
    let events = stream_events(&writer, &answer, usage)?;
    Ok(faults::finish_stream(events, cut))
}

#[derive(Serialize)]
struct ChatCompletion<'a> {
    id: &'a str,
    object: &'static str,
    created: u64,
    model: &'a str,
    choices: [Choice<'a>; 1],
    usage: Usage,
    system_fingerprint: &'static str,
    x_mock_extra: MockExtra,
}

#[derive(Serialize)]
struct Choice<'a> {
    index: u32,
    message: AssistantMessage<'a>,
    logprobs: Null,
    finish_reason: &'static str,
}

#[derive(Serialize)]
struct AssistantMessage<'a> {
    role: &'static str,
    content: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_calls: Option<[ToolCall<'a>; 1]>,
    refusal: Null,
}

#[derive(Serialize)]
struct ToolCall<'a> {
    id: &'static str,
    #[serde(rename = "type")]
    kind: &'static str,
    function: FunctionCall<'a>,
}

#[derive(Serialize)]
struct FunctionCall<'a> {
    name: &'a str,
    arguments: &'a str,
}

fn completion<'a>(
    id: &'a str,
    model: &'a str,
    answer: &'a Answer<'a>,
    usage: Usage,
) -> ChatCompletion<'a> {
    let message = match answer {
        Answer::Text(reply) => AssistantMessage {
            role: "assistant",
            content: Some(&reply.text),
            tool_calls: None,
            refusal: Null,
        },
        Answer::ToolCall { name } => AssistantMessage {
            role: "assistant",
            content: None,
            tool_calls: Some([ToolCall {
                id: TOOL_CALL_ID,
                kind: "function",
                function: FunctionCall {
                    name,
                    arguments: ARGUMENTS,
                },
            }]),
            refusal: Null,
        },
    };
    ChatCompletion {
        id,
        object: "chat.completion",
        created: wire::CREATED,
        model,
        choices: [Choice {
            index: 0,
            message,
            logprobs: Null,
            finish_reason: answer.finish_reason(),
        }],
        usage,
        system_fingerprint: wire::SYSTEM_FINGERPRINT,
        x_mock_extra: MOCK_EXTRA,
    }
}

#[derive(Serialize)]
struct ChatChunk<'a> {
    id: &'a str,
    object: &'static str,
    created: u64,
    model: &'a str,
    system_fingerprint: &'static str,
    choices: &'a [ChunkChoice<'a>],
    /// Absent unless usage was requested; then `null` on every chunk but the last.
    #[serde(skip_serializing_if = "Option::is_none")]
    usage: Option<Option<Usage>>,
    x_mock_extra: MockExtra,
}

#[derive(Serialize)]
struct ChunkChoice<'a> {
    index: u32,
    delta: Delta<'a>,
    logprobs: Null,
    finish_reason: Option<&'static str>,
}

#[derive(Default, Serialize)]
struct Delta<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    role: Option<&'static str>,
    /// Absent, `null` (`Some(None)`) or a string.
    #[serde(skip_serializing_if = "Option::is_none")]
    content: Option<Option<&'a str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_calls: Option<[ToolCallDelta<'a>; 1]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    refusal: Option<Null>,
}

#[derive(Serialize)]
struct ToolCallDelta<'a> {
    index: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<&'static str>,
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    kind: Option<&'static str>,
    function: FunctionDelta<'a>,
}

#[derive(Serialize)]
struct FunctionDelta<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
    arguments: &'a str,
}

/// Writes the chunks of one stream; they share id, model and the usage convention.
struct ChunkWriter<'a> {
    id: &'a str,
    model: &'a str,
    include_usage: bool,
}

impl ChunkWriter<'_> {
    fn event(&self, choices: &[ChunkChoice<'_>], usage: Option<Usage>) -> Result<Bytes> {
        wire::sse_event(&ChatChunk {
            id: self.id,
            object: "chat.completion.chunk",
            created: wire::CREATED,
            model: self.model,
            system_fingerprint: wire::SYSTEM_FINGERPRINT,
            choices,
            usage: self.include_usage.then_some(usage),
            x_mock_extra: MOCK_EXTRA,
        })
    }

    fn delta(&self, delta: Delta<'_>, finish_reason: Option<&'static str>) -> Result<Bytes> {
        let choice = ChunkChoice {
            index: 0,
            delta,
            logprobs: Null,
            finish_reason,
        };
        self.event(&[choice], None)
    }
}

/// Every event of a streamed answer, `data: [DONE]` included.
fn stream_events(
    writer: &ChunkWriter<'_>,
    answer: &Answer<'_>,
    usage: Usage,
) -> Result<VecDeque<Bytes>> {
    let mut events = VecDeque::with_capacity(16);
    match answer {
        Answer::Text(reply) => {
            events.push_back(writer.delta(
                Delta {
                    role: Some("assistant"),
                    content: Some(Some("")),
                    refusal: Some(Null),
                    ..Delta::default()
                },
                None,
            )?);
            for text in reply.deltas() {
                let delta = Delta {
                    content: Some(Some(text)),
                    ..Delta::default()
                };
                events.push_back(writer.delta(delta, None)?);
            }
        }
        Answer::ToolCall { name } => {
            let first_call = ToolCallDelta {
                index: 0,
                id: Some(TOOL_CALL_ID),
                kind: Some("function"),
                function: FunctionDelta {
                    name: Some(name),
                    arguments: "",
                },
            };
            events.push_back(writer.delta(
                Delta {
                    role: Some("assistant"),
                    content: Some(None),
                    tool_calls: Some([first_call]),
                    refusal: Some(Null),
                },
                None,
            )?);
            for fragment in ARGUMENT_FRAGMENTS {
                let call = ToolCallDelta {
                    index: 0,
                    id: None,
                    kind: None,
                    function: FunctionDelta {
                        name: None,
                        arguments: fragment,
                    },
                };
                let delta = Delta {
                    tool_calls: Some([call]),
                    ..Delta::default()
                };
                events.push_back(writer.delta(delta, None)?);
            }
        }
    }
    events.push_back(writer.delta(Delta::default(), Some(answer.finish_reason()))?);
    if writer.include_usage {
        events.push_back(writer.event(&[], Some(usage))?);
    }
    events.push_back(wire::done_event());
    Ok(events)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argument_fragments_join_to_arguments() {
        assert_eq!(ARGUMENT_FRAGMENTS.concat(), ARGUMENTS);
    }

    #[test]
    fn tool_choice_none_disables_tools() {
        let request: ChatRequest = serde_json::from_str(
            r#"{"model":"m","messages":[],"tools":[{"type":"function","function":{"name":"f"}}],
                "tool_choice":"none"}"#,
        )
        .unwrap();
        assert_eq!(request.chosen_tool(), None);
    }

    #[test]
    fn named_tool_choice_wins_over_first_tool() {
        let request: ChatRequest = serde_json::from_str(
            r#"{"model":"m","messages":[],"tools":[{"type":"function","function":{"name":"f"}},
                {"type":"function","function":{"name":"g"}}],
                "tool_choice":{"type":"function","function":{"name":"g"}}}"#,
        )
        .unwrap();
        assert_eq!(request.chosen_tool(), Some("g"));
    }

    #[test]
    fn prompt_words_count_text_parts() {
        let request: ChatRequest = serde_json::from_str(
            r#"{"model":"m","messages":[{"role":"user","content":"one two"},
                {"role":"user","content":[{"type":"text","text":"three"},{"type":"image_url"}]},
                {"role":"assistant","content":null}]}"#,
        )
        .unwrap();
        assert_eq!(request.prompt_words(), 3);
    }
}
