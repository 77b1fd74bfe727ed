//! The report of `portcullis eval`: one serialisable value (`--json`) and its text rendering.

use std::collections::BTreeMap;
use std::io::{self, Write};

use serde::Serialize;
use serde_json::Value;

use super::metrics::{Counts, Latency, Predicted, Ranking, Rates, SWEEP, SweepRow, Truth};
use super::{Evaluation, FileResult, Group};
use crate::pipeline::ModelInfo;

/// The model card this build ships with; its data table lists the files (with sha256) the
/// shipped model was trained on, which is how `eval` marks in-sample files.
const MODEL_README: &str = include_str!("../../../detect/models/README.md");

/// Subsource rows with fewer records are left out of the text report (not the JSON).
const MIN_SUBSOURCE_ROWS: u64 = 5;

const POSITIVE: &str = "labels injection and jailbreak are positive, benign negative; a record \
    counts as detected when it is flagged prompt_injection or jailbreak at the default \
    operating points (as `scan --jsonl` flags it); `FPR any` (`false_positive_rate_any`) counts \
    benign records flagged for any category, PII included";

/// Everything `eval` measured.
#[derive(Debug, Serialize)]
pub(crate) struct Report {
    pub(crate) in_sample_note: String,
    pub(crate) definitions: &'static str,
    pub(crate) model: ModelInfo,
    pub(crate) files: Vec<FileReport>,
    pub(crate) overall: GroupReport,
    pub(crate) by_source: BTreeMap<String, GroupReport>,
    pub(crate) by_subsource: BTreeMap<String, GroupReport>,
    pub(crate) by_context: BTreeMap<String, GroupReport>,
    /// How well the highest attack-finding score ranks records (`None` without both classes).
    pub(crate) ranking: Option<RankingReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) threshold_sweep: Option<Vec<SweepRow>>,
}

#[derive(Debug, Serialize)]
pub(crate) struct FileReport {
    pub(crate) path: String,
    pub(crate) sha256: String,
    pub(crate) lines: u64,
    /// Whether the file is listed as training data of the model (`None`: not known, for a
    /// model that is not the shipped one).
    pub(crate) in_training_data: Option<bool>,
    pub(crate) skipped_labels: BTreeMap<String, u64>,
    pub(crate) malformed: u64,
    pub(crate) errors: Vec<String>,
    /// `None` when the file has no benign, injection or jailbreak record.
    pub(crate) metrics: Option<GroupReport>,
}

#[derive(Debug, Serialize)]
pub(crate) struct GroupReport {
    pub(crate) counts: Counts,
    pub(crate) rates: Rates,
    /// Rows: true label; columns: what the record was flagged as.
    pub(crate) confusion: Value,
    pub(crate) latency_us: Option<Latency>,
}

#[derive(Debug, Serialize)]
pub(crate) struct RankingReport {
    pub(crate) score: &'static str,
    pub(crate) roc_auc: f64,
    pub(crate) average_precision: f64,
    pub(crate) note: &'static str,
}

impl GroupReport {
    fn of(group: &Group) -> GroupReport {
        GroupReport {
            counts: group.tally.counts(),
            rates: group.tally.counts().rates(),
            confusion: group.tally.confusion_json(),
            latency_us: group.latency(),
        }
    }
}

/// sha256 values in the model card's data table (rows `| name.jsonl | lines | sha256 |`).
fn training_hashes() -> Vec<&'static str> {
    MODEL_README
        .lines()
        .filter(|l| l.starts_with('|') && l.contains(".jsonl"))
        .filter_map(|l| l.trim_end_matches('|').rsplit('|').next())
        .map(str::trim)
        .filter(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
        .collect()
}

fn in_sample_note(model: &ModelInfo) -> String {
    if model.is_embedded() {
        "IN-SAMPLE: the shipped model was trained on all of the dev datasets (shared/datasets), \
         and its rules were written while reading them, so numbers on those files measure fit, \
         not generalisation. Files marked `trained: yes` match (by sha256) a file listed in \
         crates/detect/models/README.md. For sources the model never saw, read the \
         leave-one-source-out numbers in crates/detect/models/REPORT.md."
            .to_owned()
    } else {
        format!(
            "Model {}: numbers on any file it was trained on are in-sample. The rules were \
             written while reading the dev datasets, so numbers on those are in-sample for the \
             rules in any case.",
            model.describe()
        )
    }
}

