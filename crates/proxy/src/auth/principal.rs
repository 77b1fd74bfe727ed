//! The principal of a verified token: from configured claims (`oidc`), or from the service
//! account a Kubernetes token names (`kubernetes`).
//!
//! A Kubernetes service-account token carries
//! `"kubernetes.io": {"namespace", "serviceaccount": {"name", "uid"}, "pod": {"name", "uid"}}`
//! and `sub` = `system:serviceaccount:{namespace}:{name}`; a token whose two disagree is
//! refused. The principal gets the groups the API server gives service accounts.

use std::collections::BTreeMap;

use portcullis_config::{JwtIssuer, JwtKind, MAX_COPIED_CLAIMS};
use portcullis_core::{AuthMethod, Principal, ServiceAccount};
use serde_json::{Map, Value};

use super::AuthError;

/// Largest copied claim value, as compact JSON. Larger ones are left out of the principal.
const MAX_CLAIM_BYTES: usize = 1024;
/// Most groups taken from a token; a token with more is refused rather than truncated, since
/// dropping a group could change a policy's answer.
const MAX_GROUPS: usize = 256;
/// Longest principal id, tenant or group taken from a token.
const MAX_NAME_BYTES: usize = 256;

/// The principal `claims` (already verified) stand for.
pub(super) fn build(
    issuer: &JwtIssuer,
    claims: &Map<String, Value>,
) -> Result<Principal, AuthError> {
    let mut principal = match issuer.kind {
        JwtKind::Oidc => oidc(issuer, claims)?,
        JwtKind::Kubernetes => kubernetes(claims)?,
    };
    principal.issuer = Some(issuer.issuer.clone());
    principal.claims = copied_claims(&issuer.claims, claims);
    Ok(principal)
}

fn oidc(issuer: &JwtIssuer, claims: &Map<String, Value>) -> Result<Principal, AuthError> {
    let id = claims
        .get(&issuer.principal_claim)
        .and_then(Value::as_str)
        .filter(|id| is_name(id))
        .ok_or(AuthError::invalid("principal_claim_invalid"))?;
    let tenant = match issuer.tenant_claim.as_ref().and_then(|c| claims.get(c)) {
        None | Some(Value::Null) => None,
        Some(Value::String(tenant)) if is_name(tenant) => Some(tenant.clone()),
        Some(_) => return Err(AuthError::invalid("tenant_claim_invalid")),
    };
    let groups = match claims.get(&issuer.groups_claim) {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::String(one)) if is_name(one) => vec![one.clone()],
        Some(Value::Array(many)) if many.len() <= MAX_GROUPS => many
            .iter()
            .map(|g| g.as_str().filter(|g| is_name(g)).map(str::to_owned))
            .collect::<Option<Vec<_>>>()
            .ok_or(AuthError::invalid("groups_claim_invalid"))?,
        Some(_) => return Err(AuthError::invalid("groups_claim_invalid")),
    };
    Ok(Principal {
        id: id.to_owned(),
        tenant,
        groups,
        auth: AuthMethod::Jwt,
        issuer: None,
        service_account: None,
        claims: BTreeMap::new(),
    })
}

fn kubernetes(claims: &Map<String, Value>) -> Result<Principal, AuthError> {
    let not_a_service_account = || AuthError::invalid("not_a_service_account");
    let k8s = claims
        .get("kubernetes.io")
        .and_then(Value::as_object)
        .ok_or_else(not_a_service_account)?;
    let text = |value: Option<&Value>| value.and_then(Value::as_str).map(str::to_owned);
    let namespace = text(k8s.get("namespace"))
        .filter(|ns| is_k8s_name(ns))
        .ok_or_else(not_a_service_account)?;
    let account = k8s
        .get("serviceaccount")
        .and_then(Value::as_object)
        .ok_or_else(not_a_service_account)?;
    let name = text(account.get("name"))
        .filter(|name| is_k8s_name(name))
        .ok_or_else(not_a_service_account)?;
    let id = format!("system:serviceaccount:{namespace}:{name}");
    if claims.get("sub").and_then(Value::as_str) != Some(id.as_str()) {
        return Err(AuthError::invalid("subject_mismatch"));
    }
    let pod = k8s.get("pod").and_then(Value::as_object);
    let service_account = ServiceAccount {
        uid: text(account.get("uid")),
        pod: text(pod.and_then(|pod| pod.get("name"))),
        namespace: namespace.clone(),
        name,
    };
    Ok(Principal {
        id,
        groups: vec![
            "system:serviceaccounts".to_owned(),
            format!("system:serviceaccounts:{namespace}"),
            "system:authenticated".to_owned(),
        ],
        tenant: Some(namespace),
        auth: AuthMethod::Jwt,
        issuer: None,
        service_account: Some(service_account),
        claims: BTreeMap::new(),
    })
}

/// The configured claims present in the token, as compact JSON, each at most 1 KiB.
fn copied_claims(wanted: &[String], claims: &Map<String, Value>) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for name in wanted.iter().take(MAX_COPIED_CLAIMS) {
        let Some(value) = claims.get(name) else {
            continue;
        };
        let text = value.to_string();
        if text.len() > MAX_CLAIM_BYTES {
            tracing::debug!(claim = %name, bytes = text.len(), "token claim over 1 KiB left out of the principal");
            continue;
        }
        out.insert(name.clone(), text);
    }
    out
}

