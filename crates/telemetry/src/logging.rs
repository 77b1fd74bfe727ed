use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Registry, fmt, reload};

use crate::tracing_otlp::OtlpTracer;

/// How log lines are written to stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// One JSON object per line, event fields flattened (for log pipelines).
    Json,
    /// Human-readable lines (for a terminal).
    Text,
}

/// The log filter could not be parsed or a logger was already installed.
#[derive(Debug, thiserror::Error)]
pub enum LogSetupError {
    /// The filter directive is invalid.
    #[error("invalid log filter `{filter}`")]
    Filter {
        /// The directive as given.
        filter: String,
        /// Why it is invalid.
        #[source]
        source: tracing_subscriber::filter::ParseError,
    },
    /// A global subscriber was already set.
    #[error("a logger is already installed")]
    AlreadySet,
}

/// The `tracing` → OpenTelemetry bridge, empty until [`LogHandle::export_spans`].
type SpanBridge = Option<tracing_opentelemetry::OpenTelemetryLayer<Registry, OtlpTracer>>;

/// The installed logger. Logging starts before the configuration is read, so trace export is
/// joined to it afterwards through this handle.
#[derive(Clone)]
pub struct LogHandle {
    bridge: reload::Handle<SpanBridge, Registry>,
}

impl std::fmt::Debug for LogHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogHandle").finish_non_exhaustive()
    }
}

impl LogHandle {
    /// From now on, `tracing` spans (and the events inside them, as span events) are also
    /// exported through `tracer`. Log lines on stderr are unchanged.
    pub fn export_spans(&self, tracer: OtlpTracer) {
        let layer = tracing_opentelemetry::layer().with_tracer(tracer);
        if self.bridge.modify(|bridge| *bridge = Some(layer)).is_err() {
            tracing::warn!("the logger is gone; tracing spans are not exported");
        }
    }
}

/// Installs the global logger. `filter` is a level (`info`) or `tracing` directives
/// (`warn,portcullis_proxy=debug`). The returned handle joins trace export to it later.
///
/// Log lines never carry prompt or completion text or credentials: the code only logs ids,
/// names, sizes, statuses and durations.
pub fn init_logging(format: LogFormat, filter: &str) -> Result<LogHandle, LogSetupError> {
    let env_filter = EnvFilter::try_new(filter).map_err(|source| LogSetupError::Filter {
        filter: filter.to_string(),
        source,
    })?;
    // The filter applies to every layer: spans below the log level are not exported either.
    let (bridge, handle) = reload::Layer::new(SpanBridge::None);
    let lines = fmt::layer().with_writer(std::io::stderr);
    let base = Registry::default().with(bridge);
    let result = match format {
        LogFormat::Json => base
            .with(
                lines
                    .json()
                    .flatten_event(true)
                    .with_current_span(false)
                    .with_span_list(false),
            )
            .with(env_filter)
            .try_init(),
        LogFormat::Text => base.with(lines).with(env_filter).try_init(),
    };
    result.map_err(|_| LogSetupError::AlreadySet)?;
    Ok(LogHandle { bridge: handle })
}
