//! The validated configuration the data path reads. Building one proves that addresses parse,
//! names resolve and limits are in range; nothing here can fail at request time.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use http::header::{HeaderName, HeaderValue};
use http::uri::{Authority, Scheme};

use crate::guard::{self, Guard};
use crate::mcp::{self, Mcp};
use crate::raw::{RawConfig, RawUpstream};
use crate::state::{self, Admin, Approvals, Audit, StoreSettings};
use crate::{ConfigError, ConfigErrors, Glob};

/// Index of an upstream in [`Config::upstreams`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct UpstreamId(pub usize);

/// Where an upstream's API key comes from. Resolved by the caller, which does the I/O.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CredentialSource {
    /// An environment variable's value.
    Env(String),
    /// A file's content, trimmed.
    File(PathBuf),
}

/// Per-upstream timeouts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UpstreamTimeouts {
    /// TCP and TLS connect.
    pub connect: Duration,
    /// Request sent to response headers received.
    pub first_byte: Duration,
    /// Longest silence between body chunks.
    pub idle: Duration,
}

/// One validated upstream.
#[derive(Debug, Clone)]
pub struct Upstream {
    /// Unique name (a bounded metric label).
    pub name: String,
    /// `http` or `https`.
    pub scheme: Scheme,
    /// Host and port.
    pub authority: Authority,
    /// Path prefix without a trailing slash, e.g. `/v1`; may be empty.
    pub base_path: String,
    /// Model names and patterns as written.
    pub models: Vec<String>,
    /// Where the API key comes from, if any.
    pub credential: Option<CredentialSource>,
    /// Header that carries the key.
    pub api_key_header: HeaderName,
    /// Extra headers for every request.
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// Timeouts.
    pub timeouts: UpstreamTimeouts,
    /// Idle pooled connections kept.
    pub max_idle_connections: usize,
    /// Whether prompts may reach it unredacted (`upstream.trusted` in policy input).
    pub trusted: bool,
}

/// Size and concurrency limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest request body.
    pub max_body_bytes: u64,
    /// Largest buffered (non-streamed) upstream response.
    pub max_response_bytes: u64,
    /// Requests in flight at once.
    pub max_concurrent_requests: u32,
}

/// Timeouts on the client side of the gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerTimeouts {
    /// To receive the request headers.
    pub header: Duration,
    /// To receive the whole request body.
    pub body: Duration,
}

/// A `/v1/*` path forwarded unguarded.
#[derive(Debug, Clone)]
pub struct Passthrough {
    /// Path pattern.
    pub path: Glob,
    /// Where it goes.
    pub upstream: UpstreamId,
}

/// A complete, validated configuration. Immutable: a reload builds a new one.
#[derive(Debug, Clone)]
pub struct Config {
    /// Listen address.
    pub listen: SocketAddr,
    /// Upstreams in file order.
    pub upstreams: Vec<Upstream>,
    /// Upstream for unlisted models.
    pub default_upstream: Option<UpstreamId>,
    /// Limits.
    pub limits: Limits,
    /// Client-side timeouts.
    pub server_timeouts: ServerTimeouts,
    /// Unguarded paths.
    pub passthrough: Vec<Passthrough>,
    /// Drain bound on shutdown.
    pub drain_timeout: Duration,
    /// Inspection, policy and enforcement.
    pub guard: Guard,
    /// MCP tool servers.
    pub mcp: Mcp,
    /// Durable state.
    pub store: StoreSettings,
    /// Human approval.
    pub approvals: Approvals,
    /// Audit log.
    pub audit: Audit,
    /// Admin listener.
    pub admin: Admin,
    /// Caller authentication.
    pub auth: crate::auth::Auth,
    /// Request rates and token budgets.
    pub rate_limits: crate::limits::RateLimits,
    /// Trace export.
    pub telemetry: crate::telemetry::Telemetry,
    exact_models: HashMap<String, UpstreamId>,
    model_patterns: Vec<(Glob, UpstreamId)>,
}

