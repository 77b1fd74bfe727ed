//! Store errors.

/// What went wrong talking to the store.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The database could not be reached or answered with an error.
    #[error("store: {0}")]
    Database(#[from] sqlx::Error),
    /// A migration failed or the database has a newer schema than this binary knows.
    #[error("store migration: {0}")]
    Migration(String),
    /// A migration's SQL failed; its transaction was rolled back and nothing of it applied.
    #[error("store migration {version} ({name}) failed")]
    MigrationFailed {
        /// Version of the failed migration.
        version: i64,
        /// Its name.
        name: &'static str,
        /// What the database said.
        #[source]
        source: sqlx::Error,
    },
    /// The configured PostgreSQL schema name is not a plain lowercase identifier. It is
    /// interpolated into SQL, so anything else is refused.
    #[error(
        "invalid postgres schema name {schema:?}: use lowercase ascii letters, digits and \
         underscores, starting with a letter or underscore, at most 63 bytes"
    )]
    InvalidSchemaName {
        /// The refused name.
        schema: String,
    },
    /// A stored value could not be read back (corrupt row or foreign writer).
    #[error("store: bad row: {0}")]
    BadRow(String),
    /// The approval does not exist.
    #[error("approval {0} not found")]
    NotFound(String),
    /// The approval was already resolved (approved, denied or expired).
    #[error("approval {id} is already {status}")]
    AlreadyResolved {
        /// Approval id.
        id: String,
        /// Its status now.
        status: crate::ApprovalStatus,
    },
    /// A resolution must move an approval out of `pending`; `Pending` is not a resolution.
    #[error("approval {id} cannot be resolved to {status}")]
    InvalidResolution {
        /// Approval id.
        id: String,
        /// The refused target status.
        status: crate::ApprovalStatus,
    },
    /// An audit line with this (instance, kind, seq) is already stored. Nothing of the batch
    /// was written. Retrying cannot help: two writers share an instance name, or a chain was
    /// resumed from the wrong position.
    #[error("audit {kind} {seq} of instance {instance} is already stored")]
    DuplicateAuditLine {
        /// Writing instance.
        instance: String,
        /// Record or checkpoint.
        kind: crate::AuditLineKind,
        /// The duplicated seq.
        seq: i64,
    },
}

/// Result alias.
pub type Result<T, E = Error> = std::result::Result<T, E>;
