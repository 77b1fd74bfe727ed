//! Versioned schema migrations, hand-rolled (no sqlx macros, no database at build time).
//!
//! [`MIGRATIONS`] lists every migration in ascending version order, each with its SQL for both
//! backends. [`Store::connect`](crate::Store::connect) applies the pending ones, each in its
//! own transaction, and records it in `schema_migrations(version, name, checksum,
//! applied_at_ms)`. The checksum is the SHA-256 of the backend's SQL text.
//!
//! Connecting fails with [`Error::Migration`] when the database
//!
//! - has a version this binary does not know (a newer binary migrated it: refuse rather than
//!   write rows an older schema understanding might corrupt), or
//! - has an applied migration whose SQL text changed since (its checksum differs), or
//! - has a gap (version `n` applied while an earlier known one is not).
//!
//! # Concurrent starts
//!
//! Each step runs under a lock that serialises migrators: SQLite opens the transaction with
//! `BEGIN IMMEDIATE` (the database write lock, waited for up to the busy timeout), PostgreSQL
//! takes `pg_advisory_xact_lock` inside the transaction. Under the lock the migrator re-reads
//! `schema_migrations`, so a replica that lost the race finds the work done and applies nothing.
//!
//! # Adding a migration
//!
//! 1. Write `migrations/sqlite/NNNN_name.sql` and `migrations/postgres/NNNN_name.sql` with the
//!    next version number. Several statements per file are fine; do not write `BEGIN`/`COMMIT`
//!    (the migrator owns the transaction).
//! 2. Append a [`Migration`] to [`MIGRATIONS`] with that version and both files through
//!    `include_str!`.
//! 3. Never edit a released migration: its checksum is stored in every database it ran on, and
//!    a changed file makes those databases refuse to start. Fix forward with a new migration.
//! 4. The behaviour tests (`tests/behaviour.rs`) run every migration on both backends.

use sha2::{Digest, Sha256};

/// Applies pending migrations one transaction at a time: `$begin` opens a transaction holding
/// the backend's migration lock (see "Concurrent starts"), `$dialect` picks the SQL. A macro,
/// not a function generic over the backend: sqlx's `Executor` bounds make such a future
/// impossible for rustc to prove `Send`. Expands to an `async` expression of `Result<()>`.
macro_rules! migrate_with {
    ($begin:expr, $dialect:expr) => {
        async {
            let dialect: $crate::migrations::Dialect = $dialect;
            loop {
                let mut tx = $begin.await?;
                sqlx::query($crate::migrations::CREATE_SCHEMA_MIGRATIONS)
                    .execute(&mut *tx)
                    .await?;
                let applied: Vec<$crate::migrations::Applied> =
                    sqlx::query_as::<_, (i64, String, String)>($crate::migrations::SELECT_APPLIED)
                        .fetch_all(&mut *tx)
                        .await?
                        .into_iter()
                        .map($crate::migrations::Applied::from)
                        .collect();
                let Some(next) = $crate::migrations::next_pending(
                    $crate::migrations::MIGRATIONS,
                    &applied,
                    dialect,
                )?
                else {
                    tx.commit().await?;
                    return Ok::<(), $crate::Error>(());
                };
                // A plain `&str` runs unprepared, so the file may hold several statements.
                sqlx::Executor::execute(&mut *tx, next.sql(dialect))
                    .await
                    .map_err(|source| $crate::Error::MigrationFailed {
                        version: next.version,
                        name: next.name,
                        source,
                    })?;
                sqlx::query($crate::migrations::INSERT_APPLIED)
                    .bind(next.version)
                    .bind(next.name)
                    .bind(next.checksum(dialect))
                    .bind($crate::store::now_ms())
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                tracing::info!(
                    backend = dialect.name(),
                    version = next.version,
                    name = next.name,
                    "applied store migration"
                );
            }
        }
    };
}
pub(crate) use migrate_with;

use crate::error::{Error, Result};

