//! Idempotency records: what a request sent with an `Idempotency-Key` claimed, and the answer to replay.
//!
//! Like every aggregate of the store, this module holds its types, its trait, its SQL (written once, with SQLite's
//! `?N` placeholders) and its operations, which run on either backend through [`crate::db::Db`].
//!
//! No record is written on its own: a use case puts an [`IdempotencyWrite`] into the same transaction as the change
//! it belongs to (the payment it creates, the outcome it records), so a key is claimed if and only if that change
//! was committed, and an answer is stored if and only if the outcome it describes was.

use paygate_domain::api_key::{KeyKind, Mode};
use paygate_domain::id::{MerchantId, PaymentId, TransactionKey};
use paygate_domain::idempotency::{IdempotencyKey, RequestFingerprint};
use paygate_domain::time::UnixMillis;

use crate::db::{aggregate, first, vals, Db, Row, Value};
use crate::StoreError;

aggregate! {
    /// Idempotency records. Records are written only inside other writes ([`IdempotencyWrite`]), never on their own.
    pub trait IdempotencyStore {
        /// The record under a key, if any.
        read fn idempotency_record(scope: &IdempotencyScope) -> Option<IdempotencyRecord>;
        /// Deletes a claim that has no resource to answer from (a legacy claim whose request died), conditionally
        /// on its lock token, so the key may be used again.
        write fn idempotency_release(scope: &IdempotencyScope, lock_token: i64) -> ();
        /// Deletes at most `limit` records created before `created_before`; returns how many.
        write fn idempotency_reap(created_before: UnixMillis, limit: u32) -> u64;
    }
}

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

/// The statements.
mod sql {
    pub const INSERT: &str = "INSERT INTO idempotency_keys
             (merchant_id, mode, key_kind, idempotency_key, fingerprint, state, lock_token, locked_until,
              payment_id, focus_key, response_status, response_content_type, response_body, created_at, completed_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)
         ON CONFLICT (merchant_id, mode, key_kind, idempotency_key) DO NOTHING";
    /// [`INSERT`], but only if the payment it names (`?9`) exists: sent in the same pipeline as that payment's
    /// conditional insert, the claim is written exactly when the payment was. (Both dialects type the parameters
    /// from the target columns.)
    pub const INSERT_FOR_NEW_PAYMENT: &str = "INSERT INTO idempotency_keys
             (merchant_id, mode, key_kind, idempotency_key, fingerprint, state, lock_token, locked_until,
              payment_id, focus_key, response_status, response_content_type, response_body, created_at, completed_at)
         SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15
         WHERE EXISTS (SELECT 1 FROM payments WHERE id = ?9)
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

    // Bounded, oldest first. The dialects differ: SQLite deletes by rowid (its single writer needs no locks);
    // PostgreSQL skips rows another reaper (or a claim) holds rather than waiting for them.
    pub const REAP_SQLITE: &str = "DELETE FROM idempotency_keys WHERE rowid IN (
             SELECT rowid FROM idempotency_keys WHERE created_at < ?1 ORDER BY created_at LIMIT ?2)";
    pub const REAP_POSTGRES: &str = "DELETE FROM idempotency_keys
         WHERE (merchant_id, mode, key_kind, idempotency_key) IN (
             SELECT merchant_id, mode, key_kind, idempotency_key FROM idempotency_keys
             WHERE created_at < ?1 ORDER BY created_at LIMIT ?2 FOR UPDATE SKIP LOCKED)";
}

/// The identity columns every statement starts with: merchant, mode, key kind, key (`?1` to `?4`).
fn scope_values(scope: &IdempotencyScope) -> [Value<'_>; 4] {
    [
        scope.merchant_id.into(),
        scope.mode.into(),
        scope.key_kind.as_str().into(),
        scope.key.as_str().into(),
    ]
}

/// The values of [`sql::INSERT`] for the writes that insert a record (`None` for those that update a claim).
fn insert_values(write: &IdempotencyWrite) -> Option<Vec<Value<'_>>> {
    let (scope, fingerprint, resource, now, in_flight, response) = match write {
        IdempotencyWrite::Claim {
            scope,
            fingerprint,
            resource,
            now,
            lock_token,
            locked_until,
        } => (
            scope,
            fingerprint,
            Some(*resource),
            *now,
            Some((*lock_token, *locked_until)),
            None,
        ),
        IdempotencyWrite::Record {
            scope,
            fingerprint,
            resource,
            response,
            now,
        } => (scope, fingerprint, *resource, *now, None, Some(response)),
        IdempotencyWrite::Complete { .. } | IdempotencyWrite::Detach { .. } | IdempotencyWrite::Release { .. } => {
            return None
        }
    };
    let (lock_token, locked_until) = in_flight.unwrap_or((0, now));
    let mut values = scope_values(scope).to_vec();
    values.extend([
        Value::from(fingerprint.0.as_slice()),
        Value::from(if response.is_some() { "COMPLETED" } else { "IN_FLIGHT" }),
        lock_token.into(),
        locked_until.into(),
        resource.map(|r| r.payment_id).into(),
        resource.and_then(|r| r.focus).into(),
        response.map(|r| r.status).into(),
        response.map(|r| r.content_type.as_str()).into(),
        response.map(|r| r.body.as_slice()).into(),
        now.into(),
        response.map(|_| now).into(),
    ]);
    Some(values)
}

