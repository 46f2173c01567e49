//! The delivery worker's schedules on a manual clock: the notification URL (SUCCESS ends it, otherwise one attempt
//! per interval up to the maximum, then a manual resend), webhook retries on their schedule, and an endpoint that
//! fails for too long is disabled and the merchant told. (Moved here from the black-box suite, where they waited
//! on a real clock; what needs the binary — signatures over HTTP, the delivery log's JSON, kill -9 — stays there.)

#![allow(clippy::unwrap_used, clippy::panic)]

mod harness;

use harness::{key_in, key_in_notifying, Harness, Options, Receiver};
use paygate_app::outbox::OutboxConfig;
use paygate_connectors::sandbox::test_cards::APPROVED;
use paygate_domain::event::{DeliveryKind, DeliveryStatus, EventType};
use paygate_domain::payment::PaymentStatus;
use paygate_store::Delivery;

async fn harness_with(outbox: OutboxConfig) -> Harness {
    Harness::with(Options {
        outbox: OutboxConfig {
            allow_loopback: true,
            ..outbox
        },
        ..Options::default()
    })
    .await
}

/// The only delivery of `kind` of the payment's single event.
async fn delivery_of(h: &Harness, id: paygate_domain::id::PaymentId, kind: DeliveryKind) -> Delivery {
    let events = h.events_of(id).await;
    assert_eq!(events.len(), 1, "{events:?}");
    let deliveries: Vec<Delivery> = h
        .deliveries(&events[0])
        .await
        .into_iter()
        .filter(|d| d.kind == kind)
        .collect();
    assert_eq!(deliveries.len(), 1, "{deliveries:?}");
    deliveries.into_iter().next().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_notification_failing_three_times_then_succeeding_is_sent_exactly_four_times_an_interval_apart() {
    let h = harness_with(OutboxConfig::default()).await;
    let interval_ms = i64::from(h.app.outbox_config().notification_interval_ms);
    let receiver = Receiver::start(vec![(200, "FAIL"), (200, "FAIL"), (500, "error"), (200, "OK SUCCESS")]).await;
    let settings = h
        .app
        .set_notification(&h.caller, Some(receiver.url.clone()), None, None)
        .await
        .unwrap();
    assert_eq!(settings.notification_format, paygate_store::NotificationFormat::Form);
    let payment = h.key_in(key_in("noti-0001", 15_000, APPROVED)).await.unwrap();
    let id = payment.payment.id;

    // (clock moved before the pass, calls the receiver has seen after it)
    let passes = [
        (0, 1),
        (interval_ms - 1, 1),
        (1, 2),
        (interval_ms - 1, 2),
        (1, 3),
        (interval_ms, 4),
        (interval_ms, 4),
        (interval_ms * 20, 4),
    ];
    for (step, (advance_ms, calls)) in passes.into_iter().enumerate() {
        h.deliver_at(advance_ms).await;
        assert_eq!(
            receiver.calls().len(),
            calls,
            "pass {step}: SUCCESS ends the retries, none comes early"
        );
    }
    let calls = receiver.calls();
    let first = &calls[0];
    assert_eq!(first.form_field("paymentKey"), Some(id.to_string()));
    assert_eq!(first.form_field("status").as_deref(), Some("DONE"));
    assert_eq!(first.form_field("totalAmount").as_deref(), Some("15000"));
    assert_eq!(first.form_field("cardNumber").as_deref(), Some("433000******0003"));
    assert_eq!(first.form_field("attempt").as_deref(), Some("1"));
    assert_eq!(calls[3].form_field("attempt").as_deref(), Some("4"));
    assert!(first
        .header("content-type")
        .unwrap()
        .starts_with("application/x-www-form-urlencoded"));

    let events = h.events_of(id).await;
    assert_eq!(events[0].event_type, EventType::PaymentStatusChanged);
    let delivery = delivery_of(&h, id, DeliveryKind::Notification).await;
    assert_eq!((delivery.status, delivery.attempts), (DeliveryStatus::Succeeded, 4));
    assert_eq!(delivery.next_attempt_at, None);
    let log: Vec<(Option<u16>, bool, String)> = h
        .store()
        .attempts(&delivery.id)
        .await
        .unwrap()
        .into_iter()
        .map(|a| (a.status_code, a.succeeded, a.response_body.unwrap_or_default()))
        .collect();
    assert_eq!(
        log,
        vec![
            (Some(200), false, "FAIL".into()),
            (Some(200), false, "FAIL".into()),
            (Some(500), false, "error".into()),
            (Some(200), true, "OK SUCCESS".into()),
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_notification_that_never_succeeds_is_sent_exactly_the_maximum_then_resent_by_hand() {
    let h = harness_with(OutboxConfig::default()).await;
    let interval_ms = i64::from(h.app.outbox_config().notification_interval_ms);
    let attempts_max = h.app.outbox_config().notification_attempts_max;
    assert_eq!(attempts_max, 10);
    let receiver = Receiver::start(vec![(200, "NOPE")]).await;
    // The payment's own notificationUrl overrides the merchant's (none here).
    let payment = h
        .key_in(key_in_notifying("noti-0002", 15_000, APPROVED, Some(&receiver.url)))
        .await
        .unwrap();
    let id = payment.payment.id;
    h.deliver_at(0).await;
    for attempt in 2..=attempts_max {
        let early = h.deliver_at(interval_ms - 1).await;
        assert_eq!(early.attempted, 0, "attempt {attempt} came early");
        let report = h.deliver_at(1).await;
        assert_eq!((report.attempted, report.failed), (1, 1), "attempt {attempt}");
    }
    for _ in 0..3 {
        assert_eq!(
            h.deliver_at(interval_ms).await.attempted,
            0,
            "at most {attempts_max} attempts"
        );
    }
    assert_eq!(receiver.calls().len(), 10);
    let delivery = delivery_of(&h, id, DeliveryKind::Notification).await;
    assert_eq!((delivery.status, delivery.attempts), (DeliveryStatus::Failed, 10));
    assert_eq!(delivery.next_attempt_at, None);

    // A manual resend starts a new delivery, due at once.
    let event = h.events_of(id).await.remove(0);
    let created = harness::fresh(h.app.resend_event(&h.caller, event.id, None).await.unwrap());
    assert_eq!(created, 1);
    assert_eq!(h.deliver_at(0).await.attempted, 1);
    assert_eq!(receiver.calls().len(), 11);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_retry_on_their_schedule_and_a_failing_endpoint_is_disabled_and_the_merchant_told() {
    let outbox = OutboxConfig {
        webhook_retry_schedule_secs: vec![60, 120, 240],
        webhook_disable_after_secs: 150,
        ..OutboxConfig::default()
    };
    let h = harness_with(outbox).await;
    let receiver = Receiver::start(vec![(503, "busy"), (500, "down")]).await;
    h.app
        .create_endpoint(&h.caller, &receiver.url, &["PAYMENT_STATUS_CHANGED".to_owned()], None)
        .await
        .unwrap();
    let payment = h.key_in(key_in("hook-0001", 15_000, APPROVED)).await.unwrap();
    assert_eq!(payment.payment.status, PaymentStatus::Done);
    let delivery = delivery_of(&h, payment.payment.id, DeliveryKind::Webhook).await;
    let endpoint_id = delivery.endpoint_id.expect("a webhook delivery names its endpoint");
    let disabled_events = || async {
        h.store()
            .list_events(h.caller.merchant.id, h.caller.key.mode, None, 100)
            .await
            .unwrap()
            .into_iter()
            .filter(|e| e.event_type == EventType::WebhookEndpointDisabled)
            .collect::<Vec<_>>()
    };
    // (clock moved, attempts seen by the receiver, endpoint disabled): the streak starts at the first failure;
    // attempt 3 comes 180 s in, past the 150 s the endpoint may fail for.
    let passes = [
        (0, 1, false),
        (59_999, 1, false),
        (1, 2, false),
        (119_999, 2, false),
        (1, 3, true),
    ];
    for (step, (advance_ms, calls, disabled)) in passes.into_iter().enumerate() {
        h.deliver_at(advance_ms).await;
        assert_eq!(receiver.calls().len(), calls, "pass {step}");
        assert_eq!(disabled_events().await.len(), usize::from(disabled), "pass {step}");
    }
    let calls = receiver.calls();
    assert_eq!(
        calls[0].header("webhook-id"),
        calls[1].header("webhook-id"),
        "retries keep the webhook-id"
    );
    let told = disabled_events().await.remove(0);
    assert!(told.data.contains(&endpoint_id.to_string()), "{}", told.data);
    let delivery = delivery_of(&h, payment.payment.id, DeliveryKind::Webhook).await;
    assert_eq!(delivery.attempts, 3);
    // New events no longer fan out to the disabled endpoint. (The delivery already scheduled runs out its
    // schedule: claims do not look at the endpoint's status.)
    let later = h.key_in(key_in("hook-0002", 15_000, APPROVED)).await.unwrap();
    let later_events = h.events_of(later.payment.id).await;
    let fanned_out = h.deliveries(&later_events[0]).await;
    assert!(
        fanned_out.iter().all(|d| d.kind != DeliveryKind::Webhook),
        "{fanned_out:?}"
    );
    h.deliver_at(3_600_000).await;
    let delivery = delivery_of(&h, payment.payment.id, DeliveryKind::Webhook).await;
    assert_eq!((delivery.status, delivery.attempts), (DeliveryStatus::Failed, 4));
    assert_eq!(
        receiver.calls().len(),
        4,
        "one attempt more than the schedule's entries"
    );
}
