//! Trains the shipped model on all dev data plus the synthetic examples and writes it.
//!
//! ```text
//! cargo run --release -p portcullis-detect --example train_model -- DATASET_DIR OUT.bin \
//!     --thresholds UP_RULES,UP_CLF TOOL_RULES,TOOL_CLF DOC_RULES,DOC_CLF
//! ```
//!
//! The thresholds come from `evaluate` (leave-one-source-out held-out scores), so the
//! shipped operating points were never fit to scores of data the scorer had seen. The
//! `system` context gets the stricter of the user-prompt values and 0.9 / 0.99.

use std::error::Error;
use std::fs::File;
use std::io::BufReader;

use portcullis_detect::injection::dataset::read_records;
use portcullis_detect::injection::{Model, recipe, train};

fn parse_pair(s: &str) -> Result<(f32, f32), Box<dyn Error>> {
    let (a, b) = s
        .split_once(',')
        .ok_or("threshold pair must be RULES,CLASSIFIER")?;
    Ok((a.parse()?, b.parse()?))
}

fn main() -> Result<(), Box<dyn Error>> {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 7 || args[3] != "--thresholds" {
        return Err("usage: train_model DATASET_DIR OUT.bin --thresholds UP TOOL DOC".into());
    }
    let (up, tool, doc) = (
        parse_pair(&args[4])?,
        parse_pair(&args[5])?,
        parse_pair(&args[6])?,
    );
    let mut paths: Vec<_> = std::fs::read_dir(&args[1])?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "jsonl"))
        .collect();
    paths.sort();
    let mut records = Vec::new();
    for p in &paths {
        let read = read_records(BufReader::new(File::open(p)?))?;
        eprintln!("{}: {} labelled records", p.display(), read.len());
        records.extend(read);
    }
    // The same recipe as `portcullis train` (crates/detect/src/injection/recipe.rs).
    let examples = recipe::examples(records, true);
    let config = recipe::train_config(recipe::thresholds(up, tool, doc));
    let started = std::time::Instant::now();
    let model = train(&examples, &config)?;
    eprintln!(
        "trained on {} examples in {:.2}s",
        examples.len(),
        started.elapsed().as_secs_f64()
    );
    let bytes = model.to_bytes();
    Model::from_bytes(&bytes)?; // refuse to write a file the loader would reject
    std::fs::write(&args[2], &bytes)?;
    eprintln!(
        "wrote {} ({} bytes); config {:?}",
        args[2],
        bytes.len(),
        config.features
    );
    Ok(())
}
