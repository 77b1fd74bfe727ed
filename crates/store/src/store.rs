//! [`Store`]: the public API, dispatching to the backend's pool.

use std::time::{SystemTime, UNIX_EPOCH};

use sqlx::query::Query;
use sqlx::{Database, Encode, PgPool, SqlitePool, Transaction, Type};

use crate::error::{Error, Result};
use crate::migrations;
use crate::model::{
    Approval, ApprovalFilter, ApprovalStatus, AuditLine, NewApproval, Resolution, StoreConfig,
};
use crate::row::{self, ApprovalJson, ApprovalRow, AuditRow};
use crate::{postgres, sql, sqlite};

/// `approvals` returns this many when the filter's limit is 0.
const DEFAULT_APPROVALS_LIMIT: u32 = 100;
/// `approvals` never returns more than this many.
const MAX_APPROVALS_LIMIT: u32 = 1000;
/// `audit_lines` returns this many when asked for 0.
const DEFAULT_AUDIT_LIMIT: u32 = 1000;
/// `audit_lines` never returns more than this many.
const MAX_AUDIT_LIMIT: u32 = 10_000;

/// Durable approvals and audit lines in SQLite or PostgreSQL.
///
/// Cheap to clone: clones share one connection pool. See the crate docs for what is atomic
/// and durable.
#[derive(Debug, Clone)]
pub struct Store {
    backend: Backend,
}

#[derive(Debug, Clone)]
enum Backend {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// Runs `$body` with `$pool` bound to the backend's concrete pool. The body is compiled once
/// per backend, so both run the same SQL text (`sql.rs`) with the same bindings and cannot
/// drift apart; steps that really differ per backend are explicit `match`es instead.
macro_rules! with_pool {
    ($backend:expr, $pool:ident => $body:expr) => {
        match $backend {
            Backend::Sqlite($pool) => $body,
            Backend::Postgres($pool) => $body,
        }
    };
}

/// Runs `$body` with `$tx` bound to a new transaction holding the backend's audit-append lock
/// (SQLite `BEGIN IMMEDIATE`, PostgreSQL `LOCK TABLE … IN EXCLUSIVE MODE`), so appends become
/// visible in id order. A macro for the reason `with_pool!` is one.
macro_rules! with_audit_tx {
    ($backend:expr, $tx:ident => $body:expr) => {
        match $backend {
            Backend::Sqlite(pool) => {
                let mut $tx = sqlite::begin_write(pool).await?;
                $body
            }
            Backend::Postgres(pool) => {
                let mut $tx = postgres::begin_audit_append(pool).await?;
                $body
            }
        }
    };
}

impl Store {
    /// Connects (creating the SQLite file / PostgreSQL schema if missing) and applies pending
    /// migrations. Fails with [`Error::Migration`] when the database was migrated by a newer
    /// binary or a migration changed after it was applied.
    pub async fn connect(config: &StoreConfig) -> Result<Store> {
        let backend = match config {
            StoreConfig::Sqlite { path } => Backend::Sqlite(sqlite::connect(path).await?),
            StoreConfig::Postgres {
                url,
                max_connections,
                schema,
            } => Backend::Postgres(
                postgres::connect(url, *max_connections, schema.as_deref()).await?,
            ),
        };
        Ok(Store { backend })
    }

    /// `"sqlite"` or `"postgres"`.
    pub fn backend(&self) -> &'static str {
        match self.backend {
            Backend::Sqlite(_) => "sqlite",
            Backend::Postgres(_) => "postgres",
        }
    }

    /// Runs `SELECT 1`; for readiness checks.
    pub async fn ping(&self) -> Result<()> {
        with_pool!(&self.backend, pool => {
            sqlx::query(sql::PING).execute(pool).await?;
        });
        Ok(())
    }

    /// The highest applied migration version (0 for none).
    pub async fn schema_version(&self) -> Result<i64> {
        let version: i64 = with_pool!(&self.backend, pool => {
            sqlx::query_scalar(migrations::SELECT_VERSION).fetch_one(pool).await?
        });
        Ok(version)
    }

