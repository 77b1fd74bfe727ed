//! Talking to an MCP upstream: Streamable HTTP (POST one message, read a JSON or SSE answer)
//! or a stdio child process (one JSON message per line, answers matched to requests by id).
//!
//! Each client session has its own upstream connection: its own upstream `Mcp-Session-Id`, or
//! its own child process. Request ids are the client's, unchanged: within one session they are
//! unique by the client's contract, and no other session shares the upstream.
//!
//! Messages the upstream starts (requests such as sampling, notifications such as progress):
//! over HTTP, those on a request's SSE answer go to that request's relay (the client's SSE
//! stream); a stdio child's go to the session's `server_messages` channel when it has one
//! (`portcullis mcp stdio`, which forwards them to the client), and are dropped otherwise.

use std::collections::HashMap;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::header::{ACCEPT, CONTENT_TYPE};
use http::{HeaderValue, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use portcullis_config::McpTransport;
use portcullis_mcp::{ErrorCode, Message, error_response};
use serde_json::Value;
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::{mpsc, oneshot};

/// The session id header of Streamable HTTP.
pub(crate) const SESSION_HEADER: &str = "mcp-session-id";
/// The negotiated protocol version header.
pub(crate) const VERSION_HEADER: &str = "mcp-protocol-version";
/// Requests one stdio upstream may have in flight.
const MAX_PENDING: usize = 1024;
/// Environment a stdio child inherits from the gateway; everything else is configured.
const INHERITED_ENV: [&str; 4] = ["PATH", "HOME", "LANG", "TMPDIR"];

/// HTTP client for MCP upstreams (HTTP/1.1, TLS with the web PKI roots).
pub(crate) type HttpClient = Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>;

/// Builds the shared HTTP client.
pub(crate) fn http_client() -> Result<HttpClient, rustls::Error> {
    let mut http = HttpConnector::new();
    http.set_connect_timeout(Some(Duration::from_secs(10)));
    http.set_nodelay(true);
    http.enforce_http(false);
    let tls = hyper_rustls::HttpsConnectorBuilder::new()
        .with_provider_and_webpki_roots(rustls::crypto::ring::default_provider())?
        .https_or_http()
        .enable_http1()
        .wrap_connector(http);
    Ok(Client::builder(TokioExecutor::new()).build(tls))
}

/// What goes to a request's client while it waits for its answer (the client's SSE stream).
#[derive(Debug)]
pub(crate) enum Relayed {
    /// A message: the upstream's own (progress, sampling, elicitation) or, last, the answer.
    Message(Value),
    /// Nothing to say yet: an SSE comment keeps the connection open (a held call).
    KeepAlive,
}

/// Why an upstream exchange failed. Each becomes a JSON-RPC error for the client.
#[derive(Debug, thiserror::Error)]
pub(crate) enum UpstreamError {
    /// Connecting, writing or reading failed, or the process is gone.
    #[error("upstream unavailable: {0}")]
    Unavailable(String),
    /// No answer in time.
    #[error("upstream did not answer in time")]
    Timeout,
    /// The answer was not a JSON-RPC message, or too large.
    #[error("upstream answered with an invalid message: {0}")]
    Invalid(String),
    /// The upstream forgot the session (HTTP 404).
    #[error("upstream session ended")]
    SessionEnded,
}

impl UpstreamError {
    /// The JSON-RPC error response for request `id`.
    pub(crate) fn to_response(&self, id: &Value) -> Value {
        let code = match self {
            Self::Timeout => ErrorCode::REQUEST_TIMEOUT,
            Self::Unavailable(_) | Self::SessionEnded => ErrorCode::UPSTREAM_UNAVAILABLE,
            Self::Invalid(_) => ErrorCode::INTERNAL_ERROR,
        };
        error_response(id, code, &self.to_string(), None)
    }
}

/// One session's connection to its upstream.
// One per session, never moved around in bulk: the size difference does not matter.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Upstream {
    Http(HttpUpstream),
    Stdio(StdioUpstream),
}

impl Upstream {
    /// Connects (HTTP: nothing to do until the first message; stdio: starts the child).
    pub(crate) fn connect(
        transport: &McpTransport,
        client: &HttpClient,
        max_message_bytes: usize,
        server_messages: Option<mpsc::Sender<Value>>,
    ) -> Result<Self, UpstreamError> {
        match transport {
            McpTransport::Http(uri) => Ok(Self::Http(HttpUpstream {
                client: client.clone(),
                uri: uri.clone(),
                session: Mutex::new(None),
                version: Mutex::new(None),
                max_message_bytes,
            })),
            McpTransport::Stdio { program, args, env } => {
                let mut command = Command::new(program);
                command.args(args).env_clear();
                for key in INHERITED_ENV {
                    if let Some(value) = std::env::var_os(key) {
                        command.env(key, value);
                    }
                }
                command.envs(env);
                StdioUpstream::spawn(command, max_message_bytes, server_messages).map(Self::Stdio)
            }
        }
    }

