//! The guard: *inspect input → decide → apply* before a request is forwarded, and *inspect
//! output → decide → apply* before an answer reaches the client.
//!
//! ```text
//! request body ──► texts (openai::texts) ──► detectors (Pipeline::default_full, per text with
//!   its context) ──► policy input ──► Policy::decide ──► allow | redact (rewrite body) | deny
//! answer ──► texts ──► pattern detectors + canary ──► policy (stage response) ──► send | redact | deny
//! stream ──► StreamGuard (stream.rs): whole SSE events held until their text is cleared
//! ```
//!
//! A policy that errors or answers nothing gets the configured failure mode (closed by
//! default), is counted (`portcullis_policy_errors_total`) and logged. Shadow mode decides and
//! records but sends the exchange on unchanged. Only a rewritten request is re-serialised, so
//! clean traffic keeps its bytes.

mod audited;
mod bundle;
mod cache;
mod input;
pub(crate) mod stream;
mod tools;

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use portcullis_config::{AuditOnFull, Config, PolicySource, RouteGuard, StreamOverflow};
use portcullis_core::OnError;
use portcullis_detect::{
    CanaryDetector, Context, Detector, HostAllowlist, OnOverflow, Pipeline, RedactionMap, Scan,
    StreamConfig,
};
use portcullis_openai::Endpoint;
use portcullis_openai::texts::{self, Location};
use portcullis_policy::{Action, Bundle, Decision, Policy};
use portcullis_telemetry::{DecisionRecord, Metrics};
use serde_json::Value;

use crate::reject::Reject;
use crate::snapshot::Snapshot;

pub(crate) use audited::{
    AuditHandle, Audited, Auditing, Inspected, location_label, pointer_texts, resolution_event,
    usage_of,
};
pub use bundle::{BundleError, MAX_FILE_BYTES, read_bundle_dir};
pub(crate) use input::{
    Base, Located, findings_json, flagged_categories, principal_json, redacted_findings, scan_texts,
};

/// The scan cache partition of a caller: its tenant. Callers without a tenant share the
/// default partition.
pub(crate) fn cache_partition(principal: &portcullis_core::Principal) -> &str {
    principal.tenant.as_deref().unwrap_or("")
}

/// Longest policy reason or code kept; longer ones are cut.
const MAX_REASON_CHARS: usize = 300;
/// Most reasons sent to a client.
const MAX_REASONS: usize = 8;
/// The code and reason of a decision refused because the audit log cannot record it.
pub(crate) const AUDIT_UNAVAILABLE: &str = "audit_unavailable";
const AUDIT_UNAVAILABLE_REASON: &str = "the audit log cannot record this decision";

/// The guard's share of a snapshot: detectors, the compiled policy and the failure mode.
pub(crate) struct GuardRuntime {
    full: Pipeline,
    /// The full pipeline plus the tool-poisoning detector, for tool definitions.
    definitions: Pipeline,
    patterns: Arc<Pipeline>,
    policy: Policy,
    on_error: OnError,
    stream: StreamConfig,
    /// Remembered request scans (`guard.scan_cache_bytes`); `None` when off.
    cache: Option<cache::ScanCache>,
    /// `sha256:` and the SHA-256 of the bundle's sources (audit events name it).
    bundle_hash: String,
}

impl std::fmt::Debug for GuardRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GuardRuntime")
            .field("on_error", &self.on_error)
            .finish_non_exhaustive()
    }
}

