//! Labelled records (the JSONL format of `shared/datasets`) and the metrics the evaluation
//! reports. Reading takes any `BufRead`; opening files is the caller's business.

use std::io::BufRead;

use serde::Deserialize;

use super::train::Label;
use crate::error::{Error, Result};
use crate::finding::Context;

/// One labelled text.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    /// The text.
    pub text: String,
    /// Its label.
    pub label: Label,
    /// Where it came from (used to hold whole sources out).
    pub source: String,
    /// Where it reaches the model.
    pub context: Context,
}

#[derive(Deserialize)]
struct RawRecord {
    text: String,
    label: String,
    #[serde(default)]
    source: String,
    #[serde(default)]
    context: Option<String>,
}

/// Reads JSON lines and keeps records labelled `benign`, `injection` or `jailbreak`;
/// other labels (PII, secrets) are skipped, as are blank lines. A missing or unknown
/// `context` counts as `user_prompt`, the gateway's default.
pub fn read_records(reader: impl BufRead) -> Result<Vec<Record>> {
    let mut out = Vec::new();
    for (i, line) in reader.lines().enumerate() {
        let line = line.map_err(|source| Error::DatasetIo {
            line: i + 1,
            source,
        })?;
        if line.trim().is_empty() {
            continue;
        }
        let raw: RawRecord = serde_json::from_str(&line).map_err(|source| Error::DatasetParse {
            line: i + 1,
            source,
        })?;
        let label = match raw.label.as_str() {
            "benign" => Label::Benign,
            "injection" => Label::Injection,
            "jailbreak" => Label::Jailbreak,
            _ => continue,
        };
        let context = raw
            .context
            .as_deref()
            .and_then(Context::parse)
            .unwrap_or(Context::UserPrompt);
        out.push(Record {
            text: raw.text,
            label,
            source: raw.source,
            context,
        });
    }
    Ok(out)
}

/// The smallest threshold at which at most `max_fpr` of `benign` scores are at or above it
/// (flagging is `score >= threshold`). With no benign scores it returns 0.5.
pub fn threshold_at_fpr(benign: &[f32], max_fpr: f64) -> f32 {
    if benign.is_empty() {
        return 0.5;
    }
    let mut s: Vec<f32> = benign.to_vec();
    s.sort_by(|a, b| b.total_cmp(a));
    // At most `allowed` benign scores may be >= t.
    let allowed = (max_fpr * s.len() as f64).floor() as usize;
    let t = if allowed >= s.len() {
        0.0
    } else {
        next_up(s[allowed])
    };
    t.clamp(0.0, 1.0)
}

/// The smallest f32 above `x` (for `x` in [0, 1]), so that a threshold just clears a score.
fn next_up(x: f32) -> f32 {
    if x >= 1.0 {
        1.0
    } else {
        f32::from_bits(x.max(0.0).to_bits() + 1)
    }
}

/// Fraction of `scores` at or above `threshold` (recall on positives, FPR on negatives).
pub fn rate_at(scores: &[f32], threshold: f32) -> f64 {
    if scores.is_empty() {
        return f64::NAN;
    }
    scores.iter().filter(|&&s| s >= threshold).count() as f64 / scores.len() as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_known_labels_and_skips_others() {
        let data = r#"{"text":"a","label":"benign","source":"s","context":"document"}
{"text":"b","label":"pii","source":"s"}

{"text":"c","label":"jailbreak","source":"t"}
"#;
        let r = read_records(data.as_bytes()).unwrap();
        assert_eq!(r.len(), 2);
        assert_eq!(r[0].context, Context::Document);
        assert_eq!(r[1].label, Label::Jailbreak);
        assert_eq!(r[1].context, Context::UserPrompt);
        assert!(read_records("{not json".as_bytes()).is_err());
    }

    #[test]
    fn threshold_respects_fpr() {
        let benign: Vec<f32> = (0..100).map(|i| i as f32 / 100.0).collect();
        let t = threshold_at_fpr(&benign, 0.01);
        assert!(rate_at(&benign, t) <= 0.01);
        assert!(rate_at(&benign, t - 0.02) > 0.01);
        assert_eq!(threshold_at_fpr(&[], 0.01), 0.5);
    }
}
