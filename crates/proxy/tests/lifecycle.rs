//! Snapshot swaps and graceful shutdown.

// Helpers outside `#[test]` unwrap like the tests do.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{TestGateway, client, mock_config, post_json, sse_data};
use http::StatusCode;
use portcullis_config::{Config, parse_yaml};
use portcullis_proxy::Snapshot;
use portcullis_testkit::MockUpstream;
use serde_json::{Value, json};

fn chat(model: &str, stream: bool) -> Value {
    json!({"model": model, "stream": stream, "messages": [{"role": "user", "content": "hi"}]})
}

#[tokio::test]
async fn a_swapped_snapshot_applies_to_new_requests() {
    let first = MockUpstream::start().await.unwrap();
    let second = MockUpstream::start().await.unwrap();
    let gateway = TestGateway::start(&mock_config(&first.base_url(), "")).await;
    let client = client();
    post_json(
        &client,
        &gateway.url("/v1/chat/completions"),
        &chat("mock-gpt", false),
    )
    .await;
    let mut raw = parse_yaml(&mock_config(&second.base_url(), "")).unwrap();
    raw.listen = Some(gateway.addr.to_string());
    gateway
        .gateway
        .swap(Snapshot::build(Config::from_raw(&raw).unwrap()).unwrap());
    post_json(
        &client,
        &gateway.url("/v1/chat/completions"),
        &chat("mock-gpt", false),
    )
    .await;
    assert_eq!((first.requests().len(), second.requests().len()), (1, 1));
}

#[tokio::test]
async fn shutdown_lets_an_in_flight_stream_finish() {
    let mock = MockUpstream::start().await.unwrap();
    let gateway = TestGateway::start(&mock_config(&mock.base_url(), "")).await;
    let url = gateway.url("/v1/chat/completions");
    let in_flight = tokio::spawn(async move {
        post_json(&client(), &url, &chat("mock-fault-slow-first-byte", true)).await
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let inner = Arc::clone(&gateway.gateway);
    let shutdown = tokio::spawn(gateway.shutdown());
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!inner.is_ready(), "draining gateway reports not ready");
    let reply = in_flight.await.unwrap();
    assert_eq!(reply.status, StatusCode::OK);
    assert!(
        reply.text().ends_with("data: [DONE]\n\n"),
        "the stream completed normally"
    );
    shutdown.await.unwrap();
}

#[tokio::test]
async fn streams_still_open_at_the_drain_deadline_end_with_an_error_event() {
    let mock = MockUpstream::start().await.unwrap();
    let gateway = TestGateway::start(&mock_config(
        &mock.base_url(),
        "shutdown: {drain_timeout_ms: 300}\n",
    ))
    .await;
    let url = gateway.url("/v1/chat/completions");
    let stalled =
        tokio::spawn(
            async move { post_json(&client(), &url, &chat("mock-fault-stall", true)).await },
        );
    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = Instant::now();
    gateway.shutdown().await;
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "drain is bounded"
    );
    let reply = stalled.await.unwrap();
    let events = sse_data(&reply.body);
    let last: Value = serde_json::from_str(events.last().unwrap()).unwrap();
    assert_eq!(last["error"]["code"], "shutting_down");
}
