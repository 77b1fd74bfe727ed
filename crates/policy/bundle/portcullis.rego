# The Portcullis default policy: what the gateway enforces out of the box.
#
# The gateway asks for `data.portcullis.decision` once per decision, with the input documented
# in docs/policy.md. Thresholds and category lists come from `data.portcullis_settings`
# (data.json beside this file), so operators can tune the rules without editing them; the
# settings are checked once, when the bundle is loaded (`bundle_errors` below).
#
# Precedence: deny beats redact beats allow. Stages other than `request` and `response` are
# allowed for now; a missing or unknown stage denies (fail closed).
#
# Written for regorus's bytecode VM, where every instruction costs ~60 ns and a rule reference,
# function call or builtin (`sprintf`, `split`) several times that: per-finding rules read
# settings straight from `data`, test the cheap conditions first, and build a reason string
# only for a finding already known to violate. Mind that when editing: see
# `benches/decision.rs`.
package portcullis

import rego.v1

# The decision: {"action", "reasons", "redact", "code"}; see docs/policy.md.
#
# A violation is `[code, finding]`; its reason is formatted here, so that a finding whose
# reason cannot be formatted still denies.
decision := {
	"action": "deny",
	"reasons": sort({describe(v[1]) | some v in violations} | input_problems),
	"redact": [],
	"code": deny_code,
} if {
	count(violations) + count(input_problems) > 0
} else := {
	"action": "redact",
	"reasons": sort({describe(f) | some f in redactions}),
	"redact": sort({f.category | some f in redactions}),
	"code": "untrusted_upstream",
} if {
	count(redactions) > 0
} else := {"action": "allow", "reasons": [], "redact": []}

# When several rules deny, `code` is the first of these that occurs; codes not listed rank
# last, alphabetically.
deny_code := "invalid_input" if {
	count(input_problems) > 0
} else := min({[object.get(
	{
		"tool_poisoning": 1,
		"indirect_prompt_injection": 2,
		"prompt_injection": 3,
		"jailbreak": 4,
		"invisible_text": 5,
		"banned": 6,
		"secret_in_response": 7,
		"exfiltration": 8,
		"system_prompt_leak": 9,
	},
	v[0],
	100,
), v[0]] | some v in violations})[1]

# ---------------------------------------------------------------------------------------------
# Input checks

input_problems contains "input.stage is missing or unknown" if {
	not input.stage in {"request", "response", "tools_list", "tool_call", "tool_result"}
}

# ---------------------------------------------------------------------------------------------
# Request stage

# A flagged finding of a `deny_anywhere` category anywhere in the request: injection and
# jailbreak attempts, poisoned tool definitions, banned content. The code is the family.
violations contains [family, f] if {
	input.stage == "request"
	some f in input.findings
	f.flagged == true
	strings.any_prefix_match(f.category, data.portcullis_settings.deny_anywhere)
	family := split(f.category, ".")[0]
	some name in [f.category, family]
	name in data.portcullis_settings.deny_anywhere
}

# Stricter for text that came from a tool or a document (indirect prompt injection): there a
# finding denies when flagged *or* when it scores at least `strict_threshold`, since
# instructions have no business in data; hidden text in data is a classic carrier. Injection
# there has the code `indirect_prompt_injection`.
# (`object.get({true: 1}, f.flagged, f.score)` is 1 for a flagged finding and its score
# otherwise: "flagged or score >= threshold" in one expression.)
violations contains [code, f] if {
	input.stage == "request"
	some f in input.findings
	f.where.context in data.portcullis_settings.strict_contexts
	object.get({true: 1}, f.flagged, f.score) >= data.portcullis_settings.strict_threshold
	strings.any_prefix_match(f.category, data.portcullis_settings.deny_in_strict_contexts)
	family := split(f.category, ".")[0]
	some name in [f.category, family]
	name in data.portcullis_settings.deny_in_strict_contexts
	code := object.get({"prompt_injection": "indirect_prompt_injection", "jailbreak": "indirect_prompt_injection"}, family, family)
}

