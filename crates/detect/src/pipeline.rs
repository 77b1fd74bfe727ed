//! `Pipeline`: the normaliser plus a list of detectors, run over one text, and the categories
//! that the findings flag.

use crate::error::Result;
use crate::finding::default_flagged;
use crate::finding::{Category, Context, Detector, Finding, ScanInput, dedup_findings};
use crate::injection::InjectionDetector;
use crate::normalise::{Normaliser, Views};
use crate::output::{HostAllowlist, LinkDetector};
use crate::pii::PiiDetector;
use crate::secrets::SecretsDetector;
use crate::tool_poisoning::ToolPoisoningDetector;

/// Normalises a text once and runs every detector over its views. Build once and share.
pub struct Pipeline {
    normaliser: Normaliser,
    detectors: Vec<Box<dyn Detector>>,
    /// The views its own detectors read; extra detectors always get every view.
    views: Views,
}

impl std::fmt::Debug for Pipeline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.detectors.iter().map(|d| d.name()).collect();
        f.debug_struct("Pipeline")
            .field("detectors", &names)
            .finish()
    }
}

/// What a scan of one text found.
#[derive(Clone, Debug, PartialEq)]
pub struct Scan {
    /// Every finding, flagging or not: deduplicated, sorted by position, spans in the
    /// original text.
    pub findings: Vec<Finding>,
    /// The categories whose findings pass the detectors' default operating points for the
    /// text's context (`categories` in `scan --jsonl`), sorted and without repeats.
    pub flagged: Vec<Category>,
}

impl Scan {
    /// Whether any category flagged (`flagged` in `scan --jsonl`).
    pub fn is_flagged(&self) -> bool {
        !self.flagged.is_empty()
    }
}

impl Pipeline {
    /// A pipeline of the given normaliser and detectors.
    pub fn new(normaliser: Normaliser, detectors: Vec<Box<dyn Detector>>) -> Self {
        Self {
            normaliser,
            detectors,
            views: Views::All,
        }
    }

    /// The pattern detectors (PII, secrets, links) with default limits; `allowlist` names the
    /// hosts links may point at. This is the pipeline for the stream scanner: every finding
    /// depends only on text near it.
    ///
    /// It builds only the views pattern detectors read (no leet or despaced view), unless a
    /// scan brings extra detectors, which may read any view.
    pub fn with_pattern_detectors(allowlist: HostAllowlist) -> Self {
        let mut pipeline = Self::new(
            Normaliser::default(),
            vec![
                Box::new(PiiDetector::new()),
                Box::new(SecretsDetector::new()),
                Box::new(LinkDetector::new(allowlist)),
            ],
        );
        pipeline.views = Views::Patterns;
        pipeline
    }

    /// The default pipeline for whole texts (requests, tool results, documents): the pattern
    /// detectors plus prompt-injection detection with the shipped model
    /// ([`InjectionDetector::embedded`]). Per-request checks (a canary, banned text) go in
    /// [`Pipeline::scan_with`]'s `extra`. Fails only if the shipped model or rules do not
    /// load, which the crate's tests rule out.
    pub fn default_full(allowlist: HostAllowlist) -> Result<Self> {
        let mut pipeline = Self::with_pattern_detectors(allowlist);
        pipeline
            .detectors
            .push(Box::new(InjectionDetector::embedded()?));
        pipeline.views = Views::All;
        Ok(pipeline)
    }

    /// The pipeline for tool definitions (an MCP `tools/list` result's names, descriptions and
    /// schema texts, scanned as [`Context::Document`]): [`Pipeline::default_full`] plus the
    /// [`ToolPoisoningDetector`]. Fails only as `default_full` does.
    pub fn default_tool_definitions(allowlist: HostAllowlist) -> Result<Self> {
        let mut pipeline = Self::default_full(allowlist)?;
        pipeline
            .detectors
            .push(Box::new(ToolPoisoningDetector::new()));
        Ok(pipeline)
    }

    /// The detectors, in the order they run.
    pub fn detectors(&self) -> impl Iterator<Item = &dyn Detector> {
        self.detectors.iter().map(|d| d.as_ref())
    }

    /// Scans `text` as it reaches the model in `context`: the normaliser's findings and every
    /// detector's, and the categories they flag.
    pub fn scan(&self, text: &str, context: Context) -> Scan {
        self.scan_with(text, context, &[])
    }

    /// Like `scan`, with extra per-request detectors (a canary, say) run on the same views.
    pub fn scan_with(&self, text: &str, context: Context, extra: &[&dyn Detector]) -> Scan {
        let findings = self.findings_with(text, context, extra);
        let flagged = self.flagged(&findings, context, extra);
        Scan { findings, flagged }
    }

    /// The categories that `findings` (of one text, from this pipeline and `extra`) flag in
    /// `context`: each detector judges its own findings ([`Detector::flagged`]); the
    /// normaliser's, and any from a detector not named here, flag from
    /// [`crate::finding::DEFAULT_FLAG_SCORE`]. Sorted, without repeats.
    pub fn flagged(
        &self,
        findings: &[Finding],
        context: Context,
        extra: &[&dyn Detector],
    ) -> Vec<Category> {
        let mut out = Vec::new();
        let detectors: Vec<&dyn Detector> = self.detectors().chain(extra.iter().copied()).collect();
        for (i, d) in detectors.iter().enumerate() {
            let name = d.name();
            // A name listed twice is judged once, by its first detector.
            if detectors[..i].iter().any(|e| e.name() == name) {
                continue;
            }
            let own: Vec<&Finding> = findings.iter().filter(|f| f.detector == name).collect();
            if !own.is_empty() {
                d.flagged(&own, context, &mut out);
            }
        }
        let unowned = findings
            .iter()
            .filter(|f| !detectors.iter().any(|d| d.name() == f.detector));
        default_flagged(unowned, &mut out);
        out.sort_unstable();
        out.dedup();
        out
    }

    /// All findings for `text`, deduplicated and sorted by position (the stream scanner's
    /// entry, which decides per finding and needs no flags).
    pub(crate) fn findings_with(
        &self,
        text: &str,
        context: Context,
        extra: &[&dyn Detector],
    ) -> Vec<Finding> {
        let views = if extra.is_empty() {
            self.views
        } else {
            Views::All
        };
        let normalised = self.normaliser.normalise_views(text, views);
        let input = ScanInput {
            original: text,
            normalised: &normalised,
            context,
        };
        let mut out = normalised.findings().to_vec();
        for d in &self.detectors {
            d.scan(&input, &mut out);
        }
        for d in extra {
            d.scan(&input, &mut out);
        }
        dedup_findings(&mut out);
        out
    }
}
