//! One limits behaviour suite, run against both backends.
//!
//! Each behaviour is an `async fn(TestLimiter)` written once; `both!(name)` instantiates it as
//! `name::memory` and `name::redis`. Redis runs against the server at
//! `PORTCULLIS_TEST_REDIS_URL` (default `redis://127.0.0.1:6379`), each test under a fresh key
//! prefix whose keys are deleted afterwards. An unreachable server fails the Redis tests: they
//! are never skipped.
//!
//! Time is injected (`now_ms`), so windows roll over without waiting. Run one backend with
//! `cargo test -p portcullis-store --test limits ::memory` (or `::redis`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use portcullis_store::{
    Admission, Ask, Budget, BudgetUsage, LimitError, LimitKind, Limiter, Refusal, Reservation,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

const REDIS_URL_VAR: &str = "PORTCULLIS_TEST_REDIS_URL";
const DEFAULT_REDIS_URL: &str = "redis://127.0.0.1:6379";
const TIMEOUT: Duration = Duration::from_secs(5);

const MINUTE_MS: u64 = 60_000;
const DAY_MS: u64 = 86_400_000;
/// Midnight UTC, 2023-11-14: the start of a day, and so of a minute.
const DAY0: u64 = 19_675 * DAY_MS;

/// Instantiates a behaviour for both backends.
macro_rules! both {
    ($name:ident) => {
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn memory() {
                super::run(super::TestLimiter::memory(), super::$name).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn redis() {
                super::run(super::TestLimiter::redis().await, super::$name).await;
            }
        }
    };
}

// ---------------------------------------------------------------------------------------------
// Harness

/// What a behaviour gets: a limiter on counters of its own, and the means to open a second,
/// independent limiter on the same counters.
#[derive(Clone)]
struct TestLimiter {
    limiter: Limiter,
    redis: Option<RedisSandbox>,
}

#[derive(Clone)]
struct RedisSandbox {
    url: String,
    prefix: String,
}

impl TestLimiter {
    fn memory() -> TestLimiter {
        TestLimiter {
            limiter: Limiter::memory(10_000),
            redis: None,
        }
    }

    /// Fails (never skips) when the server cannot be reached.
    async fn redis() -> TestLimiter {
        let url = redis_url();
        let prefix = unique_prefix();
        let limiter = Limiter::redis(&url, &prefix, TIMEOUT)
            .await
            .unwrap_or_else(|err| {
                panic!(
                    "cannot use Redis at {url}: {err}. These tests need a running server: \
                     start one, or point {REDIS_URL_VAR} at one"
                )
            });
        TestLimiter {
            limiter,
            redis: Some(RedisSandbox { url, prefix }),
        }
    }

    /// Another limiter on the same counters: a new Redis connection, as another replica would
    /// have; the same map for memory (a memory limiter is per process).
    async fn another(&self) -> Limiter {
        match &self.redis {
            Some(sandbox) => Limiter::redis(&sandbox.url, &sandbox.prefix, TIMEOUT)
                .await
                .unwrap(),
            None => self.limiter.clone(),
        }
    }

    /// Makes every counter so far expire, as time passing would: memory is told a time a week
    /// later (which prunes), Redis keys are deleted (as their TTL would).
    async fn expire_everything(&self, now_ms: u64) {
        match &self.redis {
            Some(sandbox) => sandbox.delete_keys().await,
            None => {
                let later = now_ms + 7 * DAY_MS;
                self.limiter.usage(&budget("any"), later).await.unwrap();
            }
        }
    }

    async fn admit(&self, budgets: &[Budget], tokens: u64, now_ms: u64) -> Admission {
        admit(&self.limiter, budgets, tokens, now_ms).await
    }

    async fn admitted(&self, budgets: &[Budget], tokens: u64, now_ms: u64) -> Reservation {
        match self.admit(budgets, tokens, now_ms).await {
            Admission::Admitted(reservation) => reservation,
            Admission::Refused(refusal) => panic!("refused: {refusal:?}"),
        }
    }

