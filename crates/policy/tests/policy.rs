//! Compiling and evaluating bundles other than the default: errors, limits, data layout, the
//! bundle check, and `run_tests` outcomes.

// Harness functions outside `#[test]` unwrap like the tests do.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use portcullis_policy::{Action, Bundle, Error, Limits, Module, Outcome, Policy, run_tests};
use serde_json::json;

fn bundle(modules: &[(&str, &str)], data: &[(&str, &str)]) -> Bundle {
    Bundle::from_sources(
        modules
            .iter()
            .map(|(path, source)| Module {
                path: (*path).to_owned(),
                source: (*source).to_owned(),
            })
            .collect(),
        data.iter()
            .map(|(p, t)| ((*p).to_owned(), (*t).to_owned()))
            .collect(),
    )
    .unwrap()
}

fn compile(source: &str) -> Result<Policy, Error> {
    Policy::compile(&bundle(&[("p.rego", source)], &[]))
}

const HEADER: &str = "package portcullis\nimport rego.v1\n";

#[test]
fn policy_is_send_sync_and_cheap_to_clone() {
    fn assert_send_sync<T: Send + Sync + Clone>() {}
    assert_send_sync::<Policy>();
    let policy = compile(&format!("{HEADER}decision := {{\"action\": \"allow\"}}\n")).unwrap();
    let clone = policy.clone();
    let handles: Vec<_> = (0..4)
        .map(|_| {
            let policy = clone.clone();
            std::thread::spawn(move || {
                for _ in 0..100 {
                    assert_eq!(policy.decide(&json!({})).unwrap().action, Action::Allow);
                }
            })
        })
        .collect();
    for handle in handles {
        handle.join().unwrap();
    }
    assert_eq!(policy.limits(), Limits::DEFAULT);
}

#[test]
fn decisions_read_input_and_data() {
    let source = format!(
        "{HEADER}decision := {{\"action\": data.actions[input.kind], \"reasons\": [input.kind]}}\n"
    );
    let policy = Policy::compile(&bundle(
        &[("p.rego", &source)],
        &[("data.yaml", "actions:\n  a: deny\n  b: require_approval\n")],
    ))
    .unwrap();
    let d = policy.decide(&json!({"kind": "a"})).unwrap();
    assert_eq!((d.action, d.reasons), (Action::Deny, vec!["a".to_owned()]));
    let d = policy.decide(&json!({"kind": "b"})).unwrap();
    assert_eq!(d.action, Action::RequireApproval);
    // No such key: the rule is undefined, which is an error, not an allow.
    assert!(matches!(
        policy.decide(&json!({"kind": "c"})),
        Err(Error::Undefined)
    ));
}

