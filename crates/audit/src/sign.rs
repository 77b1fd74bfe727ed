//! Ed25519-signed checkpoints, with `ring` (already in the build through rustls).
//!
//! A checkpoint signs `CHECKPOINT_PREFIX` followed by the canonical JSON of the checkpoint's line
//! object without `type` and `signature`: `{"hash":…,"instance":…,"key_id":…,"seq":…,
//! "time_unix_nano":…}`. The prefix keeps a checkpoint signature from meaning anything else
//! signed with the same key.

use std::fmt;

use portcullis_core::Secret;
use ring::signature::{ED25519, Ed25519KeyPair, KeyPair as _, UnparsedPublicKey};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

use crate::canonical::canonical_json;
use crate::chain::Record;
use crate::digest::{Digest, decode_hex, encode_hex};
use crate::error::{Error, Result};

const CHECKPOINT_PREFIX: &[u8] = b"portcullis-audit/checkpoint/v1\n";

/// Names a key: the first 8 bytes of SHA-256 of the 32-byte public key, as 16 hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct KeyId([u8; 8]);

impl KeyId {
    fn of(public_key: &[u8]) -> Self {
        let digest = Digest::of(public_key);
        let mut id = [0u8; 8];
        id.copy_from_slice(&digest.as_bytes()[..8]);
        Self(id)
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&encode_hex(&self.0))
    }
}

impl fmt::Debug for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyId({self})")
    }
}

impl Serialize for KeyId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&encode_hex(&self.0))
    }
}

impl<'de> Deserialize<'de> for KeyId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        let mut id = [0u8; 8];
        decode_hex(&text, &mut id)
            .ok_or_else(|| serde::de::Error::custom("expected 16 hex digits"))?;
        Ok(Self(id))
    }
}

/// An Ed25519 public key that checkpoints are verified against.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct PublicKey {
    bytes: [u8; 32],
    key_id: KeyId,
}

impl PublicKey {
    /// Wraps the 32 raw bytes of an Ed25519 public key.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self {
            bytes,
            key_id: KeyId::of(&bytes),
        }
    }

    /// Parses 64 hex digits.
    pub fn from_hex(text: &str) -> Result<Self> {
        let mut bytes = [0u8; 32];
        decode_hex(text.trim(), &mut bytes).ok_or(Error::PublicKeyFormat)?;
        Ok(Self::from_bytes(bytes))
    }

    /// The key's id.
    pub fn key_id(&self) -> KeyId {
        self.key_id
    }

    /// The raw 32 bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.bytes
    }

    pub(crate) fn verifies(&self, message: &[u8], signature: &[u8]) -> bool {
        UnparsedPublicKey::new(&ED25519, &self.bytes)
            .verify(message, signature)
            .is_ok()
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", encode_hex(&self.bytes))
    }
}

/// Signs checkpoints. The private key never prints: `Debug` shows only the key id.
pub struct Signer {
    key_pair: Secret<Ed25519KeyPair>,
    public_key: PublicKey,
}

impl Signer {
    /// Builds a signer from a 32-byte Ed25519 seed (a raw private key, as kept in a secret).
    pub fn from_seed(seed: &[u8; 32]) -> Result<Self> {
        let key_pair = Ed25519KeyPair::from_seed_unchecked(seed).map_err(rejected)?;
        Ok(Self::with_key_pair(key_pair))
    }

    /// Builds a signer from a PKCS#8 document (DER): v2 as `ring` writes it, or v1 as
    /// `openssl genpkey -algorithm ed25519` writes it (its public key is derived from the seed).
    pub fn from_pkcs8(der: &[u8]) -> Result<Self> {
        let key_pair = Ed25519KeyPair::from_pkcs8_maybe_unchecked(der).map_err(rejected)?;
        Ok(Self::with_key_pair(key_pair))
    }

    fn with_key_pair(key_pair: Ed25519KeyPair) -> Self {
        let mut bytes = [0u8; 32];
        bytes.copy_from_slice(key_pair.public_key().as_ref());
        Self {
            key_pair: Secret::new(key_pair),
            public_key: PublicKey::from_bytes(bytes),
        }
    }

    /// The public half, to hand to verifiers.
    pub fn public_key(&self) -> PublicKey {
        self.public_key
    }

    /// Signs a checkpoint covering `record` and everything before it in its chain.
    pub fn checkpoint(&self, record: &Record, time_unix_nano: u64) -> Checkpoint {
        let mut checkpoint = Checkpoint {
            instance: record.instance.clone(),
            seq: record.seq,
            hash: record.hash,
            time_unix_nano,
            key_id: self.public_key.key_id,
            signature: String::new(),
        };
        let message = checkpoint.signed_message();
        let signature = self.key_pair.expose().sign(&message);
        checkpoint.signature = encode_hex(signature.as_ref());
        checkpoint
    }
}

