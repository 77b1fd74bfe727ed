//! The audit event: what one decision looked like, without the raw text unless asked.
//!
//! Forward compatibility: the event types do **not** use `deny_unknown_fields`. Records are
//! verified over their parsed JSON value, never over these types, so an older `portcullis audit
//! verify` must accept (and hash) fields a newer gateway added; readers that deserialize events
//! ignore such fields and `schema_version` tells them the event is newer than they know.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::digest::Digest;

/// The event schema this crate writes. Raise it when a field changes meaning or is removed;
/// adding an optional field does not need a new version.
pub const SCHEMA_VERSION: u32 = 1;

/// One decision at one stage of one exchange.
///
/// Time is `time_unix_nano`: nanoseconds since the Unix epoch, UTC, as an integer (the OTLP
/// convention). An integer hashes without any formatting choice, sorts, and needs no date
/// library in this pure crate; renderers format it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEvent {
    /// [`SCHEMA_VERSION`] when written by this crate.
    pub schema_version: u32,
    /// When the decision was made, in nanoseconds since the Unix epoch (UTC).
    pub time_unix_nano: u64,
    /// The exchange's request id (`x-request-id`).
    pub request_id: String,
    /// Who asked.
    pub principal: Principal,
    /// The configured route name.
    pub route: String,
    /// Which stage of the exchange was decided.
    pub stage: Stage,
    /// The model or MCP tool involved.
    pub target: Target,
    /// What the gateway did.
    pub action: Action,
    /// Human-readable reasons (policy messages), in the order the policy gave them.
    pub reasons: Vec<String>,
    /// The machine-readable reason code of a block or redaction, if any.
    pub code: Option<String>,
    /// Detector category (e.g. `pii.email`, `injection`) to the highest score seen, in `0..=1`.
    pub categories: BTreeMap<String, f64>,
    /// Hash of the policy bundle that decided.
    pub bundle_hash: String,
    /// Time spent deciding.
    pub latency: Latency,
    /// Token usage, when the stage has it (responses).
    pub tokens: Option<TokenUsage>,
    /// The inspected texts as hashes, redacted excerpts or (only if chosen) raw text.
    pub content: Option<Content>,
}

/// The authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Principal {
    /// Principal id (API key name, JWT subject, or `anonymous`).
    pub id: String,
    /// Tenant, when the principal has one.
    pub tenant: Option<String>,
}

/// The stage of an exchange a decision was made at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// A chat request on its way to the model.
    Request,
    /// A model's answer on its way to the client.
    Response,
    /// An MCP `tools/list` result.
    ToolsList,
    /// An MCP `tools/call` request.
    ToolCall,
    /// An MCP `tools/call` result.
    ToolResult,
}

/// What the decision was about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Target {
    /// A model, by the name the client asked for.
    Model {
        /// Model name.
        model: String,
    },
    /// A whole MCP server (for `tools/list`).
    ToolServer {
        /// Configured MCP server name.
        server: String,
    },
    /// One MCP tool.
    Tool {
        /// Configured MCP server name.
        server: String,
        /// Tool name.
        tool: String,
    },
}

/// What the policy decided (the policy's own vocabulary, `docs/policy.md`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Passed unchanged.
    Allow,
    /// Refused.
    Deny,
    /// Passed with parts redacted.
    Redact,
    /// Held for a human.
    RequireApproval,
}

/// Decision latencies in microseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Latency {
    /// Detectors, summed over the texts scanned.
    pub detectors_us: u64,
    /// Policy evaluation.
    pub policy_us: u64,
}

/// Tokens counted by the upstream (or estimated, for streams without usage).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenUsage {
    /// Prompt (input) tokens.
    pub prompt: u64,
    /// Completion (output) tokens.
    pub completion: u64,
}

/// How much of an inspected text an audit event keeps. Deliberately no `Default`: the caller
/// (the audit config) states it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ContentMode {
    /// Only the SHA-256 of each text and its length.
    HashOnly,
    /// The hash and the first `max_chars` characters of the *redacted* text.
    RedactedExcerpt {
        /// Longest excerpt kept, in characters.
        max_chars: usize,
    },
    /// The hash and the raw text. Only for deployments whose policy requires it.
    Raw,
}

