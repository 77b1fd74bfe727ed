//! The default bundle's key behaviours through `Policy::decide` (the VM, as the gateway runs
//! it), and agreement between the VM and the interpreter that `policy test` runs on.

// Harness functions outside `#[test]` unwrap like the tests do.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use portcullis_policy::{Action, Bundle, Decision, Policy, run_tests};
use serde_json::{Value, json};

fn policy() -> Policy {
    Policy::compile(&Bundle::embedded_default()).unwrap()
}

fn request(upstream_trusted: bool, findings: Value) -> Value {
    json!({
        "stage": "request",
        "principal": {"id": "anonymous", "tenant": null, "groups": [], "auth": "anonymous", "claims": {}},
        "route": "chat_completions",
        "model": "gpt-4o",
        "upstream": {"name": "openai", "trusted": upstream_trusted},
        "findings": findings,
        "request": {"messages": 4, "prompt_tokens_estimate": 812, "tools": ["get_weather"], "stream": false}
    })
}

fn finding(category: &str, score: f64, flagged: bool, message: u32, context: &str) -> Value {
    json!({"category": category, "detector": "test", "rule": "test", "score": score,
           "flagged": flagged, "where": {"message": message, "role": "user", "context": context}})
}

fn response(findings: Value) -> Value {
    let mut input = request(true, findings);
    input["stage"] = json!("response");
    input
}

fn decide(input: &Value) -> Decision {
    let policy = policy();
    let vm = policy.decide(input).unwrap();
    let interpreted = policy.decide_interpreted(input).unwrap();
    assert_eq!(vm, interpreted, "VM and interpreter disagree on {input}");
    vm
}

#[test]
fn default_bundle_tests_pass() {
    let report = run_tests(&Bundle::embedded_default()).unwrap();
    let failing: Vec<String> = report
        .results
        .iter()
        .filter(|r| r.outcome != portcullis_policy::Outcome::Pass)
        .map(|r| format!("{} {:?}", r.rule(), r.outcome))
        .collect();
    assert!(failing.is_empty(), "{failing:#?}");
    assert!(report.results.len() >= 30, "{}", report.results.len());
    assert!(report.is_success());
}

#[test]
fn clean_request_is_allowed() {
    let d = decide(&request(true, json!([])));
    assert_eq!(d, Decision::allow());
}

#[test]
fn flagged_injection_in_user_prompt_is_denied() {
    let d = decide(&request(
        true,
        json!([finding("prompt_injection", 0.97, true, 2, "user_prompt")]),
    ));
    assert_eq!(d.action, Action::Deny);
    assert_eq!(d.code.as_deref(), Some("prompt_injection"));
    assert_eq!(d.reasons, ["prompt_injection in message 2 (user_prompt)"]);
}

#[test]
fn unflagged_injection_in_user_prompt_is_allowed() {
    let d = decide(&request(
        true,
        json!([finding("prompt_injection", 0.6, false, 2, "user_prompt")]),
    ));
    assert_eq!(d, Decision::allow());
}

#[test]
fn tool_output_is_stricter_than_the_user_prompt() {
    for context in ["tool_output", "document"] {
        let d = decide(&request(
            true,
            json!([finding("prompt_injection", 0.6, false, 3, context)]),
        ));
        assert_eq!(d.action, Action::Deny, "{context}");
        assert_eq!(d.code.as_deref(), Some("indirect_prompt_injection"));
        let d = decide(&request(
            true,
            json!([finding("prompt_injection", 0.4, false, 3, context)]),
        ));
        assert_eq!(d.action, Action::Allow, "{context}");
    }
    let d = decide(&request(
        true,
        json!([finding("invisible_text", 0.6, true, 1, "document")]),
    ));
    assert_eq!(d.code.as_deref(), Some("invisible_text"));
    let d = decide(&request(
        true,
        json!([finding("invisible_text", 0.6, true, 1, "user_prompt")]),
    ));
    assert_eq!(d.action, Action::Allow);
}

