//! Prompt-injection and jailbreak detection: a rule pack and a compact classifier, combined per
//! context.
//!
//! - [`rules`]: documented patterns for well-known attack techniques (instruction override,
//!   system-prompt extraction, role hijack, fake turns and completions, persona set-ups). High
//!   precision, explainable, with byte spans.
//! - [`model`]: a hashed linear classifier (word uni/bigrams + byte 4-grams, i8 weights,
//!   ~256 KiB) that scores text in overlapping 2 KiB windows, for paraphrases no rule
//!   anticipates. The shipped model is `models/injection.bin` (how it was made:
//!   `models/README.md`), embedded in the binary.
//!
//! [`InjectionDetector`] runs both over every normalised view and reports findings (category
//! `prompt_injection` or `jailbreak`, detector `injection`, rule = the rule id or
//! `classifier`). Whether they flag depends on per-[`Context`](crate::Context)
//! [`Thresholds`]: the same imperative is ordinary in a user's prompt and suspicious inside a
//! tool result. The two detectors keep separate thresholds (see [`ContextThreshold`]).
//!
//! Training ([`mod@train`], deterministic), synthetic examples ([`synth`]) and the labelled
//! record reader ([`dataset`], which takes a reader; opening files is the caller's business)
//! serve the `evaluate` and `train_model` examples and `portcullis train`; [`recipe`] is how the
//! shipped model is trained.
//!
//! Start reading at [`InjectionDetector`], then [`rules`], [`features`] and [`model`].

pub mod dataset;
mod detector;
pub mod features;
pub mod model;
mod overlap;
pub mod recipe;
pub mod rules;
pub mod synth;
mod thresholds;
pub mod train;

pub use detector::{
    Assessment, CLASSIFIER_MIN_WORDS, CLASSIFIER_RULE, InjectionDetector, classifier_reads,
    word_count,
};
pub use features::FeatureConfig;
pub use model::{Model, Scores};
pub use rules::{RuleHit, RuleSet};
pub use thresholds::{ContextThreshold, Thresholds};
pub use train::{Featurized, Label, TrainConfig, train, train_featurized};
