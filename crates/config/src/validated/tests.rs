use super::*;
use crate::parse_yaml;

fn config(yaml: &str) -> Result<Config, ConfigErrors> {
    Config::from_raw(&parse_yaml(yaml)?)
}

fn paths(errors: &ConfigErrors) -> Vec<&str> {
    errors.errors().iter().map(|e| e.path.as_str()).collect()
}

const GOOD: &str = r#"
listen: 0.0.0.0:9000
default_upstream: local
upstreams:
  - name: openai
    url: https://api.openai.com/v1/
    models: [gpt-4o, "gpt-4o-*", "o?-mini"]
    api_key_env: OPENAI_API_KEY
  - name: local
    url: http://127.0.0.1:11434/v1
    models: ["llama3*"]
    api_key_file: /run/secrets/key
    api_key_header: api-key
    headers: {x-team: platform}
    first_byte_timeout_ms: 500
limits: {max_body_bytes: 1024}
passthrough:
  - path: /v1/audio/*
"#;

#[test]
fn a_good_config_validates_and_routes() {
    let config = config(GOOD).unwrap();
    assert_eq!(config.listen.to_string(), "0.0.0.0:9000");
    let openai = &config.upstreams[0];
    assert_eq!(openai.base_path, "/v1");
    assert_eq!(openai.scheme, Scheme::HTTPS);
    assert_eq!(
        openai.credential,
        Some(CredentialSource::Env("OPENAI_API_KEY".into()))
    );
    assert_eq!(
        config.upstreams[1].timeouts.first_byte,
        Duration::from_millis(500)
    );
    assert_eq!(
        config.upstreams[1].timeouts.connect,
        Duration::from_millis(5000)
    );
    assert_eq!(config.route_model("gpt-4o"), Some(UpstreamId(0)));
    assert_eq!(config.route_model("gpt-4o-mini"), Some(UpstreamId(0)));
    assert_eq!(config.route_model("o3-mini"), Some(UpstreamId(0)));
    assert_eq!(config.route_model("llama3.1:8b"), Some(UpstreamId(1)));
    assert_eq!(
        config.route_model("mistral"),
        Some(UpstreamId(1)),
        "default upstream"
    );
    assert_eq!(config.limits.max_body_bytes, 1024);
    assert_eq!(config.limits.max_response_bytes, 32 * MIB);
    assert_eq!(
        config
            .passthrough_for("/v1/audio/speech")
            .map(|p| p.upstream),
        Some(UpstreamId(1))
    );
    assert!(config.passthrough_for("/v1/files").is_none());
    let listed: Vec<&str> = config.listed_models().iter().map(|(m, _)| *m).collect();
    assert_eq!(listed, vec!["gpt-4o"]);
}

#[test]
fn exact_names_win_over_patterns_in_any_order() {
    let config = config(
        "upstreams:\n  - {name: a, url: 'http://a/v1', models: ['gpt-*']}\n  - {name: b, url: 'http://b/v1', models: [gpt-4o]}\n",
    )
    .unwrap();
    assert_eq!(config.route_model("gpt-4o"), Some(UpstreamId(1)));
    assert_eq!(config.route_model("gpt-5"), Some(UpstreamId(0)));
    assert_eq!(
        config.route_model("claude"),
        None,
        "no default: unknown model has no route"
    );
}

#[test]
fn every_problem_is_reported_with_its_path() {
    let errors = config(
        r#"
listen: localhost
default_upstream: nowhere
upstreams:
  - name: a
    url: ftp://x
    models: [m]
  - name: a
    url: http://y/v1
    models: [m, ""]
    api_key_env: K
    api_key_file: /k
    headers: {host: evil}
    connect_timeout_ms: 0
limits: {max_body_bytes: 0, max_concurrent_requests: 0}
passthrough: [{path: /admin}]
"#,
    )
    .unwrap_err();
    let mut got = paths(&errors);
    got.sort_unstable();
    assert_eq!(
        got,
        vec![
            "default_upstream",
            "limits.max_body_bytes",
            "limits.max_concurrent_requests",
            "listen",
            "passthrough[0].path",
            "upstreams[0].url",
            "upstreams[1].api_key_env",
            "upstreams[1].connect_timeout_ms",
            "upstreams[1].headers.host",
            "upstreams[1].models[0]",
            "upstreams[1].models[1]",
            "upstreams[1].name",
        ],
        "{errors}"
    );
    assert!(errors.to_string().starts_with("12 configuration errors\n"));
}

#[test]
fn no_upstreams_and_unreachable_upstreams_are_errors() {
    assert_eq!(
        paths(&config("listen: 127.0.0.1:1\n").unwrap_err()),
        vec!["upstreams"]
    );
    let errors = config("upstreams: [{name: a, url: 'http://a/v1'}]\n").unwrap_err();
    assert_eq!(paths(&errors), vec!["upstreams[0].models"]);
}

#[test]
fn passthrough_needs_an_upstream() {
    let errors = config(
        "upstreams: [{name: a, url: 'http://a/v1', models: [m]}]\npassthrough: [{path: /v1/files}]\n",
    )
    .unwrap_err();
    assert_eq!(paths(&errors), vec!["passthrough[0].upstream"]);
}

#[test]
fn guard_defaults_are_on_error_closed_and_enforcing() {
    let config = Config::from_raw(
        &parse_yaml("upstreams:\n  - name: a\n    url: http://x/v1\n    models: [m]\n").unwrap(),
    )
    .unwrap();
    let route = config.guard.route("chat_completions");
    assert!(route.enabled && !route.shadow && route.expose_reasons && !route.canary);
    assert_eq!(route.deny_with, crate::DenyWith::Error);
    assert_eq!(config.guard.on_error, portcullis_core::OnError::FailClosed);
    assert_eq!(config.guard.policy, crate::PolicySource::Embedded);
    assert!(config.upstreams[0].trusted);
}

#[test]
fn guard_route_overrides_inherit_the_rest() {
    let yaml = "upstreams:\n  - name: a\n    url: http://x/v1\n    models: [m]\n    trusted: false\n\
policy:\n  bundle: /etc/p\n  on_error: allow\n\
guard:\n  expose_reasons: false\n  routes:\n    completions:\n      shadow: true\n      deny_with: refusal\n";
    let config = Config::from_raw(&parse_yaml(yaml).unwrap()).unwrap();
    let completions = config.guard.route("completions");
    assert!(completions.shadow && !completions.expose_reasons);
    assert_eq!(completions.deny_with, crate::DenyWith::Refusal);
    let chat = config.guard.route("chat_completions");
    assert!(!chat.shadow && !chat.expose_reasons);
    assert_eq!(config.guard.on_error, portcullis_core::OnError::FailOpen);
    assert!(!config.upstreams[0].trusted);
}

#[test]
fn guard_errors_carry_paths() {
    let yaml = "upstreams:\n  - name: a\n    url: http://x/v1\n    models: [m]\n\
policy:\n  bundle: ''\n\
guard:\n  allowed_link_hosts: ['ok.example', 'bad host']\n  routes:\n    images: {shadow: true}\n";
    let errors = Config::from_raw(&parse_yaml(yaml).unwrap()).unwrap_err();
    let paths: Vec<&str> = errors.errors().iter().map(|e| e.path.as_str()).collect();
    assert!(paths.contains(&"policy.bundle"), "{paths:?}");
    assert!(paths.contains(&"guard.allowed_link_hosts[1]"), "{paths:?}");
    assert!(paths.contains(&"guard.routes.images"), "{paths:?}");
    assert!(parse_yaml("guard:\n  deny_with: maybe\n").is_err());
}

const ONE_UPSTREAM: &str =
    "default_upstream: m\nupstreams:\n  - name: m\n    url: http://127.0.0.1:1\n";

#[test]
fn state_sections_default_to_an_embedded_store_with_approvals_and_audit() {
    let config = config(ONE_UPSTREAM).unwrap();
    assert_eq!(
        config.store,
        StoreSettings::Sqlite {
            path: PathBuf::from("portcullis.db")
        }
    );
    assert!(config.approvals.enabled);
    assert_eq!(config.approvals.timeout, Duration::from_secs(300));
    assert!(config.approvals.webhook.is_none());
    assert!(config.audit.enabled && config.audit.uses_store());
    assert_eq!(config.audit.on_full, crate::AuditOnFull::Block);
    assert_eq!(config.audit.content, crate::AuditContent::Excerpt(200));
    assert_eq!(config.admin.listen, None);
}

#[test]
fn state_sections_validate_with_paths() {
    let yaml = format!(
        "{ONE_UPSTREAM}store:\n  backend: postgres\n  schema: Bad-Name\n  path: x.db\n\
         approvals:\n  max_pending: 0\n  webhook:\n    url: ftp://x\n    console_url: nope\n\
         audit:\n  sinks: [jsonl, store, store]\n  signing_key_env: K\n  signing_key_file: /k\n\
         admin:\n  listen: 127.0.0.1:9\n  tokens:\n    - name: a\n      role: admin\n      sha256: abc\n    - name: a\n      role: viewer\n"
    );
    let errors = config(&yaml).unwrap_err();
    let paths = paths(&errors);
    for expected in [
        "store.url_env",
        "store.schema",
        "store.path",
        "approvals.max_pending",
        "approvals.webhook.url",
        "approvals.webhook.console_url",
        "audit.sinks[0]",
        "audit.sinks[2]",
        "audit.signing_key_env",
        "admin.tokens[0].sha256",
        "admin.tokens[1].name",
        "admin.tokens[1]",
    ] {
        assert!(
            paths.contains(&expected),
            "{expected} missing from {paths:?}"
        );
    }
}

#[test]
fn the_admin_listener_needs_a_token_and_its_own_port() {
    let yaml = format!("{ONE_UPSTREAM}listen: 127.0.0.1:9000\nadmin:\n  listen: 127.0.0.1:9000\n");
    let errors = config(&yaml).unwrap_err();
    let paths = paths(&errors);
    assert!(paths.contains(&"admin.tokens"), "{paths:?}");
    assert!(paths.contains(&"admin.listen"), "{paths:?}");
    let digest = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
    let yaml = format!(
        "{ONE_UPSTREAM}admin:\n  listen: 127.0.0.1:9001\n  tokens:\n    - name: alice\n      role: approver\n      sha256: {digest}\n    - name: bot\n      role: viewer\n      token_env: BOT_TOKEN\n"
    );
    let config = config(&yaml).unwrap();
    assert_eq!(config.admin.tokens.len(), 2);
    assert_eq!(config.admin.tokens[0].role, crate::AdminRole::Approver);
    assert!(matches!(
        config.admin.tokens[0].source,
        crate::AdminTokenSource::Sha256(bytes) if bytes[0] == 0x9f && bytes[31] == 0x08
    ));
    assert_eq!(
        config.admin.tokens[1].source,
        crate::AdminTokenSource::Secret(CredentialSource::Env("BOT_TOKEN".into()))
    );
}
