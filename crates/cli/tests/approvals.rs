//! `portcullis approvals` (the real binary) against an admin listener started in-process over a
//! temporary SQLite store, with calls really held: list, show, approve and deny, and the exit
//! codes of refusals (1) and usage or connection errors (2).

#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::process::Output;
use std::sync::Arc;
use std::time::Duration;

use portcullis_config::{Admin, AdminRole, AdminToken, AdminTokenSource, Approvals};
use portcullis_proxy::approvals::Outcome;
use portcullis_proxy::{AdminServer, ApprovalHub, ControlPlane};
use portcullis_store::{NewApproval, Store, StoreConfig};
use portcullis_telemetry::Metrics;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio::task::JoinHandle;

const VIEWER: &str = "viewer-token-0123456789";
const APPROVER: &str = "approver-token-0123456789";

struct TestAdmin {
    url: String,
    hub: Arc<ApprovalHub>,
    dir: tempfile::TempDir,
}

async fn start() -> TestAdmin {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::connect(&StoreConfig::Sqlite {
        path: dir.path().join("state.db"),
    })
    .await
    .unwrap();
    let settings = Approvals {
        enabled: true,
        timeout: Duration::from_secs(120),
        max_pending: 16,
        keepalive: Duration::from_secs(15),
        poll: Duration::from_millis(50),
        webhook: None,
    };
    let metrics = Arc::new(Metrics::new());
    let hub = ApprovalHub::start(store, settings, "test".into(), None, metrics.clone());
    let token = |name: &str, role, secret: &str| AdminToken {
        name: name.into(),
        role,
        source: AdminTokenSource::Sha256(Sha256::digest(secret).into()),
    };
    let admin = Admin {
        listen: None,
        tokens: vec![
            token("vera", AdminRole::Viewer, VIEWER),
            token("alice", AdminRole::Approver, APPROVER),
        ],
        console: false,
        session_ttl: Duration::from_secs(60),
    };
    let plane = ControlPlane::new(&admin, hub.clone(), metrics).unwrap();
    let server = AdminServer::bind("127.0.0.1:0".parse().unwrap(), plane)
        .await
        .unwrap();
    let url = format!("http://{}", server.local_addr().unwrap());
    tokio::spawn(server.run(std::future::pending()));
    TestAdmin { url, hub, dir }
}

impl TestAdmin {
    async fn hold(&self, tool: &str) -> (String, JoinHandle<Outcome>) {
        let held = self
            .hub
            .hold(NewApproval {
                id: String::new(),
                created_at_ms: 0,
                expires_at_ms: 0,
                request_id: "req-1".into(),
                principal: "agent-1".into(),
                tenant: None,
                route: "mcp".into(),
                server: "files".into(),
                tool: tool.into(),
                arguments: json!({"to": "ops@example.com"}),
                findings: json!([]),
                reasons: vec!["needs a human".into()],
                instance: String::new(),
            })
            .await
            .unwrap();
        let id = held.approval.request.id.clone();
        let hub = self.hub.clone();
        (id, tokio::spawn(async move { hub.wait(held).await }))
    }

    /// Runs `portcullis approvals ARGS` with `token` in the environment (if any).
    async fn run(&self, token: Option<&str>, args: &[&str]) -> Output {
        run_cli(&self.url, token, args).await
    }
}

async fn run_cli(url: &str, token: Option<&str>, args: &[&str]) -> Output {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_portcullis"));
    command
        .arg("approvals")
        .args(args)
        .env("PORTCULLIS_ADMIN_URL", url)
        .env_remove("PORTCULLIS_ADMIN_TOKEN")
        .kill_on_drop(true);
    if let Some(token) = token {
        command.env("PORTCULLIS_ADMIN_TOKEN", token);
    }
    tokio::time::timeout(Duration::from_secs(60), command.output())
        .await
        .unwrap()
        .unwrap()
}

fn stdout(output: &Output) -> String {
    String::from_utf8(output.stdout.clone()).unwrap()
}

fn stderr(output: &Output) -> String {
    String::from_utf8(output.stderr.clone()).unwrap()
}

fn code(output: &Output) -> i32 {
    output.status.code().unwrap()
}

