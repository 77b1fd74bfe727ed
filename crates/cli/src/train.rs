//! `portcullis train`: trains the injection classifier the way the shipped model was trained
//! (`portcullis_detect::injection::recipe`, the `train_model` example) and writes a model file
//! that `scan --model` and `eval --model` load.
//!
//! Training is deterministic: the same files in the same order, seed and thresholds give the same
//! bytes. A directory contributes its `*.jsonl` files in path order, as the example reads them.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context as _, bail};
use clap::Args;
use portcullis_detect::InjectionDetector;
use portcullis_detect::injection::dataset::{Record, read_records};
use portcullis_detect::injection::{Model, Thresholds, recipe, train};

use crate::data::{expand, line_count, read_file, sha256_hex};

#[derive(Debug, Args)]
pub(crate) struct TrainArgs {
    /// Dataset files or directories (a directory means its `*.jsonl` files, sorted). Records
    /// labelled benign, injection or jailbreak are used; other labels are skipped.
    #[arg(long, required = true, num_args = 1.., value_name = "DIR_OR_FILE")]
    data: Vec<PathBuf>,
    /// Where to write the model.
    #[arg(long, value_name = "MODEL.bin")]
    out: PathBuf,
    /// Seed of the training shuffle, decimal or `0x` hex (the synthetic examples keep the
    /// recipe's own seed). Default: the shipped model's, 0x0dd5eed5.
    #[arg(long, value_parser = parse_seed)]
    seed: Option<u64>,
    /// Train on the dataset records only, without the synthetic examples.
    #[arg(long)]
    no_synth: bool,
    /// Operating points to store, as `RULES,CLASSIFIER` pairs for user_prompt, tool_output and
    /// document (the system pair follows the recipe). Default: those of the shipped model.
    #[arg(long, num_args = 3, value_names = ["USER_PROMPT", "TOOL_OUTPUT", "DOCUMENT"], value_parser = parse_pair)]
    thresholds: Option<Vec<(f32, f32)>>,
}

pub(crate) fn run(args: TrainArgs) -> anyhow::Result<()> {
    let files = expand(&args.data)?;
    let mut records: Vec<Record> = Vec::new();
    println!("data:");
    for path in &files {
        let bytes = read_file(path)?;
        let used = read_records(bytes.as_slice())
            .with_context(|| format!("reading records from {}", path.display()))?;
        println!(
            "  {:>6} lines  {:>6} used  {}  {}",
            line_count(&bytes),
            used.len(),
            sha256_hex(&bytes),
            path.display()
        );
        records.extend(used);
    }
    if records.is_empty() {
        bail!("no record labelled benign, injection or jailbreak in the data");
    }
    let record_count = records.len();
    let examples = recipe::examples(records, !args.no_synth);
    let thresholds = match &args.thresholds {
        Some(pairs) => recipe::thresholds(pairs[0], pairs[1], pairs[2]),
        None => shipped_thresholds()?,
    };
    let mut config = recipe::train_config(thresholds);
    if let Some(seed) = args.seed {
        config.seed = seed;
    }
    println!(
        "examples: {record_count} records + {} synthetic{}; seed {:#x}",
        examples.len() - record_count,
        if args.no_synth { " (--no-synth)" } else { "" },
        config.seed
    );
    println!("thresholds (rules, classifier): {}", describe(&thresholds));
    let started = Instant::now();
    let model = train(&examples, &config).context("training")?;
    let bytes = model.to_bytes();
    // Refuse to write a file the loader would reject.
    Model::from_bytes(&bytes).context("checking the trained model")?;
    write_atomically(&args.out, &bytes)?;
    println!(
        "wrote {} ({} bytes, sha256 {}) in {:.2}s",
        args.out.display(),
        bytes.len(),
        sha256_hex(&bytes),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// The operating points stored in the shipped model.
fn shipped_thresholds() -> anyhow::Result<Thresholds> {
    let detector = InjectionDetector::embedded().context("loading the shipped model")?;
    Ok(detector.model().thresholds())
}

fn describe(thresholds: &Thresholds) -> String {
    let mut out = String::new();
    for (context, (rules, classifier)) in Thresholds::STORED.iter().zip(thresholds.to_stored()) {
        let sep = if out.is_empty() { "" } else { ", " };
        let _ = write!(out, "{sep}{} {rules}/{classifier}", context.as_str());
    }
    out
}

fn parse_seed(s: &str) -> Result<u64, String> {
    let parsed = match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(&hex.replace('_', ""), 16),
        None => s.replace('_', "").parse(),
    };
    parsed.map_err(|e| format!("`{s}`: {e}"))
}

fn parse_pair(s: &str) -> Result<(f32, f32), String> {
    let (rules, classifier) = s
        .split_once(',')
        .ok_or_else(|| format!("`{s}`: expected RULES,CLASSIFIER such as 0.5,0.9374"))?;
    let parse = |v: &str| -> Result<f32, String> {
        let x: f32 = v.trim().parse().map_err(|e| format!("`{v}`: {e}"))?;
        if (0.0..=1.0).contains(&x) {
            Ok(x)
        } else {
            Err(format!("`{v}`: a threshold is in [0, 1]"))
        }
    };
    Ok((parse(rules)?, parse(classifier)?))
}

/// Writes beside the target and renames, so a failed run never leaves half a model.
fn write_atomically(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    std::fs::write(&tmp, bytes).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("renaming to {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use portcullis_detect::injection::TrainConfig;

    #[test]
    fn seeds_parse_in_decimal_and_hex() {
        assert_eq!(parse_seed("7"), Ok(7));
        assert_eq!(parse_seed("0x0dd5_eed5"), Ok(TrainConfig::default().seed));
        assert!(parse_seed("0xzz").is_err());
    }

    #[test]
    fn pairs_parse_and_stay_in_range() {
        assert_eq!(parse_pair("0.5,0.9374"), Ok((0.5, 0.9374)));
        assert!(parse_pair("0.5").is_err());
        assert!(parse_pair("0.5,1.5").is_err());
        assert!(parse_pair("x,0.5").is_err());
    }

    #[test]
    fn the_shipped_thresholds_are_stored_in_the_model() {
        let t = shipped_thresholds().unwrap();
        assert!(describe(&t).starts_with("user_prompt "));
    }
}
