//! Checksums and structural rules for personal identifiers. Each takes ASCII digits (or
//! uppercase alphanumerics) without separators and answers whether the value is well-formed.

/// Luhn (mod 10) check used by payment cards.
pub(crate) fn luhn(digits: &[u8]) -> bool {
    let mut sum = 0u32;
    for (k, &d) in digits.iter().rev().enumerate() {
        let mut v = u32::from(d.wrapping_sub(b'0'));
        if v > 9 {
            return false;
        }
        if k % 2 == 1 {
            v *= 2;
            if v > 9 {
                v -= 9;
            }
        }
        sum += v;
    }
    !digits.is_empty() && sum.is_multiple_of(10)
}

fn prefix_num(digits: &[u8], n: usize) -> u32 {
    digits.iter().take(n).fold(0u32, |acc, &d| {
        acc * 10 + u32::from(d.wrapping_sub(b'0') % 10)
    })
}

/// The card network whose issuer prefixes and lengths `digits` fits, if any.
pub(crate) fn card_network(digits: &[u8]) -> Option<&'static str> {
    let len = digits.len();
    let p = |n| prefix_num(digits, n);
    let network = if p(1) == 4 && matches!(len, 13 | 16 | 19) {
        "visa"
    } else if ((51..=55).contains(&p(2)) || (2221..=2720).contains(&p(4))) && len == 16 {
        "mastercard"
    } else if matches!(p(2), 34 | 37) && len == 15 {
        "amex"
    } else if (p(4) == 6011 || (644..=649).contains(&p(3)) || p(2) == 65)
        && (16..=19).contains(&len)
    {
        "discover"
    } else if (3528..=3589).contains(&p(4)) && (16..=19).contains(&len)
        || matches!(p(4), 2131 | 1800) && len == 15
        // JCB's registered range is 3528–3589, but many validators and card generators treat
        // all of 35xx as JCB; a Luhn-valid 16-digit 35 number is a card in practice.
        || p(2) == 35 && len == 16
    {
        "jcb"
    } else if ((300..=305).contains(&p(3)) || p(4) == 3095 || matches!(p(2), 36 | 38 | 39))
        && (14..=19).contains(&len)
    {
        "diners"
    } else if p(2) == 62 && (16..=19).contains(&len) {
        "unionpay"
    } else if (2200..=2204).contains(&p(4)) && (16..=19).contains(&len) {
        "mir"
    } else if (p(2) == 50 || (56..=69).contains(&p(2))) && (12..=19).contains(&len) {
        "maestro"
    } else {
        return None;
    };
    Some(network)
}

/// US SSN structure: area not 000, 666 or 9xx; group not 00; serial not 0000.
pub(crate) fn us_ssn(digits: &[u8]) -> bool {
    if digits.len() != 9 {
        return false;
    }
    let (area, group, serial) = (
        prefix_num(digits, 3),
        prefix_num(digits.get(3..).unwrap_or_default(), 2),
        prefix_num(digits.get(5..).unwrap_or_default(), 4),
    );
    area != 0 && area != 666 && area < 900 && group != 0 && serial != 0
}

