//! The stream guard: scans a streamed answer as it passes and sends each SSE event only once
//! the text it carries is cleared.
//!
//! Every chunk's text delta (per choice) goes through a `StreamScanner` (bounded hold-back;
//! findings decided by the policy one at a time, stage `response`). Whole events are held in
//! order until the scanner has released all of their text. An event whose released text is
//! exactly what it carried is sent as the upstream's original bytes, so a clean stream is
//! byte-identical to the upstream's, only later by the hold-back. Where the scanner redacted,
//! the held events are re-encoded with the released text. A block ends the stream: held events
//! are dropped, a final chunk with `finish_reason: "content_filter"` and an error event follow,
//! and nothing more is read. Text already sent cannot be recalled.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use portcullis_config::RouteGuard;
use portcullis_detect::{
    BlockReason, CanaryDetector, Context, Decide, Detector, Finding, FindingAction, RedactionMap,
    ScanStep, StreamScanner,
};
use portcullis_openai::texts::{chunk_texts, set_chunk_text};
use portcullis_openai::{Endpoint, event_data, split_events};
use portcullis_policy::Action;
use portcullis_telemetry::Metrics;
use serde_json::{Value, json};

use super::input::{Located, OwnedBase};
use super::{AnswerGuard, AuditHandle, Denial, Recorded};
use crate::snapshot::Snapshot;

/// Most choices (`n`) one guarded stream may carry.
const MAX_CHOICES: usize = 16;
/// Most event bytes held at once (on top of the scanner's own text bound).
const MAX_HELD_BYTES: usize = 4 * 1024 * 1024;

/// One choice's text stream.
struct Choice {
    index: u64,
    scanner: Option<StreamScanner>,
    /// Text bytes pushed so far.
    pushed: usize,
    /// Text bytes the scanner released so far.
    released: usize,
    /// Original text from `released` to `pushed`.
    unreleased: String,
    /// Released text not yet sent.
    pending: String,
    /// Stream offset of `pending`'s first byte, when `pending` is the original text.
    pending_start: usize,
    pending_verbatim: bool,
}

struct Piece {
    choice: usize,
    index: u64,
    start: usize,
    end: usize,
}

struct Held {
    raw: Bytes,
    /// Carries a tool-call fragment: held until the stream's calls are decided.
    tool_call: bool,
    /// Whether the event is a JSON chunk (only those are re-encoded).
    json: bool,
    pieces: Vec<Piece>,
}

/// What the body sends after one batch.
#[derive(Debug, Default)]
pub(crate) struct Output {
    /// Bytes to send now (possibly empty).
    pub(crate) bytes: Vec<u8>,
    /// The stream was blocked: send `bytes` and end.
    pub(crate) blocked: bool,
}

/// See the module docs.
pub(crate) struct StreamGuard {
    snapshot: Arc<Snapshot>,
    endpoint: Endpoint,
    guard: RouteGuard,
    base: Arc<OwnedBase>,
    metrics: Arc<Metrics>,
    canary: Option<String>,
    /// The request's placeholders, so the answer reuses them.
    map: RedactionMap,
    choices: Vec<Choice>,
    held: VecDeque<Held>,
    held_bytes: usize,
    /// The `data` of the last JSON chunk: ids and model for the final chunk of a block.
    template: Option<String>,
    denial: Arc<Mutex<Option<Denial>>>,
    finished: bool,
    /// Tool calls assembled from `delta.tool_calls`, decided at the end of the stream.
    calls: super::tools::CallAssembly,
    /// The tools the request offered (after policy), for `tool.listed`.
    offered: Vec<String>,
    /// The assembled calls were allowed: their events may go.
    calls_cleared: bool,
    /// The audit log and the exchange's request id, when an audit log runs.
    audit: Option<AuditHandle>,
}

impl StreamGuard {
    /// A guard for the stream that answers the exchange `answer` was set up for.
    pub(crate) fn new(answer: AnswerGuard) -> Self {
        Self {
            snapshot: answer.snapshot,
            endpoint: answer.endpoint,
            guard: answer.guard,
            base: Arc::new(answer.base),
            metrics: answer.metrics,
            canary: answer.canary,
            map: answer.map,
            choices: Vec::new(),
            held: VecDeque::new(),
            held_bytes: 0,
            template: None,
            denial: Arc::new(Mutex::new(None)),
            finished: false,
            calls: super::tools::CallAssembly::default(),
            offered: answer.offered,
            calls_cleared: false,
            audit: answer.audit,
        }
    }

