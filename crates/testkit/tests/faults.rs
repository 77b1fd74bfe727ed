//! Every fault model behaves as the crate docs promise.

mod common;

use std::time::{Duration, Instant};

use http::Method;
use http_body_util::BodyExt;
use portcullis_testkit::MockUpstream;
use serde_json::{Value, json};

/// How long a test waits to be sure an answer is not coming.
const SILENCE: Duration = Duration::from_millis(300);

fn chat(model: &str, stream: bool) -> Value {
    json!({"model": model, "messages": [{"role": "user", "content": "hi"}], "stream": stream})
}

#[tokio::test]
async fn error_statuses_are_openai_shaped() {
    let upstream = MockUpstream::start().await.unwrap();
    for (model, status, kind) in [
        ("mock-fault-500", 500, "server_error"),
        ("mock-fault-400", 400, "invalid_request_error"),
        ("mock-fault-429", 429, "requests"),
    ] {
        for path in ["/v1/chat/completions", "/v1/completions"] {
            let exchange = common::post(upstream.addr(), path, chat(model, false)).await;
            assert_eq!(exchange.status, status, "{model} on {path}");
            assert_eq!(exchange.content_type(), "application/json");
            let error = &exchange.json()["error"];
            assert_eq!(error["type"], kind);
            assert!(error["message"].is_string());
        }
    }
    let limited = common::post(
        upstream.addr(),
        "/v1/chat/completions",
        chat("mock-fault-429", true),
    )
    .await;
    assert_eq!(limited.headers["retry-after"], "7");
    assert_eq!(limited.json()["error"]["code"], "rate_limit_exceeded");
}

#[tokio::test]
async fn html_and_broken_json_bodies() {
    let upstream = MockUpstream::start().await.unwrap();
    let unavailable = common::post(
        upstream.addr(),
        "/v1/chat/completions",
        chat("mock-fault-503-html", false),
    )
    .await;
    assert_eq!(unavailable.status, 503);
    assert!(unavailable.content_type().starts_with("text/html"));
    assert!(unavailable.body.starts_with(b"<html>"));

    let page = common::post(
        upstream.addr(),
        "/v1/chat/completions",
        chat("mock-fault-nonjson", false),
    )
    .await;
    assert_eq!(page.status, 200);
    assert!(page.content_type().starts_with("text/html"));
    assert!(serde_json::from_slice::<Value>(&page.body).is_err());

    let truncated = common::post(
        upstream.addr(),
        "/v1/completions",
        chat("mock-fault-badjson", false),
    )
    .await;
    assert_eq!(truncated.status, 200);
    assert_eq!(truncated.content_type(), "application/json");
    assert!(truncated.body_error.is_none());
    let error = serde_json::from_slice::<Value>(&truncated.body).unwrap_err();
    assert!(error.is_eof(), "{error}");
}

#[tokio::test]
async fn reset_closes_the_connection_without_a_response() {
    let upstream = MockUpstream::start().await.unwrap();
    for stream in [false, true] {
        let body = chat("mock-fault-reset", stream).to_string();
        let request = common::request(upstream.addr(), Method::POST, "/v1/chat/completions", body);
        let error = tokio::time::timeout(
            common::EXCHANGE_TIMEOUT,
            common::send(upstream.addr(), request),
        )
        .await
        .unwrap()
        .unwrap_err();
        assert!(
            error.is_incomplete_message() || error.is_closed(),
            "{error:?}"
        );
    }
    // The request itself still reached the mock.
    assert_eq!(
        upstream.last_request().unwrap().json().unwrap()["model"],
        "mock-fault-reset"
    );
}

#[tokio::test]
async fn hang_never_answers_and_blocks_nothing_else() {
    let upstream = MockUpstream::start().await.unwrap();
    let body = chat("mock-fault-hang", false).to_string();
    let request = common::request(upstream.addr(), Method::POST, "/v1/chat/completions", body);
    let hanging = tokio::spawn(common::send(upstream.addr(), request));

    // Another connection is served while the first one hangs.
    let normal = common::post(
        upstream.addr(),
        "/v1/chat/completions",
        chat("mock-gpt", false),
    )
    .await;
    assert_eq!(normal.status, 200);

    tokio::time::sleep(SILENCE).await;
    assert!(!hanging.is_finished());
    assert_eq!(upstream.requests().len(), 2);
    hanging.abort();
}

#[tokio::test]
async fn slow_first_byte_answers_after_two_seconds() {
    let upstream = MockUpstream::start().await.unwrap();
    let started = Instant::now();
    let exchange = common::post(
        upstream.addr(),
        "/v1/chat/completions",
        chat("mock-fault-slow-first-byte", true),
    )
    .await;
    assert!(
        started.elapsed() >= Duration::from_millis(1900),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(exchange.status, 200);
    assert_eq!(exchange.json_events().len(), 8 + 2);
}

#[tokio::test]
async fn midstream_sends_half_an_event_then_fails() {
    let upstream = MockUpstream::start().await.unwrap();
    for path in ["/v1/chat/completions", "/v1/completions"] {
        let exchange =
            common::post(upstream.addr(), path, chat("mock-fault-midstream", true)).await;
        assert_eq!(exchange.status, 200);
        assert!(
            exchange.body_error.is_some(),
            "the body must end with an error on {path}"
        );

        let text = std::str::from_utf8(&exchange.body).unwrap();
        let (whole, partial) = text.rsplit_once("\n\n").unwrap();
        let events: Vec<&str> = whole.split("\n\n").collect();
        assert_eq!(events.len(), 3, "{path}: {text}");
        for event in events {
            let payload = event.strip_prefix("data: ").unwrap();
            serde_json::from_str::<Value>(payload).unwrap();
        }
        let partial = partial.strip_prefix("data: {").unwrap();
        assert!(!partial.is_empty());
        assert!(
            serde_json::from_str::<Value>(&format!("{{{partial}"))
                .unwrap_err()
                .is_eof()
        );
        assert!(!text.contains("[DONE]"));
    }
    // Without `stream` the reply is normal.
    let single = common::post(
        upstream.addr(),
        "/v1/chat/completions",
        chat("mock-fault-midstream", false),
    )
    .await;
    assert_eq!(single.json()["choices"][0]["finish_reason"], "stop");
}

#[tokio::test]
async fn stall_sends_two_events_then_nothing() {
    let upstream = MockUpstream::start().await.unwrap();
    let body = chat("mock-fault-stall", true).to_string();
    let request = common::request(upstream.addr(), Method::POST, "/v1/chat/completions", body);
    let stream = tokio::net::TcpStream::connect(upstream.addr())
        .await
        .unwrap();
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(connection);
    let response = sender.send_request(request).await.unwrap();
    assert_eq!(response.status(), 200);

    let mut body = response.into_body();
    let mut received = Vec::new();
    while received.windows(2).filter(|pair| pair == b"\n\n").count() < 2 {
        let frame = tokio::time::timeout(common::EXCHANGE_TIMEOUT, body.frame())
            .await
            .unwrap();
        received.extend_from_slice(&frame.unwrap().unwrap().into_data().unwrap());
    }
    let text = String::from_utf8(received).unwrap();
    assert_eq!(text.matches("data: {").count(), 2, "{text}");
    assert!(
        tokio::time::timeout(SILENCE, body.frame()).await.is_err(),
        "the stream must go silent"
    );
}
