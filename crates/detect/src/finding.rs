//! The detector vocabulary: categories, contexts, findings and the `Detector` trait.
//!
//! `Category`, `Context` and `Finding` are meant to move to `portcullis-core` once a second
//! crate (policy, audit) needs them; until then they live here.

use std::fmt;

use serde::{Deserialize, Serialize, Serializer};

use crate::normalise::NormalisedText;

/// The kind of personal data a PII finding names (`pii.<kind>` in policy input).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PiiKind {
    /// An e-mail address.
    Email,
    /// A telephone number (E.164 or a common national format).
    Phone,
    /// A payment card number that passes the Luhn check and matches an issuer prefix.
    PaymentCard,
    /// An IBAN that passes mod-97 and the country's length.
    Iban,
    /// A US social security number.
    UsSsn,
    /// An IPv4 address.
    Ipv4,
    /// An IPv6 address.
    Ipv6,
    /// A UK NHS number (mod 11).
    UkNhs,
    /// An Indian Aadhaar number (Verhoeff).
    InAadhaar,
    /// A Spanish NIF or NIE (mod 23 letter).
    EsNif,
    /// An Italian codice fiscale (check character).
    ItCodiceFiscale,
    /// A German tax identification number (ISO 7064 mod 11,10).
    DeSteuerId,
    /// A Dutch citizen service number (11-test).
    NlBsn,
    /// A French social security number (NIR, mod 97 key).
    FrNir,
}

impl PiiKind {
    /// The `<kind>` part of `pii.<kind>`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Email => "email",
            Self::Phone => "phone",
            Self::PaymentCard => "payment_card",
            Self::Iban => "iban",
            Self::UsSsn => "us_ssn",
            Self::Ipv4 => "ipv4",
            Self::Ipv6 => "ipv6",
            Self::UkNhs => "uk_nhs",
            Self::InAadhaar => "in_aadhaar",
            Self::EsNif => "es_nif",
            Self::ItCodiceFiscale => "it_codice_fiscale",
            Self::DeSteuerId => "de_steuer_id",
            Self::NlBsn => "nl_bsn",
            Self::FrNir => "fr_nir",
        }
    }
}

/// The kind of credential a secret finding names (`secret.<kind>` in policy input).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SecretKind {
    /// An AWS access key id (`AKIA…`, `ASIA…`).
    AwsAccessKey,
    /// An AWS secret access key next to its keyword.
    AwsSecretKey,
    /// A Google Cloud service-account JSON key.
    GcpServiceAccount,
    /// An Azure storage connection string or account key.
    AzureStorageKey,
    /// A GitHub token (`ghp_`, `github_pat_`, …).
    GithubToken,
    /// A GitLab personal access token (`glpat-`).
    GitlabToken,
    /// A Slack token (`xoxb-`, …).
    SlackToken,
    /// A Slack incoming-webhook URL.
    SlackWebhook,
    /// A Stripe secret or restricted key.
    StripeKey,
    /// An OpenAI API key.
    OpenaiKey,
    /// An Anthropic API key.
    AnthropicKey,
    /// A Hugging Face token.
    HuggingfaceToken,
    /// A JSON Web Token.
    Jwt,
    /// A PEM private key block.
    PrivateKey,
    /// A database or broker URL with an embedded password.
    DatabaseUrl,
    /// A high-entropy value assigned to a password-, key- or token-like name.
    GenericAssignment,
}

impl SecretKind {
    /// The `<kind>` part of `secret.<kind>`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::AwsAccessKey => "aws_access_key",
            Self::AwsSecretKey => "aws_secret_key",
            Self::GcpServiceAccount => "gcp_service_account",
            Self::AzureStorageKey => "azure_storage_key",
            Self::GithubToken => "github_token",
            Self::GitlabToken => "gitlab_token",
            Self::SlackToken => "slack_token",
            Self::SlackWebhook => "slack_webhook",
            Self::StripeKey => "stripe_key",
            Self::OpenaiKey => "openai_key",
            Self::AnthropicKey => "anthropic_key",
            Self::HuggingfaceToken => "huggingface_token",
            Self::Jwt => "jwt",
            Self::PrivateKey => "private_key",
            Self::DatabaseUrl => "database_url",
            Self::GenericAssignment => "generic",
        }
    }
}

/// What a finding is about. `as_str` gives the names used in policy input and `scan --jsonl`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Category {
    /// Instructions that try to override the application's instructions.
    PromptInjection,
    /// Attempts to lift the model's safety rules.
    Jailbreak,
    /// Personal data.
    Pii(PiiKind),
    /// Credentials.
    Secret(SecretKind),
    /// Text hidden from a human reader (tag characters, variation selectors, bidi tricks).
    InvisibleText,
    /// Encoded or disguised text (base64, homoglyphs, …).
    Obfuscation,
    /// A channel that could carry data out (image links to foreign hosts, data-carrying URLs).
    Exfiltration,
    /// The system prompt, or its canary, appears in output.
    SystemPromptLeak,
    /// A tool definition that carries instructions for the model.
    ToolPoisoning,
    /// Operator-configured banned substrings or topics.
    Banned,
}