/// Why the guard could not be built.
#[derive(Debug, thiserror::Error)]
pub enum GuardError {
    /// The policy bundle directory could not be read.
    #[error("policy.bundle: {0}")]
    Bundle(#[from] BundleError),
    /// The bundle did not compile.
    #[error("policy.bundle: {0}")]
    Policy(#[from] portcullis_policy::Error),
    /// The detectors did not load (the shipped model).
    #[error("detectors: {0}")]
    Detect(#[from] portcullis_detect::Error),
}

impl GuardRuntime {
    /// Loads and compiles the policy and builds the detectors. Reads the bundle directory.
    pub(crate) fn build(config: &Config) -> Result<Self, GuardError> {
        let bundle = match &config.guard.policy {
            PolicySource::Embedded => Bundle::embedded_default(),
            PolicySource::Dir(dir) => read_bundle_dir(dir)?,
        };
        let policy = Policy::compile(&bundle)?;
        let bundle_hash = bundle_hash(&bundle);
        let allowlist = HostAllowlist::new(&config.guard.allowed_link_hosts);
        let on_overflow = match config.guard.stream_overflow {
            StreamOverflow::Block => OnOverflow::Block,
            StreamOverflow::Release => OnOverflow::Release,
        };
        Ok(Self {
            full: Pipeline::default_full(allowlist.clone())?,
            definitions: Pipeline::default_tool_definitions(allowlist.clone())?,
            patterns: Arc::new(Pipeline::with_pattern_detectors(allowlist)),
            policy,
            cache: cache::ScanCache::new(config.guard.scan_cache_bytes),
            bundle_hash,
            on_error: config.guard.on_error,
            stream: StreamConfig {
                // Each rescan reads the lookback and hold-back again (2048 + 256 bytes): every
                // 128 new bytes instead of the scanner's default 32 bounds a long stream's
                // scanning at about (2048 + 256) / 128 = 18 bytes read per byte instead of
                // 72 (arithmetic, not a measurement); text is released in steps of 128.
                rescan_every: 128,
                ..StreamConfig::new(on_overflow)
            },
        })
    }

    /// The scan of `text` as `scanning` says; whole texts and definitions through the scan
    /// cache, partitioned by the caller's tenant ([`cache_partition`]) so that a cache hit (and
    /// its timing) says nothing across tenants.
    pub(crate) fn scan_as(&self, partition: &str, scanning: Scanning, text: &str) -> Scan {
        self.scan_counted(partition, scanning, text).0
    }

    /// Like [`GuardRuntime::scan_as`], also saying how the cache answered.
    fn scan_counted(
        &self,
        partition: &str,
        scanning: Scanning,
        text: &str,
    ) -> (Scan, cache::Lookup) {
        let run = || match scanning {
            Scanning::Whole(context) => self.full.scan(text, context),
            Scanning::Definition => self.definitions.scan(text, Context::Document),
            Scanning::Patterns(context) => self.patterns.scan(text, context),
        };
        match (&self.cache, scanning) {
            (Some(cache), Scanning::Whole(_) | Scanning::Definition) => {
                cache.scan(partition, scanning, text, run)
            }
            _ => (run(), cache::Lookup::Bypass),
        }
    }

    /// `sha256:` and the digest of the policy bundle's modules and data (audit events).
    pub(crate) fn bundle_hash(&self) -> &str {
        &self.bundle_hash
    }

    /// Evaluates the policy, applying the failure mode when it cannot decide, and records the
    /// decision.
    pub(crate) fn decide(&self, input: &Value, record: &mut Recorded<'_>) -> Verdict {
        let started = Instant::now();
        let outcome = self.policy.decide(input).map_err(|error| error.to_string());
        self.conclude(outcome, started.elapsed(), record)
    }

    /// The decision when the detectors could not read everything a message carries (more texts
    /// than `portcullis_mcp::texts::MAX_TEXTS`): the failure mode, as when the policy cannot
    /// decide (closed by default), counted and logged the same way.
    pub(crate) fn cannot_inspect(&self, why: &str, record: &mut Recorded<'_>) -> Verdict {
        self.conclude(Err(why.to_owned()), std::time::Duration::ZERO, record)
    }

    fn conclude(
        &self,
        outcome: Result<Decision, String>,
        elapsed: std::time::Duration,
        record: &mut Recorded<'_>,
    ) -> Verdict {
        let (decision, policy_error) = match outcome {
            Ok(decision) => (decision, false),
            Err(error) => {
                tracing::warn!(
                    stage = record.stage,
                    route = record.route,
                    error = %error,
                    on_error = ?self.on_error,
                    "the check could not decide; the failure mode applies"
                );
                let decision = match self.on_error {
                    OnError::FailClosed => Decision {
                        action: Action::Deny,
                        reasons: vec!["the policy could not decide".into()],
                        redact: Vec::new(),
                        code: None,
                    },
                    OnError::FailOpen => Decision::allow(),
                };
                (decision, true)
            }
        };
        record.metrics.decision(&DecisionRecord {
            route: record.route,
            stage: record.stage,
            action: action_label(decision.action),
            shadow: record.shadow,
            policy_error,
            categories: &record.categories,
            detect: record.detect,
            policy: elapsed,
        });
        let verdict = Verdict {
            decision,
            shadow: record.shadow,
            policy_failed: policy_error,
            audit_failed: false,
            categories: record.categories.clone(),
        };
        match &record.audit {
            Some(audited) => self.audit(audited, record, elapsed, verdict),
            None => verdict,
        }
    }

    /// Queues the decision's audit event. When it cannot be queued and `audit.on_full` is
    /// `block`, the decision becomes a denial (fail closed, even in shadow mode); with `drop`
    /// it stands (the lost event is counted by the log).
    fn audit(
        &self,
        audited: &Audited<'_>,
        record: &Recorded<'_>,
        elapsed: std::time::Duration,
        verdict: Verdict,
    ) -> Verdict {
        let event = audited.event(&audited::Decided {
            route: record.route,
            decision: &verdict.decision,
            bundle_hash: &self.bundle_hash,
            detect: record.detect,
            policy: elapsed,
        });
        let log = audited.auditing.log;
        if log.emit(event).is_ok() || log.on_full() == AuditOnFull::Drop {
            return verdict;
        }
        tracing::debug!(
            stage = record.stage,
            route = record.route,
            "the audit queue is full; the decision is refused"
        );
        Verdict {
            decision: Decision {
                action: Action::Deny,
                reasons: vec![AUDIT_UNAVAILABLE_REASON.into()],
                redact: Vec::new(),
                code: Some(AUDIT_UNAVAILABLE.into()),
            },
            shadow: false,
            policy_failed: false,
            audit_failed: true,
            categories: verdict.categories,
        }
    }
}

/// `sha256:` and the SHA-256 over the bundle's modules (path and source, in order) and its
/// data document (canonical JSON), so an audit event names exactly what decided.
fn bundle_hash(bundle: &Bundle) -> String {
    let mut input = Vec::new();
    for module in bundle.modules() {
        input.extend_from_slice(module.path.as_bytes());
        input.push(0);
        input.extend_from_slice(module.source.as_bytes());
        input.push(0);
    }
    input.extend_from_slice(b"data\0");
    input.extend_from_slice(portcullis_audit::canonical_json(bundle.data()).as_bytes());
    format!("sha256:{}", portcullis_audit::Digest::of(&input))
}

/// How a text is scanned: which pipeline, in which context.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Scanning {
    /// The full pipeline (patterns and injection): request texts, tool results.
    Whole(Context),
    /// The full pipeline plus the tool-poisoning detector, as a document: tool definitions.
    Definition,
    /// The pattern detectors (secrets, PII, links): text the model wrote, tool arguments.
    Patterns(Context),
}

/// What a decision is recorded with.
pub(crate) struct Recorded<'a> {
    pub(crate) metrics: &'a Metrics,
    pub(crate) route: &'static str,
    pub(crate) stage: &'static str,
    pub(crate) shadow: bool,
    pub(crate) categories: Vec<&'static str>,
    pub(crate) detect: Option<std::time::Duration>,
    /// The decision's audit event, when an audit log runs.
    pub(crate) audit: Option<Audited<'a>>,
}

/// A decision and whether it is enforced.
#[derive(Debug, Clone)]
pub(crate) struct Verdict {
    pub(crate) decision: Decision,
    pub(crate) shadow: bool,
    /// The policy could not decide; `decision` is the failure mode's.
    pub(crate) policy_failed: bool,
    /// The audit log could not take the decision's event (`audit.on_full: block`); `decision`
    /// is a denial with code `audit_unavailable`.
    pub(crate) audit_failed: bool,
    /// The flagged finding categories the decision saw (trace attributes; never texts).
    pub(crate) categories: Vec<&'static str>,
}

impl Verdict {
    /// The action that takes effect: the decision's, or `allow` in shadow mode.
    pub(crate) fn effective(&self) -> Action {
        if self.shadow {
            Action::Allow
        } else {
            self.decision.action
        }
    }
}

/// The `x-portcullis-decision` value and metric label of an action.
pub(crate) fn action_label(action: Action) -> &'static str {
    match action {
        Action::Allow => "allow",
        Action::Deny => "deny",
        Action::Redact => "redact",
        Action::RequireApproval => "require_approval",
    }
}

