//! Bodies: bounded reading of request and response bodies, and the response body type.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use http_body_util::combinators::UnsyncBoxBody;
use portcullis_telemetry::{Metrics, StreamGauge};
use tokio::sync::OwnedSemaphorePermit;

/// Error type of response bodies. Bodies produced here never fail (upstream failures become
/// SSE error events or are handled before the response starts), except passthrough bodies,
/// whose upstream errors are passed on and end the connection.
pub type BodyError = Box<dyn std::error::Error + Send + Sync>;

/// Every response the gateway sends.
pub type ProxyBody = UnsyncBoxBody<Bytes, BodyError>;

/// A complete body.
pub fn full(bytes: Bytes) -> ProxyBody {
    http_body_util::Full::new(bytes)
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// Why a bounded read stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadError {
    /// More than the limit.
    TooLarge,
    /// No complete body in time (total for requests; between frames for responses).
    Timeout,
    /// The peer's stream failed.
    Broken,
}

/// Reads a whole body, refusing more than `limit` bytes and giving up after `deadline`
/// (overall) or after `idle` without a frame. The content-length header, when present, is
/// checked before anything is read.
pub async fn read_limited<B>(
    body: B,
    limit: u64,
    deadline: Duration,
    idle: Option<Duration>,
) -> Result<Bytes, ReadError>
where
    B: Body<Data = Bytes> + Unpin,
{
    if body.size_hint().lower() > limit {
        return Err(ReadError::TooLarge);
    }
    let read = read_frames(body, limit, idle);
    tokio::time::timeout(deadline, read)
        .await
        .unwrap_or(Err(ReadError::Timeout))
}

async fn read_frames<B>(mut body: B, limit: u64, idle: Option<Duration>) -> Result<Bytes, ReadError>
where
    B: Body<Data = Bytes> + Unpin,
{
    let mut chunks = Chunks::default();
    loop {
        let next = match idle {
            Some(idle) => tokio::time::timeout(idle, body.frame())
                .await
                .map_err(|_| ReadError::Timeout)?,
            None => body.frame().await,
        };
        let Some(frame) = next else { break };
        let frame = frame.map_err(|_| ReadError::Broken)?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        if (chunks.len() + data.len()) as u64 > limit {
            return Err(ReadError::TooLarge);
        }
        chunks.push(data);
    }
    Ok(chunks.into_bytes().unwrap_or_default())
}

/// Joins byte chunks, without copying in the common case of a single chunk: the first is kept
/// as is, and only a second one starts a buffer.
#[derive(Default)]
pub(crate) struct Chunks {
    first: Option<Bytes>,
    joined: Option<BytesMut>,
}

impl Chunks {
    /// Appends a chunk (empty ones are ignored).
    pub(crate) fn push(&mut self, chunk: Bytes) {
        if chunk.is_empty() {
            return;
        }
        match (&mut self.joined, self.first.take()) {
            (Some(joined), _) => joined.extend_from_slice(&chunk),
            (None, None) => self.first = Some(chunk),
            (None, Some(first)) => {
                // Token streams add many similar chunks: reserve room for several more.
                let mut joined = BytesMut::with_capacity(first.len() + chunk.len() * 8);
                joined.extend_from_slice(&first);
                joined.extend_from_slice(&chunk);
                self.joined = Some(joined);
            }
        }
    }

    /// Bytes held so far.
    pub(crate) fn len(&self) -> usize {
        self.first.as_ref().map_or(0, Bytes::len) + self.joined.as_ref().map_or(0, BytesMut::len)
    }

    /// Everything pushed, or `None` if nothing was.
    pub(crate) fn into_bytes(self) -> Option<Bytes> {
        match (self.first, self.joined) {
            (_, Some(joined)) => Some(joined.freeze()),
            (Some(first), None) => Some(first),
            (None, None) => None,
        }
    }
}

/// Wraps a response body to hold the request's concurrency permit until the body is done,
/// keep the active-stream gauge up for streams, and count bytes sent once, at the end.
pub(crate) struct Tracked<B> {
    inner: B,
    sent: u64,
    route: &'static str,
    metrics: Arc<Metrics>,
    _permit: Option<OwnedSemaphorePermit>,
    _gauges: Vec<StreamGauge>,
}

impl<B> Tracked<B> {
    pub(crate) fn new(
        inner: B,
        route: &'static str,
        metrics: Arc<Metrics>,
        permit: Option<OwnedSemaphorePermit>,
        gauges: Vec<StreamGauge>,
    ) -> Self {
        Self {
            inner,
            sent: 0,
            route,
            metrics,
            _permit: permit,
            _gauges: gauges,
        }
    }
}

impl<B> Drop for Tracked<B> {
    fn drop(&mut self) {
        self.metrics.response_bytes(self.route, self.sent);
    }
}

impl<B> Body for Tracked<B>
where
    B: Body<Data = Bytes> + Unpin,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled
            && let Some(data) = frame.data_ref()
        {
            self.sent += data.len() as u64;
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::{Full, StreamBody};

    fn frames(
        parts: Vec<&'static str>,
    ) -> StreamBody<impl futures_util::Stream<Item = Result<Frame<Bytes>, std::io::Error>>> {
        StreamBody::new(futures_util::stream::iter(
            parts
                .into_iter()
                .map(|p| Ok(Frame::data(Bytes::from_static(p.as_bytes())))),
        ))
    }

    #[tokio::test]
    async fn reads_within_the_limit() {
        let body = Full::new(Bytes::from_static(b"hello"));
        let read = read_limited(body, 5, Duration::from_secs(1), None).await;
        assert_eq!(read, Ok(Bytes::from_static(b"hello")));
        let read = read_limited(
            frames(vec!["he", "ll", "o"]),
            5,
            Duration::from_secs(1),
            None,
        )
        .await;
        assert_eq!(read, Ok(Bytes::from_static(b"hello")));
    }

    #[tokio::test]
    async fn refuses_more_than_the_limit() {
        let body = Full::new(Bytes::from_static(b"hello!"));
        let read = read_limited(body, 5, Duration::from_secs(1), None).await;
        assert_eq!(
            read,
            Err(ReadError::TooLarge),
            "known length is refused before reading"
        );
        let read = read_limited(frames(vec!["hel", "lo!"]), 5, Duration::from_secs(1), None).await;
        assert_eq!(
            read,
            Err(ReadError::TooLarge),
            "streamed body is cut at the limit"
        );
    }

    #[tokio::test]
    async fn a_stalled_body_times_out() {
        let stalled = StreamBody::new(futures_util::stream::pending::<
            Result<Frame<Bytes>, std::io::Error>,
        >());
        let read = read_limited(stalled, 5, Duration::from_millis(50), None).await;
        assert_eq!(read, Err(ReadError::Timeout));
    }
}
