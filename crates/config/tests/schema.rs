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
