//! One guarded OpenAI exchange, phase by phase:
//!
//! ```text
//! read & limit ──► parse ──► route ──► inspect & decide ──► forward ──► respond
//!                                      (guard: detectors,               (buffered JSON inspected
//!                                       policy; deny | redact)           and decided | SSE stream
//!                                                                        through the StreamGuard)
//! ```
//!
//! Each phase is a function returning the next value or a [`Reject`]. The client's body bytes
//! are forwarded unchanged (only headers are rewritten) unless the policy redacts or a canary
//! is inserted, so unknown fields pass through and clean traffic is byte-identical to calling
//! the upstream directly.

use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::request::Parts;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use hyper::body::Incoming;
use portcullis_config::{Config, DenyWith, RouteGuard};
use portcullis_core::{AuthMethod, Principal, RequestId};
use portcullis_openai::{Endpoint, RequestProbe, probe_request};
use portcullis_policy::Action;
use portcullis_telemetry::{AuthOutcome, ExchangeRecord, Metrics, UpstreamFailure};
use serde::de::IgnoredAny;
use tokio::sync::OwnedSemaphorePermit;

use crate::body::{ProxyBody, ReadError, Tracked, full, read_limited};
use crate::client::{OutBody, UpstreamBody};
use crate::guard::stream::StreamGuard;
use crate::guard::{
    self, AnswerGuard, AuditHandle, Auditing, Base, Denial, RequestOutcome, Verdict,
};
use crate::limits::{Charge, SettleOnDrop, UsageTap};
use crate::reject::{Reject, TimeoutPhase};
use crate::server::Gateway;
use crate::snapshot::{Snapshot, UpstreamRuntime};
use crate::sse::SseBody;
use crate::trace::{ExchangeFacts, ExchangeSpan, ModelCell, Propagation, Traces};
use crate::upstream::{self, Outgoing};
use crate::usage::{Usage, UsageCell};

/// The anonymous caller, shared (the principal of phases before authentication).
static ANONYMOUS: LazyLock<Arc<Principal>> = LazyLock::new(Principal::anonymous_shared);

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
    /// The policy's action (the stricter of request and answer) and whether it was shadowed.
    pub(crate) decision: Option<(Action, bool)>,
    /// Who is calling, once authenticated.
    pub(crate) principal: Option<Arc<portcullis_core::Principal>>,
    /// The tokens the upstream reports, filled from the JSON answer or the stream's last chunk;
    /// the trace span reads it when the response body ends.
    pub(crate) usage: UsageCell,
    /// The model the upstream says answered (`gen_ai.response.model`), filled like `usage`.
    pub(crate) response_model: ModelCell,
    /// Flagged finding categories of the exchange's decisions, without repeats.
    pub(crate) findings: Vec<&'static str>,
    /// The exchange's trace span, when traces are exported.
    trace: Option<ExchangeSpan>,
    /// A policy denial's own code (`prompt_injection`), for the span; `reject` holds the
    /// bounded `policy_violation` the metrics count.
    policy_code: Option<String>,
    started: Instant,
}

impl Exchange {
    /// Starts an exchange (and, when `traces` is set, its span under the client's
    /// `traceparent`).
    pub(crate) fn start<B>(request: &Request<B>, traces: Option<&Traces>) -> Self {
        let client_id = request
            .headers()
            .get("x-request-id")
            .and_then(|v| v.to_str().ok());
        let trace =
            traces.map(|traces| ExchangeSpan::start(traces, request.method(), request.headers()));
        Self {
            id: RequestId::from_client_or_generate(client_id),
            route: "other",
            model: None,
            requested_model: None,
            upstream: None,
            request_bytes: 0,
            reject: None,
            decision: None,
            principal: None,
            usage: UsageCell::default(),
            response_model: ModelCell::default(),
            findings: Vec::new(),
            trace,
            policy_code: None,
            started: Instant::now(),
        }
    }

