//! The crate's error type.

/// What can go wrong building, signing or parsing audit lines.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An event could not be turned into JSON (for example a map with non-string keys).
    #[error("audit event does not serialize to json")]
    Serialize(#[source] serde_json::Error),
    /// A line is not a record or checkpoint.
    #[error("audit line does not parse")]
    Parse(#[source] serde_json::Error),
    /// A signing key was refused.
    #[error("signing key rejected: {reason}")]
    KeyRejected {
        /// What `ring` said about the key.
        reason: String,
    },
    /// A public key is not 32 bytes of hex.
    #[error("public key must be 64 hex digits (32 bytes)")]
    PublicKeyFormat,
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
