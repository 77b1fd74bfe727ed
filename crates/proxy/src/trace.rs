//! Trace spans, following the OpenTelemetry GenAI semantic conventions.
//!
//! - One SERVER span per exchange ([`ExchangeSpan`]), started when the request arrives and ended
//!   when the response body is done (a stream ends long after the exchange returns its
//!   response): `chat {model}`, `text_completion {model}`, `embeddings {model}`, or
//!   `{METHOD} {route}` for the other routes (models, passthrough, refused paths).
//! - One SERVER span per guarded MCP `tools/call` ([`ToolSpan`]): `execute_tool {tool}`.
//!
//! SERVER, not CLIENT: the span covers the gateway's whole handling of a client's request,
//! including refusals that never reach a model, and sits under the client's own span. The
//! upstream request carries this span's `traceparent`, so the model server's spans nest under it.
//!
//! The parent is the client's `traceparent` (W3C trace context) when valid; MCP tool calls take
//! it from `params._meta.traceparent`. Spans carry names, counts, decisions and finding
//! *categories*; never prompt or completion text, tool arguments, credentials or headers,
//! unless `telemetry.tracing.capture_content` is set (then only the request's messages).
//!
//! The tracer is explicit ([`Traces`], held by [`crate::Services`]), not the process-global one,
//! so gateways in one process (tests, a library user) each export where they were told.

use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method};
use http_body::{Body, Frame, SizeHint};
use opentelemetry::trace::{Span as _, SpanKind, Status, TraceContextExt as _, Tracer as _};
use opentelemetry::{KeyValue, Value};
use portcullis_config::SpanContent;
use portcullis_core::Principal;
use portcullis_telemetry::{OtlpSettings, OtlpSpan, OtlpTracing, TracingSetupError};
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::body::{BodyError, ProxyBody};
use crate::usage::UsageCell;

/// Longest captured content (`gen_ai.input.messages`), in bytes; longer is cut at a character
/// boundary and marked with `portcullis.content.truncated`.
const MAX_CAPTURED_BYTES: usize = 8 * 1024;

/// Longest model name put in a span name or attribute.
const MAX_MODEL_CHARS: usize = 100;

/// A running trace export and what spans may hold. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Traces {
    otlp: OtlpTracing,
    content: SpanContent,
}

/// Trace export could not start.
#[derive(Debug, thiserror::Error)]
pub enum TracesError {
    /// `headers_env` names a variable that is not set.
    #[error("telemetry.tracing.headers_env: environment variable {0} is not set")]
    MissingHeaders(String),
    /// The headers variable is not `key=value,...`.
    #[error("telemetry.tracing.headers_env: {var}: {reason}")]
    BadHeaders {
        /// The variable.
        var: String,
        /// What is wrong (never the value).
        reason: String,
    },
    /// The exporter could not be built.
    #[error(transparent)]
    Setup(#[from] TracingSetupError),
}

impl Traces {
    /// Starts export as `settings` say (reads `headers_env` and the `OTEL_*` fallbacks);
    /// `None` when tracing is disabled.
    pub fn start(settings: &portcullis_config::Tracing) -> Result<Option<Self>, TracesError> {
        if !settings.enabled {
            return Ok(None);
        }
        let headers = match &settings.headers_env {
            None => Vec::new(),
            Some(var) => {
                let text =
                    std::env::var(var).map_err(|_| TracesError::MissingHeaders(var.clone()))?;
                portcullis_config::parse_headers(&text).map_err(|reason| {
                    TracesError::BadHeaders {
                        var: var.clone(),
                        reason,
                    }
                })?
            }
        };
        let otlp = OtlpTracing::start(&OtlpSettings {
            endpoint: settings.endpoint.clone(),
            service_name: settings.service_name.clone(),
            service_version: env!("CARGO_PKG_VERSION").to_owned(),
            instance_id: crate::token::random_hex128(),
            sample_ratio: settings.sample_ratio,
            headers,
            timeout: settings.timeout,
            queue_capacity: settings.queue_capacity,
        })?;
        tracing::info!(
            endpoint = otlp.endpoint(),
            sample_ratio = settings.sample_ratio,
            "exporting traces over OTLP"
        );
        Ok(Some(Self {
            otlp,
            content: settings.content,
        }))
    }

