//! A mock OpenAI-compatible upstream that speaks the real wire format.
//!
//! Used by the gateway's in-process integration tests, by `portcullis demo`, by Python tests
//! with the official `openai` SDK and by the load benchmark (through the
//! `portcullis-mock-upstream` binary). It owns nothing else: no gateway code depends on it
//! outside tests, and it depends on no Portcullis crate. Start reading at [`MockUpstream`];
//! `router.rs` shows how one request is served.
//!
//! Everything is deterministic: `created` is always `1700000000`, ids count up per server
//! (`chatcmpl-mock-1`, `cmpl-mock-2`, ...), and reply text depends only on the request and
//! [`MockOptions::stream_chunks`]. The hot path does no logging and allocates little; HTTP/1.1
//! keep-alive and HTTP/2 (prior knowledge) are both served on the one port.
//!
//! # Routes
//!
//! | route | answer |
//! | --- | --- |
//! | `POST /v1/chat/completions` | `chat.completion`, or an SSE stream of `chat.completion.chunk` with `stream: true` |
//! | `POST /v1/completions` | legacy `text_completion`, single or streamed |
//! | `POST /v1/embeddings` | 8-dimensional unit vectors; `encoding_format: "base64"` gives little-endian `f32`s in base64 |
//! | `GET /v1/models` | the [`MockOptions::models`], `owned_by: "portcullis-mock"` |
//! | `GET /v1/models/{id}` | that model's object, or 404 if it is not in [`MockOptions::models`] |
//! | `POST /v1/moderations` | one unflagged result per input |
//! | anything else | 404 with an OpenAI-shaped error |
//!
//! A body that is not the JSON a route expects gets 400 with
//! `{"error":{"message","type":"invalid_request_error","param":null,"code":null}}`.
//!
//! Chat replies say `"Mock reply to <n> messages: "` followed by a fixed sentence; a stream sends
//! a first delta `{"role":"assistant","content":"","refusal":null}`, then exactly
//! `stream_chunks` content deltas, a chunk with an empty delta and `finish_reason`, a `choices: []`
//! chunk with `usage` if `stream_options.include_usage` is true, and `data: [DONE]`. Every
//! completion object and chunk carries `"x_mock_extra": {"note": "unknown fields must pass
//! through"}`, a field OpenAI never sends, to prove gateways pass unknown fields through.
//!
//! A chat request with a non-empty `tools` array (and `tool_choice` not `"none"`) gets a call
//! to the first tool, or to the one `tool_choice` names: `content: null`, one tool call with id
//! `call_mock_1` and arguments `{"location": "Paris"}`, `finish_reason: "tool_calls"`. Streamed,
//! the first delta carries index, id, type, name and `arguments: ""`, the next six carry argument
//! fragments.
//!
//! # Faults
//!
//! A chat, completions or embeddings request whose `model` is one of these gets a broken answer
//! on purpose. This list is a contract: tests depend on it.
//!
//! | `model` | behaviour |
//! | --- | --- |
//! | `mock-fault-500` | 500 with an OpenAI-shaped error (`type: "server_error"`) |
//! | `mock-fault-503-html` | 503, `content-type: text/html`, an nginx-style HTML page |
//! | `mock-fault-nonjson` | 200, `content-type: text/html`, an HTML page |
//! | `mock-fault-badjson` | 200, `content-type: application/json`, a truncated JSON body |
//! | `mock-fault-reset` | reads the request, then closes the connection without any response |
//! | `mock-fault-hang` | reads the request, never answers (closes after an hour); other connections are unaffected |
//! | `mock-fault-slow-first-byte` | answers normally after 2 seconds |
//! | `mock-fault-midstream` | stream only: 3 whole events, then the first half of a JSON event (no blank line), then the connection aborts |
//! | `mock-fault-stall` | stream only: 2 events, then silence (for an hour) |
//! | `mock-fault-400` | 400 with an OpenAI-shaped `invalid_request_error` |
//! | `mock-fault-429` | 429, `retry-after: 7`, an OpenAI-shaped error (`type: "requests"`, `code: "rate_limit_exceeded"`) |
//!
//! Chat with `model: "mock-echo"` answers with the last message's text verbatim; streamed, it
//! comes in deltas of at most 7 bytes, so a secret or a link in it is split across chunks.
//! `mock-echo-system` does the same with the first message (a system prompt that leaks). Tests
//! of output scanning depend on both.
//!
//! The stream-only faults answer normally when `stream` is not true; embeddings never stream.
//! Over HTTP/2, `mock-fault-reset` and `mock-fault-midstream` reset the stream rather than the
//! whole connection; over HTTP/1.1 the connection closes (no response bytes at all for `reset`,
//! no terminating chunk for `midstream`).
//!
//! # Example
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! let upstream = portcullis_testkit::MockUpstream::start().await?;
//! let base_url = upstream.base_url(); // point the gateway or an SDK here
//! # let _ = base_url;
//! assert!(upstream.last_request().is_none());
//! upstream.shutdown().await;
//! # Ok(())
//! # }
//! ```

#![warn(missing_docs)]

mod body;
mod catalog;
mod chat;
mod completions;
mod embeddings;
mod error;
mod faults;
mod mcp;
mod record;
mod router;
mod text;
mod upstream;
mod wire;

pub use mcp::{MOCK_AWS_KEY, McpMock, McpMockOptions};
pub use record::RecordedRequest;
pub use upstream::{MockOptions, MockUpstream};
