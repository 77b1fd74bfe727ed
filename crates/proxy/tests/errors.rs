//! Every documented failure gets its OpenAI-shaped error and status; streams fail with an SSE
//! error event after whole events only.

// Helpers outside `#[test]` unwrap like the tests do.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use common::{TestGateway, client, mock_config, post_json, send, sse_data};
use http::{Method, StatusCode};
use portcullis_testkit::MockUpstream;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn chat(model: &str) -> Value {
    json!({"model": model, "messages": [{"role": "user", "content": "hi"}]})
}

async fn gateway_with(extra: &str) -> (MockUpstream, TestGateway) {
    let mock = MockUpstream::start().await.unwrap();
    let gateway = TestGateway::start(&mock_config(&mock.base_url(), extra)).await;
    (mock, gateway)
}

async fn expect_error(gateway: &TestGateway, body: &str, status: StatusCode, code: &str) {
    let reply = send(
        &client(),
        Method::POST,
        &gateway.url("/v1/chat/completions"),
        &[("content-type", "application/json")],
        body.to_string(),
    )
    .await;
    assert_eq!(reply.status, status, "{body}: {}", reply.text());
    assert_eq!(reply.headers["content-type"], "application/json");
    assert_eq!(reply.error_code(), code, "{body}");
}

#[tokio::test]
async fn malformed_and_mistyped_requests_are_400_and_never_forwarded() {
    let (mock, gateway) = gateway_with("").await;
    expect_error(
        &gateway,
        "{\"model\": ",
        StatusCode::BAD_REQUEST,
        "invalid_json",
    )
    .await;
    expect_error(
        &gateway,
        "not json at all",
        StatusCode::BAD_REQUEST,
        "invalid_json",
    )
    .await;
    expect_error(
        &gateway,
        r#"{"model":"mock-gpt"}"#,
        StatusCode::BAD_REQUEST,
        "missing_required_parameter",
    )
    .await;
    expect_error(
        &gateway,
        r#"{"model":"mock-gpt","messages":"hi"}"#,
        StatusCode::BAD_REQUEST,
        "invalid_type",
    )
    .await;
    expect_error(
        &gateway,
        r#"{"model":5,"messages":[]}"#,
        StatusCode::BAD_REQUEST,
        "invalid_type",
    )
    .await;
    let reply = post_json(
        &client(),
        &gateway.url("/v1/chat/completions"),
        &json!({"model": "mock-gpt", "messages": [{"role": 1}]}),
    )
    .await;
    assert_eq!(reply.json()["error"]["param"], "messages[0].role");
    assert!(mock.requests().is_empty());
}

#[tokio::test]
async fn unknown_model_is_404() {
    let (mock, gateway) = gateway_with("").await;
    expect_error(
        &gateway,
        &chat("gpt-unknown").to_string(),
        StatusCode::NOT_FOUND,
        "model_not_found",
    )
    .await;
    assert!(mock.requests().is_empty());
}

#[tokio::test]
async fn oversized_body_is_413_whether_announced_or_streamed() {
    let (mock, gateway) = gateway_with("limits: {max_body_bytes: 1024}\n").await;
    let big =
        json!({"model": "mock-gpt", "messages": [{"role": "user", "content": "x".repeat(2000)}]});
    let reply = post_json(&client(), &gateway.url("/v1/chat/completions"), &big).await;
    assert_eq!(reply.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(reply.error_code(), "request_too_large");

    // Chunked, with no content-length: cut while reading.
    let mut stream = tokio::net::TcpStream::connect(gateway.addr).await.unwrap();
    let head = "POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\ncontent-type: application/json\r\n\r\n";
    stream.write_all(head.as_bytes()).await.unwrap();
    for _ in 0..3 {
        stream
            .write_all(format!("400\r\n{}\r\n", "y".repeat(0x400)).as_bytes())
            .await
            .unwrap();
    }
    stream.write_all(b"0\r\n\r\n").await.unwrap();
    let mut response = vec![0u8; 4096];
    let n = stream.read(&mut response).await.unwrap();
    let text = String::from_utf8_lossy(&response[..n]);
    assert!(text.starts_with("HTTP/1.1 413"), "{text}");
    assert!(mock.requests().is_empty());
}

#[tokio::test]
async fn a_stalled_request_body_is_408() {
    let (_mock, gateway) = gateway_with("timeouts: {client_body_ms: 200}\n").await;
    let mut stream = tokio::net::TcpStream::connect(gateway.addr).await.unwrap();
    let head =
        "POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-length: 100\r\n\r\n{\"model\":";
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut response = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut response))
        .await
        .unwrap()
        .unwrap();
    let text = String::from_utf8_lossy(&response[..n]);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(text.contains("request_timeout"));
}

