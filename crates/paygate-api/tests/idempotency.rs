//! `Idempotency-Key` over HTTP, in process, on the backend the environment selects (SQLite by default,
//! PostgreSQL with `PAYGATE_TEST_DATABASE_URL`), against the real payment endpoints and the in-process sandbox
//! acquirers. The key is claimed by the use case in the payment's own transaction and the answer stored with the
//! outcome; these tests check what a merchant sees.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use axum::Router;
use base64::Engine;
use http_body_util::BodyExt;
use paygate_api::error::ErrorCode;
use paygate_api::{ApiConfig, AppState};
use paygate_app::{App, Secrets, SystemClock};
use paygate_domain::api_key::{KeyKind, Mode};
use paygate_store::testing::TestDatabase;
use serde_json::Value;
use tower::ServiceExt;

struct Harness {
    router: Router,
    app: App,
    _db: TestDatabase,
}

async fn harness(config: ApiConfig) -> Harness {
    let db = TestDatabase::new().await;
    let (store, _) = db.open().await;
    let app = App::new(store, &Secrets::for_tests(7), Arc::new(SystemClock)).unwrap();
    let state = AppState::new(app.clone(), config).unwrap();
    Harness {
        router: paygate_api::router(state),
        app,
        _db: db,
    }
}

fn key_in_body(order_id: &str, card: &str) -> String {
    format!(
        r#"{{"amount":15000,"orderId":"{order_id}","orderName":"T-shirt","cardNumber":"{card}",
            "cardExpirationYear":"29","cardExpirationMonth":"12","customerIdentityNumber":"900101"}}"#
    )
}

const GOOD_CARD: &str = "4330000000000003";

struct Sent {
    status: StatusCode,
    replayed: bool,
    body: Value,
}

async fn send(router: &Router, key: &str, path: &str, idempotency_key: Option<&str>, body: &str) -> Sent {
    let mut request = Request::post(path)
        .header(
            "authorization",
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{key}:"))
            ),
        )
        .header("content-type", "application/json");
    if let Some(value) = idempotency_key {
        request = request.header("idempotency-key", value);
    }
    let response = router
        .clone()
        .oneshot(request.body(Body::from(body.to_owned())).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let replayed = response
        .headers()
        .get("idempotent-replayed")
        .is_some_and(|v| v == "true");
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    Sent { status, replayed, body }
}

async fn merchant_keys(app: &App) -> (String, String) {
    let created = app.create_merchant("Idempotency Shop").await.unwrap();
    let key = |kind| created.key(Mode::Test, kind).unwrap().secret.expose_secret().to_owned();
    (key(KeyKind::Secret), key(KeyKind::Client))
}

async fn merchant_key(app: &App, _mode: Mode) -> String {
    merchant_keys(app).await.0
}

