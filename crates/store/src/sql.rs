//! The data statements, one text for both backends.
//!
//! Placeholders are `$N`, which PostgreSQL and SQLite (through sqlx) both accept; a placeholder
//! used twice binds one value. Only schema (migrations) and locking differ per backend and live
//! in `sqlite.rs`/`postgres.rs`.

/// The approval columns, in the order `row::ApprovalRow` reads them by name.
macro_rules! approval_columns {
    () => {
        "id, created_at_ms, expires_at_ms, request_id, principal, tenant, route, server, tool, \
         arguments, findings, reasons, instance, status, decided_by, decided_at_ms, \
         decision_reason"
    };
}

/// The audit line columns, in the order of `row::AuditRow`.
macro_rules! audit_columns {
    () => {
        "id, instance, seq, kind, time_unix_nano, json"
    };
}

pub(crate) const PING: &str = "SELECT 1";

pub(crate) const INSERT_APPROVAL: &str = concat!(
    "INSERT INTO approvals (",
    approval_columns!(),
    ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, 'pending', NULL, NULL, NULL)"
);

pub(crate) const SELECT_APPROVAL: &str = concat!(
    "SELECT ",
    approval_columns!(),
    " FROM approvals WHERE id = $1"
);

/// Newest first; `id` breaks ties so the order is total.
pub(crate) const LIST_APPROVALS: &str = concat!(
    "SELECT ",
    approval_columns!(),
    " FROM approvals ORDER BY created_at_ms DESC, id DESC LIMIT $1"
);

pub(crate) const LIST_APPROVALS_BY_STATUS: &str = concat!(
    "SELECT ",
    approval_columns!(),
    " FROM approvals WHERE status = $1 ORDER BY created_at_ms DESC, id DESC LIMIT $2"
);

/// The one conditional write that decides a race between approvers (and the expiry sweep):
/// whichever statement the database runs first matches `status = 'pending'`, the other
/// matches no row.
pub(crate) const RESOLVE_APPROVAL: &str = concat!(
    "UPDATE approvals SET status = $1, decided_by = $2, decided_at_ms = $3, decision_reason = $4 \
     WHERE id = $5 AND status = 'pending' RETURNING ",
    approval_columns!()
);

pub(crate) const APPROVAL_STATUS: &str = "SELECT status FROM approvals WHERE id = $1";

pub(crate) const EXPIRE_DUE: &str = "UPDATE approvals \
     SET status = 'expired', decided_by = 'system', decided_at_ms = $1 \
     WHERE status = 'pending' AND expires_at_ms <= $1 RETURNING id";

/// [`INSERT_AUDIT_LINE`] up to `VALUES `, for multi-row inserts (rows appended by the caller).
pub(crate) const INSERT_AUDIT_LINES_HEAD: &str =
    "INSERT INTO audit_lines (instance, kind, seq, time_unix_nano, json) VALUES ";

pub(crate) const INSERT_AUDIT_LINE: &str = "INSERT INTO audit_lines \
     (instance, kind, seq, time_unix_nano, json) VALUES ($1, $2, $3, $4, $5)";

pub(crate) const LAST_AUDIT_RECORD: &str = concat!(
    "SELECT ",
    audit_columns!(),
    " FROM audit_lines WHERE instance = $1 AND kind = 'record' ORDER BY seq DESC LIMIT 1"
);

pub(crate) const AUDIT_LINES_AFTER: &str = concat!(
    "SELECT ",
    audit_columns!(),
    " FROM audit_lines WHERE id > $1 ORDER BY id LIMIT $2"
);
