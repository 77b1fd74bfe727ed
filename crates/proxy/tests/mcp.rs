//! The MCP proxy over real sockets against the testkit's mock MCP server: sessions, passthrough,
//! transport errors with their JSON-RPC codes, a dying upstream, and the guard's stages with the
//! default bundle.

// Helpers outside `#[test]` unwrap like the tests do.
#![allow(clippy::unwrap_used)]

mod common;

use common::{Reply, TestClient, TestGateway, client, send};
use http::{Method, StatusCode};
use portcullis_testkit::{MOCK_AWS_KEY, McpMock, McpMockOptions};
use serde_json::{Value, json};

const ACCEPT: (&str, &str) = ("accept", "application/json, text/event-stream");
const JSON: (&str, &str) = ("content-type", "application/json");

fn config(servers: &[(&str, &McpMock)], extra: &str) -> String {
    let mut yaml = String::from("mcp:\n  max_message_bytes: 65536\n  servers:\n");
    for (name, mock) in servers {
        yaml.push_str(&format!(
            "    - name: {name}\n      url: {}\n      tools:\n        fetch_url: [untrusted_source]\n        send_email: [external_sink]\n",
            mock.url()
        ));
    }
    yaml.push_str(extra);
    yaml
}

/// One client session through the gateway.
struct Session<'a> {
    http: &'a TestClient,
    url: String,
    id: String,
    next: u64,
}

impl<'a> Session<'a> {
    async fn open(http: &'a TestClient, url: String) -> Session<'a> {
        let init = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
            "protocolVersion": "2025-11-25", "capabilities": {},
            "clientInfo": {"name": "test", "version": "1"}}});
        let reply = send(http, Method::POST, &url, &[JSON, ACCEPT], init.to_string()).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
        assert_eq!(reply.json()["result"]["protocolVersion"], "2025-11-25");
        let id = reply.headers["mcp-session-id"]
            .to_str()
            .unwrap()
            .to_string();
        let note = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
        let accepted = send(
            http,
            Method::POST,
            &url,
            &[JSON, ACCEPT, ("mcp-session-id", &id)],
            note.to_string(),
        )
        .await;
        assert_eq!(accepted.status, StatusCode::ACCEPTED);
        Session {
            http,
            url,
            id,
            next: 1,
        }
    }

    async fn request(&mut self, method: &str, params: Value) -> Value {
        self.request_with_related(method, params).await.0
    }

    /// The answer, and the messages relayed before it when the gateway streamed (SSE).
    async fn request_with_related(&mut self, method: &str, params: Value) -> (Value, Vec<Value>) {
        self.next += 1;
        let message =
            json!({"jsonrpc": "2.0", "id": self.next, "method": method, "params": params});
        let reply = self.raw(message.to_string()).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
        let streamed = reply.headers["content-type"] == "text/event-stream";
        let mut messages: Vec<Value> = if streamed {
            reply
                .text()
                .split("\n\n")
                .filter_map(|event| event.lines().find_map(|l| l.strip_prefix("data: ")))
                .map(|data| serde_json::from_str(data).unwrap())
                .collect()
        } else {
            vec![reply.json()]
        };
        let answer = messages.pop().unwrap();
        assert_eq!(answer["id"], json!(self.next), "{answer}");
        (answer, messages)
    }

    async fn raw(&self, body: String) -> Reply {
        send(
            self.http,
            Method::POST,
            &self.url,
            &[
                JSON,
                ACCEPT,
                ("mcp-session-id", &self.id),
                ("mcp-protocol-version", "2025-11-25"),
            ],
            body,
        )
        .await
    }

    async fn tool_names(&mut self) -> Vec<String> {
        let answer = self.request("tools/list", json!({})).await;
        answer["result"]["tools"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["name"].as_str().unwrap().to_string())
            .collect()
    }

    async fn call(&mut self, name: &str, text: &str) -> (bool, String) {
        let answer = self
            .request(
                "tools/call",
                json!({"name": name, "arguments": {"text": text}}),
            )
            .await;
        let result = &answer["result"];
        assert!(result.is_object(), "{answer}");
        let text = result["content"][0]["text"]
            .as_str()
            .unwrap_or("")
            .to_string();
        (result["isError"] == json!(true), text)
    }
}

