//! SQLite queries for the outbox: events with their fan-out to deliveries, claims, attempts and endpoints.
//!
//! Claims need no `SKIP LOCKED` here: every write goes through the one writer thread, so a claim (select due rows,
//! then mark them leased) is atomic with respect to every other claim. Across processes SQLite's write lock does
//! the same.

use super::Cached;
use paygate_domain::api_key::Mode;
use paygate_domain::event::{DeliveryKind, DeliveryStatus, EventType};
use paygate_domain::id::{EventId, MerchantId, WebhookEndpointId};
use paygate_domain::time::UnixMillis;
use rusqlite::{params, Connection, OptionalExtension, Row};

use super::{backend, corrupt};
use crate::outbox::{
    Attempt, AttemptOutcome, ClaimedDelivery, Delivery, EndpointStatus, MerchantSettings, NewEvent, NotificationFormat,
    NotificationTarget, StoredEvent, WebhookEndpoint,
};
use crate::payments::Sealed;
use crate::StoreError;

const EVENT_COLUMNS: &str =
    "id, merchant_id, mode, type, object_id, sequence, previous_status, data, notification_fields, created_at";
const DELIVERY_COLUMNS: &str = "id, event_id, merchant_id, mode, kind, endpoint_id, url, notification_format, status, \
    attempts, next_attempt_at, last_status_code, created_at, updated_at";
const ENDPOINT_COLUMNS: &str =
    "id, merchant_id, mode, url, status, disabled_reason, secret_key_version, secret_sealed, \
    previous_secret_key_version, previous_secret_sealed, previous_secret_expires_at, failing_since, created_at, \
    updated_at, version";

fn event_from_row(row: &Row<'_>) -> rusqlite::Result<StoredEvent> {
    Ok(StoredEvent {
        id: EventId::parse(&row.get::<_, String>(0)?).map_err(|_| corrupt("events.id"))?,
        merchant_id: MerchantId::parse(&row.get::<_, String>(1)?).map_err(|_| corrupt("events.merchant_id"))?,
        mode: Mode::parse(&row.get::<_, String>(2)?).ok_or_else(|| corrupt("events.mode"))?,
        event_type: EventType::parse(&row.get::<_, String>(3)?).ok_or_else(|| corrupt("events.type"))?,
        object_id: row.get(4)?,
        sequence: row.get(5)?,
        previous_status: row.get(6)?,
        data: row.get(7)?,
        notification_fields: row.get(8)?,
        created_at: UnixMillis::new(row.get(9)?),
    })
}

fn delivery_from_row(row: &Row<'_>) -> rusqlite::Result<Delivery> {
    let endpoint: Option<String> = row.get(5)?;
    let format: Option<String> = row.get(7)?;
    Ok(Delivery {
        id: row.get(0)?,
        event_id: EventId::parse(&row.get::<_, String>(1)?).map_err(|_| corrupt("deliveries.event_id"))?,
        merchant_id: MerchantId::parse(&row.get::<_, String>(2)?).map_err(|_| corrupt("deliveries.merchant_id"))?,
        mode: Mode::parse(&row.get::<_, String>(3)?).ok_or_else(|| corrupt("deliveries.mode"))?,
        kind: DeliveryKind::parse(&row.get::<_, String>(4)?).ok_or_else(|| corrupt("deliveries.kind"))?,
        endpoint_id: endpoint
            .map(|e| WebhookEndpointId::parse(&e).map_err(|_| corrupt("deliveries.endpoint_id")))
            .transpose()?,
        url: row.get(6)?,
        notification_format: format
            .map(|f| NotificationFormat::parse(&f).ok_or_else(|| corrupt("deliveries.notification_format")))
            .transpose()?,
        status: DeliveryStatus::parse(&row.get::<_, String>(8)?).ok_or_else(|| corrupt("deliveries.status"))?,
        attempts: row.get(9)?,
        next_attempt_at: row.get::<_, Option<i64>>(10)?.map(UnixMillis::new),
        last_status_code: row.get(11)?,
        created_at: UnixMillis::new(row.get(12)?),
        updated_at: UnixMillis::new(row.get(13)?),
    })
}

