use super::*;

fn found(text: &str) -> Vec<(PiiKind, &str, f32)> {
    PiiDetector::new()
        .scan_text(text)
        .into_iter()
        .map(|m| (m.kind, &text[m.range], m.score))
        .collect()
}

fn kinds(text: &str, min: f32) -> Vec<(PiiKind, &str)> {
    found(text)
        .into_iter()
        .filter(|f| f.2 >= min)
        .map(|f| (f.0, f.1))
        .collect()
}

#[test]
fn emails() {
    assert_eq!(
        kinds("write to jane.doe+x@mail.example.org, or a@b", 0.5),
        vec![(PiiKind::Email, "jane.doe+x@mail.example.org")]
    );
    assert!(kinds("logo@2x.png and npm i foo@1.2.3", 0.1).is_empty());
}

#[test]
fn cards_need_luhn_and_issuer() {
    assert_eq!(
        kinds("card: 4111-1111-1111-1111", 0.9),
        vec![(PiiKind::PaymentCard, "4111-1111-1111-1111")]
    );
    assert_eq!(
        kinds("amex 3782 822463 10005", 0.9),
        vec![(PiiKind::PaymentCard, "3782 822463 10005")]
    );
    assert!(kinds("ref 4111-1111-1111-1112", 0.5).is_empty());
    // Luhn-valid but no issuer starts with 1.
    assert!(kinds("id 1234567812345670", 0.5).is_empty());
}

#[test]
fn ssn_scores_follow_format_and_context() {
    let dashed = found("it is 123-45-6789");
    assert_eq!(dashed[0].0, PiiKind::UsSsn);
    assert!(dashed[0].2 >= 0.8);
    let bare = found("number 123456789 here");
    assert!(bare.iter().all(|f| f.2 < 0.5), "{bare:?}");
    let ctx = found("my ssn is 123456789");
    assert_eq!(ctx[0].0, PiiKind::UsSsn);
    assert!(ctx[0].2 >= 0.8);
    assert!(kinds("it is 666-45-6789 or 123-00-6789", 0.1).is_empty());
}

#[test]
fn phones() {
    for p in [
        "+1-984-182-0190",
        "+44 20 7946 0958",
        "(555) 234-5678",
        "555.234.5678",
        "07700 900 123",
        "01 23 45 67 89",
        "+91 98765 43210",
        "030 1234 5678",
        "+46 (0)8 928 571 38",
    ] {
        let text = format!("reach me at {p} today");
        assert_eq!(kinds(&text, 0.5), vec![(PiiKind::Phone, p)], "{p}");
    }
    assert_eq!(
        kinds("call 555-234-5678x1234", 0.5)[0].1,
        "555-234-5678x1234"
    );
}

#[test]
fn dates_versions_and_amounts_are_not_pii() {
    for t in [
        "on 2024-05-12 we met",
        "on 12/05/2024 we met",
        "on 12.05.24 we met",
        "from 2019-2020",
        "version 1.2.3",
        "costs $1234567890",
        "pi is 3.14159265358979",
        "about 1,000,000 people",
    ] {
        assert!(kinds(t, 0.5).is_empty(), "{t}: {:?}", found(t));
    }
}

#[test]
fn ip_addresses() {
    assert_eq!(
        kinds("server ip 192.168.1.20 and fe80::1ff:fe23:4567:890a", 0.5),
        vec![
            (PiiKind::Ipv6, "fe80::1ff:fe23:4567:890a"),
            (PiiKind::Ipv4, "192.168.1.20")
        ]
    );
    assert!(kinds("at 999.1.1.1 and std::vector", 0.1).is_empty());
}

#[test]
fn iban() {
    assert_eq!(
        kinds("pay GB82 WEST 1234 5698 7654 32 now", 0.9),
        vec![(PiiKind::Iban, "GB82 WEST 1234 5698 7654 32")]
    );
    assert_eq!(
        kinds("iban de89370400440532013000", 0.9),
        vec![(PiiKind::Iban, "de89370400440532013000")]
    );
    assert_eq!(
        kinds("BE68 5390 0754 7034 and more", 0.9),
        vec![(PiiKind::Iban, "BE68 5390 0754 7034")]
    );
    assert!(kinds("GB82 WEST 1234 5698 7654 33", 0.1).is_empty());
}

#[test]
fn national_identifiers_with_context() {
    let cases = [
        ("NHS number 943 476 5919", PiiKind::UkNhs),
        ("Aadhaar: 2341 2341 2346", PiiKind::InAadhaar),
        ("DNI 12345678Z", PiiKind::EsNif),
        ("NIE X1234567L", PiiKind::EsNif),
        ("codice fiscale RSSMRA85T10A562S", PiiKind::ItCodiceFiscale),
        ("Steuer-ID 86095742719", PiiKind::DeSteuerId),
        ("BSN 111222333", PiiKind::NlBsn),
        (
            "numéro de sécurité sociale 2 55 08 14 168 025 38",
            PiiKind::FrNir,
        ),
    ];
    for (text, kind) in cases {
        let f = found(text);
        assert_eq!(f.len(), 1, "{text}: {f:?}");
        assert_eq!(f[0].0, kind, "{text}");
        assert!(f[0].2 >= 0.85, "{text}: {f:?}");
    }
    // Without the context word a bare checksum match stays low.
    assert!(found("ref 111222333").iter().all(|f| f.2 < 0.5));
}

#[test]
fn detector_reports_original_offsets() {
    use crate::finding::{Context, Detector, ScanInput};
    use crate::normalise::Normaliser;
    let text = "mail: ｊｏｅ@ｅｘａｍｐｌｅ.ｃｏｍ";
    let n = Normaliser::default().normalise(text);
    let mut out = Vec::new();
    PiiDetector::new().scan(
        &ScanInput {
            original: text,
            normalised: &n,
            context: Context::UserPrompt,
        },
        &mut out,
    );
    assert_eq!(out.len(), 1);
    assert_eq!(&text[out[0].span()], "ｊｏｅ@ｅｘａｍｐｌｅ.ｃｏｍ");
    assert_eq!(out[0].category.as_str(), "pii.email");
}
