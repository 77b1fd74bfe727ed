//! Tamper tests: editing, deleting, reordering or inserting a line makes `verify` fail at that
//! line, and untouched logs verify.
// Helpers outside `#[test]` functions are test code too.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;

use portcullis_audit::{
    Action, AuditEvent, Chain, ChainStart, Content, ContentMode, Latency, Line, Principal, Problem,
    PublicKey, Report, Signer, Stage, Target, TextPart, TokenUsage, verify, verify_with,
};
use proptest::prelude::*;
use serde_json::Value;

fn event(n: u64) -> AuditEvent {
    let text = format!("question {n}: mail bob@example.com");
    AuditEvent {
        schema_version: portcullis_audit::SCHEMA_VERSION,
        time_unix_nano: 1_767_225_600_000_000_000 + n * 1_000_000,
        request_id: format!("{n:016x}"),
        principal: Principal {
            id: "alice".to_owned(),
            tenant: Some("acme".to_owned()),
        },
        route: "chat".to_owned(),
        stage: if n.is_multiple_of(2) {
            Stage::Request
        } else {
            Stage::ToolCall
        },
        target: if n.is_multiple_of(2) {
            Target::Model {
                model: "gpt-4o".to_owned(),
            }
        } else {
            Target::Tool {
                server: "files".to_owned(),
                tool: "read".to_owned(),
            }
        },
        action: if n.is_multiple_of(5) {
            Action::Redact
        } else {
            Action::Allow
        },
        reasons: vec![format!("reason {n}")],
        code: n.is_multiple_of(5).then(|| "pii.email".to_owned()),
        categories: BTreeMap::from([
            ("pii.email".to_owned(), 0.9),
            ("injection".to_owned(), 0.05),
        ]),
        bundle_hash: "3f2a".to_owned(),
        latency: Latency {
            detectors_us: 100 + n,
            policy_us: 20,
        },
        tokens: Some(TokenUsage {
            prompt: 12,
            completion: n,
        }),
        content: Some(Content::capture(
            ContentMode::RedactedExcerpt { max_chars: 40 },
            [TextPart {
                label: "messages[0].content",
                raw: &text,
                redacted: &text.replace("bob@example.com", "[EMAIL]"),
            }],
        )),
    }
}

fn signer() -> Signer {
    Signer::from_seed(&[42; 32]).unwrap()
}

/// `count` records of one instance with a checkpoint after every `every`th record.
fn log(instance: &str, count: u64, every: u64) -> Vec<String> {
    let signer = signer();
    let mut chain = Chain::new(instance);
    let mut lines = Vec::new();
    for n in 0..count {
        let record = chain.append(event(n)).unwrap();
        lines.push(Line::from(record.clone()).to_json_line().unwrap());
        if (n + 1) % every == 0 {
            let checkpoint = signer.checkpoint(&record, 1_767_225_600_000_000_000 + n);
            lines.push(Line::from(checkpoint).to_json_line().unwrap());
        }
    }
    lines
}

fn check(lines: &[String]) -> Report {
    verify(lines.iter().map(String::as_str), &[signer().public_key()])
}

/// Asserts `verify` fails at 1-based `line` with a problem `matches` accepts.
fn fails_at(lines: &[String], line: usize, matches: impl Fn(&Problem) -> bool) {
    let report = check(lines);
    let failure = report.failure.clone().expect("verify must fail");
    assert_eq!(failure.line, line, "{report:#?}");
    assert!(matches(&failure.problem), "{report:#?}");
}

/// Line index (0-based) of record `seq` in a `log(_, _, 10)`: records plus the checkpoints
/// before them.
fn index_of_record(seq: usize) -> usize {
    seq + seq / 10
}

fn edit(line: &str, edit: impl FnOnce(&mut Value)) -> String {
    let mut value: Value = serde_json::from_str(line).unwrap();
    edit(&mut value);
    serde_json::to_string(&value).unwrap()
}

