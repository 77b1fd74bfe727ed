//! The admin listener: HTTP/1.1 on `admin.listen`, separate from the traffic port, with
//! bounded connections, header read timeout and graceful shutdown.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use super::ControlPlane;
use crate::server::ServeError;

/// How long a client may take to send a request's headers.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// Open admin connections, at most; further clients wait in the listen backlog. People and
/// scripts use this port, so a few hundred is plenty.
const MAX_CONNECTIONS: usize = 256;
/// How long shutdown waits for in-flight admin requests.
const DRAIN: Duration = Duration::from_secs(5);

/// A bound admin listener serving a [`ControlPlane`].
pub struct AdminServer {
    listener: TcpListener,
    plane: Arc<ControlPlane>,
}

impl std::fmt::Debug for AdminServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminServer")
            .field("local_addr", &self.local_addr())
            .finish_non_exhaustive()
    }
}

impl AdminServer {
    /// Binds `addr` (port 0 picks a free port; see [`AdminServer::local_addr`]).
    pub async fn bind(addr: SocketAddr, plane: Arc<ControlPlane>) -> Result<Self, ServeError> {
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| ServeError::Bind { addr, source })?;
        Ok(Self { listener, plane })
    }

    /// The bound address.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.listener.local_addr().ok()
    }

    /// Serves until `shutdown` completes, then lets in-flight requests finish (up to 5 s).
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        let Self { listener, plane } = self;
        let graceful = GracefulShutdown::new();
        let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
        tokio::pin!(shutdown);
        loop {
            let slot = tokio::select! {
                slot = slots.clone().acquire_owned() => slot,
                () = &mut shutdown => break,
            };
            let Ok(slot) = slot else { break };
            tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok((stream, _peer)) => {
                        let service_plane = plane.clone();
                        let service = service_fn(move |request| {
                            let plane = service_plane.clone();
                            async move { Ok::<_, Infallible>(plane.handle(request).await) }
                        });
                        let connection = http1::Builder::new()
                            .timer(TokioTimer::new())
                            .header_read_timeout(HEADER_TIMEOUT)
                            .max_buf_size(64 * 1024)
                            .serve_connection(TokioIo::new(stream), service);
                        let connection = graceful.watch(connection);
                        tokio::spawn(async move {
                            if let Err(error) = connection.await {
                                tracing::debug!(error = %error, "admin connection ended with an error");
                            }
                            drop(slot);
                        });
                    }
                    Err(error) => {
                        tracing::warn!(error = %error, "admin accept failed");
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                },
                () = &mut shutdown => break,
            }
        }
        drop(listener);
        if tokio::time::timeout(DRAIN, graceful.shutdown())
            .await
            .is_err()
        {
            tracing::warn!("admin connections still open after the drain timeout; closing them");
        }
    }
}