    /// Starts `command` as a stdio server (its environment as the caller set it).
    pub(crate) fn spawn_command(
        command: Command,
        max_message_bytes: usize,
        server_messages: Option<mpsc::Sender<Value>>,
    ) -> Result<Self, UpstreamError> {
        StdioUpstream::spawn(command, max_message_bytes, server_messages).map(Self::Stdio)
    }

    /// Sends a request and waits (at most `timeout`) for its response.
    /// Messages the upstream sends on the request's SSE stream before the response
    /// (notifications, its own requests) go to `relay` when there is one, else are dropped.
    pub(crate) async fn request(
        &self,
        message: &Value,
        id: &Value,
        timeout: Duration,
        relay: Option<&mpsc::Sender<Relayed>>,
    ) -> Result<Value, UpstreamError> {
        let exchange = async {
            match self {
                Self::Http(http) => http.request(message, id, relay).await,
                Self::Stdio(stdio) => stdio.request(message, id).await,
            }
        };
        tokio::time::timeout(timeout, exchange)
            .await
            .unwrap_or(Err(UpstreamError::Timeout))
    }

    /// Sends a notification or a response (to an upstream's request); no answer expected.
    pub(crate) async fn send(
        &self,
        message: &Value,
        timeout: Duration,
    ) -> Result<(), UpstreamError> {
        let send = async {
            match self {
                Self::Http(http) => http.post(message).await.map(|_| ()),
                Self::Stdio(stdio) => stdio.write(message).await,
            }
        };
        tokio::time::timeout(timeout, send)
            .await
            .unwrap_or(Err(UpstreamError::Timeout))
    }

    /// Records the protocol version negotiated by `initialize` (sent on later HTTP requests).
    pub(crate) fn set_version(&self, version: &str) {
        if let Self::Http(http) = self
            && let Ok(mut slot) = http.version.lock()
        {
            *slot = HeaderValue::from_str(version).ok();
        }
    }

    /// Ends the upstream session: DELETE for HTTP (best effort), stop the child for stdio.
    pub(crate) async fn close(&self) {
        match self {
            Self::Http(http) => http.delete().await,
            Self::Stdio(stdio) => stdio.stop(),
        }
    }
}

pub(crate) struct HttpUpstream {
    client: HttpClient,
    uri: http::Uri,
    /// The upstream's `Mcp-Session-Id`, learned from its `initialize` answer.
    session: Mutex<Option<HeaderValue>>,
    version: Mutex<Option<HeaderValue>>,
    max_message_bytes: usize,
}

/// What a POST returned.
enum Posted {
    Accepted,
    Json(Bytes),
    Sse(hyper::body::Incoming),
}

impl HttpUpstream {
    fn build(&self, method: Method, body: Bytes) -> Result<Request<Full<Bytes>>, UpstreamError> {
        let mut request = Request::builder()
            .method(method)
            .uri(self.uri.clone())
            .header(ACCEPT, "application/json, text/event-stream");
        if !body.is_empty() {
            request = request.header(CONTENT_TYPE, "application/json");
        }
        if let Ok(slot) = self.session.lock()
            && let Some(session) = slot.as_ref()
        {
            request = request.header(SESSION_HEADER, session.clone());
        }
        if let Ok(slot) = self.version.lock()
            && let Some(version) = slot.as_ref()
        {
            request = request.header(VERSION_HEADER, version.clone());
        }
        request
            .body(Full::new(body))
            .map_err(|e| UpstreamError::Unavailable(e.to_string()))
    }

