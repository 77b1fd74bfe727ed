//! Fault injection: a request whose `model` names a fault gets a broken answer on purpose.
//!
//! The list of models and what each does is a contract that tests depend on; it is documented
//! in the crate docs (`lib.rs`). This module only implements it.

use std::collections::VecDeque;
use std::time::Duration;

use bytes::Bytes;
use http::header::{HeaderValue, RETRY_AFTER};
use http::{Response, StatusCode};

use crate::body::{MockBody, Script, Step};
use crate::error::{Error, Result};
use crate::wire;

/// How long `mock-fault-hang` waits before closing the connection without an answer.
const HANG: Duration = Duration::from_secs(60 * 60);
/// How long `mock-fault-stall` stays silent after its second event.
const STALL: Duration = Duration::from_secs(60 * 60);
/// How long `mock-fault-slow-first-byte` waits before answering normally.
const SLOW_FIRST_BYTE: Duration = Duration::from_secs(2);
/// Pause between the partial event of `mock-fault-midstream` and the abort. It lets hyper flush
/// the partial event first; lowering it towards zero risks the client never seeing that event.
const FLUSH_PAUSE: Duration = Duration::from_millis(50);

const HTML_503: &str = "<html>\r\n<head><title>503 Service Temporarily Unavailable</title></head>\r\n\
    <body>\r\n<center><h1>503 Service Temporarily Unavailable</h1></center>\r\n\
    <hr><center>nginx</center>\r\n</body>\r\n</html>\r\n";
const HTML_PAGE: &str = "<!DOCTYPE html><html><head><title>Just a moment...</title></head>\
    <body><p>Checking your browser before accessing the API.</p></body></html>\n";
const TRUNCATED_JSON: &str = "{\"id\":\"chatcmpl-mock-truncated\",\"object\":\"chat.completion\",\
    \"created\":1700000000,\"model\":\"mock-fault-badjson\",\"choices\":[{\"index\":0,\
    \"message\":{\"role\":\"assistant\",\"content\":\"This reply is cut o";

/// A fault selected by a request's `model`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fault {
    /// `mock-fault-500`
    ServerError,
    /// `mock-fault-503-html`
    UnavailableHtml,
    /// `mock-fault-nonjson`
    NonJson,
    /// `mock-fault-badjson`
    BadJson,
    /// `mock-fault-reset`
    Reset,
    /// `mock-fault-hang`
    Hang,
    /// `mock-fault-slow-first-byte`
    SlowFirstByte,
    /// `mock-fault-midstream`
    Midstream,
    /// `mock-fault-stall`
    Stall,
    /// `mock-fault-400`
    BadRequest,
    /// `mock-fault-429`
    RateLimited,
}

impl Fault {
    /// The fault a model name selects, if any.
    pub(crate) fn from_model(model: &str) -> Option<Self> {
        let fault = match model.strip_prefix("mock-fault-")? {
            "500" => Fault::ServerError,
            "503-html" => Fault::UnavailableHtml,
            "nonjson" => Fault::NonJson,
            "badjson" => Fault::BadJson,
            "reset" => Fault::Reset,
            "hang" => Fault::Hang,
            "slow-first-byte" => Fault::SlowFirstByte,
            "midstream" => Fault::Midstream,
            "stall" => Fault::Stall,
            "400" => Fault::BadRequest,
            "429" => Fault::RateLimited,
            // Model names are an open set: anything else is an ordinary model.
            _ => return None,
        };
        Some(fault)
    }
}

/// What the route does once a fault has been applied.
pub(crate) enum Outcome {
    /// Send this response instead of the normal reply.
    Replace(Response<MockBody>),
    /// Build the normal reply (any delay has already been served).
    Normal,
    /// Build the normal event stream, then hand it to [`cut_stream`].
    Cut(Cut),
}

/// How a stream fault breaks an event stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cut {
    /// Three events, half of the next one, then an aborted connection.
    Midstream,
    /// Two events, then silence.
    Stall,
}

/// Applies the fault that `model` names, if any, to a request that asked for a stream (`stream`)
/// or a single reply.
///
/// Returns an error when the connection must close without any answer.
pub(crate) async fn check(model: &str, stream: bool) -> Result<Outcome> {
    match Fault::from_model(model) {
        Some(fault) => apply(fault, stream).await,
        None => Ok(Outcome::Normal),
    }
}

