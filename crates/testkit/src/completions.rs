//! `POST /v1/completions`: the legacy text completions API, single replies and SSE streams.

use std::collections::VecDeque;

use http::Response;
use serde::{Deserialize, Serialize};

use crate::body::MockBody;
use crate::error::Result;
use crate::faults::{self, Outcome};
use crate::router::Shared;
use crate::text::Reply;
use crate::wire::{self, MOCK_EXTRA, MockExtra, Null, StreamOptions, TextInput, Usage};

/// The fields of a completions request the mock reads; everything else is ignored.
#[derive(Deserialize)]
struct CompletionRequest {
    model: String,
    #[serde(default)]
    prompt: Option<TextInput>,
    #[serde(default)]
    stream: Option<bool>,
    #[serde(default)]
    stream_options: Option<StreamOptions>,
}

#[derive(Serialize)]
struct TextCompletion<'a> {
    id: &'a str,
    object: &'static str,
    created: u64,
    model: &'a str,
    choices: &'a [TextChoice<'a>],
    /// Always present on a single reply; on stream chunks absent unless usage was requested,
    /// then `null` on every chunk but the last.
    #[serde(skip_serializing_if = "Option::is_none")]
    usage: Option<Option<Usage>>,
    system_fingerprint: &'static str,
    x_mock_extra: MockExtra,
}

#[derive(Serialize)]
struct TextChoice<'a> {
    text: &'a str,
    index: u32,
    logprobs: Null,
    finish_reason: Option<&'static str>,
}

/// Serves one legacy completion request.
pub(crate) async fn handle(shared: &Shared, body: &[u8]) -> Result<Response<MockBody>> {
    let request: CompletionRequest = match serde_json::from_slice(body) {
        Ok(request) => request,
        Err(error) => return Ok(wire::unparsable_body(&error)),
    };
    let stream = request.stream == Some(true);
    let cut = match faults::check(&request.model, stream).await? {
        Outcome::Replace(response) => return Ok(response),
        Outcome::Normal => None,
        Outcome::Cut(cut) => Some(cut),
    };

    let id = format!("cmpl-mock-{}", shared.next_id());
    let prompt_tokens = request.prompt.as_ref().map_or(0, TextInput::token_count);
    let prefix = format!("Mock completion of a {prompt_tokens}-word prompt: ");
    let reply = Reply::new(&prefix, &shared.tail, shared.stream_chunks);
    let usage = Usage::new(prompt_tokens, reply.words);
    let (id, model) = (id.as_str(), request.model.as_str());
    if !stream {
        let choices = [choice(&reply.text, Some("stop"))];
        return wire::json_response(&text_completion(id, model, &choices, Some(Some(usage))));
    }
    let include_usage = wire::includes_usage(request.stream_options.as_ref());
    // Absent unless usage was requested; then `null` on every chunk but the last.
    let chunk_usage = include_usage.then_some(None);
    let mut events = VecDeque::with_capacity(reply.pieces.len() + 3);
    for text in reply.deltas() {
        events.push_back(wire::sse_event(&text_completion(
            id,
            model,
            &[choice(text, None)],
            chunk_usage,
        ))?);
    }
    events.push_back(wire::sse_event(&text_completion(
        id,
        model,
        &[choice("", Some("stop"))],
        chunk_usage,
    ))?);
    if include_usage {
        events.push_back(wire::sse_event(&text_completion(
            id,
            model,
            &[],
            Some(Some(usage)),
        ))?);
    }
    events.push_back(wire::done_event());
    Ok(faults::finish_stream(events, cut))
}

fn text_completion<'a>(
    id: &'a str,
    model: &'a str,
    choices: &'a [TextChoice<'a>],
    usage: Option<Option<Usage>>,
) -> TextCompletion<'a> {
    TextCompletion {
        id,
        object: "text_completion",
        created: wire::CREATED,
        model,
        choices,
        usage,
        system_fingerprint: wire::SYSTEM_FINGERPRINT,
        x_mock_extra: MOCK_EXTRA,
    }
}

fn choice<'a>(text: &'a str, finish_reason: Option<&'static str>) -> TextChoice<'a> {
    TextChoice {
        text,
        index: 0,
        logprobs: Null,
        finish_reason,
    }
}
