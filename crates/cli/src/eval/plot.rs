//! `eval --plot`: precision-recall and ROC curves as one self-contained SVG, written by hand
//! (two line charts do not justify a plotting crate's compile time).
//!
//! The score of a record is its highest `prompt_injection` or `jailbreak` finding score. One
//! curve for all records and one per context that has both classes; a dot on each curve marks
//! the default operating point (what the pipeline actually flags), which is not a single
//! threshold on this score.

use std::fmt::Write as _;

use super::Evaluation;
use super::metrics::{Outcome, Point, Ranking, Tally};

/// Panel size and margins, in SVG user units.
const PANEL: f64 = 360.0;
const MARGIN_LEFT: f64 = 60.0;
const MARGIN_TOP: f64 = 50.0;
const GAP: f64 = 90.0;
const LEGEND_HEIGHT: f64 = 110.0;
const COLORS: [&str; 6] = [
    "#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b",
];

/// One curve pair.
#[derive(Debug, Clone)]
pub(crate) struct Series {
    pub(crate) name: String,
    pub(crate) roc: Vec<Point>,
    pub(crate) precision_recall: Vec<Point>,
    pub(crate) roc_auc: f64,
    pub(crate) average_precision: f64,
    /// `(false-positive rate, recall, precision)` at the default operating point.
    pub(crate) operating_point: Option<(f64, f64, f64)>,
    pub(crate) positives: u64,
    pub(crate) negatives: u64,
}

/// All records, then each context with both classes.
pub(crate) fn series(evaluation: &Evaluation) -> Vec<Series> {
    let mut out = Vec::new();
    let all: Vec<&Outcome> = evaluation.outcomes.iter().collect();
    out.extend(one("all records", &all));
    for context in evaluation.by_context.keys() {
        let some: Vec<&Outcome> = evaluation
            .outcomes
            .iter()
            .filter(|o| o.context.as_str() == *context)
            .collect();
        out.extend(one(context, &some));
    }
    out
}

fn one(name: &str, outcomes: &[&Outcome]) -> Option<Series> {
    let ranking = Ranking::new(outcomes.iter().copied());
    if !ranking.is_usable() {
        return None;
    }
    let mut tally = Tally::default();
    for o in outcomes {
        tally.add(o);
    }
    let counts = tally.counts();
    let rates = counts.rates();
    let operating_point = match (rates.false_positive_rate, rates.recall, rates.precision) {
        (Some(fpr), Some(recall), Some(precision)) => Some((fpr, recall, precision)),
        (Some(fpr), Some(recall), None) => Some((fpr, recall, 1.0)),
        _ => None,
    };
    Some(Series {
        name: name.to_owned(),
        roc: ranking.roc(),
        precision_recall: ranking.precision_recall(),
        roc_auc: ranking.roc_auc(),
        average_precision: ranking.average_precision(),
        operating_point,
        positives: counts.positives,
        negatives: counts.negatives,
    })
}

/// The whole document; `caption` goes under the legend (the in-sample note).
pub(crate) fn svg(series: &[Series], caption: &str) -> String {
    let width = MARGIN_LEFT * 2.0 + PANEL * 2.0 + GAP;
    let height = MARGIN_TOP + PANEL + 50.0 + LEGEND_HEIGHT.max(18.0 * series.len() as f64 + 40.0);
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(s, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let right = MARGIN_LEFT + PANEL + GAP;
    panel(
        &mut s,
        MARGIN_LEFT,
        "Precision-recall",
        "recall",
        "precision",
    );
    panel(
        &mut s,
        right,
        "ROC",
        "false-positive rate",
        "true-positive rate (recall)",
    );
    // The chance line of the ROC panel.
    let _ = writeln!(
        s,
        r##"<line x1="{}" y1="{}" x2="{}" y2="{}" stroke="#bbb" stroke-dasharray="4 4"/>"##,
        right,
        MARGIN_TOP + PANEL,
        right + PANEL,
        MARGIN_TOP
    );
    if series.is_empty() {
        let _ = writeln!(
            s,
            r#"<text x="{}" y="{}" text-anchor="middle">no curve: the data needs both positive and negative records</text>"#,
            width / 2.0,
            MARGIN_TOP + PANEL / 2.0
        );
    }
    for (i, one) in series.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        polyline(&mut s, MARGIN_LEFT, &one.precision_recall, color);
        polyline(&mut s, right, &one.roc, color);
        if let Some((fpr, recall, precision)) = one.operating_point {
            dot(&mut s, MARGIN_LEFT, (recall, precision), color);
            dot(&mut s, right, (fpr, recall), color);
        }
        let y = MARGIN_TOP + PANEL + 60.0 + 18.0 * i as f64;
        let _ = writeln!(
            s,
            r#"<line x1="{x}" y1="{y}" x2="{x2}" y2="{y}" stroke="{color}" stroke-width="2"/><circle cx="{x2}" cy="{y}" r="3.5" fill="{color}"/><text x="{tx}" y="{ty}">{name}: {pos} positive, {neg} negative; AP {ap:.3}, ROC AUC {auc:.3}</text>"#,
            x = MARGIN_LEFT,
            x2 = MARGIN_LEFT + 24.0,
            tx = MARGIN_LEFT + 34.0,
            ty = y + 4.0,
            name = escape(&one.name),
            pos = one.positives,
            neg = one.negatives,
            ap = one.average_precision,
            auc = one.roc_auc,
        );
    }
    let legend_note_y = MARGIN_TOP + PANEL + 60.0 + 18.0 * series.len() as f64;
    let _ = writeln!(
        s,
        r##"<text x="{MARGIN_LEFT}" y="{legend_note_y}" fill="#555">score: highest prompt_injection/jailbreak finding score per record; dot: the default operating point</text>"##
    );
    let _ = writeln!(
        s,
        r##"<text x="{MARGIN_LEFT}" y="{}" fill="#555">{}</text>"##,
        legend_note_y + 18.0,
        escape(caption)
    );
    s.push_str("</svg>\n");
    s
}

