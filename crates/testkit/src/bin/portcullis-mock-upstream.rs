//! `portcullis-mock-upstream`: the mock OpenAI-compatible upstream as a process.
//!
//! Prints one line, `{"addr":"127.0.0.1:PORT"}`, once it listens, then serves until SIGTERM or
//! SIGINT. Used by the load benchmark and by Python tests.

use std::io::Write;
use std::net::SocketAddr;

use anyhow::Context;
use clap::Parser;
use portcullis_testkit::{MockOptions, MockUpstream};

/// Mock OpenAI-compatible upstream for Portcullis tests and benchmarks.
#[derive(Debug, Parser)]
#[command(name = "portcullis-mock-upstream", version)]
struct Args {
    /// Address to listen on; port 0 picks a free port.
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// Content deltas in every streamed reply.
    #[arg(long, default_value_t = 8)]
    stream_chunks: usize,
    /// Model ids listed by GET /v1/models, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "mock-gpt,mock-embed")]
    models: Vec<String>,
    /// Tokio worker threads.
    #[arg(long, default_value_t = 1)]
    threads: usize,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.threads.max(1))
        .enable_all()
        .build()
        .context("building the tokio runtime")?;
    runtime.block_on(run(args))
}

async fn run(args: Args) -> anyhow::Result<()> {
    let options = MockOptions {
        stream_chunks: args.stream_chunks,
        models: args.models,
    };
    let upstream = MockUpstream::start_with(args.listen, options)
        .await
        .with_context(|| format!("listening on {}", args.listen))?;
    let ready = serde_json::json!({ "addr": upstream.addr().to_string() });
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{ready}").context("writing the address line")?;
    stdout.flush().context("flushing stdout")?;
    drop(stdout);
    wait_for_signal().await?;
    upstream.shutdown().await;
    Ok(())
}

#[cfg(unix)]
async fn wait_for_signal() -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut terminate = signal(SignalKind::terminate()).context("listening for SIGTERM")?;
    let mut interrupt = signal(SignalKind::interrupt()).context("listening for SIGINT")?;
    tokio::select! {
        _ = terminate.recv() => {}
        _ = interrupt.recv() => {}
    }
    Ok(())
}

#[cfg(not(unix))]
async fn wait_for_signal() -> anyhow::Result<()> {
    tokio::signal::ctrl_c()
        .await
        .context("listening for ctrl-c")
}
