//! Who may call the gateway: API keys (kept as SHA-256 digests), JWT issuers (OIDC providers and
//! Kubernetes service-account issuers, verified against their JWKS) and the anonymous caller.
//!
//! Secrets (raw API keys) are named here by where they are read from; reading them, and every
//! network fetch, is the proxy's job (`portcullis_proxy::Authenticator`).

use std::path::PathBuf;
use std::time::Duration;

use schemars::JsonSchema;
use serde::Deserialize;

use crate::ConfigError;
use crate::state::secret_source;
use crate::validated::{CredentialSource, millis};

/// Most API keys.
const MAX_API_KEYS: usize = 10_000;
/// Most JWT issuers.
const MAX_ISSUERS: usize = 32;
/// Most claims copied into a principal.
pub const MAX_COPIED_CLAIMS: usize = 32;
/// Most groups an API key may name.
const MAX_KEY_GROUPS: usize = 64;
/// Largest clock-skew allowance.
const MAX_LEEWAY_MS: u64 = 10 * 60 * 1000;

/// Authentication of callers.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawAuth {
    /// Let requests without a credential through as the `anonymous` principal. Default: `true`
    /// only when no `api_keys` and no `jwt` issuers are configured, else `false`.
    #[serde(default)]
    pub anonymous: Option<bool>,
    /// Tenant of the anonymous principal.
    #[serde(default)]
    pub anonymous_tenant: Option<String>,
    /// Static API keys, presented as `Authorization: Bearer <key>` or `x-api-key: <key>`.
    #[serde(default)]
    pub api_keys: Vec<RawApiKey>,
    /// JWT issuers (OIDC providers, Kubernetes service-account issuers) whose tokens are
    /// accepted as `Authorization: Bearer <jwt>`.
    #[serde(default)]
    pub jwt: Vec<RawJwtIssuer>,
}

/// One API key.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawApiKey {
    /// Unique name; the principal id of requests made with this key.
    pub name: String,
    /// SHA-256 of the key, 64 hex digits (`printf %s "$KEY" | sha256sum`). Exactly one of
    /// `sha256`, `key_env` and `key_file`.
    #[serde(default)]
    pub sha256: Option<String>,
    /// Environment variable holding the key itself (read at start, kept only hashed).
    #[serde(default)]
    pub key_env: Option<String>,
    /// File holding the key itself (a mounted Secret; read at start, kept only hashed).
    #[serde(default)]
    pub key_file: Option<String>,
    /// Tenant of the principal.
    #[serde(default)]
    pub tenant: Option<String>,
    /// Groups of the principal.
    #[serde(default)]
    pub groups: Vec<String>,
}

