//! The writer task: drains the queue in batches, chains each event, signs checkpoints and
//! writes every batch to every sink before taking the next.
//!
//! A batch is acknowledged (`portcullis_audit_records_written_total`) only once every sink has
//! confirmed it: the JSONL file written and `fdatasync`ed, stdout written and flushed, the store
//! transaction committed. A sink that fails is retried with the same batch (backoff from
//! [`FIRST_RETRY`] doubling to [`LONGEST_RETRY`]) until it succeeds; sinks that already
//! confirmed the batch are not written again. Nothing queued is dropped: while the writer
//! retries, the queue fills and `audit.on_full` applies to new events upstream.
//!
//! Sinks are written one after another, so a crash between two of them leaves one sink a batch
//! ahead of another. Logs never carry event content: only sink names, counts and errors.

use std::io::Write as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use portcullis_audit::{AuditEvent, Chain, Line, Record, Signer};
use portcullis_store::{AuditLine, AuditLineKind, Store};
use portcullis_telemetry::{AuditSinkKind, AuditSinkWrite, Metrics};
use tokio::io::AsyncWriteExt as _;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

/// Most events chained and written as one batch. Larger batches amortise the `fdatasync` and
/// the store commit over more records; smaller ones acknowledge sooner.
const BATCH: usize = 256;
/// First pause before retrying a failed sink.
const FIRST_RETRY: Duration = Duration::from_millis(100);
/// Longest pause between retries: raising it lengthens an outage's tail after the sink
/// recovers; lowering it hammers a sink that is down.
const LONGEST_RETRY: Duration = Duration::from_secs(5);

/// One place lines go.
pub(super) enum Sink {
    /// A JSONL file opened for appending.
    Jsonl {
        path: PathBuf,
        file: Arc<std::fs::File>,
    },
    /// Standard output.
    Stdout,
    /// The store.
    Store(Store),
}

impl Sink {
    fn kind(&self) -> AuditSinkKind {
        match self {
            Self::Jsonl { .. } => AuditSinkKind::Jsonl,
            Self::Stdout => AuditSinkKind::Stdout,
            Self::Store(_) => AuditSinkKind::Store,
        }
    }

    fn name(&self) -> &'static str {
        match self {
            Self::Jsonl { .. } => "jsonl",
            Self::Stdout => "stdout",
            Self::Store(_) => "store",
        }
    }

    /// Writes `batch`; `retry` says an earlier attempt of the same batch failed.
    async fn write(&self, batch: &Batch, retry: bool) -> Result<(), SinkError> {
        match self {
            Self::Jsonl { file, .. } => {
                let file = file.clone();
                let bytes = batch.text();
                tokio::task::spawn_blocking(move || append_synced(&file, bytes.as_bytes()))
                    .await
                    .map_err(|_| SinkError::Io(std::io::Error::other("the write task failed")))?
                    .map_err(SinkError::Io)
            }
            Self::Stdout => {
                let mut stdout = tokio::io::stdout();
                stdout.write_all(batch.text().as_bytes()).await?;
                stdout.flush().await?;
                Ok(())
            }
            Self::Store(store) => match store.append_audit(&batch.store_lines()).await {
                Ok(()) => Ok(()),
                // The batch is one transaction: if the lines are there after an attempt that
                // failed, that attempt committed before its error reached us.
                Err(portcullis_store::Error::DuplicateAuditLine { .. }) if retry => {
                    tracing::warn!(
                        sink = "store",
                        "audit batch found already stored on retry; counted as written"
                    );
                    Ok(())
                }
                Err(error) => Err(SinkError::Store(error)),
            },
        }
    }
}

#[derive(Debug, thiserror::Error)]
enum SinkError {
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Store(portcullis_store::Error),
}

