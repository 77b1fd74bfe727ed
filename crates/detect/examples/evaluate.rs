//! Leave-one-source-out evaluation of rules, classifier and their combination.
//!
//! ```text
//! cargo run --release -p portcullis-detect --example evaluate -- [DATASET_DIR] > loso.md
//! ```
//!
//! For every source S: train on all other sources, pick per-context thresholds on the
//! training folds only (at <= 1% FPR on *out-of-fold* training benign scores, from an
//! inner 4-fold split by source, so the threshold is not set on scores the model was
//! fit to), then score S. Prints markdown tables: the raw detector (rules, classifier and their
//! combinations, no normaliser) and, last, each fold's model inside the full `Pipeline`
//! (normaliser + detector) on plain attacks and on base64, homoglyph, Unicode-tag, leetspeak and
//! spaced-letter disguises of them. The classifier scores 0 on texts it does not read
//! (`injection::classifier_reads`), as in the detector.

use std::collections::BTreeMap;
use std::error::Error;
use std::fs::File;
use std::io::BufReader;

use portcullis_detect::Context;
use portcullis_detect::injection::dataset::{Record, read_records, threshold_at_fpr};
use portcullis_detect::injection::features::lowercase_in_place_offsets;
use portcullis_detect::injection::rules::combine;
use portcullis_detect::injection::synth::synthetic_examples;
use portcullis_detect::injection::{
    ContextThreshold, Featurized, InjectionDetector, Label, Model, RuleSet, Thresholds,
    TrainConfig, classifier_reads, train_featurized,
};
use portcullis_detect::{Category, Normaliser, Pipeline};

const MAX_FPR: f64 = 0.01;
/// The rules' operating point in every non-system context (see `rules.rs`).
const RULE_THRESHOLD: f32 = 0.5;
/// Synthetic examples per class added to every training fold (see `synth.rs`).
// The synthetic set is the shipped recipe's (crates/detect/src/injection/recipe.rs), so that the
// evaluated model and the shipped one are trained the same way.
use portcullis_detect::injection::recipe::{SYNTH_PER_CLASS, SYNTH_SEED};
const INNER_FOLDS: usize = 4;
/// Contexts with fewer benign training records than this borrow all benign records. A
/// threshold at <= 0.5-1% FPR set on fewer than ~100 scores is just their maximum: with 30,
/// the document context (60 MT-bench answers, nothing short, no logs or tables) got a
/// classifier threshold of 0.48, and short log lines and table headers written as a test
/// scored above it.
const MIN_BENIGN_PER_CONTEXT: usize = 100;
const METHODS: [&str; 5] = [
    "rules",
    "classifier",
    "max(rules, clf)",
    "noisy-or",
    "rules>=0.5 OR clf (shipped)",
];
const TRANSFORMS: [&str; 6] = [
    "original",
    "UPPER CASE",
    "punct between words",
    "punct inside words",
    "newlines",
    "in 6 KB of benign text",
];

/// Held-out scores of one record: per transform, per method.
struct Row {
    idx: usize,
    scores: Vec<[f32; 5]>,
    thresholds: [f32; 5],
}

/// Per-context calibration knots (rule score, classifier score), each at half the FPR
/// budget on training-fold benign; "calibrated OR" maps each knot to 0.5 and flags at 0.5.
/// Indexed by `ix(context)`.
type Knots = [(f32, f32); 5];

/// Index of a context in per-context arrays.
fn ix(context: Context) -> usize {
    Context::ALL
        .iter()
        .position(|&c| c == context)
        .unwrap_or_default()
}

fn calibrate(x: f32, knot: f32) -> f32 {
    if x < knot {
        0.5 * x / knot.max(1e-6)
    } else {
        0.5 + 0.5 * (x - knot) / (1.0 - knot).max(1e-6)
    }
}

