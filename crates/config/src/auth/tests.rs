use super::*;
use crate::parse_yaml;

fn validate(yaml: &str) -> (Auth, Vec<ConfigError>) {
    let raw = parse_yaml(&format!("auth:\n{yaml}")).unwrap();
    let mut errors = Vec::new();
    let auth = validate_auth(&mut errors, &raw.auth);
    (auth, errors)
}

fn errors_of(yaml: &str) -> Vec<String> {
    validate(yaml).1.iter().map(ToString::to_string).collect()
}

fn assert_error(yaml: &str, path: &str, needle: &str) {
    let errors = errors_of(yaml);
    assert!(
        errors
            .iter()
            .any(|e| e.starts_with(&format!("{path}: ")) && e.contains(needle)),
        "expected `{path}: ...{needle}...` in {errors:?}"
    );
}

const DIGEST: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

#[test]
fn nothing_configured_means_anonymous() {
    let (auth, errors) = validate("  {}\n");
    assert!(errors.is_empty(), "{errors:?}");
    assert!(auth.anonymous);
    assert!(!auth.checks_credentials());
}

#[test]
fn a_full_section_validates_with_defaults() {
    let (auth, errors) = validate(&format!(
        "  anonymous_tenant: public\n  anonymous: true\n  api_keys:\n    - {{name: team-a-bot, sha256: {DIGEST}, tenant: team-a, groups: [bots]}}\n    - {{name: b, key_env: B_KEY}}\n  jwt:\n    - issuer: https://kubernetes.default.svc.cluster.local\n      audiences: [portcullis]\n      kind: kubernetes\n      jwks_url: https://kubernetes.default.svc/openid/v1/jwks\n      ca_file: /ca.crt\n      token_file: /token\n    - issuer: https://login.example/\n      audiences: [a, b]\n      algorithms: [PS256, EdDSA]\n      tenant_claim: org\n      claims: [email]\n      leeway_ms: 0\n"
    ));
    assert!(errors.is_empty(), "{errors:?}");
    assert!(auth.anonymous);
    assert_eq!(auth.anonymous_tenant.as_deref(), Some("public"));
    assert_eq!(
        auth.api_keys[0].source,
        ApiKeySource::Sha256(portcullis_core::hex::decode(DIGEST).unwrap())
    );
    assert_eq!(
        auth.api_keys[1].source,
        ApiKeySource::Secret(CredentialSource::Env("B_KEY".into()))
    );
    let k8s = &auth.jwt[0];
    assert_eq!(k8s.kind, JwtKind::Kubernetes);
    assert!(matches!(&k8s.keys, JwksLocation::Jwks(uri) if uri.path() == "/openid/v1/jwks"));
    assert_eq!(k8s.algorithms, [JwtAlgorithm::Rs256, JwtAlgorithm::Es256]);
    assert_eq!(k8s.leeway, Duration::from_secs(60));
    assert_eq!(k8s.jwks_refresh, Duration::from_secs(300));
    assert_eq!(k8s.jwks_min_refresh, Duration::from_secs(10));
    assert_eq!(k8s.fetch_timeout, Duration::from_secs(5));
    let oidc = &auth.jwt[1];
    assert!(matches!(&oidc.keys, JwksLocation::Discovery(uri)
        if *uri == "https://login.example/.well-known/openid-configuration"));
    assert_eq!(oidc.principal_claim, "sub");
    assert_eq!(oidc.groups_claim, "groups");
    assert_eq!(oidc.tenant_claim.as_deref(), Some("org"));
    assert_eq!(oidc.leeway, Duration::ZERO);
}

#[test]
fn configured_credentials_turn_anonymous_off_by_default() {
    let (auth, errors) = validate(&format!("  api_keys: [{{name: a, sha256: {DIGEST}}}]\n"));
    assert!(errors.is_empty());
    assert!(!auth.anonymous);
    assert!(auth.checks_credentials());
}

