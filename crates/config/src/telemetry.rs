//! `telemetry`: OpenTelemetry trace export over OTLP/HTTP. Metrics need no configuration (they
//! are served on `/metrics`); log format and level are command-line flags.
//!
//! This crate reads no environment: an absent `endpoint` or `service_name` stays `None`, and the
//! caller falls back to `OTEL_EXPORTER_OTLP_ENDPOINT` / `OTEL_SERVICE_NAME`, then to the
//! defaults. `headers_env` is only a name here; the caller reads the variable.

use std::time::Duration;

use schemars::JsonSchema;
use serde::Deserialize;

use crate::ConfigError;
use crate::state::is_http_url;
use crate::validated::millis;

/// Telemetry beyond metrics and logs.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawTelemetry {
    /// OpenTelemetry traces: one span per exchange and per MCP tool call, following the GenAI
    /// semantic conventions, sent over OTLP/HTTP (protobuf).
    #[serde(default)]
    pub tracing: RawTracing,
}

/// Trace export.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawTracing {
    /// Export traces. Default `false`.
    #[serde(default)]
    pub enabled: Option<bool>,
    /// OTLP/HTTP base URL of a collector; `/v1/traces` is appended. Default: the
    /// `OTEL_EXPORTER_OTLP_ENDPOINT` environment variable, else `http://127.0.0.1:4318`.
    #[serde(default)]
    pub endpoint: Option<String>,
    /// `service.name` of the spans. Default: `OTEL_SERVICE_NAME`, else `portcullis`.
    #[serde(default)]
    pub service_name: Option<String>,
    /// Fraction of new traces recorded, 0 to 1. A client's `traceparent` sampled flag is
    /// followed (parent-based). Default 1.
    #[serde(default)]
    pub sample_ratio: Option<f64>,
    /// Environment variable holding extra export headers as `key=value,key2=value2` (the
    /// `OTEL_EXPORTER_OTLP_HEADERS` format), e.g. a hosted backend's API key.
    #[serde(default)]
    pub headers_env: Option<String>,
    /// Bound on one export request. Default 10000.
    #[serde(default)]
    pub timeout_ms: Option<u64>,
    /// Most finished spans waiting for export; beyond it spans are dropped. Default 2048.
    #[serde(default)]
    pub queue_capacity: Option<u64>,
    /// Record the request's messages in the exchange span (`gen_ai.input.messages`). Prompts
    /// may hold personal data and secrets: default `false`, never on by accident.
    #[serde(default)]
    pub capture_content: Option<bool>,
}

/// Telemetry settings.
#[derive(Debug, Clone, PartialEq)]
pub struct Telemetry {
    /// Trace export.
    pub tracing: Tracing,
}

/// Whether spans may carry request content.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpanContent {
    /// Never: spans carry names, sizes, counts, decisions and finding categories only.
    Omit,
    /// The request's messages go into `gen_ai.input.messages` (truncated).
    Capture,
}

/// Trace export settings.
#[derive(Debug, Clone, PartialEq)]
pub struct Tracing {
    /// Export traces.
    pub enabled: bool,
    /// Collector base URL; `None`: the environment, then the default.
    pub endpoint: Option<String>,
    /// `service.name`; `None`: the environment, then `portcullis`.
    pub service_name: Option<String>,
    /// Fraction of new traces sampled, `0.0..=1.0`.
    pub sample_ratio: f64,
    /// Environment variable with extra export headers.
    pub headers_env: Option<String>,
    /// Bound on one export.
    pub timeout: Duration,
    /// Export queue bound, in spans.
    pub queue_capacity: usize,
    /// Request content in spans.
    pub content: SpanContent,
}

/// Most spans the export queue may hold.
const MAX_QUEUE_CAPACITY: u64 = 1_000_000;

pub(crate) fn validate_telemetry(errors: &mut Vec<ConfigError>, raw: &RawTelemetry) -> Telemetry {
    Telemetry {
        tracing: validate_tracing(errors, &raw.tracing),
    }
}

