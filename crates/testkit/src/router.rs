//! One exchange: read the body, record the request, route it, answer.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::{Bytes, BytesMut};
use http::{Method, Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;

use crate::body::MockBody;
use crate::error::{Error, Result};
use crate::record::Recorder;
use crate::text::ReplyTail;
use crate::{catalog, chat, completions, embeddings, wire};

/// Largest request body the mock reads; bigger ones get 413. Only guards against runaway
/// clients: raising it lets a test send bigger prompts, at that much memory per request.
const BODY_LIMIT: usize = 32 * 1024 * 1024;

/// State shared by all connections of one server, built once at start.
pub(crate) struct Shared {
    /// Content deltas per streamed reply (at least one).
    pub(crate) stream_chunks: usize,
    /// The request-independent end of every reply.
    pub(crate) tail: ReplyTail,
    /// The `GET /v1/models` body.
    pub(crate) models_body: Bytes,
    /// The served model ids, for `GET /v1/models/{id}`.
    pub(crate) models: Vec<String>,
    /// Source of `chatcmpl-mock-<n>` style ids.
    counter: AtomicU64,
    /// The bounded request log.
    pub(crate) recorder: Recorder,
}

impl Shared {
    pub(crate) fn new(stream_chunks: usize, models: &[String]) -> Result<Self> {
        let stream_chunks = stream_chunks.max(1);
        Ok(Shared {
            stream_chunks,
            tail: ReplyTail::new(stream_chunks),
            models_body: catalog::models_body(models)?,
            models: models.to_vec(),
            counter: AtomicU64::new(0),
            recorder: Recorder::default(),
        })
    }

    /// The next object id number, starting at 1.
    pub(crate) fn next_id(&self) -> u64 {
        self.counter.fetch_add(1, Ordering::Relaxed) + 1
    }
}

/// Serves one request. An error makes hyper close the connection without a response.
pub(crate) async fn serve(
    shared: Arc<Shared>,
    request: Request<Incoming>,
) -> Result<Response<MockBody>> {
    let (parts, body) = request.into_parts();
    let Some(body) = read_body(body).await? else {
        return Ok(wire::error_response(
            StatusCode::PAYLOAD_TOO_LARGE,
            "request body too large for the mock upstream",
            "invalid_request_error",
            None,
        ));
    };
    let path_and_query = parts
        .uri
        .path_and_query()
        .map_or_else(|| parts.uri.path(), |path| path.as_str());
    shared
        .recorder
        .record(&parts.method, path_and_query, parts.headers, body.clone());
    route(&shared, &parts.method, parts.uri.path(), &body).await
}

async fn route(
    shared: &Shared,
    method: &Method,
    path: &str,
    body: &[u8],
) -> Result<Response<MockBody>> {
    match (method, path) {
        (&Method::POST, "/v1/chat/completions") => chat::handle(shared, body).await,
        (&Method::POST, "/v1/completions") => completions::handle(shared, body).await,
        (&Method::POST, "/v1/embeddings") => embeddings::handle(body).await,
        (&Method::GET, "/v1/models") => Ok(catalog::models(shared)),
        (&Method::POST, "/v1/moderations") => catalog::moderate(shared, body),
        (&Method::GET, _) if path.starts_with("/v1/models/") => {
            catalog::model(shared, method, path, &path["/v1/models/".len()..])
        }
        // Routes are an open set of (method, path) pairs: everything else is unknown.
        _ => Ok(wire::not_found(method, path)),
    }
}

/// Reads the whole body, or `None` past [`BODY_LIMIT`]. A one-frame body is not copied.
pub(crate) async fn read_body(mut body: Incoming) -> Result<Option<Bytes>> {
    let mut first: Option<Bytes> = None;
    let mut joined = BytesMut::new();
    let mut total = 0usize;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(Error::ReadBody)?;
        // Trailers carry nothing the mock needs.
        let Ok(data) = frame.into_data() else {
            continue;
        };
        total += data.len();
        if total > BODY_LIMIT {
            return Ok(None);
        }
        match first.take() {
            None if joined.is_empty() => first = Some(data),
            None => joined.extend_from_slice(&data),
            Some(previous) => {
                joined.extend_from_slice(&previous);
                joined.extend_from_slice(&data);
            }
        }
    }
    Ok(Some(first.unwrap_or_else(|| joined.freeze())))
}
