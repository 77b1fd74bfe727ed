//! A [`Snapshot`] is everything one exchange needs that comes from configuration: the
//! validated [`Config`], one pooled HTTP client per upstream, resolved credentials, metric
//! label values and the concurrency limiter. It is built off the data path (at start and on
//! reload), never mutated, and swapped whole.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use http::HeaderValue;
use hyper_util::client::legacy::connect::HttpConnector;
use portcullis_config::{Config, CredentialSource, Upstream, UpstreamId};

use crate::services::SecretError;
use tokio::sync::Semaphore;

use crate::client::UpstreamClient;
use crate::guard::{GuardError, GuardRuntime};

/// A snapshot could not be built (I/O on credentials, TLS setup).
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    /// An upstream's API key environment variable is unset or empty.
    #[error("upstreams[{index}].api_key_env: environment variable `{var}` is not set")]
    MissingEnv {
        /// Upstream index.
        index: usize,
        /// Variable name.
        var: String,
    },
    /// An upstream's API key file could not be read.
    #[error("upstreams[{index}].api_key_file: cannot read `{}`", path.display())]
    KeyFile {
        /// Upstream index.
        index: usize,
        /// File path.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The upstream's host cannot be sent as a `host` header.
    #[error("upstreams[{index}].url: the host is not a valid header value")]
    HostNotAHeader {
        /// Upstream index.
        index: usize,
    },
    /// The key cannot be sent as a header value.
    #[error("upstreams[{index}]: the API key contains characters not allowed in a header")]
    KeyNotAHeader {
        /// Upstream index.
        index: usize,
    },
    /// TLS roots or protocol setup failed.
    #[error("tls setup failed")]
    Tls(#[source] rustls::Error),
    /// The policy bundle or the detectors did not load.
    #[error(transparent)]
    Guard(#[from] GuardError),
    /// A caller credential (API key secret) could not be read.
    #[error(transparent)]
    Auth(#[from] crate::auth::AuthSetupError),
}

/// One upstream, ready to use.
#[derive(Debug)]
pub(crate) struct UpstreamRuntime {
    pub(crate) name: Arc<str>,
    pub(crate) config: Upstream,
    pub(crate) client: Arc<UpstreamClient>,
    /// The full header value (`Bearer …` for `authorization`), marked sensitive.
    pub(crate) credential: Option<HeaderValue>,
}

/// Configuration plus everything derived from it. See the module docs.
#[derive(Debug)]
pub struct Snapshot {
    config: Config,
    upstreams: Vec<UpstreamRuntime>,
    model_labels: HashMap<String, Arc<str>>,
    limiter: Arc<Semaphore>,
    unrouted_label: Arc<str>,
    guard: GuardRuntime,
    authenticator: crate::auth::Authenticator,
}

impl Snapshot {
    /// Builds a snapshot: resolves credentials (environment, files), creates the upstream
    /// clients, reads and compiles the policy bundle and loads the detectors. Does not connect
    /// to anything.
    pub fn build(config: Config) -> Result<Self, SnapshotError> {
        let guard = GuardRuntime::build(&config)?;
        let authenticator = crate::auth::Authenticator::new(&config.auth)?;
        let mut upstreams = Vec::with_capacity(config.upstreams.len());
        for (index, upstream) in config.upstreams.iter().enumerate() {
            let credential = upstream
                .credential
                .as_ref()
                .map(|source| resolve_credential(index, source, upstream))
                .transpose()?;
            upstreams.push(UpstreamRuntime {
                name: Arc::from(upstream.name.as_str()),
                client: Arc::new(build_client(index, upstream)?),
                credential,
                config: upstream.clone(),
            });
        }
        let model_labels = config
            .model_rules()
            .map(|rule| (rule.to_string(), Arc::from(rule)))
            .collect();
        let limiter = Arc::new(Semaphore::new(
            config.limits.max_concurrent_requests as usize,
        ));
        Ok(Self {
            config,
            upstreams,
            model_labels,
            limiter,
            unrouted_label: Arc::from("-"),
            guard,
            authenticator,
        })
    }

    /// The validated configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    pub(crate) fn upstream(&self, id: UpstreamId) -> Option<&UpstreamRuntime> {
        self.upstreams.get(id.0)
    }

    pub(crate) fn upstreams(&self) -> &[UpstreamRuntime] {
        &self.upstreams
    }

    /// The bounded metric label for a routing rule.
    pub(crate) fn model_label(&self, rule: Option<&str>) -> Arc<str> {
        rule.and_then(|r| self.model_labels.get(r))
            .cloned()
            .unwrap_or_else(|| self.unrouted_label.clone())
    }

    /// Who may call, and how they prove it.
    pub(crate) fn authenticator(&self) -> &crate::auth::Authenticator {
        &self.authenticator
    }

    pub(crate) fn limiter(&self) -> &Arc<Semaphore> {
        &self.limiter
    }

    /// Detectors, the compiled policy and the failure mode.
    pub(crate) fn guard(&self) -> &GuardRuntime {
        &self.guard
    }
}

fn resolve_credential(
    index: usize,
    source: &CredentialSource,
    upstream: &Upstream,
) -> Result<HeaderValue, SnapshotError> {
    let key = crate::services::read_text_secret(source).map_err(|error| match error {
        SecretError::MissingEnv(var) => SnapshotError::MissingEnv { index, var },
        SecretError::File { path, source } => SnapshotError::KeyFile {
            index,
            path,
            source,
        },
    })?;
    let key = key.as_str();
    let text = if upstream.api_key_header == http::header::AUTHORIZATION {
        format!("Bearer {key}")
    } else {
        key.to_string()
    };
    let mut value =
        HeaderValue::try_from(text).map_err(|_| SnapshotError::KeyNotAHeader { index })?;
    value.set_sensitive(true);
    Ok(value)
}

fn build_client(index: usize, upstream: &Upstream) -> Result<UpstreamClient, SnapshotError> {
    let mut http = HttpConnector::new();
    http.set_connect_timeout(Some(upstream.timeouts.connect));
    http.set_nodelay(true);
    http.enforce_http(false);
    let tls = hyper_rustls::HttpsConnectorBuilder::new()
        .with_provider_and_webpki_roots(rustls::crypto::ring::default_provider())
        .map_err(SnapshotError::Tls)?
        .https_or_http()
        .enable_http1()
        .wrap_connector(http);
    let connect_uri = http::Uri::builder()
        .scheme(upstream.scheme.clone())
        .authority(upstream.authority.clone())
        .path_and_query("/")
        .build()
        .map_err(|_| SnapshotError::HostNotAHeader { index })?;
    let host = HeaderValue::from_str(upstream.authority.as_str())
        .map_err(|_| SnapshotError::HostNotAHeader { index })?;
    Ok(UpstreamClient::new(
        tls,
        connect_uri,
        host,
        upstream.timeouts.connect,
        upstream.max_idle_connections,
    ))
}
