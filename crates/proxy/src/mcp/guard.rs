//! Inspect → decide → apply for MCP messages, shared by the HTTP route and `portcullis mcp
//! stdio`:
//!
//! - `tools/list` results: each tool's definition is fingerprinted against its pin (rug pull →
//!   `tool.changed`), its texts scanned (poisoning, injection, invisible text), and one policy
//!   decision (stage `tools_list`) per tool; a denied tool is removed from the list.
//! - `tools/call` requests: the arguments' strings are scanned (secrets, PII, exfiltration
//!   links) and the policy (stage `tool_call`) sees the tool, its labels, the arguments, the
//!   session's taint; deny and require_approval become a tool error result, redact rewrites the
//!   arguments before they leave.
//! - results of `tools/call`, `resources/read` and `prompts/get`: every text scanned as
//!   `tool_output` (indirect injection, secrets, PII); stage `tool_result`; deny replaces the
//!   result (a tool error result, or a JSON-RPC error for resources and prompts), redact
//!   rewrites the strings in place (text content and `structuredContent` alike).
//!
//! A policy that cannot decide takes `policy.on_error` like every other decision.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use portcullis_config::McpServer;
use portcullis_core::ToolLabel;
use portcullis_detect::{Context, RedactionMap};
use portcullis_mcp::texts::{self, Texts};
use portcullis_mcp::{PinStatus, Pins, SessionState, fingerprint};
use portcullis_policy::{Action, Decision};
use portcullis_store::NewApproval;
use portcullis_telemetry::Metrics;
use serde_json::{Map, Value, json};

use crate::guard::{
    Auditing, GuardRuntime, Located, Recorded, Scanning, Verdict, cache_partition, findings_json,
    flagged_categories, pointer_texts, principal_json, redacted_findings, scan_texts,
};

/// What one MCP decision needs.
pub(crate) struct McpContext<'a> {
    pub(crate) runtime: &'a GuardRuntime,
    pub(crate) server: &'a McpServer,
    pub(crate) pins: &'a Mutex<Pins>,
    pub(crate) metrics: &'a Metrics,
    /// Decide and record but never enforce (`guard.routes.mcp.shadow`).
    pub(crate) shadow: bool,
    /// Inspect and decide at all (`guard.routes.mcp.enabled`); off, messages only pass.
    pub(crate) enabled: bool,
    /// Where messages an upstream sends before its response go (the client's SSE stream).
    pub(crate) relay: Option<tokio::sync::mpsc::Sender<super::Relayed>>,
    /// Process-wide services: approvals (held calls) and the audit log.
    pub(crate) services: &'a crate::services::Services,
    /// The client request's id (its `x-request-id` when valid, else a fresh one), for audit
    /// events.
    pub(crate) request_id: &'a str,
    /// The caller (the session's principal).
    pub(crate) principal: &'a Arc<portcullis_core::Principal>,
}

/// What one MCP decision is about, for metrics and its audit event.
struct Subject<'a> {
    /// The policy stage (`tools_list`, `tool_call`, `tool_result`).
    stage: &'static str,
    audit_stage: portcullis_audit::Stage,
    /// The tool; `None` for resources and prompts (the server is the target).
    tool: Option<&'a str>,
    /// Label prefix of the texts (`definition`, `arguments`, `result`).
    texts: &'static str,
}

fn labels_json(labels: &[ToolLabel]) -> Value {
    Value::Array(labels.iter().map(|l| Value::from(l.as_str())).collect())
}

