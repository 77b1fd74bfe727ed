//! Admin credentials: the configured tokens, kept only as SHA-256 digests
//! ([`crate::digests`]: compared with every digest in constant time), and the check of a
//! presented token.

use http::HeaderMap;
use http::header::AUTHORIZATION;
use portcullis_config::{Admin, AdminRole, AdminTokenSource};

use super::ControlError;
use crate::digests::{Digests, SecretDigestError, digest_secret};
pub(crate) use crate::digests::{digests_equal, sha256};

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
    digests: Digests<Operator>,
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.digests.values().map(|operator| &operator.name))
            .finish()
    }
}

impl Tokens {
    /// Reads every token secret and keeps its digest.
    pub(crate) fn load(admin: &Admin) -> Result<Self, ControlError> {
        let mut digests = Digests::with_capacity(admin.tokens.len());
        for token in &admin.tokens {
            let digest = match &token.source {
                AdminTokenSource::Sha256(digest) => *digest,
                AdminTokenSource::Secret(source) => {
                    digest_secret(source, "admin token", &token.name).map_err(
                        |error| match error {
                            SecretDigestError::Read(source) => ControlError::TokenSecret {
                                name: token.name.clone(),
                                source,
                            },
                            SecretDigestError::Empty => ControlError::EmptyToken {
                                name: token.name.clone(),
                            },
                        },
                    )?
                }
            };
            let operator = Operator {
                name: token.name.clone(),
                role: token.role,
            };
            if let Err(first) = digests.insert(digest, operator) {
                return Err(ControlError::DuplicateToken {
                    first: first.name.clone(),
                    second: token.name.clone(),
                });
            }
        }
        Ok(Self { digests })
    }

    /// Whether no token is configured (every request is then refused).
    pub(crate) fn is_empty(&self) -> bool {
        self.digests.is_empty()
    }

    /// The operator whose token this is.
    pub(crate) fn verify(&self, presented: &[u8]) -> Option<&Operator> {
        self.digests.find(presented)
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
