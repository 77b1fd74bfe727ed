use super::*;

fn found(text: &str) -> Vec<(SecretKind, &str, f32)> {
    SecretsDetector::new()
        .scan_text(text)
        .into_iter()
        .map(|m| (m.kind, &text[m.range], m.score))
        .collect()
}

fn kinds(text: &str, min: f32) -> Vec<(SecretKind, &str)> {
    found(text)
        .into_iter()
        .filter(|f| f.2 >= min)
        .map(|f| (f.0, f.1))
        .collect()
}

/// A deterministic random-looking token, so tests hold no real-looking key material.
fn rand_token(len: usize, seed: u64, alphabet: &[u8]) -> String {
    let mut x = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            char::from(alphabet[(x % alphabet.len() as u64) as usize])
        })
        .collect()
}

const ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
const UPPER32: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

#[test]
fn anchors_build() {
    let d = SecretsDetector::new();
    assert!(d.scan_text("nothing here at all").is_empty());
}

#[test]
fn provider_tokens() {
    let cases = [
        (
            format!("AKIA{}", rand_token(16, 1, UPPER32)),
            SecretKind::AwsAccessKey,
        ),
        (
            format!("ghp_{}", rand_token(36, 2, ALNUM)),
            SecretKind::GithubToken,
        ),
        (
            format!(
                "github_pat_{}_{}",
                rand_token(22, 3, ALNUM),
                rand_token(59, 4, ALNUM)
            ),
            SecretKind::GithubToken,
        ),
        (
            format!("glpat-{}", rand_token(20, 5, ALNUM)),
            SecretKind::GitlabToken,
        ),
        (
            format!("xoxb-1234567890-{}", rand_token(24, 6, ALNUM)),
            SecretKind::SlackToken,
        ),
        (
            format!("sk_live_{}", rand_token(24, 7, ALNUM)),
            SecretKind::StripeKey,
        ),
        (
            format!("sk-proj-{}", rand_token(48, 8, ALNUM)),
            SecretKind::OpenaiKey,
        ),
        (
            format!("sk-ant-api03-{}", rand_token(80, 9, ALNUM)),
            SecretKind::AnthropicKey,
        ),
        (
            format!("hf_{}", rand_token(34, 10, ALNUM)),
            SecretKind::HuggingfaceToken,
        ),
        (
            format!(
                "sk-{}T3BlbkFJ{}",
                rand_token(20, 11, ALNUM),
                rand_token(20, 12, ALNUM)
            ),
            SecretKind::OpenaiKey,
        ),
    ];
    for (token, kind) in &cases {
        let text = format!("use {token} please");
        assert_eq!(kinds(&text, 0.85), vec![(*kind, token.as_str())], "{token}");
    }
}

#[test]
fn prefixes_inside_words_or_too_short_do_not_match() {
    assert!(kinds("task-1234567890abcdefghijklmnopqrstuvwxyz", 0.5).is_empty());
    assert!(kinds("the ghp_short token and AKIA alone", 0.5).is_empty());
    assert!(kinds("AKIAIOSFODNN7EXAMPLE", 0.5).is_empty());
    assert!(kinds("AKIATESTTESTTESTTEST", 0.5).is_empty());
}

