//! The mock's response body: a whole buffer, a queue of ready SSE events, or a timed script.
//!
//! A hand-written enum instead of a boxed body keeps the hot path free of dynamic dispatch and
//! extra allocations; only fault scripts carry a timer.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use tokio::time::Sleep;

use crate::error::Error;

/// Response body served by the mock.
pub(crate) enum MockBody {
    /// One buffer with a known length (sent with `content-length`).
    Full(Option<Bytes>),
    /// Ready frames of unknown total length (sent chunked), e.g. SSE events.
    Frames(VecDeque<Bytes>),
    /// Frames with pauses and a possible failure, for stream faults.
    Script(Script),
}

impl MockBody {
    /// A whole body from any buffer.
    pub(crate) fn full(data: impl Into<Bytes>) -> Self {
        MockBody::Full(Some(data.into()))
    }
}

/// One step of a scripted body.
pub(crate) enum Step {
    /// Send these bytes as a frame.
    Send(Bytes),
    /// Send nothing for this long (hyper flushes what it has meanwhile).
    Pause(Duration),
    /// End the body with this error, which makes hyper abort the connection.
    Fail(Error),
}

/// A body that plays its steps in order.
pub(crate) struct Script {
    steps: VecDeque<Step>,
    sleep: Option<Pin<Box<Sleep>>>,
}

impl Script {
    /// A script that plays `steps` in order.
    pub(crate) fn new(steps: Vec<Step>) -> Self {
        Script {
            steps: steps.into(),
            sleep: None,
        }
    }

    fn poll_step(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Error>>> {
        loop {
            if let Some(sleep) = self.sleep.as_mut() {
                ready!(sleep.as_mut().poll(cx));
                self.sleep = None;
            }
            match self.steps.pop_front() {
                None => return Poll::Ready(None),
                Some(Step::Send(data)) => return Poll::Ready(Some(Ok(Frame::data(data)))),
                Some(Step::Pause(duration)) => {
                    self.sleep = Some(Box::pin(tokio::time::sleep(duration)));
                }
                Some(Step::Fail(error)) => return Poll::Ready(Some(Err(error))),
            }
        }
    }
}

impl Body for MockBody {
    type Data = Bytes;
    type Error = Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Error>>> {
        match self.get_mut() {
            MockBody::Full(data) => Poll::Ready(data.take().map(|data| Ok(Frame::data(data)))),
            MockBody::Frames(queue) => {
                Poll::Ready(queue.pop_front().map(|data| Ok(Frame::data(data))))
            }
            MockBody::Script(script) => script.poll_step(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            MockBody::Full(data) => data.is_none(),
            MockBody::Frames(queue) => queue.is_empty(),
            MockBody::Script(script) => script.steps.is_empty() && script.sleep.is_none(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            MockBody::Full(Some(data)) => SizeHint::with_exact(data.len() as u64),
            MockBody::Full(None) => SizeHint::with_exact(0),
            // Unknown length on purpose: streams go out chunked, like OpenAI's.
            MockBody::Frames(_) | MockBody::Script(_) => SizeHint::default(),
        }
    }
}
