use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// Identifies one exchange in logs, metrics exemplars, response headers and audit records.
///
/// Either taken from a client's `x-request-id` header (when it is short and printable) or
/// generated: 16 hex digits of process start time mixed with a counter, unique within a
/// process and very likely across replicas.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct RequestId(Box<str>);

/// Longest client-supplied id that is kept; longer ones are replaced by a generated id.
const MAX_CLIENT_ID_LEN: usize = 128;

static COUNTER: AtomicU64 = AtomicU64::new(0);

impl RequestId {
    /// Generates a fresh id.
    pub fn generate() -> Self {
        static SEED: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
        let seed = *SEED.get_or_init(|| {
            let nanos = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(0);
            mix(nanos ^ u64::from(std::process::id()).rotate_left(32))
        });
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        Self(format!("{:016x}", mix(seed.wrapping_add(n))).into_boxed_str())
    }

    /// Keeps a client-supplied id if it is 1..=128 visible ASCII characters, else generates one.
    pub fn from_client_or_generate(client: Option<&str>) -> Self {
        match client {
            Some(value)
                if !value.is_empty()
                    && value.len() <= MAX_CLIENT_ID_LEN
                    && value.bytes().all(|b| b.is_ascii_graphic()) =>
            {
                Self(value.into())
            }
            _ => Self::generate(),
        }
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// SplitMix64 finaliser: spreads counter values so ids do not look sequential.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RequestId({})", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_are_unique_and_16_hex() {
        let a = RequestId::generate();
        let b = RequestId::generate();
        assert_ne!(a, b);
        assert_eq!(a.as_str().len(), 16);
        assert!(a.as_str().bytes().all(|c| c.is_ascii_hexdigit()));
    }

    #[test]
    fn client_ids_are_kept_only_when_sane() {
        assert_eq!(
            RequestId::from_client_or_generate(Some("abc-123")).as_str(),
            "abc-123"
        );
        assert_ne!(
            RequestId::from_client_or_generate(Some("has space")).as_str(),
            "has space"
        );
        let long = "x".repeat(200);
        assert_ne!(
            RequestId::from_client_or_generate(Some(&long)).as_str(),
            long
        );
        assert_eq!(RequestId::from_client_or_generate(None).as_str().len(), 16);
    }
}
