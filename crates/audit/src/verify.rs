//! Verifying an audit log: chains, links, hashes and checkpoint signatures, per instance.
//!
//! Lines of several instances may interleave. Each line is checked in order and verification
//! stops at the first bad one, which the [`Report`] names. A record is checked for, in this
//! order: its own hash, its seq (exactly one more than the instance's previous record, from 0),
//! and its link (`prev_hash` is the previous record's hash, or [`crate::Chain::genesis`] for seq
//! 0). A checkpoint is checked for a known key, a valid signature, and that it names the last
//! record seen for its instance, with that record's hash.
//!
//! What this proves and what it does not is in ADR 0008: in short, records after an instance's
//! last checkpoint (the "unsigned tail", reported per instance) can be cut off or replaced by
//! anyone who can write the file, and only a later checkpoint or an external anchor shows it.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::{Map, Value};

use crate::chain::{Chain, record_hash};
use crate::digest::Digest;
use crate::sign::{KeyId, PublicKey, decode_signature, signed_message};

/// Where each instance's chain must start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChainStart {
    /// Every instance's first record is seq 0 and links to the genesis value. For whole logs.
    FromGenesis,
    /// An instance's first record may have any seq, and its `prev_hash` is taken on trust; or,
    /// if a checkpoint of the instance comes before its first record, that checkpoint's signed
    /// seq and hash anchor the chain. For logs that were rotated or exported from a point on.
    AllowPartial,
}

/// What is wrong with a line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Problem {
    /// Not JSON, not an object, no known `type`, or a required member missing or malformed.
    #[error("line does not parse: {detail}")]
    Unparsable {
        /// The parser's message.
        detail: String,
    },
    /// The record's `hash` is not the hash of its content: the record was edited.
    #[error("record hash {stated} does not match its content (computed {computed})")]
    BadHash {
        /// The hash the line states.
        stated: Digest,
        /// The hash of the line's content.
        computed: Digest,
    },
    /// The record's `prev_hash` is not the previous record's hash.
    #[error("prev_hash {prev_hash} does not link to the previous record ({expected})")]
    BrokenLink {
        /// The line's `prev_hash`.
        prev_hash: Digest,
        /// The previous record's hash (or the genesis value).
        expected: Digest,
    },
    /// Records are missing before this one.
    #[error("expected seq {expected}, found {found}: records are missing")]
    SeqGap {
        /// The seq that should come next.
        expected: u64,
        /// The seq found.
        found: u64,
    },
    /// The record is out of order: its seq went backwards, or the expected record comes later.
    #[error("expected seq {expected}, found {found}: records are out of order")]
    Reordered {
        /// The seq that should come next.
        expected: u64,
        /// The seq found.
        found: u64,
    },
    /// The record repeats the previous record of its instance.
    #[error("record {seq} appears twice")]
    Duplicate {
        /// The repeated seq.
        seq: u64,
    },
    /// The checkpoint's signature does not verify with the key it names.
    #[error("checkpoint signature does not verify")]
    BadSignature,
    /// The checkpoint names a key the verifier was not given.
    #[error("checkpoint signed with unknown key {key_id}")]
    UnknownKey {
        /// The key id the checkpoint names.
        key_id: KeyId,
    },
    /// A validly signed checkpoint does not match the chain: the record it covers is missing,
    /// elsewhere, or has a different hash.
    #[error("checkpoint covers seq {checkpoint_seq} but the chain's last record is {chain_seq:?}")]
    CheckpointMismatch {
        /// The seq the checkpoint covers.
        checkpoint_seq: u64,
        /// The instance's last record seq before the checkpoint (equal to `checkpoint_seq` when
        /// only the hash differs), `None` when no record of the instance came before.
        chain_seq: Option<u64>,
    },
}

/// The first bad line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// 1-based line number.
    pub line: usize,
    /// The line's instance, when it parsed far enough to tell.
    pub instance: Option<String>,
    /// The line's seq, when it parsed far enough to tell.
    pub seq: Option<u64>,
    /// What is wrong.
    pub problem: Problem,
}

/// One instance's chain as far as it verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceSummary {
    /// The instance id.
    pub instance: String,
    /// Seq of the first and last verified records, `None` if none.
    pub seqs: Option<(u64, u64)>,
    /// Seq covered by the last verified checkpoint.
    pub last_checkpoint: Option<u64>,
    /// Verified records after the last checkpoint: not signed yet, so not an error, but a
    /// truncation there would not be detected.
    pub unsigned_tail: u64,
}