impl McpContext<'_> {
    fn input(&self, stage: &str, session: &Value) -> Map<String, Value> {
        let mut input = Map::new();
        input.insert("stage".into(), Value::from(stage));
        input.insert("principal".into(), principal_json(self.principal));
        input.insert("route".into(), Value::from("mcp"));
        input.insert("server".into(), Value::from(self.server.name.as_str()));
        input.insert("session".into(), session.clone());
        input
    }

    /// Decides; when `texts` could not all be read, the failure mode decides instead.
    fn decide(
        &self,
        subject: Subject<'_>,
        input: Value,
        texts: &Texts,
        located: &[Located],
        detect: std::time::Duration,
    ) -> Verdict {
        let audit = self.services.audit.as_deref().map(|log| {
            let server = self.server.name.clone();
            let target = match subject.tool {
                Some(tool) => portcullis_audit::Target::Tool {
                    server,
                    tool: tool.to_owned(),
                },
                None => portcullis_audit::Target::ToolServer { server },
            };
            let auditing = Auditing {
                log,
                request_id: self.request_id,
                principal: self.principal,
            };
            let texts = pointer_texts(subject.texts, texts);
            auditing.audited(subject.audit_stage, target, texts, located)
        });
        let mut record = Recorded {
            metrics: self.metrics,
            route: "mcp",
            stage: subject.stage,
            shadow: self.shadow,
            categories: flagged_categories(located),
            detect: Some(detect),
            audit,
        };
        if texts.truncated {
            return self
                .runtime
                .cannot_inspect("the message carries too many texts to inspect", &mut record);
        }
        self.runtime.decide(&input, &mut record)
    }

    /// Filters a `tools/list` result in place; returns the names removed.
    pub(crate) fn inspect_tools_list(
        &self,
        session_id: &str,
        session: &Mutex<SessionState>,
        result: &mut Value,
    ) -> Vec<String> {
        let Some(tools) = result.get_mut("tools").and_then(Value::as_array_mut) else {
            return Vec::new();
        };
        let session_json = lock(session)
            .map(|s| s.to_policy(session_id))
            .unwrap_or(Value::Null);
        let mut removed = Vec::new();
        let mut kept = Vec::with_capacity(tools.len());
        for tool in tools.drain(..) {
            let name = tool
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned();
            let started = Instant::now();
            let print = fingerprint(&tool);
            let status = lock(self.pins)
                .map(|mut pins| pins.observe(&self.server.name, &name, &print))
                .unwrap_or(PinStatus::New);
            let texts = texts::tool_definition(&tool);
            let located = scan_texts(
                self.runtime,
                cache_partition(self.principal),
                &texts,
                Scanning::Definition,
                "tool_definition",
                Some(&name),
            );
            let detect = started.elapsed();
            let labels = self.server.labels(&name);
            let mut input = self.input("tools_list", &session_json);
            input.insert(
                "tool".into(),
                json!({
                    "server": self.server.name,
                    "name": name,
                    "labels": labels_json(&labels),
                    "changed": status.is_changed(),
                    "fingerprint": print,
                }),
            );
            input.insert("findings".into(), findings_json(&located));
            let subject = Subject {
                stage: "tools_list",
                audit_stage: portcullis_audit::Stage::ToolsList,
                tool: Some(&name),
                texts: "definition",
            };
            let verdict = self.decide(subject, Value::Object(input), &texts, &located, detect);
            if let PinStatus::Changed { pinned } = &status {
                self.metrics
                    .mcp_tool_changed(&std::sync::Arc::from(self.server.name.as_str()));
                tracing::warn!(
                    server = %self.server.name,
                    tool = %name,
                    pinned = %pinned,
                    now = %print,
                    action = verdict.decision.action.as_str(),
                    "mcp tool definition changed since it was pinned"
                );
            }
            let shown = !matches!(verdict.effective(), Action::Deny | Action::RequireApproval);
            if let Some(mut s) = lock(session) {
                s.record_listing(&name, shown, status.is_changed());
            }
            if shown {
                kept.push(tool);
            } else {
                tracing::warn!(
                    server = %self.server.name,
                    tool = %name,
                    reasons = ?verdict.decision.reasons,
                    "mcp tool hidden by policy"
                );
                removed.push(name);
            }
        }
        *tools = kept;
        removed
    }

    /// Decides on a `tools/call` request's params; may redact its arguments in place.
    pub(crate) fn decide_call(
        &self,
        session_id: &str,
        session: &Mutex<SessionState>,
        params: &mut Value,
        map: &mut RedactionMap,
    ) -> CallOutcome {
        let started = Instant::now();
        let name = params
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned();
        let arguments = params.get("arguments").cloned().unwrap_or(Value::Null);
        let texts = texts::string_leaves(&arguments);
        let located = scan_texts(
            self.runtime,
            cache_partition(self.principal),
            &texts,
            Scanning::Patterns(Context::Assistant),
            "tool_arguments",
            Some(&name),
        );
        let detect = started.elapsed();
        let (session_json, listed, listed_changed) = match lock(session) {
            Some(s) => (
                s.to_policy(session_id),
                s.listed(&name),
                s.listed_changed(&name),
            ),
            None => (Value::Null, None, None),
        };
        // What this session was shown decides; a tool it never listed is judged by whether
        // any listing saw it changed.
        let changed = listed_changed.unwrap_or_else(|| self.pin_changed(&name));
        let labels = self.server.labels(&name);
        let mut input = self.input("tool_call", &session_json);
        input.insert(
            "tool".into(),
            json!({
                "server": self.server.name,
                "name": name,
                "arguments": arguments,
                "labels": labels_json(&labels),
                "changed": changed,
                "listed": listed,
            }),
        );
        input.insert("findings".into(), findings_json(&located));
        input.insert("request".into(), json!({"method": "tools/call"}));
        let subject = Subject {
            stage: "tool_call",
            audit_stage: portcullis_audit::Stage::ToolCall,
            tool: Some(&name),
            texts: "arguments",
        };
        let verdict = self.decide(subject, Value::Object(input), &texts, &located, detect);
        match verdict.effective() {
            Action::Deny => CallOutcome::Refuse(refusal_text(&verdict.decision, "call")),
            Action::RequireApproval => CallOutcome::Hold(Box::new(HoldRequest {
                refusal: refusal_text(&verdict.decision, "call"),
                approval: NewApproval {
                    id: String::new(),
                    created_at_ms: 0,
                    expires_at_ms: 0,
                    request_id: self.request_id.to_owned(),
                    principal: self.principal.id.clone(),
                    tenant: self.principal.tenant.clone(),
                    route: "mcp".into(),
                    server: self.server.name.clone(),
                    tool: params
                        .get("name")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_owned(),
                    arguments: masked(
                        params.get("arguments").unwrap_or(&Value::Null),
                        &texts,
                        &located,
                    ),
                    findings: findings_json(&located),
                    reasons: verdict.decision.reasons.clone(),
                    instance: String::new(),
                },
            })),
            Action::Redact => {
                if let Some(args) = params.get_mut("arguments") {
                    redact_in_place(args, &texts, &located, &verdict.decision, map);
                }
                CallOutcome::Forward
            }
            Action::Allow => CallOutcome::Forward,
        }
    }

    /// Whether a definition of `tool` other than its pin has been listed (a change is seen
    /// at `tools/list`; the call reports it until an operator accepts the new definition).
    fn pin_changed(&self, tool: &str) -> bool {
        lock(self.pins).is_some_and(|pins| pins.has_changed(&self.server.name, tool))
    }

    /// Inspects a result of `method` (`tools/call`, `resources/read`, `prompts/get`) in place.
    pub(crate) fn inspect_result(
        &self,
        session_id: &str,
        session: &Mutex<SessionState>,
        method: &str,
        subject: &Value,
        result: &mut Value,
        map: &mut RedactionMap,
    ) -> ResultOutcome {
        let started = Instant::now();
        let tool_name = (method == "tools/call")
            .then(|| subject.get("name").and_then(Value::as_str))
            .flatten()
            .map(str::to_owned);
        let texts = texts::string_leaves(result);
        let located = scan_texts(
            self.runtime,
            cache_partition(self.principal),
            &texts,
            Scanning::Whole(Context::ToolOutput),
            "tool_output",
            tool_name.as_deref(),
        );
        let detect = started.elapsed();
        let labels = tool_name
            .as_deref()
            .map(|t| self.server.labels(t))
            .unwrap_or_default();
        let session_json = lock(session)
            .map(|s| s.to_policy(session_id))
            .unwrap_or(Value::Null);
        let mut input = self.input("tool_result", &session_json);
        input.insert("request".into(), json!({"method": method}));
        match &tool_name {
            Some(name) => {
                input.insert(
                    "tool".into(),
                    json!({"server": self.server.name, "name": name, "labels": labels_json(&labels)}),
                );
            }
            None => {
                input.insert("tool".into(), Value::Null);
                let key = if method == "resources/read" {
                    "resource"
                } else {
                    "prompt"
                };
                input.insert(key.into(), subject.clone());
            }
        }
        input.insert("findings".into(), findings_json(&located));
        let about = Subject {
            stage: "tool_result",
            audit_stage: portcullis_audit::Stage::ToolResult,
            tool: tool_name.as_deref(),
            texts: "result",
        };
        let verdict = self.decide(about, Value::Object(input), &texts, &located, detect);
        let injection_seen = located.iter().any(|l| {
            l.flagged
                && matches!(
                    l.finding.category.as_str(),
                    "prompt_injection" | "jailbreak"
                )
        });
        if let Some(mut s) = lock(session) {
            let source = match &tool_name {
                Some(name) => format!("{}.{}", self.server.name, name),
                None => format!(
                    "{}:{}",
                    self.server.name,
                    subject
                        .get("uri")
                        .or_else(|| subject.get("name"))
                        .and_then(Value::as_str)
                        .unwrap_or(method)
                ),
            };
            s.record_result(&source, &labels, injection_seen);
        }
        match verdict.effective() {
            Action::Deny | Action::RequireApproval => {
                ResultOutcome::Blocked(refusal_text(&verdict.decision, "result"))
            }
            Action::Redact => {
                redact_in_place(result, &texts, &located, &verdict.decision, map);
                ResultOutcome::Pass
            }
            Action::Allow => ResultOutcome::Pass,
        }
    }
}

