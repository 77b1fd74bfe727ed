//! Authentication end to end against a local issuer: a small HTTP server that serves an OpenID
//! discovery document and a JWKS (rotatable, counting fetches), tokens signed with ring (RS256
//! from a committed test key, ES256 and Ed25519 generated here), and API keys.

// Helpers outside `#[test]` unwrap like the tests do.
#![allow(clippy::unwrap_used)]

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use portcullis_config::{Auth, Config, parse_yaml};
use portcullis_core::{AuthMethod, Principal};
use portcullis_proxy::{AuthError, Authenticator};
use ring::rand::SystemRandom;
use ring::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair, RSA_PKCS1_SHA256,
    RsaKeyPair, RsaPublicKeyComponents,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use serde_json::{Value, json};

fn data(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/auth")
        .join(name)
}

fn b64(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// A signing key with its `kid`.
enum Key {
    Rsa(RsaKeyPair),
    Ec(EcdsaKeyPair),
    Ed(Ed25519KeyPair),
}

struct TestKey {
    kid: String,
    key: Key,
}

impl TestKey {
    fn rsa(kid: &str) -> Self {
        let der = PrivatePkcs8KeyDer::from_pem_file(data("rsa-2048.pem")).unwrap();
        let pair = RsaKeyPair::from_pkcs8(der.secret_pkcs8_der()).unwrap();
        Self::new(kid, Key::Rsa(pair))
    }

    fn ec(kid: &str) -> Self {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
            .unwrap();
        Self::new(kid, Key::Ec(pair))
    }

    fn ed(kid: &str) -> Self {
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).unwrap();
        Self::new(
            kid,
            Key::Ed(Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap()),
        )
    }

    fn new(kid: &str, key: Key) -> Self {
        Self {
            kid: kid.into(),
            key,
        }
    }

    fn alg(&self) -> &'static str {
        match self.key {
            Key::Rsa(_) => "RS256",
            Key::Ec(_) => "ES256",
            Key::Ed(_) => "EdDSA",
        }
    }

    fn jwk(&self) -> Value {
        match &self.key {
            Key::Rsa(pair) => {
                let public = RsaPublicKeyComponents::<Vec<u8>>::from(pair.public());
                json!({"kty": "RSA", "use": "sig", "kid": self.kid, "n": b64(&public.n), "e": b64(&public.e)})
            }
            Key::Ec(pair) => {
                let point = pair.public_key().as_ref();
                json!({"kty": "EC", "crv": "P-256", "kid": self.kid, "alg": "ES256",
                    "x": b64(&point[1..33]), "y": b64(&point[33..])})
            }
            Key::Ed(pair) => json!({"kty": "OKP", "crv": "Ed25519", "kid": self.kid,
                "x": b64(pair.public_key().as_ref())}),
        }
    }

    fn sign(&self, message: &[u8]) -> Vec<u8> {
        let rng = SystemRandom::new();
        match &self.key {
            Key::Rsa(pair) => {
                let mut signature = vec![0; pair.public().modulus_len()];
                pair.sign(&RSA_PKCS1_SHA256, &rng, message, &mut signature)
                    .unwrap();
                signature
            }
            Key::Ec(pair) => pair.sign(&rng, message).unwrap().as_ref().to_vec(),
            Key::Ed(pair) => pair.sign(message).as_ref().to_vec(),
        }
    }

    /// A token with this key's alg and kid.
    fn token(&self, claims: &Value) -> String {
        self.token_with(
            &json!({"alg": self.alg(), "kid": self.kid, "typ": "JWT"}),
            claims,
        )
    }

    fn token_with(&self, header: &Value, claims: &Value) -> String {
        let input = format!(
            "{}.{}",
            b64(header.to_string().as_bytes()),
            b64(claims.to_string().as_bytes())
        );
        format!("{input}.{}", b64(&self.sign(input.as_bytes())))
    }
}

