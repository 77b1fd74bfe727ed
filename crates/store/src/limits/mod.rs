//! Token budgets and request-rate limits: fixed-window counters in memory or in Redis.
//!
//! The proxy builds one [`Budget`] per limit that applies to an exchange (per user, per model,
//! per tenant...), asks [`Limiter::admit`] before forwarding it, and corrects the token estimate
//! with [`Limiter::settle`] once the upstream reported the real usage.
//!
//! # Windows
//!
//! Windows are fixed and aligned to the Unix epoch (UTC): minute `k` is `[k*60 s, (k+1)*60 s)`,
//! day `k` is `[k*86400 s, (k+1)*86400 s)`. The time is the caller's `now_ms`, so tests control it.
//!
//! # Semantics (identical in both backends, and atomic)
//!
//! - [`Limiter::admit`] checks every limit of every budget in the ask: requests this minute + 1
//!   ≤ `requests_per_minute`, tokens this minute + `ask.tokens` ≤ `tokens_per_minute`, tokens
//!   today + `ask.tokens` ≤ `tokens_per_day`. A counter already at or over its limit refuses
//!   even an ask of 0 tokens; a limit of 0 refuses everything. If every check passes, every
//!   counter is incremented (requests by 1, token windows by `ask.tokens`) and the
//!   [`Reservation`] remembers the token counters it charged. If any check fails, *nothing* is
//!   incremented and the [`Refusal`] is the failing check whose window ends last (the client
//!   has to wait for all of them); ties go to the first budget, then requests before tokens
//!   per minute before tokens per day.
//! - Only limits that are set are counted: a `None` limit is neither checked nor counted, so
//!   a budget with no limits at all always admits and costs nothing. [`Limiter::usage`] reads
//!   0 for a window that is not counted.
//! - [`Limiter::settle`] adds `actual - reserved` (possibly negative) to exactly the token
//!   counters the reservation charged: the windows current at admit time, even when the clock
//!   has moved on since. A counter never goes below 0, and a counter that has expired in the
//!   meantime is left alone (never recreated).
//! - Counters live for their window plus a grace of [`GRACE`] (so a late `settle` still finds
//!   them), then disappear.
//! - Counts above 2^53 (limits, tokens) are treated as 2^53: Redis runs the scripts with Lua
//!   doubles, which are exact up to there, and the memory backend clamps the same way.
//!
//! # Failures
//!
//! Every Redis call is bounded by the limiter's timeout and fails with
//! [`LimitError::Unavailable`]; the caller decides whether that fails open or closed. A call
//! that timed out may still have been applied by Redis afterwards (the counters err on the side
//! of counting too much, never too little).

mod memory;
mod redis;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use self::memory::MemoryLimiter;
use self::redis::RedisLimiter;

/// Length of a minute window in milliseconds.
const MINUTE_MS: u64 = 60_000;
/// Length of a day window in milliseconds.
const DAY_MS: u64 = 86_400_000;
/// How long a counter outlives its window, so that a late `settle` can still correct it.
pub const GRACE: Duration = Duration::from_secs(60);
/// Counts are clamped here, the largest integer a Lua double (Redis scripts) holds exactly.
const MAX_COUNT: u64 = 1 << 53;

/// One set of limits, counted under its own key.
///
/// Fixed windows aligned to the Unix epoch (UTC): a minute is `[k*60s, (k+1)*60s)`, a day is
/// `[k*86400s, (k+1)*86400s)`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Budget {
    /// Caller-built identity of the budget, e.g. `"per-user|principal=alice|model=gpt-4o"`. Any
    /// UTF-8; the backends make it safe as a key. Budgets in one ask should have distinct keys.
    pub key: String,
    /// At most this many admitted requests per minute window.
    pub requests_per_minute: Option<u64>,
    /// At most this many tokens per minute window.
    pub tokens_per_minute: Option<u64>,
    /// At most this many tokens per day window (UTC).
    pub tokens_per_day: Option<u64>,
}

/// One admission question: may an exchange that needs `tokens` go ahead under all `budgets`?
#[derive(Clone, Copy, Debug)]
pub struct Ask<'a> {
    /// Every budget that applies; all must admit.
    pub budgets: &'a [Budget],
    /// Tokens to reserve now (the prompt estimate).
    pub tokens: u64,
    /// Wall clock, ms since the Unix epoch (injected so tests control time).
    pub now_ms: u64,
}

/// Which limit of a budget refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum LimitKind {
    /// `requests_per_minute`.
    Requests,
    /// `tokens_per_minute`.
    TokensPerMinute,
    /// `tokens_per_day`.
    TokensPerDay,
}

