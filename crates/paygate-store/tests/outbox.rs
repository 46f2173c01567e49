//! Conformance tests for the outbox methods of the store: merchants' notification settings, webhook endpoints,
//! events and their fan-out to deliveries, claims (across several processes), attempts, automatic disabling and
//! resends. Like `conformance.rs` they run on the backend `PAYGATE_TEST_DATABASE_URL` selects (see `common`).
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashSet;
use std::sync::Arc;

use common::*;
use paygate_domain::api_key::Mode;
use paygate_domain::card::{CardSummary, Installment};
use paygate_domain::event::{DeliveryKind, DeliveryStatus, EventType};
use paygate_domain::id::{EventId, PaymentId, WebhookEndpointId};
use paygate_domain::merchant::Merchant;
use paygate_domain::money::Money;
use paygate_domain::order::{OrderId, OrderName};
use paygate_domain::payment::{Failure, NewPayment, Payment, Route};
use paygate_domain::time::UnixMillis;
use paygate_domain::vat::VatSplit;
use paygate_domain::webhook::EndpointFields;
use paygate_store::{
    Attempt, AttemptOutcome, Backend, ClaimedDelivery, DatabaseUrl, Delivery, DisableEndpoint, EndpointStatus,
    InsertPaymentOutcome, MerchantSettings, NewEvent, NotificationFormat, NotificationTarget, PaymentUpdate, Sealed,
    Store, StoreError, StoredEvent, WebhookEndpoint,
};

const T0: i64 = 1_700_000_000_000;
const LEASE: i64 = 60_000;
const PSC: EventType = EventType::PaymentStatusChanged;
const WED: EventType = EventType::WebhookEndpointDisabled;

fn at(millis: i64) -> UnixMillis {
    UnixMillis::new(millis)
}

fn is_conflict<T: std::fmt::Debug>(result: &Result<T, StoreError>) -> bool {
    matches!(result, Err(StoreError::Conflict(_)))
}

// Values.

/// Arbitrary sealed bytes; zero bytes and bytes above 0x7f must survive.
fn sealed(key_version: u32, seed: u8) -> Sealed {
    Sealed {
        key_version,
        bytes: (0..40u8)
            .map(|i| i.wrapping_mul(seed).wrapping_add(seed))
            .chain([0, 0xff])
            .collect(),
    }
}

/// An endpoint created at `millis` (so endpoints created later sort after it), subscribed to `types`.
fn endpoint(
    merchant: &Merchant,
    mode: Mode,
    types: &[EventType],
    status: EndpointStatus,
    millis: i64,
) -> WebhookEndpoint {
    let mut event_types = types.to_vec();
    // Stored subscriptions are read back sorted.
    event_types.sort_by_key(|t| t.as_str());
    WebhookEndpoint::restore(EndpointFields {
        id: WebhookEndpointId::new(at(millis), entropy()),
        merchant_id: merchant.id,
        mode,
        url: format!("https://hooks.example/{millis}?q=한글"),
        event_types,
        status,
        disabled_reason: (status == EndpointStatus::Disabled).then(|| "disabled by the merchant".to_owned()),
        secret: sealed(1, 3),
        previous_secret: None,
        failing_since: None,
        created_at: at(millis),
        updated_at: at(millis),
        version: 0,
    })
}

/// An endpoint with some stored fields changed, in any combination a test needs (the store writes what it is
/// given; the domain's transitions are tested in `paygate_domain::webhook`).
fn edited(e: &WebhookEndpoint, change: impl FnOnce(&mut EndpointFields)) -> WebhookEndpoint {
    let mut fields = e.fields().clone();
    change(&mut fields);
    WebhookEndpoint::restore(fields)
}

async fn add_endpoint(
    store: &dyn Store,
    merchant: &Merchant,
    mode: Mode,
    types: &[EventType],
    status: EndpointStatus,
    millis: i64,
) -> WebhookEndpoint {
    let e = endpoint(merchant, mode, types, status, millis);
    store.insert_endpoint(&e, None).await.unwrap();
    e
}

fn target(url: &str) -> NotificationTarget {
    NotificationTarget {
        url: url.to_owned(),
        format: NotificationFormat::Form,
        fields_json: r#"{"paymentKey":"pay_x","status":"DONE","메모":"노티"}"#.to_owned(),
    }
}

fn new_event(
    merchant: &Merchant,
    mode: Mode,
    event_type: EventType,
    millis: i64,
    notification: Option<NotificationTarget>,
) -> NewEvent {
    NewEvent {
        id: EventId::new(at(millis), entropy()),
        merchant_id: merchant.id,
        mode,
        event_type,
        object_id: format!("pay_object_{millis}"),
        sequence: 3,
        previous_status: Some("IN_PROGRESS".into()),
        data: r#"{"status":"DONE","amount":1000}"#.into(),
        notification,
        created_at: at(millis),
    }
}

fn stored_event(event: &NewEvent) -> StoredEvent {
    StoredEvent {
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
    }
}

async fn add_event(store: &dyn Store, event: NewEvent) -> NewEvent {
    store.insert_event(&event).await.unwrap();
    event
}

fn webhook_id(event: EventId, endpoint: WebhookEndpointId, suffix: &str) -> String {
    format!("{event}:{endpoint}{suffix}")
}

fn notification_id(event: EventId, suffix: &str) -> String {
    format!("{event}:notification{suffix}")
}

/// A fresh delivery as the fan-out writes it.
fn pending_webhook(event: &NewEvent, e: &WebhookEndpoint, suffix: &str, now: i64) -> Delivery {
    Delivery {
        id: webhook_id(event.id, e.id, suffix),
        event_id: event.id,
        merchant_id: event.merchant_id,
        mode: event.mode,
        kind: DeliveryKind::Webhook,
        endpoint_id: Some(e.id),
        url: e.url.clone(),
        notification_format: None,
        status: DeliveryStatus::Pending,
        attempts: 0,
        next_attempt_at: Some(at(now)),
        last_status_code: None,
        created_at: at(now),
        updated_at: at(now),
    }
}

fn pending_notification(event: &NewEvent, t: &NotificationTarget, suffix: &str, now: i64) -> Delivery {
    Delivery {
        id: notification_id(event.id, suffix),
        event_id: event.id,
        merchant_id: event.merchant_id,
        mode: event.mode,
        kind: DeliveryKind::Notification,
        endpoint_id: None,
        url: t.url.clone(),
        notification_format: Some(t.format),
        status: DeliveryStatus::Pending,
        attempts: 0,
        next_attempt_at: Some(at(now)),
        last_status_code: None,
        created_at: at(now),
        updated_at: at(now),
    }
}