/// The rule name of the default upstream in [`ModelMatch`].
pub const DEFAULT_RULE: &str = "*";

/// Which upstream serves a model, and by which rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModelMatch<'a> {
    /// The upstream.
    pub upstream: UpstreamId,
    /// The exact name, the pattern, or [`DEFAULT_RULE`].
    pub rule: &'a str,
}

const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
const MIB: u64 = 1024 * 1024;
const MAX_TIMEOUT_MS: u64 = 24 * 60 * 60 * 1000;

impl Config {
    /// Validates everything and reports *all* problems, each with its path.
    pub fn from_raw(raw: &RawConfig) -> Result<Self, ConfigErrors> {
        let mut errors = Vec::new();
        let listen_text = raw.listen.as_deref().unwrap_or(DEFAULT_LISTEN);
        let listen = listen_text.parse::<SocketAddr>().unwrap_or_else(|_| {
            errors.push(ConfigError::new(
                "listen",
                format!("`{listen_text}` is not an ip:port address"),
            ));
            SocketAddr::from(([127, 0, 0, 1], 8080))
        });

        let timeouts = &raw.timeouts;
        let defaults = UpstreamTimeouts {
            connect: millis(
                &mut errors,
                "timeouts.upstream_connect_ms",
                timeouts.upstream_connect_ms,
                5_000,
            ),
            first_byte: millis(
                &mut errors,
                "timeouts.upstream_first_byte_ms",
                timeouts.upstream_first_byte_ms,
                120_000,
            ),
            idle: millis(
                &mut errors,
                "timeouts.upstream_idle_ms",
                timeouts.upstream_idle_ms,
                60_000,
            ),
        };
        let server_timeouts = ServerTimeouts {
            header: millis(
                &mut errors,
                "timeouts.client_header_ms",
                timeouts.client_header_ms,
                10_000,
            ),
            body: millis(
                &mut errors,
                "timeouts.client_body_ms",
                timeouts.client_body_ms,
                30_000,
            ),
        };

        if raw.upstreams.is_empty() && raw.mcp.servers.is_empty() {
            errors.push(ConfigError::new(
                "upstreams",
                "at least one upstream (or MCP server in mcp.servers) is required",
            ));
        }
        let upstreams: Vec<Upstream> = raw
            .upstreams
            .iter()
            .enumerate()
            .filter_map(|(i, up)| {
                validate_upstream(&mut errors, &format!("upstreams[{i}]"), up, defaults)
            })
            .collect();
        let by_name = name_index(&mut errors, &raw.upstreams);

        let default_upstream = raw.default_upstream.as_deref().and_then(|name| {
            let found = by_name.get(name).copied();
            if found.is_none() {
                errors.push(ConfigError::new(
                    "default_upstream",
                    format!("no upstream is named `{name}`"),
                ));
            }
            found
        });

        let (exact_models, model_patterns) =
            model_routes(&mut errors, &raw.upstreams, default_upstream);
        let limits = validate_limits(&mut errors, raw);
        let passthrough = validate_passthrough(&mut errors, raw, &by_name, default_upstream);
        let drain_timeout = millis(
            &mut errors,
            "shutdown.drain_timeout_ms",
            raw.shutdown.drain_timeout_ms,
            25_000,
        );
        let guard = guard::validate(&mut errors, &raw.policy, &raw.guard);
        let mcp = mcp::validate(&mut errors, &raw.mcp);
        let store = state::validate_store(&mut errors, &raw.store);
        let approvals = state::validate_approvals(&mut errors, &raw.approvals);
        let audit = state::validate_audit(&mut errors, &raw.audit);
        let admin = state::validate_admin(&mut errors, &raw.admin);
        let auth = crate::auth::validate_auth(&mut errors, &raw.auth);
        let rate_limits = crate::limits::validate_rate_limits(&mut errors, &raw.rate_limits);
        let telemetry = crate::telemetry::validate_telemetry(&mut errors, &raw.telemetry);
        if admin.listen.is_some() && admin.listen == Some(listen) {
            errors.push(ConfigError::new(
                "admin.listen",
                "must differ from `listen`",
            ));
        }

        if !errors.is_empty() {
            return Err(ConfigErrors(errors));
        }
        Ok(Self {
            listen,
            upstreams,
            default_upstream,
            limits,
            server_timeouts,
            passthrough,
            drain_timeout,
            guard,
            mcp,
            store,
            approvals,
            audit,
            admin,
            auth,
            rate_limits,
            telemetry,
            exact_models,
            model_patterns,
        })
    }

