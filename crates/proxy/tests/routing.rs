//! Routing by model, `/v1/models`, passthrough paths, credentials and probes.

// Helpers outside `#[test]` unwrap like the tests do.
#![allow(clippy::unwrap_used)]

mod common;

use common::{TestGateway, client, mock_config, post_json, send};
use http::{Method, StatusCode};
use portcullis_testkit::{MockOptions, MockUpstream};
use serde_json::json;

fn chat(model: &str) -> serde_json::Value {
    json!({"model": model, "messages": [{"role": "user", "content": "hi"}]})
}

#[tokio::test]
async fn models_route_by_exact_name_pattern_and_default() {
    let a = MockUpstream::start().await.unwrap();
    let b = MockUpstream::start().await.unwrap();
    let c = MockUpstream::start().await.unwrap();
    let yaml = format!(
        "default_upstream: c\nupstreams:\n  - {{name: a, url: '{}', models: ['gpt-*']}}\n  - {{name: b, url: '{}', models: [gpt-4o]}}\n  - {{name: c, url: '{}'}}\n",
        a.base_url(),
        b.base_url(),
        c.base_url()
    );
    let gateway = TestGateway::start(&yaml).await;
    let client = client();
    for (model, expect_a, expect_b, expect_c) in
        [("gpt-4o", 0, 1, 0), ("gpt-5", 1, 1, 0), ("llama3", 1, 1, 1)]
    {
        let reply = post_json(&client, &gateway.url("/v1/chat/completions"), &chat(model)).await;
        assert_eq!(reply.status, StatusCode::OK, "{model}: {}", reply.text());
        assert_eq!(
            (a.requests().len(), b.requests().len(), c.requests().len()),
            (expect_a, expect_b, expect_c),
            "after {model}"
        );
    }
    let metrics = send(&client, Method::GET, &gateway.url("/metrics"), &[], "")
        .await
        .text();
    for label in ["model=\"gpt-4o\"", "model=\"gpt-*\"", "model=\"*\""] {
        assert!(metrics.contains(label), "metrics lack {label}");
    }
}

#[tokio::test]
async fn model_list_is_the_union_of_configured_and_discovered_models() {
    let listed = MockUpstream::start().await.unwrap();
    let options = MockOptions {
        models: vec!["llama3-8b".into(), "qwen2".into(), "gpt-4o".into()],
        ..MockOptions::default()
    };
    let discovered = MockUpstream::start_with("127.0.0.1:0".parse().unwrap(), options)
        .await
        .unwrap();
    let yaml = format!(
        "upstreams:\n  - {{name: openai, url: '{}', models: [gpt-4o, gpt-4o-mini]}}\n  - {{name: local, url: '{}', models: ['llama*']}}\n",
        listed.base_url(),
        discovered.base_url()
    );
    let gateway = TestGateway::start(&yaml).await;
    let reply = send(&client(), Method::GET, &gateway.url("/v1/models"), &[], "").await;
    assert_eq!(reply.status, StatusCode::OK);
    let body = reply.json();
    assert_eq!(body["object"], "list");
    let ids: Vec<&str> = body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    // qwen2 is not routed to `local`, and its gpt-4o is served by `openai`: both left out.
    assert_eq!(ids, vec!["gpt-4o", "gpt-4o-mini", "llama3-8b"]);
}

#[tokio::test]
async fn client_credentials_never_reach_the_upstream_and_configured_ones_do() {
    let mock = MockUpstream::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("key");
    std::fs::write(&key_file, "sk-upstream-secret\n").unwrap();
    let yaml = mock_config(
        &mock.base_url(),
        &format!(
            "    api_key_file: {}\n    headers: {{x-team: platform}}\n",
            key_file.display()
        ),
    );
    let gateway = TestGateway::start(&yaml).await;
    let reply = send(
        &client(),
        Method::POST,
        &gateway.url("/v1/chat/completions?api-version=1"),
        &[
            ("content-type", "application/json"),
            ("authorization", "Bearer client-key"),
            ("x-api-key", "client-key"),
            ("x-request-id", "req-abc-123"),
        ],
        chat("mock-gpt").to_string(),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.headers["x-request-id"], "req-abc-123");
    let received = mock.last_request().unwrap();
    assert_eq!(received.path, "/v1/chat/completions?api-version=1");
    assert_eq!(
        received.headers["authorization"],
        "Bearer sk-upstream-secret"
    );
    assert!(!received.headers.contains_key("x-api-key"));
    assert_eq!(received.headers["x-team"], "platform");
    assert_eq!(received.headers["x-request-id"], "req-abc-123");
}

