//! `portcullis`: the command-line entry point. Parses arguments, sets up logging and the
//! runtime, and hands over to a command module (`serve`, `demo`). Signals and configuration
//! watching live here, in the shell; the gateway itself is `portcullis-proxy`.

mod demo;
mod load;
mod serve;

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
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let format = match cli.log_format {
        LogFormatArg::Json => LogFormat::Json,
        LogFormatArg::Text => LogFormat::Text,
    };
    if let Err(error) = init_logging(format, &cli.log_level) {
        eprintln!("error: {error}");
        return ExitCode::from(2);
    }
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
    let result = runtime.block_on(async {
        match cli.command {
            Command::Serve(args) => serve::run(args).await,
            Command::Demo(args) => demo::run(args).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