impl LimitKind {
    /// `"requests"`, `"tokens_per_minute"` or `"tokens_per_day"`: a metric label and a header
    /// value.
    pub fn as_str(self) -> &'static str {
        match self {
            LimitKind::Requests => "requests",
            LimitKind::TokensPerMinute => "tokens_per_minute",
            LimitKind::TokensPerDay => "tokens_per_day",
        }
    }
}

impl fmt::Display for LimitKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why an ask was refused: the failing check whose window ends last.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    /// Index into [`Ask::budgets`] of the refusing budget.
    pub budget: usize,
    /// Which of its limits refused.
    pub kind: LimitKind,
    /// That limit.
    pub limit: u64,
    /// What is left of it in the current window (0 when used up).
    pub remaining: u64,
    /// Until the refusing window ends, rounded up to whole seconds, at least 1 s.
    pub retry_after: Duration,
}

/// The outcome of [`Limiter::admit`].
#[must_use]
#[derive(Clone, Debug)]
pub enum Admission {
    /// Every budget admitted and was charged; settle the reservation when the real token count
    /// is known.
    Admitted(Reservation),
    /// Some budget refused; nothing was charged.
    Refused(Refusal),
}

/// What an admission charged: the token counters (the windows current at admit time) and the
/// tokens reserved in each. Opaque; hand it back to [`Limiter::settle`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reservation {
    counters: Vec<Counter>,
    tokens: u64,
}

impl Reservation {
    /// Tokens this reservation charged to each of its counters.
    pub fn tokens(&self) -> u64 {
        self.tokens
    }
}

/// Current counters of one budget.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BudgetUsage {
    /// Requests admitted in the current minute (0 when `requests_per_minute` is not set).
    pub requests_this_minute: u64,
    /// Tokens counted in the current minute (0 when `tokens_per_minute` is not set).
    pub tokens_this_minute: u64,
    /// Tokens counted in the current UTC day (0 when `tokens_per_day` is not set).
    pub tokens_today: u64,
}

/// Why the limiter could not answer.
#[derive(Debug, thiserror::Error)]
pub enum LimitError {
    /// The backend is unreachable, timed out or answered with an error.
    #[error("limits backend unavailable: {0}")]
    Unavailable(String),
    /// The memory backend holds `max_keys` live counters and none can be dropped yet.
    #[error("limits memory backend is full")]
    Full,
}

/// Counts requests and tokens per budget, in this process or in a shared Redis.
///
/// Cheap to clone: clones share the counters (memory) or the connection (Redis).
#[derive(Clone)]
pub struct Limiter {
    backend: Backend,
}

#[derive(Clone)]
enum Backend {
    /// Counters in this process: exact, but each replica counts on its own.
    Memory(Arc<MemoryLimiter>),
    /// Counters in one Redis shared by all replicas.
    Redis(RedisLimiter),
}

impl fmt::Debug for Limiter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Limiter")
            .field("backend", &self.backend())
            .finish_non_exhaustive()
    }
}

impl Limiter {
    /// Counters in this process, at most `max_keys` live counters (one per budget, set limit
    /// and window). Exact, but each replica counts on its own.
    pub fn memory(max_keys: usize) -> Self {
        let backend = Backend::Memory(Arc::new(MemoryLimiter::new(max_keys)));
        Limiter { backend }
    }

    /// Connects to the Redis at `url` (bounded by `timeout`) and loads the scripts; every later
    /// call is bounded by `timeout` too. Keys start with `key_prefix`.
    ///
    /// The admit script touches the keys of several budgets at once, so this needs a single
    /// Redis (optionally behind Sentinel), not Redis Cluster.
    pub async fn redis(url: &str, key_prefix: &str, timeout: Duration) -> Result<Self, LimitError> {
        let redis = RedisLimiter::connect(url, key_prefix, timeout).await?;
        Ok(Limiter {
            backend: Backend::Redis(redis),
        })
    }

    /// Checks every budget of the ask and, only if all admit, charges them all. See the module
    /// docs for the exact rule.
    pub async fn admit(&self, ask: &Ask<'_>) -> Result<Admission, LimitError> {
        match &self.backend {
            Backend::Memory(memory) => memory.admit(ask),
            Backend::Redis(redis) => redis.admit(ask).await,
        }
    }

    /// Corrects a reservation with the tokens the upstream actually reported (may be more or
    /// fewer than reserved).
    pub async fn settle(
        &self,
        reservation: &Reservation,
        actual_tokens: u64,
    ) -> Result<(), LimitError> {
        match &self.backend {
            Backend::Memory(memory) => {
                memory.settle(reservation, actual_tokens);
                Ok(())
            }
            Backend::Redis(redis) => redis.settle(reservation, actual_tokens).await,
        }
    }

