//! `Idempotency-Key`, owned by the use cases.
//!
//! The edge parses the header and fingerprints the request ([`IdempotentRequest`]) and says how it would render a
//! result ([`Render`]); it writes nothing. A use case then, in order:
//! 1. looks the key up ([`App::idempotency_begin`]; a use case that inserts what the key names skips the lookup,
//!    [`App::idempotency_claim_first`], and looks only if the insert finds the key taken): a stored answer is replayed, another request under the key is
//!    refused (`Reused`), a request still running is refused (`InFlight`), and a request that died (or whose
//!    outcome is not final yet) is answered from the payment it was working on — never run twice;
//! 2. claims the key in the same transaction as the first change it makes (the payment it creates, the cancel it
//!    reserves), or records the answer at once when it commits only once;
//! 3. stores the answer in the same transaction as the outcome, when the outcome is final; an unknown outcome only
//!    ends the claim, so retries see the payment's state as it resolves.
//!
//! Authorization and validation run before the key is claimed, so a refused request never occupies a key.
//! Transient answers (a concurrent change, the key in flight) are never stored.

use std::sync::Arc;

use paygate_domain::idempotency::{decide, IdempotencyDecision, IdempotencyKey, RequestFingerprint, StoredAttempt};
use paygate_domain::time::{DurationMs, UnixMillis};
use paygate_store::{
    IdempotencyRecord, IdempotencyResource, IdempotencyScope, IdempotencyState, IdempotencyWrite, StoreError,
    StoredResponse,
};

use crate::auth::Caller;
use crate::App;

/// A request sent with an `Idempotency-Key`, as the edge saw it.
#[derive(Clone, Debug)]
pub struct IdempotentRequest {
    pub key: IdempotencyKey,
    /// What makes two requests "the same" (method, path, canonical body).
    pub fingerprint: RequestFingerprint,
}

/// How the edge renders a use case's result into the answer it sends; the use case stores that answer.
pub type Render<T, E> = Arc<dyn Fn(&Result<T, E>) -> StoredResponse + Send + Sync>;

/// An idempotent request and how to render its answer.
pub struct Idempotent<T, E> {
    pub request: IdempotentRequest,
    pub render: Render<T, E>,
}

impl<T, E> Clone for Idempotent<T, E> {
    fn clone(&self) -> Self {
        Idempotent {
            request: self.request.clone(),
            render: self.render.clone(),
        }
    }
}

/// What a use case run under a key answers: its own result, or the stored answer of the first request.
#[derive(Debug)]
pub enum Answer<T> {
    Fresh(T),
    Replay(StoredResponse),
}

impl<T> Answer<T> {
    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Answer<U> {
        match self {
            Answer::Fresh(value) => Answer::Fresh(f(value)),
            Answer::Replay(stored) => Answer::Replay(stored),
        }
    }
}

/// Why a request under a key is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum IdempotencyRefusal {
    #[error("a request with this Idempotency-Key is still being processed; retry after it finishes")]
    InFlight,
    #[error("this Idempotency-Key was already used with a different request")]
    Reused,
}

/// What the lookup decided.
pub(crate) enum Begin<T, E> {
    /// Run the request; with a key, claim it as the request's first change.
    Run(Option<Claim<T, E>>),
    Replay(StoredResponse),
    /// The first request under the key is gone or its outcome is pending: answer from the resource.
    Recover(IdempotencyResource),
    Refused(IdempotencyRefusal),
}

/// A key this request is about to claim (or has claimed): what its writes need.
pub(crate) struct Claim<T, E> {
    scope: IdempotencyScope,
    fingerprint: RequestFingerprint,
    lock_token: i64,
    lock_ms: u32,
    render: Render<T, E>,
}

impl<T, E> Claim<T, E> {
    /// Claims the key for a request whose outcome is written later.
    pub(crate) fn claim(&self, resource: IdempotencyResource, now: UnixMillis) -> IdempotencyWrite {
        IdempotencyWrite::Claim {
            scope: self.scope.clone(),
            fingerprint: self.fingerprint,
            lock_token: self.lock_token,
            locked_until: now.saturating_add(DurationMs::from_millis(self.lock_ms)),
            resource,
            now,
        }
    }