/// Sorted as `event_deliveries` returns deliveries created at one instant: by ID.
fn by_id(mut deliveries: Vec<Delivery>) -> Vec<Delivery> {
    deliveries.sort_by(|a, b| a.id.cmp(&b.id));
    deliveries
}

fn ids(claimed: &[ClaimedDelivery]) -> Vec<String> {
    claimed.iter().map(|c| c.delivery.id.clone()).collect()
}

fn attempt(delivery_id: &str, number: u32, started: i64, status_code: Option<u16>, succeeded: bool) -> Attempt {
    Attempt {
        delivery_id: delivery_id.to_owned(),
        attempt: number,
        started_at: at(started),
        latency_ms: 1_234,
        status_code,
        error: (!succeeded).then(|| "HTTP 500 from the endpoint".to_owned()),
        response_body: Some(format!("response {number}: 실패")),
        succeeded,
    }
}

fn retry(attempt: Attempt, next: i64, failing_since: i64) -> AttemptOutcome {
    AttemptOutcome {
        attempt,
        status: DeliveryStatus::Pending,
        next_attempt_at: Some(at(next)),
        endpoint_failing_since: Some(at(failing_since)),
        disable_endpoint: None,
    }
}

fn succeeded(attempt: Attempt) -> AttemptOutcome {
    AttemptOutcome {
        attempt,
        status: DeliveryStatus::Succeeded,
        next_attempt_at: None,
        endpoint_failing_since: None,
        disable_endpoint: None,
    }
}

async fn delivery(store: &dyn Store, event: EventId, id: &str) -> Delivery {
    store
        .event_deliveries(event)
        .await
        .unwrap()
        .into_iter()
        .find(|d| d.id == id)
        .unwrap_or_else(|| panic!("no delivery {id}"))
}

async fn stored_endpoint(store: &dyn Store, e: &WebhookEndpoint) -> WebhookEndpoint {
    store.endpoint(e.merchant_id, e.mode, e.id).await.unwrap().unwrap()
}

/// Several stores on one database stand in for several gateway processes.
async fn processes(ts: &TestStore, count: usize) -> Vec<Arc<dyn Store>> {
    let mut stores = vec![Arc::clone(&ts.store)];
    for _ in 1..count {
        stores.push(ts.db.open().await.unwrap().0);
    }
    stores
}

// Merchant settings.

#[tokio::test]
async fn merchant_settings_default_and_upsert() {
    let ts = fresh_store().await;
    let (merchant, _) = seeded_merchant(&*ts, T0).await;
    let (other, _) = seeded_merchant(&*ts, T0 + 1).await;
    let defaults = MerchantSettings {
        notification_url: None,
        notification_format: NotificationFormat::Form,
        redirect_origins: Vec::new(),
    };
    assert_eq!(ts.merchant_settings(merchant.id, Mode::Test).await.unwrap(), defaults);

    let json = MerchantSettings {
        notification_url: Some("https://shop.example/noti?from=paygate&x=한".into()),
        notification_format: NotificationFormat::Json,
        redirect_origins: vec!["https://shop.example".into(), "http://127.0.0.1:8081".into()],
    };
    ts.set_merchant_settings(merchant.id, Mode::Test, &json, at(T0 + 10))
        .await
        .unwrap();
    assert_eq!(ts.merchant_settings(merchant.id, Mode::Test).await.unwrap(), json);
    // Per merchant and mode.
    assert_eq!(ts.merchant_settings(merchant.id, Mode::Live).await.unwrap(), defaults);
    assert_eq!(ts.merchant_settings(other.id, Mode::Test).await.unwrap(), defaults);

    // A second write replaces the first, back to no URL.
    ts.set_merchant_settings(merchant.id, Mode::Test, &defaults, at(T0 + 20))
        .await
        .unwrap();
    assert_eq!(ts.merchant_settings(merchant.id, Mode::Test).await.unwrap(), defaults);
    ts.set_merchant_settings(merchant.id, Mode::Live, &json, at(T0 + 30))
        .await
        .unwrap();
    assert_eq!(ts.merchant_settings(merchant.id, Mode::Live).await.unwrap(), json);
    assert_eq!(ts.merchant_settings(merchant.id, Mode::Test).await.unwrap(), defaults);

    // A merchant that does not exist breaks the foreign key.
    let stranger = merchant_at(T0 + 2);
    assert!(is_conflict(
        &ts.set_merchant_settings(stranger.id, Mode::Test, &json, at(T0)).await
    ));
}

// Endpoints.