    /// Current counters of one budget at `now_ms` (requests this minute, tokens this minute,
    /// tokens today), for tests and the admin API.
    pub async fn usage(&self, budget: &Budget, now_ms: u64) -> Result<BudgetUsage, LimitError> {
        match &self.backend {
            Backend::Memory(memory) => Ok(memory.usage(budget, now_ms)),
            Backend::Redis(redis) => redis.usage(budget, now_ms).await,
        }
    }

    /// `"memory"` or `"redis"`.
    pub fn backend(&self) -> &'static str {
        match &self.backend {
            Backend::Memory(_) => "memory",
            Backend::Redis(_) => "redis",
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The rule both backends apply, on counters they read atomically.

/// One fixed window of one limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Window {
    /// Requests in minute `k`.
    Requests(u64),
    /// Tokens in minute `k`.
    TokensPerMinute(u64),
    /// Tokens in day `k`.
    TokensPerDay(u64),
}

impl Window {
    fn kind(self) -> LimitKind {
        match self {
            Window::Requests(_) => LimitKind::Requests,
            Window::TokensPerMinute(_) => LimitKind::TokensPerMinute,
            Window::TokensPerDay(_) => LimitKind::TokensPerDay,
        }
    }

    /// The window of `kind` that holds `now_ms`.
    fn at(kind: LimitKind, now_ms: u64) -> Window {
        match kind {
            LimitKind::Requests => Window::Requests(now_ms / MINUTE_MS),
            LimitKind::TokensPerMinute => Window::TokensPerMinute(now_ms / MINUTE_MS),
            LimitKind::TokensPerDay => Window::TokensPerDay(now_ms / DAY_MS),
        }
    }

    fn index(self) -> u64 {
        match self {
            Window::Requests(k) | Window::TokensPerMinute(k) | Window::TokensPerDay(k) => k,
        }
    }

    fn length_ms(self) -> u64 {
        match self.kind() {
            LimitKind::Requests | LimitKind::TokensPerMinute => MINUTE_MS,
            LimitKind::TokensPerDay => DAY_MS,
        }
    }

    fn ends_at_ms(self) -> u64 {
        self.index()
            .saturating_add(1)
            .saturating_mul(self.length_ms())
    }

    /// Short tag in Redis keys: `r`, `tm`, `td`.
    fn tag(self) -> &'static str {
        match self {
            Window::Requests(_) => "r",
            Window::TokensPerMinute(_) => "tm",
            Window::TokensPerDay(_) => "td",
        }
    }

    fn counts_tokens(self) -> bool {
        !matches!(self, Window::Requests(_))
    }
}

/// One counter: a budget's window.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct Counter {
    budget_key: String,
    window: Window,
}

/// One limit an ask must pass: its counter, the limit and what admitting adds.
#[derive(Clone, Debug)]
struct Check {
    budget: usize,
    counter: Counter,
    limit: u64,
    increment: u64,
}

impl Check {
    fn passes(&self, used: u64) -> bool {
        used < self.limit && used.saturating_add(self.increment) <= self.limit
    }
}

/// The checks of an ask, in order: budget by budget, requests, tokens per minute, tokens per day.
fn checks(ask: &Ask<'_>) -> Vec<Check> {
    let tokens = clamp(ask.tokens);
    let mut checks = Vec::with_capacity(ask.budgets.len() * 3);
    for (index, budget) in ask.budgets.iter().enumerate() {
        let limits = [
            (LimitKind::Requests, budget.requests_per_minute, 1),
            (LimitKind::TokensPerMinute, budget.tokens_per_minute, tokens),
            (LimitKind::TokensPerDay, budget.tokens_per_day, tokens),
        ];
        for (kind, limit, increment) in limits {
            let Some(limit) = limit else { continue };
            checks.push(Check {
                budget: index,
                counter: Counter {
                    budget_key: budget.key.clone(),
                    window: Window::at(kind, ask.now_ms),
                },
                limit: clamp(limit),
                increment,
            });
        }
    }
    checks
}

/// The refusal to report given the counters' values before the ask (`used[i]` for
/// `checks[i]`), or `None` when every check passes.
fn refusal(checks: &[Check], used: &[u64], now_ms: u64) -> Option<Refusal> {
    let mut worst: Option<Refusal> = None;
    for (check, &used) in checks.iter().zip(used) {
        if check.passes(used) {
            continue;
        }
        let candidate = Refusal {
            budget: check.budget,
            kind: check.counter.window.kind(),
            limit: check.limit,
            remaining: check.limit.saturating_sub(used),
            retry_after: retry_after(check.counter.window, now_ms),
        };
        if worst
            .as_ref()
            .is_none_or(|worst| candidate.retry_after > worst.retry_after)
        {
            worst = Some(candidate);
        }
    }
    worst
}

