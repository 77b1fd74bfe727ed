//! Probe and scrape endpoints. They bypass the concurrency limit so that Kubernetes can
//! always tell a busy gateway from a dead one.

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use portcullis_telemetry::Metrics;

use crate::body::{ProxyBody, full};

/// `/healthz`: the process is alive and serving HTTP.
pub(crate) fn healthz() -> Response<ProxyBody> {
    text(StatusCode::OK, "ok\n", "text/plain; charset=utf-8")
}

/// `/readyz`: configuration loaded and listener up, and not draining.
pub(crate) fn readyz(ready: bool) -> Response<ProxyBody> {
    if ready {
        text(StatusCode::OK, "ready\n", "text/plain; charset=utf-8")
    } else {
        text(
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready\n",
            "text/plain; charset=utf-8",
        )
    }
}

/// `/metrics`: Prometheus text format.
pub(crate) fn metrics(metrics: &Metrics) -> Response<ProxyBody> {
    let mut response = Response::new(full(Bytes::from(metrics.encode())));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
    );
    response
}

fn text(status: StatusCode, body: &'static str, content_type: &'static str) -> Response<ProxyBody> {
    let mut response = Response::new(full(Bytes::from_static(body.as_bytes())));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}