    async fn refused(&self, budgets: &[Budget], tokens: u64, now_ms: u64) -> Refusal {
        match self.admit(budgets, tokens, now_ms).await {
            Admission::Admitted(reservation) => panic!("admitted: {reservation:?}"),
            Admission::Refused(refusal) => refusal,
        }
    }

    async fn settle(&self, reservation: &Reservation, actual_tokens: u64) {
        self.limiter
            .settle(reservation, actual_tokens)
            .await
            .unwrap();
    }

    async fn usage(&self, budget: &Budget, now_ms: u64) -> BudgetUsage {
        self.limiter.usage(budget, now_ms).await.unwrap()
    }
}

impl RedisSandbox {
    async fn connection(&self) -> redis::aio::MultiplexedConnection {
        redis::Client::open(self.url.as_str())
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .unwrap()
    }

    async fn keys(&self) -> Vec<String> {
        let mut connection = self.connection().await;
        let mut keys = Vec::new();
        let mut cursor = 0_u64;
        loop {
            let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(format!("{}*", self.prefix))
                .arg("COUNT")
                .arg(1000)
                .query_async(&mut connection)
                .await
                .unwrap();
            keys.extend(batch);
            if next == 0 {
                return keys;
            }
            cursor = next;
        }
    }

    async fn delete_keys(&self) {
        let keys = self.keys().await;
        if keys.is_empty() {
            return;
        }
        let mut connection = self.connection().await;
        let _: i64 = redis::cmd("DEL")
            .arg(&keys)
            .query_async(&mut connection)
            .await
            .unwrap();
    }
}

/// Runs one behaviour, deletes its Redis keys whether or not it panicked, then re-raises its
/// panic.
async fn run<B, F>(limiter: TestLimiter, behaviour: B)
where
    B: FnOnce(TestLimiter) -> F,
    F: Future<Output = ()> + Send + 'static,
{
    let outcome = tokio::spawn(behaviour(limiter.clone())).await;
    if let Some(sandbox) = &limiter.redis {
        sandbox.delete_keys().await;
    }
    if let Err(err) = outcome {
        std::panic::resume_unwind(err.into_panic());
    }
}

fn redis_url() -> String {
    std::env::var(REDIS_URL_VAR).unwrap_or_else(|_| DEFAULT_REDIS_URL.into())
}

/// `portcullis-test:<pid>-<counter>-<nanos>:`: unique across parallel tests and processes.
fn unique_prefix() -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.subsec_nanos());
    format!(
        "portcullis-test:{}-{}-{}:",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed),
        nanos
    )
}

// ---------------------------------------------------------------------------------------------
// Fixtures

fn budget(key: &str) -> Budget {
    Budget {
        key: key.to_owned(),
        requests_per_minute: None,
        tokens_per_minute: None,
        tokens_per_day: None,
    }
}

fn rpm(key: &str, limit: u64) -> Budget {
    Budget {
        requests_per_minute: Some(limit),
        ..budget(key)
    }
}

fn tpm(key: &str, limit: u64) -> Budget {
    Budget {
        tokens_per_minute: Some(limit),
        ..budget(key)
    }
}

fn tpd(key: &str, limit: u64) -> Budget {
    Budget {
        tokens_per_day: Some(limit),
        ..budget(key)
    }
}

async fn admit(limiter: &Limiter, budgets: &[Budget], tokens: u64, now_ms: u64) -> Admission {
    try_admit(limiter, budgets, tokens, now_ms).await.unwrap()
}

async fn try_admit(
    limiter: &Limiter,
    budgets: &[Budget],
    tokens: u64,
    now_ms: u64,
) -> Result<Admission, LimitError> {
    let ask = Ask {
        budgets,
        tokens,
        now_ms,
    };
    limiter.admit(&ask).await
}

fn is_admitted(admission: &Admission) -> bool {
    matches!(admission, Admission::Admitted(_))
}

fn usage(requests: u64, tokens_minute: u64, tokens_day: u64) -> BudgetUsage {
    BudgetUsage {
        requests_this_minute: requests,
        tokens_this_minute: tokens_minute,
        tokens_today: tokens_day,
    }
}

