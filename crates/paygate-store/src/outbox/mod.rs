//! The transactional outbox: events written with the change they describe, their deliveries (webhooks and
//! notification URLs) with every attempt, and the webhook endpoints they go to. The endpoint entity and its
//! transitions are in `paygate_domain::webhook`.
//!
//! Claims differ by dialect. On SQLite every write goes through the one writer thread (and across processes, its
//! write lock), so a claim is atomic with respect to every other. On PostgreSQL several processes claim at once:
//! the claim's `SELECT … FOR UPDATE SKIP LOCKED` skips rows another claim holds rather than waiting, and a row a
//! concurrent claim has just leased no longer qualifies when its lock is taken (READ COMMITTED re-checks the
//! condition on the newest row version), so no delivery is claimed twice.

use paygate_domain::api_key::Mode;
use paygate_domain::event::{DeliveryKind, DeliveryStatus, EventType, NotificationFormat};
use paygate_domain::id::{EventId, MerchantId, WebhookEndpointId};
use paygate_domain::sealed::Sealed;
use paygate_domain::time::UnixMillis;
use paygate_domain::webhook::{EndpointFields, EndpointStatus, WebhookEndpoint};

use crate::db::{aggregate, all, first, vals, Db, Row};
use crate::{IdempotencyWrite, StoreError};

aggregate! {
    pub trait OutboxStore {
        write fn insert_endpoint(endpoint: &WebhookEndpoint, idempotency: Option<&IdempotencyWrite>) -> ();
        read fn endpoint(merchant_id: MerchantId, mode: Mode, id: WebhookEndpointId) -> Option<WebhookEndpoint>;
        /// A merchant's endpoints in one mode, deleted ones excluded, oldest first.
        read fn list_endpoints(merchant_id: MerchantId, mode: Mode) -> Vec<WebhookEndpoint>;
        /// Writes a changed endpoint (subscriptions included), conditional on the stored version being
        /// `endpoint.version - 1`; `Conflict` otherwise.
        write fn update_endpoint(endpoint: &WebhookEndpoint, idempotency: Option<&IdempotencyWrite>) -> ();
        /// Writes an event on its own (not tied to a payment change), with its deliveries.
        write fn insert_event(event: &NewEvent) -> ();
        /// Claims up to `limit` due deliveries until `lease_until`: no other worker (in any process) takes them
        /// before then. Completion is conditional on `lock_token`.
        write fn claim_deliveries(now: UnixMillis, lease_until: UnixMillis, lock_token: i64, limit: u32)
            -> Vec<ClaimedDelivery>;
        /// Records an attempt and its consequences in one transaction. `Conflict` if the claim was lost.
        write fn complete_delivery(lock_token: i64, outcome: &AttemptOutcome, now: UnixMillis) -> ();
        /// A merchant's events in one mode, newest first, before a cursor.
        read fn list_events(merchant_id: MerchantId, mode: Mode, before: Option<EventId>, limit: u32)
            -> Vec<StoredEvent>;
        read fn event(merchant_id: MerchantId, mode: Mode, id: EventId) -> Option<StoredEvent>;
        /// An event's deliveries, oldest first.
        read fn event_deliveries(event_id: EventId) -> Vec<Delivery>;
        /// An endpoint's deliveries, newest first, at most `limit`.
        read fn endpoint_deliveries(endpoint_id: WebhookEndpointId, limit: u32) -> Vec<Delivery>;
        read fn attempts(delivery_id: &str) -> Vec<Attempt>;
        /// Creates fresh deliveries of an event to the endpoints subscribed now and to `notification` if given;
        /// returns how many. `resend` numbers the round so delivery IDs stay unique.
        write fn resend_event(
            event: &StoredEvent,
            notification: Option<&NotificationTarget>,
            resend: u32,
            now: UnixMillis,
            idempotency: Option<&IdempotencyWrite>,
        ) -> u32;
    }
}

/// Where an event's notification goes, frozen when the event is written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NotificationTarget {
    pub url: String,
    pub format: NotificationFormat,
    /// The fields to send, as a JSON object of strings.
    pub fields_json: String,
}

