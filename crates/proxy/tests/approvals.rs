//! Held MCP calls over real sockets, with a real SQLite store: a `require_approval` decision
//! records a pending approval (arguments masked), keeps the client's SSE answer alive while it
//! waits, and then forwards (approved), refuses (denied) or refuses (expired); the number of
//! held calls is bounded.

#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{TestGateway, client, send};
use http::{Method, StatusCode};
use portcullis_proxy::{ApprovalHub, Gateway, Services, Snapshot};
use portcullis_store::{ApprovalFilter, ApprovalStatus};
use portcullis_telemetry::Metrics;
use portcullis_testkit::{McpMock, McpMockOptions};
use serde_json::{Value, json};

const HEADERS: [(&str, &str); 3] = [
    ("content-type", "application/json"),
    ("accept", "application/json, text/event-stream"),
    ("mcp-protocol-version", "2025-11-25"),
];

/// A bundle that holds every `send_email` call for a human and allows everything else.
const HOLD_MAIL: &str = r#"package portcullis

default decision := {"action": "allow"}

decision := {"action": "require_approval", "code": "mail_needs_approval", "reasons": ["sending mail needs a human"]} if {
  input.stage == "tool_call"
  input.tool.name == "send_email"
}
"#;

struct Setup {
    gateway: TestGateway,
    hub: Arc<ApprovalHub>,
    _mock: McpMock,
    _dir: tempfile::TempDir,
}

/// A webhook receiver: every POST body it gets, as JSON, on the channel; answers 200.
async fn webhook_receiver() -> (String, tokio::sync::mpsc::UnboundedReceiver<Value>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let tx = tx.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(
                    move |request: http::Request<hyper::body::Incoming>| {
                        let tx = tx.clone();
                        async move {
                            assert_eq!(request.headers()["content-type"], "application/json");
                            let body = portcullis_proxy::body::read_limited(
                                request.into_body(),
                                1 << 20,
                                Duration::from_secs(5),
                                None,
                            )
                            .await
                            .unwrap();
                            tx.send(serde_json::from_slice::<Value>(&body).unwrap())
                                .unwrap();
                            Ok::<_, std::convert::Infallible>(http::Response::new(
                                http_body_util::Full::new(bytes::Bytes::from_static(b"ok")),
                            ))
                        }
                    },
                );
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (url, rx)
}

async fn setup(approvals: &str) -> Setup {
    setup_with(approvals, |_| "audit:\n  enabled: false\n".to_owned()).await
}

/// [`setup`] with the `audit` section `audit(dir)` gives.
async fn setup_with(approvals: &str, audit: impl Fn(&std::path::Path) -> String) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let bundle = dir.path().join("bundle");
    std::fs::create_dir(&bundle).unwrap();
    std::fs::write(bundle.join("policy.rego"), HOLD_MAIL).unwrap();
    let mock = McpMock::start(McpMockOptions::default()).await.unwrap();
    let yaml = format!(
        "mcp:\n  servers:\n    - name: tools\n      url: {}\npolicy:\n  bundle: {}\nstore:\n  path: {}\n{}approvals:\n{approvals}",
        mock.url(),
        bundle.display(),
        dir.path().join("state.db").display(),
        audit(dir.path()),
    );
    let config = common::test_config(&yaml);
    let metrics = Arc::new(Metrics::new());
    let services = Services::start(&config, &metrics).await.unwrap();
    let hub = services.approvals.clone().unwrap();
    let gateway = Gateway::with_services(Snapshot::build(config).unwrap(), metrics, services);
    Setup {
        gateway: TestGateway::serve(gateway).await,
        hub,
        _mock: mock,
        _dir: dir,
    }
}

/// Opens a session and returns its id.
async fn open(url: &str) -> String {
    let http = client();
    let init = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {},
        "clientInfo": {"name": "test", "version": "1"}}});
    let reply = send(&http, Method::POST, url, &HEADERS, init.to_string()).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    reply.headers["mcp-session-id"]
        .to_str()
        .unwrap()
        .to_string()
}