    /// Records a new pending approval. Durable when it returns. A second approval with the
    /// same id is refused by the primary key ([`Error::Database`]).
    pub async fn create_approval(&self, new: &NewApproval) -> Result<()> {
        let json = ApprovalJson::of(new)?;
        with_pool!(&self.backend, pool => {
            sqlx::query(sql::INSERT_APPROVAL)
                .bind(&new.id)
                .bind(new.created_at_ms)
                .bind(new.expires_at_ms)
                .bind(&new.request_id)
                .bind(&new.principal)
                .bind(new.tenant.as_deref())
                .bind(&new.route)
                .bind(&new.server)
                .bind(&new.tool)
                .bind(&json.arguments)
                .bind(&json.findings)
                .bind(&json.reasons)
                .bind(&new.instance)
                .execute(pool)
                .await?;
        });
        Ok(())
    }

    /// The approval with this id, if any.
    pub async fn approval(&self, id: &str) -> Result<Option<Approval>> {
        let row: Option<ApprovalRow> = with_pool!(&self.backend, pool => {
            sqlx::query_as(sql::SELECT_APPROVAL).bind(id).fetch_optional(pool).await?
        });
        row.map(Approval::try_from).transpose()
    }

    /// Approvals, newest first (by `created_at_ms`, then id). A limit of 0 means 100; at most
    /// 1000 are returned.
    pub async fn approvals(&self, filter: &ApprovalFilter) -> Result<Vec<Approval>> {
        let limit = i64::from(match filter.limit {
            0 => DEFAULT_APPROVALS_LIMIT,
            limit => limit.min(MAX_APPROVALS_LIMIT),
        });
        let rows: Vec<ApprovalRow> = match filter.status {
            None => with_pool!(&self.backend, pool => {
                sqlx::query_as(sql::LIST_APPROVALS).bind(limit).fetch_all(pool).await?
            }),
            Some(status) => with_pool!(&self.backend, pool => {
                sqlx::query_as(sql::LIST_APPROVALS_BY_STATUS)
                    .bind(status.as_str())
                    .bind(limit)
                    .fetch_all(pool)
                    .await?
            }),
        };
        rows.into_iter().map(Approval::try_from).collect()
    }

    /// Moves a *pending* approval to `resolution.status` with one conditional `UPDATE … WHERE
    /// id = ? AND status = 'pending'`, so of two racing resolutions exactly one wins. Returns the
    /// updated approval.
    ///
    /// Errors: [`Error::InvalidResolution`] when the target is `Pending`, [`Error::NotFound`],
    /// and [`Error::AlreadyResolved`] carrying the status the approval has now.
    pub async fn resolve_approval(&self, id: &str, resolution: &Resolution) -> Result<Approval> {
        if resolution.status == ApprovalStatus::Pending {
            return Err(Error::InvalidResolution {
                id: id.to_owned(),
                status: resolution.status,
            });
        }
        // `fetch_all`, not `fetch_optional`: it steps the statement to completion, so SQLite's
        // implicit transaction ends (and the write lock is released) before this returns.
        let rows: Vec<ApprovalRow> = with_pool!(&self.backend, pool => {
            sqlx::query_as(sql::RESOLVE_APPROVAL)
                .bind(resolution.status.as_str())
                .bind(&resolution.by)
                .bind(resolution.at_ms)
                .bind(resolution.reason.as_deref())
                .bind(id)
                .fetch_all(pool)
                .await?
        });
        if let Some(row) = rows.into_iter().next() {
            return Approval::try_from(row);
        }
        // No pending row matched. Statuses never return to pending and rows are never deleted,
        // so what this reads is the final answer.
        let status: Option<String> = with_pool!(&self.backend, pool => {
            sqlx::query_scalar(sql::APPROVAL_STATUS).bind(id).fetch_optional(pool).await?
        });
        match status {
            None => Err(Error::NotFound(id.to_owned())),
            Some(status) => match row::parse_status(id, &status)? {
                ApprovalStatus::Pending => Err(Error::BadRow(format!(
                    "approval {id} is pending but did not match the pending update"
                ))),
                status => Err(Error::AlreadyResolved {
                    id: id.to_owned(),
                    status,
                }),
            },
        }
    }

    /// Marks every pending approval with `expires_at_ms <= now_ms` as expired (decided by
    /// `system` at `now_ms`) in one statement, and returns their ids, sorted.
    pub async fn expire_due(&self, now_ms: i64) -> Result<Vec<String>> {
        let mut ids: Vec<String> = with_pool!(&self.backend, pool => {
            sqlx::query_scalar(sql::EXPIRE_DUE).bind(now_ms).fetch_all(pool).await?
        });
        ids.sort_unstable();
        Ok(ids)
    }