#[test]
fn pii_to_an_untrusted_upstream_is_redacted() {
    let d = decide(&request(
        false,
        json!([
            finding("pii.email", 0.9, true, 1, "user_prompt"),
            finding("secret.github_token", 0.95, true, 2, "user_prompt"),
            finding("pii.phone", 0.2, false, 1, "user_prompt"),
        ]),
    ));
    assert_eq!(d.action, Action::Redact);
    assert_eq!(d.redact, ["pii.email", "secret.github_token"]);
    assert!(d.redacts("pii.email"));
    assert!(!d.redacts("pii.phone"));
    assert_eq!(d.code.as_deref(), Some("untrusted_upstream"));
}

#[test]
fn pii_to_a_trusted_upstream_is_allowed() {
    let d = decide(&request(
        true,
        json!([finding("pii.email", 0.9, true, 1, "user_prompt")]),
    ));
    assert_eq!(d, Decision::allow());
}

#[test]
fn secret_in_a_response_is_denied() {
    let d = decide(&response(json!([{
        "category": "secret.github_token", "detector": "secrets", "rule": "github_token",
        "score": 0.95, "flagged": true, "where": {"choice": 0, "role": "assistant", "context": "assistant"}
    }])));
    assert_eq!(d.action, Action::Deny);
    assert_eq!(d.code.as_deref(), Some("secret_in_response"));
    assert_eq!(d.reasons, ["secret.github_token in choice 0 (assistant)"]);
}

#[test]
fn clean_response_and_unlisted_response_findings_are_allowed() {
    assert_eq!(decide(&response(json!([]))), Decision::allow());
    let d = decide(&response(json!([finding(
        "pii.email",
        0.9,
        true,
        0,
        "assistant"
    )])));
    assert_eq!(d, Decision::allow());
}

#[test]
fn unknown_stage_is_denied_not_allowed() {
    let d = decide(&json!({"findings": []}));
    assert_eq!(d.action, Action::Deny);
    assert_eq!(d.code.as_deref(), Some("invalid_input"));
    let d = decide(&json!(null));
    assert_eq!(d.action, Action::Deny);
}

#[test]
fn vm_and_interpreter_agree_on_many_inputs() {
    let policy = policy();
    let categories = [
        "prompt_injection",
        "jailbreak",
        "invisible_text",
        "tool_poisoning",
        "banned",
        "pii.email",
        "secret.aws_access_key",
        "exfiltration",
        "system_prompt_leak",
        "obfuscation",
    ];
    let contexts = [
        "user_prompt",
        "tool_output",
        "document",
        "system",
        "assistant",
    ];
    let mut checked = 0;
    for (i, category) in categories.iter().enumerate() {
        for (j, context) in contexts.iter().enumerate() {
            for flagged in [false, true] {
                let score = [0.2, 0.5, 0.7, 0.99][(i + j) % 4];
                let f = finding(category, score, flagged, u32::try_from(j).unwrap(), context);
                let tool = json!({"category": category, "score": score, "flagged": flagged,
                                  "where": {"tool": "fetch", "context": "tool_definition"}});
                for input in [
                    request(true, json!([f])),
                    request(false, json!([f, tool])),
                    response(json!([f])),
                ] {
                    let vm = policy.decide(&input).unwrap();
                    let interpreted = policy.decide_interpreted(&input).unwrap();
                    assert_eq!(vm, interpreted, "{input}");
                    checked += 1;
                }
            }
        }
    }
    assert_eq!(checked, 300);
}