fn endpoint_from_row(conn: &Connection, row: &Row<'_>) -> rusqlite::Result<WebhookEndpoint> {
    let id: String = row.get(0)?;
    let previous = match (
        row.get::<_, Option<u32>>(8)?,
        row.get::<_, Option<Vec<u8>>>(9)?,
        row.get::<_, Option<i64>>(10)?,
    ) {
        (Some(key_version), Some(bytes), Some(expires)) => {
            Some((Sealed { key_version, bytes }, UnixMillis::new(expires)))
        }
        _ => None,
    };
    let mut stmt = conn
        .prepare_cached("SELECT event_type FROM webhook_endpoint_events WHERE endpoint_id = ?1 ORDER BY event_type")?;
    let types = stmt
        .query_map(params![id], |r| r.get::<_, String>(0))?
        .collect::<Result<Vec<_>, _>>()?
        .into_iter()
        .map(|t| EventType::parse(&t).ok_or_else(|| corrupt("webhook_endpoint_events.event_type")))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(WebhookEndpoint {
        id: WebhookEndpointId::parse(&id).map_err(|_| corrupt("webhook_endpoints.id"))?,
        merchant_id: MerchantId::parse(&row.get::<_, String>(1)?)
            .map_err(|_| corrupt("webhook_endpoints.merchant_id"))?,
        mode: Mode::parse(&row.get::<_, String>(2)?).ok_or_else(|| corrupt("webhook_endpoints.mode"))?,
        url: row.get(3)?,
        event_types: types,
        status: EndpointStatus::parse(&row.get::<_, String>(4)?).ok_or_else(|| corrupt("webhook_endpoints.status"))?,
        disabled_reason: row.get(5)?,
        secret: Sealed {
            key_version: row.get(6)?,
            bytes: row.get(7)?,
        },
        previous_secret: previous,
        failing_since: row.get::<_, Option<i64>>(11)?.map(UnixMillis::new),
        created_at: UnixMillis::new(row.get(12)?),
        updated_at: UnixMillis::new(row.get(13)?),
        version: row.get(14)?,
    })
}

/// Writes an event and fans it out to deliveries: one per enabled endpoint subscribed to its type, plus the
/// notification URL. `suffix` keeps delivery IDs unique across resends.
pub(super) fn insert_event_rows(
    conn: &Connection,
    event: &StoredEvent,
    notification: Option<&NotificationTarget>,
    suffix: &str,
    now: UnixMillis,
) -> Result<u32, StoreError> {
    let exists: Option<i64> = conn
        .row(
            "SELECT 1 FROM events WHERE id = ?1",
            params![event.id.to_string()],
            |r| r.get(0),
        )
        .optional()
        .map_err(backend)?;
    if exists.is_none() {
        conn.exec(
            &format!("INSERT INTO events ({EVENT_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)"),
            params![
                event.id.to_string(),
                event.merchant_id.to_string(),
                event.mode.as_str(),
                event.event_type.as_str(),
                event.object_id,
                event.sequence,
                event.previous_status,
                event.data,
                event.notification_fields,
                event.created_at.as_millis()
            ],
        )
        .map_err(backend)?;
    }
    let webhooks = conn
        .exec(
            "INSERT INTO deliveries (id, event_id, merchant_id, mode, kind, endpoint_id, url, notification_format,
                 status, attempts, next_attempt_at, created_at, updated_at)
             SELECT ?1 || ':' || e.id || ?2, ?1, e.merchant_id, e.mode, 'WEBHOOK', e.id, e.url, NULL,
                 'PENDING', 0, ?3, ?3, ?3
             FROM webhook_endpoints e JOIN webhook_endpoint_events t ON t.endpoint_id = e.id
             WHERE e.merchant_id = ?4 AND e.mode = ?5 AND e.status = 'ENABLED' AND t.event_type = ?6",
            params![
                event.id.to_string(),
                suffix,
                now.as_millis(),
                event.merchant_id.to_string(),
                event.mode.as_str(),
                event.event_type.as_str()
            ],
        )
        .map_err(backend)?;
    let mut created = u32::try_from(webhooks).unwrap_or(u32::MAX);
    if let Some(target) = notification {
        conn.exec(
            "INSERT INTO deliveries (id, event_id, merchant_id, mode, kind, endpoint_id, url, notification_format,
                 status, attempts, next_attempt_at, created_at, updated_at)
             VALUES (?1 || ':notification' || ?2, ?1, ?3, ?4, 'NOTIFICATION', NULL, ?5, ?6, 'PENDING', 0, ?7, ?7, ?7)",
            params![
                event.id.to_string(),
                suffix,
                event.merchant_id.to_string(),
                event.mode.as_str(),
                target.url,
                target.format.as_str(),
                now.as_millis()
            ],
        )
        .map_err(backend)?;
        created = created.saturating_add(1);
    }
    Ok(created)
}

