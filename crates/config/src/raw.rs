//! What the operator writes. Field names are snake_case and carry their unit (`_ms`, `_bytes`);
//! doc comments here become the JSON Schema's descriptions and feed `docs/config.md`.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::Deserialize;

use crate::{ConfigError, ConfigErrors};

/// The whole configuration file.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    /// Address the gateway listens on, `host:port`. Default `127.0.0.1:8080`.
    #[serde(default)]
    pub listen: Option<String>,
    /// Model servers to forward to. At least one is required.
    #[serde(default)]
    pub upstreams: Vec<RawUpstream>,
    /// Name of the upstream that serves models no upstream lists. Without it, an unlisted
    /// model is refused with 404 `model_not_found`.
    #[serde(default)]
    pub default_upstream: Option<String>,
    /// Size and concurrency limits.
    #[serde(default)]
    pub limits: RawLimits,
    /// Client-side and default upstream timeouts.
    #[serde(default)]
    pub timeouts: RawTimeouts,
    /// Other `/v1/*` paths to forward unguarded (no inspection, no policy). Paths not listed
    /// here and not served by Portcullis are refused with 404.
    #[serde(default)]
    pub passthrough: Vec<RawPassthrough>,
    /// Graceful shutdown.
    #[serde(default)]
    pub shutdown: RawShutdown,
    /// The Rego policy bundle that decides on every guarded exchange.
    #[serde(default)]
    pub policy: RawPolicy,
    /// Inspection and enforcement on the guarded routes (detectors, policy, stream scanning).
    #[serde(default)]
    pub guard: RawGuard,
    /// MCP tool servers reached through `/mcp/{server}`.
    #[serde(default)]
    pub mcp: RawMcp,
    /// Durable state (approvals, audit records): a SQLite file or PostgreSQL.
    #[serde(default)]
    pub store: RawStore,
    /// Human approval of calls the policy answers with `require_approval`.
    #[serde(default)]
    pub approvals: RawApprovals,
    /// The audit log: one event per decision, hash-chained, with signed checkpoints.
    #[serde(default)]
    pub audit: RawAudit,
    /// The admin listener: the approvals REST API and the web console.
    #[serde(default)]
    pub admin: RawAdmin,
    /// Who may call: API keys, JWT issuers (OIDC, Kubernetes service accounts), anonymous.
    #[serde(default)]
    pub auth: crate::auth::RawAuth,
    /// Request rates and token budgets per principal, tenant and model.
    #[serde(default)]
    pub rate_limits: crate::limits::RawRateLimits,
    /// OpenTelemetry trace export (OTLP/HTTP).
    #[serde(default)]
    pub telemetry: crate::telemetry::RawTelemetry,
}

/// Where durable state lives.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawStore {
    /// `sqlite` (a file, the default; one process or several on one host) or `postgres`
    /// (several replicas).
    #[serde(default)]
    pub backend: Option<RawStoreBackend>,
    /// SQLite database file, created if missing. Default `portcullis.db` (relative to the
    /// working directory).
    #[serde(default)]
    pub path: Option<String>,
    /// Environment variable holding the PostgreSQL URL (`postgres://user:password@host/db`).
    #[serde(default)]
    pub url_env: Option<String>,
    /// File holding the PostgreSQL URL (a mounted Secret).
    #[serde(default)]
    pub url_file: Option<String>,
    /// PostgreSQL schema for Portcullis's tables, created if missing. Default: the server's
    /// `search_path`.
    #[serde(default)]
    pub schema: Option<String>,
    /// PostgreSQL connection pool size. Default 8.
    #[serde(default)]
    pub max_connections: Option<u32>,
}

/// Store backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RawStoreBackend {
    /// A SQLite file.
    Sqlite,
    /// A PostgreSQL server.
    Postgres,
}