#[tokio::test]
async fn a_client_that_never_finishes_its_headers_is_disconnected() {
    let (_mock, gateway) = gateway_with("timeouts: {client_header_ms: 200}\n").await;
    let mut stream = tokio::net::TcpStream::connect(gateway.addr).await.unwrap();
    stream
        .write_all(b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\n")
        .await
        .unwrap();
    let mut buffer = vec![0u8; 1024];
    let started = Instant::now();
    let read = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buffer))
        .await
        .unwrap();
    // hyper answers 408 or just closes; either way the connection ends promptly.
    match read {
        Ok(0) => {}
        Ok(n) => assert!(
            String::from_utf8_lossy(&buffer[..n]).contains("408"),
            "{}",
            String::from_utf8_lossy(&buffer[..n])
        ),
        Err(_) => {}
    }
    assert!(started.elapsed() < Duration::from_secs(3));
}

#[tokio::test]
async fn upstream_refusing_connections_is_502() {
    // Bind then drop a listener: the port is closed and connections are refused.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let gateway =
        TestGateway::start(&mock_config(&format!("http://127.0.0.1:{port}/v1"), "")).await;
    expect_error(
        &gateway,
        &chat("mock-gpt").to_string(),
        StatusCode::BAD_GATEWAY,
        "upstream_unavailable",
    )
    .await;
    let metrics = send(&client(), Method::GET, &gateway.url("/metrics"), &[], "")
        .await
        .text();
    assert!(
        metrics
            .contains("portcullis_upstream_failures_total{upstream=\"mock\",kind=\"connect\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains(
            "portcullis_rejects_total{origin=\"upstream\",code=\"upstream_unavailable\"} 1"
        )
    );
}

