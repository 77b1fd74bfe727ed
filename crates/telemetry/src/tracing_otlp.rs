//! Trace export: an OpenTelemetry tracer provider that sends spans over OTLP/HTTP (protobuf)
//! through a batch span processor with a bounded queue, and W3C trace-context propagation.
//!
//! The batch processor runs on its own thread and exports there with a *blocking* HTTP client
//! (reqwest's): the async client would need a tokio runtime on that thread and panics without
//! one. Spans are queued without waiting; a full queue drops spans, it never slows traffic.
//! Export failures are logged by the SDK (`internal-logs`), never returned to a request.
//!
//! Nothing here reads request content: callers decide which attributes a span carries.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry::{Context, KeyValue};
use opentelemetry_otlp::{Protocol, WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{
    BatchConfigBuilder, BatchSpanProcessor, Sampler, SdkTracerProvider,
};

/// The tracer spans are started with.
pub type OtlpTracer = opentelemetry_sdk::trace::SdkTracer;

/// A span started by an [`OtlpTracer`].
pub type OtlpSpan = opentelemetry_sdk::trace::Span;

/// The OTLP/HTTP port collectors listen on, on this host, when neither the configuration nor
/// the environment names an endpoint.
pub const DEFAULT_OTLP_ENDPOINT: &str = "http://127.0.0.1:4318";

/// Path of the traces signal below an OTLP/HTTP base URL.
const TRACES_PATH: &str = "/v1/traces";

/// Name of the instrumentation scope of every span (what backends show as the library).
const SCOPE: &str = "portcullis";

/// How trace export is set up. Built by the caller from the validated configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct OtlpSettings {
    /// OTLP/HTTP base URL (`/v1/traces` is appended unless it is already there); `None`: the
    /// `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` (used as is) or `OTEL_EXPORTER_OTLP_ENDPOINT`
    /// (base) environment variable, else [`DEFAULT_OTLP_ENDPOINT`].
    pub endpoint: Option<String>,
    /// `service.name`; `None`: `OTEL_SERVICE_NAME`, else `portcullis`.
    pub service_name: Option<String>,
    /// `service.version`.
    pub service_version: String,
    /// `service.instance.id`: unique per process.
    pub instance_id: String,
    /// Fraction of new traces sampled, `0.0..=1.0`; a client's sampled flag is followed.
    pub sample_ratio: f64,
    /// Extra headers on every export (authentication of a hosted backend). The exporter also
    /// reads `OTEL_EXPORTER_OTLP_HEADERS` itself.
    pub headers: Vec<(String, String)>,
    /// Bound on one export request.
    pub timeout: Duration,
    /// Most spans waiting for export; beyond it new spans are dropped.
    pub queue_capacity: usize,
}

