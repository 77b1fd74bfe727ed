//! The per-instance hash chain.
//!
//! Each gateway instance numbers its records from 0. A record's `hash` is SHA-256 over the
//! canonical JSON ([`crate::canonical_json`]) of the record's line object without its `type`
//! and `hash` members, i.e. today `{"event":…,"instance":…,"prev_hash":…,"seq":…}`. Hashing the
//! whole object rather than a fixed list means a member added by a later version is covered too.
//! `prev_hash` is the previous record's `hash`; record 0 links to [`Chain::genesis`].

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::canonical::canonical_json;
use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::event::AuditEvent;

/// Domain prefix of the genesis value, so it can be no record's hash by construction.
const GENESIS_PREFIX: &[u8] = b"portcullis-audit/genesis/v1\n";

/// One chained audit record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// Position in this instance's chain, from 0.
    pub seq: u64,
    /// The writing gateway instance.
    pub instance: String,
    /// The previous record's hash, or the genesis value for record 0.
    pub prev_hash: Digest,
    /// The event.
    pub event: AuditEvent,
    /// SHA-256 of the canonical record without `type` and `hash`.
    pub hash: Digest,
}

/// Appends events to one instance's chain. A pure state machine: it remembers only the next
/// sequence number and the last hash; writing the records out is the caller's job.
#[derive(Debug, Clone)]
pub struct Chain {
    instance: String,
    next_seq: u64,
    prev_hash: Digest,
}

impl Chain {
    /// Starts a new chain for `instance` at seq 0.
    pub fn new(instance: impl Into<String>) -> Self {
        let instance = instance.into();
        let prev_hash = Self::genesis(&instance);
        Self {
            instance,
            next_seq: 0,
            prev_hash,
        }
    }

    /// Continues a chain after its last written record (after a restart).
    pub fn resume(last: &Record) -> Self {
        Self {
            instance: last.instance.clone(),
            next_seq: last.seq.saturating_add(1),
            prev_hash: last.hash,
        }
    }

    /// The `prev_hash` of record 0: SHA-256 of a fixed prefix and the instance id.
    pub fn genesis(instance: &str) -> Digest {
        let mut input = GENESIS_PREFIX.to_vec();
        input.extend_from_slice(instance.as_bytes());
        Digest::of(&input)
    }

    /// The instance this chain belongs to.
    pub fn instance(&self) -> &str {
        &self.instance
    }

    /// The seq the next record gets.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// Chains `event` as the next record. On error the chain is unchanged.
    pub fn append(&mut self, event: AuditEvent) -> Result<Record> {
        self.append_line(event).map(|(record, _)| record)
    }

    /// Like [`Chain::append`], also returning the record's line exactly as
    /// [`crate::Line::to_json_line`] writes it. The event is serialized and canonicalised once
    /// and both the hashed body and the line are assembled from that text (keys in canonical
    /// order: `event`, `hash`, `instance`, `prev_hash`, `seq`, `type`), which halves the work a
    /// writer does per record.
    pub fn append_line(&mut self, event: AuditEvent) -> Result<(Record, String)> {
        let event_text = canonical_json(&serde_json::to_value(&event).map_err(Error::Serialize)?);
        let instance_text = canonical_json(&Value::from(self.instance.as_str()));
        let prev = self.prev_hash.to_string();
        let seq = self.next_seq;
        let body = format!(
            "{{\"event\":{event_text},\"instance\":{instance_text},\"prev_hash\":\"{prev}\",\"seq\":{seq}}}"
        );
        let hash = Digest::of(body.as_bytes());
        let line = format!(
            "{{\"event\":{event_text},\"hash\":\"{hash}\",\"instance\":{instance_text},\"prev_hash\":\"{prev}\",\"seq\":{seq},\"type\":\"record\"}}"
        );
        let record = Record {
            seq,
            instance: self.instance.clone(),
            prev_hash: self.prev_hash,
            event,
            hash,
        };
        self.next_seq = self.next_seq.saturating_add(1);
        self.prev_hash = hash;
        Ok((record, line))
    }
}

