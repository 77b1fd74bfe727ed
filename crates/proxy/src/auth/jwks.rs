//! An issuer's keys: fetched (OpenID discovery, then the JWKS; or the JWKS directly), cached
//! and refreshed.
//!
//! - Keys are fetched on first use, not at start, so a gateway starts while an issuer is down.
//! - Cached keys are used until `jwks_refresh` has passed; the next token then waits for a
//!   refetch (bounded by `fetch_timeout` per request).
//! - A token whose `kid` is not cached triggers a refetch (key rotation), but at most once per
//!   `jwks_min_refresh`: tokens with made-up kids cannot make the gateway hammer the issuer.
//!   The same bound applies after a failed fetch, so a down issuer is not retried per token.
//! - Single flight: at most one fetch per issuer runs at a time, and the requests that waited
//!   for it use its result instead of fetching again.
//! - A failed refetch keeps the cached keys (logged as a warning). With nothing cached, the
//!   token cannot be verified: [`AuthError::Unavailable`].
//!
//! Fetches trust the web PKI roots plus the issuer's `ca_file`, follow no redirects, read at
//! most [`MAX_DOCUMENT_BYTES`], and go over https (http only to loopback hosts). The discovery
//! document must name the configured issuer, and its `jwks_uri` must be https too. The
//! `token_file` bearer token is sent only to the host of the configured URL, never to a host
//! a discovery document names.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{ACCEPT, AUTHORIZATION};
use http::{HeaderValue, Request, StatusCode, Uri};
use http_body_util::Empty;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use portcullis_config::{JwksLocation, JwtIssuer, is_loopback_host};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use serde::Deserialize;

use super::jwk::{JwksError, KeySet};
use super::{AuthError, AuthSetupError};
use crate::body::read_limited;

/// Largest discovery document or JWKS read. Real ones are a few KiB; this bounds what a
/// misbehaving issuer can make the gateway buffer and parse.
pub(super) const MAX_DOCUMENT_BYTES: u64 = 256 * 1024;

type FetchClient = Client<HttpsConnector<HttpConnector>, Empty<Bytes>>;

/// Where one issuer's keys come from, and the cache of them.
pub(super) struct KeySource {
    issuer: String,
    location: JwksLocation,
    client: FetchClient,
    token_file: Option<PathBuf>,
    fetch_timeout: Duration,
    refresh: Duration,
    min_refresh: Duration,
    cache: Mutex<Cache>,
    /// Held while a fetch runs (single flight).
    fetching: tokio::sync::Mutex<()>,
}

#[derive(Debug, Default)]
struct Cache {
    keys: Option<Arc<KeySet>>,
    /// When `keys` were fetched.
    fetched_at: Option<Instant>,
    /// When the last fetch, successful or not, finished.
    attempted_at: Option<Instant>,
    /// Counts finished fetches, so a request that waited for one knows it happened.
    generation: u64,
}

/// What a request does about the keys.
#[derive(Debug)]
enum Plan {
    Use(Arc<KeySet>),
    Fetch { generation: u64 },
    Unavailable,
}