impl Report {
    pub(crate) fn build(evaluation: &Evaluation, model: ModelInfo, sweep: bool) -> Report {
        let hashes = training_hashes();
        let files = evaluation
            .files
            .iter()
            .map(|f| file_report(f, model.is_embedded().then_some(&hashes)))
            .collect();
        let groups = |map: &BTreeMap<String, Group>| {
            map.iter()
                .map(|(k, g)| (k.clone(), GroupReport::of(g)))
                .collect()
        };
        let ranking = Ranking::new(evaluation.outcomes.iter());
        Report {
            in_sample_note: in_sample_note(&model),
            definitions: POSITIVE,
            files,
            overall: GroupReport::of(&evaluation.overall),
            by_source: groups(&evaluation.by_source),
            by_subsource: groups(&evaluation.by_subsource),
            by_context: evaluation
                .by_context
                .iter()
                .map(|(k, g)| ((*k).to_owned(), GroupReport::of(g)))
                .collect(),
            ranking: ranking.is_usable().then(|| RankingReport {
                score: "highest prompt_injection or jailbreak finding score per record (0 without one)",
                roc_auc: ranking.roc_auc(),
                average_precision: ranking.average_precision(),
                note: "the classifier reports findings only from 0.5, so below that the \
                       ranking rests on rule scores alone; the operating points are \
                       per-detector thresholds, not one threshold on this score",
            }),
            threshold_sweep: sweep.then(|| ranking.sweep(&SWEEP)),
            model,
        }
    }

    /// One line for the plot: whether its numbers can be in-sample.
    pub(crate) fn plot_caption(&self) -> String {
        let trained = self
            .files
            .iter()
            .filter(|f| f.in_training_data == Some(true))
            .count();
        if self.model.is_embedded() && trained > 0 {
            format!(
                "IN-SAMPLE: {trained} of {} files are training data of the shipped model; \
                 unseen-source numbers: crates/detect/models/REPORT.md",
                self.files.len()
            )
        } else {
            "Numbers on data the model was trained on are in-sample.".to_owned()
        }
    }

    /// Tables for a terminal.
    pub(crate) fn write_text(&self, out: &mut impl Write) -> io::Result<()> {
        let o = &self.overall.counts;
        writeln!(
            out,
            "portcullis eval: {} records ({} positive, {} negative) from {} files; {}",
            o.records,
            o.positives,
            o.negatives,
            self.files.len(),
            self.model.describe()
        )?;
        writeln!(out, "\n{}", wrap(&self.in_sample_note, 100))?;
        writeln!(
            out,
            "\n{}",
            wrap(&format!("Definitions: {}.", self.definitions), 100)
        )?;

        writeln!(out, "\nPer file")?;
        let mut table = Table::new(&["file", "trained"], true);
        for f in &self.files {
            let trained = match f.in_training_data {
                Some(true) => "yes",
                Some(false) => "no",
                None => "?",
            };
            if let Some(m) = &f.metrics {
                table.row(&[&file_name(&f.path), trained], m);
            }
        }
        table.row(&["all files", ""], &self.overall);
        table.write(out)?;

        for (title, groups) in [
            ("Per source", &self.by_source),
            ("Per context", &self.by_context),
        ] {
            writeln!(out, "\n{title}")?;
            let mut table = Table::new(&["group"], false);
            for (name, g) in groups {
                table.row(&[name], g);
            }
            table.write(out)?;
        }
        self.write_subsources(out)?;
        self.write_confusion(out)?;
        self.write_latency_and_ranking(out)?;
        self.write_notes(out)
    }

