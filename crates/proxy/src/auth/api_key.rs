//! API keys, kept only as SHA-256 digests ([`crate::digests`]: a presented key is compared
//! with every digest in constant time).

use std::sync::Arc;

use portcullis_config::{ApiKey, ApiKeySource};
use portcullis_core::{AuthMethod, Principal};

use super::AuthSetupError;
use crate::digests::{Digests, SecretDigestError, digest_secret};

/// The configured keys: digest and the principal each one stands for.
pub(super) struct ApiKeys {
    digests: Digests<Arc<Principal>>,
}

impl std::fmt::Debug for ApiKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.digests.values().map(|principal| &principal.id))
            .finish()
    }
}

impl ApiKeys {
    /// Reads every key secret and keeps its digest.
    pub(super) fn load(keys: &[ApiKey]) -> Result<Self, AuthSetupError> {
        let mut digests = Digests::with_capacity(keys.len());
        for key in keys {
            let digest = digest_of(key)?;
            let mut principal = Principal::anonymous();
            principal.id = key.name.clone();
            principal.auth = AuthMethod::ApiKey;
            principal.tenant = key.tenant.clone();
            principal.groups = key.groups.clone();
            if let Err(first) = digests.insert(digest, Arc::new(principal)) {
                return Err(AuthSetupError::DuplicateKey {
                    first: first.id.clone(),
                    second: key.name.clone(),
                });
            }
        }
        Ok(Self { digests })
    }

    /// The principal whose key this is.
    pub(super) fn verify(&self, presented: &[u8]) -> Option<Arc<Principal>> {
        self.digests.find(presented).cloned()
    }
}

fn digest_of(key: &ApiKey) -> Result<[u8; 32], AuthSetupError> {
    match &key.source {
        ApiKeySource::Sha256(digest) => Ok(*digest),
        ApiKeySource::Secret(source) => {
            digest_secret(source, "api key", &key.name).map_err(|error| match error {
                SecretDigestError::Read(source) => AuthSetupError::KeySecret {
                    name: key.name.clone(),
                    source,
                },
                SecretDigestError::Empty => AuthSetupError::EmptyKey {
                    name: key.name.clone(),
                },
            })
        }
    }
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
                ApiKeySource::Sha256(crate::digests::sha256(b"other-key-0123456789")),
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
        let same = crate::digests::sha256(b"same");
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