impl fmt::Debug for Signer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Signer")
            .field("key_id", &self.public_key.key_id)
            .finish_non_exhaustive()
    }
}

fn rejected(err: ring::error::KeyRejected) -> Error {
    Error::KeyRejected {
        reason: err.to_string(),
    }
}

/// A signed statement that `instance`'s chain had record `seq` with hash `hash`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// The instance whose chain is covered.
    pub instance: String,
    /// The last record covered.
    pub seq: u64,
    /// That record's hash.
    pub hash: Digest,
    /// When the checkpoint was signed, in nanoseconds since the Unix epoch (UTC).
    pub time_unix_nano: u64,
    /// The signing key's id.
    pub key_id: KeyId,
    /// The Ed25519 signature, 128 hex digits.
    pub signature: String,
}

impl Checkpoint {
    fn signed_message(&self) -> Vec<u8> {
        let mut object = Map::new();
        object.insert("instance".to_owned(), Value::from(self.instance.clone()));
        object.insert("seq".to_owned(), Value::from(self.seq));
        object.insert("hash".to_owned(), Value::from(self.hash.to_string()));
        object.insert(
            "time_unix_nano".to_owned(),
            Value::from(self.time_unix_nano),
        );
        object.insert("key_id".to_owned(), Value::from(self.key_id.to_string()));
        signed_message(&object)
    }
}

/// The bytes a checkpoint line's signature covers: the prefix and the canonical object without
/// `type` and `signature`.
pub(crate) fn signed_message(line_object: &Map<String, Value>) -> Vec<u8> {
    let body: Map<String, Value> = line_object
        .iter()
        .filter(|(key, _)| key.as_str() != "type" && key.as_str() != "signature")
        .map(|(key, value)| (key.clone(), value.clone()))
        .collect();
    let mut message = CHECKPOINT_PREFIX.to_vec();
    message.extend_from_slice(canonical_json(&Value::Object(body)).as_bytes());
    message
}

/// Decodes a 128-hex-digit signature.
pub(crate) fn decode_signature(text: &str) -> Option<[u8; 64]> {
    let mut bytes = [0u8; 64];
    decode_hex(text, &mut bytes)?;
    Some(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chain::{Chain, tests::sample_event};

    #[test]
    fn checkpoint_signature_verifies_with_the_public_key() {
        let signer = Signer::from_seed(&[7; 32]).unwrap();
        let record = Chain::new("gw-1").append(sample_event(0)).unwrap();
        let checkpoint = signer.checkpoint(&record, 5);
        let signature = decode_signature(&checkpoint.signature).unwrap();
        assert!(
            signer
                .public_key()
                .verifies(&checkpoint.signed_message(), &signature)
        );
        let other = Signer::from_seed(&[8; 32]).unwrap();
        assert!(
            !other
                .public_key()
                .verifies(&checkpoint.signed_message(), &signature)
        );
    }

    #[test]
    fn debug_never_shows_the_private_key() {
        let signer = Signer::from_seed(&[7; 32]).unwrap();
        let debug = format!("{signer:?}");
        assert!(
            debug.contains(&signer.public_key().key_id().to_string()),
            "{debug}"
        );
        assert!(!debug.contains("0707"), "{debug}");
    }

    #[test]
    fn pkcs8_v1_and_seed_give_the_same_key() {
        // PKCS#8 v1 of seed [7; 32], as `openssl genpkey -algorithm ed25519` lays it out.
        let mut der = vec![
            0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22,
            0x04, 0x20,
        ];
        der.extend_from_slice(&[7; 32]);
        let from_der = Signer::from_pkcs8(&der).unwrap();
        let from_seed = Signer::from_seed(&[7; 32]).unwrap();
        assert_eq!(from_der.public_key(), from_seed.public_key());
        assert!(Signer::from_pkcs8(b"not der").is_err());
    }

    #[test]
    fn key_id_is_sha256_prefix_of_the_public_key() {
        let key = Signer::from_seed(&[1; 32]).unwrap().public_key();
        let digest = Digest::of(key.as_bytes()).to_string();
        assert_eq!(key.key_id().to_string(), digest[..16]);
        assert_eq!(
            PublicKey::from_hex(&encode_hex(key.as_bytes())).unwrap(),
            key
        );
    }
}
