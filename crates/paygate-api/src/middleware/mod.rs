//! The middleware stack, outermost first: request ID and error rendering, metrics, load shedding, timeout,
//! panic catching; then, on `/v1`, authentication, rate limiting and idempotency.

pub mod auth;
pub mod edge;
pub mod idempotency;
pub mod metrics;
pub mod rate_limit;
