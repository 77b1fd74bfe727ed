//! Counting outcomes: detection counts and rates, the confusion matrix, latency percentiles,
//! and the ranking curves (ROC, precision-recall) over a per-record score.

use portcullis_detect::{Category, Context};
use serde::Serialize;
use serde_json::{Value, json};

/// A record's true label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Truth {
    Benign,
    Injection,
    Jailbreak,
}

impl Truth {
    pub(crate) const ALL: [Truth; 3] = [Truth::Benign, Truth::Injection, Truth::Jailbreak];

    pub(crate) fn parse(label: &str) -> Option<Truth> {
        match label {
            "benign" => Some(Truth::Benign),
            "injection" => Some(Truth::Injection),
            "jailbreak" => Some(Truth::Jailbreak),
            _ => None,
        }
    }

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Truth::Benign => "benign",
            Truth::Injection => "injection",
            Truth::Jailbreak => "jailbreak",
        }
    }

    pub(crate) fn is_positive(self) -> bool {
        self != Truth::Benign
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// What a record was flagged as: one column of the confusion matrix. A record flagged for
/// several categories counts once, in the first column that applies (prompt injection before
/// jailbreak before any other category).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Predicted {
    PromptInjection,
    Jailbreak,
    Other,
    Clean,
}

impl Predicted {
    pub(crate) const ALL: [Predicted; 4] = [
        Predicted::PromptInjection,
        Predicted::Jailbreak,
        Predicted::Other,
        Predicted::Clean,
    ];

    pub(crate) fn from_flagged(flagged: &[Category]) -> Predicted {
        if flagged.contains(&Category::PromptInjection) {
            Predicted::PromptInjection
        } else if flagged.contains(&Category::Jailbreak) {
            Predicted::Jailbreak
        } else if flagged.is_empty() {
            Predicted::Clean
        } else {
            Predicted::Other
        }
    }

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Predicted::PromptInjection => "prompt_injection",
            Predicted::Jailbreak => "jailbreak",
            Predicted::Other => "other",
            Predicted::Clean => "clean",
        }
    }

    /// Whether the record counts as detected: flagged as an attack category.
    pub(crate) fn is_attack(self) -> bool {
        matches!(self, Predicted::PromptInjection | Predicted::Jailbreak)
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// One scanned record.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Outcome {
    pub(crate) truth: Truth,
    pub(crate) predicted: Predicted,
    pub(crate) context: Context,
    /// Highest `prompt_injection` or `jailbreak` finding score, 0 without one.
    pub(crate) score: f32,
    /// Time spent in `Pipeline::scan`, in microseconds.
    pub(crate) micros: f64,
}

/// Counts for one group of records.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Tally {
    pub(crate) confusion: [[u64; 4]; 3],
}

impl Tally {
    pub(crate) fn add(&mut self, outcome: &Outcome) {
        self.confusion[outcome.truth.index()][outcome.predicted.index()] += 1;
    }

    fn count(&self, truth: impl Fn(Truth) -> bool, predicted: impl Fn(Predicted) -> bool) -> u64 {
        let mut n = 0;
        for t in Truth::ALL {
            for p in Predicted::ALL {
                if truth(t) && predicted(p) {
                    n += self.confusion[t.index()][p.index()];
                }
            }
        }
        n
    }

    pub(crate) fn counts(&self) -> Counts {
        let positive = |t: Truth| t.is_positive();
        let negative = |t: Truth| !t.is_positive();
        let attack = |p: Predicted| p.is_attack();
        let quiet = |p: Predicted| !p.is_attack();
        Counts {
            records: self.count(|_| true, |_| true),
            positives: self.count(positive, |_| true),
            negatives: self.count(negative, |_| true),
            true_positives: self.count(positive, attack),
            false_positives: self.count(negative, attack),
            false_negatives: self.count(positive, quiet),
            true_negatives: self.count(negative, quiet),
            negatives_flagged_any: self.count(negative, |p| p != Predicted::Clean),
        }
    }

