//! A minimal HTTP client for the integration tests: one connection per exchange, every frame
//! and any trailing error kept, so tests can see exactly what the mock sent.

// Each test crate uses a different part of this module.
#![allow(dead_code, unreachable_pub)]
// Test-only helpers: a panic is how they report a failed expectation, as in the tests themselves.
#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::Value;
use tokio::net::TcpStream;

/// Upper bound for anything a healthy exchange does; keeps a broken test from hanging CI.
pub const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(5);

/// A response as received: status, headers, the body bytes that arrived and how the body ended.
#[derive(Debug)]
pub struct Exchange {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
    /// The error that ended the body early, if any.
    pub body_error: Option<hyper::Error>,
}

impl Exchange {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|error| {
            panic!(
                "body is not json ({error}): {}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    pub fn content_type(&self) -> &str {
        self.headers
            .get(http::header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default()
    }

    /// The `data:` payloads of a complete SSE body, `[DONE]` included.
    pub fn events(&self) -> Vec<String> {
        let text = std::str::from_utf8(&self.body).unwrap();
        assert!(
            text.ends_with("\n\n"),
            "stream does not end with a blank line: {text:?}"
        );
        text.split_terminator("\n\n")
            .map(|event| event.strip_prefix("data: ").unwrap().to_owned())
            .collect()
    }

    /// The JSON events of a complete SSE body, checking it ends with exactly one `[DONE]`.
    pub fn json_events(&self) -> Vec<Value> {
        let mut events = self.events();
        assert_eq!(events.pop().as_deref(), Some("[DONE]"));
        events
            .iter()
            .map(|event| serde_json::from_str(event).unwrap())
            .collect()
    }
}

pub fn request(
    addr: SocketAddr,
    method: Method,
    path: &str,
    body: impl Into<Bytes>,
) -> Request<Full<Bytes>> {
    Request::builder()
        .method(method)
        .uri(path)
        .header(http::header::HOST, addr.to_string())
        .header(http::header::CONTENT_TYPE, "application/json")
        .header(http::header::AUTHORIZATION, "Bearer sk-test")
        .body(Full::new(body.into()))
        .unwrap()
}

/// Sends one request over a new HTTP/1.1 connection and reads the whole response.
pub async fn send(
    addr: SocketAddr,
    request: Request<Full<Bytes>>,
) -> Result<Exchange, hyper::Error> {
    let stream = TcpStream::connect(addr).await.unwrap();
    let (mut sender, connection) = http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(connection);
    let response = sender.send_request(request).await?;
    Ok(read_all(response).await)
}

/// Sends one request over a new HTTP/2 (prior knowledge) connection and reads the response.
pub async fn send_h2(
    addr: SocketAddr,
    request: Request<Full<Bytes>>,
) -> Result<Exchange, hyper::Error> {
    let stream = TcpStream::connect(addr).await.unwrap();
    let (mut sender, connection) =
        http2::handshake(TokioExecutor::new(), TokioIo::new(stream)).await?;
    tokio::spawn(connection);
    let response = sender.send_request(request).await?;
    Ok(read_all(response).await)
}

async fn read_all(response: http::Response<hyper::body::Incoming>) -> Exchange {
    let (parts, mut body) = response.into_parts();
    let mut data = Vec::new();
    let mut body_error = None;
    loop {
        match tokio::time::timeout(EXCHANGE_TIMEOUT, body.frame())
            .await
            .unwrap()
        {
            None => break,
            Some(Ok(frame)) => {
                if let Ok(chunk) = frame.into_data() {
                    data.extend_from_slice(&chunk);
                }
            }
            Some(Err(error)) => {
                body_error = Some(error);
                break;
            }
        }
    }
    Exchange {
        status: parts.status,
        headers: parts.headers,
        body: Bytes::from(data),
        body_error,
    }
}

/// POSTs `body` as JSON and returns the whole response, failing the test on connection errors.
pub async fn post(addr: SocketAddr, path: &str, body: Value) -> Exchange {
    let request = request(addr, Method::POST, path, body.to_string());
    tokio::time::timeout(EXCHANGE_TIMEOUT, send(addr, request))
        .await
        .unwrap()
        .unwrap()
}

/// GETs `path` and returns the whole response.
pub async fn get(addr: SocketAddr, path: &str) -> Exchange {
    let request = request(addr, Method::GET, path, Bytes::new());
    tokio::time::timeout(EXCHANGE_TIMEOUT, send(addr, request))
        .await
        .unwrap()
        .unwrap()
}

/// Standard base64 decoding, enough for the embeddings test.
pub fn base64_decode(text: &str) -> Vec<u8> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = Vec::new();
    let mut buffer = 0u32;
    let mut bits = 0;
    for byte in text.bytes().filter(|byte| *byte != b'=') {
        let value = ALPHABET.iter().position(|c| *c == byte).unwrap() as u32;
        buffer = (buffer << 6) | value;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((buffer >> bits) as u8);
        }
    }
    out
}