#[test]
fn anonymous_errors() {
    assert_error(
        "  anonymous: false\n",
        "auth.anonymous",
        "every request would be refused",
    );
    assert_error(
        &format!("  anonymous_tenant: t\n  api_keys: [{{name: a, sha256: {DIGEST}}}]\n"),
        "auth.anonymous_tenant",
        "not allowed",
    );
    assert_error(
        "  anonymous_tenant: \"\"\n",
        "auth.anonymous_tenant",
        "1 to 128",
    );
}

#[test]
fn api_key_errors() {
    let yaml = format!(
        "  api_keys:\n    - {{name: \"a b\", sha256: {DIGEST}}}\n    - {{name: x, sha256: zz}}\n    - {{name: y}}\n    - {{name: z, sha256: {DIGEST}, key_env: Z}}\n    - {{name: w, key_env: W, key_file: /w}}\n    - {{name: v, key_env: \"A=B\"}}\n    - {{name: u, key_file: \"\"}}\n    - {{name: x, key_env: X, tenant: \"\", groups: [\"\"]}}\n    - {{name: t, sha256: {}}}\n",
        DIGEST.to_uppercase()
    );
    assert_error(&yaml, "auth.api_keys[0].name", "letters, digits");
    assert_error(&yaml, "auth.api_keys[1].sha256", "64 hex digits");
    assert_error(
        &yaml,
        "auth.api_keys[2]",
        "exactly one of sha256, key_env and key_file",
    );
    assert_error(&yaml, "auth.api_keys[3]", "exactly one of");
    assert_error(&yaml, "auth.api_keys[4].key_env", "not both");
    assert_error(
        &yaml,
        "auth.api_keys[5].key_env",
        "environment variable name",
    );
    assert_error(&yaml, "auth.api_keys[6].key_file", "must not be empty");
    assert_error(&yaml, "auth.api_keys[7].name", "`x` is used twice");
    assert_error(&yaml, "auth.api_keys[7].tenant", "1 to 128");
    assert_error(&yaml, "auth.api_keys[7].groups[0]", "1 to 256");
    assert_error(&yaml, "auth.api_keys[8].sha256", "configured twice");
}

#[test]
fn too_many_groups_are_refused() {
    let groups: Vec<String> = (0..65).map(|i| format!("g{i}")).collect();
    assert_error(
        &format!(
            "  api_keys: [{{name: a, sha256: {DIGEST}, groups: [{}]}}]\n",
            groups.join(",")
        ),
        "auth.api_keys[0].groups",
        "at most 64",
    );
}

#[test]
fn issuer_errors() {
    let yaml = "  jwt:\n    - {issuer: kubernetes/serviceaccount, audiences: [a]}\n    - {issuer: \"http://idp.example\", audiences: []}\n    - {issuer: \"https://a.example\", audiences: [\"\"], discovery_url: \"https://a.example/d\", jwks_url: \"https://a.example/j\"}\n    - {issuer: \"https://a.example\", audiences: [a], jwks_url: \"http://keys.example/jwks\"}\n    - {issuer: \"https://b.example\", audiences: [a], discovery_url: \"ftp://b.example/d\", ca_file: \"\", token_file: \"\"}\n";
    assert_error(
        yaml,
        "auth.jwt[0].issuer",
        "legacy `kubernetes/serviceaccount`",
    );
    assert_error(yaml, "auth.jwt[1].issuer", "https only");
    assert_error(yaml, "auth.jwt[1].audiences", "at least one audience");
    assert_error(yaml, "auth.jwt[2].audiences[0]", "1 to 512");
    assert_error(yaml, "auth.jwt[2].jwks_url", "not both");
    assert_error(yaml, "auth.jwt[3].issuer", "configured twice");
    assert_error(yaml, "auth.jwt[3].jwks_url", "https only");
    assert_error(yaml, "auth.jwt[4].discovery_url", "https:// URL");
    assert_error(yaml, "auth.jwt[4].ca_file", "must not be empty");
    assert_error(yaml, "auth.jwt[4].token_file", "must not be empty");
}

