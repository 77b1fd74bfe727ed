//! The records the store keeps.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Which database, and how to reach it. `Debug` hides the PostgreSQL URL (it carries the
/// password).
#[derive(Clone, PartialEq, Eq)]
pub enum StoreConfig {
    /// A SQLite file (created if missing), WAL journal, `synchronous=FULL`.
    Sqlite {
        /// Path of the database file.
        path: std::path::PathBuf,
    },
    /// A PostgreSQL server.
    Postgres {
        /// `postgres://user@host:port/db` (credentials may come from the URL).
        url: String,
        /// Pool size.
        max_connections: u32,
        /// Schema to use (created if missing); `None` uses the server's `search_path`.
        schema: Option<String>,
    },
}

impl std::fmt::Debug for StoreConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Sqlite { path } => f.debug_struct("Sqlite").field("path", path).finish(),
            Self::Postgres {
                max_connections,
                schema,
                ..
            } => f
                .debug_struct("Postgres")
                .field("url", &"<hidden>")
                .field("max_connections", max_connections)
                .field("schema", schema)
                .finish(),
        }
    }
}

/// Where an approval is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ApprovalStatus {
    /// Waiting for a human.
    Pending,
    /// Approved: the held call proceeds.
    Approved,
    /// Denied: the held call is refused.
    Denied,
    /// Nobody decided before `expires_at`: refused.
    Expired,
}

impl ApprovalStatus {
    /// The stored and displayed name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Approved => "approved",
            Self::Denied => "denied",
            Self::Expired => "expired",
        }
    }

    /// Parses a stored name.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "pending" => Some(Self::Pending),
            "approved" => Some(Self::Approved),
            "denied" => Some(Self::Denied),
            "expired" => Some(Self::Expired),
            _ => None,
        }
    }
}

impl std::fmt::Display for ApprovalStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the gateway records when a decision requires approval. Arguments and findings are
/// already redacted by the caller: the store never sees raw secrets.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewApproval {
    /// Unique id (random, URL-safe), chosen by the caller.
    pub id: String,
    /// Creation time, milliseconds since the Unix epoch.
    pub created_at_ms: i64,
    /// When the approval expires unresolved, milliseconds since the Unix epoch.
    pub expires_at_ms: i64,
    /// The exchange's request id.
    pub request_id: String,
    /// Principal id of the caller.
    pub principal: String,
    /// Tenant of the caller, if any.
    pub tenant: Option<String>,
    /// Route or stage kind, e.g. `mcp`.
    pub route: String,
    /// MCP server name (or model for chat tool calls).
    pub server: String,
    /// Tool name.
    pub tool: String,
    /// Tool arguments, redacted.
    pub arguments: Value,
    /// Findings (category, score, location), redacted.
    pub findings: Value,
    /// The policy's reasons.
    pub reasons: Vec<String>,
    /// Which gateway instance holds the call.
    pub instance: String,
}

/// An approval as stored, with its resolution once there is one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Approval {
    /// Everything recorded at creation.
    #[serde(flatten)]
    pub request: NewApproval,
    /// Current status.
    pub status: ApprovalStatus,
    /// Who resolved it (admin principal name, or `system` for expiry).
    pub decided_by: Option<String>,
    /// When it was resolved, milliseconds since the Unix epoch.
    pub decided_at_ms: Option<i64>,
    /// The approver's reason.
    pub decision_reason: Option<String>,
}

/// A human's (or the expiry's) resolution of a pending approval.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolution {
    /// `Approved`, `Denied` or `Expired` (never `Pending`).
    pub status: ApprovalStatus,
    /// Who resolved it.
    pub by: String,
    /// Why (required for a denial by the API, optional here).
    pub reason: Option<String>,
    /// When, milliseconds since the Unix epoch.
    pub at_ms: i64,
}

/// Which approvals to list, newest first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApprovalFilter {
    /// Only this status.
    pub status: Option<ApprovalStatus>,
    /// At most this many (the store caps it at 1000).
    pub limit: u32,
}

/// Kind of an audit line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuditLineKind {
    /// A chained record.
    Record,
    /// A signed checkpoint.
    Checkpoint,
}

impl AuditLineKind {
    /// The stored and displayed name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Record => "record",
            Self::Checkpoint => "checkpoint",
        }
    }

    /// Parses a stored name.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "record" => Some(Self::Record),
            "checkpoint" => Some(Self::Checkpoint),
            _ => None,
        }
    }
}

impl std::fmt::Display for AuditLineKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One audit line as written by `portcullis-audit` (`Line::to_json_line`), with the fields
/// the store indexes. The store keeps `json` byte for byte; verification re-reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditLine {
    /// Store-assigned position across all instances (ascending insertion order); `0` before
    /// insertion.
    pub id: i64,
    /// Writing instance.
    pub instance: String,
    /// The record's seq, or for a checkpoint the seq of the record it covers.
    pub seq: i64,
    /// Record or checkpoint.
    pub kind: AuditLineKind,
    /// Event time (records) or signing time (checkpoints), nanoseconds since the Unix epoch.
    pub time_unix_nano: i64,
    /// The line, canonical JSON, no trailing newline.
    pub json: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_prints_the_postgres_url() {
        let config = StoreConfig::Postgres {
            url: "postgres://app:hunter2@db/app".into(),
            max_connections: 4,
            schema: None,
        };
        let printed = format!("{config:?}");
        assert!(!printed.contains("hunter2"), "{printed}");
        assert!(printed.contains("<hidden>"), "{printed}");
    }
}
