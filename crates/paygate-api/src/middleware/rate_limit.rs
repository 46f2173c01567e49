//! Rate limiting in memory with governor's keyed GCRA limiter: per API key after authentication (here), and per
//! client address for failed authentications before the key lookup (`auth.rs`).
//!
//! Each gateway process limits on its own, so with N processes a key may reach N times the rate; the limit exists
//! to protect the gateway from one runaway client, not to meter billing.
//!
//! The table of keys is bounded. When it is full and a new key arrives, keys whose buckets are full again are
//! dropped (governor's `retain_recent`: such a bucket is indistinguishable from a new one, so nothing is forgotten);
//! if the table is still full, the new key is refused with 429 until buckets refill. An active bucket is never
//! dropped, and no outcome other than an explicit "conforming" lets a request through: the limiter holds no lock
//! that a panic could poison on the path of a check (governor keeps each bucket in an atomic, in a sharded map).

use std::hash::Hash;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use dashmap::DashMap;
use governor::clock::{Clock, MonotonicClock, Reference};
use governor::middleware::NoOpMiddleware;
use governor::nanos::Nanos;
use governor::state::keyed::ShrinkableKeyedStateStore;
use governor::state::{InMemoryState, NotKeyed, StateStore};
use governor::Quota;
use paygate_app::auth::Caller;
use paygate_domain::id::ApiKeyId;

use crate::error::{ApiError, ErrorCode};

/// A full table is swept for refilled buckets at most this often, so a flood of new keys cannot turn every request
/// into a scan of the whole table.
const SWEEP_INTERVAL_MIN: Duration = Duration::from_millis(100);

/// Why a request was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// The key's bucket is empty; a token is back after `retry_after`.
    Exhausted { retry_after: Duration },
    /// The key is new and the table holds `keys_tracked_max` active buckets.
    TableFull,
}

impl Refusal {
    /// Whole seconds for `Retry-After`, at least 1.
    pub fn retry_after_secs(self) -> u64 {
        match self {
            Refusal::Exhausted { retry_after } => {
                let secs = retry_after.as_secs();
                if retry_after.subsec_nanos() > 0 {
                    secs.saturating_add(1).max(1)
                } else {
                    secs.max(1)
                }
            }
            // A bucket refills within its burst window; one second is a polite first wait.
            Refusal::TableFull => 1,
        }
    }
}

/// A limit: `per_period` tokens are refilled evenly over `period`, at most `burst` held at once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limit {
    pub per_period: u32,
    pub period: Duration,
    pub burst: u32,
}

impl Limit {
    /// `None` when `per_period` is 0 (limiting off). A `burst` of 0 means 1.
    fn quota(self) -> Option<Quota> {
        let per_period = NonZeroU32::new(self.per_period)?;
        let burst = NonZeroU32::new(self.burst).unwrap_or(NonZeroU32::MIN);
        let interval = self.period.checked_div(per_period.get())?.max(Duration::from_nanos(1));
        Quota::with_period(interval).map(|quota| quota.allow_burst(burst))
    }
}

/// A key together with what the check does to its bucket. governor only knows "test and update"; a `Test` probe
/// lets [`KeyedLimiter::peek`] ask governor's own rule whether a charge would pass, without changing the bucket.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Probe<K> {
    key: K,
    charge: Charge,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Charge {
    Take,
    Test,
}

/// governor's state store: one [`InMemoryState`] (an atomic theoretical arrival time) per key, in a `DashMap` that
/// the limiter shares with [`KeyedLimiter`] so the bound can be checked before a key is added.
pub struct Table<K: Hash + Eq>(Arc<DashMap<K, InMemoryState>>);

/// The state's stored arrival time, read without changing it (governor's state exposes only compare-and-swap).
fn arrival(state: &InMemoryState) -> Option<Nanos> {
    state
        .measure_and_replace(&NotKeyed::NonKey, Err::<((), Nanos), _>)
        .err()
        .flatten()
}

impl<K: Hash + Eq + Clone> StateStore for Table<K> {
    type Key = Probe<K>;