/// An event to write with a state change; its deliveries are created in the same transaction: one per enabled
/// endpoint of the merchant and mode subscribed to its type, and one to the notification URL if any.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewEvent {
    pub id: EventId,
    pub merchant_id: MerchantId,
    pub mode: Mode,
    pub event_type: EventType,
    pub object_id: String,
    pub sequence: i64,
    pub previous_status: Option<String>,
    /// The event's `data`, as JSON.
    pub data: String,
    pub notification: Option<NotificationTarget>,
    pub created_at: UnixMillis,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredEvent {
    pub id: EventId,
    pub merchant_id: MerchantId,
    pub mode: Mode,
    pub event_type: EventType,
    pub object_id: String,
    pub sequence: i64,
    pub previous_status: Option<String>,
    pub data: String,
    pub notification_fields: Option<String>,
    pub created_at: UnixMillis,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delivery {
    pub id: String,
    pub event_id: EventId,
    pub merchant_id: MerchantId,
    pub mode: Mode,
    pub kind: DeliveryKind,
    pub endpoint_id: Option<WebhookEndpointId>,
    pub url: String,
    pub notification_format: Option<NotificationFormat>,
    pub status: DeliveryStatus,
    pub attempts: u32,
    pub next_attempt_at: Option<UnixMillis>,
    pub last_status_code: Option<u16>,
    pub created_at: UnixMillis,
    pub updated_at: UnixMillis,
}

/// A delivery a worker has claimed, with what it needs to send it.
#[derive(Clone, Debug)]
pub struct ClaimedDelivery {
    pub delivery: Delivery,
    pub event: StoredEvent,
    pub lock_token: i64,
    /// The endpoint's signing secrets (current, then the previous one during a rotation), sealed.
    pub secrets: Vec<Sealed>,
    pub endpoint_failing_since: Option<UnixMillis>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attempt {
    pub delivery_id: String,
    pub attempt: u32,
    pub started_at: UnixMillis,
    pub latency_ms: u32,
    pub status_code: Option<u16>,
    pub error: Option<String>,
    pub response_body: Option<String>,
    pub succeeded: bool,
}

/// What a finished attempt does to its delivery and endpoint.
#[derive(Clone, Debug)]
pub struct AttemptOutcome {
    pub attempt: Attempt,
    /// `Pending` with `next_attempt_at`, `Succeeded`, or `Failed` (gave up).
    pub status: DeliveryStatus,
    pub next_attempt_at: Option<UnixMillis>,
    /// For a failed webhook: when this attempt started. The store keeps an earlier start of a running failure
    /// streak, and a success (`attempt.succeeded`) ends the streak.
    pub endpoint_failing_since: Option<UnixMillis>,
    /// Set when this failure may disable the endpoint.
    pub disable_endpoint: Option<DisableEndpoint>,
}

/// Disables an endpoint whose failure streak, as stored once this attempt is recorded, began at or before
/// `streak_started_by`; the decision is made in the database, so a success recorded meanwhile by another worker
/// wins. The event tells the merchant, and is written only if the endpoint is actually disabled.
#[derive(Clone, Debug)]
pub struct DisableEndpoint {
    pub reason: String,
    pub event: NewEvent,
    pub streak_started_by: UnixMillis,
}

macro_rules! event_columns {
    () => {
        "ev.id, ev.merchant_id, ev.mode, ev.type, ev.object_id, ev.sequence, ev.previous_status, ev.data, \
         ev.notification_fields, ev.created_at"
    };
}
macro_rules! delivery_columns {
    () => {
        "d.id, d.event_id, d.merchant_id, d.mode, d.kind, d.endpoint_id, d.url, d.notification_format, d.status, \
         d.attempts, d.next_attempt_at, d.last_status_code, d.created_at, d.updated_at"
    };
}
/// The secrets, then `failing_since`, of an endpoint `w` (6 columns).
macro_rules! secret_columns {
    () => {
        "w.secret_key_version, w.secret_sealed, w.previous_secret_key_version, w.previous_secret_sealed, \
         w.previous_secret_expires_at, w.failing_since"
    };
}
/// An endpoint `w` with its subscriptions, sorted, as one comma-separated text (`NULL` for none).
macro_rules! select_endpoints {
    ($where:literal) => {
        concat!(
            "SELECT w.id, w.merchant_id, w.mode, w.url, w.status, w.disabled_reason, ",
            secret_columns!(),
            ", w.created_at, w.updated_at, w.version,
                 (SELECT string_agg(t.event_type, ',' ORDER BY t.event_type) FROM webhook_endpoint_events t
                  WHERE t.endpoint_id = w.id)
             FROM webhook_endpoints w WHERE ",
            $where
        )
    };
}
/// The claim: lease the due deliveries in one statement. PostgreSQL skips rows other claims hold (see the module
/// comment); SQLite's single writer needs no row locks, and has no `FOR UPDATE`.
macro_rules! claim {
    ($lock:literal) => {
        concat!(
            "UPDATE deliveries SET lock_token = ?1, locked_until = ?2 WHERE id IN (
                 SELECT id FROM deliveries
                 WHERE status = 'PENDING' AND next_attempt_at <= ?3 AND (locked_until IS NULL OR locked_until <= ?3)
                 ORDER BY next_attempt_at, id LIMIT ?4 ",
            $lock,
            ") RETURNING id"
        )
    };
}
/// The claimed deliveries, by their IDs bound as one JSON array (whose elements the dialects spell differently).
macro_rules! claimed {
    ($ids:literal) => {
        concat!(
            "SELECT ",
            delivery_columns!(),
            ", ",
            event_columns!(),
            ", ",
            secret_columns!(),
            " FROM deliveries d JOIN events ev ON ev.id = d.event_id
             LEFT JOIN webhook_endpoints w ON w.id = d.endpoint_id
             WHERE d.id IN (",
            $ids,
            ") ORDER BY d.next_attempt_at, d.id"
        )
    };
}

mod sql {
    pub const INSERT_ENDPOINT: &str = "INSERT INTO webhook_endpoints (id, merchant_id, mode, url, status,
             disabled_reason, secret_key_version, secret_sealed, previous_secret_key_version, previous_secret_sealed,
             previous_secret_expires_at, failing_since, created_at, updated_at, version)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)";
    /// Conditional on the version the change was computed from. The failure streak belongs to the delivery worker:
    /// only re-enabling a disabled endpoint clears it.
    pub const UPDATE_ENDPOINT: &str = "UPDATE webhook_endpoints SET url = ?2, status = ?3, disabled_reason = ?4,
             secret_key_version = ?5, secret_sealed = ?6, previous_secret_key_version = ?7,
             previous_secret_sealed = ?8, previous_secret_expires_at = ?9,
             failing_since = CASE WHEN ?3 = 'ENABLED' AND status <> 'ENABLED' THEN NULL ELSE failing_since END,
             updated_at = ?10, version = ?11
         WHERE id = ?1 AND version = ?12";
    pub const DELETE_SUBSCRIPTIONS: &str = "DELETE FROM webhook_endpoint_events WHERE endpoint_id = ?1";
    pub const INSERT_SUBSCRIPTION: &str =
        "INSERT INTO webhook_endpoint_events (endpoint_id, event_type) VALUES (?1, ?2)";
    pub const ENDPOINT: &str = select_endpoints!("w.id = ?1 AND w.merchant_id = ?2 AND w.mode = ?3");
    pub const ENDPOINTS_OF: &str =
        select_endpoints!("w.merchant_id = ?1 AND w.mode = ?2 AND w.status <> 'DELETED' ORDER BY w.id");

    pub const INSERT_EVENT: &str = "INSERT INTO events (id, merchant_id, mode, type, object_id, sequence,
             previous_status, data, notification_fields, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10) ON CONFLICT (id) DO NOTHING";
    /// One delivery per enabled endpoint of the merchant and mode subscribed to the type. Parameters in the
    /// `SELECT` list are cast: PostgreSQL does not infer their types from the target columns.
    pub const FAN_OUT: &str = "INSERT INTO deliveries (id, event_id, merchant_id, mode, kind, endpoint_id, url,
             notification_format, status, attempts, next_attempt_at, created_at, updated_at)
         SELECT CAST(?1 AS TEXT) || ':' || e.id || CAST(?2 AS TEXT), CAST(?1 AS TEXT), e.merchant_id, e.mode,
             'WEBHOOK', e.id, e.url, NULL, 'PENDING', 0, CAST(?3 AS BIGINT), CAST(?3 AS BIGINT), CAST(?3 AS BIGINT)
         FROM webhook_endpoints e JOIN webhook_endpoint_events t ON t.endpoint_id = e.id
         WHERE e.merchant_id = ?4 AND e.mode = ?5 AND e.status = 'ENABLED' AND t.event_type = ?6";
    pub const NOTIFY: &str = "INSERT INTO deliveries (id, event_id, merchant_id, mode, kind, endpoint_id, url,
             notification_format, status, attempts, next_attempt_at, created_at, updated_at)
         VALUES (CAST(?1 AS TEXT) || ':notification' || CAST(?2 AS TEXT), ?1, ?3, ?4, 'NOTIFICATION', NULL, ?5, ?6,
             'PENDING', 0, ?7, ?7, ?7)";
    pub const EVENT: &str = concat!(
        "SELECT ",
        event_columns!(),
        " FROM events ev WHERE ev.id = ?1 AND ev.merchant_id = ?2 AND ev.mode = ?3"
    );
    pub const EVENTS_BEFORE: &str = concat!(
        "SELECT ",
        event_columns!(),
        " FROM events ev WHERE ev.merchant_id = ?1 AND ev.mode = ?2 AND ev.id < ?3 ORDER BY ev.id DESC LIMIT ?4"
    );

    pub const CLAIM_SQLITE: &str = claim!("");
    pub const CLAIM_POSTGRES: &str = claim!("FOR UPDATE SKIP LOCKED");
    pub const CLAIMED_SQLITE: &str = claimed!("SELECT value FROM json_each(?1)");
    pub const CLAIMED_POSTGRES: &str = claimed!("SELECT jsonb_array_elements_text(CAST(CAST(?1 AS TEXT) AS jsonb))");
    /// Conditional on the claim (`lock_token`, still PENDING). On PostgreSQL the delivery's row lock makes a
    /// concurrent completion of the same delivery wait, then find it no longer matches.
    pub const COMPLETE: &str = "UPDATE deliveries SET status = ?3, attempts = ?4, next_attempt_at = ?5,
             last_status_code = ?6, lock_token = NULL, locked_until = NULL, updated_at = ?7
         WHERE id = ?1 AND lock_token = ?2 AND status = 'PENDING' RETURNING endpoint_id";
    pub const INSERT_ATTEMPT: &str = "INSERT INTO delivery_attempts
             (delivery_id, attempt, started_at, latency_ms, status_code, error, response_body, succeeded)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)";
    /// A success ends the streak; a failure starts one only if none is running, so concurrent completions can
    /// never move the start of a streak (which decides when the endpoint is disabled).
    pub const STREAK: &str = "UPDATE webhook_endpoints
         SET failing_since = CASE WHEN ?3 = 1 THEN NULL ELSE COALESCE(failing_since, ?2) END WHERE id = ?1";
    pub const DISABLE: &str = "UPDATE webhook_endpoints SET status = 'DISABLED', disabled_reason = ?2,
             updated_at = ?3, version = version + 1
         WHERE id = ?1 AND status = 'ENABLED' AND failing_since IS NOT NULL AND failing_since <= ?4";
    pub const EVENT_DELIVERIES: &str = concat!(
        "SELECT ",
        delivery_columns!(),
        " FROM deliveries d WHERE d.event_id = ?1 ORDER BY d.created_at, d.id"
    );
    pub const ENDPOINT_DELIVERIES: &str = concat!(
        "SELECT ",
        delivery_columns!(),
        " FROM deliveries d WHERE d.endpoint_id = ?1 ORDER BY d.created_at DESC, d.id DESC LIMIT ?2"
    );
    pub const ATTEMPTS: &str = "SELECT delivery_id, attempt, started_at, latency_ms, status_code, error,
             response_body, succeeded
         FROM delivery_attempts WHERE delivery_id = ?1 ORDER BY attempt";
}

