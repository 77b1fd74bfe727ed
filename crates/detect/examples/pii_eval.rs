//! Per-entity precision and recall of the PII detector on a span-labelled JSONL file.
//!
//! `cargo run --example pii_eval -- [path] [threshold]`; the default path is the dev set
//! `../shared/datasets/pii_presidio_synth.jsonl` (records with `text` and
//! `spans: [{entity_type, start, end}]`, character offsets). A prediction is a true positive
//! when it overlaps a gold span of the matching entity type.

use std::collections::BTreeMap;
use std::io::BufRead;

use portcullis_detect::{Context, Detector, Normaliser, PiiDetector, PiiKind, ScanInput};

fn gold_type(kind: PiiKind) -> &'static str {
    match kind {
        PiiKind::Email => "EMAIL_ADDRESS",
        PiiKind::Phone => "PHONE_NUMBER",
        PiiKind::PaymentCard => "CREDIT_CARD",
        PiiKind::Iban => "IBAN_CODE",
        PiiKind::UsSsn => "US_SSN",
        PiiKind::Ipv4 | PiiKind::Ipv6 => "IP_ADDRESS",
        _ => "NATIONAL_ID",
    }
}

#[derive(Default)]
struct Tally {
    gold: usize,
    found: usize,
    predicted: usize,
    correct: usize,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let path = args.get(1).map_or(
        "/work/shared/datasets/pii_presidio_synth.jsonl",
        String::as_str,
    );
    let threshold: f32 = args.get(2).map_or(Ok(0.5), |t| t.parse())?;
    let normaliser = Normaliser::default();
    let detector = PiiDetector::new();
    let mut tallies: BTreeMap<&'static str, Tally> = BTreeMap::new();
    let mut confusions: BTreeMap<(String, String), usize> = BTreeMap::new();
    let mut misses = Vec::new();
    let file = std::io::BufReader::new(std::fs::File::open(path)?);
    for line in file.lines() {
        let record: serde_json::Value = serde_json::from_str(&line?)?;
        let text = record["text"].as_str().unwrap_or_default();
        // Gold spans are in characters; findings are in bytes.
        let char_of_byte: Vec<usize> = {
            let mut v = vec![0; text.len() + 1];
            for (ci, (bi, c)) in text.char_indices().enumerate() {
                for slot in v.iter_mut().skip(bi).take(c.len_utf8()) {
                    *slot = ci;
                }
            }
            v[text.len()] = text.chars().count();
            v
        };
        let gold: Vec<(String, usize, usize)> = record["spans"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|s| {
                (
                    s["entity_type"].as_str().unwrap_or_default().to_owned(),
                    s["start"].as_u64().unwrap_or(0) as usize,
                    s["end"].as_u64().unwrap_or(0) as usize,
                )
            })
            .collect();
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
        portcullis_detect::finding::dedup_findings(&mut findings);
        let preds: Vec<(&'static str, usize, usize)> = findings
            .iter()
            .filter(|f| f.score >= threshold)
            .filter_map(|f| match f.category {
                portcullis_detect::Category::Pii(k) => {
                    Some((gold_type(k), char_of_byte[f.start], char_of_byte[f.end]))
                }
                _ => None,
            })
            .collect();
        let overlaps = |a: (usize, usize), b: (usize, usize)| a.0 < b.1 && b.0 < a.1;
        for (ty, s, e) in &gold {
            let t: &'static str = match ty.as_str() {
                "EMAIL_ADDRESS" => "EMAIL_ADDRESS",
                "PHONE_NUMBER" => "PHONE_NUMBER",
                "CREDIT_CARD" => "CREDIT_CARD",
                "IBAN_CODE" => "IBAN_CODE",
                "US_SSN" => "US_SSN",
                "IP_ADDRESS" => "IP_ADDRESS",
                _ => continue,
            };
            let tally = tallies.entry(t).or_default();
            tally.gold += 1;
            if preds
                .iter()
                .any(|p| p.0 == t && overlaps((p.1, p.2), (*s, *e)))
            {
                tally.found += 1;
            } else {
                misses.push(format!(
                    "{t}: {:?}",
                    text.chars().skip(*s).take(e - s).collect::<String>()
                ));
            }
        }
        for p in &preds {
            let tally = tallies.entry(p.0).or_default();
            tally.predicted += 1;
            let same = gold
                .iter()
                .any(|g| g.0 == p.0 && overlaps((p.1, p.2), (g.1, g.2)));
            if same {
                tally.correct += 1;
            } else {
                let other = gold
                    .iter()
                    .find(|g| overlaps((p.1, p.2), (g.1, g.2)))
                    .map_or("none".to_owned(), |g| g.0.clone());
                let value: String = text.chars().skip(p.1).take(p.2 - p.1).collect();
                confusions
                    .entry((format!("{} <- {other}", p.0), value))
                    .and_modify(|c| *c += 1)
                    .or_insert(1);
            }
        }
    }
    println!("threshold {threshold}");
    println!(
        "{:<14} {:>5} {:>6} {:>6} {:>7} {:>7}",
        "entity", "gold", "pred", "tp", "prec", "recall"
    );
    for (ty, t) in &tallies {
        let prec = if t.predicted > 0 {
            t.correct as f64 / t.predicted as f64
        } else {
            f64::NAN
        };
        let rec = if t.gold > 0 {
            t.found as f64 / t.gold as f64
        } else {
            f64::NAN
        };
        println!(
            "{ty:<14} {:>5} {:>6} {:>6} {prec:>7.3} {rec:>7.3}",
            t.gold, t.predicted, t.correct
        );
    }
    if std::env::var_os("PII_EVAL_VERBOSE").is_some() {
        println!("\nfalse positives (predicted <- gold overlapped):");
        for ((k, v), c) in &confusions {
            println!("  {k}: {v:?} x{c}");
        }
        println!("\nmisses:");
        for m in &misses {
            println!("  {m}");
        }
    }
    Ok(())
}
