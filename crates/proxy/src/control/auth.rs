//! Admin credentials: the configured tokens, kept only as SHA-256 digests, and the check of a
//! presented token.
//!
//! A presented token is hashed and compared with *every* configured digest, each comparison
//! folding all 32 bytes, so the time taken does not depend on which digest (if any) matched or
//! on how many leading bytes agreed. Comparing digests rather than the tokens themselves also
//! makes the time independent of the tokens' lengths.

use http::HeaderMap;
use http::header::AUTHORIZATION;
use portcullis_config::{Admin, AdminRole, AdminTokenSource};
use sha2::{Digest, Sha256};

use super::ControlError;
use crate::services::read_text_secret;

/// Tokens shorter than this are accepted but logged at start: they can be guessed.
const SHORT_TOKEN: usize = 16;

/// Who made an admin request: a configured token's name and role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Operator {
    /// The token's configured name; recorded as `decided_by`.
    pub(crate) name: String,
    /// What it may do.
    pub(crate) role: AdminRole,
}

impl Operator {
    /// Whether the role is `needed` or more powerful.
    pub(crate) fn may(&self, needed: AdminRole) -> bool {
        self.role >= needed
    }
}

/// The configured tokens as digests.
pub(crate) struct Tokens {
    entries: Vec<(Operator, [u8; 32])>,
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.entries.iter().map(|(operator, _)| &operator.name))
            .finish()
    }
}

impl Tokens {
    /// Reads every token secret and keeps its digest.
    pub(crate) fn load(admin: &Admin) -> Result<Self, ControlError> {
        let mut entries: Vec<(Operator, [u8; 32])> = Vec::with_capacity(admin.tokens.len());
        for token in &admin.tokens {
            let digest = match &token.source {
                AdminTokenSource::Sha256(digest) => *digest,
                AdminTokenSource::Secret(source) => {
                    let secret =
                        read_text_secret(source).map_err(|source| ControlError::TokenSecret {
                            name: token.name.clone(),
                            source,
                        })?;
                    if secret.is_empty() {
                        return Err(ControlError::EmptyToken {
                            name: token.name.clone(),
                        });
                    }
                    if secret.chars().count() < SHORT_TOKEN {
                        tracing::warn!(
                            name = %token.name,
                            "admin token is shorter than 16 characters"
                        );
                    }
                    let digest = sha256(secret.as_bytes());
                    wipe(secret);
                    digest
                }
            };
            if let Some((first, _)) = entries.iter().find(|(_, known)| *known == digest) {
                return Err(ControlError::DuplicateToken {
                    first: first.name.clone(),
                    second: token.name.clone(),
                });
            }
            entries.push((
                Operator {
                    name: token.name.clone(),
                    role: token.role,
                },
                digest,
            ));
        }
        Ok(Self { entries })
    }

    /// Whether no token is configured (every request is then refused).
    pub(crate) fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The operator whose token this is.
    pub(crate) fn verify(&self, presented: &[u8]) -> Option<&Operator> {
        if presented.is_empty() {
            return None;
        }
        let digest = sha256(presented);
        let mut found = None;
        // No early exit: every digest is compared in full whatever matched before.
        for (operator, known) in &self.entries {
            if digests_equal(&digest, known) && found.is_none() {
                found = Some(operator);
            }
        }
        found
    }

    /// The operator named by an `Authorization: Bearer <token>` header.
    pub(crate) fn bearer(&self, headers: &HeaderMap) -> Option<&Operator> {
        let value = headers.get(AUTHORIZATION)?.as_bytes();
        let (scheme, token) = value.split_at_checked(7)?;
        if !scheme.eq_ignore_ascii_case(b"bearer ") {
            return None;
        }
        self.verify(token.trim_ascii())
    }
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

pub(crate) fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
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
    use http::HeaderValue;
    use portcullis_config::{AdminToken, CredentialSource};
    use std::time::Duration;

    fn admin(tokens: Vec<AdminToken>) -> Admin {
        Admin {
            listen: None,
            tokens,
            console: true,
            session_ttl: Duration::from_secs(60),
        }
    }

    fn token(name: &str, role: AdminRole, secret: &str) -> AdminToken {
        AdminToken {
            name: name.into(),
            role,
            source: AdminTokenSource::Sha256(sha256(secret.as_bytes())),
        }
    }

    #[test]
    fn tokens_are_matched_by_digest() {
        let tokens = Tokens::load(&admin(vec![
            token("vera", AdminRole::Viewer, "viewer-secret-0123"),
            token("alice", AdminRole::Approver, "approver-secret-0123"),
        ]))
        .unwrap();
        assert_eq!(
            tokens
                .verify(b"approver-secret-0123")
                .map(|o| o.name.as_str()),
            Some("alice")
        );
        assert_eq!(
            tokens.verify(b"viewer-secret-0123").map(|o| o.role),
            Some(AdminRole::Viewer)
        );
        assert!(tokens.verify(b"approver-secret-012").is_none());
        assert!(tokens.verify(b"").is_none());
    }

    #[test]
    fn bearer_headers_are_parsed_strictly() {
        let tokens = Tokens::load(&admin(vec![token(
            "a",
            AdminRole::Admin,
            "tok-0123456789abcdef",
        )]))
        .unwrap();
        let check = |value: &str| {
            let mut headers = HeaderMap::new();
            headers.insert(AUTHORIZATION, HeaderValue::from_str(value).unwrap());
            tokens.bearer(&headers).is_some()
        };
        assert!(check("Bearer tok-0123456789abcdef"));
        assert!(check("bearer  tok-0123456789abcdef "));
        assert!(!check("Basic tok-0123456789abcdef"));
        assert!(!check("Bearer"));
        assert!(!check("Bearertok-0123456789abcdef"));
        assert!(tokens.bearer(&HeaderMap::new()).is_none());
    }

    #[test]
    fn secrets_are_read_and_duplicates_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, "file-secret-0123456789\n").unwrap();
        let from_file = AdminToken {
            name: "file".into(),
            role: AdminRole::Approver,
            source: AdminTokenSource::Secret(CredentialSource::File(path.clone())),
        };
        let tokens = Tokens::load(&admin(vec![from_file.clone()])).unwrap();
        assert!(tokens.verify(b"file-secret-0123456789").is_some());

        let duplicate = token("other", AdminRole::Viewer, "file-secret-0123456789");
        let error = Tokens::load(&admin(vec![from_file.clone(), duplicate])).unwrap_err();
        assert!(
            matches!(error, ControlError::DuplicateToken { .. }),
            "{error}"
        );

        std::fs::write(&path, "  \n").unwrap();
        let error = Tokens::load(&admin(vec![from_file])).unwrap_err();
        assert!(matches!(error, ControlError::EmptyToken { .. }), "{error}");
    }

    #[test]
    fn digest_comparison() {
        let a = sha256(b"a");
        let mut b = a;
        assert!(digests_equal(&a, &b));
        b[31] ^= 1;
        assert!(!digests_equal(&a, &b));
    }
}
