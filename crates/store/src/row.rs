//! Rows as the database returns them, and their conversion to the model.
//!
//! Reading columns is generic over the backend (both store the same SQL types: TEXT and 64-bit
//! integers); parsing stored text (statuses, JSON) happens once, here, and a value that does not
//! parse is [`Error::BadRow`].

use sqlx::{ColumnIndex, Decode, Row, Type};

use crate::error::{Error, Result};
use crate::model::{Approval, ApprovalStatus, AuditLine, AuditLineKind, NewApproval};

/// An `approvals` row before parsing.
#[derive(Debug)]
pub(crate) struct ApprovalRow {
    id: String,
    created_at_ms: i64,
    expires_at_ms: i64,
    request_id: String,
    principal: String,
    tenant: Option<String>,
    route: String,
    server: String,
    tool: String,
    arguments: String,
    findings: String,
    reasons: String,
    instance: String,
    status: String,
    decided_by: Option<String>,
    decided_at_ms: Option<i64>,
    decision_reason: Option<String>,
}

impl<'r, R> sqlx::FromRow<'r, R> for ApprovalRow
where
    R: Row,
    &'static str: ColumnIndex<R>,
    String: Decode<'r, R::Database> + Type<R::Database>,
    i64: Decode<'r, R::Database> + Type<R::Database>,
{
    fn from_row(row: &'r R) -> Result<Self, sqlx::Error> {
        Ok(Self {
            id: row.try_get("id")?,
            created_at_ms: row.try_get("created_at_ms")?,
            expires_at_ms: row.try_get("expires_at_ms")?,
            request_id: row.try_get("request_id")?,
            principal: row.try_get("principal")?,
            tenant: row.try_get("tenant")?,
            route: row.try_get("route")?,
            server: row.try_get("server")?,
            tool: row.try_get("tool")?,
            arguments: row.try_get("arguments")?,
            findings: row.try_get("findings")?,
            reasons: row.try_get("reasons")?,
            instance: row.try_get("instance")?,
            status: row.try_get("status")?,
            decided_by: row.try_get("decided_by")?,
            decided_at_ms: row.try_get("decided_at_ms")?,
            decision_reason: row.try_get("decision_reason")?,
        })
    }
}

impl TryFrom<ApprovalRow> for Approval {
    type Error = Error;

    fn try_from(row: ApprovalRow) -> Result<Self> {
        let bad = |column: &str, detail: &dyn std::fmt::Display| {
            Error::BadRow(format!("approval {}: {column}: {detail}", row.id))
        };
        let status = parse_status(&row.id, &row.status)?;
        let arguments = serde_json::from_str(&row.arguments).map_err(|e| bad("arguments", &e))?;
        let findings = serde_json::from_str(&row.findings).map_err(|e| bad("findings", &e))?;
        let reasons = serde_json::from_str(&row.reasons).map_err(|e| bad("reasons", &e))?;
        Ok(Approval {
            request: NewApproval {
                id: row.id,
                created_at_ms: row.created_at_ms,
                expires_at_ms: row.expires_at_ms,
                request_id: row.request_id,
                principal: row.principal,
                tenant: row.tenant,
                route: row.route,
                server: row.server,
                tool: row.tool,
                arguments,
                findings,
                reasons,
                instance: row.instance,
            },
            status,
            decided_by: row.decided_by,
            decided_at_ms: row.decided_at_ms,
            decision_reason: row.decision_reason,
        })
    }
}

/// The JSON columns of a new approval, serialised once for either backend.
pub(crate) struct ApprovalJson {
    pub(crate) arguments: String,
    pub(crate) findings: String,
    pub(crate) reasons: String,
}

impl ApprovalJson {
    pub(crate) fn of(new: &NewApproval) -> Result<Self> {
        // Serialising a `Value` or `Vec<String>` cannot fail (no maps with non-string keys);
        // the error path exists only because the API is fallible.
        let encode = |column: &str, result: serde_json::Result<String>| {
            result.map_err(|e| Error::BadRow(format!("approval {}: {column}: {e}", new.id)))
        };
        Ok(Self {
            arguments: encode("arguments", serde_json::to_string(&new.arguments))?,
            findings: encode("findings", serde_json::to_string(&new.findings))?,
            reasons: encode("reasons", serde_json::to_string(&new.reasons))?,
        })
    }
}

pub(crate) fn parse_status(id: &str, text: &str) -> Result<ApprovalStatus> {
    ApprovalStatus::parse(text)
        .ok_or_else(|| Error::BadRow(format!("approval {id}: unknown status {text:?}")))
}

/// An `audit_lines` row before parsing: id, instance, seq, kind, time_unix_nano, json.
pub(crate) type AuditRow = (i64, String, i64, String, i64, String);

pub(crate) fn audit_line(
    (id, instance, seq, kind, time_unix_nano, json): AuditRow,
) -> Result<AuditLine> {
    let kind = AuditLineKind::parse(&kind)
        .ok_or_else(|| Error::BadRow(format!("audit line {id}: unknown kind {kind:?}")))?;
    Ok(AuditLine {
        id,
        instance,
        seq,
        kind,
        time_unix_nano,
        json,
    })
}
