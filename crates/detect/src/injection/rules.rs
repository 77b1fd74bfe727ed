//! The rule pack: hand-written patterns for well-known injection and jailbreak techniques.
//!
//! Rules are written from the published taxonomy of attacks (instruction override,
//! system-prompt extraction, role hijack, fake chat turns and completions, persona set-ups
//! such as "DAN" and "developer mode"), never from phrases of a particular dataset, so
//! that they carry over to text nobody has seen yet. Each rule is a verb + object pattern
//! with short, bounded word gaps, because attackers paraphrase ("disregard all prior
//! directives") far more than they change the shape of the request.
//!
//! Matching runs on lowercased, normalised text. An aho-corasick pass over each rule's
//! keywords (one of which every match of the rule must contain) selects the candidate
//! rules, so clean text costs one pass; only then does the `RegexSet` run.
//!
//! Every rule has two scores: one for text the user or operator wrote (`user_prompt`,
//! `system`, and `assistant` turns the user steered) and one for data (`tool_output`,
//! `document`). A user may legitimately say "act as a
//! translator"; the same imperative inside a web page is addressed to the assistant by a
//! third party. A data score of 0 with a prompt score of 0 never happens; a prompt score
//! of 0 means the rule only fires inside data.
//!
//! Regex notes: `\b` is written as ASCII `(?-u:\b)` (via [`expand`]) because the lazy
//! DFA cannot evaluate Unicode word boundaries on non-ASCII text and would fall back to
//! a slower engine. Gaps are `(?:\w+\W+){0,n}?`: bounded, so matching stays linear.

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, AhoCorasickKind, MatchKind};
use regex::{Regex, RegexSet, RegexSetBuilder};

/// Cache of the rule set's lazy DFA, per scanning thread. With the regex crate's default
/// (2 MiB) the set's DFA states overflow the cache on prose longer than a few KB and matching
/// falls back to the PikeVM, 50–60× slower (measured: 100 KB went from 14 ms to 0.28 ms with
/// 4 MiB). Raising it costs up to this much memory per thread that scans; lowering it brings
/// the slow path back on long or varied text.
const RULE_SET_DFA_CACHE_BYTES: usize = 16 << 20;
use serde::Serialize;

use crate::error::{Error, Result};
use crate::finding::{Category, Context};

/// One documented rule.
#[derive(Debug, Clone, Copy)]
pub struct Rule {
    /// Stable id, `family.name`.
    pub id: &'static str,
    /// What a match is evidence of: [`Category::PromptInjection`] or [`Category::Jailbreak`].
    pub category: Category,
    /// Score in `user_prompt`, `system` and `assistant` context (0 = the rule does not fire
    /// there).
    pub prompt_score: f32,
    /// Score in `tool_output` and `document` context.
    pub data_score: f32,
    /// Every match contains at least one of these (lowercase) keywords.
    pub keywords: &'static [&'static str],
    /// The pattern, before [`expand`].
    pub pattern: &'static str,
    /// One line on what the rule catches.
    pub doc: &'static str,
}

impl Rule {
    /// The score of this rule in a context.
    pub fn score(&self, context: Context) -> f32 {
        if context.is_data() {
            self.data_score
        } else {
            self.prompt_score
        }
    }
}

/// One rule match.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RuleHit {
    /// The rule's id.
    pub rule_id: &'static str,
    /// The rule's category.
    pub category: Category,
    /// The rule's score in the context it was matched in.
    pub score: f32,
    /// Byte offset of the first match.
    pub start: usize,
    /// Byte offset just past the first match.
    pub end: usize,
}

const OVERRIDE_VERBS: &[&str] = &[
    "ignor",
    "disregard",
    "forget",
    "override",
    "overlook",
    "bypass",
    "neglect",
    "discard",
    "dismiss",
    "abandon",
    "set aside",
];

