//! The audit log's metric families: events offered to the queue, records acknowledged by every
//! sink, checkpoints, sink failures and health, and the queue depth. Labels are closed sets.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use super::Metrics;

/// What became of one audit event offered to the queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuditOutcome {
    /// Queued for the writer.
    Queued,
    /// The queue was full and `audit.on_full` is `drop`: the decision stood, the event is lost.
    Dropped,
    /// The queue was full and `audit.on_full` is `block`: the exchange was refused.
    Refused,
}

impl AuditOutcome {
    fn label(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Dropped => "dropped",
            Self::Refused => "refused",
        }
    }
}

/// An audit sink, as a label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuditSinkKind {
    /// The store (SQLite or PostgreSQL).
    Store,
    /// The JSONL file.
    Jsonl,
    /// Standard output.
    Stdout,
}

impl AuditSinkKind {
    fn label(self) -> &'static str {
        match self {
            Self::Store => "store",
            Self::Jsonl => "jsonl",
            Self::Stdout => "stdout",
        }
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AuditEventLabels {
    outcome: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SinkLabels {
    sink: &'static str,
}

/// The audit families, registered with the rest.
#[derive(Debug)]
pub(super) struct AuditMetrics {
    events: Family<AuditEventLabels, Counter>,
    records_written: Counter,
    checkpoints: Counter,
    sink_errors: Family<SinkLabels, Counter>,
    sink_up: Family<SinkLabels, Gauge>,
    queue_depth: Gauge,
}

impl AuditMetrics {
    pub(super) fn register(registry: &mut Registry) -> Self {
        let events = Family::<AuditEventLabels, Counter>::default();
        registry.register(
            "audit_events",
            "Audit events offered to the writer's queue, by outcome (queued, dropped, refused)",
            events.clone(),
        );
        let records_written = Counter::default();
        registry.register(
            "audit_records_written",
            "Audit records every configured sink has confirmed (file synced, store committed)",
            records_written.clone(),
        );
        let checkpoints = Counter::default();
        registry.register(
            "audit_checkpoints",
            "Signed audit checkpoints every configured sink has confirmed",
            checkpoints.clone(),
        );
        let sink_errors = Family::<SinkLabels, Counter>::default();
        registry.register(
            "audit_sink_errors",
            "Failed audit sink writes (each is retried), by sink",
            sink_errors.clone(),
        );
        let sink_up = Family::<SinkLabels, Gauge>::default();
        registry.register(
            "audit_sink_up",
            "Whether the audit sink's last write succeeded (1) or failed (0), by sink",
            sink_up.clone(),
        );
        let queue_depth = Gauge::default();
        registry.register(
            "audit_queue_depth",
            "Audit events waiting in the writer's queue",
            queue_depth.clone(),
        );
        Self {
            events,
            records_written,
            checkpoints,
            sink_errors,
            sink_up,
            queue_depth,
        }
    }
}

impl Metrics {
    /// Counts one audit event offered to the queue.
    pub fn audit_event(&self, outcome: AuditOutcome) {
        self.audit
            .events
            .get_or_create(&AuditEventLabels {
                outcome: outcome.label(),
            })
            .inc();
    }

    /// Counts `records` audit records and `checkpoints` checkpoints that every sink confirmed.
    pub fn audit_written(&self, records: u64, checkpoints: u64) {
        self.audit.records_written.inc_by(records);
        self.audit.checkpoints.inc_by(checkpoints);
    }

    /// Records the outcome of one write to `sink`: a failure is counted and marks it down.
    pub fn audit_sink_write(&self, sink: AuditSinkKind, ok: AuditSinkWrite) {
        let labels = SinkLabels { sink: sink.label() };
        match ok {
            AuditSinkWrite::Ok => {
                self.audit.sink_up.get_or_create(&labels).set(1);
            }
            AuditSinkWrite::Failed => {
                self.audit.sink_errors.get_or_create(&labels).inc();
                self.audit.sink_up.get_or_create(&labels).set(0);
            }
        }
    }

    /// Sets the number of audit events waiting in the queue.
    pub fn audit_queue_depth(&self, depth: usize) {
        self.audit
            .queue_depth
            .set(i64::try_from(depth).unwrap_or(i64::MAX));
    }
}

/// The outcome of one audit sink write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuditSinkWrite {
    /// The sink confirmed the batch.
    Ok,
    /// The sink failed; the batch will be retried.
    Failed,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn audit_families_have_their_documented_names() {
        let metrics = Metrics::new();
        metrics.audit_event(AuditOutcome::Queued);
        metrics.audit_event(AuditOutcome::Dropped);
        metrics.audit_written(3, 1);
        metrics.audit_sink_write(AuditSinkKind::Jsonl, AuditSinkWrite::Failed);
        metrics.audit_sink_write(AuditSinkKind::Store, AuditSinkWrite::Ok);
        metrics.audit_queue_depth(7);
        let text = metrics.encode();
        for line in [
            "portcullis_audit_events_total{outcome=\"queued\"} 1",
            "portcullis_audit_events_total{outcome=\"dropped\"} 1",
            "portcullis_audit_records_written_total 3",
            "portcullis_audit_checkpoints_total 1",
            "portcullis_audit_sink_errors_total{sink=\"jsonl\"} 1",
            "portcullis_audit_sink_up{sink=\"jsonl\"} 0",
            "portcullis_audit_sink_up{sink=\"store\"} 1",
            "portcullis_audit_queue_depth 7",
        ] {
            assert!(text.contains(line), "{line} missing from\n{text}");
        }
    }
}
