//! PostgreSQL queries for the outbox: events with their fan-out to deliveries, claims, attempts and endpoints.
//!
//! The semantics are those of `sqlite/outbox.rs`; the comments here note only what PostgreSQL does differently.
//! Functions that write take the caller's [`Transaction`] and never commit.
//!
//! Claims are what differs most: several gateway processes claim at once, so a claim is one
//! `UPDATE … WHERE id IN (SELECT … FOR UPDATE SKIP LOCKED)` statement. Rows another claim holds are skipped, not
//! waited for, and a row a concurrent claim has just leased no longer qualifies when its lock is taken (READ
//! COMMITTED re-checks the condition on the newest row version), so no delivery is claimed twice.

use std::collections::HashMap;

use deadpool_postgres::{GenericClient, Transaction};
use paygate_domain::api_key::Mode;
use paygate_domain::event::{DeliveryKind, DeliveryStatus, EventType};
use paygate_domain::id::{EventId, MerchantId, WebhookEndpointId};
use paygate_domain::time::UnixMillis;
use tokio_postgres::types::ToSql;
use tokio_postgres::Row;

use super::error::pg_error;
use super::payments::{int4, unsigned};
use super::rows::{corrupt, get, parsed};
use crate::outbox::{
    Attempt, AttemptOutcome, ClaimedDelivery, Delivery, EndpointStatus, MerchantSettings, NewEvent, NotificationFormat,
    NotificationTarget, StoredEvent, WebhookEndpoint,
};
use crate::payments::Sealed;
use crate::StoreError;

type Param<'a> = &'a (dyn ToSql + Sync);

const EVENT_COLUMNS: &str =
    "id, merchant_id, mode, type, object_id, sequence, previous_status, data, notification_fields, created_at";
const DELIVERY_COLUMNS: &str = "id, event_id, merchant_id, mode, kind, endpoint_id, url, notification_format, status, \
    attempts, next_attempt_at, last_status_code, created_at, updated_at";
/// The endpoint's columns, then its subscriptions as one sorted array (index 15).
const ENDPOINT_COLUMNS: &str =
    "id, merchant_id, mode, url, status, disabled_reason, secret_key_version, secret_sealed, \
    previous_secret_key_version, previous_secret_sealed, previous_secret_expires_at, failing_since, created_at, \
    updated_at, version, ARRAY(SELECT t.event_type FROM webhook_endpoint_events t WHERE t.endpoint_id = e.id \
    ORDER BY t.event_type) AS event_types";

// Rows to domain types.

fn millis(value: Option<i64>) -> Option<UnixMillis> {
    value.map(UnixMillis::new)
}

fn status_code(row: &Row, index: usize, what: &str) -> Result<Option<u16>, StoreError> {
    get::<Option<i32>>(row, index)?
        .map(|code| parsed(u16::try_from(code), what))
        .transpose()
}

/// An event read with [`EVENT_COLUMNS`].
fn event(row: &Row) -> Result<StoredEvent, StoreError> {
    Ok(StoredEvent {
        id: parsed(EventId::parse(get(row, 0)?), "events.id")?,
        merchant_id: parsed(MerchantId::parse(get(row, 1)?), "events.merchant_id")?,
        mode: Mode::parse(get(row, 2)?).ok_or_else(|| corrupt("events.mode"))?,
        event_type: EventType::parse(get(row, 3)?).ok_or_else(|| corrupt("events.type"))?,
        object_id: get(row, 4)?,
        sequence: get(row, 5)?,
        previous_status: get(row, 6)?,
        data: get(row, 7)?,
        notification_fields: get(row, 8)?,
        created_at: UnixMillis::new(get(row, 9)?),
    })
}