#[test]
fn untouched_chain_of_50_with_checkpoints_every_10_verifies() {
    let lines = log("gw-1", 50, 10);
    let report = check(&lines);
    assert!(report.is_ok(), "{report:#?}");
    assert_eq!(report.records, 50);
    assert_eq!(report.checkpoints, 5);
    assert_eq!(report.instances[0].seqs, Some((0, 49)));
    assert_eq!(report.instances[0].unsigned_tail, 0);
}

#[test]
fn unsigned_tail_is_reported_but_not_an_error() {
    let lines = log("gw-1", 47, 10);
    let report = check(&lines);
    assert!(report.is_ok(), "{report:#?}");
    assert_eq!(report.instances[0].last_checkpoint, Some(39));
    assert_eq!(report.instances[0].unsigned_tail, 7);
}

#[test]
fn interleaved_instances_verify_independently() {
    let a = log("gw-a", 25, 10);
    let b = log("gw-b", 25, 10);
    let mut lines = Vec::new();
    for pair in a.iter().zip(&b) {
        lines.push(pair.0.clone());
        lines.push(pair.1.clone());
    }
    let report = check(&lines);
    assert!(report.is_ok(), "{report:#?}");
    assert_eq!(report.records, 50);
    assert_eq!(report.instances.len(), 2);
}

#[test]
fn key_order_and_whitespace_of_a_line_do_not_matter() {
    let mut lines = log("gw-1", 12, 10);
    lines[3] = serde_json::to_string_pretty(&serde_json::from_str::<Value>(&lines[3]).unwrap())
        .unwrap()
        .replace('\n', " ");
    let reversed: serde_json::Map<String, Value> =
        serde_json::from_str::<serde_json::Map<_, _>>(&lines[5])
            .unwrap()
            .into_iter()
            .rev()
            .collect();
    lines[5] = serde_json::to_string(&reversed).unwrap();
    assert!(check(&lines).is_ok());
}

#[test]
fn editing_a_field_fails_at_that_record() {
    let mut lines = log("gw-1", 50, 10);
    let at = index_of_record(23);
    lines[at] = edit(&lines[at], |v| v["event"]["action"] = "deny".into());
    fails_at(&lines, at + 1, |p| matches!(p, Problem::BadHash { .. }));
}

#[test]
fn editing_a_record_and_recomputing_its_hash_breaks_the_next_link() {
    let mut lines = log("gw-1", 50, 10);
    let at = index_of_record(23);
    let Line::Record(mut record) = Line::parse(&lines[at]).unwrap() else {
        panic!()
    };
    record.event.action = Action::Deny;
    let Line::Record(prev) = Line::parse(&lines[at - 1]).unwrap() else {
        panic!()
    };
    let forged = Chain::resume(&prev).append(record.event).unwrap();
    lines[at] = Line::from(forged).to_json_line().unwrap();
    fails_at(&lines, at + 2, |p| matches!(p, Problem::BrokenLink { .. }));
}

#[test]
fn deleting_a_record_fails_at_its_successor() {
    let mut lines = log("gw-1", 50, 10);
    let at = index_of_record(23);
    lines.remove(at);
    fails_at(&lines, at + 1, |p| {
        *p == Problem::SeqGap {
            expected: 23,
            found: 24,
        }
    });
}

#[test]
fn deleting_the_record_a_checkpoint_covers_fails_at_the_checkpoint() {
    let mut lines = log("gw-1", 50, 10);
    let at = index_of_record(29);
    lines.remove(at);
    fails_at(&lines, at + 1, |p| {
        matches!(
            p,
            Problem::CheckpointMismatch {
                checkpoint_seq: 29,
                chain_seq: Some(28)
            }
        )
    });
}

