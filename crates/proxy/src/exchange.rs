//! One guarded OpenAI exchange, phase by phase:
//!
//! ```text
//! read & limit ──► parse ──► route ──► forward ──► respond (buffered JSON | SSE stream)
//! ```
//!
//! Each phase is a function returning the next value or a [`Reject`]. The client's body bytes
//! are forwarded unchanged (only headers are rewritten), so unknown fields pass through and
//! clean traffic is byte-identical to calling the upstream directly.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::request::Parts;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use hyper::body::Incoming;
use portcullis_config::Config;
use portcullis_core::RequestId;
use portcullis_openai::{Endpoint, RequestProbe, probe_request};
use portcullis_telemetry::{ExchangeRecord, Metrics, UpstreamFailure};
use serde::de::IgnoredAny;
use tokio::sync::OwnedSemaphorePermit;

use crate::body::{ProxyBody, ReadError, Tracked, full, read_limited};
use crate::client::{OutBody, UpstreamBody};
use crate::reject::{Reject, TimeoutPhase};
use crate::server::Gateway;
use crate::snapshot::{Snapshot, UpstreamRuntime};
use crate::sse::SseBody;
use crate::upstream::{self, Outgoing};

/// Longest model name written to a log line.
const MAX_LOGGED_MODEL_CHARS: usize = 100;

/// Bound on an upstream error body read to extract its message.
const MAX_ERROR_BODY_BYTES: u64 = 64 * 1024;

/// What the gateway knows about one exchange; it ends in metrics and an access log line.
pub(crate) struct Exchange {
    pub(crate) id: RequestId,
    pub(crate) route: &'static str,
    pub(crate) model: Option<Arc<str>>,
    /// The model the client asked for, shortened; logged, never a metric label.
    pub(crate) requested_model: Option<String>,
    pub(crate) upstream: Option<(Arc<str>, Duration)>,
    pub(crate) request_bytes: u64,
    pub(crate) reject: Option<(&'static str, &'static str)>,
    started: Instant,
}

impl Exchange {
    pub(crate) fn start<B>(request: &Request<B>) -> Self {
        let client_id = request
            .headers()
            .get("x-request-id")
            .and_then(|v| v.to_str().ok());
        Self {
            id: RequestId::from_client_or_generate(client_id),
            route: "other",
            model: None,
            requested_model: None,
            upstream: None,
            request_bytes: 0,
            reject: None,
            started: Instant::now(),
        }
    }

    /// Stamps the request id on the response, records metrics and writes the access log line.
    pub(crate) fn finish(
        self,
        response: &mut Response<ProxyBody>,
        snapshot: &Snapshot,
        metrics: &Metrics,
    ) {
        if let Ok(id) = HeaderValue::from_str(self.id.as_str()) {
            response.headers_mut().insert("x-request-id", id);
        }
        let status = response.status().as_u16();
        let duration = self.started.elapsed();
        let model = self.model.unwrap_or_else(|| snapshot.model_label(None));
        tracing::info!(
            request_id = %self.id,
            route = self.route,
            model_rule = %model,
            model = self.requested_model.as_deref(),
            status,
            duration_ms = duration.as_secs_f64() * 1000.0,
            upstream = self.upstream.as_ref().map(|(name, _)| name.as_ref()),
            request_bytes = self.request_bytes,
            reject = self.reject.map(|(_, code)| code),
            "exchange"
        );
        metrics.exchange(&ExchangeRecord {
            route: self.route,
            model,
            status,
            duration,
            upstream: self.upstream,
            request_bytes: self.request_bytes,
            reject: self.reject,
        });
    }
}