    /// Processes a batch of whole SSE events from the upstream.
    pub(crate) fn push(&mut self, events: &[u8]) -> Output {
        let mut out = Output::default();
        if self.finished {
            return out;
        }
        for event in split_events(events) {
            let raw = Bytes::copy_from_slice(event);
            match event_data(event) {
                Some(data) if data.trim() == "[DONE]" => {
                    if let Err(denial) = self.finish_scanners().and_then(|()| self.decide_calls()) {
                        self.block(&mut out, denial);
                        return out;
                    }
                    self.emit_ready(&mut out);
                    out.bytes.extend_from_slice(&raw);
                    self.finished = true;
                    return out;
                }
                Some(data) => {
                    if let Err(denial) = self.hold(raw, &data) {
                        self.block(&mut out, denial);
                        return out;
                    }
                }
                // Comments and keep-alives carry no text.
                None => self.held.push_back(Held {
                    raw,
                    tool_call: false,
                    json: false,
                    pieces: Vec::new(),
                }),
            }
            self.emit_ready(&mut out);
        }
        out
    }

    /// The stream is failing (upstream broke or went silent, shutdown): the held text is
    /// scanned as final and sent if it is clean; returns those events. On a block nothing more
    /// is sent. The caller then sends its error event.
    pub(crate) fn flush_on_failure(&mut self) -> Vec<u8> {
        let mut out = Output::default();
        if !self.finished && self.finish_scanners().is_ok() {
            self.emit_ready(&mut out);
        }
        self.held.clear();
        self.finished = true;
        out.bytes
    }

    /// Decides on the tool calls the stream assembled; `Err` with the denial of the first
    /// refused one.
    fn decide_calls(&mut self) -> Result<(), Denial> {
        if self.calls.is_empty() {
            self.calls_cleared = true;
            return Ok(());
        }
        let runtime = self.snapshot.guard();
        let base = self.base.borrow();
        let deciding = super::tools::Deciding {
            runtime,
            metrics: &self.metrics,
            base: &base,
            shadow: self.guard.shadow,
            auditing: self.audit.as_ref().map(AuditHandle::borrow),
        };
        let denied = super::tools::decide_calls(&deciding, &self.offered, &self.calls.calls());
        match denied {
            Some(verdict) => Err(Denial::new(&verdict, self.guard, true)),
            None => {
                self.calls_cleared = true;
                Ok(())
            }
        }
    }

    fn hold(&mut self, raw: Bytes, data: &str) -> Result<(), Denial> {
        // Tool-call fragments: only chunks that mention them are parsed a second time.
        let mut tool_call = false;
        if self.endpoint == Endpoint::ChatCompletions
            && data.contains("\"tool_calls\"")
            && let Ok(chunk) = serde_json::from_str::<Value>(data)
        {
            tool_call = self.calls.push(&chunk).map_err(overflow_denial)?;
        }
        let texts = chunk_texts(self.endpoint, data);
        let json = texts.is_some();
        let mut pieces = Vec::new();
        for (index, text) in texts.into_iter().flatten() {
            let slot = self.choice_slot(index)?;
            let choice = &mut self.choices[slot];
            let start = choice.pushed;
            choice.pushed += text.len();
            choice.unreleased.push_str(&text);
            pieces.push(Piece {
                choice: slot,
                index,
                start,
                end: choice.pushed,
            });
            let step = match choice.scanner.as_mut() {
                Some(scanner) => scanner.push(&text),
                None => ScanStep::Hold,
            };
            self.apply(slot, step)?;
        }
        if json {
            let template = self.template.get_or_insert_with(String::new);
            template.clear();
            template.push_str(data);
        }
        self.held_bytes += raw.len();
        if self.held_bytes > MAX_HELD_BYTES {
            return Err(overflow_denial(self.held_bytes));
        }
        self.held.push_back(Held {
            raw,
            tool_call,
            json,
            pieces,
        });
        Ok(())
    }