#[tokio::test]
async fn endpoints_round_trip_list_and_update_conditionally() {
    let ts = fresh_store().await;
    let (merchant, _) = seeded_merchant(&*ts, T0).await;
    let (other, _) = seeded_merchant(&*ts, T0 + 1).await;

    let first = edited(
        &endpoint(&merchant, Mode::Test, &[WED, PSC], EndpointStatus::Enabled, T0 + 10),
        |f| {
            f.previous_secret = Some((sealed(1, 5), at(T0 + 86_400_000)));
            f.failing_since = Some(at(T0 + 5));
        },
    );
    ts.insert_endpoint(&first, None).await.unwrap();
    let second = add_endpoint(&*ts, &merchant, Mode::Test, &[PSC], EndpointStatus::Disabled, T0 + 20).await;
    let none = add_endpoint(&*ts, &merchant, Mode::Test, &[], EndpointStatus::Enabled, T0 + 30).await;
    let deleted = add_endpoint(&*ts, &merchant, Mode::Test, &[PSC], EndpointStatus::Deleted, T0 + 40).await;
    let live = add_endpoint(&*ts, &merchant, Mode::Live, &[PSC], EndpointStatus::Enabled, T0 + 50).await;
    let foreign = add_endpoint(&*ts, &other, Mode::Test, &[PSC], EndpointStatus::Enabled, T0 + 60).await;

    for e in [&first, &second, &none, &deleted, &live, &foreign] {
        assert_eq!(&stored_endpoint(&*ts, e).await, e);
    }
    // Scoped to its merchant and mode.
    assert_eq!(ts.endpoint(other.id, Mode::Test, first.id).await.unwrap(), None);
    assert_eq!(ts.endpoint(merchant.id, Mode::Live, first.id).await.unwrap(), None);
    let unknown = WebhookEndpointId::new(at(T0), entropy());
    assert_eq!(ts.endpoint(merchant.id, Mode::Test, unknown).await.unwrap(), None);

    // Oldest first, deleted ones left out.
    assert_eq!(
        ts.list_endpoints(merchant.id, Mode::Test).await.unwrap(),
        vec![first.clone(), second.clone(), none.clone()]
    );
    assert_eq!(ts.list_endpoints(merchant.id, Mode::Live).await.unwrap(), vec![live]);
    assert_eq!(ts.list_endpoints(other.id, Mode::Test).await.unwrap(), vec![foreign]);
    assert_eq!(ts.list_endpoints(other.id, Mode::Live).await.unwrap(), vec![]);

    // The same ID twice is refused.
    assert!(is_conflict(&ts.insert_endpoint(&first, None).await));

    // A full rewrite: every field and the subscriptions.
    let changed = edited(&first, |c| {
        c.url = "https://hooks.example/moved".into();
        c.event_types = vec![WED];
        c.status = EndpointStatus::Disabled;
        c.disabled_reason = Some("failing since yesterday".into());
        c.secret = sealed(2, 11);
        c.previous_secret = Some((sealed(1, 3), at(T0 + 99)));
        c.failing_since = None;
        c.updated_at = at(T0 + 1_000);
        c.version = first.version + 1;
    });
    ts.update_endpoint(&changed, None).await.unwrap();
    // The failure streak belongs to the delivery worker: a merchant's update leaves it as stored…
    let expected = edited(&changed, |e| e.failing_since = first.failing_since);
    assert_eq!(stored_endpoint(&*ts, &first).await, expected);
    let changed = expected;

    // Stale (computed from the version before) or skipping a version: refused, nothing written.
    let stale = edited(&first, |s| {
        s.version = first.version + 1;
        s.url = "https://hooks.example/stale".into();
        s.event_types = vec![PSC, WED];
    });
    assert!(is_conflict(&ts.update_endpoint(&stale, None).await));
    let skipping = edited(&changed, |s| {
        s.version = changed.version + 2;
        s.event_types = vec![];
        s.url = "https://hooks.example/skipping".into();
    });
    assert!(is_conflict(&ts.update_endpoint(&skipping, None).await));
    assert_eq!(stored_endpoint(&*ts, &first).await, changed);

    // Back: subscriptions are replaced again, the previous secret cleared.
    let again = edited(&changed, |a| {
        a.event_types = vec![PSC, WED];
        a.status = EndpointStatus::Enabled;
        a.disabled_reason = None;
        a.previous_secret = None;
        a.version = changed.version + 1;
    });
    ts.update_endpoint(&again, None).await.unwrap();
    // …and only re-enabling a disabled endpoint clears it.
    let again = edited(&again, |a| a.failing_since = None);
    assert_eq!(stored_endpoint(&*ts, &first).await, again);

    // Deleting is an update too; the endpoint is then no longer listed but can still be read.
    let gone = edited(&second, |g| {
        g.status = EndpointStatus::Deleted;
        g.version = second.version + 1;
    });
    ts.update_endpoint(&gone, None).await.unwrap();
    assert_eq!(
        ts.list_endpoints(merchant.id, Mode::Test).await.unwrap(),
        vec![again, none]
    );
    assert_eq!(stored_endpoint(&*ts, &second).await, gone);
}

// Events and their fan-out.

#[tokio::test]
async fn events_fan_out_to_the_enabled_subscribed_endpoints_and_the_notification_url() {
    let ts = fresh_store().await;
    let (merchant, _) = seeded_merchant(&*ts, T0).await;
    let (other, _) = seeded_merchant(&*ts, T0 + 1).await;
    let store = &*ts.store;
    let status_only = add_endpoint(store, &merchant, Mode::Test, &[PSC], EndpointStatus::Enabled, T0 + 10).await;
    let both = add_endpoint(
        store,
        &merchant,
        Mode::Test,
        &[PSC, WED],
        EndpointStatus::Enabled,
        T0 + 11,
    )
    .await;
    let _disabled = add_endpoint(
        store,
        &merchant,
        Mode::Test,
        &[PSC, WED],
        EndpointStatus::Disabled,
        T0 + 12,
    )
    .await;
    let _deleted = add_endpoint(
        store,
        &merchant,
        Mode::Test,
        &[PSC, WED],
        EndpointStatus::Deleted,
        T0 + 13,
    )
    .await;
    let disabled_only = add_endpoint(store, &merchant, Mode::Test, &[WED], EndpointStatus::Enabled, T0 + 14).await;
    let _nothing = add_endpoint(store, &merchant, Mode::Test, &[], EndpointStatus::Enabled, T0 + 15).await;
    let live = add_endpoint(
        store,
        &merchant,
        Mode::Live,
        &[PSC, WED],
        EndpointStatus::Enabled,
        T0 + 16,
    )
    .await;
    let foreign = add_endpoint(store, &other, Mode::Test, &[PSC, WED], EndpointStatus::Enabled, T0 + 17).await;

    // A status change with a notification URL: both endpoints subscribed to it, and the URL.
    let noti = target("https://shop.example/noti");
    let changed = add_event(
        store,
        new_event(&merchant, Mode::Test, PSC, T0 + 100, Some(noti.clone())),
    )
    .await;
    assert_eq!(
        ts.event(merchant.id, Mode::Test, changed.id).await.unwrap(),
        Some(stored_event(&changed))
    );
    assert_eq!(
        ts.event_deliveries(changed.id).await.unwrap(),
        by_id(vec![
            pending_webhook(&changed, &status_only, "", T0 + 100),
            pending_webhook(&changed, &both, "", T0 + 100),
            pending_notification(&changed, &noti, "", T0 + 100),
        ])
    );
    // Scoped to its merchant and mode.
    assert_eq!(ts.event(other.id, Mode::Test, changed.id).await.unwrap(), None);
    assert_eq!(ts.event(merchant.id, Mode::Live, changed.id).await.unwrap(), None);

    // Another type, without a notification: only its subscribers.
    let disabled_event = add_event(store, new_event(&merchant, Mode::Test, WED, T0 + 200, None)).await;
    assert_eq!(stored_event(&disabled_event).notification_fields, None);
    assert_eq!(
        ts.event(merchant.id, Mode::Test, disabled_event.id).await.unwrap(),
        Some(stored_event(&disabled_event))
    );
    assert_eq!(
        ts.event_deliveries(disabled_event.id).await.unwrap(),
        by_id(vec![
            pending_webhook(&disabled_event, &both, "", T0 + 200),
            pending_webhook(&disabled_event, &disabled_only, "", T0 + 200),
        ])
    );

    // The other mode and the other merchant reach only their own endpoints.
    let live_event = add_event(store, new_event(&merchant, Mode::Live, PSC, T0 + 300, None)).await;
    assert_eq!(
        ts.event_deliveries(live_event.id).await.unwrap(),
        vec![pending_webhook(&live_event, &live, "", T0 + 300)]
    );
    let foreign_event = add_event(store, new_event(&other, Mode::Test, PSC, T0 + 400, None)).await;
    assert_eq!(
        ts.event_deliveries(foreign_event.id).await.unwrap(),
        vec![pending_webhook(&foreign_event, &foreign, "", T0 + 400)]
    );

    // No subscriber and no URL: the event alone.
    let (lonely, _) = seeded_merchant(&*ts, T0 + 2).await;
    let quiet = add_event(store, new_event(&lonely, Mode::Test, PSC, T0 + 500, None)).await;
    assert_eq!(
        ts.event(lonely.id, Mode::Test, quiet.id).await.unwrap(),
        Some(stored_event(&quiet))
    );
    assert_eq!(ts.event_deliveries(quiet.id).await.unwrap(), vec![]);

    // Per endpoint, newest first.
    assert_eq!(
        ts.endpoint_deliveries(both.id, 10).await.unwrap(),
        vec![
            pending_webhook(&disabled_event, &both, "", T0 + 200),
            pending_webhook(&changed, &both, "", T0 + 100),
        ]
    );
    assert_eq!(
        ts.endpoint_deliveries(both.id, 1).await.unwrap(),
        vec![pending_webhook(&disabled_event, &both, "", T0 + 200)]
    );

    // An event of a merchant that does not exist writes nothing.
    let stranger = merchant_at(T0 + 3);
    let orphan = new_event(&stranger, Mode::Test, PSC, T0 + 600, Some(noti));
    assert!(is_conflict(&ts.insert_event(&orphan).await));
    assert_eq!(ts.event_deliveries(orphan.id).await.unwrap(), vec![]);
}