/// A refused exchange, as the client will be told.
#[derive(Debug, Clone)]
pub(crate) struct Denial {
    /// The violation's code (from the policy, sanitised).
    pub(crate) code: String,
    /// Reasons, cut to size; empty unless the route exposes them.
    pub(crate) reasons: Vec<String>,
    /// Whether it happened on the answer (not the request).
    pub(crate) on_response: bool,
    /// The policy could not decide (closed failure mode): a 500, never a refusal.
    pub(crate) policy_failed: bool,
    /// The audit log could not record the decision: a 503, never a refusal.
    pub(crate) audit_failed: bool,
}

impl Denial {
    fn new(verdict: &Verdict, guard: RouteGuard, on_response: bool) -> Self {
        let decision = &verdict.decision;
        let fallback = match decision.action {
            Action::RequireApproval => "approval_required",
            _ => "policy_violation",
        };
        let code = decision
            .code
            .as_deref()
            .filter(|c| {
                !c.is_empty()
                    && c.len() <= 64
                    && c.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
            })
            .unwrap_or(fallback)
            .to_string();
        let reasons = if guard.expose_reasons {
            let mut reasons: Vec<String> = decision
                .reasons
                .iter()
                .take(MAX_REASONS)
                .map(|r| r.chars().take(MAX_REASON_CHARS).collect())
                .collect();
            if matches!(decision.action, Action::RequireApproval) {
                reasons.push("human approval is not available on this route".into());
            }
            reasons
        } else {
            Vec::new()
        };
        Self {
            code,
            reasons,
            on_response,
            policy_failed: verdict.policy_failed,
            audit_failed: verdict.audit_failed,
        }
    }