/// How many payments the merchant of `key` has, by listing its transactions (every key-in that reached the
/// acquirer has one).
async fn payments(app: &App, key: &str) -> usize {
    let caller = app.authenticate(key).await.unwrap();
    app.list_transactions(
        &caller,
        paygate_domain::time::UnixMillis::new(0),
        paygate_domain::time::UnixMillis::new(i64::MAX / 2),
        None,
        100,
    )
    .await
    .unwrap()
    .len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replay_and_reuse() {
    let h = harness(ApiConfig::default()).await;
    let (key, _) = merchant_keys(&h.app).await;
    let body = key_in_body("order-1", GOOD_CARD);
    let first = send(&h.router, &key, "/v1/payments/key-in", Some("k-1"), &body).await;
    assert_eq!(
        (first.status, first.replayed),
        (StatusCode::OK, false),
        "{}",
        first.body
    );
    assert_eq!(first.body["status"], "DONE");
    for _ in 0..3 {
        let again = send(&h.router, &key, "/v1/payments/key-in", Some("k-1"), &body).await;
        assert_eq!((again.status, again.replayed), (StatusCode::OK, true));
        assert_eq!(again.body, first.body);
    }
    // The same key with another request: refused, whatever it asks.
    let other = key_in_body("order-2", GOOD_CARD);
    let reused = send(&h.router, &key, "/v1/payments/key-in", Some("k-1"), &other).await;
    assert_eq!(reused.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(reused.body["code"], "IDEMPOTENCY_KEY_REUSED");
    assert_eq!(payments(&h.app, &key).await, 1);
}

/// A request refused before it changed anything (validation) stores nothing: the key is still free, and a
/// corrected request under it runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn refused_requests_do_not_occupy_the_key() {
    let h = harness(ApiConfig::default()).await;
    let (key, _) = merchant_keys(&h.app).await;
    let bad = send(
        &h.router,
        &key,
        "/v1/payments/key-in",
        Some("k"),
        &key_in_body("order-o", "1234"),
    )
    .await;
    assert_eq!((bad.status, bad.replayed), (StatusCode::BAD_REQUEST, false));
    let good = send(
        &h.router,
        &key,
        "/v1/payments/key-in",
        Some("k"),
        &key_in_body("order-o", GOOD_CARD),
    )
    .await;
    assert_eq!((good.status, good.replayed), (StatusCode::OK, false), "{}", good.body);
}

/// Regression: the client key and the secret key shared one namespace, so a browser's refused request under K
/// made the merchant's secret-key request under K replay the 403 (or answer 422).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn client_and_secret_keys_do_not_share_idempotency_keys() {
    let h = harness(ApiConfig::default()).await;
    let (secret, client) = merchant_keys(&h.app).await;
    let body = key_in_body("order-ck", GOOD_CARD);
    let refused = send(&h.router, &client, "/v1/payments/key-in", Some("shared"), &body).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.body);
    let paid = send(&h.router, &secret, "/v1/payments/key-in", Some("shared"), &body).await;
    assert_eq!((paid.status, paid.replayed), (StatusCode::OK, false), "{}", paid.body);
    assert_eq!(paid.body["status"], "DONE");
    // And a client-key request under a key the server used does not see the server's answer.
    let create = r#"{"amount":1000,"orderId":"order-sdk","orderName":"x","successUrl":"https://shop.example/ok","failUrl":"https://shop.example/fail"}"#;
    let sdk = send(&h.router, &client, "/v1/payments", Some("shared"), create).await;
    assert!(!sdk.replayed, "{}", sdk.body);
}

/// Concurrent duplicates: one payment; every answer is that payment or 409 while it runs; afterwards, the replay.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_duplicates_pay_once() {
    let h = harness(ApiConfig::default()).await;
    let (key, _) = merchant_keys(&h.app).await;
    let body = key_in_body("order-storm", GOOD_CARD);
    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let (router, key, body) = (h.router.clone(), key.clone(), body.clone());
            tokio::spawn(async move { send(&router, &key, "/v1/payments/key-in", Some("storm"), &body).await })
        })
        .collect();
    let mut payment_keys = std::collections::HashSet::new();
    let mut conflicts = 0;
    for task in tasks {
        let sent = task.await.unwrap();
        match sent.status {
            StatusCode::OK => {
                payment_keys.insert(sent.body["paymentKey"].as_str().unwrap().to_owned());
            }
            StatusCode::CONFLICT => {
                assert_eq!(sent.body["code"], "IDEMPOTENT_REQUEST_PROCESSING");
                conflicts += 1;
            }
            other => panic!("unexpected {other}: {}", sent.body),
        }
    }
    assert_eq!(payment_keys.len(), 1, "{payment_keys:?}");
    assert!(conflicts < 50);
    assert_eq!(payments(&h.app, &key).await, 1);
    // The transient 409s were not stored: the retry replays the payment.
    let after = send(&h.router, &key, "/v1/payments/key-in", Some("storm"), &body).await;
    assert_eq!((after.status, after.replayed), (StatusCode::OK, true));
    assert!(payment_keys.contains(after.body["paymentKey"].as_str().unwrap()));
}

