//! `POST /v1/embeddings`: deterministic vectors, as floats or base64.
//!
//! Each input gets an 8-dimensional unit vector derived from a hash of its text (or tokens), so the
//! same input always embeds the same way. `encoding_format: "base64"` returns the little-endian
//! `f32` bytes base64-encoded: the official Python SDK asks for that by default.

use http::Response;
use serde::{Deserialize, Serialize};

use crate::body::MockBody;
use crate::error::Result;
use crate::faults::{self, Outcome};
use crate::wire::{self, TextInput};

/// Length of every embedding vector.
pub(crate) const DIMENSIONS: usize = 8;

/// The fields of an embeddings request the mock reads; everything else is ignored.
#[derive(Deserialize)]
struct EmbeddingRequest {
    model: String,
    input: TextInput,
    #[serde(default)]
    encoding_format: Option<String>,
}

#[derive(Serialize)]
struct EmbeddingList<'a> {
    object: &'static str,
    data: Vec<EmbeddingObject>,
    model: &'a str,
    usage: EmbeddingUsage,
}

#[derive(Serialize)]
struct EmbeddingObject {
    object: &'static str,
    index: usize,
    embedding: Encoded,
}

#[derive(Serialize)]
#[serde(untagged)]
enum Encoded {
    Floats([f32; DIMENSIONS]),
    Base64(String),
}

#[derive(Serialize)]
struct EmbeddingUsage {
    prompt_tokens: usize,
    total_tokens: usize,
}

/// How the vectors go on the wire.
#[derive(Clone, Copy)]
enum Format {
    Float,
    Base64,
}

/// Serves one embeddings request.
pub(crate) async fn handle(body: &[u8]) -> Result<Response<MockBody>> {
    let request: EmbeddingRequest = match serde_json::from_slice(body) {
        Ok(request) => request,
        Err(error) => return Ok(wire::unparsable_body(&error)),
    };
    let format = match request.encoding_format.as_deref() {
        None | Some("float") => Format::Float,
        Some("base64") => Format::Base64,
        Some(other) => {
            let message = format!("Invalid value for 'encoding_format': '{other}'");
            return Ok(wire::invalid_request(&message));
        }
    };
    match faults::check(&request.model, false).await? {
        Outcome::Replace(response) => return Ok(response),
        // Stream faults cannot apply: embeddings never stream.
        Outcome::Normal | Outcome::Cut(_) => {}
    }

    let vectors: Vec<[f32; DIMENSIONS]> = match &request.input {
        TextInput::Text(text) => vec![embed(0, text.as_bytes())],
        TextInput::Texts(texts) => texts.iter().map(|text| embed(0, text.as_bytes())).collect(),
        TextInput::Tokens(tokens) => vec![embed_tokens(tokens)],
        TextInput::TokenLists(lists) => lists.iter().map(|tokens| embed_tokens(tokens)).collect(),
    };
    if vectors.is_empty() {
        return Ok(wire::invalid_request(
            "'$.input' is invalid: it must not be empty",
        ));
    }
    let tokens = request.input.token_count();
    let data = vectors
        .into_iter()
        .enumerate()
        .map(|(index, vector)| EmbeddingObject {
            object: "embedding",
            index,
            embedding: encode(vector, format),
        })
        .collect();
    wire::json_response(&EmbeddingList {
        object: "list",
        data,
        model: &request.model,
        usage: EmbeddingUsage {
            prompt_tokens: tokens,
            total_tokens: tokens,
        },
    })
}

fn encode(vector: [f32; DIMENSIONS], format: Format) -> Encoded {
    match format {
        Format::Float => Encoded::Floats(vector),
        Format::Base64 => {
            let bytes: Vec<u8> = vector
                .iter()
                .flat_map(|value| value.to_le_bytes())
                .collect();
            Encoded::Base64(base64(&bytes))
        }
    }
}

fn embed_tokens(tokens: &[u64]) -> [f32; DIMENSIONS] {
    let bytes: Vec<u8> = tokens
        .iter()
        .flat_map(|token| token.to_le_bytes())
        .collect();
    // A different seed keeps the token array [97] apart from some text with the same bytes.
    embed(1, &bytes)
}

/// A unit vector derived from `seed` and `bytes` by FNV-1a and splitmix64.
fn embed(seed: u64, bytes: &[u8]) -> [f32; DIMENSIONS] {
    const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;
    let hash = bytes.iter().fold(FNV_OFFSET ^ seed, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(FNV_PRIME)
    });
    let mut vector = [0.0f32; DIMENSIONS];
    let mut state = hash;
    for value in &mut vector {
        state = splitmix64(state);
        // The top 24 bits fit an f32 exactly; map them onto [-1, 1).
        let unit = (state >> 40) as f32 / (1u64 << 24) as f32;
        *value = unit * 2.0 - 1.0;
    }
    let norm = vector.iter().map(|value| value * value).sum::<f32>().sqrt();
    if norm > 0.0 {
        for value in &mut vector {
            *value /= norm;
        }
    }
    vector
}

fn splitmix64(state: u64) -> u64 {
    let mut z = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Standard base64 with padding; a few lines here spare the crate a dependency.
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for group in bytes.chunks(3) {
        let b0 = group.first().copied().unwrap_or(0);
        let b1 = group.get(1).copied().unwrap_or(0);
        let b2 = group.get(2).copied().unwrap_or(0);
        let triple = (u32::from(b0) << 16) | (u32::from(b1) << 8) | u32::from(b2);
        let sextets = [triple >> 18, triple >> 12, triple >> 6, triple];
        for (position, sextet) in sextets.into_iter().enumerate() {
            if position <= group.len() {
                out.push(char::from(ALPHABET[(sextet & 0x3f) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc_4648_vectors() {
        let cases = [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ];
        for (plain, encoded) in cases {
            assert_eq!(base64(plain.as_bytes()), encoded);
        }
    }

    #[test]
    fn embeddings_are_deterministic_unit_vectors() {
        let first = embed(0, b"hello");
        assert_eq!(first, embed(0, b"hello"));
        assert_ne!(first, embed(0, b"hello!"));
        let norm: f32 = first.iter().map(|value| value * value).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-5);
    }
}