    fn choice_slot(&mut self, index: u64) -> Result<usize, Denial> {
        if let Some(slot) = self.choices.iter().position(|c| c.index == index) {
            return Ok(slot);
        }
        if self.choices.len() >= MAX_CHOICES {
            return Err(Denial {
                code: "too_many_choices".into(),
                reasons: vec![format!(
                    "a guarded stream carries at most {MAX_CHOICES} choices"
                )],
                on_response: true,
                policy_failed: false,
                audit_failed: false,
            });
        }
        let scanner = self.scanner(index);
        self.choices.push(Choice {
            index,
            scanner: Some(scanner),
            pushed: 0,
            released: 0,
            unreleased: String::new(),
            pending: String::new(),
            pending_start: 0,
            pending_verbatim: true,
        });
        Ok(self.choices.len() - 1)
    }

    fn scanner(&self, index: u64) -> StreamScanner {
        let extra: Vec<Box<dyn Detector>> = self
            .canary
            .iter()
            .map(|c| Box::new(CanaryDetector::new(c.clone())) as Box<dyn Detector>)
            .collect();
        let runtime = self.snapshot.guard();
        let (patterns, config) = (runtime.patterns.clone(), runtime.stream.clone());
        let decide = self.decide_fn(index);
        StreamScanner::new(
            patterns,
            extra,
            Context::Assistant,
            config,
            decide,
            self.map.clone(),
        )
    }

    /// The per-finding decision: one policy evaluation with that finding alone.
    fn decide_fn(&self, index: u64) -> Decide {
        let snapshot = self.snapshot.clone();
        let base = self.base.clone();
        let metrics = self.metrics.clone();
        let guard = self.guard;
        let endpoint = self.endpoint;
        let slot = self.denial.clone();
        let audit = self.audit.clone();
        Box::new(move |finding: &Finding| {
            let runtime = snapshot.guard();
            let flagged = runtime
                .patterns
                .flagged(std::slice::from_ref(finding), Context::Assistant, &[])
                .contains(&finding.category);
            let located = [Located::in_stream(finding.clone(), flagged, index)];
            let input = base.borrow().response_input(&located);
            // The scanner holds the stream's text, not this decision: the event carries the
            // finding's category and score, no text.
            let audited = audit.as_ref().map(|handle| {
                let target = portcullis_audit::Target::Model {
                    model: base.borrow().model.to_owned(),
                };
                let stage = portcullis_audit::Stage::Response;
                handle.borrow().audited(stage, target, Vec::new(), &located)
            });
            let mut record = Recorded {
                metrics: &metrics,
                route: endpoint.label(),
                stage: "response",
                shadow: guard.shadow,
                categories: super::input::flagged_categories(&located),
                detect: None,
                audit: audited,
            };
            let verdict = runtime.decide(&input, &mut record);
            match verdict.effective() {
                Action::Deny | Action::RequireApproval => {
                    if let Ok(mut denial) = slot.lock() {
                        denial.get_or_insert_with(|| Denial::new(&verdict, guard, true));
                    }
                    FindingAction::Block
                }
                Action::Redact if verdict.decision.redacts(finding.category.as_str()) => {
                    FindingAction::Redact
                }
                Action::Redact | Action::Allow => FindingAction::Allow,
            }
        })
    }

    fn apply(&mut self, slot: usize, step: ScanStep) -> Result<(), Denial> {
        match step {
            ScanStep::Hold => Ok(()),
            ScanStep::Release(release) => {
                let choice = &mut self.choices[slot];
                let n = release.upto.saturating_sub(choice.released);
                let n = n.min(choice.unreleased.len());
                if choice.pending.is_empty() {
                    choice.pending_start = choice.released;
                    choice.pending_verbatim = true;
                }
                let verbatim = choice.unreleased.get(..n) == Some(release.text.as_str());
                if !verbatim {
                    choice.pending_verbatim = false;
                }
                choice
                    .unreleased
                    .drain(..floor_boundary(&choice.unreleased, n));
                choice.pending.push_str(&release.text);
                choice.released = release.upto;
                Ok(())
            }
            ScanStep::Block(reason) => Err(self.denial_for(reason)),
        }
    }

    fn denial_for(&self, reason: BlockReason) -> Denial {
        if let Some(denial) = self.denial.lock().ok().and_then(|mut slot| slot.take()) {
            return denial;
        }
        match reason {
            BlockReason::Overflow { held } => overflow_denial(held),
            BlockReason::Finding(finding) => Denial {
                code: "policy_violation".into(),
                reasons: if self.guard.expose_reasons {
                    vec![format!("{} in the answer", finding.category.as_str())]
                } else {
                    Vec::new()
                },
                on_response: true,
                policy_failed: false,
                audit_failed: false,
            },
        }
    }