/// One schema change, with its SQL for each backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Migration {
    /// Position in the history; strictly ascending from 1 without gaps.
    pub version: i64,
    /// Short snake_case name, recorded with the version.
    pub name: &'static str,
    /// The SQLite statements.
    pub sqlite: &'static str,
    /// The PostgreSQL statements.
    pub postgres: &'static str,
}

/// Every migration this binary knows, oldest first.
pub const MIGRATIONS: &[Migration] = &[Migration {
    version: 1,
    name: "init",
    sqlite: include_str!("../migrations/sqlite/0001_init.sql"),
    postgres: include_str!("../migrations/postgres/0001_init.sql"),
}];

/// The schema version this binary migrates to.
pub fn latest_version() -> i64 {
    MIGRATIONS.last().map_or(0, |migration| migration.version)
}

/// Which SQL text of a [`Migration`] a backend runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dialect {
    Sqlite,
    Postgres,
}

impl Dialect {
    /// The backend's name, as `Store::backend` gives it.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Sqlite => "sqlite",
            Self::Postgres => "postgres",
        }
    }
}

impl Migration {
    pub(crate) fn sql(&self, dialect: Dialect) -> &'static str {
        match dialect {
            Dialect::Sqlite => self.sqlite,
            Dialect::Postgres => self.postgres,
        }
    }

    /// Lowercase hex SHA-256 of the dialect's SQL text, as stored in `schema_migrations`.
    pub(crate) fn checksum(&self, dialect: Dialect) -> String {
        let digest = Sha256::digest(self.sql(dialect).as_bytes());
        digest.iter().map(|byte| format!("{byte:02x}")).collect()
    }
}

/// Creates the bookkeeping table. The same text works on both backends (`BIGINT` has integer
/// affinity in SQLite).
pub(crate) const CREATE_SCHEMA_MIGRATIONS: &str = "CREATE TABLE IF NOT EXISTS schema_migrations (
    version BIGINT PRIMARY KEY NOT NULL,
    name TEXT NOT NULL,
    checksum TEXT NOT NULL,
    applied_at_ms BIGINT NOT NULL
)";

pub(crate) const SELECT_APPLIED: &str =
    "SELECT version, name, checksum FROM schema_migrations ORDER BY version";

pub(crate) const INSERT_APPLIED: &str = "INSERT INTO schema_migrations (version, name, checksum, applied_at_ms) VALUES ($1, $2, $3, $4)";

pub(crate) const SELECT_VERSION: &str = "SELECT COALESCE(MAX(version), 0) FROM schema_migrations";

/// A row of `schema_migrations`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Applied {
    pub(crate) version: i64,
    pub(crate) name: String,
    pub(crate) checksum: String,
}

impl From<(i64, String, String)> for Applied {
    fn from((version, name, checksum): (i64, String, String)) -> Self {
        Self {
            version,
            name,
            checksum,
        }
    }
}

/// Checks what the database has applied against `known` and returns the next migration to
/// apply, or `None` when the database is current. Pure, so the rules are unit-tested.
pub(crate) fn next_pending<'a>(
    known: &'a [Migration],
    applied: &[Applied],
    dialect: Dialect,
) -> Result<Option<&'a Migration>> {
    let latest = known.last().map_or(0, |migration| migration.version);
    for row in applied {
        let Some(migration) = known.iter().find(|m| m.version == row.version) else {
            return Err(Error::Migration(if row.version > latest {
                format!(
                    "database schema version {} ({}) is newer than this binary knows \
                     (latest {latest}); run a newer portcullis",
                    row.version, row.name
                )
            } else {
                format!(
                    "database has migration {} ({}) that this binary does not know",
                    row.version, row.name
                )
            }));
        };
        let expected = migration.checksum(dialect);
        if row.checksum != expected {
            return Err(Error::Migration(format!(
                "migration {} ({}) changed after it was applied: stored checksum {}, this \
                 binary has {expected}",
                migration.version, migration.name, row.checksum
            )));
        }
    }
    let next = known
        .iter()
        .find(|migration| !applied.iter().any(|row| row.version == migration.version));
    if let Some(next) = next
        && let Some(later) = applied.iter().find(|row| row.version > next.version)
    {
        return Err(Error::Migration(format!(
            "migration {} ({}) is pending but the later migration {} is already applied",
            next.version, next.name, later.version
        )));
    }
    Ok(next)
}

