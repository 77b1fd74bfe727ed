//! Portcullis policy: Rego bundles, compiled once to regorus's bytecode VM and evaluated per
//! decision; the built-in default bundle; and policy tests like `opa test`.
//!
//! This crate is pure: no I/O and no async runtime. Callers read bundle files themselves and
//! pass their contents to [`Bundle::from_sources`]; it must not depend on `tokio`, `hyper` or
//! any store.
//!
//! Start reading at [`Policy`] (compile, decide, limits), then [`Decision`] (the output
//! contract), [`Bundle`] (modules and data files) and [`run_tests`]. The policy input and the
//! default bundle's rules are documented in `docs/policy.md`; the choice of the VM in
//! `docs/adr/0004-rego-on-regorus-vm.md`.

#![warn(missing_docs)]

mod bundle;
mod convert;
pub mod decision;
mod error;
mod policy;
mod testing;

pub use bundle::{Bundle, Module};
pub use decision::{Action, Decision};
pub use error::{Error, Result};
pub use policy::{BUNDLE_CHECK_RULE, DECISION_RULE, Limits, Policy};
pub use testing::{Outcome, TestReport, TestResult, run_tests};
