//! The recipe of the shipped model (`models/injection.bin`): which examples it is trained on,
//! with which operating points, so that the `train_model` example and `portcullis train` build
//! the same bytes from the same files.
//!
//! The examples are the labelled dataset records in file order, then
//! [`SYNTH_PER_CLASS`] synthetic examples per class from [`synth`](super::synth) (seed
//! [`SYNTH_SEED`]); the trainer is [`train`](super::train()) with the default
//! [`TrainConfig`] except for the stored thresholds. Training is deterministic, so the same
//! files in the same order give the same model file. Reading files is the caller's business.

use super::dataset::Record;
use super::synth::synthetic_examples;
use super::thresholds::Thresholds;
use super::train::{Label, TrainConfig};

/// Synthetic examples per class added to the dataset records. Must match the `evaluate`
/// example, so that the shipped model is the one that was evaluated.
pub const SYNTH_PER_CLASS: usize = 400;

/// Seed of the synthetic examples (see [`SYNTH_PER_CLASS`]).
pub const SYNTH_SEED: u64 = 0x5947;

/// The system-context pair stored for a user-prompt pair: the stricter of the two and
/// 0.9 / 0.99. System prompts are the operator's own text, so only near-certain findings flag.
pub fn system_threshold(user_prompt: (f32, f32)) -> (f32, f32) {
    (user_prompt.0.max(0.9), user_prompt.1.max(0.99))
}

/// Thresholds from the `(rules, classifier)` pairs that leave-one-source-out evaluation chose
/// for user prompts, tool output and documents; the system pair follows
/// [`system_threshold`].
pub fn thresholds(
    user_prompt: (f32, f32),
    tool_output: (f32, f32),
    document: (f32, f32),
) -> Thresholds {
    Thresholds::from_stored([
        user_prompt,
        tool_output,
        document,
        system_threshold(user_prompt),
    ])
}

/// The training examples: every record's text and label in the order given, then, when
/// `synthetic` is set, the synthetic examples.
pub fn examples(
    records: impl IntoIterator<Item = Record>,
    synthetic: bool,
) -> Vec<(String, Label)> {
    let mut out: Vec<(String, Label)> = records.into_iter().map(|r| (r.text, r.label)).collect();
    if synthetic {
        out.extend(synthetic_examples(SYNTH_PER_CLASS, SYNTH_SEED));
    }
    out
}

/// The training configuration: the defaults, with `thresholds` stored in the model.
pub fn train_config(thresholds: Thresholds) -> TrainConfig {
    TrainConfig {
        thresholds,
        ..TrainConfig::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::finding::Context;

    #[test]
    fn system_pair_is_never_looser_than_the_user_prompt_pair() {
        assert_eq!(system_threshold((0.5, 0.9374)), (0.9, 0.99));
        assert_eq!(system_threshold((0.95, 0.995)), (0.95, 0.995));
        let t = thresholds((0.5, 0.9), (0.4, 0.8), (0.3, 0.6));
        assert_eq!(t.to_stored()[3], (0.9, 0.99));
        assert_eq!(t.get(Context::Assistant), t.get(Context::UserPrompt));
    }

    #[test]
    fn examples_keep_record_order_and_append_synthetic_ones() {
        let record = |text: &str, label| Record {
            text: text.to_owned(),
            label,
            source: "s".to_owned(),
            context: Context::UserPrompt,
        };
        let records = vec![record("b", Label::Benign), record("a", Label::Injection)];
        let plain = examples(records.clone(), false);
        assert_eq!(
            plain,
            vec![("b".into(), Label::Benign), ("a".into(), Label::Injection)]
        );
        let with_synth = examples(records, true);
        assert_eq!(&with_synth[..2], &plain[..]);
        assert!(with_synth.len() > 2);
    }
}