    fn measure_and_replace<T, F, E>(&self, probe: &Probe<K>, f: F) -> Result<T, E>
    where
        F: Fn(Option<Nanos>) -> Result<(T, Nanos), E>,
    {
        match probe.charge {
            Charge::Test => {
                let prev = self.0.get(&probe.key).and_then(|state| arrival(&state));
                f(prev).map(|(decision, _)| decision)
            }
            Charge::Take => {
                if let Some(state) = self.0.get(&probe.key) {
                    return state.measure_and_replace(&NotKeyed::NonKey, f);
                }
                let state = self.0.entry(probe.key.clone()).or_default();
                state.measure_and_replace(&NotKeyed::NonKey, f)
            }
        }
    }
}

impl<K: Hash + Eq + Clone> ShrinkableKeyedStateStore<Probe<K>> for Table<K> {
    fn retain_recent(&self, drop_below: Nanos) {
        self.0
            .retain(|_, state| arrival(state).is_some_and(|at| at > drop_below));
    }

    fn shrink_to_fit(&self) {
        self.0.shrink_to_fit();
    }

    fn len(&self) -> usize {
        self.0.len()
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

type Governor<K, C> = governor::RateLimiter<Probe<K>, Table<K>, C, NoOpMiddleware<<C as Clock>::Instant>>;

/// A bounded keyed limiter. Cloning shares the buckets.
pub struct KeyedLimiter<K: Hash + Eq + Clone, C: Clock = MonotonicClock> {
    /// `None` when limiting is off.
    inner: Option<Arc<Inner<K, C>>>,
}

struct Inner<K: Hash + Eq + Clone, C: Clock> {
    governor: Governor<K, C>,
    buckets: Arc<DashMap<K, InMemoryState>>,
    keys_max: usize,
    /// When a full table was last swept. Guards no invariant, so a poisoned lock is simply taken over.
    swept_at: Mutex<Option<C::Instant>>,
}

impl<K: Hash + Eq + Clone, C: Clock> Clone for KeyedLimiter<K, C> {
    fn clone(&self) -> Self {
        KeyedLimiter {
            inner: self.inner.clone(),
        }
    }
}

impl<K: Hash + Eq + Clone> KeyedLimiter<K, MonotonicClock> {
    pub fn new(limit: Limit, keys_max: usize) -> Self {
        KeyedLimiter::with_clock(limit, keys_max, MonotonicClock)
    }
}

impl<K: Hash + Eq + Clone, C: Clock> KeyedLimiter<K, C> {
    /// With an injected clock (tests use governor's `FakeRelativeClock`).
    pub fn with_clock(limit: Limit, keys_max: usize, clock: C) -> Self {
        let Some(quota) = limit.quota() else {
            return KeyedLimiter { inner: None };
        };
        let buckets = Arc::new(DashMap::new());
        let governor = governor::RateLimiter::new(quota, Table(buckets.clone()), clock);
        KeyedLimiter {
            inner: Some(Arc::new(Inner {
                governor,
                buckets,
                keys_max: keys_max.max(1),
                swept_at: Mutex::new(None),
            })),
        }
    }

    /// Takes one token from `key`'s bucket, adding the bucket if there is room.
    pub fn check(&self, key: &K) -> Result<(), Refusal> {
        let Some(inner) = &self.inner else {
            return Ok(());
        };
        if !inner.buckets.contains_key(key) {
            inner.make_room()?;
        }
        let probe = Probe {
            key: key.clone(),
            charge: Charge::Take,
        };
        inner
            .governor
            .check_key(&probe)
            .map_err(|not_until| Refusal::Exhausted {
                retry_after: not_until.wait_time_from(inner.governor.clock().now()),
            })
    }

    /// Whether a [`check`](Self::check) would find a token, without taking it or adding a bucket. A key without a
    /// bucket has its whole burst.
    pub fn peek(&self, key: &K) -> Result<(), Refusal> {
        let Some(inner) = &self.inner else {
            return Ok(());
        };
        let probe = Probe {
            key: key.clone(),
            charge: Charge::Test,
        };
        inner
            .governor
            .check_key(&probe)
            .map_err(|not_until| Refusal::Exhausted {
                retry_after: not_until.wait_time_from(inner.governor.clock().now()),
            })
    }

    /// Buckets held.
    pub fn len(&self) -> usize {
        self.inner.as_ref().map_or(0, |inner| inner.buckets.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl<K: Hash + Eq + Clone, C: Clock> Inner<K, C> {
    /// Ok when a new bucket may be added. Checks that race here may each add one bucket, so the table can exceed
    /// `keys_max` by the number of checks running at that instant, never more.
    fn make_room(&self) -> Result<(), Refusal> {
        if self.buckets.len() < self.keys_max {
            return Ok(());
        }
        let now = self.governor.clock().now();
        let mut swept_at = self.swept_at.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let due = swept_at.is_none_or(|at| Duration::from(now.duration_since(at)) >= SWEEP_INTERVAL_MIN);
        if due {
            self.governor.retain_recent();
            *swept_at = Some(now);
        }
        drop(swept_at);
        if self.buckets.len() < self.keys_max {
            Ok(())
        } else {
            Err(Refusal::TableFull)
        }
    }
}

/// The per-key limiter of `/v1`, behind authentication.
pub type KeyLimiter = KeyedLimiter<ApiKeyId>;

pub async fn limit(State(limiter): State<KeyLimiter>, request: Request, next: Next) -> Response {
    if let Some(caller) = request.extensions().get::<Caller>() {
        if let Err(refusal) = limiter.check(&caller.key.id) {
            let mut error = ApiError::new(
                ErrorCode::TooManyRequests,
                "too many requests for this API key; slow down",
            );
            error.retry_after_secs = Some(refusal.retry_after_secs());
            return error.into_response();
        }
    }
    next.run(request).await
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use governor::clock::FakeRelativeClock;
    use paygate_domain::time::UnixMillis;

    fn key(i: u8) -> ApiKeyId {
        ApiKeyId::new(UnixMillis::new(1), [i; 10])
    }

    fn per_second(per_period: u32, burst: u32) -> Limit {
        Limit {
            per_period,
            period: Duration::from_secs(1),
            burst,
        }
    }

    fn limiter(
        per: u32,
        burst: u32,
        keys_max: usize,
    ) -> (KeyedLimiter<ApiKeyId, FakeRelativeClock>, FakeRelativeClock) {
        let clock = FakeRelativeClock::default();
        (
            KeyedLimiter::with_clock(per_second(per, burst), keys_max, clock.clone()),
            clock,
        )
    }

    #[test]
    fn allows_burst_then_refills() {
        let (limiter, clock) = limiter(10, 3, 100);
        for _ in 0..3 {
            assert_eq!(limiter.check(&key(1)), Ok(()));
        }
        let refused = limiter.check(&key(1)).unwrap_err();
        assert_eq!(
            refused,
            Refusal::Exhausted {
                retry_after: Duration::from_millis(100)
            }
        );
        assert_eq!(refused.retry_after_secs(), 1);
        // 10 per second: one token every 100 ms.
        clock.advance(Duration::from_millis(100));
        assert_eq!(limiter.check(&key(1)), Ok(()));
        assert!(limiter.check(&key(1)).is_err());
        assert_eq!(limiter.check(&key(2)), Ok(()));
    }

    #[test]
    fn zero_disables() {
        let (limiter, _) = limiter(0, 1, 1);
        for i in 0..100 {
            assert_eq!(limiter.check(&key(i)), Ok(()));
        }
        assert!(limiter.is_empty());
    }

    #[test]
    fn peek_takes_nothing_and_adds_no_bucket() {
        let (limiter, _) = limiter(1, 2, 100);
        for _ in 0..10 {
            assert_eq!(limiter.peek(&key(1)), Ok(()));
        }
        assert!(limiter.is_empty());
        assert_eq!(limiter.check(&key(1)), Ok(()));
        assert_eq!(limiter.peek(&key(1)), Ok(()));
        assert_eq!(limiter.check(&key(1)), Ok(()));
        assert!(matches!(limiter.peek(&key(1)), Err(Refusal::Exhausted { .. })));
        assert!(matches!(limiter.check(&key(1)), Err(Refusal::Exhausted { .. })));
    }

    /// Before governor, a full table was cleared: every client's emptied bucket came back full.
    #[test]
    fn a_full_table_of_active_buckets_refuses_new_keys_and_forgets_nothing() {
        let (limiter, _clock) = limiter(1, 1, 8);
        for i in 0..8 {
            assert_eq!(limiter.check(&key(i)), Ok(()));
        }
        for i in 8..100 {
            assert_eq!(limiter.check(&key(i)), Err(Refusal::TableFull), "key {i}");
        }
        assert_eq!(limiter.len(), 8);
        // The active buckets are still empty: nobody got a fresh burst because the table was full.
        for i in 0..8 {
            assert!(
                matches!(limiter.check(&key(i)), Err(Refusal::Exhausted { .. })),
                "key {i}"
            );
        }
    }

    #[test]
    fn a_full_table_drops_only_buckets_that_are_full_again() {
        let (limiter, clock) = limiter(1, 1, 8);
        for i in 0..4 {
            assert_eq!(limiter.check(&key(i)), Ok(()));
        }
        clock.advance(Duration::from_secs(2));
        for i in 4..8 {
            assert_eq!(limiter.check(&key(i)), Ok(()));
        }
        // Keys 0..4 have refilled; 4..8 are still empty. New keys take the refilled keys' places.
        for i in 8..12 {
            assert_eq!(limiter.check(&key(i)), Ok(()), "key {i}");
        }
        assert_eq!(limiter.check(&key(12)), Err(Refusal::TableFull));
        for i in 4..12 {
            assert!(
                matches!(limiter.check(&key(i)), Err(Refusal::Exhausted { .. })),
                "key {i}"
            );
        }
        assert_eq!(limiter.len(), 8);
    }

    #[test]
    fn a_full_table_is_swept_at_most_every_interval() {
        let (limiter, clock) = limiter(1, 1, 2);
        assert_eq!(limiter.check(&key(0)), Ok(()));
        assert_eq!(limiter.check(&key(1)), Ok(()));
        // Not refilled yet: the sweep finds nothing to drop.
        clock.advance(Duration::from_millis(1950));
        assert_eq!(limiter.check(&key(2)), Err(Refusal::TableFull));
        // Now refilled, but the table was swept 50 ms ago: no new sweep yet.
        clock.advance(Duration::from_millis(50));
        assert_eq!(limiter.check(&key(2)), Err(Refusal::TableFull));
        clock.advance(SWEEP_INTERVAL_MIN);
        assert_eq!(limiter.check(&key(2)), Ok(()));
        assert_eq!(limiter.len(), 1);
    }

    #[test]
    fn retry_after_rounds_up_to_whole_seconds() {
        let cases = [
            (Duration::ZERO, 1),
            (Duration::from_millis(1), 1),
            (Duration::from_secs(1), 1),
            (Duration::from_millis(1001), 2),
            (Duration::from_secs(59), 59),
        ];
        for (retry_after, secs) in cases {
            assert_eq!(
                Refusal::Exhausted { retry_after }.retry_after_secs(),
                secs,
                "{retry_after:?}"
            );
        }
        assert_eq!(Refusal::TableFull.retry_after_secs(), 1);
    }

    #[test]
    fn per_minute_limits() {
        let clock = FakeRelativeClock::default();
        let limit = Limit {
            per_period: 60,
            period: Duration::from_secs(60),
            burst: 5,
        };
        let limiter = KeyedLimiter::with_clock(limit, 10, clock.clone());
        for _ in 0..5 {
            assert_eq!(limiter.check(&1u8), Ok(()));
        }
        assert_eq!(
            limiter.check(&1u8),
            Err(Refusal::Exhausted {
                retry_after: Duration::from_secs(1)
            })
        );
        clock.advance(Duration::from_secs(1));
        assert_eq!(limiter.check(&1u8), Ok(()));
    }
}