    /// The client-facing message.
    pub(crate) fn message(&self) -> String {
        let what = if self.on_response {
            "The response was blocked by policy"
        } else {
            "The request was blocked by policy"
        };
        if self.reasons.is_empty() {
            format!("{what}.")
        } else {
            format!("{what}: {}.", self.reasons.join("; "))
        }
    }
}

impl Denial {
    /// The rejection this denial answers with.
    pub(crate) fn into_reject(self) -> Reject {
        if self.audit_failed {
            return Reject::AuditUnavailable;
        }
        if self.policy_failed {
            return Reject::PolicyFailed;
        }
        let message = self.message();
        Reject::PolicyDenied {
            code: self.code,
            message,
        }
    }
}

/// The OpenAI-shaped error of a denial (for the error event that ends a blocked stream).
pub(crate) fn denial_error(denial: &Denial) -> portcullis_openai::ApiError {
    denial.clone().into_reject().api_error().1
}

/// The detector context of a text: where it reaches the model.
fn context_of(text: &texts::Text) -> Context {
    match (text.location, text.role.as_deref()) {
        (Location::ToolDefinition { .. }, _) => Context::Document,
        (Location::Prompt { .. }, _) => Context::UserPrompt,
        (Location::Choice { .. }, _) => Context::Assistant,
        (_, Some("tool" | "function")) => Context::ToolOutput,
        (_, Some("system" | "developer")) => Context::System,
        (_, Some("assistant")) => Context::Assistant,
        _ => Context::UserPrompt,
    }
}

/// What the request phase hands on.
pub(crate) struct Forward {
    /// The body to send: the original bytes, or the rewritten request.
    pub(crate) body: Bytes,
    /// Placeholders issued on the request, reused by the answer.
    pub(crate) map: RedactionMap,
    /// The canary inserted into the system prompt, if any.
    pub(crate) canary: Option<String>,
    /// The request decision, for the response header.
    pub(crate) verdict: Verdict,
    /// Names of the tools the request offers after policy (chat completions).
    pub(crate) offered: Vec<String>,
}