    /// Stamps the request id on the response, records metrics, writes the access log line and
    /// hands the trace span to the response body (it ends when the body does).
    pub(crate) fn finish(
        mut self,
        response: &mut Response<ProxyBody>,
        snapshot: &Snapshot,
        metrics: &Metrics,
    ) {
        if let Ok(id) = HeaderValue::from_str(self.id.as_str()) {
            response.headers_mut().insert("x-request-id", id);
        }
        if let Some((action, shadow)) = self.decision {
            let headers = response.headers_mut();
            let action = guard::action_label(action);
            headers.insert("x-portcullis-decision", HeaderValue::from_static(action));
            if shadow {
                headers.insert("x-portcullis-mode", HeaderValue::from_static("shadow"));
            }
        }
        let status = response.status().as_u16();
        let duration = self.started.elapsed();
        let trace_id = self.trace.as_ref().and_then(ExchangeSpan::trace_id);
        if let Some(span) = self.trace.take() {
            self.end_span(span, response);
        }
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
            decision = self.decision.map(|(action, _)| guard::action_label(action)),
            shadow = self.decision.is_some_and(|(_, shadow)| shadow),
            trace_id,
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

impl Exchange {
    /// The authenticated caller (anonymous before authentication ran).
    pub(crate) fn caller(&self) -> Arc<Principal> {
        self.principal.clone().unwrap_or_else(|| ANONYMOUS.clone())
    }

    /// The trace headers the upstream request carries (when traces are exported): this
    /// exchange's span replaces the client's `traceparent`.
    pub(crate) fn propagation(&self) -> Option<&Propagation> {
        self.trace.as_ref().and_then(ExchangeSpan::propagation)
    }

    /// Where a stream's answering model goes: only when a span will read it, so an untraced
    /// stream never parses its first event for it.
    fn response_model_if_traced(&self) -> Option<ModelCell> {
        self.trace.as_ref().map(|_| self.response_model.clone())
    }

    /// Notes the request body's generation parameters (`max_tokens`, `temperature`) on the
    /// span, and its messages when `capture_content` is on. Costs a parse of the body, only
    /// when the span is recorded.
    pub(crate) fn trace_request(&mut self, body: &[u8]) {
        if let Some(span) = &mut self.trace {
            span.request(body);
        }
    }

    /// Records why the exchange was refused.
    pub(crate) fn rejected(&mut self, reject: &Reject) {
        self.reject = Some((reject.origin().label(), reject.code()));
        if self.trace.is_some()
            && let Reject::PolicyDenied { code, .. } = reject
        {
            self.policy_code = Some(code.clone());
        }
    }

    /// Adds flagged finding categories (kept without repeats; categories, never texts).
    pub(crate) fn found(&mut self, categories: &[&'static str]) {
        for category in categories {
            if !self.findings.contains(category) {
                self.findings.push(category);
            }
        }
    }

    fn end_span(&self, span: ExchangeSpan, response: &mut Response<ProxyBody>) {
        let facts = ExchangeFacts {
            request_id: self.id.as_str(),
            route: self.route,
            requested_model: self.requested_model.as_deref(),
            upstream: self.upstream.as_ref().map(|(name, _)| name.as_ref()),
            status: response.status().as_u16(),
            reject: self
                .policy_code
                .as_deref()
                .or(self.reject.map(|(_, code)| code)),
            decision: self
                .decision
                .map(|(action, shadow)| (guard::action_label(action), shadow)),
            principal: self.principal.as_deref(),
            findings: &self.findings,
        };
        let body = std::mem::replace(response.body_mut(), full(Bytes::new()));
        *response.body_mut() = span.finish(
            &facts,
            self.usage.clone(),
            self.response_model.clone(),
            body,
        );
    }

    /// Records a decision; the stricter action wins (deny > require_approval > redact > allow).
    fn decided(&mut self, verdict: &Verdict) {
        let rank = |action: Action| match action {
            Action::Deny => 3,
            Action::RequireApproval => 2,
            Action::Redact => 1,
            Action::Allow => 0,
        };
        self.found(&verdict.categories);
        let action = verdict.decision.action;
        let stricter = self
            .decision
            .is_none_or(|(previous, _)| rank(action) >= rank(previous));
        if stricter {
            self.decision = Some((action, verdict.shadow));
        }
    }
}

/// Runs one guarded exchange for `endpoint`.
pub(crate) async fn run(
    gateway: &Gateway,
    snapshot: &Arc<Snapshot>,
    ex: &mut Exchange,
    endpoint: Endpoint,
    request: Request<Incoming>,
    permit: OwnedSemaphorePermit,
) -> Result<Response<ProxyBody>, Reject> {
    let (parts, body) = request.into_parts();
    let body = read_request_body(body, snapshot.config()).await?;
    ex.request_bytes = body.len() as u64;
    ex.trace_request(&body);
    let probe = probe_request(endpoint, &body).map_err(Reject::InvalidRequest)?;
    ex.requested_model = Some(probe.model.chars().take(MAX_LOGGED_MODEL_CHARS).collect());
    let upstream = route(snapshot, ex, &probe)?;
    let charge = limit(gateway, snapshot, ex, &probe).await?;
    let route_guard = snapshot.config().guard.route(endpoint.label());
    let (body, answer) = if route_guard.enabled {
        match inspect(
            gateway,
            snapshot,
            ex,
            endpoint,
            &probe,
            upstream,
            route_guard,
            body,
        ) {
            Inspected::Forward(body, answer) => (body, Some(answer)),
            Inspected::Denied(answer) => return answer,
        }
    } else {
        (body, None)
    };
    let (body, strip_usage) = ask_for_usage(snapshot.config(), endpoint, &probe, &charge, body);
    let response = forward(gateway, ex, upstream, endpoint, &parts, body).await?;
    let limit = snapshot.config().limits.max_response_bytes;
    let accounting = Accounting {
        charge,
        strip_usage,
    };
    respond(
        gateway, ex, upstream, &probe, response, permit, limit, answer, accounting,
    )
    .await
}

/// Phase: authenticate. The caller's credential becomes a [`Principal`]; why a credential
/// failed is logged and counted, never sent.
pub(crate) async fn authenticate(
    snapshot: &Snapshot,
    headers: &http::HeaderMap,
    metrics: &Metrics,
) -> Result<Arc<Principal>, Reject> {
    match snapshot.authenticator().authenticate(headers).await {
        Ok(principal) => {
            metrics.auth(match principal.auth {
                AuthMethod::ApiKey => AuthOutcome::ApiKey,
                AuthMethod::Jwt => AuthOutcome::Jwt,
                AuthMethod::Anonymous => AuthOutcome::Anonymous,
            });
            Ok(principal)
        }
        Err(crate::auth::AuthError::Missing) => {
            metrics.auth(AuthOutcome::Missing);
            Err(Reject::Unauthenticated)
        }
        Err(crate::auth::AuthError::Invalid { reason }) => {
            metrics.auth(AuthOutcome::Invalid);
            tracing::info!(reason, "credential refused");
            Err(Reject::Unauthenticated)
        }
        Err(crate::auth::AuthError::Unavailable) => {
            metrics.auth(AuthOutcome::Unavailable);
            tracing::warn!("credential not verified: the issuer's keys are unavailable");
            Err(Reject::AuthUnavailable)
        }
    }
}

/// Phase: limit (rate limits and token budgets, `limits.rs`).
async fn limit(
    gateway: &Gateway,
    snapshot: &Snapshot,
    ex: &Exchange,
    probe: &RequestProbe,
) -> Result<Option<Charge>, Reject> {
    let config = &snapshot.config().rate_limits;
    let Some(limiter) = gateway.services().limiter.as_ref() else {
        return Ok(None);
    };
    if !config.is_enabled() {
        return Ok(None);
    }
    let estimate = probe.prompt_tokens_estimate();
    crate::limits::admit(
        limiter,
        config,
        &ex.caller(),
        &probe.model,
        estimate,
        gateway.metrics(),
    )
    .await
}

/// Asks a streaming upstream for usage when a token budget needs it and the client did not
/// ask; returns the body to forward and whether the usage chunk must be kept from the client.
fn ask_for_usage(
    config: &Config,
    endpoint: Endpoint,
    probe: &RequestProbe,
    charge: &Option<Charge>,
    body: Bytes,
) -> (Bytes, bool) {
    let wanted = charge.as_ref().is_some_and(|c| c.counts_tokens)
        && config.rate_limits.stream_usage
        && probe.stream
        && !probe.include_usage
        && endpoint != Endpoint::Embeddings;
    if !wanted {
        return (body, false);
    }
    match crate::limits::request_stream_usage(&body) {
        Some(rewritten) => (rewritten, true),
        None => (body, false),
    }
}

/// What the exchange owes its budgets once the answer is known.
struct Accounting {
    charge: Option<Charge>,
    /// The gateway asked for stream usage the client did not: keep the usage chunk back.
    strip_usage: bool,
}

/// The `usage` of a non-streamed answer; anything else in it is skipped, not parsed.
#[derive(serde::Deserialize)]
struct UsageOnly {
    #[serde(default)]
    usage: Option<serde_json::Value>,
    #[serde(default)]
    model: Option<String>,
}

/// Records a non-streamed answer's usage and settles the budgets with it.
fn account(ex: &Exchange, usage: Option<&serde_json::Value>, charge: Option<Charge>) {
    let usage = usage.and_then(Usage::from_json);
    if let Some(usage) = usage {
        ex.usage.set(usage);
    }
    if let Some(charge) = charge {
        charge.settle(usage);
    }
}

/// What the inspect phase hands on.
enum Inspected {
    /// Forward this body; guard the answer with this.
    Forward(Bytes, Box<AnswerGuard>),
    /// The request was denied: this is the answer.
    Denied(Result<Response<ProxyBody>, Reject>),
}

/// Phase: inspect input and decide.
#[allow(clippy::too_many_arguments)]
fn inspect(
    gateway: &Gateway,
    snapshot: &Arc<Snapshot>,
    ex: &mut Exchange,
    endpoint: Endpoint,
    probe: &RequestProbe,
    upstream: &UpstreamRuntime,
    route_guard: RouteGuard,
    body: Bytes,
) -> Inspected {
    let principal = ex.caller();
    let base = Base {
        principal: &principal,
        route: endpoint.label(),
        model: &probe.model,
        upstream: &upstream.name,
        trusted: upstream.config.trusted,
        stream: probe.stream,
    };
    let audit_log = gateway.services().audit.as_ref();
    let auditing = audit_log.map(|log| Auditing {
        log,
        request_id: ex.id.as_str(),
        principal: &principal,
    });
    let outcome = guard::inspect_request(
        snapshot.guard(),
        endpoint,
        body,
        &base,
        route_guard,
        gateway.metrics(),
        auditing,
    );
    match outcome {
        RequestOutcome::Deny(denial, verdict) => {
            ex.decided(&verdict);
            Inspected::Denied(deny(ex.id.as_str(), endpoint, probe, route_guard, denial))
        }
        RequestOutcome::Forward(forward) => {
            ex.decided(&forward.verdict);
            let answer = AnswerGuard {
                snapshot: snapshot.clone(),
                endpoint,
                guard: route_guard,
                base: base.to_owned(),
                map: forward.map,
                canary: forward.canary,
                metrics: gateway.metrics().clone(),
                offered: forward.offered,
                audit: audit_log
                    .map(|log| AuditHandle::new(log.clone(), ex.id.as_str(), principal.clone())),
            };
            Inspected::Forward(forward.body, Box::new(answer))
        }
    }
}

/// The answer to a denied exchange: an OpenAI error, or on `deny_with: refusal` routes a
/// synthetic refusal completion.
fn deny(
    id: &str,
    endpoint: Endpoint,
    probe: &RequestProbe,
    route_guard: RouteGuard,
    denial: Denial,
) -> Result<Response<ProxyBody>, Reject> {
    if route_guard.deny_with == DenyWith::Refusal
        && !denial.policy_failed
        && !denial.audit_failed
        && let Some((body, content_type)) =
            guard::refusal_body(endpoint, probe.stream, &probe.model, id, &denial)
    {
        {
            let mut response = Response::new(full(body));
            response
                .headers_mut()
                .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
            return Ok(response);
        }
    }
    Err(denial.into_reject())
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
        trace: ex.propagation(),
    };
    let request = upstream::build_request(upstream, outgoing)?;
    let (response, elapsed) = upstream::send(upstream, request, gateway.metrics()).await?;
    ex.upstream = Some((upstream.name.clone(), elapsed));
    Ok(response)
}

/// Phase: respond. Streams go through [`SseBody`] (and the stream guard); everything else is
/// read whole (bounded), checked to be JSON, inspected and decided, and sent.
#[allow(clippy::too_many_arguments)]
async fn respond(
    gateway: &Gateway,
    ex: &mut Exchange,
    upstream: &UpstreamRuntime,
    probe: &RequestProbe,
    response: Response<UpstreamBody>,
    permit: OwnedSemaphorePermit,
    max_response_bytes: u64,
    answer: Option<Box<AnswerGuard>>,
    accounting: Accounting,
) -> Result<Response<ProxyBody>, Reject> {
    let is_event_stream = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/event-stream"));
    if !(probe.stream && response.status().is_success() && is_event_stream) {
        let answer = answer.filter(|_| response.status().is_success());
        let Some(answer) = answer else {
            let (parts, bytes, UsageOnly { usage, model }) =
                read_json(gateway, upstream, response, max_response_bytes).await?;
            if let Some(model) = &model {
                ex.response_model.set(model);
            }
            account(ex, usage.as_ref(), accounting.charge);
            return send_json(gateway, ex.route, upstream, &parts, bytes, Some(permit));
        };
        let (parts, bytes, body) =
            read_json::<serde_json::Value>(gateway, upstream, response, max_response_bytes).await?;
        if let Some(model) = body.get("model").and_then(serde_json::Value::as_str) {
            ex.response_model.set(model);
        }
        account(ex, body.get("usage"), accounting.charge);
        let route_guard = answer.guard;
        let endpoint = answer.endpoint;
        let (checked, verdict) = answer.inspect_answer(bytes, body);
        ex.decided(&verdict);
        return match checked {
            Ok(bytes) => send_json(gateway, ex.route, upstream, &parts, bytes, Some(permit)),
            Err(denial) => deny(ex.id.as_str(), endpoint, probe, route_guard, denial),
        };
    }
    let metrics = gateway.metrics().clone();
    let (parts, body) = response.into_parts();
    let stream_guard = answer.map(|answer| StreamGuard::new(*answer));
    let usage = crate::sse::StreamUsage {
        tap: UsageTap::new(
            ex.usage.clone(),
            accounting.strip_usage,
            ex.response_model_if_traced(),
        ),
        _settle: accounting
            .charge
            .map(|charge| SettleOnDrop::new(charge, ex.usage.clone())),
    };
    let stream = SseBody::new(
        body,
        upstream.config.timeouts.idle,
        gateway.cut_signal(),
        upstream.name.clone(),
        metrics.clone(),
        stream_guard,
        usage,
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
    let (parts, bytes, IgnoredAny) =
        read_json(gateway, upstream, response, max_response_bytes).await?;
    send_json(gateway, route, upstream, &parts, bytes, permit)
}

/// Reads a non-streamed upstream answer whole and parses it once as `T` (`IgnoredAny` to only
/// check it is JSON, `Value` for the guard): a 5xx becomes a 502, a body that is not JSON an
/// `upstream_bad_response`. Every upstream failure is counted.
async fn read_json<T: serde::de::DeserializeOwned>(
    gateway: &Gateway,
    upstream: &UpstreamRuntime,
    response: Response<UpstreamBody>,
    max_response_bytes: u64,
) -> Result<(http::response::Parts, Bytes, T), Reject> {
    let metrics = gateway.metrics();
    let status = response.status();
    if status.is_server_error() {
        return Err(upstream_status_error(upstream, response, metrics).await);
    }
    let (parts, body) = response.into_parts();
    let bytes = read_upstream_body(gateway, upstream, body, max_response_bytes).await?;
    match serde_json::from_slice::<T>(&bytes) {
        Ok(parsed) => Ok((parts, bytes, parsed)),
        Err(_) => {
            metrics.upstream_failed(&upstream.name, UpstreamFailure::BadResponse);
            let reason = if status.is_success() {
                "body is not JSON"
            } else {
                "error body is not JSON"
            };
            Err(bad_response(upstream, reason))
        }
    }
}

/// Sends a JSON answer with the upstream's status and forwardable headers.
fn send_json(
    gateway: &Gateway,
    route: &'static str,
    upstream: &UpstreamRuntime,
    parts: &http::response::Parts,
    bytes: Bytes,
    permit: Option<OwnedSemaphorePermit>,
) -> Result<Response<ProxyBody>, Reject> {
    let tracked = Tracked::new(
        http_body_util::Full::new(bytes),
        route,
        gateway.metrics().clone(),
        permit,
        Vec::new(),
    );
    let body =
        http_body_util::BodyExt::boxed_unsync(http_body_util::BodyExt::map_err(tracked, |never| {
            match never {}
        }));
    response_with(parts, upstream, body)
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