/// A local issuer: discovery document and JWKS over HTTP on an ephemeral port.
struct Issuer {
    addr: SocketAddr,
    jwks: Arc<Mutex<Value>>,
    /// The `issuer` the discovery document names; `None`: its own URL.
    discovery_issuer: Arc<Mutex<Option<String>>>,
    fetches: Arc<AtomicUsize>,
    /// `authorization` headers of JWKS requests.
    authorizations: Arc<Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Issuer {
    async fn start(keys: &[&TestKey]) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let jwks = Arc::new(Mutex::new(Value::Null));
        let discovery_issuer = Arc::new(Mutex::new(None));
        let fetches = Arc::new(AtomicUsize::new(0));
        let authorizations = Arc::new(Mutex::new(Vec::new()));
        let state = (
            jwks.clone(),
            discovery_issuer.clone(),
            fetches.clone(),
            authorizations.clone(),
        );
        let task = tokio::spawn(async move {
            // Connections live in this set, so aborting the task takes the issuer down whole.
            let mut connections = tokio::task::JoinSet::new();
            loop {
                let (stream, _) = listener.accept().await.unwrap();
                let state = state.clone();
                let service = hyper::service::service_fn(move |request: Request<Incoming>| {
                    let answer = answer(addr, &state, &request);
                    async move { Ok::<_, std::convert::Infallible>(answer) }
                });
                connections.spawn(
                    hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), service),
                );
            }
        });
        let issuer = Self {
            addr,
            jwks,
            discovery_issuer,
            fetches,
            authorizations,
            task,
        };
        issuer.publish(keys);
        issuer
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn publish(&self, keys: &[&TestKey]) {
        *self.jwks.lock().unwrap() =
            json!({"keys": keys.iter().map(|k| k.jwk()).collect::<Vec<_>>()});
    }

    fn fetches(&self) -> usize {
        self.fetches.load(Ordering::SeqCst)
    }

    fn stop(&self) {
        self.task.abort();
    }
}

type State = (
    Arc<Mutex<Value>>,
    Arc<Mutex<Option<String>>>,
    Arc<AtomicUsize>,
    Arc<Mutex<Vec<String>>>,
);

fn answer(addr: SocketAddr, state: &State, request: &Request<Incoming>) -> Response<Full<Bytes>> {
    let (jwks, discovery_issuer, fetches, authorizations) = state;
    let body = match request.uri().path() {
        "/.well-known/openid-configuration" => {
            let issuer = discovery_issuer
                .lock()
                .unwrap()
                .clone()
                .unwrap_or_else(|| format!("http://{addr}"));
            json!({"issuer": issuer, "jwks_uri": format!("http://{addr}/jwks")})
        }
        "/jwks" => {
            fetches.fetch_add(1, Ordering::SeqCst);
            if let Some(value) = request.headers().get("authorization") {
                authorizations
                    .lock()
                    .unwrap()
                    .push(value.to_str().unwrap().to_owned());
            }
            jwks.lock().unwrap().clone()
        }
        _ => {
            let mut response = Response::new(Full::new(Bytes::new()));
            *response.status_mut() = http::StatusCode::NOT_FOUND;
            return response;
        }
    };
    Response::new(Full::new(Bytes::from(body.to_string())))
}

/// The validated `auth` section of `yaml` (indented under `auth:`).
fn auth_config(yaml: &str) -> Auth {
    let text = format!(
        "upstreams:\n  - {{name: u, url: 'http://127.0.0.1:9/v1', models: [m]}}\nauth:\n{yaml}"
    );
    Config::from_raw(&parse_yaml(&text).unwrap()).unwrap().auth
}

/// An authenticator trusting `issuer` (discovery) for audience `portcullis`, plus `extra`
/// issuer keys.
fn oidc(issuer: &Issuer, extra: &str) -> Authenticator {
    Authenticator::new(&auth_config(&format!(
        "  jwt:\n    - issuer: {}\n      audiences: [portcullis]\n      algorithms: [RS256, ES256, EdDSA]\n      claims: [email]\n{extra}",
        issuer.url()
    )))
    .unwrap()
}