#[test]
fn swapping_two_records_fails_at_the_first() {
    let mut lines = log("gw-1", 50, 10);
    let at = index_of_record(23);
    lines.swap(at, at + 1);
    fails_at(&lines, at + 1, |p| {
        *p == Problem::Reordered {
            expected: 23,
            found: 24,
        }
    });
}

#[test]
fn repeating_a_record_fails_at_the_copy() {
    let mut lines = log("gw-1", 50, 10);
    let at = index_of_record(23);
    lines.insert(at + 1, lines[at].clone());
    fails_at(&lines, at + 2, |p| *p == Problem::Duplicate { seq: 23 });
}

#[test]
fn inserting_a_forged_record_fails_at_the_insert_or_the_next_record() {
    // Forged with a correct link and hash: only the next record shows it.
    let mut lines = log("gw-1", 50, 10);
    let at = index_of_record(23);
    let Line::Record(prev) = Line::parse(&lines[at - 1]).unwrap() else {
        panic!()
    };
    let forged = Chain::resume(&prev).append(event(999)).unwrap();
    lines.insert(at, Line::from(forged).to_json_line().unwrap());
    fails_at(&lines, at + 2, |p| {
        *p == Problem::Reordered {
            expected: 24,
            found: 23,
        }
    });

    // Forged after a record it does not link to: the link shows it at once.
    let mut lines = log("gw-1", 50, 10);
    let Line::Record(prev) = Line::parse(&lines[at - 2]).unwrap() else {
        panic!()
    };
    let mut forged = Chain::resume(&prev).append(event(999)).unwrap();
    forged.seq = 23;
    let forged = edit(&Line::from(forged).to_json_line().unwrap(), |_| {});
    let mut value: Value = serde_json::from_str(&forged).unwrap();
    value.as_object_mut().unwrap().remove("hash");
    let recomputed = portcullis_audit::Digest::of(
        portcullis_audit::canonical_json(&{
            let mut body = value.clone();
            body.as_object_mut().unwrap().remove("type");
            body
        })
        .as_bytes(),
    );
    value["hash"] = recomputed.to_string().into();
    lines.insert(at, value.to_string());
    fails_at(&lines, at + 1, |p| matches!(p, Problem::BrokenLink { .. }));
}

#[test]
fn editing_a_checkpoint_fails_at_the_checkpoint() {
    let mut lines = log("gw-1", 50, 10);
    let at = index_of_record(29) + 1;
    lines[at] = edit(&lines[at], |v| v["time_unix_nano"] = 1.into());
    fails_at(&lines, at + 1, |p| *p == Problem::BadSignature);
}

#[test]
fn a_checkpoint_by_an_unknown_key_fails_at_the_checkpoint() {
    let mut lines = log("gw-1", 50, 10);
    let at = index_of_record(29) + 1;
    let Line::Record(record) = Line::parse(&lines[at - 1]).unwrap() else {
        panic!()
    };
    let stranger = Signer::from_seed(&[9; 32]).unwrap();
    lines[at] = Line::from(stranger.checkpoint(&record, 5))
        .to_json_line()
        .unwrap();
    fails_at(&lines, at + 1, |p| {
        *p == Problem::UnknownKey {
            key_id: stranger.public_key().key_id(),
        }
    });
}

#[test]
fn garbage_fails_as_unparsable() {
    let mut lines = log("gw-1", 20, 10);
    lines[4] = "{\"type\":\"record\"".to_owned();
    fails_at(&lines, 5, |p| matches!(p, Problem::Unparsable { .. }));
}