    /// Claims the key and stores a final answer at once.
    pub(crate) fn record(
        &self,
        resource: Option<IdempotencyResource>,
        result: &Result<T, E>,
        now: UnixMillis,
    ) -> IdempotencyWrite {
        IdempotencyWrite::Record {
            scope: self.scope.clone(),
            fingerprint: self.fingerprint,
            resource,
            response: (self.render)(result),
            now,
        }
    }

    /// Stores the final answer of the claimed key.
    pub(crate) fn complete(&self, result: &Result<T, E>, now: UnixMillis) -> IdempotencyWrite {
        IdempotencyWrite::Complete {
            scope: self.scope.clone(),
            lock_token: self.lock_token,
            response: (self.render)(result),
            now,
        }
    }

    /// Ends the claim without an answer: the outcome is not final.
    pub(crate) fn detach(&self, now: UnixMillis) -> IdempotencyWrite {
        IdempotencyWrite::Detach {
            scope: self.scope.clone(),
            lock_token: self.lock_token,
            now,
        }
    }

    /// Gives the key back: nothing happened, and a retry may run the request again.
    pub(crate) fn release(&self) -> IdempotencyWrite {
        IdempotencyWrite::Release {
            scope: self.scope.clone(),
            lock_token: self.lock_token,
        }
    }
}

impl App {
    /// Step 1: what a request under `idempotency` gets before it changes anything. `Run(None)` without a key.
    pub(crate) async fn idempotency_begin<T, E>(
        &self,
        caller: &Caller,
        idempotency: Option<Idempotent<T, E>>,
    ) -> Result<Begin<T, E>, StoreError> {
        let Some(claim) = self.new_claim(caller, idempotency) else {
            return Ok(Begin::Run(None));
        };
        let Some(record) = self.store().idempotency_record(&claim.scope).await? else {
            return Ok(Begin::Run(Some(claim)));
        };
        let now = self.clock().now();
        match judge(&record, claim.fingerprint, now) {
            Verdict::Replay(stored) => Ok(Begin::Replay(stored)),
            Verdict::Refused(refusal) => Ok(Begin::Refused(refusal)),
            Verdict::Recover(resource) => Ok(Begin::Recover(resource)),
            Verdict::Abandoned { lock_token } => {
                // A claim with nothing to answer from (written before claims named their payment) whose request
                // died: give the key back and run.
                self.store().idempotency_release(&claim.scope, lock_token).await?;
                Ok(Begin::Run(Some(claim)))
            }
        }
    }

    /// Step 1 for a use case whose first write inserts the resource the key will name (a new payment): the key is
    /// not looked up first. The claim is written with the insert, which fails on a key already taken, and
    /// [`App::idempotency_after_conflict`] then decides the answer. A replay costs a little more work this way; a
    /// first request (the common case) costs one read less.
    pub(crate) fn idempotency_claim_first<T, E>(
        &self,
        caller: &Caller,
        idempotency: Option<Idempotent<T, E>>,
    ) -> Begin<T, E> {
        Begin::Run(self.new_claim(caller, idempotency))
    }

    fn new_claim<T, E>(&self, caller: &Caller, idempotency: Option<Idempotent<T, E>>) -> Option<Claim<T, E>> {
        let Idempotent { request, render } = idempotency?;
        let scope = IdempotencyScope {
            merchant_id: caller.merchant.id,
            mode: caller.key.mode,
            key_kind: caller.key.kind,
            key: request.key,
        };
        Some(Claim {
            scope,
            fingerprint: request.fingerprint,
            lock_token: i64::from_le_bytes(crate::random_bytes()),
            lock_ms: self.idempotency.in_flight_lock_ms,
            render,
        })
    }

    /// After a write lost its key to a concurrent request (`IdempotencyConflict`, or `DuplicateOrderId` for its
    /// own order): what this request answers instead. `None` if the key is free after all.
    pub(crate) async fn idempotency_after_conflict<T, E>(
        &self,
        claim: &Claim<T, E>,
    ) -> Result<Option<Begin<T, E>>, StoreError> {
        let Some(record) = self.store().idempotency_record(&claim.scope).await? else {
            return Ok(None);
        };
        let now = self.clock().now();
        Ok(Some(match judge(&record, claim.fingerprint, now) {
            Verdict::Replay(stored) => Begin::Replay(stored),
            Verdict::Refused(refusal) => Begin::Refused(refusal),
            Verdict::Recover(resource) => Begin::Recover(resource),
            Verdict::Abandoned { lock_token } => {
                // A legacy claim whose request died: give the key back; the retry of this request then runs.
                self.store().idempotency_release(&claim.scope, lock_token).await?;
                Begin::Refused(IdempotencyRefusal::InFlight)
            }
        }))
    }
}