/// Claims a key for a payment being inserted in the same transaction, written only if that payment was (see
/// [`sql::INSERT_FOR_NEW_PAYMENT`]). `Ok(false)` when the key was already taken or the payment not inserted; the
/// caller tells the two apart by the payment's own insert. `None` for a write that does not name `payment_id`:
/// the caller applies it with [`apply`] once the payment is in.
pub(crate) async fn claim_for_new_payment(
    db: &impl Db,
    write: &IdempotencyWrite,
    payment_id: PaymentId,
) -> Option<Result<bool, StoreError>> {
    let names_it = match write {
        IdempotencyWrite::Claim { resource, .. } => resource.payment_id == payment_id,
        IdempotencyWrite::Record { resource, .. } => resource.is_some_and(|r| r.payment_id == payment_id),
        _ => false,
    };
    let values = insert_values(write).filter(|_| names_it)?;
    Some(db.execute(sql::INSERT_FOR_NEW_PAYMENT, &values).await.map(|n| n == 1))
}

/// Applies one write inside the caller's transaction.
pub(crate) async fn apply(db: &impl Db, write: &IdempotencyWrite) -> Result<(), StoreError> {
    if let Some(values) = insert_values(write) {
        return match db.execute(sql::INSERT, &values).await? {
            1 => Ok(()),
            _ => Err(StoreError::IdempotencyConflict),
        };
    }
    match write {
        IdempotencyWrite::Complete {
            scope,
            lock_token,
            response,
            now,
        } => {
            let mut values = scope_values(scope).to_vec();
            values.extend([
                Value::from(*lock_token),
                response.status.into(),
                response.content_type.as_str().into(),
                response.body.as_slice().into(),
                (*now).into(),
            ]);
            if db.execute(sql::COMPLETE, &values).await? != 1 {
                tracing::warn!("the idempotency claim was gone when its answer was stored");
            }
        }
        IdempotencyWrite::Detach { scope, lock_token, now } => {
            let [m, mode, kind, key] = scope_values(scope);
            db.execute(sql::DETACH, &[m, mode, kind, key, (*lock_token).into(), (*now).into()])
                .await?;
        }
        IdempotencyWrite::Release { scope, lock_token } => release(db, scope, *lock_token).await?,
        IdempotencyWrite::Claim { .. } | IdempotencyWrite::Record { .. } => {}
    }
    Ok(())
}

async fn release(db: &impl Db, scope: &IdempotencyScope, lock_token: i64) -> Result<(), StoreError> {
    let [m, mode, kind, key] = scope_values(scope);
    db.execute(sql::RELEASE, &[m, mode, kind, key, lock_token.into()])
        .await?;
    Ok(())
}

async fn idempotency_record(db: &impl Db, scope: IdempotencyScope) -> Result<Option<IdempotencyRecord>, StoreError> {
    first(db, sql::SELECT, &scope_values(&scope))
        .await?
        .as_ref()
        .map(record)
        .transpose()
}

async fn idempotency_release(db: &impl Db, scope: IdempotencyScope, lock_token: i64) -> Result<(), StoreError> {
    release(db, &scope, lock_token).await
}

async fn idempotency_reap(db: &impl Db, created_before: UnixMillis, limit: u32) -> Result<u64, StoreError> {
    let reap = db.dialect().pick(sql::REAP_SQLITE, sql::REAP_POSTGRES);
    db.execute(reap, vals![created_before, limit]).await
}

/// A row of [`sql::SELECT`].
fn record(row: &Row) -> Result<IdempotencyRecord, StoreError> {
    use crate::StoreError::Corrupt;
    let fingerprint: [u8; 32] = row
        .blob(0)?
        .try_into()
        .map_err(|_| Corrupt("idempotency_keys.fingerprint is not 32 bytes".into()))?;
    let state = match row.text(1)? {
        "IN_FLIGHT" => IdempotencyState::InFlight {
            lock_token: row.int(2)?,
            locked_until: row.millis(3)?,
        },
        "COMPLETED" => IdempotencyState::Completed(StoredResponse {
            status: row.num(6)?,
            content_type: row.string(7)?,
            body: row.blob(8)?,
        }),
        other => return Err(Corrupt(format!("idempotency_keys.state = {other}"))),
    };
    let resource = match row.opt_parse(4, PaymentId::parse)? {
        Some(payment_id) => Some(IdempotencyResource {
            payment_id,
            focus: row.opt_parse(5, TransactionKey::parse)?,
        }),
        None => None,
    };
    Ok(IdempotencyRecord {
        fingerprint: RequestFingerprint(fingerprint),
        state,
        resource,
        created_at: row.millis(9)?,
    })
}