fn methods(rule: f32, clf: f32, knot: (f32, f32)) -> [f32; 5] {
    let or = calibrate(rule, knot.0).max(calibrate(clf, knot.1));
    [
        rule,
        clf,
        rule.max(clf),
        1.0 - (1.0 - rule) * (1.0 - clf),
        or,
    ]
}

/// The classifier's score as the detector uses it: 0 for texts too short to classify
/// (`injection::classifier_reads`).
fn clf_score(model: &Model, lower: &str) -> f32 {
    if classifier_reads(lower) {
        model.score_text(lower).0.attack
    } else {
        0.0
    }
}

fn main() -> Result<(), Box<dyn Error>> {
    let dir = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "/work/shared/datasets".into());
    let records = load(&dir)?;
    let config = config_from_env();
    let rules = RuleSet::builtin()?;
    let started = std::time::Instant::now();
    let feats: Vec<Featurized> = records
        .iter()
        .map(|r| Featurized::new(&r.text, &config.features))
        .collect();
    let synth_n: usize = std::env::var("PCI_SYNTH")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(SYNTH_PER_CLASS);
    let synth: Vec<(Featurized, Label)> = synthetic_examples(synth_n, SYNTH_SEED)
        .into_iter()
        .map(|(t, l)| (Featurized::new(&t, &config.features), l))
        .collect();
    let ctx = Fit {
        records: &records,
        feats: &feats,
        synth: &synth,
        config: &config,
    };
    let rule_scores: Vec<f32> = records
        .iter()
        .map(|r| {
            combine(
                &rules.scan(&lowercase_in_place_offsets(&r.text), r.context),
                None,
            )
        })
        .collect();
    let sources: Vec<String> = {
        let mut s: Vec<String> = records.iter().map(|r| r.source.clone()).collect();
        s.sort();
        s.dedup();
        s
    };
    let mut rows = Vec::new();
    let mut piped: Vec<(usize, Vec<bool>)> = Vec::new();
    for held in &sources {
        let train_idx: Vec<usize> = (0..records.len())
            .filter(|&i| &records[i].source != held)
            .collect();
        let oof = out_of_fold(&ctx, &train_idx)?;
        let raw: Vec<(usize, [f32; 5])> = train_idx
            .iter()
            .map(|&i| (i, methods(rule_scores[i], oof[&i], (0.5, 0.5))))
            .collect();
        let knots = pick_knots(&records, &raw);
        let model = ctx.fit(&train_idx)?;
        let train_scores: Vec<(usize, [f32; 5])> = train_idx
            .iter()
            .map(|&i| {
                (
                    i,
                    methods(rule_scores[i], oof[&i], knots[ix(records[i].context)]),
                )
            })
            .collect();
        let mut thresholds = pick_thresholds(&records, &train_scores);
        for t in &mut thresholds {
            t[4] = 0.5;
        }
        let pipeline = fold_pipeline(model.clone(), &knots)?;
        for i in (0..records.len()).filter(|&i| &records[i].source == held) {
            let r = &records[i];
            // Benign records are disguised too: a normaliser view that reads ordinary text as
            // an attack once it is encoded or spaced out is a false positive the plain scan
            // cannot show.
            let flags = OBFUSCATIONS
                .iter()
                .map(|t| {
                    let scan = pipeline.scan(&t(&r.text), r.context);
                    scan.flagged
                        .iter()
                        .any(|c| matches!(c, Category::PromptInjection | Category::Jailbreak))
                })
                .collect();
            piped.push((i, flags));
            let scores = variants(&r.text)
                .iter()
                .map(|t| {
                    let lower = lowercase_in_place_offsets(t);
                    let knot = knots[ix(r.context)];
                    methods(
                        combine(&rules.scan(&lower, r.context), None),
                        clf_score(&model, &lower),
                        knot,
                    )
                })
                .collect();
            rows.push(Row {
                idx: i,
                scores,
                thresholds: thresholds[ix(r.context)],
            });
        }
        eprintln!(
            "held out {held}: done at {:.1}s",
            started.elapsed().as_secs_f64()
        );
    }
    report(&records, &rows, &sources);
    report_pipeline(&records, &piped, &sources);
    Ok(())
}

