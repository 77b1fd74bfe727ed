//! Chat completions: single replies, streams, tool calls and request recording.

mod common;

use std::net::SocketAddr;

use portcullis_testkit::{MockOptions, MockUpstream};
use serde_json::{Value, json};

const PATH: &str = "/v1/chat/completions";

fn weather_tool() -> Value {
    json!([{
        "type": "function",
        "function": {"name": "get_weather", "parameters": {"type": "object"}}
    }])
}

fn content_deltas(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .filter_map(|event| event["choices"][0]["delta"]["content"].as_str())
        .filter(|content| !content.is_empty())
        .map(str::to_owned)
        .collect()
}

#[tokio::test]
async fn single_reply_has_the_openai_shape() {
    let upstream = MockUpstream::start().await.unwrap();
    let body = json!({"model": "gpt-4o-mini", "messages": [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "hello there"}
    ]});
    let exchange = common::post(upstream.addr(), PATH, body).await;

    assert_eq!(exchange.status, 200);
    assert_eq!(exchange.content_type(), "application/json");
    let reply = exchange.json();
    assert_eq!(reply["id"], "chatcmpl-mock-1");
    assert_eq!(reply["object"], "chat.completion");
    assert_eq!(reply["created"], 1_700_000_000);
    assert_eq!(reply["model"], "gpt-4o-mini");
    assert_eq!(reply["system_fingerprint"], "fp_portcullis_mock");
    assert_eq!(
        reply["x_mock_extra"]["note"],
        "unknown fields must pass through"
    );
    let choice = &reply["choices"][0];
    assert_eq!(choice["index"], 0);
    assert_eq!(choice["message"]["role"], "assistant");
    assert!(
        choice["message"]["content"]
            .as_str()
            .unwrap()
            .starts_with("Mock reply to 2 messages: ")
    );
    assert_eq!(choice["message"]["refusal"], Value::Null);
    assert!(choice["message"].get("tool_calls").is_none());
    assert_eq!(choice["logprobs"], Value::Null);
    assert_eq!(choice["finish_reason"], "stop");
    let usage = &reply["usage"];
    assert_eq!(usage["prompt_tokens"], 4);
    assert_eq!(
        usage["total_tokens"].as_u64().unwrap(),
        usage["prompt_tokens"].as_u64().unwrap() + usage["completion_tokens"].as_u64().unwrap()
    );

    // Same request, same text: replies are deterministic apart from the id.
    let again = common::post(
        upstream.addr(),
        PATH,
        json!({"model": "gpt-4o-mini", "messages": [
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": "hello there"}
        ]}),
    )
    .await
    .json();
    assert_eq!(again["id"], "chatcmpl-mock-2");
    assert_eq!(again["choices"], reply["choices"]);
}

async fn stream(addr: SocketAddr, include_usage: bool) -> Vec<Value> {
    let body = json!({
        "model": "mock-gpt",
        "messages": [{"role": "user", "content": "hi"}],
        "stream": true,
        "stream_options": {"include_usage": include_usage},
    });
    let exchange = common::post(addr, PATH, body).await;
    assert_eq!(exchange.status, 200);
    assert_eq!(exchange.content_type(), "text/event-stream");
    assert!(exchange.body_error.is_none());
    exchange.json_events()
}

#[tokio::test]
async fn stream_has_exactly_stream_chunks_deltas_and_usage_when_asked() {
    for chunks in [1, 3, 8, 40] {
        let options = MockOptions {
            stream_chunks: chunks,
            ..MockOptions::default()
        };
        let upstream = MockUpstream::start_with("127.0.0.1:0".parse().unwrap(), options)
            .await
            .unwrap();
        let events = stream(upstream.addr(), true).await;

        // role chunk + content deltas + finish chunk + usage chunk
        assert_eq!(events.len(), chunks + 3, "chunks = {chunks}");
        let first = &events[0];
        assert_eq!(first["object"], "chat.completion.chunk");
        assert_eq!(
            first["choices"][0]["delta"],
            json!({"role": "assistant", "content": "", "refusal": null})
        );
        let deltas = content_deltas(&events);
        assert_eq!(deltas.len(), chunks);

        let finish = &events[chunks + 1];
        assert_eq!(finish["choices"][0]["delta"], json!({}));
        assert_eq!(finish["choices"][0]["finish_reason"], "stop");
        let usage_chunk = &events[chunks + 2];
        assert_eq!(usage_chunk["choices"], json!([]));
        assert_eq!(
            usage_chunk["usage"]["completion_tokens"].as_u64().unwrap() as usize,
            deltas.concat().split_whitespace().count()
        );
        for event in &events[..chunks + 2] {
            assert_eq!(event["usage"], Value::Null);
            assert_eq!(event["id"], first["id"]);
        }

        // The streamed text is the single reply's text.
        let single = common::post(
            upstream.addr(),
            PATH,
            json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]}),
        )
        .await
        .json();
        assert_eq!(single["choices"][0]["message"]["content"], deltas.concat());
    }
}

