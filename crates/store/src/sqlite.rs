//! SQLite: opening the file and migrating it.
//!
//! The file is opened in WAL mode with `synchronous = FULL`, so a commit is on disk when it
//! returns and readers never block the writer. SQLite allows one writer at a time per file,
//! across processes: every write transaction here starts with `BEGIN IMMEDIATE`, which takes the
//! write lock up front (waiting up to [`BUSY_TIMEOUT`]) instead of failing half way through with
//! `SQLITE_BUSY` when another process or pooled connection is writing.

use std::path::Path;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Sqlite, SqlitePool, Transaction};

use crate::error::Result;
use crate::migrations::{self, Dialect};

/// How long a statement waits for another connection's (or process's) write lock before it
/// fails with "database is locked". Raising it rides out longer writers at the cost of slower
/// failure when a writer hangs; lowering it surfaces contention sooner.
pub(crate) const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Pooled connections. Writes serialise on the file lock anyway; a few connections let reads
/// (listing approvals, paging audit lines) run beside a write. More buys little.
const POOL_SIZE: u32 = 4;

/// Opens (creating if missing) the database file and applies pending migrations.
pub(crate) async fn connect(path: &Path) -> Result<SqlitePool> {
    let options = SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Full)
        .busy_timeout(BUSY_TIMEOUT)
        .foreign_keys(true);
    let pool = SqlitePoolOptions::new()
        .max_connections(POOL_SIZE)
        .connect_with(options)
        .await?;
    migrate(&pool).await?;
    Ok(pool)
}

/// Starts a write transaction holding the database write lock.
pub(crate) async fn begin_write(pool: &SqlitePool) -> Result<Transaction<'static, Sqlite>> {
    Ok(pool.begin_with("BEGIN IMMEDIATE").await?)
}

/// Applies pending migrations one transaction at a time (see [`crate::migrations`]).
async fn migrate(pool: &SqlitePool) -> Result<()> {
    migrations::migrate_with!(begin_write(pool), Dialect::Sqlite).await
}
