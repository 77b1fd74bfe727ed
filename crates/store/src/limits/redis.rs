//! Counters in one Redis shared by every replica, changed only by Lua scripts.
//!
//! `admit.lua` gets every counter of an ask as `KEYS`, reads them all, and increments them all
//! only if every check passes, in one atomic script. `settle.lua` corrects the token counters
//! of a reservation in place. Both run with `EVALSHA` (loaded at connect, reloaded on
//! `NOSCRIPT`, e.g. after a Redis restart).
//!
//! Keys are `{prefix}{budget}:r:{minute}`, `{prefix}{budget}:tm:{minute}` and
//! `{prefix}{budget}:td:{day}`, where `{minute}` and `{day}` are window indexes since the epoch
//! and `{budget}` is the budget key with every byte outside `[A-Za-z0-9-_.|=@/+,]` written as
//! `%XX` (so it stays readable and cannot forge the `:` separators), or `#` and the SHA-256 hex
//! of the key when that is longer than 200 bytes. A key gets a TTL of its window's length plus
//! [`GRACE`] when it is created.
//!
//! The scripts touch keys of several budgets at once, which Redis Cluster refuses across hash
//! slots: this needs a single Redis (optionally behind Sentinel), not Redis Cluster.
//!
//! The connection is one multiplexed connection behind a [`ConnectionManager`], which
//! reconnects on I/O errors. Every call is bounded by the limiter's timeout.

use std::future::Future;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use ::redis::aio::{ConnectionManager, ConnectionManagerConfig};
use ::redis::{RedisResult, Script};
use sha2::{Digest, Sha256};

use super::{
    Admission, Ask, Budget, BudgetUsage, Counter, GRACE, LimitError, LimitKind, Reservation,
    Window, checks, refusal, reservation, settle_delta,
};

static ADMIT: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("admit.lua")));
static SETTLE: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("settle.lua")));

/// Reconnect attempts after the first one fails, per (re)connection.
const RECONNECT_RETRIES: usize = 2;
/// First delay between reconnect attempts; it doubles, with jitter.
const RECONNECT_MIN_DELAY: Duration = Duration::from_millis(50);
/// Longest delay between reconnect attempts.
const RECONNECT_MAX_DELAY: Duration = Duration::from_millis(500);
/// Escaped budget keys longer than this are replaced by their hash.
const MAX_KEY_PART: usize = 200;

/// The Redis backend of [`super::Limiter`]. Cheap to clone: clones share the connection.
#[derive(Clone)]
pub(super) struct RedisLimiter {
    connection: ConnectionManager,
    prefix: Arc<str>,
    timeout: Duration,
}

impl RedisLimiter {
    pub(super) async fn connect(
        url: &str,
        prefix: &str,
        timeout: Duration,
    ) -> Result<Self, LimitError> {
        let client = ::redis::Client::open(url)
            .map_err(|err| LimitError::Unavailable(format!("invalid redis url: {err}")))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout))
            .set_number_of_retries(RECONNECT_RETRIES)
            .set_min_delay(RECONNECT_MIN_DELAY)
            .set_max_delay(RECONNECT_MAX_DELAY);
        let connect = async {
            let mut connection = ConnectionManager::new_with_config(client, config).await?;
            ADMIT.load_async(&mut connection).await?;
            SETTLE.load_async(&mut connection).await?;
            Ok(connection)
        };
        let connection = bounded(timeout, "connect", connect).await?;
        Ok(RedisLimiter {
            connection,
            prefix: Arc::from(prefix),
            timeout,
        })
    }

    pub(super) async fn admit(&self, ask: &Ask<'_>) -> Result<Admission, LimitError> {
        let checks = checks(ask);
        if checks.is_empty() {
            return Ok(Admission::Admitted(reservation(&checks, ask)));
        }
        let mut invocation = ADMIT.prepare_invoke();
        for check in &checks {
            invocation
                .key(self.key(&check.counter))
                .arg(check.limit)
                .arg(check.increment)
                .arg(ttl_ms(check.counter.window));
        }
        let mut connection = self.connection.clone();
        let reply: Vec<i64> = bounded(
            self.timeout,
            "admit",
            invocation.invoke_async(&mut connection),
        )
        .await?;
        let (admitted, used) = parse_admit_reply(&reply, checks.len())?;
        match (admitted, refusal(&checks, &used, ask.now_ms)) {
            (true, _) => Ok(Admission::Admitted(reservation(&checks, ask))),
            (false, Some(refused)) => Ok(Admission::Refused(refused)),
            (false, None) => Err(LimitError::Unavailable(
                "redis admit: the script refused but no limit is exceeded".to_owned(),
            )),
        }
    }

    pub(super) async fn settle(
        &self,
        reservation: &Reservation,
        actual_tokens: u64,
    ) -> Result<(), LimitError> {
        let delta = settle_delta(reservation, actual_tokens);
        if delta == 0 || reservation.counters.is_empty() {
            return Ok(());
        }
        let mut invocation = SETTLE.prepare_invoke();
        for counter in &reservation.counters {
            invocation.key(self.key(counter));
        }
        invocation.arg(delta);
        let mut connection = self.connection.clone();
        let _: i64 = bounded(
            self.timeout,
            "settle",
            invocation.invoke_async(&mut connection),
        )
        .await?;
        Ok(())
    }

    pub(super) async fn usage(
        &self,
        budget: &Budget,
        now_ms: u64,
    ) -> Result<BudgetUsage, LimitError> {
        let keys = [
            LimitKind::Requests,
            LimitKind::TokensPerMinute,
            LimitKind::TokensPerDay,
        ]
        .map(|kind| {
            self.key(&Counter {
                budget_key: budget.key.clone(),
                window: Window::at(kind, now_ms),
            })
        });
        let mut connection = self.connection.clone();
        let mut mget = ::redis::cmd("MGET");
        mget.arg(&keys);
        let values: Vec<Option<u64>> =
            bounded(self.timeout, "usage", mget.query_async(&mut connection)).await?;
        let value = |index: usize| values.get(index).copied().flatten().unwrap_or(0);
        Ok(BudgetUsage {
            requests_this_minute: value(0),
            tokens_this_minute: value(1),
            tokens_today: value(2),
        })
    }

    /// `{prefix}{budget}:{tag}:{window index}`.
    fn key(&self, counter: &Counter) -> String {
        let window = counter.window;
        format!(
            "{}{}:{}:{}",
            self.prefix,
            key_part(&counter.budget_key),
            window.tag(),
            window.index()
        )
    }
}