    /// The upstream serving `model`: an exact name first, then patterns in file order, then
    /// the default upstream.
    pub fn route_model(&self, model: &str) -> Option<UpstreamId> {
        self.match_model(model).map(|m| m.upstream)
    }

    /// Like [`Config::route_model`], also naming the rule that matched: the exact name, the
    /// pattern as written, or `*` for the default upstream. Rules come from the configuration,
    /// so they are safe as bounded metric labels.
    pub fn match_model(&self, model: &str) -> Option<ModelMatch<'_>> {
        if let Some((name, id)) = self.exact_models.get_key_value(model) {
            return Some(ModelMatch {
                upstream: *id,
                rule: name,
            });
        }
        self.model_patterns
            .iter()
            .find(|(glob, _)| glob.matches(model))
            .map(|(glob, id)| ModelMatch {
                upstream: *id,
                rule: glob.as_str(),
            })
            .or_else(|| {
                self.default_upstream.map(|id| ModelMatch {
                    upstream: id,
                    rule: DEFAULT_RULE,
                })
            })
    }

    /// Every routing rule (exact names, patterns, and `*` if there is a default upstream).
    pub fn model_rules(&self) -> impl Iterator<Item = &str> {
        self.exact_models
            .keys()
            .map(String::as_str)
            .chain(self.model_patterns.iter().map(|(g, _)| g.as_str()))
            .chain(self.default_upstream.map(|_| DEFAULT_RULE))
    }

    /// The upstream with this id.
    pub fn upstream(&self, id: UpstreamId) -> Option<&Upstream> {
        self.upstreams.get(id.0)
    }

    /// Exact model names, with the upstream serving each, in file order.
    pub fn listed_models(&self) -> Vec<(&str, UpstreamId)> {
        let mut models: Vec<(&str, UpstreamId)> = self
            .upstreams
            .iter()
            .enumerate()
            .flat_map(|(i, up)| {
                up.models
                    .iter()
                    .filter(|m| !Glob::is_wildcard(m))
                    .map(move |m| (m.as_str(), UpstreamId(i)))
            })
            .collect();
        models.dedup_by(|a, b| a.0 == b.0);
        models
    }

    /// The passthrough rule for `path`, if any.
    pub fn passthrough_for(&self, path: &str) -> Option<&Passthrough> {
        self.passthrough.iter().find(|p| p.path.matches(path))
    }
}

pub(crate) fn millis(
    errors: &mut Vec<ConfigError>,
    path: &str,
    value: Option<u64>,
    default: u64,
) -> Duration {
    let ms = value.unwrap_or(default);
    if ms == 0 || ms > MAX_TIMEOUT_MS {
        errors.push(ConfigError::new(
            path,
            format!("must be between 1 and {MAX_TIMEOUT_MS} ms"),
        ));
        return Duration::from_millis(default);
    }
    Duration::from_millis(ms)
}

fn name_index(
    errors: &mut Vec<ConfigError>,
    upstreams: &[RawUpstream],
) -> HashMap<String, UpstreamId> {
    let mut by_name = HashMap::new();
    for (i, up) in upstreams.iter().enumerate() {
        if by_name.insert(up.name.clone(), UpstreamId(i)).is_some() {
            errors.push(ConfigError::new(
                format!("upstreams[{i}].name"),
                format!("duplicate upstream name `{}`", up.name),
            ));
        }
    }
    by_name
}

