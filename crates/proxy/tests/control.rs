//! The admin listener over real sockets: the approvals REST API and the web console, against
//! an `ApprovalHub` over a temporary SQLite store with calls really held (`hold` + `wait`).

#![allow(clippy::unwrap_used)]

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use common::{Reply, TestClient, client, send};
use http::{Method, StatusCode};
use portcullis_config::{
    Admin, AdminRole, AdminToken, AdminTokenSource, Approvals, CredentialSource,
};
use portcullis_proxy::approvals::Outcome;
use portcullis_proxy::{AdminServer, ApprovalHub, ControlPlane};
use portcullis_store::{NewApproval, Store, StoreConfig};
use portcullis_telemetry::Metrics;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

const VIEWER: &str = "viewer-token-0123456789";
const APPROVER: &str = "approver-token-0123456789";
const XSS: &str = "<script>alert(1)</script>\"'&";
const XSS_ESCAPED: &str = "&lt;script&gt;alert(1)&lt;/script&gt;&quot;&#39;&amp;";

struct TestAdmin {
    addr: SocketAddr,
    hub: Arc<ApprovalHub>,
    metrics: Arc<Metrics>,
    client: TestClient,
    _dir: tempfile::TempDir,
    _stop: oneshot::Sender<()>,
    _task: JoinHandle<()>,
}