    fn write_subsources(&self, out: &mut impl Write) -> io::Result<()> {
        writeln!(
            out,
            "\nPer source/subsource (at least {MIN_SUBSOURCE_ROWS} records)"
        )?;
        let mut table = Table::new(&["group"], false);
        let mut hidden = 0;
        for (name, g) in &self.by_subsource {
            if g.counts.records >= MIN_SUBSOURCE_ROWS {
                table.row(&[name], g);
            } else {
                hidden += 1;
            }
        }
        table.write(out)?;
        if hidden > 0 {
            writeln!(out, "(+ {hidden} smaller subsources: see --json)")?;
        }
        Ok(())
    }

    fn write_confusion(&self, out: &mut impl Write) -> io::Result<()> {
        writeln!(
            out,
            "\nConfusion matrix (rows: true label; columns: flagged as, prompt_injection first)"
        )?;
        let mut header = vec!["label".to_owned()];
        header.extend(Predicted::ALL.iter().map(|p| p.as_str().to_owned()));
        let mut rows = vec![header];
        for t in Truth::ALL {
            let mut row = vec![t.as_str().to_owned()];
            for p in Predicted::ALL {
                let n = self.overall.confusion[t.as_str()][p.as_str()].as_u64();
                row.push(n.unwrap_or(0).to_string());
            }
            rows.push(row);
        }
        write_rows(out, &rows)
    }

    fn write_latency_and_ranking(&self, out: &mut impl Write) -> io::Result<()> {
        if let Some(l) = &self.overall.latency_us {
            writeln!(
                out,
                "\nLatency per record (Pipeline::scan, µs): p50 {:.0}, p90 {:.0}, p99 {:.0}, max \
                 {:.0}, mean {:.0}",
                l.p50, l.p90, l.p99, l.max, l.mean
            )?;
        }
        if let Some(r) = &self.ranking {
            writeln!(
                out,
                "\nRanking by the {}: ROC AUC {:.3}, average precision {:.3}.\n{}",
                r.score,
                r.roc_auc,
                r.average_precision,
                wrap(&format!("({})", r.note), 100)
            )?;
        }
        if let Some(sweep) = &self.threshold_sweep {
            writeln!(
                out,
                "\nThreshold sweep on that score (detected = score >= threshold)"
            )?;
            let mut rows = vec![
                ["threshold", "TP", "FP", "precision", "recall", "F1", "FPR"]
                    .map(str::to_owned)
                    .to_vec(),
            ];
            for s in sweep {
                rows.push(vec![
                    format!("{}", s.threshold),
                    s.true_positives.to_string(),
                    s.false_positives.to_string(),
                    rate(s.precision),
                    rate(s.recall),
                    rate(s.f1),
                    rate(s.false_positive_rate),
                ]);
            }
            write_rows(out, &rows)?;
        }
        Ok(())
    }

    fn write_notes(&self, out: &mut impl Write) -> io::Result<()> {
        let mut notes = Vec::new();
        for f in &self.files {
            let name = file_name(&f.path);
            if !f.skipped_labels.is_empty() {
                let labels: Vec<String> = f
                    .skipped_labels
                    .iter()
                    .map(|(label, n)| format!("{label} {n}"))
                    .collect();
                let what = if f.metrics.is_none() {
                    "skipped: no benign, injection or jailbreak record"
                } else {
                    "records skipped for their label"
                };
                notes.push(format!("{name}: {what} ({})", labels.join(", ")));
            } else if f.metrics.is_none() {
                notes.push(format!("{name}: no labelled record"));
            }
            if f.malformed > 0 {
                notes.push(format!(
                    "{name}: {} malformed lines skipped, e.g. {}",
                    f.malformed,
                    f.errors.join("; ")
                ));
            }
        }
        if !notes.is_empty() {
            writeln!(out, "\nNotes")?;
            for n in notes {
                writeln!(out, "- {n}")?;
            }
        }
        Ok(())
    }
}

fn file_report(f: &FileResult, hashes: Option<&Vec<&str>>) -> FileReport {
    let has_records = f.group.tally.counts().records > 0;
    FileReport {
        path: f.path.display().to_string(),
        sha256: f.sha256.clone(),
        lines: f.lines,
        in_training_data: hashes.map(|h| h.contains(&f.sha256.as_str())),
        skipped_labels: f.skipped_labels.clone(),
        malformed: f.malformed,
        errors: f.errors.clone(),
        metrics: has_records.then(|| GroupReport::of(&f.group)),
    }
}

