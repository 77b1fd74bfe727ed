//! What one MCP session has been exposed to, for policy: the untrusted sources whose output it
//! has read (taint), how many calls it made, and which tools its last `tools/list` showed.
//!
//! The "lethal trifecta" (private data + untrusted content + a way out): once a session has
//! read the output of a tool labelled `untrusted_source` (a web fetch, an inbox) — or any
//! output in which the detectors found an injection — a later call to an `external_sink` tool
//! reaches the policy with `session.tainted_by` naming those sources.

use std::collections::{BTreeSet, HashMap};

pub use portcullis_core::ToolLabel;
use serde_json::{Value, json};

/// Most taint sources remembered per session (the oldest stay; more are counted).
const MAX_TAINT_SOURCES: usize = 64;
/// Most tools whose listing outcome a session remembers.
const MAX_LISTED: usize = 4096;

/// One session's exposure.
#[derive(Debug, Default, Clone)]
pub struct SessionState {
    tainted_by: BTreeSet<String>,
    taint_overflow: u64,
    calls: u64,
    read_private_data: bool,
    /// Per tool: (shown by the last listing, its definition differed from the pin).
    listed: HashMap<String, (bool, bool)>,
}

impl SessionState {
    /// Records a `tools/list` outcome: whether `tool` was shown (`false`: the policy hid it)
    /// and whether its definition differed from its pin.
    pub fn record_listing(&mut self, tool: &str, shown: bool, changed: bool) {
        if self.listed.len() < MAX_LISTED || self.listed.contains_key(tool) {
            self.listed.insert(tool.to_owned(), (shown, changed));
        }
    }

    /// Whether the last listing showed `tool`; `None` if it was never listed.
    pub fn listed(&self, tool: &str) -> Option<bool> {
        self.listed.get(tool).map(|(shown, _)| *shown)
    }

    /// Whether `tool`'s definition in this session's last listing differed from its pin;
    /// `None` if it was never listed.
    pub fn listed_changed(&self, tool: &str) -> Option<bool> {
        self.listed.get(tool).map(|(_, changed)| *changed)
    }

    /// Counts a `tools/call` sent upstream.
    pub fn record_call(&mut self) {
        self.calls = self.calls.saturating_add(1);
    }

    /// Records that the session read the result of `source` (`server.tool`, or a resource
    /// URI), labelled `labels`; `injection_seen` when detectors flagged an injection in it
    /// (even if the policy let it through).
    pub fn record_result(&mut self, source: &str, labels: &[ToolLabel], injection_seen: bool) {
        if labels.contains(&ToolLabel::PrivateData) {
            self.read_private_data = true;
        }
        if labels.contains(&ToolLabel::UntrustedSource) || injection_seen {
            if self.tainted_by.len() < MAX_TAINT_SOURCES || self.tainted_by.contains(source) {
                self.tainted_by.insert(source.to_owned());
            } else {
                self.taint_overflow += 1;
            }
        }
    }

    /// The untrusted sources read so far, sorted.
    pub fn tainted_by(&self) -> impl Iterator<Item = &str> {
        self.tainted_by.iter().map(String::as_str)
    }

    /// Whether any untrusted content was read.
    pub fn is_tainted(&self) -> bool {
        !self.tainted_by.is_empty() || self.taint_overflow > 0
    }

    /// The `session` object of the policy input.
    pub fn to_policy(&self, id: &str) -> Value {
        let mut tainted: Vec<&str> = self.tainted_by().collect();
        if self.taint_overflow > 0 {
            tainted.push("(more sources)");
        }
        json!({
            "id": id,
            "tainted_by": tainted,
            "calls": self.calls,
            "read_private_data": self.read_private_data,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn untrusted_results_taint_and_others_do_not() {
        let mut s = SessionState::default();
        s.record_result("files.read_file", &[ToolLabel::PrivateData], false);
        assert!(!s.is_tainted());
        s.record_result("web.fetch_url", &[ToolLabel::UntrustedSource], false);
        s.record_result("files.read_file", &[], true);
        s.record_call();
        let policy = s.to_policy("abc");
        assert_eq!(
            policy["tainted_by"],
            json!(["files.read_file", "web.fetch_url"])
        );
        assert_eq!(policy["calls"], 1);
        assert_eq!(policy["read_private_data"], true);
    }

    #[test]
    fn listings_and_bounds() {
        let mut s = SessionState::default();
        assert_eq!(s.listed("x"), None);
        s.record_listing("x", false, true);
        s.record_listing("y", true, false);
        assert_eq!((s.listed("x"), s.listed("y")), (Some(false), Some(true)));
        assert_eq!(
            (s.listed_changed("x"), s.listed_changed("z")),
            (Some(true), None)
        );
        for i in 0..(MAX_TAINT_SOURCES + 10) {
            s.record_result(&format!("s.t{i}"), &[ToolLabel::UntrustedSource], false);
        }
        assert_eq!(s.tainted_by().count(), MAX_TAINT_SOURCES);
        assert!(s.to_policy("i")["tainted_by"].as_array().unwrap().len() == MAX_TAINT_SOURCES + 1);
        assert_eq!(
            ToolLabel::parse("external_sink"),
            Some(ToolLabel::ExternalSink)
        );
        assert_eq!(ToolLabel::parse("nope"), None);
    }
}
