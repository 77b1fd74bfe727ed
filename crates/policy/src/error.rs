//! The crate's error type. Building a bundle, compiling it and evaluating a decision can fail;
//! every failure names what it can (the file, the line, the offending field).

use std::fmt;

use regorus::rvm::vm::VmError;

/// Errors from assembling a bundle, compiling it, and evaluating or reading a decision.
///
/// The gateway treats every evaluation error the same way (its configured failure mode, closed
/// by default); the variants exist so that logs, metrics and `portcullis policy` can say what
/// went wrong.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A module path is empty or given twice.
    #[error("policy module path `{path}`: {reason}")]
    InvalidModulePath {
        /// The path as given.
        path: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A data file path is not `data.json`, `data.yaml` or `data.yml`, or leaves the bundle.
    #[error("data file path `{path}`: {reason}")]
    InvalidDataPath {
        /// The path as given.
        path: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A `data.json` file is not valid JSON.
    #[error("parsing data file {path}")]
    DataJson {
        /// The file's path in the bundle.
        path: String,
        /// The parser's error (it carries line and column).
        #[source]
        source: serde_json::Error,
    },
    /// A `data.yaml` / `data.yml` file is not valid YAML, or not representable as JSON.
    #[error("parsing data file {path}")]
    DataYaml {
        /// The file's path in the bundle.
        path: String,
        /// The parser's error (it carries line and column).
        #[source]
        source: serde_yaml_ng::Error,
    },
    /// A data file holds something other than an object.
    #[error("data file {path} must contain an object")]
    DataNotObject {
        /// The file's path in the bundle.
        path: String,
    },
    /// Two data files set the same key (objects merge; anything else must not overlap).
    #[error("data file {path} sets data.{key}, which another data file already sets")]
    DataConflict {
        /// The file that was merged second.
        path: String,
        /// The dotted data path both set.
        key: String,
    },
    /// A module does not parse.
    #[error("{}", Located::new(.path, .line, .column, .message))]
    Parse {
        /// The module's path in the bundle.
        path: String,
        /// 1-based line, when regorus reported one.
        line: Option<u32>,
        /// 1-based column, when regorus reported one.
        column: Option<u32>,
        /// Regorus's message, without the location.
        message: String,
    },
    /// The modules parse but do not compile (to the interpreter's form or to VM bytecode).
    #[error("compiling the policy: {}", Located::new(.path, .line, .column, .message))]
    Compile {
        /// The module's path, when regorus reported one; empty otherwise.
        path: String,
        /// 1-based line, when regorus reported one.
        line: Option<u32>,
        /// 1-based column, when regorus reported one.
        column: Option<u32>,
        /// Regorus's message, without the location.
        message: String,
    },
    /// No module of package `portcullis` defines the rule `decision`.
    #[error("no rule data.portcullis.decision in the bundle")]
    MissingDecision,
    /// The data document sets a path that a rule also defines.
    #[error("the data document collides with a rule: {message}")]
    RuleDataConflict {
        /// Regorus's message, naming the path.
        message: String,
    },
    /// The bundle's own check, `data.portcullis.bundle_errors`, reported problems.
    #[error("the bundle rejects its settings: {}", errors.join("; "))]
    InvalidBundle {
        /// The messages, sorted.
        errors: Vec<String>,
    },
    /// Evaluating `data.portcullis.bundle_errors` at load time failed.
    #[error("evaluating data.portcullis.bundle_errors: {message}")]
    BundleCheck {
        /// Regorus's message.
        message: String,
    },
    /// An evaluation stopped at its instruction or time limit ([`crate::Limits`]).
    #[error("policy evaluation exceeded its {limit} limit")]
    LimitExceeded {
        /// `"instruction"` or `"time"`.
        limit: &'static str,
        /// The VM's error.
        #[source]
        source: VmError,
    },
    /// The VM failed while evaluating the decision.
    #[error("policy evaluation failed")]
    Evaluation {
        /// The VM's error.
        #[source]
        source: VmError,
    },
    /// `data.portcullis.decision` is undefined for this input (no rule body matched, or a
    /// builtin failed inside the rule that defines it).
    #[error("data.portcullis.decision is undefined for this input")]
    Undefined,
    /// The decision does not have the contracted shape.
    #[error("malformed decision: `{field}` must be {expected}, found {found}")]
    MalformedDecision {
        /// The offending field (`decision` for the document itself).
        field: &'static str,
        /// What the contract requires.
        expected: &'static str,
        /// What the policy produced (a type name, or a short description).
        found: &'static str,
    },
    /// The decision's `action` is not one of `allow`, `deny`, `redact`, `require_approval`.
    #[error("malformed decision: unknown action `{action}`")]
    UnknownAction {
        /// The action the policy produced.
        action: String,
    },
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Formats `path:line:column: message`, leaving out what is unknown.
struct Located<'a> {
    path: &'a str,
    line: Option<u32>,
    column: Option<u32>,
    message: &'a str,
}

impl<'a> Located<'a> {
    fn new(
        path: &'a str,
        line: &Option<u32>,
        column: &Option<u32>,
        message: &'a str,
    ) -> Located<'a> {
        Located {
            path,
            line: *line,
            column: *column,
            message,
        }
    }
}

