//! The checked-in JSON Schema must match the types. Regenerate with
//! `PORTCULLIS_WRITE_SCHEMA=1 cargo test -p portcullis-config --test schema`.

use std::path::PathBuf;

#[test]
fn checked_in_schema_matches_the_types() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/config.schema.json");
    let generated = serde_json::to_string_pretty(&portcullis_config::json_schema()).unwrap() + "\n";
    if std::env::var_os("PORTCULLIS_WRITE_SCHEMA").is_some() {
        std::fs::write(&path, &generated).unwrap();
    }
    let checked_in = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        checked_in == generated,
        "docs/config.schema.json is out of date; run PORTCULLIS_WRITE_SCHEMA=1 cargo test -p portcullis-config --test schema"
    );
}

#[test]
fn example_configs_validate() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples");
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let file = entry.unwrap().path();
        if file.extension().is_none_or(|e| e != "yaml") {
            continue;
        }
        let text = std::fs::read_to_string(&file).unwrap();
        let raw = portcullis_config::parse_yaml(&text)
            .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        portcullis_config::Config::from_raw(&raw)
            .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        checked += 1;
    }
    assert!(
        checked >= 1,
        "no example configs found in {}",
        dir.display()
    );
}

/// Every key of the schema appears in docs/config.md, written as its full path
/// (`upstreams[].url`, `limits.max_body_bytes`) or, for top-level keys, as a `## key` heading.
#[test]
fn every_key_is_documented() {
    let docs = std::fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/config.md"),
    )
    .unwrap();
    let schema = portcullis_config::json_schema();
    let mut missing = Vec::new();
    collect_paths(&schema, &schema, "", &mut |path, top_level| {
        let documented = if top_level {
            docs.contains(&format!("## `{path}`"))
        } else {
            docs.contains(&format!("`{path}`"))
        };
        if !documented {
            missing.push(path.to_string());
        }
    });
    assert!(missing.is_empty(), "undocumented config keys: {missing:?}");
}

fn collect_paths(
    root: &serde_json::Value,
    node: &serde_json::Value,
    prefix: &str,
    visit: &mut dyn FnMut(&str, bool),
) {
    let node = resolve(root, node);
    if let Some(properties) = node.get("properties").and_then(|p| p.as_object()) {
        for (key, child) in properties {
            let path = if prefix.is_empty() {
                key.clone()
            } else {
                format!("{prefix}.{key}")
            };
            visit(&path, prefix.is_empty());
            collect_paths(root, child, &path, visit);
        }
    }
    if let Some(items) = node.get("items") {
        collect_paths(root, items, &format!("{prefix}[]"), visit);
    }
    for key in ["anyOf", "oneOf", "allOf"] {
        for alternative in node
            .get(key)
            .and_then(|a| a.as_array())
            .into_iter()
            .flatten()
        {
            collect_paths(root, alternative, prefix, visit);
        }
    }
}

fn resolve<'a>(root: &'a serde_json::Value, node: &'a serde_json::Value) -> &'a serde_json::Value {
    match node
        .get("$ref")
        .and_then(|r| r.as_str())
        .and_then(|r| r.strip_prefix("#"))
    {
        Some(pointer) => root.pointer(pointer).unwrap_or(node),
        None => node,
    }
}
