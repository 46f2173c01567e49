//! Idempotency records: what a request sent with an `Idempotency-Key` claimed, and the answer to replay.
//!
//! This module is the layout every aggregate of the store follows: the types and the SQL text here, written once
//! (SQLite's `?N` placeholders; PostgreSQL's `$N` are derived from the same text by [`crate::sql::postgres`]), and
//! each backend's execution beside it (`sqlite.rs`, `postgres.rs`).
//!
//! No record is written on its own: a use case puts an [`IdempotencyWrite`] into the same transaction as the change
//! it belongs to (the payment it creates, the outcome it records), so a key is claimed if and only if that change
//! was committed, and an answer is stored if and only if the outcome it describes was.

pub(crate) mod postgres;
pub(crate) mod sqlite;

use paygate_domain::api_key::{KeyKind, Mode};
use paygate_domain::id::{MerchantId, PaymentId, TransactionKey};
use paygate_domain::idempotency::{IdempotencyKey, RequestFingerprint};
use paygate_domain::time::UnixMillis;

/// Who an idempotency key belongs to: keys are scoped per merchant, mode and key kind, so a browser holding the
/// client key can never occupy (or read) a key the merchant's server uses with the secret key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdempotencyScope {
    pub merchant_id: MerchantId,
    pub mode: Mode,
    pub key_kind: KeyKind,
    pub key: IdempotencyKey,
}

/// The stored answer to replay, opaque to the store: the edge renders it, the use case decides when it is final.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredResponse {
    pub status: u16,
    pub content_type: String,
    pub body: Vec<u8>,
}

/// What a request under a key works on: a retry after a crash is answered from its current state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IdempotencyResource {
    pub payment_id: PaymentId,
    /// The transaction the answer is about (a cancel), if any.
    pub focus: Option<TransactionKey>,
}

/// Where a record stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IdempotencyState {
    /// The request that claimed the key has not stored a final answer. While `locked_until` is ahead it is
    /// presumed running; after it, its process is presumed dead or its outcome was not final (an unknown acquirer
    /// answer), and a retry is answered from the resource.
    InFlight {
        lock_token: i64,
        locked_until: UnixMillis,
    },
    Completed(StoredResponse),
}

/// A record as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdempotencyRecord {
    pub fingerprint: RequestFingerprint,
    pub state: IdempotencyState,
    pub resource: Option<IdempotencyResource>,
    pub created_at: UnixMillis,
}

/// The idempotency part of a use case's transaction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IdempotencyWrite {
    /// Claims the key for a request whose outcome comes in a later transaction (an acquirer call in between).
    /// The transaction fails with [`crate::StoreError::IdempotencyConflict`] if the key exists.
    Claim {
        scope: IdempotencyScope,
        fingerprint: RequestFingerprint,
        lock_token: i64,
        locked_until: UnixMillis,
        resource: IdempotencyResource,
        now: UnixMillis,
    },
    /// Claims the key and stores its final answer at once (a request that commits once).
    /// The transaction fails with [`crate::StoreError::IdempotencyConflict`] if the key exists.
    Record {
        scope: IdempotencyScope,
        fingerprint: RequestFingerprint,
        resource: Option<IdempotencyResource>,
        response: StoredResponse,
        now: UnixMillis,
    },
    /// Stores the final answer of a claimed key. If the claim is gone (reaped, or released), nothing is stored and
    /// the rest of the transaction still commits: the outcome matters more than its replay.
    Complete {
        scope: IdempotencyScope,
        lock_token: i64,
        response: StoredResponse,
        now: UnixMillis,
    },
    /// Ends the claim without an answer, because the outcome is not final yet (unknown at the acquirer): retries
    /// are answered from the resource's state from now on. A missing claim is ignored, as for `Complete`.
    Detach {
        scope: IdempotencyScope,
        lock_token: i64,
        now: UnixMillis,
    },
    /// Gives a claimed key back, because nothing happened (the acquirer certainly did not apply the request): a
    /// retry runs the request again. A missing claim is ignored.
    Release { scope: IdempotencyScope, lock_token: i64 },
}

impl IdempotencyWrite {
    pub fn scope(&self) -> &IdempotencyScope {
        match self {
            IdempotencyWrite::Claim { scope, .. }
            | IdempotencyWrite::Record { scope, .. }
            | IdempotencyWrite::Complete { scope, .. }
            | IdempotencyWrite::Detach { scope, .. }
            | IdempotencyWrite::Release { scope, .. } => scope,
        }
    }
}

/// The statements, in SQLite's placeholder style.
pub(crate) mod sql {
    pub const INSERT: &str = "INSERT INTO idempotency_keys
             (merchant_id, mode, key_kind, idempotency_key, fingerprint, state, lock_token, locked_until,
              payment_id, focus_key, response_status, response_content_type, response_body, created_at, completed_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)
         ON CONFLICT (merchant_id, mode, key_kind, idempotency_key) DO NOTHING";

    pub const COMPLETE: &str = "UPDATE idempotency_keys
         SET state = 'COMPLETED', response_status = ?6, response_content_type = ?7, response_body = ?8,
             completed_at = ?9
         WHERE merchant_id = ?1 AND mode = ?2 AND key_kind = ?3 AND idempotency_key = ?4
           AND state = 'IN_FLIGHT' AND lock_token = ?5";

    pub const DETACH: &str = "UPDATE idempotency_keys SET locked_until = ?6
         WHERE merchant_id = ?1 AND mode = ?2 AND key_kind = ?3 AND idempotency_key = ?4
           AND state = 'IN_FLIGHT' AND lock_token = ?5 AND locked_until > ?6";