/// Appends `bytes` and syncs the data. On failure the file is cut back to its length before,
/// so the retry does not leave half a batch (or a batch twice) in it.
fn append_synced(file: &std::fs::File, bytes: &[u8]) -> std::io::Result<()> {
    let before = file.metadata().map(|m| m.len()).ok();
    let mut writer = file;
    let result = writer.write_all(bytes).and_then(|()| file.sync_data());
    if result.is_err()
        && let Some(len) = before
    {
        let _ = file.set_len(len);
    }
    result
}

/// One line ready to write.
struct Pending {
    json: String,
    kind: AuditLineKind,
    seq: u64,
    time_unix_nano: u64,
}

/// Lines written together, and what they count as once written.
#[derive(Default)]
struct Batch {
    instance: String,
    lines: Vec<Pending>,
    records: u64,
    checkpoints: u64,
}

impl Batch {
    fn text(&self) -> String {
        let mut text = String::with_capacity(self.lines.iter().map(|l| l.json.len() + 1).sum());
        for line in &self.lines {
            text.push_str(&line.json);
            text.push('\n');
        }
        text
    }

    fn store_lines(&self) -> Vec<AuditLine> {
        self.lines
            .iter()
            .map(|line| AuditLine {
                id: 0,
                instance: self.instance.clone(),
                seq: i64::try_from(line.seq).unwrap_or(i64::MAX),
                kind: line.kind,
                time_unix_nano: i64::try_from(line.time_unix_nano).unwrap_or(i64::MAX),
                json: line.json.clone(),
            })
            .collect()
    }

    fn is_empty(&self) -> bool {
        self.lines.is_empty()
    }
}

/// When checkpoints are signed.
pub(super) struct Checkpoints {
    pub(super) signer: Option<Signer>,
    pub(super) every_records: u64,
    pub(super) every: Duration,
}

/// See the module docs.
pub(super) struct Writer {
    pub(super) queue: mpsc::Receiver<AuditEvent>,
    pub(super) chain: Chain,
    pub(super) sinks: Vec<Sink>,
    pub(super) checkpoints: Checkpoints,
    pub(super) metrics: Arc<Metrics>,
    /// Turns `true` when the log shuts down: stop taking events, drain, checkpoint, end.
    pub(super) stop: watch::Receiver<bool>,
}

/// The writer's running state besides its inputs.
struct Progress {
    /// The last record chained, which the next checkpoint covers.
    last_record: Option<Record>,
    /// Records chained since the last checkpoint.
    unsigned: u64,
    /// When the last checkpoint was signed (or the writer started).
    last_checkpoint: Instant,
}

impl Writer {
    /// Runs until the queue is closed and drained; signs a final checkpoint.
    pub(super) async fn run(mut self) {
        let mut progress = Progress {
            last_record: None,
            unsigned: 0,
            last_checkpoint: Instant::now(),
        };
        let mut events = Vec::with_capacity(BATCH);
        let mut stopping = false;
        loop {
            let due = (self.checkpoints.signer.is_some() && progress.unsigned > 0)
                .then(|| progress.last_checkpoint + self.checkpoints.every);
            tokio::select! {
                received = self.queue.recv_many(&mut events, BATCH) => {
                    if received == 0 {
                        break;
                    }
                    self.metrics.audit_queue_depth(self.queue.len());
                    let batch = self.chain_batch(&mut progress, events.drain(..));
                    self.write(&batch).await;
                }
                () = sleep_until(due) => {
                    let batch = self.checkpoint(&mut progress);
                    self.write(&batch).await;
                }
                _ = self.stop.changed(), if !stopping => {
                    // The log is shutting down (or was dropped): take no new events, drain
                    // what is queued.
                    stopping = true;
                    self.queue.close();
                }
            }
        }
        let batch = self.checkpoint(&mut progress);
        self.write(&batch).await;
        self.metrics.audit_queue_depth(0);
        tracing::info!(instance = %self.chain.instance(), next_seq = self.chain.next_seq(), "audit writer finished");
    }