fn validate_upstream(
    errors: &mut Vec<ConfigError>,
    path: &str,
    raw: &RawUpstream,
    defaults: UpstreamTimeouts,
) -> Option<Upstream> {
    let before = errors.len();
    if raw.name.is_empty()
        || !raw
            .name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
    {
        errors.push(ConfigError::new(
            format!("{path}.name"),
            "must be non-empty and use only letters, digits, `-`, `_` and `.`",
        ));
    }
    let parsed = parse_base_url(&raw.url).map_err(|message| {
        errors.push(ConfigError::new(format!("{path}.url"), message));
    });
    let credential = crate::state::secret_source(
        errors,
        path,
        ("api_key_env", &raw.api_key_env),
        ("api_key_file", &raw.api_key_file),
    );
    let header_text = raw.api_key_header.as_deref().unwrap_or("authorization");
    let api_key_header = HeaderName::try_from(header_text).unwrap_or_else(|_| {
        errors.push(ConfigError::new(
            format!("{path}.api_key_header"),
            "not a valid header name",
        ));
        http::header::AUTHORIZATION
    });
    let headers = validate_headers(errors, path, raw);
    for (j, model) in raw.models.iter().enumerate() {
        if model.is_empty() {
            errors.push(ConfigError::new(
                format!("{path}.models[{j}]"),
                "must not be empty",
            ));
        }
    }
    let timeouts = UpstreamTimeouts {
        connect: millis(
            errors,
            &format!("{path}.connect_timeout_ms"),
            raw.connect_timeout_ms,
            defaults.connect.as_millis() as u64,
        ),
        first_byte: millis(
            errors,
            &format!("{path}.first_byte_timeout_ms"),
            raw.first_byte_timeout_ms,
            defaults.first_byte.as_millis() as u64,
        ),
        idle: millis(
            errors,
            &format!("{path}.idle_timeout_ms"),
            raw.idle_timeout_ms,
            defaults.idle.as_millis() as u64,
        ),
    };
    let (scheme, authority, base_path) = parsed.ok()?;
    if errors.len() != before {
        return None;
    }
    Some(Upstream {
        name: raw.name.clone(),
        scheme,
        authority,
        base_path,
        models: raw.models.clone(),
        credential,
        api_key_header,
        headers,
        timeouts,
        max_idle_connections: raw.max_idle_connections.unwrap_or(64),
        trusted: raw.trusted.unwrap_or(true),
    })
}

/// Headers an operator may not set: the gateway owns framing, routing and hop-by-hop headers.
const RESERVED_HEADERS: &[&str] = &[
    "host",
    "content-length",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "upgrade",
    "te",
    "trailer",
    "proxy-connection",
];

fn validate_headers(
    errors: &mut Vec<ConfigError>,
    path: &str,
    raw: &RawUpstream,
) -> Vec<(HeaderName, HeaderValue)> {
    let mut headers = Vec::new();
    for (name, value) in &raw.headers {
        let key_path = format!("{path}.headers.{name}");
        match (
            HeaderName::try_from(name.as_str()),
            HeaderValue::try_from(value.as_str()),
        ) {
            (Ok(name), _) if RESERVED_HEADERS.contains(&name.as_str()) => {
                errors.push(ConfigError::new(
                    key_path,
                    "is set by the gateway and cannot be configured",
                ));
            }
            (Ok(name), Ok(value)) => headers.push((name, value)),
            (Err(_), _) => errors.push(ConfigError::new(key_path, "not a valid header name")),
            (Ok(_), Err(_)) => errors.push(ConfigError::new(key_path, "not a valid header value")),
        }
    }
    headers
}

