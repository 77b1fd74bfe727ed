//! MCP (Model Context Protocol) as the gateway reads it: JSON-RPC 2.0 messages
//! ([`Message`], kept as `serde_json::Value` so unknown fields pass through), the texts of tool
//! definitions and results that detectors inspect ([`texts`]), tool-definition pinning
//! ([`Pins`], rug-pull detection) and a session's exposure ([`SessionState`], taint).
//!
//! Pure: no I/O, no tokio, no HTTP. The proxy (`crates/proxy/src/mcp`) owns transports and
//! sessions' lifetimes; this crate owns what a message means. Start with [`Message::parse`].
#![warn(missing_docs)]

mod jsonrpc;
mod pin;
mod session;
pub mod texts;

pub use jsonrpc::{ErrorCode, Message, MessageError, RequestId, error_response, result_response};
pub use pin::{PinStatus, Pins, fingerprint};
pub use session::{SessionState, ToolLabel};

/// The protocol revisions the gateway speaks with clients, newest first. The 2026-07-28
/// stateless revision (no `initialize`, no sessions) is not supported yet.
pub const SUPPORTED_VERSIONS: [&str; 4] = ["2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05"];
