//! The normaliser and its decoders (base64, hex, percent, rot13, NFKC, confusables, leetspeak,
//! despacing) on arbitrary input: the bytes as UTF-8 when they are, and always their lossy
//! decoding. Beyond "no panic, no hang", every view's origin and mapped range must lie inside
//! the text, and every finding's span too, with a finite score in `0..=1`.

#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use portcullis_detect::{NormalisedText, Normaliser};

static NORMALISER: LazyLock<Normaliser> = LazyLock::new(Normaliser::default);

fn check(text: &str, normalised: &NormalisedText) {
    let len = text.len();
    for view in normalised.views() {
        assert!(
            view.origin.start <= view.origin.end && view.origin.end <= len,
            "{:?} view origin {:?} outside 0..{len}",
            view.kind,
            view.origin
        );
        let mapped = view.to_original(0..view.text.len());
        assert!(
            view.origin.start <= mapped.start && mapped.end <= view.origin.end,
            "{:?} view maps to {mapped:?}, outside its origin {:?}",
            view.kind,
            view.origin
        );
    }
    for finding in normalised.findings() {
        assert!(
            finding.start <= finding.end && finding.end <= len,
            "finding {finding:?} outside 0..{len}"
        );
        assert!(
            (0.0..=1.0).contains(&finding.score),
            "finding {finding:?} has a score outside 0..=1"
        );
    }
}

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        check(text, &NORMALISER.normalise(text));
    }
    let lossy = String::from_utf8_lossy(data);
    check(&lossy, &NORMALISER.normalise(&lossy));
});