#[test]
fn loopback_http_is_allowed_for_fetches() {
    for host in ["127.0.0.1:8080", "localhost", "[::1]:9"] {
        let (auth, errors) = validate(&format!(
            "  jwt: [{{issuer: \"http://{host}/issuer\", audiences: [a]}}]\n"
        ));
        assert!(errors.is_empty(), "{host}: {errors:?}");
        assert_eq!(auth.jwt.len(), 1);
    }
    assert!(!is_loopback_host("127.example"));
}

#[test]
fn algorithm_errors() {
    let yaml = "  jwt:\n    - {issuer: \"https://a.example\", audiences: [a], algorithms: [RS256, HS256, none, RS256, rs384, ES512]}\n    - {issuer: \"https://b.example\", audiences: [a], algorithms: []}\n";
    assert_error(yaml, "auth.jwt[0].algorithms[1]", "HMAC");
    assert_error(yaml, "auth.jwt[0].algorithms[2]", "never accepted");
    assert_error(yaml, "auth.jwt[0].algorithms[3]", "listed twice");
    assert_error(
        yaml,
        "auth.jwt[0].algorithms[4]",
        "unknown algorithm `rs384`",
    );
    assert_error(
        yaml,
        "auth.jwt[0].algorithms[5]",
        "unknown algorithm `ES512`",
    );
    assert_error(yaml, "auth.jwt[1].algorithms", "must not be empty");
    for alg in JwtAlgorithm::ALL {
        assert_eq!(JwtAlgorithm::parse(alg.as_str()), Some(alg));
    }
}

#[test]
fn claim_errors() {
    let claims: Vec<String> = (0..33).map(|i| format!("c{i}")).collect();
    let yaml = format!(
        "  jwt:\n    - {{issuer: \"https://a.example\", audiences: [a], kind: kubernetes, principal_claim: sub, tenant_claim: ns, groups_claim: g}}\n    - {{issuer: \"https://b.example\", audiences: [a], principal_claim: \"\", claims: [email, email, \"\"]}}\n    - {{issuer: \"https://c.example\", audiences: [a], claims: [{}]}}\n",
        claims.join(",")
    );
    assert_error(
        &yaml,
        "auth.jwt[0].principal_claim",
        "only for `kind: oidc`",
    );
    assert_error(&yaml, "auth.jwt[0].tenant_claim", "only for `kind: oidc`");
    assert_error(&yaml, "auth.jwt[0].groups_claim", "only for `kind: oidc`");
    assert_error(&yaml, "auth.jwt[1].principal_claim", "1 to 128");
    assert_error(&yaml, "auth.jwt[1].claims[1]", "listed twice");
    assert_error(&yaml, "auth.jwt[1].claims[2]", "1 to 128");
    assert_error(&yaml, "auth.jwt[2].claims", "at most 32");
}

#[test]
fn timing_errors() {
    let yaml = "  jwt:\n    - {issuer: \"https://a.example\", audiences: [a], leeway_ms: 600001, jwks_refresh_ms: 0, fetch_timeout_ms: 0}\n    - {issuer: \"https://b.example\", audiences: [a], jwks_refresh_ms: 1000, jwks_min_refresh_ms: 2000}\n";
    assert_error(yaml, "auth.jwt[0].leeway_ms", "at most 600000");
    assert_error(yaml, "auth.jwt[0].jwks_refresh_ms", "between 1 and");
    assert_error(yaml, "auth.jwt[0].fetch_timeout_ms", "between 1 and");
    assert_error(
        yaml,
        "auth.jwt[1].jwks_min_refresh_ms",
        "must not exceed jwks_refresh_ms",
    );
}

#[test]
fn too_many_entries_are_refused() {
    let issuers: Vec<String> = (0..33)
        .map(|i| format!("    - {{issuer: \"https://i{i}.example\", audiences: [a]}}\n"))
        .collect();
    assert_error(
        &format!("  jwt:\n{}", issuers.concat()),
        "auth.jwt",
        "at most 32",
    );
}
