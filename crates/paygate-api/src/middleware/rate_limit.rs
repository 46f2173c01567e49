//! Per-key rate limiting with token buckets, in memory.
//!
//! Each gateway process limits on its own, so with N processes a key may reach N times the rate; the limit exists
//! to protect the gateway from one runaway client, not to meter billing. The table of buckets is bounded: when it
//! is full, buckets idle long enough to be full again are dropped (they carry no information).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use paygate_app::auth::Caller;
use paygate_domain::id::ApiKeyId;

use crate::error::{ApiError, ErrorCode};

#[derive(Clone)]
pub struct RateLimiter {
    inner: Arc<Mutex<Buckets>>,
    per_second: u32,
    burst: u32,
    max_keys: usize,
}

struct Buckets {
    map: HashMap<ApiKeyId, Bucket>,
}

struct Bucket {
    /// Tokens in thousandths, so refill needs no floating point.
    milli_tokens: u64,
    refilled_at: Instant,
}

impl RateLimiter {
    /// `per_second` = 0 turns limiting off.
    pub fn new(per_second: u32, burst: u32, max_keys: usize) -> RateLimiter {
        RateLimiter {
            inner: Arc::new(Mutex::new(Buckets { map: HashMap::new() })),
            per_second,
            burst: burst.max(1),
            max_keys: max_keys.max(1),
        }
    }

    /// Takes one token; on refusal returns how many whole seconds until the next one.
    pub fn check(&self, key: ApiKeyId, now: Instant) -> Result<(), u64> {
        if self.per_second == 0 {
            return Ok(());
        }
        let capacity = u64::from(self.burst) * 1000;
        let rate = u64::from(self.per_second);
        let Ok(mut buckets) = self.inner.lock() else {
            return Ok(());
        };
        if buckets.map.len() >= self.max_keys && !buckets.map.contains_key(&key) {
            let full_after_ms = capacity / rate.max(1);
            buckets.map.retain(|_, b| {
                u64::try_from(now.duration_since(b.refilled_at).as_millis()).unwrap_or(u64::MAX) < full_after_ms
            });
            if buckets.map.len() >= self.max_keys {
                buckets.map.clear();
            }
        }
        let bucket = buckets.map.entry(key).or_insert(Bucket {
            milli_tokens: capacity,
            refilled_at: now,
        });
        let elapsed_ms = u64::try_from(now.duration_since(bucket.refilled_at).as_millis()).unwrap_or(u64::MAX);
        bucket.milli_tokens = bucket
            .milli_tokens
            .saturating_add(elapsed_ms.saturating_mul(rate))
            .min(capacity);
        bucket.refilled_at = now;
        if bucket.milli_tokens >= 1000 {
            bucket.milli_tokens -= 1000;
            Ok(())
        } else {
            let missing = 1000 - bucket.milli_tokens;
            Err(missing.div_ceil(rate.saturating_mul(1000)).max(1))
        }
    }
}

pub async fn limit(State(limiter): State<RateLimiter>, request: Request, next: Next) -> Response {
    if let Some(caller) = request.extensions().get::<Caller>() {
        if let Err(retry_after_secs) = limiter.check(caller.key.id, Instant::now()) {
            let mut error = ApiError::new(
                ErrorCode::TooManyRequests,
                "too many requests for this API key; slow down",
            );
            error.retry_after_secs = Some(retry_after_secs);
            return error.into_response();
        }
    }
    next.run(request).await
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use paygate_domain::time::UnixMillis;
    use std::time::Duration;

    #[test]
    fn allows_burst_then_refills() {
        let limiter = RateLimiter::new(10, 3, 100);
        let key = ApiKeyId::new(UnixMillis::new(1), [1; 10]);
        let start = Instant::now();
        assert!(limiter.check(key, start).is_ok());
        assert!(limiter.check(key, start).is_ok());
        assert!(limiter.check(key, start).is_ok());
        assert_eq!(limiter.check(key, start), Err(1));
        // 10 per second: one token every 100 ms.
        assert!(limiter.check(key, start + Duration::from_millis(100)).is_ok());
        assert!(limiter.check(key, start + Duration::from_millis(100)).is_err());
        let other = ApiKeyId::new(UnixMillis::new(1), [2; 10]);
        assert!(limiter.check(other, start).is_ok());
    }

    #[test]
    fn zero_disables() {
        let limiter = RateLimiter::new(0, 1, 1);
        let key = ApiKeyId::new(UnixMillis::new(1), [1; 10]);
        for _ in 0..100 {
            assert!(limiter.check(key, Instant::now()).is_ok());
        }
    }

    #[test]
    fn table_is_bounded() {
        let limiter = RateLimiter::new(1, 1, 8);
        let now = Instant::now();
        for i in 0..100u8 {
            let _ = limiter.check(ApiKeyId::new(UnixMillis::new(1), [i; 10]), now);
        }
        assert!(limiter.inner.lock().unwrap().map.len() <= 8);
    }
}