/// Calls `send_email`; returns the raw body (SSE or JSON) and the final answer.
async fn send_email(url: String, session: String, text: &str) -> (String, Value) {
    let http = client();
    let call = json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call",
        "params": {"name": "send_email", "arguments": {"text": text}}});
    let mut headers = HEADERS.to_vec();
    headers.push(("mcp-session-id", &session));
    let reply = send(&http, Method::POST, &url, &headers, call.to_string()).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    let body = reply.text();
    let answer = body
        .split("\n\n")
        .filter_map(|event| event.lines().find_map(|l| l.strip_prefix("data: ")))
        .map(|data| serde_json::from_str::<Value>(data).unwrap())
        .last()
        .unwrap_or_else(|| serde_json::from_str(&body).unwrap());
    (body, answer)
}

/// Waits (bounded) until `hub` has `count` pending approvals; returns them.
async fn pending(hub: &ApprovalHub, count: usize) -> Vec<portcullis_store::Approval> {
    let filter = ApprovalFilter {
        status: Some(ApprovalStatus::Pending),
        limit: 100,
    };
    for _ in 0..500 {
        let list = hub.list(&filter).await.unwrap();
        if list.len() >= count {
            return list;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("no {count} pending approvals within 5 s");
}

fn result_text(answer: &Value) -> (bool, String) {
    let result = &answer["result"];
    (
        result["isError"] == json!(true),
        result["content"][0]["text"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
    )
}

#[tokio::test]
async fn an_approved_call_is_forwarded_after_keepalives_and_the_record_is_masked() {
    let setup = setup("  timeout_ms: 20000\n  keepalive_ms: 50\n").await;
    let url = setup.gateway.url("/mcp/tools");
    let session = open(&url).await;
    let call = tokio::spawn(send_email(
        url.clone(),
        session,
        "please write to bob.jones@example.com today",
    ));
    let list = pending(&setup.hub, 1).await;
    let approval = &list[0];
    assert_eq!(approval.request.tool, "send_email");
    assert_eq!(approval.request.server, "tools");
    assert_eq!(approval.request.route, "mcp");
    assert_eq!(approval.request.reasons, ["sending mail needs a human"]);
    let arguments = approval.request.arguments.to_string();
    assert!(
        !arguments.contains("bob.jones@example.com"),
        "the approval record holds the raw e-mail address: {arguments}"
    );
    assert!(arguments.contains("please write to"), "{arguments}");
    assert!(approval.request.expires_at_ms > approval.request.created_at_ms);
    // Let a few keep-alives go out before approving.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!call.is_finished(), "the call must wait for the decision");
    let resolved = setup
        .hub
        .resolve(&approval.request.id, true, "alice", Some("ok".into()))
        .await
        .unwrap();
    assert_eq!(resolved.status, ApprovalStatus::Approved);
    let (body, answer) = tokio::time::timeout(Duration::from_secs(5), call)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(result_text(&answer), (false, "done".into()), "{body}");
    assert!(
        body.matches(": waiting for approval\n\n").count() >= 2,
        "expected SSE keep-alive comments while held: {body}"
    );
    let stored = setup.hub.get(&approval.request.id).await.unwrap().unwrap();
    assert_eq!(stored.decided_by.as_deref(), Some("alice"));
    // The upstream got the call exactly once, with the original (unmasked) arguments.
    let sent: Vec<Value> = setup
        ._mock
        .received()
        .into_iter()
        .filter(|(_, m)| m["method"] == "tools/call")
        .map(|(_, m)| m)
        .collect();
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(
        sent[0]["params"]["arguments"]["text"],
        "please write to bob.jones@example.com today"
    );
    setup.gateway.shutdown().await;
}

#[tokio::test]
async fn a_denied_call_is_refused_with_the_reason_and_never_forwarded() {
    let setup = setup("  timeout_ms: 20000\n").await;
    let url = setup.gateway.url("/mcp/tools");
    let session = open(&url).await;
    let call = tokio::spawn(send_email(url.clone(), session, "hello"));
    let list = pending(&setup.hub, 1).await;
    setup
        .hub
        .resolve(&list[0].request.id, false, "bob", Some("not today".into()))
        .await
        .unwrap();
    let (_, answer) = tokio::time::timeout(Duration::from_secs(5), call)
        .await
        .unwrap()
        .unwrap();
    let (is_error, text) = result_text(&answer);
    assert!(is_error, "{answer}");
    assert!(
        text.contains("denied") && text.contains("not today"),
        "{text}"
    );
    assert!(text.contains(&list[0].request.id), "{text}");
    // A second resolution is refused: the first one stands.
    let again = setup
        .hub
        .resolve(&list[0].request.id, true, "eve", None)
        .await;
    assert!(
        matches!(
            again,
            Err(portcullis_store::Error::AlreadyResolved {
                status: ApprovalStatus::Denied,
                ..
            })
        ),
        "{again:?}"
    );
    let calls = setup
        ._mock
        .received()
        .into_iter()
        .filter(|(_, m)| m["method"] == "tools/call")
        .count();
    assert_eq!(calls, 0);
    setup.gateway.shutdown().await;
}

#[tokio::test]
async fn an_unanswered_call_expires_and_is_refused() {
    let setup = setup("  timeout_ms: 300\n").await;
    let url = setup.gateway.url("/mcp/tools");
    let session = open(&url).await;
    let (_, answer) = tokio::time::timeout(
        Duration::from_secs(5),
        send_email(url.clone(), session, "hello"),
    )
    .await
    .unwrap();
    let (is_error, text) = result_text(&answer);
    assert!(is_error && text.contains("expired"), "{text}");
    assert!(text.contains("mail_needs_approval"), "{text}");
    let all = setup
        .hub
        .list(&ApprovalFilter {
            status: None,
            limit: 10,
        })
        .await
        .unwrap();
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].status, ApprovalStatus::Expired);
    assert_eq!(all[0].decided_by.as_deref(), Some("system"));
    setup.gateway.shutdown().await;
}

#[tokio::test]
async fn held_calls_are_bounded_by_max_pending() {
    let setup = setup("  timeout_ms: 20000\n  max_pending: 1\n").await;
    let url = setup.gateway.url("/mcp/tools");
    let first_session = open(&url).await;
    let first = tokio::spawn(send_email(url.clone(), first_session, "one"));
    let list = pending(&setup.hub, 1).await;
    let second_session = open(&url).await;
    let (_, answer) = tokio::time::timeout(
        Duration::from_secs(5),
        send_email(url.clone(), second_session, "two"),
    )
    .await
    .unwrap();
    let (is_error, text) = result_text(&answer);
    assert!(is_error && text.contains("Too many calls"), "{text}");
    setup
        .hub
        .resolve(&list[0].request.id, true, "alice", None)
        .await
        .unwrap();
    let (_, answer) = first.await.unwrap();
    assert_eq!(result_text(&answer), (false, "done".into()));
    let metrics = setup.gateway.gateway.metrics().encode();
    assert!(
        metrics.contains("portcullis_approvals_total{outcome=\"full\"} 1"),
        "{metrics}"
    );
    setup.gateway.shutdown().await;
}

#[tokio::test]
async fn each_new_approval_fires_the_slack_compatible_webhook() {
    let (hook, mut received) = webhook_receiver().await;
    let setup = setup(&format!(
        "  timeout_ms: 20000\n  webhook:\n    url: {hook}\n    console_url: https://admin.example/\n"
    ))
    .await;
    let url = setup.gateway.url("/mcp/tools");
    let session = open(&url).await;
    let call = tokio::spawn(send_email(url.clone(), session, "mail carol@example.com"));
    let list = pending(&setup.hub, 1).await;
    let message = tokio::time::timeout(Duration::from_secs(5), received.recv())
        .await
        .unwrap()
        .unwrap();
    let id = &list[0].request.id;
    let text = message["text"].as_str().unwrap();
    assert!(
        text.contains("`send_email`") && text.contains("`tools`"),
        "{text}"
    );
    assert!(
        text.contains(&format!("https://admin.example/console/approvals/{id}")),
        "{text}"
    );
    assert_eq!(message["portcullis"]["approval_id"], json!(id));
    assert!(message["blocks"].as_array().is_some_and(|b| b.len() == 4));
    assert!(
        !message.to_string().contains("carol@example.com"),
        "arguments never go to the webhook: {message}"
    );
    setup.hub.resolve(id, true, "alice", None).await.unwrap();
    let (_, answer) = call.await.unwrap();
    assert_eq!(result_text(&answer), (false, "done".into()));
    let metrics = setup.gateway.gateway.metrics().encode();
    assert!(
        metrics.contains("portcullis_approvals_total{outcome=\"webhook_sent\"} 1"),
        "{metrics}"
    );
    setup.gateway.shutdown().await;
}

#[tokio::test]
async fn the_human_decision_is_audited_after_the_policy_decision() {
    let setup = setup_with("  timeout_ms: 20000\n", |dir| {
        format!(
            "audit:\n  sinks: [jsonl]\n  jsonl_path: {}\n",
            dir.join("audit.jsonl").display()
        )
    })
    .await;
    let url = setup.gateway.url("/mcp/tools");
    let session = open(&url).await;
    let call = tokio::spawn(send_email(url.clone(), session, "hello"));
    let list = pending(&setup.hub, 1).await;
    let id = list[0].request.id.clone();
    setup
        .hub
        .resolve(&id, true, "alice", Some("looks fine".into()))
        .await
        .unwrap();
    let (_, answer) = call.await.unwrap();
    assert_eq!(result_text(&answer), (false, "done".into()));
    setup.gateway.shutdown().await;
    // The writer runs on its own: wait (bounded) for both records to reach the file.
    let path = setup._dir.path().join("audit.jsonl");
    let mut events = Vec::new();
    for _ in 0..200 {
        events = std::fs::read_to_string(&path)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str::<Value>(l).unwrap())
            .filter(|l| l["type"] == "record" && l["event"]["stage"] == "tool_call")
            .map(|l| l["event"].clone())
            .collect();
        if events.len() >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(events.len(), 2, "{events:?}");
    assert_eq!(events[0]["action"], "require_approval");
    assert_eq!(events[0]["code"], "mail_needs_approval");
    assert_eq!(events[1]["action"], "allow");
    assert_eq!(events[1]["code"], "approval_granted");
    assert_eq!(events[0]["request_id"], events[1]["request_id"]);
    assert_eq!(events[1]["target"]["tool"], "send_email");
    let reason = events[1]["reasons"][0].as_str().unwrap();
    assert!(
        reason.contains(&id) && reason.contains("alice") && reason.contains("looks fine"),
        "{reason}"
    );
    assert_eq!(
        list[0].request.request_id,
        events[0]["request_id"].as_str().unwrap()
    );
}

/// An approval whose holder died (another instance, past its expiry, still pending) is expired
/// by this process's sweeper, so it does not stay pending in the console forever.
#[tokio::test]
async fn a_dead_holders_overdue_approval_is_expired_by_the_sweeper() {
    let setup = setup("  timeout_ms: 20000\n").await;
    let store = setup.hub.store();
    let orphan = portcullis_store::NewApproval {
        id: "apr_orphan".into(),
        created_at_ms: 1_000,
        expires_at_ms: 2_000,
        request_id: "gone".into(),
        principal: "anonymous".into(),
        tenant: None,
        route: "mcp".into(),
        server: "tools".into(),
        tool: "send_email".into(),
        arguments: json!({}),
        findings: json!([]),
        reasons: vec![],
        instance: "a-dead-replica".into(),
    };
    store.create_approval(&orphan).await.unwrap();
    // The sweeper runs every 5 s.
    let mut status = ApprovalStatus::Pending;
    for _ in 0..160 {
        status = store.approval("apr_orphan").await.unwrap().unwrap().status;
        if status != ApprovalStatus::Pending {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(status, ApprovalStatus::Expired);
    let swept = store.approval("apr_orphan").await.unwrap().unwrap();
    assert_eq!(swept.decided_by.as_deref(), Some("system"));
    setup.gateway.shutdown().await;
}
