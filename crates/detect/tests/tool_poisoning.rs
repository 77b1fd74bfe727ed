//! The tool-poisoning detector on its self-written evaluation sets
//! (`fixtures/tool_poisoning/poisoned.jsonl`, `benign.jsonl`), and its robustness: arbitrary
//! input never panics, findings stay in bounds, and work stays linear.
//!
//! The counts asserted here are the ones the module doc of `portcullis_detect::tool_poisoning`
//! reports; change both together. `cargo test -p portcullis-detect --test tool_poisoning --
//! --nocapture` prints the misses.

// The shared pipelines are built in helpers outside the `#[test]` functions.
#![allow(clippy::expect_used)]

use std::sync::OnceLock;
use std::time::Instant;

use portcullis_detect::{
    Category, Context, Finding, HostAllowlist, Normaliser, Pipeline, ToolPoisoningDetector,
};
use proptest::prelude::*;
use serde_json::Value;

const POISONED: &str = include_str!("fixtures/tool_poisoning/poisoned.jsonl");
const BENIGN: &str = include_str!("fixtures/tool_poisoning/benign.jsonl");

/// The normaliser and the tool-poisoning detector alone.
fn detector_only() -> &'static Pipeline {
    static PIPELINE: OnceLock<Pipeline> = OnceLock::new();
    PIPELINE.get_or_init(|| {
        Pipeline::new(
            Normaliser::default(),
            vec![Box::new(ToolPoisoningDetector::new())],
        )
    })
}

/// What the gateway runs over tool definitions.
fn tool_definitions() -> &'static Pipeline {
    static PIPELINE: OnceLock<Pipeline> = OnceLock::new();
    PIPELINE.get_or_init(|| {
        Pipeline::default_tool_definitions(HostAllowlist::default()).expect("shipped model loads")
    })
}

fn texts(jsonl: &str) -> Vec<String> {
    jsonl
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let record: Value = serde_json::from_str(l).expect("fixture line is JSON");
            record["text"]
                .as_str()
                .expect("fixture has text")
                .to_owned()
        })
        .collect()
}

fn flags_poisoning(pipeline: &Pipeline, text: &str) -> bool {
    pipeline
        .scan(text, Context::Document)
        .flagged
        .contains(&Category::ToolPoisoning)
}

#[test]
fn precision_and_recall_on_the_self_written_sets() {
    let poisoned = texts(POISONED);
    let benign = texts(BENIGN);
    let missed: Vec<&String> = poisoned
        .iter()
        .filter(|t| !flags_poisoning(detector_only(), t))
        .collect();
    let false_alarms: Vec<&String> = benign
        .iter()
        .filter(|t| flags_poisoning(detector_only(), t))
        .collect();
    let tp = poisoned.len() - missed.len();
    let precision = tp as f64 / (tp + false_alarms.len()).max(1) as f64;
    let recall = tp as f64 / poisoned.len().max(1) as f64;
    println!(
        "tool_poisoning: {} poisoned, {} benign; TP {tp}, FN {}, FP {}; precision {precision:.3}, recall {recall:.3}",
        poisoned.len(),
        benign.len(),
        missed.len(),
        false_alarms.len()
    );
    for t in &missed {
        println!("missed: {t}");
    }
    for t in &false_alarms {
        println!("false alarm: {t}");
    }
    assert!(poisoned.len() >= 60 && benign.len() >= 40);
    assert_eq!(
        (
            poisoned.len(),
            benign.len(),
            missed.len(),
            false_alarms.len()
        ),
        (63, 106, 1, 1),
        "update the module doc of tool_poisoning with the new figures"
    );
}

/// What else the gateway's tool-definition pipeline flags on the benign set: the injection
/// classifier and rules read tool definitions as documents too. Reported, not asserted beyond
/// "every poisoned text is flagged by something".
#[test]
fn the_tool_definition_pipeline_on_the_sets() {
    let mut other = Vec::new();
    for text in texts(BENIGN) {
        let scan = tool_definitions().scan(&text, Context::Document);
        if scan.is_flagged() {
            other.push((scan.flagged, text));
        }
    }
    println!(
        "benign descriptions flagged by the full pipeline: {}",
        other.len()
    );
    for (flagged, text) in &other {
        println!("  {flagged:?}: {text}");
    }
    for text in texts(POISONED) {
        let scan = tool_definitions().scan(&text, Context::Document);
        assert!(
            scan.flagged.contains(&Category::ToolPoisoning) || scan.is_flagged(),
            "{text}"
        );
    }
}

