//! Portcullis detectors: the normaliser, pattern detectors (PII, secrets, output-side checks),
//! prompt-injection and jailbreak detection, redaction and the streaming scanner.
//!
//! This crate is pure and synchronous: no I/O, no async runtime, no global state. It must not
//! depend on `tokio`, `hyper` or any store. Every detector runs in time linear in its input.
//!
//! Start reading at [`normalise`] (how input becomes views with offset maps), then [`finding`]
//! (the vocabulary and the `Detector` trait), then the detectors ([`pii`], [`secrets`],
//! [`output`], [`injection`], [`tool_poisoning`]), [`Pipeline`] (all of them over one text, and which categories
//! flag), [`redact`] and [`stream`] (the hold-back window for streamed output).

#![warn(missing_docs)]

mod error;
pub mod finding;
pub mod injection;
pub mod normalise;
pub mod output;
pub mod pii;
mod pipeline;
pub mod redact;
pub mod secrets;
pub mod stream;
pub mod tool_poisoning;

pub use error::{Error, Result};
pub use finding::{
    Category, Context, DEFAULT_FLAG_SCORE, Detector, Finding, PiiKind, ScanInput, SecretKind,
};
pub use injection::InjectionDetector;
pub use normalise::{NormalisedText, Normaliser, NormaliserConfig, View, ViewKind, Views};
pub use output::{
    BannedConfig, BannedDetector, BannedTopic, CanaryDetector, HostAllowlist, LinkDetector,
    LinkMatch,
};
pub use pii::{PiiDetector, PiiMatch};
pub use pipeline::{Pipeline, Scan};
pub use redact::{Redacted, RedactionMap, Replacement};
pub use secrets::{SecretMatch, SecretsDetector};
pub use stream::{
    BlockReason, Decide, FindingAction, Finished, OnOverflow, Release, ScanStep, StreamConfig,
    StreamScanner,
};
pub use tool_poisoning::ToolPoisoningDetector;