impl fmt::Display for Located<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.path.is_empty() {
            f.write_str(self.path)?;
            if let Some(line) = self.line {
                write!(f, ":{line}")?;
                if let Some(column) = self.column {
                    write!(f, ":{column}")?;
                }
            }
            f.write_str(": ")?;
        }
        f.write_str(self.message)
    }
}

/// A message from regorus, split into its location and text.
///
/// Regorus renders source errors as `\n--> FILE:LINE:COL\n  |\nN | source\n  | ^\nerror: TEXT`;
/// anything else is kept whole as the text.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Diagnostic {
    pub(crate) path: Option<String>,
    pub(crate) line: Option<u32>,
    pub(crate) column: Option<u32>,
    pub(crate) message: String,
}

impl Diagnostic {
    pub(crate) fn parse(rendered: &str) -> Diagnostic {
        let whole = || Diagnostic {
            path: None,
            line: None,
            column: None,
            message: rendered.trim().to_owned(),
        };
        let Some(arrow) = rendered.lines().find_map(|l| l.trim().strip_prefix("--> ")) else {
            return whole();
        };
        let Some(text) = rendered
            .lines()
            .rev()
            .find_map(|l| l.trim().strip_prefix("error: "))
        else {
            return whole();
        };
        // FILE may itself contain ':' (a Windows drive); LINE and COL are the last two fields.
        let mut parts = arrow.rsplitn(3, ':');
        let column = parts.next().and_then(|c| c.parse().ok());
        let line = parts.next().and_then(|l| l.parse().ok());
        match (parts.next(), line, column) {
            (Some(path), Some(line), Some(column)) => Diagnostic {
                path: Some(path.to_owned()),
                line: Some(line),
                column: Some(column),
                message: text.to_owned(),
            },
            _ => whole(),
        }
    }

    /// `path:line:column: message`, or the message alone when regorus gave no location.
    pub(crate) fn to_text(&self) -> String {
        Located {
            path: self.path.as_deref().unwrap_or(""),
            line: self.line,
            column: self.column,
            message: &self.message,
        }
        .to_string()
    }

    pub(crate) fn into_parse_error(self, module_path: &str) -> Error {
        Error::Parse {
            path: self.path.unwrap_or_else(|| module_path.to_owned()),
            line: self.line,
            column: self.column,
            message: self.message,
        }
    }

    pub(crate) fn into_compile_error(self) -> Error {
        Error::Compile {
            path: self.path.unwrap_or_default(),
            line: self.line,
            column: self.column,
            message: self.message,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diagnostic_splits_regorus_rendering() {
        let rendered = "\n--> dir/broken.rego:4:1\n  |\n4 | \n  | ^\nerror: expecting expression";
        let d = Diagnostic::parse(rendered);
        assert_eq!(d.path.as_deref(), Some("dir/broken.rego"));
        assert_eq!((d.line, d.column), (Some(4), Some(1)));
        assert_eq!(d.message, "expecting expression");
        let e = d.into_parse_error("ignored.rego");
        assert_eq!(e.to_string(), "dir/broken.rego:4:1: expecting expression");
    }

    #[test]
    fn diagnostic_keeps_other_messages_whole() {
        let d = Diagnostic::parse("not a valid rule path");
        assert_eq!(d.path, None);
        assert_eq!(d.message, "not a valid rule path");
        let e = d.into_parse_error("p.rego");
        assert_eq!(e.to_string(), "p.rego: not a valid rule path");
        let e = Diagnostic::parse("boom").into_compile_error();
        assert_eq!(e.to_string(), "compiling the policy: boom");
    }
}
