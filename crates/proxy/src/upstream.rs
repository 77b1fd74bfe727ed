//! Talking to upstreams: building the outgoing request (headers filtered, credentials
//! injected), sending it with the first-byte timeout, and classifying failures.

use std::time::{Duration, Instant};

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Request, Response, Uri};
use portcullis_core::RequestId;
use portcullis_telemetry::{Metrics, UpstreamFailure};

use crate::client::{ClientError, OutBody, UpstreamBody};
use crate::reject::{Reject, TimeoutPhase};
use crate::snapshot::UpstreamRuntime;
use crate::trace::Propagation;

/// Client headers never forwarded: hop-by-hop headers (RFC 9110 §7.6.1), framing the gateway
/// recomputes, and every header that may carry the *client's* credentials or the account
/// identity bound to them (`openai-organization`, `openai-project`) — the upstream gets the
/// gateway's key and, if configured, the gateway's `headers`, never the caller's.
/// `accept-encoding` is dropped so upstream responses arrive uncompressed and can be validated
/// (and, later, scanned).
static DROPPED_REQUEST_HEADERS: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authorization",
    "proxy-authenticate",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "host",
    "content-length",
    "authorization",
    "api-key",
    "x-api-key",
    "cookie",
    "openai-organization",
    "openai-project",
    "accept-encoding",
    "x-request-id",
];

/// Upstream response headers never forwarded to the client: hop-by-hop and framing.
static DROPPED_RESPONSE_HEADERS: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "content-length",
];

static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
static TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");
static TRACESTATE: HeaderName = HeaderName::from_static("tracestate");

/// Everything needed to build one upstream request.
pub(crate) struct Outgoing<'a> {
    pub(crate) method: Method,
    /// Path below the upstream's base path, starting with `/`.
    pub(crate) path: &'a str,
    pub(crate) query: Option<&'a str>,
    pub(crate) client_headers: &'a HeaderMap,
    pub(crate) body: OutBody,
    pub(crate) content_length: Option<u64>,
    pub(crate) request_id: &'a RequestId,
    /// The exchange's trace headers, replacing the client's `traceparent` and `tracestate`;
    /// `None` (traces off): the client's are forwarded as they came.
    pub(crate) trace: Option<&'a Propagation>,
}

/// Builds the request for `upstream`: an origin-form URI (the client adds `host`) and the
/// forwarded headers.
pub(crate) fn build_request(
    upstream: &UpstreamRuntime,
    out: Outgoing<'_>,
) -> Result<Request<OutBody>, Reject> {
    let config = &upstream.config;
    let mut path_and_query = String::with_capacity(
        config.base_path.len() + out.path.len() + 1 + out.query.map_or(0, str::len),
    );
    path_and_query.push_str(&config.base_path);
    path_and_query.push_str(out.path);
    if let Some(query) = out.query {
        path_and_query.push('?');
        path_and_query.push_str(query);
    }
    let uri = Uri::builder()
        .path_and_query(path_and_query)
        .build()
        .map_err(|_| Reject::RouteNotFound)?;

    let mut request = Request::new(out.body);
    *request.method_mut() = out.method;
    *request.uri_mut() = uri;
    let headers = request.headers_mut();
    copy_headers(out.client_headers, headers, DROPPED_REQUEST_HEADERS);
    for (name, value) in &config.headers {
        headers.insert(name.clone(), value.clone());
    }
    if let Some(credential) = &upstream.credential {
        headers.insert(config.api_key_header.clone(), credential.clone());
    }
    if let Some(length) = out.content_length {
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(length));
    }
    if let Ok(id) = HeaderValue::from_str(out.request_id.as_str()) {
        headers.insert(X_REQUEST_ID.clone(), id);
    }
    if let Some(trace) = out.trace {
        headers.insert(TRACEPARENT.clone(), trace.traceparent.clone());
        match &trace.tracestate {
            Some(state) => headers.insert(TRACESTATE.clone(), state.clone()),
            None => headers.remove(&TRACESTATE),
        };
    }
    Ok(request)
}