fn claims(iss: &str) -> Value {
    json!({"iss": iss, "sub": "alice", "aud": ["other", "portcullis"], "exp": now() + 300,
        "iat": now(), "groups": ["dev"], "email": "alice@example.com"})
}

fn bearer(token: &str) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(
        "authorization",
        HeaderValue::from_str(&format!("Bearer {token}")).unwrap(),
    );
    headers
}

async fn check(authn: &Authenticator, token: &str) -> Result<Arc<Principal>, AuthError> {
    authn.authenticate(&bearer(token)).await
}

fn invalid(reason: &'static str) -> Result<Arc<Principal>, AuthError> {
    Err(AuthError::Invalid { reason })
}

#[tokio::test]
async fn rs256_es256_and_eddsa_tokens_yield_principals() {
    let (rsa, ec, ed) = (TestKey::rsa("r1"), TestKey::ec("e1"), TestKey::ed("d1"));
    let issuer = Issuer::start(&[&rsa, &ec, &ed]).await;
    let authn = oidc(&issuer, "");
    for key in [&rsa, &ec, &ed] {
        let principal = check(&authn, &key.token(&claims(&issuer.url())))
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", key.alg()));
        assert_eq!(principal.id, "alice");
        assert_eq!(principal.auth, AuthMethod::Jwt);
        assert_eq!(principal.groups, ["dev"]);
        assert_eq!(principal.issuer.as_deref(), Some(issuer.url().as_str()));
        assert_eq!(principal.claims["email"], "\"alice@example.com\"");
        assert_eq!(principal.service_account, None);
    }
    // A token without a kid uses the only key of its type.
    let no_kid = ed.token_with(&json!({"alg": "EdDSA"}), &claims(&issuer.url()));
    assert_eq!(check(&authn, &no_kid).await.unwrap().id, "alice");
    assert_eq!(issuer.fetches(), 1, "keys are cached");
}

#[tokio::test]
async fn kubernetes_tokens_yield_the_service_account() {
    let rsa = TestKey::rsa("sa-key");
    let issuer = Issuer::start(&[&rsa]).await;
    let token_file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(token_file.path(), "projected-token-1\n").unwrap();
    let authn = Authenticator::new(&auth_config(&format!(
        "  jwt:\n    - issuer: https://kubernetes.default.svc.cluster.local\n      audiences: [portcullis]\n      kind: kubernetes\n      jwks_url: {}/jwks\n      token_file: {}\n",
        issuer.url(),
        token_file.path().display()
    )))
    .unwrap();
    let sa_claims = |sub: &str| {
        json!({"iss": "https://kubernetes.default.svc.cluster.local", "sub": sub,
            "aud": ["portcullis"], "exp": now() + 600, "iat": now(), "nbf": now(),
            "kubernetes.io": {"namespace": "support",
                "serviceaccount": {"name": "agent", "uid": "3f1c"},
                "pod": {"name": "agent-5d8f", "uid": "9a0b"}}})
    };
    let principal = check(
        &authn,
        &rsa.token(&sa_claims("system:serviceaccount:support:agent")),
    )
    .await
    .unwrap();
    assert_eq!(principal.id, "system:serviceaccount:support:agent");
    assert_eq!(principal.tenant.as_deref(), Some("support"));
    assert_eq!(principal.groups[1], "system:serviceaccounts:support");
    let account = principal.service_account.as_ref().unwrap();
    assert_eq!(
        (account.namespace.as_str(), account.name.as_str()),
        ("support", "agent")
    );
    assert_eq!(account.uid.as_deref(), Some("3f1c"));
    assert_eq!(account.pod.as_deref(), Some("agent-5d8f"));
    assert_eq!(
        check(
            &authn,
            &rsa.token(&sa_claims("system:serviceaccount:support:admin"))
        )
        .await,
        invalid("subject_mismatch")
    );
    assert_eq!(
        *issuer.authorizations.lock().unwrap(),
        ["Bearer projected-token-1"],
        "the token file is sent to the JWKS host"
    );
}

