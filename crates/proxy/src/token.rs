//! Unguessable tokens: canaries and MCP session ids.

use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};

/// 128 bits in 32 hex digits, from two freshly, randomly keyed SipHash instances (the
/// standard library seeds each `RandomState` from the operating system's randomness) over a
/// process-wide counter and the clock, so two calls never collide.
pub(crate) fn random_hex128() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let mut parts = [0u64; 2];
    for (i, part) in parts.iter_mut().enumerate() {
        let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
        hasher.write_u64(n);
        hasher.write_u128(nanos);
        hasher.write_usize(i);
        *part = hasher.finish();
    }
    format!("{:016x}{:016x}", parts[0], parts[1])
}

#[cfg(test)]
mod tests {
    #[test]
    fn tokens_are_32_hex_digits_and_distinct() {
        let tokens: std::collections::HashSet<String> =
            (0..1000).map(|_| super::random_hex128()).collect();
        assert_eq!(tokens.len(), 1000);
        assert!(
            tokens
                .iter()
                .all(|t| t.len() == 32 && t.bytes().all(|b| b.is_ascii_hexdigit()))
        );
    }
}