/// Human approval of held calls.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawApprovals {
    /// Hold calls that need approval (`true`, the default) or refuse them at once (`false`).
    #[serde(default)]
    pub enabled: Option<bool>,
    /// How long a held call waits for a decision before it is refused as expired. Default
    /// 300000 (5 min); at most 86400000.
    #[serde(default)]
    pub timeout_ms: Option<u64>,
    /// Most calls held at once by this process; beyond it a call needing approval is refused at
    /// once. Default 256.
    #[serde(default)]
    pub max_pending: Option<u32>,
    /// While a call is held over SSE, a comment is sent this often to keep the connection
    /// open through idle timeouts. Default 15000.
    #[serde(default)]
    pub keepalive_ms: Option<u64>,
    /// How often a held call re-reads its approval from the store, to see decisions made
    /// through another replica. Default 500.
    #[serde(default)]
    pub poll_ms: Option<u64>,
    /// Slack-compatible webhook called on each new approval.
    #[serde(default)]
    pub webhook: Option<RawWebhook>,
}

/// A webhook (Slack incoming-webhook JSON: `text` plus `blocks`).
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawWebhook {
    /// `http://` or `https://` URL. Mutually exclusive with `url_env` / `url_file`.
    #[serde(default)]
    pub url: Option<String>,
    /// Environment variable holding the URL (Slack webhook URLs are secrets).
    #[serde(default)]
    pub url_env: Option<String>,
    /// File holding the URL.
    #[serde(default)]
    pub url_file: Option<String>,
    /// Base URL of the console for links in messages, e.g. `https://portcullis-admin.example`.
    #[serde(default)]
    pub console_url: Option<String>,
    /// Bound on one delivery. Default 5000.
    #[serde(default)]
    pub timeout_ms: Option<u64>,
}

/// The audit log.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawAudit {
    /// Write audit events (`true`, the default).
    #[serde(default)]
    pub enabled: Option<bool>,
    /// Where records go: any of `store`, `jsonl`, `stdout`. Default `[store]`.
    #[serde(default)]
    pub sinks: Option<Vec<RawAuditSink>>,
    /// JSONL file for the `jsonl` sink (appended to; created if missing).
    #[serde(default)]
    pub jsonl_path: Option<String>,
    /// What events keep of inspected texts: `hash` (SHA-256 and length), `excerpt` (plus the
    /// first `excerpt_chars` characters of the redacted text; the default) or `raw` (the text
    /// itself; only where policy requires it).
    #[serde(default)]
    pub content: Option<RawAuditContent>,
    /// Longest excerpt, in characters. Default 200.
    #[serde(default)]
    pub excerpt_chars: Option<u32>,
    /// Events waiting to be written, at most. Default 10000.
    #[serde(default)]
    pub queue_capacity: Option<u32>,
    /// When the queue is full (a sink is down or slow): `block` refuses the exchanges whose
    /// events cannot be queued (HTTP 503, the default), `drop` lets them through and counts the
    /// lost events.
    #[serde(default)]
    pub on_full: Option<RawAuditOnFull>,
    /// Ed25519 signing key for checkpoints: a file holding a 32-byte seed (raw or hex) or a
    /// PKCS#8 document. Without a key, records are chained but no checkpoint is signed.
    #[serde(default)]
    pub signing_key_file: Option<String>,
    /// Environment variable holding the signing key as 64 hex digits.
    #[serde(default)]
    pub signing_key_env: Option<String>,
    /// A checkpoint is signed after this many records. Default 1000.
    #[serde(default)]
    pub checkpoint_every_records: Option<u32>,
    /// ... or this long after the last checkpoint if records were written since. Default 10000.
    #[serde(default)]
    pub checkpoint_every_ms: Option<u64>,
    /// Name of this instance's chain. Default: the host name plus the process start time,
    /// so every process start begins a new chain.
    #[serde(default)]
    pub instance: Option<String>,
}

/// An audit sink.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RawAuditSink {
    /// The configured store.
    Store,
    /// A JSON-lines file (`audit.jsonl_path`).
    Jsonl,
    /// Standard output, one JSON line per record.
    Stdout,
}

/// Audit content mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RawAuditContent {
    /// Hash and length only.
    Hash,
    /// Hash plus a redacted excerpt.
    Excerpt,
    /// Hash plus the raw text.
    Raw,
}

/// What happens when audit events cannot be queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RawAuditOnFull {
    /// Refuse the exchange (fail closed).
    Block,
    /// Let it through; count the dropped event.
    Drop,
}

