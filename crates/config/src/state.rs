//! The validated settings of durable state and the people around it: the store, approvals, the
//! audit log and the admin listener. Secrets (the PostgreSQL URL, the webhook URL, admin tokens,
//! the signing key) are named here by where they are read from; reading them is the caller's.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::ConfigError;
use crate::raw::{
    RawAdmin, RawAdminRole, RawApprovals, RawAudit, RawAuditContent, RawAuditOnFull, RawAuditSink,
    RawStore, RawStoreBackend, RawWebhook,
};
use crate::validated::{CredentialSource, millis};

/// Where durable state lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreSettings {
    /// A SQLite file.
    Sqlite {
        /// Database file.
        path: PathBuf,
    },
    /// A PostgreSQL server.
    Postgres {
        /// Where the URL is read from.
        url: CredentialSource,
        /// Schema for the tables.
        schema: Option<String>,
        /// Pool size.
        max_connections: u32,
    },
}

/// Approval settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Approvals {
    /// Hold calls (`false`: refuse at once).
    pub enabled: bool,
    /// Bound on one held call.
    pub timeout: Duration,
    /// Most held calls in this process.
    pub max_pending: usize,
    /// SSE keep-alive comment interval.
    pub keepalive: Duration,
    /// Store re-read interval of a held call.
    pub poll: Duration,
    /// Webhook on each new approval.
    pub webhook: Option<Webhook>,
}

/// Where the webhook URL comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WebhookUrl {
    /// Written in the config.
    Inline(String),
    /// A secret.
    Secret(CredentialSource),
}

/// A Slack-compatible webhook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Webhook {
    /// The URL.
    pub url: WebhookUrl,
    /// Console base URL for links.
    pub console_url: Option<String>,
    /// Bound on one delivery.
    pub timeout: Duration,
}

/// An audit sink.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuditSink {
    /// The store.
    Store,
    /// A JSONL file.
    Jsonl(PathBuf),
    /// Standard output.
    Stdout,
}

/// What audit events keep of texts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuditContent {
    /// Hash and length.
    Hash,
    /// Hash and a redacted excerpt of at most this many characters.
    Excerpt(usize),
    /// Hash and the raw text.
    Raw,
}

/// When events cannot be queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuditOnFull {
    /// Refuse the exchange.
    Block,
    /// Count and go on.
    Drop,
}

/// Where the checkpoint signing key is read from.
pub type SigningKeySource = CredentialSource;

/// Audit log settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Audit {
    /// Write events.
    pub enabled: bool,
    /// Sinks, without repeats.
    pub sinks: Vec<AuditSink>,
    /// Content mode.
    pub content: AuditContent,
    /// Queue bound.
    pub queue_capacity: usize,
    /// Full-queue behaviour.
    pub on_full: AuditOnFull,
    /// Signing key, if checkpoints are signed.
    pub signing_key: Option<SigningKeySource>,
    /// Checkpoint after this many records.
    pub checkpoint_every_records: u64,
    /// ... or after this long.
    pub checkpoint_every: Duration,
    /// Chain name; `None`: host name plus start time.
    pub instance: Option<String>,
}

impl Audit {
    /// Whether the store is one of the sinks.
    pub fn uses_store(&self) -> bool {
        self.enabled && self.sinks.contains(&AuditSink::Store)
    }
}

/// Admin role, ordered by power.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum AdminRole {
    /// Read.
    Viewer,
    /// Read, approve, deny.
    Approver,
    /// Everything.
    Admin,
}

impl AdminRole {
    /// Display name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Viewer => "viewer",
            Self::Approver => "approver",
            Self::Admin => "admin",
        }
    }
}

/// How an admin token is known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AdminTokenSource {
    /// Its SHA-256.
    Sha256([u8; 32]),
    /// The token itself, from a secret.
    Secret(CredentialSource),
}

/// One admin credential.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminToken {
    /// The approver's name.
    pub name: String,
    /// Role.
    pub role: AdminRole,
    /// Where the token is known from.
    pub source: AdminTokenSource,
}