// ---------------------------------------------------------------------------------------------
// Requests per minute

both!(requests_per_minute_is_exact);
async fn requests_per_minute_is_exact(t: TestLimiter) {
    let budgets = [rpm("per-user|principal=alice", 5)];
    // 15.5 s into a minute: 44.5 s left, reported as 45 s.
    let now = DAY0 + 10 * MINUTE_MS + 15_500;
    for _ in 0..5 {
        t.admitted(&budgets, 0, now).await;
    }
    let refusal = t.refused(&budgets, 0, now + 1).await;
    assert_eq!(
        refusal,
        Refusal {
            budget: 0,
            kind: LimitKind::Requests,
            limit: 5,
            remaining: 0,
            retry_after: Duration::from_secs(45),
        }
    );
    assert_eq!(refusal.kind.as_str(), "requests");
    assert_eq!(t.usage(&budgets[0], now).await, usage(5, 0, 0));
    // The last millisecond of the minute still waits a whole second.
    let last = DAY0 + 11 * MINUTE_MS - 1;
    let refusal = t.refused(&budgets, 0, last).await;
    assert_eq!(refusal.retry_after, Duration::from_secs(1));
}

both!(a_new_minute_admits_again);
async fn a_new_minute_admits_again(t: TestLimiter) {
    let budgets = [rpm("bob", 2)];
    let minute = DAY0 + 7 * MINUTE_MS;
    t.admitted(&budgets, 0, minute + 59_000).await;
    t.admitted(&budgets, 0, minute + 59_500).await;
    t.refused(&budgets, 0, minute + 59_999).await;
    t.admitted(&budgets, 0, minute + MINUTE_MS).await;
    t.admitted(&budgets, 0, minute + MINUTE_MS + 1).await;
    t.refused(&budgets, 0, minute + MINUTE_MS + 2).await;
    assert_eq!(
        t.usage(&budgets[0], minute + MINUTE_MS).await,
        usage(2, 0, 0)
    );
    assert_eq!(t.usage(&budgets[0], minute).await, usage(2, 0, 0));
}

// ---------------------------------------------------------------------------------------------
// Tokens

both!(tokens_per_minute_admits_only_what_fits);
async fn tokens_per_minute_admits_only_what_fits(t: TestLimiter) {
    let budgets = [tpm("team-a", 100)];
    let now = DAY0 + 30_000;
    let first = t.admitted(&budgets, 60, now).await;
    assert_eq!(first.tokens(), 60);
    let refusal = t.refused(&budgets, 50, now).await;
    assert_eq!(
        (refusal.kind, refusal.limit, refusal.remaining),
        (LimitKind::TokensPerMinute, 100, 40)
    );
    assert_eq!(refusal.retry_after, Duration::from_secs(30));
    t.admitted(&budgets, 40, now).await;
    // Used up: even an estimate of 0 is refused.
    let refusal = t.refused(&budgets, 0, now).await;
    assert_eq!(
        (refusal.kind, refusal.remaining),
        (LimitKind::TokensPerMinute, 0)
    );
    assert_eq!(t.usage(&budgets[0], now).await, usage(0, 100, 0));
    // An estimate larger than the whole limit never fits.
    let refusal = t.refused(&budgets, 101, now + MINUTE_MS).await;
    assert_eq!(refusal.remaining, 100);
}

both!(tokens_per_day_spans_minutes);
async fn tokens_per_day_spans_minutes(t: TestLimiter) {
    let budgets = [tpd("tenant=acme", 100)];
    t.admitted(&budgets, 40, DAY0).await;
    t.admitted(&budgets, 40, DAY0 + 5 * MINUTE_MS).await;
    let at = DAY0 + 23 * 3_600_000;
    let refusal = t.refused(&budgets, 30, at).await;
    assert_eq!(
        refusal,
        Refusal {
            budget: 0,
            kind: LimitKind::TokensPerDay,
            limit: 100,
            remaining: 20,
            retry_after: Duration::from_secs(3600),
        }
    );
    t.admitted(&budgets, 20, at).await;
    assert_eq!(t.usage(&budgets[0], at).await, usage(0, 0, 100));
    // The next UTC day starts from zero.
    t.admitted(&budgets, 100, DAY0 + DAY_MS).await;
}

