//! The running server: options, start, accept loop, shutdown.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};

use crate::record::RecordedRequest;
use crate::router::{self, Shared};

/// Pause after a failed `accept` (e.g. out of file descriptors) so the loop does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(10);

/// How the mock answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MockOptions {
    /// Content deltas in every streamed reply (values below 1 count as 1). Default 8.
    pub stream_chunks: usize,
    /// Model ids listed by `GET /v1/models`. Default `["mock-gpt", "mock-embed"]`.
    pub models: Vec<String>,
}

impl Default for MockOptions {
    fn default() -> Self {
        MockOptions {
            stream_chunks: 8,
            models: vec!["mock-gpt".to_owned(), "mock-embed".to_owned()],
        }
    }
}

/// A running mock upstream. Dropping it (or [`MockUpstream::shutdown`]) stops it and closes
/// every open connection.
pub struct MockUpstream {
    addr: SocketAddr,
    shared: Arc<Shared>,
    accept_task: JoinHandle<()>,
}

impl MockUpstream {
    /// Starts a mock on `127.0.0.1` with an ephemeral port and default options.
    ///
    /// Must be called inside a tokio runtime, which then runs the server.
    pub async fn start() -> std::io::Result<Self> {
        Self::start_with(
            SocketAddr::from(([127, 0, 0, 1], 0)),
            MockOptions::default(),
        )
        .await
    }

    /// Starts a mock listening on `addr` (port 0 picks a free port) with `options`.
    ///
    /// Must be called inside a tokio runtime, which then runs the server.
    pub async fn start_with(addr: SocketAddr, options: MockOptions) -> std::io::Result<Self> {
        let shared =
            Shared::new(options.stream_chunks, &options.models).map_err(std::io::Error::other)?;
        let shared = Arc::new(shared);
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let accept_task = tokio::spawn(accept_loop(listener, Arc::clone(&shared)));
        Ok(MockUpstream {
            addr,
            shared,
            accept_task,
        })
    }

    /// The address the mock listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The OpenAI base URL of the mock, e.g. `http://127.0.0.1:41234/v1`.
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// Every request received so far (the newest 1000 at most), oldest first.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.recorder.all()
    }

    /// The most recent request, if any.
    pub fn last_request(&self) -> Option<RecordedRequest> {
        self.shared.recorder.last()
    }

    /// Stops accepting, closes every open connection and waits for the listener to close.
    pub async fn shutdown(mut self) {
        self.accept_task.abort();
        // The task can only end by this abort; its outcome carries nothing to report.
        let _cancelled = (&mut self.accept_task).await;
    }
}

impl std::fmt::Debug for MockUpstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The request log is left out: it can hold a thousand requests.
        f.debug_struct("MockUpstream")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl Drop for MockUpstream {
    fn drop(&mut self) {
        // Dropping the accept loop drops its `JoinSet`, which aborts every connection task.
        self.accept_task.abort();
    }
}

/// Accepts connections until aborted. Connection tasks live in a `JoinSet` owned here, so
/// aborting this task ends them all, hanging and stalled ones included.
async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    let builder = Arc::new(connection_builder());
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => {
                    let task = serve_connection(Arc::clone(&builder), stream, Arc::clone(&shared));
                    connections.spawn(task);
                }
                Err(_) => tokio::time::sleep(ACCEPT_BACKOFF).await,
            },
            Some(_finished) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

/// HTTP/1.1 with keep-alive, and HTTP/2 with prior knowledge, on the same port.
fn connection_builder() -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .keep_alive(true)
        // No header read timeout: it would also close idle keep-alive connections, which makes
        // client pools race against the mock in long benchmark runs.
        .header_read_timeout(None);
    builder
}

async fn serve_connection(
    builder: Arc<auto::Builder<TokioExecutor>>,
    stream: TcpStream,
    shared: Arc<Shared>,
) {
    // Small SSE events must leave at once; a failure here only costs latency.
    let _nodelay = stream.set_nodelay(true);
    let service = service_fn(move |request| router::serve(Arc::clone(&shared), request));
    // A connection error is the client's business (or an injected fault): nothing to report.
    let _closed = builder
        .serve_connection(TokioIo::new(stream), service)
        .await;
}