pub(super) fn insert_new_event(conn: &Connection, event: &NewEvent) -> Result<(), StoreError> {
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
    insert_event_rows(conn, &stored, event.notification.as_ref(), "", event.created_at)?;
    Ok(())
}

pub(super) fn merchant_settings(
    conn: &Connection,
    merchant: MerchantId,
    mode: Mode,
) -> Result<MerchantSettings, StoreError> {
    let row: Option<(Option<String>, String, String)> = conn
        .row(
            "SELECT notification_url, notification_format, redirect_origins FROM merchant_settings
             WHERE merchant_id = ?1 AND mode = ?2",
            params![merchant.to_string(), mode.as_str()],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .optional()
        .map_err(backend)?;
    match row {
        None => Ok(MerchantSettings::default()),
        Some((url, format, origins)) => Ok(MerchantSettings {
            notification_url: url,
            notification_format: NotificationFormat::parse(&format)
                .ok_or_else(|| StoreError::Corrupt("merchant_settings.notification_format".into()))?,
            redirect_origins: MerchantSettings::parse_redirect_origins(&origins),
        }),
    }
}

pub(super) fn set_merchant_settings(
    conn: &Connection,
    merchant: MerchantId,
    mode: Mode,
    settings: &MerchantSettings,
    now: UnixMillis,
) -> Result<(), StoreError> {
    conn.exec(
        "INSERT INTO merchant_settings
             (merchant_id, mode, notification_url, notification_format, updated_at, redirect_origins)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)
         ON CONFLICT (merchant_id, mode) DO UPDATE SET notification_url = excluded.notification_url,
             notification_format = excluded.notification_format, updated_at = excluded.updated_at,
             redirect_origins = excluded.redirect_origins",
        params![
            merchant.to_string(),
            mode.as_str(),
            settings.notification_url,
            settings.notification_format.as_str(),
            now.as_millis(),
            settings.redirect_origins_text()
        ],
    )
    .map_err(backend)?;
    Ok(())
}

fn write_subscriptions(conn: &Connection, endpoint: &WebhookEndpoint) -> Result<(), StoreError> {
    conn.exec(
        "DELETE FROM webhook_endpoint_events WHERE endpoint_id = ?1",
        params![endpoint.id.to_string()],
    )
    .map_err(backend)?;
    for event_type in &endpoint.event_types {
        conn.exec(
            "INSERT INTO webhook_endpoint_events (endpoint_id, event_type) VALUES (?1, ?2)",
            params![endpoint.id.to_string(), event_type.as_str()],
        )
        .map_err(backend)?;
    }
    Ok(())
}

fn previous_parts(endpoint: &WebhookEndpoint) -> (Option<u32>, Option<Vec<u8>>, Option<i64>) {
    match &endpoint.previous_secret {
        Some((sealed, expires)) => (
            Some(sealed.key_version),
            Some(sealed.bytes.clone()),
            Some(expires.as_millis()),
        ),
        None => (None, None, None),
    }
}

pub(super) fn insert_endpoint(conn: &Connection, endpoint: &WebhookEndpoint) -> Result<(), StoreError> {
    let (prev_version, prev_bytes, prev_expires) = previous_parts(endpoint);
    conn.exec(
        &format!(
            "INSERT INTO webhook_endpoints ({ENDPOINT_COLUMNS})
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)"
        ),
        params![
            endpoint.id.to_string(),
            endpoint.merchant_id.to_string(),
            endpoint.mode.as_str(),
            endpoint.url,
            endpoint.status.as_str(),
            endpoint.disabled_reason,
            endpoint.secret.key_version,
            endpoint.secret.bytes,
            prev_version,
            prev_bytes,
            prev_expires,
            endpoint.failing_since.map(UnixMillis::as_millis),
            endpoint.created_at.as_millis(),
            endpoint.updated_at.as_millis(),
            endpoint.version
        ],
    )
    .map_err(backend)?;
    write_subscriptions(conn, endpoint)
}