// ---------------------------------------------------------------------------------------------
// Settle

both!(settle_corrects_up_and_down_and_never_below_zero);
async fn settle_corrects_up_and_down_and_never_below_zero(t: TestLimiter) {
    let budgets = [Budget {
        tokens_per_minute: Some(1000),
        tokens_per_day: Some(5000),
        ..rpm("carol", 100)
    }];
    let now = DAY0 + 3 * MINUTE_MS;
    let first = t.admitted(&budgets, 100, now).await;
    t.settle(&first, 300).await;
    assert_eq!(t.usage(&budgets[0], now).await, usage(1, 300, 300));

    let second = t.admitted(&budgets, 500, now).await;
    assert_eq!(t.usage(&budgets[0], now).await, usage(2, 800, 800));
    t.settle(&second, 200).await;
    assert_eq!(t.usage(&budgets[0], now).await, usage(2, 500, 500));
    // What settling down freed can be used again: 1000 - 500 = 500 left.
    let refusal = t.refused(&budgets, 501, now).await;
    assert_eq!(refusal.remaining, 500);

    // Settling the same reservation down again and again stops at 0.
    t.settle(&second, 0).await;
    t.settle(&second, 0).await;
    t.settle(&second, 0).await;
    assert_eq!(t.usage(&budgets[0], now).await, usage(2, 0, 0));
    // Settling exactly what was reserved changes nothing.
    let third = t.admitted(&budgets, 70, now).await;
    t.settle(&third, 70).await;
    assert_eq!(t.usage(&budgets[0], now).await, usage(3, 70, 70));
}

both!(settle_after_the_minute_rolled_over_touches_the_old_window);
async fn settle_after_the_minute_rolled_over_touches_the_old_window(t: TestLimiter) {
    let budgets = [Budget {
        tokens_per_day: Some(10_000),
        ..tpm("dave", 1000)
    }];
    let old = DAY0 + 40 * MINUTE_MS + 50_000;
    let new = old + 20_000;
    let reservation = t.admitted(&budgets, 100, old).await;
    t.admitted(&budgets, 50, new).await;
    t.settle(&reservation, 400).await;
    assert_eq!(t.usage(&budgets[0], new).await, usage(0, 50, 450));
    assert_eq!(t.usage(&budgets[0], old).await, usage(0, 400, 450));
}

both!(settle_of_expired_counters_does_nothing);
async fn settle_of_expired_counters_does_nothing(t: TestLimiter) {
    let budgets = [Budget {
        tokens_per_day: Some(10_000),
        ..tpm("erin", 1000)
    }];
    let now = DAY0 + 5 * MINUTE_MS;
    let reservation = t.admitted(&budgets, 100, now).await;
    t.expire_everything(now).await;
    t.settle(&reservation, 900).await;
    t.settle(&reservation, 0).await;
    assert_eq!(t.usage(&budgets[0], now).await, usage(0, 0, 0));
    if let Some(sandbox) = &t.redis {
        assert_eq!(sandbox.keys().await, Vec::<String>::new());
    }
}

// ---------------------------------------------------------------------------------------------
// Several budgets

both!(one_refusing_budget_charges_none);
async fn one_refusing_budget_charges_none(t: TestLimiter) {
    let user = Budget {
        tokens_per_minute: Some(1000),
        tokens_per_day: Some(1000),
        ..rpm("user", 10)
    };
    let model = rpm("model", 1);
    let budgets = [user.clone(), model.clone()];
    let now = DAY0 + 12 * MINUTE_MS;
    t.admitted(&budgets, 100, now).await;
    let refusal = t.refused(&budgets, 100, now).await;
    assert_eq!((refusal.budget, refusal.kind), (1, LimitKind::Requests));
    assert_eq!(t.usage(&user, now).await, usage(1, 100, 100));
    assert_eq!(t.usage(&model, now).await, usage(1, 0, 0));
    // The user budget alone still has room.
    t.admitted(std::slice::from_ref(&user), 100, now).await;
    assert_eq!(t.usage(&user, now).await, usage(2, 200, 200));
}

