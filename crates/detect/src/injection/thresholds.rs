//! Per-context operating points of the injection detector.

use serde::{Deserialize, Serialize};

use crate::finding::Context;

/// The operating point for one context: a text is flagged when the noisy-or of its rule scores
/// reaches `rules` **or** the classifier's attack probability reaches `classifier`.
///
/// Two thresholds rather than one over a blended score, because the two detectors have very
/// different benign tails: rules almost never fire on benign text, while the classifier gives
/// hard negatives (role-play prompts, security questions) middling scores. Leave-one-source-out
/// evaluation showed that one threshold over `max(rules, classifier)` had to sit above most rule
/// scores to keep the false-positive rate, and lost most of the rules' recall; each detector at
/// half the FPR budget keeps both.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ContextThreshold {
    /// Threshold on the noisy-or of rule scores.
    pub rules: f32,
    /// Threshold on the classifier's P(not benign).
    pub classifier: f32,
}

/// Per-context operating points.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Thresholds {
    /// For [`Context::UserPrompt`].
    pub user_prompt: ContextThreshold,
    /// For [`Context::ToolOutput`].
    pub tool_output: ContextThreshold,
    /// For [`Context::Document`].
    pub document: ContextThreshold,
    /// For [`Context::System`]. System prompts are written by the operator, so by default only
    /// near-certain findings are flagged there.
    pub system: ContextThreshold,
    /// For [`Context::Assistant`]. Model files do not store it: an assistant turn sent back as
    /// history is text the user steered, so it gets the user-prompt operating point when a
    /// model is loaded (no data was available to calibrate it separately).
    pub assistant: ContextThreshold,
}

impl Thresholds {
    /// The contexts whose thresholds a model file stores, in file order.
    pub const STORED: [Context; 4] = [
        Context::UserPrompt,
        Context::ToolOutput,
        Context::Document,
        Context::System,
    ];

    /// The threshold for one context.
    pub fn get(&self, context: Context) -> ContextThreshold {
        match context {
            Context::UserPrompt => self.user_prompt,
            Context::ToolOutput => self.tool_output,
            Context::Document => self.document,
            Context::System => self.system,
            Context::Assistant => self.assistant,
        }
    }

    /// Builds thresholds from `(rules, classifier)` pairs in [`Thresholds::STORED`] order; the
    /// assistant context gets the user-prompt pair.
    pub fn from_stored(values: [(f32, f32); 4]) -> Thresholds {
        let t = |(rules, classifier): (f32, f32)| ContextThreshold { rules, classifier };
        Thresholds {
            user_prompt: t(values[0]),
            tool_output: t(values[1]),
            document: t(values[2]),
            system: t(values[3]),
            assistant: t(values[0]),
        }
    }

    /// The stored thresholds as `(rules, classifier)` pairs in [`Thresholds::STORED`] order.
    pub fn to_stored(self) -> [(f32, f32); 4] {
        Self::STORED.map(|c| {
            let t = self.get(c);
            (t.rules, t.classifier)
        })
    }
}

impl Default for Thresholds {
    /// Conservative fallbacks for a model file that carries none of its own; shipped models
    /// carry thresholds calibrated by leave-one-source-out evaluation.
    fn default() -> Self {
        let t = |rules, classifier| ContextThreshold { rules, classifier };
        Thresholds {
            user_prompt: t(0.7, 0.95),
            tool_output: t(0.5, 0.9),
            document: t(0.5, 0.9),
            system: t(0.9, 0.99),
            assistant: t(0.7, 0.95),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn assistant_borrows_the_user_prompt_pair_and_is_not_stored() {
        let t = Thresholds::from_stored([(0.5, 0.9), (0.4, 0.8), (0.3, 0.6), (0.9, 0.99)]);
        assert_eq!(t.get(Context::Assistant), t.get(Context::UserPrompt));
        assert_eq!(t.get(Context::Document).classifier, 0.6);
        assert_eq!(Thresholds::from_stored(t.to_stored()), t);
    }
}