#[tokio::test]
async fn payment_updates_write_their_events_atomically() {
    let ts = fresh_store().await;
    let (merchant, _) = seeded_merchant(&*ts, T0).await;
    let hook = add_endpoint(&*ts, &merchant, Mode::Test, &[PSC], EndpointStatus::Enabled, T0 + 1).await;

    let payment = Payment::key_in(
        NewPayment {
            id: PaymentId::new(at(T0 + 10), entropy()),
            merchant_id: merchant.id,
            mode: Mode::Test,
            order_id: OrderId::parse("order-outbox-1").unwrap(),
            order_name: OrderName::parse("노티 테스트").unwrap(),
            amounts: VatSplit::compute(Money::krw(11_000), Money::krw(0)).unwrap(),
            installment: Installment::LUMP_SUM,
            customer_name: None,
            customer_email: None,
            notification_url: Some("https://shop.example/per-payment-noti".into()),
            extras: Default::default(),
            now: at(T0 + 10),
        },
        CardSummary {
            bin: "433000".into(),
            last4: "0003".into(),
            masked: "433000******0003".into(),
        },
        Route {
            acquirer: "ACQ_A".into(),
            acquirer_merchant_id: "A-1".into(),
        },
        at(T0 + 30_010),
    );
    assert_eq!(
        ts.insert_payment(&payment_insert(&payment, None)).await.unwrap(),
        InsertPaymentOutcome::Inserted
    );
    assert_eq!(ts.payment_by_id(payment.id).await.unwrap(), Some(payment.clone()));

    let failure = Failure {
        code: "REJECT_CARD_COMPANY".into(),
        message: "카드사에서 거절했습니다.".into(),
        acquirer_code: Some("51".into()),
    };
    let mut failed = payment.failed(failure).unwrap();
    // The update rewrites the notification URL too.
    failed.notification_url = Some("https://shop.example/changed-noti".into());
    let noti = target("https://shop.example/changed-noti");
    let event = new_event(&merchant, Mode::Test, PSC, T0 + 100, Some(noti.clone()));

    // Stale: the payment is at version 0, not -1. Nothing is written, no event, no delivery.
    let stale = PaymentUpdate {
        events: vec![event.clone()],
        ..PaymentUpdate::new(payment.version - 1, {
            let mut p = failed.clone();
            p.version = payment.version;
            p
        })
    };
    assert!(is_conflict(&ts.update_payment(&stale).await));
    // A failing event (its merchant does not exist) rolls the payment change back with it.
    let stranger = merchant_at(T0 + 2);
    let bad = PaymentUpdate {
        events: vec![event.clone(), new_event(&stranger, Mode::Test, PSC, T0 + 100, None)],
        ..PaymentUpdate::new(payment.version, failed.clone())
    };
    assert!(is_conflict(&ts.update_payment(&bad).await));
    assert_eq!(ts.payment_by_id(payment.id).await.unwrap(), Some(payment.clone()));
    assert_eq!(ts.event(merchant.id, Mode::Test, event.id).await.unwrap(), None);
    assert_eq!(ts.event_deliveries(event.id).await.unwrap(), vec![]);
    assert_eq!(ts.list_events(merchant.id, Mode::Test, None, 10).await.unwrap(), vec![]);

    // The update with its events: all of it.
    let second = new_event(&merchant, Mode::Test, WED, T0 + 100, None);
    let update = PaymentUpdate {
        events: vec![event.clone(), second.clone()],
        ..PaymentUpdate::new(payment.version, failed.clone())
    };
    ts.update_payment(&update).await.unwrap();
    assert_eq!(ts.payment_by_id(payment.id).await.unwrap(), Some(failed.clone()));
    assert_eq!(
        ts.event(merchant.id, Mode::Test, event.id).await.unwrap(),
        Some(stored_event(&event))
    );
    assert_eq!(
        ts.event_deliveries(event.id).await.unwrap(),
        by_id(vec![
            pending_webhook(&event, &hook, "", T0 + 100),
            pending_notification(&event, &noti, "", T0 + 100),
        ])
    );
    assert_eq!(
        ts.event(merchant.id, Mode::Test, second.id).await.unwrap(),
        Some(stored_event(&second))
    );
    assert_eq!(ts.event_deliveries(second.id).await.unwrap(), vec![]);

    // Replaying the same update loses on the version: no second round of deliveries.
    let third = new_event(&merchant, Mode::Test, PSC, T0 + 200, Some(noti));
    let replay = PaymentUpdate {
        events: vec![third.clone()],
        ..update
    };
    assert!(is_conflict(&ts.update_payment(&replay).await));
    assert_eq!(ts.event(merchant.id, Mode::Test, third.id).await.unwrap(), None);
    assert_eq!(ts.event_deliveries(third.id).await.unwrap(), vec![]);
    assert_eq!(ts.endpoint_deliveries(hook.id, 10).await.unwrap().len(), 1);
    assert_eq!(
        ts.list_events(merchant.id, Mode::Test, None, 10).await.unwrap().len(),
        2
    );
}