impl TestAdmin {
    /// An admin listener with a viewer (`vera`, by digest) and an approver (`alice`, from a
    /// token file), console on.
    async fn start() -> Self {
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
        let token_file = dir.path().join("approver.token");
        std::fs::write(&token_file, format!("{APPROVER}\n")).unwrap();
        let admin = Admin {
            listen: None,
            tokens: vec![
                AdminToken {
                    name: "vera".into(),
                    role: AdminRole::Viewer,
                    source: AdminTokenSource::Sha256(Sha256::digest(VIEWER).into()),
                },
                AdminToken {
                    name: "alice".into(),
                    role: AdminRole::Approver,
                    source: AdminTokenSource::Secret(CredentialSource::File(token_file)),
                },
            ],
            console: true,
            session_ttl: Duration::from_secs(3600),
        };
        let plane = ControlPlane::new(&admin, hub.clone(), metrics.clone()).unwrap();
        let server = AdminServer::bind("127.0.0.1:0".parse().unwrap(), plane)
            .await
            .unwrap();
        let addr = server.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(server.run(async {
            let _ = stopped.await;
        }));
        Self {
            addr,
            hub,
            metrics,
            client: client(),
            _dir: dir,
            _stop: stop,
            _task: task,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Holds a call for approval in a task waiting on its outcome.
    async fn hold(
        &self,
        tool: &str,
        principal: &str,
        arguments: Value,
    ) -> (String, JoinHandle<Outcome>) {
        let held = self
            .hub
            .hold(NewApproval {
                id: String::new(),
                created_at_ms: 0,
                expires_at_ms: 0,
                request_id: "req-1".into(),
                principal: principal.into(),
                tenant: Some("acme".into()),
                route: "mcp".into(),
                server: "files".into(),
                tool: tool.into(),
                arguments,
                findings: json!([{"category": "secret", "score": 0.9}]),
                reasons: vec!["send_email needs approval".into()],
                instance: String::new(),
            })
            .await
            .unwrap();
        let id = held.approval.request.id.clone();
        let hub = self.hub.clone();
        (id, tokio::spawn(async move { hub.wait(held).await }))
    }

    async fn api(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<&str>,
    ) -> Reply {
        let bearer = token.map(|t| format!("Bearer {t}"));
        let mut headers = vec![];
        if let Some(bearer) = &bearer {
            headers.push(("authorization", bearer.as_str()));
        }
        if body.is_some() {
            headers.push(("content-type", "application/json"));
        }
        send(
            &self.client,
            method,
            &self.url(path),
            &headers,
            body.unwrap_or("").to_owned(),
        )
        .await
    }

    async fn get_page(&self, path: &str, cookie: Option<&str>) -> Reply {
        let headers: Vec<(&str, &str)> = cookie.map(|c| vec![("cookie", c)]).unwrap_or_default();
        send(&self.client, Method::GET, &self.url(path), &headers, "").await
    }

    async fn post_form(
        &self,
        path: &str,
        cookie: Option<&str>,
        origin: Option<&str>,
        form: &str,
    ) -> Reply {
        let mut headers = vec![("content-type", "application/x-www-form-urlencoded")];
        if let Some(cookie) = cookie {
            headers.push(("cookie", cookie));
        }
        if let Some(origin) = origin {
            headers.push(("origin", origin));
        }
        send(
            &self.client,
            Method::POST,
            &self.url(path),
            &headers,
            form.to_owned(),
        )
        .await
    }

    /// Signs in to the console; the `Cookie` header value.
    async fn sign_in(&self, token: &str) -> String {
        let reply = self
            .post_form("/console/login", None, None, &format!("token={token}"))
            .await;
        assert_eq!(reply.status, StatusCode::SEE_OTHER, "{}", reply.text());
        let cookie = header(&reply, "set-cookie");
        cookie.split(';').next().unwrap().to_owned()
    }
}

fn header(reply: &Reply, name: &str) -> String {
    reply
        .headers
        .get(name)
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default()
}

fn error_code(reply: &Reply) -> String {
    let value = reply.json();
    let error = &value["error"];
    for key in ["message", "type", "code"] {
        assert!(
            error[key].as_str().is_some_and(|s| !s.is_empty()),
            "{value}"
        );
    }
    error["code"].as_str().unwrap().to_owned()
}

/// The CSRF token in a console page's forms.
fn csrf(page: &str) -> String {
    let marker = "name=\"csrf\" value=\"";
    let start = page.find(marker).unwrap() + marker.len();
    page[start..].split('"').next().unwrap().to_owned()
}

async fn outcome(task: JoinHandle<Outcome>) -> Outcome {
    tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .unwrap()
        .unwrap()
}

#[tokio::test]
async fn the_api_needs_a_token_and_the_right_role() {
    let admin = TestAdmin::start().await;
    let (id, _task) = admin
        .hold("send_email", "agent-1", json!({"to": "a@b"}))
        .await;

    let reply = admin
        .api(Method::GET, "/admin/v1/approvals", None, None)
        .await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert_eq!(error_code(&reply), "unauthorized");
    assert_eq!(reply.json()["error"]["type"], "unauthorized");
    assert_eq!(header(&reply, "www-authenticate"), "Bearer");
    let reply = admin
        .api(
            Method::GET,
            "/admin/v1/approvals",
            Some("wrong-token"),
            None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);

    let reply = admin
        .api(Method::GET, "/admin/v1/whoami", Some(VIEWER), None)
        .await;
    assert_eq!(reply.json(), json!({"name": "vera", "role": "viewer"}));

    let reply = admin
        .api(
            Method::GET,
            "/admin/v1/approvals?status=pending",
            Some(VIEWER),
            None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    let data = reply.json()["data"].as_array().unwrap().clone();
    assert_eq!(data.len(), 1);
    assert_eq!(data[0]["id"], id.as_str());
    assert_eq!(data[0]["status"], "pending");
    assert_eq!(data[0]["arguments"], json!({"to": "a@b"}));
    assert_eq!(data[0]["decided_by"], Value::Null);

    let reply = admin
        .api(
            Method::GET,
            &format!("/admin/v1/approvals/{id}"),
            Some(VIEWER),
            None,
        )
        .await;
    assert_eq!(reply.json()["tool"], "send_email");

    let reply = admin
        .api(
            Method::POST,
            &format!("/admin/v1/approvals/{id}/approve"),
            Some(VIEWER),
            None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
    assert_eq!(error_code(&reply), "forbidden");

    let text = admin.metrics.encode();
    assert!(
        text.contains(r#"portcullis_admin_requests_total{surface="api",status="401"} 2"#),
        "{text}"
    );
}

#[tokio::test]
async fn an_approver_approves_and_the_held_call_proceeds() {
    let admin = TestAdmin::start().await;
    let (id, task) = admin.hold("send_email", "agent-1", json!({})).await;

    let path = format!("/admin/v1/approvals/{id}/approve");
    let reply = admin
        .api(
            Method::POST,
            &path,
            Some(APPROVER),
            Some(r#"{"reason": "looks fine"}"#),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    let body = reply.json();
    assert_eq!(body["status"], "approved");
    assert_eq!(body["decided_by"], "alice");
    assert_eq!(body["decision_reason"], "looks fine");
    assert!(body["decided_at_ms"].as_i64().unwrap() > 0);

    match outcome(task).await {
        Outcome::Approved(approval) => {
            assert_eq!(approval.decided_by.as_deref(), Some("alice"));
        }
        other => panic!("expected approved, got {other:?}"),
    }

    let reply = admin.api(Method::POST, &path, Some(APPROVER), None).await;
    assert_eq!(reply.status, StatusCode::CONFLICT);
    assert_eq!(error_code(&reply), "already_resolved");
    assert_eq!(reply.json()["error"]["status"], "approved");

    let reply = admin
        .api(
            Method::GET,
            "/admin/v1/approvals?status=approved&limit=5",
            Some(VIEWER),
            None,
        )
        .await;
    assert_eq!(reply.json()["data"][0]["id"], id.as_str());
}

#[tokio::test]
async fn denials_need_a_reason_and_bad_requests_are_refused() {
    let admin = TestAdmin::start().await;
    let (id, task) = admin.hold("delete_repo", "agent-2", json!({})).await;
    let deny = format!("/admin/v1/approvals/{id}/deny");

    let reply = admin.api(Method::POST, &deny, Some(APPROVER), None).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(error_code(&reply), "invalid_request");
    let reply = admin
        .api(
            Method::POST,
            &deny,
            Some(APPROVER),
            Some(r#"{"reason": "  "}"#),
        )
        .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    let reply = admin
        .api(Method::POST, &deny, Some(APPROVER), Some(r#"{"reason": "#))
        .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert!(
        reply.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("malformed JSON")
    );
    let too_long = json!({"reason": "x".repeat(1001)}).to_string();
    let reply = admin
        .api(Method::POST, &deny, Some(APPROVER), Some(&too_long))
        .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    let reply = send(
        &admin.client,
        Method::POST,
        &admin.url(&deny),
        &[
            ("authorization", &format!("Bearer {APPROVER}")),
            ("content-type", "text/plain"),
        ],
        "reason=no",
    )
    .await;
    assert_eq!(reply.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(error_code(&reply), "unsupported_media_type");

    let reply = admin
        .api(
            Method::POST,
            &deny,
            Some(APPROVER),
            Some(r#"{"reason": "not today"}"#),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    assert_eq!(reply.json()["status"], "denied");
    assert!(
        matches!(outcome(task).await, Outcome::Denied(a) if a.decision_reason.as_deref() == Some("not today"))
    );

    let reply = admin
        .api(
            Method::POST,
            &deny,
            Some(APPROVER),
            Some(r#"{"reason": "again"}"#),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CONFLICT);
    assert_eq!(reply.json()["error"]["status"], "denied");

    for (method, path) in [
        (Method::GET, "/admin/v1/approvals/apr_nope"),
        (Method::POST, "/admin/v1/approvals/apr_nope/approve"),
        (Method::GET, "/admin/v1/nothing"),
        (Method::GET, "/elsewhere"),
    ] {
        let reply = admin.api(method, path, Some(APPROVER), None).await;
        assert_eq!(reply.status, StatusCode::NOT_FOUND, "{path}");
        assert_eq!(error_code(&reply), "not_found");
    }
    let reply = admin.api(Method::DELETE, &deny, Some(APPROVER), None).await;
    assert_eq!(reply.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(header(&reply, "allow"), "POST");
    let reply = admin
        .api(
            Method::GET,
            "/admin/v1/approvals?status=maybe",
            Some(VIEWER),
            None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn the_console_signs_in_lists_and_approves_with_csrf() {
    let admin = TestAdmin::start().await;
    let (id, task) = admin
        .hold("send_email", "agent-1", json!({"to": "a@b"}))
        .await;

    let reply = admin.get_page("/console", None).await;
    assert_eq!(reply.status, StatusCode::SEE_OTHER);
    assert_eq!(header(&reply, "location"), "/console/login");
    let reply = admin.get_page("/console/login", None).await;
    assert!(reply.text().contains("name=\"token\""));

    let reply = admin
        .post_form("/console/login", None, None, "token=wrong-token")
        .await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert!(reply.headers.get("set-cookie").is_none());

    let reply = admin
        .post_form("/console/login", None, None, &format!("token={APPROVER}"))
        .await;
    assert_eq!(reply.status, StatusCode::SEE_OTHER);
    assert_eq!(header(&reply, "location"), "/console");
    let set_cookie = header(&reply, "set-cookie");
    assert!(
        set_cookie.starts_with("portcullis_console="),
        "{set_cookie}"
    );
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/console"] {
        assert!(set_cookie.contains(attribute), "{set_cookie}");
    }
    assert!(!set_cookie.contains("Secure"), "{set_cookie}");
    let cookie = set_cookie.split(';').next().unwrap().to_owned();

    let reply = admin.get_page("/console", Some(&cookie)).await;
    assert_eq!(reply.status, StatusCode::OK);
    for (name, value) in [
        (
            "content-security-policy",
            "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
        ("x-content-type-options", "nosniff"),
        ("referrer-policy", "same-origin"),
        ("cache-control", "no-store"),
        ("x-frame-options", "DENY"),
    ] {
        assert_eq!(header(&reply, name), value, "{name}");
    }
    let page = reply.text();
    assert!(
        page.contains(&format!("<tr class=\"approval\" data-id=\"{id}\">")),
        "{page}"
    );
    assert!(!page.contains("<script"), "no scripts at all");

    let page_path = format!("/console/approvals/{id}");
    let page = admin.get_page(&page_path, Some(&cookie)).await.text();
    assert!(page.contains("id=\"approve\"") && page.contains("id=\"deny\""));
    assert!(page.contains("name=\"reason\""));
    let token = csrf(&page);
    assert_eq!(token.len(), 64);

    let approve = format!("{page_path}/approve");
    let reply = admin
        .post_form(&approve, Some(&cookie), None, "reason=ok")
        .await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN, "no csrf");
    let reply = admin
        .post_form(
            &approve,
            Some(&cookie),
            None,
            &format!("csrf={}&reason=ok", "0".repeat(64)),
        )
        .await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN, "wrong csrf");
    let form = format!("csrf={token}&reason=ok");
    let reply = admin
        .post_form(&approve, Some(&cookie), Some("http://evil.example"), &form)
        .await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN, "foreign origin");
    let reply = admin.post_form(&approve, None, None, &form).await;
    assert_eq!(reply.status, StatusCode::SEE_OTHER, "no session");
    assert_eq!(header(&reply, "location"), "/console/login");

    let origin = format!("http://{}", admin.addr);
    let reply = admin
        .post_form(&approve, Some(&cookie), Some(&origin), &form)
        .await;
    assert_eq!(reply.status, StatusCode::SEE_OTHER, "{}", reply.text());
    assert_eq!(
        header(&reply, "location"),
        format!("{page_path}?done=approved")
    );
    match outcome(task).await {
        Outcome::Approved(approval) => {
            assert_eq!(approval.decided_by.as_deref(), Some("alice"));
            assert_eq!(approval.decision_reason.as_deref(), Some("ok"));
        }
        other => panic!("expected approved, got {other:?}"),
    }
    let page = admin
        .get_page(&format!("{page_path}?done=approved"), Some(&cookie))
        .await
        .text();
    assert!(page.contains("Approved: the call proceeds."));
    assert!(!page.contains("id=\"approve\""), "no forms once resolved");
    let page = admin
        .get_page(&format!("{page_path}?done=%3Cb%3Ehi"), Some(&cookie))
        .await
        .text();
    assert!(!page.contains("<b>hi") && !page.contains("&lt;b&gt;hi"));

    let reply = admin.post_form(&approve, Some(&cookie), None, &form).await;
    assert_eq!(reply.status, StatusCode::CONFLICT);
    assert!(reply.text().contains("already approved"));

    let dashboard = admin.get_page("/console", Some(&cookie)).await.text();
    assert!(dashboard.contains(&format!("<tr class=\"decision\" data-id=\"{id}\">")));

    let reply = admin
        .post_form(
            "/console/logout",
            Some(&cookie),
            None,
            &format!("csrf={token}"),
        )
        .await;
    assert_eq!(reply.status, StatusCode::SEE_OTHER);
    assert!(header(&reply, "set-cookie").contains("Max-Age=0"));
    let reply = admin.get_page("/console", Some(&cookie)).await;
    assert_eq!(reply.status, StatusCode::SEE_OTHER, "signed out");
}

#[tokio::test]
async fn console_denials_need_a_reason_and_viewers_cannot_decide() {
    let admin = TestAdmin::start().await;
    let (id, task) = admin.hold("delete_repo", "agent-2", json!({})).await;
    let page_path = format!("/console/approvals/{id}");

    let viewer = admin.sign_in(VIEWER).await;
    let page = admin.get_page(&page_path, Some(&viewer)).await.text();
    assert!(
        !page.contains("id=\"approve\""),
        "a viewer sees no decision forms"
    );
    let reply = admin
        .post_form(
            &format!("{page_path}/approve"),
            Some(&viewer),
            None,
            &format!("csrf={}", csrf(&page)),
        )
        .await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);

    let approver = admin.sign_in(APPROVER).await;
    let token = csrf(&admin.get_page(&page_path, Some(&approver)).await.text());
    assert_ne!(token, csrf(&page), "each session has its own csrf token");
    let deny = format!("{page_path}/deny");
    let reply = admin
        .post_form(
            &deny,
            Some(&approver),
            None,
            &format!("csrf={token}&reason=+"),
        )
        .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert!(reply.text().contains("A reason is required to deny."));
    let reply = admin
        .post_form(
            &deny,
            Some(&approver),
            None,
            &format!("csrf={token}&reason=too+risky"),
        )
        .await;
    assert_eq!(reply.status, StatusCode::SEE_OTHER);
    assert!(matches!(outcome(task).await, Outcome::Denied(_)));
    let reply = admin
        .post_form(
            &deny,
            Some(&approver),
            None,
            &format!("csrf={token}&reason=again"),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CONFLICT);

    let reply = admin
        .get_page("/console/approvals/apr_nope", Some(&approver))
        .await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);

    let reply = send(
        &admin.client,
        Method::POST,
        &admin.url("/console/login"),
        &[
            ("content-type", "application/x-www-form-urlencoded"),
            ("x-forwarded-proto", "https"),
        ],
        format!("token={APPROVER}"),
    )
    .await;
    assert!(header(&reply, "set-cookie").ends_with("; Secure"));
}

#[tokio::test]
async fn the_console_escapes_everything_it_shows() {
    let admin = TestAdmin::start().await;
    let (id, _task) = admin.hold(XSS, XSS, json!({ "body": XSS, XSS: 1 })).await;
    let cookie = admin.sign_in(APPROVER).await;

    let dashboard = admin.get_page("/console", Some(&cookie)).await.text();
    assert!(
        !dashboard.contains("<script>alert(1)</script>"),
        "{dashboard}"
    );
    assert!(!dashboard.contains("\"'&"));
    assert!(dashboard.contains(XSS_ESCAPED), "{dashboard}");

    let page = admin
        .get_page(&format!("/console/approvals/{id}"), Some(&cookie))
        .await
        .text();
    assert!(!page.contains("<script>alert(1)</script>"), "{page}");
    assert!(page.contains(XSS_ESCAPED), "tool and principal");
    // The arguments, as pretty JSON (its own escaping of `"` then HTML's).
    assert!(
        page.contains(
            "&quot;body&quot;: &quot;&lt;script&gt;alert(1)&lt;/script&gt;\\&quot;&#39;&amp;&quot;"
        ),
        "{page}"
    );
}
