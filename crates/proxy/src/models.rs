//! `GET /v1/models`: the union of the models this gateway routes.
//!
//! Exact names from the configuration are listed directly. An upstream that is reached
//! through patterns or as the default upstream is asked for its own `/models` (bounded in time
//! and size); of its answer, only models that would actually be routed to it are kept. An
//! upstream that fails to answer is left out and logged, so one broken upstream does not
//! break the listing.

use std::collections::HashSet;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, StatusCode};
use portcullis_config::{Glob, UpstreamId};
use serde_json::{Value, json};

use crate::body::{full, read_limited};
use crate::exchange::{Exchange, json_response};
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

async fn fetch_models(gateway: &Gateway, upstream: &UpstreamRuntime, ex: &Exchange) -> Vec<Value> {
    let empty = http::HeaderMap::new();
    let outgoing = Outgoing {
        method: Method::GET,
        path: "/models",
        query: None,
        client_headers: &empty,
        body: full(Bytes::new()),
        content_length: None,
        request_id: &ex.id,
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
