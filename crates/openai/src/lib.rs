//! The OpenAI-compatible wire format, as far as the gateway needs to read it: request probes
//! that validate and extract routing fields without copying the body, the error shape, and an
//! SSE framer that forwards only whole events.
//!
//! Pure: no I/O, no tokio. The gateway forwards the client's original bytes, so fields this
//! crate does not type (and every unknown field) pass through unchanged. Start with
//! [`probe_request`] and [`SseFramer`].
#![warn(missing_docs)]

mod error;
mod probe;
mod sse;
pub mod texts;

pub use error::{ApiError, ErrorKind};
pub use probe::{Endpoint, RequestProbe, probe_request};
pub use sse::{SseFramer, SseOverflow, StreamEnd, event_data, split_events};