/// A delivery read with [`DELIVERY_COLUMNS`].
fn delivery(row: &Row) -> Result<Delivery, StoreError> {
    Ok(Delivery {
        id: get(row, 0)?,
        event_id: parsed(EventId::parse(get(row, 1)?), "deliveries.event_id")?,
        merchant_id: parsed(MerchantId::parse(get(row, 2)?), "deliveries.merchant_id")?,
        mode: Mode::parse(get(row, 3)?).ok_or_else(|| corrupt("deliveries.mode"))?,
        kind: DeliveryKind::parse(get(row, 4)?).ok_or_else(|| corrupt("deliveries.kind"))?,
        endpoint_id: get::<Option<&str>>(row, 5)?
            .map(|id| parsed(WebhookEndpointId::parse(id), "deliveries.endpoint_id"))
            .transpose()?,
        url: get(row, 6)?,
        notification_format: get::<Option<&str>>(row, 7)?
            .map(|f| NotificationFormat::parse(f).ok_or_else(|| corrupt("deliveries.notification_format")))
            .transpose()?,
        status: DeliveryStatus::parse(get(row, 8)?).ok_or_else(|| corrupt("deliveries.status"))?,
        attempts: unsigned(row, 9, "deliveries.attempts")?,
        next_attempt_at: millis(get(row, 10)?),
        last_status_code: status_code(row, 11, "deliveries.last_status_code")?,
        created_at: UnixMillis::new(get(row, 12)?),
        updated_at: UnixMillis::new(get(row, 13)?),
    })
}

/// An endpoint read with [`ENDPOINT_COLUMNS`] (from `webhook_endpoints e`).
fn endpoint(row: &Row) -> Result<WebhookEndpoint, StoreError> {
    let previous = match (
        get::<Option<i32>>(row, 8)?,
        get::<Option<Vec<u8>>>(row, 9)?,
        get::<Option<i64>>(row, 10)?,
    ) {
        (Some(key_version), Some(bytes), Some(expires)) => Some((
            Sealed {
                key_version: parsed(
                    u32::try_from(key_version),
                    "webhook_endpoints.previous_secret_key_version",
                )?,
                bytes,
            },
            UnixMillis::new(expires),
        )),
        _ => None,
    };
    let event_types = get::<Vec<&str>>(row, 15)?
        .into_iter()
        .map(|t| EventType::parse(t).ok_or_else(|| corrupt("webhook_endpoint_events.event_type")))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(WebhookEndpoint {
        id: parsed(WebhookEndpointId::parse(get(row, 0)?), "webhook_endpoints.id")?,
        merchant_id: parsed(MerchantId::parse(get(row, 1)?), "webhook_endpoints.merchant_id")?,
        mode: Mode::parse(get(row, 2)?).ok_or_else(|| corrupt("webhook_endpoints.mode"))?,
        url: get(row, 3)?,
        event_types,
        status: EndpointStatus::parse(get(row, 4)?).ok_or_else(|| corrupt("webhook_endpoints.status"))?,
        disabled_reason: get(row, 5)?,
        secret: Sealed {
            key_version: unsigned(row, 6, "webhook_endpoints.secret_key_version")?,
            bytes: get(row, 7)?,
        },
        previous_secret: previous,
        failing_since: millis(get(row, 11)?),
        created_at: UnixMillis::new(get(row, 12)?),
        updated_at: UnixMillis::new(get(row, 13)?),
        version: get(row, 14)?,
    })
}

// Events and their fan-out.

