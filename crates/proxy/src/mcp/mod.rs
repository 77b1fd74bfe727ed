//! The MCP proxy: `/mcp/{server}` speaks Streamable HTTP (protocol revisions up to
//! 2025-11-25) to clients and forwards to the configured upstream over Streamable HTTP or to a
//! stdio child process, with the guard (`guard.rs`) deciding on tool lists, tool calls and
//! results.
//!
//! Transport rules (the spec's, as a proxy honours them):
//!
//! - `POST` carries one JSON-RPC message (no batches). A request is answered with
//!   `application/json` (one response), or, when the upstream answers with an SSE stream and
//!   sends messages before its response (progress notifications, its own requests such as
//!   sampling or elicitation), with `text/event-stream`: those messages relayed as they come,
//!   then the guarded response, then the end of the stream. Notifications and responses from
//!   the client (its answers to the upstream's requests) are forwarded and answered `202`.
//! - `initialize` (without a session) opens a session: the gateway's own random
//!   `Mcp-Session-Id`, its own upstream session (the upstream's id never reaches the client,
//!   and the client's never reaches the upstream) or its own child process.
//! - Other requests need the session id: missing → 400, unknown or expired → 404 (the client
//!   then initializes again). `DELETE` ends a session. `GET` (a server-initiated stream) is not
//!   offered: 405.
//! - Errors are JSON-RPC errors: -32700 malformed JSON, -32600 invalid message, batch, or
//!   oversized body (HTTP 413), -32000 upstream unavailable or dead, -32001 upstream timeout,
//!   -32003 a denied `resources/read` or `prompts/get`. A denied `tools/call` is a tool error
//!   result (`isError: true`) so that the agent reads why and the session goes on.
//!
//! Sessions live in the gateway, not in a snapshot: a config reload keeps them (a session
//! keeps the server settings it started with).

mod guard;
pub(crate) mod stdio;
mod upstream;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{ACCEPT, ALLOW, CONTENT_TYPE};
use http::{HeaderValue, Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use portcullis_config::McpServer;
use portcullis_core::RequestId;
use portcullis_detect::RedactionMap;
use portcullis_mcp::{
    ErrorCode, Message, Pins, SUPPORTED_VERSIONS, SessionState, error_response, result_response,
};
use portcullis_telemetry::Metrics;
use serde_json::{Map, Value};

use crate::body::{ProxyBody, ReadError, full, read_limited};
use crate::snapshot::Snapshot;
pub(crate) use guard::McpContext;
use guard::{CallOutcome, HoldRequest, ResultOutcome, tool_error_result};

use crate::approvals::{HoldError, Outcome};
use crate::services::Services;
use portcullis_audit::Action;
pub(crate) use upstream::{HttpClient, Relayed, Upstream, http_client};
use upstream::{SESSION_HEADER, VERSION_HEADER};

/// How long a client may take to send one message body.
const BODY_DEADLINE: Duration = Duration::from_secs(30);

/// The gateway's MCP state: sessions and tool pins, which outlive config reloads.
pub(crate) struct McpState {
    sessions: Mutex<HashMap<String, Arc<McpSession>>>,
    pins: Arc<Mutex<Pins>>,
    client: Option<HttpClient>,
}

impl McpState {
    pub(crate) fn new() -> Self {
        let client = match http_client() {
            Ok(client) => Some(client),
            Err(error) => {
                tracing::error!(error = %error, "mcp: no TLS provider; HTTP upstreams unavailable");
                None
            }
        };
        Self {
            sessions: Mutex::new(HashMap::new()),
            pins: Arc::new(Mutex::new(Pins::default())),
            client,
        }
    }
}

/// One client session and its upstream connection.
pub(crate) struct McpSession {
    pub(crate) id: String,
    pub(crate) server: McpServer,
    pub(crate) upstream: Upstream,
    pub(crate) state: Mutex<SessionState>,
    /// Placeholders stay the same within the session.
    pub(crate) map: Mutex<RedactionMap>,
    last_used: Mutex<Instant>,
    /// Requests in flight: a busy session is never idle.
    busy: std::sync::atomic::AtomicUsize,
    /// Who opened the session; only the same principal may use or end it.
    pub(crate) principal: Arc<portcullis_core::Principal>,
}

impl McpSession {
    pub(crate) fn new(
        id: String,
        server: McpServer,
        upstream: Upstream,
        principal: Arc<portcullis_core::Principal>,
    ) -> Self {
        Self {
            id,
            server,
            upstream,
            principal,
            state: Mutex::new(SessionState::default()),
            map: Mutex::new(RedactionMap::new()),
            last_used: Mutex::new(Instant::now()),
            busy: std::sync::atomic::AtomicUsize::new(0),
        }
    }

    /// How long the session has had nothing in flight (zero while a request is).
    fn idle_for(&self) -> Duration {
        if self.busy.load(std::sync::atomic::Ordering::Acquire) > 0 {
            return Duration::ZERO;
        }
        self.last_used
            .lock()
            .map(|t| t.elapsed())
            .unwrap_or(Duration::ZERO)
    }

    fn touch(&self) {
        if let Ok(mut t) = self.last_used.lock() {
            *t = Instant::now();
        }
    }

    /// Marks a request in flight until the guard drops; the idle clock restarts then.
    fn begin(&self) -> Busy<'_> {
        self.busy.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        Busy(self)
    }
}