#[cfg(test)]
mod tests {
    use super::*;

    const KNOWN: &[Migration] = &[
        Migration {
            version: 1,
            name: "one",
            sqlite: "CREATE TABLE a (x INTEGER)",
            postgres: "CREATE TABLE a (x BIGINT)",
        },
        Migration {
            version: 2,
            name: "two",
            sqlite: "CREATE TABLE b (x INTEGER)",
            postgres: "CREATE TABLE b (x BIGINT)",
        },
    ];

    fn applied(migration: &Migration) -> Applied {
        Applied {
            version: migration.version,
            name: migration.name.to_owned(),
            checksum: migration.checksum(Dialect::Sqlite),
        }
    }

    #[test]
    fn known_migrations_ascend_from_one_without_gaps() {
        for (index, migration) in MIGRATIONS.iter().enumerate() {
            assert_eq!(migration.version, index as i64 + 1, "{}", migration.name);
            assert!(!migration.sqlite.trim().is_empty());
            assert!(!migration.postgres.trim().is_empty());
        }
        assert_eq!(latest_version(), MIGRATIONS.len() as i64);
    }

    #[test]
    fn checksum_is_sha256_hex_per_dialect() {
        let sqlite = KNOWN[0].checksum(Dialect::Sqlite);
        assert_eq!(sqlite.len(), 64);
        assert!(sqlite.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_ne!(sqlite, KNOWN[0].checksum(Dialect::Postgres));
    }

    #[test]
    fn empty_database_starts_at_the_first() {
        let next = next_pending(KNOWN, &[], Dialect::Sqlite).unwrap();
        assert_eq!(next.map(|m| m.version), Some(1));
    }

    #[test]
    fn applied_ones_are_skipped_and_a_current_database_has_nothing_pending() {
        let one = [applied(&KNOWN[0])];
        let next = next_pending(KNOWN, &one, Dialect::Sqlite).unwrap();
        assert_eq!(next.map(|m| m.version), Some(2));
        let both = [applied(&KNOWN[0]), applied(&KNOWN[1])];
        assert_eq!(next_pending(KNOWN, &both, Dialect::Sqlite).unwrap(), None);
    }

    #[test]
    fn newer_database_is_refused() {
        let rows = [
            applied(&KNOWN[0]),
            applied(&KNOWN[1]),
            Applied {
                version: 3,
                name: "future".to_owned(),
                checksum: String::new(),
            },
        ];
        let err = next_pending(KNOWN, &rows, Dialect::Sqlite).unwrap_err();
        assert!(
            matches!(&err, Error::Migration(m) if m.contains("newer")),
            "{err}"
        );
    }

    #[test]
    fn changed_migration_is_refused() {
        let mut row = applied(&KNOWN[0]);
        row.checksum = "0".repeat(64);
        let err = next_pending(KNOWN, &[row], Dialect::Sqlite).unwrap_err();
        assert!(
            matches!(&err, Error::Migration(m) if m.contains("changed")),
            "{err}"
        );
    }

    #[test]
    fn checksum_of_the_other_dialect_is_refused() {
        let row = Applied {
            checksum: KNOWN[0].checksum(Dialect::Postgres),
            ..applied(&KNOWN[0])
        };
        assert!(next_pending(KNOWN, &[row], Dialect::Sqlite).is_err());
    }

    #[test]
    fn gap_is_refused() {
        let rows = [applied(&KNOWN[1])];
        let err = next_pending(KNOWN, &rows, Dialect::Sqlite).unwrap_err();
        assert!(
            matches!(&err, Error::Migration(m) if m.contains("pending")),
            "{err}"
        );
    }
}