enum Verdict {
    Replay(StoredResponse),
    Refused(IdempotencyRefusal),
    Recover(IdempotencyResource),
    Abandoned { lock_token: i64 },
}

/// The domain's rule (`paygate_domain::idempotency::decide`) applied to a stored record.
fn judge(record: &IdempotencyRecord, fingerprint: RequestFingerprint, now: UnixMillis) -> Verdict {
    let attempt = match &record.state {
        IdempotencyState::InFlight {
            lock_token,
            locked_until,
        } => StoredAttempt::InFlight {
            fingerprint: record.fingerprint,
            lock_token: *lock_token,
            locked_until: *locked_until,
        },
        IdempotencyState::Completed(_) => StoredAttempt::Completed {
            fingerprint: record.fingerprint,
        },
    };
    match (decide(&attempt, fingerprint, now), &record.state) {
        (IdempotencyDecision::Replay, IdempotencyState::Completed(stored)) => Verdict::Replay(stored.clone()),
        (IdempotencyDecision::Replay, IdempotencyState::InFlight { .. }) => {
            Verdict::Refused(IdempotencyRefusal::InFlight)
        }
        (IdempotencyDecision::RejectReused, _) => Verdict::Refused(IdempotencyRefusal::Reused),
        (IdempotencyDecision::RejectInFlight, _) => Verdict::Refused(IdempotencyRefusal::InFlight),
        (IdempotencyDecision::TakeOver { stale_lock_token }, _) => match record.resource {
            Some(resource) => Verdict::Recover(resource),
            None => Verdict::Abandoned {
                lock_token: stale_lock_token,
            },
        },
    }
}

/// Bounds of idempotency records. Defaults are listed in `docs/configuration.md`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IdempotencyOptions {
    /// How long a claimed key is presumed to be worked on; after it, retries are answered from the payment.
    pub in_flight_lock_ms: u32,
}

impl Default for IdempotencyOptions {
    fn default() -> Self {
        IdempotencyOptions {
            in_flight_lock_ms: 60_000,
        }
    }
}

/// How a request that commits once (no acquirer call in between) starts: run, with the key to record its answer
/// under, or answer at once.
pub(crate) enum Once<T, E> {
    Run(Option<Claim<T, E>>),
    Answer(Answer<T>),
}

impl App {
    /// Step 1 for a request that commits once: its answer is recorded with its only write.
    pub(crate) async fn start_once<T, E>(
        &self,
        caller: &Caller,
        idempotency: Option<Idempotent<T, E>>,
    ) -> Result<Once<T, E>, E>
    where
        E: From<IdempotencyRefusal> + From<StoreError>,
    {
        match self.idempotency_begin(caller, idempotency).await? {
            Begin::Run(claim) => Ok(Once::Run(claim)),
            Begin::Replay(stored) => Ok(Once::Answer(Answer::Replay(stored))),
            Begin::Refused(refusal) => Err(refusal.into()),
            // Records of once-committing requests are written completed: nothing to recover from.
            Begin::Recover(_) => Err(IdempotencyRefusal::InFlight.into()),
        }
    }

    /// The write of a once-committing request lost its key to a concurrent request: that request's answer.
    pub(crate) async fn once_after_conflict<T, E>(&self, claim: &Claim<T, E>) -> Result<Answer<T>, E>
    where
        E: From<IdempotencyRefusal> + From<StoreError>,
    {
        match self.idempotency_after_conflict(claim).await? {
            Some(Begin::Replay(stored)) => Ok(Answer::Replay(stored)),
            Some(Begin::Refused(refusal)) => Err(refusal.into()),
            _ => Err(IdempotencyRefusal::InFlight.into()),
        }
    }
}
