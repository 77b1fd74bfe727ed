//! Compiling a bundle to regorus's bytecode VM and evaluating decisions with it.
//!
//! [`Policy::compile`] parses the bundle's modules (test modules left out), compiles them to
//! one VM program with the entry point `data.portcullis.decision`, checks the data document
//! against the rule tree, and runs the bundle's own settings check
//! (`data.portcullis.bundle_errors`, optional) once. [`Policy::decide`] converts the input,
//! runs the program on a pooled VM and reads the [`Decision`].
//!
//! Every evaluation is bounded by [`Limits`]: an instruction budget (deterministic) and a
//! wall-clock budget (a backstop), both checked between VM instructions. A single builtin
//! call is not interrupted, so a policy calling, say, `numbers.range(1, 1e9)` can still run
//! long and allocate a lot inside that one call; memory is not limited.

use std::fmt;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use regorus::languages::rego::compiler::Compiler;
use regorus::rvm::program::Program;
use regorus::rvm::vm::{RegoVM, VmError};
use regorus::utils::limits::ExecutionTimerConfig;
use regorus::{Engine, Value};

use crate::bundle::Bundle;
use crate::convert::to_rego;
use crate::decision::Decision;
use crate::error::{Diagnostic, Error, Result};

/// The rule the gateway evaluates.
pub const DECISION_RULE: &str = "data.portcullis.decision";

/// The optional load-time check: a set (or array) of messages; non-empty rejects the bundle.
pub const BUNDLE_CHECK_RULE: &str = "data.portcullis.bundle_errors";

/// How many idle VMs a policy keeps for reuse. Raising it only helps when more threads than
/// this decide concurrently; each idle VM holds a few KB.
const MAX_IDLE_VMS: usize = 64;

/// Clock reads happen every this many VM instructions when a time limit is set. Lower reads
/// the clock more often (each read is ~25 ns); higher lets a limit overrun by more.
const TIMER_CHECK_INTERVAL: NonZeroU32 = match NonZeroU32::new(256) {
    Some(interval) => interval,
    None => NonZeroU32::MIN,
};

/// Bounds on one evaluation. Exceeding either is [`Error::LimitExceeded`], which the gateway
/// handles like any evaluation error (its failure mode, closed by default).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// VM instructions per decision. The default bundle stays within 100 plus 100 per finding
    /// (a test in `tests/default_bundle.rs` holds it to that; the gateway sends at most 256
    /// findings).
    pub max_instructions: usize,
    /// Wall-clock time per decision, checked every 256 instructions (so it also bounds a
    /// decision slowed by expensive builtins, though not a single builtin call).
    pub max_duration: Duration,
}

impl Limits {
    /// One million instructions and 100 ms: far above what a sane policy needs per decision (the default
    /// bundle takes microseconds), low enough that a runaway policy cannot hold a request
    /// for long.
    pub const DEFAULT: Limits = Limits {
        max_instructions: 1_000_000,
        max_duration: Duration::from_millis(100),
    };

    fn timer(self) -> ExecutionTimerConfig {
        ExecutionTimerConfig {
            limit: self.max_duration,
            check_interval: TIMER_CHECK_INTERVAL,
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits::DEFAULT
    }
}

/// A compiled bundle, ready to decide. Cheap to clone (one `Arc`), `Send` and `Sync`; each
/// decision runs on its own VM taken from a small pool.
#[derive(Clone)]
pub struct Policy {
    inner: Arc<Compiled>,
}

struct Compiled {
    program: Arc<Program>,
    data: Value,
    limits: Limits,
    idle: Mutex<Vec<RegoVM>>,
    /// The same modules in regorus's tree-walking interpreter, for [`Policy::decide_interpreted`].
    interpreter: Mutex<Engine>,
}

impl fmt::Debug for Policy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Policy")
            .field("instructions", &self.inner.program.instructions.len())
            .field("limits", &self.inner.limits)
            .finish_non_exhaustive()
    }
}

impl Policy {
    /// Compiles `bundle` with [`Limits::DEFAULT`]. See [`Policy::compile_with_limits`].
    pub fn compile(bundle: &Bundle) -> Result<Policy> {
        Policy::compile_with_limits(bundle, Limits::DEFAULT)
    }

    /// Compiles `bundle`'s non-test modules and data into a VM program for
    /// `data.portcullis.decision`.
    ///
    /// Fails with the file and line regorus reports for a parse or compile error;
    /// [`Error::MissingDecision`] when no module of package `portcullis` defines `decision`;
    /// [`Error::RuleDataConflict`] when the data sets a path a rule defines; and
    /// [`Error::InvalidBundle`] when the bundle's `data.portcullis.bundle_errors` is non-empty.
    pub fn compile_with_limits(bundle: &Bundle, limits: Limits) -> Result<Policy> {
        let data = to_rego(bundle.data());
        let loaded = load_engine(bundle, &data, false, limits)?;
        if !loaded.has_decision {
            return Err(Error::MissingDecision);
        }
        let mut engine = loaded.engine;
        let compiled = engine
            .compile_with_entrypoint(&DECISION_RULE.into())
            .map_err(|e| Diagnostic::parse(&e.to_string()).into_compile_error())?;
        let program = Compiler::compile_from_policy(&compiled, &[DECISION_RULE])
            .map_err(|e| Diagnostic::parse(&e.to_string()).into_compile_error())?;
        if compiled.get_rules().contains_key(BUNDLE_CHECK_RULE) {
            check_bundle(&mut engine)?;
        }
        let first_vm = new_vm(&program, &data, limits)?;
        Ok(Policy {
            inner: Arc::new(Compiled {
                program,
                data,
                limits,
                idle: Mutex::new(vec![first_vm]),
                interpreter: Mutex::new(engine),
            }),
        })
    }

