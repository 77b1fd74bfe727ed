//! The audit log: one [`AuditEvent`] per policy decision, queued without waiting and written by
//! one background task to the configured sinks (store, JSONL file, stdout) as a hash chain with
//! signed checkpoints (`portcullis_audit`, ADR 8).
//!
//! ```text
//! GuardRuntime::conclude ──emit (try_send)──► bounded queue ──► writer task (writer.rs):
//!   chain → checkpoint every N records or T seconds → every sink confirms → next batch
//! ```
//!
//! The data path never waits on a sink: [`AuditLog::emit`] only tries to queue. When the queue
//! is full (a sink is down and the writer is retrying, or traffic outruns it), `audit.on_full`
//! decides: `block` refuses the decision (fail closed, `audit_unavailable`), `drop` lets it
//! stand and counts the lost event. The log is process-wide: built once at start, kept across
//! config reloads.

mod key;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use portcullis_audit::{AuditEvent, Chain, ContentMode, Line, PublicKey};
use portcullis_config::{Audit, AuditContent, AuditOnFull, AuditSink};
use portcullis_store::Store;
use portcullis_telemetry::{AuditOutcome, Metrics};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use writer::{Checkpoints, Sink, Writer};

/// How long [`AuditLog::shutdown`] waits for the writer to drain the queue and sign its last
/// checkpoint. A sink that is down past it loses what is still queued.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(10);

/// The audit log could not start.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// `store` is a sink but no store was opened.
    #[error("audit.sinks: `store` is listed but no store is available")]
    StoreMissing,
    /// The signing key could not be read.
    #[error("audit signing key")]
    SigningKeySecret(#[source] crate::services::SecretError),
    /// The signing key's bytes are none of the accepted forms.
    #[error("audit signing key: {reason}")]
    SigningKeyFormat {
        /// What was wrong.
        reason: &'static str,
    },
    /// The signing key was refused as an Ed25519 key.
    #[error("audit signing key")]
    SigningKeyRejected(#[source] portcullis_audit::Error),
    /// The JSONL file could not be opened (or read to resume the chain).
    #[error("audit.jsonl_path: cannot open {}", path.display())]
    Jsonl {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The store could not tell the instance's last record.
    #[error("audit: cannot read the last record of instance `{instance}` from the store")]
    ResumeStore {
        /// The configured instance.
        instance: String,
        /// Why.
        #[source]
        source: portcullis_store::Error,
    },
    /// The instance's last stored record does not parse.
    #[error("audit: the last stored record of instance `{instance}` does not parse")]
    ResumeParse {
        /// The configured instance.
        instance: String,
        /// Why.
        #[source]
        source: portcullis_audit::Error,
    },
}

/// The queue was full (or the log is shut down): the event was not queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the audit queue is full")]
pub struct Full;

/// See the module docs.
pub struct AuditLog {
    queue: mpsc::Sender<AuditEvent>,
    content: ContentMode,
    on_full: AuditOnFull,
    instance: String,
    public_key: Option<PublicKey>,
    metrics: Arc<Metrics>,
    stop: watch::Sender<bool>,
    writer: Mutex<Option<JoinHandle<()>>>,
}

impl std::fmt::Debug for AuditLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditLog")
            .field("instance", &self.instance)
            .field("content", &self.content)
            .field("on_full", &self.on_full)
            .field("key_id", &self.public_key.map(|k| k.key_id()))
            .finish_non_exhaustive()
    }
}

