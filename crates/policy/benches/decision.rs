//! One decision of the default bundle, on the VM (as the gateway runs it) and on regorus's
//! tree-walking interpreter, plus what the pieces cost.
//!
//! ```sh
//! cargo bench -p portcullis-policy --bench decision -- --warm-up-time 1 --measurement-time 3
//! ```
//!
//! Inputs (the shape `docs/policy.md` documents):
//!
//! - `clean`: a 4-message chat request without findings;
//! - `findings`: the same request with 5 findings: a flagged injection in the user prompt (which
//!   denies), a weaker unflagged injection rule hit, a flagged e-mail address, flagged zero-width
//!   characters in the user prompt and unflagged obfuscation in a tool result;
//! - `response_secret`: a response stage with one flagged GitHub token;
//! - `tool_call`: an MCP `tools/call` of a listed `external_sink` tool with two argument
//!   findings (an unflagged generic secret and a flagged e-mail address, neither of which
//!   denies) in a session tainted by one untrusted source, which requires approval.
//!
//! Groups:
//!
//! - `decide_vm`: `Policy::decide` — input conversion, a pooled VM, reading the decision.
//! - `decide_interpreter`: `Policy::decide_interpreted`, the same through the interpreter.
//! - `vm_only`: the VM program alone on an already converted input, with one VM reused (what
//!   the pool gives) and with a fresh VM per decision (what it saves).
//! - `input_conversion`: `serde_json::Value` → `regorus::Value` by the crate's converter
//!   (`src/convert.rs`, compiled in here), by regorus's serde `Deserialize`, by
//!   `Value::from(json.clone())`, and by printing JSON and parsing it with
//!   `Value::from_json_str`.

// Benches are not the request path: a setup failure should stop the run loudly.
#![allow(clippy::expect_used, clippy::unwrap_used)]

#[allow(dead_code, unreachable_pub, unused_imports)]
#[path = "../src/convert.rs"]
mod convert;

use std::hint::black_box;
use std::sync::Arc;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use portcullis_policy::{Action, Bundle, DECISION_RULE, Policy};
use regorus::languages::rego::compiler::Compiler;
use regorus::rvm::program::Program;
use regorus::rvm::vm::RegoVM;
use serde::Deserialize;
use serde_json::{Value, json};

fn request(findings: Value) -> Value {
    json!({
        "stage": "request",
        "principal": {"id": "svc-checkout", "tenant": "shop", "groups": ["payments"], "auth": "api_key", "claims": {}},
        "route": "chat_completions",
        "model": "gpt-4o",
        "upstream": {"name": "openai", "trusted": true},
        "findings": findings,
        "request": {"messages": 4, "prompt_tokens_estimate": 812, "tools": ["get_weather"], "stream": false}
    })
}

fn finding(
    category: &str,
    rule: &str,
    score: f64,
    flagged: bool,
    message: u32,
    context: &str,
) -> Value {
    let role = if context == "tool_output" {
        "tool"
    } else {
        "user"
    };
    json!({"category": category, "detector": "test", "rule": rule, "score": score, "flagged": flagged,
           "where": {"message": message, "role": role, "context": context}})
}

fn inputs() -> Vec<(&'static str, Value, Action)> {
    let findings = json!([
        finding(
            "prompt_injection",
            "override.ignore_previous",
            0.97,
            true,
            3,
            "user_prompt"
        ),
        finding(
            "prompt_injection",
            "extraction.secret",
            0.35,
            false,
            3,
            "user_prompt"
        ),
        finding("pii.email", "email", 0.9, true, 3, "user_prompt"),
        finding("invisible_text", "zero_width", 0.6, true, 1, "user_prompt"),
        finding("obfuscation", "base64", 0.4, false, 2, "tool_output"),
    ]);
    let mut response = request(json!([{
        "category": "secret.github_token", "detector": "secrets", "rule": "github_token",
        "score": 0.95, "flagged": true, "where": {"choice": 0, "role": "assistant", "context": "assistant"}
    }]));
    response["stage"] = json!("response");
    let tool_call = json!({
        "stage": "tool_call",
        "principal": {"id": "svc-agent", "tenant": "research", "groups": ["agents"], "auth": "jwt", "claims": {}},
        "route": "mcp",
        "server": "mail",
        "tool": {"server": "mail", "name": "send_email", "labels": ["external_sink"], "changed": false,
                 "fingerprint": "sha256:9f2c41", "listed": true,
                 "arguments": {"to": "ops@example.com", "subject": "Weekly report", "body": "..."}},
        "findings": [
            {"category": "secret.generic", "detector": "secrets", "rule": "generic_assignment", "score": 0.3,
             "flagged": false, "where": {"context": "tool_arguments", "tool": "send_email", "path": "/body"}},
            {"category": "pii.email", "detector": "pii", "rule": "email", "score": 0.9,
             "flagged": true, "where": {"context": "tool_arguments", "tool": "send_email", "path": "/to"}}
        ],
        "session": {"id": "mcp-session-1", "tainted_by": ["web.fetch"], "calls": 4}
    });
    vec![
        ("clean", request(json!([])), Action::Allow),
        ("findings", request(findings), Action::Deny),
        ("response_secret", response, Action::Deny),
        ("tool_call", tool_call, Action::RequireApproval),
    ]
}

