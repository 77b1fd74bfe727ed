//! The `authenticate` phase's machinery: from a request's headers to a [`Principal`].
//!
//! A credential comes as `Authorization: Bearer <credential>` or `x-api-key: <key>`. One that
//! looks like a JWT (three base64url parts) is verified as one when JWT issuers are configured;
//! anything else is an API key. No credential yields the anonymous principal where the config
//! allows it. With no API keys and no issuers configured, credentials are not looked at.
//!
//! - `api_key.rs`: keys kept as SHA-256 digests, compared in constant time with every digest.
//! - `token.rs`: bounded parsing of a compact JWS, and the time and audience claims.
//! - `jwk.rs`: JWKs → ring public keys, key selection by `kid`, signature verification.
//! - `jwks.rs`: fetching (discovery, JWKS), caching and refreshing an issuer's keys.
//! - `principal.rs`: the principal of a verified token (OIDC claims or a Kubernetes service
//!   account).
//!
//! Verification uses `ring` rather than a JWT crate (ADR 0010). Credentials are never logged;
//! failures carry a short static reason for logs and metrics only, never sent to the client.

mod api_key;
mod jwk;
mod jwks;
mod principal;
mod token;

use std::path::PathBuf;
use std::sync::Arc;

use http::HeaderMap;
use http::header::AUTHORIZATION;
use portcullis_config::{Auth, JwtIssuer};
use portcullis_core::Principal;

use crate::services::SecretError;
use api_key::ApiKeys;
use jwks::KeySource;
use token::Token;

/// Header carrying a bare API key (the convention of several LLM SDKs).
const API_KEY_HEADER: &str = "x-api-key";

/// Why a request is not authenticated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No credential, and anonymous callers are not allowed.
    #[error("no credential")]
    Missing,
    /// The credential is not valid.
    #[error("invalid credential: {reason}")]
    Invalid {
        /// Why, for logs and a metric label only; never sent to the client.
        reason: &'static str,
    },
    /// The issuer's keys could not be fetched and none are cached.
    #[error("the issuer's keys are unavailable")]
    Unavailable,
}

impl AuthError {
    pub(crate) const fn invalid(reason: &'static str) -> Self {
        Self::Invalid { reason }
    }
}