    fn finish_scanners(&mut self) -> Result<(), Denial> {
        for slot in 0..self.choices.len() {
            if let Some(scanner) = self.choices[slot].scanner.take() {
                let finished = scanner.finish();
                self.apply(slot, finished.step)?;
            }
        }
        Ok(())
    }

    /// Sends, in order, every held event whose text is all released.
    fn emit_ready(&mut self, out: &mut Output) {
        while let Some(front) = self.held.front() {
            let ready = (!front.tool_call || self.calls_cleared)
                && front
                    .pieces
                    .iter()
                    .all(|p| p.end <= self.choices[p.choice].released);
            if !ready {
                break;
            }
            let Some(event) = self.held.pop_front() else {
                break;
            };
            self.held_bytes = self.held_bytes.saturating_sub(event.raw.len());
            self.emit(event, out);
        }
    }

    fn emit(&mut self, event: Held, out: &mut Output) {
        let mut texts = Vec::with_capacity(event.pieces.len());
        let mut verbatim = true;
        for piece in &event.pieces {
            let choice = &mut self.choices[piece.choice];
            let len = piece.end - piece.start;
            if choice.pending_verbatim
                && choice.pending_start == piece.start
                && choice.pending.len() >= len
                && choice.pending.is_char_boundary(len)
            {
                let text: String = choice.pending.drain(..len).collect();
                choice.pending_start = piece.end;
                texts.push((piece.index, text));
            } else {
                verbatim = false;
                let text = std::mem::take(&mut choice.pending);
                choice.pending_start = choice.released;
                choice.pending_verbatim = true;
                texts.push((piece.index, text));
            }
        }
        let chunk = (!verbatim && event.json)
            .then(|| event_data(&event.raw))
            .flatten()
            .and_then(|data| serde_json::from_str::<Value>(&data).ok());
        match chunk {
            Some(mut chunk) => {
                for (index, text) in texts {
                    set_chunk_text(self.endpoint, &mut chunk, index, text);
                }
                out.bytes.extend_from_slice(b"data: ");
                out.bytes.extend_from_slice(chunk.to_string().as_bytes());
                out.bytes.extend_from_slice(b"\n\n");
            }
            None => out.bytes.extend_from_slice(&event.raw),
        }
    }

    /// Ends the stream: drops held events, sends a `content_filter` final chunk per choice and
    /// an error event.
    fn block(&mut self, out: &mut Output, denial: Denial) {
        self.held.clear();
        self.finished = true;
        out.blocked = true;
        let indices: Vec<u64> = if self.choices.is_empty() {
            vec![0]
        } else {
            self.choices.iter().map(|c| c.index).collect()
        };
        let template: Value = self
            .template
            .take()
            .and_then(|data| serde_json::from_str(&data).ok())
            .unwrap_or_else(|| json!({}));
        let choices: Vec<Value> = indices
            .iter()
            .map(|&index| match self.endpoint {
                Endpoint::Completions => {
                    json!({"index": index, "text": "", "finish_reason": "content_filter", "logprobs": null})
                }
                Endpoint::ChatCompletions | Endpoint::Embeddings => {
                    json!({"index": index, "delta": {}, "finish_reason": "content_filter"})
                }
            })
            .collect();
        let mut last = serde_json::Map::new();
        for key in ["id", "object", "created", "model", "system_fingerprint"] {
            if let Some(value) = template.get(key) {
                last.insert(key.into(), value.clone());
            }
        }
        last.insert("choices".into(), Value::Array(choices));
        out.bytes.extend_from_slice(b"data: ");
        out.bytes
            .extend_from_slice(Value::Object(last).to_string().as_bytes());
        out.bytes.extend_from_slice(b"\n\n");
        out.bytes
            .extend_from_slice(&super::denial_error(&denial).to_sse_event());
        tracing::info!(code = %denial.code, "stream blocked by policy");
    }
}

fn overflow_denial(held: usize) -> Denial {
    Denial {
        code: "stream_overflow".into(),
        reasons: vec![format!(
            "a possible finding held {held} bytes, more than the stream window allows"
        )],
        on_response: true,
        policy_failed: false,
        audit_failed: false,
    }
}