/// The default bundle's VM program, built the way `Policy::compile` builds it.
fn program(bundle: &Bundle) -> (Arc<Program>, regorus::Value) {
    let mut engine = regorus::Engine::new();
    for module in bundle.modules().iter().filter(|m| !m.is_test()) {
        engine
            .add_policy(module.path.clone(), module.source.clone())
            .unwrap();
    }
    let data = convert::to_rego(bundle.data());
    engine.add_data(data.clone()).unwrap();
    let compiled = engine
        .compile_with_entrypoint(&DECISION_RULE.into())
        .unwrap();
    (
        Compiler::compile_from_policy(&compiled, &[DECISION_RULE]).unwrap(),
        data,
    )
}

fn decisions(c: &mut Criterion) {
    let bundle = Bundle::embedded_default();
    let policy = Policy::compile(&bundle).expect("the default bundle compiles");
    let inputs = inputs();
    for (name, input, action) in &inputs {
        assert_eq!(policy.decide(input).unwrap().action, *action, "{name}");
        assert_eq!(
            policy.decide_interpreted(input).unwrap().action,
            *action,
            "{name}"
        );
    }

    let mut group = c.benchmark_group("decide_vm");
    for (name, input, _) in &inputs {
        group.bench_with_input(BenchmarkId::from_parameter(name), input, |b, input| {
            b.iter(|| black_box(policy.decide(black_box(input)).unwrap()));
        });
    }
    group.finish();

    let mut group = c.benchmark_group("decide_interpreter");
    for (name, input, _) in &inputs {
        group.bench_with_input(BenchmarkId::from_parameter(name), input, |b, input| {
            b.iter(|| black_box(policy.decide_interpreted(black_box(input)).unwrap()));
        });
    }
    group.finish();

    let (program, data) = program(&bundle);
    let limits = policy.limits();
    let fresh_vm = || {
        let mut vm = RegoVM::new();
        vm.load_program(program.clone());
        vm.set_max_instructions(limits.max_instructions);
        vm.set_data(data.clone()).unwrap();
        vm
    };
    let mut group = c.benchmark_group("vm_only");
    for (name, input, _) in &inputs {
        let input = convert::to_rego(input);
        let mut vm = fresh_vm();
        group.bench_with_input(BenchmarkId::new("reused", name), &input, |b, input| {
            b.iter(|| {
                vm.set_input(input.clone());
                black_box(vm.execute().unwrap())
            });
        });
        let mut timed = fresh_vm();
        timed.set_execution_timer_config(Some(regorus::utils::limits::ExecutionTimerConfig {
            limit: limits.max_duration,
            check_interval: std::num::NonZeroU32::new(256).unwrap(),
        }));
        group.bench_with_input(
            BenchmarkId::new("reused_timed", name),
            &input,
            |b, input| {
                b.iter(|| {
                    timed.set_input(input.clone());
                    black_box(timed.execute().unwrap())
                });
            },
        );
        group.bench_with_input(BenchmarkId::new("fresh", name), &input, |b, input| {
            b.iter(|| {
                let mut vm = fresh_vm();
                vm.set_input(input.clone());
                black_box(vm.execute().unwrap())
            });
        });
    }
    group.finish();

    let mut group = c.benchmark_group("input_conversion");
    for (name, input, _) in &inputs {
        let expected = convert::to_rego(input);
        assert_eq!(regorus::Value::deserialize(input).unwrap(), expected);
        group.bench_with_input(BenchmarkId::new("to_rego", name), input, |b, input| {
            b.iter(|| black_box(convert::to_rego(black_box(input))));
        });
        group.bench_with_input(BenchmarkId::new("deserialize", name), input, |b, input| {
            b.iter(|| black_box(regorus::Value::deserialize(black_box(input)).unwrap()));
        });
        group.bench_with_input(BenchmarkId::new("from_clone", name), input, |b, input| {
            b.iter(|| black_box(regorus::Value::from(black_box(input).clone())));
        });
        group.bench_with_input(BenchmarkId::new("via_string", name), input, |b, input| {
            b.iter(|| {
                let text = serde_json::to_string(black_box(input)).unwrap();
                black_box(regorus::Value::from_json_str(&text).unwrap())
            });
        });
    }
    group.finish();
}

criterion_group!(benches, decisions);
criterion_main!(benches);