impl Category {
    /// The category name from DESIGN.md, e.g. `pii.email` or `secret.aws_access_key`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::PromptInjection => "prompt_injection",
            Self::Jailbreak => "jailbreak",
            Self::Pii(kind) => pii_name(kind),
            Self::Secret(kind) => secret_name(kind),
            Self::InvisibleText => "invisible_text",
            Self::Obfuscation => "obfuscation",
            Self::Exfiltration => "exfiltration",
            Self::SystemPromptLeak => "system_prompt_leak",
            Self::ToolPoisoning => "tool_poisoning",
            Self::Banned => "banned",
        }
    }
}

// The full names are spelled out (rather than built with `format!`) so `as_str` stays
// allocation-free and returns `&'static str`.
fn pii_name(kind: PiiKind) -> &'static str {
    match kind {
        PiiKind::Email => "pii.email",
        PiiKind::Phone => "pii.phone",
        PiiKind::PaymentCard => "pii.payment_card",
        PiiKind::Iban => "pii.iban",
        PiiKind::UsSsn => "pii.us_ssn",
        PiiKind::Ipv4 => "pii.ipv4",
        PiiKind::Ipv6 => "pii.ipv6",
        PiiKind::UkNhs => "pii.uk_nhs",
        PiiKind::InAadhaar => "pii.in_aadhaar",
        PiiKind::EsNif => "pii.es_nif",
        PiiKind::ItCodiceFiscale => "pii.it_codice_fiscale",
        PiiKind::DeSteuerId => "pii.de_steuer_id",
        PiiKind::NlBsn => "pii.nl_bsn",
        PiiKind::FrNir => "pii.fr_nir",
    }
}

fn secret_name(kind: SecretKind) -> &'static str {
    match kind {
        SecretKind::AwsAccessKey => "secret.aws_access_key",
        SecretKind::AwsSecretKey => "secret.aws_secret_key",
        SecretKind::GcpServiceAccount => "secret.gcp_service_account",
        SecretKind::AzureStorageKey => "secret.azure_storage_key",
        SecretKind::GithubToken => "secret.github_token",
        SecretKind::GitlabToken => "secret.gitlab_token",
        SecretKind::SlackToken => "secret.slack_token",
        SecretKind::SlackWebhook => "secret.slack_webhook",
        SecretKind::StripeKey => "secret.stripe_key",
        SecretKind::OpenaiKey => "secret.openai_key",
        SecretKind::AnthropicKey => "secret.anthropic_key",
        SecretKind::HuggingfaceToken => "secret.huggingface_token",
        SecretKind::Jwt => "secret.jwt",
        SecretKind::PrivateKey => "secret.private_key",
        SecretKind::DatabaseUrl => "secret.database_url",
        SecretKind::GenericAssignment => "secret.generic",
    }
}

impl fmt::Display for Category {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Category {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

/// Where a piece of text reaches the model. Detectors may weigh findings by it: the same words
/// mean different things in different places. "Act as a translator" is a normal user request,
/// but the same imperative inside a fetched web page or a tool result is addressed to the
/// assistant by someone who is not the user, which is what indirect prompt injection is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Context {
    /// The user's own message.
    UserPrompt,
    /// What a tool or function returned to an agent.
    ToolOutput,
    /// Retrieved or pasted content: an e-mail, web page, file or table.
    Document,
    /// The application's own system prompt.
    System,
    /// Model output: a streamed answer, or an earlier assistant turn sent back as history.
    Assistant,
}

impl Context {
    /// Every context.
    pub const ALL: [Context; 5] = [
        Self::UserPrompt,
        Self::ToolOutput,
        Self::Document,
        Self::System,
        Self::Assistant,
    ];

    /// The snake_case name used on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::UserPrompt => "user_prompt",
            Self::ToolOutput => "tool_output",
            Self::Document => "document",
            Self::System => "system",
            Self::Assistant => "assistant",
        }
    }

    /// Parses the snake_case name.
    pub fn parse(name: &str) -> Option<Context> {
        Self::ALL.into_iter().find(|c| c.as_str() == name)
    }

    /// Whether the text is data rather than someone's instructions: tool output and documents.
    /// Instructions addressed to the assistant are suspicious only there.
    pub fn is_data(self) -> bool {
        matches!(self, Self::ToolOutput | Self::Document)
    }
}