/// The admin listener (approvals API and console). Off unless `listen` is set.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawAdmin {
    /// Address of the admin listener, `host:port`, separate from the traffic listener. Unset:
    /// no admin API and no console.
    #[serde(default)]
    pub listen: Option<String>,
    /// Admin credentials (bearer tokens), separate from traffic keys.
    #[serde(default)]
    pub tokens: Vec<RawAdminToken>,
    /// Serve the web console at `/console` (`true`, the default, when `listen` is set).
    #[serde(default)]
    pub console: Option<bool>,
    /// Console sign-in sessions last this long. Default 28800000 (8 h).
    #[serde(default)]
    pub session_ttl_ms: Option<u64>,
}

/// One admin credential.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawAdminToken {
    /// Who this is, recorded as the approver.
    pub name: String,
    /// `viewer` (read), `approver` (read, approve, deny) or `admin` (everything).
    pub role: RawAdminRole,
    /// SHA-256 of the token, 64 hex digits (`printf %s "$TOKEN" | sha256sum`). The token itself
    /// is never written in config.
    #[serde(default)]
    pub sha256: Option<String>,
    /// Environment variable holding the token itself.
    #[serde(default)]
    pub token_env: Option<String>,
    /// File holding the token itself (a mounted Secret).
    #[serde(default)]
    pub token_file: Option<String>,
}

/// Admin role.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RawAdminRole {
    /// Read approvals and audit.
    #[default]
    Viewer,
    /// Also approve and deny.
    Approver,
    /// Everything.
    Admin,
}

/// The MCP proxy: tool servers and limits.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawMcp {
    /// Tool servers, each served at `/mcp/{name}`.
    #[serde(default)]
    pub servers: Vec<RawMcpServer>,
    /// Largest JSON-RPC message accepted from a client or an upstream, in bytes. Default
    /// 4194304 (4 MiB).
    #[serde(default)]
    pub max_message_bytes: Option<u64>,
    /// Most open client sessions over all servers; `initialize` beyond it gets HTTP 503.
    /// Default 1024.
    #[serde(default)]
    pub max_sessions: Option<u64>,
    /// A session unused this long is closed (its stdio child stopped). Default 1800000 (30 min).
    #[serde(default)]
    pub session_idle_timeout_ms: Option<u64>,
    /// How long a request may wait for its upstream's answer. Default 60000.
    #[serde(default)]
    pub request_timeout_ms: Option<u64>,
}

/// One MCP server: reached over Streamable HTTP (`url`) or started as a stdio child process per
/// session (`command`).
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawMcpServer {
    /// Unique name: the route `/mcp/{name}` and the `server` in policy input. Letters, digits,
    /// `-` and `_`.
    pub name: String,
    /// Streamable HTTP endpoint of the upstream, e.g. `http://tools:8000/mcp`.
    #[serde(default)]
    pub url: Option<String>,
    /// Program and arguments of a stdio server, started once per client session.
    #[serde(default)]
    pub command: Vec<String>,
    /// Environment variables for the stdio server (nothing else is inherited but `PATH`,
    /// `HOME`, `LANG` and `TMPDIR`).
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Labels of this server's tools by tool name, for policy: `untrusted_source`,
    /// `private_data`, `external_sink`. `"*"` applies to every tool of the server.
    #[serde(default)]
    pub tools: BTreeMap<String, Vec<String>>,
}

/// Where the policy comes from and what happens when it cannot decide.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawPolicy {
    /// Directory of `.rego` files plus optional `data.json` / `data.yaml` (an OPA-style
    /// bundle; subdirectories included). Without it the embedded default bundle decides.
    /// Re-read on every reload; an invalid bundle keeps the previous one.
    #[serde(default)]
    pub bundle: Option<String>,
    /// What an exchange gets when the policy errors or returns no decision: `deny` (default,
    /// fail closed) or `allow` (fail open; counted and logged either way).
    #[serde(default)]
    pub on_error: Option<RawOnError>,
}

/// A failure mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RawOnError {
    /// Refuse the exchange.
    Deny,
    /// Let the exchange proceed.
    Allow,
}

impl RawOnError {
    /// The fail mode; unset means closed.
    pub(crate) fn fail_mode(value: Option<Self>) -> portcullis_core::OnError {
        match value {
            None | Some(Self::Deny) => portcullis_core::OnError::FailClosed,
            Some(Self::Allow) => portcullis_core::OnError::FailOpen,
        }
    }
}

