//! The audit side of a decision: what `GuardRuntime::conclude` needs, besides the decision, to
//! write its [`AuditEvent`], and building that event.
//!
//! Texts go into the event as `Content::capture` allows (`audit.content`): their hashes always,
//! excerpts of their *redacted* form, raw text only in `raw` mode. The redacted form masks every
//! finding that is data (personal data, secrets, canaries, data-carrying links, banned terms),
//! whatever the policy decided; findings about instructions (injection, jailbreak, poisoning,
//! hidden or encoded text) often span a whole message and stay readable, since they are what
//! an auditor wants to read. The redacted form is only computed in excerpt mode.
//!
//! Scores are rounded to four decimals. The chain itself does not need it: records are hashed
//! over their parsed JSON, and the workspace's serde_json parses floats exactly
//! (`float_roundtrip`, with a regression test in `crates/audit/tests/tamper.rs`). The rounding
//! keeps records short and makes them re-hash the same in consumers whose JSON parser does not
//! round floats correctly.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use portcullis_audit::{
    AuditEvent, Content, ContentMode, Latency, Principal, SCHEMA_VERSION, Stage, Target, TextPart,
    TokenUsage,
};
use portcullis_detect::{Category, RedactionMap};
use portcullis_openai::Endpoint;
use portcullis_openai::texts::Location;
use portcullis_policy::{Action, Decision};
use serde_json::Value;

use super::input::Located;
use crate::audit::AuditLog;

/// The log and the exchange a decision belongs to.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Auditing<'a> {
    pub(crate) log: &'a AuditLog,
    pub(crate) request_id: &'a str,
    pub(crate) principal: &'a portcullis_core::Principal,
}

/// [`Auditing`] that outlives the request phase (answers and streams).
#[derive(Debug, Clone)]
pub(crate) struct AuditHandle {
    log: Arc<AuditLog>,
    request_id: Arc<str>,
    principal: Arc<portcullis_core::Principal>,
}

impl AuditHandle {
    pub(crate) fn new(
        log: Arc<AuditLog>,
        request_id: &str,
        principal: Arc<portcullis_core::Principal>,
    ) -> Self {
        Self {
            log,
            request_id: Arc::from(request_id),
            principal,
        }
    }

    pub(crate) fn borrow(&self) -> Auditing<'_> {
        Auditing {
            log: &self.log,
            request_id: &self.request_id,
            principal: &self.principal,
        }
    }
}

/// One inspected text: `index` is the `text_index` its findings carry.
#[derive(Debug, Clone)]
pub(crate) struct Inspected<'a> {
    pub(crate) index: usize,
    pub(crate) label: String,
    pub(crate) raw: &'a str,
}

/// What one decision's audit event is about.
#[derive(Debug)]
pub(crate) struct Audited<'a> {
    pub(crate) auditing: Auditing<'a>,
    pub(crate) stage: Stage,
    pub(crate) target: Target,
    pub(crate) texts: Vec<Inspected<'a>>,
    /// The findings the decision saw (all of them, flagged or not).
    pub(crate) located: &'a [Located],
    pub(crate) tokens: Option<TokenUsage>,
}

impl<'a> Auditing<'a> {
    /// The audit context of a decision at `stage` on `target`.
    pub(crate) fn audited(
        self,
        stage: Stage,
        target: Target,
        texts: Vec<Inspected<'a>>,
        located: &'a [Located],
    ) -> Audited<'a> {
        Audited {
            auditing: self,
            stage,
            target,
            texts,
            located,
            tokens: None,
        }
    }
}

/// What the event records besides the [`Audited`] context.
pub(crate) struct Decided<'a> {
    pub(crate) route: &'static str,
    pub(crate) decision: &'a Decision,
    pub(crate) bundle_hash: &'a str,
    pub(crate) detect: Option<Duration>,
    pub(crate) policy: Duration,
}

/// The audit record's view of the caller: its id and tenant.
fn recorded(principal: &portcullis_core::Principal) -> Principal {
    Principal {
        id: principal.id.clone(),
        tenant: principal.tenant.clone(),
    }
}

impl Audited<'_> {
    /// The event of this decision.
    pub(crate) fn event(&self, decided: &Decided<'_>) -> AuditEvent {
        let mode = self.auditing.log.content_mode();
        let redacted: Vec<String> = match mode {
            ContentMode::RedactedExcerpt { .. } => self
                .texts
                .iter()
                .map(|text| {
                    let findings: Vec<_> = self
                        .located
                        .iter()
                        .filter(|l| l.text_index == text.index && is_data(l.finding.category))
                        .map(|l| l.finding.clone())
                        .collect();
                    RedactionMap::new().redact(text.raw, &findings).text
                })
                .collect(),
            ContentMode::HashOnly | ContentMode::Raw => Vec::new(),
        };
        let parts = self.texts.iter().enumerate().map(|(i, text)| TextPart {
            label: &text.label,
            raw: text.raw,
            // Read only in excerpt mode, where it was computed above.
            redacted: redacted.get(i).map_or(text.raw, String::as_str),
        });
        let content = Content::capture(mode, parts);
        let mut categories: BTreeMap<String, f64> = BTreeMap::new();
        for located in self.located {
            let score = (f64::from(located.finding.score) * 10_000.0).round() / 10_000.0;
            let entry = categories
                .entry(located.finding.category.as_str().to_owned())
                .or_insert(score);
            *entry = entry.max(score);
        }
        let decision = decided.decision;
        AuditEvent {
            schema_version: SCHEMA_VERSION,
            time_unix_nano: now_unix_nano(),
            request_id: self.auditing.request_id.to_owned(),
            principal: recorded(self.auditing.principal),
            route: decided.route.to_owned(),
            stage: self.stage,
            target: self.target.clone(),
            action: match decision.action {
                Action::Allow => portcullis_audit::Action::Allow,
                Action::Deny => portcullis_audit::Action::Deny,
                Action::Redact => portcullis_audit::Action::Redact,
                Action::RequireApproval => portcullis_audit::Action::RequireApproval,
            },
            reasons: decision
                .reasons
                .iter()
                .take(super::MAX_REASONS)
                .map(|r| r.chars().take(super::MAX_REASON_CHARS).collect())
                .collect(),
            code: decision.code.clone(),
            categories,
            bundle_hash: decided.bundle_hash.to_owned(),
            latency: Latency {
                detectors_us: micros(decided.detect.unwrap_or_default()),
                policy_us: micros(decided.policy),
            },
            tokens: self.tokens,
            content: Some(content),
        }
    }
}