/// The admin listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Admin {
    /// Listen address; `None`: no admin listener.
    pub listen: Option<SocketAddr>,
    /// Credentials.
    pub tokens: Vec<AdminToken>,
    /// Serve the console.
    pub console: bool,
    /// Console session lifetime.
    pub session_ttl: Duration,
}

pub(crate) fn validate_store(errors: &mut Vec<ConfigError>, raw: &RawStore) -> StoreSettings {
    match raw.backend.unwrap_or(RawStoreBackend::Sqlite) {
        RawStoreBackend::Sqlite => {
            for (field, set) in [
                ("url_env", raw.url_env.is_some()),
                ("url_file", raw.url_file.is_some()),
                ("schema", raw.schema.is_some()),
                ("max_connections", raw.max_connections.is_some()),
            ] {
                if set {
                    errors.push(ConfigError::new(
                        format!("store.{field}"),
                        "only for `backend: postgres`",
                    ));
                }
            }
            let path = raw.path.clone().unwrap_or_else(|| "portcullis.db".into());
            if path.is_empty() {
                errors.push(ConfigError::new("store.path", "must not be empty"));
            }
            StoreSettings::Sqlite {
                path: PathBuf::from(path),
            }
        }
        RawStoreBackend::Postgres => {
            if raw.path.is_some() {
                errors.push(ConfigError::new("store.path", "only for `backend: sqlite`"));
            }
            let url = secret_source(
                errors,
                "store",
                ("url_env", &raw.url_env),
                ("url_file", &raw.url_file),
            )
            .unwrap_or_else(|| {
                errors.push(ConfigError::new(
                    "store.url_env",
                    "`backend: postgres` needs url_env or url_file",
                ));
                CredentialSource::Env(String::new())
            });
            if let Some(schema) = &raw.schema {
                let ok = !schema.is_empty()
                    && schema.len() <= 63
                    && schema
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
                    && !schema.as_bytes()[0].is_ascii_digit();
                if !ok {
                    errors.push(ConfigError::new(
                        "store.schema",
                        "must be 1 to 63 lowercase letters, digits or `_`, not starting with a digit",
                    ));
                }
            }
            let max_connections = raw.max_connections.unwrap_or(8);
            if max_connections == 0 || max_connections > 1000 {
                errors.push(ConfigError::new(
                    "store.max_connections",
                    "must be between 1 and 1000",
                ));
            }
            StoreSettings::Postgres {
                url,
                schema: raw.schema.clone(),
                max_connections,
            }
        }
    }
}

pub(crate) fn validate_approvals(errors: &mut Vec<ConfigError>, raw: &RawApprovals) -> Approvals {
    let max_pending = raw.max_pending.unwrap_or(256);
    if max_pending == 0 || max_pending > 100_000 {
        errors.push(ConfigError::new(
            "approvals.max_pending",
            "must be between 1 and 100000",
        ));
    }
    Approvals {
        enabled: raw.enabled.unwrap_or(true),
        timeout: millis(errors, "approvals.timeout_ms", raw.timeout_ms, 300_000),
        max_pending: max_pending as usize,
        keepalive: millis(errors, "approvals.keepalive_ms", raw.keepalive_ms, 15_000),
        poll: millis(errors, "approvals.poll_ms", raw.poll_ms, 500),
        webhook: raw
            .webhook
            .as_ref()
            .and_then(|hook| validate_webhook(errors, hook)),
    }
}

fn validate_webhook(errors: &mut Vec<ConfigError>, raw: &RawWebhook) -> Option<Webhook> {
    let secret = secret_source(
        errors,
        "approvals.webhook",
        ("url_env", &raw.url_env),
        ("url_file", &raw.url_file),
    );
    let url = match (&raw.url, secret) {
        (Some(_), Some(_)) => {
            errors.push(ConfigError::new(
                "approvals.webhook.url",
                "set one of url, url_env and url_file",
            ));
            return None;
        }
        (Some(url), None) => {
            if !is_http_url(url) {
                errors.push(ConfigError::new(
                    "approvals.webhook.url",
                    "must be an http:// or https:// URL with a host",
                ));
            }
            WebhookUrl::Inline(url.clone())
        }
        (None, Some(source)) => WebhookUrl::Secret(source),
        (None, None) => {
            errors.push(ConfigError::new(
                "approvals.webhook.url",
                "set one of url, url_env and url_file",
            ));
            return None;
        }
    };
    if let Some(console) = &raw.console_url
        && !is_http_url(console)
    {
        errors.push(ConfigError::new(
            "approvals.webhook.console_url",
            "must be an http:// or https:// URL with a host",
        ));
    }
    Some(Webhook {
        url,
        console_url: raw
            .console_url
            .as_ref()
            .map(|u| u.trim_end_matches('/').to_owned()),
        timeout: millis(
            errors,
            "approvals.webhook.timeout_ms",
            raw.timeout_ms,
            5_000,
        ),
    })
}