impl AuditLog {
    /// Reads the signing key, opens the sinks, resumes a configured instance's chain and
    /// spawns the writer. `store` is required when `store` is a sink. Call it from a Tokio
    /// runtime; the caller starts it only when `settings.enabled`.
    pub async fn start(
        settings: &Audit,
        store: Option<Store>,
        metrics: Arc<Metrics>,
    ) -> Result<Arc<AuditLog>, AuditError> {
        let signer = settings.signing_key.as_ref().map(key::signer).transpose()?;
        let mut sinks = Vec::with_capacity(settings.sinks.len());
        for sink in &settings.sinks {
            sinks.push(match sink {
                AuditSink::Store => Sink::Store(store.clone().ok_or(AuditError::StoreMissing)?),
                AuditSink::Jsonl(path) => Sink::Jsonl {
                    path: path.clone(),
                    file: Arc::new(open_jsonl(path)?),
                },
                AuditSink::Stdout => Sink::Stdout,
            });
        }
        let chain = match &settings.instance {
            Some(instance) => resume(instance, &sinks).await?,
            None => Chain::new(generated_instance()),
        };
        let instance = chain.instance().to_owned();
        let public_key = signer.as_ref().map(portcullis_audit::Signer::public_key);
        let (queue, receiver) = mpsc::channel(settings.queue_capacity.max(1));
        let (stop, stopped) = watch::channel(false);
        let writer = Writer {
            queue: receiver,
            chain,
            sinks,
            checkpoints: Checkpoints {
                signer,
                every_records: settings.checkpoint_every_records.max(1),
                every: settings.checkpoint_every,
            },
            metrics: metrics.clone(),
            stop: stopped,
        };
        let handle = tokio::spawn(writer.run());
        // The public key is not secret: verifiers need it (`audit verify --key`).
        tracing::info!(
            instance = %instance,
            key_id = public_key.map(|k| k.key_id().to_string()),
            public_key = public_key.map(|k| portcullis_core::hex::encode(k.as_bytes())),
            sinks = settings.sinks.len(),
            "audit log started"
        );
        Ok(Arc::new(AuditLog {
            queue,
            content: content_mode(settings.content),
            on_full: settings.on_full,
            instance,
            public_key,
            metrics,
            stop,
            writer: Mutex::new(Some(handle)),
        }))
    }

    /// Queues `event` without waiting. On a full queue (or after shutdown) the event is not
    /// queued, is counted as `dropped` or `refused` per `on_full`, and the caller applies
    /// [`AuditLog::on_full`].
    pub(crate) fn emit(&self, event: AuditEvent) -> Result<(), Full> {
        match self.queue.try_send(event) {
            Ok(()) => {
                self.metrics.audit_event(AuditOutcome::Queued);
                self.metrics.audit_queue_depth(
                    self.queue
                        .max_capacity()
                        .saturating_sub(self.queue.capacity()),
                );
                Ok(())
            }
            Err(_) => {
                self.metrics.audit_event(match self.on_full {
                    AuditOnFull::Block => AuditOutcome::Refused,
                    AuditOnFull::Drop => AuditOutcome::Dropped,
                });
                Err(Full)
            }
        }
    }

    /// What events keep of inspected texts.
    pub(crate) fn content_mode(&self) -> ContentMode {
        self.content
    }

    /// What a decision does when its event cannot be queued.
    pub(crate) fn on_full(&self) -> AuditOnFull {
        self.on_full
    }

    /// This process's chain name.
    pub fn instance(&self) -> &str {
        &self.instance
    }

    /// The key checkpoints are verified with, when checkpoints are signed.
    pub fn public_key(&self) -> Option<PublicKey> {
        self.public_key
    }

    /// Stops taking events, lets the writer drain the queue and sign a final checkpoint, and
    /// waits for it (at most [`SHUTDOWN_TIMEOUT`]; past that, what is still queued is lost
    /// and logged). Later [`AuditLog::emit`]s fail with [`Full`].
    pub async fn shutdown(&self) {
        self.stop.send_replace(true);
        let handle = self.writer.lock().ok().and_then(|mut writer| writer.take());
        let Some(mut handle) = handle else {
            return;
        };
        if tokio::time::timeout(SHUTDOWN_TIMEOUT, &mut handle)
            .await
            .is_err()
        {
            handle.abort();
            tracing::error!(
                timeout_ms = SHUTDOWN_TIMEOUT.as_millis() as u64,
                "audit writer did not drain in time; queued events are lost"
            );
        }
    }
}

fn content_mode(content: AuditContent) -> ContentMode {
    match content {
        AuditContent::Hash => ContentMode::HashOnly,
        AuditContent::Excerpt(max_chars) => ContentMode::RedactedExcerpt { max_chars },
        AuditContent::Raw => ContentMode::Raw,
    }
}