/// The request phase's outcome.
pub(crate) enum RequestOutcome {
    /// Send this upstream.
    Forward(Forward),
    /// Refuse.
    Deny(Denial, Verdict),
}

/// Phase: inspect input and decide. `body` was validated by the probe.
pub(crate) fn inspect_request(
    runtime: &GuardRuntime,
    endpoint: Endpoint,
    body: Bytes,
    base: &Base<'_>,
    guard: RouteGuard,
    metrics: &Metrics,
    auditing: Option<Auditing<'_>>,
) -> RequestOutcome {
    let started = Instant::now();
    // The probe accepted the body as a JSON object, so this parses; an empty text list keeps
    // the policy deciding even if it did not.
    let mut parsed = texts::request_texts(endpoint, &body).unwrap_or(texts::RequestTexts {
        body: Value::Null,
        texts: Vec::new(),
        tools: Vec::new(),
    });
    // Offered tools first, each decided on its own: a removed tool is not sent, and a kept
    // tool's findings (scanned once, there) join the request decision.
    let mut offered = if endpoint == Endpoint::ChatCompletions {
        let deciding = tools::Deciding {
            runtime,
            metrics,
            base,
            shadow: guard.shadow,
            auditing,
        };
        tools::filter_offered(&deciding, &mut parsed.body)
    } else {
        tools::Offered::default()
    };
    let mut located = Vec::new();
    let mut lookups = [0u64; 3];
    for (i, text) in parsed.texts.iter().enumerate() {
        if let Location::ToolDefinition { tool } = text.location {
            if let Some((_, found)) = offered.findings.iter_mut().find(|(t, _)| *t == tool) {
                for mut finding in std::mem::take(found) {
                    finding.text_index = i;
                    located.push(finding);
                }
            }
            continue;
        }
        let context = context_of(text);
        let (scan, lookup) = runtime.scan_counted(
            cache_partition(base.principal),
            Scanning::Whole(context),
            &text.text,
        );
        lookups[match lookup {
            cache::Lookup::Hit => 0,
            cache::Lookup::Miss => 1,
            cache::Lookup::Bypass => 2,
        }] += 1;
        for finding in scan.findings {
            let flagged = scan.flagged.contains(&finding.category);
            located.push(Located::new(finding, flagged, i, text, context));
        }
    }
    let detect = started.elapsed();
    for (lookup, count) in [
        cache::Lookup::Hit,
        cache::Lookup::Miss,
        cache::Lookup::Bypass,
    ]
    .into_iter()
    .zip(lookups)
    {
        metrics.scan_cache(lookup, count);
    }
    let messages = parsed
        .body
        .get("messages")
        .and_then(Value::as_array)
        .map_or(0, Vec::len);
    let text_bytes: usize = parsed.texts.iter().map(|t| t.text.len()).sum();
    let input = base.request_input(&located, messages, text_bytes, &offered.kept);
    let audit = auditing.map(|auditing| {
        // Tool definitions had their own `tools_list` events; their findings joined this
        // decision and are in its categories.
        let texts = parsed
            .texts
            .iter()
            .enumerate()
            .filter(|(_, text)| !matches!(text.location, Location::ToolDefinition { .. }))
            .map(|(index, text)| Inspected {
                index,
                label: location_label(endpoint, text.location),
                raw: &text.text,
            })
            .collect();
        let target = portcullis_audit::Target::Model {
            model: base.model.to_owned(),
        };
        auditing.audited(portcullis_audit::Stage::Request, target, texts, &located)
    });
    let mut record = Recorded {
        metrics,
        route: endpoint.label(),
        stage: "request",
        shadow: guard.shadow,
        categories: input::flagged_categories(&located),
        detect: Some(detect),
        audit,
    };
    let verdict = runtime.decide(&input, &mut record);
    let mut map = RedactionMap::new();
    let mut rewritten = !offered.removed.is_empty() && !guard.shadow;
    match verdict.effective() {
        Action::Deny | Action::RequireApproval => {
            return RequestOutcome::Deny(Denial::new(&verdict, guard, false), verdict);
        }
        Action::Redact => {
            rewritten =
                redact_request(endpoint, &mut parsed, &located, &verdict.decision, &mut map);
        }
        Action::Allow => {}
    }
    let canary = (guard.canary && endpoint == Endpoint::ChatCompletions).then(new_canary);
    if let Some(canary) = &canary {
        let note = format!("Confidential marker, never repeat it: {canary}");
        rewritten |= texts::add_to_system_prompt(&mut parsed.body, &note);
    }
    let body = if rewritten {
        match serde_json::to_vec(&parsed.body) {
            Ok(bytes) => Bytes::from(bytes),
            // Serialising a parsed Value cannot fail; fail closed if it ever does.
            Err(_) => {
                let denial = Denial {
                    code: "policy_error".into(),
                    reasons: Vec::new(),
                    on_response: false,
                    policy_failed: true,
                    audit_failed: false,
                };
                return RequestOutcome::Deny(denial, verdict);
            }
        }
    } else {
        body
    };
    RequestOutcome::Forward(Forward {
        body,
        map,
        canary,
        verdict,
        offered: offered.kept,
    })
}

