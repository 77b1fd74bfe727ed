//! Authentication and rate limits on the request path, with the in-memory counters: a gateway
//! with API keys and `rate_limits` rules in front of the mock upstreams (LLM and MCP). (The
//! Redis backend and two processes sharing one budget are in tests/python/test_access.py; JWT
//! and JWKS verification in tests/auth.rs.)

// Helpers outside `#[test]` unwrap like the tests do.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;

use common::{Reply, TestGateway, client, mock_config, send, test_config};
use http::{Method, StatusCode};
use portcullis_proxy::{Gateway, Services, Snapshot};
use portcullis_telemetry::Metrics;
use portcullis_testkit::{McpMock, McpMockOptions, MockUpstream};
use serde_json::{Value, json};

// Raw keys; the config holds only their SHA-256.
const KEY_A: &str = "key-a";
const KEY_B: &str = "key-b";

fn sha256_hex(text: &str) -> String {
    use sha2::Digest;
    portcullis_core::hex::encode(&sha2::Sha256::digest(text.as_bytes()))
}

async fn gateway(mock: &MockUpstream, limits: &str) -> TestGateway {
    let extra = format!(
        "auth:\n  api_keys:\n    - {{name: a, sha256: '{}', tenant: t1}}\n    - {{name: b, sha256: '{}', tenant: t1}}\n{limits}",
        sha256_hex(KEY_A),
        sha256_hex(KEY_B)
    );
    let config = test_config(&mock_config(&mock.base_url(), &extra));
    let metrics = Arc::new(Metrics::new());
    let services = Services::none().with_memory_limiter(1000);
    let gateway = Gateway::with_services(Snapshot::build(config).unwrap(), metrics, services);
    TestGateway::serve(gateway).await
}

async fn chat(gateway: &TestGateway, key: Option<&str>, body: &Value) -> Reply {
    let bearer = key.map(|k| format!("Bearer {k}"));
    let mut headers = vec![("content-type", "application/json")];
    if let Some(bearer) = &bearer {
        headers.push(("authorization", bearer.as_str()));
    }
    send(
        &client(),
        Method::POST,
        &gateway.url("/v1/chat/completions"),
        &headers,
        body.to_string(),
    )
    .await
}

/// Windows are fixed UTC minutes: a burst must not straddle a boundary.
async fn wait_for_fresh_minute() {
    let into = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis()
        % 60_000;
    if into > 55_000 {
        tokio::time::sleep(std::time::Duration::from_millis(60_200 - into as u64)).await;
    }
}

fn hello() -> Value {
    json!({"model": "mock-gpt", "messages": [{"role": "user", "content": "hello there"}]})
}

#[tokio::test]
async fn requests_per_minute_are_per_principal_and_refused_with_retry_after() {
    let mock = MockUpstream::start().await.unwrap();
    let limits =
        "rate_limits:\n  rules:\n    - {name: rpm, by: [principal], requests_per_minute: 3}\n";
    let gateway = gateway(&mock, limits).await;
    wait_for_fresh_minute().await;
    for _ in 0..3 {
        assert_eq!(
            chat(&gateway, Some(KEY_A), &hello()).await.status,
            StatusCode::OK
        );
    }
    let refused = chat(&gateway, Some(KEY_A), &hello()).await;
    assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(refused.error_code(), "rate_limit_exceeded");
    assert_eq!(refused.json()["error"]["type"], "rate_limit_error");
    let retry: u64 = refused.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    // Another principal has its own budget; the refused request never reached the model.
    assert_eq!(
        chat(&gateway, Some(KEY_B), &hello()).await.status,
        StatusCode::OK
    );
    assert_eq!(mock.requests().len(), 4);
}

#[tokio::test]
async fn a_prompt_whose_estimate_cannot_fit_is_refused_before_the_model() {
    let mock = MockUpstream::start().await.unwrap();
    let limits =
        "rate_limits:\n  rules:\n    - {name: tpm, by: [tenant], tokens_per_minute: 100}\n";
    let gateway = gateway(&mock, limits).await;
    let long = json!({"model": "mock-gpt", "messages": [{"role": "user", "content": "word ".repeat(200)}]});
    let refused = chat(&gateway, Some(KEY_A), &long).await;
    assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(refused.error_code(), "token_budget_exceeded");
    assert!(mock.requests().is_empty());
    // A short prompt fits, and is charged what the upstream reports.
    assert_eq!(
        chat(&gateway, Some(KEY_A), &hello()).await.status,
        StatusCode::OK
    );
    assert_eq!(mock.requests().len(), 1);
}

#[tokio::test]
async fn streams_are_asked_for_usage_and_the_usage_chunk_is_kept_from_the_client() {
    let mock = MockUpstream::start().await.unwrap();
    let limits =
        "rate_limits:\n  rules:\n    - {name: tpd, by: [principal], tokens_per_day: 100000}\n";
    let gateway = gateway(&mock, limits).await;
    let mut body = hello();
    body["stream"] = json!(true);
    let reply = chat(&gateway, Some(KEY_A), &body).await;
    assert_eq!(reply.status, StatusCode::OK);
    let forwarded = mock.last_request().unwrap().json().unwrap();
    assert_eq!(forwarded["stream_options"]["include_usage"], json!(true));
    let text = String::from_utf8(reply.body.to_vec()).unwrap();
    assert!(text.contains("[DONE]"), "{text}");
    assert!(
        !text.contains("\"choices\":[]"),
        "usage-only chunk reached the client: {text}"
    );
    assert!(!text.contains("prompt_tokens"), "{text}");

    // A client that asked for usage gets it, untouched.
    body["stream_options"] = json!({"include_usage": true});
    let reply = chat(&gateway, Some(KEY_A), &body).await;
    let text = String::from_utf8(reply.body.to_vec()).unwrap();
    assert!(text.contains("prompt_tokens"), "{text}");
}