    /// Chains `events`, with a checkpoint after every `every_records` records.
    fn chain_batch(
        &mut self,
        progress: &mut Progress,
        events: impl Iterator<Item = AuditEvent>,
    ) -> Batch {
        let mut batch = Batch {
            instance: self.chain.instance().to_owned(),
            ..Batch::default()
        };
        for event in events {
            let time_unix_nano = event.time_unix_nano;
            // One serialisation per record: the hashed body and the line come from it.
            let (record, json) = match self.chain.append_line(event) {
                Ok(chained) => chained,
                Err(error) => {
                    // Serialising an event to JSON cannot fail for the types the gateway
                    // builds; if it ever does, the chain is unchanged and the event is lost.
                    tracing::error!(error = %error, "audit event could not be chained; skipped");
                    continue;
                }
            };
            batch.lines.push(Pending {
                json,
                kind: AuditLineKind::Record,
                seq: record.seq,
                time_unix_nano,
            });
            batch.records += 1;
            progress.last_record = Some(record);
            progress.unsigned += 1;
            if progress.unsigned >= self.checkpoints.every_records {
                let checkpoint = self.checkpoint(progress);
                batch.lines.extend(checkpoint.lines);
                batch.checkpoints += checkpoint.checkpoints;
            }
        }
        batch
    }

    /// A checkpoint over the last record, if there is a key and anything unsigned.
    fn checkpoint(&self, progress: &mut Progress) -> Batch {
        let mut batch = Batch {
            instance: self.chain.instance().to_owned(),
            ..Batch::default()
        };
        progress.last_checkpoint = Instant::now();
        let (Some(signer), Some(record)) = (&self.checkpoints.signer, &progress.last_record) else {
            return batch;
        };
        if progress.unsigned == 0 {
            return batch;
        }
        let time_unix_nano = now_unix_nano();
        let checkpoint = signer.checkpoint(record, time_unix_nano);
        match Line::from(checkpoint).to_json_line() {
            Ok(json) => {
                batch.lines.push(Pending {
                    json,
                    kind: AuditLineKind::Checkpoint,
                    seq: record.seq,
                    time_unix_nano,
                });
                batch.checkpoints = 1;
                progress.unsigned = 0;
            }
            Err(error) => {
                tracing::error!(error = %error, "audit checkpoint could not be serialised")
            }
        }
        batch
    }

    /// Writes `batch` to every sink, retrying the ones that fail until all have confirmed it.
    async fn write(&self, batch: &Batch) {
        if batch.is_empty() {
            return;
        }
        let mut confirmed = vec![false; self.sinks.len()];
        let mut pause = FIRST_RETRY;
        let mut attempt = 0u32;
        loop {
            for (sink, done) in self.sinks.iter().zip(confirmed.iter_mut()) {
                if *done {
                    continue;
                }
                match sink.write(batch, attempt > 0).await {
                    Ok(()) => {
                        *done = true;
                        self.metrics
                            .audit_sink_write(sink.kind(), AuditSinkWrite::Ok);
                        if attempt > 0 {
                            tracing::info!(sink = sink.name(), attempt, "audit sink recovered");
                        }
                    }
                    Err(error) => {
                        self.metrics
                            .audit_sink_write(sink.kind(), AuditSinkWrite::Failed);
                        let path = match sink {
                            Sink::Jsonl { path, .. } => Some(path.display().to_string()),
                            Sink::Stdout | Sink::Store(_) => None,
                        };
                        tracing::warn!(
                            sink = sink.name(),
                            path,
                            attempt,
                            lines = batch.lines.len(),
                            retry_in_ms = pause.as_millis() as u64,
                            error = %error,
                            "audit sink write failed; retrying the batch"
                        );
                    }
                }
            }
            if confirmed.iter().all(|done| *done) {
                break;
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(LONGEST_RETRY);
            attempt = attempt.saturating_add(1);
        }
        self.metrics.audit_written(batch.records, batch.checkpoints);
    }
}

/// Sleeps until `deadline`, or forever without one.
async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// Now, in nanoseconds since the Unix epoch.
pub(super) fn now_unix_nano() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}
