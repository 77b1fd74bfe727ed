-- 0001 init (PostgreSQL): approvals and audit lines.
-- JSON columns are TEXT, not JSONB: JSONB reorders keys and drops duplicates, and the store
-- promises to give back exactly what it was given.

CREATE TABLE approvals (
    id TEXT PRIMARY KEY,
    created_at_ms BIGINT NOT NULL,
    expires_at_ms BIGINT NOT NULL,
    request_id TEXT NOT NULL,
    principal TEXT NOT NULL,
    tenant TEXT,
    route TEXT NOT NULL,
    server TEXT NOT NULL,
    tool TEXT NOT NULL,
    arguments TEXT NOT NULL,
    findings TEXT NOT NULL,
    reasons TEXT NOT NULL,
    instance TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('pending', 'approved', 'denied', 'expired')),
    decided_by TEXT,
    decided_at_ms BIGINT,
    decision_reason TEXT
);

CREATE INDEX approvals_status_created ON approvals (status, created_at_ms);
CREATE INDEX approvals_created ON approvals (created_at_ms);
CREATE INDEX approvals_pending_expiry ON approvals (expires_at_ms) WHERE status = 'pending';

CREATE TABLE audit_lines (
    -- Appends hold an EXCLUSIVE lock on the table until commit, so ids become visible in
    -- ascending order and "id > last seen" paging never skips a line.
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    instance TEXT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('record', 'checkpoint')),
    seq BIGINT NOT NULL,
    time_unix_nano BIGINT NOT NULL,
    json TEXT NOT NULL
);

CREATE UNIQUE INDEX audit_lines_instance_kind_seq ON audit_lines (instance, kind, seq);
