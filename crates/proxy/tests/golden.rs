//! Clean traffic through the gateway is byte-identical to calling the upstream directly.
//! Each comparison uses two fresh mock upstreams, so their response ids match.

// Helpers outside `#[test]` unwrap like the tests do.
#![allow(clippy::unwrap_used)]

mod common;

use common::{TestGateway, client, h2_client, mock_config, post_json, send};
use http::{Method, StatusCode};
use portcullis_testkit::MockUpstream;
use serde_json::{Value, json};

/// Sends `body` to `path` directly to one mock and through the gateway to another, and
/// asserts status, content type and body bytes are identical.
async fn assert_identical(path: &str, body: Value) {
    let direct_mock = MockUpstream::start().await.unwrap();
    let proxied_mock = MockUpstream::start().await.unwrap();
    let gateway = TestGateway::start(&mock_config(&proxied_mock.base_url(), "")).await;
    let client = client();
    let direct_url = format!("http://{}{path}", direct_mock.addr());
    let direct = post_json(&client, &direct_url, &body).await;
    let proxied = post_json(&client, &gateway.url(path), &body).await;
    assert_eq!(direct.status, StatusCode::OK, "{}", direct.text());
    assert_eq!(proxied.status, direct.status, "{}", proxied.text());
    assert_eq!(
        proxied.headers.get("content-type"),
        direct.headers.get("content-type")
    );
    assert_eq!(
        proxied.text(),
        direct.text(),
        "body differs for {path} {body}"
    );
    assert!(proxied.headers.contains_key("x-request-id"));
    // The upstream received the client's bytes unchanged.
    let received = proxied_mock.last_request().unwrap();
    assert_eq!(received.body, body.to_string().as_bytes());
}

fn chat(extra: Value) -> Value {
    let mut body = json!({
        "model": "mock-gpt",
        "messages": [
            {"role": "system", "content": "You are terse."},
            {"role": "user", "content": "Name a castle gate.", "x_client_field": [1, 2]}
        ],
        "temperature": 0.2,
        "x_unknown_top_level": {"nested": true}
    });
    if let (Some(body), Some(extra)) = (body.as_object_mut(), extra.as_object()) {
        body.extend(extra.clone());
    }
    body
}

fn tools() -> Value {
    json!([{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}])
}

#[tokio::test]
async fn chat_non_streaming_is_identical() {
    assert_identical("/v1/chat/completions", chat(json!({}))).await;
}

#[tokio::test]
async fn chat_streaming_with_usage_is_identical() {
    assert_identical(
        "/v1/chat/completions",
        chat(json!({"stream": true, "stream_options": {"include_usage": true}})),
    )
    .await;
}

#[tokio::test]
async fn tool_calls_are_identical_streamed_and_not() {
    assert_identical("/v1/chat/completions", chat(json!({"tools": tools()}))).await;
    assert_identical(
        "/v1/chat/completions",
        chat(json!({"tools": tools(), "stream": true})),
    )
    .await;
}

#[tokio::test]
async fn completions_and_embeddings_are_identical() {
    assert_identical(
        "/v1/completions",
        json!({"model": "mock-gpt", "prompt": "Say hi"}),
    )
    .await;
    assert_identical(
        "/v1/completions",
        json!({"model": "mock-gpt", "prompt": "Say hi", "stream": true}),
    )
    .await;
    assert_identical(
        "/v1/embeddings",
        json!({"model": "mock-embed", "input": ["a", "b"]}),
    )
    .await;
    assert_identical(
        "/v1/embeddings",
        json!({"model": "mock-embed", "input": "a", "encoding_format": "base64"}),
    )
    .await;
}

#[tokio::test]
async fn unknown_fields_in_responses_pass_through() {
    let mock = MockUpstream::start().await.unwrap();
    let gateway = TestGateway::start(&mock_config(&mock.base_url(), "")).await;
    let reply = post_json(
        &client(),
        &gateway.url("/v1/chat/completions"),
        &chat(json!({})),
    )
    .await;
    assert_eq!(
        reply.json()["x_mock_extra"]["note"],
        "unknown fields must pass through"
    );
}

#[tokio::test]
async fn http2_clients_are_served() {
    let mock = MockUpstream::start().await.unwrap();
    let gateway = TestGateway::start(&mock_config(&mock.base_url(), "")).await;
    let h2 = h2_client();
    let reply = post_json(
        &h2,
        &gateway.url("/v1/chat/completions"),
        &chat(json!({"stream": true})),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert!(reply.text().ends_with("data: [DONE]\n\n"));
    let reply = send(&h2, Method::GET, &gateway.url("/healthz"), &[], "").await;
    assert_eq!(reply.status, StatusCode::OK);
}
