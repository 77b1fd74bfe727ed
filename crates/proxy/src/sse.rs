//! The streamed-response body: forwards upstream SSE bytes in whole events (see
//! `portcullis_openai::SseFramer`), enforces the idle timeout, and ends the stream with an
//! SSE error event when the upstream fails, goes silent, or the gateway's drain deadline
//! passes. Whatever was already sent cannot be recalled; the client always receives whole
//! events followed, on failure, by one `data: {"error": …}` event and no `[DONE]`.
//!
//! Coalescing: an upstream often delivers many small chunks per socket read (one per token).
//! Forwarding each as its own frame costs one `writev` and a TCP segment per token, which is
//! most of a proxy's CPU on streams. The upstream body (`client::UpstreamBody`) decodes, in
//! this task, every chunk already buffered from the upstream socket, so each poll drains all of
//! them into one frame (up to [`MAX_BATCH_BYTES`]). It never waits for the network: no latency
//! is added.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body::{Body, Frame};
use portcullis_openai::{SseFramer, StreamEnd};
use portcullis_telemetry::{Metrics, UpstreamFailure};
use tokio::sync::watch;
use tokio::time::Sleep;

use crate::body::{BodyError, Chunks};
use crate::client::UpstreamBody;
use crate::guard::stream::StreamGuard;
use crate::reject::{Reject, TimeoutPhase};

/// Largest unfinished event held back. A chunk with a long tool-call argument can be large,
/// but a single event beyond this means a broken upstream; raising it raises per-stream memory.
const MAX_EVENT_BYTES: usize = 1024 * 1024;

/// Largest frame built by coalescing available chunks. Bounds memory per stream; raising it
/// saves syscalls only when an upstream bursts more than this at once.
const MAX_BATCH_BYTES: usize = 64 * 1024;

type CutSignal = Pin<Box<dyn Future<Output = ()> + Send>>;
type PollFrame = Poll<Option<Result<Frame<Bytes>, BodyError>>>;

/// How the upstream side of a stream stopped.
#[derive(Debug, Clone, Copy)]
enum Stop {
    /// Clean end of the body.
    Ended,
    /// The connection failed.
    Broken,
    /// One event exceeded [`MAX_EVENT_BYTES`].
    Oversized,
    /// No data for the idle timeout.
    Idle,
}

/// See the module docs.
pub(crate) struct SseBody {
    upstream: UpstreamBody,
    framer: SseFramer,
    idle: Duration,
    idle_timer: Pin<Box<Sleep>>,
    last_data: Instant,
    cut: CutSignal,
    finished: bool,
    /// An upstream stop seen while a batch was returned; handled on the next poll.
    deferred: Option<Stop>,
    upstream_name: Arc<str>,
    metrics: Arc<Metrics>,
    /// Scans and holds events on guarded routes.
    guard: Option<StreamGuard>,
    /// Reads the upstream's usage report (and keeps it from a client that did not ask).
    usage: StreamUsage,
}

/// A stream's token accounting: the tap that reads usage from the events, and the budget
/// charge settled with it when the body is dropped (the stream ended, failed, or the client
/// went away).
pub(crate) struct StreamUsage {
    pub(crate) tap: crate::limits::UsageTap,
    pub(crate) _settle: Option<crate::limits::SettleOnDrop>,
}

impl SseBody {
    pub(crate) fn new(
        upstream: UpstreamBody,
        idle: Duration,
        mut cut: watch::Receiver<bool>,
        upstream_name: Arc<str>,
        metrics: Arc<Metrics>,
        guard: Option<StreamGuard>,
        usage: StreamUsage,
    ) -> Self {
        let cut: CutSignal = Box::pin(async move {
            // An Err means the gateway is gone: treat it as a cut too.
            let _ = cut.wait_for(|cut| *cut).await;
        });
        Self {
            upstream,
            framer: SseFramer::new(MAX_EVENT_BYTES),
            idle,
            idle_timer: Box::pin(tokio::time::sleep(idle)),
            last_data: Instant::now(),
            cut,
            finished: false,
            deferred: None,
            upstream_name,
            metrics,
            guard,
            usage,
        }
    }

    /// Ends the stream with an error event, after whatever clean text the guard still held.
    fn fail(&mut self, failure: Option<UpstreamFailure>, reject: Reject) -> PollFrame {
        self.finished = true;
        let mut bytes = match &mut self.guard {
            Some(guard) => guard.flush_on_failure(),
            None => Vec::new(),
        };
        if let Some(failure) = failure {
            self.metrics.upstream_failed(&self.upstream_name, failure);
        }
        let (_, error) = reject.api_error();
        tracing::warn!(
            upstream = %self.upstream_name,
            code = error.code.as_deref().unwrap_or("-"),
            "stream ended with an error event"
        );
        bytes.extend_from_slice(&error.to_sse_event());
        Poll::Ready(Some(Ok(Frame::data(Bytes::from(bytes)))))
    }

