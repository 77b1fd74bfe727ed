//! Dependencies point inward (see ARCHITECTURE.md): the pure crates never depend on an async
//! runtime, an HTTP stack or a store, and `core` depends on no other Portcullis crate.
//! Checked over `cargo metadata`, so a new dependency that breaks the rule fails CI.

use std::process::Command;

use serde_json::Value;

const PURE: &[&str] = &[
    "portcullis-core",
    "portcullis-config",
    "portcullis-openai",
    "portcullis-detect",
    "portcullis-policy",
    "portcullis-mcp",
    "portcullis-audit",
];
const FORBIDDEN_IN_PURE: &[&str] = &[
    "tokio",
    "hyper",
    "hyper-util",
    "axum",
    "reqwest",
    "sqlx",
    "redis",
    "portcullis-proxy",
    "portcullis-store",
    "portcullis-telemetry",
    "portcullis-cli",
];

#[test]
fn pure_crates_do_not_depend_on_io_or_outer_crates() {
    let output = Command::new(env!("CARGO"))
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--offline",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo metadata runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let metadata: Value = serde_json::from_slice(&output.stdout).expect("metadata is JSON");
    let packages = metadata["packages"].as_array().expect("packages");
    let mut checked = 0;
    for package in packages {
        let name = package["name"].as_str().unwrap_or_default();
        if !PURE.contains(&name) {
            continue;
        }
        checked += 1;
        for dependency in package["dependencies"].as_array().into_iter().flatten() {
            if dependency["kind"].as_str() == Some("dev") {
                continue;
            }
            let dep = dependency["name"].as_str().unwrap_or_default();
            assert!(
                !FORBIDDEN_IN_PURE.contains(&dep),
                "{name} must not depend on {dep}"
            );
            if name == "portcullis-core" {
                assert!(
                    !dep.starts_with("portcullis-"),
                    "portcullis-core must not depend on {dep}"
                );
            }
        }
    }
    assert!(
        checked >= 3,
        "expected the pure crates in the workspace, found {checked}"
    );
}