const DELIVERY_COLUMN_COUNT: usize = 14;
const EVENT_COLUMN_COUNT: usize = 10;

/// An event read with `event_columns!()` from `at`.
fn event_at(row: &Row, at: usize) -> Result<StoredEvent, StoreError> {
    Ok(StoredEvent {
        id: row.parse(at, EventId::parse)?,
        merchant_id: row.parse(at + 1, MerchantId::parse)?,
        mode: row.parse(at + 2, Mode::parse)?,
        event_type: row.parse(at + 3, EventType::parse)?,
        object_id: row.string(at + 4)?,
        sequence: row.int(at + 5)?,
        previous_status: row.opt_string(at + 6)?,
        data: row.string(at + 7)?,
        notification_fields: row.opt_string(at + 8)?,
        created_at: row.millis(at + 9)?,
    })
}

/// A delivery read with `delivery_columns!()`.
fn delivery_from(row: &Row) -> Result<Delivery, StoreError> {
    Ok(Delivery {
        id: row.string(0)?,
        event_id: row.parse(1, EventId::parse)?,
        merchant_id: row.parse(2, MerchantId::parse)?,
        mode: row.parse(3, Mode::parse)?,
        kind: row.parse(4, DeliveryKind::parse)?,
        endpoint_id: row.opt_parse(5, WebhookEndpointId::parse)?,
        url: row.string(6)?,
        notification_format: row.opt_parse(7, NotificationFormat::parse)?,
        status: row.parse(8, DeliveryStatus::parse)?,
        attempts: row.num(9)?,
        next_attempt_at: row.opt_millis(10)?,
        last_status_code: row.opt_num(11)?,
        created_at: row.millis(12)?,
        updated_at: row.millis(13)?,
    })
}