/// Runs one guarded exchange for `endpoint`.
pub(crate) async fn run(
    gateway: &Gateway,
    snapshot: &Snapshot,
    ex: &mut Exchange,
    endpoint: Endpoint,
    request: Request<Incoming>,
    permit: OwnedSemaphorePermit,
) -> Result<Response<ProxyBody>, Reject> {
    let (parts, body) = request.into_parts();
    let body = read_request_body(body, snapshot.config()).await?;
    ex.request_bytes = body.len() as u64;
    let probe = probe_request(endpoint, &body).map_err(Reject::InvalidRequest)?;
    ex.requested_model = Some(probe.model.chars().take(MAX_LOGGED_MODEL_CHARS).collect());
    let upstream = route(snapshot, ex, &probe)?;
    let response = forward(gateway, ex, upstream, endpoint, &parts, body).await?;
    let limit = snapshot.config().limits.max_response_bytes;
    respond(gateway, ex, upstream, &probe, response, permit, limit).await
}

/// Phase: read & limit.
async fn read_request_body(body: Incoming, config: &Config) -> Result<Bytes, Reject> {
    let limit = config.limits.max_body_bytes;
    read_limited(body, limit, config.server_timeouts.body, None)
        .await
        .map_err(|error| match error {
            ReadError::TooLarge => Reject::BodyTooLarge { limit },
            ReadError::Timeout => Reject::BodyTimeout,
            ReadError::Broken => Reject::BodyAborted,
        })
}

/// Phase: route by model.
fn route<'s>(
    snapshot: &'s Snapshot,
    ex: &mut Exchange,
    probe: &RequestProbe,
) -> Result<&'s UpstreamRuntime, Reject> {
    let matched =
        snapshot
            .config()
            .match_model(&probe.model)
            .ok_or_else(|| Reject::ModelNotFound {
                model: probe.model.clone(),
            })?;
    ex.model = Some(snapshot.model_label(Some(matched.rule)));
    snapshot
        .upstream(matched.upstream)
        .ok_or_else(|| Reject::ModelNotFound {
            model: probe.model.clone(),
        })
}

/// Phase: forward the original body to the upstream.
async fn forward(
    gateway: &Gateway,
    ex: &mut Exchange,
    upstream: &UpstreamRuntime,
    endpoint: Endpoint,
    parts: &Parts,
    body: Bytes,
) -> Result<Response<UpstreamBody>, Reject> {
    let outgoing = Outgoing {
        method: Method::POST,
        path: endpoint.path(),
        query: parts.uri.query(),
        client_headers: &parts.headers,
        content_length: Some(body.len() as u64),
        body: OutBody::Bytes(body),
        request_id: &ex.id,
    };
    let request = upstream::build_request(upstream, outgoing)?;
    let (response, elapsed) = upstream::send(upstream, request, gateway.metrics()).await?;
    ex.upstream = Some((upstream.name.clone(), elapsed));
    Ok(response)
}

/// Phase: respond. Streams go through [`SseBody`]; everything else is read whole (bounded),
/// checked to be JSON, and sent.
async fn respond(
    gateway: &Gateway,
    ex: &Exchange,
    upstream: &UpstreamRuntime,
    probe: &RequestProbe,
    response: Response<UpstreamBody>,
    permit: OwnedSemaphorePermit,
    max_response_bytes: u64,
) -> Result<Response<ProxyBody>, Reject> {
    let is_event_stream = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/event-stream"));
    if !(probe.stream && response.status().is_success() && is_event_stream) {
        return buffered_json(
            gateway,
            ex.route,
            upstream,
            response,
            Some(permit),
            max_response_bytes,
        )
        .await;
    }
    let metrics = gateway.metrics().clone();
    let (parts, body) = response.into_parts();
    let stream = SseBody::new(
        body,
        upstream.config.timeouts.idle,
        gateway.cut_signal(),
        upstream.name.clone(),
        metrics.clone(),
    );
    let gauges = vec![metrics.stream_started()];
    let tracked = Tracked::new(stream, ex.route, metrics, Some(permit), gauges);
    response_with(
        &parts,
        upstream,
        http_body_util::BodyExt::boxed_unsync(tracked),
    )
}