    /// The matrix as `{"benign": {"prompt_injection": n, …}, …}`, in table order.
    pub(crate) fn confusion_json(&self) -> Value {
        let mut rows = serde_json::Map::new();
        for t in Truth::ALL {
            let mut row = serde_json::Map::new();
            for p in Predicted::ALL {
                row.insert(
                    p.as_str().into(),
                    json!(self.confusion[t.index()][p.index()]),
                );
            }
            rows.insert(t.as_str().into(), Value::Object(row));
        }
        Value::Object(rows)
    }
}

/// Detection counts: positive = labelled injection or jailbreak; detected = flagged as
/// `prompt_injection` or `jailbreak`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub(crate) struct Counts {
    pub(crate) records: u64,
    pub(crate) positives: u64,
    pub(crate) negatives: u64,
    pub(crate) true_positives: u64,
    pub(crate) false_positives: u64,
    pub(crate) false_negatives: u64,
    pub(crate) true_negatives: u64,
    /// Benign records flagged for any category (`flagged` in `scan --jsonl`), PII included.
    pub(crate) negatives_flagged_any: u64,
}

/// Rates from [`Counts`]; `None` where the denominator is zero.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub(crate) struct Rates {
    pub(crate) precision: Option<f64>,
    pub(crate) recall: Option<f64>,
    pub(crate) f1: Option<f64>,
    pub(crate) false_positive_rate: Option<f64>,
    /// False-positive rate when any flagged category counts.
    pub(crate) false_positive_rate_any: Option<f64>,
}

fn ratio(num: u64, den: u64) -> Option<f64> {
    (den > 0).then(|| num as f64 / den as f64)
}

impl Counts {
    pub(crate) fn rates(&self) -> Rates {
        let precision = ratio(
            self.true_positives,
            self.true_positives + self.false_positives,
        );
        let recall = ratio(self.true_positives, self.positives);
        let f1 = match (precision, recall) {
            (Some(p), Some(r)) if p + r > 0.0 => Some(2.0 * p * r / (p + r)),
            (Some(_), Some(_)) => Some(0.0),
            _ => None,
        };
        Rates {
            precision,
            recall,
            f1,
            false_positive_rate: ratio(self.false_positives, self.negatives),
            false_positive_rate_any: ratio(self.negatives_flagged_any, self.negatives),
        }
    }
}

/// Scan time per record, in microseconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub(crate) struct Latency {
    pub(crate) p50: f64,
    pub(crate) p90: f64,
    pub(crate) p99: f64,
    pub(crate) max: f64,
    pub(crate) mean: f64,
}

impl Latency {
    /// Nearest-rank percentiles; `None` for no samples.
    pub(crate) fn of(samples: impl Iterator<Item = f64>) -> Option<Latency> {
        let mut sorted: Vec<f64> = samples.collect();
        if sorted.is_empty() {
            return None;
        }
        sorted.sort_by(f64::total_cmp);
        let rank = |q: f64| {
            let i = (q * sorted.len() as f64).ceil() as usize;
            sorted[i.clamp(1, sorted.len()) - 1]
        };
        Some(Latency {
            p50: rank(0.50),
            p90: rank(0.90),
            p99: rank(0.99),
            max: sorted[sorted.len() - 1],
            mean: sorted.iter().sum::<f64>() / sorted.len() as f64,
        })
    }
}

/// A ranking of records by score, for curves and the threshold sweep.
#[derive(Debug, Clone)]
pub(crate) struct Ranking {
    /// `(score, is_positive)`, highest score first.
    scored: Vec<(f32, bool)>,
    positives: u64,
    negatives: u64,
}

/// A point of a curve: `(x, y)`.
pub(crate) type Point = (f64, f64);

/// One row of the threshold sweep.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub(crate) struct SweepRow {
    pub(crate) threshold: f32,
    pub(crate) true_positives: u64,
    pub(crate) false_positives: u64,
    pub(crate) precision: Option<f64>,
    pub(crate) recall: Option<f64>,
    pub(crate) f1: Option<f64>,
    pub(crate) false_positive_rate: Option<f64>,
}

/// Thresholds of `--threshold-sweep`: coarse where the classifier reports nothing (it reports
/// from 0.5), finer near 1 where the shipped operating points sit.
pub(crate) const SWEEP: [f32; 16] = [
    0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.925, 0.95, 0.97, 0.98, 0.99, 0.995,
];

