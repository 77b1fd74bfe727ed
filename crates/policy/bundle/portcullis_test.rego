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
# MCP inputs (docs/policy.md, "MCP stages")

agent := {"id": "svc-agent", "tenant": "research", "groups": ["agents"], "auth": "jwt", "claims": {"sub": "svc-agent"}}

mcp_tool(name, labels) := {"server": "files", "name": name, "labels": labels, "changed": false, "fingerprint": "sha256:9f2c41"}

session(tainted_by) := {"id": "mcp-session-1", "tainted_by": tainted_by, "calls": 3}

tools_list(tool, findings) := {
	"stage": "tools_list",
	"principal": agent,
	"route": "mcp",
	"server": tool.server,
	"tool": tool,
	"findings": findings,
	"session": session([]),
}

tool_call(tool, findings, tainted_by) := {
	"stage": "tool_call",
	"principal": agent,
	"route": "mcp",
	"server": tool.server,
	"tool": object.union(tool, {"arguments": {"path": "/srv/data/report.txt"}, "listed": true}),
	"findings": findings,
	"session": session(tainted_by),
}

tool_result(tool, findings) := {
	"stage": "tool_result",
	"principal": agent,
	"route": "mcp",
	"server": tool.server,
	"request": {"method": "tools/call"},
	"tool": tool,
	"findings": findings,
	"session": session([]),
}

resource_result(uri, findings) := {
	"stage": "tool_result",
	"principal": agent,
	"route": "mcp",
	"server": "files",
	"request": {"method": "resources/read"},
	"tool": null,
	"resource": {"uri": uri},
	"findings": findings,
	"session": session([]),
}

definition_finding(category, score, flagged, tool, path) := finding(category, score, flagged, {"context": "tool_definition", "tool": tool, "path": path})

arguments_finding(category, score, flagged, tool, pointer) := finding(category, score, flagged, {"context": "tool_arguments", "tool": tool, "path": pointer})

output_finding(category, score, flagged, tool, pointer) := finding(category, score, flagged, {"context": "tool_output", "tool": tool, "path": pointer})

# ---------------------------------------------------------------------------------------------
# MCP: tools/list

test_clean_tools_list_is_allowed if {
	portcullis.decision == allow with input as tools_list(mcp_tool("read_file", ["private_data"]), [])
}

test_changed_tool_is_removed_from_the_list if {
	tool := object.union(mcp_tool("read_file", []), {"changed": true})
	d := portcullis.decision with input as tools_list(tool, [])
	d.action == "deny"
	d.code == "tool_changed"
	d.reasons == ["tool files.read_file changed since it was first seen"]
}

test_poisoned_tool_definition_is_removed_from_the_list if {
	f := definition_finding("tool_poisoning", 0.9, true, "add", "/description")
	d := portcullis.decision with input as tools_list(mcp_tool("add", []), [f])
	d.action == "deny"
	d.code == "tool_poisoning"
	d.reasons == ["tool_poisoning in tool add at /description (tool_definition)"]
}

test_injection_and_hidden_text_in_a_tool_definition_count_as_poisoning if {
	every category in ["prompt_injection", "jailbreak", "invisible_text"] {
		f := definition_finding(category, 0.8, true, "add", "/inputSchema/properties/a/description")
		d := portcullis.decision with input as tools_list(mcp_tool("add", []), [f])
		d.action == "deny"
		d.code == "tool_poisoning"
	}
}

test_unflagged_poisoning_in_a_tool_definition_is_allowed if {
	f := definition_finding("tool_poisoning", 0.45, false, "add", "/description")
	portcullis.decision == allow with input as tools_list(mcp_tool("add", []), [f])
}

test_other_findings_in_a_tool_definition_are_allowed if {
	fs := [
		definition_finding("pii.email", 0.9, true, "send_email", "/description"),
		definition_finding("exfiltration", 0.9, true, "send_email", "/description"),
	]
	portcullis.decision == allow with input as tools_list(mcp_tool("send_email", []), fs)
}