/// Applies `fault`; see [`check`].
async fn apply(fault: Fault, stream: bool) -> Result<Outcome> {
    let response = match fault {
        Fault::ServerError => wire::error_response(
            StatusCode::INTERNAL_SERVER_ERROR,
            "The server had an error while processing your request. Sorry about that!",
            "server_error",
            None,
        ),
        Fault::UnavailableHtml => wire::with_content_type(
            StatusCode::SERVICE_UNAVAILABLE,
            wire::HTML,
            MockBody::full(Bytes::from_static(HTML_503.as_bytes())),
        ),
        Fault::NonJson => wire::with_content_type(
            StatusCode::OK,
            wire::HTML,
            MockBody::full(Bytes::from_static(HTML_PAGE.as_bytes())),
        ),
        Fault::BadJson => wire::with_content_type(
            StatusCode::OK,
            wire::JSON,
            MockBody::full(Bytes::from_static(TRUNCATED_JSON.as_bytes())),
        ),
        Fault::Reset => return Err(Error::InjectedClose),
        Fault::Hang => {
            tokio::time::sleep(HANG).await;
            return Err(Error::InjectedClose);
        }
        Fault::SlowFirstByte => {
            tokio::time::sleep(SLOW_FIRST_BYTE).await;
            return Ok(Outcome::Normal);
        }
        Fault::Midstream => return Ok(stream_only(stream, Cut::Midstream)),
        Fault::Stall => return Ok(stream_only(stream, Cut::Stall)),
        Fault::BadRequest => wire::error_response(
            StatusCode::BAD_REQUEST,
            "mock-fault-400: the upstream rejected this request",
            "invalid_request_error",
            None,
        ),
        Fault::RateLimited => {
            let mut response = wire::error_response(
                StatusCode::TOO_MANY_REQUESTS,
                "Rate limit reached for mock-fault-429 on requests per min (RPM): Limit 3, \
                 Used 3, Requested 1. Please try again in 7s.",
                "requests",
                Some("rate_limit_exceeded"),
            );
            response
                .headers_mut()
                .insert(RETRY_AFTER, HeaderValue::from_static("7"));
            response
        }
    };
    Ok(Outcome::Replace(response))
}

/// Stream faults leave single (non-stream) replies alone.
fn stream_only(stream: bool, cut: Cut) -> Outcome {
    if stream {
        Outcome::Cut(cut)
    } else {
        Outcome::Normal
    }
}

/// Sends a complete event stream as it is, or broken as `cut` says.
pub(crate) fn finish_stream(events: VecDeque<Bytes>, cut: Option<Cut>) -> Response<MockBody> {
    match cut {
        Some(cut) => cut_stream(events, cut),
        None => wire::sse_response(events),
    }
}

/// Breaks a complete event stream (`data: [DONE]` included) as `cut` says.
fn cut_stream(events: VecDeque<Bytes>, cut: Cut) -> Response<MockBody> {
    // Only JSON events count: `[DONE]` must never be among the ones sent whole.
    let json_events: Vec<Bytes> = events
        .into_iter()
        .filter(|event| event.as_ref() != wire::DONE_EVENT)
        .collect();
    let last = json_events.len().saturating_sub(1);
    let mut steps = Vec::with_capacity(6);
    match cut {
        Cut::Midstream => {
            let whole = last.min(3);
            steps.extend(json_events.iter().take(whole).cloned().map(Step::Send));
            if let Some(next) = json_events.get(whole) {
                // Half of a `data: {...}\n\n` event ends inside the JSON, with no blank line.
                steps.push(Step::Send(next.slice(..next.len() / 2)));
            }
            steps.push(Step::Pause(FLUSH_PAUSE));
            steps.push(Step::Fail(Error::InjectedAbort));
        }
        Cut::Stall => {
            steps.extend(
                json_events
                    .iter()
                    .take(last.min(2))
                    .cloned()
                    .map(Step::Send),
            );
            steps.push(Step::Pause(STALL));
            steps.push(Step::Fail(Error::InjectedAbort));
        }
    }
    let mut response = wire::sse_response(VecDeque::new());
    *response.body_mut() = MockBody::Script(Script::new(steps));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fault_models_parse() {
        assert_eq!(
            Fault::from_model("mock-fault-500"),
            Some(Fault::ServerError)
        );
        assert_eq!(
            Fault::from_model("mock-fault-429"),
            Some(Fault::RateLimited)
        );
        assert_eq!(
            Fault::from_model("mock-fault-slow-first-byte"),
            Some(Fault::SlowFirstByte)
        );
        assert_eq!(Fault::from_model("mock-gpt"), None);
        assert_eq!(Fault::from_model("mock-fault-nope"), None);
    }
}