/// The built-in rules. Order is irrelevant; ids must be unique (a test checks).
pub static RULES: &[Rule] = &[
    Rule {
        id: "override.ignore_previous",
        category: Category::PromptInjection,
        prompt_score: 0.85,
        data_score: 0.95,
        keywords: OVERRIDE_VERBS,
        pattern: r"\b(?:ignore|ignoring|disregard(?:ing)?|forget(?:ting)?|override|overlook|bypass|neglect|discard|dismiss|abandon|set aside)\W+(?:\w+\W+){0,4}?(?:previous|previously|prior|above|earlier|preceding|former|foregoing|original|initial|all|every|your)\W+(?:\w+\W+){0,3}?(?:instruction|rule|direction|directive|prompt|guideline|command|order|constraint|programming|guidance|polic(?:y|ie)|restriction|context|task|message|conversation|text|input|content)s?\b",
        doc: "an override verb aimed at earlier instructions: \"disregard all prior directives\"",
    },
    Rule {
        id: "override.ignore_everything",
        category: Category::PromptInjection,
        prompt_score: 0.75,
        data_score: 0.9,
        keywords: OVERRIDE_VERBS,
        pattern: r"\b(?:ignore|disregard|forget|overlook)\W+(?:(?:everything|all|anything|what(?:ever)?)\W+(?:\w+\W+){0,4}?(?:told|said|instructed|given|written|stated|above|before|previously|earlier|so far|until now)|(?:the\W+|all\W+)?(?:above|preceding|foregoing)(?:\W|$))",
        doc: "override of everything said so far: \"forget everything you were told\", \"ignore the above\"",
    },
    Rule {
        id: "override.new_instructions",
        category: Category::PromptInjection,
        prompt_score: 0.55,
        data_score: 0.85,
        keywords: &[
            "instruction",
            "directive",
            "task",
            "orders",
            "objective",
            "system prompt",
        ],
        pattern: r"\b(?:new|updated|real|actual|true|revised|additional|secret|hidden|override)\W+(?:instructions?|directives?|tasks?|orders|objectives?|system prompt)(?:\s*:|\W+(?:are|is|follow)\b)",
        doc: "announces replacement instructions: \"your new instructions are\", \"updated task:\"",
    },
    Rule {
        id: "override.from_now_on",
        category: Category::PromptInjection,
        prompt_score: 0.35,
        data_score: 0.7,
        keywords: &["from now on", "henceforth", "from this point"],
        pattern: r"\b(?:from now on|henceforth|from this point (?:on|forward))\W+(?:you|your|ignore|only|always|never|respond|answer|reply)\b",
        doc: "re-programs future behaviour; common in role prompts, so weak in user prompts",
    },
    Rule {
        id: "override.stop_task",
        category: Category::PromptInjection,
        prompt_score: 0.45,
        data_score: 0.75,
        keywords: &["stop", "halt", "cease", "abort", "terminate"],
        pattern: r"\b(?:stop|halt|cease|abort|terminate)\W+(?:\w+\W+){0,2}?(?:what you(?:'re| are) doing|your (?:current )?(?:task|work|instructions)|the (?:current )?task|everything|all (?:previous |current )?tasks)\b",
        doc: "tells the model to abandon its current task",
    },
    Rule {
        id: "override.multilingual",
        category: Category::PromptInjection,
        prompt_score: 0.85,
        data_score: 0.95,
        keywords: &[
            "ignorier",
            "vergiss",
            "vergesst",
            "vergessen sie",
            "missacht",
            "ignora",
            "ignore",
            "olvid",
            "descart",
            "omit",
            "no hagas caso",
            "oubli",
            "ne tiens pas compte",
            "ne tenez pas compte",
            "dimentic",
            "esque",
            "desconsider",
        ],
        pattern: r"\b(?:(?:ignoriere|ignoriert|ignorieren sie|ignorier|vergiss|vergesst|vergessen sie|missachte|missachten sie)\W+(?:\w+\W+){0,4}?(?:anweisung|instruktion|befehl|regel|vorgabe|aufgabe|richtlinie|alles|vorherig|bisherig|obig)|(?:ignora|ignore|ignoren|olvida|olvide|olviden|descarta|omite|no hagas caso)\W+(?:\w+\W+){0,4}?(?:instrucciones|indicaciones|reglas|órdenes|directrices|todo|lo anterior)|(?:ignore|ignorez|oublie|oubliez|ne tiens pas compte|ne tenez pas compte)\W+(?:\w+\W+){0,4}?(?:instructions|consignes|règles|directives|indications|tout|ce qui précède)|(?:ignora|ignorate|dimentica|dimenticate)\W+(?:\w+\W+){0,4}?(?:istruzioni|regole|direttive|indicazioni|tutto)|(?:ignore|ignora|esqueça|esqueca|desconsidere)\W+(?:\w+\W+){0,4}?(?:instruções|instrucoes|regras|diretrizes|tudo))",
        doc: "the commonest override phrases in German, Spanish, French, Italian and Portuguese",
    },
    Rule {
        id: "override.multilingual_more",
        category: Category::PromptInjection,
        prompt_score: 0.85,
        data_score: 0.95,
        keywords: &[
            "negeer",
            "vergeet",
            "ignorera",
            "glöm",
            "zignoruj",
            "ignoruj",
            "zapomnij",
            "игнорир",
            "забудь",
            "не обращай",
            "talimat",
            "kural",
            "忽略",
            "无视",
            "忽视",
            "忘记",
            "無視",
            "忘れ",
            "무시",
            "잊어",
        ],
        // No leading `\b`: the ASCII word boundary never holds before a non-ASCII letter.
        pattern: r"\b(?:negeer|vergeet)\W+(?:\w+\W+){0,4}?(?:instructies|regels|opdrachten|richtlijnen|alles)\b|\b(?:ignorera|glöm)\W+(?:\w+\W+){0,4}?(?:instruktioner|regler|direktiv|allt)|\b(?:zignoruj|ignoruj|zapomnij)\W+(?:\w+\W+){0,4}?(?:instrukcje|instrukcji|polecenia|zasady|wszystko)|(?:игнорируй|игнорируйте|игнорировать|забудь|забудьте|не обращай внимания на)\W+(?:\w+\W+){0,4}?(?:инструкци|указани|правил|команд|всё|все)|(?:talimat|kural|komut)\w*\W+(?:\w+\W+){0,2}?(?:yok say|görmezden gel|unut)|(?:忽略|无视|忽视|不要理会|忘记|忘掉)[^\n]{0,12}?(?:指示|指令|说明|规则|提示|要求|设定)|(?:指示|命令|ルール|プロンプト|設定)[^\n]{0,12}?(?:無視|忘れ)|(?:지시|명령|지침|규칙|프롬프트)[^\n]{0,15}?(?:무시|잊어)",
        doc: "the core override phrase in Dutch, Swedish, Polish, Russian, Turkish, Chinese, Japanese and Korean",
    },
    Rule {
        id: "extraction.reveal_system_prompt",
        category: Category::PromptInjection,
        prompt_score: 0.7,
        data_score: 0.85,
        keywords: &[
            "prompt",
            "instruction",
            "rules",
            "guideline",
            "directive",
            "configuration",
            "programming",
            "system message",
        ],
        pattern: r"\b(?:reveal|show|print|display|output|repeat|recite|tell|give|share|disclose|leak|expose|write|spell|dump|list|provide|paste|what)\W+(?:\w+\W+){0,4}?(?:(?:your|the|this|its)\W+(?:\w+\W+)?system\W+(?:prompt|message|instructions?)|(?:initial|original|hidden|secret|internal|confidential|developer|pre|starting|first|previous|above)\W*(?:prompt|instructions?|rules|guidelines|directives|configuration)|your\W+(?:\w+\W+)?(?:prompt|instructions|rules|guidelines|directives|configuration|programming))\b",
        doc: "asks for the system prompt or hidden instructions",
    },
    Rule {
        id: "extraction.repeat_above",
        category: Category::PromptInjection,
        prompt_score: 0.7,
        data_score: 0.85,
        keywords: &[
            "repeat",
            "print",
            "output",
            "recite",
            "copy",
            "reproduce",
            "spell out",
        ],
        pattern: r"\b(?:repeat|print|output|recite|copy|reproduce|spell out)\W+(?:\w+\W+){0,3}?(?:words|text|everything|all|content|instructions|lines|sentences)\W+(?:\w+\W+){0,2}?(?:above|before this|preceding|so far|verbatim)\b",
        doc: "asks the model to echo its context: \"repeat the words above\"",
    },
    Rule {
        id: "extraction.secret",
        category: Category::PromptInjection,
        prompt_score: 0.35,
        data_score: 0.6,
        keywords: &[
            "secret",
            "password",
            "passphrase",
            "api key",
            "access code",
            "credential",
        ],
        pattern: r"\b(?:what|tell|reveal|give|share|show|disclose|leak|print|send)\W+(?:\w+\W+){0,3}?(?:your|the)\W+(?:\w+\W+)?(?:secret|password|passphrase|api key|access code|credentials)\b",
        doc: "asks the model for a secret it holds; weak alone, it adds to other evidence",
    },
    Rule {
        id: "hijack.new_role",
        category: Category::PromptInjection,
        prompt_score: 0.4,
        data_score: 0.8,
        keywords: &[
            "you are now",
            "you're now",
            "you will now",
            "from now on",
            "no longer",
            "your new",
        ],
        pattern: r"\b(?:you are now|you're now|you will now (?:be|act)|from now on,? you (?:are|will be)|you are no longer (?:an? |the )?(?:ai|assistant|chatbot|language model|bound)|your new (?:role|name|task|identity|persona|purpose|goal) (?:is|will be))\b",
        doc: "re-assigns the model's identity or goal",
    },
    Rule {
        id: "hijack.act_as",
        category: Category::PromptInjection,
        prompt_score: 0.0,
        data_score: 0.55,
        keywords: &[
            "act as",
            "act like",
            "behave as",
            "behave like",
            "pretend",
            "roleplay",
            "role-play",
            "role play",
        ],
        pattern: r"\b(?:act|behave) (?:as|like)\b|\bpretend (?:to be|you are|that you)\b|\brole-?\s?play (?:as|a|an)\b",
        doc: "a role assignment: normal from a user, suspicious inside data",
    },
    Rule {
        id: "delimiter.chat_template",
        category: Category::PromptInjection,
        prompt_score: 0.8,
        data_score: 0.9,
        keywords: &["<|", "[inst]", "[/inst]", "<<sys>>", "<</sys>>", "of_turn>"],
        pattern: r"<\|(?:im_start|im_end|system|user|assistant|endoftext|begin_of_text|start_header_id|end_header_id|eot_id|end)\|>|\[/?inst\]|<</?sys>>|<(?:start|end)_of_turn>",
        doc: "chat-template control tokens (ChatML, Llama, Gemma) smuggled into text",
    },
    Rule {
        id: "delimiter.fake_system_turn",
        category: Category::PromptInjection,
        prompt_score: 0.55,
        data_score: 0.8,
        keywords: &[
            "system",
            "admin",
            "developer",
            "root",
            "sudo",
            "sys>",
            "instruction",
        ],
        pattern: r"(?:^|\n)\W{0,6}(?:system|admin|administrator|developer|root|sudo)(?:\s+(?:message|prompt|instructions?|override|note|notice|update|alert|command))?\s{0,2}(?::|\]|>|\}|--)|<\s*/?\s*(?:system|sys|admin|instructions?|system_prompt|developer)\s*>|\[\s*(?:system|admin|developer)(?:\s+\w+)?\s*\]|\{\s*system\s*\}|(?:^|\n)\W{0,4}(?:new|updated|important)\s+(?:system|admin)\s+(?:message|prompt|instructions?)",
        doc: "a fake system/admin turn: a role header at line start or a <system> tag",
    },
    Rule {
        id: "delimiter.fake_completion",
        category: Category::PromptInjection,
        prompt_score: 0.6,
        data_score: 0.85,
        keywords: &[":"],
        pattern: r"(?:^|\n|[.!]\s)\s*(?:answer|response|output|result|assistant|ai|bot|summary)\s*:\s*(?:task\W+)?(?:complete|completed|done|finished|ok|okay|success|n/a|none)\b",
        doc: "a fake end of the task (\"answer: done\") so that what follows reads as a new turn",
    },
    Rule {
        id: "delimiter.task_done_pivot",
        category: Category::PromptInjection,
        prompt_score: 0.3,
        data_score: 0.5,
        keywords: &["complete", "done", "finished"],
        pattern: r"\b(?:task|request|job|work|summary|translation|analysis|query)\W+(?:is\W+|has been\W+)?(?:complete|completed|done|finished)\W+(?:\w+\W+){0,3}?(?:now|next|new|ignore|your next|additional)\b",
        doc: "declares the task finished and pivots to a new one",
    },
    Rule {
        id: "delimiter.fake_dialogue",
        category: Category::PromptInjection,
        prompt_score: 0.45,
        data_score: 0.6,
        keywords: &["human", "user"],
        pattern: r"(?:^|\n)\s*(?:human|user)\s*:[^\n]{0,400}\n+\s*(?:assistant|ai|gpt|chatgpt|bot)\s*:",
        doc: "a fabricated user/assistant transcript inside the text",
    },
    Rule {
        id: "delimiter.boundary_break",
        category: Category::PromptInjection,
        prompt_score: 0.55,
        data_score: 0.8,
        keywords: &["end of", "close of", "---", "===", "###", "***"],
        pattern: r"\b(?:end|close) of (?:the )?(?:system |user |previous )?(?:prompt|instructions|input|context|document|conversation|email|message|text|data)\b\W{0,10}(?:\w+\W+){0,2}?(?:new|now|next|begin|start|ignore)\b|(?:-{3,}|={3,}|#{3,}|\*{3,})\s*(?:end|begin|start|new)\s+(?:of\s+)?(?:system|instructions?|prompt|input|context|user)",
        doc: "claims the data or prompt has ended and something new begins",
    },
    Rule {
        id: "addressed.ai_in_data",
        category: Category::PromptInjection,
        prompt_score: 0.0,
        data_score: 0.7,
        keywords: &[
            "ai",
            "a.i.",
            "assistant",
            "chatbot",
            "language model",
            "llm",
            "gpt",
            "claude",
            "gemini",
            "copilot",
            "bard",
            "agent",
            "model",
            "bot",
            "automated",
        ],
        pattern: r"\b(?:attention|note|message|instructions?|reminder|notice|important|dear|hey|hello|hi|attn)\W+(?:to\W+|for\W+)?(?:the\W+|any\W+|all\W+)?(?:ai|a\.i\.|assistant|ai assistant|chatbot|language model|llm|gpt|chatgpt|claude|gemini|copilot|bard|agent|ai model|model|bot)s?\b|\bif you are (?:an?|the) (?:ai|a\.i\.|language model|large language model|llm|assistant|chatbot|bot|agent|automated)|\b(?:ai|assistant|agent|model|llm|bot)s?\W+(?:\w+\W+){0,2}?(?:reading|processing|summari[sz]ing|analy[sz]ing|parsing|browsing|crawling) this\b",
        doc: "text addressed to an AI model; in a document or tool result that is a third party talking to the agent",
    },
    Rule {
        id: "steer.tool_call",
        category: Category::PromptInjection,
        prompt_score: 0.0,
        data_score: 0.55,
        keywords: &["use", "call", "invoke", "execute", "trigger", "run"],
        pattern: r#"\b(?:use|call|invoke|execute|trigger|run)\W+(?:the\W+)?(?:["'`][^"'`\n]{1,60}["'`]|\w+(?:_\w+)+)\W+(?:tool|function|plugin|api|action)\b"#,
        doc: "data telling the agent to call a named tool (indirect injection steering an agent)",
    },
    Rule {
        id: "steer.exfiltrate",
        category: Category::PromptInjection,
        prompt_score: 0.2,
        data_score: 0.6,
        keywords: &["@", "]("],
        pattern: r"\b(?:send|forward|email|post|upload|transmit|exfiltrate|leak|copy)\W+(?:\w+\W+){0,6}?(?:to|at)\W+[a-z0-9_.+-]+@[a-z0-9_-]+\.[a-z0-9_.]+|!\[[^\]\n]{0,100}\]\(\s*https?://[^)\s]{1,300}[?&][a-z0-9_-]+=",
        doc: "sends data to an outside address or a markdown image URL with a query string",
    },
    Rule {
        id: "override.priority_claim",
        category: Category::PromptInjection,
        prompt_score: 0.35,
        data_score: 0.65,
        keywords: &[
            "important",
            "urgent",
            "critical",
            "priority",
            "attention",
            "overrides",
            "supersedes",
            "precedence",
        ],
        pattern: r"\b(?:important|urgent|critical|priority|attention)\W{1,4}(?:new\W+|updated\W+)?(?:instructions?|directive|task|update|message)\W*:|\b(?:highest|top|maximum|absolute|overriding) priority\b|\bthis (?:instruction|message|directive|request) (?:overrides|supersedes|takes precedence)",
        doc: "claims priority over other instructions",
    },
    Rule {
        id: "persona.dan",
        category: Category::Jailbreak,
        prompt_score: 0.9,
        data_score: 0.9,
        keywords: &[
            "do anything now",
            "dan",
            "jailbr",
            "stan",
            "dude",
            "antigpt",
            "anti-gpt",
            "mongo tom",
        ],
        pattern: r"\bdo anything now\b|\bdan mode\b|\bjailbr(?:eak|oken)(?:ed)? mode\b|\b(?:you are|you're|act as|pretend to be|become|called|named|as|be) (?:a |an |the )?(?:dan|stan|dude|antigpt|anti-gpt|betterdan|mongo tom|jailbroken \w+)\b|(?:^|\n)\s*\[?(?:dan|jailbreak|jailbroken)\]?\s*:",
        doc: "named unrestricted personas (DAN and its relatives) and their output prefixes",
    },
    Rule {
        id: "persona.developer_mode",
        category: Category::Jailbreak,
        prompt_score: 0.8,
        data_score: 0.85,
        keywords: &["mode"],
        pattern: r"\b(?:chatgpt|gpt|ai|assistant|model|llm|you)\W+(?:\w+\W+){0,4}?developer mode\b|\bdeveloper mode (?:enabled|activated|output|response|on)\b|\b(?:enable|activate|enter|switch to|turn on|unlock|simulate|engage|initiate)\W+(?:\w+\W+){0,2}?(?:god|jailbreak|jailbroken|unrestricted|unfiltered|uncensored|evil|chaos|opposite|dan)\s+mode\b|\b(?:god|jailbreak|unrestricted|unfiltered|uncensored|evil|chaos)\s+mode\W+(?:\w+\W+)?(?:enabled|activated|on|unlocked|engaged)\b|<\s*(?:god|developer|admin|sudo|dev|debug)\s+mode\s*>",
        doc: "switching the model into a \"developer\", \"god\" or other unrestricted mode",
    },
    Rule {
        id: "persona.unbound",
        category: Category::Jailbreak,
        prompt_score: 0.8,
        data_score: 0.85,
        keywords: &[
            "bound",
            "restricted",
            "limited",
            "constrained",
            "censored",
            "filtered",
            "held back",
            "subject",
            "confined",
            "obliged",
            "required to follow",
            "free",
            "liberat",
            "released",
        ],
        pattern: r"\byou\W+(?:are|were|have been|will be|re)\W+(?:now\W+)?(?:no longer|not|never|free from|freed from|released from|liberated from|unshackled from|free of)\W+(?:\w+\W+){0,3}?(?:bound|restricted|limited|constrained|censored|filtered|held back|subject|confined|obliged|required to follow)\b|\b(?:free|freed|liberated|released|broken free|break free)\W+(?:\w+\W+){0,2}?(?:from|of)\W+(?:\w+\W+){0,2}?(?:restrictions|limitations|rules|guidelines|constraints|shackles|chains|confines|filters|censorship|programming|policies)\b",
        doc: "tells the model it is no longer bound by its rules",
    },
    Rule {
        id: "persona.policy_bypass",
        category: Category::Jailbreak,
        prompt_score: 0.85,
        data_score: 0.9,
        keywords: &[
            "polic",
            "guideline",
            "filter",
            "restriction",
            "rules",
            "standard",
            "principle",
            "protocol",
            "regulation",
        ],
        pattern: r"\b(?:ignore|bypass|disregard|break|violate|circumvent|evade|override|not follow|don't follow|do not follow|doesn't follow|does not follow|abandon|forget|free from|not bound by|not restricted by|not limited by)\W+(?:\w+\W+){0,3}?(?:openai|anthropic|google|meta|microsoft|content|safety|ethical|moral|usage|community)\W+(?:polic(?:y|ies)|guidelines?|filters?|restrictions|rules|standards|principles|protocols|regulations)\b",
        doc: "asks the model to ignore its provider's or its own safety policy",
    },
    Rule {
        id: "persona.no_restrictions",
        category: Category::Jailbreak,
        prompt_score: 0.35,
        data_score: 0.45,
        keywords: &[
            "restriction",
            "limitation",
            "filter",
            "censor",
            "guideline",
            "boundar",
            "ethic",
            "moral",
            "principle",
            "safeguard",
        ],
        pattern: r"\b(?:no|without|zero|free of|not have any|doesn't have any|does not have any|don't have any|do not have any|has no|have no|lacks?|beyond)\W+(?:any\W+)?(?:\w+\W+){0,2}?(?:restrictions|limitations|filters|filtering|censorship|guidelines|boundaries|ethics|morals|moral principles|ethical principles|safeguards)\b",
        doc: "describes an agent without restrictions; weak alone (also said of games and stories)",
    },
    Rule {
        id: "persona.stay_in_character",
        category: Category::Jailbreak,
        prompt_score: 0.4,
        data_score: 0.5,
        keywords: &["character", "role", "persona"],
        pattern: r"\b(?:stay|remain|keep|always stay)\W+(?:\w+\W+)?in\W+(?:\w+\W+)?(?:character|role|persona)\b|\b(?:never|don't|do not|must not|cannot|without)\W+break(?:ing)?\W+(?:\w+\W+)?character\b",
        doc: "keeps a persona from falling back to the model's own rules",
    },
    Rule {
        id: "persona.refusal_suppression",
        category: Category::Jailbreak,
        prompt_score: 0.5,
        data_score: 0.6,
        keywords: &[
            "refuse",
            "decline",
            "apolog",
            "warning",
            "disclaimer",
            "moraliz",
            "lectur",
            "no matter",
            "regardless",
        ],
        pattern: r"\b(?:never|not|don't|do not|must not|cannot|can't|will not|won't|shall not|are not allowed to|aren't allowed to)\W+(?:\w+\W+){0,2}?(?:refuse|decline)\b|\b(?:never|don't|do not|without)\W+(?:\w+\W+){0,2}?(?:apologi[sz]e|add(?:ing)? (?:any )?(?:warnings?|disclaimers?)|include (?:any )?(?:warnings?|disclaimers?)|moraliz|lectur)|\b(?:answer|respond to|reply to) (?:every|any|all) (?:\w+\W+)?(?:questions?|requests?|prompts?) (?:\w+\W+){0,2}?(?:no matter|regardless)",
        doc: "forbids refusals, apologies or warnings",
    },
    Rule {
        id: "persona.dual_response",
        category: Category::Jailbreak,
        prompt_score: 0.75,
        data_score: 0.8,
        keywords: &[
            "[",
            "🔒",
            "🔓",
            "responses",
            "answers",
            "outputs",
            "replies",
        ],
        pattern: r"\[\s*(?:🔒|🔓)?\s*(?:classic|jailbreak|jailbroken|normal|developer mode|dan|filtered|unfiltered)\s*(?:output|response)?\s*\]|\((?:🔒|🔓)|\b(?:two|2|dual|both|separate)\W+(?:\w+\W+){0,2}?(?:responses|answers|outputs|replies)\b\W+(?:\w+\W+){0,12}?(?:normal|standard|classic|filtered|censored|unfiltered|uncensored|jailbroken)\b",
        doc: "a two-answer format: one \"normal\" answer and one from the unrestricted persona",
    },
    Rule {
        id: "persona.unfiltered_ai",
        category: Category::Jailbreak,
        prompt_score: 0.55,
        data_score: 0.65,
        keywords: &[
            "unfiltered",
            "uncensored",
            "amoral",
            "unethical",
            "immoral",
            "unrestricted",
            "jailbroken",
            "evil",
            "unbound",
            "unhinged",
            "rogue",
            "limitless",
            "lawless",
        ],
        pattern: r"\b(?:unfiltered|uncensored|amoral|unethical|immoral|unrestricted|jailbroken|evil|unbound|unhinged|rogue|limitless|lawless)\W+(?:\w+\W+)?(?:ai|a\.i\.|assistant|chatbot|bot|language model|llm|gpt|chatgpt|artificial intelligence)\b",
        doc: "names an unfiltered or amoral AI persona",
    },
    Rule {
        id: "persona.lawless_fiction",
        category: Category::Jailbreak,
        prompt_score: 0.45,
        data_score: 0.5,
        keywords: &[
            "hypothetical",
            "fictional",
            "imaginary",
            "alternate",
            "parallel",
        ],
        pattern: r"\b(?:hypothetical|fictional|imaginary|alternate|parallel)\W+(?:\w+\W+){0,2}?(?:world|scenario|story|universe|setting|reality)\W+(?:\w+\W+){0,8}?(?:no|without)\W+(?:\w+\W+)?(?:rules|laws|restrictions|limits|ethics|morals|consequences)\b",
        doc: "a fictional frame declared free of rules, used to launder a request",
    },
];

