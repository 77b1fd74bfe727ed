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

/// An MCP decision input (`docs/policy.md`): `stage` is `tools_list`, `tool_call` or
/// `tool_result`.
fn mcp(stage: &str, tool: Value, findings: Value, tainted_by: Value) -> Value {
    let mut input = json!({
        "stage": stage,
        "principal": {"id": "svc-agent", "tenant": null, "groups": ["agents"], "auth": "jwt", "claims": {}},
        "route": "mcp",
        "server": "files",
        "tool": tool,
        "findings": findings,
        "session": {"id": "mcp-session-1", "tainted_by": tainted_by, "calls": 2}
    });
    if stage == "tool_result" {
        input["request"] = json!({"method": "tools/call"});
    }
    input
}

fn mcp_tool(name: &str, labels: &[&str], changed: bool, listed: Value) -> Value {
    json!({"server": "files", "name": name, "labels": labels, "changed": changed,
           "fingerprint": "sha256:9f2c41", "arguments": {"path": "/srv/data/a.txt"}, "listed": listed})
}

fn mcp_finding(category: &str, score: f64, flagged: bool, context: &str) -> Value {
    json!({"category": category, "detector": "test", "rule": "test", "score": score,
           "flagged": flagged, "where": {"context": context, "tool": "read_file", "path": "/content/0/text"}})
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
fn mcp_stages_decide_on_the_vm() {
    let clean = mcp_tool("read_file", &["private_data"], false, json!(true));
    for stage in ["tools_list", "tool_call", "tool_result"] {
        let d = decide(&mcp(stage, clean.clone(), json!([]), json!([])));
        assert_eq!(d, Decision::allow(), "{stage}");
    }
    let changed = mcp_tool("read_file", &[], true, json!(true));
    let d = decide(&mcp("tools_list", changed, json!([]), json!([])));
    assert_eq!(d.action, Action::Deny);
    assert_eq!(d.code.as_deref(), Some("tool_changed"));
    assert_eq!(
        d.reasons,
        ["tool files.read_file changed since it was first seen"]
    );
    let poisoned = json!([mcp_finding("tool_poisoning", 0.9, true, "tool_definition")]);
    let d = decide(&mcp("tools_list", clean.clone(), poisoned, json!([])));
    assert_eq!(d.code.as_deref(), Some("tool_poisoning"));
    let removed = mcp_tool("read_file", &[], false, json!(false));
    let d = decide(&mcp("tool_call", removed, json!([]), json!([])));
    assert_eq!(d.code.as_deref(), Some("tool_not_allowed"));
    let secret = json!([mcp_finding(
        "secret.github_token",
        0.95,
        true,
        "tool_arguments"
    )]);
    let d = decide(&mcp("tool_call", clean.clone(), secret.clone(), json!([])));
    assert_eq!(d.code.as_deref(), Some("secret_in_arguments"));
    let sink = mcp_tool("send_email", &["external_sink"], false, json!(true));
    let d = decide(&mcp(
        "tool_call",
        sink.clone(),
        json!([]),
        json!(["web.fetch"]),
    ));
    assert_eq!(d.action, Action::RequireApproval);
    assert_eq!(d.code.as_deref(), Some("tainted_session_sink"));
    assert!(
        d.reasons[0].ends_with("untrusted content from web.fetch"),
        "{d:?}"
    );
    let d = decide(&mcp(
        "tool_call",
        sink,
        secret.clone(),
        json!(["web.fetch"]),
    ));
    assert_eq!(d.action, Action::Deny);
    let injection = json!([mcp_finding("prompt_injection", 0.6, false, "tool_output")]);
    let d = decide(&mcp("tool_result", clean.clone(), injection, json!([])));
    assert_eq!(d.code.as_deref(), Some("indirect_prompt_injection"));
    let secret_out = json!([mcp_finding(
        "secret.github_token",
        0.95,
        true,
        "tool_output"
    )]);
    let d = decide(&mcp("tool_result", clean, secret_out, json!([])));
    assert_eq!(d.action, Action::Redact);
    assert_eq!(d.redact, ["secret.github_token"]);
    assert_eq!(d.code.as_deref(), Some("tool_result_redacted"));
}

/// MCP inputs the gateway should never send (no tool, wrong types): both engines agree, and
/// none of them is an allow where a rule could not look.
#[test]
fn vm_and_interpreter_agree_on_odd_mcp_inputs() {
    let policy = policy();
    let tool = mcp_tool("send_email", &["external_sink"], false, json!(true));
    let mut odd = vec![
        mcp("tools_list", json!(null), json!([]), json!([])),
        mcp("tool_call", json!({}), json!([]), json!([])),
        mcp("tool_call", json!({"name": 7}), json!([]), json!([])),
        mcp("tool_call", tool.clone(), json!([]), json!("web.fetch")),
        mcp(
            "tool_call",
            tool.clone(),
            json!([]),
            json!([7, "web.fetch"]),
        ),
        mcp("tool_call", tool.clone(), json!([]), json!([7])),
        mcp(
            "tool_call",
            json!({"name": "send", "labels": "external_sink"}),
            json!([]),
            json!(["a.b"]),
        ),
        mcp(
            "tool_call",
            json!({"name": "send", "changed": "yes", "listed": 0}),
            json!([]),
            json!([]),
        ),
        mcp(
            "tool_result",
            json!(null),
            json!([{"category": "prompt_injection", "flagged": true}]),
            json!([]),
        ),
        mcp(
            "tool_result",
            json!(null),
            json!([{"category": "prompt_injection", "score": 0.9, "where": {"context": "tool_output"}}]),
            json!([]),
        ),
        mcp(
            "tools_list",
            tool.clone(),
            json!([{"category": "tool_poisoning", "flagged": true}]),
            json!([]),
        ),
    ];
    let mut no_session = mcp("tool_call", tool, json!([]), json!([]));
    no_session.as_object_mut().unwrap().remove("session");
    odd.push(no_session);
    for input in &odd {
        let vm = policy.decide(input);
        let interpreted = policy.decide_interpreted(input);
        match (&vm, &interpreted) {
            (Ok(a), Ok(b)) => assert_eq!(a, b, "{input}"),
            _ => panic!("{input}: vm {vm:?}, interpreter {interpreted:?}"),
        }
    }
    let expect = |input: &Value, action: Action, code: &str| {
        let d = policy.decide(input).unwrap();
        assert_eq!(
            (d.action, d.code.as_deref()),
            (action, Some(code)),
            "{input}"
        );
    };
    expect(&odd[0], Action::Deny, "invalid_input");
    expect(&odd[2], Action::Deny, "invalid_input");
    expect(&odd[3], Action::Deny, "invalid_input");
    expect(&odd[4], Action::RequireApproval, "tainted_session_sink");
    expect(&odd[5], Action::RequireApproval, "tainted_session_sink");
    expect(&odd[10], Action::Deny, "tool_poisoning");
    expect(&odd[11], Action::Deny, "invalid_input");
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

#[test]
fn vm_and_interpreter_agree_on_many_mcp_inputs() {
    let policy = policy();
    let categories = [
        "tool_poisoning",
        "prompt_injection",
        "jailbreak",
        "invisible_text",
        "secret.github_token",
        "exfiltration",
        "pii.email",
        "obfuscation",
    ];
    let contexts = ["tool_definition", "tool_arguments", "tool_output"];
    let mut checked = 0;
    for (i, category) in categories.iter().enumerate() {
        for (j, context) in contexts.iter().enumerate() {
            for flagged in [false, true] {
                let score = [0.2, 0.5, 0.7, 0.99][(i + j) % 4];
                let f = mcp_finding(category, score, flagged, context);
                let changed = (i + j) % 5 == 0;
                let listed = [json!(true), json!(false), json!(null)][(i + j) % 3].clone();
                let labels: &[&str] = if flagged {
                    &["external_sink"]
                } else {
                    &["untrusted_source"]
                };
                let tool = mcp_tool("read_file", labels, changed, listed);
                let tainted = if j % 2 == 0 {
                    json!([])
                } else {
                    json!(["web.fetch"])
                };
                for stage in ["tools_list", "tool_call", "tool_result"] {
                    let input = mcp(stage, tool.clone(), json!([f.clone()]), tainted.clone());
                    let vm = policy.decide(&input).unwrap();
                    let interpreted = policy.decide_interpreted(&input).unwrap();
                    assert_eq!(vm, interpreted, "{input}");
                    checked += 1;
                }
            }
        }
    }
    assert_eq!(checked, 144);
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

/// The MCP stages' headroom, as `docs/policy.md` states it: a decision without findings within
/// 200 instructions, and the largest input within 200 plus 100 per finding.
#[test]
fn mcp_decisions_fit_a_small_instruction_budget() {
    let budget = |max_instructions| {
        Policy::compile_with_limits(
            &Bundle::embedded_default(),
            portcullis_policy::Limits {
                max_instructions,
                ..portcullis_policy::Limits::DEFAULT
            },
        )
        .unwrap()
    };
    let clean = budget(200);
    let sink = mcp_tool("send_email", &["external_sink"], false, json!(true));
    for stage in ["tools_list", "tool_call", "tool_result"] {
        let d = clean
            .decide(&mcp(stage, sink.clone(), json!([]), json!([])))
            .unwrap();
        assert_eq!(d.action, Action::Allow, "{stage}");
    }
    let findings: Vec<Value> = (0..256)
        .map(|i| {
            let category = [
                "pii.email",
                "prompt_injection",
                "secret.generic",
                "obfuscation",
            ][i % 4];
            let context = ["tool_definition", "tool_arguments", "tool_output"][i % 3];
            mcp_finding(category, 0.4, i % 7 == 0, context)
        })
        .collect();
    let tight = budget(200 + 256 * 100);
    for stage in ["tools_list", "tool_call", "tool_result"] {
        let input = mcp(
            stage,
            sink.clone(),
            Value::Array(findings.clone()),
            json!(["web.fetch"]),
        );
        assert!(tight.decide(&input).is_ok(), "{stage}");
    }
}
