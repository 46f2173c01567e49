//! The idempotency middleware over HTTP, on the backend the environment selects (SQLite by default,
//! PostgreSQL with `PAYGATE_TEST_DATABASE_URL`). Test-only routes count how often the handler really ran.

#![allow(clippy::unwrap_used)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::routing::post;
use axum::{Extension, Json, Router};
use base64::Engine;
use http_body_util::BodyExt;
use paygate_api::error::{ApiError, ErrorCode};
use paygate_api::extract::ApiJson;
use paygate_api::{ApiConfig, AppState};
use paygate_app::{App, Secrets, SystemClock};
use paygate_store::testing::TestDatabase;
use serde_json::{json, Value};
use tokio::sync::Notify;
use tower::ServiceExt;

#[derive(Default)]
struct Probe {
    runs: AtomicU64,
    entered: Notify,
    release: Notify,
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct EchoBody {
    amount: i64,
}

async fn echo(Extension(probe): Extension<Arc<Probe>>, ApiJson(body): ApiJson<EchoBody>) -> Json<Value> {
    let run = probe.runs.fetch_add(1, Ordering::SeqCst) + 1;
    Json(json!({ "amount": body.amount, "run": run }))
}

async fn slow(Extension(probe): Extension<Arc<Probe>>) -> Json<Value> {
    let run = probe.runs.fetch_add(1, Ordering::SeqCst) + 1;
    probe.entered.notify_one();
    probe.release.notified().await;
    Json(json!({ "run": run }))
}

async fn fail(Extension(probe): Extension<Arc<Probe>>) -> ApiError {
    probe.runs.fetch_add(1, Ordering::SeqCst);
    ApiError::internal(&"deliberate failure")
}

struct Harness {
    router: Router,
    probe: Arc<Probe>,
    app: App,
    _db: TestDatabase,
}

async fn harness(config: ApiConfig) -> Harness {
    let db = TestDatabase::new().await;
    let (store, _) = db.open().await;
    let app = App::new(store, &Secrets::for_tests(7), Arc::new(SystemClock)).unwrap();
    let probe = Arc::new(Probe::default());
    let routes = paygate_api::v1_routes()
        .route("/v1/test/echo", post(echo))
        .route("/v1/test/slow", post(slow))
        .route("/v1/test/fail", post(fail))
        .layer(Extension(probe.clone()));
    let state = AppState::new(app.clone(), config).unwrap();
    Harness {
        router: paygate_api::layered(routes, state),
        probe,
        app,
        _db: db,
    }
}

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

async fn merchant_key(app: &App, mode: paygate_domain::api_key::Mode) -> String {
    let created = app.create_merchant("Idempotency Shop").await.unwrap();
    created
        .key(mode, paygate_domain::api_key::KeyKind::Secret)
        .unwrap()
        .secret
        .expose_secret()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replay_reuse_and_release() {
    let h = harness(ApiConfig::default()).await;
    let key = merchant_key(&h.app, paygate_domain::api_key::Mode::Test).await;

    let first = send(&h.router, &key, "/v1/test/echo", Some("k-1"), r#"{"amount": 1000}"#).await;
    assert_eq!((first.status, first.replayed), (StatusCode::OK, false));
    assert_eq!(first.body, json!({"amount": 1000, "run": 1}));

    // Same request, even with another JSON layout: the stored answer, marked as replayed; the handler did not run.
    for body in [r#"{"amount": 1000}"#, r#"{ "amount":1000 }"#] {
        let again = send(&h.router, &key, "/v1/test/echo", Some("k-1"), body).await;
        assert_eq!((again.status, again.replayed), (StatusCode::OK, true));
        assert_eq!(again.body, first.body);
    }
    assert_eq!(h.probe.runs.load(Ordering::SeqCst), 1);

    // Same key, other request: 422, nothing runs.
    for (path, body) in [
        ("/v1/test/echo", r#"{"amount": 2000}"#),
        ("/v1/test/slow", r#"{"amount": 1000}"#),
    ] {
        let reused = send(&h.router, &key, path, Some("k-1"), body).await;
        assert_eq!(reused.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(reused.body["code"], "IDEMPOTENCY_KEY_REUSED");
    }
    assert_eq!(h.probe.runs.load(Ordering::SeqCst), 1);

    // A 4xx answer is stored and replayed like any other.
    let bad = send(&h.router, &key, "/v1/test/echo", Some("k-2"), r#"{"amount": "x"}"#).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert_eq!(bad.body["code"], "INVALID_FIELD_TYPE");
    let bad_again = send(&h.router, &key, "/v1/test/echo", Some("k-2"), r#"{"amount": "x"}"#).await;
    assert_eq!((bad_again.status, bad_again.replayed), (StatusCode::BAD_REQUEST, true));
    assert_eq!(bad_again.body["code"], "INVALID_FIELD_TYPE");

    // A 5xx is not stored: the retry runs again.
    let runs_before = h.probe.runs.load(Ordering::SeqCst);
    for _ in 0..2 {
        let failed = send(&h.router, &key, "/v1/test/fail", Some("k-3"), "{}").await;
        assert_eq!(
            (failed.status, failed.replayed),
            (StatusCode::INTERNAL_SERVER_ERROR, false)
        );
        assert_eq!(failed.body["code"], "INTERNAL_SERVER_ERROR");
    }
    assert_eq!(h.probe.runs.load(Ordering::SeqCst), runs_before + 2);

    // Without a key every request runs.
    for _ in 0..2 {
        assert_eq!(
            send(&h.router, &key, "/v1/test/echo", None, r#"{"amount": 1}"#)
                .await
                .status,
            StatusCode::OK
        );
    }
    assert_eq!(h.probe.runs.load(Ordering::SeqCst), runs_before + 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn keys_are_scoped_per_merchant_and_mode() {
    let h = harness(ApiConfig::default()).await;
    let test_key = merchant_key(&h.app, paygate_domain::api_key::Mode::Test).await;
    let other_merchant = merchant_key(&h.app, paygate_domain::api_key::Mode::Test).await;
    let live_key = merchant_key(&h.app, paygate_domain::api_key::Mode::Live).await;
    for key in [&test_key, &other_merchant, &live_key] {
        let sent = send(&h.router, key, "/v1/test/echo", Some("shared"), r#"{"amount": 5}"#).await;
        assert_eq!((sent.status, sent.replayed), (StatusCode::OK, false));
    }
    assert_eq!(h.probe.runs.load(Ordering::SeqCst), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn in_flight_requests_get_409_then_the_answer() {
    let h = harness(ApiConfig::default()).await;
    let key = merchant_key(&h.app, paygate_domain::api_key::Mode::Test).await;
    let router = h.router.clone();
    let first_key = key.clone();
    let first = tokio::spawn(async move { send(&router, &first_key, "/v1/test/slow", Some("slow-1"), "{}").await });
    h.probe.entered.notified().await;

    let second = send(&h.router, &key, "/v1/test/slow", Some("slow-1"), "{}").await;
    assert_eq!(second.status, StatusCode::CONFLICT);
    assert_eq!(second.body["code"], "IDEMPOTENT_REQUEST_PROCESSING");
    let other = send(&h.router, &key, "/v1/test/slow", Some("slow-1"), r#"{"x":1}"#).await;
    assert_eq!(
        other.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "a different request is refused even while in flight"
    );

    h.probe.release.notify_one();
    let first = first.await.unwrap();
    assert_eq!(first.status, StatusCode::OK);
    let third = send(&h.router, &key, "/v1/test/slow", Some("slow-1"), "{}").await;
    assert_eq!((third.status, third.replayed), (StatusCode::OK, true));
    assert_eq!(third.body, first.body);
    assert_eq!(h.probe.runs.load(Ordering::SeqCst), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_hundred_concurrent_duplicates_run_once() {
    let h = harness(ApiConfig::default()).await;
    let key = merchant_key(&h.app, paygate_domain::api_key::Mode::Test).await;
    let mut tasks = Vec::new();
    for _ in 0..100 {
        let router = h.router.clone();
        let key = key.clone();
        tasks.push(tokio::spawn(async move {
            send(&router, &key, "/v1/test/echo", Some("storm"), r#"{"amount": 777}"#).await
        }));
    }
    let mut ok_bodies = Vec::new();
    let mut conflicts = 0;
    for task in tasks {
        let sent = task.await.unwrap();
        match sent.status {
            StatusCode::OK => ok_bodies.push(sent.body),
            StatusCode::CONFLICT => conflicts += 1,
            other => panic!("unexpected {other}: {}", sent.body),
        }
    }
    assert_eq!(h.probe.runs.load(Ordering::SeqCst), 1, "the handler ran exactly once");
    assert!(!ok_bodies.is_empty());
    assert!(ok_bodies.iter().all(|b| *b == json!({"amount": 777, "run": 1})));
    assert_eq!(ok_bodies.len() + conflicts, 100);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_headers_and_bodies_change_nothing() {
    let mut config = ApiConfig::default();
    config.http.body_max_bytes = 1024;
    let h = harness(config).await;
    let key = merchant_key(&h.app, paygate_domain::api_key::Mode::Test).await;
    let too_long = "k".repeat(256);
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
    ];
    for (idempotency_key, body, status, code) in cases {
        let sent = send(&h.router, &key, "/v1/test/echo", idempotency_key, body).await;
        assert_eq!(sent.status, status, "{code}: {}", sent.body);
        assert_eq!(sent.body["code"], code);
        assert!(sent.body["requestId"].as_str().is_some_and(|id| !id.is_empty()));
    }
    assert_eq!(h.probe.runs.load(Ordering::SeqCst), 0);

    let required = {
        let mut config = ApiConfig::default();
        config.idempotency.require_key = true;
        harness(config).await
    };
    let key = merchant_key(&required.app, paygate_domain::api_key::Mode::Test).await;
    let sent = send(&required.router, &key, "/v1/test/echo", None, r#"{"amount": 1}"#).await;
    assert_eq!(sent.body["code"], "INVALID_IDEMPOTENCY_KEY");
    assert_eq!(required.probe.runs.load(Ordering::SeqCst), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_content_type_is_415() {
    let h = harness(ApiConfig::default()).await;
    let key = merchant_key(&h.app, paygate_domain::api_key::Mode::Test).await;
    let request = Request::post("/v1/test/echo")
        .header("authorization", format!("Bearer {key}"))
        .header("content-type", "text/plain")
        .body(Body::from(r#"{"amount": 1}"#))
        .unwrap();
    let response = h.router.clone().oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let body: Value = serde_json::from_slice(&response.into_body().collect().await.unwrap().to_bytes()).unwrap();
    assert_eq!(body["code"], ErrorCode::UnsupportedMediaType.as_str());
}
