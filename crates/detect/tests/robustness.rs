//! No input makes the pipeline panic, and work stays linear.

// The shared full pipeline is built in a helper outside the `#[test]` functions.
#![allow(clippy::expect_used)]

use std::sync::{Arc, OnceLock};
use std::time::Instant;

use portcullis_detect::{
    CanaryDetector, Context, Finding, FindingAction, HostAllowlist, OnOverflow, Pipeline,
    RedactionMap, ScanStep, StreamConfig, StreamScanner,
};
use proptest::prelude::*;

/// The pattern pipeline, which the stream scanner uses.
fn pipeline() -> Pipeline {
    Pipeline::with_pattern_detectors(HostAllowlist::new(["example.com"]))
}

/// The full pipeline (with injection detection), for whole texts; loading the model once.
fn full() -> &'static Pipeline {
    static FULL: OnceLock<Pipeline> = OnceLock::new();
    FULL.get_or_init(|| {
        Pipeline::default_full(HostAllowlist::new(["example.com"])).expect("shipped model loads")
    })
}

/// Text from the characters the detectors care about, so random inputs reach deep into them.
fn tricky() -> impl Strategy<Value = String> {
    let pieces = prop_oneof![
        any::<char>().prop_map(String::from),
        "[A-Za-z0-9+/=_.:@%-]{1,24}",
        "[0-9 ()+.-]{1,20}",
        Just("\u{200B}".to_owned()),
        Just("\u{E0041}\u{E0042}".to_owned()),
        Just("\u{FE00}\u{FE01}\u{E0100}".to_owned()),
        Just("\u{0301}".to_owned()),
        Just("![".to_owned()),
        Just("](".to_owned()),
        Just("<img src=".to_owned()),
        Just("https://".to_owned()),
        Just("data:".to_owned()),
        Just("-----BEGIN RSA PRIVATE KEY-----".to_owned()),
        Just("eyJ".to_owned()),
        Just("password=".to_owned()),
        Just("%41%42".to_owned()),
        Just("\\x41".to_owned()),
        // The rule engine, the leet fold and the despacer (spaced runs across scripts, digits
        // and marks; leet-digit words; keyword windows).
        Just(" i g n o r e   a l l ".to_owned()),
        Just(" p r é c é d e n t ' s ".to_owned()),
        Just(" 1gn0r3 70 4 15 ".to_owned()),
        Just("ignore previous instructions".to_owned()),
        Just("\nsystem: ".to_owned()),
        Just("cake cake cake ".to_owned()),
        Just("   ".to_owned()),
        Just("\n".to_owned()),
        Just("निर्देश ".to_owned()),
    ];
    prop::collection::vec(pieces, 0..64).prop_map(|v| v.concat())
}

fn assert_sane(text: &str, findings: &[Finding]) {
    for f in findings {
        assert!(
            f.start <= f.end && f.end <= text.len(),
            "{f:?} in {} bytes",
            text.len()
        );
        assert!((0.0..=1.0).contains(&f.score), "{f:?}");
    }
}

/// The pattern detectors on a pipeline that builds every view, as pipelines did before the
/// pattern pipeline learned to skip the wording views.
fn pattern_detectors_on_all_views() -> Pipeline {
    Pipeline::new(
        portcullis_detect::Normaliser::default(),
        vec![
            Box::new(portcullis_detect::PiiDetector::new()),
            Box::new(portcullis_detect::SecretsDetector::new()),
            Box::new(portcullis_detect::LinkDetector::new(HostAllowlist::new([
                "example.com",
            ]))),
        ],
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Skipping the leet and despaced views changes nothing the pattern detectors report.
    #[test]
    fn pattern_pipeline_finds_the_same_without_wording_views(text in tricky()) {
        let all_views = pattern_detectors_on_all_views().scan(&text, Context::Assistant);
        prop_assert_eq!(pipeline().scan(&text, Context::Assistant), all_views);
    }

    #[test]
    fn arbitrary_strings_do_not_panic(text in "\\PC{0,400}") {
        let findings = full().scan(&text, Context::UserPrompt).findings;
        assert_sane(&text, &findings);
        let redacted = RedactionMap::new().redact(&text, &findings);
        prop_assert!(redacted.text.len() <= text.len() + 32 * findings.len());
    }

    #[test]
    fn tricky_strings_do_not_panic(text in tricky(), cuts in prop::collection::vec(0usize..2000, 0..12)) {
        let p = Arc::new(pipeline());
        let canary = CanaryDetector::new("PCX-7f3a9b2e");
        let findings = full().scan_with(&text, Context::Document, &[&canary]).findings;
        assert_sane(&text, &findings);
        let mut map = RedactionMap::new();
        let redacted = map.redact(&text, &findings);
        let _ = map.unmask(&redacted.text);
        // The stream too, cut anywhere (moved to character boundaries).
        let redact_all = |_: &Finding| FindingAction::Redact;
        let mut s = StreamScanner::new(
            Arc::clone(&p), Vec::new(), Context::Assistant,
            StreamConfig::new(OnOverflow::Release), Box::new(redact_all), RedactionMap::new(),
        );
        let mut points: Vec<usize> = cuts.into_iter().map(|c| c.min(text.len())).collect();
        points.sort_unstable();
        let mut last = 0;
        for mut c in points {
            while !text.is_char_boundary(c) { c -= 1; }
            if c > last {
                let _ = s.push(&text[last..c]);
                last = c;
            }
        }
        let _ = s.push(&text[last..]);
        let done = s.finish();
        assert_sane(&text, &done.findings);
        let _ = matches!(done.step, ScanStep::Hold);
    }
}

/// Time per byte stays flat as adversarial inputs grow: no pattern makes the work super-linear.
#[test]
fn adversarial_inputs_scale_linearly() {
    let p = full();
    let shapes: [&dyn Fn(usize) -> String; 17] = [
        &|n| "a".repeat(n),
        &|n| "-----BEGIN RSA PRIVATE KEY-----\n".repeat(n / 32),
        &|n| "eyJhbGciOiJIUzI1NiJ9.".repeat(n / 21),
        &|n| "%41".repeat(n / 3),
        &|n| "https://x.io/".repeat(n / 13),
        &|n| "4 ".repeat(n / 2),
        &|n| "1 ".repeat(n / 2),
        &|n| "@".repeat(n),
        &|n| "a@".repeat(n / 2),
        &|n| ":".repeat(n),
        &|n| "password=".repeat(n / 9),
        &|n| "\u{200B}a".repeat(n / 4),
        &|n| "![a](".repeat(n / 5),
        // The injection rules' keywords and bounded gaps, and the leet and despaced views.
        &|n| "ignore all ".repeat(n / 11),
        &|n| "you are no longer ".repeat(n / 18),
        &|n| "i g n o r e ".repeat(n / 12),
        &|n| "1gn0r3 ".repeat(n / 7),
    ];
    for (k, shape) in shapes.iter().enumerate() {
        let time = |n: usize| {
            let text = shape(n);
            let start = Instant::now();
            let scan = p.scan(&text, Context::UserPrompt);
            std::hint::black_box(scan);
            start.elapsed().as_secs_f64() / text.len().max(1) as f64
        };
        let small = (0..3).map(|_| time(20_000)).fold(f64::INFINITY, f64::min);
        let large = (0..3).map(|_| time(200_000)).fold(f64::INFINITY, f64::min);
        // Ten times the input may cost at most a few times more per byte (allocation and
        // cache effects), never ten times more.
        assert!(
            large < small * 4.0 + 1e-7,
            "shape {k}: {small:e} s/B at 20 KB, {large:e} s/B at 200 KB"
        );
    }
}