/// One JWT issuer.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawJwtIssuer {
    /// The exact `iss` of its tokens, an http(s) URL; unique.
    pub issuer: String,
    /// Accepted audiences; a token's `aud` (a string or an array) must contain one. Required.
    #[serde(default)]
    pub audiences: Vec<String>,
    /// `oidc` (default) or `kubernetes` (a cluster's service-account issuer: the principal is
    /// the service account, the tenant its namespace).
    #[serde(default)]
    pub kind: Option<RawJwtKind>,
    /// OpenID discovery document. Default `{issuer}/.well-known/openid-configuration`. https
    /// unless the host is a loopback address.
    #[serde(default)]
    pub discovery_url: Option<String>,
    /// The JWKS itself, skipping discovery (e.g. `https://kubernetes.default.svc/openid/v1/jwks`
    /// in a cluster, where the issuer URL is not reachable). https unless the host is loopback.
    #[serde(default)]
    pub jwks_url: Option<String>,
    /// PEM bundle of CA certificates trusted for discovery and JWKS fetches, in addition to
    /// the web PKI roots.
    #[serde(default)]
    pub ca_file: Option<String>,
    /// File holding a bearer token sent on discovery and JWKS fetches (to their configured
    /// host only); re-read on every fetch, as projected tokens rotate.
    #[serde(default)]
    pub token_file: Option<String>,
    /// Accepted signature algorithms. Default `[RS256, ES256]`. Allowed: RS256 RS384 RS512
    /// PS256 PS384 PS512 ES256 ES384 EdDSA.
    #[serde(default)]
    pub algorithms: Option<Vec<String>>,
    /// Claim holding the principal id (`oidc` only). Default `sub`.
    #[serde(default)]
    pub principal_claim: Option<String>,
    /// Claim holding the tenant (`oidc` only). Default: no tenant.
    #[serde(default)]
    pub tenant_claim: Option<String>,
    /// Claim holding the groups, an array of strings (`oidc` only). Default `groups`.
    #[serde(default)]
    pub groups_claim: Option<String>,
    /// Further claims copied into the principal for policy (at most 32; values over 1 KiB of
    /// JSON are left out).
    #[serde(default)]
    pub claims: Vec<String>,
    /// Clock skew allowed for `exp`, `nbf` and `iat`. Default 60000; at most 600000.
    #[serde(default)]
    pub leeway_ms: Option<u64>,
    /// Cached keys are refetched after this long. Default 300000 (5 min).
    #[serde(default)]
    pub jwks_refresh_ms: Option<u64>,
    /// A token with an unknown `kid` triggers a refetch at most this often. Default 10000.
    #[serde(default)]
    pub jwks_min_refresh_ms: Option<u64>,
    /// Bound on one discovery or JWKS fetch. Default 5000.
    #[serde(default)]
    pub fetch_timeout_ms: Option<u64>,
}

/// What kind of issuer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RawJwtKind {
    /// An OpenID Connect provider.
    Oidc,
    /// A Kubernetes cluster's service-account token issuer.
    Kubernetes,
}

/// Validated authentication settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Auth {
    /// Whether a request without a credential passes as the anonymous principal.
    pub anonymous: bool,
    /// The anonymous principal's tenant.
    pub anonymous_tenant: Option<String>,
    /// API keys in file order.
    pub api_keys: Vec<ApiKey>,
    /// JWT issuers in file order.
    pub jwt: Vec<JwtIssuer>,
}

impl Auth {
    /// Whether credentials are checked at all: with no API keys and no issuers, every caller
    /// is anonymous (when allowed) and presented credentials are ignored.
    pub fn checks_credentials(&self) -> bool {
        !self.api_keys.is_empty() || !self.jwt.is_empty()
    }
}

/// How an API key is known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApiKeySource {
    /// Its SHA-256.
    Sha256([u8; 32]),
    /// The key itself, from a secret.
    Secret(CredentialSource),
}

/// One API key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKey {
    /// Principal id.
    pub name: String,
    /// Where the key is known from.
    pub source: ApiKeySource,
    /// Tenant.
    pub tenant: Option<String>,
    /// Groups.
    pub groups: Vec<String>,
}

/// What kind of issuer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JwtKind {
    /// An OpenID Connect provider: principal, tenant and groups come from configured claims.
    Oidc,
    /// A Kubernetes service-account issuer: the principal is the service account.
    Kubernetes,
}

/// A JWS signature algorithm Portcullis verifies. HMAC (`HS*`) and `none` are not among them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum JwtAlgorithm {
    /// RSASSA-PKCS1-v1_5 with SHA-256.
    Rs256,
    /// RSASSA-PKCS1-v1_5 with SHA-384.
    Rs384,
    /// RSASSA-PKCS1-v1_5 with SHA-512.
    Rs512,
    /// RSASSA-PSS with SHA-256.
    Ps256,
    /// RSASSA-PSS with SHA-384.
    Ps384,
    /// RSASSA-PSS with SHA-512.
    Ps512,
    /// ECDSA P-256 with SHA-256.
    Es256,
    /// ECDSA P-384 with SHA-384.
    Es384,
    /// Ed25519.
    EdDsa,
}

impl JwtAlgorithm {
    /// Every supported algorithm.
    pub const ALL: [Self; 9] = [
        Self::Rs256,
        Self::Rs384,
        Self::Rs512,
        Self::Ps256,
        Self::Ps384,
        Self::Ps512,
        Self::Es256,
        Self::Es384,
        Self::EdDsa,
    ];