#[tokio::test]
async fn events_page_newest_first() {
    let ts = fresh_store().await;
    let (merchant, _) = seeded_merchant(&*ts, T0).await;
    let (other, _) = seeded_merchant(&*ts, T0 + 1).await;
    let mut events = Vec::new();
    for i in 0..7 {
        events.push(add_event(&*ts, new_event(&merchant, Mode::Test, PSC, T0 + 100 * i, None)).await);
    }
    add_event(&*ts, new_event(&merchant, Mode::Live, PSC, T0 + 50, None)).await;
    add_event(&*ts, new_event(&other, Mode::Test, PSC, T0 + 60, None)).await;
    let newest_first: Vec<StoredEvent> = events.iter().rev().map(stored_event).collect();

    assert_eq!(
        ts.list_events(merchant.id, Mode::Test, None, 100).await.unwrap(),
        newest_first
    );
    let mut pages = Vec::new();
    let mut before = None;
    loop {
        let page = ts.list_events(merchant.id, Mode::Test, before, 3).await.unwrap();
        if page.is_empty() {
            break;
        }
        assert!(page.len() <= 3);
        before = page.last().map(|e| e.id);
        pages.push(page);
    }
    assert_eq!(pages.iter().map(Vec::len).collect::<Vec<_>>(), [3, 3, 1]);
    assert_eq!(pages.concat(), newest_first);
    // A cursor is exclusive.
    assert_eq!(
        ts.list_events(merchant.id, Mode::Test, Some(events[3].id), 2)
            .await
            .unwrap(),
        vec![stored_event(&events[2]), stored_event(&events[1])]
    );
    assert_eq!(
        ts.list_events(merchant.id, Mode::Live, None, 100).await.unwrap().len(),
        1
    );
    assert_eq!(ts.list_events(other.id, Mode::Test, None, 100).await.unwrap().len(), 1);
    assert_eq!(ts.list_events(other.id, Mode::Live, None, 100).await.unwrap(), vec![]);
}

// Claims.