/// One text to capture: its raw form (hashed, kept only in [`ContentMode::Raw`]) and its
/// redacted form (the source of excerpts).
#[derive(Debug, Clone, Copy)]
pub struct TextPart<'a> {
    /// Where the text came from, e.g. `messages[2].content` or `arguments.query`.
    pub label: &'a str,
    /// The text as the client or upstream sent it.
    pub raw: &'a str,
    /// The text after redaction.
    pub redacted: &'a str,
}

/// The captured texts of one event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Content {
    mode: ContentMode,
    parts: Vec<CapturedText>,
}

/// One captured text. Built only by [`Content::capture`], so raw text appears only when
/// [`ContentMode::Raw`] was chosen.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CapturedText {
    label: String,
    sha256: Digest,
    chars: usize,
    excerpt: Option<String>,
    raw: Option<String>,
}

impl Content {
    /// Captures texts as `mode` allows.
    pub fn capture<'a>(mode: ContentMode, parts: impl IntoIterator<Item = TextPart<'a>>) -> Self {
        let parts = parts
            .into_iter()
            .map(|part| CapturedText {
                label: part.label.to_owned(),
                sha256: Digest::of(part.raw.as_bytes()),
                chars: part.raw.chars().count(),
                excerpt: match mode {
                    ContentMode::RedactedExcerpt { max_chars } => {
                        Some(part.redacted.chars().take(max_chars).collect())
                    }
                    ContentMode::HashOnly | ContentMode::Raw => None,
                },
                raw: match mode {
                    ContentMode::Raw => Some(part.raw.to_owned()),
                    ContentMode::HashOnly | ContentMode::RedactedExcerpt { .. } => None,
                },
            })
            .collect();
        Self { mode, parts }
    }

    /// The mode the texts were captured with.
    pub fn mode(&self) -> ContentMode {
        self.mode
    }

    /// The captured texts.
    pub fn parts(&self) -> &[CapturedText] {
        &self.parts
    }
}

impl CapturedText {
    /// Where the text came from.
    pub fn label(&self) -> &str {
        &self.label
    }
    /// SHA-256 of the raw text's UTF-8 bytes.
    pub fn sha256(&self) -> Digest {
        self.sha256
    }
    /// Length of the raw text in characters.
    pub fn chars(&self) -> usize {
        self.chars
    }
    /// The redacted excerpt, in [`ContentMode::RedactedExcerpt`].
    pub fn excerpt(&self) -> Option<&str> {
        self.excerpt.as_deref()
    }
    /// The raw text, in [`ContentMode::Raw`] only.
    pub fn raw(&self) -> Option<&str> {
        self.raw.as_deref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PART: TextPart<'static> = TextPart {
        label: "messages[0].content",
        raw: "mail bob@example.com now",
        redacted: "mail [EMAIL] now",
    };

    #[test]
    fn raw_text_is_kept_only_in_raw_mode() {
        for mode in [
            ContentMode::HashOnly,
            ContentMode::RedactedExcerpt { max_chars: 100 },
        ] {
            let content = Content::capture(mode, [PART]);
            let json = serde_json::to_string(&content).unwrap();
            assert!(!json.contains("bob@example.com"), "{json}");
            assert_eq!(content.parts()[0].raw(), None);
            assert_eq!(content.parts()[0].sha256(), Digest::of(PART.raw.as_bytes()));
        }
        let raw = Content::capture(ContentMode::Raw, [PART]);
        assert_eq!(raw.parts()[0].raw(), Some(PART.raw));
    }

    #[test]
    fn excerpts_are_redacted_and_cut_on_characters() {
        let content = Content::capture(ContentMode::RedactedExcerpt { max_chars: 7 }, [PART]);
        assert_eq!(content.parts()[0].excerpt(), Some("mail [E"));
        let part = TextPart {
            label: "x",
            raw: "ééé",
            redacted: "ééé",
        };
        let content = Content::capture(ContentMode::RedactedExcerpt { max_chars: 2 }, [part]);
        assert_eq!(content.parts()[0].excerpt(), Some("éé"));
        assert_eq!(content.parts()[0].chars(), 3);
    }

    #[test]
    fn unknown_fields_are_accepted_for_forward_compatibility() {
        let event = crate::chain::tests::sample_event(1);
        let mut value = serde_json::to_value(&event).unwrap();
        value["added_in_v2"] = serde_json::json!(true);
        let back: AuditEvent = serde_json::from_value(value).unwrap();
        assert_eq!(back, event);
    }
}
