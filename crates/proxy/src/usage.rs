//! Token usage an upstream reported for one exchange: read from a JSON answer's `usage`, or
//! from the final chunk of a stream, and shared with whoever needs it when the body ends
//! (token budgets, the trace span).

use std::sync::{Arc, Mutex, PoisonError};

/// Tokens the upstream counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Usage {
    /// Prompt (input) tokens.
    pub(crate) prompt: u64,
    /// Completion (output) tokens; 0 for embeddings.
    pub(crate) completion: u64,
    /// Total as the upstream reported it (prompt + completion when it did not).
    pub(crate) total: u64,
}

impl Usage {
    /// Reads an OpenAI `usage` object: `prompt_tokens`, `completion_tokens`, `total_tokens`.
    pub(crate) fn from_json(usage: &serde_json::Value) -> Option<Self> {
        let field = |name: &str| usage.get(name).and_then(serde_json::Value::as_u64);
        let prompt = field("prompt_tokens");
        let completion = field("completion_tokens");
        let total = field("total_tokens");
        if prompt.is_none() && completion.is_none() && total.is_none() {
            return None;
        }
        let prompt = prompt.unwrap_or(0);
        let completion = completion.unwrap_or(0);
        Some(Self {
            prompt,
            completion,
            total: total.unwrap_or(prompt.saturating_add(completion)),
        })
    }
}

/// Where the usage of one exchange lands once it is known. A later report replaces an earlier
/// one: an upstream that reports running usage in every chunk (vLLM's continuous usage stats)
/// ends with the total.
#[derive(Debug, Clone, Default)]
pub(crate) struct UsageCell(Arc<Mutex<Option<Usage>>>);

impl UsageCell {
    /// Records the usage.
    pub(crate) fn set(&self, usage: Usage) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = Some(usage);
    }

    /// The usage, if the upstream reported it.
    pub(crate) fn get(&self) -> Option<Usage> {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_openai_usage_and_fills_a_missing_total() {
        let full = json!({"prompt_tokens": 12, "completion_tokens": 5, "total_tokens": 17});
        assert_eq!(
            Usage::from_json(&full),
            Some(Usage {
                prompt: 12,
                completion: 5,
                total: 17
            })
        );
        let embeddings = json!({"prompt_tokens": 8, "total_tokens": 8});
        assert_eq!(
            Usage::from_json(&embeddings),
            Some(Usage {
                prompt: 8,
                completion: 0,
                total: 8
            })
        );
        let no_total = json!({"prompt_tokens": 3, "completion_tokens": 4});
        assert_eq!(Usage::from_json(&no_total).map(|u| u.total), Some(7));
        assert_eq!(Usage::from_json(&json!({})), None);
        assert_eq!(Usage::from_json(&json!(null)), None);
    }

    #[test]
    fn the_last_report_wins() {
        let cell = UsageCell::default();
        assert_eq!(cell.get(), None);
        cell.set(Usage {
            prompt: 1,
            completion: 2,
            total: 3,
        });
        cell.clone().set(Usage {
            prompt: 9,
            completion: 9,
            total: 18,
        });
        assert_eq!(cell.get().map(|u| u.total), Some(18));
    }
}