/// The fold's model as the gateway runs it: normaliser + `InjectionDetector` with the fold's
/// thresholds (rules 0.5, classifier at the training-fold knot per context).
fn fold_pipeline(model: Model, knots: &Knots) -> Result<Pipeline, Box<dyn Error>> {
    let t = |c: Context| ContextThreshold {
        rules: RULE_THRESHOLD,
        classifier: knots[ix(c)].1,
    };
    let thresholds = Thresholds {
        user_prompt: t(Context::UserPrompt),
        tool_output: t(Context::ToolOutput),
        document: t(Context::Document),
        system: Thresholds::default().system,
        assistant: t(Context::UserPrompt),
    };
    let detector = InjectionDetector::new(model)?.with_thresholds(thresholds);
    Ok(Pipeline::new(
        Normaliser::default(),
        vec![Box::new(detector)],
    ))
}

const OBFUSCATION_NAMES: [&str; 6] = [
    "plain",
    "base64",
    "homoglyphs",
    "Unicode tags",
    "leetspeak",
    "spaced letters",
];
/// Disguises applied to every held-out attack before the full pipeline scans it. Each is a
/// well-known evasion; the normaliser is meant to undo all of them.
const OBFUSCATIONS: [fn(&str) -> String; 6] = [
    |t| t.to_string(),
    |t| base64(t.as_bytes()),
    |t| {
        t.chars()
            .map(|c| match c {
                'a' => 'а',
                'e' => 'е',
                'o' => 'о',
                'p' => 'р',
                'c' => 'с',
                'x' => 'х',
                'i' => 'і',
                _ => c,
            })
            .collect()
    },
    |t| {
        // The attack hidden in tag characters after a harmless visible line.
        let tags: String = t
            .chars()
            .map(|c| {
                if c.is_ascii() && !c.is_ascii_control() {
                    char::from_u32(0xE0000 + c as u32).unwrap_or(c)
                } else {
                    c
                }
            })
            .collect();
        format!("Thanks for the summary.{tags}")
    },
    |t| {
        t.chars()
            .map(|c| match c {
                'a' | 'A' => '4',
                'e' | 'E' => '3',
                'i' | 'I' => '1',
                'o' | 'O' => '0',
                's' | 'S' => '5',
                't' | 'T' => '7',
                _ => c,
            })
            .collect()
    },
    |t| {
        t.split_whitespace()
            .map(|w| w.chars().map(String::from).collect::<Vec<_>>().join(" "))
            .collect::<Vec<_>>()
            .join("   ")
    },
];

