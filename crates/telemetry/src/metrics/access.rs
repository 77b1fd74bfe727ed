//! Who got in and who was held back: authentication outcomes and rate-limit decisions. Every
//! label is a closed set named by an enum here; credentials and principal ids never become
//! labels.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

use super::Metrics;

/// How a request's authentication ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthOutcome {
    /// An API key matched.
    ApiKey,
    /// A JWT verified.
    Jwt,
    /// No credential, and anonymous access is allowed.
    Anonymous,
    /// No credential, and one is required (401).
    Missing,
    /// A credential that did not verify (401).
    Invalid,
    /// A JWT whose issuer keys could not be fetched (503).
    Unavailable,
}

impl AuthOutcome {
    fn label(self) -> &'static str {
        match self {
            Self::ApiKey => "api_key",
            Self::Jwt => "jwt",
            Self::Anonymous => "anonymous",
            Self::Missing => "missing",
            Self::Invalid => "invalid",
            Self::Unavailable => "unavailable",
        }
    }
}

/// What the rate limiter said.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateLimitOutcome {
    /// Every applicable budget had room.
    Admitted,
    /// Refused on a requests-per-minute limit.
    RefusedRequests,
    /// Refused on a tokens-per-minute budget.
    RefusedTokensPerMinute,
    /// Refused on a tokens-per-day budget.
    RefusedTokensPerDay,
    /// The counters could not be read (the failure mode decided).
    Unavailable,
}

impl RateLimitOutcome {
    fn label(self) -> &'static str {
        match self {
            Self::Admitted => "admitted",
            Self::RefusedRequests => "refused_requests",
            Self::RefusedTokensPerMinute => "refused_tokens_per_minute",
            Self::RefusedTokensPerDay => "refused_tokens_per_day",
            Self::Unavailable => "unavailable",
        }
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: &'static str,
}

/// The access families, registered with the rest.
#[derive(Debug)]
pub(super) struct AccessMetrics {
    auth: Family<OutcomeLabels, Counter>,
    rate_limits: Family<OutcomeLabels, Counter>,
    settled_tokens: Counter,
}

impl AccessMetrics {
    pub(super) fn register(registry: &mut Registry) -> Self {
        let auth = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "auth",
            "Authentication outcomes: api_key, jwt, anonymous, missing, invalid, unavailable",
            auth.clone(),
        );
        let rate_limits = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "rate_limit_decisions",
            "Rate-limit checks: admitted, refused by which limit, or unavailable",
            rate_limits.clone(),
        );
        let settled_tokens = Counter::default();
        registry.register(
            "rate_limit_settled_tokens",
            "Tokens charged to budgets from upstream usage reports",
            settled_tokens.clone(),
        );
        Self {
            auth,
            rate_limits,
            settled_tokens,
        }
    }
}

impl Metrics {
    /// Counts one authentication outcome.
    pub fn auth(&self, outcome: AuthOutcome) {
        self.access
            .auth
            .get_or_create(&OutcomeLabels {
                outcome: outcome.label(),
            })
            .inc();
    }

    /// Counts one rate-limit check.
    pub fn rate_limit(&self, outcome: RateLimitOutcome) {
        self.access
            .rate_limits
            .get_or_create(&OutcomeLabels {
                outcome: outcome.label(),
            })
            .inc();
    }

    /// Counts tokens an upstream reported for a rate-limited exchange.
    pub fn rate_limit_settled(&self, tokens: u64) {
        self.access.settled_tokens.inc_by(tokens);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn access_outcomes_are_counted_with_closed_labels() {
        let metrics = Metrics::new();
        metrics.auth(AuthOutcome::Invalid);
        metrics.auth(AuthOutcome::Invalid);
        metrics.rate_limit(RateLimitOutcome::RefusedTokensPerDay);
        metrics.rate_limit_settled(42);
        let text = metrics.encode();
        assert!(
            text.contains(r#"portcullis_auth_total{outcome="invalid"} 2"#),
            "{text}"
        );
        assert!(
            text.contains(
                r#"portcullis_rate_limit_decisions_total{outcome="refused_tokens_per_day"} 1"#
            ),
            "{text}"
        );
        assert!(
            text.contains("portcullis_rate_limit_settled_tokens_total 42"),
            "{text}"
        );
    }
}
