use std::sync::Arc;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

mod access;
mod admin;
mod audit;

pub use access::{AuthOutcome, RateLimitOutcome};
pub use admin::AdminSurface;
pub use audit::{AuditOutcome, AuditSinkKind, AuditSinkWrite};

/// Latency buckets in seconds: sub-millisecond resolution for gateway overhead, up to two
/// minutes for slow generations. Adding buckets costs memory per label set and scrape size.
const LATENCY_BUCKETS: [f64; 17] = [
    0.000_25, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 15.0,
    60.0, 120.0,
];

/// Buckets for in-process work (detectors, one policy decision): microseconds to 100 ms.
const WORK_BUCKETS: [f64; 14] = [
    0.000_005, 0.000_01, 0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005,
    0.01, 0.025, 0.05, 0.1,
];

fn work_histogram() -> Histogram {
    Histogram::new(WORK_BUCKETS)
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

fn latency_histogram() -> Histogram {
    Histogram::new(LATENCY_BUCKETS)
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    route: &'static str,
    model: Arc<str>,
    status: u16,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct UpstreamLabels {
    upstream: Arc<str>,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct UpstreamFailureLabels {
    upstream: Arc<str>,
    kind: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RejectLabels {
    origin: &'static str,
    code: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct McpLabels {
    server: Arc<str>,
    method: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct McpServerLabels {
    server: Arc<str>,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabels {
    result: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DecisionLabels {
    route: &'static str,
    stage: &'static str,
    action: &'static str,
    mode: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FindingLabels {
    stage: &'static str,
    category: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StageLabels {
    stage: &'static str,
}

/// One policy decision, as the metrics see it. Every field is from a closed set.
#[derive(Debug, Clone)]
pub struct DecisionRecord<'a> {
    /// Route label (`chat_completions`, ...).
    pub route: &'static str,
    /// `request` or `response`.
    pub stage: &'static str,
    /// `allow`, `deny`, `redact` or `require_approval` (what the policy answered, or what the
    /// failure mode gave).
    pub action: &'static str,
    /// Decided in shadow mode (recorded, not enforced).
    pub shadow: bool,
    /// The policy failed (error or no decision) and the failure mode decided.
    pub policy_error: bool,
    /// Flagged finding categories the decision saw (`prompt_injection`, `pii.email`, ...).
    pub categories: &'a [&'static str],
    /// Time the detectors took for this decision, if they ran for it.
    pub detect: Option<Duration>,
    /// Time the policy evaluation took.
    pub policy: Duration,
}

/// One finished exchange, as the metrics see it.
#[derive(Debug, Clone)]
pub struct ExchangeRecord {
    /// Closed-set route name (`chat_completions`, `models`, `passthrough`, ...).
    pub route: &'static str,
    /// Configured model name or pattern that routed the request (`-` when none did).
    pub model: Arc<str>,
    /// Response status sent to the client.
    pub status: u16,
    /// Time from request start to the response headers (streams: see `portcullis_stream_*`).
    pub duration: Duration,
    /// Upstream name and its time to response headers, if the request was forwarded.
    pub upstream: Option<(Arc<str>, Duration)>,
    /// Request body bytes received.
    pub request_bytes: u64,
    /// Where a rejection came from and its code, if the gateway refused the request.
    pub reject: Option<(&'static str, &'static str)>,
}

/// Why talking to an upstream failed: a closed set, used as a label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpstreamFailure {
    /// TCP/TLS connect failed or was refused.
    Connect,
    /// Connect timeout, first-byte timeout or idle-stream timeout.
    Timeout,
    /// The connection broke while sending or receiving.
    Reset,
    /// The upstream answered 5xx.
    ServerError,
    /// The answer was not what the API promises (not JSON, truncated stream, too large).
    BadResponse,
}

impl UpstreamFailure {
    fn label(self) -> &'static str {
        match self {
            Self::Connect => "connect",
            Self::Timeout => "timeout",
            Self::Reset => "reset",
            Self::ServerError => "server_error",
            Self::BadResponse => "bad_response",
        }
    }
}

/// Outcome of a configuration reload attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReloadResult {
    /// The new configuration replaced the old one.
    Applied,
    /// The file had not changed.
    Unchanged,
    /// The new configuration was invalid; the old one stays.
    Error,
}

/// Decrements the active-stream gauge when dropped.
#[derive(Debug)]
pub struct StreamGauge(Gauge);

impl Drop for StreamGauge {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// All Portcullis metric families, in one registry.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    request_duration: HistogramFamily<RouteLabels>,
    upstream_duration: HistogramFamily<UpstreamLabels>,
    request_bytes: Family<RouteLabels, Counter>,
    response_bytes: Family<RouteLabels, Counter>,
    active_requests: Gauge,
    active_streams: Gauge,
    upstream_failures: Family<UpstreamFailureLabels, Counter>,
    rejects: Family<RejectLabels, Counter>,
    passthrough: Family<UpstreamLabels, Counter>,
    config_reloads: Family<ResultLabels, Counter>,
    decisions: Family<DecisionLabels, Counter>,
    findings: Family<FindingLabels, Counter>,
    policy_errors: Family<StageLabels, Counter>,
    detect_duration: HistogramFamily<StageLabels>,
    policy_duration: HistogramFamily<StageLabels>,
    scan_cache: Family<ResultLabels, Counter>,
    mcp_requests: Family<McpLabels, Counter>,
    mcp_tool_changes: Family<McpServerLabels, Counter>,
    mcp_sessions: Gauge,
    approvals: Family<OutcomeLabels, Counter>,
    approvals_held: Gauge,
    audit: audit::AuditMetrics,
    admin: admin::AdminMetrics,
    access: access::AccessMetrics,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: &'static str,
}

/// Something that happened to a held approval.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApprovalEvent {
    /// A pending approval was recorded and its call held.
    Created,
    /// A held call was approved.
    Approved,
    /// A held call was denied.
    Denied,
    /// A held call expired.
    Expired,
    /// `approvals.max_pending` was reached; the call was refused at once.
    Full,
    /// The store failed to record or read an approval; the call was refused.
    StoreError,
    /// A webhook message was delivered.
    WebhookSent,
    /// A webhook message failed after its retries.
    WebhookFailed,
    /// The webhook queue was full; the message was dropped.
    WebhookDropped,
}

impl ApprovalEvent {
    fn label(self) -> &'static str {
        match self {
            Self::Created => "created",
            Self::Approved => "approved",
            Self::Denied => "denied",
            Self::Expired => "expired",
            Self::Full => "full",
            Self::StoreError => "store_error",
            Self::WebhookSent => "webhook_sent",
            Self::WebhookFailed => "webhook_failed",
            Self::WebhookDropped => "webhook_dropped",
        }
    }
}

/// How the guard's scan cache answered for one text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScanCacheResult {
    /// The remembered scan was used; the detectors did not run.
    Hit,
    /// The detectors ran and the scan was remembered.
    Miss,
    /// The detectors ran without the cache (off, short text, text too large).
    Bypass,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Creates and registers every family.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("portcullis");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "http_requests",
            "Requests answered, by route, configured model and status",
            requests.clone(),
        );
        let request_duration: HistogramFamily<RouteLabels> =
            Family::new_with_constructor(latency_histogram);
        registry.register(
            "http_request_duration_seconds",
            "Time from request received to response headers sent",
            request_duration.clone(),
        );
        let upstream_duration: HistogramFamily<UpstreamLabels> =
            Family::new_with_constructor(latency_histogram);
        registry.register(
            "upstream_duration_seconds",
            "Time from request forwarded to upstream response headers",
            upstream_duration.clone(),
        );
        let request_bytes = Family::<RouteLabels, Counter>::default();
        registry.register(
            "http_request_bytes",
            "Request body bytes received",
            request_bytes.clone(),
        );
        let response_bytes = Family::<RouteLabels, Counter>::default();
        registry.register(
            "http_response_bytes",
            "Response body bytes sent",
            response_bytes.clone(),
        );
        let active_requests = Gauge::default();
        registry.register(
            "active_requests",
            "Requests being handled",
            active_requests.clone(),
        );
        let active_streams = Gauge::default();
        registry.register(
            "active_streams",
            "Streamed responses in flight",
            active_streams.clone(),
        );
        let upstream_failures = Family::<UpstreamFailureLabels, Counter>::default();
        registry.register(
            "upstream_failures",
            "Failed upstream exchanges, by kind",
            upstream_failures.clone(),
        );
        let rejects = Family::<RejectLabels, Counter>::default();
        registry.register(
            "rejects",
            "Requests refused by the gateway, by origin and error code",
            rejects.clone(),
        );
        let passthrough = Family::<UpstreamLabels, Counter>::default();
        registry.register(
            "passthrough_requests",
            "Requests forwarded unguarded on passthrough paths",
            passthrough.clone(),
        );
        let config_reloads = Family::<ResultLabels, Counter>::default();
        registry.register(
            "config_reload",
            "Configuration reload attempts, by result",
            config_reloads.clone(),
        );
        let decisions = Family::<DecisionLabels, Counter>::default();
        registry.register(
            "guard_decisions",
            "Policy decisions, by route, stage (request, response), action and mode (enforce, shadow)",
            decisions.clone(),
        );
        let findings = Family::<FindingLabels, Counter>::default();
        registry.register(
            "guard_findings",
            "Flagged detector findings seen by a decision, by stage and category",
            findings.clone(),
        );
        let policy_errors = Family::<StageLabels, Counter>::default();
        registry.register(
            "policy_errors",
            "Decisions where the policy failed or returned nothing and the failure mode decided",
            policy_errors.clone(),
        );
        let detect_duration: HistogramFamily<StageLabels> =
            Family::new_with_constructor(work_histogram);
        registry.register(
            "detector_duration_seconds",
            "Time the detectors took for one decision's texts",
            detect_duration.clone(),
        );
        let policy_duration: HistogramFamily<StageLabels> =
            Family::new_with_constructor(work_histogram);
        registry.register(
            "policy_duration_seconds",
            "Time one policy evaluation took",
            policy_duration.clone(),
        );
        let scan_cache = Family::<ResultLabels, Counter>::default();
        registry.register(
            "guard_scan_cache_lookups",
            "Texts the request guard looked up in its scan cache, by result (hit, miss, bypass)",
            scan_cache.clone(),
        );
        let mcp_requests = Family::<McpLabels, Counter>::default();
        registry.register(
            "mcp_requests",
            "MCP requests answered, by configured server and method (tools/call, tools/list, resources/read, prompts/get, initialize, other)",
            mcp_requests.clone(),
        );
        let mcp_tool_changes = Family::<McpServerLabels, Counter>::default();
        registry.register(
            "mcp_tool_changes",
            "Listings in which a tool's definition differed from its pin (rug pulls), by server",
            mcp_tool_changes.clone(),
        );
        let mcp_sessions = Gauge::default();
        registry.register(
            "mcp_sessions",
            "Open MCP client sessions",
            mcp_sessions.clone(),
        );
        let approvals = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "approvals",
            "Approval events: created, approved, denied, expired, full, store_error, webhook_*",
            approvals.clone(),
        );
        let approvals_held = Gauge::default();
        registry.register(
            "approvals_held",
            "Calls held in this process waiting for approval",
            approvals_held.clone(),
        );
        let audit = audit::AuditMetrics::register(&mut registry);
        let admin = admin::AdminMetrics::register(&mut registry);
        let access = access::AccessMetrics::register(&mut registry);
        let build_info = Family::<Vec<(&'static str, &'static str)>, Gauge>::default();
        build_info
            .get_or_create(&vec![("version", env!("CARGO_PKG_VERSION"))])
            .set(1);
        registry.register("build_info", "Portcullis build", build_info);
        Self {
            registry,
            requests,
            request_duration,
            upstream_duration,
            request_bytes,
            response_bytes,
            active_requests,
            active_streams,
            upstream_failures,
            rejects,
            passthrough,
            config_reloads,
            decisions,
            findings,
            policy_errors,
            detect_duration,
            policy_duration,
            scan_cache,
            mcp_requests,
            mcp_tool_changes,
            mcp_sessions,
            approvals,
            approvals_held,
            audit,
            admin,
            access,
        }
    }

    /// Counts one approval event.
    pub fn approval(&self, event: ApprovalEvent) {
        self.approvals
            .get_or_create(&OutcomeLabels {
                outcome: event.label(),
            })
            .inc();
    }

    /// Sets the number of calls held for approval.
    pub fn approvals_held(&self, held: usize) {
        self.approvals_held
            .set(i64::try_from(held).unwrap_or(i64::MAX));
    }

    /// Counts one MCP request; `method` is folded to a closed set.
    pub fn mcp_request(&self, server: &Arc<str>, method: &str) {
        let method = match method {
            "tools/call" => "tools/call",
            "tools/list" => "tools/list",
            "resources/read" => "resources/read",
            "prompts/get" => "prompts/get",
            "initialize" => "initialize",
            _ => "other",
        };
        self.mcp_requests
            .get_or_create(&McpLabels {
                server: server.clone(),
                method,
            })
            .inc();
    }

    /// Counts a tool definition that differs from its pin.
    pub fn mcp_tool_changed(&self, server: &Arc<str>) {
        self.mcp_tool_changes
            .get_or_create(&McpServerLabels {
                server: server.clone(),
            })
            .inc();
    }

    /// Sets the number of open MCP sessions.
    pub fn mcp_sessions(&self, open: usize) {
        self.mcp_sessions
            .set(i64::try_from(open).unwrap_or(i64::MAX));
    }

    /// Records `count` scan-cache lookups with the same result.
    pub fn scan_cache(&self, result: ScanCacheResult, count: u64) {
        if count == 0 {
            return;
        }
        let result = match result {
            ScanCacheResult::Hit => "hit",
            ScanCacheResult::Miss => "miss",
            ScanCacheResult::Bypass => "bypass",
        };
        self.scan_cache
            .get_or_create(&ResultLabels { result })
            .inc_by(count);
    }

    /// Records one policy decision.
    pub fn decision(&self, record: &DecisionRecord<'_>) {
        self.decisions
            .get_or_create(&DecisionLabels {
                route: record.route,
                stage: record.stage,
                action: record.action,
                mode: if record.shadow { "shadow" } else { "enforce" },
            })
            .inc();
        for category in record.categories {
            self.findings
                .get_or_create(&FindingLabels {
                    stage: record.stage,
                    category,
                })
                .inc();
        }
        let stage = StageLabels {
            stage: record.stage,
        };
        if record.policy_error {
            self.policy_errors.get_or_create(&stage).inc();
        }
        if let Some(detect) = record.detect {
            self.detect_duration
                .get_or_create(&stage)
                .observe(detect.as_secs_f64());
        }
        self.policy_duration
            .get_or_create(&stage)
            .observe(record.policy.as_secs_f64());
    }

    /// Counts a request as in flight until the returned guard drops.
    pub fn request_started(&self) -> StreamGauge {
        self.active_requests.inc();
        StreamGauge(self.active_requests.clone())
    }

    /// Counts a stream as active until the returned guard drops.
    pub fn stream_started(&self) -> StreamGauge {
        self.active_streams.inc();
        StreamGauge(self.active_streams.clone())
    }

    /// Records a finished exchange (response headers sent).
    pub fn exchange(&self, record: &ExchangeRecord) {
        let route = RouteLabels {
            route: record.route,
        };
        self.requests
            .get_or_create(&RequestLabels {
                route: record.route,
                model: record.model.clone(),
                status: record.status,
            })
            .inc();
        self.request_duration
            .get_or_create(&route)
            .observe(record.duration.as_secs_f64());
        self.request_bytes
            .get_or_create(&route)
            .inc_by(record.request_bytes);
        if let Some((upstream, duration)) = &record.upstream {
            self.upstream_duration
                .get_or_create(&UpstreamLabels {
                    upstream: upstream.clone(),
                })
                .observe(duration.as_secs_f64());
        }
        if let Some((origin, code)) = record.reject {
            self.rejects
                .get_or_create(&RejectLabels { origin, code })
                .inc();
        }
    }

    /// Adds response body bytes sent on `route` (called as the body is written).
    pub fn response_bytes(&self, route: &'static str, bytes: u64) {
        self.response_bytes
            .get_or_create(&RouteLabels { route })
            .inc_by(bytes);
    }

    /// Counts an upstream failure.
    pub fn upstream_failed(&self, upstream: &Arc<str>, failure: UpstreamFailure) {
        self.upstream_failures
            .get_or_create(&UpstreamFailureLabels {
                upstream: upstream.clone(),
                kind: failure.label(),
            })
            .inc();
    }

    /// Counts a request forwarded on a passthrough path.
    pub fn passthrough_forwarded(&self, upstream: &Arc<str>) {
        self.passthrough
            .get_or_create(&UpstreamLabels {
                upstream: upstream.clone(),
            })
            .inc();
    }

    /// Counts a configuration reload attempt.
    pub fn config_reloaded(&self, result: ReloadResult) {
        let result = match result {
            ReloadResult::Applied => "applied",
            ReloadResult::Unchanged => "unchanged",
            ReloadResult::Error => "error",
        };
        self.config_reloads
            .get_or_create(&ResultLabels { result })
            .inc();
    }

    /// The registry in Prometheus text format.
    pub fn encode(&self) -> String {
        let mut out = String::with_capacity(8 * 1024);
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exchanges_are_counted_with_bounded_labels() {
        let metrics = Metrics::new();
        let model: Arc<str> = Arc::from("gpt-*");
        let upstream: Arc<str> = Arc::from("openai");
        metrics.exchange(&ExchangeRecord {
            route: "chat_completions",
            model,
            status: 200,
            duration: Duration::from_millis(3),
            upstream: Some((upstream.clone(), Duration::from_millis(2))),
            request_bytes: 2048,
            reject: None,
        });
        metrics.upstream_failed(&upstream, UpstreamFailure::Timeout);
        metrics.config_reloaded(ReloadResult::Error);
        let stream = metrics.stream_started();
        let text = metrics.encode();
        assert!(text.contains(
            "portcullis_http_requests_total{route=\"chat_completions\",model=\"gpt-*\",status=\"200\"} 1"
        ), "{text}");
        assert!(text.contains("portcullis_upstream_duration_seconds_count{upstream=\"openai\"} 1"));
        assert!(text.contains(
            "portcullis_upstream_failures_total{upstream=\"openai\",kind=\"timeout\"} 1"
        ));
        assert!(text.contains("portcullis_config_reload_total{result=\"error\"} 1"));
        assert!(text.contains("portcullis_active_streams 1"));
        assert!(
            text.contains("portcullis_http_request_bytes_total{route=\"chat_completions\"} 2048")
        );
        drop(stream);
        assert!(metrics.encode().contains("portcullis_active_streams 0"));
    }
}