    /// The algorithm named `name` (the JWS `alg` value, case-sensitive).
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|alg| alg.as_str() == name)
    }

    /// The JWS `alg` value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Rs256 => "RS256",
            Self::Rs384 => "RS384",
            Self::Rs512 => "RS512",
            Self::Ps256 => "PS256",
            Self::Ps384 => "PS384",
            Self::Ps512 => "PS512",
            Self::Es256 => "ES256",
            Self::Es384 => "ES384",
            Self::EdDsa => "EdDSA",
        }
    }
}

/// Where an issuer's keys are found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JwksLocation {
    /// An OpenID discovery document naming `jwks_uri`.
    Discovery(http::Uri),
    /// The JWKS itself.
    Jwks(http::Uri),
}

/// One validated JWT issuer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JwtIssuer {
    /// The exact `iss`.
    pub issuer: String,
    /// Accepted audiences, non-empty.
    pub audiences: Vec<String>,
    /// Kind.
    pub kind: JwtKind,
    /// Where the keys are.
    pub keys: JwksLocation,
    /// Extra trusted CA certificates (PEM).
    pub ca_file: Option<PathBuf>,
    /// Bearer token for fetches.
    pub token_file: Option<PathBuf>,
    /// Accepted algorithms, non-empty, without repeats.
    pub algorithms: Vec<JwtAlgorithm>,
    /// Principal id claim (oidc).
    pub principal_claim: String,
    /// Tenant claim (oidc).
    pub tenant_claim: Option<String>,
    /// Groups claim (oidc).
    pub groups_claim: String,
    /// Claims copied into the principal.
    pub claims: Vec<String>,
    /// Clock skew allowance.
    pub leeway: Duration,
    /// Cached keys are refetched after this.
    pub jwks_refresh: Duration,
    /// Unknown-`kid` refetches at most this often.
    pub jwks_min_refresh: Duration,
    /// Bound on one fetch.
    pub fetch_timeout: Duration,
}

pub(crate) fn validate_auth(errors: &mut Vec<ConfigError>, raw: &RawAuth) -> Auth {
    if raw.api_keys.len() > MAX_API_KEYS {
        errors.push(ConfigError::new(
            "auth.api_keys",
            format!("at most {MAX_API_KEYS} keys"),
        ));
    }
    if raw.jwt.len() > MAX_ISSUERS {
        errors.push(ConfigError::new(
            "auth.jwt",
            format!("at most {MAX_ISSUERS} issuers"),
        ));
    }
    let api_keys: Vec<ApiKey> = raw
        .api_keys
        .iter()
        .enumerate()
        .filter_map(|(i, key)| validate_api_key(errors, &raw.api_keys[..i], i, key))
        .collect();
    let jwt: Vec<JwtIssuer> = raw
        .jwt
        .iter()
        .enumerate()
        .filter_map(|(i, issuer)| validate_issuer(errors, &raw.jwt[..i], i, issuer))
        .collect();
    let configured = !raw.api_keys.is_empty() || !raw.jwt.is_empty();
    let anonymous = raw.anonymous.unwrap_or(!configured);
    if !anonymous && !configured {
        errors.push(ConfigError::new(
            "auth.anonymous",
            "is false but no api_keys or jwt issuers are configured, so every request would be refused",
        ));
    }
    if let Some(tenant) = &raw.anonymous_tenant {
        if !anonymous {
            errors.push(ConfigError::new(
                "auth.anonymous_tenant",
                "set, but anonymous callers are not allowed",
            ));
        }
        check_text(errors, "auth.anonymous_tenant", tenant, 128);
    }
    Auth {
        anonymous,
        anonymous_tenant: raw.anonymous_tenant.clone(),
        api_keys,
        jwt,
    }
}

