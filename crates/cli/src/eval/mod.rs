//! `portcullis eval`: runs the full pipeline over labelled dataset files
//! (`shared/datasets` format) and reports how well it detects prompt injection and jailbreaks.
//!
//! Labels `injection` and `jailbreak` are positives and `benign` negatives; records with other
//! labels (`pii`, `secret`, …) are skipped and counted. A record is *detected* when the
//! pipeline flags `prompt_injection` or `jailbreak` for it at the default operating points,
//! exactly as `scan --jsonl` would. Reading: [`metrics`] (counting), [`report`] (what is
//! printed), [`plot`] (the SVG).

mod metrics;
mod plot;
mod report;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context as _;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use portcullis_detect::{Category, Context, Pipeline};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::data;
use crate::pipeline::{self, PipelineArgs};
use metrics::{Latency, Outcome, Predicted, Tally, Truth};

/// Malformed lines quoted per file; the rest are only counted.
const ERRORS_QUOTED: usize = 3;

#[derive(Debug, Args)]
pub(crate) struct EvalArgs {
    /// Dataset files (JSON lines with `text`, `label`, `source`, optional `subsource` and
    /// `context`), or directories of `*.jsonl` files.
    #[arg(required = true, value_name = "FILE")]
    files: Vec<PathBuf>,
    /// Print the whole report as one JSON document instead of tables.
    #[arg(long)]
    json: bool,
    /// Write precision-recall and ROC curves (score: the highest prompt_injection/jailbreak
    /// finding score of each record) to this SVG file.
    #[arg(long, value_name = "OUT.svg")]
    plot: Option<PathBuf>,
    /// Also report precision, recall and FPR at fixed thresholds on that score.
    #[arg(long)]
    threshold_sweep: bool,
    #[command(flatten)]
    pipeline: PipelineArgs,
}

/// A group of outcomes: counts and scan times.
#[derive(Debug, Clone, Default)]
pub(crate) struct Group {
    pub(crate) tally: Tally,
    pub(crate) micros: Vec<f64>,
}

impl Group {
    fn add(&mut self, outcome: &Outcome) {
        self.tally.add(outcome);
        self.micros.push(outcome.micros);
    }

    pub(crate) fn latency(&self) -> Option<Latency> {
        Latency::of(self.micros.iter().copied())
    }
}

/// What one file contributed.
#[derive(Debug, Clone)]
pub(crate) struct FileResult {
    pub(crate) path: PathBuf,
    pub(crate) sha256: String,
    pub(crate) lines: u64,
    pub(crate) group: Group,
    /// Records skipped for their label, by label.
    pub(crate) skipped_labels: BTreeMap<String, u64>,
    pub(crate) malformed: u64,
    /// The first few malformed-line messages.
    pub(crate) errors: Vec<String>,
}

/// Every outcome, and the groups the report breaks them down by.
#[derive(Debug, Default)]
pub(crate) struct Evaluation {
    pub(crate) files: Vec<FileResult>,
    pub(crate) outcomes: Vec<Outcome>,
    pub(crate) overall: Group,
    pub(crate) by_source: BTreeMap<String, Group>,
    /// Keyed `source/subsource`; records without a subsource are only in `by_source`.
    pub(crate) by_subsource: BTreeMap<String, Group>,
    pub(crate) by_context: BTreeMap<&'static str, Group>,
}

#[derive(Deserialize)]
struct RawRecord {
    text: String,
    label: String,
    #[serde(default)]
    source: Option<String>,
    #[serde(default)]
    subsource: Option<serde_json::Value>,
    #[serde(default)]
    context: Option<String>,
}

pub(crate) fn run(args: EvalArgs) -> anyhow::Result<()> {
    let files = data::expand(&args.files)?;
    let (pipeline, model) = pipeline::build(&args.pipeline)?;
    let mut total_bytes = 0;
    for path in &files {
        total_bytes += std::fs::metadata(path)
            .with_context(|| format!("reading {}", path.display()))?
            .len();
    }
    let progress = progress_bar(total_bytes);
    let mut evaluation = Evaluation::default();
    for path in &files {
        progress.set_message(display_name(path));
        evaluation.add_file(path, &pipeline, &progress)?;
    }
    progress.finish_and_clear();
    let report = report::Report::build(&evaluation, model, args.threshold_sweep);
    if let Some(path) = &args.plot {
        let svg = plot::svg(&plot::series(&evaluation), &report.plot_caption());
        std::fs::write(path, svg).with_context(|| format!("writing {}", path.display()))?;
    }
    let mut stdout = std::io::stdout().lock();
    if args.json {
        serde_json::to_writer_pretty(&mut stdout, &report)?;
        writeln!(stdout)?;
    } else {
        report.write_text(&mut stdout)?;
        if let Some(path) = &args.plot {
            writeln!(stdout, "\nplot: {}", path.display())?;
        }
    }
    stdout.flush()?;
    Ok(())
}