    /// The export pipeline (its tracer also serves the `tracing` bridge of the logger).
    pub fn otlp(&self) -> &OtlpTracing {
        &self.otlp
    }

    /// Exports every span ended so far (tests, and before a planned stop).
    pub async fn flush(&self) {
        let otlp = self.otlp.clone();
        let flushed = tokio::task::spawn_blocking(move || otlp.force_flush()).await;
        if let Ok(Err(error)) = flushed {
            tracing::warn!(error = %error, "trace flush failed");
        }
    }

    /// Exports what is queued and stops, waiting at most `bound` (at shutdown).
    pub async fn shutdown(&self, bound: Duration) {
        let otlp = self.otlp.clone();
        let stopped = tokio::task::spawn_blocking(move || otlp.shutdown(bound));
        match tokio::time::timeout(bound + Duration::from_millis(100), stopped).await {
            Ok(Ok(Ok(()))) => tracing::info!("traces flushed"),
            Ok(Ok(Err(error))) => tracing::warn!(error = %error, "trace export did not finish"),
            Ok(Err(_)) | Err(_) => tracing::warn!("trace export did not finish in time"),
        }
    }

    fn start_span(&self, name: &'static str, parent: &opentelemetry::Context) -> OtlpSpan {
        self.otlp
            .tracer()
            .span_builder(name)
            .with_kind(SpanKind::Server)
            .start_with_context(self.otlp.tracer(), parent)
    }
}

/// The trace headers the upstream request carries instead of the client's.
#[derive(Debug, Clone)]
pub(crate) struct Propagation {
    pub(crate) traceparent: HeaderValue,
    pub(crate) tracestate: Option<HeaderValue>,
}

impl Propagation {
    fn of(span: &OtlpSpan) -> Option<Self> {
        let context =
            opentelemetry::Context::new().with_remote_span_context(span.span_context().clone());
        let mut traceparent = None;
        let mut tracestate = None;
        for (name, value) in portcullis_telemetry::inject_trace_context(&context) {
            let value = HeaderValue::from_str(&value).ok();
            match name {
                "traceparent" => traceparent = value,
                _ => tracestate = value,
            }
        }
        Some(Self {
            traceparent: traceparent?,
            tracestate,
        })
    }
}

/// The model an upstream answered with, when the answer says (`model` of a JSON answer or of a
/// stream's chunks); set at most once, read when the span ends.
#[derive(Debug, Clone, Default)]
pub(crate) struct ModelCell(Arc<OnceLock<Box<str>>>);

impl ModelCell {
    /// Records the model; a second report is ignored.
    pub(crate) fn set(&self, model: &str) {
        let _ = self.0.set(
            model
                .chars()
                .take(MAX_MODEL_CHARS)
                .collect::<String>()
                .into(),
        );
    }

    fn get(&self) -> Option<&str> {
        self.0.get().map(|m| &**m)
    }
}

/// What the exchange knew when it answered, for its span.
pub(crate) struct ExchangeFacts<'a> {
    pub(crate) request_id: &'a str,
    pub(crate) route: &'static str,
    pub(crate) requested_model: Option<&'a str>,
    pub(crate) upstream: Option<&'a str>,
    pub(crate) status: u16,
    /// The error code the client got (a policy's own code for a policy denial).
    pub(crate) reject: Option<&'a str>,
    pub(crate) decision: Option<(&'static str, bool)>,
    pub(crate) principal: Option<&'a Principal>,
    pub(crate) findings: &'a [&'static str],
}

/// The span of one exchange, from the request's arrival to [`ExchangeSpan::finish`].
pub(crate) struct ExchangeSpan {
    span: OtlpSpan,
    method: Method,
    content: SpanContent,
    propagation: Option<Propagation>,
}