/// The event of a decision the policy did not make: a human's resolution (or the expiry) of a
/// held call. No texts, no findings: those are in the `require_approval` event of the same
/// request id.
pub(crate) fn resolution_event(
    request_id: &str,
    principal: &portcullis_core::Principal,
    bundle_hash: &str,
    target: Target,
    action: portcullis_audit::Action,
    code: &str,
    reason: String,
) -> AuditEvent {
    AuditEvent {
        schema_version: SCHEMA_VERSION,
        time_unix_nano: now_unix_nano(),
        request_id: request_id.to_owned(),
        principal: recorded(principal),
        route: "mcp".to_owned(),
        stage: Stage::ToolCall,
        target,
        action,
        reasons: vec![reason.chars().take(super::MAX_REASON_CHARS).collect()],
        code: Some(code.to_owned()),
        categories: BTreeMap::new(),
        bundle_hash: bundle_hash.to_owned(),
        latency: Latency {
            detectors_us: 0,
            policy_us: 0,
        },
        tokens: None,
        content: None,
    }
}

/// Whether a finding's span is data to keep out of excerpts (see the module docs).
fn is_data(category: Category) -> bool {
    match category {
        Category::Pii(_)
        | Category::Secret(_)
        | Category::SystemPromptLeak
        | Category::Exfiltration
        | Category::Banned => true,
        Category::PromptInjection
        | Category::Jailbreak
        | Category::InvisibleText
        | Category::Obfuscation
        | Category::ToolPoisoning => false,
    }
}

fn micros(duration: Duration) -> u64 {
    u64::try_from(duration.as_micros()).unwrap_or(u64::MAX)
}

fn now_unix_nano() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// Where an OpenAI text is, as an audit label (`messages[2].content`, `choices[0].text`).
pub(crate) fn location_label(endpoint: Endpoint, location: Location) -> String {
    match location {
        Location::Message {
            message,
            part: None,
        } => format!("messages[{message}].content"),
        Location::Message {
            message,
            part: Some(part),
        } => format!("messages[{message}].content[{part}].text"),
        Location::ToolDefinition { tool } => format!("tools[{tool}].function"),
        Location::Prompt { index } => {
            let field = match endpoint {
                Endpoint::Embeddings => "input",
                Endpoint::ChatCompletions | Endpoint::Completions => "prompt",
            };
            match index {
                Some(index) => format!("{field}[{index}]"),
                None => field.to_owned(),
            }
        }
        Location::Choice { choice } => match endpoint {
            Endpoint::Completions => format!("choices[{choice}].text"),
            Endpoint::ChatCompletions | Endpoint::Embeddings => {
                format!("choices[{choice}].message.content")
            }
        },
    }
}

/// The texts of a JSON value (`portcullis_mcp::texts`), labelled `{prefix}{pointer}`.
pub(crate) fn pointer_texts<'a>(
    prefix: &str,
    texts: &'a portcullis_mcp::texts::Texts,
) -> Vec<Inspected<'a>> {
    texts
        .texts
        .iter()
        .enumerate()
        .map(|(index, text)| Inspected {
            index,
            label: format!("{prefix}{}", text.pointer),
            raw: &text.text,
        })
        .collect()
}

/// Token usage from an answer's `usage` object, when the upstream sent one.
pub(crate) fn usage_of(body: &Value) -> Option<TokenUsage> {
    let usage = body.get("usage")?;
    let prompt = usage.get("prompt_tokens").and_then(Value::as_u64);
    let completion = usage.get("completion_tokens").and_then(Value::as_u64);
    if prompt.is_none() && completion.is_none() {
        return None;
    }
    Some(TokenUsage {
        prompt: prompt.unwrap_or(0),
        completion: completion.unwrap_or(0),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_name_where_texts_are() {
        let chat = Endpoint::ChatCompletions;
        assert_eq!(
            location_label(
                chat,
                Location::Message {
                    message: 2,
                    part: None
                }
            ),
            "messages[2].content"
        );
        assert_eq!(
            location_label(Endpoint::Embeddings, Location::Prompt { index: Some(1) }),
            "input[1]"
        );
        assert_eq!(
            location_label(Endpoint::Completions, Location::Choice { choice: 0 }),
            "choices[0].text"
        );
    }

    #[test]
    fn usage_is_read_when_present() {
        let body = serde_json::json!({"usage": {"prompt_tokens": 12, "completion_tokens": 3, "total_tokens": 15}});
        assert_eq!(
            usage_of(&body),
            Some(TokenUsage {
                prompt: 12,
                completion: 3
            })
        );
        assert_eq!(usage_of(&serde_json::json!({})), None);
    }
}