type Secrets = (Sealed, Option<(Sealed, UnixMillis)>);

/// An endpoint's secrets read with `secret_columns!()` from `at`, if it has them (a delivery's endpoint does).
fn secrets_at(row: &Row, at: usize) -> Result<Option<Secrets>, StoreError> {
    let Some(key_version) = row.opt_num(at)? else {
        return Ok(None);
    };
    let previous = match (row.opt_num(at + 2)?, row.opt_blob(at + 3)?, row.opt_millis(at + 4)?) {
        (Some(key_version), Some(bytes), Some(expires)) => Some((Sealed { key_version, bytes }, expires)),
        _ => None,
    };
    Ok(Some((
        Sealed {
            key_version,
            bytes: row.blob(at + 1)?,
        },
        previous,
    )))
}

/// An endpoint read with `select_endpoints!()`.
fn endpoint_from(row: &Row) -> Result<WebhookEndpoint, StoreError> {
    let (secret, previous_secret) =
        secrets_at(row, 6)?.ok_or_else(|| StoreError::Corrupt("webhook_endpoints.secret_key_version".into()))?;
    let event_types = row
        .opt_text(15)?
        .map(|text| text.split(',').map(EventType::parse).collect::<Option<Vec<_>>>())
        .unwrap_or(Some(Vec::new()))
        .ok_or_else(|| StoreError::Corrupt("webhook_endpoint_events.event_type".into()))?;
    Ok(WebhookEndpoint::restore(EndpointFields {
        id: row.parse(0, WebhookEndpointId::parse)?,
        merchant_id: row.parse(1, MerchantId::parse)?,
        mode: row.parse(2, Mode::parse)?,
        url: row.string(3)?,
        event_types,
        status: row.parse(4, EndpointStatus::parse)?,
        disabled_reason: row.opt_string(5)?,
        secret,
        previous_secret,
        failing_since: row.opt_millis(11)?,
        created_at: row.millis(12)?,
        updated_at: row.millis(13)?,
        version: row.int(14)?,
    }))
}

