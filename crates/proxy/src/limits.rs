//! Phase: limit. Request rates and token budgets per principal, tenant and model
//! (`rate_limits` in the config, docs/rate-limits.md).
//!
//! Before forwarding, one atomic `admit` checks every rule that applies and reserves one
//! request and the prompt's estimated tokens in each; a request whose estimate does not fit
//! what is left is refused with 429 and `Retry-After`. When the exchange ends, the reservation
//! is settled with the tokens the upstream reported in `usage` (streams included: see
//! [`UsageTap`]), so budgets count real usage, not estimates. Counters live in memory or in
//! Redis (`portcullis_store::limits`); when they cannot be read, `rate_limits.on_error`
//! decides (closed by default).

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::{Bytes, BytesMut};
use portcullis_config::{LimitDimension, RateLimits};
use portcullis_core::{OnError, Principal};
use portcullis_store::limits::LimitKind;
use portcullis_store::limits::{Admission, Ask, Budget, Limiter, Reservation};
use portcullis_telemetry::{Metrics, RateLimitOutcome};
use serde_json::Value;

use crate::reject::Reject;
use crate::trace::ModelCell;
use crate::usage::{Usage, UsageCell};

/// Longest model name used in a counter's key.
const MAX_KEY_MODEL_CHARS: usize = 100;

/// What an admitted exchange reserved; settled once the upstream's usage is known.
pub(crate) struct Charge {
    limiter: Arc<Limiter>,
    metrics: Arc<Metrics>,
    reservation: Reservation,
    /// Whether a rule counts tokens (only then is usage worth asking for).
    pub(crate) counts_tokens: bool,
}

impl Charge {
    /// Corrects the reservation with the reported usage, in the background (the response is
    /// never held for it). Without a report the estimate stands.
    pub(crate) fn settle(self, usage: Option<Usage>) {
        let Some(usage) = usage else {
            return;
        };
        self.metrics.rate_limit_settled(usage.total);
        tokio::spawn(async move {
            if let Err(error) = self.limiter.settle(&self.reservation, usage.total).await {
                tracing::warn!(error = %error, "could not settle a token reservation");
            }
        });
    }
}

/// Settles a charge when the exchange's body is done (dropped), with the usage then known.
pub(crate) struct SettleOnDrop {
    charge: Option<Charge>,
    usage: UsageCell,
}

impl SettleOnDrop {
    pub(crate) fn new(charge: Charge, usage: UsageCell) -> Self {
        Self {
            charge: Some(charge),
            usage,
        }
    }
}

impl Drop for SettleOnDrop {
    fn drop(&mut self) {
        if let Some(charge) = self.charge.take() {
            charge.settle(self.usage.get());
        }
    }
}