/// What happens to a `tools/call` request.
pub(crate) enum CallOutcome {
    /// Send it upstream (arguments possibly redacted).
    Forward,
    /// Answer with a tool error result carrying this text.
    Refuse(String),
    /// Hold it for a human (`require_approval`).
    Hold(Box<HoldRequest>),
}

/// A call the policy wants a human to approve.
#[derive(Debug)]
pub(crate) struct HoldRequest {
    /// The refusal the agent gets if it is not approved (or cannot be held).
    pub(crate) refusal: String,
    /// What the approver sees: arguments with every finding masked, findings without text.
    pub(crate) approval: NewApproval,
}

/// `arguments` with every finding's span masked by a one-off placeholder (`[EMAIL_1]`), so an
/// approval record never holds the secrets or personal data the detectors saw.
fn masked(arguments: &Value, texts: &Texts, located: &[Located]) -> Value {
    let mut out = arguments.clone();
    let mut map = RedactionMap::new();
    for (i, text) in texts.texts.iter().enumerate() {
        let findings: Vec<_> = located
            .iter()
            .filter(|l| l.text_index == i)
            .map(|l| l.finding.clone())
            .collect();
        if findings.is_empty() {
            continue;
        }
        let redacted = map.redact(&text.text, &findings);
        if redacted.text != text.text {
            texts::set(&mut out, &text.pointer, redacted.text);
        }
    }
    out
}