/// Word characters as the feature extractor sees them: ASCII letters, digits and `_`, and
/// every non-ASCII char. Unicode `\w` would make the bounded gaps compile to a DFA over
/// every script's letter tables, which exceeds the regex size limit; this class is a
/// handful of UTF-8 byte ranges.
const WORD: &str = r"[a-z0-9_\x{80}-\x{10FFFF}]";
const NON_WORD: &str = r"[^a-z0-9_\x{80}-\x{10FFFF}]";

/// Rewrites a rule pattern for matching: `\b` becomes the ASCII word boundary the lazy
/// DFA can run on any text, and `\w` / `\W` (never used inside a class in these
/// patterns) become `WORD` / `NON_WORD`.
pub fn expand(pattern: &str) -> String {
    pattern
        .replace(r"\b", r"(?-u:\b)")
        .replace(r"\w", WORD)
        .replace(r"\W", NON_WORD)
}

/// The compiled rule pack.
#[derive(Debug, Clone)]
pub struct RuleSet {
    rules: &'static [Rule],
    set: RegexSet,
    regexes: Vec<Regex>,
    /// Keyword prefilters for prompt contexts (`[0]`) and data contexts (`[1]`), each built
    /// from the keywords of the rules that score in that context only: common words that
    /// matter only in data ("ai", "use", "model") then cost nothing on user prompts.
    prefilters: [Prefilter; 2],
}