fn validate_api_key(
    errors: &mut Vec<ConfigError>,
    before: &[RawApiKey],
    i: usize,
    raw: &RawApiKey,
) -> Option<ApiKey> {
    let at = format!("auth.api_keys[{i}]");
    let name_ok = !raw.name.is_empty()
        && raw.name.len() <= 128
        && raw
            .name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'@' | b':'));
    if !name_ok {
        errors.push(ConfigError::new(
            format!("{at}.name"),
            "must be 1 to 128 letters, digits, `-`, `_`, `.`, `@` or `:`",
        ));
    }
    if before.iter().any(|k| k.name == raw.name) {
        errors.push(ConfigError::new(
            format!("{at}.name"),
            format!("`{}` is used twice", raw.name),
        ));
    }
    if let Some(tenant) = &raw.tenant {
        check_text(errors, &format!("{at}.tenant"), tenant, 128);
    }
    if raw.groups.len() > MAX_KEY_GROUPS {
        errors.push(ConfigError::new(
            format!("{at}.groups"),
            format!("at most {MAX_KEY_GROUPS} groups"),
        ));
    }
    for (j, group) in raw.groups.iter().enumerate() {
        check_text(errors, &format!("{at}.groups[{j}]"), group, 256);
    }
    let secret = secret_source(
        errors,
        &at,
        ("key_env", &raw.key_env),
        ("key_file", &raw.key_file),
    );
    let source = match (&raw.sha256, secret) {
        (Some(hex), None) => {
            let Some(digest) = portcullis_core::hex::decode::<32>(hex) else {
                errors.push(ConfigError::new(
                    format!("{at}.sha256"),
                    "must be 64 hex digits",
                ));
                return None;
            };
            if before
                .iter()
                .filter_map(|k| k.sha256.as_deref())
                .any(|other| portcullis_core::hex::decode::<32>(other) == Some(digest))
            {
                errors.push(ConfigError::new(
                    format!("{at}.sha256"),
                    "the same key is configured twice",
                ));
            }
            ApiKeySource::Sha256(digest)
        }
        (None, Some(source)) => ApiKeySource::Secret(source),
        _ => {
            errors.push(ConfigError::new(
                at,
                "set exactly one of sha256, key_env and key_file",
            ));
            return None;
        }
    };
    Some(ApiKey {
        name: raw.name.clone(),
        source,
        tenant: raw.tenant.clone(),
        groups: raw.groups.clone(),
    })
}