/// What happens to a result.
pub(crate) enum ResultOutcome {
    /// Deliver it (possibly redacted).
    Pass,
    /// Replace it; the text says why.
    Blocked(String),
}

/// The text a refused call or a blocked result carries for the agent (and its user).
fn refusal_text(decision: &Decision, what: &str) -> String {
    let code = decision.code.as_deref().unwrap_or("policy_violation");
    let subject = if what == "call" {
        "Portcullis policy refused this tool call"
    } else {
        "Portcullis policy blocked this tool result"
    };
    if decision.reasons.is_empty() {
        format!("{subject} ({code}).")
    } else {
        let reasons: Vec<String> = decision
            .reasons
            .iter()
            .take(8)
            .map(|r| r.chars().take(300).collect())
            .collect();
        format!("{subject} ({code}): {}.", reasons.join("; "))
    }
}

/// Replaces, in `value`, the spans of findings the decision redacts, text by text.
fn redact_in_place(
    value: &mut Value,
    texts: &Texts,
    located: &[Located],
    decision: &Decision,
    map: &mut RedactionMap,
) {
    for (i, text) in texts.texts.iter().enumerate() {
        let findings = redacted_findings(located, decision, i);
        if findings.is_empty() {
            continue;
        }
        let redacted = map.redact(&text.text, &findings);
        if redacted.text != text.text {
            texts::set(value, &text.pointer, redacted.text);
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> Option<std::sync::MutexGuard<'_, T>> {
    mutex.lock().ok()
}

/// A `tools/call` result that carries a refusal (`isError: true`).
pub(crate) fn tool_error_result(text: &str) -> Value {
    json!({"content": [{"type": "text", "text": text}], "isError": true})
}