/// A keyword automaton and, for each of its patterns, the bitmask of rules it makes
/// candidates.
#[derive(Debug, Clone)]
struct Prefilter {
    automaton: AhoCorasick,
    keyword_rules: Vec<u64>,
    /// The rules this prefilter serves (those scoring above 0 in its contexts).
    active: u64,
}

impl Prefilter {
    fn build(rules: &[Rule], data: bool) -> Result<Prefilter> {
        let mut keywords: Vec<&str> = Vec::new();
        let mut keyword_rules: Vec<u64> = Vec::new();
        let mut active = 0u64;
        for (i, rule) in rules.iter().enumerate() {
            let score = if data {
                rule.data_score
            } else {
                rule.prompt_score
            };
            if score <= 0.0 {
                continue;
            }
            active |= 1 << i;
            for &k in rule.keywords {
                match keywords.iter().position(|&x| x == k) {
                    Some(p) => keyword_rules[p] |= 1 << i,
                    None => {
                        keywords.push(k);
                        keyword_rules.push(1 << i);
                    }
                }
            }
        }
        // A DFA: overlapping search over ~150 keywords, many of them common words, is the
        // rules' main cost on ordinary prose, and the DFA takes one table step per byte.
        let automaton = AhoCorasickBuilder::new()
            .match_kind(MatchKind::Standard)
            .kind(Some(AhoCorasickKind::DFA))
            .build(&keywords)
            .map_err(|source| Error::Automaton {
                what: "injection rule keyword",
                source,
            })?;
        Ok(Prefilter {
            automaton,
            keyword_rules,
            active,
        })
    }
}

