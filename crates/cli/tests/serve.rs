//! End-to-end tests of `portcullis serve`: the real binary on an ephemeral port, against the
//! testkit mock model in this process. Readiness is awaited on `/readyz`, never on a sleep.

// Harness functions outside `#[test]` unwrap like the tests do.
#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use portcullis_testkit::MockUpstream;
use serde_json::{Value, json};

struct Portcullis {
    child: Child,
    addr: String,
    logs: Arc<Mutex<Vec<String>>>,
    /// The working directory, where the embedded store file (`portcullis.db`) goes.
    _dir: tempfile::TempDir,
}

impl Portcullis {
    fn start(args: &[&str]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_portcullis"))
            .args(["--log-format", "json", "serve"])
            .args(args)
            .current_dir(dir.path())
            .stderr(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        let logs = Arc::new(Mutex::new(Vec::new()));
        let stderr = child.stderr.take().unwrap();
        let sink = logs.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        let mut gateway = Self {
            child,
            addr: String::new(),
            logs,
            _dir: dir,
        };
        gateway.addr = gateway.wait_for_log("listening")["addr"]
            .as_str()
            .unwrap()
            .to_string();
        gateway
    }

    /// Waits (bounded) for a JSON log line whose message is `message`.
    fn wait_for_log(&mut self, message: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(line) = self.find_log(message) {
                return line;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "portcullis exited with {status}; logs: {:?}",
                    self.logs.lock().unwrap()
                );
            }
            assert!(
                Instant::now() < deadline,
                "no `{message}` log line: {:?}",
                self.logs.lock().unwrap()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn find_log(&self, message: &str) -> Option<Value> {
        self.logs
            .lock()
            .unwrap()
            .iter()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .find(|v| v["message"] == message)
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args([&format!("-{name}"), &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    fn wait_exit(&mut self, within: Duration) -> std::process::ExitStatus {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "portcullis did not exit within {within:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Portcullis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A blocking HTTP/1.1 request; returns status and body.
fn http(method: &str, url: &str, body: Option<&Value>) -> (u16, String) {
    let url = url.strip_prefix("http://").unwrap();
    let (host, path) = url.split_once('/').unwrap();
    let mut stream = std::net::TcpStream::connect(host).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let payload = body.map(Value::to_string).unwrap_or_default();
    let request = format!(
        "{method} /{path} HTTP/1.1\r\nhost: {host}\r\ncontent-type: application/json\r\nauthorization: Bearer client-secret-key\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{payload}",
        payload.len()
    );
    std::io::Write::write_all(&mut stream, request.as_bytes()).unwrap();
    let mut response = String::new();
    std::io::Read::read_to_string(&mut stream, &mut response).unwrap();
    let status = response[9..12].parse().unwrap();
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

fn chat(model: &str) -> Value {
    json!({"model": model, "messages": [{"role": "user", "content": "the secret prompt text"}]})
}

fn config(mock: &MockUpstream) -> String {
    format!(
        "listen: 127.0.0.1:0\nupstreams:\n  - name: mock\n    url: {}\n    models: [\"mock-*\"]\n",
        mock.base_url()
    )
}

fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn quick_mode_proxies_without_a_config_file() {
    let mock = MockUpstream::start().await.unwrap();
    let gateway = Portcullis::start(&["--listen", "127.0.0.1:0", "--upstream", &mock.base_url()]);
    let url = gateway.url("/v1/chat/completions");
    let (status, body) =
        tokio::task::spawn_blocking(move || http("POST", &url, Some(&chat("any-model"))))
            .await
            .unwrap();
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("Mock reply"));
}

#[tokio::test(flavor = "multi_thread")]
async fn logs_are_json_with_request_ids_and_without_prompts_or_keys() {
    let mock = MockUpstream::start().await.unwrap();
    let mut gateway =
        Portcullis::start(&["--listen", "127.0.0.1:0", "--upstream", &mock.base_url()]);
    let url = gateway.url("/v1/chat/completions");
    tokio::task::spawn_blocking(move || http("POST", &url, Some(&chat("mock-gpt"))))
        .await
        .unwrap();
    let line = gateway.wait_for_log("exchange");
    assert_eq!(line["status"], 200);
    assert_eq!(line["route"], "chat_completions");
    assert!(line["request_id"].as_str().is_some_and(|id| !id.is_empty()));
    let logs = gateway.logs.lock().unwrap().join("\n");
    assert!(!logs.contains("secret prompt"), "prompt text in logs");
    assert!(!logs.contains("client-secret-key"), "client key in logs");
    for line in gateway.logs.lock().unwrap().iter() {
        serde_json::from_str::<Value>(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn sighup_and_file_changes_reload_and_invalid_configs_keep_the_old_one() {
    let first = MockUpstream::start().await.unwrap();
    let second = MockUpstream::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("portcullis.yaml");
    std::fs::write(&path, config(&first)).unwrap();
    let gateway = Portcullis::start(&[
        "--config",
        path.to_str().unwrap(),
        "--watch-interval-ms",
        "100",
    ]);
    let chat_url = gateway.url("/v1/chat/completions");
    let metrics_url = gateway.url("/metrics");
    let send = move || http("POST", &chat_url, Some(&chat("mock-gpt"))).0;
    let metric = move |needle: &str| {
        http("GET", &metrics_url, None)
            .1
            .lines()
            .any(|l| l.starts_with(needle))
    };

    let s = send.clone();
    assert_eq!(tokio::task::spawn_blocking(s).await.unwrap(), 200);
    assert_eq!((first.requests().len(), second.requests().len()), (1, 0));

    // A file change is picked up by the watcher.
    std::fs::write(&path, config(&second)).unwrap();
    let m = metric.clone();
    tokio::task::spawn_blocking(move || {
        wait_until("file reload", || {
            m("portcullis_config_reload_total{result=\"applied\"} 1")
        })
    })
    .await
    .unwrap();
    let s = send.clone();
    assert_eq!(tokio::task::spawn_blocking(s).await.unwrap(), 200);
    assert_eq!((first.requests().len(), second.requests().len()), (1, 1));

    // An invalid file is refused, logged with its path, counted; traffic keeps flowing.
    std::fs::write(&path, "listen: 127.0.0.1:0\nupstreams:\n  - name: mock\n    url: ftp://nowhere\n    models: [x]\n").unwrap();
    let m = metric.clone();
    tokio::task::spawn_blocking(move || {
        wait_until("reload error", || {
            m("portcullis_config_reload_total{result=\"error\"} 1")
        })
    })
    .await
    .unwrap();
    let s = send.clone();
    assert_eq!(tokio::task::spawn_blocking(s).await.unwrap(), 200);
    assert_eq!(second.requests().len(), 2, "still the last good config");
    let failure = gateway
        .find_log("configuration reload failed; keeping the previous configuration")
        .unwrap();
    assert!(
        failure["error"]
            .as_str()
            .unwrap()
            .contains("upstreams[0].url"),
        "{failure}"
    );

    // SIGHUP reloads explicitly.
    std::fs::write(&path, config(&first)).unwrap();
    gateway.signal("HUP");
    let m = metric.clone();
    tokio::task::spawn_blocking(move || {
        wait_until("sighup reload", || {
            m("portcullis_config_reload_total{result=\"applied\"} 2")
        })
    })
    .await
    .unwrap();
    let s = send.clone();
    assert_eq!(tokio::task::spawn_blocking(s).await.unwrap(), 200);
    assert_eq!(first.requests().len(), 2);
}

/// `store`, `audit`, `approvals` and `admin` are opened once at start: a reload that changes one
/// is refused (logged with the section, counted) and the running configuration stays.
#[tokio::test(flavor = "multi_thread")]
async fn a_reload_changing_a_start_only_section_is_refused() {
    let mock = MockUpstream::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("portcullis.yaml");
    std::fs::write(&path, config(&mock)).unwrap();
    let mut gateway = Portcullis::start(&["--config", path.to_str().unwrap()]);
    for (section, yaml) in [
        ("approvals", "approvals:\n  timeout_ms: 1000\n"),
        ("audit", "audit:\n  content: hash\n"),
        ("store", "store:\n  path: other.db\n"),
    ] {
        std::fs::write(&path, format!("{}{yaml}", config(&mock))).unwrap();
        gateway.signal("HUP");
        let refused = gateway.wait_for_log(
            "configuration reload refused: this section cannot change while running; restart to apply",
        );
        assert_eq!(refused["section"], section, "{refused}");
        gateway.logs.lock().unwrap().clear();
    }
    let url = gateway.url("/v1/chat/completions");
    let status = tokio::task::spawn_blocking(move || http("POST", &url, Some(&chat("mock-gpt"))).0)
        .await
        .unwrap();
    assert_eq!(status, 200);
    let metrics_url = gateway.url("/metrics");
    let metrics = tokio::task::spawn_blocking(move || http("GET", &metrics_url, None).1)
        .await
        .unwrap();
    assert!(
        metrics.contains("portcullis_config_reload_total{result=\"error\"} 3"),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_drains_in_flight_requests_then_exits() {
    let mock = MockUpstream::start().await.unwrap();
    let mut gateway =
        Portcullis::start(&["--listen", "127.0.0.1:0", "--upstream", &mock.base_url()]);
    let url = gateway.url("/v1/chat/completions");
    let mut body = chat("mock-fault-slow-first-byte");
    body["stream"] = json!(true);
    let in_flight = tokio::task::spawn_blocking(move || http("POST", &url, Some(&body)));
    tokio::time::sleep(Duration::from_millis(500)).await;
    gateway.signal("TERM");
    let (status, body) = in_flight.await.unwrap();
    assert_eq!(status, 200);
    assert!(
        body.contains("[DONE]"),
        "the in-flight stream finished: {body}"
    );
    assert!(gateway.wait_exit(Duration::from_secs(10)).success());
    assert!(gateway.find_log("all connections drained").is_some());
}

#[test]
fn an_invalid_config_at_startup_fails_with_every_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.yaml");
    std::fs::write(&path, "upstreams:\n  - name: a\n    url: nope\n  - name: a\n    url: http://x/v1\n    models: [m]\n").unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .args(["serve", "--config", path.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    for expected in [
        "upstreams[0].url",
        "upstreams[0].models",
        "upstreams[1].name",
    ] {
        assert!(stderr.contains(expected), "missing {expected} in: {stderr}");
    }
}

#[test]
fn demo_runs_its_script_successfully() {
    let output = Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .args(["--log-level", "error", "demo"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(!stdout.contains("BAD"), "{stdout}");
    assert!(
        stdout.contains("then error event upstream_reset"),
        "{stdout}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn policy_bundle_edits_reload_and_an_invalid_bundle_keeps_the_old_policy() {
    let mock = MockUpstream::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let bundle = dir.path().join("policy");
    std::fs::create_dir(&bundle).unwrap();
    let allow = "package portcullis\n\ndecision := {\"action\": \"allow\"}\n";
    let deny = "package portcullis\n\ndecision := {\"action\": \"deny\", \"code\": \"closed_for_lunch\", \"reasons\": [\"closed\"]}\n";
    std::fs::write(bundle.join("policy.rego"), allow).unwrap();
    let path = dir.path().join("portcullis.yaml");
    let yaml = format!("{}policy:\n  bundle: {}\n", config(&mock), bundle.display());
    std::fs::write(&path, yaml).unwrap();
    let gateway = Portcullis::start(&[
        "--config",
        path.to_str().unwrap(),
        "--watch-interval-ms",
        "100",
    ]);
    let chat_url = gateway.url("/v1/chat/completions");
    let metrics_url = gateway.url("/metrics");
    let send = move || http("POST", &chat_url, Some(&chat("mock-gpt")));
    let metric = move |needle: &str| {
        http("GET", &metrics_url, None)
            .1
            .lines()
            .any(|l| l.starts_with(needle))
    };
    let s = send.clone();
    assert_eq!(tokio::task::spawn_blocking(s).await.unwrap().0, 200);

    // Editing a bundle file reloads: the new policy denies.
    std::fs::write(bundle.join("policy.rego"), deny).unwrap();
    let m = metric.clone();
    tokio::task::spawn_blocking(move || {
        wait_until("bundle reload", || {
            m("portcullis_config_reload_total{result=\"applied\"} 1")
        })
    })
    .await
    .unwrap();
    let s = send.clone();
    let (status, body) = tokio::task::spawn_blocking(s).await.unwrap();
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("closed_for_lunch"), "{body}");

    // A bundle that does not compile is refused; the deny policy stays.
    std::fs::write(
        bundle.join("policy.rego"),
        "package portcullis\n\ndecision := {\n",
    )
    .unwrap();
    let m = metric.clone();
    tokio::task::spawn_blocking(move || {
        wait_until("reload error", || {
            m("portcullis_config_reload_total{result=\"error\"} 1")
        })
    })
    .await
    .unwrap();
    let s = send.clone();
    let (status, body) = tokio::task::spawn_blocking(s).await.unwrap();
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("closed_for_lunch"), "{body}");
    assert!(
        gateway
            .find_log("configuration reload failed; keeping the previous configuration")
            .is_some()
    );
}
