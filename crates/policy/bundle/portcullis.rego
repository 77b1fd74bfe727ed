# The Portcullis default policy: what the gateway enforces out of the box.
#
# The gateway asks for `data.portcullis.decision` once per decision, with the input documented
# in docs/policy.md. Thresholds and category lists come from `data.portcullis_settings`
# (data.json beside this file), so operators can tune the rules without editing them; the
# settings are checked once, when the bundle is loaded (`bundle_errors` below).
#
# Stages: `request` and `response` (LLM traffic) and the MCP stages `tools_list` (one decision
# per listed tool), `tool_call` and `tool_result`. Precedence: deny beats require_approval beats
# redact beats allow. A missing or unknown stage denies (fail closed).
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
# MCP stages go to `tool_decision`, so that LLM traffic (every chat request) evaluates only the
# request and response rules below and MCP traffic only the tool rules. The branches' bodies are
# tests, never assignments: regorus's VM does not fall through to `else` when an assignment in
# a body is undefined (docs/policy.md).
#
# Requests and responses (and a missing or unknown stage): deny beats redact beats allow. A
# violation is `[code, finding]`; its reason is formatted here, so that a finding whose reason
# cannot be formatted still denies.
decision := tool_decision if {
	input.stage in {"tools_list", "tool_call", "tool_result"}
} else := {
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

deny_code := "invalid_input" if {
	count(input_problems) > 0
} else := first_code({v[0] | some v in violations})

# MCP stages: deny beats require_approval beats redact beats allow.
#
# `violations` and `redactions` count here too, so that a rule of one's own written for any
# stage applies; the default MCP rules use their own sets, which LLM traffic never evaluates:
# `tool_violations` are `[code, finding]` like `violations`, `tool_denials` and
# `tool_approvals` are `[code, reason]`, for what is not a finding (a changed tool, a tainted
# session), and `tool_redactions` are findings.
tool_decision := {
	"action": "deny",
	"reasons": sort(({describe(v[1]) | some v in violations} | {describe(v[1]) | some v in tool_violations}) | {d[1] | some d in tool_denials}),
	"redact": [],
	"code": first_code(({v[0] | some v in violations} | {v[0] | some v in tool_violations}) | {d[0] | some d in tool_denials}),
} if {
	count(violations) + count(tool_violations) + count(tool_denials) > 0
} else := {
	"action": "require_approval",
	"reasons": sort({a[1] | some a in tool_approvals}),
	"redact": [],
	"code": first_code({a[0] | some a in tool_approvals}),
} if {
	count(tool_approvals) > 0
} else := {
	"action": "redact",
	"reasons": sort({describe(f) | some f in redactions} | {describe(f) | some f in tool_redactions}),
	"redact": sort({f.category | some f in redactions} | {f.category | some f in tool_redactions}),
	"code": "tool_result_redacted",
} if {
	count(redactions) + count(tool_redactions) > 0
} else := {"action": "allow", "reasons": [], "redact": []}

# When several rules deny, `code` is the first of these that occurs; codes not listed rank
# last, alphabetically.
first_code(codes) := min({[object.get(
	{
		"invalid_input": 0,
		"tool_changed": 1,
		"tool_poisoning": 2,
		"tool_not_allowed": 3,
		"indirect_prompt_injection": 4,
		"prompt_injection": 5,
		"jailbreak": 6,
		"invisible_text": 7,
		"banned": 8,
		"secret_in_arguments": 9,
		"secret_in_response": 10,
		"exfiltration": 11,
		"system_prompt_leak": 12,
	},
	code,
	100,
), code] | some code in codes})[1]

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
# (`object.get({true: 1}, f.flagged, ...)` is 1 for a flagged finding and otherwise its score:
# "flagged or score >= threshold" in one expression.) The score counts for rule findings only:
# the classifier's scores are not calibrated probabilities, its per-context operating point
# already decides `flagged`, and unflagged classifier scores above 0.5 occur on short, harmless
# tool outputs ("contents of /srv/data/report.txt": 0.74). Measured on the dev datasets read as
# tool output (scripts/tool_output_strictness.py): recall on the 1,105 attacks 99.9% -> 99.0%,
# benign denied unchanged (429 of 2,584).
# An unflagged classifier finding therefore counts as 0.
violations contains [code, f] if {
	input.stage == "request"
	some f in input.findings
	f.where.context in data.portcullis_settings.strict_contexts
	object.get({true: 1}, f.flagged, object.get({"classifier": 0}, f.rule, f.score)) >= data.portcullis_settings.strict_threshold
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
# MCP: tools/list (one decision per listed tool; deny removes it from the list) and tools/call

# A tool decision needs the tool's name, and a call the session's taint list: without them the
# rules below could not fire, so their absence denies rather than allows.
tool_denials contains ["invalid_input", "input.tool.name is missing"] if {
	input.stage in {"tools_list", "tool_call"}
	not is_string(input.tool.name)
}

tool_denials contains ["invalid_input", "input.session.tainted_by must be an array"] if {
	input.stage == "tool_call"
	not is_array(input.session.tainted_by)
}

# A tool whose definition differs from the one first seen (pinned) for its server: a "rug
# pull", where a server turns a vetted tool malicious after it was approved.
tool_denials contains ["tool_changed", concat("", ["tool ", tool_label, " changed since it was first seen"])] if {
	input.stage in {"tools_list", "tool_call"}
	input.tool.changed == true
}

# A flagged finding of a `deny_in_tool_definitions` category in the tool's name, description or
# schema texts: instructions hidden in a tool definition (tool poisoning).
tool_violations contains ["tool_poisoning", f] if {
	input.stage == "tools_list"
	some f in input.findings
	f.flagged == true
	strings.any_prefix_match(f.category, data.portcullis_settings.deny_in_tool_definitions)
	some name in [f.category, split(f.category, ".")[0]]
	name in data.portcullis_settings.deny_in_tool_definitions
}

# A call to a tool that the last tools/list decision of this session removed (`listed` is
# false; null means never listed, which this bundle allows).
tool_denials contains ["tool_not_allowed", concat("", ["tool ", tool_label, " was removed from this session's tool list"])] if {
	input.stage == "tool_call"
	input.tool.listed == false
}

# A flagged finding of a `deny_in_tool_arguments` category in the call's arguments: a secret
# (code `secret_in_arguments`) or a data-carrying link (its family) on its way to a tool.
tool_violations contains [code, f] if {
	input.stage == "tool_call"
	some f in input.findings
	f.flagged == true
	strings.any_prefix_match(f.category, data.portcullis_settings.deny_in_tool_arguments)
	family := split(f.category, ".")[0]
	some name in [f.category, family]
	name in data.portcullis_settings.deny_in_tool_arguments
	code := object.get({"secret": "secret_in_arguments"}, family, family)
}

# The "lethal trifecta": the session has read results of an `untrusted_source` tool and now
# calls an `external_sink` tool, which could carry what the session holds out. A human
# approves. The reason names the sources (strings only, so that it always formats).
tool_approvals contains ["tainted_session_sink", reason] if {
	input.stage == "tool_call"
	count(input.session.tainted_by) > 0
	"external_sink" in input.tool.labels
	sources := concat(", ", sort([s | some s in input.session.tainted_by; is_string(s)]))
	reason := concat("", [
		"tool ", tool_label, " can send data out (external_sink) and this session read ",
		"untrusted content from ", sources,
	])
}

# ---------------------------------------------------------------------------------------------
# MCP: tool_result (the result of tools/call, resources/read or prompts/get)

# The request stage's strict-context rule, for what a tool, resource or prompt returned: a
# `deny_in_strict_contexts` finding in a `strict_contexts` context denies when flagged or when
# a rule finding scores at least `strict_threshold` (unflagged classifier scores do not count:
# see the request rule). Always code `indirect_prompt_injection`: whatever the
# category, the result is trying to instruct the model.
tool_violations contains ["indirect_prompt_injection", f] if {
	input.stage == "tool_result"
	some f in input.findings
	f.where.context in data.portcullis_settings.strict_contexts
	object.get({true: 1}, f.flagged, object.get({"classifier": 0}, f.rule, f.score)) >= data.portcullis_settings.strict_threshold
	strings.any_prefix_match(f.category, data.portcullis_settings.deny_in_strict_contexts)
	some name in [f.category, split(f.category, ".")[0]]
	name in data.portcullis_settings.deny_in_strict_contexts
}

# Flagged findings of a `redact_in_tool_results` category (secrets, by default) are redacted
# from the result before the model reads it.
tool_redactions contains f if {
	input.stage == "tool_result"
	some f in input.findings
	f.flagged == true
	strings.any_prefix_match(f.category, data.portcullis_settings.redact_in_tool_results)
	some name in [f.category, split(f.category, ".")[0]]
	name in data.portcullis_settings.redact_in_tool_results
}

# "files.read_file", or the bare name when the server is not given.
tool_label := concat(".", [input.tool.server, input.tool.name]) if {
	is_string(input.tool.server)
	is_string(input.tool.name)
} else := input.tool.name if {
	is_string(input.tool.name)
} else := "(unnamed)"

# ---------------------------------------------------------------------------------------------
# Helpers
#
# A settings list covers a category when it names the category or its family, the part
# before the first dot ("pii" covers "pii.email"): the rule of Decision::redacts, for the one-
# and two-level names the detectors use. The rules test it in two steps: a cheap
# `strings.any_prefix_match` (one builtin call) rejects most findings, and only a candidate
# pays for `split` and the exact comparison ("pii" is a prefix of "piix" but not its family).

# "prompt_injection in message 2 (user_prompt)", "secret.github_token in choice 0 (assistant)",
# "pii.email in prompt 0 (user_prompt)" (the legacy completions route), "tool_poisoning in tool
# read_file at /description (tool_definition)" (MCP), "tool_poisoning in tool fetch
# (tool_definition)" (a chat request's tools), "secret.github_token at /contents/0/text
# (tool_output)" (an MCP resource). The branches most findings take come first: each failing
# branch costs a few instructions. Each branch tests every field its `sprintf` reads before
# formatting: regorus's VM (0.14) does not fall through to `else` when an assignment in a body
# has an undefined right-hand side, so a guard must fail instead (docs/policy.md).
describe(f) := reason if {
	is_string(f.category)
	is_number(f.where.message)
	is_string(f.where.context)
	reason := sprintf("%v in message %v (%v)", [f.category, f.where.message, f.where.context])
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
	is_string(f.where.tool)
	is_string(f.where.path)
	is_string(f.where.context)
	reason := sprintf("%v in tool %v at %v (%v)", [f.category, f.where.tool, f.where.path, f.where.context])
} else := reason if {
	is_string(f.category)
	is_string(f.where.tool)
	is_string(f.where.context)
	reason := sprintf("%v in tool %v (%v)", [f.category, f.where.tool, f.where.context])
} else := reason if {
	is_string(f.category)
	is_string(f.where.path)
	is_string(f.where.context)
	reason := sprintf("%v at %v (%v)", [f.category, f.where.path, f.where.context])
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
	"deny_in_tool_definitions": "list",
	"deny_in_tool_arguments": "list",
	"redact_in_tool_results": "list",
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