/// Odd and partial findings: the VM must agree with the interpreter on all of them, and a
/// flagged injection must deny however its location is spelled.
#[test]
fn vm_and_interpreter_agree_on_odd_findings() {
    let policy = policy();
    let odd = [
        json!({"category": "prompt_injection", "score": 0.9, "flagged": true}),
        json!({"category": "prompt_injection", "score": 0.9, "flagged": true, "where": {}}),
        json!({"category": "prompt_injection", "score": 0.9, "flagged": true, "where": {"message": 4}}),
        json!({"category": "prompt_injection", "score": 0.9, "flagged": true, "where": {"context": "user_prompt"}}),
        json!({"category": "prompt_injection", "score": 0.9, "flagged": true, "where": {"message": "4", "context": 7}}),
        json!({"category": "prompt_injection", "flagged": true, "where": {"tool": "t"}}),
        json!({"category": "prompt_injection", "score": 0.9, "flagged": true, "where": {"choice": 1, "context": "assistant"}}),
        json!({"category": "prompt_injection", "score": 0.6, "where": {"message": 1, "context": "tool_output"}}),
        json!({"category": "prompt_injection", "flagged": false, "where": {"message": 1, "context": "tool_output"}}),
        json!({"category": "pii.email.work", "score": 0.9, "flagged": true, "where": {"message": 1, "context": "user_prompt"}}),
        json!({"category": "secret", "score": 0.9, "flagged": true, "where": {"message": 1, "context": "user_prompt"}}),
        json!({"category": 7, "score": 0.9, "flagged": true}),
        json!({"score": 0.9, "flagged": true}),
        json!("prompt_injection"),
        json!(null),
    ];
    for f in &odd {
        for input in [
            request(true, json!([f])),
            request(false, json!([f])),
            response(json!([f])),
        ] {
            let vm = policy.decide(&input);
            let interpreted = policy.decide_interpreted(&input);
            match (&vm, &interpreted) {
                (Ok(a), Ok(b)) => assert_eq!(a, b, "{input}"),
                _ => panic!("{input}: vm {vm:?}, interpreter {interpreted:?}"),
            }
        }
        let is_flagged_injection = f["category"] == "prompt_injection" && f["flagged"] == true;
        if is_flagged_injection {
            let d = policy.decide(&request(true, json!([f]))).unwrap();
            assert_eq!(d.action, Action::Deny, "{f}");
            assert_eq!(d.reasons.len(), 1, "{f}: {d:?}");
        }
    }
}

/// The gateway sends at most 256 findings per decision; the worst kind for the default bundle
/// (flagged PII to an untrusted upstream, each one redacted with its own reason).
#[test]
fn the_most_findings_the_gateway_sends_stay_well_inside_the_limits() {
    let findings: Vec<Value> = (0..256)
        .map(|i| finding("pii.email", 0.9, true, i, "user_prompt"))
        .collect();
    let d = policy()
        .decide(&request(false, Value::Array(findings)))
        .unwrap();
    assert_eq!(d.action, Action::Redact);
    assert_eq!(d.reasons.len(), 256);
}

/// The headroom `docs/policy.md` states: the largest input the gateway sends (256 findings)
/// decides within 100 instructions per finding plus 100, far under `Limits::DEFAULT`.
#[test]
fn the_largest_gateway_input_fits_a_small_instruction_budget() {
    let findings: Vec<Value> = (0..256)
        .map(|i| {
            let category = [
                "pii.email",
                "prompt_injection",
                "secret.generic",
                "obfuscation",
            ][i % 4];
            finding(
                category,
                0.4,
                i % 7 == 0,
                (i % 9) as u32,
                ["user_prompt", "tool_output"][i % 2],
            )
        })
        .collect();
    let limits = portcullis_policy::Limits {
        max_instructions: 100 + 256 * 100,
        ..portcullis_policy::Limits::DEFAULT
    };
    let tight = Policy::compile_with_limits(&Bundle::embedded_default(), limits).unwrap();
    let decision = tight
        .decide(&request(false, Value::Array(findings)))
        .unwrap();
    assert_eq!(decision.action, Action::Deny);
    let none = Policy::compile_with_limits(
        &Bundle::embedded_default(),
        portcullis_policy::Limits {
            max_instructions: 100,
            ..portcullis_policy::Limits::DEFAULT
        },
    )
    .unwrap();
    assert_eq!(
        none.decide(&request(true, json!([]))).unwrap().action,
        Action::Allow
    );
}
