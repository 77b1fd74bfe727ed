# Tests of the default policy (portcullis.rego): run with `portcullis policy test`.
# Each `test_*` rule passes when it is true; inputs come in through `with input as`.
package portcullis_test

import data.portcullis
import rego.v1

# ---------------------------------------------------------------------------------------------
# Inputs

finding(category, score, flagged, where) := {
	"category": category,
	"detector": "test",
	"rule": "test",
	"score": score,
	"flagged": flagged,
	"where": where,
}

roles := {"user_prompt": "user", "tool_output": "tool", "document": "user", "system": "system", "assistant": "assistant"}

message(i, context) := {"message": i, "role": roles[context], "context": context}

tool(name) := {"tool": name, "context": "tool_definition"}

choice(i) := {"choice": i, "role": "assistant", "context": "assistant"}

request(findings) := {
	"stage": "request",
	"principal": {"id": "anonymous", "tenant": null, "groups": [], "auth": "anonymous", "claims": {}},
	"route": "chat_completions",
	"model": "gpt-4o",
	"upstream": {"name": "openai", "trusted": true},
	"findings": findings,
	"request": {"messages": 4, "prompt_tokens_estimate": 812, "tools": ["get_weather"], "stream": false},
}

untrusted_request(findings) := object.union(request(findings), {"upstream": {"name": "cheap-llm", "trusted": false}})

response(findings) := object.union(request(findings), {"stage": "response"})

allow := {"action": "allow", "reasons": [], "redact": []}

# ---------------------------------------------------------------------------------------------
# Clean traffic

test_clean_request_is_allowed if {
	portcullis.decision == allow with input as request([])
}

test_clean_response_is_allowed if {
	portcullis.decision == allow with input as response([])
}

test_request_without_findings_key_is_allowed if {
	inp := object.remove(request([]), ["findings"])
	portcullis.decision == allow with input as inp
}

# ---------------------------------------------------------------------------------------------
# Direct prompt injection and jailbreaks

test_flagged_injection_in_user_prompt_is_denied if {
	inp := request([finding("prompt_injection", 0.97, true, message(2, "user_prompt"))])
	d := portcullis.decision with input as inp
	d.action == "deny"
	d.code == "prompt_injection"
	d.reasons == ["prompt_injection in message 2 (user_prompt)"]
	d.redact == []
}

test_unflagged_injection_in_user_prompt_is_allowed if {
	inp := request([finding("prompt_injection", 0.6, false, message(2, "user_prompt"))])
	portcullis.decision == allow with input as inp
}

test_flagged_jailbreak_is_denied if {
	inp := request([finding("jailbreak", 0.9, true, message(0, "user_prompt"))])
	d := portcullis.decision with input as inp
	d.action == "deny"
	d.code == "jailbreak"
}

test_flagged_injection_in_system_prompt_is_denied if {
	inp := request([finding("prompt_injection", 0.99, true, message(0, "system"))])
	d := portcullis.decision with input as inp
	d.action == "deny"
	d.reasons == ["prompt_injection in message 0 (system)"]
}

test_finding_without_location_still_denies if {
	inp := request([{"category": "prompt_injection", "score": 0.9, "flagged": true}])
	d := portcullis.decision with input as inp
	d.action == "deny"
	d.reasons == ["prompt_injection in an unknown location"]
}

test_legacy_completion_prompts_are_located if {
	inp := object.union(
		request([finding("prompt_injection", 0.9, true, {"prompt": 1, "context": "user_prompt"})]),
		{"route": "completions"},
	)
	d := portcullis.decision with input as inp
	d.reasons == ["prompt_injection in prompt 1 (user_prompt)"]
}

test_partial_location_still_denies if {
	inp := request([{"category": "prompt_injection", "score": 0.9, "flagged": true, "where": {"message": 4}}])
	d := portcullis.decision with input as inp
	d.action == "deny"
	d.reasons == ["prompt_injection in an unknown location"]
}

test_repeated_findings_give_one_reason if {
	f := finding("prompt_injection", 0.9, true, message(1, "user_prompt"))
	g := object.union(f, {"rule": "other", "score": 0.8})
	d := portcullis.decision with input as request([f, g])
	d.reasons == ["prompt_injection in message 1 (user_prompt)"]
}

# ---------------------------------------------------------------------------------------------
# Indirect prompt injection: stricter in tool output and documents

