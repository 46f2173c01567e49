//! The HTTP edge's bounds. Every field has a default, documented in `docs/configuration.md`.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct ApiConfig {
    pub http: HttpConfig,
    pub idempotency: IdempotencyConfig,
    pub rate_limit: RateLimitConfig,
}

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct HttpConfig {
    /// Largest request body accepted, in bytes.
    pub body_max_bytes: usize,
    /// Longest time a request may spend inside the gateway.
    pub request_timeout_ms: u32,
    /// Requests processed at once; more are refused with 503 `SERVICE_OVERLOADED`.
    pub in_flight_max: usize,
    /// On shutdown, how long requests in flight may take to finish.
    pub shutdown_grace_ms: u32,
    /// How long a connection may take to send a request's headers (slow or idle clients are cut off).
    pub header_read_timeout_ms: u32,
    /// Reverse proxies whose `X-Forwarded-For` is believed. A request from one of these addresses is attributed to
    /// the rightmost forwarded address that is not itself listed; from any other peer the header is ignored.
    pub trusted_proxies: Vec<IpAddr>,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            body_max_bytes: 256 * 1024,
            request_timeout_ms: 30_000,
            in_flight_max: 4096,
            shutdown_grace_ms: 30_000,
            header_read_timeout_ms: 10_000,
            trusted_proxies: Vec::new(),
        }
    }
}

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct IdempotencyConfig {
    /// Refuse POSTs without an `Idempotency-Key` header.
    pub require_key: bool,
    /// How long a claimed key answers 409 to retries; after it, retries are answered from the payment the request
    /// worked on (its current state). Must exceed `http.request_timeout_ms`.
    pub in_flight_lock_ms: u32,
    /// How long stored keys and responses are kept.
    pub retention_hours: u32,
    /// How often expired keys are reaped, and how many at most per pass.
    pub reap_interval_secs: u32,
    pub reap_batch_max: u32,
}

impl Default for IdempotencyConfig {
    fn default() -> Self {
        IdempotencyConfig {
            require_key: false,
            in_flight_lock_ms: 60_000,
            retention_hours: 15 * 24,
            reap_interval_secs: 60,
            reap_batch_max: 1_000,
        }
    }
}

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct RateLimitConfig {
    /// Sustained requests per second per API key, per gateway process; 0 turns the limit off.
    pub per_key_per_second: u32,
    /// Requests a key may make at once above the sustained rate.
    pub burst: u32,
    /// Keys whose buckets are held in memory at most; a new key beyond them is refused until buckets refill.
    pub keys_tracked_max: usize,
    /// Failed authentications a client address may make per minute, sustained, per gateway process; once its
    /// budget is spent the address gets 429 before any key is looked up, valid key or not. 0 turns this off.
    pub auth_failures_per_minute: u32,
    /// Failed authentications a client address may make at once.
    pub auth_failures_burst: u32,
    /// Client addresses whose failure budgets are held in memory at most.
    pub clients_tracked_max: usize,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        RateLimitConfig {
            per_key_per_second: 100,
            burst: 200,
            keys_tracked_max: 100_000,
            auth_failures_per_minute: 60,
            auth_failures_burst: 50,
            clients_tracked_max: 100_000,
        }
    }
}