fn validate_issuer(
    errors: &mut Vec<ConfigError>,
    before: &[RawJwtIssuer],
    i: usize,
    raw: &RawJwtIssuer,
) -> Option<JwtIssuer> {
    let at = format!("auth.jwt[{i}]");
    let errors_before = errors.len();
    let issuer_ok = raw.issuer.parse::<http::Uri>().is_ok_and(|uri| {
        matches!(uri.scheme_str(), Some("http" | "https"))
            && uri.authority().is_some()
            && uri.query().is_none()
    });
    if !issuer_ok {
        errors.push(ConfigError::new(
            format!("{at}.issuer"),
            "must be an http:// or https:// URL with a host and no query (legacy `kubernetes/serviceaccount` tokens are not supported)",
        ));
    }
    if before.iter().any(|other| other.issuer == raw.issuer) {
        errors.push(ConfigError::new(
            format!("{at}.issuer"),
            format!("`{}` is configured twice", raw.issuer),
        ));
    }
    if raw.audiences.is_empty() {
        errors.push(ConfigError::new(
            format!("{at}.audiences"),
            "at least one audience is required",
        ));
    }
    for (j, audience) in raw.audiences.iter().enumerate() {
        check_text(errors, &format!("{at}.audiences[{j}]"), audience, 512);
    }
    let kind = match raw.kind.unwrap_or(RawJwtKind::Oidc) {
        RawJwtKind::Oidc => JwtKind::Oidc,
        RawJwtKind::Kubernetes => JwtKind::Kubernetes,
    };
    let keys = jwks_location(errors, &at, raw, issuer_ok);
    let algorithms = validate_algorithms(errors, &at, raw.algorithms.as_deref());
    let (principal_claim, tenant_claim, groups_claim) = identity_claims(errors, &at, kind, raw);
    let claims = validate_copied_claims(errors, &at, &raw.claims);
    let ca_file = non_empty_path(errors, &format!("{at}.ca_file"), &raw.ca_file);
    let token_file = non_empty_path(errors, &format!("{at}.token_file"), &raw.token_file);
    let leeway_ms = raw.leeway_ms.unwrap_or(60_000);
    if leeway_ms > MAX_LEEWAY_MS {
        errors.push(ConfigError::new(
            format!("{at}.leeway_ms"),
            format!("must be at most {MAX_LEEWAY_MS} ms"),
        ));
    }
    let timing = |errors: &mut Vec<ConfigError>, key: &str, value, default| {
        millis(errors, &format!("{at}.{key}"), value, default)
    };
    let jwks_refresh = timing(errors, "jwks_refresh_ms", raw.jwks_refresh_ms, 300_000);
    let jwks_min_refresh = timing(
        errors,
        "jwks_min_refresh_ms",
        raw.jwks_min_refresh_ms,
        10_000,
    );
    let fetch_timeout = timing(errors, "fetch_timeout_ms", raw.fetch_timeout_ms, 5_000);
    if jwks_min_refresh > jwks_refresh {
        errors.push(ConfigError::new(
            format!("{at}.jwks_min_refresh_ms"),
            "must not exceed jwks_refresh_ms",
        ));
    }
    if errors.len() != errors_before {
        return None;
    }
    Some(JwtIssuer {
        issuer: raw.issuer.clone(),
        audiences: raw.audiences.clone(),
        kind,
        keys: keys?,
        ca_file,
        token_file,
        algorithms,
        principal_claim,
        tenant_claim,
        groups_claim,
        claims,
        leeway: Duration::from_millis(leeway_ms),
        jwks_refresh,
        jwks_min_refresh,
        fetch_timeout,
    })
}

fn jwks_location(
    errors: &mut Vec<ConfigError>,
    at: &str,
    raw: &RawJwtIssuer,
    issuer_ok: bool,
) -> Option<JwksLocation> {
    match (&raw.discovery_url, &raw.jwks_url) {
        (Some(_), Some(_)) => {
            errors.push(ConfigError::new(
                format!("{at}.jwks_url"),
                "set discovery_url or jwks_url, not both",
            ));
            None
        }
        (None, Some(url)) => {
            fetch_url(errors, &format!("{at}.jwks_url"), url).map(JwksLocation::Jwks)
        }
        (Some(url), None) => {
            fetch_url(errors, &format!("{at}.discovery_url"), url).map(JwksLocation::Discovery)
        }
        (None, None) if issuer_ok => {
            let url = format!(
                "{}/.well-known/openid-configuration",
                raw.issuer.trim_end_matches('/')
            );
            fetch_url(errors, &format!("{at}.issuer"), &url).map(JwksLocation::Discovery)
        }
        (None, None) => None,
    }
}

/// Parses a URL keys are fetched from: https, or http to a loopback host.
fn fetch_url(errors: &mut Vec<ConfigError>, path: &str, text: &str) -> Option<http::Uri> {
    let Ok(uri) = text.parse::<http::Uri>() else {
        errors.push(ConfigError::new(path, "not a valid URL"));
        return None;
    };
    let host = uri.host().unwrap_or_default();
    match uri.scheme_str() {
        Some("https") if !host.is_empty() => Some(uri),
        Some("http") if is_loopback_host(host) => Some(uri),
        Some("http") => {
            errors.push(ConfigError::new(
                path,
                "keys are fetched over https only (http only to a loopback host); set jwks_url or discovery_url to an https URL",
            ));
            None
        }
        _ => {
            errors.push(ConfigError::new(
                path,
                "must be an https:// URL with a host",
            ));
            None
        }
    }
}

