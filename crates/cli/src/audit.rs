//! `portcullis audit verify FILE... --key HEX|--key-file PATH`: checks audit logs (JSON lines of
//! records and signed checkpoints, `portcullis_audit::Line`) and names the first bad line.
//! Exit codes: 0 every file verifies, 1 a file does not, 2 usage or I/O error.
//!
//! `portcullis audit tail` and `portcullis audit export` read the lines the gateway wrote to its
//! store (`read.rs`). Exit codes: 0, or 2 on a usage, store or I/O error.

mod read;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use portcullis_audit::{ChainStart, PublicKey, Report, verify_with};

/// `portcullis audit`.
#[derive(Debug, Args)]
pub(crate) struct AuditArgs {
    #[command(subcommand)]
    command: AuditCommand,
}

#[derive(Debug, Subcommand)]
enum AuditCommand {
    /// Verify hash chains and checkpoint signatures; name the first bad line.
    Verify(VerifyArgs),
    /// Show the last audit lines in the configured store, as summaries or as stored.
    Tail(read::TailArgs),
    /// Write audit lines from the configured store as JSON lines (`audit verify` reads them).
    Export(read::ExportArgs),
}

#[derive(Debug, Args)]
struct VerifyArgs {
    /// Audit log files (JSON lines), each verified on its own.
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// A trusted Ed25519 public key, 64 hex digits (repeatable).
    #[arg(long = "key")]
    keys: Vec<String>,
    /// A file holding a trusted public key in hex (repeatable).
    #[arg(long = "key-file")]
    key_files: Vec<PathBuf>,
    /// Accept a log that starts mid-chain (an exported range, a rotated file): the first
    /// record's link is taken on trust unless a signed checkpoint anchors it.
    #[arg(long)]
    allow_partial_start: bool,
    /// Print one JSON object per file instead of text.
    #[arg(long)]
    json: bool,
}

pub(crate) fn run(args: AuditArgs) -> ExitCode {
    let result = match args.command {
        AuditCommand::Verify(args) => verify_files(&args),
        AuditCommand::Tail(args) => on_runtime(read::tail(&args)).map(|()| true),
        AuditCommand::Export(args) => on_runtime(read::export(&args)).map(|_| true),
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::from(2)
        }
    }
}

/// Runs a store command on a single-threaded runtime (one connection's worth of work).
fn on_runtime<T>(command: impl Future<Output = anyhow::Result<T>>) -> anyhow::Result<T> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?
        .block_on(command)
}

fn keys(args: &VerifyArgs) -> anyhow::Result<Vec<PublicKey>> {
    let mut keys = Vec::new();
    for (i, hex) in args.keys.iter().enumerate() {
        keys.push(PublicKey::from_hex(hex).with_context(|| format!("--key #{}", i + 1))?);
    }
    for path in &args.key_files {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        keys.push(PublicKey::from_hex(&text).with_context(|| format!("in {}", path.display()))?);
    }
    if keys.is_empty() {
        bail!("give at least one trusted public key (--key or --key-file)");
    }
    Ok(keys)
}

/// Verifies every file; whether all verified.
fn verify_files(args: &VerifyArgs) -> anyhow::Result<bool> {
    let keys = keys(args)?;
    let start = if args.allow_partial_start {
        ChainStart::AllowPartial
    } else {
        ChainStart::FromGenesis
    };
    let mut all_ok = true;
    for path in &args.files {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let report = verify_with(text.lines(), &keys, start);
        all_ok &= report.is_ok();
        if args.json {
            println!("{}", report_json(path, &report));
        } else {
            print_report(path, &report);
        }
    }
    Ok(all_ok)
}

fn print_report(path: &std::path::Path, report: &Report) {
    let name = path.display();
    match &report.failure {
        None => println!(
            "{name}: ok: {} records, {} checkpoints",
            report.records, report.checkpoints
        ),
        Some(failure) => {
            let at = match (&failure.instance, failure.seq) {
                (Some(instance), Some(seq)) => format!(" (instance {instance}, seq {seq})"),
                (Some(instance), None) => format!(" (instance {instance})"),
                _ => String::new(),
            };
            println!(
                "{name}: FAILED at line {}{at}: {}",
                failure.line, failure.problem
            );
            println!(
                "{name}: {} records and {} checkpoints verified before it",
                report.records, report.checkpoints
            );
        }
    }
    for instance in &report.instances {
        if instance.unsigned_tail > 0 {
            println!(
                "{name}: instance {}: {} records after the last checkpoint are not signed yet",
                instance.instance, instance.unsigned_tail
            );
        }
    }
}

fn report_json(path: &std::path::Path, report: &Report) -> serde_json::Value {
    let failure = report.failure.as_ref().map(|f| {
        serde_json::json!({
            "line": f.line, "instance": f.instance, "seq": f.seq, "problem": f.problem.to_string(),
        })
    });
    let instances: Vec<serde_json::Value> = report
        .instances
        .iter()
        .map(|i| {
            serde_json::json!({
                "instance": i.instance,
                "first_seq": i.seqs.map(|s| s.0),
                "last_seq": i.seqs.map(|s| s.1),
                "last_checkpoint": i.last_checkpoint,
                "unsigned_tail": i.unsigned_tail,
            })
        })
        .collect();
    serde_json::json!({
        "file": path.display().to_string(),
        "ok": report.is_ok(),
        "records": report.records,
        "checkpoints": report.checkpoints,
        "failure": failure,
        "instances": instances,
    })
}
