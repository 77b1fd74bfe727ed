-- 0001 init (SQLite): approvals and audit lines.
-- STRICT tables reject values of the wrong type instead of silently converting them.

CREATE TABLE approvals (
    id TEXT PRIMARY KEY NOT NULL,
    created_at_ms INTEGER NOT NULL,
    expires_at_ms INTEGER NOT NULL,
    request_id TEXT NOT NULL,
    principal TEXT NOT NULL,
    tenant TEXT,
    route TEXT NOT NULL,
    server TEXT NOT NULL,
    tool TEXT NOT NULL,
    -- JSON text exactly as serde_json wrote it (key order kept).
    arguments TEXT NOT NULL,
    findings TEXT NOT NULL,
    -- JSON array of strings.
    reasons TEXT NOT NULL,
    instance TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('pending', 'approved', 'denied', 'expired')),
    decided_by TEXT,
    decided_at_ms INTEGER,
    decision_reason TEXT
) STRICT;

-- Listing by status, newest first.
CREATE INDEX approvals_status_created ON approvals (status, created_at_ms);
-- Listing all, newest first.
CREATE INDEX approvals_created ON approvals (created_at_ms);
-- The expiry sweep only looks at pending approvals.
CREATE INDEX approvals_pending_expiry ON approvals (expires_at_ms) WHERE status = 'pending';

CREATE TABLE audit_lines (
    -- AUTOINCREMENT: ids are never reused, so readers can page with "id > last seen".
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    instance TEXT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('record', 'checkpoint')),
    seq INTEGER NOT NULL,
    time_unix_nano INTEGER NOT NULL,
    -- The line byte for byte; verification re-hashes it.
    json TEXT NOT NULL
) STRICT;

CREATE UNIQUE INDEX audit_lines_instance_kind_seq ON audit_lines (instance, kind, seq);