fn validate_tracing(errors: &mut Vec<ConfigError>, raw: &RawTracing) -> Tracing {
    let at = "telemetry.tracing";
    if let Some(endpoint) = &raw.endpoint
        && !is_http_url(endpoint)
    {
        errors.push(ConfigError::new(
            format!("{at}.endpoint"),
            "must be an http:// or https:// URL with a host",
        ));
    }
    if let Some(name) = &raw.service_name
        && (name.trim().is_empty() || name.len() > 255)
    {
        errors.push(ConfigError::new(
            format!("{at}.service_name"),
            "must be 1 to 255 characters",
        ));
    }
    let sample_ratio = raw.sample_ratio.unwrap_or(1.0);
    if !(0.0..=1.0).contains(&sample_ratio) {
        errors.push(ConfigError::new(
            format!("{at}.sample_ratio"),
            "must be between 0 and 1",
        ));
    }
    if let Some(var) = &raw.headers_env
        && (var.is_empty() || var.contains(['=', '\0']))
    {
        errors.push(ConfigError::new(
            format!("{at}.headers_env"),
            "not a valid environment variable name",
        ));
    }
    let queue_capacity = raw.queue_capacity.unwrap_or(2048);
    if queue_capacity == 0 || queue_capacity > MAX_QUEUE_CAPACITY {
        errors.push(ConfigError::new(
            format!("{at}.queue_capacity"),
            format!("must be between 1 and {MAX_QUEUE_CAPACITY}"),
        ));
    }
    Tracing {
        enabled: raw.enabled.unwrap_or(false),
        endpoint: raw.endpoint.clone(),
        service_name: raw.service_name.clone(),
        sample_ratio: sample_ratio.clamp(0.0, 1.0),
        headers_env: raw.headers_env.clone(),
        timeout: millis(errors, &format!("{at}.timeout_ms"), raw.timeout_ms, 10_000),
        queue_capacity: queue_capacity.clamp(1, MAX_QUEUE_CAPACITY) as usize,
        content: if raw.capture_content.unwrap_or(false) {
            SpanContent::Capture
        } else {
            SpanContent::Omit
        },
    }
}

/// Parses `key=value,key2=value2` (the `OTEL_EXPORTER_OTLP_HEADERS` format; values may be
/// percent-encoded, surrounding spaces are trimmed). An entry without `=` or with an empty key
/// is an error naming its position, never its value (values are often credentials).
pub fn parse_headers(text: &str) -> Result<Vec<(String, String)>, String> {
    let mut headers = Vec::new();
    for (i, entry) in text.split(',').enumerate() {
        if entry.trim().is_empty() {
            continue;
        }
        let Some((key, value)) = entry.split_once('=') else {
            return Err(format!("entry {} has no `=`", i + 1));
        };
        let key = key.trim();
        let valid_key = !key.is_empty()
            && key
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
        if !valid_key {
            return Err(format!("entry {} has an invalid header name", i + 1));
        }
        let value = percent_decode(value.trim())
            .ok_or_else(|| format!("entry {} has an invalid percent-encoding", i + 1))?;
        headers.push((key.to_ascii_lowercase(), value));
    }
    Ok(headers)
}

fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = text.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn validate(yaml: &str) -> (Tracing, Vec<String>) {
        let raw: RawTelemetry = serde_yaml_ng::from_str(yaml).unwrap();
        let mut errors = Vec::new();
        let telemetry = validate_telemetry(&mut errors, &raw);
        (
            telemetry.tracing,
            errors.iter().map(ToString::to_string).collect(),
        )
    }

    #[test]
    fn defaults_export_nothing_and_capture_nothing() {
        let (tracing, errors) = validate("{}");
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(
            tracing,
            Tracing {
                enabled: false,
                endpoint: None,
                service_name: None,
                sample_ratio: 1.0,
                headers_env: None,
                timeout: Duration::from_secs(10),
                queue_capacity: 2048,
                content: SpanContent::Omit,
            }
        );
    }

    #[test]
    fn every_bad_value_is_reported_with_its_path() {
        let (_, errors) = validate(
            "tracing: {endpoint: 'collector:4318', sample_ratio: 1.5, headers_env: 'A=B', \
             queue_capacity: 0, timeout_ms: 0, service_name: ' '}",
        );
        let paths: Vec<&str> = errors
            .iter()
            .map(|e| e.split(':').next().unwrap_or_default())
            .collect();
        assert_eq!(
            paths,
            vec![
                "telemetry.tracing.endpoint",
                "telemetry.tracing.service_name",
                "telemetry.tracing.sample_ratio",
                "telemetry.tracing.headers_env",
                "telemetry.tracing.queue_capacity",
                "telemetry.tracing.timeout_ms",
            ],
            "{errors:?}"
        );
        let unknown = serde_yaml_ng::from_str::<RawTelemetry>("tracing: {sampling: 1}");
        assert!(unknown.is_err(), "unknown keys are refused");
    }

    #[test]
    fn capture_is_explicit() {
        let (tracing, errors) = validate(
            "tracing: {enabled: true, endpoint: 'https://otel.example:4318', capture_content: true, sample_ratio: 0.25}",
        );
        assert!(errors.is_empty(), "{errors:?}");
        assert!(tracing.enabled);
        assert_eq!(tracing.content, SpanContent::Capture);
        assert_eq!(tracing.sample_ratio, 0.25);
    }

    #[test]
    fn headers_parse_like_the_otel_variable() {
        assert_eq!(
            parse_headers(" Authorization=Basic%20abc==, x-tenant = t1 ,").unwrap(),
            vec![
                ("authorization".to_owned(), "Basic abc==".to_owned()),
                ("x-tenant".to_owned(), "t1".to_owned())
            ]
        );
        assert_eq!(parse_headers("").unwrap(), vec![]);
        let error = parse_headers("a=1,secret-token").unwrap_err();
        assert_eq!(error, "entry 2 has no `=`");
        assert!(parse_headers("=x").is_err());
        assert!(parse_headers("a=%zz").is_err());
    }
}
