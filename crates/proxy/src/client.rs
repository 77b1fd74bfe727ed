//! The upstream HTTP/1.1 client: a small connection pool whose connections are driven *inside*
//! the task that uses them.
//!
//! Why not hyper-util's pooled client: it runs each connection in its own task and hands body
//! chunks to the request's task one at a time through a one-slot channel, so a stream of 50
//! tokens becomes 50 task switches and 50 `writev`s to the client. Here the exchange's task
//! polls the connection itself ([`UpstreamBody::poll_frame`] polls the connection, then the
//! body), so one poll decodes every chunk already buffered from the socket, and the SSE body
//! sends them as one frame — as nginx does.
//!
//! Pooling: a connection whose response body was read to the end goes back to the upstream's
//! idle list (LIFO, bounded, 55 s idle limit). Idle connections are not polled; one closed by
//! the upstream meanwhile is detected when taken (its driver completes) or fails at send time,
//! and a request whose body can be replayed is then retried once on a fresh connection.
//! HTTP/2 to upstreams is not used: model servers all speak HTTP/1.1, and ALPN offers only it.

use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderValue, Request, Response, Uri, header};
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use hyper::client::conn::http1;
use hyper_rustls::{HttpsConnector, MaybeHttpsStream};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioIo;
use tower_service::Service;

use crate::body::{ProxyBody, full};

type Io = MaybeHttpsStream<TokioIo<tokio::net::TcpStream>>;
type Driver = Pin<Box<http1::Connection<Io, ProxyBody>>>;

/// How long an idle pooled upstream connection is kept. Below the 60–120 s idle timeouts of
/// common model servers and load balancers, so the gateway stops reusing a connection before
/// the upstream closes it.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(55);

/// Why an upstream request failed before a response arrived.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ClientError {
    /// TCP or TLS connect failed.
    #[error("connect failed")]
    Connect(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// TCP or TLS connect took longer than the connect timeout.
    #[error("connect timed out")]
    ConnectTimeout,
    /// The connection failed while sending or before the response head.
    #[error("request failed")]
    Request(#[source] hyper::Error),
}

/// A request body: replayable bytes (retried once on a stale pooled connection) or a stream.
pub(crate) enum OutBody {
    Bytes(Bytes),
    Stream(ProxyBody),
}

/// One upstream's connection pool. See the module docs.
pub(crate) struct UpstreamClient {
    connector: HttpsConnector<HttpConnector>,
    /// `scheme://authority/`, what the connector dials.
    connect_uri: Uri,
    /// The `host` header every request carries.
    host: HeaderValue,
    connect_timeout: Duration,
    max_idle: usize,
    idle: Mutex<Vec<(Conn, Instant)>>,
}

impl std::fmt::Debug for UpstreamClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamClient")
            .field("connect_uri", &self.connect_uri)
            .finish_non_exhaustive()
    }
}

/// A live connection: the request sender and the connection driver.
struct Conn {
    sender: http1::SendRequest<ProxyBody>,
    driver: Driver,
    /// The driver future completed (connection closed); it must not be polled again.
    closed: bool,
}

impl Conn {
    /// Polls the driver unless it already completed; returns whether the connection is closed.
    fn drive(&mut self, cx: &mut Context<'_>) -> bool {
        if !self.closed && self.driver.as_mut().poll(cx).is_ready() {
            self.closed = true;
        }
        self.closed
    }
}

impl UpstreamClient {
    pub(crate) fn new(
        connector: HttpsConnector<HttpConnector>,
        connect_uri: Uri,
        host: HeaderValue,
        connect_timeout: Duration,
        max_idle: usize,
    ) -> Self {
        Self {
            connector,
            connect_uri,
            host,
            connect_timeout,
            max_idle,
            idle: Mutex::new(Vec::new()),
        }
    }