/// IBAN length per country (SWIFT IBAN registry).
const IBAN_LENGTHS: &[(&[u8; 2], usize)] = &[
    (b"AD", 24),
    (b"AE", 23),
    (b"AL", 28),
    (b"AT", 20),
    (b"AZ", 28),
    (b"BA", 20),
    (b"BE", 16),
    (b"BG", 22),
    (b"BH", 22),
    (b"BI", 27),
    (b"BR", 29),
    (b"BY", 28),
    (b"CH", 21),
    (b"CR", 22),
    (b"CY", 28),
    (b"CZ", 24),
    (b"DE", 22),
    (b"DJ", 27),
    (b"DK", 18),
    (b"DO", 28),
    (b"EE", 20),
    (b"EG", 29),
    (b"ES", 24),
    (b"FI", 18),
    (b"FK", 18),
    (b"FO", 18),
    (b"FR", 27),
    (b"GB", 22),
    (b"GE", 22),
    (b"GI", 23),
    (b"GL", 18),
    (b"GR", 27),
    (b"GT", 28),
    (b"HR", 21),
    (b"HU", 28),
    (b"IE", 22),
    (b"IL", 23),
    (b"IQ", 23),
    (b"IS", 26),
    (b"IT", 27),
    (b"JO", 30),
    (b"KW", 30),
    (b"KZ", 20),
    (b"LB", 28),
    (b"LC", 32),
    (b"LI", 21),
    (b"LT", 20),
    (b"LU", 20),
    (b"LV", 21),
    (b"LY", 25),
    (b"MC", 27),
    (b"MD", 24),
    (b"ME", 22),
    (b"MK", 19),
    (b"MN", 20),
    (b"MR", 27),
    (b"MT", 31),
    (b"MU", 30),
    (b"NI", 28),
    (b"NL", 18),
    (b"NO", 15),
    (b"OM", 23),
    (b"PK", 24),
    (b"PL", 28),
    (b"PS", 29),
    (b"PT", 25),
    (b"QA", 29),
    (b"RO", 24),
    (b"RS", 22),
    (b"RU", 33),
    (b"SA", 24),
    (b"SC", 31),
    (b"SD", 18),
    (b"SE", 24),
    (b"SI", 19),
    (b"SK", 24),
    (b"SM", 27),
    (b"SO", 23),
    (b"ST", 25),
    (b"SV", 28),
    (b"TL", 23),
    (b"TN", 24),
    (b"TR", 26),
    (b"UA", 29),
    (b"VA", 22),
    (b"VG", 24),
    (b"XK", 20),
    (b"YE", 30),
];

/// The IBAN length for a two-letter country code (uppercase).
pub(crate) fn iban_length(country: &[u8]) -> Option<usize> {
    IBAN_LENGTHS
        .iter()
        .find(|(c, _)| c.as_slice() == country)
        .map(|&(_, n)| n)
}

/// ISO 13616 mod-97 check on an uppercase IBAN without spaces.
pub(crate) fn iban_mod97(iban: &[u8]) -> bool {
    if iban.len() < 5 {
        return false;
    }
    let (head, tail) = iban.split_at(4);
    let mut rem = 0u32;
    for &b in tail.iter().chain(head) {
        match b {
            b'0'..=b'9' => rem = (rem * 10 + u32::from(b - b'0')) % 97,
            b'A'..=b'Z' => rem = (rem * 100 + u32::from(b - b'A' + 10)) % 97,
            _ => return false,
        }
    }
    rem == 1
}

/// UK NHS number: weights 10..2 on the first nine digits, check digit 11 - sum mod 11.
pub(crate) fn uk_nhs(digits: &[u8]) -> bool {
    if digits.len() != 10 {
        return false;
    }
    let sum: u32 = digits
        .iter()
        .take(9)
        .zip((2..=10).rev())
        .map(|(&d, w)| u32::from(d - b'0') * w)
        .sum();
    let check = match 11 - sum % 11 {
        11 => 0,
        10 => return false,
        c => c,
    };
    digits.get(9).is_some_and(|&d| u32::from(d - b'0') == check)
}