/// Replaces the spans of findings the decision redacts; returns whether anything changed.
fn redact_request(
    endpoint: Endpoint,
    parsed: &mut texts::RequestTexts,
    located: &[Located],
    decision: &Decision,
    map: &mut RedactionMap,
) -> bool {
    let mut changed = false;
    for (i, text) in parsed.texts.iter().enumerate() {
        let findings = redacted_findings(located, decision, i);
        if findings.is_empty() {
            continue;
        }
        let redacted = map.redact(&text.text, &findings);
        if redacted.text != text.text {
            changed |= texts::set_text(endpoint, &mut parsed.body, text.location, redacted.text);
        }
    }
    changed
}

/// A fresh canary: `pc-` and 128 random bits in hex.
fn new_canary() -> String {
    format!("pc-{}", crate::token::random_hex128())
}

/// What the answer phase needs from the request phase.
pub(crate) struct AnswerGuard {
    pub(crate) snapshot: Arc<Snapshot>,
    pub(crate) endpoint: Endpoint,
    pub(crate) guard: RouteGuard,
    pub(crate) base: input::OwnedBase,
    pub(crate) map: RedactionMap,
    pub(crate) canary: Option<String>,
    pub(crate) metrics: Arc<Metrics>,
    /// The tools the request offered, after policy.
    pub(crate) offered: Vec<String>,
    /// The audit log and the exchange's request id, when an audit log runs.
    pub(crate) audit: Option<AuditHandle>,
}

impl AnswerGuard {
    fn extra(&self) -> Vec<Box<dyn Detector>> {
        self.canary
            .iter()
            .map(|c| Box::new(CanaryDetector::new(c.clone())) as Box<dyn Detector>)
            .collect()
    }