/// Answers with an upstream's non-streamed response: a 5xx becomes a 502; anything else is
/// read whole (bounded, idle timeout), checked to be JSON, and sent with the upstream's status
/// and headers. Every upstream failure is counted.
pub(crate) async fn buffered_json(
    gateway: &Gateway,
    route: &'static str,
    upstream: &UpstreamRuntime,
    response: Response<UpstreamBody>,
    permit: Option<OwnedSemaphorePermit>,
    max_response_bytes: u64,
) -> Result<Response<ProxyBody>, Reject> {
    let metrics = gateway.metrics().clone();
    let status = response.status();
    if status.is_server_error() {
        return Err(upstream_status_error(upstream, response, &metrics).await);
    }
    let (parts, body) = response.into_parts();
    let bytes = read_upstream_body(gateway, upstream, body, max_response_bytes).await?;
    if serde_json::from_slice::<IgnoredAny>(&bytes).is_err() {
        metrics.upstream_failed(&upstream.name, UpstreamFailure::BadResponse);
        let reason = if status.is_success() {
            "body is not JSON"
        } else {
            "error body is not JSON"
        };
        return Err(bad_response(upstream, reason));
    }
    let tracked = Tracked::new(
        http_body_util::Full::new(bytes),
        route,
        metrics,
        permit,
        Vec::new(),
    );
    let body =
        http_body_util::BodyExt::boxed_unsync(http_body_util::BodyExt::map_err(tracked, |never| {
            match never {}
        }));
    response_with(&parts, upstream, body)
}

/// A response with the upstream's status and its forwardable headers.
fn response_with(
    parts: &http::response::Parts,
    upstream: &UpstreamRuntime,
    body: ProxyBody,
) -> Result<Response<ProxyBody>, Reject> {
    let mut out = Response::builder().status(parts.status);
    if let Some(headers) = out.headers_mut() {
        upstream::copy_response_headers(&parts.headers, headers);
    }
    out.body(body)
        .map_err(|_| bad_response(upstream, "invalid response headers"))
}

async fn read_upstream_body(
    gateway: &Gateway,
    upstream: &UpstreamRuntime,
    body: UpstreamBody,
    limit: u64,
) -> Result<Bytes, Reject> {
    let timeouts = upstream.config.timeouts;
    let read = read_limited(body, limit, timeouts.first_byte, Some(timeouts.idle)).await;
    read.map_err(|error| {
        let name = upstream.name.clone();
        let (failure, reject) = match error {
            ReadError::TooLarge => (
                UpstreamFailure::BadResponse,
                bad_response(upstream, "response too large"),
            ),
            ReadError::Timeout => (
                UpstreamFailure::Timeout,
                Reject::UpstreamTimeout {
                    upstream: name,
                    phase: TimeoutPhase::Idle,
                },
            ),
            ReadError::Broken => (
                UpstreamFailure::Reset,
                Reject::UpstreamReset { upstream: name },
            ),
        };
        gateway.metrics().upstream_failed(&upstream.name, failure);
        reject
    })
}

/// A 5xx from the upstream becomes a 502, carrying the upstream's message when it sent an
/// OpenAI-shaped error.
async fn upstream_status_error(
    upstream: &UpstreamRuntime,
    response: Response<UpstreamBody>,
    metrics: &Metrics,
) -> Reject {
    metrics.upstream_failed(&upstream.name, UpstreamFailure::ServerError);
    let status = response.status().as_u16();
    let idle = upstream.config.timeouts.idle;
    let body = read_limited(response.into_body(), MAX_ERROR_BODY_BYTES, idle, Some(idle)).await;
    let message = body.ok().and_then(|bytes| {
        let value: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
        value
            .pointer("/error/message")?
            .as_str()
            .map(str::to_string)
    });
    tracing::warn!(upstream = %upstream.name, status, "upstream returned a server error");
    Reject::UpstreamStatus {
        upstream: upstream.name.clone(),
        status,
        message,
    }
}

fn bad_response(upstream: &UpstreamRuntime, reason: &'static str) -> Reject {
    Reject::UpstreamBadResponse {
        upstream: upstream.name.clone(),
        reason,
    }
}

/// A JSON response built by the gateway itself (e.g. `/v1/models`).
pub(crate) fn json_response(status: StatusCode, body: Vec<u8>) -> Response<ProxyBody> {
    let mut response = Response::new(full(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}