/// Opens the JSONL file for appending, creating it readable by its owner only.
fn open_jsonl(path: &Path) -> Result<std::fs::File, AuditError> {
    use std::os::unix::fs::OpenOptionsExt as _;
    std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o600)
        .open(path)
        .map_err(|source| AuditError::Jsonl {
            path: path.to_owned(),
            source,
        })
}

/// The chain of a configured instance, continued after its last written record: from the
/// store if it is a sink, else from the JSONL file; a new chain if neither has one.
async fn resume(instance: &str, sinks: &[Sink]) -> Result<Chain, AuditError> {
    let store = sinks.iter().find_map(|sink| match sink {
        Sink::Store(store) => Some(store),
        Sink::Jsonl { .. } | Sink::Stdout => None,
    });
    let jsonl = sinks.iter().find_map(|sink| match sink {
        Sink::Jsonl { path, .. } => Some(path),
        Sink::Store(_) | Sink::Stdout => None,
    });
    let last = match (store, jsonl) {
        (Some(store), _) => last_in_store(store, instance).await?,
        (None, Some(path)) => {
            let (path, owned) = (path.clone(), instance.to_owned());
            tokio::task::spawn_blocking(move || last_in_file(&path, &owned))
                .await
                .map_err(|_| AuditError::Jsonl {
                    path: jsonl.cloned().unwrap_or_default(),
                    source: std::io::Error::other("the read task failed"),
                })??
        }
        (None, None) => None,
    };
    Ok(match last {
        Some(Line::Record(record)) => {
            tracing::info!(instance, seq = record.seq, "audit chain resumed");
            Chain::resume(&record)
        }
        Some(Line::Checkpoint(_)) | None => Chain::new(instance),
    })
}

/// The last record of `instance` in the store.
async fn last_in_store(store: &Store, instance: &str) -> Result<Option<Line>, AuditError> {
    let line =
        store
            .last_audit_record(instance)
            .await
            .map_err(|source| AuditError::ResumeStore {
                instance: instance.to_owned(),
                source,
            })?;
    line.map(|line| Line::parse(&line.json))
        .transpose()
        .map_err(|source| AuditError::ResumeParse {
            instance: instance.to_owned(),
            source,
        })
}

/// The last record of `instance` in a JSONL file (read whole, once, at start).
fn last_in_file(path: &Path, instance: &str) -> Result<Option<Line>, AuditError> {
    use std::io::BufRead as _;
    let file = match std::fs::File::open(path) {
        Ok(file) => file,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(AuditError::Jsonl {
                path: path.to_owned(),
                source,
            });
        }
    };
    // A device or pipe (`/dev/stdout`, a FIFO) holds no earlier records and may never end.
    if !file.metadata().is_ok_and(|m| m.is_file()) {
        return Ok(None);
    }
    let quoted = format!("\"{instance}\"");
    let mut last = None;
    for line in std::io::BufReader::new(file).lines() {
        let line = line.map_err(|source| AuditError::Jsonl {
            path: path.to_owned(),
            source,
        })?;
        if !line.contains(&quoted) {
            continue;
        }
        if let Ok(Line::Record(record)) = Line::parse(&line)
            && record.instance == instance
        {
            last = Some(Line::Record(record));
        }
    }
    Ok(last)
}

/// `<host>-<unix start ms>-<4 hex>`: every process start begins its own chain.
fn generated_instance() -> String {
    let host = std::fs::read_to_string("/etc/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_default();
    let host: String = host
        .trim()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':') {
                c
            } else {
                '-'
            }
        })
        .take(64)
        .collect();
    let host = if host.is_empty() {
        "portcullis".to_owned()
    } else {
        host
    };
    let started_ms = writer::now_unix_nano() / 1_000_000;
    let random = crate::token::random_hex128();
    format!("{host}-{started_ms}-{}", &random[..4])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_instances_use_only_allowed_characters() {
        let instance = generated_instance();
        assert!(instance.len() <= 128, "{instance}");
        assert!(
            instance
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':')),
            "{instance}"
        );
        assert_ne!(instance, generated_instance());
    }
}
