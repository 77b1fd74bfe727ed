//! Credentials kept only as SHA-256 digests: traffic API keys (`auth/api_key.rs`) and admin
//! tokens (`control/auth.rs`).
//!
//! A presented credential is hashed and compared with *every* configured digest, each
//! comparison folding all 32 bytes, so the time taken does not depend on which digest (if any)
//! matched or on how many leading bytes agreed. Comparing digests rather than the credentials
//! themselves also makes the time independent of their lengths.

use portcullis_config::CredentialSource;
use sha2::{Digest, Sha256};

use crate::services::{SecretError, read_text_secret};

/// Credentials shorter than this are accepted but logged at start: they can be guessed.
const SHORT_SECRET: usize = 16;

/// SHA-256 of `bytes`.
pub(crate) fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// Compares two digests in time independent of where they differ.
pub(crate) fn digests_equal(a: &[u8; 32], b: &[u8; 32]) -> bool {
    let mut difference = 0u8;
    for (x, y) in a.iter().zip(b) {
        difference |= x ^ y;
    }
    // Keeps the optimiser from turning the fold into an early-exit comparison.
    std::hint::black_box(difference) == 0
}

/// Why a credential read from a secret gives no digest.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SecretDigestError {
    /// The secret could not be read.
    #[error(transparent)]
    Read(#[from] SecretError),
    /// The secret is empty.
    #[error("the secret is empty")]
    Empty,
}

/// Reads a credential from its secret and keeps only its digest; `what` and `name` name it in
/// the warning about a short credential.
pub(crate) fn digest_secret(
    source: &CredentialSource,
    what: &str,
    name: &str,
) -> Result<[u8; 32], SecretDigestError> {
    let secret = read_text_secret(source)?;
    if secret.is_empty() {
        return Err(SecretDigestError::Empty);
    }
    if secret.chars().count() < SHORT_SECRET {
        tracing::warn!(name = %name, "{what} is shorter than {SHORT_SECRET} characters");
    }
    let digest = sha256(secret.as_bytes());
    wipe(secret);
    Ok(digest)
}

/// Overwrites a secret's bytes before freeing them (best effort: earlier copies made while
/// reading it are not reachable from here).
fn wipe(secret: String) {
    let mut bytes = secret.into_bytes();
    bytes.fill(0);
    std::hint::black_box(&bytes);
}

/// Configured credentials as digests, each standing for a `T` (a principal, an operator).
pub(crate) struct Digests<T> {
    entries: Vec<([u8; 32], T)>,
}

impl<T> Digests<T> {
    pub(crate) fn with_capacity(capacity: usize) -> Self {
        Self {
            entries: Vec::with_capacity(capacity),
        }
    }

    /// Adds a digest; when it is already there, returns what the earlier one stands for.
    pub(crate) fn insert(&mut self, digest: [u8; 32], value: T) -> Result<(), &T> {
        match self.entries.iter().position(|(known, _)| *known == digest) {
            Some(index) => Err(&self.entries[index].1),
            None => {
                self.entries.push((digest, value));
                Ok(())
            }
        }
    }

    /// Whether none is configured.
    pub(crate) fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// What the presented credential stands for. An empty credential matches nothing.
    pub(crate) fn find(&self, presented: &[u8]) -> Option<&T> {
        if presented.is_empty() {
            return None;
        }
        let digest = sha256(presented);
        let mut found = None;
        // No early exit: every digest is compared in full whatever matched before.
        for (known, value) in &self.entries {
            if digests_equal(&digest, known) && found.is_none() {
                found = Some(value);
            }
        }
        found
    }

    /// What each digest stands for, in configuration order.
    pub(crate) fn values(&self) -> impl Iterator<Item = &T> {
        self.entries.iter().map(|(_, value)| value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_by_digest_refuses_repeats_and_empty_credentials() {
        let mut digests = Digests::with_capacity(2);
        assert!(digests.insert(sha256(b"alpha-key"), "a").is_ok());
        assert!(digests.insert(sha256(b"beta-key"), "b").is_ok());
        assert_eq!(digests.insert(sha256(b"alpha-key"), "c"), Err(&"a"));
        assert_eq!(digests.find(b"beta-key"), Some(&"b"));
        assert_eq!(digests.find(b"beta-keyx"), None);
        assert_eq!(digests.find(b""), None);
        assert_eq!(digests.values().copied().collect::<Vec<_>>(), ["a", "b"]);
    }

    #[test]
    fn digests_compare_equal_only_when_every_byte_does() {
        let a = sha256(b"x");
        let mut b = a;
        assert!(digests_equal(&a, &b));
        b[31] ^= 1;
        assert!(!digests_equal(&a, &b));
    }

    #[test]
    fn a_secret_is_read_hashed_and_an_empty_one_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key");
        std::fs::write(&path, "  a-long-enough-secret\n").unwrap();
        let source = CredentialSource::File(path.clone());
        assert_eq!(
            digest_secret(&source, "api key", "k").unwrap(),
            sha256(b"a-long-enough-secret")
        );
        std::fs::write(&path, " \n").unwrap();
        assert!(matches!(
            digest_secret(&source, "api key", "k"),
            Err(SecretDigestError::Empty)
        ));
        let missing = CredentialSource::File(dir.path().join("absent"));
        assert!(matches!(
            digest_secret(&missing, "api key", "k"),
            Err(SecretDigestError::Read(_))
        ));
    }
}