async fn write_subscriptions(db: &impl Db, endpoint: &WebhookEndpoint) -> Result<(), StoreError> {
    db.execute(sql::DELETE_SUBSCRIPTIONS, vals![endpoint.id]).await?;
    for event_type in &endpoint.event_types {
        db.execute(sql::INSERT_SUBSCRIPTION, vals![endpoint.id, event_type.as_str()])
            .await?;
    }
    Ok(())
}

async fn insert_endpoint(
    db: &impl Db,
    endpoint: WebhookEndpoint,
    idempotency: Option<IdempotencyWrite>,
) -> Result<(), StoreError> {
    if let Some(write) = &idempotency {
        crate::idempotency::apply(db, write).await?;
    }
    let e = &endpoint;
    refuse_retired_secrets(db, e).await?;
    let previous = e.previous_secret.as_ref();
    let values = vals![
        e.id,
        e.merchant_id,
        e.mode,
        &e.url,
        e.status.as_str(),
        e.disabled_reason.as_deref(),
        e.secret.key_version,
        &e.secret.bytes,
        previous.map(|(sealed, _)| sealed.key_version),
        previous.map(|(sealed, _)| &sealed.bytes),
        previous.map(|(_, expires)| *expires),
        e.failing_since,
        e.created_at,
        e.updated_at,
        e.version,
    ];
    db.execute(sql::INSERT_ENDPOINT, values).await?;
    write_subscriptions(db, e).await
}

