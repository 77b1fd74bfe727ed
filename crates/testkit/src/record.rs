//! What the mock received: a bounded log of requests for tests to inspect.

use std::collections::VecDeque;
use std::sync::{Mutex, PoisonError};

use bytes::Bytes;

/// How many requests the log keeps. Older ones are dropped so that a long benchmark run does not
/// grow memory; raising it costs memory per kept request (headers and body).
const RECORD_LIMIT: usize = 1000;

/// One request as the mock received it.
#[derive(Debug, Clone)]
pub struct RecordedRequest {
    /// The method, e.g. `POST`.
    pub method: String,
    /// The path including any query string, e.g. `/v1/chat/completions?x=1`.
    pub path: String,
    /// All request headers.
    pub headers: http::HeaderMap,
    /// The whole request body.
    pub body: bytes::Bytes,
}

impl RecordedRequest {
    /// The body parsed as JSON, if it is JSON.
    pub fn json(&self) -> Option<serde_json::Value> {
        serde_json::from_slice(&self.body).ok()
    }
}

/// The last [`RECORD_LIMIT`] requests, oldest first.
#[derive(Debug, Default)]
pub(crate) struct Recorder {
    entries: Mutex<VecDeque<RecordedRequest>>,
}

impl Recorder {
    pub(crate) fn record(
        &self,
        method: &http::Method,
        path: &str,
        headers: http::HeaderMap,
        body: Bytes,
    ) {
        let request = RecordedRequest {
            method: method.as_str().to_owned(),
            path: path.to_owned(),
            headers,
            body,
        };
        // A panic elsewhere while holding the lock cannot leave the queue inconsistent.
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        if entries.len() >= RECORD_LIMIT {
            entries.pop_front();
        }
        entries.push_back(request);
    }

    pub(crate) fn all(&self) -> Vec<RecordedRequest> {
        let entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        entries.iter().cloned().collect()
    }

    pub(crate) fn last(&self) -> Option<RecordedRequest> {
        let entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        entries.back().cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_only_the_newest_requests() {
        let recorder = Recorder::default();
        for n in 0..RECORD_LIMIT + 5 {
            let path = format!("/{n}");
            recorder.record(
                &http::Method::GET,
                &path,
                http::HeaderMap::new(),
                Bytes::new(),
            );
        }
        let all = recorder.all();
        assert_eq!(all.len(), RECORD_LIMIT);
        assert_eq!(all[0].path, "/5");
        assert_eq!(
            recorder.last().map(|r| r.path),
            Some(format!("/{}", RECORD_LIMIT + 4))
        );
    }
}