test_injection_in_tool_output_above_strict_threshold_is_denied if {
	inp := request([finding("prompt_injection", 0.55, false, message(3, "tool_output"))])
	d := portcullis.decision with input as inp
	d.action == "deny"
	d.code == "indirect_prompt_injection"
	d.reasons == ["prompt_injection in message 3 (tool_output)"]
}

test_flagged_injection_in_document_below_threshold_is_denied if {
	inp := request([finding("prompt_injection", 0.2, true, message(1, "document"))])
	d := portcullis.decision with input as inp
	d.action == "deny"
	d.code == "indirect_prompt_injection"
}

test_weak_injection_in_document_is_allowed if {
	inp := request([finding("prompt_injection", 0.3, false, message(1, "document"))])
	portcullis.decision == allow with input as inp
}

test_same_score_in_user_prompt_is_allowed if {
	inp := request([finding("prompt_injection", 0.55, false, message(3, "user_prompt"))])
	portcullis.decision == allow with input as inp
}

test_jailbreak_in_tool_output_is_indirect if {
	inp := request([finding("jailbreak", 0.7, false, message(3, "tool_output"))])
	d := portcullis.decision with input as inp
	d.code == "indirect_prompt_injection"
}

test_invisible_text_in_document_is_denied if {
	inp := request([finding("invisible_text", 0.6, true, message(2, "document"))])
	d := portcullis.decision with input as inp
	d.action == "deny"
	d.code == "invisible_text"
	d.reasons == ["invisible_text in message 2 (document)"]
}

test_invisible_text_in_user_prompt_is_allowed if {
	inp := request([finding("invisible_text", 0.95, true, message(2, "user_prompt"))])
	portcullis.decision == allow with input as inp
}

test_obfuscation_in_tool_output_is_allowed if {
	inp := request([finding("obfuscation", 0.9, true, message(2, "tool_output"))])
	portcullis.decision == allow with input as inp
}

# ---------------------------------------------------------------------------------------------
# Tool definitions and banned content

test_tool_poisoning_is_denied if {
	inp := request([finding("tool_poisoning", 0.9, true, tool("get_weather"))])
	d := portcullis.decision with input as inp
	d.action == "deny"
	d.code == "tool_poisoning"
	d.reasons == ["tool_poisoning in tool get_weather (tool_definition)"]
}

test_unflagged_tool_poisoning_is_allowed if {
	inp := request([finding("tool_poisoning", 0.3, false, tool("get_weather"))])
	portcullis.decision == allow with input as inp
}

test_banned_content_is_denied if {
	inp := request([finding("banned", 1, true, message(0, "user_prompt"))])
	d := portcullis.decision with input as inp
	d.action == "deny"
	d.code == "banned"
}

test_tool_poisoning_outranks_injection if {
	inp := request([
		finding("prompt_injection", 0.9, true, message(1, "user_prompt")),
		finding("tool_poisoning", 0.9, true, tool("fetch")),
	])
	d := portcullis.decision with input as inp
	d.code == "tool_poisoning"
	d.reasons == ["prompt_injection in message 1 (user_prompt)", "tool_poisoning in tool fetch (tool_definition)"]
}

# ---------------------------------------------------------------------------------------------
# Sensitive data bound for an untrusted upstream

test_pii_to_untrusted_upstream_is_redacted if {
	inp := untrusted_request([finding("pii.email", 0.9, true, message(1, "user_prompt"))])
	d := portcullis.decision with input as inp
	d.action == "redact"
	d.redact == ["pii.email"]
	d.reasons == ["pii.email in message 1 (user_prompt)"]
	d.code == "untrusted_upstream"
}

test_pii_to_trusted_upstream_is_allowed if {
	inp := request([finding("pii.email", 0.9, true, message(1, "user_prompt"))])
	portcullis.decision == allow with input as inp
}

test_missing_trust_counts_as_untrusted if {
	inp := object.remove(request([finding("pii.phone", 0.9, true, message(1, "user_prompt"))]), ["upstream"])
	d := portcullis.decision with input as inp
	d.action == "redact"
	d.redact == ["pii.phone"]
}

test_unflagged_pii_is_not_redacted if {
	inp := untrusted_request([finding("pii.us_ssn", 0.3, false, message(1, "user_prompt"))])
	portcullis.decision == allow with input as inp
}

