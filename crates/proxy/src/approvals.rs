//! Held approvals: a call the policy answers with `require_approval` waits here until a human
//! approves or denies it (admin API, CLI, console) or it expires.
//!
//! The store is the source of truth. [`ApprovalHub::hold`] writes the pending approval (durable
//! before anyone is told about it), fires the webhook, and returns a [`Held`] ticket;
//! [`ApprovalHub::wait`] then waits for the resolution. A resolution made in this process
//! wakes the waiter at once; one made through another replica (or the CLI against the store)
//! is seen by re-reading the approval every `approvals.poll_ms`. Expiry is a conditional
//! update like any other resolution, so an approval given in the same instant as the timeout
//! either wins entirely (the call proceeds) or loses entirely (it is refused): never both.
//!
//! Bounded: at most `approvals.max_pending` calls are held by one process (beyond it a call is
//! refused at once), the webhook queue holds at most [`WEBHOOK_QUEUE`] messages (beyond it a
//! message is dropped and counted), and every wait ends at its expiry.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::Full;
use portcullis_config::{Approvals, WebhookUrl};
use portcullis_store::{Approval, ApprovalFilter, ApprovalStatus, NewApproval, Resolution, Store};
use portcullis_telemetry::{ApprovalEvent, Metrics};
use serde_json::{Value, json};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, watch};

use crate::mcp::{HttpClient, http_client};

/// Webhook messages waiting to be delivered, at most.
pub(crate) const WEBHOOK_QUEUE: usize = 256;

/// How often pending approvals whose holder died are expired in the store.
const SWEEP_EVERY: Duration = Duration::from_secs(5);

/// The approvals of one process, over the shared store.
pub struct ApprovalHub {
    store: Store,
    settings: Approvals,
    instance: String,
    metrics: Arc<Metrics>,
    /// Local wake-ups of held calls, by approval id.
    waiters: Mutex<HashMap<String, watch::Sender<bool>>>,
    permits: Arc<Semaphore>,
    webhook: Option<mpsc::Sender<Approval>>,
}

impl std::fmt::Debug for ApprovalHub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApprovalHub")
            .field("instance", &self.instance)
            .field("backend", &self.store.backend())
            .finish_non_exhaustive()
    }
}

/// Why a call could not be held.
#[derive(Debug, thiserror::Error)]
pub enum HoldError {
    /// `approvals.max_pending` calls are already held.
    #[error("too many calls are waiting for approval")]
    Full,
    /// The store could not record the approval.
    #[error("the approval could not be recorded: {0}")]
    Store(#[from] portcullis_store::Error),
}

/// A held call's ticket: the approval and the process-wide slot it occupies.
#[derive(Debug)]
pub struct Held {
    /// The pending approval as recorded.
    pub approval: Approval,
    wake: watch::Receiver<bool>,
    _permit: OwnedSemaphorePermit,
}

/// How a held call ended.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// Approved: the call proceeds.
    Approved(Approval),
    /// Denied by a human.
    Denied(Approval),
    /// Nobody decided in time.
    Expired(Approval),
    /// The store failed while waiting; the call is refused (fail closed).
    Failed(String),
}

/// Why a resolution by an approver failed.
pub type ResolveError = portcullis_store::Error;

impl ApprovalHub {
    /// A hub over `store`; starts the webhook sender (if configured, with `webhook_url` already
    /// read from its secret) and the expiry sweeper.
    pub fn start(
        store: Store,
        settings: Approvals,
        instance: String,
        webhook_url: Option<String>,
        metrics: Arc<Metrics>,
    ) -> Arc<Self> {
        let webhook = match (&settings.webhook, webhook_url) {
            (Some(hook), Some(url)) => match http_client() {
                Ok(client) => {
                    let (tx, rx) = mpsc::channel(WEBHOOK_QUEUE);
                    tokio::spawn(deliver_webhooks(
                        client,
                        url,
                        hook.console_url.clone(),
                        hook.timeout,
                        rx,
                        metrics.clone(),
                    ));
                    Some(tx)
                }
                Err(error) => {
                    tracing::error!(error = %error, "approval webhook disabled: no HTTP client");
                    None
                }
            },
            _ => None,
        };
        let hub = Arc::new(Self {
            permits: Arc::new(Semaphore::new(settings.max_pending)),
            store,
            settings,
            instance,
            metrics,
            waiters: Mutex::new(HashMap::new()),
            webhook,
        });
        tokio::spawn(sweep_expired(Arc::downgrade(&hub)));
        hub
    }