fn base64(bytes: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for k in 0..4 {
            if k <= chunk.len() {
                out.push(char::from(A[((n >> (18 - 6 * k)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Recall of the full pipeline (normaliser + injection detector, fold thresholds) on each
/// held-out source's attacks, plain and disguised; FPR on its benign records (plain), then the
/// benign FPR per disguise, pooled per context.
fn report_pipeline(records: &[Record], piped: &[(usize, Vec<bool>)], sources: &[String]) {
    println!(
        "\n### Full pipeline (normaliser + detector, fold thresholds): plain and obfuscated attacks\n"
    );
    println!(
        "| held-out source | positives | {} | benign FPR (plain) |",
        OBFUSCATION_NAMES.join(" | ")
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    let row = |name: &str, rows: Vec<&(usize, Vec<bool>)>| {
        let (pos, neg): (Vec<_>, Vec<_>) = rows
            .into_iter()
            .partition(|(i, _)| records[*i].label != Label::Benign);
        let pct = |hit: usize, n: usize| {
            if n == 0 {
                "–".to_string()
            } else {
                format!("{:.1}%", 100.0 * hit as f64 / n as f64)
            }
        };
        let cells: Vec<String> = (0..OBFUSCATION_NAMES.len())
            .map(|t| pct(pos.iter().filter(|(_, f)| f[t]).count(), pos.len()))
            .collect();
        let fp = neg.iter().filter(|(_, f)| f[0]).count();
        println!(
            "| {name} | {} | {} | {} ({fp}/{}) |",
            pos.len(),
            cells.join(" | "),
            pct(fp, neg.len()),
            neg.len()
        );
    };
    for s in sources {
        row(
            s,
            piped
                .iter()
                .filter(|(i, _)| &records[*i].source == s)
                .collect(),
        );
    }
    for ctx in [Context::UserPrompt, Context::ToolOutput, Context::Document] {
        row(
            &format!("**all {}**", ctx.as_str()),
            piped
                .iter()
                .filter(|(i, _)| records[*i].context == ctx)
                .collect(),
        );
    }
    println!("\n### Full pipeline: benign records, plain and in the same disguises (FPR)\n");
    println!("| context | benign | {} |", OBFUSCATION_NAMES.join(" | "));
    println!("|---|---|---|---|---|---|---|---|");
    for ctx in [Context::UserPrompt, Context::ToolOutput, Context::Document] {
        let neg: Vec<_> = piped
            .iter()
            .filter(|(i, _)| records[*i].context == ctx && records[*i].label == Label::Benign)
            .collect();
        let cells: Vec<String> = (0..OBFUSCATION_NAMES.len())
            .map(|t| {
                let fp = neg.iter().filter(|(_, f)| f[t]).count();
                format!("{:.1}% ({fp})", 100.0 * fp as f64 / neg.len().max(1) as f64)
            })
            .collect();
        println!(
            "| {} | {} | {} |",
            ctx.as_str(),
            neg.len(),
            cells.join(" | ")
        );
    }
}

/// Hyper-parameter overrides for sweeps: `PCI_L2`, `PCI_EPOCHS`, `PCI_LR`, `PCI_CHAR_MIN`,
/// `PCI_CHAR_MAX`, `PCI_BIGRAMS` (0/1), `PCI_BITS`, `PCI_OVERLAP`. Unset means the shipped default.
fn config_from_env() -> TrainConfig {
    fn var<T: std::str::FromStr>(name: &str) -> Option<T> {
        std::env::var(name).ok().and_then(|v| v.parse().ok())
    }
    let mut c = TrainConfig::default();
    if let Some(v) = var("PCI_L2") {
        c.l2 = v;
    }
    if let Some(v) = var("PCI_EPOCHS") {
        c.epochs = v;
    }
    if let Some(v) = var("PCI_LR") {
        c.learning_rate = v;
    }
    if let Some(v) = var("PCI_CHAR_MIN") {
        c.features.char_min = v;
    }
    if let Some(v) = var("PCI_CHAR_MAX") {
        c.features.char_max = v;
    }
    if let Some(v) = var::<u8>("PCI_BIGRAMS") {
        c.features.word_bigrams = v == 1;
    }
    if let Some(v) = var("PCI_BITS") {
        c.features.bucket_bits = v;
    }
    if let Some(v) = var("PCI_OVERLAP") {
        c.features.window_overlap = v;
    }
    eprintln!("config: {c:?}");
    c
}

fn load(dir: &str) -> Result<Vec<Record>, Box<dyn Error>> {
    let mut paths: Vec<_> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "jsonl"))
        .collect();
    paths.sort();
    let mut out = Vec::new();
    for p in paths {
        out.extend(read_records(BufReader::new(File::open(&p)?))?);
    }
    Ok(out)
}

/// Everything a training run needs: dev records, their features, and the synthetic
/// examples that join every training fold (they belong to no dev source).
struct Fit<'a> {
    records: &'a [Record],
    feats: &'a [Featurized],
    synth: &'a [(Featurized, Label)],
    config: &'a TrainConfig,
}

impl Fit<'_> {
    fn fit(&self, idx: &[usize]) -> Result<Model, Box<dyn Error>> {
        let mut items: Vec<(&Featurized, Label)> = idx
            .iter()
            .map(|&i| (&self.feats[i], self.records[i].label))
            .collect();
        items.extend(self.synth.iter().map(|(f, l)| (f, *l)));
        Ok(train_featurized(&items, self.config)?)
    }
}

/// Classifier scores for every training record from a model that did not see its source.
fn out_of_fold(ctx: &Fit<'_>, train_idx: &[usize]) -> Result<BTreeMap<usize, f32>, Box<dyn Error>> {
    let records = ctx.records;
    let mut srcs: Vec<&str> = train_idx
        .iter()
        .map(|&i| records[i].source.as_str())
        .collect();
    srcs.sort_unstable();
    srcs.dedup();
    let fold_of = |s: &str| srcs.iter().position(|&x| x == s).unwrap_or(0) % INNER_FOLDS;
    let mut oof = BTreeMap::new();
    for k in 0..INNER_FOLDS {
        let (inner_train, inner_test): (Vec<usize>, Vec<usize>) = train_idx
            .iter()
            .partition(|&&i| fold_of(&records[i].source) != k);
        if inner_test.is_empty() {
            continue;
        }
        let model = ctx.fit(&inner_train)?;
        for i in inner_test {
            let lower = lowercase_in_place_offsets(&records[i].text);
            oof.insert(i, clf_score(&model, &lower));
        }
    }
    Ok(oof)
}

/// Training-fold benign score vectors for a context (or all benign, if too few).
fn benign_pool<'a>(
    records: &[Record],
    train_scores: &'a [(usize, [f32; 5])],
    ctx: Context,
) -> Vec<&'a [f32; 5]> {
    let in_ctx: Vec<&[f32; 5]> = train_scores
        .iter()
        .filter(|(i, _)| records[*i].label == Label::Benign && records[*i].context == ctx)
        .map(|(_, s)| s)
        .collect();
    if in_ctx.len() >= MIN_BENIGN_PER_CONTEXT {
        in_ctx
    } else {
        train_scores
            .iter()
            .filter(|(i, _)| records[*i].label == Label::Benign)
            .map(|(_, s)| s)
            .collect()
    }
}

fn pick_knots(records: &[Record], raw: &[(usize, [f32; 5])]) -> Knots {
    let mut out = [(0.5, 0.5); 5];
    for ctx in Context::ALL {
        let pool = benign_pool(records, raw, ctx);
        let col = |m: usize| pool.iter().map(|s| s[m]).collect::<Vec<f32>>();
        // Rule scores are set by hand so that >= 0.5 means "flag on its own"; only the
        // classifier's operating point is calibrated on data.
        out[ix(ctx)] = (RULE_THRESHOLD, threshold_at_fpr(&col(1), MAX_FPR / 2.0));
    }
    out
}

/// Per context and method: the threshold at <= MAX_FPR on training-fold benign scores.
fn pick_thresholds(records: &[Record], train_scores: &[(usize, [f32; 5])]) -> [[f32; 5]; 5] {
    let mut out = [[0.5f32; 5]; 5];
    for ctx in Context::ALL {
        let in_ctx: Vec<&[f32; 5]> = train_scores
            .iter()
            .filter(|(i, _)| records[*i].label == Label::Benign && records[*i].context == ctx)
            .map(|(_, s)| s)
            .collect();
        let pool: Vec<&[f32; 5]> = if in_ctx.len() >= MIN_BENIGN_PER_CONTEXT {
            in_ctx
        } else {
            train_scores
                .iter()
                .filter(|(i, _)| records[*i].label == Label::Benign)
                .map(|(_, s)| s)
                .collect()
        };
        for m in 0..5 {
            let benign: Vec<f32> = pool.iter().map(|s| s[m]).collect();
            out[ix(ctx)][m] = threshold_at_fpr(&benign, MAX_FPR);
        }
    }
    out
}

/// The original text and the robustness transformations, in `TRANSFORMS` order.
fn variants(text: &str) -> Vec<String> {
    let words: Vec<&str> = text.split(' ').collect();
    let between = words
        .iter()
        .enumerate()
        .map(|(i, w)| {
            if i % 3 == 2 {
                format!("-- {w}")
            } else {
                (*w).to_string()
            }
        })
        .collect::<Vec<_>>()
        .join(" ");
    let inside = words
        .iter()
        .map(|w| {
            if w.len() > 5 && w.is_ascii() {
                let mid = w.len() / 2;
                format!("{}.{}", &w[..mid], &w[mid..])
            } else {
                (*w).to_string()
            }
        })
        .collect::<Vec<_>>()
        .join(" ");
    let padding = PADDING.repeat(6_000 / PADDING.len() / 2 + 1);
    vec![
        text.to_string(),
        text.to_uppercase(),
        between,
        inside,
        text.replace(' ', "\n  "),
        format!("{padding}\n\n{text}\n\n{padding}"),
    ]
}

/// Neutral filler written for this test (not from any dataset): a long document in which
/// the text under test is embedded, to check that windowing finds it.
const PADDING: &str = "The quarterly maintenance report covers the pumping station, the two reservoirs \
    and the treatment plant. Flow rates stayed within the expected range for the season, and the \
    backup generators passed their monthly load test. Staff replaced three valves on the eastern \
    main and recalibrated the chlorine sensors after the spring flush. ";

fn report(records: &[Record], rows: &[Row], sources: &[String]) {
    println!("### Per held-out source (original text, thresholds from training folds)\n");
    println!(
        "| held-out source | context(s) | positives | benign | {} |",
        METHODS.map(|m| format!("{m} recall / FPR")).join(" | ")
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for s in sources {
        let rs: Vec<&Row> = rows
            .iter()
            .filter(|r| &records[r.idx].source == s)
            .collect();
        let mut ctxs: Vec<&str> = rs.iter().map(|r| records[r.idx].context.as_str()).collect();
        ctxs.sort_unstable();
        ctxs.dedup();
        let (pos, neg) = split(records, &rs);
        let cells: Vec<String> = (0..5).map(|m| cell(&pos, &neg, m, 0)).collect();
        println!(
            "| {s} | {} | {} | {} | {} |",
            ctxs.join(", "),
            pos.len(),
            neg.len(),
            cells.join(" | ")
        );
    }
    println!("\n### Per context, pooled over held-out folds (original text)\n");
    println!(
        "| context | positives | benign | {} |",
        METHODS.map(|m| format!("{m} recall / FPR")).join(" | ")
    );
    println!("|---|---|---|---|---|---|---|---|");
    for ctx in [Context::UserPrompt, Context::ToolOutput, Context::Document] {
        let rs: Vec<&Row> = rows
            .iter()
            .filter(|r| records[r.idx].context == ctx)
            .collect();
        let (pos, neg) = split(records, &rs);
        let cells: Vec<String> = (0..5).map(|m| cell(&pos, &neg, m, 0)).collect();
        println!(
            "| {} | {} | {} | {} |",
            ctx.as_str(),
            pos.len(),
            neg.len(),
            cells.join(" | ")
        );
    }
    println!("\n### Threshold-free: ROC AUC per context (pooled held-out scores)\n");
    println!("| context | {} |", METHODS.join(" | "));
    println!("|---|---|---|---|---|---|");
    for ctx in [Context::UserPrompt, Context::ToolOutput, Context::Document] {
        let rs: Vec<&Row> = rows
            .iter()
            .filter(|r| records[r.idx].context == ctx)
            .collect();
        let (pos, neg) = split(records, &rs);
        let aucs: Vec<String> = (0..5)
            .map(|m| format!("{:.3}", auc(&pos, &neg, m)))
            .collect();
        println!("| {} | {} |", ctx.as_str(), aucs.join(" | "));
    }
    robustness(records, rows);
    shipping_thresholds(records, rows);
}

fn split<'a>(records: &[Record], rs: &[&'a Row]) -> (Vec<&'a Row>, Vec<&'a Row>) {
    rs.iter()
        .partition(|r| records[r.idx].label != Label::Benign)
}

/// "recall / FPR" for one method and transform, each at the row's own threshold.
fn cell(pos: &[&Row], neg: &[&Row], m: usize, t: usize) -> String {
    let rate = |rs: &[&Row]| {
        if rs.is_empty() {
            "–".to_string()
        } else {
            let hit = rs
                .iter()
                .filter(|r| r.scores[t][m] >= r.thresholds[m])
                .count();
            format!("{:.1}%", 100.0 * hit as f64 / rs.len() as f64)
        }
    };
    format!("{} / {}", rate(pos), rate(neg))
}

fn auc(pos: &[&Row], neg: &[&Row], m: usize) -> f64 {
    if pos.is_empty() || neg.is_empty() {
        return f64::NAN;
    }
    let mut wins = 0f64;
    for p in pos {
        for n in neg {
            let (a, b) = (p.scores[0][m], n.scores[0][m]);
            wins += if a > b {
                1.0
            } else if a == b {
                0.5
            } else {
                0.0
            };
        }
    }
    wins / (pos.len() * neg.len()) as f64
}

fn robustness(records: &[Record], rows: &[Row]) {
    println!(
        "\n### Robustness of held-out scores to simple transformations (all contexts pooled)\n"
    );
    println!(
        "No normaliser runs here: this is the raw detector. Case is folded by the detector itself.\n"
    );
    println!(
        "| transformation | {} |",
        METHODS.map(|m| format!("{m} recall / FPR")).join(" | ")
    );
    println!("|---|---|---|---|---|---|");
    let all: Vec<&Row> = rows.iter().collect();
    let (pos, neg) = split(records, &all);
    for (t, name) in TRANSFORMS.iter().enumerate() {
        let cells: Vec<String> = (0..5).map(|m| cell(&pos, &neg, m, t)).collect();
        println!("| {name} | {} |", cells.join(" | "));
    }
}

/// Thresholds for the shipped model: each detector at <= 0.5% FPR on every benign record's
/// held-out score, per context (pooled over contexts where a context has too few).
fn shipping_thresholds(records: &[Record], rows: &[Row]) {
    println!(
        "\n### Thresholds for the shipped model (each detector at <= 0.5% FPR on held-out benign)\n"
    );
    let benign = |pred: &dyn Fn(Context) -> bool, m: usize| -> Vec<f32> {
        rows.iter()
            .filter(|r| records[r.idx].label == Label::Benign && pred(records[r.idx].context))
            .map(|r| r.scores[0][m])
            .collect()
    };
    let mut args = Vec::new();
    for ctx in [Context::UserPrompt, Context::ToolOutput, Context::Document] {
        let enough = benign(&|c| c == ctx, 0).len() >= MIN_BENIGN_PER_CONTEXT;
        let pick = |m: usize| {
            let pool = if enough {
                benign(&|c| c == ctx, m)
            } else {
                benign(&|_| true, m)
            };
            threshold_at_fpr(&pool, MAX_FPR / 2.0)
        };
        let (tr, tc) = (RULE_THRESHOLD, pick(1));
        println!(
            "- {}: rules {tr:.4}, classifier {tc:.4} ({} benign)",
            ctx.as_str(),
            if enough { "own" } else { "all" }
        );
        args.push(format!("{tr:.4},{tc:.4}"));
    }
    println!("\n`--thresholds {}`", args.join(" "));
}
