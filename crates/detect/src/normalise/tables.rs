//! Character tables for the canonical fold: invisible characters and confusables.
//!
//! The confusable table is deliberately small: the Cyrillic, Greek, Armenian and Latin-extended
//! letters that render like ASCII letters in common fonts (a subset of Unicode's UTS #39
//! `confusables.txt`). Fullwidth forms and mathematical alphanumerics are folded by NFKC before
//! this table is consulted, so they are not listed.

/// What the canonical fold does with a character that is not plain text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Special {
    /// A Unicode tag character (U+E0000–E007F); carries an ASCII character when in E0020–E007E.
    Tag,
    /// A variation selector; carries one byte in the "emoji smuggling" scheme.
    VariationSelector(u8),
    /// A zero-width character that splits words invisibly (ZWSP, ZWNJ, ZWJ, WJ, BOM).
    ZeroWidth,
    /// A bidirectional embedding, override or isolate control.
    Bidi,
    /// Any other format or filler character that renders as nothing.
    Invisible,
}

/// Classifies a non-ASCII character; `None` means ordinary text.
pub(crate) fn special(c: char) -> Option<Special> {
    let cp = u32::from(c);
    Some(match cp {
        0xE0000..=0xE007F => Special::Tag,
        // Variation selectors 1–16 carry bytes 0–15; supplements 17–256 carry bytes 16–255.
        0xFE00..=0xFE0F => Special::VariationSelector(vs_byte(cp - 0xFE00)),
        0xE0100..=0xE01EF => Special::VariationSelector(vs_byte(cp - 0xE0100 + 16)),
        0x200B..=0x200D | 0x2060 | 0xFEFF => Special::ZeroWidth,
        0x202A..=0x202E | 0x2066..=0x2069 => Special::Bidi,
        0x00AD
        | 0x034F
        | 0x0600..=0x0605
        | 0x061C
        | 0x06DD
        | 0x070F
        | 0x08E2
        | 0x115F
        | 0x1160
        | 0x17B4
        | 0x17B5
        | 0x180B..=0x180F
        | 0x200E
        | 0x200F
        | 0x2061..=0x2064
        | 0x206A..=0x206F
        | 0x3164
        | 0xFFA0
        | 0xFFF9..=0xFFFB
        | 0x110BD
        | 0x110CD
        | 0x13430..=0x1343F
        | 0x1BCA0..=0x1BCA3
        | 0x1D173..=0x1D17A => Special::Invisible,
        _ => return None,
    })
}

fn vs_byte(offset: u32) -> u8 {
    // INVARIANT: callers pass offsets below 256 (the match arms bound the code point ranges).
    u8::try_from(offset).unwrap_or(u8::MAX)
}