/// A byte-count progress bar on stderr, hidden when stderr is not a terminal.
fn progress_bar(total_bytes: u64) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(total_bytes);
    if let Ok(style) =
        ProgressStyle::with_template("{elapsed_precise} {wide_bar} {bytes}/{total_bytes} {msg}")
    {
        bar.set_style(style);
    }
    bar
}

fn display_name(path: &Path) -> String {
    path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    )
}

impl Evaluation {
    /// Reads one file line by line, scanning each labelled record as it comes.
    fn add_file(
        &mut self,
        path: &Path,
        pipeline: &Pipeline,
        progress: &ProgressBar,
    ) -> anyhow::Result<()> {
        let file =
            std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
        let default_source = path
            .file_stem()
            .map_or_else(String::new, |s| s.to_string_lossy().into_owned());
        let mut reader = BufReader::new(file);
        let mut hasher = Sha256::new();
        let mut result = FileResult {
            path: path.to_path_buf(),
            sha256: String::new(),
            lines: 0,
            group: Group::default(),
            skipped_labels: BTreeMap::new(),
            malformed: 0,
            errors: Vec::new(),
        };
        let mut line = Vec::new();
        loop {
            line.clear();
            let read = reader
                .read_until(b'\n', &mut line)
                .with_context(|| format!("reading {}", path.display()))?;
            if read == 0 {
                break;
            }
            hasher.update(&line);
            progress.inc(read as u64);
            result.lines += 1;
            if line.trim_ascii().is_empty() {
                continue;
            }
            match parse_record(&line) {
                Ok(raw) => self.add_record(raw, &default_source, pipeline, &mut result),
                Err(message) => {
                    result.malformed += 1;
                    if result.errors.len() < ERRORS_QUOTED {
                        result
                            .errors
                            .push(format!("line {}: {message}", result.lines));
                    }
                }
            }
        }
        result.sha256 = data::hex(&hasher.finalize());
        self.files.push(result);
        Ok(())
    }

    fn add_record(
        &mut self,
        raw: RawRecord,
        default_source: &str,
        pipeline: &Pipeline,
        file: &mut FileResult,
    ) {
        let Some(truth) = Truth::parse(&raw.label) else {
            *file.skipped_labels.entry(raw.label).or_default() += 1;
            return;
        };
        let context = match raw.context.as_deref() {
            None => Context::UserPrompt,
            Some(name) => match Context::parse(name) {
                Some(context) => context,
                None => {
                    file.malformed += 1;
                    if file.errors.len() < ERRORS_QUOTED {
                        let line = file.lines;
                        file.errors
                            .push(format!("line {line}: unknown context `{name}`"));
                    }
                    return;
                }
            },
        };
        let started = Instant::now();
        let scan = pipeline.scan(&raw.text, context);
        let micros = started.elapsed().as_secs_f64() * 1e6;
        let score = scan
            .findings
            .iter()
            .filter(|f| matches!(f.category, Category::PromptInjection | Category::Jailbreak))
            .map(|f| f.score)
            .fold(0.0, f32::max);
        let outcome = Outcome {
            truth,
            predicted: Predicted::from_flagged(&scan.flagged),
            context,
            score,
            micros,
        };
        let source = raw.source.unwrap_or_else(|| default_source.to_owned());
        if let Some(subsource) = subsource_name(raw.subsource) {
            self.by_subsource
                .entry(format!("{source}/{subsource}"))
                .or_default()
                .add(&outcome);
        }
        self.by_source.entry(source).or_default().add(&outcome);
        self.by_context
            .entry(context.as_str())
            .or_default()
            .add(&outcome);
        self.overall.add(&outcome);
        file.group.add(&outcome);
        self.outcomes.push(outcome);
    }
}

fn parse_record(line: &[u8]) -> Result<RawRecord, String> {
    // serde would also read a struct from an array; a record is an object.
    if line.trim_ascii_start().first() != Some(&b'{') {
        return Err("expected a JSON object".to_owned());
    }
    serde_json::from_slice(line).map_err(|e| {
        let text = e.to_string();
        let message = text
            .rfind(" at line ")
            .map_or(text.as_str(), |i| &text[..i]);
        format!("column {}: {message}", e.column())
    })
}

fn subsource_name(value: Option<serde_json::Value>) -> Option<String> {
    match value? {
        serde_json::Value::Null => None,
        serde_json::Value::String(s) => Some(s),
        other => Some(other.to_string()),
    }
}
