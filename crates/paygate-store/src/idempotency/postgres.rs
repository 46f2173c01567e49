//! Idempotency records on PostgreSQL: the statements of [`super::sql`] in `$N` form, executed inside the caller's
//! transaction.

use deadpool_postgres::GenericClient;

use super::{scope_values, sql, IdempotencyRecord, IdempotencyScope, IdempotencyWrite, InsertValues, SelectedRow};
use crate::postgres::pg_error;
use crate::sql::postgres_statement;
use crate::StoreError;

postgres_statement!(INSERT = sql::INSERT);
postgres_statement!(COMPLETE = sql::COMPLETE);
postgres_statement!(DETACH = sql::DETACH);
postgres_statement!(SELECT = sql::SELECT);
postgres_statement!(RELEASE = sql::RELEASE);

/// Applies one write inside the caller's transaction.
pub(crate) async fn apply(client: &impl GenericClient, write: &IdempotencyWrite) -> Result<(), StoreError> {
    if let Some(v) = InsertValues::of(write) {
        let statement = client.prepare_cached(&INSERT).await.map_err(pg_error)?;
        let inserted = client
            .execute(
                &statement,
                &[
                    &v.merchant_id,
                    &v.mode,
                    &v.key_kind,
                    &v.key,
                    &v.fingerprint,
                    &v.state,
                    &v.lock_token,
                    &v.locked_until,
                    &v.payment_id,
                    &v.focus_key,
                    &v.response_status,
                    &v.response_content_type,
                    &v.response_body,
                    &v.created_at,
                    &v.completed_at,
                ],
            )
            .await
            .map_err(pg_error)?;
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
            let statement = client.prepare_cached(&COMPLETE).await.map_err(pg_error)?;
            let changed = client
                .execute(
                    &statement,
                    &[
                        &merchant_id,
                        &mode,
                        &kind,
                        &key,
                        lock_token,
                        &i64::from(response.status),
                        &response.content_type,
                        &response.body,
                        &now.as_millis(),
                    ],
                )
                .await
                .map_err(pg_error)?;
            if changed != 1 {
                tracing::warn!("the idempotency claim was gone when its answer was stored");
            }
        }
        IdempotencyWrite::Detach { scope, lock_token, now } => {
            let (merchant_id, mode, kind, key) = scope_values(scope);
            let statement = client.prepare_cached(&DETACH).await.map_err(pg_error)?;
            client
                .execute(
                    &statement,
                    &[&merchant_id, &mode, &kind, &key, lock_token, &now.as_millis()],
                )
                .await
                .map_err(pg_error)?;
        }
        IdempotencyWrite::Release { scope, lock_token } => release(client, scope, *lock_token).await?,
        IdempotencyWrite::Claim { .. } | IdempotencyWrite::Record { .. } => {}
    }
    Ok(())
}

pub(crate) async fn record(
    client: &impl GenericClient,
    scope: &IdempotencyScope,
) -> Result<Option<IdempotencyRecord>, StoreError> {
    let (merchant_id, mode, kind, key) = scope_values(scope);
    let statement = client.prepare_cached(&SELECT).await.map_err(pg_error)?;
    let Some(row) = client
        .query_opt(&statement, &[&merchant_id, &mode, &kind, &key])
        .await
        .map_err(pg_error)?
    else {
        return Ok(None);
    };
    let get = |e: tokio_postgres::Error| pg_error(e);
    SelectedRow {
        fingerprint: row.try_get(0).map_err(get)?,
        state: row.try_get(1).map_err(get)?,
        lock_token: row.try_get(2).map_err(get)?,
        locked_until: row.try_get(3).map_err(get)?,
        payment_id: row.try_get(4).map_err(get)?,
        focus_key: row.try_get(5).map_err(get)?,
        response_status: row.try_get(6).map_err(get)?,
        response_content_type: row.try_get(7).map_err(get)?,
        response_body: row.try_get(8).map_err(get)?,
        created_at: row.try_get(9).map_err(get)?,
    }
    .into_record()
    .map(Some)
}

pub(crate) async fn release(
    client: &impl GenericClient,
    scope: &IdempotencyScope,
    lock_token: i64,
) -> Result<(), StoreError> {
    let (merchant_id, mode, kind, key) = scope_values(scope);
    let statement = client.prepare_cached(&RELEASE).await.map_err(pg_error)?;
    client
        .execute(&statement, &[&merchant_id, &mode, &kind, &key, &lock_token])
        .await
        .map_err(pg_error)?;
    Ok(())
}
