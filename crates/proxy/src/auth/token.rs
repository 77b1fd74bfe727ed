//! A compact JWS (`header.payload.signature`), parsed within bounds, and the checks of its
//! registered claims (`iss`, `aud`, `exp`, `nbf`, `iat`). Nothing here is trusted until the
//! signature is verified (`jwk.rs`); the issuer is *selected* by the unverified `iss`, then the
//! token is verified with that issuer's keys.

use std::time::{SystemTime, UNIX_EPOCH};

use portcullis_config::{JwtAlgorithm, JwtIssuer};
use serde::Deserialize;
use serde_json::{Map, Value};

use super::AuthError;

/// Largest token accepted, in bytes. Real tokens (Kubernetes, common IdPs with groups) are 1
/// to 4 KiB; raising this lets a client make the gateway decode and parse more per request.
pub(super) const MAX_TOKEN_BYTES: usize = 16 * 1024;

/// The JOSE header fields read.
#[derive(Debug, Deserialize)]
struct Header {
    alg: String,
    #[serde(default)]
    kid: Option<String>,
    /// Extensions the verifier must understand; none are, so a token naming any is refused.
    #[serde(default)]
    crit: Option<Value>,
}

/// A parsed, not yet verified, token.
#[derive(Debug)]
pub(super) struct Token<'a> {
    header: Header,
    claims: Map<String, Value>,
    /// `header.payload` as sent: what the signature covers.
    signing_input: &'a str,
    signature: Vec<u8>,
}

/// Whether `text` has the shape of a compact JWS: three base64url parts, the first two
/// non-empty. (An empty signature is let through so that an unsigned `alg: none` token is
/// refused as one, not looked up as an API key.)
pub(super) fn looks_like_jwt(text: &str) -> bool {
    let parts: Vec<&str> = text.splitn(4, '.').collect();
    let base64url = |part: &str| part.bytes().all(|b| base64url_value(b).is_some());
    matches!(parts.as_slice(), [header, payload, signature]
        if !header.is_empty() && !payload.is_empty()
            && base64url(header) && base64url(payload) && base64url(signature))
}

impl<'a> Token<'a> {
    /// Splits and decodes `text`; the claims must be a JSON object.
    pub(super) fn parse(text: &'a str) -> Result<Self, AuthError> {
        if text.len() > MAX_TOKEN_BYTES {
            return Err(AuthError::invalid("token_too_large"));
        }
        let malformed = || AuthError::invalid("malformed_token");
        let (signing_input, signature) = text.rsplit_once('.').ok_or_else(malformed)?;
        let (header, payload) = signing_input.split_once('.').ok_or_else(malformed)?;
        let header: Header =
            serde_json::from_slice(&base64url_decode(header).ok_or_else(malformed)?)
                .map_err(|_| malformed())?;
        let claims: Map<String, Value> =
            serde_json::from_slice(&base64url_decode(payload).ok_or_else(malformed)?)
                .map_err(|_| malformed())?;
        let signature = base64url_decode(signature).ok_or_else(malformed)?;
        if header.crit.is_some() {
            return Err(AuthError::invalid("unsupported_crit"));
        }
        Ok(Self {
            header,
            claims,
            signing_input,
            signature,
        })
    }

    /// The unverified `iss`, to choose the issuer whose keys verify the token.
    pub(super) fn issuer(&self) -> Result<&str, AuthError> {
        self.claims
            .get("iss")
            .and_then(Value::as_str)
            .ok_or(AuthError::invalid("missing_iss"))
    }

    /// The token's `alg`, if the issuer accepts it. `none` and HMAC are never among them.
    pub(super) fn algorithm(&self, allowed: &[JwtAlgorithm]) -> Result<JwtAlgorithm, AuthError> {
        if self.header.alg.eq_ignore_ascii_case("none") {
            return Err(AuthError::invalid("alg_none"));
        }
        JwtAlgorithm::parse(&self.header.alg)
            .filter(|alg| allowed.contains(alg))
            .ok_or(AuthError::invalid("alg_not_allowed"))
    }

    /// The header's `kid`.
    pub(super) fn kid(&self) -> Option<&str> {
        self.header.kid.as_deref()
    }

    /// The bytes the signature covers.
    pub(super) fn signing_input(&self) -> &[u8] {
        self.signing_input.as_bytes()
    }

    /// The signature bytes.
    pub(super) fn signature(&self) -> &[u8] {
        &self.signature
    }

    /// The claims.
    pub(super) fn claims(&self) -> &Map<String, Value> {
        &self.claims
    }

