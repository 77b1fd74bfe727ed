//! `portcullis audit verify` on real files: an intact log verifies (exit 0), a tampered one
//! fails at the tampered line (exit 1), and a missing key is a usage error (exit 2).

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;

use common::{portcullis, stdout};
use portcullis_audit::{
    Action, AuditEvent, Chain, Latency, Line, Principal, SCHEMA_VERSION, Signer, Stage, Target,
};

fn event(n: u64) -> AuditEvent {
    AuditEvent {
        schema_version: SCHEMA_VERSION,
        time_unix_nano: 1_767_225_600_000_000_000 + n,
        request_id: format!("{n:016x}"),
        principal: Principal {
            id: "anonymous".to_owned(),
            tenant: None,
        },
        route: "chat_completions".to_owned(),
        stage: Stage::Request,
        target: Target::Model {
            model: "gpt-4o".to_owned(),
        },
        action: Action::Allow,
        reasons: Vec::new(),
        code: None,
        categories: BTreeMap::new(),
        bundle_hash: "sha256:00".to_owned(),
        latency: Latency {
            detectors_us: 10,
            policy_us: 5,
        },
        tokens: None,
        content: None,
    }
}

/// 20 records with a checkpoint after every 5th.
fn log(signer: &Signer) -> Vec<String> {
    let mut chain = Chain::new("gw-1");
    let mut lines = Vec::new();
    for n in 0..20 {
        let record = chain.append(event(n)).unwrap();
        lines.push(Line::from(record.clone()).to_json_line().unwrap());
        if (n + 1) % 5 == 0 {
            lines.push(
                Line::from(signer.checkpoint(&record, n))
                    .to_json_line()
                    .unwrap(),
            );
        }
    }
    lines
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn an_intact_log_verifies_and_a_tampered_one_names_its_line() {
    let signer = Signer::from_seed(&[7; 32]).unwrap();
    let key = hex(signer.public_key().as_bytes());
    let dir = tempfile::tempdir().unwrap();
    let lines = log(&signer);
    let good = dir.path().join("good.jsonl");
    std::fs::write(&good, lines.join("\n") + "\n").unwrap();
    let out = portcullis(
        &["audit", "verify", good.to_str().unwrap(), "--key", &key],
        None,
    );
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    assert!(
        stdout(&out).contains("ok: 20 records, 4 checkpoints"),
        "{}",
        stdout(&out)
    );

    // Change the action of the record on line 8 (record 6: lines 1-5 records, 6 a checkpoint).
    let mut tampered = lines.clone();
    tampered[7] = tampered[7].replace("\"action\":\"allow\"", "\"action\":\"deny\"");
    assert_ne!(tampered[7], lines[7]);
    let bad = dir.path().join("bad.jsonl");
    std::fs::write(&bad, tampered.join("\n") + "\n").unwrap();
    let key_file = dir.path().join("key.hex");
    std::fs::write(&key_file, &key).unwrap();
    let out = portcullis(
        &[
            "audit",
            "verify",
            bad.to_str().unwrap(),
            "--key-file",
            key_file.to_str().unwrap(),
            "--json",
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let report: serde_json::Value = serde_json::from_str(stdout(&out).trim()).unwrap();
    assert_eq!(report["ok"], false);
    assert_eq!(report["failure"]["line"], 8, "{report}");
    assert_eq!(report["failure"]["seq"], 6, "{report}");

    // Signed by another key: the first checkpoint fails.
    let other = hex(Signer::from_seed(&[8; 32]).unwrap().public_key().as_bytes());
    let out = portcullis(
        &["audit", "verify", good.to_str().unwrap(), "--key", &other],
        None,
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stdout(&out).contains("FAILED at line 6"),
        "{}",
        stdout(&out)
    );

    // No key at all is a usage error.
    let out = portcullis(&["audit", "verify", good.to_str().unwrap()], None);
    assert_eq!(out.status.code(), Some(2));
}