#[test]
fn nested_data_files_are_visible_at_their_directory_path() {
    let source = format!(
        "{HEADER}decision := {{\"action\": \"allow\", \"reasons\": [data.teams.payments.owner, data.top]}}\n"
    );
    let policy = Policy::compile(&bundle(
        &[("policy/p.rego", &source)],
        &[
            ("data.json", r#"{"top": "root"}"#),
            ("teams/payments/data.yml", "owner: ann\n"),
        ],
    ))
    .unwrap();
    let d = policy.decide(&json!({})).unwrap();
    assert_eq!(d.reasons, ["ann", "root"]);
}

#[test]
fn malformed_and_undefined_decisions_are_errors() {
    let cases = [
        (
            "decision := {\"action\": \"allow\"} if input.x",
            "undefined",
        ),
        ("decision := {\"action\": \"maybe\"}", "unknown action"),
        (
            "decision := {\"action\": \"deny\", \"reasons\": \"x\"}",
            "reasons",
        ),
        ("decision := \"allow\"", "an object"),
        (
            "decision := {\"action\": \"redact\"}",
            "at least one category",
        ),
    ];
    for (rule, expected) in cases {
        let policy = compile(&format!("{HEADER}{rule}\n")).unwrap();
        let err = policy.decide(&json!({})).unwrap_err();
        assert!(err.to_string().contains(expected), "{rule}: {err}");
    }
}

#[test]
fn runtime_errors_are_errors_never_allows() {
    // A complete rule with two different values is a conflict: the VM makes it undefined.
    let policy = compile(&format!(
        "{HEADER}decision := {{\"action\": \"allow\"}}\ndecision := {{\"action\": input.a}}\n"
    ))
    .unwrap();
    assert!(policy.decide(&json!({"a": "deny"})).is_err());
    // A failing builtin makes its expression undefined, so the decision is undefined.
    let policy = compile(&format!(
        "{HEADER}decision := {{\"action\": \"allow\", \"n\": to_number(input.x)}}\n"
    ))
    .unwrap();
    assert!(matches!(
        policy.decide(&json!({"x": "not a number"})),
        Err(Error::Undefined)
    ));
    assert_eq!(
        policy.decide(&json!({"x": "7"})).unwrap().action,
        Action::Allow
    );
}

const HUGE: &str = "decision := {\"action\": \"allow\", \"n\": count([1 | some i in numbers.range(1, 2000); some j in numbers.range(1, 2000); some k in numbers.range(1, 2000)])}\n";

#[test]
fn a_huge_computation_hits_the_instruction_limit() {
    // The default instruction limit with a time limit no busy machine reaches first: on a
    // loaded CI host the default 100 ms could otherwise stop the run before the instruction
    // limit does, and this test is about the instruction limit.
    let limits = Limits {
        max_duration: Duration::from_secs(60),
        ..Limits::default()
    };
    let policy = Policy::compile_with_limits(
        &bundle(&[("p.rego", &format!("{HEADER}{HUGE}"))], &[]),
        limits,
    )
    .unwrap();
    let started = Instant::now();
    let err = policy.decide(&json!({})).unwrap_err();
    assert!(
        matches!(
            err,
            Error::LimitExceeded {
                limit: "instruction",
                ..
            }
        ),
        "{err:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(10));
    // The VM that failed is not reused; the next decision starts clean.
    let err = policy.decide(&json!({})).unwrap_err();
    assert!(matches!(err, Error::LimitExceeded { .. }));
}

#[test]
fn a_huge_computation_hits_the_time_limit() {
    let limits = Limits {
        max_instructions: usize::MAX,
        max_duration: Duration::from_millis(20),
    };
    let policy = Policy::compile_with_limits(
        &bundle(&[("p.rego", &format!("{HEADER}{HUGE}"))], &[]),
        limits,
    )
    .unwrap();
    let started = Instant::now();
    let err = policy.decide(&json!({})).unwrap_err();
    assert!(
        matches!(err, Error::LimitExceeded { limit: "time", .. }),
        "{err:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(err.to_string(), "policy evaluation exceeded its time limit");
}

#[test]
fn syntax_errors_name_file_and_line() {
    let err = Policy::compile(&bundle(
        &[
            ("ok.rego", "package portcullis\nimport rego.v1\n"),
            (
                "dir/broken.rego",
                "package portcullis\nimport rego.v1\n\ndecision := {\n",
            ),
        ],
        &[],
    ))
    .unwrap_err();
    match &err {
        Error::Parse {
            path,
            line: Some(5),
            ..
        } if path == "dir/broken.rego" => {}
        other => panic!("{other:?}"),
    }
    assert!(err.to_string().starts_with("dir/broken.rego:5:"), "{err}");
}

#[test]
fn a_bundle_without_the_decision_rule_is_an_error() {
    let err = compile("package portcullis\nimport rego.v1\nallow := true\n").unwrap_err();
    assert!(matches!(err, Error::MissingDecision), "{err:?}");
    let err = compile("package other\nimport rego.v1\ndecision := {\"action\": \"allow\"}\n")
        .unwrap_err();
    assert!(matches!(err, Error::MissingDecision), "{err:?}");
    let err = Policy::compile(&bundle(&[], &[])).unwrap_err();
    assert!(matches!(err, Error::MissingDecision), "{err:?}");
}

#[test]
fn constructs_the_vm_cannot_compile_are_compile_errors_with_a_location() {
    let err = compile(&format!(
        "{HEADER}decision := {{\"action\": \"allow\"}} if {{ true with input as 1 }}\n"
    ))
    .unwrap_err();
    match &err {
        Error::Compile {
            path,
            line: Some(3),
            ..
        } if path == "p.rego" => {}
        other => panic!("{other:?}"),
    }
    assert!(err.to_string().contains("`with`"), "{err}");
}

#[test]
fn data_colliding_with_a_rule_is_an_error() {
    let err = Policy::compile(&bundle(
        &[(
            "p.rego",
            &format!("{HEADER}decision := {{\"action\": \"allow\"}}\n"),
        )],
        &[("data.json", r#"{"portcullis": {"decision": 1}}"#)],
    ))
    .unwrap_err();
    assert!(matches!(err, Error::RuleDataConflict { .. }), "{err:?}");
}

#[test]
fn test_modules_are_left_out_of_the_decision_program() {
    // `with` is fine in a test module: it never reaches the VM compiler.
    let b = bundle(
        &[
            (
                "p.rego",
                &format!("{HEADER}decision := {{\"action\": input.a}}\n"),
            ),
            (
                "p_test.rego",
                "package portcullis_test\nimport rego.v1\nimport data.portcullis\n\
                 test_deny if portcullis.decision.action == \"deny\" with input as {\"a\": \"deny\"}\n",
            ),
        ],
        &[],
    );
    let policy = Policy::compile(&b).unwrap();
    assert_eq!(
        policy.decide(&json!({"a": "deny"})).unwrap().action,
        Action::Deny
    );
    let report = run_tests(&b).unwrap();
    assert_eq!(report.results.len(), 1);
    assert_eq!(report.results[0].outcome, Outcome::Pass);
}

#[test]
fn bundle_errors_reject_the_bundle_at_compile_time() {
    let source = format!(
        "{HEADER}decision := {{\"action\": \"allow\"}}\n\
         bundle_errors contains \"limit must be positive\" if data.limit <= 0\n\
         bundle_errors contains \"limit is missing\" if not data.limit\n"
    );
    let err = Policy::compile(&bundle(
        &[("p.rego", &source)],
        &[("data.json", r#"{"limit": 0}"#)],
    ))
    .unwrap_err();
    match &err {
        Error::InvalidBundle { errors } => assert_eq!(errors, &["limit must be positive"]),
        other => panic!("{other:?}"),
    }
    let err = Policy::compile(&bundle(&[("p.rego", &source)], &[])).unwrap_err();
    assert!(err.to_string().contains("limit is missing"), "{err}");
    Policy::compile(&bundle(
        &[("p.rego", &source)],
        &[("data.json", r#"{"limit": 3}"#)],
    ))
    .unwrap();
}

#[test]
fn the_default_bundle_rejects_broken_settings() {
    let default = Bundle::embedded_default();
    let mut data = default.data().clone();
    data["portcullis_settings"]["strict_threshold"] = json!("high");
    data["portcullis_settings"]
        .as_object_mut()
        .unwrap()
        .remove("deny_in_response");
    let broken = Bundle::from_sources(
        default.modules().to_vec(),
        vec![("data.json".to_owned(), data.to_string())],
    )
    .unwrap();
    let err = Policy::compile(&broken).unwrap_err();
    match &err {
        Error::InvalidBundle { errors } => assert_eq!(
            errors,
            &[
                "data.portcullis_settings.deny_in_response must be a list of strings",
                "data.portcullis_settings.strict_threshold must be a number between 0 and 1",
            ]
        ),
        other => panic!("{other:?}"),
    }
}

#[test]
fn run_tests_reports_pass_fail_and_error_with_locations() {
    let b = bundle(
        &[
            (
                "p.rego",
                &format!("{HEADER}decision := {{\"action\": \"allow\"}}\nlimit := 3\n"),
            ),
            (
                "tests/p_test.rego",
                "package portcullis_test\nimport rego.v1\nimport data.portcullis\n\
                 test_passes if portcullis.limit == 3\n\
                 test_fails if portcullis.limit == 4\n\
                 test_undefined_fails if portcullis.nothing_here\n\
                 test_builtin_failure_fails if 1 / 0 == 1\n\
                 test_errors if conflict == 1\n\
                 conflict := 1 if true\n\
                 conflict := 2 if true\n",
            ),
        ],
        &[],
    );
    let report = run_tests(&b).unwrap();
    let outcomes: Vec<(&str, &str, &str)> = report
        .results
        .iter()
        .map(|r| (r.name.as_str(), r.outcome.as_str(), r.location.as_str()))
        .collect();
    assert_eq!(
        outcomes,
        [
            ("test_builtin_failure_fails", "fail", "tests/p_test.rego:7"),
            ("test_errors", "error", "tests/p_test.rego:8"),
            ("test_fails", "fail", "tests/p_test.rego:5"),
            ("test_passes", "pass", "tests/p_test.rego:4"),
            ("test_undefined_fails", "fail", "tests/p_test.rego:6"),
        ]
    );
    assert_eq!(
        (report.passed(), report.failed(), report.errored()),
        (1, 3, 1)
    );
    match &report.results[1].outcome {
        Outcome::Error(message) => assert!(message.contains("p_test.rego:"), "{message}"),
        other => panic!("{other:?}"),
    }
    assert!(!report.is_success());
    assert_eq!(report.results[0].package, "data.portcullis_test");
}

#[test]
fn run_tests_refuses_a_bundle_that_does_not_compile() {
    let b = bundle(
        &[("p.rego", "package portcullis\nimport rego.v1\nx := \n")],
        &[],
    );
    assert!(matches!(run_tests(&b), Err(Error::Parse { .. })));
    let b = bundle(
        &[("p.rego", "package portcullis\nimport rego.v1\nx := 1\n")],
        &[],
    );
    assert!(matches!(run_tests(&b), Err(Error::MissingDecision)));
}