test_a_change_outranks_poisoning if {
	tool := object.union(mcp_tool("add", []), {"changed": true})
	f := definition_finding("tool_poisoning", 0.9, true, "add", "/description")
	d := portcullis.decision with input as tools_list(tool, [f])
	d.code == "tool_changed"
	d.reasons == [
		"tool files.add changed since it was first seen",
		"tool_poisoning in tool add at /description (tool_definition)",
	]
}

test_a_tool_without_a_server_is_named_alone if {
	tool := object.remove(object.union(mcp_tool("read_file", []), {"changed": true}), ["server"])
	inp := object.union(object.remove(tools_list(mcp_tool("read_file", []), []), ["tool"]), {"tool": tool})
	d := portcullis.decision with input as inp
	d.reasons == ["tool read_file changed since it was first seen"]
}

test_a_tool_decision_without_a_tool_name_is_invalid if {
	d := portcullis.decision with input as object.remove(tools_list(mcp_tool("read_file", []), []), ["tool"])
	d.action == "deny"
	d.code == "invalid_input"
	d.reasons == ["input.tool.name is missing"]
}

# ---------------------------------------------------------------------------------------------
# MCP: tools/call

test_clean_tool_call_is_allowed if {
	portcullis.decision == allow with input as tool_call(mcp_tool("read_file", ["private_data"]), [], [])
}

test_call_to_a_changed_tool_is_denied if {
	tool := object.union(mcp_tool("read_file", []), {"changed": true})
	d := portcullis.decision with input as tool_call(tool, [], [])
	d.action == "deny"
	d.code == "tool_changed"
}

test_call_to_a_tool_removed_from_the_list_is_denied if {
	inp := object.union(tool_call(mcp_tool("add", []), [], []), {"tool": {"listed": false}})
	d := portcullis.decision with input as inp
	d.action == "deny"
	d.code == "tool_not_allowed"
	d.reasons == ["tool files.add was removed from this session's tool list"]
}

test_call_to_a_tool_never_listed_is_allowed if {
	inp := object.union(tool_call(mcp_tool("add", []), [], []), {"tool": {"listed": null}})
	portcullis.decision == allow with input as inp
}

test_secret_in_tool_arguments_is_denied if {
	f := arguments_finding("secret.aws_access_key", 0.95, true, "http_post", "/headers/authorization")
	d := portcullis.decision with input as tool_call(mcp_tool("http_post", []), [f], [])
	d.action == "deny"
	d.code == "secret_in_arguments"
	d.reasons == ["secret.aws_access_key in tool http_post at /headers/authorization (tool_arguments)"]
}

test_exfiltration_in_tool_arguments_is_denied if {
	f := arguments_finding("exfiltration", 0.9, true, "write_file", "/content")
	d := portcullis.decision with input as tool_call(mcp_tool("write_file", []), [f], [])
	d.action == "deny"
	d.code == "exfiltration"
}

test_unflagged_secret_and_flagged_pii_in_tool_arguments_are_allowed if {
	fs := [
		arguments_finding("secret.generic", 0.3, false, "http_post", "/body"),
		arguments_finding("pii.email", 0.9, true, "http_post", "/to"),
	]
	portcullis.decision == allow with input as tool_call(mcp_tool("http_post", []), fs, [])
}

test_tainted_session_calling_a_sink_requires_approval if {
	tool := object.union(mcp_tool("send_email", ["external_sink"]), {"server": "mail"})
	d := portcullis.decision with input as tool_call(tool, [], ["web.fetch", "github.get_issue"])
	d.action == "require_approval"
	d.code == "tainted_session_sink"
	d.redact == []
	d.reasons == ["tool mail.send_email can send data out (external_sink) and this session read untrusted content from github.get_issue, web.fetch"]
}

test_tainted_session_calling_a_tool_that_is_no_sink_is_allowed if {
	inp := tool_call(mcp_tool("read_file", ["private_data"]), [], ["web.fetch"])
	portcullis.decision == allow with input as inp
}

test_clean_session_calling_a_sink_is_allowed if {
	inp := tool_call(mcp_tool("send_email", ["external_sink"]), [], [])
	portcullis.decision == allow with input as inp
}

