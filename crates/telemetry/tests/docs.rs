//! docs/observability.md lists every metric family the registry exports. The families are read
//! from the registration calls in `src/metrics*` (a family with no samples yet is not in the
//! exposition, so encoding a fresh registry would miss most of them).

// Helpers outside `#[test]` unwrap like the tests do.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};

/// The `name` of every `registry.register("name", ...)` in `source`.
fn registered(source: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = source;
    while let Some(at) = rest.find("registry.register(") {
        rest = &rest[at + "registry.register(".len()..];
        let name = rest
            .trim_start()
            .strip_prefix('"')
            .and_then(|quoted| quoted.split_once('"'))
            .map(|(name, _)| name.to_owned());
        names.extend(name);
    }
    names
}

fn sources(dir: &Path, out: &mut Vec<String>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(std::fs::read_to_string(path).unwrap());
        }
    }
}

#[test]
fn every_metric_family_is_documented() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let docs = std::fs::read_to_string(root.join("../../docs/observability.md")).unwrap();
    let mut texts = Vec::new();
    sources(&root.join("src"), &mut texts);
    let families: Vec<String> = texts.iter().flat_map(|text| registered(text)).collect();
    assert!(families.len() > 20, "too few families found: {families:?}");
    // Counters appear with `_total`, the others as named: the backquoted prefix covers both.
    let missing: Vec<&String> = families
        .iter()
        .filter(|name| {
            !docs.contains(&format!("`portcullis_{name}`"))
                && !docs.contains(&format!("`portcullis_{name}_total`"))
        })
        .collect();
    assert!(
        missing.is_empty(),
        "metric families missing from docs/observability.md: {missing:?}"
    );
}