impl ExchangeSpan {
    /// Starts the span under the client's trace context (if it sent a valid one).
    pub(crate) fn start(traces: &Traces, method: &Method, headers: &HeaderMap) -> Self {
        let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        let parent = portcullis_telemetry::extract_trace_context(
            header("traceparent"),
            header("tracestate"),
        );
        let mut span = traces.start_span("exchange", &parent);
        span.set_attribute(KeyValue::new(
            "http.request.method",
            method.as_str().to_owned(),
        ));
        let propagation = Propagation::of(&span);
        Self {
            span,
            method: method.clone(),
            content: traces.content,
            propagation,
        }
    }

    /// The trace id, for the access log line; `None` when the span is not recorded.
    pub(crate) fn trace_id(&self) -> Option<String> {
        let context = self.span.span_context();
        context.is_sampled().then(|| context.trace_id().to_string())
    }

    /// The headers the upstream request carries.
    pub(crate) fn propagation(&self) -> Option<&Propagation> {
        self.propagation.as_ref()
    }

    /// Notes the request's generation parameters (and, when capture is on, its messages). Reads
    /// the body once more, so only for a recorded span.
    pub(crate) fn request(&mut self, body: &[u8]) {
        if !self.span.is_recording() {
            return;
        }
        #[derive(Deserialize)]
        struct Params<'a> {
            #[serde(default)]
            max_tokens: Option<u64>,
            #[serde(default)]
            max_completion_tokens: Option<u64>,
            #[serde(default)]
            temperature: Option<f64>,
            #[serde(default)]
            top_p: Option<f64>,
            #[serde(default, borrow)]
            messages: Option<&'a RawValue>,
            #[serde(default, borrow)]
            prompt: Option<&'a RawValue>,
        }
        let Ok(params) = serde_json::from_slice::<Params<'_>>(body) else {
            return;
        };
        if let Some(max) = params.max_completion_tokens.or(params.max_tokens) {
            self.span
                .set_attribute(KeyValue::new("gen_ai.request.max_tokens", int(max)));
        }
        if let Some(temperature) = params.temperature {
            self.span
                .set_attribute(KeyValue::new("gen_ai.request.temperature", temperature));
        }
        if let Some(top_p) = params.top_p {
            self.span
                .set_attribute(KeyValue::new("gen_ai.request.top_p", top_p));
        }
        if self.content == SpanContent::Capture
            && let Some(input) = params.messages.or(params.prompt)
        {
            let (text, truncated) = truncate(input.get(), MAX_CAPTURED_BYTES);
            self.span
                .set_attribute(KeyValue::new("gen_ai.input.messages", text.to_owned()));
            if truncated {
                self.span
                    .set_attribute(KeyValue::new("portcullis.content.truncated", true));
            }
        }
    }

    /// Names the span and records what the exchange decided; returns the response body wrapped
    /// so that the span ends (with the token usage) when the body is done.
    pub(crate) fn finish(
        mut self,
        facts: &ExchangeFacts<'_>,
        usage: UsageCell,
        response_model: ModelCell,
        body: ProxyBody,
    ) -> ProxyBody {
        let operation = operation_of(facts.route);
        let name = match (operation, facts.requested_model) {
            (Some(operation), Some(model)) => format!("{operation} {model}"),
            (Some(operation), None) => operation.to_owned(),
            (None, _) => format!("{} {}", self.method, facts.route),
        };
        self.span.update_name(name);
        let span = &mut self.span;
        let mut set =
            |key: &'static str, value: Value| span.set_attribute(KeyValue::new(key, value));
        set("portcullis.request_id", facts.request_id.to_owned().into());
        set("portcullis.route", facts.route.into());
        set("http.response.status_code", i64::from(facts.status).into());
        if let Some(operation) = operation {
            set("gen_ai.operation.name", operation.into());
            let provider: Value = facts.upstream.unwrap_or("openai").to_owned().into();
            set("gen_ai.system", provider.clone());
            set("gen_ai.provider.name", provider);
        }
        if let Some(model) = facts.requested_model {
            set("gen_ai.request.model", model.to_owned().into());
        }
        if let Some(upstream) = facts.upstream {
            set("portcullis.upstream", upstream.to_owned().into());
        }
        if let Some((action, shadow)) = facts.decision {
            set("portcullis.decision", action.into());
            set("portcullis.decision.shadow", shadow.into());
        }
        if let Some(code) = facts.reject {
            set("portcullis.reject", code.to_owned().into());
            set("error.type", code.to_owned().into());
        } else if facts.status >= 500 {
            set("error.type", facts.status.to_string().into());
        }
        if let Some(principal) = facts.principal {
            set("portcullis.principal", principal.id.clone().into());
            if let Some(tenant) = &principal.tenant {
                set("portcullis.tenant", tenant.clone().into());
            }
        }
        if !facts.findings.is_empty() {
            set("portcullis.findings", facts.findings.join(",").into());
        }
        if facts.status >= 500 {
            let description = facts.reject.unwrap_or("server error").to_owned();
            self.span.set_status(Status::error(description));
        }
        let ending = Ending {
            span: self.span,
            usage,
            response_model,
            complete: false,
            failed: false,
        };
        http_body_util::BodyExt::boxed_unsync(SpanBody {
            inner: body,
            ending,
        })
    }
}

