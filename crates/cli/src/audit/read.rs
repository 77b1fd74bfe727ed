//! `portcullis audit tail` and `portcullis audit export`: read the audit lines the gateway wrote
//! to the configured store (`store:` in the config file), in store order.
//!
//! `export` writes the lines byte for byte as stored (records and checkpoints, one per line), so
//! its output is a log `portcullis audit verify` checks: a whole export from id 0 as is, a range
//! with `--allow-partial-start`. `tail` shows the last lines as one summary each (or as stored,
//! with `--json`) and with `--follow` polls for new ones.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;
use portcullis_audit::{Line, Target};
use portcullis_config::{Config, StoreSettings};
use portcullis_store::{AuditLine, Store};

/// Lines asked of the store per query.
const PAGE: u32 = 1000;
/// How often `tail --follow` asks the store for new lines.
const FOLLOW_EVERY: Duration = Duration::from_secs(1);

/// Where the store is: the config file that names it.
#[derive(Debug, Args)]
pub(super) struct StoreArgs {
    /// Configuration file (YAML) whose `store` section names the database.
    #[arg(long, short, env = "PORTCULLIS_CONFIG")]
    config: Option<PathBuf>,
}

/// `portcullis audit tail`.
#[derive(Debug, Args)]
pub(super) struct TailArgs {
    #[command(flatten)]
    store: StoreArgs,
    /// How many of the last lines to show.
    #[arg(short = 'n', long = "lines", default_value_t = 10)]
    lines: usize,
    /// Keep polling the store for new lines (every second) until interrupted.
    #[arg(long, short)]
    follow: bool,
    /// Print the lines as stored (JSON) instead of a summary.
    #[arg(long)]
    json: bool,
}

/// `portcullis audit export`.
#[derive(Debug, Args)]
pub(super) struct ExportArgs {
    #[command(flatten)]
    store: StoreArgs,
    /// Export the lines after this store id (0: from the first).
    #[arg(long, default_value_t = 0)]
    after: i64,
    /// Export at most this many lines (default: all).
    #[arg(long)]
    limit: Option<u64>,
    /// Write to this file (created or truncated, readable by its owner only) instead of stdout.
    #[arg(long, short)]
    output: Option<PathBuf>,
}

/// Opens the store the config names. A SQLite file must already exist: reading never creates
/// an empty database where the gateway's is expected.
async fn open(args: &StoreArgs) -> anyhow::Result<Store> {
    let Some(path) = &args.config else {
        bail!("give the gateway's configuration file (--config or PORTCULLIS_CONFIG)");
    };
    let (_, raw) = crate::load::read_raw(path)?;
    let config = Config::from_raw(&raw).with_context(|| format!("in {}", path.display()))?;
    if let StoreSettings::Sqlite { path: db } = &config.store
        && !db.exists()
    {
        bail!("no store at {} (store.path)", db.display());
    }
    let settings = portcullis_proxy::services::store_config(&config.store)
        .context("reading the store settings")?;
    Store::connect(&settings).await.context("opening the store")
}

/// Runs `export`; returns the number of lines written.
pub(super) async fn export(args: &ExportArgs) -> anyhow::Result<u64> {
    let store = open(&args.store).await?;
    let mut out: Box<dyn std::io::Write> = match &args.output {
        Some(path) => Box::new(std::io::BufWriter::new(create_private(path)?)),
        None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
    };
    let mut after = args.after;
    let mut written = 0u64;
    let mut last_id = None;
    loop {
        let want = args.limit.map_or(u64::from(PAGE), |limit| {
            limit.saturating_sub(written).min(u64::from(PAGE))
        });
        if want == 0 {
            break;
        }
        let page = store
            .audit_lines(after, u32::try_from(want).unwrap_or(PAGE))
            .await
            .context("reading audit lines")?;
        let Some(last) = page.last() else {
            break;
        };
        after = last.id;
        last_id = Some(last.id);
        for line in &page {
            writeln!(out, "{}", line.json).context("writing the export")?;
        }
        written += page.len() as u64;
    }
    out.flush().context("writing the export")?;
    store.close().await;
    match last_id {
        Some(last) => eprintln!(
            "exported {written} lines after id {}, up to id {last} (continue with --after {last})",
            args.after
        ),
        None => eprintln!("no audit lines after id {}", args.after),
    }
    Ok(written)
}

/// Creates (or truncates) `path` with mode 0600: excerpts in audit events can be sensitive.
fn create_private(path: &Path) -> anyhow::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt as _;
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))
}

/// Runs `tail`; with `--follow`, until interrupted.
pub(super) async fn tail(args: &TailArgs) -> anyhow::Result<()> {
    let store = open(&args.store).await?;
    // The store pages forward only: read through, keeping the last `lines`.
    let mut last = std::collections::VecDeque::with_capacity(args.lines.min(10_000));
    let mut after = 0;
    loop {
        let page = store
            .audit_lines(after, PAGE)
            .await
            .context("reading audit lines")?;
        let Some(end) = page.last() else {
            break;
        };
        after = end.id;
        for line in page {
            if args.lines == 0 {
                break;
            }
            if last.len() == args.lines {
                last.pop_front();
            }
            last.push_back(line);
        }
    }
    print_lines(last.iter(), args.json)?;
    if !args.follow {
        store.close().await;
        return Ok(());
    }
    loop {
        tokio::time::sleep(FOLLOW_EVERY).await;
        let page = store
            .audit_lines(after, PAGE)
            .await
            .context("reading audit lines")?;
        if let Some(end) = page.last() {
            after = end.id;
        }
        print_lines(page.iter(), args.json)?;
    }
}

fn print_lines<'a>(lines: impl Iterator<Item = &'a AuditLine>, json: bool) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    for line in lines {
        if json {
            writeln!(out, "{}", line.json)?;
        } else {
            writeln!(out, "{}", summary(line))?;
        }
    }
    out.flush()?;
    Ok(())
}

/// One line of `tail`: time (RFC 3339, UTC), `instance:seq`, then for a record its stage,
/// route, target, action, code and principal; for a checkpoint the key id.
fn summary(line: &AuditLine) -> String {
    let time = portcullis_proxy::rfc3339_utc(line.time_unix_nano.div_euclid(1_000_000));
    let at = format!("{time} {}:{}", line.instance, line.seq);
    match Line::parse(&line.json) {
        Ok(Line::Record(record)) => {
            let event = &record.event;
            let target = match &event.target {
                Target::Model { model } => format!("model={model}"),
                Target::ToolServer { server } => format!("server={server}"),
                Target::Tool { server, tool } => format!("tool={server}/{tool}"),
            };
            let principal = match &event.principal.tenant {
                Some(tenant) => format!("{}@{tenant}", event.principal.id),
                None => event.principal.id.clone(),
            };
            let stage = serde_json::to_value(event.stage).unwrap_or_default();
            let action = serde_json::to_value(event.action).unwrap_or_default();
            format!(
                "{at} {} {} {target} {} code={} principal={principal} request={}",
                stage.as_str().unwrap_or("?"),
                event.route,
                action.as_str().unwrap_or("?"),
                event.code.as_deref().unwrap_or("-"),
                event.request_id,
            )
        }
        Ok(Line::Checkpoint(checkpoint)) => {
            format!("{at} checkpoint key={}", checkpoint.key_id)
        }
        Err(_) => format!("{at} (line {} does not parse)", line.id),
    }
}