    /// Whether calls are held (`approvals.enabled`).
    pub fn enabled(&self) -> bool {
        self.settings.enabled
    }

    /// The SSE keep-alive interval of a held call.
    pub fn keepalive(&self) -> Duration {
        self.settings.keepalive
    }

    /// The store behind the hub.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Records a pending approval for a call and returns its ticket. `request` carries
    /// everything but the id, times and instance, which the hub fills in.
    pub async fn hold(&self, mut request: NewApproval) -> Result<Held, HoldError> {
        let permit = self
            .permits
            .clone()
            .try_acquire_owned()
            .map_err(|_| HoldError::Full)
            .inspect_err(|_| self.metrics.approval(ApprovalEvent::Full))?;
        let now = now_ms();
        request.id = format!("apr_{}", crate::token::random_hex128());
        request.created_at_ms = now;
        request.expires_at_ms = now
            .saturating_add(i64::try_from(self.settings.timeout.as_millis()).unwrap_or(i64::MAX));
        request.instance.clone_from(&self.instance);
        let (tx, wake) = watch::channel(false);
        if let Ok(mut waiters) = self.waiters.lock() {
            waiters.insert(request.id.clone(), tx);
        }
        if let Err(error) = self.store.create_approval(&request).await {
            self.forget(&request.id);
            self.metrics.approval(ApprovalEvent::StoreError);
            return Err(error.into());
        }
        self.metrics.approval(ApprovalEvent::Created);
        self.metrics.approvals_held(self.held_now());
        let approval = Approval {
            request,
            status: ApprovalStatus::Pending,
            decided_by: None,
            decided_at_ms: None,
            decision_reason: None,
        };
        tracing::info!(
            approval = %approval.request.id,
            server = %approval.request.server,
            tool = %approval.request.tool,
            principal = %approval.request.principal,
            "call held for approval"
        );
        if let Some(webhook) = &self.webhook
            && webhook.try_send(approval.clone()).is_err()
        {
            self.metrics.approval(ApprovalEvent::WebhookDropped);
        }
        Ok(Held {
            approval,
            wake,
            _permit: permit,
        })
    }

    /// Waits until the held call is resolved or expires.
    pub async fn wait(&self, mut held: Held) -> Outcome {
        let id = held.approval.request.id.clone();
        let deadline = tokio::time::Instant::now()
            + Duration::from_millis(
                u64::try_from(held.approval.request.expires_at_ms - now_ms()).unwrap_or(0),
            );
        let mut poll = tokio::time::interval(self.settings.poll);
        poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let outcome = loop {
            tokio::select! {
                _ = held.wake.changed() => {}
                _ = poll.tick() => {}
                () = tokio::time::sleep_until(deadline) => {
                    break self.expire(&id).await;
                }
            }
            match self.store.approval(&id).await {
                Ok(Some(approval)) => {
                    if let Some(outcome) = settled(approval) {
                        break outcome;
                    }
                }
                Ok(None) => {
                    break Outcome::Failed("the approval disappeared from the store".into());
                }
                // A store blip while waiting: keep waiting until the deadline.
                Err(error) => {
                    tracing::warn!(approval = %id, error = %error, "reading an approval failed");
                }
            }
        };
        self.forget(&id);
        drop(held);
        self.metrics.approvals_held(self.held_now());
        self.metrics.approval(match &outcome {
            Outcome::Approved(_) => ApprovalEvent::Approved,
            Outcome::Denied(_) => ApprovalEvent::Denied,
            Outcome::Expired(_) => ApprovalEvent::Expired,
            Outcome::Failed(_) => ApprovalEvent::StoreError,
        });
        outcome
    }

    /// Lists approvals, newest first.
    pub async fn list(&self, filter: &ApprovalFilter) -> Result<Vec<Approval>, ResolveError> {
        self.store.approvals(filter).await
    }

    /// One approval.
    pub async fn get(&self, id: &str) -> Result<Option<Approval>, ResolveError> {
        self.store.approval(id).await
    }

    /// Approves or denies a pending approval on behalf of `by`, and wakes the call if this
    /// process holds it (other replicas see it at their next poll).
    pub async fn resolve(
        &self,
        id: &str,
        approve: bool,
        by: &str,
        reason: Option<String>,
    ) -> Result<Approval, ResolveError> {
        let resolution = Resolution {
            status: if approve {
                ApprovalStatus::Approved
            } else {
                ApprovalStatus::Denied
            },
            by: by.to_owned(),
            reason,
            at_ms: now_ms(),
        };
        let approval = self.store.resolve_approval(id, &resolution).await?;
        tracing::info!(approval = %id, by = %by, status = %approval.status, "approval resolved");
        self.wake(id);
        Ok(approval)
    }

