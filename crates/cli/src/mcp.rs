//! `portcullis mcp stdio [--config F | --policy DIR] [--name NAME] -- CMD ARGS...`: guards a
//! local stdio MCP server for a desktop agent. The agent starts this command instead of the
//! server; Portcullis starts the server and applies the same guard as the `/mcp/{server}` route.
//! stdout carries only protocol; logs go to stderr.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use portcullis_config::{Config, RawConfig};
use portcullis_telemetry::Metrics;

/// `portcullis mcp`.
#[derive(Debug, Args)]
pub(crate) struct McpArgs {
    #[command(subcommand)]
    command: McpCommand,
}

#[derive(Debug, Subcommand)]
enum McpCommand {
    /// Wrap a stdio MCP server: speak MCP on stdin/stdout and run CMD as the guarded server.
    Stdio(StdioArgs),
}

#[derive(Debug, Args)]
struct StdioArgs {
    /// Configuration file: its `guard`, `policy` and `mcp` settings apply (a server of the
    /// same `--name` in `mcp.servers` lends its tool labels).
    #[arg(long, conflicts_with = "policy")]
    config: Option<PathBuf>,
    /// A policy bundle directory (instead of the embedded default bundle).
    #[arg(long)]
    policy: Option<PathBuf>,
    /// The server's name in policy input (`input.server`, `tool.server`).
    #[arg(long, default_value = "local")]
    name: String,
    /// The server's program and arguments, after `--`.
    #[arg(last = true, required = true, num_args = 1..)]
    command: Vec<String>,
}

pub(crate) async fn run(args: McpArgs) -> anyhow::Result<()> {
    match args.command {
        McpCommand::Stdio(args) => stdio(args).await,
    }
}

async fn stdio(args: StdioArgs) -> anyhow::Result<()> {
    let mut raw = match &args.config {
        Some(path) => crate::load::read_raw(path)?.1,
        None => RawConfig::default(),
    };
    if let Some(dir) = &args.policy {
        raw.policy.bundle = Some(dir.display().to_string());
    }
    // The wrapped server is the one server; the config may have no LLM upstreams.
    if raw.upstreams.is_empty() && raw.mcp.servers.is_empty() {
        raw.mcp.servers.push(portcullis_config::RawMcpServer {
            name: args.name.clone(),
            command: args.command.clone(),
            ..Default::default()
        });
    }
    let config = Config::from_raw(&raw).context("in the configuration")?;
    let Some((program, rest)) = args.command.split_first() else {
        bail!("give the server's command after --");
    };
    portcullis_proxy::run_mcp_stdio(&config, &args.name, program, rest, Arc::new(Metrics::new()))
        .await
        .context("mcp stdio")
}
