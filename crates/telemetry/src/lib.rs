//! Portcullis telemetry: the Prometheus metric families (one explicit registry), the typed
//! events that update them, and log setup.
//!
//! Call sites never name a metric: they report an event ([`ExchangeRecord`],
//! [`Metrics::upstream_failed`], ...) and this crate decides what it counts. Every label value
//! comes from a closed set or from the configuration (route names, upstream names, configured
//! model names and patterns), never from a request, so cardinality is bounded.
//! Start with [`Metrics`].
#![warn(missing_docs)]

mod logging;
mod metrics;

pub use logging::{LogFormat, LogSetupError, init_logging};
pub use metrics::{
    AdminSurface, ApprovalEvent, AuditOutcome, AuditSinkKind, AuditSinkWrite, DecisionRecord,
    ExchangeRecord, Metrics, ReloadResult, ScanCacheResult, StreamGauge, UpstreamFailure,
};
