//! The upstream connection pool: keep-alive reuse, and a retry on a new connection when a
//! pooled one was closed by the upstream while idle.

// Helpers outside `#[test]` unwrap like the tests do.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::{TestGateway, client, mock_config, post_json};
use http::StatusCode;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

const REPLY: &str = r#"{"id":"x","object":"chat.completion","choices":[]}"#;

/// A raw HTTP/1.1 upstream that answers every request with `REPLY` and keeps the connection
/// open, or closes it `close_after` after each answer. Counts accepted connections.
async fn raw_upstream(close_after: Option<Duration>) -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let counter = accepted.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            counter.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut buffer = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    let Ok(n) = stream.read(&mut chunk).await else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    buffer.extend_from_slice(&chunk[..n]);
                    let text = String::from_utf8_lossy(&buffer).to_string();
                    let Some(head_end) = text.find("\r\n\r\n") else {
                        continue;
                    };
                    let length: usize = text[..head_end]
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase()
                                .strip_prefix("content-length:")
                                .map(|v| v.trim().parse().unwrap())
                        })
                        .unwrap_or(0);
                    if buffer.len() < head_end + 4 + length {
                        continue;
                    }
                    buffer.clear();
                    let response = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{REPLY}",
                        REPLY.len()
                    );
                    stream.write_all(response.as_bytes()).await.unwrap();
                    if let Some(delay) = close_after {
                        tokio::time::sleep(delay).await;
                        return; // drops the socket: the idle pooled connection is now closed
                    }
                }
            });
        }
    });
    (format!("http://{addr}/v1"), accepted)
}

fn chat() -> serde_json::Value {
    json!({"model": "mock-gpt", "messages": [{"role": "user", "content": "hi"}]})
}

#[tokio::test]
async fn sequential_requests_reuse_one_upstream_connection() {
    let (url, accepted) = raw_upstream(None).await;
    let gateway = TestGateway::start(&mock_config(&url, "")).await;
    for _ in 0..5 {
        let reply = post_json(&client(), &gateway.url("/v1/chat/completions"), &chat()).await;
        assert_eq!(reply.status, StatusCode::OK);
        assert_eq!(reply.text(), REPLY);
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_pooled_connection_closed_by_the_upstream_is_replaced_transparently() {
    let (url, accepted) = raw_upstream(Some(Duration::from_millis(20))).await;
    let gateway = TestGateway::start(&mock_config(&url, "")).await;
    for _ in 0..3 {
        let reply = post_json(&client(), &gateway.url("/v1/chat/completions"), &chat()).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        3,
        "one fresh connection per request"
    );
}