    pub const SELECT: &str = "SELECT fingerprint, state, lock_token, locked_until, payment_id, focus_key,
             response_status, response_content_type, response_body, created_at
         FROM idempotency_keys
         WHERE merchant_id = ?1 AND mode = ?2 AND key_kind = ?3 AND idempotency_key = ?4";

    pub const RELEASE: &str = "DELETE FROM idempotency_keys
         WHERE merchant_id = ?1 AND mode = ?2 AND key_kind = ?3 AND idempotency_key = ?4
           AND state = 'IN_FLIGHT' AND lock_token = ?5";
}

/// The values of [`sql::INSERT`], in order, as both backends bind them.
pub(crate) struct InsertValues {
    pub merchant_id: String,
    pub mode: &'static str,
    pub key_kind: &'static str,
    pub key: String,
    pub fingerprint: Vec<u8>,
    pub state: &'static str,
    pub lock_token: i64,
    pub locked_until: i64,
    pub payment_id: Option<String>,
    pub focus_key: Option<String>,
    pub response_status: Option<i64>,
    pub response_content_type: Option<String>,
    pub response_body: Option<Vec<u8>>,
    pub created_at: i64,
    pub completed_at: Option<i64>,
}

/// A stored row's columns, in [`sql::SELECT`]'s order, before they become a record.
pub(crate) struct SelectedRow {
    pub fingerprint: Vec<u8>,
    pub state: String,
    pub lock_token: i64,
    pub locked_until: i64,
    pub payment_id: Option<String>,
    pub focus_key: Option<String>,
    pub response_status: Option<i64>,
    pub response_content_type: Option<String>,
    pub response_body: Option<Vec<u8>>,
    pub created_at: i64,
}

/// The identity columns shared by every statement: merchant, mode, key kind, key.
pub(crate) fn scope_values(scope: &IdempotencyScope) -> (String, &'static str, &'static str, String) {
    (
        scope.merchant_id.to_string(),
        scope.mode.as_str(),
        scope.key_kind.as_str(),
        scope.key.as_str().to_owned(),
    )
}

impl InsertValues {
    /// `None` for the writes that update an existing claim.
    pub(crate) fn of(write: &IdempotencyWrite) -> Option<InsertValues> {
        let (scope, fingerprint, resource, now) = match write {
            IdempotencyWrite::Claim {
                scope,
                fingerprint,
                resource,
                now,
                ..
            } => (scope, fingerprint, Some(*resource), *now),
            IdempotencyWrite::Record {
                scope,
                fingerprint,
                resource,
                now,
                ..
            } => (scope, fingerprint, *resource, *now),
            IdempotencyWrite::Complete { .. } | IdempotencyWrite::Detach { .. } | IdempotencyWrite::Release { .. } => {
                return None
            }
        };
        let (merchant_id, mode, key_kind, key) = scope_values(scope);
        let mut values = InsertValues {
            merchant_id,
            mode,
            key_kind,
            key,
            fingerprint: fingerprint.0.to_vec(),
            state: "IN_FLIGHT",
            lock_token: 0,
            locked_until: now.as_millis(),
            payment_id: resource.map(|r| r.payment_id.to_string()),
            focus_key: resource.and_then(|r| r.focus).map(|k| k.to_string()),
            response_status: None,
            response_content_type: None,
            response_body: None,
            created_at: now.as_millis(),
            completed_at: None,
        };
        match write {
            IdempotencyWrite::Claim {
                lock_token,
                locked_until,
                ..
            } => {
                values.lock_token = *lock_token;
                values.locked_until = locked_until.as_millis();
            }
            IdempotencyWrite::Record { response, .. } => {
                values.state = "COMPLETED";
                values.response_status = Some(i64::from(response.status));
                values.response_content_type = Some(response.content_type.clone());
                values.response_body = Some(response.body.clone());
                values.completed_at = Some(now.as_millis());
            }
            IdempotencyWrite::Complete { .. } | IdempotencyWrite::Detach { .. } | IdempotencyWrite::Release { .. } => {}
        }
        Some(values)
    }
}

impl SelectedRow {
    pub(crate) fn into_record(self) -> Result<IdempotencyRecord, crate::StoreError> {
        use crate::StoreError::Corrupt;
        let fingerprint: [u8; 32] = self
            .fingerprint
            .try_into()
            .map_err(|_| Corrupt("idempotency_keys.fingerprint is not 32 bytes".into()))?;
        let state = match self.state.as_str() {
            "IN_FLIGHT" => IdempotencyState::InFlight {
                lock_token: self.lock_token,
                locked_until: UnixMillis::new(self.locked_until),
            },
            "COMPLETED" => {
                let (Some(status), Some(content_type), Some(body)) =
                    (self.response_status, self.response_content_type, self.response_body)
                else {
                    return Err(Corrupt("a completed idempotency record has no response".into()));
                };
                let status = u16::try_from(status)
                    .map_err(|_| Corrupt(format!("idempotency_keys.response_status = {status}")))?;
                IdempotencyState::Completed(StoredResponse {
                    status,
                    content_type,
                    body,
                })
            }
            other => return Err(Corrupt(format!("idempotency_keys.state = {other}"))),
        };
        let resource = match self.payment_id {
            Some(id) => Some(IdempotencyResource {
                payment_id: PaymentId::parse(&id).map_err(|_| Corrupt("idempotency_keys.payment_id".into()))?,
                focus: self
                    .focus_key
                    .map(|k| TransactionKey::parse(&k))
                    .transpose()
                    .map_err(|_| Corrupt("idempotency_keys.focus_key".into()))?,
            }),
            None => None,
        };
        Ok(IdempotencyRecord {
            fingerprint: RequestFingerprint(fingerprint),
            state,
            resource,
            created_at: UnixMillis::new(self.created_at),
        })
    }
}
