//! `rate_limits`: request rates and token budgets per principal, tenant and model, kept in
//! memory (one process) or in Redis (replicas sharing one budget).

use std::collections::HashSet;
use std::time::Duration;

use schemars::JsonSchema;
use serde::Deserialize;

use crate::ConfigError;
use crate::glob::Glob;
use crate::raw::RawOnError;
use crate::state::secret_source;
use crate::validated::CredentialSource;

/// Request-rate limits and token budgets.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawRateLimits {
    /// Where counters live: `memory` (the default; this process only) or `redis` (shared by
    /// every replica).
    #[serde(default)]
    pub backend: Option<RawLimitBackend>,
    /// The Redis server, when `backend` is `redis`.
    #[serde(default)]
    pub redis: RawRedis,
    /// When the counters cannot be read (Redis down or slow): `deny` (the default) refuses
    /// with 503 `rate_limit_unavailable`; `allow` lets the request through uncounted.
    #[serde(default)]
    pub on_error: Option<RawOnError>,
    /// Ask a streaming upstream for usage (`stream_options.include_usage`) when the client did
    /// not, so streamed tokens are counted; the extra usage chunk is not sent to that client.
    /// Default `true`.
    #[serde(default)]
    pub stream_usage: Option<bool>,
    /// Most distinct counters the memory backend keeps. Default 100000.
    #[serde(default)]
    pub max_keys: Option<usize>,
    /// The limits; a request must fit every rule that applies to it.
    #[serde(default)]
    pub rules: Vec<RawLimitRule>,
}

/// Counter backend.
#[derive(Debug, Clone, Copy, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum RawLimitBackend {
    /// In this process.
    Memory,
    /// In Redis.
    Redis,
}

/// A Redis server.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawRedis {
    /// `redis://host:port/db`, written in the config (no password in it: use `url_env` or
    /// `url_file` for a URL with credentials).
    #[serde(default)]
    pub url: Option<String>,
    /// Environment variable holding the URL.
    #[serde(default)]
    pub url_env: Option<String>,
    /// File holding the URL (a mounted Secret).
    #[serde(default)]
    pub url_file: Option<String>,
    /// Prefix of every key. Default `portcullis:`.
    #[serde(default)]
    pub key_prefix: Option<String>,
    /// Bound on connecting and on each counter update. Default 250.
    #[serde(default)]
    pub timeout_ms: Option<u64>,
}

/// One limit.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawLimitRule {
    /// Name, unique; part of every counter's key and of the 429 message.
    pub name: String,
    /// What gets its own budget: any of `principal`, `tenant`, `model`. Empty (the default):
    /// one budget shared by every request the rule applies to.
    #[serde(default)]
    pub by: Vec<RawLimitDimension>,
    /// Apply only to these models (patterns with `*` and `?`). Default: every model.
    #[serde(default)]
    pub models: Vec<String>,
    /// Apply only to these principal ids. Default: every principal.
    #[serde(default)]
    pub principals: Vec<String>,
    /// Apply only to these tenants. Default: every tenant.
    #[serde(default)]
    pub tenants: Vec<String>,
    /// Requests per minute.
    #[serde(default)]
    pub requests_per_minute: Option<u64>,
    /// Tokens (prompt + completion, as the upstream counts them) per minute.
    #[serde(default)]
    pub tokens_per_minute: Option<u64>,
    /// Tokens per day (UTC).
    #[serde(default)]
    pub tokens_per_day: Option<u64>,
}

/// A budget dimension.
#[derive(Debug, Clone, Copy, Deserialize, JsonSchema, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum RawLimitDimension {
    /// The principal's id.
    Principal,
    /// The principal's tenant.
    Tenant,
    /// The requested model.
    Model,
}