#[tokio::test]
async fn calls_pass_through_in_isolated_sessions_with_their_own_ids() {
    for sse in [false, true] {
        let mock = McpMock::start(McpMockOptions {
            sse,
            ..Default::default()
        })
        .await
        .unwrap();
        let gateway = TestGateway::start(&config(&[("tools", &mock)], "")).await;
        let http = client();
        let mut a = Session::open(&http, gateway.url("/mcp/tools")).await;
        let mut b = Session::open(&http, gateway.url("/mcp/tools")).await;
        assert_ne!(a.id, b.id);
        assert!(
            !mock.sessions().contains(&a.id),
            "the upstream's session id must never be the client's"
        );
        assert_eq!(
            a.call("echo", "hello from a").await,
            (false, "hello from a".into())
        );
        assert_eq!(
            b.call("echo", "hello from b").await,
            (false, "hello from b".into())
        );
        assert_eq!(
            a.tool_names().await,
            ["echo", "add", "fetch_url", "get_config", "send_email"]
        );
        // Every message reached the upstream under the upstream's own session ids, one per
        // client session.
        let upstream_ids: std::collections::HashSet<String> = mock
            .received()
            .into_iter()
            .filter_map(|(id, _)| id)
            .collect();
        assert_eq!(upstream_ids.len(), 2, "sse={sse}");
        assert!(!upstream_ids.contains(&a.id) && !upstream_ids.contains(&b.id));
        // An upstream that answers with SSE has its notifications relayed, in order, before
        // the (guarded) response; a JSON upstream's answer is plain JSON.
        let (answer, related) = a
            .request_with_related(
                "tools/call",
                json!({"name": "echo", "arguments": {"text": "relay"}}),
            )
            .await;
        assert_eq!(answer["result"]["content"][0]["text"], "relay");
        if sse {
            assert_eq!(related.len(), 1, "{related:?}");
            assert_eq!(related[0]["method"], "notifications/progress");
        } else {
            assert!(related.is_empty());
        }
        // An unknown method is the upstream's JSON-RPC error, in the same session.
        let answer = a.request("nope/nothing", json!({})).await;
        assert_eq!(answer["error"]["code"], -32601, "{answer}");
        // DELETE ends the session; its id is then unknown.
        let deleted = send(
            &http,
            Method::DELETE,
            &a.url,
            &[("mcp-session-id", &a.id)],
            "",
        )
        .await;
        assert_eq!(deleted.status, StatusCode::OK);
        let after = a
            .raw(json!({"jsonrpc": "2.0", "id": 9, "method": "ping"}).to_string())
            .await;
        assert_eq!(after.status, StatusCode::NOT_FOUND);
        assert_eq!(b.call("echo", "still here").await.1, "still here");
    }
}

