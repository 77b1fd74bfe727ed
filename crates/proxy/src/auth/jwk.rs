//! JSON Web Keys (RFC 7517) as ring public keys, and signature verification.
//!
//! Only public signature keys are kept: `RSA` (n, e), `EC` P-256 / P-384 (x, y) and `OKP`
//! Ed25519 (x). Symmetric (`oct`) keys, encryption keys (`use: enc`) and anything else are
//! dropped when the set is parsed, so no configuration or token can make a public key serve
//! as an HMAC secret. A key is used only with the algorithms its type allows and, when the
//! JWK names an `alg`, with that one alone. `x5c` / `x5t` chains are ignored: the key is taken
//! from its components.

use portcullis_config::JwtAlgorithm;
use ring::signature::{self, RsaPublicKeyComponents, UnparsedPublicKey};
use serde::Deserialize;

use super::AuthError;
use super::token::base64url_decode;

/// A JWK's members, as sent. Unknown members are ignored.
#[derive(Debug, Deserialize)]
struct Jwk {
    kty: String,
    #[serde(default)]
    kid: Option<String>,
    #[serde(default, rename = "use")]
    usage: Option<String>,
    #[serde(default)]
    alg: Option<String>,
    #[serde(default)]
    crv: Option<String>,
    #[serde(default)]
    n: Option<String>,
    #[serde(default)]
    e: Option<String>,
    #[serde(default)]
    x: Option<String>,
    #[serde(default)]
    y: Option<String>,
}

#[derive(Debug, Deserialize)]
struct JwkSet {
    keys: Vec<serde_json::Value>,
}

/// Public key material, in the forms ring verifies with.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Material {
    /// Big-endian modulus (no leading zeros) and exponent.
    Rsa { n: Vec<u8>, e: Vec<u8> },
    /// Uncompressed point `04 || x || y`.
    P256(Vec<u8>),
    /// Uncompressed point `04 || x || y`.
    P384(Vec<u8>),
    /// The 32-byte public key.
    Ed25519(Vec<u8>),
}

impl Material {
    /// Whether this kind of key signs with `alg`.
    fn fits(&self, alg: JwtAlgorithm) -> bool {
        use JwtAlgorithm::*;
        match self {
            Self::Rsa { .. } => matches!(alg, Rs256 | Rs384 | Rs512 | Ps256 | Ps384 | Ps512),
            Self::P256(_) => alg == Es256,
            Self::P384(_) => alg == Es384,
            Self::Ed25519(_) => alg == EdDsa,
        }
    }
}

/// One usable verification key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct VerifyingKey {
    kid: Option<String>,
    /// The JWK's own `alg`, which then is the only one it verifies.
    alg: Option<JwtAlgorithm>,
    material: Material,
}

impl VerifyingKey {
    fn accepts(&self, alg: JwtAlgorithm) -> bool {
        self.material.fits(alg) && self.alg.is_none_or(|own| own == alg)
    }

    /// Verifies `signature` over `message` with `alg` (already checked to fit this key).
    pub(super) fn verify(
        &self,
        alg: JwtAlgorithm,
        message: &[u8],
        signature: &[u8],
    ) -> Result<(), AuthError> {
        use JwtAlgorithm::*;
        let verified = match (&self.material, alg) {
            (Material::Rsa { n, e }, _) => {
                let params = match alg {
                    Rs256 => &signature::RSA_PKCS1_2048_8192_SHA256,
                    Rs384 => &signature::RSA_PKCS1_2048_8192_SHA384,
                    Rs512 => &signature::RSA_PKCS1_2048_8192_SHA512,
                    Ps256 => &signature::RSA_PSS_2048_8192_SHA256,
                    Ps384 => &signature::RSA_PSS_2048_8192_SHA384,
                    Ps512 => &signature::RSA_PSS_2048_8192_SHA512,
                    Es256 | Es384 | EdDsa => return Err(AuthError::invalid("key_alg_mismatch")),
                };
                RsaPublicKeyComponents { n, e }.verify(params, message, signature)
            }
            (Material::P256(point), Es256) => {
                UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, point)
                    .verify(message, signature)
            }
            (Material::P384(point), Es384) => {
                UnparsedPublicKey::new(&signature::ECDSA_P384_SHA384_FIXED, point)
                    .verify(message, signature)
            }
            (Material::Ed25519(key), EdDsa) => {
                UnparsedPublicKey::new(&signature::ED25519, key).verify(message, signature)
            }
            _ => return Err(AuthError::invalid("key_alg_mismatch")),
        };
        verified.map_err(|_| AuthError::invalid("bad_signature"))
    }
}

/// An issuer's usable keys.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct KeySet {
    keys: Vec<VerifyingKey>,
}