/// Trace export could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TracingSetupError {
    /// The TLS configuration of the export client could not be built.
    #[error("trace export TLS setup: {0}")]
    Tls(#[source] rustls::Error),
    /// The export client could not be built.
    #[error("trace export HTTP client: {0}")]
    Client(String),
    /// The exporter rejected its settings (an invalid endpoint, say).
    #[error("trace exporter: {0}")]
    Exporter(#[source] opentelemetry_otlp::ExporterBuildError),
}

/// A running trace pipeline: the tracer provider and its tracer. Cheap to clone; the batch
/// thread stops at [`OtlpTracing::shutdown`] (or when the last clone and tracer are dropped).
#[derive(Debug, Clone)]
pub struct OtlpTracing {
    provider: SdkTracerProvider,
    tracer: OtlpTracer,
    endpoint: Arc<str>,
}

impl OtlpTracing {
    /// Builds the exporter, the batch processor (its thread starts now) and the tracer. Does
    /// not connect: the first export does.
    pub fn start(settings: &OtlpSettings) -> Result<Self, TracingSetupError> {
        let endpoint = traces_endpoint(settings.endpoint.as_deref(), |name| {
            std::env::var(name).ok()
        });
        let client = blocking_client(settings.timeout)?;
        let headers: HashMap<String, String> = settings.headers.iter().cloned().collect();
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_protocol(Protocol::HttpBinary)
            .with_endpoint(endpoint.clone())
            .with_timeout(settings.timeout)
            .with_headers(headers)
            .with_http_client(client)
            .build()
            .map_err(TracingSetupError::Exporter)?;
        let batch = BatchConfigBuilder::default()
            .with_max_queue_size(settings.queue_capacity.max(1))
            .build();
        let processor = BatchSpanProcessor::builder(exporter)
            .with_batch_config(batch)
            .build();
        let service_name = settings
            .service_name
            .clone()
            .or_else(|| {
                std::env::var("OTEL_SERVICE_NAME")
                    .ok()
                    .filter(|s| !s.is_empty())
            })
            .unwrap_or_else(|| "portcullis".to_owned());
        // `Resource::builder` also reads `OTEL_RESOURCE_ATTRIBUTES` (pod name, region, ...);
        // the attributes set here win over it.
        let resource = Resource::builder()
            .with_service_name(service_name)
            .with_attributes([
                KeyValue::new("service.version", settings.service_version.clone()),
                KeyValue::new("service.instance.id", settings.instance_id.clone()),
            ])
            .build();
        let ratio = settings.sample_ratio.clamp(0.0, 1.0);
        let provider = SdkTracerProvider::builder()
            .with_span_processor(processor)
            .with_sampler(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(
                ratio,
            ))))
            .with_resource(resource)
            .build();
        let tracer = provider.tracer(SCOPE);
        Ok(Self {
            provider,
            tracer,
            endpoint: Arc::from(endpoint),
        })
    }

    /// The tracer to start spans with.
    pub fn tracer(&self) -> &OtlpTracer {
        &self.tracer
    }

    /// The URL spans are sent to.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Exports every span ended so far. Blocks the calling thread until the batch thread has
    /// tried (each export bounded by the timeout); call it off the async runtime.
    pub fn force_flush(&self) -> Result<(), String> {
        self.provider.force_flush().map_err(|e| e.to_string())
    }

    /// Exports what is queued and stops the batch thread, waiting at most `bound`. Blocks the
    /// calling thread; call it off the async runtime. Spans ended later are dropped.
    pub fn shutdown(&self, bound: Duration) -> Result<(), String> {
        self.provider
            .shutdown_with_timeout(bound)
            .map_err(|e| e.to_string())
    }
}

/// The traces URL: the configured base (or full traces URL), else the environment, else the
/// default. `env` reads an environment variable (a parameter so tests need not set any).
fn traces_endpoint(configured: Option<&str>, env: impl Fn(&str) -> Option<String>) -> String {
    let with_path = |base: &str| {
        let base = base.trim_end_matches('/');
        if base.ends_with(TRACES_PATH) {
            base.to_owned()
        } else {
            format!("{base}{TRACES_PATH}")
        }
    };
    if let Some(base) = configured.filter(|s| !s.is_empty()) {
        return with_path(base);
    }
    let env = |name: &str| env(name).filter(|value| !value.trim().is_empty());
    if let Some(full) = env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") {
        return full.trim().to_owned();
    }
    match env("OTEL_EXPORTER_OTLP_ENDPOINT") {
        Some(base) => with_path(base.trim()),
        None => with_path(DEFAULT_OTLP_ENDPOINT),
    }
}

/// The export client: reqwest's blocking client over rustls with ring and the webpki roots.
/// It is built on a thread of its own, as the exporter does for its default client: the
/// blocking client refuses to be built on an async runtime's thread.
fn blocking_client(timeout: Duration) -> Result<reqwest::blocking::Client, TracingSetupError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(TracingSetupError::Tls)?
        .with_root_certificates(roots)
        .with_no_client_auth();
    std::thread::Builder::new()
        .name("otlp-client-setup".into())
        .spawn(move || {
            reqwest::blocking::Client::builder()
                .timeout(timeout)
                .tls_backend_preconfigured(tls)
                .build()
                .map_err(|e| TracingSetupError::Client(e.to_string()))
        })
        .map_err(|e| TracingSetupError::Client(e.to_string()))?
        .join()
        .map_err(|_| TracingSetupError::Client("the setup thread panicked".into()))?
}