    /// Checks `iss`, `aud`, `exp` (required), `nbf` and `iat` at time `now` (seconds since the
    /// epoch), allowing the issuer's leeway for clock skew.
    pub(super) fn check_claims(&self, issuer: &JwtIssuer, now: f64) -> Result<(), AuthError> {
        if self.issuer()? != issuer.issuer {
            return Err(AuthError::invalid("wrong_issuer"));
        }
        if !audience_matches(self.claims.get("aud"), &issuer.audiences) {
            return Err(AuthError::invalid("wrong_audience"));
        }
        let leeway = issuer.leeway.as_secs_f64();
        let exp = self.time("exp")?.ok_or(AuthError::invalid("missing_exp"))?;
        if now >= exp + leeway {
            return Err(AuthError::invalid("expired"));
        }
        if self.time("nbf")?.is_some_and(|nbf| nbf > now + leeway) {
            return Err(AuthError::invalid("not_yet_valid"));
        }
        if self.time("iat")?.is_some_and(|iat| iat > now + leeway) {
            return Err(AuthError::invalid("issued_in_future"));
        }
        Ok(())
    }

    /// A NumericDate claim: absent, or a finite number.
    fn time(&self, claim: &str) -> Result<Option<f64>, AuthError> {
        match self.claims.get(claim) {
            None => Ok(None),
            Some(value) => value
                .as_f64()
                .filter(|t| t.is_finite())
                .map(Some)
                .ok_or(AuthError::invalid("malformed_time_claim")),
        }
    }
}

/// Whether `aud` (a string or an array of strings) names one of `accepted`.
fn audience_matches(aud: Option<&Value>, accepted: &[String]) -> bool {
    match aud {
        Some(Value::String(one)) => accepted.contains(one),
        Some(Value::Array(many)) => many
            .iter()
            .filter_map(Value::as_str)
            .any(|aud| accepted.iter().any(|a| a == aud)),
        _ => false,
    }
}

/// Now, in seconds since the Unix epoch.
pub(super) fn now_seconds() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

fn base64url_value(byte: u8) -> Option<u8> {
    match byte {
        b'A'..=b'Z' => Some(byte - b'A'),
        b'a'..=b'z' => Some(byte - b'a' + 26),
        b'0'..=b'9' => Some(byte - b'0' + 52),
        b'-' => Some(62),
        b'_' => Some(63),
        _ => None,
    }
}

/// Decodes unpadded base64url (RFC 7515 §2), strictly: no padding, no other alphabet, and
/// the unused bits of the last character must be zero, so every value has one encoding.
pub(super) fn base64url_decode(text: &str) -> Option<Vec<u8>> {
    let bytes = text.as_bytes();
    if bytes.len() % 4 == 1 {
        return None;
    }
    let mut out = Vec::with_capacity(bytes.len() * 3 / 4);
    let mut buffer: u32 = 0;
    let mut bits = 0;
    for &byte in bytes {
        buffer = (buffer << 6) | u32::from(base64url_value(byte)?);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((buffer >> bits) as u8);
            buffer &= (1 << bits) - 1;
        }
    }
    (buffer == 0).then_some(out)
}