/// Whether `url` parses as an absolute http(s) URL with a host.
pub(crate) fn is_http_url(url: &str) -> bool {
    url.parse::<http::Uri>().is_ok_and(|uri| {
        matches!(uri.scheme_str(), Some("http" | "https")) && uri.authority().is_some()
    })
}

pub(crate) fn validate_audit(errors: &mut Vec<ConfigError>, raw: &RawAudit) -> Audit {
    let mut sinks = Vec::new();
    let raw_sinks = raw
        .sinks
        .clone()
        .unwrap_or_else(|| vec![RawAuditSink::Store]);
    for (i, sink) in raw_sinks.iter().enumerate() {
        let sink = match sink {
            RawAuditSink::Store => AuditSink::Store,
            RawAuditSink::Stdout => AuditSink::Stdout,
            RawAuditSink::Jsonl => match raw.jsonl_path.as_deref() {
                Some(path) if !path.is_empty() => AuditSink::Jsonl(PathBuf::from(path)),
                _ => {
                    errors.push(ConfigError::new(
                        format!("audit.sinks[{i}]"),
                        "the `jsonl` sink needs audit.jsonl_path",
                    ));
                    continue;
                }
            },
        };
        if sinks.contains(&sink) {
            errors.push(ConfigError::new(
                format!("audit.sinks[{i}]"),
                "listed twice",
            ));
        } else {
            sinks.push(sink);
        }
    }
    if raw.jsonl_path.is_some() && !raw_sinks.contains(&RawAuditSink::Jsonl) {
        errors.push(ConfigError::new(
            "audit.jsonl_path",
            "set, but `jsonl` is not in audit.sinks",
        ));
    }
    let excerpt_chars = raw.excerpt_chars.unwrap_or(200);
    if excerpt_chars == 0 || excerpt_chars > 100_000 {
        errors.push(ConfigError::new(
            "audit.excerpt_chars",
            "must be between 1 and 100000",
        ));
    }
    let content = match raw.content.unwrap_or(RawAuditContent::Excerpt) {
        RawAuditContent::Hash => AuditContent::Hash,
        RawAuditContent::Excerpt => AuditContent::Excerpt(excerpt_chars as usize),
        RawAuditContent::Raw => AuditContent::Raw,
    };
    let queue_capacity = raw.queue_capacity.unwrap_or(10_000);
    if queue_capacity == 0 || queue_capacity > 10_000_000 {
        errors.push(ConfigError::new(
            "audit.queue_capacity",
            "must be between 1 and 10000000",
        ));
    }
    let every_records = raw.checkpoint_every_records.unwrap_or(1000);
    if every_records == 0 {
        errors.push(ConfigError::new(
            "audit.checkpoint_every_records",
            "must be at least 1",
        ));
    }
    if let Some(instance) = &raw.instance {
        let ok = !instance.is_empty()
            && instance.len() <= 128
            && instance
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'));
        if !ok {
            errors.push(ConfigError::new(
                "audit.instance",
                "must be 1 to 128 letters, digits, `-`, `_`, `.` or `:`",
            ));
        }
    }
    Audit {
        enabled: raw.enabled.unwrap_or(true),
        sinks,
        content,
        queue_capacity: queue_capacity as usize,
        on_full: match raw.on_full.unwrap_or(RawAuditOnFull::Block) {
            RawAuditOnFull::Block => AuditOnFull::Block,
            RawAuditOnFull::Drop => AuditOnFull::Drop,
        },
        signing_key: secret_source(
            errors,
            "audit",
            ("signing_key_env", &raw.signing_key_env),
            ("signing_key_file", &raw.signing_key_file),
        ),
        checkpoint_every_records: u64::from(every_records.max(1)),
        checkpoint_every: millis(
            errors,
            "audit.checkpoint_every_ms",
            raw.checkpoint_every_ms,
            10_000,
        ),
        instance: raw.instance.clone(),
    }
}