/// Writes an event (unless it is already stored) and fans it out to deliveries: one per enabled endpoint of the
/// merchant and mode subscribed to its type, plus the notification URL. `suffix` keeps delivery IDs unique across
/// resends. Parameters in the `SELECT` list are cast: PostgreSQL does not infer their types from the target columns.
async fn insert_event_rows(
    tx: &Transaction<'_>,
    event: &StoredEvent,
    notification: Option<&NotificationTarget>,
    suffix: &str,
    now: UnixMillis,
) -> Result<u32, StoreError> {
    let (id, merchant_id) = (event.id.to_string(), event.merchant_id.to_string());
    let insert = tx
        .prepare_cached(&format!(
            "INSERT INTO events ({EVENT_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
             ON CONFLICT (id) DO NOTHING"
        ))
        .await
        .map_err(pg_error)?;
    tx.execute(
        &insert,
        &[
            &id,
            &merchant_id,
            &event.mode.as_str(),
            &event.event_type.as_str(),
            &event.object_id,
            &event.sequence,
            &event.previous_status,
            &event.data,
            &event.notification_fields,
            &event.created_at.as_millis(),
        ],
    )
    .await
    .map_err(pg_error)?;
    let webhooks = tx
        .prepare_cached(
            "INSERT INTO deliveries (id, event_id, merchant_id, mode, kind, endpoint_id, url, notification_format,
                 status, attempts, next_attempt_at, created_at, updated_at)
             SELECT $1::TEXT || ':' || e.id || $2::TEXT, $1::TEXT, e.merchant_id, e.mode, 'WEBHOOK', e.id, e.url, NULL,
                 'PENDING', 0, $3::BIGINT, $3::BIGINT, $3::BIGINT
             FROM webhook_endpoints e JOIN webhook_endpoint_events t ON t.endpoint_id = e.id
             WHERE e.merchant_id = $4 AND e.mode = $5 AND e.status = 'ENABLED' AND t.event_type = $6",
        )
        .await
        .map_err(pg_error)?;
    let created = tx
        .execute(
            &webhooks,
            &[
                &id,
                &suffix,
                &now.as_millis(),
                &merchant_id,
                &event.mode.as_str(),
                &event.event_type.as_str(),
            ],
        )
        .await
        .map_err(pg_error)?;
    let mut created = u32::try_from(created).unwrap_or(u32::MAX);
    if let Some(target) = notification {
        let insert = tx
            .prepare_cached(
                "INSERT INTO deliveries (id, event_id, merchant_id, mode, kind, endpoint_id, url, notification_format,
                     status, attempts, next_attempt_at, created_at, updated_at)
                 VALUES ($1::TEXT || ':notification' || $2::TEXT, $1::TEXT, $3, $4, 'NOTIFICATION', NULL, $5, $6,
                     'PENDING', 0, $7, $7, $7)",
            )
            .await
            .map_err(pg_error)?;
        tx.execute(
            &insert,
            &[
                &id,
                &suffix,
                &merchant_id,
                &event.mode.as_str(),
                &target.url,
                &target.format.as_str(),
                &now.as_millis(),
            ],
        )
        .await
        .map_err(pg_error)?;
        created = created.saturating_add(1);
    }
    Ok(created)
}

/// Writes a new event and its deliveries, due at the event's creation.
pub(super) async fn insert_new_event(tx: &Transaction<'_>, event: &NewEvent) -> Result<(), StoreError> {
    let stored = StoredEvent {
        id: event.id,
        merchant_id: event.merchant_id,
        mode: event.mode,
        event_type: event.event_type,
        object_id: event.object_id.clone(),
        sequence: event.sequence,
        previous_status: event.previous_status.clone(),
        data: event.data.clone(),
        notification_fields: event.notification.as_ref().map(|n| n.fields_json.clone()),
        created_at: event.created_at,
    };
    insert_event_rows(tx, &stored, event.notification.as_ref(), "", event.created_at).await?;
    Ok(())
}

pub(super) async fn resend(
    tx: &Transaction<'_>,
    event: &StoredEvent,
    notification: Option<&NotificationTarget>,
    resend: u32,
    now: UnixMillis,
) -> Result<u32, StoreError> {
    insert_event_rows(tx, event, notification, &format!(":r{resend}"), now).await
}