pub(super) fn update_endpoint(conn: &Connection, endpoint: &WebhookEndpoint) -> Result<(), StoreError> {
    let (prev_version, prev_bytes, prev_expires) = previous_parts(endpoint);
    let changed = conn
        .exec(
            "UPDATE webhook_endpoints SET url = ?2, status = ?3, disabled_reason = ?4, secret_key_version = ?5,
                 secret_sealed = ?6, previous_secret_key_version = ?7, previous_secret_sealed = ?8,
                 previous_secret_expires_at = ?9,
                 -- The streak belongs to the delivery worker; only re-enabling a disabled endpoint clears it.
                 failing_since = CASE WHEN ?3 = 'ENABLED' AND status <> 'ENABLED' THEN NULL ELSE failing_since END,
                 updated_at = ?11, version = ?12
             WHERE id = ?1 AND version = ?13",
            params![
                endpoint.id.to_string(),
                endpoint.url,
                endpoint.status.as_str(),
                endpoint.disabled_reason,
                endpoint.secret.key_version,
                endpoint.secret.bytes,
                prev_version,
                prev_bytes,
                prev_expires,
                endpoint.failing_since.map(UnixMillis::as_millis),
                endpoint.updated_at.as_millis(),
                endpoint.version,
                endpoint.version - 1
            ],
        )
        .map_err(backend)?;
    if changed != 1 {
        return Err(StoreError::Conflict("the endpoint changed since it was read"));
    }
    write_subscriptions(conn, endpoint)
}

pub(super) fn endpoints_where(
    conn: &Connection,
    clause: &str,
    values: &[&dyn rusqlite::ToSql],
) -> Result<Vec<WebhookEndpoint>, StoreError> {
    let mut stmt = conn
        .prepare_cached(&format!(
            "SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints WHERE {clause}"
        ))
        .map_err(backend)?;
    let rows = stmt
        .query_map(values, |row| endpoint_from_row(conn, row))
        .map_err(backend)?;
    rows.collect::<Result<Vec<_>, _>>().map_err(backend)
}

pub(super) fn events_where(
    conn: &Connection,
    clause: &str,
    values: &[&dyn rusqlite::ToSql],
) -> Result<Vec<StoredEvent>, StoreError> {
    let mut stmt = conn
        .prepare_cached(&format!("SELECT {EVENT_COLUMNS} FROM events WHERE {clause}"))
        .map_err(backend)?;
    let rows = stmt.query_map(values, event_from_row).map_err(backend)?;
    rows.collect::<Result<Vec<_>, _>>().map_err(backend)
}

pub(super) fn deliveries_where(
    conn: &Connection,
    clause: &str,
    values: &[&dyn rusqlite::ToSql],
) -> Result<Vec<Delivery>, StoreError> {
    let mut stmt = conn
        .prepare_cached(&format!("SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE {clause}"))
        .map_err(backend)?;
    let rows = stmt.query_map(values, delivery_from_row).map_err(backend)?;
    rows.collect::<Result<Vec<_>, _>>().map_err(backend)
}

pub(super) fn attempts(conn: &Connection, delivery_id: &str) -> Result<Vec<Attempt>, StoreError> {
    let mut stmt = conn
        .prepare_cached(
            "SELECT delivery_id, attempt, started_at, latency_ms, status_code, error, response_body, succeeded
             FROM delivery_attempts WHERE delivery_id = ?1 ORDER BY attempt",
        )
        .map_err(backend)?;
    let rows = stmt
        .query_map(params![delivery_id], |row| {
            Ok(Attempt {
                delivery_id: row.get(0)?,
                attempt: row.get(1)?,
                started_at: UnixMillis::new(row.get(2)?),
                latency_ms: row.get(3)?,
                status_code: row.get(4)?,
                error: row.get(5)?,
                response_body: row.get(6)?,
                succeeded: row.get::<_, i64>(7)? == 1,
            })
        })
        .map_err(backend)?;
    rows.collect::<Result<Vec<_>, _>>().map_err(backend)
}

pub(super) fn claim(
    conn: &Connection,
    now: UnixMillis,
    lease_until: UnixMillis,
    lock_token: i64,
    limit: u32,
) -> Result<Vec<ClaimedDelivery>, StoreError> {
    let due = deliveries_where(
        conn,
        "status = 'PENDING' AND next_attempt_at <= ?1 AND (locked_until IS NULL OR locked_until <= ?1)
         ORDER BY next_attempt_at LIMIT ?2",
        &[&now.as_millis(), &limit],
    )?;
    let mut claimed = Vec::with_capacity(due.len());
    for delivery in due {
        let changed = conn
            .exec(
                "UPDATE deliveries SET lock_token = ?2, locked_until = ?3 WHERE id = ?1 AND status = 'PENDING'
                   AND (locked_until IS NULL OR locked_until <= ?4)",
                params![delivery.id, lock_token, lease_until.as_millis(), now.as_millis()],
            )
            .map_err(backend)?;
        if changed != 1 {
            continue;
        }
        let event = events_where(conn, "id = ?1", &[&delivery.event_id.to_string()])?
            .into_iter()
            .next()
            .ok_or_else(|| StoreError::Corrupt("a delivery without its event".into()))?;
        let (secrets, failing_since) = match delivery.endpoint_id {
            Some(endpoint_id) => {
                let endpoint = endpoints_where(conn, "id = ?1", &[&endpoint_id.to_string()])?
                    .into_iter()
                    .next()
                    .ok_or_else(|| StoreError::Corrupt("a delivery without its endpoint".into()))?;
                let mut secrets = vec![endpoint.secret.clone()];
                if let Some((previous, expires)) = &endpoint.previous_secret {
                    if *expires > now {
                        secrets.push(previous.clone());
                    }
                }
                (secrets, endpoint.failing_since)
            }
            None => (Vec::new(), None),
        };
        claimed.push(ClaimedDelivery {
            delivery,
            event,
            lock_token,
            secrets,
            endpoint_failing_since: failing_since,
        });
    }
    Ok(claimed)
}