/// How a denied exchange is answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RawDenyWith {
    /// An OpenAI-shaped error, status 400, `code` naming the violation.
    Error,
    /// A synthetic completion (`finish_reason: content_filter`) carrying a refusal, for
    /// clients that cannot handle errors. Embeddings always get the error.
    Refusal,
}

/// What a stream does when a possible finding would hold more than the window allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RawOverflow {
    /// End the stream (default).
    Block,
    /// Release the held text unredacted.
    Release,
}

/// Guard settings. Every field of `routes.<route>` overrides the one here for that route.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawGuard {
    /// Whether requests and responses are inspected and decided on. Default true.
    #[serde(default)]
    pub enabled: Option<bool>,
    /// Decide and record (header, metrics, log) but never block or rewrite: how a new policy
    /// is rolled out. Default false.
    #[serde(default)]
    pub shadow: Option<bool>,
    /// How a deny is answered: `error` (default) or `refusal`.
    #[serde(default)]
    pub deny_with: Option<RawDenyWith>,
    /// Whether the policy's reasons appear in the error message sent to the client. Default
    /// true; turn off so that clients cannot probe the policy.
    #[serde(default)]
    pub expose_reasons: Option<bool>,
    /// Insert a per-request canary into the system prompt and treat its appearance in the
    /// answer as a `system_prompt_leak`. Default false (it changes the request).
    #[serde(default)]
    pub canary: Option<bool>,
    /// Hosts that links and images in answers may point at without an `exfiltration`
    /// finding (exact names or `*.example.com`).
    #[serde(default)]
    pub allowed_link_hosts: Vec<String>,
    /// What a stream does when a possible finding would hold more than 16 KiB: `block`
    /// (default) or `release`.
    #[serde(default)]
    pub stream_overflow: Option<RawOverflow>,
    /// Memory for remembering the detector results of texts already scanned, so that the
    /// system prompt and conversation history, which clients resend with every turn, are
    /// scanned once. Exact text match; entries are kept per tenant. Default 8388608 (8 MiB);
    /// 0 turns it off.
    #[serde(default)]
    pub scan_cache_bytes: Option<u64>,
    /// Per-route overrides, keyed by route: `chat_completions`, `completions`, `embeddings`.
    #[serde(default)]
    pub routes: BTreeMap<String, RawRouteGuard>,
}

/// Guard settings for one route; unset fields inherit from `guard`.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawRouteGuard {
    /// See `guard.enabled`.
    #[serde(default)]
    pub enabled: Option<bool>,
    /// See `guard.shadow`.
    #[serde(default)]
    pub shadow: Option<bool>,
    /// See `guard.deny_with`.
    #[serde(default)]
    pub deny_with: Option<RawDenyWith>,
    /// See `guard.expose_reasons`.
    #[serde(default)]
    pub expose_reasons: Option<bool>,
    /// See `guard.canary`.
    #[serde(default)]
    pub canary: Option<bool>,
}

/// One model server speaking the OpenAI-compatible HTTP API.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawUpstream {
    /// Unique name, used in metrics, logs and `default_upstream`.
    pub name: String,
    /// Base URL including the API prefix, e.g. `http://vllm:8000/v1` or
    /// `https://api.openai.com/v1`. `/chat/completions` etc. are appended to it.
    pub url: String,
    /// Model names this upstream serves: exact names (`gpt-4o`) or patterns with `*` and `?`
    /// (`llama3*`). Exact names win over patterns; patterns are tried in file order.
    #[serde(default)]
    pub models: Vec<String>,
    /// Environment variable holding this upstream's API key.
    #[serde(default)]
    pub api_key_env: Option<String>,
    /// File holding this upstream's API key (e.g. a mounted Kubernetes Secret); surrounding
    /// whitespace is trimmed. Mutually exclusive with `api_key_env`.
    #[serde(default)]
    pub api_key_file: Option<String>,
    /// Header the key is sent in. `authorization` (default) sends `Bearer <key>`; any other
    /// header (e.g. `api-key` for Azure OpenAI) sends the bare key.
    #[serde(default)]
    pub api_key_header: Option<String>,
    /// Extra headers sent with every request to this upstream.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// TCP (and TLS) connect timeout; defaults to `timeouts.upstream_connect_ms`.
    #[serde(default)]
    pub connect_timeout_ms: Option<u64>,
    /// Time from sending the request to the response headers; defaults to
    /// `timeouts.upstream_first_byte_ms`.
    #[serde(default)]
    pub first_byte_timeout_ms: Option<u64>,
    /// Longest silence allowed between two chunks of a streamed or large response; defaults to
    /// `timeouts.upstream_idle_ms`.
    #[serde(default)]
    pub idle_timeout_ms: Option<u64>,
    /// Idle keep-alive connections kept per upstream host. Default 64.
    #[serde(default)]
    pub max_idle_connections: Option<usize>,
    /// Whether prompts may reach this upstream unredacted. `false` marks a third party: the
    /// default policy then redacts PII and secrets in prompts bound for it. Default true.
    #[serde(default)]
    pub trusted: Option<bool>,
}

