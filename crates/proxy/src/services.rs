//! Process-wide services that outlive config reloads: the store, held approvals, the audit
//! log and the rate-limit counters. They are built once at start from the config (`Services::start`) and handed to the
//! [`crate::Gateway`]; changing their settings needs a restart.

use std::sync::Arc;

use portcullis_config::{Config, LimitBackend, RedisUrl, StoreSettings};
use portcullis_store::limits::Limiter;
use portcullis_store::{Store, StoreConfig};
use portcullis_telemetry::Metrics;

use crate::approvals::ApprovalHub;
use crate::audit::AuditLog;

/// How long shutdown waits for the last spans to be exported. Raising it delays exit when the
/// collector is slow or down; lowering it loses the spans of the last exchanges.
const TRACE_FLUSH_BOUND: std::time::Duration = std::time::Duration::from_secs(5);

/// The services a gateway uses; each is optional (a library user or `mcp stdio` runs without).
#[derive(Default, Clone)]
pub struct Services {
    /// The durable store, when approvals or the audit log need one.
    pub store: Option<Store>,
    /// Held approvals.
    pub approvals: Option<Arc<ApprovalHub>>,
    /// The audit log.
    pub audit: Option<Arc<AuditLog>>,
    /// Rate-limit and token-budget counters (memory or Redis).
    pub limiter: Option<Arc<Limiter>>,
    /// Trace export (`telemetry.tracing`), when enabled.
    pub traces: Option<crate::trace::Traces>,
}