/// A principal id, tenant or group: 1 to 256 bytes, no control characters.
fn is_name(text: &str) -> bool {
    !text.is_empty() && text.len() <= MAX_NAME_BYTES && !text.chars().any(char::is_control)
}

/// A Kubernetes namespace or service-account name (DNS-1123 subdomain characters): lowercase
/// letters, digits, `-` and `.`, at most 253 bytes. Notably no `:`, which would make the
/// `system:serviceaccount:NS:NAME` subject ambiguous.
fn is_k8s_name(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= 253
        && text
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::time::Duration;

    fn issuer(kind: JwtKind) -> JwtIssuer {
        JwtIssuer {
            issuer: "https://issuer.example".into(),
            kind,
            principal_claim: "email".into(),
            tenant_claim: Some("org".into()),
            groups_claim: "roles".into(),
            claims: vec!["email".into(), "big".into(), "absent".into()],
            leeway: Duration::ZERO,
            ..super::super::test_issuer()
        }
    }

    fn claims(value: Value) -> Map<String, Value> {
        value.as_object().unwrap().clone()
    }

    #[test]
    fn oidc_principals_come_from_the_configured_claims() {
        let principal = build(
            &issuer(JwtKind::Oidc),
            &claims(json!({"sub": "u1", "email": "a@b.example", "org": "acme",
                "roles": ["admin", "dev"], "big": "x".repeat(2000)})),
        )
        .unwrap();
        assert_eq!(principal.id, "a@b.example");
        assert_eq!(principal.tenant.as_deref(), Some("acme"));
        assert_eq!(principal.groups, ["admin", "dev"]);
        assert_eq!(principal.auth, AuthMethod::Jwt);
        assert_eq!(principal.issuer.as_deref(), Some("https://issuer.example"));
        assert_eq!(
            principal.claims,
            BTreeMap::from([("email".to_owned(), "\"a@b.example\"".to_owned())])
        );
        let minimal = build(
            &issuer(JwtKind::Oidc),
            &claims(json!({"email": "e", "roles": "one"})),
        )
        .unwrap();
        assert_eq!(minimal.tenant, None);
        assert_eq!(minimal.groups, ["one"]);
    }

    #[test]
    fn oidc_claims_of_the_wrong_shape_are_refused() {
        let many: Vec<String> = (0..257).map(|i| format!("g{i}")).collect();
        for (value, reason) in [
            (json!({"sub": "u"}), "principal_claim_invalid"),
            (json!({"email": 7}), "principal_claim_invalid"),
            (json!({"email": ""}), "principal_claim_invalid"),
            (json!({"email": "e", "org": 1}), "tenant_claim_invalid"),
            (json!({"email": "e", "roles": [1]}), "groups_claim_invalid"),
            (
                json!({"email": "e", "roles": {"a": 1}}),
                "groups_claim_invalid",
            ),
            (json!({"email": "e", "roles": many}), "groups_claim_invalid"),
        ] {
            assert_eq!(
                build(&issuer(JwtKind::Oidc), &claims(value.clone())),
                Err(AuthError::invalid(reason)),
                "{value}"
            );
        }
    }

    fn k8s_claims(sub: &str, namespace: &str) -> Value {
        json!({"sub": sub, "kubernetes.io": {"namespace": namespace,
            "serviceaccount": {"name": "agent", "uid": "u-1"},
            "pod": {"name": "agent-7f9", "uid": "p-1"}}})
    }

    #[test]
    fn kubernetes_principals_are_service_accounts() {
        let principal = build(
            &issuer(JwtKind::Kubernetes),
            &claims(k8s_claims("system:serviceaccount:support:agent", "support")),
        )
        .unwrap();
        assert_eq!(principal.id, "system:serviceaccount:support:agent");
        assert_eq!(principal.tenant.as_deref(), Some("support"));
        assert_eq!(
            principal.groups,
            [
                "system:serviceaccounts",
                "system:serviceaccounts:support",
                "system:authenticated"
            ]
        );
        assert_eq!(
            principal.service_account,
            Some(ServiceAccount {
                namespace: "support".into(),
                name: "agent".into(),
                uid: Some("u-1".into()),
                pod: Some("agent-7f9".into()),
            })
        );
    }

    #[test]
    fn kubernetes_tokens_must_be_consistent() {
        for (value, reason) in [
            (
                k8s_claims("system:serviceaccount:other:agent", "support"),
                "subject_mismatch",
            ),
            (
                k8s_claims("system:serviceaccount:a:b:agent", "a:b"),
                "not_a_service_account",
            ),
            (
                json!({"sub": "system:serviceaccount:support:agent"}),
                "not_a_service_account",
            ),
            (
                json!({"sub": "x", "kubernetes.io": {"namespace": "support"}}),
                "not_a_service_account",
            ),
        ] {
            assert_eq!(
                build(&issuer(JwtKind::Kubernetes), &claims(value.clone())),
                Err(AuthError::invalid(reason)),
                "{value}"
            );
        }
    }
}
