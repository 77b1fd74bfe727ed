//! PostgreSQL: the pool, the optional schema, migrating, and the audit append lock.
//!
//! When a schema is configured it is created if missing and every pooled connection uses it
//! through the `search_path` startup option, so all statements stay unqualified and identical
//! to SQLite's. The schema name is interpolated into `CREATE SCHEMA`, so only plain lowercase
//! identifiers are accepted ([`validate_schema`]). Connection poolers that drop startup options
//! (PgBouncer in transaction mode) are not supported with a schema.

use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgConnection, PgPoolOptions};
use sqlx::{Connection, Executor, PgPool, Postgres, Transaction};

use crate::error::{Error, Result};
use crate::migrations::{self, Dialect};

/// The advisory lock key that serialises migrators (ASCII "portcull"). Advisory locks are per
/// database, not per schema, so migrators of different schemas in one database also take
/// turns; they run only at startup and finish in milliseconds.
const MIGRATION_LOCK: i64 = 0x706f_7274_6375_6c6c;

/// How long `ping` and every query wait for a pooled connection. Lower fails
/// readiness sooner when the server is down; higher rides out longer pool saturation.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);

/// Connects, creates the schema if needed and applies pending migrations.
pub(crate) async fn connect(
    url: &str,
    max_connections: u32,
    schema: Option<&str>,
) -> Result<PgPool> {
    let mut options: PgConnectOptions = url.parse()?;
    if let Some(schema) = schema {
        validate_schema(schema)?;
        options = options.options([("search_path", schema)]);
    }
    // Set up on a connection of our own: the pool retries a failed connect until its acquire
    // timeout and then reports only "pool timed out", hiding "connection refused" or a failed
    // login. This way startup fails at once with the server's own words.
    let mut conn = PgConnection::connect_with(&options).await?;
    if let Some(schema) = schema {
        create_schema(&mut conn, schema).await?;
    }
    migrate(&mut conn).await?;
    conn.close().await?;
    Ok(PgPoolOptions::new()
        // sqlx never hands out a connection from a zero-sized pool; treat 0 as 1.
        .max_connections(max_connections.max(1))
        .acquire_timeout(ACQUIRE_TIMEOUT)
        .connect_lazy_with(options))
}

/// Accepts `[a-z_][a-z0-9_]*`, at most 63 bytes (PostgreSQL's identifier limit), not `pg_*`
/// (reserved). Lowercase only: unquoted identifiers fold to lowercase in `search_path`, so a
/// mixed-case name would name two different schemas.
pub(crate) fn validate_schema(schema: &str) -> Result<()> {
    let mut bytes = schema.bytes();
    let first_ok = bytes
        .next()
        .is_some_and(|b| b.is_ascii_lowercase() || b == b'_');
    let rest_ok = bytes.all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if first_ok && rest_ok && schema.len() <= 63 && !schema.starts_with("pg_") {
        Ok(())
    } else {
        Err(Error::InvalidSchemaName {
            schema: schema.to_owned(),
        })
    }
}

/// `CREATE SCHEMA IF NOT EXISTS` is not safe against itself when two servers start at once
/// (both pass the check, one fails on the catalog's unique index), so it runs under the
/// migration lock too.
async fn create_schema(conn: &mut PgConnection, schema: &str) -> Result<()> {
    let mut tx = begin_migration(conn).await?;
    // INVARIANT: `schema` passed `validate_schema`, so quoting it cannot be escaped.
    let create = format!("CREATE SCHEMA IF NOT EXISTS \"{schema}\"");
    tx.execute(create.as_str()).await?;
    tx.commit().await?;
    Ok(())
}

async fn begin_migration(conn: &mut PgConnection) -> Result<Transaction<'_, Postgres>> {
    let mut tx = conn.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(MIGRATION_LOCK)
        .execute(&mut *tx)
        .await?;
    Ok(tx)
}

/// Starts an audit append: `EXCLUSIVE` blocks other appenders (and any other writer) of the
/// table until commit but not readers. Identity values are handed out at insert time, so
/// without it a reader could see id 11 committed before id 10 and page past 10 for ever.
pub(crate) async fn begin_audit_append(pool: &PgPool) -> Result<Transaction<'static, Postgres>> {
    let mut tx = pool.begin().await?;
    sqlx::query("LOCK TABLE audit_lines IN EXCLUSIVE MODE")
        .execute(&mut *tx)
        .await?;
    Ok(tx)
}

/// Applies pending migrations one transaction at a time (see [`crate::migrations`]).
async fn migrate(conn: &mut PgConnection) -> Result<()> {
    migrations::migrate_with!(begin_migration(&mut *conn), Dialect::Postgres).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_names_are_plain_lowercase_identifiers() {
        for good in ["portcullis", "_x", "t_123_4_5", &"a".repeat(63)] {
            assert!(validate_schema(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "1abc",
            "Portcullis",
            "a-b",
            "a b",
            "a\"; DROP TABLE x; --",
            "pg_catalog",
            "é",
            &"a".repeat(64),
        ] {
            assert!(
                matches!(validate_schema(bad), Err(Error::InvalidSchemaName { .. })),
                "{bad}"
            );
        }
    }
}
