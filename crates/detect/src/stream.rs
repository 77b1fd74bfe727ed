//! The streaming scanner: synchronous and I/O-free. The gateway pushes each text delta of a
//! streamed answer and gets back what it may send now (already redacted), or that it must hold
//! or block. Text already sent cannot be recalled; this scanner's job is to hold back exactly
//! the text that a finding might still start in.
//!
//! # Window
//!
//! ```text
//!   released        committed_until            end - hold_back      end
//! ──────┼──────────────────┼──────────────────────────┼───────────────┤
//!  sent │ final, not sent  │ may still hold a finding │   hold-back   │
//!       │                  │ (pending ones start here)│               │
//!   ◄─── lookback ───►  (context rescanned with each step)
//! ```
//!
//! Each step rescans a window from `lookback` bytes before `committed_until` to the end. A
//! finding is *final* once `hold_back` bytes have arrived after its end (no detector looks
//! further ahead than that); one that is not final is *pending* and holds everything from its
//! start. `committed_until` moves to the earlier of `end - hold_back` and the first pending
//! finding; findings starting before it are committed and never change. Text up to
//! `committed_until` is released, with findings the policy redacts replaced by placeholders,
//! and never cutting through one.
//!
//! Detectors read at most `lookback` bytes before a finding (context words, a key file's
//! header, an image's alt text) and at most `hold_back` bytes after it, so the findings a stream
//! commits are the findings a scan of the whole text reports (a property test checks this under
//! arbitrary chunking). That is why a stream runs `Pipeline::with_pattern_detectors` (plus
//! per-request extras such as a canary) and not `Pipeline::default_full`: the injection
//! classifier scores 2 KiB windows placed over the whole text, so its findings are not local.
//! Limits: a finding longer than `max_hold` cannot be held whole, and `on_overflow` says what
//! then happens; the normaliser's per-input decoding budget applies per window.
//!
//! Cost: each step rescans about `lookback + hold_back` bytes plus the new text, and steps run
//! at most every `rescan_every` bytes, so a stream costs a small constant times its length.

use std::sync::Arc;

use crate::finding::{Context, Detector, Finding, dedup_findings};
use crate::pipeline::Pipeline;
use crate::redact::{Redacted, RedactionMap};

/// What the stream does with one committed finding. The gateway derives it from the policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FindingAction {
    /// Send the text unchanged.
    Allow,
    /// Replace the finding's text with a placeholder.
    Redact,
    /// Stop the stream.
    Block,
}

/// What to do when a pending finding would hold more than `max_hold` bytes. Deliberately no
/// default: releasing sends a possibly sensitive prefix, blocking ends the answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OnOverflow {
    /// Release the held text (unredacted where the finding was not yet final).
    Release,
    /// End the stream.
    Block,
}

/// Limits of the stream window. Larger `hold_back` and `lookback` tolerate detectors that look
/// further but delay text and cost more per step; larger `rescan_every` cuts cost but releases
/// text in bigger steps.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StreamConfig {
    /// Bytes held after the last final position: the longest reach of a detector past the
    /// end of its finding.
    pub hold_back: usize,
    /// Bytes of context before the uncommitted region that each rescan includes.
    pub lookback: usize,
    /// Most bytes held unreleased before `on_overflow` applies.
    pub max_hold: usize,
    /// New bytes that trigger a rescan.
    pub rescan_every: usize,
    /// What happens beyond `max_hold`.
    pub on_overflow: OnOverflow,
}

impl StreamConfig {
    /// Default limits (256 B hold-back, 2 KiB lookback, 16 KiB max hold, rescan every 32 B) with
    /// the given overflow choice.
    pub fn new(on_overflow: OnOverflow) -> Self {
        Self {
            hold_back: 256,
            lookback: 2048,
            max_hold: 16 * 1024,
            rescan_every: 32,
            on_overflow,
        }
    }
}

/// Why a stream was blocked.
#[derive(Clone, Debug, PartialEq)]
pub enum BlockReason {
    /// A finding whose action is `Block`.
    Finding(Finding),
    /// More than `max_hold` bytes would have to be held.
    Overflow {
        /// Bytes held when the limit was hit.
        held: usize,
    },
}