test_deny_beats_require_approval if {
	f := arguments_finding("secret.github_token", 0.95, true, "send_email", "/body")
	inp := tool_call(mcp_tool("send_email", ["external_sink"]), [f], ["web.fetch"])
	d := portcullis.decision with input as inp
	d.action == "deny"
	d.code == "secret_in_arguments"
	d.reasons == ["secret.github_token in tool send_email at /body (tool_arguments)"]
}

test_require_approval_beats_redact if {
	# The default rules redact only tool results; a redaction rule of one's own on calls
	# still ranks below the approval.
	f := arguments_finding("pii.email", 0.9, true, "send_email", "/to")
	inp := tool_call(mcp_tool("send_email", ["external_sink"]), [f], ["web.fetch"])
	d := portcullis.decision with input as inp with data.portcullis.tool_redactions as {f}
	d.action == "require_approval"
	d.code == "tainted_session_sink"
}

test_a_tool_call_without_a_taint_list_is_invalid if {
	inp := object.remove(tool_call(mcp_tool("send_email", ["external_sink"]), [], []), ["session"])
	d := portcullis.decision with input as inp
	d.action == "deny"
	d.code == "invalid_input"
	d.reasons == ["input.session.tainted_by must be an array"]
}

# ---------------------------------------------------------------------------------------------
# MCP: tool results

test_clean_tool_result_is_allowed if {
	portcullis.decision == allow with input as tool_result(mcp_tool("fetch", ["untrusted_source"]), [])
}

test_injection_in_a_tool_result_is_denied if {
	f := output_finding("prompt_injection", 0.97, true, "fetch", "/content/0/text")
	d := portcullis.decision with input as tool_result(mcp_tool("fetch", ["untrusted_source"]), [f])
	d.action == "deny"
	d.code == "indirect_prompt_injection"
	d.reasons == ["prompt_injection in tool fetch at /content/0/text (tool_output)"]
}

test_unflagged_injection_above_the_strict_threshold_in_a_tool_result_is_denied if {
	f := output_finding("jailbreak", 0.6, false, "fetch", "/content/0/text")
	d := portcullis.decision with input as tool_result(mcp_tool("fetch", []), [f])
	d.action == "deny"
	d.code == "indirect_prompt_injection"
}

# The classifier's unflagged scores do not count against the strict threshold: its own
# operating point decides `flagged` (short, harmless outputs score above 0.5).
test_an_unflagged_classifier_score_in_a_tool_result_is_allowed if {
	f := object.union(output_finding("prompt_injection", 0.74, false, "read_file", "/content/0/text"), {"rule": "classifier"})
	portcullis.decision == allow with input as tool_result(mcp_tool("read_file", []), [f])
}

test_a_flagged_classifier_finding_in_a_tool_result_is_denied if {
	f := object.union(output_finding("prompt_injection", 0.74, true, "fetch", "/content/0/text"), {"rule": "classifier"})
	d := portcullis.decision with input as tool_result(mcp_tool("fetch", []), [f])
	d.code == "indirect_prompt_injection"
}

test_an_unflagged_classifier_score_in_tool_output_is_allowed if {
	f := object.union(finding("prompt_injection", 0.74, false, message(3, "tool_output")), {"rule": "classifier"})
	portcullis.decision == allow with input as request([f])
}

test_weak_injection_in_a_tool_result_is_allowed if {
	f := output_finding("prompt_injection", 0.3, false, "fetch", "/content/0/text")
	portcullis.decision == allow with input as tool_result(mcp_tool("fetch", []), [f])
}

test_hidden_text_in_a_resource_is_denied if {
	f := finding("invisible_text", 0.6, true, {"context": "tool_output", "path": "/contents/0/text"})
	d := portcullis.decision with input as resource_result("file:///srv/data/notes.md", [f])
	d.action == "deny"
	d.code == "indirect_prompt_injection"
	d.reasons == ["invisible_text at /contents/0/text (tool_output)"]
}