/// Size and concurrency limits.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawLimits {
    /// Largest request body accepted; larger ones get 413. Default 4194304 (4 MiB).
    #[serde(default)]
    pub max_body_bytes: Option<u64>,
    /// Largest non-streamed upstream response accepted; larger ones end in 502. Default
    /// 33554432 (32 MiB).
    #[serde(default)]
    pub max_response_bytes: Option<u64>,
    /// Requests handled at once; further ones get 429 `concurrency_limit_exceeded`.
    /// Default 1024.
    #[serde(default)]
    pub max_concurrent_requests: Option<u32>,
}

/// Timeouts. Upstream ones are defaults that each upstream may override.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawTimeouts {
    /// Time a client has to send the request headers. Default 10000.
    #[serde(default)]
    pub client_header_ms: Option<u64>,
    /// Time a client has to send the whole request body. Default 30000.
    #[serde(default)]
    pub client_body_ms: Option<u64>,
    /// Default upstream connect timeout. Default 5000.
    #[serde(default)]
    pub upstream_connect_ms: Option<u64>,
    /// Default time to the upstream's response headers. Default 120000 (a model may think for a
    /// while before answering a non-streamed request).
    #[serde(default)]
    pub upstream_first_byte_ms: Option<u64>,
    /// Default longest silence between chunks from an upstream. Default 60000.
    #[serde(default)]
    pub upstream_idle_ms: Option<u64>,
}

/// A `/v1/*` path forwarded without inspection.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawPassthrough {
    /// Path pattern with `*` and `?`, e.g. `/v1/audio/*`. Must start with `/v1/`.
    pub path: String,
    /// Upstream to forward to. Defaults to `default_upstream`.
    #[serde(default)]
    pub upstream: Option<String>,
}

/// Graceful shutdown on SIGTERM.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawShutdown {
    /// How long in-flight requests and streams may run after SIGTERM before they are cut.
    /// Default 25000 (under Kubernetes' default 30 s grace period).
    #[serde(default)]
    pub drain_timeout_ms: Option<u64>,
}

/// Parses YAML (JSON is YAML too) into a [`RawConfig`]. Type errors and unknown keys are
/// reported with their path.
pub fn parse_yaml(text: &str) -> Result<RawConfig, ConfigErrors> {
    let deserializer = serde_yaml_ng::Deserializer::from_str(text);
    serde_path_to_error::deserialize(deserializer).map_err(|error| {
        let path = error.path().to_string();
        let path = if path == "." { String::new() } else { path };
        ConfigErrors(vec![ConfigError::new(path, error.into_inner().to_string())])
    })
}

/// The JSON Schema of the configuration file, as checked in at `docs/config.schema.json`.
pub fn json_schema() -> serde_json::Value {
    serde_json::Value::from(schemars::schema_for!(RawConfig))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_errors_carry_paths() {
        let errors = parse_yaml(
            "upstreams:\n  - name: a\n    url: http://x/v1\n  - name: b\n    url: [1]\n",
        )
        .unwrap_err();
        assert_eq!(errors.errors()[0].path, "upstreams[1].url");
    }

    #[test]
    fn unknown_keys_are_rejected_with_path() {
        let errors = parse_yaml("limits:\n  max_body: 10\n").unwrap_err();
        assert_eq!(errors.errors()[0].path, "limits.max_body");
        assert!(errors.errors()[0].message.contains("unknown field"));
    }

    #[test]
    fn invalid_yaml_is_an_error_not_a_panic() {
        assert!(parse_yaml("listen: [").is_err());
        assert!(parse_yaml("- 1\n- 2").is_err());
    }
}
