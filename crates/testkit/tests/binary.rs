//! The `portcullis-mock-upstream` binary: address line, serving, clean exit on SIGTERM.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use serde_json::Value;

#[cfg(unix)] // sends SIGTERM with `kill`
#[tokio::test]
async fn prints_its_address_serves_and_stops_on_sigterm() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_portcullis-mock-upstream"))
        .args([
            "--listen",
            "127.0.0.1:0",
            "--stream-chunks",
            "3",
            "--models",
            "x,y,z",
            "--threads",
            "1",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let ready: Value = serde_json::from_str(&line).unwrap();
    let addr: std::net::SocketAddr = ready["addr"].as_str().unwrap().parse().unwrap();
    assert_eq!(line.trim_end(), format!("{{\"addr\":\"{addr}\"}}"));

    let models = common::get(addr, "/v1/models").await.json();
    assert_eq!(models["data"].as_array().unwrap().len(), 3);
    let body = serde_json::json!({"model": "m", "messages": [], "stream": true});
    let events = common::post(addr, "/v1/chat/completions", body)
        .await
        .json_events();
    assert_eq!(events.len(), 3 + 2);

    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    assert!(child.wait().unwrap().success());
}
