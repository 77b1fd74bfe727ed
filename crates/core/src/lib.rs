//! The vocabulary every other Portcullis crate shares: request ids, [`Secret`] values that never
//! print, and the explicit fail modes security choices are made with.
//!
//! This crate owns no behaviour and must not depend on anything async, on I/O or on another
//! Portcullis crate. Start with [`Secret`] and [`OnError`].
#![warn(missing_docs)]

pub mod hex;
mod id;
mod principal;
mod secret;
mod tool;

pub use id::RequestId;
pub use principal::{AuthMethod, Principal, ServiceAccount};
pub use secret::Secret;
pub use tool::ToolLabel;

/// What to do when a check (detector, policy, budget store) cannot decide.
///
/// Deliberately has no `Default`: every place that needs one states its choice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnError {
    /// Refuse the exchange.
    FailClosed,
    /// Let the exchange proceed, and record that the check did not run.
    FailOpen,
}