test_injection_in_a_prompt_is_denied if {
	f := finding("prompt_injection", 0.9, true, {"context": "tool_output", "path": "/messages/0/content/text"})
	inp := object.union(resource_result("", [f]), {"request": {"method": "prompts/get"}, "prompt": {"name": "summarise"}})
	d := portcullis.decision with input as object.remove(inp, ["resource"])
	d.code == "indirect_prompt_injection"
}

test_secret_in_a_tool_result_is_redacted if {
	fs := [
		output_finding("secret.github_token", 0.95, true, "read_file", "/content/0/text"),
		output_finding("pii.email", 0.9, true, "read_file", "/content/0/text"),
	]
	d := portcullis.decision with input as tool_result(mcp_tool("read_file", ["private_data"]), fs)
	d.action == "redact"
	d.redact == ["secret.github_token"]
	d.code == "tool_result_redacted"
	d.reasons == ["secret.github_token in tool read_file at /content/0/text (tool_output)"]
}

test_unflagged_secret_in_a_tool_result_is_not_redacted if {
	f := output_finding("secret.generic", 0.3, false, "read_file", "/content/0/text")
	portcullis.decision == allow with input as tool_result(mcp_tool("read_file", []), [f])
}

test_deny_beats_redact_in_tool_results if {
	fs := [
		output_finding("secret.github_token", 0.95, true, "fetch", "/content/0/text"),
		output_finding("prompt_injection", 0.9, true, "fetch", "/content/1/text"),
	]
	d := portcullis.decision with input as tool_result(mcp_tool("fetch", []), fs)
	d.action == "deny"
	d.redact == []
	d.reasons == ["prompt_injection in tool fetch at /content/1/text (tool_output)"]
}

test_tool_result_strictness_follows_the_settings if {
	f := output_finding("prompt_injection", 0.6, false, "fetch", "/content/0/text")
	inp := tool_result(mcp_tool("fetch", []), [f])
	portcullis.decision == allow with input as inp with data.portcullis_settings.strict_threshold as 0.9
	portcullis.decision == allow with input as inp with data.portcullis_settings.strict_contexts as ["document"]
}

test_violations_and_redactions_of_ones_own_apply_to_mcp_stages if {
	# `violations` and `redactions` are consulted at every stage, so rules written for them
	# (docs/mcp.md) work for tools too.
	f := arguments_finding("argument_rule", 1, true, "read_file", "/path")
	d := portcullis.decision with input as tool_call(mcp_tool("read_file", []), [], []) with data.portcullis.violations as {["path_outside_data", f]}
	d.action == "deny"
	d.code == "path_outside_data"
	d.reasons == ["argument_rule in tool read_file at /path (tool_arguments)"]
	g := output_finding("pii.email", 0.9, true, "read_file", "/content/0/text")
	r := portcullis.decision with input as tool_result(mcp_tool("read_file", []), [g]) with data.portcullis.redactions as {g}
	r.action == "redact"
	r.redact == ["pii.email"]
	r.code == "tool_result_redacted"
}

# ---------------------------------------------------------------------------------------------
# Other stages and malformed input

test_request_rules_do_not_apply_to_mcp_stages if {
	# An injection in tool arguments is not a `deny_in_tool_arguments` category, and the
	# request stage's `deny_anywhere` does not apply to tool calls.
	inp := tool_call(mcp_tool("write_file", []), [arguments_finding("prompt_injection", 0.99, true, "write_file", "/content")], [])
	portcullis.decision == allow with input as inp
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
	"data.portcullis_settings.deny_in_tool_definitions must be a list of strings" in errors
	"data.portcullis_settings.deny_in_tool_arguments must be a list of strings" in errors
	"data.portcullis_settings.redact_in_tool_results must be a list of strings" in errors
}

test_tool_settings_entries_may_be_exact_categories if {
	fs := [
		arguments_finding("secret.aws_access_key", 0.95, true, "http_post", "/a"),
		arguments_finding("secret.github_token", 0.95, true, "http_post", "/b"),
	]
	inp := tool_call(mcp_tool("http_post", []), fs, [])
	d := portcullis.decision with input as inp with data.portcullis_settings.deny_in_tool_arguments as ["secret.github_token"]
	d.reasons == ["secret.github_token in tool http_post at /b (tool_arguments)"]
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
