//! `portcullis policy test [DIR]` and `portcullis policy eval --input FILE [--bundle DIR]`:
//! run a bundle's tests like `opa test`, and evaluate one decision, without a gateway.
//!
//! Exit codes. `test`: 0 every test passed, 1 a test failed or errored (or there are none),
//! 2 the bundle could not be loaded or compiled. `eval`: 0 a decision was printed, 2 an error
//! (unreadable or malformed input, bundle error, evaluation error), with the message on stderr.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Args, Subcommand};
use portcullis_policy::{Bundle, Outcome, Policy, TestReport, run_tests};
use serde::Serialize;

use portcullis_proxy::{MAX_FILE_BYTES, read_bundle_dir};

const EXIT_OK: u8 = 0;
const EXIT_FAILED: u8 = 1;
const EXIT_ERROR: u8 = 2;

#[derive(Debug, Args)]
pub(crate) struct PolicyArgs {
    #[command(subcommand)]
    command: PolicyCommand,
}

#[derive(Debug, Subcommand)]
enum PolicyCommand {
    /// Run a bundle's `test_*` rules (exit 0 all pass, 1 a failure, 2 bundle error).
    Test(TestArgs),
    /// Evaluate one decision for an input document and print it as JSON (exit 0, 2 error).
    Eval(EvalArgs),
}

#[derive(Debug, Args)]
struct TestArgs {
    /// The bundle directory; without it, the built-in default bundle.
    #[arg(value_name = "DIR")]
    dir: Option<PathBuf>,
    /// List every test, not only those that failed.
    #[arg(long, short)]
    verbose: bool,
    /// Print the report as one JSON document.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
struct EvalArgs {
    /// The input document (JSON); `-` reads stdin.
    #[arg(long, short, value_name = "FILE")]
    input: PathBuf,
    /// The bundle directory; without it, the built-in default bundle.
    #[arg(long, short, value_name = "DIR")]
    bundle: Option<PathBuf>,
    /// Evaluate with regorus's tree-walking interpreter instead of the VM the gateway uses
    /// (to cross-check the two).
    #[arg(long)]
    interpreter: bool,
}

pub(crate) fn run(args: PolicyArgs) -> ExitCode {
    let result = match args.command {
        PolicyCommand::Test(args) => test(&args),
        PolicyCommand::Eval(args) => eval(&args).map(|()| EXIT_OK),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::from(EXIT_ERROR)
        }
    }
}

/// The bundle in `dir`, or the embedded default.
fn load(dir: Option<&Path>) -> anyhow::Result<Bundle> {
    match dir {
        Some(dir) => Ok(read_bundle_dir(dir)?),
        None => Ok(Bundle::embedded_default()),
    }
}

fn bundle_name(dir: Option<&Path>) -> String {
    dir.map_or_else(
        || "the built-in bundle".to_owned(),
        |d| format!("the policy bundle {}", d.display()),
    )
}

fn test(args: &TestArgs) -> anyhow::Result<u8> {
    let bundle = load(args.dir.as_deref())?;
    let report = run_tests(&bundle)
        .with_context(|| format!("loading {}", bundle_name(args.dir.as_deref())))?;
    let mut stdout = std::io::stdout().lock();
    if args.json {
        serde_json::to_writer_pretty(&mut stdout, &JsonReport::new(&report))?;
        writeln!(stdout)?;
    } else {
        write_report(&mut stdout, &report, args.verbose)?;
    }
    stdout.flush()?;
    Ok(if report.is_success() {
        EXIT_OK
    } else {
        EXIT_FAILED
    })
}

/// `opa test`-style output: failing tests (every test with `verbose`), then counts.
fn write_report(out: &mut impl Write, report: &TestReport, verbose: bool) -> std::io::Result<()> {
    let total = report.results.len();
    if total == 0 {
        writeln!(out, "no test_* rules found")?;
        return Ok(());
    }
    let mut listed = false;
    for result in &report.results {
        let label = match &result.outcome {
            Outcome::Pass if !verbose => continue,
            Outcome::Pass => "PASS",
            Outcome::Fail => "FAIL",
            Outcome::Error(_) => "ERROR",
        };
        listed = true;
        writeln!(
            out,
            "{}: {}: {label} ({})",
            result.location,
            result.rule(),
            human_duration(result.duration)
        )?;
        if let Outcome::Error(message) = &result.outcome {
            for line in message.lines() {
                writeln!(out, "  {line}")?;
            }
        }
    }
    if listed {
        writeln!(out, "{}", "-".repeat(80))?;
    }
    writeln!(out, "PASS: {}/{total}", report.passed())?;
    if report.failed() > 0 {
        writeln!(out, "FAIL: {}/{total}", report.failed())?;
    }
    if report.errored() > 0 {
        writeln!(out, "ERROR: {}/{total}", report.errored())?;
    }
    Ok(())
}

fn human_duration(d: Duration) -> String {
    if d < Duration::from_millis(1) {
        format!("{}µs", d.as_micros())
    } else {
        format!("{:.1}ms", d.as_secs_f64() * 1e3)
    }
}

/// `policy test --json`: counts, then every result.
#[derive(Serialize)]
struct JsonReport<'a> {
    total: usize,
    passed: usize,
    failed: usize,
    errored: usize,
    results: &'a [portcullis_policy::TestResult],
}

impl<'a> JsonReport<'a> {
    fn new(report: &'a TestReport) -> Self {
        JsonReport {
            total: report.results.len(),
            passed: report.passed(),
            failed: report.failed(),
            errored: report.errored(),
            results: &report.results,
        }
    }
}

fn eval(args: &EvalArgs) -> anyhow::Result<()> {
    let (name, text) = read_input(&args.input)?;
    let input: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("{name} is not valid JSON"))?;
    let bundle = load(args.bundle.as_deref())?;
    let policy = Policy::compile(&bundle)
        .with_context(|| format!("loading {}", bundle_name(args.bundle.as_deref())))?;
    let decision = if args.interpreter {
        policy.decide_interpreted(&input)
    } else {
        policy.decide(&input)
    }
    .context("evaluating data.portcullis.decision")?;
    let mut stdout = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut stdout, &decision)?;
    writeln!(stdout)?;
    stdout.flush()?;
    Ok(())
}

/// The input's display name and text: a file of at most 4 MiB, or stdin for `-`.
fn read_input(path: &Path) -> anyhow::Result<(String, String)> {
    let (name, bytes) = if path == Path::new("-") {
        let mut bytes = Vec::new();
        std::io::stdin()
            .lock()
            .take(MAX_FILE_BYTES + 1)
            .read_to_end(&mut bytes)
            .context("reading stdin")?;
        ("stdin".to_owned(), bytes)
    } else {
        let file =
            std::fs::File::open(path).with_context(|| format!("reading {}", path.display()))?;
        let mut bytes = Vec::new();
        file.take(MAX_FILE_BYTES + 1)
            .read_to_end(&mut bytes)
            .with_context(|| format!("reading {}", path.display()))?;
        (path.display().to_string(), bytes)
    };
    if bytes.len() as u64 > MAX_FILE_BYTES {
        anyhow::bail!(
            "{name} is larger than {} MiB",
            MAX_FILE_BYTES / (1024 * 1024)
        );
    }
    let text = String::from_utf8(bytes).map_err(|e| {
        anyhow::anyhow!(
            "{name} is not UTF-8 (invalid byte at offset {})",
            e.utf8_error().valid_up_to()
        )
    })?;
    Ok((name, text))
}