/// Why the services could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServicesError {
    /// The PostgreSQL URL could not be read.
    #[error("store URL: {0}")]
    StoreUrl(#[source] SecretError),
    /// The store could not be opened or migrated.
    #[error(transparent)]
    Store(#[from] portcullis_store::Error),
    /// The audit log could not start.
    #[error("audit log: {0}")]
    Audit(#[from] crate::audit::AuditError),
    /// The webhook URL could not be read.
    #[error("approvals.webhook: {0}")]
    Webhook(String),
    /// The Redis URL could not be read.
    #[error("rate_limits.redis: {0}")]
    RedisUrl(#[source] SecretError),
    /// Redis could not be reached.
    #[error("rate_limits.redis: {0}")]
    Redis(#[source] portcullis_store::limits::LimitError),
    /// Trace export could not start.
    #[error(transparent)]
    Traces(#[from] crate::trace::TracesError),
}

impl Services {
    /// No store, no approvals (calls needing approval are refused), no audit log.
    pub fn none() -> Self {
        Self::default()
    }

    /// Opens the store (when approvals or the audit log need it), starts the audit writer and
    /// the approval hub, as `config` says. Fails rather than starting without what the config
    /// asks for: a gateway that cannot audit or hold calls does not serve.
    pub async fn start(config: &Config, metrics: &Arc<Metrics>) -> Result<Self, ServicesError> {
        let needs_store = config.approvals.enabled || config.audit.uses_store();
        let store = if needs_store {
            let store = Store::connect(&store_config(&config.store)?).await?;
            tracing::info!(backend = store.backend(), "store opened");
            Some(store)
        } else {
            None
        };
        let audit = if config.audit.enabled {
            Some(AuditLog::start(&config.audit, store.clone(), metrics.clone()).await?)
        } else {
            None
        };
        let approvals = match &store {
            Some(store) if config.approvals.enabled => {
                let webhook_url = config
                    .approvals
                    .webhook
                    .as_ref()
                    .map(|hook| crate::approvals::webhook_url(&hook.url))
                    .transpose()
                    .map_err(ServicesError::Webhook)?;
                let instance = audit
                    .as_ref()
                    .map(|log| log.instance().to_owned())
                    .unwrap_or_else(|| format!("pid-{}", std::process::id()));
                Some(ApprovalHub::start(
                    store.clone(),
                    config.approvals.clone(),
                    instance,
                    webhook_url,
                    metrics.clone(),
                ))
            }
            _ => None,
        };
        let limiter = Some(Arc::new(start_limiter(config).await?));
        let traces = crate::trace::Traces::start(&config.telemetry.tracing)?;
        Ok(Self {
            store,
            approvals,
            audit,
            limiter,
            traces,
        })
    }

    /// Services with only in-memory rate-limit counters (tests and library users).
    pub fn with_memory_limiter(mut self, max_keys: usize) -> Self {
        self.limiter = Some(Arc::new(Limiter::memory(max_keys)));
        self
    }

    /// Flushes the audit log and closes the store (at shutdown, after the drain).
    pub async fn shutdown(&self) {
        if let Some(audit) = &self.audit {
            audit.shutdown().await;
        }
        if let Some(store) = &self.store {
            store.close().await;
        }
        if let Some(traces) = &self.traces {
            traces.shutdown(TRACE_FLUSH_BOUND).await;
        }
    }
}

/// The counters `rate_limits.backend` names. Redis is connected now: a replica that cannot
/// reach the shared counters does not start (at run time `rate_limits.on_error` decides).
async fn start_limiter(config: &Config) -> Result<Limiter, ServicesError> {
    let limits = &config.rate_limits;
    match &limits.backend {
        LimitBackend::Memory => Ok(Limiter::memory(limits.max_keys)),
        LimitBackend::Redis {
            url,
            key_prefix,
            timeout,
        } => {
            let url = match url {
                RedisUrl::Inline(url) => url.clone(),
                RedisUrl::Secret(source) => {
                    read_text_secret(source).map_err(ServicesError::RedisUrl)?
                }
            };
            let limiter = Limiter::redis(&url, key_prefix, *timeout)
                .await
                .map_err(ServicesError::Redis)?;
            tracing::info!(backend = "redis", "rate-limit counters connected");
            Ok(limiter)
        }
    }
}

/// The store crate's connection settings, with the PostgreSQL URL read from its secret.
pub fn store_config(settings: &StoreSettings) -> Result<StoreConfig, ServicesError> {
    Ok(match settings {
        StoreSettings::Sqlite { path } => StoreConfig::Sqlite { path: path.clone() },
        StoreSettings::Postgres {
            url,
            schema,
            max_connections,
        } => StoreConfig::Postgres {
            url: read_text_secret(url).map_err(ServicesError::StoreUrl)?,
            max_connections: *max_connections,
            schema: schema.clone(),
        },
    })
}

impl std::fmt::Debug for Services {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Services")
            .field("store", &self.store.as_ref().map(Store::backend))
            .field("approvals", &self.approvals.is_some())
            .field("audit", &self.audit.is_some())
            .field("limiter", &self.limiter.as_ref().map(|l| l.backend()))
            .field("traces", &self.traces.is_some())
            .finish()
    }
}

/// Why a secret could not be read.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// The environment variable is unset or empty.
    #[error("environment variable {0} is not set")]
    MissingEnv(String),
    /// The file could not be read.
    #[error("{path}: {source}")]
    File {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// Reads a secret's bytes from an environment variable or a file (a mounted Secret). Text
/// secrets are trimmed by the caller; binary ones (keys) are used as read.
pub(crate) fn read_secret(
    source: &portcullis_config::CredentialSource,
) -> Result<Vec<u8>, SecretError> {
    match source {
        portcullis_config::CredentialSource::Env(var) => std::env::var(var)
            .ok()
            .filter(|v| !v.trim().is_empty())
            .map(String::into_bytes)
            .ok_or_else(|| SecretError::MissingEnv(var.clone())),
        portcullis_config::CredentialSource::File(path) => {
            std::fs::read(path).map_err(|source| SecretError::File {
                path: path.clone(),
                source,
            })
        }
    }
}

/// Reads a text secret (a URL, a token), trimmed.
pub(crate) fn read_text_secret(
    source: &portcullis_config::CredentialSource,
) -> Result<String, SecretError> {
    let bytes = read_secret(source)?;
    Ok(String::from_utf8_lossy(&bytes).trim().to_owned())
}