    /// Evaluates `data.portcullis.decision` for `input` on the VM.
    ///
    /// `Err` when evaluation fails or hits a limit, when the decision is undefined, and when
    /// it is malformed (see [`crate::decision`] for the contract). Never a silent allow.
    pub fn decide(&self, input: &serde_json::Value) -> Result<Decision> {
        let input = to_rego(input);
        let mut vm = self.take_vm()?;
        vm.set_input(input);
        let value = vm.execute().map_err(evaluation_error)?;
        // Only a VM that finished cleanly goes back; the input is dropped first.
        vm.set_input(Value::Null);
        self.give_back(vm);
        Decision::from_value(&value)
    }

    /// Evaluates the same decision with regorus's tree-walking interpreter instead of the VM:
    /// several times slower and serialised by a lock, for cross-checking the VM (`portcullis
    /// policy eval --interpreter`) and benchmarks, never the request path. The interpreter is
    /// bounded by the time limit only.
    pub fn decide_interpreted(&self, input: &serde_json::Value) -> Result<Decision> {
        let mut engine = self
            .inner
            .interpreter
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        engine.set_input(to_rego(input));
        let value = engine.eval_rule(DECISION_RULE.to_owned());
        engine.set_input(Value::Null);
        let value = value.map_err(|e| interpreter_error(&e.to_string()))?;
        Decision::from_value(&value)
    }

    /// The limits every evaluation runs under.
    pub fn limits(&self) -> Limits {
        self.inner.limits
    }

    fn take_vm(&self) -> Result<RegoVM> {
        let idle = self
            .inner
            .idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop();
        match idle {
            Some(vm) => Ok(vm),
            None => new_vm(&self.inner.program, &self.inner.data, self.inner.limits),
        }
    }

    fn give_back(&self, vm: RegoVM) {
        let mut idle = self
            .inner
            .idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if idle.len() < MAX_IDLE_VMS {
            idle.push(vm);
        }
    }
}

/// A VM loaded with `program` and `data`, with `limits` set.
fn new_vm(program: &Arc<Program>, data: &Value, limits: Limits) -> Result<RegoVM> {
    let mut vm = RegoVM::new();
    vm.load_program(program.clone());
    vm.set_max_instructions(limits.max_instructions);
    vm.set_execution_timer_config(Some(limits.timer()));
    vm.set_data(data.clone())
        .map_err(|e| Error::RuleDataConflict {
            message: e.to_string(),
        })?;
    Ok(vm)
}

fn evaluation_error(source: VmError) -> Error {
    match source {
        VmError::InstructionLimitExceeded { .. } => Error::LimitExceeded {
            limit: "instruction",
            source,
        },
        VmError::TimeLimitExceeded { .. } => Error::LimitExceeded {
            limit: "time",
            source,
        },
        source => Error::Evaluation { source },
    }
}

/// An interpreter error as [`Error::Compile`]-style text (regorus gives only a message).
fn interpreter_error(message: &str) -> Error {
    let diagnostic = Diagnostic::parse(message);
    Error::Compile {
        path: diagnostic.path.unwrap_or_default(),
        line: diagnostic.line,
        column: diagnostic.column,
        message: format!("interpreter: {}", diagnostic.message),
    }
}

/// Runs `data.portcullis.bundle_errors` without input; a non-empty result rejects the bundle.
fn check_bundle(engine: &mut Engine) -> Result<()> {
    let value = engine
        .eval_rule(BUNDLE_CHECK_RULE.to_owned())
        .map_err(|e| Error::BundleCheck {
            message: Diagnostic::parse(&e.to_string()).message,
        })?;
    let items: Vec<&Value> = match &value {
        Value::Undefined => return Ok(()),
        Value::Set(items) => items.iter().collect(),
        Value::Array(items) => items.iter().collect(),
        _ => {
            return Err(Error::BundleCheck {
                message: "must be a set or array of strings".to_owned(),
            });
        }
    };
    if items.is_empty() {
        return Ok(());
    }
    let mut errors: Vec<String> = items
        .into_iter()
        .map(|item| match item {
            Value::String(s) => s.to_string(),
            other => other.to_string(),
        })
        .collect();
    errors.sort();
    Err(Error::InvalidBundle { errors })
}

/// An interpreter loaded with a bundle's modules and data.
pub(crate) struct LoadedEngine {
    pub(crate) engine: Engine,
    /// Whether a module of package `portcullis` declares `decision`.
    pub(crate) has_decision: bool,
}

/// Parses `bundle`'s modules (with or without its test modules) into a fresh interpreter with
/// `data`, the time limit of `limits`, and OPA's non-strict builtin errors (a failing builtin
/// makes its expression undefined), which is also how the VM behaves.
pub(crate) fn load_engine(
    bundle: &Bundle,
    data: &Value,
    with_tests: bool,
    limits: Limits,
) -> Result<LoadedEngine> {
    let mut engine = Engine::new();
    engine.set_rego_v0(false);
    engine.set_strict_builtin_errors(false);
    engine.set_execution_timer_config(limits.timer());
    let mut has_decision = false;
    for module in bundle.modules() {
        if module.is_test() && !with_tests {
            continue;
        }
        let package = engine
            .add_policy(module.path.clone(), module.source.clone())
            .map_err(|e| Diagnostic::parse(&e.to_string()).into_parse_error(&module.path))?;
        if package == "data.portcullis" {
            has_decision |= engine
                .has_declared_rule_rooted_at(&module.path, "decision")
                .unwrap_or(false);
        }
    }
    engine
        .add_data(data.clone())
        .map_err(|e| Diagnostic::parse(&e.to_string()).into_compile_error())?;
    Ok(LoadedEngine {
        engine,
        has_decision,
    })
}
