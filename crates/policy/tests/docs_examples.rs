//! The MCP policy examples of `docs/policy.md` ("MCP tool policies"): every `rego` and `yaml`
//! block of that section whose first line names its file (`# policy/<path>`) is added to the
//! default bundle, as the text tells operators to, and the result must decide as the text says,
//! on the VM and the interpreter alike.

// Harness functions outside `#[test]` unwrap like the tests do.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use portcullis_policy::{Action, Bundle, Decision, Module, Policy};
use serde_json::{Value, json};

const SECTION: &str = "### MCP tool policies";

/// `(path, text)` of each file block in the section, the path without `policy/`.
fn example_files() -> Vec<(String, String)> {
    let doc = include_str!("../../../docs/policy.md");
    let start = doc
        .find(SECTION)
        .expect("docs/policy.md has the MCP examples");
    let rest = &doc[start + SECTION.len()..];
    let section = &rest[..rest.find("\n## ").unwrap_or(rest.len())];
    let mut files = Vec::new();
    let mut blocks = section.split("```").skip(1).step_by(2);
    for block in blocks.by_ref() {
        let Some((lang, body)) = block.split_once('\n') else {
            continue;
        };
        let Some(path) = body
            .lines()
            .next()
            .and_then(|l| l.strip_prefix("# policy/"))
            .and_then(|l| l.split([':', ' ']).next())
        else {
            continue;
        };
        assert!(matches!(lang, "rego" | "yaml"), "{lang}");
        files.push((path.to_owned(), body.to_owned()));
    }
    files
}

fn policy() -> Policy {
    let default = Bundle::embedded_default();
    let mut modules: Vec<Module> = default.modules().to_vec();
    let mut data = vec![(
        "data.json".to_owned(),
        serde_json::to_string(default.data()).unwrap(),
    )];
    let files = example_files();
    assert_eq!(files.len(), 3, "{files:?}");
    for (path, text) in files {
        if path.ends_with(".rego") {
            modules.push(Module { path, source: text });
        } else {
            data.push((path, text));
        }
    }
    Policy::compile(&Bundle::from_sources(modules, data).unwrap()).unwrap()
}

fn input(stage: &str, principal: Value, server: &str, name: &str, arguments: Value) -> Value {
    json!({
        "stage": stage,
        "principal": principal,
        "route": "mcp",
        "server": server,
        "tool": {"server": server, "name": name, "labels": [], "changed": false,
                 "fingerprint": "sha256:9f2c41", "arguments": arguments, "listed": true},
        "findings": [],
        "session": {"id": "mcp-session-1", "tainted_by": [], "calls": 1}
    })
}

fn sre() -> Value {
    json!({"id": "oncall", "tenant": null, "groups": ["sre"], "auth": "api_key", "claims": {}})
}

fn decide(policy: &Policy, input: &Value) -> Decision {
    let vm = policy.decide(input).unwrap();
    assert_eq!(vm, policy.decide_interpreted(input).unwrap(), "{input}");
    vm
}

#[test]
fn read_file_is_confined_to_srv_data() {
    let policy = policy();
    let call = |path: Value| {
        decide(
            &policy,
            &input(
                "tool_call",
                sre(),
                "files",
                "read_file",
                json!({"path": path}),
            ),
        )
    };
    for ok in [
        "/srv/data/report.txt",
        "/srv/data/2024/q3/summary.md",
        "/srv/data/a..b",
    ] {
        assert_eq!(call(json!(ok)), Decision::allow(), "{ok}");
    }
    for bad in [
        "/srv/data/../../etc/passwd",
        "/srv/data/..",
        "/srv/database/dump.sql",
        "/srv/data",
        "srv/data/x",
        "/etc/passwd",
    ] {
        let d = call(json!(bad));
        assert_eq!(d.action, Action::Deny, "{bad}");
        assert_eq!(d.code.as_deref(), Some("path_not_allowed"), "{bad}");
        assert_eq!(
            d.reasons,
            [format!(
                "read_file may only read files under /srv/data/, not {bad}"
            )]
        );
    }
    let d = call(json!(7));
    assert_eq!(d.action, Action::Deny);
    let d = decide(
        &policy,
        &input("tool_call", sre(), "files", "read_file", json!({})),
    );
    assert_eq!(
        d.reasons,
        ["read_file may only read files under /srv/data/, not null"]
    );
    let d = decide(
        &policy,
        &input(
            "tool_call",
            sre(),
            "files",
            "read_file",
            json!(["/etc/passwd"]),
        ),
    );
    assert_eq!(d.action, Action::Deny);
    // Other tools and other stages are not its business.
    let d = decide(
        &policy,
        &input(
            "tool_call",
            sre(),
            "files",
            "write_file",
            json!({"path": "/tmp/x"}),
        ),
    );
    assert_eq!(d, Decision::allow());
    let d = decide(
        &policy,
        &input("tools_list", sre(), "files", "read_file", json!(null)),
    );
    assert_eq!(d, Decision::allow());
}

#[test]
fn tools_are_allowed_per_group_and_namespace() {
    let policy = policy();
    // Principals as the gateway builds them (docs/policy.md, "The input document").
    let support = json!({"id": "helpdesk-bot", "tenant": null, "groups": ["support"], "auth": "api_key",
                         "issuer": null, "claims": {}, "kubernetes": null});
    let payments = json!({"id": "system:serviceaccount:payments:agent", "tenant": "payments",
                          "groups": ["system:serviceaccounts", "system:serviceaccounts:payments"],
                          "auth": "jwt", "issuer": "https://kubernetes.default.svc.cluster.local",
                          "claims": {}, "kubernetes": {"namespace": "payments",
                          "service_account": "agent", "uid": null, "pod": null}});
    let nobody = json!({"id": "anonymous", "tenant": null, "groups": [], "auth": "anonymous",
                        "issuer": null, "claims": {}, "kubernetes": null});
    let args = json!({"path": "/srv/data/a.txt"});
    for stage in ["tools_list", "tool_call"] {
        let see = |principal: &Value, server: &str, name: &str| {
            decide(
                &policy,
                &input(stage, principal.clone(), server, name, args.clone()),
            )
        };
        assert_eq!(see(&support, "tickets", "search"), Decision::allow());
        assert_eq!(see(&support, "files", "read_file"), Decision::allow());
        assert_eq!(see(&payments, "db", "query"), Decision::allow());
        assert_eq!(see(&sre(), "db", "drop_table"), Decision::allow());
        let d = see(&support, "db", "query");
        assert_eq!(d.action, Action::Deny, "{stage}");
        assert_eq!(d.code.as_deref(), Some("tool_not_allowed"));
        assert_eq!(d.reasons, ["tool db.query is not allowed for helpdesk-bot"]);
        let d = see(&payments, "tickets", "search");
        assert_eq!(d.action, Action::Deny, "{stage}");
        let d = see(&nobody, "files", "read_file");
        assert_eq!(d.action, Action::Deny, "{stage}");
    }
    // Results are not filtered by the allowlist.
    let mut result = input("tool_result", nobody, "files", "read_file", json!(null));
    result["request"] = json!({"method": "tools/call"});
    assert_eq!(decide(&policy, &result), Decision::allow());
}