    /// Appends `lines` (their `id` is ignored) in one transaction and returns after commit, so
    /// they are durable. The store assigns ascending ids in slice order, and lines become
    /// visible to readers in id order. A line whose (instance, kind, seq) is already stored (or
    /// repeated in the batch) fails the whole batch with [`Error::DuplicateAuditLine`]; nothing
    /// of it is written.
    pub async fn append_audit(&self, lines: &[AuditLine]) -> Result<()> {
        if lines.is_empty() {
            return Ok(());
        }
        // The lock differs per backend (see `begin_write`/`begin_audit_append`); the inserts do
        // not. Lines go in as multi-row INSERTs of up to `AUDIT_ROWS_PER_INSERT` rows: one
        // statement per row costs a round trip to sqlx's SQLite worker thread (or the
        // PostgreSQL server) each, which dominated the audit writer's CPU. When a bulk insert
        // hits the unique constraint, the batch is retried row by row in a new transaction, only
        // to name the duplicate line; either way nothing of the batch is written.
        let bulk = with_audit_tx!(&self.backend, tx => {
            let mut inserted = Ok(());
            for chunk in lines.chunks(AUDIT_ROWS_PER_INSERT) {
                let text = insert_audit_lines_sql(chunk.len());
                let query = chunk
                    .iter()
                    .fold(sqlx::query(&text), bind_audit_line);
                if let Err(err) = query.execute(&mut *tx).await {
                    inserted = Err(err);
                    break;
                }
            }
            finish_bulk(tx, inserted).await
        });
        match bulk {
            Err(BulkError::Duplicate) => self.append_audit_row_by_row(lines).await,
            Err(BulkError::Other(err)) => Err(err),
            Ok(()) => Ok(()),
        }
    }

    /// The slow path of [`Store::append_audit`] after a unique violation: the same lines one
    /// statement each, to name the duplicate; rolled back.
    async fn append_audit_row_by_row(&self, lines: &[AuditLine]) -> Result<()> {
        with_audit_tx!(&self.backend, tx => {
            let mut inserted = Ok(());
            for line in lines {
                let query = bind_audit_line(sqlx::query(sql::INSERT_AUDIT_LINE), line);
                if let Err(err) = query.execute(&mut *tx).await {
                    inserted = Err(audit_insert_error(err, line));
                    break;
                }
            }
            finish(tx, inserted).await
        })
    }

    /// The record (not checkpoint) with the highest seq written by `instance`, to resume its
    /// chain after a restart.
    pub async fn last_audit_record(&self, instance: &str) -> Result<Option<AuditLine>> {
        let row: Option<AuditRow> = with_pool!(&self.backend, pool => {
            sqlx::query_as(sql::LAST_AUDIT_RECORD).bind(instance).fetch_optional(pool).await?
        });
        row.map(row::audit_line).transpose()
    }

    /// Lines with `id > after_id`, in id order, at most `limit` (0 means 1000; capped at
    /// 10 000). Page by passing the last id seen; pass 0 to start at the beginning.
    pub async fn audit_lines(&self, after_id: i64, limit: u32) -> Result<Vec<AuditLine>> {
        let limit = i64::from(match limit {
            0 => DEFAULT_AUDIT_LIMIT,
            limit => limit.min(MAX_AUDIT_LIMIT),
        });
        let rows: Vec<AuditRow> = with_pool!(&self.backend, pool => {
            sqlx::query_as(sql::AUDIT_LINES_AFTER)
                .bind(after_id)
                .bind(limit)
                .fetch_all(pool)
                .await?
        });
        rows.into_iter().map(row::audit_line).collect()
    }

    /// Closes the pool (for every clone): waits for checked-out connections to come back and
    /// closes them. Later calls fail with [`Error::Database`].
    pub async fn close(&self) {
        with_pool!(&self.backend, pool => pool.close().await);
    }
}

/// Binds an audit line to [`sql::INSERT_AUDIT_LINE`].
fn bind_audit_line<'q, DB>(
    query: Query<'q, DB, DB::Arguments<'q>>,
    line: &'q AuditLine,
) -> Query<'q, DB, DB::Arguments<'q>>
where
    DB: Database,
    i64: Encode<'q, DB> + Type<DB>,
    &'q str: Encode<'q, DB> + Type<DB>,
{
    query
        .bind(line.instance.as_str())
        .bind(line.kind.as_str())
        .bind(line.seq)
        .bind(line.time_unix_nano)
        .bind(line.json.as_str())
}

