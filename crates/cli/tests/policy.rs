//! End-to-end tests of `portcullis policy test` and `portcullis policy eval`: the real binary,
//! its stdout, stderr and exit codes, on bundles written here.

// Harness functions outside `#[test]` unwrap like the tests do.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use serde_json::Value;

mod common;
use common::{portcullis, stderr, stdout};

fn write(root: &Path, relative: &str, text: &str) {
    let path = root.join(relative);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

const INJECTION_INPUT: &str = r#"{
  "stage": "request",
  "principal": {"id": "anonymous", "tenant": null, "groups": [], "auth": "anonymous", "claims": {}},
  "route": "chat_completions",
  "model": "gpt-4o",
  "upstream": {"name": "openai", "trusted": true},
  "findings": [{"category": "prompt_injection", "detector": "injection", "rule": "override.ignore_previous",
                "score": 0.97, "flagged": true,
                "where": {"message": 3, "role": "tool", "context": "tool_output"}}],
  "request": {"messages": 4, "prompt_tokens_estimate": 812, "tools": ["get_weather"], "stream": false}
}"#;

#[test]
fn default_bundle_tests_pass() {
    let out = portcullis(&["policy", "test"], None);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let text = stdout(&out);
    let summary = text.lines().last().unwrap();
    let (passed, total) = summary
        .strip_prefix("PASS: ")
        .and_then(|s| s.split_once('/'))
        .unwrap();
    assert_eq!(passed, total, "{text}");
    assert!(total.parse::<usize>().unwrap() >= 30, "{text}");
    assert_eq!(
        text.lines().count(),
        1,
        "only the summary without -v: {text}"
    );

    let verbose = stdout(&portcullis(&["policy", "test", "-v"], None));
    assert!(
        verbose.contains(
            "portcullis_test.rego:63: data.portcullis_test.test_flagged_injection_in_user_prompt_is_denied: PASS"
        ),
        "{verbose}"
    );
}

#[test]
fn a_failing_test_exits_1_and_is_named() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "policy/p.rego",
        "package portcullis\nimport rego.v1\ndecision := {\"action\": \"deny\"} if input.bad\n\
         else := {\"action\": \"allow\"}\n",
    );
    write(
        dir.path(),
        "policy/p_test.rego",
        "package portcullis_test\nimport rego.v1\nimport data.portcullis\n\n\
         test_bad_is_denied if portcullis.decision.action == \"deny\" with input as {\"bad\": true}\n\
         test_good_is_denied if portcullis.decision.action == \"deny\" with input as {\"bad\": false}\n",
    );
    let out = portcullis(&["policy", "test", dir.path().to_str().unwrap()], None);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let text = stdout(&out);
    assert!(
        text.contains("policy/p_test.rego:6: data.portcullis_test.test_good_is_denied: FAIL"),
        "{text}"
    );
    assert!(!text.contains("test_bad_is_denied"), "{text}");
    assert!(text.ends_with("PASS: 1/2\nFAIL: 1/2\n"), "{text}");

    let json = portcullis(
        &["policy", "test", "--json", dir.path().to_str().unwrap()],
        None,
    );
    assert_eq!(json.status.code(), Some(1));
    let report: Value = serde_json::from_str(&stdout(&json)).unwrap();
    assert_eq!(report["total"], 2);
    assert_eq!(report["failed"], 1);
    assert_eq!(report["results"][1]["name"], "test_good_is_denied");
    assert_eq!(report["results"][1]["outcome"], "fail");
}

#[test]
fn a_syntax_error_exits_2_naming_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "rules/broken.rego",
        "package portcullis\nimport rego.v1\n\ndecision := {\"action\" \"allow\"}\n",
    );
    let out = portcullis(&["policy", "test", dir.path().to_str().unwrap()], None);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let err = stderr(&out);
    assert!(err.contains("rules/broken.rego:4:"), "{err}");
    assert!(stdout(&out).is_empty());

    let eval = portcullis(
        &[
            "policy",
            "eval",
            "--input",
            "-",
            "--bundle",
            dir.path().to_str().unwrap(),
        ],
        Some(b"{}"),
    );
    assert_eq!(eval.status.code(), Some(2));
    assert!(stderr(&eval).contains("rules/broken.rego:4:"), "{eval:?}");
}

#[test]
fn bundle_errors_exit_2() {
    let missing = portcullis(&["policy", "test", "/nonexistent/portcullis-bundle"], None);
    assert_eq!(missing.status.code(), Some(2));
    assert!(
        stderr(&missing)
            .contains("error: cannot read `/nonexistent/portcullis-bundle`: No such file")
    );

    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "p.rego",
        "package other\nimport rego.v1\nx := 1\n",
    );
    let out = portcullis(&["policy", "test", dir.path().to_str().unwrap()], None);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("no rule data.portcullis.decision"),
        "{out:?}"
    );
}

#[test]
fn eval_of_an_injection_input_denies() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("input.json");
    std::fs::write(&input, INJECTION_INPUT).unwrap();
    let out = portcullis(
        &["policy", "eval", "--input", input.to_str().unwrap()],
        None,
    );
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let decision: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(decision["action"], "deny");
    assert_eq!(decision["code"], "indirect_prompt_injection");
    assert_eq!(
        decision["reasons"],
        serde_json::json!(["prompt_injection in message 3 (tool_output)"])
    );
    assert!(stdout(&out).contains("\n  \"action\""), "pretty-printed");

    let interpreted = portcullis(
        &["policy", "eval", "--interpreter", "-i", "-"],
        Some(INJECTION_INPUT.as_bytes()),
    );
    assert_eq!(interpreted.status.code(), Some(0), "{interpreted:?}");
    assert_eq!(stdout(&interpreted), stdout(&out));
}

#[test]
fn eval_with_a_custom_bundle_reads_its_data() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "p.rego",
        "package portcullis\nimport rego.v1\ndecision := {\"action\": data.team.action, \"code\": input.model}\n",
    );
    write(dir.path(), "team/data.yaml", "action: require_approval\n");
    let out = portcullis(
        &[
            "policy",
            "eval",
            "-i",
            "-",
            "-b",
            dir.path().to_str().unwrap(),
        ],
        Some(br#"{"model": "gpt-4o"}"#),
    );
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let decision: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(
        decision,
        serde_json::json!({"action": "require_approval", "reasons": [], "redact": [], "code": "gpt-4o"})
    );
}

#[test]
fn eval_of_malformed_input_exits_2_with_a_clear_message() {
    let out = portcullis(
        &["policy", "eval", "--input", "-"],
        Some(b"{\"stage\": \"request\",\n"),
    );
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let err = stderr(&out);
    assert!(err.starts_with("error: stdin is not valid JSON: "), "{err}");
    assert!(err.contains("line 2"), "{err}");
    assert!(stdout(&out).is_empty());

    let missing = portcullis(
        &["policy", "eval", "--input", "/nonexistent/input.json"],
        None,
    );
    assert_eq!(missing.status.code(), Some(2));
    assert!(stderr(&missing).contains("error: reading /nonexistent/input.json"));
}

#[test]
fn eval_of_an_undefined_decision_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "p.rego",
        "package portcullis\nimport rego.v1\ndecision := {\"action\": \"allow\"} if input.ok\n",
    );
    let out = portcullis(
        &[
            "policy",
            "eval",
            "-i",
            "-",
            "-b",
            dir.path().to_str().unwrap(),
        ],
        Some(b"{}"),
    );
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(
        stderr(&out).contains("data.portcullis.decision is undefined"),
        "{out:?}"
    );
}