both!(the_longest_retry_after_is_reported);
async fn the_longest_retry_after_is_reported(t: TestLimiter) {
    let minute = rpm("minute", 1);
    let day = tpd("day", 100);
    let now = DAY0 + 22 * 3_600_000 + 30_000;
    t.admitted(&[minute.clone(), day.clone()], 100, now).await;
    for (budgets, day_index) in [([minute.clone(), day.clone()], 1), ([day, minute], 0)] {
        let refusal = t.refused(&budgets, 1, now).await;
        assert_eq!(
            refusal,
            Refusal {
                budget: day_index,
                kind: LimitKind::TokensPerDay,
                limit: 100,
                remaining: 0,
                retry_after: Duration::from_secs(2 * 3600 - 30),
            }
        );
    }
}

both!(a_budget_without_limits_always_admits);
async fn a_budget_without_limits_always_admits(t: TestLimiter) {
    let budgets = [budget("free")];
    for i in 0..50 {
        t.admitted(&budgets, u64::MAX, DAY0 + i).await;
    }
    t.admitted(&[], 10, DAY0).await;
    assert_eq!(t.usage(&budgets[0], DAY0).await, usage(0, 0, 0));
    if let Some(sandbox) = &t.redis {
        assert_eq!(sandbox.keys().await, Vec::<String>::new());
    }
}

both!(budget_keys_are_kept_apart_whatever_they_contain);
async fn budget_keys_are_kept_apart_whatever_they_contain(t: TestLimiter) {
    let keys = [
        "a:b",
        "a%3Ab",
        "a",
        "a:r:0",
        "per-user|principal=alice|model=gpt-4o",
        "ünï cødé {tag} *?[]",
        "",
    ];
    let now = DAY0;
    for key in keys {
        t.admitted(&[rpm(key, 1)], 0, now).await;
    }
    for key in keys {
        t.refused(&[rpm(key, 1)], 0, now).await;
        assert_eq!(t.usage(&rpm(key, 1), now).await, usage(1, 0, 0), "{key}");
    }
    let long = "k".repeat(1000);
    t.admitted(&[rpm(&long, 1)], 0, now).await;
    t.refused(&[rpm(&long, 1)], 0, now).await;
    t.admitted(&[rpm(&long[1..], 1)], 0, now).await;
}

// ---------------------------------------------------------------------------------------------
// Concurrency: two limiters (two Redis connections), 40 tasks each, one budget.

both!(concurrent_requests_admit_exactly_the_limit);
async fn concurrent_requests_admit_exactly_the_limit(t: TestLimiter) {
    let budgets = vec![rpm("busy", 37)];
    let now = DAY0 + 20 * MINUTE_MS;
    let admitted = race(&t, &budgets, 0, now).await;
    assert_eq!(admitted, 37);
    assert_eq!(t.usage(&budgets[0], now).await, usage(37, 0, 0));
}

both!(concurrent_tokens_admit_exactly_what_fits);
async fn concurrent_tokens_admit_exactly_what_fits(t: TestLimiter) {
    let budgets = vec![tpm("busy", 1000)];
    let now = DAY0 + 20 * MINUTE_MS;
    let admitted = race(&t, &budgets, 30, now).await;
    assert_eq!(admitted, 33);
    assert_eq!(t.usage(&budgets[0], now).await, usage(0, 990, 0));
}