/// Validated rate limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateLimits {
    /// Counter backend.
    pub backend: LimitBackend,
    /// Fail mode when counters cannot be read.
    pub on_error: portcullis_core::OnError,
    /// Request usage from streaming upstreams.
    pub stream_usage: bool,
    /// Memory backend key bound.
    pub max_keys: usize,
    /// Rules in file order.
    pub rules: Vec<LimitRule>,
}

impl RateLimits {
    /// Whether any rule exists.
    pub fn is_enabled(&self) -> bool {
        !self.rules.is_empty()
    }
}

/// Counter backend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LimitBackend {
    /// In this process.
    Memory,
    /// Redis.
    Redis {
        /// The URL (written in the config or read from a secret).
        url: RedisUrl,
        /// Key prefix.
        key_prefix: String,
        /// Bound on each operation.
        timeout: Duration,
    },
}

/// Where the Redis URL comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RedisUrl {
    /// Written in the config.
    Inline(String),
    /// A secret.
    Secret(CredentialSource),
}

/// What gets its own budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitDimension {
    /// The principal's id.
    Principal,
    /// The principal's tenant.
    Tenant,
    /// The requested model.
    Model,
}

impl LimitDimension {
    /// The config name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Principal => "principal",
            Self::Tenant => "tenant",
            Self::Model => "model",
        }
    }
}

/// One validated rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimitRule {
    /// Unique name.
    pub name: String,
    /// Budget dimensions, without repeats, in config order.
    pub by: Vec<LimitDimension>,
    /// Model filter (empty: all).
    pub models: Vec<Glob>,
    /// Principal filter (empty: all).
    pub principals: Vec<String>,
    /// Tenant filter (empty: all).
    pub tenants: Vec<String>,
    /// Requests per minute.
    pub requests_per_minute: Option<u64>,
    /// Tokens per minute.
    pub tokens_per_minute: Option<u64>,
    /// Tokens per day.
    pub tokens_per_day: Option<u64>,
}

impl LimitRule {
    /// Whether the rule applies to a request by this principal and tenant for this model.
    pub fn applies(&self, principal: &str, tenant: Option<&str>, model: &str) -> bool {
        let model_ok = self.models.is_empty() || self.models.iter().any(|g| g.matches(model));
        let principal_ok =
            self.principals.is_empty() || self.principals.iter().any(|p| p == principal);
        let tenant_ok = self.tenants.is_empty()
            || tenant.is_some_and(|tenant| self.tenants.iter().any(|t| t == tenant));
        model_ok && principal_ok && tenant_ok
    }
}

const DEFAULT_MAX_KEYS: usize = 100_000;
const DEFAULT_REDIS_TIMEOUT_MS: u64 = 250;
const MAX_REDIS_TIMEOUT_MS: u64 = 60_000;

pub(crate) fn validate_rate_limits(
    errors: &mut Vec<ConfigError>,
    raw: &RawRateLimits,
) -> RateLimits {
    let backend = match raw.backend.unwrap_or(RawLimitBackend::Memory) {
        RawLimitBackend::Memory => {
            if raw.redis.url.is_some()
                || raw.redis.url_env.is_some()
                || raw.redis.url_file.is_some()
            {
                errors.push(ConfigError::new(
                    "rate_limits.redis",
                    "is set but `rate_limits.backend` is not `redis`",
                ));
            }
            LimitBackend::Memory
        }
        RawLimitBackend::Redis => validate_redis(errors, &raw.redis),
    };
    let max_keys = raw.max_keys.unwrap_or(DEFAULT_MAX_KEYS);
    if max_keys == 0 {
        errors.push(ConfigError::new(
            "rate_limits.max_keys",
            "must be at least 1",
        ));
    }
    let mut names = HashSet::new();
    let rules = raw
        .rules
        .iter()
        .enumerate()
        .map(|(index, rule)| {
            validate_rule(
                errors,
                &format!("rate_limits.rules[{index}]"),
                rule,
                &mut names,
            )
        })
        .collect();
    RateLimits {
        backend,
        on_error: RawOnError::fail_mode(raw.on_error),
        stream_usage: raw.stream_usage.unwrap_or(true),
        max_keys,
        rules,
    }
}