/// What an admission of `checks` charged to token counters.
fn reservation(checks: &[Check], ask: &Ask<'_>) -> Reservation {
    let mut counters: Vec<Counter> = Vec::new();
    for check in checks {
        if check.counter.window.counts_tokens() && !counters.contains(&check.counter) {
            counters.push(check.counter.clone());
        }
    }
    Reservation {
        counters,
        tokens: clamp(ask.tokens),
    }
}

/// What `settle` adds to each charged counter.
fn settle_delta(reservation: &Reservation, actual_tokens: u64) -> i64 {
    // Both sides are clamped to 2^53, so they and their difference fit an i64.
    let to_i64 = |count: u64| i64::try_from(clamp(count)).unwrap_or(i64::MAX);
    to_i64(actual_tokens) - to_i64(reservation.tokens)
}

/// From `now_ms` to the end of `window`, rounded up to whole seconds, at least 1 s.
fn retry_after(window: Window, now_ms: u64) -> Duration {
    let left_ms = window.ends_at_ms().saturating_sub(now_ms);
    Duration::from_secs(left_ms.div_ceil(1000).max(1))
}

fn clamp(count: u64) -> u64 {
    count.min(MAX_COUNT)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn budget(rpm: Option<u64>, tpm: Option<u64>, tpd: Option<u64>) -> Budget {
        Budget {
            key: "b".to_owned(),
            requests_per_minute: rpm,
            tokens_per_minute: tpm,
            tokens_per_day: tpd,
        }
    }

    #[test]
    fn windows_align_to_the_epoch() {
        assert_eq!(Window::at(LimitKind::Requests, 59_999), Window::Requests(0));
        assert_eq!(Window::at(LimitKind::Requests, 60_000), Window::Requests(1));
        assert_eq!(
            Window::at(LimitKind::TokensPerDay, DAY_MS),
            Window::TokensPerDay(1)
        );
        assert_eq!(Window::Requests(1).ends_at_ms(), 120_000);
        assert_eq!(Window::TokensPerDay(0).ends_at_ms(), DAY_MS);
    }

    #[test]
    fn retry_after_rounds_up_and_is_at_least_a_second() {
        let window = Window::Requests(0);
        assert_eq!(retry_after(window, 0), Duration::from_secs(60));
        assert_eq!(retry_after(window, 1), Duration::from_secs(60));
        assert_eq!(retry_after(window, 59_001), Duration::from_secs(1));
        assert_eq!(retry_after(window, 59_999), Duration::from_secs(1));
        assert_eq!(retry_after(window, 60_000), Duration::from_secs(1));
    }

    #[test]
    fn unset_limits_make_no_checks() {
        let budgets = [budget(None, None, None), budget(Some(1), None, Some(5))];
        let ask = Ask {
            budgets: &budgets,
            tokens: 3,
            now_ms: 0,
        };
        let kinds: Vec<_> = checks(&ask)
            .iter()
            .map(|check| (check.budget, check.counter.window.kind(), check.increment))
            .collect();
        assert_eq!(
            kinds,
            [(1, LimitKind::Requests, 1), (1, LimitKind::TokensPerDay, 3)]
        );
    }

    #[test]
    fn a_full_counter_refuses_even_zero_tokens() {
        let budgets = [budget(None, Some(10), None)];
        let ask = Ask {
            budgets: &budgets,
            tokens: 0,
            now_ms: 0,
        };
        let checks = checks(&ask);
        assert!(refusal(&checks, &[9], 0).is_none());
        let refused = refusal(&checks, &[10], 0).map(|refusal| refusal.remaining);
        assert_eq!(refused, Some(0));
    }

    #[test]
    fn the_longest_wait_is_reported_and_ties_go_to_the_first() {
        let budgets = [budget(Some(1), Some(1), None), budget(None, None, Some(1))];
        let ask = Ask {
            budgets: &budgets,
            tokens: 1,
            now_ms: 30_000,
        };
        let checks = checks(&ask);
        let minute_only = refusal(&checks, &[1, 1, 0], 30_000).map(|r| (r.budget, r.kind));
        assert_eq!(minute_only, Some((0, LimitKind::Requests)));
        let all = refusal(&checks, &[1, 1, 1], 30_000).map(|r| (r.budget, r.kind));
        assert_eq!(all, Some((1, LimitKind::TokensPerDay)));
    }

    #[test]
    fn settle_delta_is_signed_and_clamped() {
        let reservation = Reservation {
            counters: Vec::new(),
            tokens: 100,
        };
        assert_eq!(settle_delta(&reservation, 250), 150);
        assert_eq!(settle_delta(&reservation, 0), -100);
        assert_eq!(settle_delta(&reservation, u64::MAX), (1 << 53) - 100);
    }
}