/// 2 limiters x 40 concurrent tasks ask at once; returns how many were admitted.
async fn race(t: &TestLimiter, budgets: &[Budget], tokens: u64, now_ms: u64) -> usize {
    let limiters = [t.limiter.clone(), t.another().await];
    let start = std::sync::Arc::new(tokio::sync::Barrier::new(80));
    let mut tasks = Vec::new();
    for limiter in limiters {
        for _ in 0..40 {
            let (limiter, budgets, start) = (limiter.clone(), budgets.to_vec(), start.clone());
            tasks.push(tokio::spawn(async move {
                start.wait().await;
                is_admitted(&admit(&limiter, &budgets, tokens, now_ms).await)
            }));
        }
    }
    let mut admitted = 0;
    for task in tasks {
        admitted += usize::from(task.await.unwrap());
    }
    admitted
}

// ---------------------------------------------------------------------------------------------
// Backend specifics

#[tokio::test]
async fn memory_refuses_new_counters_beyond_max_keys() {
    let limiter = Limiter::memory(3);
    assert_eq!(limiter.backend(), "memory");
    let two = Budget {
        tokens_per_minute: Some(100),
        ..rpm("two", 10)
    };
    let now = DAY0;
    assert!(is_admitted(
        &admit(&limiter, std::slice::from_ref(&two), 1, now).await
    ));
    // Two more counters do not fit next to two; nothing of the ask is charged.
    let both = [rpm("one", 10), tpm("another", 10)];
    let full = try_admit(&limiter, &both, 1, now).await;
    assert!(matches!(full, Err(LimitError::Full)), "{full:?}");
    assert_eq!(limiter.usage(&both[0], now).await.unwrap(), usage(0, 0, 0));
    // One more does, and existing counters keep counting.
    assert!(is_admitted(
        &admit(&limiter, &[rpm("one", 10)], 1, now).await
    ));
    assert!(is_admitted(
        &admit(&limiter, std::slice::from_ref(&two), 1, now).await
    ));
    let full = try_admit(&limiter, &[tpm("another", 10)], 1, now).await;
    assert!(matches!(full, Err(LimitError::Full)), "{full:?}");
    // A refused ask is refused, not Full; a budget without limits needs no counter.
    assert!(!is_admitted(
        &admit(&limiter, &[tpm("two", 1)], 5, now).await
    ));
    assert!(is_admitted(
        &admit(&limiter, &[budget("free")], 1, now).await
    ));
    // Once the minute and its grace are over, the counters are dropped and room is made.
    let later = now + 2 * MINUTE_MS;
    assert!(is_admitted(&admit(&limiter, &both, 1, later).await));
    assert_eq!(limiter.usage(&two, later).await.unwrap(), usage(0, 0, 0));
}

#[tokio::test]
async fn redis_keys_get_a_ttl_of_window_plus_grace() {
    let t = TestLimiter::redis().await;
    run(t, |t: TestLimiter| async move {
        assert_eq!(t.limiter.backend(), "redis");
        let sandbox = t.redis.clone().unwrap();
        let budgets = [Budget {
            tokens_per_minute: Some(100),
            tokens_per_day: Some(1000),
            ..rpm("ttl", 10)
        }];
        let now = DAY0 + 3 * MINUTE_MS;
        let reservation = t.admitted(&budgets, 10, now).await;
        t.settle(&reservation, 50).await;
        let mut keys = sandbox.keys().await;
        keys.sort();
        let minute = now / MINUTE_MS;
        let day = now / DAY_MS;
        let prefix = &sandbox.prefix;
        assert_eq!(
            keys,
            [
                format!("{prefix}ttl:r:{minute}"),
                format!("{prefix}ttl:td:{day}"),
                format!("{prefix}ttl:tm:{minute}"),
            ]
        );
        let mut connection = sandbox.connection().await;
        for key in keys {
            let pttl: i64 = redis::cmd("PTTL")
                .arg(&key)
                .query_async(&mut connection)
                .await
                .unwrap();
            let max = if key.contains(":td:") {
                DAY_MS + 60_000
            } else {
                MINUTE_MS + 60_000
            };
            assert!(
                pttl > 0 && pttl <= i64::try_from(max).unwrap(),
                "{key}: {pttl}"
            );
        }
    })
    .await;
}