pub(super) async fn events_where(
    client: &impl GenericClient,
    clause: &str,
    params: &[Param<'_>],
) -> Result<Vec<StoredEvent>, StoreError> {
    let statement = client
        .prepare_cached(&format!("SELECT {EVENT_COLUMNS} FROM events WHERE {clause}"))
        .await
        .map_err(pg_error)?;
    let rows = client.query(&statement, params).await.map_err(pg_error)?;
    rows.iter().map(event).collect()
}

// Merchant settings.

pub(super) async fn merchant_settings(
    client: &impl GenericClient,
    merchant_id: MerchantId,
    mode: Mode,
) -> Result<MerchantSettings, StoreError> {
    let statement = client
        .prepare_cached(
            "SELECT notification_url, notification_format, redirect_origins FROM merchant_settings
             WHERE merchant_id = $1 AND mode = $2",
        )
        .await
        .map_err(pg_error)?;
    let row = client
        .query_opt(&statement, &[&merchant_id.to_string(), &mode.as_str()])
        .await
        .map_err(pg_error)?;
    let Some(row) = row else {
        return Ok(MerchantSettings::default());
    };
    Ok(MerchantSettings {
        notification_url: get(&row, 0)?,
        notification_format: NotificationFormat::parse(get(&row, 1)?)
            .ok_or_else(|| corrupt("merchant_settings.notification_format"))?,
        redirect_origins: MerchantSettings::parse_redirect_origins(get(&row, 2)?),
    })
}

pub(super) async fn set_merchant_settings(
    client: &impl GenericClient,
    merchant_id: MerchantId,
    mode: Mode,
    settings: &MerchantSettings,
    now: UnixMillis,
) -> Result<(), StoreError> {
    let statement = client
        .prepare_cached(
            "INSERT INTO merchant_settings
                 (merchant_id, mode, notification_url, notification_format, updated_at, redirect_origins)
             VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (merchant_id, mode) DO UPDATE SET notification_url = excluded.notification_url,
                 notification_format = excluded.notification_format, updated_at = excluded.updated_at,
                 redirect_origins = excluded.redirect_origins",
        )
        .await
        .map_err(pg_error)?;
    client
        .execute(
            &statement,
            &[
                &merchant_id.to_string(),
                &mode.as_str(),
                &settings.notification_url,
                &settings.notification_format.as_str(),
                &now.as_millis(),
                &settings.redirect_origins_text(),
            ],
        )
        .await
        .map_err(pg_error)?;
    Ok(())
}

// Endpoints.

/// An endpoint's column values for `$2` to `$15` of an insert (`$1` is the ID).
struct EndpointValues<'a> {
    merchant_id: String,
    mode: &'static str,
    url: &'a str,
    status: &'static str,
    disabled_reason: Option<&'a str>,
    secret_key_version: i32,
    secret_sealed: &'a [u8],
    previous_key_version: Option<i32>,
    previous_sealed: Option<&'a [u8]>,
    previous_expires_at: Option<i64>,
    failing_since: Option<i64>,
    created_at: i64,
    updated_at: i64,
    version: i64,
}

impl<'a> EndpointValues<'a> {
    fn new(e: &'a WebhookEndpoint) -> Result<EndpointValues<'a>, StoreError> {
        let previous = e.previous_secret.as_ref();
        Ok(EndpointValues {
            merchant_id: e.merchant_id.to_string(),
            mode: e.mode.as_str(),
            url: &e.url,
            status: e.status.as_str(),
            disabled_reason: e.disabled_reason.as_deref(),
            secret_key_version: int4(e.secret.key_version, "webhook_endpoints.secret_key_version")?,
            secret_sealed: &e.secret.bytes,
            previous_key_version: previous
                .map(|(sealed, _)| int4(sealed.key_version, "webhook_endpoints.previous_secret_key_version"))
                .transpose()?,
            previous_sealed: previous.map(|(sealed, _)| sealed.bytes.as_slice()),
            previous_expires_at: previous.map(|(_, expires)| expires.as_millis()),
            failing_since: e.failing_since.map(UnixMillis::as_millis),
            created_at: e.created_at.as_millis(),
            updated_at: e.updated_at.as_millis(),
            version: e.version,
        })
    }
}

async fn write_subscriptions(tx: &Transaction<'_>, id: &str, endpoint: &WebhookEndpoint) -> Result<(), StoreError> {
    tx.execute("DELETE FROM webhook_endpoint_events WHERE endpoint_id = $1", &[&id])
        .await
        .map_err(pg_error)?;
    let insert = tx
        .prepare_cached("INSERT INTO webhook_endpoint_events (endpoint_id, event_type) VALUES ($1, $2)")
        .await
        .map_err(pg_error)?;
    for event_type in &endpoint.event_types {
        tx.execute(&insert, &[&id, &event_type.as_str()])
            .await
            .map_err(pg_error)?;
    }
    Ok(())
}

pub(super) async fn insert_endpoint(tx: &Transaction<'_>, endpoint: &WebhookEndpoint) -> Result<(), StoreError> {
    let id = endpoint.id.to_string();
    let v = EndpointValues::new(endpoint)?;
    let statement = tx
        .prepare_cached(
            "INSERT INTO webhook_endpoints (id, merchant_id, mode, url, status, disabled_reason, secret_key_version,
                 secret_sealed, previous_secret_key_version, previous_secret_sealed, previous_secret_expires_at,
                 failing_since, created_at, updated_at, version)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)",
        )
        .await
        .map_err(pg_error)?;
    tx.execute(
        &statement,
        &[
            &id,
            &v.merchant_id,
            &v.mode,
            &v.url,
            &v.status,
            &v.disabled_reason,
            &v.secret_key_version,
            &v.secret_sealed,
            &v.previous_key_version,
            &v.previous_sealed,
            &v.previous_expires_at,
            &v.failing_since,
            &v.created_at,
            &v.updated_at,
            &v.version,
        ],
    )
    .await
    .map_err(pg_error)?;
    write_subscriptions(tx, &id, endpoint).await
}

