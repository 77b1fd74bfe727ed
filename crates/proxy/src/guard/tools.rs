//! Tools in chat completions: the same policy stages as the MCP proxy, for function tools.
//!
//! - **Offered tools** (`tools` in a request): one `tools_list` decision per tool, with the
//!   findings of its definition (name, description, parameter schema, scanned as a document).
//!   A denied tool is removed from the request before the model sees it (and `tool_choice`
//!   naming it is dropped).
//! - **Tool calls in answers** (`choices[].message.tool_calls`, or assembled from streamed
//!   `delta.tool_calls`): one `tool_call` decision per call, with its arguments (parsed when
//!   they are JSON), the findings of the argument strings (secrets, PII, exfiltration links)
//!   and `tool.listed`: whether the request offered (and kept) a tool of that name. A denied
//!   call blocks the answer (a stream ends with `content_filter` and an error event), before
//!   the client can act on it.
//!
//! Chat completions have no session: `session` is empty, so taint rules do not apply here.

use std::time::Instant;

use portcullis_detect::Context;
use portcullis_mcp::texts;
use portcullis_policy::Action;
use portcullis_telemetry::Metrics;
use serde_json::{Map, Value, json};

use super::input::{Base, Located, findings_json, flagged_categories, scan_texts};
use super::{Auditing, GuardRuntime, Recorded, Scanning, Verdict, pointer_texts};

/// A tool call of an answer, assembled.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct ToolCall {
    /// Choice index.
    pub(crate) choice: u64,
    /// The function's name.
    pub(crate) name: String,
    /// The arguments as the model wrote them (a JSON text, normally).
    pub(crate) arguments: String,
}

fn empty_session() -> Value {
    json!({"id": null, "tainted_by": [], "calls": 0})
}

/// What the tool decisions of one exchange share.
pub(crate) struct Deciding<'a> {
    pub(crate) runtime: &'a GuardRuntime,
    pub(crate) metrics: &'a Metrics,
    pub(crate) base: &'a Base<'a>,
    pub(crate) shadow: bool,
    /// The audit log and request id, when an audit log runs.
    pub(crate) auditing: Option<Auditing<'a>>,
}

/// What one tool decision is about, for its audit event.
struct Subject<'a> {
    stage: portcullis_audit::Stage,
    tool: &'a str,
    /// Label prefix of the texts (`definition`, `arguments`).
    texts: &'static str,
}

/// Decides; when `texts` could not all be read, the failure mode decides instead.
fn decide(
    d: &Deciding<'_>,
    (stage, subject): (&'static str, Subject<'_>),
    fields: Map<String, Value>,
    texts: &texts::Texts,
    located: &[Located],
    detect: std::time::Duration,
) -> Verdict {
    // Chat tools have no MCP server: the model offering or calling them stands in for it.
    let audit = d.auditing.map(|auditing| {
        let target = portcullis_audit::Target::Tool {
            server: d.base.model.to_owned(),
            tool: subject.tool.to_owned(),
        };
        let texts = pointer_texts(subject.texts, texts);
        auditing.audited(subject.stage, target, texts, located)
    });
    let mut record = Recorded {
        metrics: d.metrics,
        route: d.base.route,
        stage,
        shadow: d.shadow,
        categories: flagged_categories(located),
        detect: Some(detect),
        audit,
    };
    if texts.truncated {
        return d
            .runtime
            .cannot_inspect("the tool carries too many texts to inspect", &mut record);
    }
    let mut input = d.base.common_input(stage);
    input.extend(fields);
    d.runtime.decide(&Value::Object(input), &mut record)
}

/// What the policy made of a request's offered tools.
#[derive(Default)]
pub(crate) struct Offered {
    /// Indexes (in the original `tools`) of the tools removed.
    pub(crate) removed: Vec<usize>,
    /// Names of the tools kept.
    pub(crate) kept: Vec<String>,
    /// The findings of each kept tool's definition, by its index in the original `tools`: the
    /// request decision reads them instead of scanning the definitions again.
    pub(crate) findings: Vec<(usize, Vec<Located>)>,
}

