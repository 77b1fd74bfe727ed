//! API keys, kept only as SHA-256 digests.
//!
//! A presented key is hashed and compared with *every* configured digest, each comparison
//! folding all 32 bytes, so the time taken does not depend on which digest (if any) matched or
//! on how many leading bytes agreed. Comparing digests rather than keys also makes the time
//! independent of the keys' lengths.

use std::sync::Arc;

use portcullis_config::{ApiKey, ApiKeySource};
use portcullis_core::{AuthMethod, Principal};
use sha2::{Digest, Sha256};

use super::AuthSetupError;
use crate::services::read_text_secret;

/// Keys shorter than this are accepted but logged at start: they can be guessed.
const SHORT_KEY: usize = 16;

/// The configured keys: digest and the principal each one stands for.
pub(super) struct ApiKeys {
    entries: Vec<([u8; 32], Arc<Principal>)>,
}

impl std::fmt::Debug for ApiKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.entries.iter().map(|(_, principal)| &principal.id))
            .finish()
    }
}

impl ApiKeys {
    /// Reads every key secret and keeps its digest.
    pub(super) fn load(keys: &[ApiKey]) -> Result<Self, AuthSetupError> {
        let mut entries: Vec<([u8; 32], Arc<Principal>)> = Vec::with_capacity(keys.len());
        for key in keys {
            let digest = digest_of(key)?;
            if let Some((_, first)) = entries.iter().find(|(known, _)| *known == digest) {
                return Err(AuthSetupError::DuplicateKey {
                    first: first.id.clone(),
                    second: key.name.clone(),
                });
            }
            let mut principal = Principal::anonymous();
            principal.id = key.name.clone();
            principal.auth = AuthMethod::ApiKey;
            principal.tenant = key.tenant.clone();
            principal.groups = key.groups.clone();
            entries.push((digest, Arc::new(principal)));
        }
        Ok(Self { entries })
    }

    /// The principal whose key this is.
    pub(super) fn verify(&self, presented: &[u8]) -> Option<Arc<Principal>> {
        let digest: [u8; 32] = Sha256::digest(presented).into();
        let mut found = None;
        // No early exit: every digest is compared in full whatever matched before.
        for (known, principal) in &self.entries {
            if digests_equal(&digest, known) && found.is_none() {
                found = Some(principal);
            }
        }
        found.cloned()
    }
}

fn digest_of(key: &ApiKey) -> Result<[u8; 32], AuthSetupError> {
    match &key.source {
        ApiKeySource::Sha256(digest) => Ok(*digest),
        ApiKeySource::Secret(source) => {
            let secret = read_text_secret(source).map_err(|source| AuthSetupError::KeySecret {
                name: key.name.clone(),
                source,
            })?;
            if secret.is_empty() {
                return Err(AuthSetupError::EmptyKey {
                    name: key.name.clone(),
                });
            }
            if secret.chars().count() < SHORT_KEY {
                tracing::warn!(name = %key.name, "api key is shorter than 16 characters");
            }
            let digest = Sha256::digest(secret.as_bytes()).into();
            wipe(secret);
            Ok(digest)
        }
    }
}

/// Compares two digests in time independent of where they differ.
fn digests_equal(a: &[u8; 32], b: &[u8; 32]) -> bool {
    let mut difference = 0u8;
    for (x, y) in a.iter().zip(b) {
        difference |= x ^ y;
    }
    // Keeps the optimiser from turning the fold into an early-exit comparison.
    std::hint::black_box(difference) == 0
}

/// Overwrites a secret's bytes before freeing them (best effort: earlier copies made while
/// reading it are not reachable from here).
fn wipe(secret: String) {
    let mut bytes = secret.into_bytes();
    bytes.fill(0);
    std::hint::black_box(&bytes);
}

#[cfg(test)]
mod tests {
    use super::*;
    use portcullis_config::CredentialSource;

    fn key(name: &str, source: ApiKeySource) -> ApiKey {
        ApiKey {
            name: name.into(),
            source,
            tenant: None,
            groups: Vec::new(),
        }
    }

    #[test]
    fn secrets_are_read_and_kept_hashed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key");
        std::fs::write(&path, "  file-key-0123456789\n").unwrap();
        let keys = ApiKeys::load(&[
            key("a", ApiKeySource::Secret(CredentialSource::File(path))),
            key(
                "b",
                ApiKeySource::Sha256(Sha256::digest(b"other-key-0123456789").into()),
            ),
        ])
        .unwrap();
        assert_eq!(keys.verify(b"file-key-0123456789").unwrap().id, "a");
        assert_eq!(keys.verify(b"other-key-0123456789").unwrap().id, "b");
        assert!(keys.verify(b"file-key-012345678").is_none());
        assert!(keys.verify(b"").is_none());
        assert_eq!(format!("{keys:?}"), r#"["a", "b"]"#);
    }

    #[test]
    fn setup_errors_name_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty");
        std::fs::write(&empty, " \n").unwrap();
        let missing = dir.path().join("missing");
        let same: [u8; 32] = Sha256::digest(b"same").into();
        for (keys, expected) in [
            (
                vec![key(
                    "a",
                    ApiKeySource::Secret(CredentialSource::File(missing)),
                )],
                "auth.api_keys `a`: ",
            ),
            (
                vec![key(
                    "e",
                    ApiKeySource::Secret(CredentialSource::File(empty)),
                )],
                "auth.api_keys `e`: the key is empty",
            ),
            (
                vec![
                    key("x", ApiKeySource::Sha256(same)),
                    key("y", ApiKeySource::Sha256(same)),
                ],
                "auth.api_keys `y` has the same key as `x`",
            ),
        ] {
            let error = ApiKeys::load(&keys).unwrap_err().to_string();
            assert!(error.starts_with(expected), "{error}");
        }
    }
}