/// Conditional on the stored version being `endpoint.version - 1`; a concurrent update of the same endpoint makes
/// this one wait for it, then find the version moved (`Conflict`).
pub(super) async fn update_endpoint(tx: &Transaction<'_>, endpoint: &WebhookEndpoint) -> Result<(), StoreError> {
    let id = endpoint.id.to_string();
    let v = EndpointValues::new(endpoint)?;
    let expected = endpoint
        .version
        .checked_sub(1)
        .ok_or(StoreError::Conflict("the endpoint changed since it was read"))?;
    let statement = tx
        .prepare_cached(
            "UPDATE webhook_endpoints SET url = $2, status = $3, disabled_reason = $4, secret_key_version = $5,
                 secret_sealed = $6, previous_secret_key_version = $7, previous_secret_sealed = $8,
                 previous_secret_expires_at = $9, \
                 failing_since = CASE WHEN $3 = 'ENABLED' AND status <> 'ENABLED' THEN NULL ELSE failing_since END, \
                 updated_at = $10, version = $11
             WHERE id = $1 AND version = $12",
        )
        .await
        .map_err(pg_error)?;
    let changed = tx
        .execute(
            &statement,
            &[
                &id,
                &v.url,
                &v.status,
                &v.disabled_reason,
                &v.secret_key_version,
                &v.secret_sealed,
                &v.previous_key_version,
                &v.previous_sealed,
                &v.previous_expires_at,
                &v.updated_at,
                &v.version,
                &expected,
            ],
        )
        .await
        .map_err(pg_error)?;
    if changed != 1 {
        return Err(StoreError::Conflict("the endpoint changed since it was read"));
    }
    write_subscriptions(tx, &id, endpoint).await
}