/// Lookalike letters and their ASCII reading, sorted by code point for binary search.
const CONFUSABLES: &[(char, u8)] = &[
    ('\u{0131}', b'i'), // dotless i
    ('\u{0251}', b'a'), // latin alpha
    ('\u{0261}', b'g'), // script g
    ('\u{0269}', b'i'), // latin iota
    ('\u{026A}', b'i'), // small capital i
    ('\u{0299}', b'b'), // small capital b
    ('\u{029C}', b'h'), // small capital h
    ('\u{0391}', b'A'),
    ('\u{0392}', b'B'),
    ('\u{0395}', b'E'),
    ('\u{0396}', b'Z'),
    ('\u{0397}', b'H'),
    ('\u{0399}', b'I'),
    ('\u{039A}', b'K'),
    ('\u{039C}', b'M'),
    ('\u{039D}', b'N'),
    ('\u{039F}', b'O'),
    ('\u{03A1}', b'P'),
    ('\u{03A4}', b'T'),
    ('\u{03A5}', b'Y'),
    ('\u{03A7}', b'X'),
    ('\u{03B1}', b'a'),
    ('\u{03B5}', b'e'),
    ('\u{03B9}', b'i'),
    ('\u{03BA}', b'k'),
    ('\u{03BD}', b'v'),
    ('\u{03BF}', b'o'),
    ('\u{03C1}', b'p'),
    ('\u{03C4}', b't'),
    ('\u{03C5}', b'u'),
    ('\u{03C7}', b'x'),
    ('\u{03F2}', b'c'), // lunate sigma
    ('\u{03F3}', b'j'),
    ('\u{0405}', b'S'),
    ('\u{0406}', b'I'),
    ('\u{0408}', b'J'),
    ('\u{0410}', b'A'),
    ('\u{0412}', b'B'),
    ('\u{0415}', b'E'),
    ('\u{041A}', b'K'),
    ('\u{041C}', b'M'),
    ('\u{041D}', b'H'),
    ('\u{041E}', b'O'),
    ('\u{0420}', b'P'),
    ('\u{0421}', b'C'),
    ('\u{0422}', b'T'),
    ('\u{0423}', b'Y'),
    ('\u{0425}', b'X'),
    ('\u{0430}', b'a'),
    ('\u{0435}', b'e'),
    ('\u{043E}', b'o'),
    ('\u{0440}', b'p'),
    ('\u{0441}', b'c'),
    ('\u{0443}', b'y'),
    ('\u{0445}', b'x'),
    ('\u{0455}', b's'),
    ('\u{0456}', b'i'),
    ('\u{0458}', b'j'),
    ('\u{04AE}', b'Y'),
    ('\u{04BB}', b'h'),
    ('\u{04C0}', b'I'), // palochka
    ('\u{04CF}', b'l'),
    ('\u{0501}', b'd'),
    ('\u{051B}', b'q'),
    ('\u{051D}', b'w'),
    ('\u{0555}', b'O'), // Armenian
    ('\u{0570}', b'h'),
    ('\u{0578}', b'n'),
    ('\u{057D}', b'u'),
    ('\u{0585}', b'o'),
    ('\u{13A0}', b'D'), // Cherokee
    ('\u{13A1}', b'R'),
    ('\u{13A2}', b'T'),
    ('\u{13AA}', b'A'),
    ('\u{13AB}', b'J'),
    ('\u{13AC}', b'E'),
    ('\u{13B3}', b'W'),
    ('\u{13BB}', b'H'),
    ('\u{13C0}', b'G'),
    ('\u{13C2}', b'h'),
    ('\u{13C3}', b'Z'),
    ('\u{13CF}', b'b'),
    ('\u{13DA}', b'V'),
    ('\u{13DE}', b'L'),
    ('\u{13DF}', b'C'),
    ('\u{13E2}', b'R'),
    ('\u{1D00}', b'a'), // small capitals
    ('\u{1D04}', b'c'),
    ('\u{1D05}', b'd'),
    ('\u{1D07}', b'e'),
    ('\u{1D0A}', b'j'),
    ('\u{1D0B}', b'k'),
    ('\u{1D0D}', b'm'),
    ('\u{1D0F}', b'o'),
    ('\u{1D18}', b'p'),
    ('\u{1D1B}', b't'),
    ('\u{1D1C}', b'u'),
    ('\u{1D20}', b'v'),
    ('\u{1D21}', b'w'),
    ('\u{1D22}', b'z'),
];

/// The ASCII letter a lookalike stands for, if it is in the table.
pub(crate) fn confusable(c: char) -> Option<u8> {
    CONFUSABLES
        .binary_search_by_key(&c, |&(k, _)| k)
        .ok()
        .and_then(|i| CONFUSABLES.get(i))
        .map(|&(_, ascii)| ascii)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn confusables_are_sorted_and_unique() {
        for pair in CONFUSABLES.windows(2) {
            assert!(pair[0].0 < pair[1].0, "{:?} before {:?}", pair[0], pair[1]);
        }
    }

    #[test]
    fn lookups() {
        assert_eq!(confusable('\u{0430}'), Some(b'a'));
        assert_eq!(confusable('\u{03BF}'), Some(b'o'));
        assert_eq!(confusable('ж'), None);
        assert_eq!(special('\u{200B}'), Some(Special::ZeroWidth));
        assert_eq!(special('\u{FE0F}'), Some(Special::VariationSelector(15)));
        assert_eq!(special('\u{E0100}'), Some(Special::VariationSelector(16)));
        assert_eq!(special('\u{E01EF}'), Some(Special::VariationSelector(255)));
        assert_eq!(special('\u{E0041}'), Some(Special::Tag));
        assert_eq!(special('é'), None);
    }
}