    /// Sends `head` + `body` and returns the response once its head arrived. The caller bounds
    /// the wait (first-byte timeout).
    pub(crate) async fn request(
        self: &Arc<Self>,
        head: http::request::Parts,
        body: OutBody,
    ) -> Result<Response<UpstreamBody>, ClientError> {
        let (pooled, replay) = match &body {
            OutBody::Bytes(bytes) => (self.take_idle(), Some(bytes.clone())),
            OutBody::Stream(_) => (self.take_idle(), None),
        };
        let reused = pooled.is_some();
        let conn = match pooled {
            Some(conn) => conn,
            None => self.connect().await?,
        };
        let request = self.with_host(Request::from_parts(head.clone(), into_proxy_body(body)));
        match self.send(conn, request).await {
            Ok(response) => Ok(response),
            // A pooled connection the upstream had closed: the request never reached it.
            Err(error) if reused && (error.is_canceled() || error.is_incomplete_message()) => {
                match replay {
                    Some(bytes) => {
                        tracing::debug!(upstream = %self.connect_uri, "stale pooled connection; retrying on a new one");
                        let conn = self.connect().await?;
                        let request = self.with_host(Request::from_parts(head, full(bytes)));
                        self.send(conn, request).await.map_err(ClientError::Request)
                    }
                    None => Err(ClientError::Request(error)),
                }
            }
            Err(error) => Err(ClientError::Request(error)),
        }
    }

    fn with_host(&self, mut request: Request<ProxyBody>) -> Request<ProxyBody> {
        request
            .headers_mut()
            .insert(header::HOST, self.host.clone());
        request
    }

    /// Drives `conn` until `request`'s response head arrives.
    async fn send(
        self: &Arc<Self>,
        mut conn: Conn,
        request: Request<ProxyBody>,
    ) -> Result<Response<UpstreamBody>, hyper::Error> {
        poll_fn(|cx| {
            conn.drive(cx);
            conn.sender.poll_ready(cx)
        })
        .await?;
        let mut response = std::pin::pin!(conn.sender.send_request(request));
        let response = poll_fn(|cx| {
            conn.drive(cx);
            response.as_mut().poll(cx)
        })
        .await?;
        let (parts, incoming) = response.into_parts();
        let body = UpstreamBody {
            incoming,
            conn: Some(conn),
            pool: Arc::clone(self),
        };
        Ok(Response::from_parts(parts, body))
    }

    /// An idle connection that still looks alive, if any.
    fn take_idle(&self) -> Option<Conn> {
        let mut idle = self.idle.lock().ok()?;
        while let Some((mut conn, since)) = idle.pop() {
            if since.elapsed() >= POOL_IDLE_TIMEOUT || conn.sender.is_closed() {
                continue;
            }
            // One poll with a no-op waker tells whether the upstream closed it meanwhile.
            let mut cx = Context::from_waker(Waker::noop());
            if !conn.drive(&mut cx) {
                return Some(conn);
            }
        }
        None
    }

    fn put_idle(&self, conn: Conn) {
        if conn.closed || conn.sender.is_closed() {
            return;
        }
        if let Ok(mut idle) = self.idle.lock() {
            idle.retain(|(_, since)| since.elapsed() < POOL_IDLE_TIMEOUT);
            if idle.len() < self.max_idle {
                idle.push((conn, Instant::now()));
            }
        }
    }

    async fn connect(&self) -> Result<Conn, ClientError> {
        let mut connector = self.connector.clone();
        let uri = self.connect_uri.clone();
        let connecting = async move {
            poll_fn(|cx| connector.poll_ready(cx))
                .await
                .map_err(ClientError::Connect)?;
            let io = connector.call(uri).await.map_err(ClientError::Connect)?;
            http1::handshake(io).await.map_err(ClientError::Request)
        };
        let (sender, driver) = tokio::time::timeout(self.connect_timeout, connecting)
            .await
            .map_err(|_| ClientError::ConnectTimeout)??;
        Ok(Conn {
            sender,
            driver: Box::pin(driver),
            closed: false,
        })
    }
}

fn into_proxy_body(body: OutBody) -> ProxyBody {
    match body {
        OutBody::Bytes(bytes) => full(bytes),
        OutBody::Stream(stream) => stream,
    }
}

/// An upstream response body that drives its connection while it is read, and returns the
/// connection to the pool once the body is complete.
pub(crate) struct UpstreamBody {
    incoming: Incoming,
    conn: Option<Conn>,
    pool: Arc<UpstreamClient>,
}

impl Body for UpstreamBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        if let Some(conn) = self.conn.as_mut() {
            conn.drive(cx);
        }
        let polled = Pin::new(&mut self.incoming).poll_frame(cx);
        if let Poll::Ready(None) = polled
            && let Some(conn) = self.conn.take()
        {
            self.pool.put_idle(conn);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.incoming.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.incoming.size_hint()
    }
}
