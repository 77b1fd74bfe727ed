//! The audit trail: one [`AuditEvent`] per decision, chained per gateway instance into
//! [`Record`]s whose hashes link each record to the one before, with periodic [`Checkpoint`]s
//! signed with Ed25519, and [`verify`], which names the first line of a log that does not check.
//!
//! This crate is pure: it does no I/O, uses no async runtime and must not depend on the proxy,
//! a store or telemetry. Sinks (JSONL file, SQLite, PostgreSQL) live outside it and only move
//! the lines [`Line::to_json_line`] produces.
//!
//! Start with [`Chain`] (appending), then [`Signer`] (checkpoints) and [`verify`]. The hash
//! input is canonical JSON, defined in [`canonical_json`]; the reasoning is in
//! `docs/adr/0008-audit-hash-chain.md`.
#![warn(missing_docs)]

mod canonical;
mod chain;
mod digest;
mod error;
mod event;
mod line;
mod sign;
mod verify;

pub use canonical::canonical_json;
pub use chain::{Chain, Record};
pub use digest::Digest;
pub use error::{Error, Result};
pub use event::{
    Action, AuditEvent, CapturedText, Content, ContentMode, Latency, Principal, SCHEMA_VERSION,
    Stage, Target, TextPart, TokenUsage,
};
pub use line::Line;
pub use sign::{Checkpoint, KeyId, PublicKey, Signer};
pub use verify::{ChainStart, Failure, InstanceSummary, Problem, Report, verify, verify_with};