async fn outcome(task: JoinHandle<Outcome>) -> Outcome {
    tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .unwrap()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_show_approve_and_deny() {
    let admin = start().await;
    let (first, first_task) = admin.hold("send_email").await;
    let (second, second_task) = admin.hold("delete_repo").await;

    let output = admin.run(Some(VIEWER), &["list"]).await;
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    let table = stdout(&output);
    assert!(table.starts_with("ID "), "{table}");
    assert!(table.contains(&first) && table.contains(&second), "{table}");
    assert!(
        table.contains("pending") && table.contains("send_email"),
        "{table}"
    );

    let output = admin
        .run(
            Some(VIEWER),
            &["list", "--status", "pending", "--limit", "1", "--json"],
        )
        .await;
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    let value: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(value["data"].as_array().unwrap().len(), 1);

    let output = admin.run(Some(VIEWER), &["show", &first]).await;
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    let shown = stdout(&output);
    assert!(
        shown.contains("send_email") && shown.contains("ops@example.com"),
        "{shown}"
    );
    assert!(
        shown.contains("status:") && shown.contains("needs a human"),
        "{shown}"
    );
    let output = admin.run(Some(VIEWER), &["show", &first, "--json"]).await;
    let value: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(value["id"], first.as_str());

    let output = admin
        .run(Some(APPROVER), &["approve", &first, "--reason", "expected"])
        .await;
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    assert_eq!(stdout(&output), format!("{first} approved by alice\n"));
    match outcome(first_task).await {
        Outcome::Approved(approval) => {
            assert_eq!(approval.decided_by.as_deref(), Some("alice"));
            assert_eq!(approval.decision_reason.as_deref(), Some("expected"));
        }
        other => panic!("expected approved, got {other:?}"),
    }

    // The token from a file this time.
    let token_file = admin.dir.path().join("token");
    std::fs::write(&token_file, format!("{APPROVER}\n")).unwrap();
    let token_path = token_file.to_str().unwrap();
    let output = admin
        .run(
            None,
            &[
                "deny",
                &second,
                "--reason",
                "not now",
                "--token-file",
                token_path,
            ],
        )
        .await;
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    assert_eq!(stdout(&output), format!("{second} denied by alice\n"));
    assert!(matches!(outcome(second_task).await, Outcome::Denied(_)));

    let output = admin
        .run(Some(VIEWER), &["list", "--status", "denied"])
        .await;
    let table = stdout(&output);
    assert!(
        table.contains(&second) && !table.contains(&first),
        "{table}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_exit_1_and_usage_errors_exit_2() {
    let admin = start().await;
    let (id, _task) = admin.hold("send_email").await;

    let output = admin.run(Some(VIEWER), &["approve", &id]).await;
    assert_eq!(code(&output), 1);
    assert!(stderr(&output).contains("forbidden"), "{}", stderr(&output));

    let output = admin.run(Some("not-a-token"), &["list"]).await;
    assert_eq!(code(&output), 1);
    assert!(
        stderr(&output).contains("unauthorized"),
        "{}",
        stderr(&output)
    );

    let output = admin.run(Some(VIEWER), &["show", "apr_missing"]).await;
    assert_eq!(code(&output), 1);
    assert!(stderr(&output).contains("not_found"));

    let output = admin
        .run(Some(APPROVER), &["deny", &id, "--reason", "no"])
        .await;
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    let output = admin.run(Some(APPROVER), &["approve", &id]).await;
    assert_eq!(code(&output), 1);
    assert!(
        stderr(&output).contains("already denied"),
        "{}",
        stderr(&output)
    );
    assert!(stderr(&output).contains("(already_resolved, HTTP 409)"));

    let output = admin.run(Some(APPROVER), &["deny", &id]).await;
    assert_eq!(code(&output), 2, "deny needs --reason");
    let output = admin.run(None, &["list"]).await;
    assert_eq!(code(&output), 2, "no token");
    assert!(stderr(&output).contains("PORTCULLIS_ADMIN_TOKEN"));

    let closed: SocketAddr = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let output = run_cli(&format!("http://{closed}"), Some(VIEWER), &["list"]).await;
    assert_eq!(code(&output), 2, "connection refused");
}