/// Encodes unpadded base64url (tests build tokens and keys with it).
#[cfg(test)]
pub(super) fn base64url_encode(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    use super::base64url_encode as encode;

    fn issuer() -> JwtIssuer {
        JwtIssuer {
            audiences: vec!["portcullis".into(), "other".into()],
            algorithms: vec![JwtAlgorithm::Rs256, JwtAlgorithm::Es256],
            ..super::super::test_issuer()
        }
    }

    fn token(header: &str, claims: &str) -> String {
        format!(
            "{}.{}.{}",
            encode(header.as_bytes()),
            encode(claims.as_bytes()),
            encode(b"sig")
        )
    }

    fn check(claims: &str, now: f64) -> Result<(), AuthError> {
        let text = token(r#"{"alg":"RS256"}"#, claims);
        Token::parse(&text)?.check_claims(&issuer(), now)
    }

    #[test]
    fn base64url_is_strict() {
        for data in [&b""[..], b"f", b"fo", b"foo", b"foob", b"\xff\xfe\x00"] {
            assert_eq!(base64url_decode(&encode(data)).as_deref(), Some(data));
        }
        assert_eq!(base64url_decode("Zm9v"), Some(b"foo".to_vec()));
        assert!(base64url_decode("Zg==").is_none(), "padding");
        assert!(base64url_decode("Zh").is_none(), "non-zero unused bits");
        assert!(base64url_decode("Z").is_none(), "impossible length");
        assert!(base64url_decode("a+b/").is_none(), "standard alphabet");
    }

    #[test]
    fn jwt_shape() {
        assert!(looks_like_jwt("eyJh.eyJi.c2ln"));
        assert!(!looks_like_jwt("eyJh.eyJi"));
        assert!(!looks_like_jwt("eyJh..c2ln"));
        assert!(looks_like_jwt("eyJh.eyJi."));
        assert!(!looks_like_jwt("a.b.c.d"));
        assert!(!looks_like_jwt("sk-proj.abc.d=f"));
    }

    #[test]
    fn parse_errors() {
        let too_large = format!("{}.e30.c2ln", "e".repeat(MAX_TOKEN_BYTES));
        let crit = token(r#"{"alg":"RS256","crit":["exp"]}"#, "{}");
        for (text, reason) in [
            (too_large.as_str(), "token_too_large"),
            ("e30.e30", "malformed_token"),
            ("eyJhbGciOiJSUzI1NiJ9.W10.c2ln", "malformed_token"), // claims are an array
            ("e30.e30.c2ln", "malformed_token"),                  // no alg
            ("eyJhbGciOiJSUzI1NiJ9.e3.c2ln", "malformed_token"),
            ("eyJhbGciOiJSUzI1NiJ9.e30.c2l=", "malformed_token"),
            (crit.as_str(), "unsupported_crit"),
        ] {
            assert_eq!(
                Token::parse(text).err(),
                Some(AuthError::invalid(reason)),
                "{text}"
            );
        }
    }

    #[test]
    fn algorithms_come_from_the_allowlist() {
        let allowed = [JwtAlgorithm::Rs256];
        for (alg, expected) in [
            ("RS256", Ok(JwtAlgorithm::Rs256)),
            ("none", Err(AuthError::invalid("alg_none"))),
            ("NONE", Err(AuthError::invalid("alg_none"))),
            ("HS256", Err(AuthError::invalid("alg_not_allowed"))),
            ("ES256", Err(AuthError::invalid("alg_not_allowed"))),
            ("rs256", Err(AuthError::invalid("alg_not_allowed"))),
        ] {
            let text = token(&format!(r#"{{"alg":"{alg}"}}"#), "{}");
            assert_eq!(Token::parse(&text).unwrap().algorithm(&allowed), expected);
        }
    }

    #[test]
    fn claims_are_checked_with_leeway() {
        let now = 1_700_000_000.0;
        let iss = r#""iss":"https://idp.example""#;
        let ok = |extra: &str| check(&format!(r#"{{{iss},"aud":"portcullis",{extra}}}"#), now);
        assert_eq!(ok(r#""exp":1700000100"#), Ok(()));
        assert_eq!(ok(r#""exp":1699999970"#), Ok(()), "within leeway");
        assert_eq!(
            ok(r#""exp":1699999940"#),
            Err(AuthError::invalid("expired"))
        );
        assert_eq!(
            ok(r#""exp":1700000100,"nbf":1700000050,"iat":1700000050"#),
            Ok(())
        );
        assert_eq!(
            ok(r#""exp":1700000900,"nbf":1700000100"#),
            Err(AuthError::invalid("not_yet_valid"))
        );
        assert_eq!(
            ok(r#""exp":1700000900,"iat":1700000100"#),
            Err(AuthError::invalid("issued_in_future"))
        );
        assert_eq!(ok(r#""nbf":1"#), Err(AuthError::invalid("missing_exp")));
        assert_eq!(
            ok(r#""exp":"soon""#),
            Err(AuthError::invalid("malformed_time_claim"))
        );
    }

    #[test]
    fn audience_and_issuer() {
        let now = 1_700_000_000.0;
        let exp = r#""exp":1700000100"#;
        let with = |rest: &str| check(&format!("{{{exp},{rest}}}"), now);
        assert_eq!(
            with(r#""iss":"https://idp.example","aud":["x","other"]"#),
            Ok(())
        );
        for rest in [
            r#""iss":"https://idp.example","aud":"x""#,
            r#""iss":"https://idp.example","aud":["x",1]"#,
            r#""iss":"https://idp.example""#,
        ] {
            assert_eq!(with(rest), Err(AuthError::invalid("wrong_audience")));
        }
        assert_eq!(
            with(r#""iss":"https://idp.example/","aud":"portcullis""#),
            Err(AuthError::invalid("wrong_issuer"))
        );
        assert_eq!(
            with(r#""aud":"portcullis""#),
            Err(AuthError::invalid("missing_iss"))
        );
    }
}