#[tokio::test]
async fn without_rules_nothing_is_rewritten_or_counted() {
    let mock = MockUpstream::start().await.unwrap();
    let gateway = gateway(&mock, "").await;
    let mut body = hello();
    body["stream"] = json!(true);
    assert_eq!(
        chat(&gateway, Some(KEY_A), &body).await.status,
        StatusCode::OK
    );
    let forwarded = mock.last_request().unwrap().json().unwrap();
    assert!(forwarded.get("stream_options").is_none());
}

#[tokio::test]
async fn missing_and_wrong_keys_are_refused_before_any_limit_or_upstream() {
    let mock = MockUpstream::start().await.unwrap();
    let limits = "rate_limits:\n  rules:\n    - {name: rpm, requests_per_minute: 1}\n";
    let gateway = gateway(&mock, limits).await;
    wait_for_fresh_minute().await;
    for key in [None, Some("key-c"), Some("")] {
        let reply = chat(&gateway, key, &hello()).await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{key:?}");
        assert_eq!(reply.error_code(), "invalid_api_key");
        assert_eq!(reply.json()["error"]["type"], "authentication_error");
        assert!(reply.headers.contains_key("www-authenticate"));
    }
    // The one request the global budget allows is still there.
    assert_eq!(
        chat(&gateway, Some(KEY_A), &hello()).await.status,
        StatusCode::OK
    );
    assert_eq!(mock.requests().len(), 1);
}

async fn mcp_post(gateway: &TestGateway, key: &str, session: Option<&str>, body: Value) -> Reply {
    let bearer = format!("Bearer {key}");
    let mut headers = vec![
        ("content-type", "application/json"),
        ("accept", "application/json, text/event-stream"),
        ("authorization", bearer.as_str()),
        ("mcp-protocol-version", "2025-11-25"),
    ];
    if let Some(id) = session {
        headers.push(("mcp-session-id", id));
    }
    send(
        &client(),
        Method::POST,
        &gateway.url("/mcp/tools"),
        &headers,
        body.to_string(),
    )
    .await
}

#[tokio::test]
async fn an_mcp_session_belongs_to_the_principal_that_opened_it() {
    let mock = MockUpstream::start().await.unwrap();
    let tools = McpMock::start(McpMockOptions::default()).await.unwrap();
    let limits = format!(
        "mcp:\n  servers:\n    - {{name: tools, url: '{}'}}\n",
        tools.url()
    );
    let gateway = gateway(&mock, &limits).await;
    let init = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {},
        "clientInfo": {"name": "test", "version": "1"}}});
    let opened = mcp_post(&gateway, KEY_A, None, init.clone()).await;
    assert_eq!(opened.status, StatusCode::OK, "{}", opened.text());
    let id = opened.headers["mcp-session-id"]
        .to_str()
        .unwrap()
        .to_string();
    let list = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}});
    let own = mcp_post(&gateway, KEY_A, Some(&id), list.clone()).await;
    assert_eq!(own.status, StatusCode::OK, "{}", own.text());
    // Another principal presenting the id finds no such session.
    let other = mcp_post(&gateway, KEY_B, Some(&id), list.clone()).await;
    assert_eq!(other.status, StatusCode::NOT_FOUND, "{}", other.text());
    assert!(
        other.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("session")
    );
    // No credential: 401 as a JSON-RPC error, before the session is looked up.
    let anonymous = send(
        &client(),
        Method::POST,
        &gateway.url("/mcp/tools"),
        &[
            ("content-type", "application/json"),
            ("accept", "application/json"),
            ("mcp-session-id", &id),
        ],
        list.to_string(),
    )
    .await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
    assert_eq!(anonymous.json()["jsonrpc"], "2.0");
    assert!(anonymous.headers.contains_key("www-authenticate"));
}

#[tokio::test]
async fn audit_records_name_the_authenticated_principal() {
    let mock = MockUpstream::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let jsonl = dir.path().join("audit.jsonl");
    let extra = format!(
        "auth:\n  api_keys:\n    - {{name: a, sha256: '{}', tenant: t1}}\naudit:\n  sinks: [jsonl]\n  jsonl_path: {}\n",
        sha256_hex(KEY_A),
        jsonl.display()
    );
    let config = test_config(&mock_config(&mock.base_url(), &extra));
    let metrics = Arc::new(Metrics::new());
    let log = portcullis_proxy::AuditLog::start(&config.audit, None, metrics.clone())
        .await
        .unwrap();
    let services = Services {
        audit: Some(log.clone()),
        ..Services::none()
    };
    let gateway = TestGateway::serve(Gateway::with_services(
        Snapshot::build(config).unwrap(),
        metrics,
        services,
    ))
    .await;
    assert_eq!(
        chat(&gateway, Some(KEY_A), &hello()).await.status,
        StatusCode::OK
    );
    log.shutdown().await;
    let text = std::fs::read_to_string(&jsonl).unwrap();
    let records: Vec<Value> = text
        .lines()
        .map(|line| serde_json::from_str::<Value>(line).unwrap())
        .filter(|line| line.get("event").is_some())
        .collect();
    assert!(!records.is_empty(), "{text}");
    for record in &records {
        assert_eq!(
            record["event"]["principal"],
            json!({"id": "a", "tenant": "t1"}),
            "{record}"
        );
    }
}