test_every_sensitive_category_is_listed if {
	inp := untrusted_request([
		finding("secret.github_token", 0.95, true, message(2, "tool_output")),
		finding("pii.phone", 0.8, true, message(1, "user_prompt")),
		finding("pii.phone", 0.8, true, message(3, "user_prompt")),
	])
	d := portcullis.decision with input as inp
	d.action == "redact"
	d.redact == ["pii.phone", "secret.github_token"]
	count(d.reasons) == 3
}

test_deny_beats_redact if {
	inp := untrusted_request([
		finding("pii.email", 0.9, true, message(1, "user_prompt")),
		finding("prompt_injection", 0.9, true, message(1, "user_prompt")),
	])
	d := portcullis.decision with input as inp
	d.action == "deny"
	d.redact == []
	d.reasons == ["prompt_injection in message 1 (user_prompt)"]
}

# ---------------------------------------------------------------------------------------------
# Responses

test_flagged_secret_in_response_is_denied if {
	inp := response([finding("secret.github_token", 0.95, true, choice(0))])
	d := portcullis.decision with input as inp
	d.action == "deny"
	d.code == "secret_in_response"
	d.reasons == ["secret.github_token in choice 0 (assistant)"]
}

test_unflagged_secret_in_response_is_allowed if {
	inp := response([finding("secret.generic", 0.3, false, choice(0))])
	portcullis.decision == allow with input as inp
}

test_exfiltration_in_response_is_denied if {
	inp := response([finding("exfiltration", 0.9, true, choice(1))])
	d := portcullis.decision with input as inp
	d.code == "exfiltration"
	d.reasons == ["exfiltration in choice 1 (assistant)"]
}

test_system_prompt_leak_in_response_is_denied if {
	inp := response([finding("system_prompt_leak", 0.9, true, choice(0))])
	d := portcullis.decision with input as inp
	d.code == "system_prompt_leak"
}

test_other_findings_in_response_are_allowed if {
	inp := response([
		finding("pii.email", 0.9, true, choice(0)),
		finding("prompt_injection", 0.9, true, choice(0)),
	])
	portcullis.decision == allow with input as inp
}

# ---------------------------------------------------------------------------------------------
# Other stages and malformed input

test_later_stages_are_allowed if {
	inp := request([finding("prompt_injection", 0.99, true, message(0, "tool_output"))])
	every stage in ["tools_list", "tool_call", "tool_result"] {
		portcullis.decision == allow with input as object.union(inp, {"stage": stage})
	}
}

test_unknown_stage_is_denied if {
	d := portcullis.decision with input as object.union(request([]), {"stage": "preflight"})
	d.action == "deny"
	d.code == "invalid_input"
}

test_missing_stage_is_denied if {
	d := portcullis.decision with input as {}
	d.action == "deny"
	d.code == "invalid_input"
}

# ---------------------------------------------------------------------------------------------
# Settings

test_shipped_settings_pass_the_bundle_check if {
	count(portcullis.bundle_errors) == 0
}

test_bundle_check_names_bad_settings if {
	errors := portcullis.bundle_errors with data.portcullis_settings as {"deny_anywhere": "prompt_injection", "strict_threshold": 2}
	"data.portcullis_settings.deny_anywhere must be a list of strings" in errors
	"data.portcullis_settings.strict_threshold must be a number between 0 and 1" in errors
	"data.portcullis_settings.deny_in_response must be a list of strings" in errors
}

test_strict_threshold_is_a_setting if {
	inp := request([finding("prompt_injection", 0.55, false, message(3, "tool_output"))])
	portcullis.decision == allow with input as inp with data.portcullis_settings.strict_threshold as 0.9
}

test_settings_entries_may_be_families if {
	inp := request([finding("secret.aws_access_key", 0.9, true, message(1, "user_prompt"))])
	portcullis.decision == allow with input as inp
	d := portcullis.decision with input as inp with data.portcullis_settings.deny_anywhere as ["secret"]
	d.action == "deny"
	d.code == "secret"
}

test_settings_entries_may_be_exact_categories if {
	inp := untrusted_request([
		finding("pii.email", 0.9, true, message(1, "user_prompt")),
		finding("pii.ipv4", 0.9, true, message(1, "user_prompt")),
	])
	d := portcullis.decision with input as inp with data.portcullis_settings.redact_for_untrusted_upstream as ["pii.email"]
	d.redact == ["pii.email"]
}