/// The trace context a request carries (its `traceparent` and `tracestate` header values), as
/// a parent context: empty when `traceparent` is absent or invalid.
pub fn extract_trace_context(traceparent: Option<&str>, tracestate: Option<&str>) -> Context {
    struct Headers<'a>(Option<&'a str>, Option<&'a str>);
    impl Extractor for Headers<'_> {
        fn get(&self, key: &str) -> Option<&str> {
            match key {
                "traceparent" => self.0,
                "tracestate" => self.1,
                _ => None,
            }
        }
        fn keys(&self) -> Vec<&str> {
            vec!["traceparent", "tracestate"]
        }
    }
    TraceContextPropagator::new().extract(&Headers(traceparent, tracestate))
}

/// The `traceparent` (and `tracestate`, when not empty) headers naming the current span of
/// `context`; nothing when it has no valid span.
pub fn inject_trace_context(context: &Context) -> Vec<(&'static str, String)> {
    struct Headers(Vec<(&'static str, String)>);
    impl Injector for Headers {
        fn set(&mut self, key: &str, value: String) {
            let key = match key {
                "traceparent" => "traceparent",
                "tracestate" => "tracestate",
                _ => return,
            };
            if !value.is_empty() {
                self.0.push((key, value));
            }
        }
    }
    let mut headers = Headers(Vec::new());
    TraceContextPropagator::new().inject_context(context, &mut headers);
    headers.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry::trace::{Span as _, TraceContextExt, Tracer as _};

    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn the_endpoint_is_a_base_url_with_the_traces_path_appended() {
        assert_eq!(
            traces_endpoint(Some("http://collector:4318"), no_env),
            "http://collector:4318/v1/traces"
        );
        assert_eq!(
            traces_endpoint(Some("https://otel.example/base/"), no_env),
            "https://otel.example/base/v1/traces"
        );
        assert_eq!(
            traces_endpoint(Some("http://c:4318/v1/traces"), no_env),
            "http://c:4318/v1/traces",
            "a full traces URL is kept"
        );
        assert_eq!(
            traces_endpoint(None, no_env),
            "http://127.0.0.1:4318/v1/traces"
        );
    }

    #[test]
    fn the_environment_fills_in_when_the_configuration_is_silent() {
        let base =
            |name: &str| (name == "OTEL_EXPORTER_OTLP_ENDPOINT").then(|| "http://e:4318".into());
        assert_eq!(traces_endpoint(None, base), "http://e:4318/v1/traces");
        let both = |name: &str| match name {
            "OTEL_EXPORTER_OTLP_ENDPOINT" => Some("http://e:4318".into()),
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT" => Some("http://t:1/custom".into()),
            _ => None,
        };
        assert_eq!(traces_endpoint(None, both), "http://t:1/custom");
        assert_eq!(
            traces_endpoint(Some("http://cfg:4318"), both),
            "http://cfg:4318/v1/traces",
            "the configuration wins"
        );
    }

    #[test]
    fn trace_context_round_trips_through_headers() {
        let traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let parent = extract_trace_context(Some(traceparent), Some("vendor=x"));
        let span = parent.span();
        let remote = span.span_context();
        assert!(remote.is_valid() && remote.is_remote() && remote.is_sampled());
        assert_eq!(
            remote.trace_id().to_string(),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
        let headers = inject_trace_context(&parent);
        assert_eq!(
            headers,
            vec![
                ("traceparent", traceparent.to_owned()),
                ("tracestate", "vendor=x".to_owned())
            ]
        );
        let nothing = extract_trace_context(Some("garbage"), None);
        assert!(!nothing.span().span_context().is_valid());
        assert!(inject_trace_context(&nothing).is_empty());
    }

    #[test]
    fn spans_start_and_nothing_blocks_without_a_collector() {
        let tracing = OtlpTracing::start(&OtlpSettings {
            // Port 9 (discard) on loopback: nothing listens, every export fails fast.
            endpoint: Some("http://127.0.0.1:9".into()),
            service_name: Some("test".into()),
            service_version: "0".into(),
            instance_id: "i".into(),
            sample_ratio: 1.0,
            headers: vec![("x-tenant".into(), "t".into())],
            timeout: Duration::from_millis(200),
            queue_capacity: 4,
        })
        .unwrap();
        assert_eq!(tracing.endpoint(), "http://127.0.0.1:9/v1/traces");
        for _ in 0..10 {
            let mut span = tracing.tracer().start("work");
            assert!(span.is_recording());
            span.end();
        }
        let _ = tracing.force_flush();
        tracing.shutdown(Duration::from_secs(2)).unwrap();
    }
}