/// Why a JWKS document was refused.
#[derive(Debug, thiserror::Error)]
pub(super) enum JwksError {
    #[error("not a JWK set: {0}")]
    Json(#[from] serde_json::Error),
}

impl KeySet {
    /// Parses a JWK set, keeping the usable keys and skipping the rest.
    pub(super) fn parse(body: &[u8]) -> Result<Self, JwksError> {
        let set: JwkSet = serde_json::from_slice(body)?;
        let mut keys = Vec::new();
        for value in set.keys {
            match serde_json::from_value::<Jwk>(value)
                .ok()
                .and_then(|jwk| usable(&jwk))
            {
                Some(key) => keys.push(key),
                None => {
                    tracing::debug!("skipping a JWK that is not a supported public signature key")
                }
            }
        }
        Ok(Self { keys })
    }

    /// How many usable keys.
    pub(super) fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether a key has this `kid`.
    pub(super) fn has_kid(&self, kid: &str) -> bool {
        self.keys.iter().any(|k| k.kid.as_deref() == Some(kid))
    }

    /// The key to verify a token with: the one with the token's `kid`, or, when the token has
    /// none, the only key that accepts `alg`.
    pub(super) fn select(
        &self,
        kid: Option<&str>,
        alg: JwtAlgorithm,
    ) -> Result<&VerifyingKey, AuthError> {
        let key = match kid {
            Some(kid) => {
                // Several keys may share a kid (one per type): take one that fits `alg`.
                let mut named = self.keys.iter().filter(|k| k.kid.as_deref() == Some(kid));
                let first = named
                    .clone()
                    .next()
                    .ok_or(AuthError::invalid("unknown_kid"))?;
                named.find(|k| k.accepts(alg)).unwrap_or(first)
            }
            None => {
                let mut candidates = self.keys.iter().filter(|k| k.accepts(alg));
                let first = candidates
                    .next()
                    .ok_or(AuthError::invalid("no_matching_key"))?;
                if candidates.next().is_some() {
                    return Err(AuthError::invalid("kid_required"));
                }
                first
            }
        };
        if !key.accepts(alg) {
            return Err(AuthError::invalid("key_alg_mismatch"));
        }
        Ok(key)
    }
}

/// The key a JWK describes, if it is a supported public signature key.
fn usable(jwk: &Jwk) -> Option<VerifyingKey> {
    if jwk.usage.as_deref().is_some_and(|u| u != "sig") {
        return None;
    }
    let alg = match jwk.alg.as_deref() {
        None => None,
        Some(name) => Some(JwtAlgorithm::parse(name)?),
    };
    let decode = |part: &Option<String>| part.as_deref().and_then(base64url_decode);
    let material = match (jwk.kty.as_str(), jwk.crv.as_deref()) {
        ("RSA", _) => {
            let n = decode(&jwk.n)?;
            let e = decode(&jwk.e)?;
            let n = strip_leading_zeros(&n);
            let e = strip_leading_zeros(&e);
            (!n.is_empty() && !e.is_empty()).then(|| Material::Rsa {
                n: n.to_vec(),
                e: e.to_vec(),
            })?
        }
        ("EC", Some("P-256")) => Material::P256(point(decode(&jwk.x)?, decode(&jwk.y)?, 32)?),
        ("EC", Some("P-384")) => Material::P384(point(decode(&jwk.x)?, decode(&jwk.y)?, 48)?),
        ("OKP", Some("Ed25519")) => {
            let x = decode(&jwk.x)?;
            (x.len() == 32).then_some(Material::Ed25519(x))?
        }
        _ => return None,
    };
    let key = VerifyingKey {
        kid: jwk.kid.clone(),
        alg,
        material,
    };
    // A key whose own `alg` does not fit its type can verify nothing.
    alg.is_none_or(|alg| key.material.fits(alg)).then_some(key)
}

fn strip_leading_zeros(bytes: &[u8]) -> &[u8] {
    let start = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len());
    &bytes[start..]
}

