//! The full detector pipeline (`Pipeline::default_full`: normaliser, PII, secrets, links,
//! injection rules and classifier) on arbitrary text. The first byte picks the context, the
//! rest is the text (lossy-decoded). Every finding's span must lie inside the text, with a
//! finite score in `0..=1`, and `flagged` must only name categories of some finding.

#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use portcullis_detect::{Context, HostAllowlist, Pipeline};

#[allow(clippy::expect_used)] // a fuzz harness: a pipeline that does not build should abort
static PIPELINE: LazyLock<Pipeline> = LazyLock::new(|| {
    Pipeline::default_full(HostAllowlist::new(["example.com"])).expect("shipped model loads")
});

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let context = Context::ALL[usize::from(selector) % Context::ALL.len()];
    let text = String::from_utf8_lossy(rest);
    let scan = PIPELINE.scan(&text, context);
    for finding in &scan.findings {
        assert!(
            finding.start <= finding.end && finding.end <= text.len(),
            "finding {finding:?} outside 0..{}",
            text.len()
        );
        assert!(
            (0.0..=1.0).contains(&finding.score),
            "finding {finding:?} has a score outside 0..=1"
        );
    }
    for category in &scan.flagged {
        assert!(
            scan.findings.iter().any(|f| f.category == *category),
            "{category:?} flagged without a finding"
        );
    }
});