/// The outcome of [`verify`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// The first bad line; `None` if every line verified.
    pub failure: Option<Failure>,
    /// Records verified (before the failure, if any).
    pub records: u64,
    /// Checkpoints verified (before the failure, if any).
    pub checkpoints: u64,
    /// Per instance, sorted by instance id.
    pub instances: Vec<InstanceSummary>,
}

impl Report {
    /// Whether every line verified.
    pub fn is_ok(&self) -> bool {
        self.failure.is_none()
    }
}

/// Verifies a whole log ([`ChainStart::FromGenesis`]) against the given checkpoint keys.
pub fn verify<'a>(lines: impl Iterator<Item = &'a str>, keys: &[PublicKey]) -> Report {
    verify_with(lines, keys, ChainStart::FromGenesis)
}

/// Verifies a log, choosing where chains must start.
pub fn verify_with<'a>(
    lines: impl Iterator<Item = &'a str>,
    keys: &[PublicKey],
    start: ChainStart,
) -> Report {
    let mut verifier = Verifier {
        keys,
        start,
        instances: BTreeMap::new(),
        records: 0,
        checkpoints: 0,
    };
    let mut lines = lines.enumerate();
    let mut failure = None;
    while let Some((index, line)) = lines.next() {
        if line.trim().is_empty() {
            continue;
        }
        if let Err(mut found) = verifier.check_line(line) {
            if let Problem::SeqGap {
                expected,
                found: seq,
            } = found.problem
            {
                let instance = found.instance.as_deref().unwrap_or_default();
                if comes_later(lines.by_ref().map(|(_, line)| line), instance, expected) {
                    found.problem = Problem::Reordered {
                        expected,
                        found: seq,
                    };
                }
            }
            failure = Some(Failure {
                line: index + 1,
                instance: found.instance,
                seq: found.seq,
                problem: found.problem,
            });
            break;
        }
    }
    verifier.report(failure)
}

/// A failure before its line number is known.
struct Found {
    instance: Option<String>,
    seq: Option<u64>,
    problem: Problem,
}

#[derive(Default)]
struct InstanceState {
    first_seq: Option<u64>,
    /// Seq and hash of the last record, or of an anchoring checkpoint.
    last: Option<(u64, Digest)>,
    last_checkpoint: Option<u64>,
    unsigned_tail: u64,
}

#[derive(Deserialize)]
struct RecordHeader {
    seq: u64,
    instance: String,
    prev_hash: Digest,
    hash: Digest,
    /// Required to be an object; its content is covered by the hash.
    #[serde(rename = "event")]
    _event: Map<String, Value>,
}

#[derive(Deserialize)]
struct CheckpointHeader {
    instance: String,
    seq: u64,
    hash: Digest,
    #[serde(rename = "time_unix_nano")]
    _time_unix_nano: u64,
    key_id: KeyId,
    signature: String,
}

struct Verifier<'k> {
    keys: &'k [PublicKey],
    start: ChainStart,
    instances: BTreeMap<String, InstanceState>,
    records: u64,
    checkpoints: u64,
}

