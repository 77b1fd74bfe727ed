//! The policy input document (`docs/policy.md` is its reference): what the exchange is, and
//! every finding with where it was found.

use std::sync::Arc;

use portcullis_core::Principal;
use portcullis_detect::{Context, Finding};
use portcullis_mcp::texts::Texts;
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

    /// A finding at `place` (a `where` object), for the text `text_index` of its list.
    pub(crate) fn at(finding: Finding, flagged: bool, text_index: usize, place: Value) -> Self {
        Self {
            finding,
            flagged,
            text_index,
            place,
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

/// Scans the texts of a tool definition, its arguments or its result (`texts`, each at a JSON
/// pointer) as `scanning` says; each finding's `where` is `{"context": context, "path":
/// pointer}` plus `"tool"` when given, and its `text_index` is the text's index in `texts`.
pub(crate) fn scan_texts(
    runtime: &super::GuardRuntime,
    partition: &str,
    texts: &Texts,
    scanning: super::Scanning,
    context: &str,
    tool: Option<&str>,
) -> Vec<Located> {
    let mut located = Vec::new();
    for (i, text) in texts.texts.iter().enumerate() {
        let scan = runtime.scan_as(partition, scanning, &text.text);
        for finding in scan.findings {
            let flagged = scan.flagged.contains(&finding.category);
            let mut place = json!({"context": context, "path": text.pointer});
            if let (Some(tool), Some(object)) = (tool, place.as_object_mut()) {
                object.insert("tool".into(), Value::from(tool));
            }
            located.push(Located::at(finding, flagged, i, place));
        }
    }
    located
}

/// The findings of text `text_index` whose category the decision redacts.
pub(crate) fn redacted_findings(
    located: &[Located],
    decision: &portcullis_policy::Decision,
    text_index: usize,
) -> Vec<Finding> {
    located
        .iter()
        .filter(|l| l.text_index == text_index && decision.redacts(l.finding.category.as_str()))
        .map(|l| l.finding.clone())
        .collect()
}

/// The `principal` of a policy input (the contract in docs/policy.md): id, tenant, groups,
/// how it authenticated, the issuer, selected claims, and the Kubernetes identity of a
/// service-account token (`null` otherwise).
pub(crate) fn principal_json(principal: &Principal) -> Value {
    let claims: Map<String, Value> = principal
        .claims
        .iter()
        .map(|(name, text)| {
            let value = serde_json::from_str(text).unwrap_or_else(|_| Value::from(text.as_str()));
            (name.clone(), value)
        })
        .collect();
    let kubernetes = principal
        .service_account
        .as_ref()
        .map_or(Value::Null, |sa| {
            json!({
                "namespace": sa.namespace,
                "service_account": sa.name,
                "uid": sa.uid,
                "pod": sa.pod,
            })
        });
    json!({
        "id": principal.id,
        "tenant": principal.tenant,
        "groups": principal.groups,
        "auth": principal.auth.as_str(),
        "issuer": principal.issuer,
        "claims": claims,
        "kubernetes": kubernetes,
    })
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

/// The `findings` of a policy input: the highest-scoring flagged ones first when there are more
/// than fit.
pub(crate) fn findings_json(located: &[Located]) -> Value {
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
    pub(crate) principal: &'a Arc<Principal>,
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
        input.insert("principal".into(), principal_json(self.principal));
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
            principal: self.principal.clone(),
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
    principal: Arc<Principal>,
    route: &'static str,
    model: String,
    upstream: String,
    trusted: bool,
    stream: bool,
}

impl OwnedBase {
    pub(crate) fn borrow(&self) -> Base<'_> {
        Base {
            principal: &self.principal,
            route: self.route,
            model: &self.model,
            upstream: &self.upstream,
            trusted: self.trusted,
            stream: self.stream,
        }
    }
}