/// Names the line when the unique (instance, kind, seq) index refused it.
fn audit_insert_error(err: sqlx::Error, line: &AuditLine) -> Error {
    match err {
        sqlx::Error::Database(db) if db.is_unique_violation() => Error::DuplicateAuditLine {
            instance: line.instance.clone(),
            kind: line.kind,
            seq: line.seq,
        },
        other => other.into(),
    }
}

/// Rows per multi-row audit INSERT: 5 parameters each, far below SQLite's (32766) and
/// PostgreSQL's (65535) parameter limits.
const AUDIT_ROWS_PER_INSERT: usize = 200;

/// `INSERT INTO audit_lines (...) VALUES ($1, ..., $5), ($6, ...), ...` for `rows` rows.
fn insert_audit_lines_sql(rows: usize) -> String {
    let mut text = String::with_capacity(sql::INSERT_AUDIT_LINES_HEAD.len() + rows * 32);
    text.push_str(sql::INSERT_AUDIT_LINES_HEAD);
    for row in 0..rows {
        if row > 0 {
            text.push_str(", ");
        }
        let first = row * 5;
        text.push_str(&format!(
            "(${}, ${}, ${}, ${}, ${})",
            first + 1,
            first + 2,
            first + 3,
            first + 4,
            first + 5
        ));
    }
    text
}

/// How a bulk audit insert failed.
enum BulkError {
    /// A line is already stored (unique violation): find out which, row by row.
    Duplicate,
    /// Anything else.
    Other(Error),
}

/// Commits a bulk insert, or rolls it back and says whether it hit the unique constraint.
async fn finish_bulk<DB: Database>(
    tx: Transaction<'static, DB>,
    result: Result<(), sqlx::Error>,
) -> Result<(), BulkError> {
    match result {
        Ok(()) => tx.commit().await.map_err(|e| BulkError::Other(e.into())),
        Err(err) => {
            if let Err(rollback) = tx.rollback().await {
                tracing::warn!(error = %rollback, "store rollback failed");
            }
            match err {
                sqlx::Error::Database(db) if db.is_unique_violation() => Err(BulkError::Duplicate),
                other => Err(BulkError::Other(other.into())),
            }
        }
    }
}

/// Commits on success; on failure rolls back now (releasing the write lock at once rather than
/// when the pool recycles the connection) and returns the original error.
async fn finish<DB: Database>(tx: Transaction<'static, DB>, result: Result<()>) -> Result<()> {
    match result {
        Ok(()) => Ok(tx.commit().await?),
        Err(err) => {
            if let Err(rollback) = tx.rollback().await {
                // Dropping the transaction still rolls back when the connection is released.
                tracing::warn!(error = %rollback, "store rollback failed");
            }
            Err(err)
        }
    }
}

/// Now, in milliseconds since the Unix epoch (0 if the clock is before 1970).
pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| {
            i64::try_from(elapsed.as_millis()).unwrap_or(i64::MAX)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send<T: Send>(_: &T) {}

    /// The gateway spawns store calls on tokio's multi-threaded runtime, so every future must
    /// be `Send`. This only has to compile.
    #[allow(dead_code)]
    async fn store_futures_are_send(store: Store, new: NewApproval, line: AuditLine) {
        assert_send(&Store::connect(&StoreConfig::Sqlite { path: "x".into() }));
        assert_send(&store.ping());
        assert_send(&store.schema_version());
        assert_send(&store.create_approval(&new));
        assert_send(&store.approval("id"));
        assert_send(&store.approvals(&ApprovalFilter::default()));
        assert_send(&store.resolve_approval(
            "id",
            &Resolution {
                status: ApprovalStatus::Approved,
                by: "admin".to_owned(),
                reason: None,
                at_ms: 0,
            },
        ));
        assert_send(&store.expire_due(0));
        assert_send(&store.append_audit(std::slice::from_ref(&line)));
        assert_send(&store.last_audit_record("gw"));
        assert_send(&store.audit_lines(0, 0));
        assert_send(&store.close());
    }
}