/// Why an [`Authenticator`] could not be built from its configuration.
#[derive(Debug, thiserror::Error)]
pub enum AuthSetupError {
    /// An API key's secret could not be read.
    #[error("auth.api_keys `{name}`: {source}")]
    KeySecret {
        /// The key's name.
        name: String,
        /// Why.
        #[source]
        source: SecretError,
    },
    /// An API key's secret is empty.
    #[error("auth.api_keys `{name}`: the key is empty")]
    EmptyKey {
        /// The key's name.
        name: String,
    },
    /// Two API keys have the same value.
    #[error("auth.api_keys `{second}` has the same key as `{first}`")]
    DuplicateKey {
        /// The first key's name.
        first: String,
        /// The second key's name.
        second: String,
    },
    /// An issuer's `ca_file` could not be read.
    #[error("auth.jwt `{issuer}`: ca_file {path}: {source}")]
    CaFile {
        /// The issuer.
        issuer: String,
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// An issuer's `ca_file` holds no usable certificate.
    #[error("auth.jwt `{issuer}`: ca_file {path} holds no valid PEM certificate")]
    CaCertificates {
        /// The issuer.
        issuer: String,
        /// The file.
        path: PathBuf,
    },
    /// The TLS client could not be set up.
    #[error("auth.jwt `{issuer}`: TLS setup failed: {source}")]
    Tls {
        /// The issuer.
        issuer: String,
        /// Why.
        #[source]
        source: rustls::Error,
    },
}

/// One configured JWT issuer and its keys.
struct Issuer {
    settings: JwtIssuer,
    keys: KeySource,
}

/// Turns a request's credential into a [`Principal`]. Built once per configuration snapshot;
/// issuers' keys are fetched on first use and cached.
pub struct Authenticator {
    /// The anonymous principal, when anonymous callers are allowed.
    anonymous: Option<Arc<Principal>>,
    /// Whether any credential is configured (else credentials are ignored).
    checks_credentials: bool,
    api_keys: ApiKeys,
    issuers: Vec<Issuer>,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator")
            .field("anonymous", &self.anonymous.is_some())
            .field("api_keys", &self.api_keys)
            .field(
                "issuers",
                &self
                    .issuers
                    .iter()
                    .map(|i| i.settings.issuer.as_str())
                    .collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl Authenticator {
    /// Reads the `key_env` / `key_file` secrets and `ca_file`s now; fetches nothing yet (an
    /// issuer's keys are fetched on first use).
    pub fn new(config: &Auth) -> Result<Self, AuthSetupError> {
        let anonymous = config.anonymous.then(|| {
            let mut principal = Principal::anonymous();
            principal.tenant = config.anonymous_tenant.clone();
            Arc::new(principal)
        });
        let issuers = config
            .jwt
            .iter()
            .map(|settings| {
                Ok(Issuer {
                    keys: KeySource::new(settings)?,
                    settings: settings.clone(),
                })
            })
            .collect::<Result<Vec<_>, AuthSetupError>>()?;
        Ok(Self {
            anonymous,
            checks_credentials: config.checks_credentials(),
            api_keys: ApiKeys::load(&config.api_keys)?,
            issuers,
        })
    }

    /// Whether requests without a credential pass as the anonymous principal.
    pub fn anonymous_allowed(&self) -> bool {
        self.anonymous.is_some()
    }

    /// The caller named by `headers`: see the module docs.
    pub async fn authenticate(&self, headers: &HeaderMap) -> Result<Arc<Principal>, AuthError> {
        if !self.checks_credentials {
            return self.anonymous.clone().ok_or(AuthError::Missing);
        }
        match credential(headers)? {
            None => self.anonymous.clone().ok_or(AuthError::Missing),
            Some(jwt) if !self.issuers.is_empty() && token::looks_like_jwt(jwt) => {
                self.verify_jwt(jwt).await
            }
            Some(key) => self
                .api_keys
                .verify(key.as_bytes())
                .ok_or(AuthError::invalid("unknown_api_key")),
        }
    }

    async fn verify_jwt(&self, text: &str) -> Result<Arc<Principal>, AuthError> {
        let token = Token::parse(text)?;
        let iss = token.issuer()?;
        let issuer = self
            .issuers
            .iter()
            .find(|issuer| issuer.settings.issuer == iss)
            .ok_or(AuthError::invalid("unknown_issuer"))?;
        let alg = token.algorithm(&issuer.settings.algorithms)?;
        let kid = token.kid();
        let keys = issuer.keys.keys_for(kid).await?;
        keys.select(kid, alg)?
            .verify(alg, token.signing_input(), token.signature())?;
        token.check_claims(&issuer.settings, token::now_seconds())?;
        principal::build(&issuer.settings, token.claims()).map(Arc::new)
    }
}

/// The one credential of a request, if any. Two (both headers, or a header repeated) are
/// refused rather than guessed between.
fn credential(headers: &HeaderMap) -> Result<Option<&str>, AuthError> {
    let bearer = single(headers, AUTHORIZATION.as_str())?
        .map(|value| {
            let (scheme, rest) = value
                .split_once(' ')
                .ok_or(AuthError::invalid("unsupported_scheme"))?;
            if scheme.eq_ignore_ascii_case("bearer") {
                Ok(rest.trim())
            } else {
                Err(AuthError::invalid("unsupported_scheme"))
            }
        })
        .transpose()?;
    let api_key = single(headers, API_KEY_HEADER)?.map(str::trim);
    let found = match (bearer, api_key) {
        (Some(_), Some(_)) => return Err(AuthError::invalid("two_credentials")),
        (found, None) | (None, found) => found,
    };
    match found {
        Some("") => Err(AuthError::invalid("empty_credential")),
        found => Ok(found),
    }
}

/// The value of a header that may appear at most once, as visible ASCII.
fn single<'h>(headers: &'h HeaderMap, name: &str) -> Result<Option<&'h str>, AuthError> {
    let mut values = headers.get_all(name).iter();
    let Some(first) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(AuthError::invalid("two_credentials"));
    }
    first
        .to_str()
        .map(Some)
        .map_err(|_| AuthError::invalid("malformed_header"))
}

