//! `GET /v1/models`: the union of the models this gateway routes.
//!
//! Exact names from the configuration are listed directly. An upstream that is reached
//! through patterns or as the default upstream is asked for its own `/models` (bounded in time
//! and size); of its answer, only models that would actually be routed to it are kept. An
//! upstream that fails to answer is left out and logged, so one broken upstream does not
//! break the listing.
//!
//! `GET /v1/models/{id}` routes `id` like a completion request would and asks that upstream;
//! an id no upstream serves is 404 `model_not_found` without leaving the gateway.

use std::collections::HashSet;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, StatusCode};
use portcullis_config::{Glob, UpstreamId};
use serde_json::{Value, json};

use crate::body::{ProxyBody, read_limited};
use crate::client::OutBody;
use crate::exchange::{self, Exchange, json_response};
use crate::reject::Reject;
use crate::server::Gateway;
use crate::snapshot::{Snapshot, UpstreamRuntime};
use crate::upstream::{self, Outgoing};

/// Bound on an upstream's model list.
const MAX_MODELS_BYTES: u64 = 1024 * 1024;
/// An upstream's model list must arrive within this, or the upstream is left out.
const MODELS_TIMEOUT: Duration = Duration::from_secs(5);

/// Answers `GET /v1/models`.
pub(crate) async fn list(
    gateway: &Gateway,
    snapshot: &Snapshot,
    ex: &Exchange,
) -> http::Response<crate::body::ProxyBody> {
    let config = snapshot.config();
    let mut seen = HashSet::new();
    let mut data: Vec<Value> = Vec::new();
    for (model, id) in config.listed_models() {
        if seen.insert(model.to_string()) {
            let owner = snapshot.upstream(id).map_or("", |u| u.name.as_ref());
            data.push(json!({"id": model, "object": "model", "created": 0, "owned_by": owner}));
        }
    }
    let discovering = snapshot.upstreams().iter().enumerate().filter(|(i, up)| {
        config.default_upstream == Some(UpstreamId(*i))
            || up.config.models.iter().any(|m| Glob::is_wildcard(m))
    });
    let fetches =
        discovering.map(|(i, up)| async move { (i, fetch_models(gateway, up, ex).await) });
    for (i, models) in futures_util::future::join_all(fetches).await {
        for model in models {
            let Some(id) = model.get("id").and_then(Value::as_str) else {
                continue;
            };
            if config.route_model(id) == Some(UpstreamId(i)) && seen.insert(id.to_string()) {
                data.push(model);
            }
        }
    }
    let body = json!({"object": "list", "data": data});
    json_response(
        StatusCode::OK,
        serde_json::to_vec(&body).unwrap_or_default(),
    )
}

/// Answers `GET /v1/models/{id}` from the upstream that serves `id`.
pub(crate) async fn retrieve(
    gateway: &Gateway,
    snapshot: &Snapshot,
    ex: &mut Exchange,
    raw_id: &str,
) -> Result<http::Response<ProxyBody>, Reject> {
    let id = percent_decode(raw_id);
    let matched = snapshot
        .config()
        .match_model(&id)
        .ok_or_else(|| Reject::ModelNotFound { model: id.clone() })?;
    ex.model = Some(snapshot.model_label(Some(matched.rule)));
    let upstream = snapshot
        .upstream(matched.upstream)
        .ok_or_else(|| Reject::ModelNotFound { model: id.clone() })?;
    let path = format!("/models/{raw_id}");
    let empty = http::HeaderMap::new();
    let outgoing = Outgoing {
        method: Method::GET,
        path: &path,
        query: None,
        client_headers: &empty,
        body: OutBody::Bytes(Bytes::new()),
        content_length: None,
        request_id: &ex.id,
        trace: ex.propagation(),
    };
    let request = upstream::build_request(upstream, outgoing)?;
    let (response, elapsed) = upstream::send(upstream, request, gateway.metrics()).await?;
    ex.upstream = Some((upstream.name.clone(), elapsed));
    // The same path as a non-streamed completion: 5xx → 502, bounded read, JSON check,
    // upstream status and headers kept, failures counted.
    exchange::buffered_json(
        gateway,
        ex.route,
        upstream,
        response,
        None,
        MAX_MODELS_BYTES,
    )
    .await
}

/// Decodes `%XX` escapes (model ids such as `org%2Fmodel`); invalid escapes stay as written.
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%'
            && let (Some(high), Some(low)) = (
                bytes.get(i + 1).and_then(|b| hex(*b)),
                bytes.get(i + 2).and_then(|b| hex(*b)),
            )
        {
            out.push((high * 16 + low) as u8);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

async fn fetch_models(gateway: &Gateway, upstream: &UpstreamRuntime, ex: &Exchange) -> Vec<Value> {
    let empty = http::HeaderMap::new();
    let outgoing = Outgoing {
        method: Method::GET,
        path: "/models",
        query: None,
        client_headers: &empty,
        body: OutBody::Bytes(Bytes::new()),
        content_length: None,
        request_id: &ex.id,
        trace: ex.propagation(),
    };
    let result = async {
        let request = upstream::build_request(upstream, outgoing).ok()?;
        let (response, _) = upstream::send(upstream, request, gateway.metrics())
            .await
            .ok()?;
        if !response.status().is_success() {
            return None;
        }
        let bytes = read_limited(response.into_body(), MAX_MODELS_BYTES, MODELS_TIMEOUT, None)
            .await
            .ok()?;
        let mut value: Value = serde_json::from_slice(&bytes).ok()?;
        match value.get_mut("data").map(Value::take) {
            Some(Value::Array(models)) => Some(models),
            _ => None,
        }
    };
    match tokio::time::timeout(MODELS_TIMEOUT, result).await {
        Ok(Some(models)) => models,
        Ok(None) | Err(_) => {
            tracing::warn!(upstream = %upstream.name, "upstream model list unavailable; left out of /v1/models");
            Vec::new()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::percent_decode;

    #[test]
    fn model_ids_are_percent_decoded() {
        assert_eq!(percent_decode("meta-llama%2FLlama-3"), "meta-llama/Llama-3");
        assert_eq!(percent_decode("plain"), "plain");
        assert_eq!(percent_decode("bad%zzescape%"), "bad%zzescape%");
    }
}
