//! Hexadecimal, the one implementation every crate uses: digests and keys in logs and files,
//! token hashes in config, session ids, percent-encoding.

/// Lowercase hex of `bytes`.
pub fn encode(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        out.push(char::from(DIGITS[usize::from(byte >> 4)]));
        out.push(char::from(DIGITS[usize::from(byte & 0x0f)]));
    }
    out
}

/// The value of one hex digit, either case.
pub fn digit(byte: u8) -> Option<u8> {
    match byte {
        b'0'..=b'9' => Some(byte - b'0'),
        b'a'..=b'f' => Some(byte - b'a' + 10),
        b'A'..=b'F' => Some(byte - b'A' + 10),
        _ => None,
    }
}

/// Decodes exactly `N` bytes from `2 * N` hex digits (either case); `None` on a wrong length
/// or a non-hex character. Callers that need one spelling check the case themselves.
pub fn decode<const N: usize>(text: &str) -> Option<[u8; N]> {
    let bytes = text.as_bytes();
    if bytes.len() != N * 2 {
        return None;
    }
    let mut out = [0u8; N];
    for (slot, pair) in out.iter_mut().zip(bytes.chunks_exact(2)) {
        *slot = (digit(pair[0])? << 4) | digit(pair[1])?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_refuses_bad_input() {
        let bytes = [0x00, 0x9f, 0xab, 0xff];
        assert_eq!(encode(&bytes), "009fabff");
        assert_eq!(decode::<4>("009fabff"), Some(bytes));
        assert_eq!(decode::<4>("009FABFF"), Some(bytes));
        assert_eq!(decode::<4>("009fab"), None);
        assert_eq!(decode::<4>("009fabfg"), None);
        assert_eq!(decode::<2>("é1"), None);
        assert_eq!(digit(b'G'), None);
    }
}
