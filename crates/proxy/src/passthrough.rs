//! Unguarded forwarding of configured `/v1/*` paths (audio, files, ...): no parsing, no
//! inspection, no policy — only the body-size limit, credential swap, timeouts and a metric.
//! Bodies stream in both directions.

use http::{Request, Response, header};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use tokio::sync::OwnedSemaphorePermit;

use crate::body::{ProxyBody, Tracked};
use crate::client::OutBody;
use crate::exchange::Exchange;
use crate::reject::Reject;
use crate::server::Gateway;
use crate::snapshot::Snapshot;
use crate::upstream::{self, Outgoing};

/// Forwards `request` to the passthrough rule's upstream.
pub(crate) async fn forward(
    gateway: &Gateway,
    snapshot: &Snapshot,
    ex: &mut Exchange,
    upstream_id: portcullis_config::UpstreamId,
    request: Request<Incoming>,
    permit: OwnedSemaphorePermit,
) -> Result<Response<ProxyBody>, Reject> {
    let upstream = snapshot
        .upstream(upstream_id)
        .ok_or(Reject::RouteNotFound)?;
    let limit = snapshot.config().limits.max_body_bytes;
    let content_length = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if content_length.is_some_and(|length| length > limit) {
        return Err(Reject::BodyTooLarge { limit });
    }
    let (parts, body) = request.into_parts();
    // The prefix `/v1` is the gateway's; the upstream's base path replaces it.
    let path = parts
        .uri
        .path()
        .strip_prefix("/v1")
        .unwrap_or(parts.uri.path());
    let limited = Limited::new(body, usize::try_from(limit).unwrap_or(usize::MAX)).boxed_unsync();
    let outgoing = Outgoing {
        method: parts.method.clone(),
        path,
        query: parts.uri.query(),
        client_headers: &parts.headers,
        body: OutBody::Stream(limited),
        content_length,
        request_id: &ex.id,
        trace: ex.propagation(),
    };
    let request = upstream::build_request(upstream, outgoing)?;
    gateway.metrics().passthrough_forwarded(&upstream.name);
    let (response, elapsed) = upstream::send(upstream, request, gateway.metrics()).await?;
    ex.upstream = Some((upstream.name.clone(), elapsed));
    let (parts, body) = response.into_parts();
    let mut out = Response::builder().status(parts.status);
    if let Some(headers) = out.headers_mut() {
        upstream::copy_response_headers(&parts.headers, headers);
    }
    let metrics = gateway.metrics().clone();
    let tracked = Tracked::new(body, ex.route, metrics, Some(permit), Vec::new());
    out.body(tracked.map_err(Into::into).boxed_unsync())
        .map_err(|_| Reject::UpstreamBadResponse {
            upstream: upstream.name.clone(),
            reason: "invalid response headers",
        })
}