pub(crate) fn validate_admin(errors: &mut Vec<ConfigError>, raw: &RawAdmin) -> Admin {
    let listen = raw.listen.as_deref().and_then(|text| {
        text.parse::<SocketAddr>()
            .map_err(|_| {
                errors.push(ConfigError::new(
                    "admin.listen",
                    format!("`{text}` is not an ip:port address"),
                ))
            })
            .ok()
    });
    let mut tokens = Vec::new();
    for (i, token) in raw.tokens.iter().enumerate() {
        let at = format!("admin.tokens[{i}]");
        let name_ok = !token.name.is_empty()
            && token.name.len() <= 64
            && token
                .name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'@'));
        if !name_ok {
            errors.push(ConfigError::new(
                format!("{at}.name"),
                "must be 1 to 64 letters, digits, `-`, `_`, `.` or `@`",
            ));
        }
        if raw.tokens[..i].iter().any(|t| t.name == token.name) {
            errors.push(ConfigError::new(
                format!("{at}.name"),
                format!("`{}` is used twice", token.name),
            ));
        }
        let secret = secret_source(
            errors,
            &at,
            ("token_env", &token.token_env),
            ("token_file", &token.token_file),
        );
        let source = match (&token.sha256, secret) {
            (Some(hex), None) => match portcullis_core::hex::decode::<32>(hex) {
                Some(digest) => AdminTokenSource::Sha256(digest),
                None => {
                    errors.push(ConfigError::new(
                        format!("{at}.sha256"),
                        "must be 64 hex digits",
                    ));
                    continue;
                }
            },
            (None, Some(source)) => AdminTokenSource::Secret(source),
            _ => {
                errors.push(ConfigError::new(
                    at.clone(),
                    "set exactly one of sha256, token_env and token_file",
                ));
                continue;
            }
        };
        tokens.push(AdminToken {
            name: token.name.clone(),
            role: match token.role {
                RawAdminRole::Viewer => AdminRole::Viewer,
                RawAdminRole::Approver => AdminRole::Approver,
                RawAdminRole::Admin => AdminRole::Admin,
            },
            source,
        });
    }
    if listen.is_some() && raw.tokens.is_empty() {
        errors.push(ConfigError::new(
            "admin.tokens",
            "the admin listener needs at least one token",
        ));
    }
    Admin {
        listen,
        tokens,
        console: raw.console.unwrap_or(true),
        session_ttl: millis(
            errors,
            "admin.session_ttl_ms",
            raw.session_ttl_ms,
            28_800_000,
        ),
    }
}

/// One of an `_env` / `_file` pair, or none; both set is an error. Shared by every secret in
/// the config (upstream API keys, the store URL, the webhook URL, admin tokens, the signing key).
pub(crate) fn secret_source(
    errors: &mut Vec<ConfigError>,
    at: &str,
    (env_key, env): (&str, &Option<String>),
    (file_key, file): (&str, &Option<String>),
) -> Option<CredentialSource> {
    match (env, file) {
        (Some(_), Some(_)) => {
            errors.push(ConfigError::new(
                format!("{at}.{env_key}"),
                format!("set either {env_key} or {file_key}, not both"),
            ));
            None
        }
        (Some(var), None) if var.is_empty() || var.contains(['=', '\0']) => {
            errors.push(ConfigError::new(
                format!("{at}.{env_key}"),
                "not a valid environment variable name",
            ));
            None
        }
        (Some(var), None) => Some(CredentialSource::Env(var.clone())),
        (None, Some(path)) if path.is_empty() => {
            errors.push(ConfigError::new(
                format!("{at}.{file_key}"),
                "must not be empty",
            ));
            None
        }
        (None, Some(path)) => Some(CredentialSource::File(PathBuf::from(path))),
        (None, None) => None,
    }
}