    async fn expire(&self, id: &str) -> Outcome {
        let resolution = Resolution {
            status: ApprovalStatus::Expired,
            by: "system".into(),
            reason: Some("nobody decided before the approval expired".into()),
            at_ms: now_ms(),
        };
        match self.store.resolve_approval(id, &resolution).await {
            Ok(approval) => Outcome::Expired(approval),
            // Resolved in the same instant: that resolution stands.
            Err(portcullis_store::Error::AlreadyResolved { .. }) => {
                match self.store.approval(id).await {
                    Ok(Some(approval)) => settled(approval).unwrap_or_else(|| {
                        Outcome::Failed("the approval is pending after its expiry".into())
                    }),
                    Ok(None) => Outcome::Failed("the approval disappeared from the store".into()),
                    Err(error) => Outcome::Failed(error.to_string()),
                }
            }
            Err(error) => Outcome::Failed(error.to_string()),
        }
    }

    fn wake(&self, id: &str) {
        if let Ok(waiters) = self.waiters.lock()
            && let Some(tx) = waiters.get(id)
        {
            tx.send_replace(true);
        }
    }

    fn forget(&self, id: &str) {
        if let Ok(mut waiters) = self.waiters.lock() {
            waiters.remove(id);
        }
    }

    fn held_now(&self) -> usize {
        self.settings
            .max_pending
            .saturating_sub(self.permits.available_permits())
    }
}

/// The outcome of a resolved approval; `None` while pending.
fn settled(approval: Approval) -> Option<Outcome> {
    match approval.status {
        ApprovalStatus::Pending => None,
        ApprovalStatus::Approved => Some(Outcome::Approved(approval)),
        ApprovalStatus::Denied => Some(Outcome::Denied(approval)),
        ApprovalStatus::Expired => Some(Outcome::Expired(approval)),
    }
}

/// Milliseconds since the Unix epoch.
pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Expires approvals whose holder is gone (a process that died holding calls), so they do not
/// stay pending forever in the console.
async fn sweep_expired(hub: std::sync::Weak<ApprovalHub>) {
    let mut tick = tokio::time::interval(SWEEP_EVERY);
    loop {
        tick.tick().await;
        let Some(hub) = hub.upgrade() else { return };
        match hub.store.expire_due(now_ms()).await {
            Ok(ids) => {
                for id in &ids {
                    hub.wake(id);
                }
            }
            Err(error) => tracing::warn!(error = %error, "expiring due approvals failed"),
        }
    }
}

/// The Slack-compatible message for a new approval: `text` (the fallback every
/// incoming-webhook consumer reads) and `blocks`. Values are the recorded, redacted ones.
pub(crate) fn webhook_message(approval: &Approval, console_url: Option<&str>) -> Value {
    let request = &approval.request;
    let reasons = if request.reasons.is_empty() {
        "-".to_owned()
    } else {
        request.reasons.join("; ")
    };
    let link = console_url.map(|base| format!("{base}/console/approvals/{}", request.id));
    let text = format!(
        "Approval needed: `{}` on `{}` for `{}`. Reasons: {}. Expires in {} s.{}",
        slack_escape(&request.tool),
        slack_escape(&request.server),
        slack_escape(&request.principal),
        slack_escape(&reasons),
        (request.expires_at_ms - request.created_at_ms).max(0) / 1000,
        link.as_deref()
            .map(|l| format!(" Review: {l}"))
            .unwrap_or_default()
    );
    let mut fields = vec![
        json!({"type": "mrkdwn", "text": format!("*Tool*\n`{}`", slack_escape(&request.tool))}),
        json!({"type": "mrkdwn", "text": format!("*Server*\n`{}`", slack_escape(&request.server))}),
        json!({"type": "mrkdwn", "text": format!("*Principal*\n`{}`", slack_escape(&request.principal))}),
        json!({"type": "mrkdwn", "text": format!("*Approval*\n`{}`", request.id)}),
    ];
    if let Some(tenant) = &request.tenant {
        fields.push(
            json!({"type": "mrkdwn", "text": format!("*Tenant*\n`{}`", slack_escape(tenant))}),
        );
    }
    let mut blocks = vec![
        json!({"type": "header", "text": {"type": "plain_text", "text": "Portcullis: approval needed"}}),
        json!({"type": "section", "fields": fields}),
        json!({"type": "section", "text": {"type": "mrkdwn", "text": format!("*Reasons*\n{}", slack_escape(&reasons))}}),
    ];
    if let Some(link) = link {
        blocks.push(json!({
            "type": "actions",
            "elements": [{"type": "button", "text": {"type": "plain_text", "text": "Review"}, "url": link}]
        }));
    }
    json!({
        "text": text,
        "blocks": blocks,
        "portcullis": {
            "approval_id": request.id,
            "server": request.server,
            "tool": request.tool,
            "principal": request.principal,
            "expires_at_ms": request.expires_at_ms,
        }
    })
}