/// Why a fetch failed (logged; never reaches a client).
#[derive(Debug, thiserror::Error)]
enum FetchError {
    #[error("timed out")]
    Timeout,
    #[error("request failed")]
    Request(#[source] hyper_util::client::legacy::Error),
    #[error("the request could not be built")]
    BadRequest(#[source] http::Error),
    #[error("answered HTTP {0}")]
    Status(StatusCode),
    #[error("body unreadable or over {MAX_DOCUMENT_BYTES} bytes")]
    Body,
    #[error("not a discovery document")]
    Discovery(#[source] serde_json::Error),
    #[error("the discovery document names another issuer")]
    IssuerMismatch,
    #[error("the discovery document's jwks_uri is not an https URL")]
    InsecureJwksUri,
    #[error(transparent)]
    Jwks(#[from] JwksError),
    #[error("reading token_file failed")]
    TokenFile(#[source] std::io::Error),
    #[error("token_file does not hold a valid header value")]
    TokenNotAHeader,
}

/// The members of an OpenID discovery document that are read.
#[derive(Debug, Deserialize)]
struct Discovery {
    issuer: String,
    jwks_uri: String,
}

impl KeySource {
    /// Builds the fetch client (reading `ca_file` now); fetches nothing.
    pub(super) fn new(settings: &JwtIssuer) -> Result<Self, AuthSetupError> {
        let mut http = HttpConnector::new();
        http.set_connect_timeout(Some(settings.fetch_timeout));
        http.set_nodelay(true);
        http.enforce_http(false);
        let tls = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls_config(settings)?)
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        Ok(Self {
            issuer: settings.issuer.clone(),
            location: settings.keys.clone(),
            client: Client::builder(TokioExecutor::new()).build(tls),
            token_file: settings.token_file.clone(),
            fetch_timeout: settings.fetch_timeout,
            refresh: settings.jwks_refresh,
            min_refresh: settings.jwks_min_refresh,
            cache: Mutex::new(Cache::default()),
            fetching: tokio::sync::Mutex::new(()),
        })
    }

    /// The keys to look for `kid` in, fetching them first when the module docs say so.
    pub(super) async fn keys_for(&self, kid: Option<&str>) -> Result<Arc<KeySet>, AuthError> {
        let generation = match self.plan(kid, Instant::now()) {
            Plan::Use(keys) => return Ok(keys),
            Plan::Unavailable => return Err(AuthError::Unavailable),
            Plan::Fetch { generation } => generation,
        };
        let _fetching = self.fetching.lock().await;
        let nobody_fetched = self.cache().generation == generation;
        if nobody_fetched {
            self.fetch_and_store().await;
        }
        self.cache().keys.clone().ok_or(AuthError::Unavailable)
    }

    fn cache(&self) -> MutexGuard<'_, Cache> {
        // The cache is always left consistent (fields are assigned, never half-updated).
        self.cache.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn plan(&self, kid: Option<&str>, now: Instant) -> Plan {
        let cache = self.cache();
        let may_fetch = cache
            .attempted_at
            .is_none_or(|at| now.duration_since(at) >= self.min_refresh);
        let Some(keys) = &cache.keys else {
            return if may_fetch {
                Plan::Fetch {
                    generation: cache.generation,
                }
            } else {
                Plan::Unavailable
            };
        };
        let stale = cache
            .fetched_at
            .is_none_or(|at| now.duration_since(at) >= self.refresh);
        let unknown_kid = kid.is_some_and(|kid| !keys.has_kid(kid));
        if (stale || unknown_kid) && may_fetch {
            Plan::Fetch {
                generation: cache.generation,
            }
        } else {
            Plan::Use(Arc::clone(keys))
        }
    }

    async fn fetch_and_store(&self) {
        let result = self.fetch().await;
        let now = Instant::now();
        let mut cache = self.cache();
        cache.generation += 1;
        cache.attempted_at = Some(now);
        match result {
            Ok(keys) => {
                if keys.len() == 0 {
                    tracing::warn!(issuer = %self.issuer, "the issuer's JWKS holds no usable key");
                } else {
                    tracing::debug!(issuer = %self.issuer, keys = keys.len(), "fetched the issuer's keys");
                }
                cache.keys = Some(Arc::new(keys));
                cache.fetched_at = Some(now);
            }
            Err(error) => tracing::warn!(
                issuer = %self.issuer,
                error = %error,
                cached_keys = cache.keys.is_some(),
                "fetching the issuer's keys failed"
            ),
        }
    }

    async fn fetch(&self) -> Result<KeySet, FetchError> {
        let jwks_uri = match &self.location {
            JwksLocation::Jwks(uri) => uri.clone(),
            JwksLocation::Discovery(uri) => self.discover(uri).await?,
        };
        let body = self.get(&jwks_uri).await?;
        Ok(KeySet::parse(&body)?)
    }

    async fn discover(&self, uri: &Uri) -> Result<Uri, FetchError> {
        let body = self.get(uri).await?;
        let document: Discovery = serde_json::from_slice(&body).map_err(FetchError::Discovery)?;
        if document.issuer != self.issuer {
            return Err(FetchError::IssuerMismatch);
        }
        document
            .jwks_uri
            .parse::<Uri>()
            .ok()
            .filter(is_fetchable)
            .ok_or(FetchError::InsecureJwksUri)
    }

    /// GETs `uri` and reads its 200 answer, all within the fetch timeout.
    async fn get(&self, uri: &Uri) -> Result<Bytes, FetchError> {
        let request = self.request(uri).await?;
        let exchange = async {
            let response = self
                .client
                .request(request)
                .await
                .map_err(FetchError::Request)?;
            if response.status() != StatusCode::OK {
                return Err(FetchError::Status(response.status()));
            }
            read_limited(
                response.into_body(),
                MAX_DOCUMENT_BYTES,
                self.fetch_timeout,
                None,
            )
            .await
            .map_err(|_| FetchError::Body)
        };
        tokio::time::timeout(self.fetch_timeout, exchange)
            .await
            .map_err(|_| FetchError::Timeout)?
    }

    async fn request(&self, uri: &Uri) -> Result<Request<Empty<Bytes>>, FetchError> {
        let mut request = Request::get(uri.clone())
            // kube-apiserver serves its JWKS only as `application/jwk-set+json` (406 otherwise).
            .header(ACCEPT, "application/jwk-set+json, application/json");
        if let Some(path) = &self.token_file
            && same_origin(uri, self.configured_uri())
        {
            // Re-read on every fetch: projected service-account tokens rotate.
            let token = tokio::fs::read_to_string(path)
                .await
                .map_err(FetchError::TokenFile)?;
            let mut value = HeaderValue::try_from(format!("Bearer {}", token.trim()))
                .map_err(|_| FetchError::TokenNotAHeader)?;
            value.set_sensitive(true);
            request = request.header(AUTHORIZATION, value);
        }
        request.body(Empty::new()).map_err(FetchError::BadRequest)
    }

    fn configured_uri(&self) -> &Uri {
        match &self.location {
            JwksLocation::Discovery(uri) | JwksLocation::Jwks(uri) => uri,
        }
    }
}

/// The TLS client settings: web PKI roots plus the issuer's `ca_file`, ring, HTTP/1.1.
fn tls_config(settings: &JwtIssuer) -> Result<rustls::ClientConfig, AuthSetupError> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(path) = &settings.ca_file {
        let pem = std::fs::read(path).map_err(|source| AuthSetupError::CaFile {
            issuer: settings.issuer.clone(),
            path: path.clone(),
            source,
        })?;
        let no_certificates = || AuthSetupError::CaCertificates {
            issuer: settings.issuer.clone(),
            path: path.clone(),
        };
        let mut added = 0;
        for certificate in CertificateDer::pem_slice_iter(&pem) {
            let certificate = certificate.map_err(|_| no_certificates())?;
            roots.add(certificate).map_err(|_| no_certificates())?;
            added += 1;
        }
        if added == 0 {
            return Err(no_certificates());
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|source| AuthSetupError::Tls {
            issuer: settings.issuer.clone(),
            source,
        })?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

/// https with a host, or http to a loopback host.
fn is_fetchable(uri: &Uri) -> bool {
    match (uri.scheme_str(), uri.host()) {
        (Some("https"), Some(host)) => !host.is_empty(),
        (Some("http"), Some(host)) => is_loopback_host(host),
        _ => false,
    }
}

fn same_origin(a: &Uri, b: &Uri) -> bool {
    a.scheme() == b.scheme() && a.authority() == b.authority()
}

#[cfg(test)]
mod tests {
    use super::*;
    use portcullis_config::JwtAlgorithm;

    fn settings(location: JwksLocation) -> JwtIssuer {
        JwtIssuer {
            keys: location,
            algorithms: vec![JwtAlgorithm::Es256],
            ..super::super::test_issuer()
        }
    }

    fn source() -> KeySource {
        KeySource::new(&settings(JwksLocation::Jwks(
            "https://idp.example/jwks".parse().unwrap(),
        )))
        .unwrap()
    }

    fn store(source: &KeySource, keys: Option<KeySet>, fetched: Instant, attempted: Instant) {
        let mut cache = source.cache();
        cache.keys = keys.map(Arc::new);
        cache.fetched_at = Some(fetched);
        cache.attempted_at = Some(attempted);
        cache.generation += 1;
    }

    fn one_key() -> KeySet {
        KeySet::parse(br#"{"keys":[{"kty":"OKP","crv":"Ed25519","kid":"k","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]}"#).unwrap()
    }

    #[test]
    fn plans_follow_the_refresh_rules() {
        let source = source();
        let t0 = Instant::now();
        assert!(matches!(
            source.plan(None, t0),
            Plan::Fetch { generation: 0 }
        ));
        // A failed first fetch: nothing cached, retried only after min_refresh.
        store(&source, None, t0, t0);
        assert!(matches!(
            source.plan(None, t0 + Duration::from_secs(1)),
            Plan::Unavailable
        ));
        assert!(matches!(
            source.plan(None, t0 + Duration::from_secs(10)),
            Plan::Fetch { .. }
        ));
        store(&source, Some(one_key()), t0, t0);
        let soon = t0 + Duration::from_secs(1);
        assert!(matches!(source.plan(Some("k"), soon), Plan::Use(_)));
        assert!(
            matches!(source.plan(Some("other"), soon), Plan::Use(_)),
            "rate limited"
        );
        let later = t0 + Duration::from_secs(11);
        assert!(matches!(source.plan(Some("k"), later), Plan::Use(_)));
        assert!(matches!(
            source.plan(Some("other"), later),
            Plan::Fetch { .. }
        ));
        let stale = t0 + Duration::from_secs(300);
        assert!(matches!(source.plan(Some("k"), stale), Plan::Fetch { .. }));
        // A failed refresh keeps the keys and is not retried at once.
        store(&source, Some(one_key()), t0, stale);
        assert!(matches!(
            source.plan(Some("k"), stale + Duration::from_secs(1)),
            Plan::Use(_)
        ));
    }

    #[test]
    fn fetch_urls_must_be_https_or_loopback() {
        for (url, ok) in [
            ("https://idp.example/jwks", true),
            ("http://127.0.0.1:8080/jwks", true),
            ("http://localhost/jwks", true),
            ("http://[::1]:9/jwks", true),
            ("http://idp.example/jwks", false),
            ("ftp://idp.example/jwks", false),
            ("/jwks", false),
        ] {
            assert_eq!(is_fetchable(&url.parse().unwrap()), ok, "{url}");
        }
        let a: Uri = "https://a.example/x".parse().unwrap();
        assert!(same_origin(&a, &"https://a.example/y".parse().unwrap()));
        assert!(!same_origin(
            &a,
            &"https://a.example:8443/x".parse().unwrap()
        ));
        assert!(!same_origin(&a, &"http://a.example/x".parse().unwrap()));
    }

    #[test]
    fn ca_files_are_read_at_setup() {
        let dir = tempfile::tempdir().unwrap();
        let mut with_ca = settings(JwksLocation::Jwks(
            "https://idp.example/jwks".parse().unwrap(),
        ));
        with_ca.ca_file = Some(dir.path().join("missing.pem"));
        let error = KeySource::new(&with_ca).err().unwrap().to_string();
        assert!(error.contains("ca_file"), "{error}");
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        with_ca.ca_file = Some(empty);
        let error = KeySource::new(&with_ca).err().unwrap().to_string();
        assert!(error.contains("no valid PEM certificate"), "{error}");
    }
}