/// Whether `host` (as in a URL, IPv6 in brackets) is `localhost` or a loopback address.
pub fn is_loopback_host(host: &str) -> bool {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || bare
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

fn validate_algorithms(
    errors: &mut Vec<ConfigError>,
    at: &str,
    raw: Option<&[String]>,
) -> Vec<JwtAlgorithm> {
    let Some(names) = raw else {
        return vec![JwtAlgorithm::Rs256, JwtAlgorithm::Es256];
    };
    if names.is_empty() {
        errors.push(ConfigError::new(
            format!("{at}.algorithms"),
            "must not be empty",
        ));
    }
    let mut out = Vec::new();
    for (j, name) in names.iter().enumerate() {
        let path = format!("{at}.algorithms[{j}]");
        match JwtAlgorithm::parse(name) {
            Some(alg) if out.contains(&alg) => {
                errors.push(ConfigError::new(path, format!("`{name}` is listed twice")))
            }
            Some(alg) => out.push(alg),
            None if name.eq_ignore_ascii_case("none") => errors.push(ConfigError::new(
                path,
                "`none` (unsigned tokens) is never accepted",
            )),
            None if name.to_ascii_uppercase().starts_with("HS") => errors.push(ConfigError::new(
                path,
                format!("`{name}` is not supported: HMAC algorithms need a shared secret, and only public-key algorithms are verified"),
            )),
            None => errors.push(ConfigError::new(
                path,
                format!("unknown algorithm `{name}`; use RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384 or EdDSA"),
            )),
        }
    }
    out
}

fn identity_claims(
    errors: &mut Vec<ConfigError>,
    at: &str,
    kind: JwtKind,
    raw: &RawJwtIssuer,
) -> (String, Option<String>, String) {
    let fields = [
        ("principal_claim", &raw.principal_claim),
        ("tenant_claim", &raw.tenant_claim),
        ("groups_claim", &raw.groups_claim),
    ];
    for (key, value) in fields {
        let path = format!("{at}.{key}");
        match value {
            Some(_) if kind == JwtKind::Kubernetes => errors.push(ConfigError::new(
                path,
                "only for `kind: oidc`; a kubernetes token's principal, tenant and groups come from its service account",
            )),
            Some(claim) => check_claim_name(errors, &path, claim),
            None => {}
        }
    }
    (
        raw.principal_claim.clone().unwrap_or_else(|| "sub".into()),
        raw.tenant_claim.clone(),
        raw.groups_claim.clone().unwrap_or_else(|| "groups".into()),
    )
}

fn validate_copied_claims(errors: &mut Vec<ConfigError>, at: &str, raw: &[String]) -> Vec<String> {
    if raw.len() > MAX_COPIED_CLAIMS {
        errors.push(ConfigError::new(
            format!("{at}.claims"),
            format!("at most {MAX_COPIED_CLAIMS} claims"),
        ));
    }
    for (j, claim) in raw.iter().enumerate() {
        let path = format!("{at}.claims[{j}]");
        check_claim_name(errors, &path, claim);
        if raw[..j].contains(claim) {
            errors.push(ConfigError::new(path, format!("`{claim}` is listed twice")));
        }
    }
    raw.to_vec()
}

fn check_claim_name(errors: &mut Vec<ConfigError>, path: &str, claim: &str) {
    check_text(errors, path, claim, 128);
}

/// A name or label: 1 to `max` bytes, no control characters.
fn check_text(errors: &mut Vec<ConfigError>, path: &str, text: &str, max: usize) {
    if text.is_empty() || text.len() > max || text.chars().any(char::is_control) {
        errors.push(ConfigError::new(
            path,
            format!("must be 1 to {max} bytes without control characters"),
        ));
    }
}

fn non_empty_path(
    errors: &mut Vec<ConfigError>,
    path: &str,
    value: &Option<String>,
) -> Option<PathBuf> {
    match value.as_deref() {
        Some("") => {
            errors.push(ConfigError::new(path, "must not be empty"));
            None
        }
        Some(file) => Some(PathBuf::from(file)),
        None => None,
    }
}

#[cfg(test)]
mod tests;