#[tokio::test]
async fn transport_errors_get_json_rpc_errors_with_the_right_codes() {
    let mock = McpMock::start(McpMockOptions::default()).await.unwrap();
    let gateway = TestGateway::start(&config(&[("tools", &mock)], "")).await;
    let http = client();
    let url = gateway.url("/mcp/tools");
    let session = Session::open(&http, url.clone()).await;
    let code = |reply: &Reply| reply.json()["error"]["code"].as_i64().unwrap();

    let malformed = session
        .raw("{\"jsonrpc\": \"2.0\", \"id\": 1, \"method\":".into())
        .await;
    assert_eq!(
        (malformed.status, code(&malformed)),
        (StatusCode::BAD_REQUEST, -32700)
    );
    let batch = session
        .raw(json!([{"jsonrpc": "2.0", "id": 1, "method": "ping"}]).to_string())
        .await;
    assert_eq!(
        (batch.status, code(&batch)),
        (StatusCode::BAD_REQUEST, -32600)
    );
    let wrong = session
        .raw(json!({"jsonrpc": "1.0", "id": 1, "method": "ping"}).to_string())
        .await;
    assert_eq!(
        (wrong.status, code(&wrong)),
        (StatusCode::BAD_REQUEST, -32600)
    );
    let huge = format!(
        "{{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{{\"name\":\"echo\",\"arguments\":{{\"text\":\"{}\"}}}}}}",
        "x".repeat(70_000)
    );
    let too_large = session.raw(huge).await;
    assert_eq!(
        (too_large.status, code(&too_large)),
        (StatusCode::PAYLOAD_TOO_LARGE, -32600)
    );
    let ping = json!({"jsonrpc": "2.0", "id": 1, "method": "ping"}).to_string();
    let no_session = send(&http, Method::POST, &url, &[JSON, ACCEPT], ping.clone()).await;
    assert_eq!(
        (no_session.status, code(&no_session)),
        (StatusCode::BAD_REQUEST, -32600)
    );
    let unknown = send(
        &http,
        Method::POST,
        &url,
        &[JSON, ACCEPT, ("mcp-session-id", "forged")],
        ping.clone(),
    )
    .await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    let no_server = send(
        &http,
        Method::POST,
        &gateway.url("/mcp/other"),
        &[JSON, ACCEPT],
        ping.clone(),
    )
    .await;
    assert_eq!(no_server.status, StatusCode::NOT_FOUND);
    let get = send(
        &http,
        Method::GET,
        &url,
        &[
            ("accept", "text/event-stream"),
            ("mcp-session-id", &session.id),
        ],
        "",
    )
    .await;
    assert_eq!(get.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(get.headers["allow"], "POST, DELETE");
    let text = send(
        &http,
        Method::POST,
        &url,
        &[
            ("content-type", "text/plain"),
            ACCEPT,
            ("mcp-session-id", &session.id),
        ],
        ping.clone(),
    )
    .await;
    assert_eq!(text.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let version = send(
        &http,
        Method::POST,
        &url,
        &[
            JSON,
            ACCEPT,
            ("mcp-session-id", &session.id),
            ("mcp-protocol-version", "1999-01-01"),
        ],
        ping.clone(),
    )
    .await;
    assert_eq!(version.status, StatusCode::BAD_REQUEST);
    // After all that, the session still works.
    let ok = session.raw(ping).await;
    assert_eq!(ok.status, StatusCode::OK);
    assert_eq!(ok.json()["result"], json!({}));
}

#[tokio::test]
async fn a_dying_upstream_fails_only_its_sessions() {
    let doomed = McpMock::start(McpMockOptions::default()).await.unwrap();
    let healthy = McpMock::start(McpMockOptions::default()).await.unwrap();
    let gateway =
        TestGateway::start(&config(&[("doomed", &doomed), ("healthy", &healthy)], "")).await;
    let http = client();
    let mut a = Session::open(&http, gateway.url("/mcp/doomed")).await;
    let mut b = Session::open(&http, gateway.url("/mcp/healthy")).await;
    doomed.stop();
    drop(doomed);
    let started = std::time::Instant::now();
    let answer = a
        .request(
            "tools/call",
            json!({"name": "echo", "arguments": {"text": "x"}}),
        )
        .await;
    assert_eq!(answer["error"]["code"], -32000, "{answer}");
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    assert_eq!(b.call("echo", "fine").await, (false, "fine".into()));
    let ready = send(&http, Method::GET, &gateway.url("/readyz"), &[], "").await;
    assert_eq!(ready.status, StatusCode::OK);
}

#[tokio::test]
async fn the_default_policy_hides_poisoned_and_changed_tools_and_holds_tainted_sinks() {
    let mock = McpMock::start(McpMockOptions {
        poisoned: true,
        rug_pull: true,
        sse: false,
    })
    .await
    .unwrap();
    let gateway = TestGateway::start(&config(&[("tools", &mock)], "")).await;
    let http = client();
    let mut session = Session::open(&http, gateway.url("/mcp/tools")).await;

    // Poisoning: the weather tool's hidden instructions hide it, and calling it anyway fails.
    let first = session.tool_names().await;
    assert!(!first.contains(&"weather".to_string()), "{first:?}");
    assert!(first.contains(&"add".to_string()));
    let (refused, why) = session.call("weather", "Paris").await;
    assert!(refused, "{why}");

    // Rug pull: the second listing shows a changed `add`, which is hidden and refused.
    let second = session.tool_names().await;
    assert!(!second.contains(&"add".to_string()), "{second:?}");
    let (refused, why) = session.call("add", "").await;
    assert!(refused && why.contains("tool_changed"), "{why}");

    // Secrets in a result are redacted before the agent sees them.
    let (failed, config) = session.call("get_config", "").await;
    assert!(!failed, "{config}");
    assert!(!config.contains(MOCK_AWS_KEY), "{config}");
    assert!(config.contains("REGION=eu-west-1"), "{config}");

    // Taint: the web page's injection is blocked, and the session may no longer send e-mail
    // without approval; a fresh session may.
    let (blocked, why) = session.call("fetch_url", "https://example.com").await;
    assert!(
        blocked && why.contains("indirect_prompt_injection"),
        "{why}"
    );
    let (held, why) = session.call("send_email", "hello").await;
    // This gateway has no approval hub (no services): refused at once, saying so.
    assert!(
        held && why.contains("tainted_session_sink") && why.contains("approval is not configured"),
        "{why}"
    );
    let mut fresh = Session::open(&http, gateway.url("/mcp/tools")).await;
    assert_eq!(
        fresh.call("send_email", "hello").await,
        (false, "done".into())
    );

    // A session that never listed its tools cannot call a hidden one either: the gateway lists
    // on its own account first.
    let mut unlisted = Session::open(&http, gateway.url("/mcp/tools")).await;
    let (refused, why) = unlisted.call("weather", "Paris").await;
    assert!(refused && why.contains("tool_not_allowed"), "{why}");
    let (refused, why) = unlisted.call("add", "").await;
    assert!(refused && why.contains("tool_changed"), "{why}");

    // Refused calls never reached the upstream.
    let sent: Vec<String> = mock
        .received()
        .into_iter()
        .filter(|(_, m)| m["method"] == "tools/call")
        .map(|(_, m)| m["params"]["name"].as_str().unwrap().to_string())
        .collect();
    assert!(!sent.contains(&"weather".to_string()), "{sent:?}");
    assert!(!sent.contains(&"add".to_string()), "{sent:?}");
    assert_eq!(
        sent.iter().filter(|n| *n == "send_email").count(),
        1,
        "{sent:?}"
    );
}

/// PII in results is redacted when the bundle's settings say so: the default bundle with
/// `redact_in_tool_results: ["secret", "pii"]`.
#[tokio::test]
async fn pii_in_results_is_redacted_when_the_settings_ask_for_it() {
    let bundle = tempfile::tempdir().unwrap();
    let source = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../policy/bundle");
    std::fs::copy(
        source.join("portcullis.rego"),
        bundle.path().join("portcullis.rego"),
    )
    .unwrap();
    let mut data: Value =
        serde_json::from_str(&std::fs::read_to_string(source.join("data.json")).unwrap()).unwrap();
    data["portcullis_settings"]["redact_in_tool_results"] = json!(["secret", "pii"]);
    std::fs::write(bundle.path().join("data.json"), data.to_string()).unwrap();

    let mock = McpMock::start(McpMockOptions::default()).await.unwrap();
    let extra = format!("policy:\n  bundle: {}\n", bundle.path().display());
    let gateway = TestGateway::start(&config(&[("tools", &mock)], &extra)).await;
    let http = client();
    let mut session = Session::open(&http, gateway.url("/mcp/tools")).await;
    let (failed, text) = session
        .call(
            "echo",
            "Customer record: Jane Doe, jane.doe@example.com, account 7731.",
        )
        .await;
    assert!(!failed, "{text}");
    assert!(!text.contains("jane.doe@example.com"), "{text}");
    assert!(
        text.contains("[EMAIL_1]") && text.contains("account 7731"),
        "{text}"
    );
}

/// `guard.routes.mcp.shadow` decides and records without enforcing; `enabled: false` only
/// forwards.
#[tokio::test]
async fn shadow_mode_records_and_a_disabled_guard_only_forwards() {
    for (settings, decided) in [("shadow: true", true), ("enabled: false", false)] {
        let mock = McpMock::start(McpMockOptions {
            poisoned: true,
            ..Default::default()
        })
        .await
        .unwrap();
        let extra = format!("guard:\n  routes:\n    mcp: {{{settings}}}\n");
        let gateway = TestGateway::start(&config(&[("tools", &mock)], &extra)).await;
        let http = client();
        let mut session = Session::open(&http, gateway.url("/mcp/tools")).await;
        let names = session.tool_names().await;
        assert!(
            names.contains(&"weather".to_string()),
            "{settings}: {names:?}"
        );
        let (failed, config) = session.call("get_config", "").await;
        assert!(
            !failed && config.contains(MOCK_AWS_KEY),
            "{settings}: {config}"
        );
        let metrics = gateway.gateway.metrics().encode();
        assert_eq!(
            metrics.contains("route=\"mcp\",stage=\"tools_list\",action=\"deny\",mode=\"shadow\""),
            decided,
            "{settings}: {metrics}"
        );
        assert_eq!(
            metrics.contains("stage=\"tool_result\""),
            decided,
            "{settings}"
        );
    }
}

/// A call whose arguments carry more strings than the guard reads is not let through half
/// inspected: the failure mode decides (closed by default), as when the policy cannot.
#[tokio::test]
async fn arguments_too_many_to_inspect_fail_closed() {
    let mock = McpMock::start(McpMockOptions::default()).await.unwrap();
    let gateway = TestGateway::start(&config(&[("tools", &mock)], "")).await;
    let http = client();
    let mut session = Session::open(&http, gateway.url("/mcp/tools")).await;
    let many: Vec<&str> = vec!["x"; portcullis_mcp::texts::MAX_TEXTS + 1];
    let answer = session
        .request(
            "tools/call",
            json!({"name": "echo", "arguments": {"text": "hi", "items": many}}),
        )
        .await;
    assert_eq!(answer["result"]["isError"], true, "{answer}");
    let calls = mock
        .received()
        .into_iter()
        .filter(|(_, m)| m["method"] == "tools/call")
        .count();
    assert_eq!(calls, 0, "the upstream must not see the call");
    let metrics = gateway.gateway.metrics().encode();
    assert!(
        metrics.contains("portcullis_policy_errors_total{stage=\"tool_call\"} 1"),
        "{metrics}"
    );
}