/// The hash of a record line's object: every member except `type` and `hash`.
pub(crate) fn record_hash(line_object: &Map<String, Value>) -> Digest {
    let body: Map<String, Value> = line_object
        .iter()
        .filter(|(key, _)| key.as_str() != "type" && key.as_str() != "hash")
        .map(|(key, value)| (key.clone(), value.clone()))
        .collect();
    Digest::of(canonical_json(&Value::Object(body)).as_bytes())
}

#[cfg(test)]
pub(crate) mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::event::{Action, Latency, Principal, Stage, Target};

    pub(crate) fn sample_event(n: u64) -> AuditEvent {
        AuditEvent {
            schema_version: crate::SCHEMA_VERSION,
            time_unix_nano: 1_767_225_600_000_000_000 + n,
            request_id: format!("req-{n}"),
            principal: Principal {
                id: "alice".to_owned(),
                tenant: Some("acme".to_owned()),
            },
            route: "chat".to_owned(),
            stage: Stage::Request,
            target: Target::Model {
                model: "gpt-4o".to_owned(),
            },
            action: Action::Allow,
            reasons: vec![],
            code: None,
            categories: BTreeMap::from([("pii.email".to_owned(), 0.25)]),
            bundle_hash: "b1".to_owned(),
            latency: Latency {
                detectors_us: 120,
                policy_us: 35,
            },
            tokens: None,
            content: None,
        }
    }

    /// The line `append_line` assembles from text is byte for byte the one `Line` serializes,
    /// and its hash is what the verifier computes from the parsed line, for instance names and
    /// events with characters canonical JSON escapes.
    #[test]
    fn assembled_lines_equal_serialized_lines() {
        for instance in ["gw-1", "gw \"quoted\" \u{e9}\u{1F600}\n", ""] {
            let mut chain = Chain::new(instance);
            for n in 0..5 {
                let mut event = sample_event(n);
                event.reasons = vec!["tab\there, \"quote\", \u{7f} and \u{2028}".to_owned()];
                event
                    .categories
                    .insert("injection".to_owned(), 0.964_065_074_920_654_3);
                let (record, line) = chain.append_line(event).unwrap();
                let serialized = crate::Line::from(record.clone()).to_json_line().unwrap();
                assert_eq!(line, serialized);
                let parsed: Value = serde_json::from_str(&line).unwrap();
                assert_eq!(record_hash(parsed.as_object().unwrap()), record.hash);
            }
        }
    }

    #[test]
    fn records_link_and_number_from_zero() {
        let mut chain = Chain::new("gw-1");
        let first = chain.append(sample_event(0)).unwrap();
        let second = chain.append(sample_event(1)).unwrap();
        assert_eq!(first.seq, 0);
        assert_eq!(first.prev_hash, Chain::genesis("gw-1"));
        assert_eq!(second.seq, 1);
        assert_eq!(second.prev_hash, first.hash);
        assert_ne!(Chain::genesis("gw-1"), Chain::genesis("gw-2"));
    }

    #[test]
    fn resume_continues_where_the_chain_stopped() {
        let mut chain = Chain::new("gw-1");
        let first = chain.append(sample_event(0)).unwrap();
        let expected = chain.append(sample_event(1)).unwrap();
        let resumed = Chain::resume(&first).append(sample_event(1)).unwrap();
        assert_eq!(resumed, expected);
    }

    #[test]
    fn hash_ignores_key_order_of_the_line() {
        let mut chain = Chain::new("gw-1");
        let record = chain.append(sample_event(0)).unwrap();
        let value = serde_json::to_value(&record).unwrap();
        let Value::Object(map) = value else {
            panic!("object")
        };
        let reversed: Map<String, Value> = map.into_iter().rev().collect();
        assert_eq!(record_hash(&reversed), record.hash);
    }
}
