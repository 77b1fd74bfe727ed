//! Every way the gateway refuses or fails an exchange, and the one place where each becomes a
//! response. The match in [`Reject::api_error`] is exhaustive: a new variant forces a decision
//! about its status, code and message.

use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use portcullis_openai::{ApiError, ErrorKind};

use crate::body::{ProxyBody, full};

/// Who caused a rejection: a metric label and, later, an audit field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// The request was wrong.
    Client,
    /// The upstream failed.
    Upstream,
    /// The gateway itself (overload, shutdown, bug).
    Internal,
}

impl Origin {
    /// Label value.
    pub fn label(self) -> &'static str {
        match self {
            Self::Client => "client",
            Self::Upstream => "upstream",
            Self::Internal => "internal",
        }
    }
}

/// Which upstream step timed out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeoutPhase {
    /// TCP/TLS connect.
    Connect,
    /// Waiting for the response headers.
    FirstByte,
    /// Silence while reading the response body.
    Idle,
}

/// A refused or failed exchange.
#[derive(Debug, Clone)]
pub enum Reject {
    /// The body failed validation (malformed JSON, wrong type, missing field).
    InvalidRequest(ApiError),
    /// The body exceeded `limits.max_body_bytes`.
    BodyTooLarge {
        /// The limit in bytes.
        limit: u64,
    },
    /// The client did not send the body within `timeouts.client_body_ms`.
    BodyTimeout,
    /// The client connection failed while sending the body.
    BodyAborted,
    /// No upstream serves the requested model.
    ModelNotFound {
        /// The model as requested.
        model: String,
    },
    /// No route for this path.
    RouteNotFound,
    /// Known path, wrong method.
    MethodNotAllowed {
        /// The allowed method.
        allow: &'static str,
    },
    /// `limits.max_concurrent_requests` requests are already in flight.
    Overloaded,
    /// The gateway is draining for shutdown.
    ShuttingDown,
    /// The upstream could not be reached.
    UpstreamConnect {
        /// Upstream name.
        upstream: Arc<str>,
    },
    /// An upstream step took too long.
    UpstreamTimeout {
        /// Upstream name.
        upstream: Arc<str>,
        /// Which step.
        phase: TimeoutPhase,
    },
    /// The upstream connection broke before a complete response.
    UpstreamReset {
        /// Upstream name.
        upstream: Arc<str>,
    },
    /// The upstream answered 5xx.
    UpstreamStatus {
        /// Upstream name.
        upstream: Arc<str>,
        /// Its status.
        status: u16,
        /// Its error message, when it sent an OpenAI-shaped one.
        message: Option<String>,
    },
    /// The upstream's answer broke the API contract (not JSON, too large).
    UpstreamBadResponse {
        /// Upstream name.
        upstream: Arc<str>,
        /// What was wrong, lowercase.
        reason: &'static str,
    },
    /// The policy denied the request or the answer.
    PolicyDenied {
        /// The violation's code, from the policy (sanitised).
        code: String,
        /// The client-facing message (with reasons unless configured otherwise).
        message: String,
    },
    /// The policy could not decide and the failure mode is closed.
    PolicyFailed,
    /// The audit log cannot take the decision's event (its queue is full) and
    /// `audit.on_full` is `block`: the exchange is refused rather than left unrecorded.
    AuditUnavailable,
    /// No credential, or one that did not verify. Why it failed is logged, never sent.
    Unauthenticated,
    /// A JWT's issuer keys could not be fetched and none are cached.
    AuthUnavailable,
    /// A rate limit or token budget is spent.
    RateLimited {
        /// The rule's name.
        rule: Arc<str>,
        /// Which limit.
        limit_kind: portcullis_store::limits::LimitKind,
        /// The limit.
        limit: u64,
        /// Whole seconds until the window that refused ends (at least 1).
        retry_after_secs: u64,
    },
    /// The rate-limit counters could not be read and `rate_limits.on_error` is `deny`.
    RateLimitUnavailable,
}

impl Reject {
    /// Who caused it.
    pub fn origin(&self) -> Origin {
        match self {
            Self::InvalidRequest(_)
            | Self::BodyTooLarge { .. }
            | Self::BodyTimeout
            | Self::BodyAborted
            | Self::ModelNotFound { .. }
            | Self::RouteNotFound
            | Self::MethodNotAllowed { .. }
            | Self::PolicyDenied { .. }
            | Self::Unauthenticated
            | Self::RateLimited { .. } => Origin::Client,
            Self::Overloaded
            | Self::ShuttingDown
            | Self::PolicyFailed
            | Self::AuditUnavailable
            | Self::AuthUnavailable
            | Self::RateLimitUnavailable => Origin::Internal,
            Self::UpstreamConnect { .. }
            | Self::UpstreamTimeout { .. }
            | Self::UpstreamReset { .. }
            | Self::UpstreamStatus { .. }
            | Self::UpstreamBadResponse { .. } => Origin::Upstream,
        }
    }