#[tokio::test]
async fn time_claims_are_checked_with_leeway() {
    let ec = TestKey::ec("e1");
    let issuer = Issuer::start(&[&ec]).await;
    let authn = oidc(&issuer, "");
    let with = |changes: Value| {
        let mut claims = claims(&issuer.url());
        for (name, value) in changes.as_object().unwrap() {
            if value.is_null() {
                claims.as_object_mut().unwrap().remove(name);
            } else {
                claims[name] = value.clone();
            }
        }
        ec.token(&claims)
    };
    let cases = [
        (json!({"exp": now() - 120}), invalid("expired")),
        (json!({"nbf": now() + 120}), invalid("not_yet_valid")),
        (json!({"iat": now() + 120}), invalid("issued_in_future")),
        (json!({"exp": null}), invalid("missing_exp")),
        (json!({"exp": "tomorrow"}), invalid("malformed_time_claim")),
    ];
    for (changes, expected) in cases {
        assert_eq!(
            check(&authn, &with(changes.clone())).await,
            expected,
            "{changes}"
        );
    }
    // Within the default 60 s leeway.
    for changes in [
        json!({"exp": now() - 30}),
        json!({"nbf": now() + 30, "iat": now() + 30}),
    ] {
        assert!(
            check(&authn, &with(changes.clone())).await.is_ok(),
            "{changes}"
        );
    }
    let strict = oidc(&issuer, "      leeway_ms: 0\n");
    assert_eq!(
        check(&strict, &with(json!({"exp": now() - 30}))).await,
        invalid("expired")
    );
}

#[tokio::test]
async fn audience_and_issuer_must_match() {
    let (ec, other_key) = (TestKey::ec("e1"), TestKey::ec("e2"));
    let issuer = Issuer::start(&[&ec]).await;
    let other = Issuer::start(&[&other_key]).await;
    let authn = Authenticator::new(&auth_config(&format!(
        "  jwt:\n    - {{issuer: '{}', audiences: [portcullis]}}\n    - {{issuer: '{}', audiences: [portcullis]}}\n",
        issuer.url(),
        other.url()
    )))
    .unwrap();
    let mut wrong_aud = claims(&issuer.url());
    wrong_aud["aud"] = json!("someone-else");
    assert_eq!(
        check(&authn, &ec.token(&wrong_aud)).await,
        invalid("wrong_audience")
    );
    // Signed by the first issuer's key but claiming the second issuer: checked with its keys.
    assert_eq!(
        check(&authn, &ec.token(&claims(&other.url()))).await,
        invalid("unknown_kid")
    );
    let forged = other_key.token_with(
        &json!({"alg": "ES256", "kid": "e1"}),
        &claims(&issuer.url()),
    );
    assert_eq!(check(&authn, &forged).await, invalid("bad_signature"));
    let unknown = format!("{}/", issuer.url());
    assert_eq!(
        check(&authn, &ec.token(&claims(&unknown))).await,
        invalid("unknown_issuer")
    );
    let mut no_iss = claims(&issuer.url());
    no_iss.as_object_mut().unwrap().remove("iss");
    assert_eq!(
        check(&authn, &ec.token(&no_iss)).await,
        invalid("missing_iss")
    );
}

