//! `portcullis`: the command-line entry point. Parses arguments, sets up logging and the
//! runtime, and hands over to a command module (`serve`, `demo`, `scan`, `eval`, `train`,
//! `policy`, `mcp`, `audit`, `approvals`). Signals and configuration watching live here, in the
//! shell; the gateway itself is `portcullis-proxy`, the detectors `portcullis-detect`, the Rego
//! engine `portcullis-policy`. `scan`, `eval`, `train` and `policy` are synchronous and start no
//! async runtime.

mod approvals;
mod audit;
mod data;
mod demo;
mod eval;
mod jsonl;
mod load;
mod mcp;
mod pipeline;
mod policy;
mod scan;
mod serve;
mod train;

use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use portcullis_telemetry::{LogFormat, init_logging};

/// Portcullis: a security gateway for LLM and agent traffic.
#[derive(Debug, Parser)]
#[command(name = "portcullis", version, about)]
struct Cli {
    /// Log line format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormatArg::Json, env = "PORTCULLIS_LOG_FORMAT")]
    log_format: LogFormatArg,
    /// Log filter: a level (`info`, `warn`) or tracing directives.
    #[arg(long, global = true, default_value = "info", env = "PORTCULLIS_LOG")]
    log_level: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum LogFormatArg {
    Json,
    Text,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the gateway.
    Serve(serve::ServeArgs),
    /// Start a built-in mock model and the gateway, and show a few exchanges.
    Demo(demo::DemoArgs),
    /// Run the detectors over a text or JSON lines (exit 0 clean, 1 flagged, 2 error).
    Scan(scan::ScanArgs),
    /// Measure detection on labelled dataset files (precision, recall, FPR, latency).
    Eval(eval::EvalArgs),
    /// Train the injection classifier on dataset files and write a model file.
    Train(train::TrainArgs),
    /// Test policy bundles and evaluate decisions (`policy test`, `policy eval`).
    Policy(policy::PolicyArgs),
    /// MCP helpers: `mcp stdio -- CMD ARGS...` guards a local stdio MCP server.
    Mcp(mcp::McpArgs),
    /// Audit logs: `audit verify` checks hash chains and checkpoint signatures; `audit tail`
    /// and `audit export` read the lines in the configured store.
    Audit(audit::AuditArgs),
    /// Held approvals on a running gateway (its admin API): list, show, approve, deny.
    Approvals(approvals::ApprovalsArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let format = match cli.log_format {
        LogFormatArg::Json => LogFormat::Json,
        LogFormatArg::Text => LogFormat::Text,
    };
    let log = match init_logging(format, &cli.log_level) {
        Ok(log) => log,
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::from(2);
        }
    };
    match cli.command {
        Command::Serve(args) => run_async(serve::run(args, log)),
        Command::Demo(args) => run_async(demo::run(args)),
        Command::Scan(args) => scan::run(args),
        Command::Eval(args) => offline_exit(eval::run(args)),
        Command::Train(args) => offline_exit(train::run(args)),
        Command::Policy(args) => policy::run(args),
        Command::Mcp(args) => run_async(mcp::run(args)),
        Command::Audit(args) => audit::run(args),
        Command::Approvals(args) => approvals::run(args),
    }
}

/// Runs a server command on a multi-threaded runtime; exit code 1 on error.
fn run_async(command: impl Future<Output = anyhow::Result<()>>) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// Exit code of the offline commands (`eval`, `train`): 0, or 2 with the error on stderr, as
/// `scan` does.
fn offline_exit(result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::from(scan::EXIT_ERROR)
        }
    }
}