/// Decides on each tool a chat request offers; removes the denied ones from `body`.
pub(crate) fn filter_offered(d: &Deciding<'_>, body: &mut Value) -> Offered {
    let Some(tools) = body.get("tools").and_then(Value::as_array) else {
        return Offered::default();
    };
    let mut offered = Offered::default();
    for (i, tool) in tools.iter().enumerate() {
        let Some(function) = tool.get("function") else {
            continue;
        };
        let name = function.get("name").and_then(Value::as_str).unwrap_or("");
        let started = Instant::now();
        let definition = json!({
            "name": name,
            "description": function.get("description").cloned().unwrap_or(Value::Null),
            "inputSchema": function.get("parameters").cloned().unwrap_or(Value::Null),
        });
        let texts = texts::tool_definition(&definition);
        let located = scan_texts(
            d.runtime,
            super::cache_partition(d.base.principal),
            &texts,
            Scanning::Definition,
            "tool_definition",
            Some(name),
        );
        let mut fields = Map::new();
        fields.insert(
            "tool".into(),
            // No fingerprint: chat tools are not pinned (a client sends its own definitions with
            // every request), so hashing them on the request path would serve nothing.
            json!({"server": null, "name": name, "labels": [], "changed": false}),
        );
        fields.insert("findings".into(), findings_json(&located));
        fields.insert("session".into(), empty_session());
        let subject = Subject {
            stage: portcullis_audit::Stage::ToolsList,
            tool: name,
            texts: "definition",
        };
        let verdict = decide(
            d,
            ("tools_list", subject),
            fields,
            &texts,
            &located,
            started.elapsed(),
        );
        if matches!(verdict.effective(), Action::Deny | Action::RequireApproval) {
            tracing::warn!(route = d.base.route, tool = %name, reasons = ?verdict.decision.reasons, "offered tool removed by policy");
            offered.removed.push(i);
        } else {
            offered.kept.push(name.to_owned());
            offered.findings.push((i, located));
        }
    }
    if !offered.removed.is_empty() {
        remove_tools(body, &offered.removed);
    }
    offered
}

fn remove_tools(body: &mut Value, removed: &[usize]) {
    let Some(object) = body.as_object_mut() else {
        return;
    };
    let mut removed_names = Vec::new();
    if let Some(Value::Array(tools)) = object.get_mut("tools") {
        let mut index = 0;
        tools.retain(|tool| {
            let keep = !removed.contains(&index);
            if let (false, Some(name)) =
                (keep, tool.pointer("/function/name").and_then(Value::as_str))
            {
                removed_names.push(name.to_owned());
            }
            index += 1;
            keep
        });
        if tools.is_empty() {
            object.remove("tools");
            object.remove("tool_choice");
            object.remove("parallel_tool_calls");
            return;
        }
    }
    let names_removed = object
        .get("tool_choice")
        .and_then(|c| c.pointer("/function/name"))
        .and_then(Value::as_str)
        .is_some_and(|n| removed_names.iter().any(|r| r == n));
    if names_removed {
        object.remove("tool_choice");
    }
}

/// The tool calls of a whole chat answer.
pub(crate) fn answer_calls(body: &Value) -> Vec<ToolCall> {
    let mut out = Vec::new();
    let choices = body.get("choices").and_then(Value::as_array);
    for (position, choice) in choices.into_iter().flatten().enumerate() {
        let index = choice
            .get("index")
            .and_then(Value::as_u64)
            .unwrap_or(position as u64);
        let calls = choice
            .pointer("/message/tool_calls")
            .and_then(Value::as_array);
        for call in calls.into_iter().flatten() {
            out.push(ToolCall {
                choice: index,
                name: call
                    .pointer("/function/name")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_owned(),
                arguments: call
                    .pointer("/function/arguments")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_owned(),
            });
        }
    }
    out
}

/// Decides on each call; the first denied one's verdict, if any.
pub(crate) fn decide_calls(
    d: &Deciding<'_>,
    offered: &[String],
    calls: &[ToolCall],
) -> Option<Verdict> {
    for call in calls {
        let started = Instant::now();
        let arguments: Value = serde_json::from_str(&call.arguments)
            .unwrap_or_else(|_| Value::String(call.arguments.clone()));
        let texts = texts::string_leaves(&arguments);
        let located = scan_texts(
            d.runtime,
            super::cache_partition(d.base.principal),
            &texts,
            Scanning::Patterns(Context::Assistant),
            "tool_arguments",
            Some(&call.name),
        );
        let mut fields = Map::new();
        fields.insert(
            "tool".into(),
            json!({
                "server": null,
                "name": call.name,
                "arguments": arguments,
                "labels": [],
                "changed": false,
                "listed": offered.contains(&call.name),
            }),
        );
        fields.insert("findings".into(), findings_json(&located));
        fields.insert("session".into(), empty_session());
        fields.insert(
            "request".into(),
            json!({"method": "chat.tool_call", "stream": d.base.stream}),
        );
        let subject = Subject {
            stage: portcullis_audit::Stage::ToolCall,
            tool: &call.name,
            texts: "arguments",
        };
        let verdict = decide(
            d,
            ("tool_call", subject),
            fields,
            &texts,
            &located,
            started.elapsed(),
        );
        if matches!(verdict.effective(), Action::Deny | Action::RequireApproval) {
            return Some(verdict);
        }
    }
    None
}