#[tokio::test]
async fn upstream_not_accepting_connections_in_time_is_504() {
    // A listener with backlog 0 whose accept queue is full drops further SYNs, so a connect
    // to it hangs (the kernel would retry the SYN after a second): all on loopback.
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket
        .bind(
            &"127.0.0.1:0"
                .parse::<std::net::SocketAddr>()
                .unwrap()
                .into(),
        )
        .unwrap();
    socket.listen(0).unwrap();
    let addr = socket.local_addr().unwrap().as_socket().unwrap();
    let mut fillers = Vec::new();
    for _ in 0..4 {
        let filler =
            socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        filler.set_nonblocking(true).unwrap();
        let _ = filler.connect(&addr.into());
        fillers.push(filler);
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let yaml = mock_config(
        &format!("http://{addr}/v1"),
        "    connect_timeout_ms: 300\n",
    );
    let gateway = TestGateway::start(&yaml).await;
    let started = Instant::now();
    expect_error(
        &gateway,
        &chat("mock-gpt").to_string(),
        StatusCode::GATEWAY_TIMEOUT,
        "upstream_timeout",
    )
    .await;
    assert!(
        started.elapsed() < Duration::from_millis(900),
        "took {:?}",
        started.elapsed()
    );
    let reply = send(&client(), Method::GET, &gateway.url("/metrics"), &[], "")
        .await
        .text();
    assert!(
        reply.contains("portcullis_upstream_failures_total{upstream=\"mock\",kind=\"timeout\"} 1"),
        "{reply}"
    );
    drop(socket);
}

#[tokio::test]
async fn upstream_closing_without_response_is_502() {
    let (_mock, gateway) = gateway_with("").await;
    expect_error(
        &gateway,
        &chat("mock-fault-reset").to_string(),
        StatusCode::BAD_GATEWAY,
        "upstream_reset",
    )
    .await;
}

#[tokio::test]
async fn upstream_not_answering_in_time_is_504() {
    let (_mock, gateway) = gateway_with("    first_byte_timeout_ms: 300\n").await;
    let started = Instant::now();
    expect_error(
        &gateway,
        &chat("mock-fault-hang").to_string(),
        StatusCode::GATEWAY_TIMEOUT,
        "upstream_timeout",
    )
    .await;
    assert!(started.elapsed() < Duration::from_secs(3));
}

#[tokio::test]
async fn upstream_5xx_is_502_with_its_message() {
    let (_mock, gateway) = gateway_with("").await;
    let reply = post_json(
        &client(),
        &gateway.url("/v1/chat/completions"),
        &chat("mock-fault-500"),
    )
    .await;
    assert_eq!(reply.status, StatusCode::BAD_GATEWAY);
    assert_eq!(reply.error_code(), "upstream_error");
    assert!(
        reply.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("returned 500")
    );
    expect_error(
        &gateway,
        &chat("mock-fault-503-html").to_string(),
        StatusCode::BAD_GATEWAY,
        "upstream_error",
    )
    .await;
}

#[tokio::test]
async fn upstream_non_json_is_502_never_html() {
    let (_mock, gateway) = gateway_with("").await;
    for model in ["mock-fault-nonjson", "mock-fault-badjson"] {
        let reply = post_json(
            &client(),
            &gateway.url("/v1/chat/completions"),
            &chat(model),
        )
        .await;
        assert_eq!(reply.status, StatusCode::BAD_GATEWAY, "{model}");
        assert_eq!(reply.error_code(), "upstream_bad_response");
        assert!(!reply.text().contains("<html"), "{model}");
    }
}

#[tokio::test]
async fn upstream_4xx_passes_through_with_retry_after() {
    let (_mock, gateway) = gateway_with("").await;
    let reply = post_json(
        &client(),
        &gateway.url("/v1/chat/completions"),
        &chat("mock-fault-400"),
    )
    .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(reply.json()["error"]["type"], "invalid_request_error");
    let reply = post_json(
        &client(),
        &gateway.url("/v1/chat/completions"),
        &chat("mock-fault-429"),
    )
    .await;
    assert_eq!(reply.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(reply.headers["retry-after"], "7");
}

#[tokio::test]
async fn a_stream_broken_midway_ends_with_whole_events_and_an_error_event() {
    let (_mock, gateway) = gateway_with("").await;
    let mut body = chat("mock-fault-midstream");
    body["stream"] = json!(true);
    let reply = post_json(&client(), &gateway.url("/v1/chat/completions"), &body).await;
    assert_eq!(reply.status, StatusCode::OK);
    let events = sse_data(&reply.body);
    let (last, whole) = events.split_last().unwrap();
    assert_eq!(whole.len(), 3, "the three whole events, not the half one");
    for event in whole {
        serde_json::from_str::<Value>(event)
            .unwrap_or_else(|e| panic!("truncated chunk {event:?}: {e}"));
    }
    let error: Value = serde_json::from_str(last).unwrap();
    assert_eq!(error["error"]["code"], "upstream_reset");
    assert!(!reply.text().contains("[DONE]"));
}

#[tokio::test]
async fn a_silent_stream_ends_after_the_idle_timeout() {
    let (_mock, gateway) = gateway_with("    idle_timeout_ms: 300\n").await;
    let mut body = chat("mock-fault-stall");
    body["stream"] = json!(true);
    let started = Instant::now();
    let reply = post_json(&client(), &gateway.url("/v1/chat/completions"), &body).await;
    assert!(started.elapsed() < Duration::from_secs(5));
    let events = sse_data(&reply.body);
    assert_eq!(events.len(), 3, "{events:?}");
    let error: Value = serde_json::from_str(&events[2]).unwrap();
    assert_eq!(error["error"]["code"], "upstream_timeout");
}

#[tokio::test]
async fn requests_beyond_the_concurrency_limit_are_429() {
    let (_mock, gateway) = gateway_with("limits: {max_concurrent_requests: 1}\n").await;
    let url = gateway.url("/v1/chat/completions");
    let slow = tokio::spawn(async move {
        post_json(&client(), &url, &chat("mock-fault-slow-first-byte")).await
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let reply = post_json(
        &client(),
        &gateway.url("/v1/chat/completions"),
        &chat("mock-gpt"),
    )
    .await;
    assert_eq!(reply.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(reply.error_code(), "concurrency_limit_exceeded");
    assert_eq!(reply.headers["retry-after"], "1");
    // Probes are not limited.
    assert_eq!(
        send(&client(), Method::GET, &gateway.url("/readyz"), &[], "")
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(slow.await.unwrap().status, StatusCode::OK);
    let reply = post_json(
        &client(),
        &gateway.url("/v1/chat/completions"),
        &chat("mock-gpt"),
    )
    .await;
    assert_eq!(
        reply.status,
        StatusCode::OK,
        "the permit is released with the response"
    );
}