const VERHOEFF_D: [[u8; 10]; 10] = [
    [0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
    [1, 2, 3, 4, 0, 6, 7, 8, 9, 5],
    [2, 3, 4, 0, 1, 7, 8, 9, 5, 6],
    [3, 4, 0, 1, 2, 8, 9, 5, 6, 7],
    [4, 0, 1, 2, 3, 9, 5, 6, 7, 8],
    [5, 9, 8, 7, 6, 0, 4, 3, 2, 1],
    [6, 5, 9, 8, 7, 1, 0, 4, 3, 2],
    [7, 6, 5, 9, 8, 2, 1, 0, 4, 3],
    [8, 7, 6, 5, 9, 3, 2, 1, 0, 4],
    [9, 8, 7, 6, 5, 4, 3, 2, 1, 0],
];
const VERHOEFF_P: [[u8; 10]; 8] = [
    [0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
    [1, 5, 7, 6, 2, 8, 3, 0, 9, 4],
    [5, 8, 0, 3, 7, 9, 6, 1, 4, 2],
    [8, 9, 1, 6, 0, 4, 3, 5, 2, 7],
    [9, 4, 5, 3, 1, 2, 8, 7, 6, 0],
    [4, 2, 8, 6, 5, 7, 3, 9, 0, 1],
    [2, 7, 9, 3, 8, 0, 6, 4, 1, 5],
    [7, 0, 4, 6, 9, 1, 3, 2, 5, 8],
];

/// Verhoeff check over all digits (the last one is the check digit).
pub(crate) fn verhoeff(digits: &[u8]) -> bool {
    let mut c = 0usize;
    for (i, &d) in digits.iter().rev().enumerate() {
        let v = usize::from(d.wrapping_sub(b'0'));
        let (Some(prow), Some(crow)) = (VERHOEFF_P.get(i % 8), VERHOEFF_D.get(c)) else {
            return false;
        };
        let Some(&pv) = prow.get(v) else { return false };
        c = usize::from(crow.get(usize::from(pv)).copied().unwrap_or(1));
    }
    !digits.is_empty() && c == 0
}

/// India Aadhaar: 12 digits, first digit 2–9, Verhoeff.
pub(crate) fn in_aadhaar(digits: &[u8]) -> bool {
    digits.len() == 12 && digits.first().is_some_and(|&d| d >= b'2') && verhoeff(digits)
}

const NIF_LETTERS: &[u8; 23] = b"TRWAGMYFPDXBNJZSQVHLCKE";

/// Spain NIF (8 digits + letter) or NIE (X/Y/Z + 7 digits + letter), uppercase.
pub(crate) fn es_nif(id: &[u8]) -> bool {
    let (Some((&letter, body)), 9) = (id.split_last(), id.len()) else {
        return false;
    };
    let mut n = 0u32;
    for (k, &b) in body.iter().enumerate() {
        let v = match (k, b) {
            (0, b'X') => 0,
            (0, b'Y') => 1,
            (0, b'Z') => 2,
            (_, b'0'..=b'9') => u32::from(b - b'0'),
            _ => return false,
        };
        n = n * 10 + v;
    }
    NIF_LETTERS.get((n % 23) as usize) == Some(&letter)
}

/// Italy codice fiscale: 16 uppercase characters with the shape LLLLLL DD L DD L DDD L (where
/// digits may be replaced by the "omocodia" letters) and the check letter.
pub(crate) fn it_codice_fiscale(cf: &[u8]) -> bool {
    const ODD: [u32; 26] = [
        1, 0, 5, 7, 9, 13, 15, 17, 19, 21, 2, 4, 18, 20, 11, 3, 6, 8, 12, 14, 16, 10, 22, 25, 24,
        23,
    ];
    const OMOCODIA: &[u8] = b"LMNPQRSTUV";
    if cf.len() != 16 {
        return false;
    }
    let shape_ok = cf.iter().enumerate().all(|(i, &b)| match i {
        0..=5 | 8 | 11 | 15 => b.is_ascii_uppercase(),
        _ => b.is_ascii_digit() || OMOCODIA.contains(&b),
    });
    if !shape_ok || !b"ABCDEHLMPRST".contains(&cf[8]) {
        return false;
    }
    let mut sum = 0u32;
    for (i, &b) in cf.iter().take(15).enumerate() {
        let v = match b {
            b'0'..=b'9' => u32::from(b - b'0'),
            b'A'..=b'Z' => u32::from(b - b'A'),
            _ => return false,
        };
        // Positions are 1-based in the standard: odd positions use the permuted table.
        sum += if i % 2 == 0 {
            ODD.get(v as usize).copied().unwrap_or(0)
        } else {
            v
        };
    }
    cf.get(15).is_some_and(|&c| u32::from(c - b'A') == sum % 26)
}

/// Germany Steuerliche Identifikationsnummer: 11 digits, no leading zero, in the first ten
/// digits exactly one digit repeats (twice or three times, three never adjacent), and the
/// ISO 7064 MOD 11,10 check digit.
pub(crate) fn de_steuer_id(digits: &[u8]) -> bool {
    if digits.len() != 11 || digits.first() == Some(&b'0') {
        return false;
    }
    let mut counts = [0u8; 10];
    for &d in digits.iter().take(10) {
        if let Some(c) = counts.get_mut(usize::from(d - b'0')) {
            *c += 1;
        }
    }
    let repeated: Vec<u8> = counts.iter().copied().filter(|&c| c > 1).collect();
    if repeated.len() != 1 || !matches!(repeated.first(), Some(2 | 3)) {
        return false;
    }
    if repeated.first() == Some(&3)
        && digits
            .get(..10)
            .unwrap_or_default()
            .windows(3)
            .any(|w| w[0] == w[1] && w[1] == w[2])
    {
        return false;
    }
    let mut product = 10u32;
    for &d in digits.iter().take(10) {
        let mut sum = (u32::from(d - b'0') + product) % 10;
        if sum == 0 {
            sum = 10;
        }
        product = (sum * 2) % 11;
    }
    let check = match 11 - product {
        10 => 0,
        c => c,
    };
    digits
        .get(10)
        .is_some_and(|&d| u32::from(d - b'0') == check)
}

/// Netherlands BSN: nine digits, weighted sum 9..2 minus the last digit divisible by 11.
pub(crate) fn nl_bsn(digits: &[u8]) -> bool {
    if digits.len() != 9 {
        return false;
    }
    let mut sum: i64 = 0;
    for (i, &d) in digits.iter().enumerate() {
        let v = i64::from(d - b'0');
        sum += if i == 8 { -v } else { v * (9 - i as i64) };
    }
    sum > 0 && sum % 11 == 0
}

/// France NIR: 15 digits; sex 1/2 (or 3, 4, 7, 8 for provisional numbers), month 01–12 or
/// 20–42 or 50–99 (unknown), and the key 97 - (first 13 digits mod 97).
pub(crate) fn fr_nir(digits: &[u8]) -> bool {
    if digits.len() != 15
        || !matches!(
            digits.first(),
            Some(b'1' | b'2' | b'3' | b'4' | b'7' | b'8')
        )
    {
        return false;
    }
    let month = prefix_num(digits.get(3..).unwrap_or_default(), 2);
    if !matches!(month, 1..=12 | 20..=42 | 50..=99) {
        return false;
    }
    let body = digits
        .iter()
        .take(13)
        .fold(0u64, |acc, &d| acc * 10 + u64::from(d - b'0'));
    let key = u64::from(prefix_num(digits.get(13..).unwrap_or_default(), 2));
    97 - body % 97 == key
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn luhn_and_networks() {
        assert!(luhn(b"4111111111111111"));
        assert!(!luhn(b"4111111111111112"));
        assert_eq!(card_network(b"4111111111111111"), Some("visa"));
        assert_eq!(card_network(b"5555555555554444"), Some("mastercard"));
        assert_eq!(card_network(b"2223003122003222"), Some("mastercard"));
        assert_eq!(card_network(b"378282246310005"), Some("amex"));
        assert_eq!(card_network(b"6011111111111117"), Some("discover"));
        assert_eq!(card_network(b"3530111333300000"), Some("jcb"));
        assert_eq!(card_network(b"30569309025904"), Some("diners"));
        assert_eq!(card_network(b"6200000000000005"), Some("unionpay"));
        assert_eq!(card_network(b"1234567812345670"), None);
    }

    #[test]
    fn ssn_rules() {
        assert!(us_ssn(b"123456789"));
        assert!(!us_ssn(b"000123456"));
        assert!(!us_ssn(b"666123456"));
        assert!(!us_ssn(b"923456789"));
        assert!(!us_ssn(b"123006789"));
        assert!(!us_ssn(b"123450000"));
    }

    #[test]
    fn iban() {
        assert_eq!(iban_length(b"GB"), Some(22));
        assert!(iban_mod97(b"GB82WEST12345698765432"));
        assert!(iban_mod97(b"DE89370400440532013000"));
        assert!(!iban_mod97(b"GB82WEST12345698765433"));
    }

    #[test]
    fn national_ids() {
        assert!(uk_nhs(b"9434765919"));
        assert!(!uk_nhs(b"9434765918"));
        assert!(verhoeff(b"2363"));
        assert!(!verhoeff(b"2364"));
        assert!(in_aadhaar(b"234123412346"));
        assert!(es_nif(b"12345678Z"));
        assert!(!es_nif(b"12345678A"));
        assert!(es_nif(b"X1234567L"));
        assert!(it_codice_fiscale(b"RSSMRA85T10A562S"));
        assert!(!it_codice_fiscale(b"RSSMRA85T10A562T"));
        assert!(de_steuer_id(b"86095742719"));
        assert!(!de_steuer_id(b"86095742718"));
        assert!(nl_bsn(b"111222333"));
        assert!(!nl_bsn(b"111222334"));
        assert!(fr_nir(b"255081416802538"));
        assert!(!fr_nir(b"255081416802539"));
    }
}
