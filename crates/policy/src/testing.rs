//! Policy tests, like `opa test`: every rule named `test_*`, in any module of the bundle, is
//! evaluated without input; it passes when it is `true`, fails when it is false or undefined,
//! and errors when evaluation fails.
//!
//! Tests run on regorus's tree-walking interpreter, because the bytecode VM does not support
//! `with` (which tests need to supply inputs). The VM program is compiled first, so a bundle
//! whose decision the gateway could not evaluate fails here too; that the two engines agree on
//! the default bundle is checked by this crate's tests (`tests/default_bundle.rs`).

use std::time::{Duration, Instant};

use serde::Serialize;
use serde::ser::SerializeStruct;

use crate::bundle::Bundle;
use crate::convert::to_rego;
use crate::error::{Diagnostic, Result};
use crate::policy::{DECISION_RULE, Limits, Policy, load_engine};

/// Wall-clock limit per test. Tests are not on the request path; this only stops a runaway
/// test from hanging `portcullis policy test`.
const TEST_TIME_LIMIT: Duration = Duration::from_secs(10);

/// How one test ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The rule evaluated to `true`.
    Pass,
    /// The rule evaluated to `false`, or was undefined (a condition did not hold).
    Fail,
    /// Evaluation failed; the message says why.
    Error(String),
}

impl Outcome {
    /// `"pass"`, `"fail"` or `"error"`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Outcome::Pass => "pass",
            Outcome::Fail => "fail",
            Outcome::Error(_) => "error",
        }
    }
}

/// One test's result.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TestResult {
    /// The rule's package path, e.g. `data.portcullis_test`.
    pub package: String,
    /// The rule's name, e.g. `test_injection_in_user_prompt_is_denied`.
    pub name: String,
    /// Where the rule is defined: `path:line` of its first definition.
    pub location: String,
    /// How it ended.
    pub outcome: Outcome,
    /// How long evaluating it took.
    pub duration: Duration,
}

impl TestResult {
    /// `package.name`, the rule's full path.
    pub fn rule(&self) -> String {
        format!("{}.{}", self.package, self.name)
    }
}

impl Serialize for TestResult {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut s = serializer.serialize_struct("TestResult", 6)?;
        s.serialize_field("package", &self.package)?;
        s.serialize_field("name", &self.name)?;
        s.serialize_field("location", &self.location)?;
        s.serialize_field("outcome", self.outcome.as_str())?;
        let error = match &self.outcome {
            Outcome::Error(message) => Some(message.as_str()),
            Outcome::Pass | Outcome::Fail => None,
        };
        s.serialize_field("error", &error)?;
        let nanos = u64::try_from(self.duration.as_nanos()).unwrap_or(u64::MAX);
        s.serialize_field("duration_ns", &nanos)?;
        s.end()
    }
}

/// The results of [`run_tests`], sorted by package and name.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TestReport {
    /// One entry per `test_*` rule.
    pub results: Vec<TestResult>,
}

impl TestReport {
    /// How many tests passed.
    pub fn passed(&self) -> usize {
        self.count(|o| matches!(o, Outcome::Pass))
    }

    /// How many tests failed (evaluated to false or undefined).
    pub fn failed(&self) -> usize {
        self.count(|o| matches!(o, Outcome::Fail))
    }

    /// How many tests could not be evaluated.
    pub fn errored(&self) -> usize {
        self.count(|o| matches!(o, Outcome::Error(_)))
    }

    /// Whether there is at least one test and every test passed.
    pub fn is_success(&self) -> bool {
        !self.results.is_empty() && self.passed() == self.results.len()
    }

    fn count(&self, f: impl Fn(&Outcome) -> bool) -> usize {
        self.results.iter().filter(|r| f(&r.outcome)).count()
    }
}

/// Runs every `test_*` rule of `bundle`, like `opa test`.
///
/// `Err` only when the bundle cannot be loaded: a parse or compile error, a missing
/// `data.portcullis.decision`, a data conflict or a rejected settings check (exactly what
/// [`Policy::compile`] would refuse). Individual test failures and errors are in the report.
pub fn run_tests(bundle: &Bundle) -> Result<TestReport> {
    Policy::compile(bundle)?;
    let limits = Limits {
        max_duration: TEST_TIME_LIMIT,
        ..Limits::DEFAULT
    };
    let mut engine = load_engine(bundle, &to_rego(bundle.data()), true, limits)?.engine;
    // Compiling gives the rule listing; it cannot fail where Policy::compile succeeded, except
    // in a test module, which is reported the same way.
    let compiled = engine
        .compile_with_entrypoint(&DECISION_RULE.into())
        .map_err(|e| Diagnostic::parse(&e.to_string()).into_compile_error())?;
    let mut tests: Vec<(String, String, String)> = compiled
        .get_rules()
        .iter()
        .filter_map(|(path, definitions)| {
            let (package, name) = path.rsplit_once('.')?;
            if !name.starts_with("test_") {
                return None;
            }
            let location = definitions
                .first()
                .map(|rule| {
                    let span = rule.span();
                    format!("{}:{}", span.source.get_path(), span.line)
                })
                .unwrap_or_default();
            Some((package.to_owned(), name.to_owned(), location))
        })
        .collect();
    tests.sort();
    let results = tests
        .into_iter()
        .map(|(package, name, location)| {
            let started = Instant::now();
            let outcome = match engine.eval_rule(format!("{package}.{name}")) {
                Ok(regorus::Value::Bool(true)) => Outcome::Pass,
                Ok(_) => Outcome::Fail,
                Err(e) => Outcome::Error(Diagnostic::parse(&e.to_string()).to_text()),
            };
            TestResult {
                package,
                name,
                location,
                outcome,
                duration: started.elapsed(),
            }
        })
        .collect();
    Ok(TestReport { results })
}
