//! `docs/rules.md` lists every built-in injection rule with its scores and what it catches; it
//! must match the rule tables. Regenerate with
//! `PORTCULLIS_WRITE_RULES_DOC=1 cargo test -p portcullis-detect --test rules_doc`.

use std::path::PathBuf;

use portcullis_detect::injection::rules::{REPEATED_TOKEN, RULES, Rule};

fn row(out: &mut String, rule: &Rule) {
    let category = rule.category.as_str();
    let doc = rule.doc.replace('|', "\\|");
    out.push_str(&format!(
        "| `{}` | {} | {:.2} | {:.2} | {} |\n",
        rule.id, category, rule.prompt_score, rule.data_score, doc
    ));
}

fn render() -> String {
    let mut rules: Vec<&Rule> = RULES.iter().collect();
    rules.push(&REPEATED_TOKEN);
    rules.sort_by_key(|r| r.id);
    let mut out = String::from(
        "# Injection and jailbreak rules\n\n\
         Generated from `crates/detect/src/injection/rules/` by\n\
         `PORTCULLIS_WRITE_RULES_DOC=1 cargo test -p portcullis-detect --test rules_doc`; a test fails\n\
         when this page and the rule tables differ. How the rules are combined with the classifier,\n\
         and how well they work, is in [`detection.md`](detection.md).\n\n\
         - **prompt** is the score in `user_prompt`, `system` and `assistant` text, **data** the score\n\
         \x20 in `tool_output` and `document` text (0 = the rule does not fire there).\n\
         - Scores of one text combine as a noisy-or, each rule counted once; the default threshold\n\
         \x20 is 0.5, so a rule scoring below 0.5 only adds evidence to others.\n\
         - Rules match lowercased text in every normaliser view (canonical, leetspeak-folded,\n\
         \x20 despaced, decoded), so homoglyphs, tag characters and encodings do not hide a match.\n\n\
         | rule | category | prompt | data | what it catches |\n|---|---|---:|---:|---|\n",
    );
    for rule in rules {
        row(&mut out, rule);
    }
    out
}

#[test]
fn rules_doc_matches_the_rule_tables() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/rules.md");
    let generated = render();
    if std::env::var_os("PORTCULLIS_WRITE_RULES_DOC").is_some() {
        std::fs::write(&path, &generated).unwrap();
    }
    let checked_in = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        checked_in == generated,
        "docs/rules.md is out of date; run PORTCULLIS_WRITE_RULES_DOC=1 cargo test -p portcullis-detect --test rules_doc"
    );
}