/// `gen_ai.operation.name` of a route, for the OpenAI routes.
fn operation_of(route: &str) -> Option<&'static str> {
    match route {
        "chat_completions" => Some("chat"),
        "completions" => Some("text_completion"),
        "embeddings" => Some("embeddings"),
        _ => None,
    }
}

/// The span's last facts, set when the response body is done (or dropped).
struct Ending {
    span: OtlpSpan,
    usage: UsageCell,
    response_model: ModelCell,
    /// The body reached its end.
    complete: bool,
    /// The body failed (an upstream stream broke).
    failed: bool,
}

impl Drop for Ending {
    fn drop(&mut self) {
        if let Some(usage) = self.usage.get() {
            self.span.set_attributes([
                KeyValue::new("gen_ai.usage.input_tokens", int(usage.prompt)),
                KeyValue::new("gen_ai.usage.output_tokens", int(usage.completion)),
            ]);
        }
        if let Some(model) = self.response_model.get() {
            self.span
                .set_attribute(KeyValue::new("gen_ai.response.model", model.to_owned()));
        }
        if self.failed {
            self.span
                .set_attribute(KeyValue::new("error.type", "response_body_error"));
            self.span.set_status(Status::error("response body failed"));
        } else if !self.complete {
            // The client went away before the end (or the server stopped it).
            self.span
                .set_attribute(KeyValue::new("portcullis.response.incomplete", true));
        }
        self.span.end();
    }
}

/// A response body that ends its exchange's span when it is done or dropped.
struct SpanBody {
    inner: ProxyBody,
    ending: Ending,
}

impl Body for SpanBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let this = &mut *self;
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(None) => this.ending.complete = true,
            Poll::Ready(Some(Err(_))) => this.ending.failed = true,
            Poll::Ready(Some(Ok(_))) if this.inner.is_end_stream() => {
                this.ending.complete = true;
            }
            _ => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for SpanBody {
    fn drop(&mut self) {
        // A body that was empty from the start is never polled.
        if self.inner.is_end_stream() {
            self.ending.complete = true;
        }
    }
}

/// The span of one guarded MCP `tools/call`; ends when dropped.
pub(crate) struct ToolSpan {
    span: Option<OtlpSpan>,
}

impl ToolSpan {
    /// Starts `execute_tool {tool}` under the trace context in `params._meta` (if valid).
    pub(crate) fn start(
        traces: Option<&Traces>,
        server: &str,
        tool: &str,
        params: &serde_json::Value,
        request_id: &str,
        principal: Option<&Principal>,
    ) -> Self {
        let Some(traces) = traces else {
            return Self { span: None };
        };
        let meta = |key: &str| {
            params
                .pointer(&format!("/_meta/{key}"))
                .and_then(serde_json::Value::as_str)
        };
        let parent =
            portcullis_telemetry::extract_trace_context(meta("traceparent"), meta("tracestate"));
        let mut span = traces.start_span("execute_tool", &parent);
        let tool: String = tool.chars().take(MAX_MODEL_CHARS).collect();
        span.update_name(format!("execute_tool {tool}"));
        span.set_attributes([
            KeyValue::new("gen_ai.operation.name", "execute_tool"),
            KeyValue::new("gen_ai.tool.name", tool),
            KeyValue::new("mcp.method.name", "tools/call"),
            KeyValue::new("portcullis.mcp.server", server.to_owned()),
            KeyValue::new("portcullis.request_id", request_id.to_owned()),
            KeyValue::new("portcullis.route", "mcp"),
        ]);
        if let Some(principal) = principal {
            span.set_attribute(KeyValue::new("portcullis.principal", principal.id.clone()));
        }
        Self { span: Some(span) }
    }