impl Verifier<'_> {
    fn check_line(&mut self, line: &str) -> Result<(), Found> {
        let unparsable = |detail: String| Found {
            instance: None,
            seq: None,
            problem: Problem::Unparsable { detail },
        };
        let value: Value = serde_json::from_str(line).map_err(|err| unparsable(err.to_string()))?;
        let Some(object) = value.as_object() else {
            return Err(unparsable("not a json object".to_owned()));
        };
        match object.get("type").and_then(Value::as_str) {
            Some("record") => {
                let header =
                    RecordHeader::deserialize(&value).map_err(|err| unparsable(err.to_string()))?;
                self.check_record(object, header)
            }
            Some("checkpoint") => {
                let header = CheckpointHeader::deserialize(&value)
                    .map_err(|err| unparsable(err.to_string()))?;
                self.check_checkpoint(object, header)
            }
            _ => Err(unparsable(
                "missing `type` of \"record\" or \"checkpoint\"".to_owned(),
            )),
        }
    }

    fn check_record(
        &mut self,
        object: &Map<String, Value>,
        header: RecordHeader,
    ) -> Result<(), Found> {
        let fail = |problem| Found {
            instance: Some(header.instance.clone()),
            seq: Some(header.seq),
            problem,
        };
        let computed = record_hash(object);
        if computed != header.hash {
            return Err(fail(Problem::BadHash {
                stated: header.hash,
                computed,
            }));
        }
        let state = self.instances.entry(header.instance.clone()).or_default();
        let expected_link = match (state.last, self.start) {
            (Some((last_seq, last_hash)), _) => {
                let expected = last_seq.saturating_add(1);
                if header.seq > expected {
                    return Err(fail(Problem::SeqGap {
                        expected,
                        found: header.seq,
                    }));
                }
                if header.seq == last_seq && header.hash == last_hash {
                    return Err(fail(Problem::Duplicate { seq: header.seq }));
                }
                if header.seq < expected {
                    return Err(fail(Problem::Reordered {
                        expected,
                        found: header.seq,
                    }));
                }
                Some(last_hash)
            }
            (None, ChainStart::FromGenesis) => {
                if header.seq != 0 {
                    return Err(fail(Problem::SeqGap {
                        expected: 0,
                        found: header.seq,
                    }));
                }
                Some(Chain::genesis(&header.instance))
            }
            (None, ChainStart::AllowPartial) => None,
        };
        if let Some(expected) = expected_link
            && header.prev_hash != expected
        {
            return Err(fail(Problem::BrokenLink {
                prev_hash: header.prev_hash,
                expected,
            }));
        }
        state.first_seq.get_or_insert(header.seq);
        state.last = Some((header.seq, header.hash));
        state.unsigned_tail += 1;
        self.records += 1;
        Ok(())
    }

    fn check_checkpoint(
        &mut self,
        object: &Map<String, Value>,
        header: CheckpointHeader,
    ) -> Result<(), Found> {
        let fail = |problem| Found {
            instance: Some(header.instance.clone()),
            seq: Some(header.seq),
            problem,
        };
        let Some(key) = self.keys.iter().find(|key| key.key_id() == header.key_id) else {
            return Err(fail(Problem::UnknownKey {
                key_id: header.key_id,
            }));
        };
        let signature_ok = decode_signature(&header.signature)
            .is_some_and(|signature| key.verifies(&signed_message(object), &signature));
        if !signature_ok {
            return Err(fail(Problem::BadSignature));
        }
        let state = self.instances.entry(header.instance.clone()).or_default();
        match (state.last, self.start) {
            (Some((seq, hash)), _) if seq == header.seq && hash == header.hash => {}
            (None, ChainStart::AllowPartial) => {
                // A signed anchor: the instance's first record must follow it.
                state.last = Some((header.seq, header.hash));
            }
            (last, _) => {
                return Err(fail(Problem::CheckpointMismatch {
                    checkpoint_seq: header.seq,
                    chain_seq: last.map(|(seq, _)| seq),
                }));
            }
        }
        state.last_checkpoint = Some(header.seq);
        state.unsigned_tail = 0;
        self.checkpoints += 1;
        Ok(())
    }

    fn report(self, failure: Option<Failure>) -> Report {
        let instances = self
            .instances
            .into_iter()
            .map(|(instance, state)| InstanceSummary {
                instance,
                seqs: state
                    .first_seq
                    .zip(state.last)
                    .map(|(first, (last, _))| (first, last)),
                last_checkpoint: state.last_checkpoint,
                unsigned_tail: state.unsigned_tail,
            })
            .collect();
        Report {
            failure,
            records: self.records,
            checkpoints: self.checkpoints,
            instances,
        }
    }
}

/// Whether a record of `instance` with `seq` appears in the rest of the log (to tell a
/// reordering from a gap). Lines that do not parse are skipped.
fn comes_later<'a>(rest: impl Iterator<Item = &'a str>, instance: &str, seq: u64) -> bool {
    #[derive(Deserialize)]
    struct Position {
        #[serde(rename = "type")]
        kind: String,
        instance: String,
        seq: u64,
    }
    rest.filter_map(|line| serde_json::from_str::<Position>(line).ok())
        .any(|p| p.kind == "record" && p.instance == instance && p.seq == seq)
}