    async fn post(&self, message: &Value) -> Result<Posted, UpstreamError> {
        let body =
            serde_json::to_vec(message).map_err(|e| UpstreamError::Invalid(e.to_string()))?;
        let request = self.build(Method::POST, Bytes::from(body))?;
        let response = self
            .client
            .request(request)
            .await
            .map_err(|e| UpstreamError::Unavailable(crate::upstream::error_chain(&e)))?;
        if let Some(session) = response.headers().get(SESSION_HEADER)
            && let Ok(mut slot) = self.session.lock()
            && slot.is_none()
        {
            *slot = Some(session.clone());
        }
        let status = response.status();
        if status == StatusCode::NOT_FOUND {
            return Err(UpstreamError::SessionEnded);
        }
        if status == StatusCode::ACCEPTED {
            return Ok(Posted::Accepted);
        }
        let is_sse = response
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("text/event-stream"));
        let body = response.into_body();
        if is_sse && status.is_success() {
            return Ok(Posted::Sse(body));
        }
        let bytes = crate::body::read_limited(
            body,
            self.max_message_bytes as u64,
            Duration::from_secs(3600),
            None,
        )
        .await
        .map_err(|e| UpstreamError::Invalid(format!("reading the body: {e:?}")))?;
        if status.is_success() || status.is_client_error() {
            // A 4xx with a JSON-RPC error body is an answer too (the SDKs send those).
            return Ok(Posted::Json(bytes));
        }
        Err(UpstreamError::Unavailable(format!("status {status}")))
    }

    async fn request(
        &self,
        message: &Value,
        id: &Value,
        relay: Option<&mpsc::Sender<Relayed>>,
    ) -> Result<Value, UpstreamError> {
        match self.post(message).await? {
            Posted::Accepted => Err(UpstreamError::Invalid("202 for a request".into())),
            Posted::Json(bytes) => match Message::parse(&bytes) {
                Ok(Message::Response { raw, .. }) => Ok(Value::Object(raw)),
                Ok(_) => Err(UpstreamError::Invalid("not a response".into())),
                Err(e) => Err(UpstreamError::Invalid(e.to_string())),
            },
            Posted::Sse(body) => self.response_in_stream(body, id, relay).await,
        }
    }

    /// Reads SSE events until the response to `id` arrives; other messages go to `relay`,
    /// in order, or are dropped without one.
    async fn response_in_stream(
        &self,
        mut body: hyper::body::Incoming,
        id: &Value,
        relay: Option<&mpsc::Sender<Relayed>>,
    ) -> Result<Value, UpstreamError> {
        let mut framer = portcullis_openai::SseFramer::new(self.max_message_bytes);
        // Notifications may come before the response: the stream as a whole is bounded too.
        let stream_limit = self.max_message_bytes.saturating_mul(4);
        let mut read = 0usize;
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| UpstreamError::Unavailable(e.to_string()))?;
            let Ok(data) = frame.into_data() else {
                continue;
            };
            // Relayed messages are passed on, not kept: only a stream read for nothing (no
            // relay) is bounded as a whole.
            read += data.len();
            if relay.is_none() && read > stream_limit {
                return Err(UpstreamError::Invalid(format!(
                    "the answer stream exceeds {stream_limit} bytes"
                )));
            }
            let events = framer
                .push(data)
                .map_err(|_| UpstreamError::Invalid("an SSE event is too large".into()))?;
            for event in portcullis_openai::split_events(&events) {
                let Some(data) = portcullis_openai::event_data(event) else {
                    continue;
                };
                if data.trim().is_empty() {
                    continue;
                }
                if data.len() > self.max_message_bytes {
                    return Err(UpstreamError::Invalid(
                        "an answer exceeds mcp.max_message_bytes".into(),
                    ));
                }
                match Message::parse(data.as_bytes()) {
                    Ok(Message::Response { id: got, raw }) if &got == id => {
                        return Ok(Value::Object(raw));
                    }
                    Ok(other) => {
                        if let Some(relay) = relay {
                            // A client that went away does not cancel the call (the spec says
                            // so); its messages are then dropped.
                            let _ = relay.send(Relayed::Message(other.into_value())).await;
                        }
                    }
                    Err(e) => return Err(UpstreamError::Invalid(e.to_string())),
                }
            }
        }
        Err(UpstreamError::Unavailable(
            "the stream ended before the response".into(),
        ))
    }

    async fn delete(&self) {
        let has_session = self.session.lock().map(|s| s.is_some()).unwrap_or(false);
        if !has_session {
            return;
        }
        if let Ok(request) = self.build(Method::DELETE, Bytes::new()) {
            let _ =
                tokio::time::timeout(Duration::from_secs(5), self.client.request(request)).await;
        }
    }
}

type Pending = Arc<Mutex<Option<HashMap<String, oneshot::Sender<Value>>>>>;

pub(crate) struct StdioUpstream {
    stdin: tokio::sync::Mutex<Option<ChildStdin>>,
    /// Waiting requests by id (its JSON text); `None` once the child is gone.
    pending: Pending,
    child: Mutex<Option<Child>>,
}