    /// Puts this span's trace context in the forwarded `params._meta` (replacing the
    /// client's), so the MCP server's spans nest under it.
    pub(crate) fn propagate(&self, params: &mut serde_json::Value) {
        let (Some(span), Some(object)) = (&self.span, params.as_object_mut()) else {
            return;
        };
        let context =
            opentelemetry::Context::new().with_remote_span_context(span.span_context().clone());
        let headers = portcullis_telemetry::inject_trace_context(&context);
        if headers.is_empty() {
            return;
        }
        let meta = object
            .entry("_meta")
            .or_insert_with(|| serde_json::Value::Object(serde_json::Map::new()));
        if let Some(meta) = meta.as_object_mut() {
            for (key, value) in headers {
                meta.insert(key.to_owned(), serde_json::Value::from(value));
            }
        }
    }

    /// Whether the span is recorded (worth computing attributes for).
    pub(crate) fn is_recording(&self) -> bool {
        self.span.as_ref().is_some_and(|span| span.is_recording())
    }

    /// Records the enforced decision (`allow`, `redact`, `deny`, `require_approval`).
    pub(crate) fn decided(&mut self, action: &'static str, shadow: bool) {
        if let Some(span) = &mut self.span {
            span.set_attributes([
                KeyValue::new("portcullis.decision", action),
                KeyValue::new("portcullis.decision.shadow", shadow),
            ]);
        }
    }

    /// The call was not made: the agent gets a tool error saying why.
    pub(crate) fn refused(&mut self) {
        if let Some(span) = &mut self.span {
            span.set_attribute(KeyValue::new("error.type", "tool_call_refused"));
        }
    }

    /// Records how the call ended: a JSON-RPC error or a tool error result.
    pub(crate) fn answered(&mut self, answer: &serde_json::Value) {
        let Some(span) = &mut self.span else {
            return;
        };
        if let Some(code) = answer
            .pointer("/error/code")
            .and_then(serde_json::Value::as_i64)
        {
            span.set_attribute(KeyValue::new("error.type", code.to_string()));
            span.set_attribute(KeyValue::new("rpc.jsonrpc.error_code", code));
        } else if answer.pointer("/result/isError") == Some(&serde_json::Value::Bool(true)) {
            span.set_attribute(KeyValue::new("error.type", "tool_error"));
        }
    }
}

impl Drop for ToolSpan {
    fn drop(&mut self) {
        if let Some(span) = &mut self.span {
            span.end();
        }
    }
}

/// A count as an attribute value (OTLP integers are signed).
fn int(count: u64) -> i64 {
    i64::try_from(count).unwrap_or(i64::MAX)
}

/// `text` cut to at most `limit` bytes at a character boundary, and whether it was cut.
fn truncate(text: &str, limit: usize) -> (&str, bool) {
    if text.len() <= limit {
        return (text, false);
    }
    let mut end = limit;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    (&text[..end], true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operations_follow_the_genai_names() {
        assert_eq!(operation_of("chat_completions"), Some("chat"));
        assert_eq!(operation_of("completions"), Some("text_completion"));
        assert_eq!(operation_of("embeddings"), Some("embeddings"));
        assert_eq!(operation_of("models"), None);
        assert_eq!(operation_of("passthrough"), None);
    }

    #[test]
    fn captured_content_is_cut_at_a_character_boundary() {
        assert_eq!(truncate("abc", 8), ("abc", false));
        assert_eq!(truncate("aé", 2), ("a", true));
        assert_eq!(truncate("aéb", 3), ("aé", true));
    }

    #[test]
    fn the_model_cell_keeps_the_first_report() {
        let cell = ModelCell::default();
        cell.set("gpt-a");
        cell.set("gpt-b");
        assert_eq!(cell.get(), Some("gpt-a"));
    }
}
