//! The listener and the dispatch: which path goes to which handler, the accept loop, and
//! graceful shutdown.
//!
//! Shutdown: stop accepting and report not-ready; ask every connection to finish its
//! in-flight exchanges (HTTP/1.1 closes after the current response, HTTP/2 sends GOAWAY);
//! when `shutdown.drain_timeout_ms` passes, streams still open are ended with an SSE error
//! event (`shutting_down`) so clients see a clean failure, not a cut connection.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use arc_swap::ArcSwap;
use http::{Method, Request, Response};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use portcullis_openai::Endpoint;
use portcullis_telemetry::Metrics;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::body::ProxyBody;
use crate::exchange::{self, Exchange};
use crate::reject::Reject;
use crate::snapshot::Snapshot;
use crate::{admin, models, passthrough};

/// After the drain deadline has cut the remaining streams, how long connections get to flush
/// the final error events before the process stops waiting.
const CUT_FLUSH: Duration = Duration::from_secs(2);

/// Shared state of a running gateway: the current snapshot, metrics and lifecycle flags.
pub struct Gateway {
    snapshot: ArcSwap<Snapshot>,
    mcp: crate::mcp::McpState,
    metrics: Arc<Metrics>,
    ready: AtomicBool,
    cut_streams: watch::Sender<bool>,
    services: crate::services::Services,
}

/// What a request path maps to.
enum Route {
    Guarded(Endpoint),
    Models,
    /// `GET /v1/models/{id}`; holds the raw (still percent-encoded) id.
    Model(String),
    Passthrough(portcullis_config::UpstreamId),
}

impl Route {
    fn label(&self) -> &'static str {
        match self {
            Self::Guarded(endpoint) => endpoint.label(),
            Self::Models | Self::Model(_) => "models",
            Self::Passthrough(_) => "passthrough",
        }
    }

    fn resolve(method: &Method, path: &str, snapshot: &Snapshot) -> Result<Self, Reject> {
        let (route, allowed) = match path {
            "/v1/chat/completions" => (Self::Guarded(Endpoint::ChatCompletions), "POST"),
            "/v1/completions" => (Self::Guarded(Endpoint::Completions), "POST"),
            "/v1/embeddings" => (Self::Guarded(Endpoint::Embeddings), "POST"),
            "/v1/models" => (Self::Models, "GET"),
            _ if path.len() > "/v1/models/".len() && path.starts_with("/v1/models/") => {
                (Self::Model(path["/v1/models/".len()..].to_string()), "GET")
            }
            _ => {
                return snapshot
                    .config()
                    .passthrough_for(path)
                    .map(|rule| Self::Passthrough(rule.upstream))
                    .ok_or(Reject::RouteNotFound);
            }
        };
        if method.as_str() == allowed {
            Ok(route)
        } else {
            Err(Reject::MethodNotAllowed { allow: allowed })
        }
    }
}

impl Gateway {
    /// A gateway serving `snapshot`; not ready until a [`Server`] runs it.
    pub fn new(snapshot: Snapshot, metrics: Arc<Metrics>) -> Arc<Self> {
        Self::with_services(snapshot, metrics, crate::services::Services::none())
    }

    /// A gateway with process-wide services (store, approvals, audit log).
    pub fn with_services(
        snapshot: Snapshot,
        metrics: Arc<Metrics>,
        services: crate::services::Services,
    ) -> Arc<Self> {
        let (cut_streams, _) = watch::channel(false);
        Arc::new(Self {
            snapshot: ArcSwap::from_pointee(snapshot),
            mcp: crate::mcp::McpState::new(),
            metrics,
            ready: AtomicBool::new(false),
            cut_streams,
            services,
        })
    }

    /// The process-wide services.
    pub fn services(&self) -> &crate::services::Services {
        &self.services
    }