#[tokio::test]
async fn alg_none_hmac_confusion_and_unlisted_algs_are_refused() {
    let (rsa, ec) = (TestKey::rsa("r1"), TestKey::ec("e1"));
    let issuer = Issuer::start(&[&rsa, &ec]).await;
    let authn = oidc(&issuer, "");
    let payload = b64(claims(&issuer.url()).to_string().as_bytes());
    for header in [json!({"alg": "none"}), json!({"alg": "none", "kid": "r1"})] {
        let unsigned = format!("{}.{payload}.", b64(header.to_string().as_bytes()));
        assert_eq!(check(&authn, &unsigned).await, invalid("alg_none"));
    }
    // HS256 keyed with the RSA public key as published: the classic algorithm confusion.
    let header = b64(json!({"alg": "HS256", "kid": "r1"}).to_string().as_bytes());
    let input = format!("{header}.{payload}");
    let public_jwk = rsa.jwk().to_string();
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, public_jwk.as_bytes());
    let tag = ring::hmac::sign(&key, input.as_bytes());
    let confused = format!("{input}.{}", b64(tag.as_ref()));
    assert_eq!(check(&authn, &confused).await, invalid("alg_not_allowed"));
    // PS256 is supported but not in this issuer's list.
    let header = json!({"alg": "PS256", "kid": "r1"});
    assert_eq!(
        check(&authn, &rsa.token_with(&header, &claims(&issuer.url()))).await,
        invalid("alg_not_allowed")
    );
    // An ES256 token naming the RSA key's kid: the key does not fit the alg.
    let header = json!({"alg": "ES256", "kid": "r1"});
    assert_eq!(
        check(&authn, &ec.token_with(&header, &claims(&issuer.url()))).await,
        invalid("key_alg_mismatch")
    );
    let es_only = Authenticator::new(&auth_config(&format!(
        "  jwt: [{{issuer: '{}', audiences: [portcullis], algorithms: [ES256]}}]\n",
        issuer.url()
    )))
    .unwrap();
    assert_eq!(
        check(&es_only, &rsa.token(&claims(&issuer.url()))).await,
        invalid("alg_not_allowed")
    );
    assert!(
        check(&es_only, &ec.token(&claims(&issuer.url())))
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn tampered_oversized_and_malformed_tokens_are_refused() {
    let ec = TestKey::ec("e1");
    let issuer = Issuer::start(&[&ec]).await;
    let authn = oidc(&issuer, "");
    let token = ec.token(&claims(&issuer.url()));
    let parts: Vec<&str> = token.split('.').collect();
    let mut escalated = claims(&issuer.url());
    escalated["sub"] = json!("admin");
    let tampered_payload = format!(
        "{}.{}.{}",
        parts[0],
        b64(escalated.to_string().as_bytes()),
        parts[2]
    );
    assert_eq!(
        check(&authn, &tampered_payload).await,
        invalid("bad_signature")
    );
    let mut signature = parts[2].as_bytes().to_vec();
    signature[10] = if signature[10] == b'A' { b'B' } else { b'A' };
    let tampered_signature = format!(
        "{}.{}.{}",
        parts[0],
        parts[1],
        String::from_utf8(signature).unwrap()
    );
    assert_eq!(
        check(&authn, &tampered_signature).await,
        invalid("bad_signature")
    );
    let mut huge = claims(&issuer.url());
    huge["padding"] = json!("x".repeat(16 * 1024));
    assert_eq!(
        check(&authn, &ec.token(&huge)).await,
        invalid("token_too_large")
    );
    for malformed in [
        format!("{}.{}.{}", parts[0], "Z", parts[2]), // impossible base64 length
        format!(
            "{}.{}Zh.{}",
            parts[0],
            &parts[1][..parts[1].len() - 2],
            parts[2]
        ),
        format!("{}.{}.{}", b64(b"not json"), parts[1], parts[2]),
    ] {
        assert_eq!(
            check(&authn, &malformed).await,
            invalid("malformed_token"),
            "{malformed}"
        );
    }
    // Not JWT-shaped: checked as an API key, of which there are none.
    let not_base64 = format!("{}.{}.{}$", parts[0], parts[1], parts[2]);
    assert_eq!(check(&authn, &not_base64).await, invalid("unknown_api_key"));
    assert_eq!(issuer.fetches(), 1);
}

#[tokio::test]
async fn an_unknown_kid_refetches_and_finds_a_rotated_key() {
    let (old, new) = (TestKey::ec("old"), TestKey::ed("new"));
    let issuer = Issuer::start(&[&old]).await;
    let authn = oidc(&issuer, "      jwks_min_refresh_ms: 1\n");
    assert!(
        check(&authn, &old.token(&claims(&issuer.url())))
            .await
            .is_ok()
    );
    issuer.publish(&[&new]);
    tokio::time::sleep(Duration::from_millis(5)).await;
    assert!(
        check(&authn, &new.token(&claims(&issuer.url())))
            .await
            .is_ok()
    );
    assert_eq!(issuer.fetches(), 2);
    tokio::time::sleep(Duration::from_millis(5)).await;
    assert_eq!(
        check(&authn, &old.token(&claims(&issuer.url()))).await,
        invalid("unknown_kid"),
        "a key the issuer dropped stops working"
    );
}

#[tokio::test]
async fn random_kids_do_not_hammer_the_issuer() {
    let ec = TestKey::ec("e1");
    let issuer = Issuer::start(&[&ec]).await;
    let authn = Arc::new(oidc(&issuer, ""));
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..200 {
        let header = json!({"alg": "ES256", "kid": format!("random-{i}")});
        let token = ec.token_with(&header, &claims(&issuer.url()));
        let authn = authn.clone();
        tasks.spawn(async move { check(&authn, &token).await });
    }
    while let Some(result) = tasks.join_next().await {
        assert_eq!(result.unwrap(), invalid("unknown_kid"));
    }
    for i in 0..200 {
        let header = json!({"alg": "ES256", "kid": format!("again-{i}")});
        let token = ec.token_with(&header, &claims(&issuer.url()));
        assert_eq!(check(&authn, &token).await, invalid("unknown_kid"));
    }
    assert!(issuer.fetches() <= 2, "{} fetches", issuer.fetches());
    assert!(
        check(&authn, &ec.token(&claims(&issuer.url())))
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn concurrent_first_requests_share_one_fetch() {
    let ec = TestKey::ec("e1");
    let issuer = Issuer::start(&[&ec]).await;
    let authn = Arc::new(oidc(&issuer, ""));
    let token = ec.token(&claims(&issuer.url()));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..50 {
        let (authn, token) = (authn.clone(), token.clone());
        tasks.spawn(async move { check(&authn, &token).await });
    }
    while let Some(result) = tasks.join_next().await {
        assert!(result.unwrap().is_ok());
    }
    assert_eq!(issuer.fetches(), 1);
}

#[tokio::test]
async fn cached_keys_outlive_an_issuer_outage() {
    let ec = TestKey::ec("e1");
    let issuer = Issuer::start(&[&ec]).await;
    let authn = oidc(
        &issuer,
        "      jwks_refresh_ms: 1\n      jwks_min_refresh_ms: 1\n",
    );
    let token = ec.token(&claims(&issuer.url()));
    assert!(check(&authn, &token).await.is_ok());
    issuer.stop();
    tokio::time::sleep(Duration::from_millis(20)).await;
    for _ in 0..3 {
        assert!(
            check(&authn, &token).await.is_ok(),
            "stale keys still verify"
        );
    }
}

#[tokio::test]
async fn an_unreachable_issuer_without_cached_keys_is_unavailable() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let ec = TestKey::ec("e1");
    let iss = format!("http://127.0.0.1:{port}");
    let authn = Authenticator::new(&auth_config(&format!(
        "  jwt: [{{issuer: '{iss}', audiences: [portcullis], fetch_timeout_ms: 2000}}]\n"
    )))
    .unwrap();
    let token = ec.token(&claims(&iss));
    assert_eq!(check(&authn, &token).await, Err(AuthError::Unavailable));
    // Not retried at once: the next request fails fast.
    assert_eq!(check(&authn, &token).await, Err(AuthError::Unavailable));
}

#[tokio::test]
async fn a_discovery_document_naming_another_issuer_is_refused() {
    let ec = TestKey::ec("e1");
    let issuer = Issuer::start(&[&ec]).await;
    *issuer.discovery_issuer.lock().unwrap() = Some("https://evil.example".into());
    let authn = oidc(&issuer, "");
    assert_eq!(
        check(&authn, &ec.token(&claims(&issuer.url()))).await,
        Err(AuthError::Unavailable)
    );
    assert_eq!(issuer.fetches(), 0, "the JWKS it names is not fetched");
}

#[tokio::test]
async fn api_keys_and_anonymous_callers() {
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("key");
    std::fs::write(&key_file, "file-key-0123456789abcdef\n").unwrap();
    // sha256("test-key-0123456789abcdef")
    let digest = "0813ba6d30f7bbf925ab2a50f5a407feaa885309426af0dd201e046cf5f0c3be";
    let yaml = |anonymous: bool| {
        format!(
            "  anonymous: {anonymous}\n  api_keys:\n    - {{name: team-a-bot, key_file: '{}', tenant: team-a, groups: [bots]}}\n    - {{name: hashed, sha256: {digest}}}\n",
            key_file.display()
        )
    };
    let open = Authenticator::new(&auth_config(&yaml(true))).unwrap();
    let mut headers = HeaderMap::new();
    headers.insert(
        "x-api-key",
        HeaderValue::from_static("file-key-0123456789abcdef"),
    );
    let bot = open.authenticate(&headers).await.unwrap();
    assert_eq!(
        (bot.id.as_str(), bot.auth),
        ("team-a-bot", AuthMethod::ApiKey)
    );
    assert_eq!(bot.tenant.as_deref(), Some("team-a"));
    assert_eq!(
        check(&open, "file-key-0123456789abcdeX").await,
        invalid("unknown_api_key")
    );
    assert!(open.anonymous_allowed());
    let anonymous = open.authenticate(&HeaderMap::new()).await.unwrap();
    assert_eq!(
        (anonymous.id.as_str(), anonymous.auth),
        ("anonymous", AuthMethod::Anonymous)
    );
    let closed = Authenticator::new(&auth_config(&yaml(false))).unwrap();
    assert!(!closed.anonymous_allowed());
    assert_eq!(
        closed.authenticate(&HeaderMap::new()).await,
        Err(AuthError::Missing)
    );
    assert_eq!(
        check(&closed, "file-key-0123456789abcdef")
            .await
            .unwrap()
            .id,
        "team-a-bot"
    );
    assert_eq!(
        check(&closed, "test-key-0123456789abcdef")
            .await
            .unwrap()
            .id,
        "hashed"
    );
}

/// An HTTPS JWKS endpoint with a certificate from the test CA: one request per connection,
/// served on a thread with rustls.
fn tls_jwks_server(jwks: String) -> SocketAddr {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(data("server.pem"))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let key = PrivateKeyDer::from_pem_file(data("server.key")).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .unwrap();
    let config = Arc::new(config);
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
            let connection = rustls::ServerConnection::new(config.clone()).unwrap();
            let mut tls = rustls::StreamOwned::new(connection, stream);
            let mut request = Vec::new();
            let mut chunk = [0u8; 1024];
            while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                match tls.read(&mut chunk) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => request.extend_from_slice(&chunk[..n]),
                }
            }
            if request.ends_with(b"\r\n\r\n") {
                let _ = write!(
                    tls,
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{jwks}",
                    jwks.len()
                );
                tls.conn.send_close_notify();
                let _ = tls.flush();
            }
        }
    });
    addr
}

#[tokio::test]
async fn https_jwks_are_trusted_through_ca_file() {
    let ec = TestKey::ec("e1");
    let addr = tls_jwks_server(json!({"keys": [ec.jwk()]}).to_string());
    let iss = "https://issuer.test";
    let yaml = |ca: &str| {
        format!(
            "  jwt: [{{issuer: '{iss}', audiences: [portcullis], jwks_url: 'https://127.0.0.1:{}/jwks'{ca}}}]\n",
            addr.port()
        )
    };
    let trusted = Authenticator::new(&auth_config(&yaml(&format!(
        ", ca_file: '{}'",
        data("ca.pem").display()
    ))))
    .unwrap();
    assert_eq!(
        check(&trusted, &ec.token(&claims(iss))).await.unwrap().id,
        "alice"
    );
    let untrusted = Authenticator::new(&auth_config(&yaml(""))).unwrap();
    assert_eq!(
        check(&untrusted, &ec.token(&claims(iss))).await,
        Err(AuthError::Unavailable)
    );
}
