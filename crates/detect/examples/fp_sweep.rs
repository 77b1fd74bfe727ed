//! Runs the normaliser and the pattern detectors over every record of the prompt datasets
//! (which hold no labelled PII or secrets) and lists what they report at or above a threshold,
//! so false positives on ordinary prompts can be read.
//!
//! `cargo run --example fp_sweep -- [dir] [threshold]`

use std::collections::BTreeMap;
use std::io::BufRead;

use portcullis_detect::{
    Context, Detector, HostAllowlist, LinkDetector, Normaliser, PiiDetector, ScanInput,
    SecretsDetector,
};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let dir = args.get(1).map_or("/work/shared/datasets", String::as_str);
    let threshold: f32 = args.get(2).map_or(Ok(0.5), |t| t.parse())?;
    let normaliser = Normaliser::default();
    let pii = PiiDetector::new();
    let secrets = SecretsDetector::new();
    // No allowlist: every host counts as foreign, the strictest setting.
    let links = LinkDetector::new(HostAllowlist::default());
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    let mut records = 0;
    let mut entries: Vec<_> = std::fs::read_dir(dir)?.filter_map(Result::ok).collect();
    entries.sort_by_key(|e| e.path());
    for entry in entries {
        let path = entry.path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_owned();
        if !name.ends_with(".jsonl") || name.starts_with("pii_") || name.starts_with("secrets_") {
            continue;
        }
        for line in std::io::BufReader::new(std::fs::File::open(&path)?).lines() {
            let record: serde_json::Value = serde_json::from_str(&line?)?;
            let text = record["text"].as_str().unwrap_or_default();
            records += 1;
            let n = normaliser.normalise(text);
            let input = ScanInput {
                original: text,
                normalised: &n,
                context: Context::UserPrompt,
            };
            let mut findings = n.findings().to_vec();
            pii.scan(&input, &mut findings);
            secrets.scan(&input, &mut findings);
            links.scan(&input, &mut findings);
            portcullis_detect::finding::dedup_findings(&mut findings);
            for f in findings.iter().filter(|f| f.score >= threshold) {
                let key = format!("{}/{}", f.category, f.rule);
                *counts.entry(key.clone()).or_default() += 1;
                let snippet: String = text
                    .get(f.start..f.end)
                    .unwrap_or_default()
                    .chars()
                    .take(70)
                    .collect();
                println!("{name}\t{key}\t{:.2}\t{snippet:?}", f.score);
            }
        }
    }
    println!("\n{records} records; findings at or above {threshold}:");
    for (k, c) in &counts {
        println!("  {k}: {c}");
    }
    Ok(())
}
