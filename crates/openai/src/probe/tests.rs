use super::*;

fn chat(body: &str) -> Result<RequestProbe, ApiError> {
    probe_request(Endpoint::ChatCompletions, body.as_bytes())
}

fn code_and_param(error: &ApiError) -> (Option<&str>, Option<&str>) {
    (error.code.as_deref(), error.param.as_deref())
}

#[test]
fn a_valid_chat_request_is_probed() {
    let probe = chat(
        r#"{"model":"gpt-4o","messages":[{"role":"system","content":"be brief"},
        {"role":"user","content":[{"type":"text","text":"hi"}],"name":"x"},
        {"role":"assistant","content":null,"tool_calls":[]}],
        "stream":true,"stream_options":{"include_usage":true},"unknown_field":{"kept":1}}"#,
    )
    .unwrap();
    assert_eq!(
        probe,
        RequestProbe {
            model: "gpt-4o".into(),
            stream: true,
            include_usage: true,
            messages: 3,
            // "be brief" (10) + the content-part array (29), as sent; null is no text.
            prompt_bytes: 39,
        }
    );
    assert_eq!(probe.prompt_tokens_estimate(), 10 + 12);
}

#[test]
fn prompt_bytes_cover_completions_and_embeddings_inputs() {
    let probe = probe_request(
        Endpoint::Completions,
        br#"{"model":"m","prompt":"0123456789abcdef"}"#,
    )
    .unwrap();
    assert_eq!(probe.prompt_bytes, 18);
    assert_eq!(probe.prompt_tokens_estimate(), 5);
    let probe = probe_request(
        Endpoint::Embeddings,
        br#"{"model":"m","input":["ab","cd"]}"#,
    )
    .unwrap();
    assert_eq!(probe.prompt_bytes, 11);
}

#[test]
fn malformed_json_is_invalid_json() {
    for body in [
        "",
        "{",
        "{\"model\":",
        "not json",
        "{\"model\":\"m\",\"messages\":[]} trailing",
    ] {
        let error = chat(body).unwrap_err();
        assert_eq!(error.code.as_deref(), Some("invalid_json"), "{body:?}");
        assert_eq!(error.kind, ErrorKind::InvalidRequest);
    }
}

#[test]
fn missing_fields_name_the_parameter() {
    let error = chat(r#"{"model":"m"}"#).unwrap_err();
    assert_eq!(
        code_and_param(&error),
        (Some("missing_required_parameter"), Some("messages"))
    );
    let error = chat(r#"{"messages":[{"role":"user","content":"x"}]}"#).unwrap_err();
    assert_eq!(
        code_and_param(&error),
        (Some("missing_required_parameter"), Some("model"))
    );
    let error = chat(r#"{"model":"m","messages":[{"content":"x"}]}"#).unwrap_err();
    assert_eq!(
        code_and_param(&error),
        (Some("missing_required_parameter"), Some("messages[0].role"))
    );
}

#[test]
fn wrong_types_name_the_parameter() {
    let cases = [
        (r#"{"model":1,"messages":[]}"#, "model"),
        (r#"{"model":"m","messages":"hi"}"#, "messages"),
        (
            r#"{"model":"m","messages":[{"role":"user","content":"x"}],"stream":"yes"}"#,
            "stream",
        ),
        (
            r#"{"model":"m","messages":[{"role":7}]}"#,
            "messages[0].role",
        ),
        (
            r#"{"model":"m","messages":[{"role":"user","content":5}]}"#,
            "messages[0].content",
        ),
    ];
    for (body, param) in cases {
        let error = chat(body).unwrap_err();
        assert_eq!(
            code_and_param(&error),
            (Some("invalid_type"), Some(param)),
            "{body}"
        );
    }
}

#[test]
fn a_body_that_is_not_an_object_is_rejected() {
    for body in ["[1,2]", "\"text\"", "42", "null"] {
        let error = chat(body).unwrap_err();
        assert_eq!(
            code_and_param(&error),
            (Some("invalid_type"), None),
            "{body}"
        );
    }
}

#[test]
fn invalid_values_are_rejected() {
    let error = chat(r#"{"model":"","messages":[{"role":"user","content":"x"}]}"#).unwrap_err();
    assert_eq!(
        code_and_param(&error),
        (Some("invalid_value"), Some("model"))
    );
    let error = chat(r#"{"model":"m","messages":[]}"#).unwrap_err();
    assert_eq!(
        code_and_param(&error),
        (Some("invalid_value"), Some("messages"))
    );
    let error = chat(r#"{"model":"m","messages":[{"role":"wizard","content":"x"}]}"#).unwrap_err();
    assert_eq!(
        code_and_param(&error),
        (Some("invalid_value"), Some("messages[0].role"))
    );
}

#[test]
fn completions_and_embeddings_need_their_input() {
    let ok = probe_request(
        Endpoint::Completions,
        br#"{"model":"m","prompt":"x","stream":true}"#,
    );
    assert!(ok.unwrap().stream);
    let error = probe_request(Endpoint::Completions, br#"{"model":"m"}"#).unwrap_err();
    assert_eq!(
        code_and_param(&error),
        (Some("missing_required_parameter"), Some("prompt"))
    );
    let error = probe_request(Endpoint::Embeddings, br#"{"model":"m"}"#).unwrap_err();
    assert_eq!(
        code_and_param(&error),
        (Some("missing_required_parameter"), Some("input"))
    );
    let error = probe_request(
        Endpoint::Embeddings,
        br#"{"model":"m","input":"x","stream":true}"#,
    )
    .unwrap_err();
    assert_eq!(
        code_and_param(&error),
        (Some("invalid_value"), Some("stream"))
    );
}