/// One detector result. `start..end` are byte offsets into the *original* text, whichever view
/// the detector matched on.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Finding {
    /// What was found.
    pub category: Category,
    /// The detector that found it (`pii`, `secrets`, `normaliser`, `output`, `injection`,
    /// `tool_poisoning`, `canary`, `banned`).
    pub detector: &'static str,
    /// The rule within the detector, e.g. `luhn_card`, `github_pat`,
    /// `override.ignore_previous` or `classifier`.
    pub rule: &'static str,
    /// Confidence in `0.0..=1.0`.
    pub score: f32,
    /// Start byte offset in the original text.
    pub start: usize,
    /// End byte offset (exclusive) in the original text.
    pub end: usize,
}

impl Finding {
    /// The byte span in the original text.
    pub fn span(&self) -> std::ops::Range<usize> {
        self.start..self.end
    }
}

/// What a detector reads: the original text, its normalised views and where it came from.
#[derive(Debug)]
pub struct ScanInput<'a> {
    /// The text exactly as received.
    pub original: &'a str,
    /// The normaliser's views of `original`.
    pub normalised: &'a NormalisedText,
    /// Where the text reaches the model.
    pub context: Context,
}

/// The score from which a finding flags its category by default, for every detector whose
/// operating point does not depend on the context. Pattern detectors set scores so that this
/// means "enough evidence on its own" (a validated card 0.9, a bare 9-digit number 0.3).
pub const DEFAULT_FLAG_SCORE: f32 = 0.5;

/// A detector appends findings for one input, and says which of its findings flag. Implementations
/// must not panic and must run in time linear in the input size.
pub trait Detector: Send + Sync {
    /// A short stable name, used as `Finding::detector`.
    fn name(&self) -> &'static str;

    /// Appends this detector's findings for `input` to `out`.
    fn scan(&self, input: &ScanInput<'_>, out: &mut Vec<Finding>);

    /// Appends to `out` the categories that `own` (this detector's findings for one text)
    /// flag in `context` at the detector's default operating point. Findings below it are
    /// still reported, for policies that want them.
    ///
    /// The default flags every finding scoring at least [`DEFAULT_FLAG_SCORE`]. A detector
    /// whose operating point depends on the context, or that combines findings, overrides it
    /// (the injection detector does both).
    fn flagged(&self, own: &[&Finding], context: Context, out: &mut Vec<Category>) {
        let _ = context;
        default_flagged(own.iter().copied(), out);
    }
}

/// The default operating point: the category of every finding scoring at least
/// [`DEFAULT_FLAG_SCORE`]. Also used for the normaliser's own findings.
pub fn default_flagged<'a>(findings: impl Iterator<Item = &'a Finding>, out: &mut Vec<Category>) {
    out.extend(
        findings
            .filter(|f| f.score >= DEFAULT_FLAG_SCORE)
            .map(|f| f.category),
    );
}

/// Sorts findings by position and drops exact duplicates (the same category and rule on the same
/// span), keeping the highest score. Detectors that scan several views report the same value
/// more than once; this is where that is folded.
pub fn dedup_findings(findings: &mut Vec<Finding>) {
    findings.sort_by(|a, b| {
        (a.start, a.end, a.category, a.rule)
            .cmp(&(b.start, b.end, b.category, b.rule))
            .then(b.score.total_cmp(&a.score))
    });
    findings.dedup_by(|later, earlier| {
        later.start == earlier.start
            && later.end == earlier.end
            && later.category == earlier.category
            && later.rule == earlier.rule
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn category_names_follow_design() {
        assert_eq!(Category::Pii(PiiKind::Email).as_str(), "pii.email");
        assert_eq!(
            Category::Secret(SecretKind::AwsAccessKey).as_str(),
            "secret.aws_access_key"
        );
        assert_eq!(Category::InvisibleText.as_str(), "invisible_text");
        for kind in [PiiKind::Iban, PiiKind::FrNir, PiiKind::UkNhs] {
            assert_eq!(
                Category::Pii(kind).as_str(),
                format!("pii.{}", kind.as_str())
            );
        }
        for kind in [SecretKind::Jwt, SecretKind::GenericAssignment] {
            assert_eq!(
                Category::Secret(kind).as_str(),
                format!("secret.{}", kind.as_str())
            );
        }
    }

    #[test]
    fn dedup_keeps_highest_score() {
        let f = |score| Finding {
            category: Category::Obfuscation,
            detector: "d",
            rule: "r",
            score,
            start: 1,
            end: 4,
        };
        let mut v = vec![f(0.2), f(0.9), f(0.5)];
        dedup_findings(&mut v);
        assert_eq!(v.len(), 1);
        assert!((v[0].score - 0.9).abs() < f32::EPSILON);
    }
}
