//! Idempotency records on SQLite: the statements of [`super::sql`], executed inside the caller's transaction.

use rusqlite::{params, Connection, OptionalExtension};

use super::{scope_values, sql, IdempotencyRecord, IdempotencyScope, IdempotencyWrite, InsertValues, SelectedRow};
use crate::sqlite::{backend, Cached};
use crate::StoreError;

/// Applies one write inside the transaction (or savepoint) `conn` is in.
pub(crate) fn apply(conn: &Connection, write: &IdempotencyWrite) -> Result<(), StoreError> {
    if let Some(v) = InsertValues::of(write) {
        let inserted = conn
            .exec(
                sql::INSERT,
                params![
                    v.merchant_id,
                    v.mode,
                    v.key_kind,
                    v.key,
                    v.fingerprint,
                    v.state,
                    v.lock_token,
                    v.locked_until,
                    v.payment_id,
                    v.focus_key,
                    v.response_status,
                    v.response_content_type,
                    v.response_body,
                    v.created_at,
                    v.completed_at
                ],
            )
            .map_err(backend)?;
        return if inserted == 1 {
            Ok(())
        } else {
            Err(StoreError::IdempotencyConflict)
        };
    }
    match write {
        IdempotencyWrite::Complete {
            scope,
            lock_token,
            response,
            now,
        } => {
            let (merchant_id, mode, kind, key) = scope_values(scope);
            let changed = conn
                .exec(
                    sql::COMPLETE,
                    params![
                        merchant_id,
                        mode,
                        kind,
                        key,
                        lock_token,
                        i64::from(response.status),
                        response.content_type,
                        response.body,
                        now.as_millis()
                    ],
                )
                .map_err(backend)?;
            if changed != 1 {
                tracing::warn!("the idempotency claim was gone when its answer was stored");
            }
        }
        IdempotencyWrite::Detach { scope, lock_token, now } => {
            let (merchant_id, mode, kind, key) = scope_values(scope);
            conn.exec(
                sql::DETACH,
                params![merchant_id, mode, kind, key, lock_token, now.as_millis()],
            )
            .map_err(backend)?;
        }
        IdempotencyWrite::Release { scope, lock_token } => release(conn, scope, *lock_token)?,
        IdempotencyWrite::Claim { .. } | IdempotencyWrite::Record { .. } => {}
    }
    Ok(())
}

pub(crate) fn record(conn: &Connection, scope: &IdempotencyScope) -> Result<Option<IdempotencyRecord>, StoreError> {
    let (merchant_id, mode, kind, key) = scope_values(scope);
    let row = conn
        .row(sql::SELECT, params![merchant_id, mode, kind, key], |row| {
            Ok(SelectedRow {
                fingerprint: row.get(0)?,
                state: row.get(1)?,
                lock_token: row.get(2)?,
                locked_until: row.get(3)?,
                payment_id: row.get(4)?,
                focus_key: row.get(5)?,
                response_status: row.get(6)?,
                response_content_type: row.get(7)?,
                response_body: row.get(8)?,
                created_at: row.get(9)?,
            })
        })
        .optional()
        .map_err(backend)?;
    row.map(SelectedRow::into_record).transpose()
}

pub(crate) fn release(conn: &Connection, scope: &IdempotencyScope, lock_token: i64) -> Result<(), StoreError> {
    let (merchant_id, mode, kind, key) = scope_values(scope);
    conn.exec(sql::RELEASE, params![merchant_id, mode, kind, key, lock_token])
        .map_err(backend)?;
    Ok(())
}