pub(super) async fn endpoints_where(
    client: &impl GenericClient,
    clause: &str,
    params: &[Param<'_>],
) -> Result<Vec<WebhookEndpoint>, StoreError> {
    let statement = client
        .prepare_cached(&format!(
            "SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints e WHERE {clause}"
        ))
        .await
        .map_err(pg_error)?;
    let rows = client.query(&statement, params).await.map_err(pg_error)?;
    rows.iter().map(endpoint).collect()
}

// Deliveries and attempts.

pub(super) async fn deliveries_where(
    client: &impl GenericClient,
    clause: &str,
    params: &[Param<'_>],
) -> Result<Vec<Delivery>, StoreError> {
    let statement = client
        .prepare_cached(&format!("SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE {clause}"))
        .await
        .map_err(pg_error)?;
    let rows = client.query(&statement, params).await.map_err(pg_error)?;
    rows.iter().map(delivery).collect()
}

pub(super) async fn attempts(client: &impl GenericClient, delivery_id: &str) -> Result<Vec<Attempt>, StoreError> {
    let statement = client
        .prepare_cached(
            "SELECT delivery_id, attempt, started_at, latency_ms, status_code, error, response_body, succeeded
             FROM delivery_attempts WHERE delivery_id = $1 ORDER BY attempt",
        )
        .await
        .map_err(pg_error)?;
    let rows = client.query(&statement, &[&delivery_id]).await.map_err(pg_error)?;
    rows.iter()
        .map(|row| {
            Ok(Attempt {
                delivery_id: get(row, 0)?,
                attempt: unsigned(row, 1, "delivery_attempts.attempt")?,
                started_at: UnixMillis::new(get(row, 2)?),
                latency_ms: unsigned(row, 3, "delivery_attempts.latency_ms")?,
                status_code: status_code(row, 4, "delivery_attempts.status_code")?,
                error: get(row, 5)?,
                response_body: get(row, 6)?,
                succeeded: match get::<i32>(row, 7)? {
                    0 => false,
                    1 => true,
                    _ => return Err(corrupt("delivery_attempts.succeeded")),
                },
            })
        })
        .collect()
}

/// A claimed endpoint's signing secrets and `failing_since`.
struct EndpointSecrets {
    secrets: Vec<Sealed>,
    failing_since: Option<UnixMillis>,
}

/// Leases up to `limit` due deliveries in one statement (see the module comment), then reads what sending them
/// needs, all in the caller's transaction: if a read fails, the lease is rolled back with it.
pub(super) async fn claim(
    tx: &Transaction<'_>,
    now: UnixMillis,
    lease_until: UnixMillis,
    lock_token: i64,
    limit: u32,
) -> Result<Vec<ClaimedDelivery>, StoreError> {
    let statement = tx
        .prepare_cached(&format!(
            "UPDATE deliveries SET lock_token = $1, locked_until = $2
             WHERE id IN (
                 SELECT id FROM deliveries
                 WHERE status = 'PENDING' AND next_attempt_at <= $3 AND (locked_until IS NULL OR locked_until <= $3)
                 ORDER BY next_attempt_at, id LIMIT $4
                 FOR UPDATE SKIP LOCKED)
             RETURNING {DELIVERY_COLUMNS}"
        ))
        .await
        .map_err(pg_error)?;
    let rows = tx
        .query(
            &statement,
            &[
                &lock_token,
                &lease_until.as_millis(),
                &now.as_millis(),
                &i64::from(limit),
            ],
        )
        .await
        .map_err(pg_error)?;
    let mut deliveries = rows.iter().map(delivery).collect::<Result<Vec<_>, _>>()?;
    if deliveries.is_empty() {
        return Ok(Vec::new());
    }
    // RETURNING follows no order: restore the due order.
    deliveries.sort_by(|a, b| (a.next_attempt_at, &a.id).cmp(&(b.next_attempt_at, &b.id)));

    let mut event_ids: Vec<String> = deliveries.iter().map(|d| d.event_id.to_string()).collect();
    event_ids.sort_unstable();
    event_ids.dedup();
    let events: HashMap<EventId, StoredEvent> = events_where(tx, "id = ANY($1)", &[&event_ids])
        .await?
        .into_iter()
        .map(|e| (e.id, e))
        .collect();

    let mut endpoint_ids: Vec<String> = deliveries
        .iter()
        .filter_map(|d| d.endpoint_id.map(|id| id.to_string()))
        .collect();
    endpoint_ids.sort_unstable();
    endpoint_ids.dedup();
    let mut endpoints: HashMap<String, EndpointSecrets> = HashMap::new();
    if !endpoint_ids.is_empty() {
        let statement = tx
            .prepare_cached(
                "SELECT id, secret_key_version, secret_sealed, previous_secret_key_version, previous_secret_sealed,
                     previous_secret_expires_at, failing_since
                 FROM webhook_endpoints WHERE id = ANY($1)",
            )
            .await
            .map_err(pg_error)?;
        for row in tx.query(&statement, &[&endpoint_ids]).await.map_err(pg_error)? {
            let mut secrets = vec![Sealed {
                key_version: unsigned(&row, 1, "webhook_endpoints.secret_key_version")?,
                bytes: get(&row, 2)?,
            }];
            if let (Some(key_version), Some(bytes), Some(expires)) = (
                get::<Option<i32>>(&row, 3)?,
                get::<Option<Vec<u8>>>(&row, 4)?,
                get::<Option<i64>>(&row, 5)?,
            ) {
                if UnixMillis::new(expires) > now {
                    let key_version = parsed(
                        u32::try_from(key_version),
                        "webhook_endpoints.previous_secret_key_version",
                    )?;
                    secrets.push(Sealed { key_version, bytes });
                }
            }
            let failing_since = millis(get(&row, 6)?);
            endpoints.insert(get(&row, 0)?, EndpointSecrets { secrets, failing_since });
        }
    }

    let mut claimed = Vec::with_capacity(deliveries.len());
    for delivery in deliveries {
        let event = events
            .get(&delivery.event_id)
            .cloned()
            .ok_or_else(|| StoreError::Corrupt("a delivery without its event".into()))?;
        let (secrets, endpoint_failing_since) = match delivery.endpoint_id {
            Some(endpoint_id) => {
                let endpoint = endpoints
                    .get(&endpoint_id.to_string())
                    .ok_or_else(|| StoreError::Corrupt("a delivery without its endpoint".into()))?;
                (endpoint.secrets.clone(), endpoint.failing_since)
            }
            None => (Vec::new(), None),
        };
        claimed.push(ClaimedDelivery {
            delivery,
            event,
            lock_token,
            secrets,
            endpoint_failing_since,
        });
    }
    Ok(claimed)
}

/// Conditional on the claim (`lock_token`, still PENDING); the delivery's row lock makes a concurrent completion
/// of the same delivery wait, then find it no longer matches.
pub(super) async fn complete(
    tx: &Transaction<'_>,
    lock_token: i64,
    outcome: &AttemptOutcome,
    now: UnixMillis,
) -> Result<(), StoreError> {
    let attempt = &outcome.attempt;
    let attempt_number = int4(attempt.attempt, "deliveries.attempts")?;
    let status_code = attempt.status_code.map(i32::from);
    let statement = tx
        .prepare_cached(
            "UPDATE deliveries SET status = $3, attempts = $4, next_attempt_at = $5, last_status_code = $6,
                 lock_token = NULL, locked_until = NULL, updated_at = $7
             WHERE id = $1 AND lock_token = $2 AND status = 'PENDING'
             RETURNING endpoint_id",
        )
        .await
        .map_err(pg_error)?;
    let row = tx
        .query_opt(
            &statement,
            &[
                &attempt.delivery_id,
                &lock_token,
                &outcome.status.as_str(),
                &attempt_number,
                &outcome.next_attempt_at.map(UnixMillis::as_millis),
                &status_code,
                &now.as_millis(),
            ],
        )
        .await
        .map_err(pg_error)?
        .ok_or(StoreError::Conflict("the delivery claim was lost"))?;
    let endpoint_id: Option<String> = get(&row, 0)?;
    let statement = tx
        .prepare_cached(
            "INSERT INTO delivery_attempts
                 (delivery_id, attempt, started_at, latency_ms, status_code, error, response_body, succeeded)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .await
        .map_err(pg_error)?;
    tx.execute(
        &statement,
        &[
            &attempt.delivery_id,
            &attempt_number,
            &attempt.started_at.as_millis(),
            &int4(attempt.latency_ms, "delivery_attempts.latency_ms")?,
            &status_code,
            &attempt.error,
            &attempt.response_body,
            &i32::from(attempt.succeeded),
        ],
    )
    .await
    .map_err(pg_error)?;
    let Some(endpoint_id) = endpoint_id else {
        return Ok(());
    };
    let statement = tx
        // A success ends the streak; a failure starts one only if none is running, so concurrent completions can
        // never move the start of a streak (which decides when the endpoint is disabled).
        .prepare_cached(
            "UPDATE webhook_endpoints SET failing_since = CASE WHEN $3 THEN NULL ELSE COALESCE(failing_since, $2) END \
             WHERE id = $1",
        )
        .await
        .map_err(pg_error)?;
    tx.execute(
        &statement,
        &[
            &endpoint_id,
            &outcome.endpoint_failing_since.map(UnixMillis::as_millis),
            &outcome.attempt.succeeded,
        ],
    )
    .await
    .map_err(pg_error)?;
    if let Some(disable) = &outcome.disable_endpoint {
        let statement = tx
            .prepare_cached(
                "UPDATE webhook_endpoints SET status = 'DISABLED', disabled_reason = $2, updated_at = $3,
                     version = version + 1
                 WHERE id = $1 AND status = 'ENABLED' AND failing_since IS NOT NULL AND failing_since <= $4",
            )
            .await
            .map_err(pg_error)?;
        let disabled = tx
            .execute(
                &statement,
                &[
                    &endpoint_id,
                    &disable.reason,
                    &now.as_millis(),
                    &disable.streak_started_by.as_millis(),
                ],
            )
            .await
            .map_err(pg_error)?;
        // Tell the merchant once, in the same transaction that disables the endpoint. The row lock taken above makes
        // two workers disabling the same endpoint take turns; the second finds it no longer ENABLED.
        if disabled == 1 {
            insert_new_event(tx, &disable.event).await?;
        }
    }
    Ok(())
}