#[tokio::test]
async fn redis_unreachable_is_unavailable_within_the_timeout() {
    let started = Instant::now();
    let result = Limiter::redis("redis://127.0.0.1:1", "x:", Duration::from_millis(500)).await;
    assert!(
        matches!(result, Err(LimitError::Unavailable(_))),
        "{result:?}"
    );
    assert!(started.elapsed() < Duration::from_millis(1500));
}

#[tokio::test]
async fn redis_that_never_answers_is_unavailable_within_the_timeout() {
    // Accepts connections and never says a word.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("redis://{}", listener.local_addr().unwrap());
    let silent = tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            open.push(socket);
        }
    });
    let started = Instant::now();
    let result = Limiter::redis(&url, "x:", Duration::from_millis(300)).await;
    assert!(
        matches!(result, Err(LimitError::Unavailable(_))),
        "{result:?}"
    );
    assert!(started.elapsed() < Duration::from_millis(1500));
    silent.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_that_stalls_after_connecting_is_unavailable_then_recovers() {
    let relay = Relay::start(redis_addr()).await;
    let url = redis_url().replacen(&redis_addr().to_string(), &relay.addr.to_string(), 1);
    let prefix = unique_prefix();
    let timeout = Duration::from_millis(300);
    let limiter = Limiter::redis(&url, &prefix, timeout).await.unwrap();
    let sandbox = RedisSandbox {
        url: redis_url(),
        prefix,
    };
    let budgets = [rpm("stall", 100)];
    let now = DAY0;
    assert!(is_admitted(&admit(&limiter, &budgets, 1, now).await));

    relay.pause();
    let ask = Ask {
        budgets: &budgets,
        tokens: 1,
        now_ms: now,
    };
    let started = Instant::now();
    let result = limiter.admit(&ask).await;
    assert!(
        matches!(result, Err(LimitError::Unavailable(_))),
        "{result:?}"
    );
    assert!(started.elapsed() < Duration::from_millis(1500));
    let usage_result = limiter.usage(&budgets[0], now).await;
    assert!(matches!(usage_result, Err(LimitError::Unavailable(_))));

    relay.resume();
    let mut recovered = false;
    for _ in 0..50 {
        if let Ok(Admission::Admitted(_)) = limiter.admit(&ask).await {
            recovered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    sandbox.delete_keys().await;
    assert!(
        recovered,
        "the limiter did not recover once Redis answered again"
    );
}

fn redis_addr() -> SocketAddr {
    let client = redis::Client::open(redis_url().as_str()).unwrap();
    match client.get_connection_info().addr() {
        redis::ConnectionAddr::Tcp(host, port) => format!("{host}:{port}").parse().unwrap(),
        other => panic!("the stall test needs a plain TCP Redis, not {other:?}"),
    }
}

/// A TCP relay in front of Redis that can stop forwarding (holding what it read) and resume.
struct Relay {
    addr: SocketAddr,
    paused: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Relay {
    async fn start(target: SocketAddr) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (paused, watching) = watch::channel(false);
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = TcpStream::connect(target).await else {
                    continue;
                };
                let (client_read, client_write) = client.into_split();
                let (server_read, server_write) = server.into_split();
                tokio::spawn(pipe(client_read, server_write, watching.clone()));
                tokio::spawn(pipe(server_read, client_write, watching.clone()));
            }
        });
        Relay { addr, paused, task }
    }

    fn pause(&self) {
        self.paused.send_replace(true);
    }

    fn resume(&self) {
        self.paused.send_replace(false);
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn pipe(mut from: OwnedReadHalf, mut to: OwnedWriteHalf, mut paused: watch::Receiver<bool>) {
    let mut buffer = vec![0; 16 * 1024];
    loop {
        let read = match from.read(&mut buffer).await {
            Ok(0) | Err(_) => return,
            Ok(read) => read,
        };
        if paused.wait_for(|paused| !*paused).await.is_err() {
            return;
        }
        if to.write_all(&buffer[..read]).await.is_err() {
            return;
        }
    }
}