fn floor_boundary(text: &str, mut n: usize) -> usize {
    while n > 0 && !text.is_char_boundary(n) {
        n -= 1;
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// One snapshot for every case: building one loads the detectors' model.
    fn snapshot() -> Arc<Snapshot> {
        static SNAPSHOT: std::sync::LazyLock<Arc<Snapshot>> = std::sync::LazyLock::new(build);
        SNAPSHOT.clone()
    }

    fn build() -> Arc<Snapshot> {
        let yaml = "upstreams:\n  - name: m\n    url: http://127.0.0.1:9/v1\n    models: [m]\n";
        let raw = portcullis_config::parse_yaml(yaml).unwrap();
        let config = portcullis_config::Config::from_raw(&raw).unwrap();
        Arc::new(Snapshot::build(config).unwrap())
    }

    fn guard(snapshot: &Arc<Snapshot>) -> StreamGuard {
        let principal = portcullis_core::Principal::anonymous_shared();
        let base = super::super::Base {
            principal: &principal,
            route: "chat_completions",
            model: "m",
            upstream: "m",
            trusted: true,
            stream: true,
        };
        StreamGuard::new(AnswerGuard {
            snapshot: snapshot.clone(),
            endpoint: Endpoint::ChatCompletions,
            guard: snapshot.config().guard.route("chat_completions"),
            base: base.to_owned(),
            map: RedactionMap::new(),
            canary: None,
            metrics: Arc::new(Metrics::new()),
            offered: Vec::new(),
            audit: None,
        })
    }

    fn event(delta: &str) -> String {
        let chunk = json!({"id": "c", "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"content": delta}, "finish_reason": null}]});
        format!("data: {chunk}\n\n")
    }

    /// Runs `deltas` as a stream through a guard, feeding `batch` events per push.
    fn run(snapshot: &Arc<Snapshot>, deltas: &[String], batch: usize) -> (String, String, bool) {
        let mut guard = guard(snapshot);
        let mut events: Vec<String> = deltas.iter().map(|d| event(d)).collect();
        events.push("data: {\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n".into());
        events.push("data: [DONE]\n\n".into());
        let input: String = events.concat();
        let mut output = Vec::new();
        let mut blocked = false;
        for group in events.chunks(batch.max(1)) {
            let out = guard.push(group.concat().as_bytes());
            output.extend_from_slice(&out.bytes);
            if out.blocked {
                blocked = true;
                break;
            }
        }
        (input, String::from_utf8(output).unwrap(), blocked)
    }

    fn split(text: &str, cuts: &[usize]) -> Vec<String> {
        let mut points: Vec<usize> = cuts
            .iter()
            .map(|c| c % (text.len() + 1))
            .filter(|&c| text.is_char_boundary(c))
            .collect();
        points.push(0);
        points.push(text.len());
        points.sort_unstable();
        points.dedup();
        points
            .windows(2)
            .map(|w| text[w[0]..w[1]].to_string())
            .collect()
    }

    const WORDS: &[&str] = &[
        "the",
        "gate",
        "closes",
        "at",
        "dusk;",
        "write",
        "to",
        "ana@example.org",
        "or",
        "call",
        "château",
        "naïve",
        "—",
        "ok.",
        "\n",
        "日本語",
        "🙂",
        "levels",
        "of",
        "portcullis",
    ];

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]
        /// A clean stream leaves the guard byte-identical, however it is cut into chunks and
        /// however many events arrive per read.
        #[test]
        fn clean_streams_pass_byte_for_byte(
            words in proptest::collection::vec(0..WORDS.len(), 0..120),
            cuts in proptest::collection::vec(0usize..4000, 0..60),
            batch in 1usize..5,
        ) {
            let snapshot = snapshot();
            let text: String = words.iter().map(|&i| WORDS[i]).collect::<Vec<_>>().join(" ");
            let (input, output, blocked) = run(&snapshot, &split(&text, &cuts), batch);
            prop_assert!(!blocked);
            prop_assert_eq!(output, input);
        }

        /// A secret is never sent, whatever the chunking, and the stream ends blocked.
        #[test]
        fn a_secret_never_leaves(
            cuts in proptest::collection::vec(0usize..200, 0..40),
            batch in 1usize..4,
        ) {
            let snapshot = snapshot();
            let text = format!("here it is: ghp_{} and more text after it", "aB3dE5fG7hJ9kL1mN3pQ5rS7tV9wX1yZ3bC5");
            let (_, output, blocked) = run(&snapshot, &split(&text, &cuts), batch);
            prop_assert!(blocked);
            prop_assert!(!output.contains("ghp_"));
            prop_assert!(!output.contains("aB3dE5"));
            prop_assert!(output.contains("content_filter"));
        }
    }
}
