//! The Portcullis HTTP server: accepts clients (HTTP/1.1 and HTTP/2), runs each exchange
//! through its phases (read & limit → parse → route → forward → respond), talks to upstreams
//! over pooled keep-alive connections, and serves `/healthz`, `/readyz` and `/metrics`. A
//! separate admin listener ([`AdminServer`], `control/`) serves the approvals API and console.
//!
//! Start reading at [`Gateway::handle`] (the dispatch) and `exchange.rs` (one guarded
//! exchange, top to bottom). Errors become responses in one place: `Reject::into_response`.
//! Configuration arrives as an immutable [`Snapshot`]; a reload swaps the whole snapshot and a
//! request keeps the one it started with.
#![warn(missing_docs)]

mod admin;
pub mod approvals;
mod audit;
mod auth;
pub mod body;
mod client;
mod control;
mod digests;
mod exchange;
mod guard;
mod limits;
mod mcp;
mod models;
mod passthrough;
mod reject;
mod server;
pub mod services;
mod snapshot;
mod sse;
mod token;
mod trace;
mod upstream;
mod usage;

pub use approvals::ApprovalHub;
pub use audit::{AuditError, AuditLog, Full};
pub use auth::{AuthError, AuthSetupError, Authenticator};
pub use control::{AdminServer, ControlError, ControlPlane, rfc3339_utc};
pub use guard::{BundleError, GuardError, MAX_FILE_BYTES, read_bundle_dir};
pub use mcp::stdio::{McpStdioError, run_mcp_stdio};
pub use reject::Reject;
pub use server::{Gateway, ServeError, Server};
pub use services::Services;
pub use snapshot::{Snapshot, SnapshotError};
pub use trace::{Traces, TracesError};