/// An OIDC issuer with the config's defaults, for unit tests to adjust with `..`.
#[cfg(test)]
pub(super) fn test_issuer() -> JwtIssuer {
    JwtIssuer {
        issuer: "https://idp.example".into(),
        audiences: vec!["a".into()],
        kind: portcullis_config::JwtKind::Oidc,
        keys: portcullis_config::JwksLocation::Jwks(
            "https://idp.example/jwks".parse().expect("a valid URI"),
        ),
        ca_file: None,
        token_file: None,
        algorithms: vec![portcullis_config::JwtAlgorithm::Rs256],
        principal_claim: "sub".into(),
        tenant_claim: None,
        groups_claim: "groups".into(),
        claims: Vec::new(),
        leeway: std::time::Duration::from_secs(60),
        jwks_refresh: std::time::Duration::from_secs(300),
        jwks_min_refresh: std::time::Duration::from_secs(10),
        fetch_timeout: std::time::Duration::from_secs(5),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;
    use portcullis_config::{ApiKey, ApiKeySource};
    use portcullis_core::AuthMethod;
    use sha2::{Digest, Sha256};

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_str(value).unwrap());
        }
        map
    }

    fn auth(anonymous: bool, keys: &[(&str, &str)]) -> Auth {
        Auth {
            anonymous,
            anonymous_tenant: Some("public".into()),
            api_keys: keys
                .iter()
                .map(|(name, key)| ApiKey {
                    name: (*name).into(),
                    source: ApiKeySource::Sha256(Sha256::digest(key.as_bytes()).into()),
                    tenant: Some("team".into()),
                    groups: vec!["bots".into()],
                })
                .collect(),
            jwt: Vec::new(),
        }
    }

    #[test]
    fn credentials_are_read_strictly() {
        let ok = |pairs: &[(&'static str, &str)]| {
            credential(&headers(pairs)).map(|found| found.map(str::to_owned))
        };
        let found = |text: &str| Ok(Some(text.to_owned()));
        assert_eq!(ok(&[]), Ok(None));
        assert_eq!(ok(&[("authorization", "Bearer abc")]), found("abc"));
        assert_eq!(ok(&[("authorization", "bearer  abc ")]), found("abc"));
        assert_eq!(ok(&[("x-api-key", "k")]), found("k"));
        for (pairs, reason) in [
            (vec![("authorization", "Basic YTpi")], "unsupported_scheme"),
            (vec![("authorization", "Bearer")], "unsupported_scheme"),
            (vec![("authorization", "Bearer  ")], "empty_credential"),
            (
                vec![("authorization", "Bearer a"), ("x-api-key", "a")],
                "two_credentials",
            ),
            (
                vec![("authorization", "Bearer a"), ("authorization", "Bearer b")],
                "two_credentials",
            ),
        ] {
            assert_eq!(ok(&pairs), Err(AuthError::invalid(reason)), "{pairs:?}");
        }
        let mut map = HeaderMap::new();
        map.insert("x-api-key", HeaderValue::from_bytes(b"\xffkey").unwrap());
        assert_eq!(
            credential(&map),
            Err(AuthError::invalid("malformed_header"))
        );
    }

    #[tokio::test]
    async fn api_keys_and_anonymous() {
        let authn = Authenticator::new(&auth(true, &[("bot", "secret-key-0123456789")])).unwrap();
        let bot = authn
            .authenticate(&headers(&[(
                "authorization",
                "Bearer secret-key-0123456789",
            )]))
            .await
            .unwrap();
        assert_eq!(bot.id, "bot");
        assert_eq!(bot.auth, AuthMethod::ApiKey);
        assert_eq!(bot.tenant.as_deref(), Some("team"));
        assert_eq!(bot.groups, ["bots"]);
        let anonymous = authn.authenticate(&HeaderMap::new()).await.unwrap();
        assert_eq!(anonymous.auth, AuthMethod::Anonymous);
        assert_eq!(anonymous.tenant.as_deref(), Some("public"));
        assert_eq!(
            authn
                .authenticate(&headers(&[("x-api-key", "wrong")]))
                .await,
            Err(AuthError::invalid("unknown_api_key"))
        );
        // A JWT-shaped key is still an API key when no issuer is configured.
        assert_eq!(
            authn
                .authenticate(&headers(&[("x-api-key", "a.b.c")]))
                .await,
            Err(AuthError::invalid("unknown_api_key"))
        );
    }

    #[tokio::test]
    async fn without_configured_credentials_everyone_is_anonymous() {
        let authn = Authenticator::new(&auth(true, &[])).unwrap();
        let principal = authn
            .authenticate(&headers(&[("authorization", "Bearer EMPTY")]))
            .await
            .unwrap();
        assert_eq!(principal.auth, AuthMethod::Anonymous);
        let closed = Authenticator::new(&auth(false, &[("bot", "k")])).unwrap();
        assert!(!closed.anonymous_allowed());
        assert_eq!(
            closed.authenticate(&HeaderMap::new()).await,
            Err(AuthError::Missing)
        );
    }
}