#[tokio::test]
async fn stream_without_usage_has_no_usage_field() {
    let upstream = MockUpstream::start().await.unwrap();
    let events = stream(upstream.addr(), false).await;
    assert_eq!(events.len(), 8 + 2);
    assert!(events.iter().all(|event| event.get("usage").is_none()));
    assert_eq!(
        events.last().unwrap()["choices"][0]["finish_reason"],
        "stop"
    );
}

#[tokio::test]
async fn tools_get_a_tool_call() {
    let upstream = MockUpstream::start().await.unwrap();
    let body = json!({"model": "m", "messages": [{"role": "user", "content": "weather?"}], "tools": weather_tool()});
    let reply = common::post(upstream.addr(), PATH, body).await.json();

    let choice = &reply["choices"][0];
    assert_eq!(choice["finish_reason"], "tool_calls");
    assert_eq!(choice["message"]["content"], Value::Null);
    assert_eq!(
        choice["message"]["tool_calls"],
        json!([{
            "id": "call_mock_1",
            "type": "function",
            "function": {"name": "get_weather", "arguments": "{\"location\": \"Paris\"}"}
        }])
    );
}

#[tokio::test]
async fn tool_choice_none_gets_text() {
    let upstream = MockUpstream::start().await.unwrap();
    let body =
        json!({"model": "m", "messages": [], "tools": weather_tool(), "tool_choice": "none"});
    let reply = common::post(upstream.addr(), PATH, body).await.json();
    assert_eq!(reply["choices"][0]["finish_reason"], "stop");
    assert!(reply["choices"][0]["message"]["content"].is_string());
}

#[tokio::test]
async fn streamed_tool_call_comes_as_openai_deltas() {
    let upstream = MockUpstream::start().await.unwrap();
    let body = json!({
        "model": "m",
        "messages": [{"role": "user", "content": "weather?"}],
        "tools": weather_tool(),
        "stream": true,
    });
    let events = common::post(upstream.addr(), PATH, body)
        .await
        .json_events();

    let first = &events[0]["choices"][0]["delta"];
    assert_eq!(first["role"], "assistant");
    assert_eq!(first["content"], Value::Null);
    assert_eq!(
        first["tool_calls"],
        json!([{"index": 0, "id": "call_mock_1", "type": "function",
                "function": {"name": "get_weather", "arguments": ""}}])
    );
    let (last, fragments) = events[1..].split_last().unwrap();
    let arguments: String = fragments
        .iter()
        .map(|event| {
            let call = &event["choices"][0]["delta"]["tool_calls"][0];
            assert_eq!(call["index"], 0);
            assert!(call.get("id").is_none() && call["function"].get("name").is_none());
            call["function"]["arguments"].as_str().unwrap().to_owned()
        })
        .collect();
    assert!(fragments.len() > 1);
    assert_eq!(arguments, "{\"location\": \"Paris\"}");
    assert_eq!(last["choices"][0]["finish_reason"], "tool_calls");
}

#[tokio::test]
async fn malformed_json_gets_an_openai_400() {
    let upstream = MockUpstream::start().await.unwrap();
    for body in ["{not json", "{\"messages\": []}", "[]"] {
        let request = common::request(upstream.addr(), http::Method::POST, PATH, body);
        let exchange = common::send(upstream.addr(), request).await.unwrap();
        assert_eq!(exchange.status, 400, "body {body}");
        let error = &exchange.json()["error"];
        assert!(error["message"].is_string());
        assert_eq!(error["type"], "invalid_request_error");
        assert_eq!(error["code"], Value::Null);
        assert_eq!(error["param"], Value::Null);
    }
}

#[tokio::test]
async fn requests_are_recorded_in_order() {
    let upstream = MockUpstream::start().await.unwrap();
    assert!(upstream.last_request().is_none());
    common::post(
        upstream.addr(),
        "/v1/chat/completions?trace=1",
        json!({"model": "a", "messages": []}),
    )
    .await;
    common::get(upstream.addr(), "/v1/models").await;

    let requests = upstream.requests();
    assert_eq!(requests.len(), 2);
    assert_eq!(requests[0].method, "POST");
    assert_eq!(requests[0].path, "/v1/chat/completions?trace=1");
    assert_eq!(requests[0].headers["authorization"], "Bearer sk-test");
    assert_eq!(requests[0].json().unwrap()["model"], "a");
    let last = upstream.last_request().unwrap();
    assert_eq!(
        (last.method.as_str(), last.path.as_str()),
        ("GET", "/v1/models")
    );
    assert!(last.body.is_empty());
}
