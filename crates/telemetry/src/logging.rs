use tracing_subscriber::EnvFilter;

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

/// Installs the global logger. `filter` is a level (`info`) or `tracing` directives
/// (`warn,portcullis_proxy=debug`).
///
/// Log lines never carry prompt or completion text or credentials: the code only logs ids,
/// names, sizes, statuses and durations.
pub fn init_logging(format: LogFormat, filter: &str) -> Result<(), LogSetupError> {
    let env_filter = EnvFilter::try_new(filter).map_err(|source| LogSetupError::Filter {
        filter: filter.to_string(),
        source,
    })?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(env_filter)
        .with_writer(std::io::stderr);
    let result = match format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .try_init(),
        LogFormat::Text => builder.try_init(),
    };
    result.map_err(|_| LogSetupError::AlreadySet)
}