fn validate_redis(errors: &mut Vec<ConfigError>, raw: &RawRedis) -> LimitBackend {
    let secret = secret_source(
        errors,
        "rate_limits.redis",
        ("url_env", &raw.url_env),
        ("url_file", &raw.url_file),
    );
    let url = match (&raw.url, secret) {
        (Some(_), Some(_)) => {
            errors.push(ConfigError::new(
                "rate_limits.redis.url",
                "set one of url, url_env or url_file",
            ));
            RedisUrl::Inline(String::new())
        }
        (Some(url), None) => {
            if !(url.starts_with("redis://")
                || url.starts_with("rediss://")
                || url.starts_with("redis+unix://"))
            {
                errors.push(ConfigError::new(
                    "rate_limits.redis.url",
                    "must start with redis://, rediss:// or redis+unix://",
                ));
            }
            RedisUrl::Inline(url.clone())
        }
        (None, Some(source)) => RedisUrl::Secret(source),
        (None, None) => {
            errors.push(ConfigError::new(
                "rate_limits.redis",
                "backend `redis` needs url, url_env or url_file",
            ));
            RedisUrl::Inline(String::new())
        }
    };
    let mut timeout_ms = raw.timeout_ms.unwrap_or(DEFAULT_REDIS_TIMEOUT_MS);
    if timeout_ms == 0 || timeout_ms > MAX_REDIS_TIMEOUT_MS {
        errors.push(ConfigError::new(
            "rate_limits.redis.timeout_ms",
            format!("must be between 1 and {MAX_REDIS_TIMEOUT_MS}"),
        ));
        timeout_ms = DEFAULT_REDIS_TIMEOUT_MS;
    }
    LimitBackend::Redis {
        url,
        key_prefix: raw
            .key_prefix
            .clone()
            .unwrap_or_else(|| "portcullis:".to_owned()),
        timeout: Duration::from_millis(timeout_ms),
    }
}