#[tokio::test]
async fn other_v1_paths_are_refused_unless_passed_through_and_then_counted() {
    let mock = MockUpstream::start().await.unwrap();
    let yaml = mock_config(
        &mock.base_url(),
        "passthrough:\n  - {path: /v1/moderations, upstream: mock}\n",
    );
    let gateway = TestGateway::start(&yaml).await;
    let client = client();
    let refused = post_json(&client, &gateway.url("/v1/files"), &json!({})).await;
    assert_eq!(refused.status, StatusCode::NOT_FOUND);
    assert_eq!(refused.error_code(), "route_not_found");
    assert!(
        mock.requests().is_empty(),
        "a refused path must not reach the upstream"
    );

    let passed = post_json(
        &client,
        &gateway.url("/v1/moderations"),
        &json!({"input": "hello"}),
    )
    .await;
    assert_eq!(passed.status, StatusCode::OK, "{}", passed.text());
    assert_eq!(passed.json()["results"][0]["flagged"], false);
    let metrics = send(&client, Method::GET, &gateway.url("/metrics"), &[], "")
        .await
        .text();
    assert!(
        metrics.contains("portcullis_passthrough_requests_total{upstream=\"mock\"} 1"),
        "{metrics}"
    );
}

#[tokio::test]
async fn wrong_method_is_405_with_allow() {
    let mock = MockUpstream::start().await.unwrap();
    let gateway = TestGateway::start(&mock_config(&mock.base_url(), "")).await;
    let reply = send(
        &client(),
        Method::GET,
        &gateway.url("/v1/chat/completions"),
        &[],
        "",
    )
    .await;
    assert_eq!(reply.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(reply.headers["allow"], "POST");
    assert_eq!(reply.error_code(), "method_not_allowed");
}

#[tokio::test]
async fn probes_and_metrics_answer() {
    let mock = MockUpstream::start().await.unwrap();
    let gateway = TestGateway::start(&mock_config(&mock.base_url(), "")).await;
    let client = client();
    assert_eq!(
        send(&client, Method::GET, &gateway.url("/healthz"), &[], "")
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(
        send(&client, Method::GET, &gateway.url("/readyz"), &[], "")
            .await
            .status,
        StatusCode::OK
    );
    post_json(
        &client,
        &gateway.url("/v1/chat/completions"),
        &chat("mock-gpt"),
    )
    .await;
    let metrics = send(&client, Method::GET, &gateway.url("/metrics"), &[], "")
        .await
        .text();
    for family in [
        "portcullis_http_requests_total{route=\"chat_completions\",model=\"mock-*\",status=\"200\"} 1",
        "portcullis_http_request_duration_seconds_bucket",
        "portcullis_upstream_duration_seconds_count{upstream=\"mock\"} 1",
        "portcullis_active_streams 0",
        "portcullis_http_response_bytes_total{route=\"chat_completions\"}",
        "portcullis_build_info",
    ] {
        assert!(
            metrics.contains(family),
            "metrics lack {family}:\n{metrics}"
        );
    }
}

#[tokio::test]
async fn a_single_model_is_retrieved_from_its_upstream() {
    let mock = MockUpstream::start().await.unwrap();
    let gateway = TestGateway::start(&mock_config(&mock.base_url(), "")).await;
    let reply = send(
        &client(),
        Method::GET,
        &gateway.url("/v1/models/mock-gpt"),
        &[],
        "",
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    assert_eq!(mock.last_request().unwrap().path, "/v1/models/mock-gpt");
    let reply = send(
        &client(),
        Method::GET,
        &gateway.url("/v1/models/gpt-unknown"),
        &[],
        "",
    )
    .await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    assert_eq!(reply.error_code(), "model_not_found");
}

#[tokio::test]
async fn the_model_list_keeps_the_upstream_key_order() {
    let mock = MockUpstream::start().await.unwrap();
    let yaml = format!(
        "default_upstream: mock\nupstreams:\n  - {{name: mock, url: '{}'}}\n",
        mock.base_url()
    );
    let gateway = TestGateway::start(&yaml).await;
    let reply = send(&client(), Method::GET, &gateway.url("/v1/models"), &[], "").await;
    assert!(
        reply.text().starts_with(
            "{\"object\":\"list\",\"data\":[{\"id\":\"mock-gpt\",\"object\":\"model\""
        ),
        "{}",
        reply.text()
    );
}