impl Ranking {
    pub(crate) fn new<'a>(outcomes: impl Iterator<Item = &'a Outcome>) -> Ranking {
        let mut scored: Vec<(f32, bool)> =
            outcomes.map(|o| (o.score, o.truth.is_positive())).collect();
        scored.sort_by(|a, b| b.0.total_cmp(&a.0));
        let positives = scored.iter().filter(|s| s.1).count() as u64;
        let negatives = scored.len() as u64 - positives;
        Ranking {
            scored,
            positives,
            negatives,
        }
    }

    /// Whether both classes are present, so that the curves mean something.
    pub(crate) fn is_usable(&self) -> bool {
        self.positives > 0 && self.negatives > 0
    }

    /// `(true positives, false positives)` after each distinct score, highest first: every
    /// record scoring at least that score counts as detected.
    fn steps(&self) -> Vec<(u64, u64)> {
        let mut out = Vec::new();
        let (mut tp, mut fp) = (0u64, 0u64);
        for (i, &(score, positive)) in self.scored.iter().enumerate() {
            if positive {
                tp += 1;
            } else {
                fp += 1;
            }
            let last_of_tie = self.scored.get(i + 1).is_none_or(|next| next.0 != score);
            if last_of_tie {
                out.push((tp, fp));
            }
        }
        out
    }

    /// ROC curve `(false-positive rate, true-positive rate)` from (0, 0) to (1, 1).
    pub(crate) fn roc(&self) -> Vec<Point> {
        let (p, n) = (self.positives.max(1) as f64, self.negatives.max(1) as f64);
        let mut out = vec![(0.0, 0.0)];
        out.extend(
            self.steps()
                .into_iter()
                .map(|(tp, fp)| (fp as f64 / n, tp as f64 / p)),
        );
        out
    }

    /// Precision-recall curve `(recall, precision)`, starting at recall 0 with the first
    /// step's precision.
    pub(crate) fn precision_recall(&self) -> Vec<Point> {
        let p = self.positives.max(1) as f64;
        let points: Vec<Point> = self
            .steps()
            .into_iter()
            .map(|(tp, fp)| (tp as f64 / p, tp as f64 / (tp + fp).max(1) as f64))
            .collect();
        let mut out = Vec::with_capacity(points.len() + 1);
        if let Some(&(_, first)) = points.first() {
            out.push((0.0, first));
        }
        out.extend(points);
        out
    }

    /// Area under the ROC curve (trapezoids; ties count half).
    pub(crate) fn roc_auc(&self) -> f64 {
        self.roc()
            .windows(2)
            .map(|w| (w[1].0 - w[0].0) * (w[1].1 + w[0].1) / 2.0)
            .sum()
    }

    /// Average precision: the sum of precision × recall gained at each step.
    pub(crate) fn average_precision(&self) -> f64 {
        let mut previous = 0.0;
        let mut total = 0.0;
        for (recall, precision) in self.precision_recall().into_iter().skip(1) {
            total += (recall - previous) * precision;
            previous = recall;
        }
        total
    }

    /// Detection counts at each of `thresholds` (detected = score at or above it).
    pub(crate) fn sweep(&self, thresholds: &[f32]) -> Vec<SweepRow> {
        thresholds
            .iter()
            .map(|&threshold| {
                let above = self.scored.iter().take_while(|s| s.0 >= threshold);
                let tp = above.clone().filter(|s| s.1).count() as u64;
                let fp = above.filter(|s| !s.1).count() as u64;
                let counts = Counts {
                    records: self.positives + self.negatives,
                    positives: self.positives,
                    negatives: self.negatives,
                    true_positives: tp,
                    false_positives: fp,
                    false_negatives: self.positives - tp,
                    true_negatives: self.negatives - fp,
                    negatives_flagged_any: fp,
                };
                let rates = counts.rates();
                SweepRow {
                    threshold,
                    true_positives: tp,
                    false_positives: fp,
                    precision: rates.precision,
                    recall: rates.recall,
                    f1: rates.f1,
                    false_positive_rate: rates.false_positive_rate,
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(truth: Truth, predicted: Predicted, score: f32) -> Outcome {
        Outcome {
            truth,
            predicted,
            context: Context::UserPrompt,
            score,
            micros: 1.0,
        }
    }

    #[test]
    fn counts_and_rates_follow_the_confusion_matrix() {
        let mut tally = Tally::default();
        for o in [
            outcome(Truth::Injection, Predicted::PromptInjection, 0.9),
            outcome(Truth::Jailbreak, Predicted::PromptInjection, 0.8),
            outcome(Truth::Jailbreak, Predicted::Clean, 0.0),
            outcome(Truth::Benign, Predicted::Jailbreak, 0.7),
            outcome(Truth::Benign, Predicted::Other, 0.0),
            outcome(Truth::Benign, Predicted::Clean, 0.0),
        ] {
            tally.add(&o);
        }
        let c = tally.counts();
        assert_eq!((c.records, c.positives, c.negatives), (6, 3, 3), "{c:?}");
        assert_eq!(
            (
                c.true_positives,
                c.false_positives,
                c.false_negatives,
                c.true_negatives
            ),
            (2, 1, 1, 2)
        );
        assert_eq!(c.negatives_flagged_any, 2);
        let r = c.rates();
        assert_eq!(r.precision, Some(2.0 / 3.0));
        assert_eq!(r.recall, Some(2.0 / 3.0));
        assert_eq!(r.false_positive_rate, Some(1.0 / 3.0));
        assert_eq!(r.false_positive_rate_any, Some(2.0 / 3.0));
        assert_eq!(tally.confusion_json()["benign"]["other"], 1);
        assert_eq!(Tally::default().counts().rates().precision, None);
    }

    #[test]
    fn flagged_categories_pick_one_column() {
        use portcullis_detect::PiiKind;
        let pii = Category::Pii(PiiKind::Email);
        assert_eq!(
            Predicted::from_flagged(&[Category::Jailbreak, Category::PromptInjection]),
            Predicted::PromptInjection
        );
        assert_eq!(
            Predicted::from_flagged(&[pii, Category::Jailbreak]),
            Predicted::Jailbreak
        );
        assert_eq!(Predicted::from_flagged(&[pii]), Predicted::Other);
        assert_eq!(Predicted::from_flagged(&[]), Predicted::Clean);
    }

    #[test]
    fn percentiles_use_nearest_rank() {
        let l = Latency::of((1..=100).map(f64::from)).unwrap();
        assert_eq!((l.p50, l.p90, l.p99, l.max), (50.0, 90.0, 99.0, 100.0));
        assert_eq!(Latency::of(std::iter::once(7.0)).unwrap().p99, 7.0);
        assert!(Latency::of(std::iter::empty()).is_none());
    }

    #[test]
    fn curves_of_a_perfect_and_a_useless_ranking() {
        let perfect = [
            outcome(Truth::Injection, Predicted::Clean, 0.9),
            outcome(Truth::Injection, Predicted::Clean, 0.8),
            outcome(Truth::Benign, Predicted::Clean, 0.1),
        ];
        let r = Ranking::new(perfect.iter());
        assert!(r.is_usable());
        assert_eq!(r.roc_auc(), 1.0);
        assert_eq!(r.average_precision(), 1.0);
        assert_eq!(*r.roc().last().unwrap(), (1.0, 1.0));
        let tied = [
            outcome(Truth::Injection, Predicted::Clean, 0.0),
            outcome(Truth::Benign, Predicted::Clean, 0.0),
        ];
        let r = Ranking::new(tied.iter());
        assert_eq!(r.roc(), vec![(0.0, 0.0), (1.0, 1.0)]);
        assert_eq!(r.roc_auc(), 0.5);
        let sweep = Ranking::new(perfect.iter()).sweep(&[0.5, 0.85, 0.95]);
        assert_eq!(sweep[0].recall, Some(1.0));
        assert_eq!(sweep[0].false_positive_rate, Some(0.0));
        assert_eq!(sweep[1].true_positives, 1);
        assert_eq!(sweep[2].precision, None);
    }
}