#[tokio::test]
async fn claims_take_due_deliveries_in_order_and_hold_them_for_the_lease() {
    let ts = fresh_store().await;
    let (merchant, _) = seeded_merchant(&*ts, T0).await;
    // During a rotation the previous secret signs too, until it expires at T0 + 3000.
    let hook = edited(
        &endpoint(&merchant, Mode::Test, &[PSC], EndpointStatus::Enabled, T0 + 1),
        |h| {
            h.previous_secret = Some((sealed(1, 9), at(T0 + 3_000)));
            h.secret = sealed(2, 4);
            h.failing_since = Some(at(T0 - 500));
        },
    );
    ts.insert_endpoint(&hook, None).await.unwrap();
    let noti = target("https://shop.example/noti");

    // Due at T0+1000 … T0+4000, inserted out of order; the first also has a notification.
    let mut events = Vec::new();
    for i in [3, 1, 4, 2] {
        let notification = (i == 1).then(|| noti.clone());
        events.push(
            add_event(
                &*ts,
                new_event(&merchant, Mode::Test, PSC, T0 + 1_000 * i, notification),
            )
            .await,
        );
    }
    events.sort_by_key(|e| e.created_at);
    let hook_delivery = |i: usize| webhook_id(events[i].id, hook.id, "");

    // Nothing is due before the first.
    assert!(ts
        .claim_deliveries(at(T0 + 999), at(T0 + LEASE), 1, 10)
        .await
        .unwrap()
        .is_empty());

    // At T0+2500: the first event's two deliveries and the second's, in due order.
    let now = T0 + 2_500;
    let claimed = ts.claim_deliveries(at(now), at(now + LEASE), 11, 10).await.unwrap();
    // The first two are due at the same instant: either order.
    let mut first_two = ids(&claimed[..2]);
    first_two.sort();
    let mut expected = vec![hook_delivery(0), notification_id(events[0].id, "")];
    expected.sort();
    assert_eq!(first_two, expected);
    assert_eq!(ids(&claimed[2..]), [hook_delivery(1)]);
    for c in &claimed {
        assert_eq!(c.lock_token, 11);
        let event = events.iter().find(|e| e.id == c.delivery.event_id).unwrap();
        assert_eq!(c.event, stored_event(event));
        assert_eq!(c.delivery, delivery(&*ts, event.id, &c.delivery.id).await);
        match c.delivery.kind {
            DeliveryKind::Webhook => {
                assert_eq!(
                    c.delivery,
                    pending_webhook(event, &hook, "", event.created_at.as_millis())
                );
                // Before T0+3000 the previous secret still signs.
                assert_eq!(c.secrets, vec![sealed(2, 4), sealed(1, 9)]);
                assert_eq!(c.endpoint_failing_since, Some(at(T0 - 500)));
            }
            DeliveryKind::Notification => {
                assert_eq!(
                    c.delivery,
                    pending_notification(event, &noti, "", event.created_at.as_millis())
                );
                assert_eq!(c.secrets, vec![]);
                assert_eq!(c.endpoint_failing_since, None);
            }
        }
    }

    // Later: the leased ones are not taken again; the limit holds, oldest due first.
    let later = T0 + 5_000;
    let third = ts.claim_deliveries(at(later), at(later + LEASE), 12, 1).await.unwrap();
    assert_eq!(ids(&third), [hook_delivery(2)]);
    // After T0+3000 the previous secret no longer signs.
    assert_eq!(third[0].secrets, vec![sealed(2, 4)]);
    let fourth = ts.claim_deliveries(at(later), at(later + LEASE), 13, 10).await.unwrap();
    assert_eq!(ids(&fourth), [hook_delivery(3)]);
    assert!(ts
        .claim_deliveries(at(later), at(later + LEASE), 14, 10)
        .await
        .unwrap()
        .is_empty());
    // Just before the first lease ends, still nothing.
    assert!(ts
        .claim_deliveries(at(now + LEASE - 1), at(now + 2 * LEASE), 15, 10)
        .await
        .unwrap()
        .is_empty());

    // When the first lease ends, its three deliveries are claimable again, under a new token.
    let expired = now + LEASE;
    let again = ts
        .claim_deliveries(at(expired), at(expired + LEASE), 16, 10)
        .await
        .unwrap();
    let mut first_three = claimed.iter().map(|c| c.delivery.id.clone()).collect::<Vec<_>>();
    first_three.sort();
    let mut again_ids = ids(&again);
    again_ids.sort();
    assert_eq!(again_ids, first_three);
    assert!(again.iter().all(|c| c.lock_token == 16));

    // The worker that lost its lease cannot complete; the new holder can.
    let id = hook_delivery(0);
    let outcome = succeeded(attempt(&id, 1, expired, Some(200), true));
    assert!(is_conflict(&ts.complete_delivery(11, &outcome, at(expired + 5)).await));
    ts.complete_delivery(16, &outcome, at(expired + 5)).await.unwrap();
    // A delivery that is no longer pending is never claimed again.
    let much_later = expired + 10 * LEASE;
    let rest = ts
        .claim_deliveries(at(much_later), at(much_later + LEASE), 17, 10)
        .await
        .unwrap();
    assert_eq!(rest.len(), 4);
    assert!(!ids(&rest).contains(&id));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_claims_from_three_processes_take_each_delivery_once() {
    let ts = fresh_store().await;
    let (merchant, _) = seeded_merchant(&*ts, T0).await;
    for i in 0..5 {
        add_endpoint(&*ts, &merchant, Mode::Test, &[PSC], EndpointStatus::Enabled, T0 + i).await;
    }
    // 100 events × 5 endpoints = 500 due deliveries.
    for i in 0..100 {
        add_event(&*ts, new_event(&merchant, Mode::Test, PSC, T0 + 100 + i, None)).await;
    }
    let stores = processes(&ts, 3).await;
    let now = T0 + 10_000;
    let claims: Vec<_> = (0..100i64)
        .map(|i| {
            let store = Arc::clone(&stores[usize::try_from(i).unwrap() % stores.len()]);
            tokio::spawn(async move {
                let token = 1_000 + i;
                let claimed = store
                    .claim_deliveries(at(now), at(now + LEASE), token, 7)
                    .await
                    .unwrap();
                assert!(claimed.len() <= 7);
                assert!(claimed.iter().all(|c| c.lock_token == token));
                ids(&claimed)
            })
        })
        .collect();
    let mut all = Vec::new();
    for claim in claims {
        all.extend(claim.await.unwrap());
    }
    let unique: HashSet<&String> = all.iter().collect();
    assert_eq!(unique.len(), all.len(), "a delivery was claimed twice");
    assert_eq!(all.len(), 500, "every due delivery is claimed");
    for store in &stores {
        assert!(store
            .claim_deliveries(at(now), at(now + LEASE), 1, 10)
            .await
            .unwrap()
            .is_empty());
    }
    for store in stores.iter().skip(1) {
        store.close().await;
    }
}

// Completing.

#[tokio::test]
async fn completing_records_the_attempt_and_its_consequences() {
    let ts = fresh_store().await;
    let (merchant, _) = seeded_merchant(&*ts, T0).await;
    let hook = add_endpoint(&*ts, &merchant, Mode::Test, &[PSC], EndpointStatus::Enabled, T0 + 1).await;
    let noti = target("https://shop.example/noti");
    let event = add_event(
        &*ts,
        new_event(&merchant, Mode::Test, PSC, T0 + 100, Some(noti.clone())),
    )
    .await;
    let hook_id = webhook_id(event.id, hook.id, "");
    let noti_id = notification_id(event.id, "");

    let now = T0 + 1_000;
    let claimed = ts.claim_deliveries(at(now), at(now + LEASE), 21, 10).await.unwrap();
    assert_eq!(claimed.len(), 2);

    // The wrong token: refused, nothing recorded.
    let first = attempt(&hook_id, 1, now, Some(500), false);
    let outcome = retry(first.clone(), now + 30_000, now);
    assert!(is_conflict(&ts.complete_delivery(22, &outcome, at(now + 10)).await));
    assert_eq!(ts.attempts(&hook_id).await.unwrap(), vec![]);
    assert_eq!(
        delivery(&*ts, event.id, &hook_id).await,
        pending_webhook(&event, &hook, "", T0 + 100)
    );
    assert_eq!(stored_endpoint(&*ts, &hook).await, hook);

    // The right token: a failed attempt, retried later; the endpoint starts failing.
    ts.complete_delivery(21, &outcome, at(now + 10)).await.unwrap();
    assert_eq!(ts.attempts(&hook_id).await.unwrap(), vec![first.clone()]);
    let retrying = delivery(&*ts, event.id, &hook_id).await;
    assert_eq!(
        retrying,
        Delivery {
            status: DeliveryStatus::Pending,
            attempts: 1,
            next_attempt_at: Some(at(now + 30_000)),
            last_status_code: Some(500),
            updated_at: at(now + 10),
            ..pending_webhook(&event, &hook, "", T0 + 100)
        }
    );
    assert_eq!(stored_endpoint(&*ts, &hook).await.failing_since, Some(at(now)));
    // The claim ended with the completion: the same token cannot complete twice.
    assert!(is_conflict(&ts.complete_delivery(21, &outcome, at(now + 20)).await));
    assert_eq!(ts.attempts(&hook_id).await.unwrap().len(), 1);

    // Not due again before its next attempt, even though its lease was released.
    assert!(ts
        .claim_deliveries(at(now + 29_999), at(now + LEASE), 23, 10)
        .await
        .unwrap()
        .is_empty());
    let retry_at = now + 30_000;
    let claimed = ts
        .claim_deliveries(at(retry_at), at(retry_at + LEASE), 24, 10)
        .await
        .unwrap();
    assert_eq!(ids(&claimed), vec![hook_id.clone()]);
    assert_eq!(claimed[0].delivery, retrying);
    assert_eq!(claimed[0].endpoint_failing_since, Some(at(now)));

    // A success: done, and the endpoint no longer failing.
    let second = attempt(&hook_id, 2, retry_at, Some(200), true);
    ts.complete_delivery(24, &succeeded(second.clone()), at(retry_at + 10))
        .await
        .unwrap();
    assert_eq!(ts.attempts(&hook_id).await.unwrap(), vec![first, second]);
    let done = delivery(&*ts, event.id, &hook_id).await;
    assert_eq!(
        (done.status, done.attempts, done.next_attempt_at, done.last_status_code),
        (DeliveryStatus::Succeeded, 2, None, Some(200))
    );
    assert_eq!(stored_endpoint(&*ts, &hook).await.failing_since, None);

    // The notification: gave up after a transport error (no status code); no endpoint is touched.
    let noti_attempt = Attempt {
        status_code: None,
        error: Some("connection refused".into()),
        response_body: None,
        ..attempt(&noti_id, 1, now, None, false)
    };
    let gave_up = AttemptOutcome {
        attempt: noti_attempt.clone(),
        status: DeliveryStatus::Failed,
        next_attempt_at: None,
        endpoint_failing_since: Some(at(now)),
        disable_endpoint: None,
    };
    // Still under the first claim (token 21), which the webhook's completion did not touch.
    ts.complete_delivery(21, &gave_up, at(now + 50)).await.unwrap();
    assert_eq!(ts.attempts(&noti_id).await.unwrap(), vec![noti_attempt]);
    assert_eq!(
        delivery(&*ts, event.id, &noti_id).await,
        Delivery {
            status: DeliveryStatus::Failed,
            attempts: 1,
            next_attempt_at: None,
            updated_at: at(now + 50),
            ..pending_notification(&event, &noti, "", T0 + 100)
        }
    );
    assert_eq!(stored_endpoint(&*ts, &hook).await.failing_since, None);
    assert_eq!(ts.attempts("evt_nothing:notification").await.unwrap(), vec![]);
    // Nothing is left to claim: one delivery succeeded, the other gave up.
    assert!(ts
        .claim_deliveries(at(T0 + 10 * LEASE), at(T0 + 11 * LEASE), 25, 10)
        .await
        .unwrap()
        .is_empty());
}

#[tokio::test]
async fn disabling_an_endpoint_writes_its_event_once() {
    let ts = fresh_store().await;
    let (merchant, _) = seeded_merchant(&*ts, T0).await;
    // The failing endpoint is subscribed to the disable event too: it must not get a delivery of it.
    let failing = add_endpoint(
        &*ts,
        &merchant,
        Mode::Test,
        &[PSC, WED],
        EndpointStatus::Enabled,
        T0 + 1,
    )
    .await;
    let watcher = add_endpoint(&*ts, &merchant, Mode::Test, &[WED], EndpointStatus::Enabled, T0 + 2).await;
    let first = add_event(&*ts, new_event(&merchant, Mode::Test, PSC, T0 + 100, None)).await;
    let second = add_event(&*ts, new_event(&merchant, Mode::Test, PSC, T0 + 200, None)).await;
    let now = T0 + 1_000;
    let claimed = ts.claim_deliveries(at(now), at(now + LEASE), 31, 10).await.unwrap();
    assert_eq!(
        ids(&claimed),
        [
            webhook_id(first.id, failing.id, ""),
            webhook_id(second.id, failing.id, "")
        ]
    );

    let disable = |delivery_id: &str, millis: i64| {
        let event = new_event(&merchant, Mode::Test, WED, millis, None);
        let outcome = AttemptOutcome {
            attempt: attempt(delivery_id, 9, now, Some(503), false),
            status: DeliveryStatus::Failed,
            next_attempt_at: None,
            endpoint_failing_since: Some(at(T0 - 86_400_000)),
            disable_endpoint: Some(DisableEndpoint {
                reason: "failing for three days".to_owned(),
                event: event.clone(),
                streak_started_by: at(now),
            }),
        };
        (event, outcome)
    };
    let (disabled_event, outcome) = disable(&claimed[0].delivery.id, now + 10);
    ts.complete_delivery(31, &outcome, at(now + 10)).await.unwrap();
    assert_eq!(
        stored_endpoint(&*ts, &failing).await,
        edited(&failing, |f| {
            f.status = EndpointStatus::Disabled;
            f.disabled_reason = Some("failing for three days".into());
            f.failing_since = Some(at(T0 - 86_400_000));
            f.updated_at = at(now + 10);
            f.version = failing.version + 1;
        })
    );
    assert_eq!(
        ts.event(merchant.id, Mode::Test, disabled_event.id).await.unwrap(),
        Some(stored_event(&disabled_event))
    );
    assert_eq!(
        ts.event_deliveries(disabled_event.id).await.unwrap(),
        vec![pending_webhook(&disabled_event, &watcher, "", now + 10)]
    );

    // The second failure of the (already disabled) endpoint: recorded, but no second disable nor event.
    let (again, outcome) = disable(&claimed[1].delivery.id, now + 20);
    ts.complete_delivery(31, &outcome, at(now + 20)).await.unwrap();
    assert_eq!(ts.attempts(&claimed[1].delivery.id).await.unwrap().len(), 1);
    assert_eq!(ts.event(merchant.id, Mode::Test, again.id).await.unwrap(), None);
    assert_eq!(ts.event_deliveries(again.id).await.unwrap(), vec![]);
    let endpoint = stored_endpoint(&*ts, &failing).await;
    assert_eq!(
        (endpoint.version, endpoint.updated_at),
        (failing.version + 1, at(now + 10))
    );
    let disable_events: Vec<_> = ts
        .list_events(merchant.id, Mode::Test, None, 100)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.event_type == WED)
        .collect();
    assert_eq!(disable_events, vec![stored_event(&disabled_event)]);

    // A disabled endpoint gets no new deliveries.
    let third = add_event(&*ts, new_event(&merchant, Mode::Test, PSC, T0 + 300, None)).await;
    assert_eq!(ts.event_deliveries(third.id).await.unwrap(), vec![]);
}