fn file_name(path: &str) -> String {
    std::path::Path::new(path)
        .file_name()
        .map_or_else(|| path.to_owned(), |n| n.to_string_lossy().into_owned())
}

fn rate(value: Option<f64>) -> String {
    value.map_or_else(|| "-".to_owned(), |v| format!("{v:.3}"))
}

/// A metrics table: the given label columns, then counts, rates and (per file) latency.
struct Table {
    rows: Vec<Vec<String>>,
    latency: bool,
}

impl Table {
    fn new(labels: &[&str], latency: bool) -> Table {
        let mut header: Vec<String> = labels.iter().map(|s| (*s).to_owned()).collect();
        header.extend(
            [
                "records",
                "pos",
                "neg",
                "TP",
                "FP",
                "FN",
                "TN",
                "precision",
                "recall",
                "F1",
                "FPR",
                "FPR any",
            ]
            .map(str::to_owned),
        );
        if latency {
            header.extend(["p50 µs", "p99 µs"].map(str::to_owned));
        }
        Table {
            rows: vec![header],
            latency,
        }
    }

    fn row(&mut self, labels: &[&str], g: &GroupReport) {
        let (c, r) = (&g.counts, &g.rates);
        let mut row: Vec<String> = labels.iter().map(|s| (*s).to_owned()).collect();
        row.extend(
            [
                c.records,
                c.positives,
                c.negatives,
                c.true_positives,
                c.false_positives,
                c.false_negatives,
                c.true_negatives,
            ]
            .map(|n| n.to_string()),
        );
        row.extend(
            [
                r.precision,
                r.recall,
                r.f1,
                r.false_positive_rate,
                r.false_positive_rate_any,
            ]
            .map(rate),
        );
        if self.latency {
            let l = g.latency_us.as_ref();
            row.push(l.map_or_else(String::new, |l| format!("{:.0}", l.p50)));
            row.push(l.map_or_else(String::new, |l| format!("{:.0}", l.p99)));
        }
        self.rows.push(row);
    }

    fn write(&self, out: &mut impl Write) -> io::Result<()> {
        write_rows(out, &self.rows)
    }
}

/// Writes rows as aligned columns: the first left-aligned, the rest right-aligned.
fn write_rows(out: &mut impl Write, rows: &[Vec<String>]) -> io::Result<()> {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|i| {
            rows.iter()
                .filter_map(|r| r.get(i))
                .map(|s| s.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    for row in rows {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            let pad = widths[i].saturating_sub(cell.chars().count());
            if i == 0 {
                line.push_str(cell);
                line.push_str(&" ".repeat(pad));
            } else {
                line.push_str("  ");
                line.push_str(&" ".repeat(pad));
                line.push_str(cell);
            }
        }
        writeln!(out, "{}", line.trim_end())?;
    }
    Ok(())
}

/// Wraps prose at `width` columns.
fn wrap(text: &str, width: usize) -> String {
    let mut out = String::new();
    let mut line_len = 0;
    for word in text.split_whitespace() {
        let len = word.chars().count();
        if line_len > 0 && line_len + 1 + len > width {
            out.push('\n');
            line_len = 0;
        } else if line_len > 0 {
            out.push(' ');
            line_len += 1;
        }
        out.push_str(word);
        line_len += len;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_model_card_lists_the_training_files() {
        let hashes = training_hashes();
        assert!(hashes.len() >= 10, "{hashes:?}");
        assert!(hashes.iter().all(|h| h.len() == 64));
    }

    #[test]
    fn columns_align_and_prose_wraps() {
        let rows = vec![
            vec!["a".to_owned(), "1".to_owned()],
            vec!["long".to_owned(), "100".to_owned()],
        ];
        let mut out = Vec::new();
        write_rows(&mut out, &rows).unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), "a       1\nlong  100\n");
        assert_eq!(wrap("aa bb cc", 5), "aa bb\ncc");
    }
}