    /// Ends the stream after the upstream stopped: cleanly after `[DONE]`, otherwise with an
    /// error event.
    fn conclude(&mut self, stop: Stop) -> PollFrame {
        let upstream = self.upstream_name.clone();
        match stop {
            Stop::Ended => match self.framer.end() {
                StreamEnd::Done => {
                    self.finished = true;
                    Poll::Ready(None)
                }
                StreamEnd::MissingDone => self.fail(
                    Some(UpstreamFailure::BadResponse),
                    Reject::UpstreamBadResponse {
                        upstream,
                        reason: "stream closed before [DONE]",
                    },
                ),
                StreamEnd::PartialEvent => self.fail(
                    Some(UpstreamFailure::Reset),
                    Reject::UpstreamReset { upstream },
                ),
            },
            Stop::Broken => self.fail(
                Some(UpstreamFailure::Reset),
                Reject::UpstreamReset { upstream },
            ),
            Stop::Oversized => self.fail(
                Some(UpstreamFailure::BadResponse),
                Reject::UpstreamBadResponse {
                    upstream,
                    reason: "stream event too large",
                },
            ),
            Stop::Idle => self.fail(
                Some(UpstreamFailure::Timeout),
                Reject::UpstreamTimeout {
                    upstream,
                    phase: TimeoutPhase::Idle,
                },
            ),
        }
    }

    /// Polls the idle timer; re-arms it lazily so data chunks cost no timer update.
    fn idle_expired(&mut self, cx: &mut Context<'_>) -> bool {
        loop {
            if self.idle_timer.as_mut().poll(cx).is_pending() {
                return false;
            }
            let deadline = self.last_data + self.idle;
            if Instant::now() >= deadline {
                return true;
            }
            self.idle_timer.as_mut().reset(deadline.into());
        }
    }

    /// Drains every upstream chunk available now into `batch`; returns why it stopped early,
    /// or `None` when the upstream has nothing more right now (or the batch is full).
    fn drain_available(&mut self, cx: &mut Context<'_>, batch: &mut Chunks) -> Option<Stop> {
        while batch.len() < MAX_BATCH_BYTES {
            match Pin::new(&mut self.upstream).poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => {
                    let Ok(data) = frame.into_data() else {
                        continue;
                    };
                    self.last_data = Instant::now();
                    match self.framer.push(data) {
                        Ok(events) => batch.push(events),
                        Err(_) => return Some(Stop::Oversized),
                    }
                }
                Poll::Ready(Some(Err(_))) => return Some(Stop::Broken),
                Poll::Ready(None) => return Some(Stop::Ended),
                Poll::Pending => return None,
            }
        }
        None
    }
}

impl Body for SseBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> PollFrame {
        if self.finished {
            return Poll::Ready(None);
        }
        if let Some(stop) = self.deferred.take() {
            return self.conclude(stop);
        }
        if self.cut.as_mut().poll(cx).is_ready() {
            return self.fail(None, Reject::ShuttingDown);
        }
        loop {
            let mut batch = Chunks::default();
            let stop = self.drain_available(cx, &mut batch);
            let mut events = batch.into_bytes();
            let drained = events.is_some();
            if let Some(raw) = events.take() {
                let kept = self.usage.tap.observe(raw);
                events = (!kept.is_empty()).then_some(kept);
            }
            if let (Some(guard), Some(raw)) = (&mut self.guard, &events) {
                let out = guard.push(raw);
                if out.blocked {
                    self.finished = true;
                    return Poll::Ready(Some(Ok(Frame::data(Bytes::from(out.bytes)))));
                }
                events = (!out.bytes.is_empty()).then(|| Bytes::from(out.bytes));
            }
            return match (events, stop) {
                (Some(events), stop) => {
                    self.deferred = stop;
                    Poll::Ready(Some(Ok(Frame::data(events))))
                }
                (None, Some(stop)) => self.conclude(stop),
                // The guard holds everything drained so far: read on (the upstream either has
                // more or registers the waker).
                (None, None) if drained => continue,
                (None, None) if self.idle_expired(cx) => self.conclude(Stop::Idle),
                (None, None) => Poll::Pending,
            };
        }
    }

    fn is_end_stream(&self) -> bool {
        self.finished
    }
}