// Resends.

#[tokio::test]
async fn resends_create_fresh_deliveries_to_the_current_subscribers() {
    let ts = fresh_store().await;
    let (merchant, _) = seeded_merchant(&*ts, T0).await;
    let hook = add_endpoint(&*ts, &merchant, Mode::Test, &[PSC], EndpointStatus::Enabled, T0 + 1).await;
    let noti = target("https://shop.example/noti");
    let event = add_event(
        &*ts,
        new_event(&merchant, Mode::Test, PSC, T0 + 100, Some(noti.clone())),
    )
    .await;
    let stored = ts.event(merchant.id, Mode::Test, event.id).await.unwrap().unwrap();

    // Since then: a new subscriber, and the old one given up on.
    let newcomer = add_endpoint(&*ts, &merchant, Mode::Test, &[PSC], EndpointStatus::Enabled, T0 + 200).await;
    let now = T0 + 1_000;
    ts.claim_deliveries(at(now), at(now + LEASE), 41, 10).await.unwrap();
    let original = webhook_id(event.id, hook.id, "");
    let gave_up = AttemptOutcome {
        status: DeliveryStatus::Failed,
        next_attempt_at: None,
        ..retry(attempt(&original, 1, now, Some(500), false), now, now)
    };
    ts.complete_delivery(41, &gave_up, at(now + 1)).await.unwrap();

    let resent_at = T0 + 5_000;
    assert_eq!(
        ts.resend_event(&stored, Some(&noti), 1, at(resent_at), None)
            .await
            .unwrap(),
        3
    );
    let round_one = by_id(vec![
        pending_webhook(&event, &hook, ":r1", resent_at),
        pending_webhook(&event, &newcomer, ":r1", resent_at),
        pending_notification(&event, &noti, ":r1", resent_at),
    ]);
    let deliveries = ts.event_deliveries(event.id).await.unwrap();
    assert_eq!(deliveries.len(), 5);
    // Oldest first: the original two, then the resend.
    assert_eq!(deliveries[2..], round_one[..]);
    assert_eq!(delivery(&*ts, event.id, &original).await.status, DeliveryStatus::Failed);
    // The event itself is unchanged.
    assert_eq!(
        ts.event(merchant.id, Mode::Test, event.id).await.unwrap(),
        Some(stored.clone())
    );

    // Without the notification URL, a second round reaches the endpoints only; the same round number twice is
    // refused and writes nothing.
    assert_eq!(
        ts.resend_event(&stored, None, 2, at(resent_at + 1), None)
            .await
            .unwrap(),
        2
    );
    assert!(is_conflict(
        &ts.resend_event(&stored, Some(&noti), 2, at(resent_at + 2), None).await
    ));
    assert_eq!(ts.event_deliveries(event.id).await.unwrap().len(), 7);

    // Per endpoint, newest first.
    let hook_ids: Vec<String> = ts
        .endpoint_deliveries(hook.id, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|d| d.id)
        .collect();
    assert_eq!(
        hook_ids,
        [
            webhook_id(event.id, hook.id, ":r2"),
            webhook_id(event.id, hook.id, ":r1"),
            original.clone(),
        ]
    );
    assert_eq!(ts.endpoint_deliveries(hook.id, 2).await.unwrap().len(), 2);

    // The fresh deliveries are due at once; the given-up original is not.
    let claimed = ts
        .claim_deliveries(at(resent_at + 10), at(resent_at + LEASE), 42, 100)
        .await
        .unwrap();
    let claimed_ids: HashSet<String> = ids(&claimed).into_iter().collect();
    assert!(!claimed_ids.contains(&original));
    assert!(claimed_ids.contains(&webhook_id(event.id, hook.id, ":r1")));
    assert!(claimed_ids.contains(&webhook_id(event.id, newcomer.id, ":r2")));
    // The never-attempted original to the newcomer does not exist: it subscribed after the event.
    assert!(!claimed_ids.contains(&webhook_id(event.id, newcomer.id, "")));
}

