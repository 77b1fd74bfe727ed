//! The policy input document (`docs/policy.md` is its reference): what the exchange is, and
//! every finding with where it was found.

use portcullis_detect::{Context, Finding};
use portcullis_openai::texts::{Location, Text};
use serde_json::{Map, Value, json};

/// Most findings sent to the policy for one decision; the highest-scoring flagged ones are
/// kept first, so a flood of weak findings cannot hide a strong one.
const MAX_FINDINGS: usize = 256;

/// A finding and where it was found.
#[derive(Debug, Clone)]
pub(crate) struct Located {
    pub(crate) finding: Finding,
    pub(crate) flagged: bool,
    /// Index of the text in the request's (or answer's) text list.
    pub(crate) text_index: usize,
    place: Value,
}

impl Located {
    pub(crate) fn new(
        finding: Finding,
        flagged: bool,
        text_index: usize,
        text: &Text,
        context: Context,
    ) -> Self {
        Self {
            finding,
            flagged,
            text_index,
            place: place_of(text, context),
        }
    }

    /// A finding of a stream, for the answer's choice `choice`.
    pub(crate) fn in_stream(finding: Finding, flagged: bool, choice: u64) -> Self {
        Self {
            finding,
            flagged,
            text_index: 0,
            place: json!({"choice": choice, "role": "assistant", "context": "assistant"}),
        }
    }

    fn to_json(&self) -> Value {
        let f = &self.finding;
        json!({
            "category": f.category.as_str(),
            "detector": f.detector,
            "rule": f.rule,
            "score": f64::from(f.score),
            "flagged": self.flagged,
            "where": self.place,
        })
    }
}

fn place_of(text: &Text, context: Context) -> Value {
    match text.location {
        Location::Message { message, .. } => json!({
            "message": message,
            "role": text.role.as_deref().unwrap_or("user"),
            "context": context.as_str(),
        }),
        Location::ToolDefinition { .. } => json!({
            "tool": text.name.as_deref().unwrap_or(""),
            "context": "tool_definition",
        }),
        Location::Prompt { index } => json!({
            "prompt": index.unwrap_or(0),
            "context": context.as_str(),
        }),
        Location::Choice { choice } => json!({
            "choice": choice,
            "role": "assistant",
            "context": "assistant",
        }),
    }
}

/// The flagged categories among `located`, sorted, without repeats (metric labels).
pub(crate) fn flagged_categories(located: &[Located]) -> Vec<&'static str> {
    let mut out: Vec<&'static str> = located
        .iter()
        .filter(|l| l.flagged)
        .map(|l| l.finding.category.as_str())
        .collect();
    out.sort_unstable();
    out.dedup();
    out
}

fn findings_json(located: &[Located]) -> Value {
    let mut order: Vec<&Located> = located.iter().collect();
    if order.len() > MAX_FINDINGS {
        order.sort_by(|a, b| {
            b.flagged
                .cmp(&a.flagged)
                .then(b.finding.score.total_cmp(&a.finding.score))
        });
        order.truncate(MAX_FINDINGS);
    }
    Value::Array(order.into_iter().map(Located::to_json).collect())
}

/// What every decision of one exchange shares.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Base<'a> {
    pub(crate) route: &'static str,
    pub(crate) model: &'a str,
    pub(crate) upstream: &'a str,
    pub(crate) trusted: bool,
    pub(crate) stream: bool,
}

impl Base<'_> {
    /// The fields every decision of the exchange shares: stage, principal, route, model,
    /// upstream.
    pub(crate) fn common_input(&self, stage: &str) -> Map<String, Value> {
        self.common(stage)
    }

    fn common(&self, stage: &str) -> Map<String, Value> {
        let mut input = Map::new();
        input.insert("stage".into(), Value::from(stage));
        // Authentication arrives with a later issue; until then every caller is anonymous.
        input.insert(
            "principal".into(),
            json!({"id": "anonymous", "tenant": null, "groups": [], "auth": "anonymous", "claims": {}}),
        );
        input.insert("route".into(), Value::from(self.route));
        input.insert("model".into(), Value::from(self.model));
        input.insert(
            "upstream".into(),
            json!({"name": self.upstream, "trusted": self.trusted}),
        );
        input
    }

    /// The input of the request decision.
    pub(crate) fn request_input(
        &self,
        located: &[Located],
        messages: usize,
        text_bytes: usize,
        tools: &[String],
    ) -> Value {
        let mut input = self.common("request");
        input.insert("findings".into(), findings_json(located));
        input.insert(
            "request".into(),
            json!({
                "messages": messages,
                // About four bytes per token for English text; a budget estimate, not a count.
                "prompt_tokens_estimate": text_bytes.div_ceil(4),
                "tools": tools,
                "stream": self.stream,
            }),
        );
        Value::Object(input)
    }

    /// The input of an answer decision (a whole answer, or one stream finding).
    pub(crate) fn response_input(&self, located: &[Located]) -> Value {
        let mut input = self.common("response");
        input.insert("findings".into(), findings_json(located));
        input.insert("request".into(), json!({"stream": self.stream}));
        Value::Object(input)
    }

    pub(crate) fn to_owned(self) -> OwnedBase {
        OwnedBase {
            route: self.route,
            model: self.model.to_string(),
            upstream: self.upstream.to_string(),
            trusted: self.trusted,
            stream: self.stream,
        }
    }
}

/// [`Base`] that outlives the request (for the answer and the stream).
#[derive(Debug, Clone)]
pub(crate) struct OwnedBase {
    route: &'static str,
    model: String,
    upstream: String,
    trusted: bool,
    stream: bool,
}

impl OwnedBase {
    pub(crate) fn borrow(&self) -> Base<'_> {
        Base {
            route: self.route,
            model: &self.model,
            upstream: &self.upstream,
            trusted: self.trusted,
            stream: self.stream,
        }
    }
}