impl StdioUpstream {
    fn spawn(
        mut command: Command,
        max_message_bytes: usize,
        server_messages: Option<mpsc::Sender<Value>>,
    ) -> Result<Self, UpstreamError> {
        command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true);
        let mut child = command
            .spawn()
            .map_err(|e| UpstreamError::Unavailable(format!("cannot start the server: {e}")))?;
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            return Err(UpstreamError::Unavailable("no stdio pipes".into()));
        };
        let pending: Pending = Arc::new(Mutex::new(Some(HashMap::new())));
        tokio::spawn(read_child(
            BufReader::new(stdout),
            pending.clone(),
            max_message_bytes,
            server_messages,
        ));
        Ok(Self {
            stdin: tokio::sync::Mutex::new(Some(stdin)),
            pending,
            child: Mutex::new(Some(child)),
        })
    }

    async fn write(&self, message: &Value) -> Result<(), UpstreamError> {
        let mut line =
            serde_json::to_vec(message).map_err(|e| UpstreamError::Invalid(e.to_string()))?;
        line.push(b'\n');
        let mut stdin = self.stdin.lock().await;
        let Some(pipe) = stdin.as_mut() else {
            return Err(UpstreamError::Unavailable("the server has exited".into()));
        };
        let written = async {
            pipe.write_all(&line).await?;
            pipe.flush().await
        };
        if let Err(error) = written.await {
            *stdin = None;
            return Err(UpstreamError::Unavailable(format!(
                "writing to the server: {error}"
            )));
        }
        Ok(())
    }

    async fn request(&self, message: &Value, id: &Value) -> Result<Value, UpstreamError> {
        let key = id.to_string();
        let (tx, rx) = oneshot::channel();
        {
            let mut pending = self
                .pending
                .lock()
                .map_err(|_| UpstreamError::Unavailable("internal lock poisoned".into()))?;
            let Some(map) = pending.as_mut() else {
                return Err(UpstreamError::Unavailable("the server has exited".into()));
            };
            if map.len() >= MAX_PENDING {
                return Err(UpstreamError::Unavailable(
                    "too many requests in flight".into(),
                ));
            }
            map.insert(key.clone(), tx);
        }
        // A request that times out or is dropped leaves its entry; remove it on the way out.
        let guard = PendingGuard {
            pending: &self.pending,
            key,
        };
        self.write(message).await?;
        let answer = rx
            .await
            .map_err(|_| UpstreamError::Unavailable("the server exited before answering".into()));
        drop(guard);
        answer
    }

    fn stop(&self) {
        if let Ok(mut child) = self.child.lock()
            && let Some(mut child) = child.take()
        {
            let _ = child.start_kill();
        }
    }
}

impl Drop for StdioUpstream {
    fn drop(&mut self) {
        self.stop();
    }
}

struct PendingGuard<'a> {
    pending: &'a Pending,
    key: String,
}

impl Drop for PendingGuard<'_> {
    fn drop(&mut self) {
        if let Ok(mut pending) = self.pending.lock()
            && let Some(map) = pending.as_mut()
        {
            map.remove(&self.key);
        }
    }
}

/// Reads the child's stdout: responses go to their waiting requests, anything else to
/// `server_messages`, or is dropped (and logged) without one. At EOF every waiting request
/// fails and later ones are refused.
async fn read_child<R: AsyncBufRead + Unpin>(
    mut reader: R,
    pending: Pending,
    max_message_bytes: usize,
    server_messages: Option<mpsc::Sender<Value>>,
) {
    let mut line = Vec::new();
    loop {
        line.clear();
        match read_bounded_line(&mut reader, &mut line, max_message_bytes).await {
            Ok(0) => break,
            Ok(_) => {}
            Err(error) if error.kind() == std::io::ErrorKind::InvalidData => {
                // Too long: skip the rest of the line and fail the request it answered (its
                // id is near the start of the message), not the session.
                let id = leading_id(&line);
                line.clear();
                if skip_line(&mut reader).await.is_err() {
                    break;
                }
                tracing::warn!("mcp stdio upstream: a message exceeds mcp.max_message_bytes");
                let waiter = id.as_ref().and_then(|id| {
                    pending
                        .lock()
                        .ok()
                        .and_then(|mut p| p.as_mut().and_then(|m| m.remove(id)))
                });
                if let Some(tx) = waiter {
                    let id: Value = id
                        .and_then(|id| serde_json::from_str(&id).ok())
                        .unwrap_or(Value::Null);
                    let _ = tx.send(error_response(
                        &id,
                        ErrorCode::INTERNAL_ERROR,
                        "upstream answered with an invalid message: larger than mcp.max_message_bytes",
                        None,
                    ));
                }
                continue;
            }
            Err(error) => {
                tracing::warn!(error = %error, "mcp stdio upstream: reading failed; closing");
                break;
            }
        }
        let text = line.trim_ascii();
        if text.is_empty() {
            continue;
        }
        match Message::parse(text) {
            Ok(Message::Response { id, raw }) => {
                let waiter = pending
                    .lock()
                    .ok()
                    .and_then(|mut p| p.as_mut().and_then(|m| m.remove(&id.to_string())));
                match waiter {
                    Some(tx) => {
                        let _ = tx.send(Value::Object(raw));
                    }
                    None => tracing::debug!("mcp stdio upstream: a response nobody waits for"),
                }
            }
            Ok(other) => {
                if let Some(tx) = &server_messages {
                    let _ = tx.send(other.into_value()).await;
                } else {
                    tracing::debug!("mcp stdio upstream: a server-initiated message was dropped");
                }
            }
            Err(error) => {
                tracing::warn!(error = %error, "mcp stdio upstream: not a JSON-RPC message")
            }
        }
    }
    // The child is gone: fail everything waiting, refuse what comes.
    if let Ok(mut p) = pending.lock() {
        p.take();
    }
}