// Schema.

/// PostgreSQL only: the outbox's keys are ordered byte by byte, as in SQLite, whatever the database's collation.
#[tokio::test]
async fn postgres_outbox_keys_use_the_c_collation() {
    if selected_backend() != Backend::Postgres {
        eprintln!("store test backend: sqlite (nothing to check)");
        return;
    }
    let ts = fresh_store().await;
    let DatabaseUrl::Postgres(url) = &ts.db.url else {
        panic!("not a PostgreSQL database")
    };
    let client = connect(url).await.unwrap();
    let rows = client
        .query(
            "SELECT table_name::text, column_name::text, COALESCE(collation_name::text, '')
             FROM information_schema.columns
             WHERE table_schema = 'public' AND data_type = 'text'
               AND table_name IN ('merchant_settings', 'webhook_endpoints', 'webhook_endpoint_events', 'events',
                                  'deliveries', 'delivery_attempts')
               AND (column_name IN ('id', 'event_type') OR column_name LIKE '%\\_id' ESCAPE '\\')
               AND column_name <> 'object_id'",
            &[],
        )
        .await
        .unwrap();
    assert!(rows.len() >= 12, "{} columns", rows.len());
    let wrong: Vec<String> = rows
        .iter()
        .filter(|row| row.get::<_, String>(2) != "C")
        .map(|row| format!("{}.{}", row.get::<_, String>(0), row.get::<_, String>(1)))
        .collect();
    assert!(wrong.is_empty(), "not COLLATE \"C\": {wrong:?}");
}

#[tokio::test]
async fn failure_streaks_keep_their_start_and_a_success_meanwhile_prevents_a_stale_disable() {
    let ts = fresh_store().await;
    let (merchant, _) = seeded_merchant(&*ts, T0).await;
    let hook = add_endpoint(&*ts, &merchant, Mode::Test, &[PSC], EndpointStatus::Enabled, T0 + 1).await;
    for offset in [100, 200, 300, 400] {
        add_event(&*ts, new_event(&merchant, Mode::Test, PSC, T0 + offset, None)).await;
    }
    let now = T0 + 1_000;
    let claimed = ts.claim_deliveries(at(now), at(now + LEASE), 7, 10).await.unwrap();
    assert_eq!(claimed.len(), 4);
    let fail = |index: usize, started: i64, disable: Option<DisableEndpoint>| AttemptOutcome {
        attempt: attempt(&claimed[index].delivery.id, 1, started, Some(500), false),
        status: DeliveryStatus::Pending,
        next_attempt_at: Some(at(now + 60_000)),
        endpoint_failing_since: Some(at(started)),
        disable_endpoint: disable,
    };
    // Two failures: the streak keeps the earlier start.
    ts.complete_delivery(7, &fail(0, now, None), at(now)).await.unwrap();
    ts.complete_delivery(7, &fail(1, now + 50, None), at(now + 50))
        .await
        .unwrap();
    assert_eq!(stored_endpoint(&*ts, &hook).await.failing_since, Some(at(now)));
    // A success ends it.
    let success = AttemptOutcome {
        attempt: attempt(&claimed[2].delivery.id, 1, now + 60, Some(200), true),
        status: DeliveryStatus::Succeeded,
        next_attempt_at: None,
        endpoint_failing_since: None,
        disable_endpoint: None,
    };
    ts.complete_delivery(7, &success, at(now + 60)).await.unwrap();
    assert_eq!(stored_endpoint(&*ts, &hook).await.failing_since, None);
    // A worker that claimed before the success still believes in the old streak and asks to disable: the
    // database knows better — a new streak starts now, and the endpoint stays enabled with no event written.
    let stale = DisableEndpoint {
        reason: "stale belief".into(),
        event: new_event(&merchant, Mode::Test, WED, now + 70, None),
        streak_started_by: at(now + 10),
    };
    let stale_event = stale.event.id;
    ts.complete_delivery(7, &fail(3, now + 70, Some(stale)), at(now + 70))
        .await
        .unwrap();
    let endpoint = stored_endpoint(&*ts, &hook).await;
    assert_eq!(
        (endpoint.status, endpoint.failing_since),
        (EndpointStatus::Enabled, Some(at(now + 70)))
    );
    assert_eq!(ts.event(merchant.id, Mode::Test, stale_event).await.unwrap(), None);
}