async fn refuse_retired_secrets(db: &impl Db, e: &WebhookEndpoint) -> Result<(), StoreError> {
    crate::vault::refuse_retired(db, e.secret.key_version).await?;
    if let Some((previous, _)) = &e.previous_secret {
        crate::vault::refuse_retired(db, previous.key_version).await?;
    }
    Ok(())
}

async fn update_endpoint(
    db: &impl Db,
    endpoint: WebhookEndpoint,
    idempotency: Option<IdempotencyWrite>,
) -> Result<(), StoreError> {
    if let Some(write) = &idempotency {
        crate::idempotency::apply(db, write).await?;
    }
    let e = &endpoint;
    refuse_retired_secrets(db, e).await?;
    let previous = e.previous_secret.as_ref();
    let values = vals![
        e.id,
        &e.url,
        e.status.as_str(),
        e.disabled_reason.as_deref(),
        e.secret.key_version,
        &e.secret.bytes,
        previous.map(|(sealed, _)| sealed.key_version),
        previous.map(|(sealed, _)| &sealed.bytes),
        previous.map(|(_, expires)| *expires),
        e.updated_at,
        e.version,
        e.version.saturating_sub(1),
    ];
    if db.execute(sql::UPDATE_ENDPOINT, values).await? != 1 {
        return Err(StoreError::Conflict("the endpoint changed since it was read"));
    }
    write_subscriptions(db, e).await
}

async fn endpoint(
    db: &impl Db,
    merchant_id: MerchantId,
    mode: Mode,
    id: WebhookEndpointId,
) -> Result<Option<WebhookEndpoint>, StoreError> {
    let row = first(db, sql::ENDPOINT, vals![id, merchant_id, mode]).await?;
    row.as_ref().map(endpoint_from).transpose()
}

async fn list_endpoints(db: &impl Db, merchant_id: MerchantId, mode: Mode) -> Result<Vec<WebhookEndpoint>, StoreError> {
    all(db, sql::ENDPOINTS_OF, vals![merchant_id, mode], endpoint_from).await
}