/// Regression: a retry after a crash between the payment's commit and its answer got `DUPLICATED_ORDER_ID` for
/// its own order. Now the claim names the payment, and a retry after the lock gets the payment's current state.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_retry_after_a_crash_gets_the_payment_not_duplicated_order_id() {
    let mut config = ApiConfig::default();
    config.idempotency.in_flight_lock_ms = 1;
    let db = TestDatabase::new().await;
    let (store, _) = db.open().await;
    let options = paygate_app::AppOptions {
        acquirers: paygate_app::payments::Acquirers::in_process_sandbox().0,
        idempotency: paygate_app::idempotency::IdempotencyOptions { in_flight_lock_ms: 1 },
        ..paygate_app::AppOptions::default()
    };
    let app = App::with_options(store.clone(), &Secrets::for_tests(7), Arc::new(SystemClock), options).unwrap();
    let router = paygate_api::router(AppState::new(app.clone(), config).unwrap());
    let (key, _) = merchant_keys(&app).await;
    let body = key_in_body("crash-1", GOOD_CARD);
    let first = send(&router, &key, "/v1/payments/key-in", Some("crash"), &body).await;
    assert_eq!(first.status, StatusCode::OK);
    // Simulate the crash: the payment and its claim committed, the answer did not.
    let caller = app.authenticate(&key).await.unwrap();
    let scope = paygate_store::IdempotencyScope {
        merchant_id: caller.merchant.id,
        mode: caller.key.mode,
        key_kind: KeyKind::Secret,
        key: paygate_domain::idempotency::IdempotencyKey::parse("crash").unwrap(),
    };
    let record = store.idempotency_record(&scope).await.unwrap().unwrap();
    assert!(matches!(record.state, paygate_store::IdempotencyState::Completed(_)));
    let fingerprint =
        paygate_api::middleware::idempotency::fingerprint(&Method::POST, "/v1/payments/key-in", body.as_bytes());
    assert_eq!(record.fingerprint, fingerprint);
    let retry_body = key_in_body("crash-2", GOOD_CARD);
    let in_flight = send(&router, &key, "/v1/payments/key-in", None, &retry_body).await;
    assert_eq!(in_flight.status, StatusCode::OK);
    let payment_id = paygate_domain::id::PaymentId::parse(in_flight.body["paymentKey"].as_str().unwrap()).unwrap();
    // A claim left IN_FLIGHT (the process died after the payment's commit), its lock long expired:
    let crashed = paygate_store::IdempotencyScope {
        key: paygate_domain::idempotency::IdempotencyKey::parse("crash-2").unwrap(),
        ..scope
    };
    let fingerprint =
        paygate_api::middleware::idempotency::fingerprint(&Method::POST, "/v1/payments/key-in", retry_body.as_bytes());
    let payment = store.payment_by_id(payment_id).await.unwrap().unwrap();
    let mut touched = payment.clone();
    touched.version += 1;
    let update = paygate_store::PaymentUpdate {
        idempotency: None,
        ..paygate_store::PaymentUpdate::new(payment.version, touched)
    };
    store.update_payment(&update).await.unwrap();
    let now = paygate_domain::time::UnixMillis::new(1);
    let claim = paygate_store::IdempotencyWrite::Claim {
        scope: crashed.clone(),
        fingerprint,
        lock_token: 5,
        locked_until: now,
        resource: paygate_store::IdempotencyResource {
            payment_id,
            focus: None,
        },
        now,
    };
    let again = store.payment_by_id(payment_id).await.unwrap().unwrap();
    let mut bumped = again.clone();
    bumped.version += 1;
    store
        .update_payment(&paygate_store::PaymentUpdate {
            idempotency: Some(claim),
            ..paygate_store::PaymentUpdate::new(again.version, bumped)
        })
        .await
        .unwrap();
    let retried = send(&router, &key, "/v1/payments/key-in", Some("crash-2"), &retry_body).await;
    assert_eq!(retried.status, StatusCode::OK, "{}", retried.body);
    assert_eq!(retried.body["paymentKey"], in_flight.body["paymentKey"]);
    assert_eq!(retried.body["status"], "DONE");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bad_headers_and_bodies_change_nothing() {
    let mut config = ApiConfig::default();
    config.http.body_max_bytes = 1024;
    let h = harness(config).await;
    let key = merchant_key(&h.app, paygate_domain::api_key::Mode::Test).await;
    let too_long = "k".repeat(256);
    let bad_card = key_in_body("bad-card", "1234");
    let big = format!(r#"{{"amount": 1, "pad": "{}"}}"#, "x".repeat(2048));
    let cases: Vec<(Option<&str>, &str, StatusCode, &str)> = vec![
        (
            Some(too_long.as_str()),
            r#"{"amount": 1}"#,
            StatusCode::BAD_REQUEST,
            "INVALID_IDEMPOTENCY_KEY",
        ),
        (
            Some("has space"),
            r#"{"amount": 1}"#,
            StatusCode::BAD_REQUEST,
            "INVALID_IDEMPOTENCY_KEY",
        ),
        (
            Some("big-1"),
            big.as_str(),
            StatusCode::PAYLOAD_TOO_LARGE,
            "PAYLOAD_TOO_LARGE",
        ),
        (None, big.as_str(), StatusCode::PAYLOAD_TOO_LARGE, "PAYLOAD_TOO_LARGE"),
        (None, "{", StatusCode::BAD_REQUEST, "MALFORMED_JSON"),
        (None, "{}", StatusCode::BAD_REQUEST, "MISSING_FIELD"),
        (
            Some("invalid-card"),
            &bad_card,
            StatusCode::BAD_REQUEST,
            "INVALID_CARD_NUMBER",
        ),
    ];
    for (idempotency_key, body, status, code) in cases {
        let sent = send(&h.router, &key, "/v1/payments/key-in", idempotency_key, body).await;
        assert_eq!(sent.status, status, "{code}: {}", sent.body);
        let detail = sent.body["reason"].as_str().or(sent.body["code"].as_str());
        assert_eq!(detail, Some(code), "{}", sent.body);
        if sent.body["reason"].is_string() {
            assert_eq!(sent.body["code"], "INVALID_REQUEST", "{}", sent.body);
        }
        assert!(sent.body["requestId"].as_str().is_some_and(|id| !id.is_empty()));
    }
    assert_eq!(payments(&h.app, &key).await, 0);

    let required = {
        let mut config = ApiConfig::default();
        config.idempotency.require_key = true;
        harness(config).await
    };
    let key = merchant_key(&required.app, paygate_domain::api_key::Mode::Test).await;
    let sent = send(&required.router, &key, "/v1/payments/key-in", None, r#"{"amount": 1}"#).await;
    assert_eq!(sent.body["code"], "INVALID_IDEMPOTENCY_KEY");
    assert_eq!(payments(&required.app, &key).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_content_type_is_415() {
    let h = harness(ApiConfig::default()).await;
    let key = merchant_key(&h.app, paygate_domain::api_key::Mode::Test).await;
    let request = Request::post("/v1/payments/key-in")
        .header("authorization", format!("Bearer {key}"))
        .header("content-type", "text/plain")
        .body(Body::from(r#"{"amount": 1}"#))
        .unwrap();
    let response = h.router.clone().oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let body: Value = serde_json::from_slice(&response.into_body().collect().await.unwrap().to_bytes()).unwrap();
    assert_eq!(body["code"], ErrorCode::UnsupportedMediaType.as_str());
}

/// An acquirer that holds every approval (and cancel) until the test lets it go.
struct Gated {
    inner: Arc<dyn paygate_connectors::Acquirer>,
    gate: Arc<tokio::sync::Semaphore>,
    cancel_gate: Arc<tokio::sync::Semaphore>,
}

#[async_trait::async_trait]
impl paygate_connectors::Acquirer for Gated {
    fn id(&self) -> &paygate_connectors::AcquirerId {
        self.inner.id()
    }

    async fn approve(
        &self,
        request: &paygate_connectors::ApproveRequest,
    ) -> Result<paygate_connectors::ApproveOutcome, paygate_connectors::ConnectorError> {
        let _permit = self.gate.acquire().await;
        self.inner.approve(request).await
    }

    async fn cancel(
        &self,
        request: &paygate_connectors::CancelRequest,
    ) -> Result<paygate_connectors::CancelOutcome, paygate_connectors::ConnectorError> {
        let _permit = self.cancel_gate.acquire().await;
        self.inner.cancel(request).await
    }

    async fn reverse(&self, reference: &str, merchant: &str) -> Result<(), paygate_connectors::ConnectorError> {
        self.inner.reverse(reference, merchant).await
    }

    async fn inquire(
        &self,
        reference: &str,
        merchant: &str,
    ) -> Result<paygate_connectors::InquiryOutcome, paygate_connectors::ConnectorError> {
        self.inner.inquire(reference, merchant).await
    }

    async fn verify(
        &self,
        request: &paygate_connectors::VerifyRequest,
    ) -> Result<paygate_connectors::VerifyOutcome, paygate_connectors::ConnectorError> {
        self.inner.verify(request).await
    }
}

/// Regression: a request timeout dropped the use case's future mid-flight, like a crash. Now the caller gets
/// `504 REQUEST_TIMEOUT` and the payment still completes; a retry with the key gets it.
struct GatedHarness {
    router: Router,
    app: App,
    approvals: Arc<tokio::sync::Semaphore>,
    cancels: Arc<tokio::sync::Semaphore>,
    _db: TestDatabase,
}

async fn gated_harness(config: ApiConfig, approvals: usize, cancels: usize) -> GatedHarness {
    let gate = Arc::new(tokio::sync::Semaphore::new(approvals));
    let cancel_gate = Arc::new(tokio::sync::Semaphore::new(cancels));
    let mut acquirers = paygate_app::payments::Acquirers::new();
    for name in ["A", "B", "C"] {
        let id = paygate_connectors::AcquirerId::parse(name).unwrap();
        let inner = Arc::new(paygate_connectors::sandbox::SandboxAcquirer::new(id));
        acquirers.add(
            Mode::Test,
            Arc::new(Gated {
                inner,
                gate: gate.clone(),
                cancel_gate: cancel_gate.clone(),
            }),
        );
    }
    let db = TestDatabase::new().await;
    let (store, _) = db.open().await;
    let options = paygate_app::AppOptions {
        acquirers,
        ..paygate_app::AppOptions::default()
    };
    let app = App::with_options(store, &Secrets::for_tests(7), Arc::new(SystemClock), options).unwrap();
    GatedHarness {
        router: paygate_api::router(AppState::new(app.clone(), config).unwrap()),
        app,
        approvals: gate,
        cancels: cancel_gate,
        _db: db,
    }
}

/// Regression: a full cancel racing another full cancel answered `400 INVALID_FIELD_VALUE param=cancelAmount`
/// (an amount the caller never sent), and that answer was stored under its key.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_full_cancel_that_loses_the_race_is_not_cancelable() {
    let h = gated_harness(ApiConfig::default(), 1_000, 0).await;
    let (key, _) = merchant_keys(&h.app).await;
    let paid = send(
        &h.router,
        &key,
        "/v1/payments/key-in",
        None,
        &key_in_body("order-race", GOOD_CARD),
    )
    .await;
    assert_eq!(paid.status, StatusCode::OK);
    let path = format!("/v1/payments/{}/cancel", paid.body["paymentKey"].as_str().unwrap());
    let first = {
        let (router, key, path) = (h.router.clone(), key.clone(), path.clone());
        tokio::spawn(async move { send(&router, &key, &path, Some("c-1"), r#"{"cancelReason":"a"}"#).await })
    };
    // The first cancel holds the whole balance while the acquirer works on it.
    let caller = h.app.authenticate(&key).await.unwrap();
    let id = paygate_domain::id::PaymentId::parse(paid.body["paymentKey"].as_str().unwrap()).unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !h.app.get_payment(&caller, id).await.unwrap().payment.balance.is_zero() {
        assert!(
            std::time::Instant::now() < deadline,
            "the first cancel never reserved the balance"
        );
        tokio::task::yield_now().await;
    }
    let second = send(&h.router, &key, &path, Some("c-2"), r#"{"cancelReason":"b"}"#).await;
    assert_eq!(second.body["code"], "NOT_CANCELABLE_PAYMENT", "{}", second.body);
    assert!(second.body.get("param").is_none(), "{}", second.body);
    h.cancels.add_permits(1_000);
    let first = first.await.unwrap();
    assert_eq!(first.status, StatusCode::OK, "{}", first.body);
    assert_eq!(first.body["status"], "CANCELED");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_timed_out_request_still_completes_its_payment() {
    let mut config = ApiConfig::default();
    config.http.request_timeout_ms = 200;
    let h = gated_harness(config, 0, 1_000).await;
    let (router, app, gate) = (h.router.clone(), h.app.clone(), h.approvals.clone());
    let (key, _) = merchant_keys(&app).await;
    let body = key_in_body("order-timeout", GOOD_CARD);
    let timed_out = send(&router, &key, "/v1/payments/key-in", Some("slow"), &body).await;
    assert_eq!(timed_out.status, StatusCode::GATEWAY_TIMEOUT, "{}", timed_out.body);
    assert_eq!(timed_out.body["code"], "REQUEST_TIMEOUT");
    // The acquirer answers after the caller gave up; the use case is still there to record it.
    gate.add_permits(1_000);
    let caller = app.authenticate(&key).await.unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let view = app.get_payment_by_order(&caller, "order-timeout").await.unwrap();
        if view.payment.status == paygate_domain::payment::PaymentStatus::Done {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "still {:?}", view.payment.status);
        tokio::task::yield_now().await;
    }
    let retried = send(&router, &key, "/v1/payments/key-in", Some("slow"), &body).await;
    assert_eq!(
        (retried.status, retried.replayed),
        (StatusCode::OK, true),
        "{}",
        retried.body
    );
    assert_eq!(retried.body["status"], "DONE");
}