fn validate_rule(
    errors: &mut Vec<ConfigError>,
    at: &str,
    raw: &RawLimitRule,
    names: &mut HashSet<String>,
) -> LimitRule {
    if raw.name.is_empty() || raw.name.contains(['|', '\n']) {
        errors.push(ConfigError::new(
            format!("{at}.name"),
            "must be non-empty and contain no `|` or newline",
        ));
    } else if !names.insert(raw.name.clone()) {
        errors.push(ConfigError::new(
            format!("{at}.name"),
            format!("`{}` is used by an earlier rule", raw.name),
        ));
    }
    let mut by = Vec::new();
    for (index, dimension) in raw.by.iter().enumerate() {
        let dimension = match dimension {
            RawLimitDimension::Principal => LimitDimension::Principal,
            RawLimitDimension::Tenant => LimitDimension::Tenant,
            RawLimitDimension::Model => LimitDimension::Model,
        };
        if by.contains(&dimension) {
            errors.push(ConfigError::new(format!("{at}.by[{index}]"), "repeated"));
        } else {
            by.push(dimension);
        }
    }
    let limits = [
        ("requests_per_minute", raw.requests_per_minute),
        ("tokens_per_minute", raw.tokens_per_minute),
        ("tokens_per_day", raw.tokens_per_day),
    ];
    for (key, value) in limits {
        if value == Some(0) {
            errors.push(ConfigError::new(
                format!("{at}.{key}"),
                "must be at least 1 (leave it out for no limit)",
            ));
        }
    }
    if limits.iter().all(|(_, value)| value.is_none()) {
        errors.push(ConfigError::new(
            at.to_owned(),
            "sets no limit: give requests_per_minute, tokens_per_minute or tokens_per_day",
        ));
    }
    LimitRule {
        name: raw.name.clone(),
        by,
        models: raw.models.iter().map(|m| Glob::new(m)).collect(),
        principals: raw.principals.clone(),
        tenants: raw.tenants.clone(),
        requests_per_minute: raw.requests_per_minute,
        tokens_per_minute: raw.tokens_per_minute,
        tokens_per_day: raw.tokens_per_day,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(yaml: &str) -> (RateLimits, Vec<String>) {
        let raw: RawRateLimits = serde_yaml_ng::from_str(yaml).unwrap();
        let mut errors = Vec::new();
        let limits = validate_rate_limits(&mut errors, &raw);
        (limits, errors.iter().map(ToString::to_string).collect())
    }

    #[test]
    fn defaults_are_memory_fail_closed_and_stream_usage() {
        let (limits, errors) = check("{}");
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(limits.backend, LimitBackend::Memory);
        assert_eq!(limits.on_error, portcullis_core::OnError::FailClosed);
        assert!(limits.stream_usage);
        assert!(!limits.is_enabled());
    }

    #[test]
    fn a_full_rule_validates_and_applies_by_filters() {
        let (limits, errors) = check(
            "backend: redis\nredis: {url_env: REDIS_URL, timeout_ms: 100}\non_error: allow\n\
             rules:\n  - {name: gpt, by: [principal, model], models: ['gpt-*'], tenants: [acme], \
             requests_per_minute: 10, tokens_per_day: 1000}\n",
        );
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(
            limits.backend,
            LimitBackend::Redis {
                url: RedisUrl::Secret(CredentialSource::Env("REDIS_URL".into())),
                key_prefix: "portcullis:".into(),
                timeout: Duration::from_millis(100),
            }
        );
        assert_eq!(limits.on_error, portcullis_core::OnError::FailOpen);
        let rule = &limits.rules[0];
        assert_eq!(
            rule.by,
            vec![LimitDimension::Principal, LimitDimension::Model]
        );
        assert!(rule.applies("alice", Some("acme"), "gpt-4o"));
        assert!(!rule.applies("alice", Some("acme"), "llama3"));
        assert!(!rule.applies("alice", Some("other"), "gpt-4o"));
        assert!(!rule.applies("alice", None, "gpt-4o"));
    }

    #[test]
    fn every_mistake_is_named_with_its_path() {
        let (_, errors) = check(
            "backend: redis\nredis: {url: 'http://x', url_env: A, timeout_ms: 0}\nmax_keys: 0\n\
             rules:\n  - {name: a, requests_per_minute: 0}\n  - {name: a, by: [model, model]}\n  - {name: ''}\n",
        );
        let expected = [
            "rate_limits.redis.url: set one of url, url_env or url_file",
            "rate_limits.redis.timeout_ms: must be between 1 and 60000",
            "rate_limits.max_keys: must be at least 1",
            "rate_limits.rules[0].requests_per_minute: must be at least 1",
            "rate_limits.rules[1].name: `a` is used by an earlier rule",
            "rate_limits.rules[1].by[1]: repeated",
            "rate_limits.rules[1]: sets no limit",
            "rate_limits.rules[2].name: must be non-empty",
        ];
        for want in expected {
            assert!(
                errors.iter().any(|e| e.starts_with(want)),
                "missing {want:?} in {errors:?}"
            );
        }
    }

    #[test]
    fn redis_needs_a_url_and_memory_refuses_one() {
        let (_, errors) = check("backend: redis\n");
        assert!(errors.iter().any(|e| e.contains("needs url")), "{errors:?}");
        let (_, errors) = check("redis: {url: 'redis://127.0.0.1:6379'}\n");
        assert!(
            errors.iter().any(|e| e.contains("is not `redis`")),
            "{errors:?}"
        );
        let (_, errors) = check("backend: redis\nredis: {url: 'http://127.0.0.1'}\n");
        assert!(
            errors
                .iter()
                .any(|e| e.contains("must start with redis://")),
            "{errors:?}"
        );
    }
}
