//! Portcullis telemetry: the Prometheus metric families (one explicit registry), the typed
//! events that update them, log setup, and trace export over OTLP (`tracing_otlp.rs`).
//!
//! Call sites never name a metric: they report an event ([`ExchangeRecord`],
//! [`Metrics::upstream_failed`], ...) and this crate decides what it counts. Every label value
//! comes from a closed set or from the configuration (route names, upstream names, configured
//! model names and patterns), never from a request, so cardinality is bounded.
//! Start with [`Metrics`].
#![warn(missing_docs)]

mod logging;
mod metrics;
mod tracing_otlp;

pub use logging::{LogFormat, LogHandle, LogSetupError, init_logging};
pub use metrics::{
    AdminSurface, ApprovalEvent, AuditOutcome, AuditSinkKind, AuditSinkWrite, AuthOutcome,
    DecisionRecord, ExchangeRecord, Metrics, RateLimitOutcome, ReloadResult, ScanCacheResult,
    StreamGauge, UpstreamFailure,
};
pub use tracing_otlp::{
    DEFAULT_OTLP_ENDPOINT, OtlpSettings, OtlpSpan, OtlpTracer, OtlpTracing, TracingSetupError,
    extract_trace_context, inject_trace_context,
};
