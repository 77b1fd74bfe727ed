//! Portcullis configuration: what the operator wrote ([`RawConfig`], serde + JSON Schema) and what
//! the data path uses ([`Config`], validated: addresses parsed, references resolved, limits in
//! range, durations typed).
//!
//! This crate does no I/O: reading files, environment variables and secrets is the caller's job
//! (see `portcullis-proxy`). Start with [`parse_yaml`] and [`Config::from_raw`]; every problem is
//! reported with its path, e.g. `upstreams[1].url: must start with http:// or https://`.
#![warn(missing_docs)]

mod auth;
mod error;
mod glob;
mod guard;
mod limits;
mod mcp;
mod raw;
mod state;
mod telemetry;
mod validated;

pub use auth::{
    ApiKey, ApiKeySource, Auth, JwksLocation, JwtAlgorithm, JwtIssuer, JwtKind, MAX_COPIED_CLAIMS,
    RawApiKey, RawAuth, RawJwtIssuer, RawJwtKind, is_loopback_host,
};
pub use error::{ConfigError, ConfigErrors};
pub use glob::Glob;
pub use guard::{DenyWith, GUARD_ROUTES, Guard, PolicySource, RouteGuard, StreamOverflow};
pub use limits::{
    LimitBackend, LimitDimension, LimitRule, RateLimits, RawLimitBackend, RawLimitDimension,
    RawLimitRule, RawRateLimits, RawRedis, RedisUrl,
};
pub use mcp::{Mcp, McpServer, McpTransport};
pub use raw::{
    RawAdmin, RawAdminRole, RawAdminToken, RawApprovals, RawAudit, RawAuditContent, RawAuditOnFull,
    RawAuditSink, RawConfig, RawDenyWith, RawGuard, RawLimits, RawMcp, RawMcpServer, RawOnError,
    RawOverflow, RawPassthrough, RawPolicy, RawRouteGuard, RawShutdown, RawStore, RawStoreBackend,
    RawTimeouts, RawUpstream, RawWebhook, json_schema, parse_yaml,
};
pub use state::{
    Admin, AdminRole, AdminToken, AdminTokenSource, Approvals, Audit, AuditContent, AuditOnFull,
    AuditSink, SigningKeySource, StoreSettings, Webhook, WebhookUrl,
};
pub use telemetry::{RawTelemetry, RawTracing, SpanContent, Telemetry, Tracing, parse_headers};
pub use validated::{
    Config, CredentialSource, DEFAULT_RULE, Limits, ModelMatch, Passthrough, ServerTimeouts,
    Upstream, UpstreamId, UpstreamTimeouts,
};