/// Writes an event (unless it is already stored) and fans it out to deliveries: one per enabled endpoint
/// subscribed to its type, plus the notification URL. `suffix` keeps delivery IDs unique across resends.
async fn insert_event_rows(
    db: &impl Db,
    event: &StoredEvent,
    notification: Option<&NotificationTarget>,
    suffix: &str,
    now: UnixMillis,
) -> Result<u32, StoreError> {
    let values = vals![
        event.id,
        event.merchant_id,
        event.mode,
        event.event_type.as_str(),
        &event.object_id,
        event.sequence,
        event.previous_status.as_deref(),
        &event.data,
        event.notification_fields.as_deref(),
        event.created_at,
    ];
    db.execute(sql::INSERT_EVENT, values).await?;
    let fan_out = vals![
        event.id,
        suffix,
        now,
        event.merchant_id,
        event.mode,
        event.event_type.as_str()
    ];
    let mut created = u32::try_from(db.execute(sql::FAN_OUT, fan_out).await?).unwrap_or(u32::MAX);
    if let Some(target) = notification {
        let values = vals![
            event.id,
            suffix,
            event.merchant_id,
            event.mode,
            &target.url,
            target.format.as_str(),
            now
        ];
        db.execute(sql::NOTIFY, values).await?;
        created = created.saturating_add(1);
    }
    Ok(created)
}

/// Writes a new event and its deliveries, due at the event's creation, inside the caller's transaction.
pub(crate) async fn insert_new_event(db: &impl Db, event: &NewEvent) -> Result<(), StoreError> {
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
    insert_event_rows(db, &stored, event.notification.as_ref(), "", event.created_at).await?;
    Ok(())
}

async fn insert_event(db: &impl Db, event: NewEvent) -> Result<(), StoreError> {
    insert_new_event(db, &event).await
}

async fn resend_event(
    db: &impl Db,
    event: StoredEvent,
    notification: Option<NotificationTarget>,
    resend: u32,
    now: UnixMillis,
    idempotency: Option<IdempotencyWrite>,
) -> Result<u32, StoreError> {
    if let Some(write) = &idempotency {
        crate::idempotency::apply(db, write).await?;
    }
    insert_event_rows(db, &event, notification.as_ref(), &format!(":r{resend}"), now).await
}

/// Leases the due deliveries in one statement, then reads what sending them needs in one more, all in the
/// caller's transaction: if the read fails, the lease is rolled back with it.
async fn claim_deliveries(
    db: &impl Db,
    now: UnixMillis,
    lease_until: UnixMillis,
    lock_token: i64,
    limit: u32,
) -> Result<Vec<ClaimedDelivery>, StoreError> {
    let claim = db.dialect().pick(sql::CLAIM_SQLITE, sql::CLAIM_POSTGRES);
    let leased = db.query(claim, vals![lock_token, lease_until, now, limit]).await?;
    if leased.is_empty() {
        return Ok(Vec::new());
    }
    let ids = leased
        .iter()
        .map(|row| Ok(format!("\"{}\"", row.text(0)?)))
        .collect::<Result<Vec<_>, StoreError>>()?;
    let ids = format!("[{}]", ids.join(","));
    let claimed = db.dialect().pick(sql::CLAIMED_SQLITE, sql::CLAIMED_POSTGRES);
    all(db, claimed, vals![ids], |row| {
        let delivery = delivery_from(row)?;
        let secrets = secrets_at(row, DELIVERY_COLUMN_COUNT + EVENT_COLUMN_COUNT)?;
        let (secrets, endpoint_failing_since) = match (delivery.endpoint_id, secrets) {
            (None, _) => (Vec::new(), None),
            (Some(_), None) => return Err(StoreError::Corrupt("a delivery without its endpoint".into())),
            (Some(_), Some((secret, previous))) => {
                let previous = previous.filter(|(_, expires)| *expires > now).map(|(sealed, _)| sealed);
                let failing_since = row.opt_millis(DELIVERY_COLUMN_COUNT + EVENT_COLUMN_COUNT + 5)?;
                (std::iter::once(secret).chain(previous).collect(), failing_since)
            }
        };
        Ok(ClaimedDelivery {
            event: event_at(row, DELIVERY_COLUMN_COUNT)?,
            delivery,
            lock_token,
            secrets,
            endpoint_failing_since,
        })
    })
    .await
}