fn parse_base_url(url: &str) -> Result<(Scheme, Authority, String), String> {
    let uri: http::Uri = url
        .parse()
        .map_err(|_| format!("`{url}` is not a valid URL"))?;
    let scheme = match uri.scheme_str() {
        Some("http") => Scheme::HTTP,
        Some("https") => Scheme::HTTPS,
        _ => return Err("must start with http:// or https://".to_string()),
    };
    let authority = uri
        .authority()
        .cloned()
        .ok_or_else(|| "must name a host".to_string())?;
    if uri.query().is_some() {
        return Err("must not have a query string".to_string());
    }
    let base_path = uri.path().trim_end_matches('/').to_string();
    Ok((scheme, authority, base_path))
}

type ModelRoutes = (HashMap<String, UpstreamId>, Vec<(Glob, UpstreamId)>);

fn model_routes(
    errors: &mut Vec<ConfigError>,
    upstreams: &[RawUpstream],
    default: Option<UpstreamId>,
) -> ModelRoutes {
    let mut exact: HashMap<String, UpstreamId> = HashMap::new();
    let mut patterns = Vec::new();
    for (i, up) in upstreams.iter().enumerate() {
        if up.models.is_empty() && default != Some(UpstreamId(i)) {
            errors.push(ConfigError::new(
                format!("upstreams[{i}].models"),
                "is empty and this is not the default_upstream, so no request can reach it",
            ));
        }
        for (j, model) in up.models.iter().enumerate() {
            if Glob::is_wildcard(model) {
                patterns.push((Glob::new(model), UpstreamId(i)));
            } else if let Some(previous) = exact.insert(model.clone(), UpstreamId(i)) {
                let owner = upstreams
                    .get(previous.0)
                    .map(|u| u.name.as_str())
                    .unwrap_or("?");
                errors.push(ConfigError::new(
                    format!("upstreams[{i}].models[{j}]"),
                    format!("model `{model}` is already served by upstream `{owner}`"),
                ));
            }
        }
    }
    (exact, patterns)
}

fn validate_limits(errors: &mut Vec<ConfigError>, raw: &RawConfig) -> Limits {
    let mut bytes = |path: &str, value: Option<u64>, default: u64| {
        let v = value.unwrap_or(default);
        if v == 0 || v > 1024 * MIB {
            errors.push(ConfigError::new(
                path,
                "must be between 1 and 1073741824 bytes",
            ));
            return default;
        }
        v
    };
    let max_body_bytes = bytes("limits.max_body_bytes", raw.limits.max_body_bytes, 4 * MIB);
    let max_response_bytes = bytes(
        "limits.max_response_bytes",
        raw.limits.max_response_bytes,
        32 * MIB,
    );
    let concurrent = raw.limits.max_concurrent_requests.unwrap_or(1024);
    if concurrent == 0 || concurrent > 1_000_000 {
        errors.push(ConfigError::new(
            "limits.max_concurrent_requests",
            "must be between 1 and 1000000",
        ));
    }
    Limits {
        max_body_bytes,
        max_response_bytes,
        max_concurrent_requests: concurrent.clamp(1, 1_000_000),
    }
}

fn validate_passthrough(
    errors: &mut Vec<ConfigError>,
    raw: &RawConfig,
    by_name: &HashMap<String, UpstreamId>,
    default: Option<UpstreamId>,
) -> Vec<Passthrough> {
    let mut out = Vec::new();
    for (i, rule) in raw.passthrough.iter().enumerate() {
        if !rule.path.starts_with("/v1/") {
            errors.push(ConfigError::new(
                format!("passthrough[{i}].path"),
                "must start with /v1/",
            ));
            continue;
        }
        let upstream = match &rule.upstream {
            Some(name) => by_name.get(name).copied().or_else(|| {
                errors.push(ConfigError::new(
                    format!("passthrough[{i}].upstream"),
                    format!("no upstream is named `{name}`"),
                ));
                None
            }),
            None => default.or_else(|| {
                errors.push(ConfigError::new(
                    format!("passthrough[{i}].upstream"),
                    "required when there is no default_upstream",
                ));
                None
            }),
        };
        if let Some(upstream) = upstream {
            out.push(Passthrough {
                path: Glob::new(&rule.path),
                upstream,
            });
        }
    }
    out
}

#[cfg(test)]
mod tests;