struct Busy<'a>(&'a McpSession);

impl Drop for Busy<'_> {
    fn drop(&mut self) {
        self.0.touch();
        self.0
            .busy
            .fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
    }
}

/// Closes sessions idle past `mcp.session_idle_timeout_ms`, every second, until the gateway
/// stops (spawned by the server; the task ends with the runtime).
pub(crate) async fn sweep_idle(gateway: std::sync::Weak<crate::server::Gateway>) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(gateway) = gateway.upgrade() else {
            return;
        };
        let idle = gateway.snapshot().config().mcp.session_idle_timeout;
        let open = count_sessions(gateway.mcp_state(), idle);
        gateway.metrics().mcp_sessions(open);
    }
}

/// An MCP route's refusal, before any message reached the upstream. The one place MCP
/// errors become HTTP responses.
#[derive(Debug)]
enum McpReject {
    UnknownServer,
    MethodNotAllowed,
    UnsupportedMediaType,
    NotAcceptable,
    UnsupportedVersion,
    TooLarge(u64),
    BodyTimeout,
    Malformed { code: ErrorCode, message: String },
    MissingSession,
    UnknownSession,
    TooManySessions,
    Upstream(String),
    Unauthenticated,
    AuthUnavailable,
}

impl McpReject {
    fn into_response(self) -> Response<ProxyBody> {
        use McpReject as R;
        let (status, code, message) = match self {
            R::UnknownServer => (StatusCode::NOT_FOUND, ErrorCode::INVALID_REQUEST, "no MCP server is configured with this name".to_string()),
            R::MethodNotAllowed => (StatusCode::METHOD_NOT_ALLOWED, ErrorCode::INVALID_REQUEST, "use POST for messages and DELETE to end a session; server-initiated streams (GET) are not offered".to_string()),
            R::UnsupportedMediaType => (StatusCode::UNSUPPORTED_MEDIA_TYPE, ErrorCode::INVALID_REQUEST, "content-type must be application/json".to_string()),
            R::NotAcceptable => (StatusCode::NOT_ACCEPTABLE, ErrorCode::INVALID_REQUEST, "the client must accept application/json".to_string()),
            R::UnsupportedVersion => (StatusCode::BAD_REQUEST, ErrorCode::INVALID_REQUEST, format!("unsupported MCP-Protocol-Version; supported: {}", SUPPORTED_VERSIONS.join(", "))),
            R::TooLarge(limit) => (StatusCode::PAYLOAD_TOO_LARGE, ErrorCode::INVALID_REQUEST, format!("message exceeds the limit of {limit} bytes")),
            R::BodyTimeout => (StatusCode::REQUEST_TIMEOUT, ErrorCode::INVALID_REQUEST, "the message body did not arrive in time".to_string()),
            R::Malformed { code, message } => (StatusCode::BAD_REQUEST, code, message),
            R::MissingSession => (StatusCode::BAD_REQUEST, ErrorCode::INVALID_REQUEST, "missing Mcp-Session-Id; send initialize first".to_string()),
            R::UnknownSession => (StatusCode::NOT_FOUND, ErrorCode::INVALID_REQUEST, "session not found; initialize again".to_string()),
            R::TooManySessions => (StatusCode::SERVICE_UNAVAILABLE, ErrorCode::INTERNAL_ERROR, "too many open MCP sessions".to_string()),
            R::Upstream(message) => (StatusCode::BAD_GATEWAY, ErrorCode::UPSTREAM_UNAVAILABLE, message),
            R::Unauthenticated => (StatusCode::UNAUTHORIZED, ErrorCode::INVALID_REQUEST, "missing or invalid credentials: send `Authorization: Bearer <API key or token>`".to_string()),
            R::AuthUnavailable => (StatusCode::SERVICE_UNAVAILABLE, ErrorCode::INTERNAL_ERROR, "credentials cannot be verified right now; retry shortly".to_string()),
        };
        let mut response =
            json_response(status, &error_response(&Value::Null, code, &message, None));
        if status == StatusCode::METHOD_NOT_ALLOWED {
            response
                .headers_mut()
                .insert(ALLOW, HeaderValue::from_static("POST, DELETE"));
        }
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                http::header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"portcullis\""),
            );
        }
        response
    }
}