/// Copies headers except `dropped` ones and any named in the `connection` header.
pub(crate) fn copy_headers(from: &HeaderMap, to: &mut HeaderMap, dropped: &[&str]) {
    let connection_listed: Vec<&str> = from
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect();
    for (name, value) in from {
        let name_str = name.as_str();
        if dropped.contains(&name_str)
            || connection_listed
                .iter()
                .any(|c| c.eq_ignore_ascii_case(name_str))
        {
            continue;
        }
        to.append(name.clone(), value.clone());
    }
}

/// Copies upstream response headers that may reach the client.
pub(crate) fn copy_response_headers(from: &HeaderMap, to: &mut HeaderMap) {
    copy_headers(from, to, DROPPED_RESPONSE_HEADERS);
}

/// Sends the request, waiting at most the upstream's first-byte timeout for the response
/// headers. Failures are counted and become the matching [`Reject`].
pub(crate) async fn send(
    upstream: &UpstreamRuntime,
    request: Request<OutBody>,
    metrics: &Metrics,
) -> Result<(Response<UpstreamBody>, Duration), Reject> {
    let started = Instant::now();
    let (head, body) = request.into_parts();
    let sent = tokio::time::timeout(
        upstream.config.timeouts.first_byte,
        upstream.client.request(head, body),
    )
    .await;
    let elapsed = started.elapsed();
    match sent {
        Ok(Ok(response)) => Ok((response, elapsed)),
        Ok(Err(error)) => {
            let (failure, reject) = classify(upstream, &error);
            metrics.upstream_failed(&upstream.name, failure);
            tracing::warn!(upstream = %upstream.name, error = %error_chain(&error), "upstream request failed");
            Err(reject)
        }
        Err(_) => {
            metrics.upstream_failed(&upstream.name, UpstreamFailure::Timeout);
            Err(Reject::UpstreamTimeout {
                upstream: upstream.name.clone(),
                phase: TimeoutPhase::FirstByte,
            })
        }
    }
}

fn classify(upstream: &UpstreamRuntime, error: &ClientError) -> (UpstreamFailure, Reject) {
    let name = upstream.name.clone();
    match error {
        ClientError::ConnectTimeout => (
            UpstreamFailure::Timeout,
            Reject::UpstreamTimeout {
                upstream: name,
                phase: TimeoutPhase::Connect,
            },
        ),
        ClientError::Connect(source) if has_timeout(source.as_ref()) => (
            UpstreamFailure::Timeout,
            Reject::UpstreamTimeout {
                upstream: name,
                phase: TimeoutPhase::Connect,
            },
        ),
        ClientError::Connect(_) => (
            UpstreamFailure::Connect,
            Reject::UpstreamConnect { upstream: name },
        ),
        ClientError::Request(_) => (
            UpstreamFailure::Reset,
            Reject::UpstreamReset { upstream: name },
        ),
    }
}

fn has_timeout(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(current) = source {
        if let Some(io) = current.downcast_ref::<std::io::Error>()
            && io.kind() == std::io::ErrorKind::TimedOut
        {
            return true;
        }
        source = current.source();
    }
    false
}

/// `error: cause: cause`, for logs (no request content is ever part of these errors).
pub(crate) fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_and_hop_by_hop_headers_are_not_copied() {
        let mut from = HeaderMap::new();
        for (name, value) in [
            ("authorization", "Bearer client-key"),
            ("x-api-key", "k"),
            ("api-key", "k"),
            ("cookie", "session=1"),
            ("connection", "keep-alive, x-hop"),
            ("x-hop", "1"),
            ("host", "gateway"),
            ("content-type", "application/json"),
            ("x-stainless-lang", "python"),
            ("openai-organization", "org-1"),
            ("openai-project", "proj-1"),
        ] {
            from.append(name, HeaderValue::from_static(value));
        }
        let mut to = HeaderMap::new();
        copy_headers(&from, &mut to, DROPPED_REQUEST_HEADERS);
        let mut names: Vec<&str> = to.keys().map(HeaderName::as_str).collect();
        names.sort_unstable();
        assert_eq!(names, vec!["content-type", "x-stainless-lang"]);
    }
}
