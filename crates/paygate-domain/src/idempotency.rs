//! Idempotency keys and the rule that decides what a repeated request gets.
//!
//! The store makes the claim atomic (insert-if-absent); this module decides, from what is stored, whether the
//! caller runs the request, replays a stored answer, or is refused. Both backends call the same function, so
//! SQLite and PostgreSQL cannot disagree about the rules.

use crate::time::UnixMillis;

/// A merchant-chosen key: 1 to 255 printable ASCII characters (no spaces), like Stripe and Toss accept.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct IdempotencyKey(String);

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum IdempotencyKeyError {
    #[error("the Idempotency-Key header must not be empty")]
    Empty,
    #[error("the Idempotency-Key header must be at most {max} characters", max = IdempotencyKey::MAX_LEN)]
    TooLong,
    #[error("the Idempotency-Key header may only contain printable ASCII characters without spaces")]
    BadCharacter,
}

impl IdempotencyKey {
    pub const MAX_LEN: usize = 255;

    pub fn parse(text: &str) -> Result<IdempotencyKey, IdempotencyKeyError> {
        if text.is_empty() {
            return Err(IdempotencyKeyError::Empty);
        }
        if text.len() > Self::MAX_LEN {
            return Err(IdempotencyKeyError::TooLong);
        }
        if !text.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(IdempotencyKeyError::BadCharacter);
        }
        Ok(IdempotencyKey(text.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// SHA-256 of what makes two requests "the same": method, path and canonical body.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RequestFingerprint(pub [u8; 32]);

/// What is stored under a key when a second request with it arrives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StoredAttempt {
    /// Another request holds the key until `locked_until`; if that instant passes, its process is presumed dead.
    InFlight {
        fingerprint: RequestFingerprint,
        lock_token: i64,
        locked_until: UnixMillis,
    },
    Completed {
        fingerprint: RequestFingerprint,
    },
}

/// What the caller must do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IdempotencyDecision {
    /// Replay the stored response.
    Replay,
    /// 422 `IDEMPOTENCY_KEY_REUSED`: the same key came with another request.
    RejectReused,
    /// 409 `IDEMPOTENT_REQUEST_PROCESSING`: the first request is still running.
    RejectInFlight,
    /// The previous holder's lock expired without an answer: take the key over (conditionally on `lock_token`).
    TakeOver { stale_lock_token: i64 },
}

/// Decides what a request with an already stored key gets. The fingerprint is checked first, so a different
/// request is refused the same way whether the first one has finished or not.
pub fn decide(stored: &StoredAttempt, fingerprint: RequestFingerprint, now: UnixMillis) -> IdempotencyDecision {
    match stored {
        StoredAttempt::Completed { fingerprint: stored_fp } if *stored_fp == fingerprint => IdempotencyDecision::Replay,
        StoredAttempt::Completed { .. } => IdempotencyDecision::RejectReused,
        StoredAttempt::InFlight {
            fingerprint: stored_fp, ..
        } if *stored_fp != fingerprint => IdempotencyDecision::RejectReused,
        StoredAttempt::InFlight { locked_until, .. } if now < *locked_until => IdempotencyDecision::RejectInFlight,
        StoredAttempt::InFlight { lock_token, .. } => IdempotencyDecision::TakeOver {
            stale_lock_token: *lock_token,
        },
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn keys() {
        assert_eq!(
            IdempotencyKey::parse("order-1:retry").unwrap().as_str(),
            "order-1:retry"
        );
        assert_eq!(IdempotencyKey::parse("").unwrap_err(), IdempotencyKeyError::Empty);
        assert_eq!(
            IdempotencyKey::parse("a b").unwrap_err(),
            IdempotencyKeyError::BadCharacter
        );
        assert_eq!(
            IdempotencyKey::parse("키").unwrap_err(),
            IdempotencyKeyError::BadCharacter
        );
        assert!(IdempotencyKey::parse(&"x".repeat(255)).is_ok());
        assert_eq!(
            IdempotencyKey::parse(&"x".repeat(256)).unwrap_err(),
            IdempotencyKeyError::TooLong
        );
    }

    #[test]
    fn decisions() {
        let a = RequestFingerprint([1; 32]);
        let b = RequestFingerprint([2; 32]);
        let now = UnixMillis::new(1_000);
        let in_flight = |until| StoredAttempt::InFlight {
            fingerprint: a,
            lock_token: 7,
            locked_until: UnixMillis::new(until),
        };
        let cases = [
            (
                StoredAttempt::Completed { fingerprint: a },
                a,
                IdempotencyDecision::Replay,
            ),
            (
                StoredAttempt::Completed { fingerprint: a },
                b,
                IdempotencyDecision::RejectReused,
            ),
            (in_flight(2_000), a, IdempotencyDecision::RejectInFlight),
            (in_flight(2_000), b, IdempotencyDecision::RejectReused),
            (
                in_flight(1_000),
                a,
                IdempotencyDecision::TakeOver { stale_lock_token: 7 },
            ),
            (in_flight(500), b, IdempotencyDecision::RejectReused),
        ];
        for (stored, fingerprint, expected) in cases {
            assert_eq!(decide(&stored, fingerprint, now), expected, "{stored:?}");
        }
    }
}
