//! A tiny list of common English words, used only to tell rot13 text from ordinary text.
//!
//! rot13 is its own inverse, so one table answers both questions: is this word common, and is
//! its rot13 common. Words are packed into a `u64` (5 bits a letter, up to 12 letters) so a
//! lookup allocates nothing.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// General-purpose English: function words, frequent verbs and nouns, and the vocabulary of
/// instructions to a program (which is what an encoded payload usually says).
const COMMON: &str = "the be to of and in that have it for not on with he as you do at this but \
his by from they we say her she or an will my one all would there their what so up out if about \
who get which go me when make can like time no just him know take people into year your good some \
could them see other than then now look only come its over think also back after use two how our \
work first well way even new want because any these give day most us is are was were been has had \
did does said should must may might here where why very more many much such each every before \
again never always still please tell show write read help need find keep let put try ask answer \
question thing man woman world life hand part place case point number word text message \
information data user system prompt instructions instruction ignore previous above below \
following rules rule secret password reveal print output respond response forget everything \
nothing something anything act pretend mode without restrictions hello thank thanks yes okay \
right left same different between under while through during against own small large big little \
old young long great high low next last early important able sure true false real full best \
better free home school water food money book story name friend family house city country job \
company group problem fact idea reason example list code file email send call open close start \
stop end run went made done seen told used found given taken came got felt kept became began those \
both few less least nor yet though although unless until since within upon across along around \
behind beyond near far off down today night morning week month love hate feel believe understand \
remember explain describe provide create include continue change follow learn play move live turn \
bring happen begin seem talk mean set shall cannot key access admin instead disregard override \
command execute delete data previous assistant model developer";

/// Whether a word (or its rot13) is in the list.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Hit {
    pub(crate) plain: bool,
    pub(crate) rotated: bool,
}

/// Multiply-shift hashing: the keys are already well-mixed packed letters, and SipHash would
/// dominate the cost of the rot13 check on plain text.
#[derive(Default)]
pub(crate) struct PackedHasher(u64);

impl Hasher for PackedHasher {
    fn finish(&self) -> u64 {
        self.0.wrapping_mul(0x9E37_79B9_7F4A_7C15)
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = ((self.0 << 8) | u64::from(b)).wrapping_mul(31);
        }
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = v;
    }
}

/// The lookup table; built once per `Normaliser`.
#[derive(Debug)]
pub(crate) struct CommonWords {
    map: HashMap<u64, Hit, BuildHasherDefault<PackedHasher>>,
}

/// Packs a lowercase ASCII word of 1..=12 letters; `None` otherwise.
pub(crate) fn pack(word: &[u8], rotate: bool) -> Option<u64> {
    if word.is_empty() || word.len() > 12 {
        return None;
    }
    let mut key = 0u64;
    for &b in word {
        let l = b.to_ascii_lowercase();
        if !l.is_ascii_lowercase() {
            return None;
        }
        let mut v = l - b'a';
        if rotate {
            v = (v + 13) % 26;
        }
        key = (key << 5) | u64::from(v + 1);
    }
    Some(key)
}

impl CommonWords {
    pub(crate) fn new() -> Self {
        let mut map: HashMap<u64, Hit, BuildHasherDefault<PackedHasher>> = HashMap::default();
        for w in COMMON.split_ascii_whitespace() {
            if let Some(k) = pack(w.as_bytes(), false) {
                map.entry(k).or_default().plain = true;
            }
            if let Some(k) = pack(w.as_bytes(), true) {
                map.entry(k).or_default().rotated = true;
            }
        }
        Self { map }
    }

    /// Looks a word up as written (`plain`) and as rot13 (`rotated`).
    pub(crate) fn lookup(&self, word: &[u8]) -> Hit {
        pack(word, false)
            .and_then(|k| self.map.get(&k).copied())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_and_rotated() {
        let w = CommonWords::new();
        assert!(w.lookup(b"The").plain);
        assert!(w.lookup(b"gur").rotated);
        assert!(!w.lookup(b"gur").plain);
        assert_eq!(w.lookup(b"zzqx"), Hit::default());
        assert_eq!(w.lookup(b"verylongwordindeed"), Hit::default());
    }
}
