//! Legacy completions, embeddings, models, moderations, unknown routes and HTTP/2.

mod common;

use portcullis_testkit::{MockOptions, MockUpstream};
use serde_json::{Value, json};

#[tokio::test]
async fn legacy_completion_single_and_streamed() {
    let upstream = MockUpstream::start().await.unwrap();
    let single = common::post(
        upstream.addr(),
        "/v1/completions",
        json!({"model": "mock-gpt", "prompt": "say hi"}),
    )
    .await
    .json();
    assert_eq!(single["object"], "text_completion");
    assert_eq!(single["id"], "cmpl-mock-1");
    assert_eq!(single["created"], 1_700_000_000);
    let choice = &single["choices"][0];
    assert_eq!(choice["index"], 0);
    assert_eq!(choice["logprobs"], Value::Null);
    assert_eq!(choice["finish_reason"], "stop");
    let text = choice["text"].as_str().unwrap();
    assert!(text.starts_with("Mock completion of a 2-word prompt: "));
    assert_eq!(single["usage"]["prompt_tokens"], 2);

    let body = json!({"model": "mock-gpt", "prompt": ["say", "hi"], "stream": true,
                      "stream_options": {"include_usage": true}});
    let events = common::post(upstream.addr(), "/v1/completions", body)
        .await
        .json_events();
    assert_eq!(events.len(), 8 + 2);
    let pieces: Vec<&str> = events[..8]
        .iter()
        .map(|event| event["choices"][0]["text"].as_str().unwrap())
        .collect();
    assert!(pieces.iter().all(|piece| !piece.is_empty()));
    assert_eq!(pieces.concat(), text);
    assert!(
        events
            .iter()
            .all(|event| event["object"] == "text_completion")
    );
    assert_eq!(events[8]["choices"][0]["finish_reason"], "stop");
    assert_eq!(events[8]["choices"][0]["text"], "");
    assert_eq!(events[9]["choices"], json!([]));
    assert_eq!(events[9]["usage"]["prompt_tokens"], 2);
}

#[tokio::test]
async fn embeddings_as_floats_and_base64_agree() {
    let upstream = MockUpstream::start().await.unwrap();
    let floats = common::post(
        upstream.addr(),
        "/v1/embeddings",
        json!({"model": "mock-embed", "input": ["hello", "world"]}),
    )
    .await
    .json();
    assert_eq!(floats["object"], "list");
    assert_eq!(floats["model"], "mock-embed");
    assert_eq!(
        floats["usage"],
        json!({"prompt_tokens": 2, "total_tokens": 2})
    );
    let data = floats["data"].as_array().unwrap();
    assert_eq!(data.len(), 2);
    assert_eq!(data[1]["object"], "embedding");
    assert_eq!(data[1]["index"], 1);
    let vector: Vec<f32> = data[0]["embedding"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap() as f32)
        .collect();
    assert_eq!(vector.len(), 8);
    assert_ne!(data[0]["embedding"], data[1]["embedding"]);

    let encoded = common::post(
        upstream.addr(),
        "/v1/embeddings",
        json!({"model": "mock-embed", "input": "hello", "encoding_format": "base64"}),
    )
    .await
    .json();
    let bytes = common::base64_decode(encoded["data"][0]["embedding"].as_str().unwrap());
    let decoded: Vec<f32> = bytes
        .chunks_exact(4)
        .map(|chunk| f32::from_le_bytes(chunk.try_into().unwrap()))
        .collect();
    assert_eq!(decoded, vector);

    let tokens = common::post(
        upstream.addr(),
        "/v1/embeddings",
        json!({"model": "m", "input": [[1, 2, 3], [4]]}),
    )
    .await
    .json();
    assert_eq!(tokens["data"].as_array().unwrap().len(), 2);
    assert_eq!(tokens["usage"]["prompt_tokens"], 4);

    let bad = common::post(
        upstream.addr(),
        "/v1/embeddings",
        json!({"model": "m", "input": []}),
    )
    .await;
    assert_eq!(bad.status, 400);
}

#[tokio::test]
async fn models_come_from_the_options() {
    let options = MockOptions {
        models: vec!["a".to_owned(), "b".to_owned()],
        ..MockOptions::default()
    };
    let upstream = MockUpstream::start_with("127.0.0.1:0".parse().unwrap(), options)
        .await
        .unwrap();
    let list = common::get(upstream.addr(), "/v1/models").await.json();
    assert_eq!(
        list,
        json!({"object": "list", "data": [
            {"id": "a", "object": "model", "created": 1_700_000_000, "owned_by": "portcullis-mock"},
            {"id": "b", "object": "model", "created": 1_700_000_000, "owned_by": "portcullis-mock"}
        ]})
    );
}

#[tokio::test]
async fn moderations_pass_and_unknown_routes_get_404() {
    let upstream = MockUpstream::start().await.unwrap();
    let moderation = common::post(
        upstream.addr(),
        "/v1/moderations",
        json!({"input": ["a", "b"]}),
    )
    .await;
    assert_eq!(moderation.status, 200);
    let results = moderation.json()["results"].as_array().unwrap().clone();
    assert_eq!(results.len(), 2);
    assert_eq!(results[0]["flagged"], false);
    assert_eq!(results[0]["categories"]["violence"], false);

    let speech = common::post(
        upstream.addr(),
        "/v1/audio/speech",
        json!({"model": "tts-1", "input": "hi"}),
    )
    .await;
    assert_eq!(speech.status, 404);
    assert_eq!(speech.json()["error"]["type"], "invalid_request_error");
    assert_eq!(
        common::get(upstream.addr(), "/v1/chat/completions")
            .await
            .status,
        404
    );
}

#[tokio::test]
async fn http2_prior_knowledge_is_served() {
    let upstream = MockUpstream::start().await.unwrap();
    let body = json!({"model": "m", "messages": [], "stream": true}).to_string();
    let request = common::request(
        upstream.addr(),
        http::Method::POST,
        "/v1/chat/completions",
        body,
    );
    let exchange = common::send_h2(upstream.addr(), request).await.unwrap();
    assert_eq!(exchange.status, 200);
    assert_eq!(exchange.json_events().len(), 8 + 2);
}

#[tokio::test]
async fn base_url_and_shutdown() {
    let upstream = MockUpstream::start().await.unwrap();
    let addr = upstream.addr();
    assert_eq!(
        upstream.base_url(),
        format!("http://127.0.0.1:{}/v1", addr.port())
    );
    upstream.shutdown().await;
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}
