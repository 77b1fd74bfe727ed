//! The streamed-response body: forwards upstream SSE bytes in whole events (see
//! `portcullis_openai::SseFramer`), enforces the idle timeout, and ends the stream with an
//! SSE error event when the upstream fails, goes silent, or the gateway's drain deadline
//! passes. Whatever was already sent cannot be recalled; the client always receives whole
//! events followed, on failure, by one `data: {"error": …}` event and no `[DONE]`.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body::{Body, Frame};
use hyper::body::Incoming;
use portcullis_openai::{SseFramer, StreamEnd};
use portcullis_telemetry::{Metrics, UpstreamFailure};
use tokio::sync::watch;
use tokio::time::Sleep;

use crate::body::BodyError;
use crate::reject::{Reject, TimeoutPhase};

/// Largest unfinished event held back. A chunk with a long tool-call argument can be large,
/// but a single event beyond this means a broken upstream; raising it raises per-stream memory.
const MAX_EVENT_BYTES: usize = 1024 * 1024;

type CutSignal = Pin<Box<dyn Future<Output = ()> + Send>>;

/// See the module docs.
pub(crate) struct SseBody {
    upstream: Incoming,
    framer: SseFramer,
    idle: Duration,
    idle_timer: Pin<Box<Sleep>>,
    last_data: Instant,
    cut: CutSignal,
    finished: bool,
    upstream_name: Arc<str>,
    metrics: Arc<Metrics>,
}

impl SseBody {
    pub(crate) fn new(
        upstream: Incoming,
        idle: Duration,
        mut cut: watch::Receiver<bool>,
        upstream_name: Arc<str>,
        metrics: Arc<Metrics>,
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
            upstream_name,
            metrics,
        }
    }

    /// Ends the stream with an error event.
    fn fail(
        &mut self,
        failure: Option<UpstreamFailure>,
        reject: Reject,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        self.finished = true;
        if let Some(failure) = failure {
            self.metrics.upstream_failed(&self.upstream_name, failure);
        }
        let (_, error) = reject.api_error();
        tracing::warn!(upstream = %self.upstream_name, code = error.code.unwrap_or("-"), "stream ended with an error event");
        Poll::Ready(Some(Ok(Frame::data(Bytes::from(error.to_sse_event())))))
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
}

impl Body for SseBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        if self.finished {
            return Poll::Ready(None);
        }
        if self.cut.as_mut().poll(cx).is_ready() {
            return self.fail(None, Reject::ShuttingDown);
        }
        loop {
            match Pin::new(&mut self.upstream).poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => {
                    let Ok(data) = frame.into_data() else {
                        continue;
                    };
                    self.last_data = Instant::now();
                    match self.framer.push(data) {
                        Ok(events) if events.is_empty() => continue,
                        Ok(events) => return Poll::Ready(Some(Ok(Frame::data(events)))),
                        Err(_) => {
                            let upstream = self.upstream_name.clone();
                            return self.fail(
                                Some(UpstreamFailure::BadResponse),
                                Reject::UpstreamBadResponse {
                                    upstream,
                                    reason: "stream event too large",
                                },
                            );
                        }
                    }
                }
                Poll::Ready(Some(Err(_))) => {
                    let upstream = self.upstream_name.clone();
                    return self.fail(
                        Some(UpstreamFailure::Reset),
                        Reject::UpstreamReset { upstream },
                    );
                }
                Poll::Ready(None) => {
                    let upstream = self.upstream_name.clone();
                    return match self.framer.end() {
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
                    };
                }
                Poll::Pending => {
                    if self.idle_expired(cx) {
                        let upstream = self.upstream_name.clone();
                        return self.fail(
                            Some(UpstreamFailure::Timeout),
                            Reject::UpstreamTimeout {
                                upstream,
                                phase: TimeoutPhase::Idle,
                            },
                        );
                    }
                    return Poll::Pending;
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.finished
    }
}