/// The budgets of the rules that apply to this request, with each one's rule index.
fn budgets(config: &RateLimits, principal: &Principal, model: &str) -> (Vec<usize>, Vec<Budget>) {
    let tenant = principal.tenant.as_deref();
    config
        .rules
        .iter()
        .enumerate()
        .filter(|(_, rule)| rule.applies(&principal.id, tenant, model))
        .map(|(index, rule)| {
            let mut key = rule.name.clone();
            for dimension in &rule.by {
                key.push('|');
                key.push_str(dimension.as_str());
                key.push('=');
                match dimension {
                    LimitDimension::Principal => key.push_str(&principal.id),
                    LimitDimension::Tenant => key.push_str(tenant.unwrap_or("-")),
                    LimitDimension::Model => key.extend(model.chars().take(MAX_KEY_MODEL_CHARS)),
                }
            }
            let budget = Budget {
                key,
                requests_per_minute: rule.requests_per_minute,
                tokens_per_minute: rule.tokens_per_minute,
                tokens_per_day: rule.tokens_per_day,
            };
            (index, budget)
        })
        .unzip()
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// The phase: admit the request against every applicable rule, or refuse it.
pub(crate) async fn admit(
    limiter: &Arc<Limiter>,
    config: &RateLimits,
    principal: &Principal,
    model: &str,
    estimate: u64,
    metrics: &Arc<Metrics>,
) -> Result<Option<Charge>, Reject> {
    let (rules, budgets) = budgets(config, principal, model);
    if budgets.is_empty() {
        return Ok(None);
    }
    let counts_tokens = budgets
        .iter()
        .any(|b| b.tokens_per_minute.is_some() || b.tokens_per_day.is_some());
    let ask = Ask {
        budgets: &budgets,
        tokens: if counts_tokens { estimate } else { 0 },
        now_ms: now_ms(),
    };
    match limiter.admit(&ask).await {
        Ok(Admission::Admitted(reservation)) => {
            metrics.rate_limit(RateLimitOutcome::Admitted);
            Ok(Some(Charge {
                limiter: limiter.clone(),
                metrics: metrics.clone(),
                reservation,
                counts_tokens,
            }))
        }
        Ok(Admission::Refused(refusal)) => {
            let rule = rules
                .get(refusal.budget)
                .and_then(|index| config.rules.get(*index))
                .map_or_else(|| Arc::from("?"), |rule| Arc::from(rule.name.as_str()));
            metrics.rate_limit(match refusal.kind {
                LimitKind::Requests => RateLimitOutcome::RefusedRequests,
                LimitKind::TokensPerMinute => RateLimitOutcome::RefusedTokensPerMinute,
                LimitKind::TokensPerDay => RateLimitOutcome::RefusedTokensPerDay,
            });
            Err(Reject::RateLimited {
                rule,
                limit_kind: refusal.kind,
                limit: refusal.limit,
                retry_after_secs: refusal.retry_after.as_secs().max(1),
            })
        }
        Err(error) => {
            metrics.rate_limit(RateLimitOutcome::Unavailable);
            tracing::warn!(error = %error, backend = limiter.backend(), "rate limits could not be checked");
            match config.on_error {
                OnError::FailClosed => Err(Reject::RateLimitUnavailable),
                OnError::FailOpen => Ok(None),
            }
        }
    }
}

/// Adds `stream_options.include_usage: true` to a streaming request, so the upstream reports
/// the tokens it streamed. `None` when the body is not a JSON object (the probe accepted it,
/// so this does not happen) — the request then goes out unchanged.
pub(crate) fn request_stream_usage(body: &[u8]) -> Option<Bytes> {
    let mut value: Value = serde_json::from_slice(body).ok()?;
    let object = value.as_object_mut()?;
    let options = object
        .entry("stream_options")
        .or_insert_with(|| Value::Object(serde_json::Map::new()));
    if !options.is_object() {
        *options = Value::Object(serde_json::Map::new());
    }
    options
        .as_object_mut()?
        .insert("include_usage".into(), Value::Bool(true));
    serde_json::to_vec(&value).ok().map(Bytes::from)
}

/// Watches a stream's events for the upstream's usage report (the last chunk when usage was
/// requested; vLLM's continuous usage puts it in every chunk: the last one seen wins). When
/// the gateway asked for usage the client did not, the usage-only chunk (`choices: []`) is
/// removed so the client sees the stream it asked for.
pub(crate) struct UsageTap {
    cell: UsageCell,
    strip: bool,
    /// Where the answering model (`gen_ai.response.model`) goes; read from the first chunk.
    model: Option<ModelCell>,
}

impl UsageTap {
    pub(crate) fn new(cell: UsageCell, strip: bool, model: Option<ModelCell>) -> Self {
        Self { cell, strip, model }
    }

    /// Reads the whole events in `events`; returns them, without the usage-only chunk when
    /// stripping.
    pub(crate) fn observe(&mut self, events: Bytes) -> Bytes {
        if let Some(model) = self.model.take() {
            let first = portcullis_openai::split_events(&events)
                .into_iter()
                .find_map(portcullis_openai::event_data)
                .and_then(|data| serde_json::from_str::<Value>(&data).ok());
            if let Some(name) = first
                .as_ref()
                .and_then(|c| c.get("model"))
                .and_then(Value::as_str)
            {
                model.set(name);
            }
        }
        if !reports_usage(&events) {
            return events;
        }
        // Byte ranges of usage-only events to keep from the client; the batch is copied only
        // when there is one.
        let mut dropped: Vec<std::ops::Range<usize>> = Vec::new();
        for event in portcullis_openai::split_events(&events) {
            // Only the event with the usage object is parsed: a batch often holds a whole
            // stream's chunks, and parsing each would cost more than the rest of the proxying.
            if !reports_usage(event) {
                continue;
            }
            let parsed = portcullis_openai::event_data(event)
                .and_then(|data| serde_json::from_str::<Value>(&data).ok());
            let Some(chunk) = parsed else { continue };
            let Some(usage) = chunk.get("usage").and_then(Usage::from_json) else {
                continue;
            };
            self.cell.set(usage);
            let usage_only = chunk
                .get("choices")
                .and_then(Value::as_array)
                .is_some_and(Vec::is_empty);
            if self.strip && usage_only {
                // `event` borrows from `events`: its offset is the pointers' distance.
                let start = event.as_ptr() as usize - events.as_ptr() as usize;
                dropped.push(start..start + event.len());
            }
        }
        if dropped.is_empty() {
            return events;
        }
        let mut kept = BytesMut::with_capacity(events.len());
        let mut from = 0;
        for range in dropped {
            kept.extend_from_slice(&events[from..range.start]);
            from = range.end;
        }
        kept.extend_from_slice(&events[from..]);
        kept.freeze()
    }
}

/// Whether `events` may hold a usage object. Chunks of a stream with usage requested carry
/// `"usage":null` until the last one, so looking for the key alone would parse every event;
/// an object value is written `"usage":{` (compact) or `"usage": {` (Python's default).
fn reports_usage(events: &[u8]) -> bool {
    memchr::memmem::find(events, b"\"usage\":{").is_some()
        || memchr::memmem::find(events, b"\"usage\": {").is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn include_usage_is_added_and_other_fields_kept() {
        let body = br#"{"model":"m","stream":true,"messages":[],"x":{"y":1}}"#;
        let out: Value = serde_json::from_slice(&request_stream_usage(body).unwrap()).unwrap();
        assert_eq!(out["stream_options"]["include_usage"], Value::Bool(true));
        assert_eq!(out["x"]["y"], 1);
        let body = br#"{"model":"m","stream_options":{"include_usage":false,"other":2}}"#;
        let out: Value = serde_json::from_slice(&request_stream_usage(body).unwrap()).unwrap();
        assert_eq!(out["stream_options"]["include_usage"], Value::Bool(true));
        assert_eq!(out["stream_options"]["other"], 2);
        assert!(request_stream_usage(b"[1]").is_none());
    }

    const CHUNK: &str = "data: {\"choices\":[{\"delta\":{\"content\":\"hi\"}}],\"usage\":null}\n\n";
    const USAGE: &str = "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":7,\"completion_tokens\":3,\"total_tokens\":10}}\n\n";
    const DONE: &str = "data: [DONE]\n\n";

    #[test]
    fn the_usage_chunk_is_read_and_stripped_only_when_asked() {
        let events = Bytes::from(format!("{CHUNK}{USAGE}{DONE}"));
        let cell = UsageCell::default();
        let out = UsageTap::new(cell.clone(), true, None).observe(events.clone());
        assert_eq!(out, Bytes::from(format!("{CHUNK}{DONE}")));
        assert_eq!(cell.get().map(|u| u.total), Some(10));

        let cell = UsageCell::default();
        let out = UsageTap::new(cell.clone(), false, None).observe(events.clone());
        assert_eq!(out, events);
        assert_eq!(cell.get().map(|u| (u.prompt, u.completion)), Some((7, 3)));
    }

    #[test]
    fn null_usage_chunks_are_not_parsed_and_spaced_usage_is_read() {
        assert!(!reports_usage(CHUNK.as_bytes()));
        assert!(reports_usage(USAGE.as_bytes()));
        let spaced = "data: {\"choices\": [], \"usage\": {\"total_tokens\": 4}}\n\n";
        let cell = UsageCell::default();
        let _ = UsageTap::new(cell.clone(), false, None).observe(Bytes::from(spaced));
        assert_eq!(cell.get().map(|u| u.total), Some(4));
    }

    #[test]
    fn events_without_usage_pass_untouched() {
        let events = Bytes::from(format!("{CHUNK}{DONE}"));
        let cell = UsageCell::default();
        let out = UsageTap::new(cell.clone(), true, None).observe(events.clone());
        assert_eq!(out, events);
        assert_eq!(cell.get(), None);
    }

    #[test]
    fn budgets_are_keyed_by_the_rule_dimensions() {
        let yaml = "rules:\n  - {name: per-user, by: [principal, model], requests_per_minute: 5}\n  \
                    - {name: acme, tenants: [acme], by: [tenant], tokens_per_day: 100}\n  \
                    - {name: gpt, models: ['gpt-*'], requests_per_minute: 1}\n";
        let raw: portcullis_config::RawConfig = portcullis_config::parse_yaml(&format!(
            "upstreams:\n  - {{name: m, url: 'http://127.0.0.1:9/v1', models: ['*']}}\nrate_limits:\n{}",
            yaml.lines().map(|l| format!("  {l}\n")).collect::<String>()
        ))
        .unwrap();
        let config = portcullis_config::Config::from_raw(&raw).unwrap();
        let mut alice = Principal::anonymous();
        alice.id = "alice".into();
        alice.tenant = Some("acme".into());
        let keys: Vec<String> = budgets(&config.rate_limits, &alice, "llama")
            .1
            .into_iter()
            .map(|b| b.key)
            .collect();
        assert_eq!(
            keys,
            ["per-user|principal=alice|model=llama", "acme|tenant=acme"]
        );
        let bob = Principal::anonymous();
        let keys: Vec<String> = budgets(&config.rate_limits, &bob, "gpt-4o")
            .1
            .into_iter()
            .map(|b| b.key)
            .collect();
        assert_eq!(keys, ["per-user|principal=anonymous|model=gpt-4o", "gpt"]);
    }
}