    /// The current snapshot.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.snapshot.load_full()
    }

    /// Replaces the whole snapshot. Exchanges in flight keep the one they started with.
    pub fn swap(&self, snapshot: Snapshot) {
        self.snapshot.store(Arc::new(snapshot));
    }

    /// The metrics registry.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// Whether `/readyz` reports ready.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Relaxed)
    }

    pub(crate) fn mcp_state(&self) -> &crate::mcp::McpState {
        &self.mcp
    }

    pub(crate) fn cut_signal(&self) -> watch::Receiver<bool> {
        self.cut_streams.subscribe()
    }

    /// Answers one request. Never fails: every error is an HTTP response.
    pub async fn handle(&self, request: Request<Incoming>) -> Response<ProxyBody> {
        match (request.method(), request.uri().path()) {
            (&Method::GET, "/healthz") => admin::healthz(),
            (&Method::GET, "/readyz") => admin::readyz(self.is_ready()),
            (&Method::GET, "/metrics") => admin::metrics(&self.metrics),
            (_, path) if path.starts_with("/mcp/") => {
                let server = path["/mcp/".len()..].trim_end_matches('/').to_owned();
                let snapshot = self.snapshot.load_full();
                let _in_flight = self.metrics.request_started();
                crate::mcp::handle(
                    &self.mcp,
                    &snapshot,
                    &self.metrics,
                    &self.services,
                    request,
                    &server,
                )
                .await
            }
            _ => self.api(request).await,
        }
    }

    /// One API exchange, with one consistent snapshot from start to finish.
    async fn api(&self, request: Request<Incoming>) -> Response<ProxyBody> {
        let snapshot = self.snapshot.load_full();
        let _in_flight = self.metrics.request_started();
        let mut ex = Exchange::start(&request, self.services.traces.as_ref());
        let result = self.dispatch(&snapshot, &mut ex, request).await;
        let mut response = result.unwrap_or_else(|reject| {
            ex.rejected(&reject);
            reject.into_response()
        });
        ex.finish(&mut response, &snapshot, &self.metrics);
        response
    }

    async fn dispatch(
        &self,
        snapshot: &Arc<Snapshot>,
        ex: &mut Exchange,
        request: Request<Incoming>,
    ) -> Result<Response<ProxyBody>, Reject> {
        let route = Route::resolve(request.method(), request.uri().path(), snapshot)?;
        ex.route = route.label();
        let principal = exchange::authenticate(snapshot, request.headers(), &self.metrics).await?;
        ex.principal = Some(principal);
        let permit = snapshot
            .limiter()
            .clone()
            .try_acquire_owned()
            .map_err(|_| Reject::Overloaded)?;
        match route {
            Route::Guarded(endpoint) => {
                exchange::run(self, snapshot, ex, endpoint, request, permit).await
            }
            Route::Models => Ok(models::list(self, snapshot, ex).await),
            Route::Model(id) => models::retrieve(self, snapshot, ex, &id).await,
            Route::Passthrough(upstream) => {
                passthrough::forward(self, snapshot, ex, upstream, request, permit).await
            }
        }
    }
}

/// The listener could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// Binding the listen address failed.
    #[error("cannot listen on {addr}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// A bound listener serving a [`Gateway`].
pub struct Server {
    listener: TcpListener,
    gateway: Arc<Gateway>,
}

impl Server {
    /// Binds the snapshot's listen address.
    pub async fn bind(gateway: Arc<Gateway>) -> Result<Self, ServeError> {
        let addr = gateway.snapshot().config().listen;
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| ServeError::Bind { addr, source })?;
        Ok(Self { listener, gateway })
    }

    /// The bound address (useful with port 0).
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.listener.local_addr().ok()
    }

    /// Serves until `shutdown` completes, then drains (see the module docs).
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        let Self { listener, gateway } = self;
        let graceful = GracefulShutdown::new();
        let sweeper = tokio::spawn(crate::mcp::sweep_idle(Arc::downgrade(&gateway)));
        gateway.ready.store(true, Ordering::Relaxed);
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok((stream, _peer)) => serve_connection(&gateway, &graceful, stream),
                    Err(error) => {
                        // Usually EMFILE: back off briefly instead of spinning.
                        tracing::warn!(error = %error, "accept failed");
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                },
                () = &mut shutdown => break,
            }
        }
        gateway.ready.store(false, Ordering::Relaxed);
        sweeper.abort();
        drop(listener);
        let drain = gateway.snapshot().config().drain_timeout;
        tracing::info!(
            drain_timeout_ms = drain.as_millis() as u64,
            "draining connections"
        );
        let all_closed = graceful.shutdown();
        tokio::pin!(all_closed);
        tokio::select! {
            () = &mut all_closed => tracing::info!("all connections drained"),
            () = tokio::time::sleep(drain) => {
                tracing::warn!("drain timeout passed; ending open streams");
                gateway.cut_streams.send_replace(true);
                if tokio::time::timeout(CUT_FLUSH, &mut all_closed).await.is_err() {
                    tracing::warn!("connections still open after the drain timeout; closing them");
                }
            }
        }
    }
}

fn serve_connection(
    gateway: &Arc<Gateway>,
    graceful: &GracefulShutdown,
    stream: tokio::net::TcpStream,
) {
    // Chat traffic is many small writes (SSE chunks): send them at once.
    let _ = stream.set_nodelay(true);
    let header_timeout = gateway.snapshot().config().server_timeouts.header;
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout)
        .keep_alive(true);
    builder.http2().timer(TokioTimer::new());
    let service_gateway = gateway.clone();
    let service = service_fn(move |request| {
        let gateway = service_gateway.clone();
        async move { Ok::<_, Infallible>(gateway.handle(request).await) }
    });
    let connection = builder
        .serve_connection(TokioIo::new(stream), service)
        .into_owned();
    let connection = graceful.watch(connection);
    tokio::spawn(async move {
        if let Err(error) = connection.await {
            tracing::debug!(error = %error, "connection ended with an error");
        }
    });
}