/// Text the gateway may send now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Release {
    /// Bytes of the input stream released in total, this release included.
    pub upto: usize,
    /// The released input bytes, with redactions applied.
    pub text: String,
}

/// The scanner's answer to a push.
#[must_use]
#[derive(Clone, Debug, PartialEq)]
pub enum ScanStep {
    /// Nothing new can be sent yet.
    Hold,
    /// Send this text.
    Release(Release),
    /// Stop the stream; send nothing more.
    Block(BlockReason),
}

/// The decision function: which action a committed finding gets.
pub type Decide = Box<dyn Fn(&Finding) -> FindingAction + Send + Sync>;

/// Scans one streamed text. See the module docs for the window.
pub struct StreamScanner {
    pipeline: Arc<Pipeline>,
    extra: Vec<Box<dyn Detector>>,
    context: Context,
    config: StreamConfig,
    decide: Decide,
    map: RedactionMap,
    /// The retained text; its first byte is stream offset `base`.
    text: String,
    base: usize,
    released: usize,
    committed_until: usize,
    /// Committed findings still near the window, with their actions.
    committed: Vec<(Finding, FindingAction)>,
    /// Every committed finding of the stream.
    history: Vec<Finding>,
    scanned_to: usize,
    blocked: Option<BlockReason>,
}

impl std::fmt::Debug for StreamScanner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamScanner")
            .field("base", &self.base)
            .field("released", &self.released)
            .field("committed_until", &self.committed_until)
            .field("committed", &self.committed.len())
            .finish_non_exhaustive()
    }
}

/// The end state of a stream.
#[derive(Debug)]
pub struct Finished {
    /// What to do with the rest of the text.
    pub step: ScanStep,
    /// Every finding of the stream, in stream offsets, sorted.
    pub findings: Vec<Finding>,
    /// The placeholders issued, for unmasking.
    pub map: RedactionMap,
}

impl StreamScanner {
    /// A scanner for one stream. `extra` holds per-request detectors (a canary); `map` is the
    /// exchange's redaction map, so placeholders match those used on the request.
    pub fn new(
        pipeline: Arc<Pipeline>,
        extra: Vec<Box<dyn Detector>>,
        context: Context,
        config: StreamConfig,
        decide: Decide,
        map: RedactionMap,
    ) -> Self {
        Self {
            pipeline,
            extra,
            context,
            config,
            decide,
            map,
            text: String::new(),
            base: 0,
            released: 0,
            committed_until: 0,
            committed: Vec::new(),
            history: Vec::new(),
            scanned_to: 0,
            blocked: None,
        }
    }

    /// Findings committed so far, in stream offsets.
    pub fn findings(&self) -> &[Finding] {
        &self.history
    }

    /// Adds a delta of the streamed text.
    pub fn push(&mut self, delta: &str) -> ScanStep {
        if let Some(reason) = &self.blocked {
            return ScanStep::Block(reason.clone());
        }
        self.text.push_str(delta);
        if self.end() < self.scanned_to + self.config.rescan_every {
            return ScanStep::Hold;
        }
        self.step(false)
    }

    /// Ends the stream: scans what is left and releases (or blocks) the rest.
    pub fn finish(mut self) -> Finished {
        let step = match self.blocked.clone() {
            Some(reason) => ScanStep::Block(reason),
            None => self.step(true),
        };
        let mut findings = self.history;
        dedup_findings(&mut findings);
        Finished {
            step,
            findings,
            map: self.map,
        }
    }

    fn end(&self) -> usize {
        self.base + self.text.len()
    }

    fn step(&mut self, last: bool) -> ScanStep {
        let end = self.end();
        self.scanned_to = end;
        let pending_start = self.scan_window(last);
        let stable = if last {
            end
        } else {
            end.saturating_sub(self.config.hold_back)
        };
        let mut release_to = stable.min(pending_start).max(self.committed_until);
        self.committed_until = release_to;
        if let Some(f) = self
            .committed
            .iter()
            .find(|(f, a)| *a == FindingAction::Block && f.end > self.released)
        {
            let reason = BlockReason::Finding(f.0.clone());
            self.blocked = Some(reason.clone());
            return ScanStep::Block(reason);
        }
        if !last && end - self.released > self.config.max_hold {
            match self.config.on_overflow {
                OnOverflow::Block => {
                    let reason = BlockReason::Overflow {
                        held: end - self.released,
                    };
                    self.blocked = Some(reason.clone());
                    return ScanStep::Block(reason);
                }
                OnOverflow::Release => release_to = release_to.max(stable),
            }
        }
        let step = self.release(release_to);
        self.trim();
        step
    }