pub(super) fn complete(
    conn: &Connection,
    lock_token: i64,
    outcome: &AttemptOutcome,
    now: UnixMillis,
) -> Result<(), StoreError> {
    let attempt = &outcome.attempt;
    let changed = conn
        .exec(
            "UPDATE deliveries SET status = ?3, attempts = ?4, next_attempt_at = ?5, last_status_code = ?6,
                 lock_token = NULL, locked_until = NULL, updated_at = ?7
             WHERE id = ?1 AND lock_token = ?2 AND status = 'PENDING'",
            params![
                attempt.delivery_id,
                lock_token,
                outcome.status.as_str(),
                attempt.attempt,
                outcome.next_attempt_at.map(UnixMillis::as_millis),
                attempt.status_code,
                now.as_millis()
            ],
        )
        .map_err(backend)?;
    if changed != 1 {
        return Err(StoreError::Conflict("the delivery claim was lost"));
    }
    conn.exec(
        "INSERT INTO delivery_attempts
             (delivery_id, attempt, started_at, latency_ms, status_code, error, response_body, succeeded)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        params![
            attempt.delivery_id,
            attempt.attempt,
            attempt.started_at.as_millis(),
            attempt.latency_ms,
            attempt.status_code,
            attempt.error,
            attempt.response_body,
            i64::from(attempt.succeeded)
        ],
    )
    .map_err(backend)?;
    let endpoint: Option<String> = conn
        .row(
            "SELECT endpoint_id FROM deliveries WHERE id = ?1",
            params![attempt.delivery_id],
            |r| r.get(0),
        )
        .map_err(backend)?;
    if let Some(endpoint) = endpoint {
        conn.exec(
            // A success ends the streak; a failure starts one only if none is running, so concurrent completions
            // can never move the start of a streak (which decides when the endpoint is disabled).
            "UPDATE webhook_endpoints SET failing_since = CASE WHEN ?3 = 1 THEN NULL ELSE COALESCE(failing_since, ?2) END
             WHERE id = ?1",
            params![endpoint, outcome.endpoint_failing_since.map(UnixMillis::as_millis), i64::from(attempt.succeeded)],
        )
        .map_err(backend)?;
        if let Some(disable) = &outcome.disable_endpoint {
            let disabled = conn
                .exec(
                    "UPDATE webhook_endpoints SET status = 'DISABLED', disabled_reason = ?2, updated_at = ?3,
                         version = version + 1
                     WHERE id = ?1 AND status = 'ENABLED' AND failing_since IS NOT NULL AND failing_since <= ?4",
                    params![
                        endpoint,
                        disable.reason,
                        now.as_millis(),
                        disable.streak_started_by.as_millis()
                    ],
                )
                .map_err(backend)?;
            // Tell the merchant once, in the same transaction that disables the endpoint.
            if disabled == 1 {
                insert_new_event(conn, &disable.event)?;
            }
        }
    }
    Ok(())
}

pub(super) fn resend(
    conn: &Connection,
    event: &StoredEvent,
    notification: Option<&NotificationTarget>,
    resend: u32,
    now: UnixMillis,
) -> Result<u32, StoreError> {
    insert_event_rows(conn, event, notification, &format!(":r{resend}"), now)
}

pub(super) fn endpoint_by_id(
    conn: &Connection,
    merchant: MerchantId,
    mode: Mode,
    id: WebhookEndpointId,
) -> Result<Option<WebhookEndpoint>, StoreError> {
    Ok(endpoints_where(
        conn,
        "id = ?1 AND merchant_id = ?2 AND mode = ?3",
        &[&id.to_string(), &merchant.to_string(), &mode.as_str()],
    )?
    .into_iter()
    .next())
}
