//! Shared test harness: a gateway on an ephemeral port in front of mock upstreams.
// Test support code: helpers outside `#[test]` functions may unwrap, as tests do.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use portcullis_config::{Config, parse_yaml};
use portcullis_proxy::body::read_limited;
use portcullis_proxy::{Gateway, Server, Snapshot};
use portcullis_telemetry::Metrics;
use serde_json::Value;
use tokio::sync::oneshot;

pub struct TestGateway {
    pub addr: SocketAddr,
    pub gateway: Arc<Gateway>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl TestGateway {
    /// Starts a gateway from YAML; `listen` is forced to an ephemeral port.
    pub async fn start(yaml: &str) -> Self {
        let gateway = Gateway::new(
            Snapshot::build(test_config(yaml)).unwrap(),
            Arc::new(Metrics::new()),
        );
        Self::serve(gateway).await
    }

    /// Serves an already built gateway (one with services, say) on its ephemeral port.
    pub async fn serve(gateway: Arc<Gateway>) -> Self {
        let server = Server::bind(gateway.clone()).await.unwrap();
        let addr = server.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(server.run(async {
            let _ = stopped.await;
        }));
        Self {
            addr,
            gateway,
            stop: Some(stop),
            task: Some(task),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Triggers graceful shutdown and waits for the drain to finish.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

/// The validated config of `yaml`, with `listen` forced to an ephemeral port.
pub fn test_config(yaml: &str) -> Config {
    let mut raw = parse_yaml(yaml).unwrap();
    raw.listen = Some("127.0.0.1:0".into());
    Config::from_raw(&raw).unwrap()
}

/// Config YAML with one upstream named `mock` serving `mock-*` (and extra YAML appended).
pub fn mock_config(base_url: &str, extra: &str) -> String {
    format!("upstreams:\n  - name: mock\n    url: {base_url}\n    models: [\"mock-*\"]\n{extra}")
}

pub type TestClient = Client<HttpConnector, Full<Bytes>>;

pub fn client() -> TestClient {
    Client::builder(TokioExecutor::new()).build_http()
}

pub fn h2_client() -> TestClient {
    Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build_http()
}

pub struct Reply {
    pub status: StatusCode,
    pub headers: http::HeaderMap,
    pub body: Bytes,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    /// The OpenAI error's `code`, asserting the error shape on the way.
    pub fn error_code(&self) -> String {
        let value = self.json();
        let error = value
            .get("error")
            .unwrap_or_else(|| panic!("no error object: {value}"));
        for key in ["message", "type", "code", "param"] {
            assert!(error.get(key).is_some(), "error lacks `{key}`: {value}");
        }
        assert!(error["message"].as_str().is_some_and(|m| !m.is_empty()));
        error["code"].as_str().unwrap_or_default().to_string()
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

pub async fn read(response: Response<Incoming>) -> Reply {
    let (parts, body) = response.into_parts();
    let body = read_limited(body, 64 << 20, Duration::from_secs(30), None)
        .await
        .unwrap();
    Reply {
        status: parts.status,
        headers: parts.headers,
        body,
    }
}

pub async fn send(
    client: &TestClient,
    method: Method,
    url: &str,
    headers: &[(&str, &str)],
    body: impl Into<Bytes>,
) -> Reply {
    let mut builder = Request::builder().method(method).uri(url);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    let response = client
        .request(builder.body(Full::new(body.into())).unwrap())
        .await
        .unwrap();
    read(response).await
}

pub async fn post_json(client: &TestClient, url: &str, body: &Value) -> Reply {
    send(
        client,
        Method::POST,
        url,
        &[("content-type", "application/json")],
        body.to_string(),
    )
    .await
}

/// The `data:` payloads of an SSE body, in order.
pub fn sse_data(body: &[u8]) -> Vec<String> {
    let text = String::from_utf8_lossy(body);
    text.split("\n\n")
        .filter(|e| !e.is_empty())
        .map(|e| {
            e.strip_prefix("data: ")
                .unwrap_or_else(|| panic!("not a data event: {e:?}"))
                .to_string()
        })
        .collect()
}