/// An uncompressed EC point from coordinates of exactly `size` bytes.
fn point(x: Vec<u8>, y: Vec<u8>, size: usize) -> Option<Vec<u8>> {
    if x.len() != size || y.len() != size {
        return None;
    }
    let mut out = Vec::with_capacity(1 + 2 * size);
    out.push(0x04);
    out.extend_from_slice(&x);
    out.extend_from_slice(&y);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::super::token::base64url_encode as b64;
    use super::*;
    use ring::rand::SystemRandom;
    use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair};

    fn es256() -> (EcdsaKeyPair, serde_json::Value) {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
            .unwrap();
        let public = pair.public_key().as_ref();
        let jwk = serde_json::json!({"kty": "EC", "crv": "P-256", "kid": "ec",
            "x": b64(&public[1..33]), "y": b64(&public[33..])});
        (pair, jwk)
    }

    fn ed25519() -> (Ed25519KeyPair, serde_json::Value) {
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).unwrap();
        let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap();
        let jwk = serde_json::json!({"kty": "OKP", "crv": "Ed25519", "kid": "ed",
            "x": b64(pair.public_key().as_ref())});
        (pair, jwk)
    }

    fn set(keys: &[serde_json::Value]) -> KeySet {
        KeySet::parse(serde_json::json!({ "keys": keys }).to_string().as_bytes()).unwrap()
    }

    #[test]
    fn ecdsa_and_ed25519_signatures_verify() {
        let rng = SystemRandom::new();
        let (ec, ec_jwk) = es256();
        let (ed, ed_jwk) = ed25519();
        let keys = set(&[ec_jwk, ed_jwk]);
        assert_eq!(keys.len(), 2);
        let message = b"header.payload";
        let ec_sig = ec.sign(&rng, message).unwrap();
        let key = keys.select(Some("ec"), JwtAlgorithm::Es256).unwrap();
        assert_eq!(
            key.verify(JwtAlgorithm::Es256, message, ec_sig.as_ref()),
            Ok(())
        );
        assert_eq!(
            key.verify(JwtAlgorithm::Es256, b"header.payloaD", ec_sig.as_ref()),
            Err(AuthError::invalid("bad_signature"))
        );
        let ed_sig = ed.sign(message);
        let key = keys.select(None, JwtAlgorithm::EdDsa).unwrap();
        assert_eq!(
            key.verify(JwtAlgorithm::EdDsa, message, ed_sig.as_ref()),
            Ok(())
        );
    }

    #[test]
    fn keys_are_selected_by_kid_and_type() {
        let (_, ec_jwk) = es256();
        let (_, ed_jwk) = ed25519();
        let (_, second_ec) = es256();
        let mut second_ec = second_ec;
        second_ec["kid"] = "ec2".into();
        let keys = set(&[ec_jwk, ed_jwk, second_ec]);
        assert_eq!(
            keys.select(Some("nope"), JwtAlgorithm::Es256),
            Err(AuthError::invalid("unknown_kid"))
        );
        assert_eq!(
            keys.select(Some("ec"), JwtAlgorithm::EdDsa),
            Err(AuthError::invalid("key_alg_mismatch"))
        );
        assert_eq!(
            keys.select(None, JwtAlgorithm::Es256),
            Err(AuthError::invalid("kid_required"))
        );
        assert_eq!(
            keys.select(None, JwtAlgorithm::Rs256),
            Err(AuthError::invalid("no_matching_key"))
        );
        assert!(keys.has_kid("ed") && !keys.has_kid("x"));
        // One kid for an EC and an Ed25519 key: the one fitting the token's alg is used.
        let (_, shared_ec) = es256();
        let (_, mut shared_ed) = ed25519();
        shared_ed["kid"] = "ec".into();
        let shared = set(&[shared_ec, shared_ed]);
        let key = shared.select(Some("ec"), JwtAlgorithm::EdDsa).unwrap();
        assert!(matches!(key.material, Material::Ed25519(_)));
    }

    #[test]
    fn unusable_jwks_are_skipped() {
        let (_, ec_jwk) = es256();
        let mut enc = ec_jwk.clone();
        enc["use"] = "enc".into();
        let mut hmac_alg = ec_jwk.clone();
        hmac_alg["alg"] = "HS256".into();
        let mut wrong_alg = ec_jwk.clone();
        wrong_alg["alg"] = "RS256".into();
        let mut short = ec_jwk.clone();
        short["x"] = b64(&[1; 31]).into();
        let mut p521 = ec_jwk.clone();
        p521["crv"] = "P-521".into();
        let keys = set(&[
            serde_json::json!({"kty": "oct", "k": b64(b"secret")}),
            serde_json::json!({"kty": "RSA", "n": "", "e": "AQAB"}),
            serde_json::json!({"kty": "OKP", "crv": "Ed448", "x": b64(&[1; 57])}),
            serde_json::json!({"no": "kty"}),
            enc,
            hmac_alg,
            wrong_alg,
            short,
            p521,
        ]);
        assert_eq!(keys.len(), 0);
        let mut pinned = ec_jwk;
        pinned["alg"] = "ES256".into();
        assert_eq!(set(&[pinned]).len(), 1);
        assert!(KeySet::parse(b"{\"keys\": 1}").is_err());
        assert!(KeySet::parse(b"[]").is_err());
    }

    #[test]
    fn rsa_components_lose_leading_zeros() {
        let keys = set(&[serde_json::json!({"kty": "RSA", "kid": "r",
            "n": b64(&[0, 0, 0xc1, 0x02]), "e": b64(&[0, 1, 0, 1])})]);
        let key = keys.select(Some("r"), JwtAlgorithm::Ps256).unwrap();
        assert_eq!(
            key.material,
            Material::Rsa {
                n: vec![0xc1, 0x02],
                e: vec![1, 0, 1]
            }
        );
        // Far too small for ring (2048 bits at least): refused, not panicking.
        assert_eq!(
            key.verify(JwtAlgorithm::Ps256, b"m", &[1, 2]),
            Err(AuthError::invalid("bad_signature"))
        );
    }
}