    /// Rescans the window and commits the findings that became final. Returns where the first
    /// pending finding starts (or the end of the text).
    fn scan_window(&mut self, last: bool) -> usize {
        let end = self.end();
        let start = self.window_start();
        let window = self.text.get(start - self.base..).unwrap_or_default();
        let extra: Vec<&dyn Detector> = self.extra.iter().map(AsRef::as_ref).collect();
        let found = self.pipeline.findings_with(window, self.context, &extra);
        let mut pending_start = end;
        let mut fresh = Vec::new();
        for mut f in found {
            f.start += start;
            f.end += start;
            if f.start < self.committed_until {
                continue;
            }
            if last || f.end + self.config.hold_back <= end {
                fresh.push(f);
            } else {
                pending_start = pending_start.min(f.start);
            }
        }
        // Only findings before the first pending one are committed: a pending finding may
        // still change how its neighbours resolve.
        for f in fresh.into_iter().filter(|f| f.start < pending_start) {
            let known = self.committed.iter().any(|(c, _)| same(c, &f));
            if !known {
                let action = (self.decide)(&f);
                self.history.push(f.clone());
                self.committed.push((f, action));
            }
        }
        pending_start
    }

    /// Where the rescan starts: `lookback` before the uncommitted region, moved back to a
    /// whitespace (so no token is cut) when one is near.
    fn window_start(&self) -> usize {
        let want = self
            .committed_until
            .saturating_sub(self.config.lookback)
            .max(self.base);
        let local = want - self.base;
        let bytes = self.text.as_bytes();
        let ws = bytes
            .get(local.saturating_sub(64)..local)
            .and_then(|b| b.iter().rposition(u8::is_ascii_whitespace))
            .map(|k| local.saturating_sub(64) + k + 1);
        let mut local = ws.unwrap_or(local);
        while !self.text.is_char_boundary(local) {
            local -= 1;
        }
        self.base + local
    }

    /// Releases text up to `to` (moved back so no redacted finding is cut).
    fn release(&mut self, to: usize) -> ScanStep {
        let mut to = to;
        for (f, action) in &self.committed {
            if *action == FindingAction::Redact && f.start < to && to < f.end {
                to = to.min(f.start);
            }
        }
        let local_to = to.saturating_sub(self.base).min(self.text.len());
        let mut local_to = local_to;
        while !self.text.is_char_boundary(local_to) {
            local_to -= 1;
        }
        let to = self.base + local_to;
        if to <= self.released {
            return ScanStep::Hold;
        }
        let from = self.released - self.base;
        let chunk = self.text.get(from..local_to).unwrap_or_default();
        let spans: Vec<Finding> = self
            .committed
            .iter()
            .filter(|(f, a)| *a == FindingAction::Redact && f.end > self.released && f.start < to)
            .map(|(f, _)| {
                let mut local = f.clone();
                local.start = f.start.max(self.released) - self.released;
                local.end = f.end.min(to) - self.released;
                local
            })
            .collect();
        let Redacted { text, .. } = self.map.redact(chunk, &spans);
        self.released = to;
        ScanStep::Release(Release { upto: to, text })
    }

    /// Drops text that is released and outside every future window.
    fn trim(&mut self) {
        let keep_from = self.released.min(
            self.committed_until
                .saturating_sub(self.config.lookback + 64),
        );
        let mut cut = keep_from.saturating_sub(self.base);
        while cut > 0 && !self.text.is_char_boundary(cut) {
            cut -= 1;
        }
        if cut > 4096 {
            self.text.drain(..cut);
            self.base += cut;
        }
        // Committed findings wholly before the release point can no longer matter.
        let released = self.released;
        let committed_until = self.committed_until;
        self.committed
            .retain(|(f, _)| f.end > released || f.start + 4096 > committed_until);
    }
}

fn same(a: &Finding, b: &Finding) -> bool {
    a.start == b.start && a.end == b.end && a.category == b.category && a.rule == b.rule
}