# Flagged personal data and secrets bound for an upstream that is not explicitly trusted are
# redacted. A missing `upstream.trusted` counts as untrusted.
redactions contains f if {
	input.stage == "request"
	not input.upstream.trusted == true
	some f in input.findings
	f.flagged == true
	strings.any_prefix_match(f.category, data.portcullis_settings.redact_for_untrusted_upstream)
	some name in [f.category, split(f.category, ".")[0]]
	name in data.portcullis_settings.redact_for_untrusted_upstream
}

# ---------------------------------------------------------------------------------------------
# Response stage

# Flagged secrets, exfiltration attempts (links or images carrying data out) and system
# prompt leaks in model output. A secret has the code `secret_in_response`.
violations contains [code, f] if {
	input.stage == "response"
	some f in input.findings
	f.flagged == true
	strings.any_prefix_match(f.category, data.portcullis_settings.deny_in_response)
	family := split(f.category, ".")[0]
	some name in [f.category, family]
	name in data.portcullis_settings.deny_in_response
	code := object.get({"secret": "secret_in_response"}, family, family)
}

# ---------------------------------------------------------------------------------------------
# Helpers
#
# A settings list covers a category when it names the category or its family, the part
# before the first dot ("pii" covers "pii.email"): the rule of Decision::redacts, for the one-
# and two-level names the detectors use. The rules test it in two steps: a cheap
# `strings.any_prefix_match` (one builtin call) rejects most findings, and only a candidate
# pays for `split` and the exact comparison ("pii" is a prefix of "piix" but not its family).

# "prompt_injection in message 2 (user_prompt)", "tool_poisoning in tool fetch (tool_definition)",
# "secret.github_token in choice 0 (assistant)", "pii.email in prompt 0 (user_prompt)" (the
# legacy completions route). Each branch tests every field its `sprintf` reads before
# formatting: regorus's VM (0.14) does not fall through to `else` when an assignment in a body
# has an undefined right-hand side, so a guard must fail instead (docs/policy.md).
describe(f) := reason if {
	is_string(f.category)
	is_number(f.where.message)
	is_string(f.where.context)
	reason := sprintf("%v in message %v (%v)", [f.category, f.where.message, f.where.context])
} else := reason if {
	is_string(f.category)
	is_string(f.where.tool)
	is_string(f.where.context)
	reason := sprintf("%v in tool %v (%v)", [f.category, f.where.tool, f.where.context])
} else := reason if {
	is_string(f.category)
	is_number(f.where.choice)
	is_string(f.where.context)
	reason := sprintf("%v in choice %v (%v)", [f.category, f.where.choice, f.where.context])
} else := reason if {
	is_string(f.category)
	is_number(f.where.prompt)
	is_string(f.where.context)
	reason := sprintf("%v in prompt %v (%v)", [f.category, f.where.prompt, f.where.context])
} else := reason if {
	is_string(f.category)
	reason := concat("", [f.category, " in an unknown location"])
} else := "a finding in an unknown location"

# ---------------------------------------------------------------------------------------------
# Settings check, evaluated once when the bundle is loaded: a non-empty set rejects the bundle
# (Policy::compile fails), so a missing or mistyped setting cannot switch a rule off silently.

setting_kinds := {
	"deny_anywhere": "list",
	"strict_contexts": "list",
	"deny_in_strict_contexts": "list",
	"strict_threshold": "score",
	"redact_for_untrusted_upstream": "list",
	"deny_in_response": "list",
}

default settings := {}

settings := data.portcullis_settings if is_object(data.portcullis_settings)

bundle_errors contains msg if {
	some name, kind in setting_kinds
	not valid_setting(object.get(settings, name, null), kind)
	msg := sprintf("data.portcullis_settings.%s must be %s", [name, kind_text[kind]])
}

kind_text := {"list": "a list of strings", "score": "a number between 0 and 1"}

valid_setting(value, "list") if {
	is_array(value)
	every item in value {
		is_string(item)
	}
}

valid_setting(value, "score") if {
	is_number(value)
	value >= 0
	value <= 1
}