#[test]
fn jwt_needs_json_header() {
    let header = crate::normalise::tests_support::b64url(br#"{"alg":"HS256","typ":"JWT"}"#);
    let payload = crate::normalise::tests_support::b64url(br#"{"sub":"1234567890"}"#);
    let token = format!("{header}.{payload}.{}", rand_token(43, 13, ALNUM));
    let text = format!("Authorization: {token}");
    assert_eq!(kinds(&text, 0.85), vec![(SecretKind::Jwt, token.as_str())]);
    let not_json = crate::normalise::tests_support::b64url(b"{not json at all here}");
    assert!(kinds(&format!("{not_json}.eyJhIjoxfQ.sig"), 0.6).is_empty());
}

#[test]
fn pem_private_keys() {
    let body = rand_token(64, 14, ALNUM);
    let text = format!(
        "key:\n-----BEGIN RSA PRIVATE KEY-----\n{body}\n-----END RSA PRIVATE KEY-----\nrest"
    );
    let f = kinds(&text, 0.9);
    assert_eq!(f.len(), 1);
    assert!(f[0].1.starts_with("-----BEGIN RSA") && f[0].1.ends_with("KEY-----"));
    assert!(
        kinds(
            "-----BEGIN PUBLIC KEY-----\nabc\n-----END PUBLIC KEY-----",
            0.1
        )
        .is_empty()
    );
    assert_eq!(kinds("-----BEGIN OPENSSH PRIVATE KEY-----", 0.8).len(), 1);
    // Without a footer the finding covers the base64 lines that follow, and stops there.
    let text = format!("-----BEGIN EC PRIVATE KEY-----\n{body}\n{body}\nThanks!");
    let f = kinds(&text, 0.8);
    assert_eq!(f[0].1.len(), text.len() - "\nThanks!".len());
}

#[test]
fn database_urls() {
    assert_eq!(
        kinds(
            "DATABASE_URL=postgres://app:s3cr3t-Pa55@db.internal:5432/app",
            0.85
        ),
        vec![(
            SecretKind::DatabaseUrl,
            "postgres://app:s3cr3t-Pa55@db.internal:5432"
        )]
    );
    assert_eq!(
        kinds("mongodb+srv://u:hunter22@cluster0.example.net/x", 0.85)[0].0,
        SecretKind::DatabaseUrl
    );
    assert!(kinds("postgres://user:<password>@localhost/db", 0.5).is_empty());
    assert!(
        kinds(
            "see https://example.com/a:b@c and postgres://localhost/db",
            0.5
        )
        .is_empty()
    );
}

#[test]
fn keyword_assignments() {
    for text in [
        "password = 'Tr0ub4dor&3'",
        "DB_PASSWORD=hunter2x",
        "\"api_key\": \"a8f5f167f44f4964e6c998dee827110c\"",
        "client_secret: 9b2f0c1e77d34a5f",
        "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYzzzzKEY123",
    ] {
        assert!(!kinds(text, 0.6).is_empty(), "{text}: {:?}", found(text));
    }
    for text in [
        "password = request.form['password']",
        "password: str",
        "token = get_token()",
        "secret = os.environ[\"SECRET\"]",
        "password = ${DB_PASSWORD}",
        "password: <your password here>",
        "password = 'changeme'",
        "password=********",
        "The password is secret.",
        "Reset your password: click the link",
        "token_url = https://auth.example.com/token",
        "api_key_id = 12345678",
        "a monkey = 8f2a9c3b7d1e4f6a8b0c2d4e",
    ] {
        assert!(kinds(text, 0.5).is_empty(), "{text}: {:?}", found(text));
    }
}

#[test]
fn azure_and_gcp() {
    let key = format!("{}==", rand_token(86, 15, ALNUM));
    let conn = format!(
        "DefaultEndpointsProtocol=https;AccountName=acct;AccountKey={key};EndpointSuffix=core.windows.net"
    );
    assert_eq!(
        kinds(&conn, 0.9),
        vec![(SecretKind::AzureStorageKey, key.as_str())]
    );
    let sa = r#"{"type": "service_account", "project_id": "p", "private_key_id": "abc", "private_key": "-----BEGIN PRIVATE KEY-----\nMIIEv...\n-----END PRIVATE KEY-----\n"}"#;
    let f = kinds(sa, 0.9);
    assert!(
        f.iter().any(|f| f.0 == SecretKind::GcpServiceAccount),
        "{f:?}"
    );
}

#[test]
fn high_entropy_tokens_score_low_unless_assigned() {
    let token = rand_token(
        40,
        16,
        b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/",
    );
    let text = format!("blob {token} end");
    let bare = found(&text);
    assert!(bare.iter().all(|f| f.2 < 0.5), "{bare:?}");
    let text = format!("mimi={token}");
    let assigned = found(&text);
    assert!(assigned.iter().any(|f| f.2 >= 0.5), "{assigned:?}");
    assert!(
        found("commit 2b00042f7481c7b056c4b410d28f33cf6a2b9c1d here")
            .iter()
            .all(|f| f.2 < 0.5)
    );
    assert!(found("id 203db13e-70c7-462b-9a3d-bf32640cb0be").is_empty());
}

#[test]
fn authorization_headers() {
    let token = rand_token(40, 17, ALNUM);
    let text = format!("Authorization: Bearer {token}");
    assert_eq!(
        kinds(&text, 0.8),
        vec![(SecretKind::GenericAssignment, token.as_str())]
    );
    let basic = crate::normalise::tests_support::b64_encode(b"admin:S3cure!pw");
    let text = format!("Authorization: Basic {basic}");
    assert_eq!(
        kinds(&text, 0.8),
        vec![(SecretKind::GenericAssignment, basic.as_str())]
    );
    assert!(kinds("Authorization: Bearer <token>", 0.5).is_empty());
}

#[test]
fn names_are_split_into_parts() {
    assert!(kinds("secretary = 'Jane Doe'", 0.5).is_empty());
    assert!(kinds("max_tokens: 4096", 0.5).is_empty());
    assert!(!kinds("authKey = 'c9F3kQ2mZ8xL1vB7nT4w'", 0.5).is_empty());
    assert!(!kinds("dbPassword: Tr0ub4dor", 0.5).is_empty());
}
