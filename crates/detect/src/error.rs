//! The crate's error type. Building detectors (from configuration, a rule table or a model
//! file), training and reading labelled data can fail; scanning never does.

/// Errors from building detectors, loading or training the injection classifier, and reading
/// labelled records.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A word or keyword list is too large for the matching automaton.
    #[error("cannot build the {what} matcher")]
    Automaton {
        /// Which list.
        what: &'static str,
        /// The automaton builder's error.
        #[source]
        source: aho_corasick::BuildError,
    },
    /// A rule pattern does not compile (a bug in the rule pack, caught by tests).
    #[error("compiling detector rule {rule}")]
    Rule {
        /// The rule's id.
        rule: &'static str,
        /// The regex compiler's error.
        #[source]
        source: Box<regex::Error>,
    },
    /// The bytes do not form a valid injection model file.
    #[error("invalid model file: {what}")]
    InvalidModel {
        /// Which check failed.
        what: &'static str,
    },
    /// A feature, rule-table or training configuration is out of range.
    #[error("invalid configuration: {what}")]
    InvalidConfig {
        /// Which check failed.
        what: &'static str,
    },
    /// A dataset line could not be read.
    #[error("reading dataset line {line}")]
    DatasetIo {
        /// 1-based line number.
        line: usize,
        /// The reader's error.
        #[source]
        source: std::io::Error,
    },
    /// A dataset line is not a valid record.
    #[error("parsing dataset line {line}")]
    DatasetParse {
        /// 1-based line number.
        line: usize,
        /// The JSON error.
        #[source]
        source: serde_json::Error,
    },
}

/// `Result` with this crate's `Error`.
pub type Result<T, E = Error> = std::result::Result<T, E>;