fn json_response(status: StatusCode, value: &Value) -> Response<ProxyBody> {
    let mut response = Response::new(full(Bytes::from(value.to_string())));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

fn accepted() -> Response<ProxyBody> {
    let mut response = Response::new(full(Bytes::new()));
    *response.status_mut() = StatusCode::ACCEPTED;
    response
}

/// A fresh session id: 128 random bits in hex.
fn new_session_id() -> String {
    crate::token::random_hex128()
}

/// Serves one request on `/mcp/{server}`.
pub(crate) async fn handle(
    state: &McpState,
    snapshot: &Arc<Snapshot>,
    metrics: &Arc<Metrics>,
    services: &Services,
    request: Request<Incoming>,
    server_name: &str,
) -> Response<ProxyBody> {
    match serve(state, snapshot, metrics, services, request, server_name).await {
        Ok(response) => response,
        Err(reject) => reject.into_response(),
    }
}

async fn serve(
    state: &McpState,
    snapshot: &Arc<Snapshot>,
    metrics: &Arc<Metrics>,
    services: &Services,
    request: Request<Incoming>,
    server_name: &str,
) -> Result<Response<ProxyBody>, McpReject> {
    let settings = &snapshot.config().mcp;
    let server = settings
        .server(server_name)
        .ok_or(McpReject::UnknownServer)?;
    let principal = crate::exchange::authenticate(snapshot, request.headers(), metrics)
        .await
        .map_err(|reject| match reject {
            crate::reject::Reject::AuthUnavailable => McpReject::AuthUnavailable,
            _ => McpReject::Unauthenticated,
        })?;
    let session_id = request
        .headers()
        .get(SESSION_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    match *request.method() {
        Method::POST => {}
        Method::DELETE => {
            let id = session_id.ok_or(McpReject::MissingSession)?;
            let session = remove_session(state, &id, &server.name, &principal.id)
                .ok_or(McpReject::UnknownSession)?;
            metrics.mcp_sessions(state.sessions.lock().map(|s| s.len()).unwrap_or(0));
            session.upstream.close().await;
            return Ok(json_response(StatusCode::OK, &Value::Object(Map::new())));
        }
        _ => return Err(McpReject::MethodNotAllowed),
    }
    check_headers(request.headers())?;
    let request_id = RequestId::from_client_or_generate(
        request
            .headers()
            .get("x-request-id")
            .and_then(|v| v.to_str().ok()),
    );
    // Whether the client takes an SSE answer; only then can a held call be kept alive.
    let sse_ok = request
        .headers()
        .get(ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.to_ascii_lowercase().contains("text/event-stream"));
    let body = read_limited(
        request.into_body(),
        settings.max_message_bytes,
        BODY_DEADLINE,
        None,
    )
    .await
    .map_err(|error| match error {
        ReadError::TooLarge => McpReject::TooLarge(settings.max_message_bytes),
        ReadError::Timeout | ReadError::Broken => McpReject::BodyTimeout,
    })?;
    let message = Message::parse(&body).map_err(|error| McpReject::Malformed {
        code: error.code(),
        message: error.to_string(),
    })?;
    if let Message::Request { method, .. } = &message
        && method == "initialize"
    {
        let id = request_id.as_str();
        return initialize(
            state, snapshot, metrics, services, server, message, id, principal,
        )
        .await;
    }
    let id = session_id.ok_or(McpReject::MissingSession)?;
    let session = find_session(
        state,
        &id,
        &server.name,
        &principal.id,
        settings.session_idle_timeout,
    )
    .ok_or(McpReject::UnknownSession)?;
    let timeout = settings.request_timeout;
    match message {
        Message::Request { id, method, raw } => {
            metrics.mcp_request(&Arc::from(server.name.as_str()), &method);
            let call = Call {
                id,
                method,
                raw,
                timeout,
                sse_ok,
                request_id,
            };
            Ok(answer_request(state, snapshot, metrics, services, session, call).await)
        }
        other => {
            let _busy = session.begin();
            session
                .upstream
                .send(&other.into_value(), timeout)
                .await
                .map_err(|e| McpReject::Upstream(e.to_string()))?;
            Ok(accepted())
        }
    }
}

/// Messages relayed from an upstream's SSE answer before the response: beyond this many
/// waiting to be sent, the upstream is slowed down (back-pressure), never buffered further.
const RELAY_QUEUE: usize = 64;

/// Answers one request. The request runs in its own task; if the upstream sends messages
/// before its response (progress notifications, its own requests such as sampling), the
/// client gets an SSE stream of them as they come, ending with the guarded response;
/// otherwise one JSON response.
async fn answer_request(
    state: &McpState,
    snapshot: &Arc<Snapshot>,
    metrics: &Arc<Metrics>,
    services: &Services,
    session: Arc<McpSession>,
    call: Call,
) -> Response<ProxyBody> {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Relayed>(RELAY_QUEUE);
    let (snapshot, metrics, pins) = (snapshot.clone(), metrics.clone(), state.pins.clone());
    let services = services.clone();
    tokio::spawn(async move {
        let _busy = session.begin();
        let cx = McpContext {
            runtime: snapshot.guard(),
            server: &session.server,
            pins: &pins,
            metrics: &metrics,
            shadow: snapshot.config().guard.route("mcp").shadow,
            enabled: snapshot.config().guard.route("mcp").enabled,
            relay: call.sse_ok.then(|| tx.clone()),
            services: &services,
            request_id: call.request_id.as_str(),
            principal: &session.principal,
        };
        let answer = respond(
            &cx,
            &session,
            &call.id,
            &call.method,
            call.raw,
            call.timeout,
        )
        .await;
        // The client may be gone; the call still ran to its end, as the spec asks.
        let _ = tx.send(Relayed::Message(answer)).await;
    });
    let Some(first) = rx.recv().await else {
        return McpReject::Upstream("the request task ended without an answer".into())
            .into_response();
    };
    if let Relayed::Message(answer) = &first
        && is_response(answer)
    {
        return json_response(StatusCode::OK, answer);
    }
    let events = futures_util::stream::unfold(Some((Some(first), rx)), |state| async move {
        let (pending, mut rx) = state?;
        let relayed = match pending {
            Some(relayed) => relayed,
            None => rx.recv().await?,
        };
        let (text, last) = match relayed {
            Relayed::KeepAlive => (": waiting for approval\n\n".to_owned(), false),
            Relayed::Message(message) => (
                format!("event: message\ndata: {message}\n\n"),
                is_response(&message),
            ),
        };
        let frame = Ok::<_, crate::body::BodyError>(http_body::Frame::data(Bytes::from(text)));
        Some((frame, (!last).then_some((None, rx))))
    });
    let mut response = Response::new(http_body_util::BodyExt::boxed_unsync(
        http_body_util::StreamBody::new(events),
    ));
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    headers.insert(
        http::header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache"),
    );
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    response
}

/// Whether a message is a JSON-RPC response (the end of a request's stream).
fn is_response(message: &Value) -> bool {
    message.get("method").is_none()
        && (message.get("result").is_some() || message.get("error").is_some())
}

fn check_headers(headers: &http::HeaderMap) -> Result<(), McpReject> {
    let content_type = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !content_type
        .to_ascii_lowercase()
        .starts_with("application/json")
    {
        return Err(McpReject::UnsupportedMediaType);
    }
    if let Some(accept) = headers.get(ACCEPT).and_then(|v| v.to_str().ok()) {
        let accept = accept.to_ascii_lowercase();
        if !(accept.contains("application/json") || accept.contains("*/*")) {
            return Err(McpReject::NotAcceptable);
        }
    }
    if let Some(version) = headers.get(VERSION_HEADER) {
        let known = version
            .to_str()
            .is_ok_and(|v| SUPPORTED_VERSIONS.contains(&v));
        if !known {
            return Err(McpReject::UnsupportedVersion);
        }
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
async fn initialize(
    state: &McpState,
    snapshot: &Arc<Snapshot>,
    metrics: &Arc<Metrics>,
    services: &Services,
    server: &McpServer,
    message: Message,
    request_id: &str,
    principal: Arc<portcullis_core::Principal>,
) -> Result<Response<ProxyBody>, McpReject> {
    let settings = &snapshot.config().mcp;
    let Message::Request { id, method, raw } = message else {
        return Err(McpReject::Malformed {
            code: ErrorCode::INVALID_REQUEST,
            message: "initialize must be a request".into(),
        });
    };
    if count_sessions(state, settings.session_idle_timeout) >= settings.max_sessions {
        return Err(McpReject::TooManySessions);
    }
    let client = state
        .client
        .as_ref()
        .ok_or_else(|| McpReject::Upstream("no HTTP client".into()))?;
    let upstream = Upstream::connect(
        &server.transport,
        client,
        settings.max_message_bytes as usize,
        None,
    )
    .map_err(|e| McpReject::Upstream(e.to_string()))?;
    let session = Arc::new(McpSession::new(
        new_session_id(),
        server.clone(),
        upstream,
        principal,
    ));
    let cx = McpContext {
        runtime: snapshot.guard(),
        server,
        pins: &state.pins,
        metrics,
        shadow: snapshot.config().guard.route("mcp").shadow,
        enabled: snapshot.config().guard.route("mcp").enabled,
        relay: None,
        services,
        request_id,
        principal: &session.principal,
    };
    metrics.mcp_request(&Arc::from(server.name.as_str()), &method);
    let answer = {
        let _busy = session.begin();
        respond(&cx, &session, &id, &method, raw, settings.request_timeout).await
    };
    let mut response = json_response(StatusCode::OK, &answer);
    if answer.get("result").is_some() {
        let header = HeaderValue::from_str(&session.id)
            .map_err(|_| McpReject::Upstream("session id".into()))?;
        if let Ok(mut sessions) = state.sessions.lock() {
            sessions.insert(session.id.clone(), session.clone());
            metrics.mcp_sessions(sessions.len());
        }
        response.headers_mut().insert(SESSION_HEADER, header);
    } else {
        session.upstream.close().await;
    }
    Ok(response)
}

/// Sessions still alive; expired ones are closed on the way.
fn count_sessions(state: &McpState, idle: Duration) -> usize {
    let expired: Vec<Arc<McpSession>> = match state.sessions.lock() {
        Ok(mut sessions) => {
            let ids: Vec<String> = sessions
                .iter()
                .filter(|(_, s)| s.idle_for() > idle)
                .map(|(id, _)| id.clone())
                .collect();
            ids.iter().filter_map(|id| sessions.remove(id)).collect()
        }
        Err(_) => Vec::new(),
    };
    for session in expired {
        tokio::spawn(async move { session.upstream.close().await });
    }
    state.sessions.lock().map(|s| s.len()).unwrap_or(usize::MAX)
}

/// The session `id` of `server`, if it is alive and was opened by `principal` (a session id
/// taken by another caller is treated as unknown).
fn find_session(
    state: &McpState,
    id: &str,
    server: &str,
    principal: &str,
    idle: Duration,
) -> Option<Arc<McpSession>> {
    let session = state.sessions.lock().ok()?.get(id).cloned()?;
    if session.server.name != server || session.principal.id != principal {
        return None;
    }
    if session.idle_for() > idle {
        let removed = remove_session(state, id, server, principal);
        if let Some(removed) = removed {
            tokio::spawn(async move { removed.upstream.close().await });
        }
        return None;
    }
    Some(session)
}

fn remove_session(
    state: &McpState,
    id: &str,
    server: &str,
    principal: &str,
) -> Option<Arc<McpSession>> {
    let mut sessions = state.sessions.lock().ok()?;
    if sessions
        .get(id)
        .is_some_and(|s| s.server.name == server && s.principal.id == principal)
    {
        sessions.remove(id)
    } else {
        None
    }
}

/// Answers one client request through the guard and the session's upstream. Shared by the
/// HTTP route and `portcullis mcp stdio`.
pub(crate) async fn respond(
    cx: &McpContext<'_>,
    session: &McpSession,
    id: &Value,
    method: &str,
    mut raw: Map<String, Value>,
    timeout: Duration,
) -> Value {
    if !cx.enabled {
        return forward(session, id, raw, timeout, cx.relay.as_ref()).await;
    }
    match method {
        "tools/call" => {
            let mut params = raw.get("params").cloned().unwrap_or(Value::Null);
            let Some(name) = params
                .get("name")
                .and_then(Value::as_str)
                .map(str::to_owned)
            else {
                return error_response(
                    id,
                    ErrorCode::INVALID_PARAMS,
                    "tools/call needs params.name (a string)",
                    None,
                );
            };
            let mut span = crate::trace::ToolSpan::start(
                cx.services.traces.as_ref(),
                &session.server.name,
                &name,
                &params,
                cx.request_id,
                Some(&**cx.principal),
            );
            // A tool the session never listed is listed now, so that its definition is
            // pinned, scanned and decided before it can be called.
            let never_listed = session
                .state
                .lock()
                .map(|s| s.listed(&name).is_none())
                .unwrap_or(true);
            if never_listed {
                list_for_guard(cx, session, timeout).await;
            }
            let before = span.is_recording().then(|| params.clone());
            let outcome = match session.map.lock() {
                Ok(mut map) => cx.decide_call(&session.id, &session.state, &mut params, &mut map),
                Err(_) => CallOutcome::Refuse("internal error".into()),
            };
            span.decided(
                match &outcome {
                    CallOutcome::Forward if before.is_some_and(|b| b != params) => "redact",
                    CallOutcome::Forward => "allow",
                    CallOutcome::Refuse(_) => "deny",
                    CallOutcome::Hold(_) => "require_approval",
                },
                cx.shadow,
            );
            let outcome = match outcome {
                CallOutcome::Hold(hold) => hold_for_approval(cx, *hold).await,
                other => other,
            };
            if let CallOutcome::Refuse(text) = outcome {
                span.refused();
                return result_response(id, tool_error_result(&text));
            }
            let mut forwarded = params.clone();
            span.propagate(&mut forwarded);
            raw.insert("params".into(), forwarded);
            if let Ok(mut state) = session.state.lock() {
                state.record_call();
            }
            let answer = forward(session, id, raw, timeout, cx.relay.as_ref()).await;
            let answer = inspect_answer(cx, session, id, method, &params, answer);
            span.answered(&answer);
            answer
        }
        "resources/read" | "prompts/get" => {
            let params = raw.get("params").cloned().unwrap_or(Value::Null);
            let answer = forward(session, id, raw, timeout, cx.relay.as_ref()).await;
            inspect_answer(cx, session, id, method, &params, answer)
        }
        "tools/list" => {
            let mut answer = forward(session, id, raw, timeout, cx.relay.as_ref()).await;
            if let Some(result) = answer.get_mut("result") {
                let removed = cx.inspect_tools_list(&session.id, &session.state, result);
                if !removed.is_empty() {
                    tracing::info!(server = %session.server.name, removed = removed.len(), "mcp tools hidden from a listing");
                }
            }
            answer
        }
        "initialize" => {
            let answer = forward(session, id, raw, timeout, cx.relay.as_ref()).await;
            if let Some(version) = answer
                .pointer("/result/protocolVersion")
                .and_then(Value::as_str)
            {
                session.upstream.set_version(version);
            }
            answer
        }
        _ => forward(session, id, raw, timeout, cx.relay.as_ref()).await,
    }
}

/// One client request on a session.
struct Call {
    id: Value,
    method: String,
    raw: Map<String, Value>,
    timeout: Duration,
    /// The client accepts an SSE answer.
    sse_ok: bool,
    /// The client's `x-request-id` when valid, else a fresh id (audit events carry it).
    request_id: RequestId,
}

/// Holds a call until a human approves it (→ forward), denies it or it expires (→ refuse).
/// While it waits, an SSE comment goes to the client every `approvals.keepalive_ms` (when the
/// client takes SSE), so proxies and clients with idle timeouts keep the request open.
async fn hold_for_approval(cx: &McpContext<'_>, hold: HoldRequest) -> CallOutcome {
    let HoldRequest { refusal, approval } = hold;
    let Some(hub) = cx.services.approvals.as_ref().filter(|hub| hub.enabled()) else {
        return CallOutcome::Refuse(format!(
            "{refusal} Human approval is not configured here, so the call was not made."
        ));
    };
    let held = match hub.hold(approval).await {
        Ok(held) => held,
        Err(HoldError::Full) => {
            return CallOutcome::Refuse(format!(
                "{refusal} Too many calls are already waiting for approval; the call was not made."
            ));
        }
        Err(HoldError::Store(error)) => {
            tracing::error!(error = %error, "an approval could not be recorded; the call is refused");
            return CallOutcome::Refuse(format!(
                "{refusal} The approval could not be recorded, so the call was not made."
            ));
        }
    };
    let id = held.approval.request.id.clone();
    let keepalive = cx.relay.clone().map(|relay| {
        let every = hub.keepalive();
        tokio::spawn(async move {
            loop {
                if relay.send(Relayed::KeepAlive).await.is_err() {
                    return;
                }
                tokio::time::sleep(every).await;
            }
        })
    });
    let (server, tool) = (
        held.approval.request.server.clone(),
        held.approval.request.tool.clone(),
    );
    let outcome = hub.wait(held).await;
    if let Some(task) = keepalive {
        task.abort();
    }
    audit_resolution(cx, &id, server, tool, &outcome);
    match outcome {
        Outcome::Approved(approval) => {
            tracing::info!(approval = %id, by = approval.decided_by.as_deref().unwrap_or("-"), "held call approved; forwarding");
            CallOutcome::Forward
        }
        Outcome::Denied(approval) => CallOutcome::Refuse(format!(
            "Portcullis: a human denied this tool call (approval {id}){}",
            approval
                .decision_reason
                .as_deref()
                .map(|r| format!(": {}.", r.chars().take(500).collect::<String>()))
                .unwrap_or_else(|| ".".into())
        )),
        Outcome::Expired(_) => CallOutcome::Refuse(format!(
            "{refusal} Nobody approved it in time (approval {id} expired), so the call was not made."
        )),
        Outcome::Failed(error) => {
            tracing::error!(approval = %id, error = %error, "waiting for an approval failed; the call is refused");
            CallOutcome::Refuse(format!(
                "{refusal} The approval could not be confirmed, so the call was not made."
            ))
        }
    }
}

/// The audit event of a held call's resolution: the human's decision (or the expiry) is a
/// decision of its own, after the policy's `require_approval` event for the same request.
fn audit_resolution(
    cx: &McpContext<'_>,
    id: &str,
    server: String,
    tool: String,
    outcome: &Outcome,
) {
    let Some(log) = cx.services.audit.as_deref() else {
        return;
    };
    let by = |verb: &str, approval: &portcullis_store::Approval| {
        format!(
            "approval {id} {verb} by {}{}",
            approval.decided_by.as_deref().unwrap_or("-"),
            approval
                .decision_reason
                .as_deref()
                .map(|r| format!(": {r}"))
                .unwrap_or_default()
        )
    };
    let (action, code, reason) = match outcome {
        Outcome::Approved(a) => (Action::Allow, "approval_granted", by("approved", a)),
        Outcome::Denied(a) => (Action::Deny, "approval_denied", by("denied", a)),
        Outcome::Expired(_) => (
            Action::Deny,
            "approval_expired",
            format!("approval {id} expired"),
        ),
        Outcome::Failed(_) => (
            Action::Deny,
            "approval_failed",
            format!("approval {id} could not be confirmed"),
        ),
    };
    let event = crate::guard::resolution_event(
        cx.request_id,
        cx.principal,
        cx.runtime.bundle_hash(),
        portcullis_audit::Target::Tool { server, tool },
        action,
        code,
        reason,
    );
    // The call has been decided and answered already: a full queue can only count the loss.
    let _ = log.emit(event);
}

/// Lists the upstream's tools on the gateway's own account (first page) and runs the
/// `tools_list` decisions, recording the outcome in the session.
async fn list_for_guard(cx: &McpContext<'_>, session: &McpSession, timeout: Duration) {
    let id = Value::from(format!("portcullis-list-{}", new_session_id()));
    let mut raw = Map::new();
    raw.insert("jsonrpc".into(), Value::from("2.0"));
    raw.insert("id".into(), id.clone());
    raw.insert("method".into(), Value::from("tools/list"));
    raw.insert("params".into(), Value::Object(Map::new()));
    let mut answer = forward(session, &id, raw, timeout, None).await;
    if let Some(result) = answer.get_mut("result") {
        cx.inspect_tools_list(&session.id, &session.state, result);
    }
}

async fn forward(
    session: &McpSession,
    id: &Value,
    raw: Map<String, Value>,
    timeout: Duration,
    relay: Option<&tokio::sync::mpsc::Sender<Relayed>>,
) -> Value {
    let message = Value::Object(raw);
    match session.upstream.request(&message, id, timeout, relay).await {
        Ok(answer) => answer,
        Err(error) => {
            tracing::warn!(server = %session.server.name, error = %error, "mcp upstream request failed");
            error.to_response(id)
        }
    }
}

fn inspect_answer(
    cx: &McpContext<'_>,
    session: &McpSession,
    id: &Value,
    method: &str,
    subject: &Value,
    mut answer: Value,
) -> Value {
    let Some(result) = answer.get_mut("result") else {
        return answer;
    };
    let outcome = match session.map.lock() {
        Ok(mut map) => cx.inspect_result(
            &session.id,
            &session.state,
            method,
            subject,
            result,
            &mut map,
        ),
        Err(_) => ResultOutcome::Blocked("internal error".into()),
    };
    match outcome {
        ResultOutcome::Pass => answer,
        ResultOutcome::Blocked(text) if method == "tools/call" => {
            result_response(id, tool_error_result(&text))
        }
        ResultOutcome::Blocked(text) => error_response(id, ErrorCode::POLICY_DENIED, &text, None),
    }
}
