//! Audit lines: records and checkpoints as JSON lines, tagged `"type":"record"` or
//! `"type":"checkpoint"`. This is the JSONL sink's format and the export format.
//!
//! Lines are written as canonical JSON ([`crate::canonical_json`]), so a line's bytes are a
//! function of its content; readers must not rely on that and hash the parsed value instead.

use serde::{Deserialize, Serialize};

use crate::canonical::canonical_json;
use crate::chain::Record;
use crate::error::{Error, Result};
use crate::sign::Checkpoint;

/// One line of an audit log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Line {
    /// A chained record (boxed: an event is several times a checkpoint's size).
    Record(Box<Record>),
    /// A signed checkpoint.
    Checkpoint(Checkpoint),
}

impl Line {
    /// The line as canonical JSON, without a trailing newline.
    pub fn to_json_line(&self) -> Result<String> {
        let value = serde_json::to_value(self).map_err(Error::Serialize)?;
        Ok(canonical_json(&value))
    }

    /// Parses one line into typed form (for readers; [`crate::verify`] does not need this).
    pub fn parse(line: &str) -> Result<Self> {
        serde_json::from_str(line).map_err(Error::Parse)
    }
}

impl From<Record> for Line {
    fn from(record: Record) -> Self {
        Self::Record(Box::new(record))
    }
}

impl From<Checkpoint> for Line {
    fn from(checkpoint: Checkpoint) -> Self {
        Self::Checkpoint(checkpoint)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chain::{Chain, tests::sample_event};
    use crate::sign::Signer;

    #[test]
    fn lines_round_trip_and_carry_their_type() {
        let record = Chain::new("gw-1").append(sample_event(0)).unwrap();
        let checkpoint = Signer::from_seed(&[3; 32]).unwrap().checkpoint(&record, 9);
        for line in [Line::from(record), Line::from(checkpoint)] {
            let text = line.to_json_line().unwrap();
            assert!(!text.contains('\n'));
            assert_eq!(Line::parse(&text).unwrap(), line);
        }
    }
}