impl RuleSet {
    /// Compiles the built-in rules.
    pub fn builtin() -> Result<RuleSet> {
        RuleSet::compile(RULES)
    }

    /// Compiles a rule table (at most 64 rules, each with at least one keyword).
    pub fn compile(rules: &'static [Rule]) -> Result<RuleSet> {
        if rules.len() > 64 || rules.iter().any(|r| r.keywords.is_empty()) {
            return Err(Error::InvalidConfig {
                what: "rule table: at most 64 rules, each with keywords",
            });
        }
        let patterns: Vec<String> = rules.iter().map(|r| expand(r.pattern)).collect();
        // Each rule alone first, so that an error names the rule.
        let regexes = rules
            .iter()
            .zip(&patterns)
            .map(|(rule, p)| {
                Regex::new(p).map_err(|e| Error::Rule {
                    rule: rule.id,
                    source: Box::new(e),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let set = RegexSetBuilder::new(&patterns)
            .dfa_size_limit(RULE_SET_DFA_CACHE_BYTES)
            .build()
            .map_err(|e| Error::Rule {
                rule: "(rule set)",
                source: Box::new(e),
            })?;
        let prefilters = [
            Prefilter::build(rules, false)?,
            Prefilter::build(rules, true)?,
        ];
        Ok(RuleSet {
            rules,
            set,
            regexes,
            prefilters,
        })
    }

    /// The rules in this set.
    pub fn rules(&self) -> &'static [Rule] {
        self.rules
    }

    /// Bitmask of rules that score in `context` and whose keywords occur in `lower`.
    fn candidates(&self, lower: &str, context: Context) -> u64 {
        let prefilter = &self.prefilters[usize::from(context.is_data())];
        let mut mask = 0u64;
        for m in prefilter.automaton.find_overlapping_iter(lower) {
            mask |= prefilter.keyword_rules[m.pattern().as_usize()];
            if mask == prefilter.active {
                break;
            }
        }
        mask
    }

    /// All rules that match lowercased `lower`, with the score they have in `context`.
    /// Rules scoring 0 in `context` are skipped.
    pub fn scan(&self, lower: &str, context: Context) -> Vec<RuleHit> {
        let mask = self.candidates(lower, context);
        if mask == 0 {
            return Vec::new();
        }
        let mut hits = Vec::new();
        let mut push = |i: usize, m: regex::Match<'_>| {
            let rule = &self.rules[i];
            hits.push(RuleHit {
                rule_id: rule.id,
                category: rule.category,
                score: rule.score(context),
                start: m.start(),
                end: m.end(),
            });
        };
        if mask.count_ones() <= SET_MIN_CANDIDATES {
            // A few candidates: each regex alone, which can skip ahead on its own literals.
            for i in (0..self.rules.len()).filter(|i| mask & (1 << i) != 0) {
                if let Some(m) = self.regexes[i].find(lower) {
                    push(i, m);
                }
            }
        } else {
            for i in self.set.matches(lower).iter() {
                if mask & (1 << i) != 0
                    && let Some(m) = self.regexes[i].find(lower)
                {
                    push(i, m);
                }
            }
        }
        hits
    }
}

/// Below this many candidate rules, `scan` runs their regexes one by one rather than the
/// `RegexSet` over all rules. Raising it trades one pass of the set for more single passes.
const SET_MIN_CANDIDATES: u32 = 3;

/// Combines rule hits of one category (or all, with `None`) as a noisy-or: independent
/// weak signals add up, and no number of them reaches 1.
pub fn combine(hits: &[RuleHit], category: Option<Category>) -> f32 {
    let keep = 1.0
        - hits
            .iter()
            .filter(|h| category.is_none_or(|c| h.category == c))
            .fold(1.0f32, |acc, h| acc * (1.0 - h.score.clamp(0.0, 1.0)));
    keep.clamp(0.0, 1.0)
}

#[cfg(test)]
mod tests;