#[test]
fn partial_start_verifies_a_log_cut_at_a_checkpoint() {
    let lines = log("gw-1", 50, 10);
    let from = index_of_record(19) + 1; // the checkpoint of seq 19
    let rest = &lines[from..];
    let keys = [signer().public_key()];
    assert!(!check(rest).is_ok());
    let report = verify_with(
        rest.iter().map(String::as_str),
        &keys,
        ChainStart::AllowPartial,
    );
    assert!(report.is_ok(), "{report:#?}");
    assert_eq!(report.instances[0].seqs, Some((20, 49)));
    // The anchoring checkpoint is signed, so the first record must link to it.
    let mut cut = rest.to_vec();
    cut.remove(1);
    let report = verify_with(
        cut.iter().map(String::as_str),
        &keys,
        ChainStart::AllowPartial,
    );
    assert_eq!(
        report.failure.unwrap().problem,
        Problem::SeqGap {
            expected: 20,
            found: 21
        }
    );
}

#[test]
fn public_keys_load_from_hex() {
    let key = signer().public_key();
    let hex: String = key.as_bytes().iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(PublicKey::from_hex(&hex).unwrap(), key);
    assert!(PublicKey::from_hex("abc").is_err());
}

#[derive(Debug, Clone)]
enum Mutation {
    Delete(usize),
    Swap(usize),
    EditHashByte {
        line: usize,
        offset: usize,
        byte: u8,
    },
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        any::<usize>().prop_map(Mutation::Delete),
        any::<usize>().prop_map(Mutation::Swap),
        (any::<usize>(), 0usize..64, any::<u8>())
            .prop_map(|(line, offset, byte)| Mutation::EditHashByte { line, offset, byte }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn a_single_line_mutation_never_verifies(
        count in 2u64..30,
        every in 1u64..8,
        mutation in mutation(),
    ) {
        let mut lines = log("gw-p", count, every);
        // Mutations of the last line or the unsigned tail may be undetectable (ADR 0008); keep
        // them before the last checkpoint.
        let last_checkpoint = lines.iter().rposition(|l| l.contains("\"type\":\"checkpoint\""));
        prop_assume!(last_checkpoint.is_some_and(|at| at >= 1));
        let span = last_checkpoint.unwrap_or_default();
        match mutation {
            Mutation::Delete(at) => {
                // Deleting a checkpoint line is not detectable (ADR 0008): delete records.
                let at = at % (span + 1);
                prop_assume!(lines[at].contains("\"type\":\"record\""));
                lines.remove(at);
            }
            Mutation::Swap(at) => {
                let at = at % span;
                prop_assume!(lines[at] != lines[at + 1]);
                lines.swap(at, at + 1);
            }
            Mutation::EditHashByte { line, offset, byte } => {
                let at = line % (span + 1);
                let key = if lines[at].contains("\"prev_hash\"") && offset % 2 == 0 {
                    "\"prev_hash\":\""
                } else {
                    "\"hash\":\""
                };
                let start = lines[at].find(key).unwrap() + key.len();
                let mut bytes = lines[at].clone().into_bytes();
                prop_assume!(bytes[start + offset] != byte);
                bytes[start + offset] = byte;
                lines[at] = String::from_utf8_lossy(&bytes).into_owned();
            }
        }
        let report = check(&lines);
        prop_assert!(!report.is_ok(), "mutation {:?} verified: {:#?}", mutation, report);
    }
}

/// Scores are full `f64`s (detector output): a long one must read back bit for bit, or the
/// verifier's hash of the parsed line differs from the writer's. This failed before serde_json's
/// `float_roundtrip` was enabled (the gateway's first end-to-end run hit 0.9640650749206543).
#[test]
fn records_with_long_float_scores_verify() {
    let mut chain = Chain::new("floats");
    let mut lines = Vec::new();
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    for n in 0..200 {
        let mut event = event(n);
        // xorshift: many different 17-digit floats in 0..1.
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let score = (state >> 11) as f64 / (1u64 << 53) as f64;
        event.categories.insert("injection".to_owned(), score);
        event
            .categories
            .insert("pii.email".to_owned(), 0.964_065_074_920_654_3);
        let record = chain.append(event).unwrap();
        lines.push(Line::from(record).to_json_line().unwrap());
    }
    let report = check(&lines);
    assert!(report.is_ok(), "{report:?}");
}
