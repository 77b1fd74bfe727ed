//! SHA-256 digests, written as 64 lowercase hex digits.

use std::fmt;

use portcullis_core::hex;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::Sha256;

/// A SHA-256 digest: record hashes, chain links, content hashes.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Digest([u8; 32]);

impl Digest {
    /// Hashes bytes.
    pub fn of(bytes: &[u8]) -> Self {
        use sha2::Digest as _;
        Self(Sha256::digest(bytes).into())
    }

    /// The raw 32 bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Parses 64 lowercase hex digits. Uppercase is refused so that each digest has one
    /// spelling, and an edited line cannot verify by changing case.
    pub fn parse_hex(text: &str) -> Option<Self> {
        let mut out = [0u8; 32];
        decode_hex(text, &mut out)?;
        Some(Self(out))
    }
}

/// Decodes exactly `out.len()` bytes of lowercase hex; `None` on wrong length, a non-hex digit
/// or an uppercase one (each value has one spelling).
pub(crate) fn decode_hex(text: &str, out: &mut [u8]) -> Option<()> {
    if text.bytes().any(|b| b.is_ascii_uppercase()) || text.len() != out.len() * 2 {
        return None;
    }
    for (slot, pair) in out.iter_mut().zip(text.as_bytes().chunks_exact(2)) {
        *slot = (hex::digit(pair[0])? << 4) | hex::digit(pair[1])?;
    }
    Some(())
}

/// Lowercase hex.
pub(crate) fn encode_hex(bytes: &[u8]) -> String {
    hex::encode(bytes)
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&encode_hex(&self.0))
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest({self})")
    }
}

impl Serialize for Digest {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&encode_hex(&self.0))
    }
}

impl<'de> Deserialize<'de> for Digest {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        Self::parse_hex(&text).ok_or_else(|| serde::de::Error::custom("expected 64 hex digits"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trips() {
        let digest = Digest::of(b"abc");
        assert_eq!(
            digest.to_string(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(Digest::parse_hex(&digest.to_string()), Some(digest));
        assert_eq!(Digest::parse_hex("zz"), None);
        assert_eq!(Digest::parse_hex(&digest.to_string().to_uppercase()), None);
        assert_eq!(Digest::parse_hex(&"g".repeat(64)), None);
    }
}