/// Axes, grid, ticks and labels of one unit-square panel whose left edge is at `left`.
fn panel(s: &mut String, left: f64, title: &str, x_label: &str, y_label: &str) {
    let bottom = MARGIN_TOP + PANEL;
    for i in 0..=5 {
        let v = f64::from(i) / 5.0;
        let x = left + v * PANEL;
        let y = bottom - v * PANEL;
        let _ = writeln!(
            s,
            r##"<line x1="{x}" y1="{MARGIN_TOP}" x2="{x}" y2="{bottom}" stroke="#eee"/><line x1="{left}" y1="{y}" x2="{r}" y2="{y}" stroke="#eee"/><text x="{x}" y="{ty}" text-anchor="middle">{v:.1}</text><text x="{lx}" y="{ly}" text-anchor="end">{v:.1}</text>"##,
            r = left + PANEL,
            ty = bottom + 16.0,
            lx = left - 6.0,
            ly = y + 4.0,
        );
    }
    let _ = writeln!(
        s,
        r#"<rect x="{left}" y="{MARGIN_TOP}" width="{PANEL}" height="{PANEL}" fill="none" stroke="black"/>"#
    );
    let _ = writeln!(
        s,
        r#"<text x="{cx}" y="{ty}" text-anchor="middle" font-size="15" font-weight="bold">{title}</text><text x="{cx}" y="{xy}" text-anchor="middle">{x_label}</text><text transform="translate({yx} {cy}) rotate(-90)" text-anchor="middle">{y_label}</text>"#,
        cx = left + PANEL / 2.0,
        ty = MARGIN_TOP - 15.0,
        xy = bottom + 36.0,
        yx = left - 40.0,
        cy = MARGIN_TOP + PANEL / 2.0,
        title = escape(title),
        x_label = escape(x_label),
        y_label = escape(y_label),
    );
}

fn to_svg(left: f64, (x, y): Point) -> (f64, f64) {
    (
        left + x.clamp(0.0, 1.0) * PANEL,
        MARGIN_TOP + PANEL - y.clamp(0.0, 1.0) * PANEL,
    )
}

fn polyline(s: &mut String, left: f64, points: &[Point], color: &str) {
    let mut coords = String::new();
    for &p in points {
        let (x, y) = to_svg(left, p);
        let _ = write!(coords, "{x:.1},{y:.1} ");
    }
    let _ = writeln!(
        s,
        r#"<polyline points="{}" fill="none" stroke="{color}" stroke-width="1.8"/>"#,
        coords.trim_end()
    );
}

fn dot(s: &mut String, left: f64, p: Point, color: &str) {
    let (x, y) = to_svg(left, p);
    let _ = writeln!(
        s,
        r#"<circle cx="{x:.1}" cy="{y:.1}" r="4.5" fill="{color}" stroke="black"/>"#
    );
}

/// Escapes text for SVG element content and attributes.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eval::metrics::{Predicted, Truth};
    use portcullis_detect::Context;

    #[test]
    fn svg_has_both_panels_and_one_legend_line_per_series() {
        let outcomes = [
            (Truth::Injection, Predicted::PromptInjection, 0.9),
            (Truth::Benign, Predicted::Clean, 0.2),
            (Truth::Jailbreak, Predicted::Clean, 0.4),
        ]
        .map(|(truth, predicted, score)| Outcome {
            truth,
            predicted,
            context: Context::Document,
            score,
            micros: 1.0,
        });
        let refs: Vec<&Outcome> = outcomes.iter().collect();
        let series = vec![one("a <&> b", &refs).unwrap()];
        let doc = svg(&series, "in-sample & more");
        assert!(doc.starts_with("<svg ") && doc.trim_end().ends_with("</svg>"));
        assert!(doc.contains("Precision-recall") && doc.contains("ROC"));
        assert!(doc.contains("a &lt;&amp;&gt; b: 2 positive, 1 negative"));
        assert_eq!(doc.matches("<polyline").count(), 2);
        assert!(doc.contains("in-sample &amp; more"));
        assert!(svg(&[], "").contains("no curve"));
    }
}