/// Escapes Slack's control characters (`&`, `<`, `>`), as its formatting guide asks.
fn slack_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Delivers webhook messages one at a time, each bounded by `timeout`, with two retries.
async fn deliver_webhooks(
    client: HttpClient,
    url: String,
    console_url: Option<String>,
    timeout: Duration,
    mut rx: mpsc::Receiver<Approval>,
    metrics: Arc<Metrics>,
) {
    while let Some(approval) = rx.recv().await {
        let body = webhook_message(&approval, console_url.as_deref()).to_string();
        let mut delivered = false;
        for attempt in 0..3u32 {
            if attempt > 0 {
                tokio::time::sleep(Duration::from_millis(250 << attempt)).await;
            }
            match post_json(&client, &url, body.clone(), timeout).await {
                Ok(()) => {
                    delivered = true;
                    break;
                }
                Err(error) => tracing::warn!(
                    approval = %approval.request.id,
                    attempt,
                    error = %error,
                    "approval webhook failed"
                ),
            }
        }
        metrics.approval(if delivered {
            ApprovalEvent::WebhookSent
        } else {
            ApprovalEvent::WebhookFailed
        });
    }
}

async fn post_json(
    client: &HttpClient,
    url: &str,
    body: String,
    timeout: Duration,
) -> Result<(), String> {
    let request = http::Request::post(url)
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(body)))
        .map_err(|e| e.to_string())?;
    let response = tokio::time::timeout(timeout, async {
        let response = client.request(request).await.map_err(|e| e.to_string())?;
        let status = response.status();
        // Drain (bounded in size and time) so the connection can be reused.
        let _ = crate::body::read_limited(response.into_body(), 64 * 1024, timeout, None).await;
        Ok::<_, String>(status)
    })
    .await
    .map_err(|_| "timed out".to_owned())??;
    if response.is_success() {
        Ok(())
    } else {
        Err(format!("HTTP {}", response.as_u16()))
    }
}

/// Reads the webhook URL from where the config says it is.
pub(crate) fn webhook_url(url: &WebhookUrl) -> Result<String, String> {
    match url {
        WebhookUrl::Inline(url) => Ok(url.clone()),
        WebhookUrl::Secret(source) => {
            crate::services::read_text_secret(source).map_err(|e| e.to_string())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn approval() -> Approval {
        Approval {
            request: NewApproval {
                id: "apr_1".into(),
                created_at_ms: 1_000,
                expires_at_ms: 301_000,
                request_id: "req".into(),
                principal: "agent <script>".into(),
                tenant: None,
                route: "mcp".into(),
                server: "files".into(),
                tool: "send_email".into(),
                arguments: json!({"to": "a@b"}),
                findings: json!([]),
                reasons: vec!["tainted & external".into()],
                instance: "i".into(),
            },
            status: ApprovalStatus::Pending,
            decided_by: None,
            decided_at_ms: None,
            decision_reason: None,
        }
    }

    #[test]
    fn the_webhook_message_is_slack_shaped_and_escaped() {
        let message = webhook_message(&approval(), Some("https://admin.example"));
        let text = message["text"].as_str().unwrap_or_default();
        assert!(text.contains("`send_email`"), "{text}");
        assert!(text.contains("agent &lt;script&gt;"), "{text}");
        assert!(text.contains("tainted &amp; external"), "{text}");
        assert!(text.contains("https://admin.example/console/approvals/apr_1"));
        assert!(text.contains("Expires in 300 s"));
        let blocks = message["blocks"].as_array().map(Vec::len).unwrap_or(0);
        assert_eq!(blocks, 4);
        assert_eq!(message["portcullis"]["approval_id"], "apr_1");
    }

    #[test]
    fn without_a_console_url_there_is_no_button() {
        let message = webhook_message(&approval(), None);
        assert_eq!(message["blocks"].as_array().map(Vec::len), Some(3));
    }
}