    /// Whether the same request may succeed if retried later.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::InvalidRequest(_)
            | Self::BodyTooLarge { .. }
            | Self::ModelNotFound { .. }
            | Self::RouteNotFound
            | Self::MethodNotAllowed { .. }
            | Self::UpstreamBadResponse { .. }
            | Self::PolicyDenied { .. }
            | Self::PolicyFailed
            | Self::Unauthenticated => false,
            Self::BodyTimeout
            | Self::AuthUnavailable
            | Self::RateLimited { .. }
            | Self::RateLimitUnavailable
            | Self::BodyAborted
            | Self::Overloaded
            | Self::ShuttingDown
            | Self::UpstreamConnect { .. }
            | Self::UpstreamTimeout { .. }
            | Self::UpstreamReset { .. }
            | Self::UpstreamStatus { .. }
            | Self::AuditUnavailable => true,
        }
    }

    /// The HTTP status and the OpenAI-shaped error.
    pub fn api_error(&self) -> (StatusCode, ApiError) {
        use ErrorKind::{Authentication, InvalidRequest, RateLimit, Server, Upstream};
        match self {
            Self::InvalidRequest(error) => (StatusCode::BAD_REQUEST, error.clone()),
            Self::BodyTooLarge { limit } => (
                StatusCode::PAYLOAD_TOO_LARGE,
                ApiError::new(
                    InvalidRequest,
                    "request_too_large",
                    format!("request body exceeds the limit of {limit} bytes"),
                ),
            ),
            Self::BodyTimeout => (
                StatusCode::REQUEST_TIMEOUT,
                ApiError::new(
                    InvalidRequest,
                    "request_timeout",
                    "request body was not received in time",
                ),
            ),
            Self::BodyAborted => (
                StatusCode::BAD_REQUEST,
                ApiError::new(
                    InvalidRequest,
                    "request_aborted",
                    "request body could not be read",
                ),
            ),
            Self::ModelNotFound { model } => {
                let mut error = ApiError::new(
                    InvalidRequest,
                    "model_not_found",
                    format!(
                        "the model `{}` does not exist or is not served by this gateway",
                        shorten(model)
                    ),
                );
                error.param = Some("model".into());
                (StatusCode::NOT_FOUND, error)
            }
            Self::RouteNotFound => (
                StatusCode::NOT_FOUND,
                ApiError::new(
                    InvalidRequest,
                    "route_not_found",
                    "no such route on this gateway",
                ),
            ),
            Self::MethodNotAllowed { allow } => (
                StatusCode::METHOD_NOT_ALLOWED,
                ApiError::new(
                    InvalidRequest,
                    "method_not_allowed",
                    format!("this route only accepts {allow}"),
                ),
            ),
            Self::Overloaded => (
                StatusCode::TOO_MANY_REQUESTS,
                ApiError::new(
                    RateLimit,
                    "concurrency_limit_exceeded",
                    "too many requests in flight, retry shortly",
                ),
            ),
            Self::ShuttingDown => (
                StatusCode::SERVICE_UNAVAILABLE,
                ApiError::new(
                    Server,
                    "shutting_down",
                    "the gateway is shutting down, retry on another replica",
                ),
            ),
            Self::UpstreamConnect { upstream } => (
                StatusCode::BAD_GATEWAY,
                ApiError::new(
                    Upstream,
                    "upstream_unavailable",
                    format!("upstream `{upstream}` could not be reached"),
                ),
            ),
            Self::UpstreamTimeout { upstream, phase } => {
                let what = match phase {
                    TimeoutPhase::Connect => "connecting",
                    TimeoutPhase::FirstByte => "waiting for the response",
                    TimeoutPhase::Idle => "reading the response",
                };
                (
                    StatusCode::GATEWAY_TIMEOUT,
                    ApiError::new(
                        Upstream,
                        "upstream_timeout",
                        format!("upstream `{upstream}` timed out {what}"),
                    ),
                )
            }
            Self::UpstreamReset { upstream } => (
                StatusCode::BAD_GATEWAY,
                ApiError::new(
                    Upstream,
                    "upstream_reset",
                    format!(
                        "upstream `{upstream}` closed the connection before a complete response"
                    ),
                ),
            ),
            Self::UpstreamStatus {
                upstream,
                status,
                message,
            } => {
                let text = match message {
                    Some(detail) => format!(
                        "upstream `{upstream}` returned {status}: {}",
                        shorten(detail)
                    ),
                    None => format!("upstream `{upstream}` returned {status}"),
                };
                (
                    StatusCode::BAD_GATEWAY,
                    ApiError::new(Upstream, "upstream_error", text),
                )
            }
            Self::UpstreamBadResponse { upstream, reason } => (
                StatusCode::BAD_GATEWAY,
                ApiError::new(
                    Upstream,
                    "upstream_bad_response",
                    format!("upstream `{upstream}` sent an invalid response: {reason}"),
                ),
            ),
            Self::PolicyDenied { code, message } => {
                let mut error = ApiError::new(
                    ErrorKind::PolicyViolation,
                    "policy_violation",
                    message.clone(),
                );
                error.code = Some(code.clone().into());
                (StatusCode::BAD_REQUEST, error)
            }
            Self::PolicyFailed => (
                StatusCode::INTERNAL_SERVER_ERROR,
                ApiError::new(
                    Server,
                    "policy_error",
                    "the policy could not decide, so the request was refused",
                ),
            ),
            Self::AuditUnavailable => (
                StatusCode::SERVICE_UNAVAILABLE,
                ApiError::new(
                    Server,
                    "audit_unavailable",
                    "the audit log cannot record this decision, so the request was refused; retry shortly",
                ),
            ),
            Self::Unauthenticated => (
                StatusCode::UNAUTHORIZED,
                ApiError::new(
                    Authentication,
                    "invalid_api_key",
                    "missing or invalid credentials: send `Authorization: Bearer <API key or token>`",
                ),
            ),
            Self::AuthUnavailable => (
                StatusCode::SERVICE_UNAVAILABLE,
                ApiError::new(
                    Server,
                    "authentication_unavailable",
                    "credentials cannot be verified right now; retry shortly",
                ),
            ),
            Self::RateLimited {
                rule,
                limit_kind,
                limit,
                retry_after_secs,
            } => {
                use portcullis_store::limits::LimitKind;
                let (what, code) = match limit_kind {
                    LimitKind::Requests => ("requests per minute", "rate_limit_exceeded"),
                    LimitKind::TokensPerMinute => ("tokens per minute", "token_budget_exceeded"),
                    LimitKind::TokensPerDay => ("tokens per day", "token_budget_exceeded"),
                };
                (
                    StatusCode::TOO_MANY_REQUESTS,
                    ApiError::new(
                        RateLimit,
                        code,
                        format!(
                            "rate limit `{}` reached on {what} (limit {limit}); retry in {retry_after_secs}s",
                            shorten(rule)
                        ),
                    ),
                )
            }
            Self::RateLimitUnavailable => (
                StatusCode::SERVICE_UNAVAILABLE,
                ApiError::new(
                    Server,
                    "rate_limit_unavailable",
                    "rate limits cannot be checked right now, so the request was refused; retry shortly",
                ),
            ),
        }
    }

    /// The machine-readable code as a bounded metric label: a policy's own codes all count
    /// as `policy_violation`.
    pub fn code(&self) -> &'static str {
        match self.api_error().1.code {
            Some(std::borrow::Cow::Borrowed(code)) => code,
            Some(std::borrow::Cow::Owned(_)) => "policy_violation",
            None => "unknown",
        }
    }

    /// A header the response must carry besides the body.
    fn extra_header(&self) -> Option<(header::HeaderName, HeaderValue)> {
        match self {
            Self::Overloaded
            | Self::ShuttingDown
            | Self::AuditUnavailable
            | Self::AuthUnavailable
            | Self::RateLimitUnavailable => {
                Some((header::RETRY_AFTER, HeaderValue::from_static("1")))
            }
            Self::RateLimited {
                retry_after_secs, ..
            } => Some((header::RETRY_AFTER, HeaderValue::from(*retry_after_secs))),
            Self::Unauthenticated => Some((
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"portcullis\""),
            )),
            Self::MethodNotAllowed { allow } => {
                Some((header::ALLOW, HeaderValue::from_static(allow)))
            }
            Self::InvalidRequest(_)
            | Self::BodyTooLarge { .. }
            | Self::BodyTimeout
            | Self::BodyAborted
            | Self::ModelNotFound { .. }
            | Self::RouteNotFound
            | Self::UpstreamConnect { .. }
            | Self::UpstreamTimeout { .. }
            | Self::UpstreamReset { .. }
            | Self::UpstreamStatus { .. }
            | Self::UpstreamBadResponse { .. }
            | Self::PolicyDenied { .. }
            | Self::PolicyFailed => None,
        }
    }

    /// The OpenAI-shaped JSON response.
    pub fn into_response(self) -> Response<ProxyBody> {
        let (status, error) = self.api_error();
        let mut response = Response::new(full(Bytes::from(error.to_json())));
        *response.status_mut() = status;
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        if let Some((name, value)) = self.extra_header() {
            headers.insert(name, value);
        }
        response
    }
}

/// Keeps caller-supplied text in messages short.
fn shorten(text: &str) -> &str {
    match text.char_indices().nth(200) {
        Some((i, _)) => &text[..i],
        None => text,
    }
}