async fn complete_delivery(
    db: &impl Db,
    lock_token: i64,
    outcome: AttemptOutcome,
    now: UnixMillis,
) -> Result<(), StoreError> {
    let attempt = &outcome.attempt;
    let values = vals![
        &attempt.delivery_id,
        lock_token,
        outcome.status.as_str(),
        attempt.attempt,
        outcome.next_attempt_at,
        attempt.status_code,
        now,
    ];
    let completed = first(db, sql::COMPLETE, values)
        .await?
        .ok_or(StoreError::Conflict("the delivery claim was lost"))?;
    let values = vals![
        &attempt.delivery_id,
        attempt.attempt,
        attempt.started_at,
        attempt.latency_ms,
        attempt.status_code,
        attempt.error.as_deref(),
        attempt.response_body.as_deref(),
        attempt.succeeded,
    ];
    db.execute(sql::INSERT_ATTEMPT, values).await?;
    let Some(endpoint_id) = completed.opt_string(0)? else {
        return Ok(());
    };
    db.execute(
        sql::STREAK,
        vals![&endpoint_id, outcome.endpoint_failing_since, attempt.succeeded],
    )
    .await?;
    if let Some(disable) = &outcome.disable_endpoint {
        let values = vals![&endpoint_id, &disable.reason, now, disable.streak_started_by];
        // Tell the merchant once, in the same transaction that disables the endpoint. On PostgreSQL the row lock
        // taken above makes two workers disabling the same endpoint take turns; the second finds it DISABLED.
        if db.execute(sql::DISABLE, values).await? == 1 {
            insert_new_event(db, &disable.event).await?;
        }
    }
    Ok(())
}

async fn list_events(
    db: &impl Db,
    merchant_id: MerchantId,
    mode: Mode,
    before: Option<EventId>,
    limit: u32,
) -> Result<Vec<StoredEvent>, StoreError> {
    // "~" sorts after every ULID character (byte order, on both backends), so no cursor means "from the newest".
    let before = before.map_or_else(|| "evt_~".to_owned(), |id| id.to_string());
    all(db, sql::EVENTS_BEFORE, vals![merchant_id, mode, before, limit], |row| {
        event_at(row, 0)
    })
    .await
}

async fn event(
    db: &impl Db,
    merchant_id: MerchantId,
    mode: Mode,
    id: EventId,
) -> Result<Option<StoredEvent>, StoreError> {
    let row = first(db, sql::EVENT, vals![id, merchant_id, mode]).await?;
    row.map(|row| event_at(&row, 0)).transpose()
}

async fn event_deliveries(db: &impl Db, event_id: EventId) -> Result<Vec<Delivery>, StoreError> {
    all(db, sql::EVENT_DELIVERIES, vals![event_id], delivery_from).await
}

async fn endpoint_deliveries(
    db: &impl Db,
    endpoint_id: WebhookEndpointId,
    limit: u32,
) -> Result<Vec<Delivery>, StoreError> {
    all(db, sql::ENDPOINT_DELIVERIES, vals![endpoint_id, limit], delivery_from).await
}

async fn attempts(db: &impl Db, delivery_id: String) -> Result<Vec<Attempt>, StoreError> {
    all(db, sql::ATTEMPTS, vals![&delivery_id], |row| {
        Ok(Attempt {
            delivery_id: row.string(0)?,
            attempt: row.num(1)?,
            started_at: row.millis(2)?,
            latency_ms: row.num(3)?,
            status_code: row.opt_num(4)?,
            error: row.opt_string(5)?,
            response_body: row.opt_string(6)?,
            succeeded: row.flag(7)?,
        })
    })
    .await
}

#[cfg(test)]
mod tests {
    /// The dialects' two texts of one statement differ only where the comment says they do.
    #[test]
    fn the_claim_differs_only_by_its_row_locks() {
        assert_eq!(
            super::sql::CLAIM_POSTGRES.replace("FOR UPDATE SKIP LOCKED", ""),
            super::sql::CLAIM_SQLITE
        );
    }
}
