//! `portcullis mcp stdio -- CMD ARGS...`: the guard between a desktop agent and a local stdio
//! MCP server. The agent talks to Portcullis on stdin/stdout exactly as it would to the
//! server; Portcullis starts the server as its child and applies the same guard as the HTTP
//! route (`respond`). Messages the server starts (notifications, sampling requests) and the
//! agent's answers to them pass through unchanged. Logs go to stderr; stdout carries only
//! protocol.

use std::sync::Arc;

use portcullis_config::{Config, McpServer, McpTransport};
use portcullis_mcp::{ErrorCode, Message, error_response};
use portcullis_telemetry::Metrics;
use serde_json::Value;
use tokio::io::{AsyncWriteExt, BufReader};
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use super::upstream::{read_bounded_line, skip_line};
use super::{McpContext, McpSession, Upstream, respond};
use crate::guard::{GuardError, GuardRuntime};

/// Lines queued for stdout; a full queue slows the reader (back-pressure), never drops.
const OUTPUT_QUEUE: usize = 256;

/// Why the stdio proxy could not run.
#[derive(Debug, thiserror::Error)]
pub enum McpStdioError {
    /// The detectors or the policy did not load.
    #[error(transparent)]
    Guard(#[from] GuardError),
    /// The server did not start.
    #[error("{0}")]
    Upstream(String),
    /// Reading stdin or writing stdout failed.
    #[error("stdio: {0}")]
    Io(#[from] std::io::Error),
}

/// Runs the stdio proxy until the client closes stdin. `name` is the server's name for
/// policy; a server of that name in `config.mcp.servers` lends its tool labels.
pub async fn run_mcp_stdio(
    config: &Config,
    name: &str,
    program: &str,
    args: &[String],
    metrics: Arc<Metrics>,
) -> Result<(), McpStdioError> {
    let runtime = GuardRuntime::build(config)?;
    let settings = &config.mcp;
    let transport = McpTransport::Stdio {
        program: program.to_owned(),
        args: args.to_vec(),
        env: Default::default(),
    };
    let server = match settings.server(name) {
        Some(configured) => {
            let mut server = configured.clone();
            server.transport = transport.clone();
            server
        }
        None => McpServer::new(name, transport),
    };
    let (to_client, mut outgoing) = mpsc::channel::<Value>(OUTPUT_QUEUE);
    let mut command = tokio::process::Command::new(program);
    // The user starts this wrapper for their own server: it inherits the environment.
    command.args(args);
    let upstream = Upstream::spawn_command(
        command,
        settings.max_message_bytes as usize,
        Some(to_client.clone()),
    )
    .map_err(|e| McpStdioError::Upstream(e.to_string()))?;
    // The local user who started the wrapper: no credential travels over stdio.
    let principal = portcullis_core::Principal::anonymous_shared();
    let session = Arc::new(McpSession::new("stdio".into(), server, upstream, principal));
    let writer = tokio::spawn(async move {
        let mut stdout = tokio::io::stdout();
        while let Some(message) = outgoing.recv().await {
            let mut line = message.to_string().into_bytes();
            line.push(b'\n');
            if stdout.write_all(&line).await.is_err() || stdout.flush().await.is_err() {
                break;
            }
        }
    });
    let runtime = Arc::new(runtime);
    let route = config.guard.route("mcp");
    let pins = Arc::new(std::sync::Mutex::new(portcullis_mcp::Pins::default()));
    let mut tasks = JoinSet::new();
    let mut stdin = BufReader::new(tokio::io::stdin());
    let limit = settings.max_message_bytes as usize;
    let timeout = settings.request_timeout;
    let mut line = Vec::new();
    loop {
        line.clear();
        match read_bounded_line(&mut stdin, &mut line, limit).await {
            Ok(0) => break,
            Ok(_) => {}
            Err(error) if error.kind() == std::io::ErrorKind::InvalidData => {
                skip_line(&mut stdin).await?;
                let _ = to_client
                    .send(error_response(
                        &Value::Null,
                        ErrorCode::INVALID_REQUEST,
                        "message exceeds mcp.max_message_bytes",
                        None,
                    ))
                    .await;
                continue;
            }
            Err(error) => return Err(error.into()),
        }
        let text = line.trim_ascii();
        if text.is_empty() {
            continue;
        }
        match Message::parse(text) {
            Err(error) => {
                let _ = to_client
                    .send(error_response(
                        &Value::Null,
                        error.code(),
                        &error.to_string(),
                        None,
                    ))
                    .await;
            }
            Ok(Message::Request { id, method, raw }) => {
                let (session, runtime, pins, metrics, to_client) = (
                    session.clone(),
                    runtime.clone(),
                    pins.clone(),
                    metrics.clone(),
                    to_client.clone(),
                );
                tasks.spawn(async move {
                    // No store here: a call needing approval is refused with a clear text.
                    let services = crate::services::Services::none();
                    let request_id = portcullis_core::RequestId::generate();
                    let cx = McpContext {
                        runtime: &runtime,
                        server: &session.server,
                        pins: &pins,
                        metrics: &metrics,
                        shadow: route.shadow,
                        enabled: route.enabled,
                        relay: None,
                        services: &services,
                        request_id: request_id.as_str(),
                        principal: &session.principal,
                    };
                    let answer = respond(&cx, &session, &id, &method, raw, timeout).await;
                    let _ = to_client.send(answer).await;
                });
            }
            Ok(other) => {
                if let Err(error) = session.upstream.send(&other.into_value(), timeout).await {
                    tracing::warn!(error = %error, "mcp stdio: forwarding to the server failed");
                }
            }
        }
        // Reap finished requests so the set does not grow.
        while tasks.try_join_next().is_some() {}
    }
    while tasks.join_next().await.is_some() {}
    session.upstream.close().await;
    drop(to_client);
    drop(session);
    let _ = writer.await;
    Ok(())
}