    /// Phase: inspect a whole (non-streamed, successful) answer, `bytes` as received and
    /// `body` parsed, and decide. Returns the bytes to send — the original ones unless
    /// redacted — or the denial.
    pub(crate) fn inspect_answer(
        mut self,
        bytes: Bytes,
        mut body: Value,
    ) -> (Result<Bytes, Denial>, Verdict) {
        let runtime = self.snapshot.guard();
        let started = Instant::now();
        let extra = self.extra();
        let extra_refs: Vec<&dyn Detector> = extra.iter().map(|d| d.as_ref()).collect();
        let answers = texts::response_texts(self.endpoint, &body);
        let mut located = Vec::new();
        for (i, text) in answers.iter().enumerate() {
            let scan = runtime
                .patterns
                .scan_with(&text.text, Context::Assistant, &extra_refs);
            for finding in scan.findings {
                let flagged = scan.flagged.contains(&finding.category);
                located.push(Located::new(finding, flagged, i, text, Context::Assistant));
            }
        }
        let detect = started.elapsed();
        let input = self.base.borrow().response_input(&located);
        let audit = self.audit.as_ref().map(|handle| {
            let texts = answers
                .iter()
                .enumerate()
                .map(|(index, text)| Inspected {
                    index,
                    label: location_label(self.endpoint, text.location),
                    raw: &text.text,
                })
                .collect();
            let target = portcullis_audit::Target::Model {
                model: self.base.borrow().model.to_owned(),
            };
            let mut audited =
                handle
                    .borrow()
                    .audited(portcullis_audit::Stage::Response, target, texts, &located);
            audited.tokens = usage_of(&body);
            audited
        });
        let mut record = Recorded {
            metrics: &self.metrics,
            route: self.endpoint.label(),
            stage: "response",
            shadow: self.guard.shadow,
            categories: input::flagged_categories(&located),
            detect: Some(detect),
            audit,
        };
        let verdict = runtime.decide(&input, &mut record);
        let outcome = match verdict.effective() {
            Action::Deny | Action::RequireApproval => {
                let denial = Denial::new(&verdict, self.guard, true);
                (Err(denial), verdict)
            }
            Action::Redact => {
                let mut changed = false;
                for (i, text) in answers.iter().enumerate() {
                    let findings = redacted_findings(&located, &verdict.decision, i);
                    if findings.is_empty() {
                        continue;
                    }
                    let redacted = self.map.redact(&text.text, &findings);
                    changed |=
                        texts::set_text(self.endpoint, &mut body, text.location, redacted.text);
                }
                let out = if changed {
                    serde_json::to_vec(&body).map(Bytes::from).unwrap_or(bytes)
                } else {
                    bytes
                };
                (Ok(out), verdict)
            }
            Action::Allow => (Ok(bytes), verdict),
        };
        // Tool calls: a refused call blocks the whole answer before the client can run it.
        let calls = if self.endpoint == Endpoint::ChatCompletions && outcome.0.is_ok() {
            tools::answer_calls(&body)
        } else {
            Vec::new()
        };
        if !calls.is_empty() {
            let base = self.base.borrow();
            let deciding = tools::Deciding {
                runtime,
                metrics: &self.metrics,
                base: &base,
                shadow: self.guard.shadow,
                auditing: self.audit.as_ref().map(AuditHandle::borrow),
            };
            if let Some(refused) = tools::decide_calls(&deciding, &self.offered, &calls) {
                let denial = Denial::new(&refused, self.guard, true);
                return (Err(denial), refused);
            }
        }
        outcome
    }
}

/// A synthetic answer carrying the refusal, for routes configured with `deny_with: refusal`:
/// a completion (or a stream of one) whose `finish_reason` is `content_filter`. `None` for
/// embeddings, which have no way to carry text.
pub(crate) fn refusal_body(
    endpoint: Endpoint,
    stream: bool,
    model: &str,
    id: &str,
    denial: &Denial,
) -> Option<(Bytes, &'static str)> {
    let message = denial.message();
    let created = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (object, chunk_object, choice, first, last) = match endpoint {
        Endpoint::ChatCompletions => (
            "chat.completion",
            "chat.completion.chunk",
            serde_json::json!({"index": 0, "message": {"role": "assistant", "content": message, "refusal": message},
                "finish_reason": "content_filter", "logprobs": null}),
            serde_json::json!({"index": 0, "delta": {"role": "assistant", "content": message}, "finish_reason": null}),
            serde_json::json!({"index": 0, "delta": {}, "finish_reason": "content_filter"}),
        ),
        Endpoint::Completions => (
            "text_completion",
            "text_completion",
            serde_json::json!({"index": 0, "text": message, "finish_reason": "content_filter", "logprobs": null}),
            serde_json::json!({"index": 0, "text": message, "finish_reason": null, "logprobs": null}),
            serde_json::json!({"index": 0, "text": "", "finish_reason": "content_filter", "logprobs": null}),
        ),
        Endpoint::Embeddings => return None,
    };
    let id = format!("portcullis-{id}");
    if !stream {
        let body = serde_json::json!({"id": id, "object": object, "created": created, "model": model,
            "choices": [choice], "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}});
        return Some((Bytes::from(body.to_string()), "application/json"));
    }
    let mut out = String::new();
    for choice in [first, last] {
        let chunk = serde_json::json!({"id": id, "object": chunk_object, "created": created, "model": model, "choices": [choice]});
        out.push_str("data: ");
        out.push_str(&chunk.to_string());
        out.push_str("\n\n");
    }
    out.push_str("data: [DONE]\n\n");
    Some((Bytes::from(out), "text/event-stream"))
}