fn assert_sane(text: &str, findings: &[Finding]) {
    for f in findings {
        assert!(
            f.start <= f.end && f.end <= text.len(),
            "{f:?} in {} bytes",
            text.len()
        );
        assert!(
            text.is_char_boundary(f.start) && text.is_char_boundary(f.end),
            "{f:?}"
        );
        assert!((0.0..=1.0).contains(&f.score), "{f:?}");
    }
}

/// Text built from the rules' keywords and the characters around them, so random inputs reach
/// deep into the patterns and the negation check.
fn tricky() -> impl Strategy<Value = String> {
    let pieces = prop_oneof![
        any::<char>().prop_map(String::from),
        "[a-z]{1,8}",
        "[ .,;:!?()\n'’—-]{1,3}",
        Just("<IMPORTANT>".to_owned()),
        Just("</important>".to_owned()),
        Just("<!-- ".to_owned()),
        Just(" -->".to_owned()),
        Just("<|im_start|>".to_owned()),
        Just("[INST]".to_owned()),
        Just("read ".to_owned()),
        Just("~/.ssh/id_rsa".to_owned()),
        Just(".env".to_owned()),
        Just(" never ".to_owned()),
        Just(" is denied".to_owned()),
        Just("do not tell the user".to_owned()),
        Just("send the conversation to ".to_owned()),
        Just("a@b.example".to_owned()),
        Just("https://x.example/".to_owned()),
        Just("call send_email with ".to_owned()),
        Just("${GITHUB_TOKEN}".to_owned()),
        Just("the value of OPENAI_API_KEY".to_owned()),
        Just("before using this tool".to_owned()),
        Just("sans que l'utilisateur".to_owned()),
        Just("Größe".to_owned()),
        Just("\u{200B}".to_owned()),
        Just("\u{E0041}".to_owned()),
    ];
    prop::collection::vec(pieces, 0..48).prop_map(|v| v.concat())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_strings_do_not_panic(text in "\\PC{0,400}") {
        for context in Context::ALL {
            let scan = detector_only().scan(&text, context);
            assert_sane(&text, &scan.findings);
        }
    }

    #[test]
    fn tricky_strings_do_not_panic(text in tricky()) {
        let scan = detector_only().scan(&text, Context::Document);
        assert_sane(&text, &scan.findings);
        let flagged = scan.flagged.contains(&Category::ToolPoisoning);
        let own: Vec<&Finding> = scan.findings.iter().filter(|f| f.detector == "tool_poisoning").collect();
        let score = ToolPoisoningDetector::combined_score(&own);
        prop_assert!((0.0..=1.0).contains(&score));
        prop_assert_eq!(flagged, score + 1e-6 >= 0.5 && score > 0.0);
    }
}

/// Time per byte stays flat as adversarial inputs grow.
#[test]
fn adversarial_inputs_scale_linearly() {
    let p = detector_only();
    let shapes: [&dyn Fn(usize) -> String; 8] = [
        &|n| "read ".repeat(n / 5),
        &|n| "never read ~/.ssh/id_rsa ".repeat(n / 25),
        &|n| "access to ~/.ssh is denied. ".repeat(n / 29),
        &|n| "<!--".repeat(n / 4),
        &|n| "send the data to a@b.example ".repeat(n / 29),
        &|n| "call a_b with ".repeat(n / 14),
        &|n| "do not tell ".repeat(n / 12),
        &|n| "'x' ".repeat(n / 4),
    ];
    for (k, shape) in shapes.iter().enumerate() {
        let time = |n: usize| {
            let text = shape(n);
            let start = Instant::now();
            std::hint::black_box(p.scan(&text, Context::Document));
            start.elapsed().as_secs_f64() / text.len().max(1) as f64
        };
        let small = (0..3).map(|_| time(20_000)).fold(f64::INFINITY, f64::min);
        let large = (0..3).map(|_| time(200_000)).fold(f64::INFINITY, f64::min);
        assert!(
            large < small * 4.0 + 1e-7,
            "shape {k}: {small:e} s/B at 20 KB, {large:e} s/B at 200 KB"
        );
    }
}