/// The `id` of a JSON-RPC message from its first bytes (as the text of its JSON value, the
/// key the pending map uses), when it is there: `"id":7` or `"id":"a"`.
fn leading_id(prefix: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(prefix);
    let at = text.find("\"id\"")?;
    let rest = text[at + 4..].trim_start().strip_prefix(':')?.trim_start();
    if let Some(quoted) = rest.strip_prefix('"') {
        let end = quoted.find('"')?;
        return Some(Value::String(quoted[..end].to_owned()).to_string());
    }
    let end = rest
        .find(|c: char| !(c.is_ascii_digit() || c == '-'))
        .unwrap_or(rest.len());
    let number: i64 = rest[..end].parse().ok()?;
    Some(Value::from(number).to_string())
}

/// Skips to just past the next `\n` (after an over-long line).
pub(crate) async fn skip_line<R: AsyncBufRead + Unpin>(reader: &mut R) -> std::io::Result<()> {
    loop {
        let available = reader.fill_buf().await?;
        if available.is_empty() {
            return Ok(());
        }
        match memchr::memchr(b'\n', available) {
            Some(i) => {
                reader.consume(i + 1);
                return Ok(());
            }
            None => {
                let n = available.len();
                reader.consume(n);
            }
        }
    }
}

/// Reads one `\n`-terminated line of at most `limit` bytes; an over-long line is an error.
pub(crate) async fn read_bounded_line<R: AsyncBufRead + Unpin>(
    reader: &mut R,
    out: &mut Vec<u8>,
    limit: usize,
) -> std::io::Result<usize> {
    loop {
        let available = reader.fill_buf().await?;
        if available.is_empty() {
            return Ok(out.len());
        }
        let (take, done) = match memchr::memchr(b'\n', available) {
            Some(i) => (i + 1, true),
            None => (available.len(), false),
        };
        if out.len() + take > limit + 1 {
            // Keep the start (where a message's id is) and leave the rest for `skip_line`.
            let room = (limit + 1).saturating_sub(out.len()).min(take);
            out.extend_from_slice(&available[..room]);
            reader.consume(room);
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "a message is larger than mcp.max_message_bytes",
            ));
        }
        out.extend_from_slice(&available[..take]);
        reader.consume(take);
        if done {
            return Ok(out.len());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_read_from_the_start_of_a_message() {
        assert_eq!(
            leading_id(br#"{"jsonrpc":"2.0","id":17,"result":{"x""#).as_deref(),
            Some("17")
        );
        assert_eq!(
            leading_id(br#"{"id": "a-1", "jsonrpc""#).as_deref(),
            Some("\"a-1\"")
        );
        assert_eq!(leading_id(br#"{"jsonrpc":"2.0","result""#), None);
    }

    #[tokio::test]
    async fn lines_are_bounded() {
        let mut input: &[u8] = b"{\"a\":1}\n0123456789abcdef\nlast";
        let mut line = Vec::new();
        assert_eq!(
            read_bounded_line(&mut input, &mut line, 64).await.unwrap(),
            8
        );
        line.clear();
        assert!(read_bounded_line(&mut input, &mut line, 8).await.is_err());
        let mut input: &[u8] = b"last";
        line.clear();
        assert_eq!(
            read_bounded_line(&mut input, &mut line, 64).await.unwrap(),
            4
        );
    }
}
