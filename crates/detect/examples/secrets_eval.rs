//! Line-level precision and recall of the secrets detector on a labelled JSONL file.
//!
//! `cargo run --example secrets_eval -- [path] [threshold]`; the default path is the dev set
//! `../shared/datasets/secrets_detect_secrets_lines.jsonl` (`label` is `secret` or
//! `no_secret_flagged`). A line counts as flagged when any secret finding reaches the threshold.
//! The labels come from another tool's baseline and are noisy; read the listing, not just the
//! numbers.

use std::io::BufRead;

use portcullis_detect::{Context, Detector, Normaliser, ScanInput, SecretsDetector};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let path = args.get(1).map_or(
        "/work/shared/datasets/secrets_detect_secrets_lines.jsonl",
        String::as_str,
    );
    let threshold: f32 = args.get(2).map_or(Ok(0.5), |t| t.parse())?;
    let normaliser = Normaliser::default();
    let detector = SecretsDetector::new();
    let (mut tp, mut fp, mut fn_, mut tn) = (0, 0, 0, 0);
    for line in std::io::BufReader::new(std::fs::File::open(path)?).lines() {
        let record: serde_json::Value = serde_json::from_str(&line?)?;
        let text = record["text"].as_str().unwrap_or_default();
        let positive = record["label"] == "secret";
        let n = normaliser.normalise(text);
        let mut findings = Vec::new();
        detector.scan(
            &ScanInput {
                original: text,
                normalised: &n,
                context: Context::Document,
            },
            &mut findings,
        );
        let hits: Vec<_> = findings.iter().filter(|f| f.score >= threshold).collect();
        let mark = match (positive, !hits.is_empty()) {
            (true, true) => {
                tp += 1;
                "TP"
            }
            (false, true) => {
                fp += 1;
                "FP"
            }
            (true, false) => {
                fn_ += 1;
                "FN"
            }
            (false, false) => {
                tn += 1;
                continue;
            }
        };
        let rules: Vec<String> = findings
            .iter()
            .map(|f| format!("{}:{}:{:.2}", f.category, f.rule, f.score))
            .collect();
        println!(
            "{mark} {:?} {rules:?}",
            text.chars().take(90).collect::<String>()
        );
    }
    let precision = f64::from(tp) / f64::from((tp + fp).max(1));
    let recall = f64::from(tp) / f64::from((tp + fn_).max(1));
    println!(
        "threshold {threshold}: tp {tp} fp {fp} fn {fn_} tn {tn}  precision {precision:.3} recall {recall:.3}"
    );
    Ok(())
}