/// Runs a Redis call, bounded by `timeout`; every failure becomes [`LimitError::Unavailable`].
async fn bounded<T>(
    timeout: Duration,
    what: &str,
    call: impl Future<Output = RedisResult<T>>,
) -> Result<T, LimitError> {
    match tokio::time::timeout(timeout, call).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(err)) => Err(LimitError::Unavailable(format!("redis {what}: {err}"))),
        Err(_elapsed) => Err(LimitError::Unavailable(format!(
            "redis {what}: no answer within {} ms",
            timeout.as_millis()
        ))),
    }
}

/// Splits `{admitted, used_1, ..., used_n}`.
fn parse_admit_reply(reply: &[i64], checks: usize) -> Result<(bool, Vec<u64>), LimitError> {
    let malformed = || {
        LimitError::Unavailable(format!(
            "redis admit: unexpected script reply {reply:?} for {checks} counters"
        ))
    };
    let (&admitted, used) = reply.split_first().ok_or_else(malformed)?;
    if used.len() != checks || !matches!(admitted, 0 | 1) {
        return Err(malformed());
    }
    let used = used
        .iter()
        .map(|&count| u64::try_from(count).unwrap_or(0))
        .collect();
    Ok((admitted == 1, used))
}

fn ttl_ms(window: Window) -> u64 {
    let grace_ms = u64::try_from(GRACE.as_millis()).unwrap_or(u64::MAX);
    window.length_ms().saturating_add(grace_ms)
}

/// The budget key made safe inside a Redis key: readable bytes stay, others become `%XX`; a
/// result longer than [`MAX_KEY_PART`] becomes `#` and the key's SHA-256 in hex (`#` is always
/// escaped otherwise, so the two forms cannot collide).
fn key_part(budget_key: &str) -> String {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut part = String::with_capacity(budget_key.len());
    for byte in budget_key.bytes() {
        if byte.is_ascii_alphanumeric() || b"-_.|=@/+,".contains(&byte) {
            part.push(char::from(byte));
        } else {
            part.push('%');
            part.push(char::from(HEX[usize::from(byte >> 4)]));
            part.push(char::from(HEX[usize::from(byte & 0x0f)]));
        }
    }
    if part.len() > MAX_KEY_PART {
        return format!("#{:x}", Sha256::digest(budget_key.as_bytes()));
    }
    part
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readable_keys_stay_readable() {
        let key = "per-user|principal=alice|model=gpt-4o";
        assert_eq!(key_part(key), key);
    }

    #[test]
    fn separators_and_other_bytes_are_escaped() {
        assert_eq!(key_part("a:b c%#{x}"), "a%3Ab%20c%25%23%7Bx%7D");
        assert_eq!(key_part("é"), "%C3%A9");
    }

    #[test]
    fn long_keys_become_a_hash() {
        let part = key_part(&"x".repeat(MAX_KEY_PART + 1));
        assert!(part.starts_with('#'));
        assert_eq!(part.len(), 1 + 64);
        assert_eq!(key_part(&"x".repeat(MAX_KEY_PART)).len(), MAX_KEY_PART);
    }

    #[test]
    fn admit_replies_are_checked() {
        assert_eq!(
            parse_admit_reply(&[1, 3, 4], 2).ok(),
            Some((true, vec![3, 4]))
        );
        assert_eq!(parse_admit_reply(&[0, 3], 1).ok(), Some((false, vec![3])));
        assert!(parse_admit_reply(&[], 0).is_err());
        assert!(parse_admit_reply(&[1, 3], 2).is_err());
        assert!(parse_admit_reply(&[2], 0).is_err());
    }

    #[test]
    fn ttl_is_window_plus_grace() {
        assert_eq!(ttl_ms(Window::Requests(7)), 120_000);
        assert_eq!(ttl_ms(Window::TokensPerDay(7)), 86_460_000);
    }
}