/// Assembles tool calls from streamed `delta.tool_calls` fragments, per (choice, index).
#[derive(Debug, Default)]
pub(crate) struct CallAssembly {
    calls: Vec<((u64, u64), ToolCall)>,
    bytes: usize,
}

/// Most bytes of tool-call names and arguments one stream may assemble.
const MAX_ASSEMBLED_BYTES: usize = 1024 * 1024;

impl CallAssembly {
    /// Adds the fragments of one chunk (`data` of an SSE event); returns whether it carried
    /// any, or `Err` when the stream's calls outgrow the bound.
    pub(crate) fn push(&mut self, chunk: &Value) -> Result<bool, usize> {
        let mut any = false;
        let choices = chunk.get("choices").and_then(Value::as_array);
        for (position, choice) in choices.into_iter().flatten().enumerate() {
            let choice_index = choice
                .get("index")
                .and_then(Value::as_u64)
                .unwrap_or(position as u64);
            let deltas = choice
                .pointer("/delta/tool_calls")
                .and_then(Value::as_array);
            for (n, delta) in deltas.into_iter().flatten().enumerate() {
                any = true;
                let index = delta
                    .get("index")
                    .and_then(Value::as_u64)
                    .unwrap_or(n as u64);
                let key = (choice_index, index);
                let slot = match self.calls.iter().position(|(k, _)| *k == key) {
                    Some(i) => i,
                    None => {
                        self.calls.push((
                            key,
                            ToolCall {
                                choice: choice_index,
                                ..ToolCall::default()
                            },
                        ));
                        self.calls.len() - 1
                    }
                };
                let call = &mut self.calls[slot].1;
                if let Some(name) = delta.pointer("/function/name").and_then(Value::as_str) {
                    call.name.push_str(name);
                    self.bytes += name.len();
                }
                if let Some(args) = delta.pointer("/function/arguments").and_then(Value::as_str) {
                    call.arguments.push_str(args);
                    self.bytes += args.len();
                }
            }
        }
        if self.bytes > MAX_ASSEMBLED_BYTES {
            return Err(self.bytes);
        }
        Ok(any)
    }

    /// Whether any call was seen.
    pub(crate) fn is_empty(&self) -> bool {
        self.calls.is_empty()
    }

    /// The assembled calls, in order of first appearance.
    pub(crate) fn calls(&self) -> Vec<ToolCall> {
        self.calls.iter().map(|(_, c)| c.clone()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streamed_fragments_assemble_per_choice_and_index() {
        let mut assembly = CallAssembly::default();
        let chunks = [
            json!({"choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "id": "c1", "type": "function", "function": {"name": "send_", "arguments": ""}}]}}]}),
            json!({"choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"name": "email", "arguments": "{\"to\": \"a@"}}]}}]}),
            json!({"choices": [{"index": 0, "delta": {"tool_calls": [{"index": 1, "function": {"name": "fetch", "arguments": "{}"}}]}}]}),
            json!({"choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"arguments": "b.c\"}"}}]}}]}),
            json!({"choices": [{"index": 0, "delta": {"content": "hi"}}]}),
        ];
        let carried: Vec<bool> = chunks.iter().map(|c| assembly.push(c).unwrap()).collect();
        assert_eq!(carried, [true, true, true, true, false]);
        let calls = assembly.calls();
        assert_eq!(calls.len(), 2);
        assert_eq!(calls[0].name, "send_email");
        assert_eq!(calls[0].arguments, "{\"to\": \"a@b.c\"}");
        assert_eq!(calls[1].name, "fetch");
    }

    #[test]
    fn removing_tools_drops_a_choice_that_names_them() {
        let mut body = json!({"tools": [
            {"type": "function", "function": {"name": "a"}},
            {"type": "function", "function": {"name": "b"}}
        ], "tool_choice": {"type": "function", "function": {"name": "b"}}});
        remove_tools(&mut body, &[1]);
        assert_eq!(body["tools"].as_array().unwrap().len(), 1);
        assert!(body.get("tool_choice").is_none());
        remove_tools(&mut body, &[0]);
        assert!(body.get("tools").is_none());
    }

    #[test]
    fn answer_calls_are_read_from_messages() {
        let body = json!({"choices": [{"index": 0, "message": {"role": "assistant", "content": null,
            "tool_calls": [{"id": "x", "type": "function", "function": {"name": "f", "arguments": "{\"k\":1}"}}]}}]});
        let calls = answer_calls(&body);
        assert_eq!(
            calls,
            [ToolCall {
                choice: 0,
                name: "f".into(),
                arguments: "{\"k\":1}".into()
            }]
        );
    }
}
