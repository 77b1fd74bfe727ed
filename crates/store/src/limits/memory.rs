//! Counters in this process: one map behind a mutex, pruned as windows expire.
//!
//! Every operation takes the lock once and holds it across its read-check-increment, which is
//! what makes an admission atomic; nothing awaits while holding it. A counter expires at its
//! window's end plus [`GRACE`], measured on the callers' clock (`now_ms` of `admit` and
//! `usage`): expired counters are dropped in expiry order before each of those calls.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::sync::{Mutex, MutexGuard, PoisonError};

use super::{
    Admission, Ask, Budget, BudgetUsage, Counter, GRACE, LimitError, LimitKind, Reservation,
    Window, checks, refusal, reservation, settle_delta,
};

/// The memory backend of [`super::Limiter`].
pub(super) struct MemoryLimiter {
    max_keys: usize,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    counts: HashMap<Counter, u64>,
    /// Every counter in `counts` once, keyed by when it expires (ms since the epoch).
    expiries: BinaryHeap<Reverse<(u64, Counter)>>,
}

impl MemoryLimiter {
    pub(super) fn new(max_keys: usize) -> Self {
        MemoryLimiter {
            max_keys,
            state: Mutex::new(State::default()),
        }
    }

    pub(super) fn admit(&self, ask: &Ask<'_>) -> Result<Admission, LimitError> {
        let checks = checks(ask);
        let mut state = self.lock();
        state.prune(ask.now_ms);
        let used: Vec<u64> = checks
            .iter()
            .map(|check| state.count(&check.counter))
            .collect();
        if let Some(refused) = refusal(&checks, &used, ask.now_ms) {
            return Ok(Admission::Refused(refused));
        }
        let mut missing: Vec<&Counter> = checks
            .iter()
            .map(|check| &check.counter)
            .filter(|counter| !state.counts.contains_key(*counter))
            .collect();
        missing.sort_unstable();
        missing.dedup();
        if state.counts.len().saturating_add(missing.len()) > self.max_keys {
            return Err(LimitError::Full);
        }
        for check in &checks {
            state.add(&check.counter, check.increment);
        }
        Ok(Admission::Admitted(reservation(&checks, ask)))
    }

    /// Applies the correction to the counters that are still live; expired ones stay gone.
    pub(super) fn settle(&self, reservation: &Reservation, actual_tokens: u64) {
        let delta = settle_delta(reservation, actual_tokens);
        if delta == 0 {
            return;
        }
        let mut state = self.lock();
        for counter in &reservation.counters {
            if let Some(count) = state.counts.get_mut(counter) {
                *count = count.saturating_add_signed(delta);
            }
        }
    }

    pub(super) fn usage(&self, budget: &Budget, now_ms: u64) -> BudgetUsage {
        let mut state = self.lock();
        state.prune(now_ms);
        let count = |kind| {
            state.count(&Counter {
                budget_key: budget.key.clone(),
                window: Window::at(kind, now_ms),
            })
        };
        BudgetUsage {
            requests_this_minute: count(LimitKind::Requests),
            tokens_this_minute: count(LimitKind::TokensPerMinute),
            tokens_today: count(LimitKind::TokensPerDay),
        }
    }

    /// The state stays consistent between statements (no code that can panic runs mid-update),
    /// so a poisoned lock is taken over rather than propagated.
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl State {
    fn count(&self, counter: &Counter) -> u64 {
        self.counts.get(counter).copied().unwrap_or(0)
    }

    fn add(&mut self, counter: &Counter, increment: u64) {
        if let Some(count) = self.counts.get_mut(counter) {
            *count = count.saturating_add(increment);
            return;
        }
        let grace_ms = u64::try_from(GRACE.as_millis()).unwrap_or(u64::MAX);
        let expires_at_ms = counter.window.ends_at_ms().saturating_add(grace_ms);
        self.counts.insert(counter.clone(), increment);
        self.expiries
            .push(Reverse((expires_at_ms, counter.clone())));
    }

    /// Drops the counters that expired at or before `now_ms`.
    fn prune(&mut self, now_ms: u64) {
        while let Some(Reverse((expires_at_ms, _))) = self.expiries.peek() {
            if *expires_at_ms > now_ms {
                break;
            }
            if let Some(Reverse((_, counter))) = self.expiries.pop() {
                self.counts.remove(&counter);
            }
        }
    }
}
