//! The edge layers: request timeout, load shedding, panics, unknown routes and methods, body limits.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::routing::{get, post};
use axum::{Extension, Json};
use http_body_util::BodyExt;
use paygate_api::{ApiConfig, AppState};
use paygate_app::{App, Secrets, SystemClock};
use paygate_store::testing::TestDatabase;
use serde_json::{json, Value};
use tokio::sync::Notify;
use tower::ServiceExt;

async fn sleepy(Extension(entered): Extension<Arc<Notify>>) -> Json<Value> {
    entered.notify_one();
    tokio::time::sleep(Duration::from_millis(400)).await;
    Json(json!({"slept": true}))
}

async fn boom() -> Json<Value> {
    panic!("deliberate panic in a handler")
}

struct Harness {
    router: axum::Router,
    bearer: String,
    entered: Arc<Notify>,
    _db: TestDatabase,
}

async fn harness(config: ApiConfig) -> Harness {
    let db = TestDatabase::new().await;
    let (store, _) = db.open().await;
    let app = App::new(store, &Secrets::for_tests(3), Arc::new(SystemClock)).unwrap();
    let created = app.create_merchant("Edge Shop").await.unwrap();
    let key = created
        .key(
            paygate_domain::api_key::Mode::Test,
            paygate_domain::api_key::KeyKind::Secret,
        )
        .unwrap();
    let entered = Arc::new(Notify::new());
    let routes = paygate_api::v1_routes()
        .route("/v1/test/sleepy", get(sleepy))
        .route("/v1/test/boom", post(boom))
        .layer(Extension(entered.clone()));
    let state = AppState::new(app, config).unwrap();
    Harness {
        router: paygate_api::layered(routes, state),
        bearer: format!("Bearer {}", key.secret.expose_secret()),
        entered,
        _db: db,
    }
}

async fn call(router: &axum::Router, request: Request<Body>) -> (StatusCode, axum::http::HeaderMap, Value) {
    let response = router.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (status, headers, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

fn get_request(path: &str, bearer: &str) -> Request<Body> {
    Request::get(path)
        .header("authorization", bearer)
        .body(Body::empty())
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_requests_time_out_with_504() {
    let mut config = ApiConfig::default();
    config.http.request_timeout_ms = 50;
    let h = harness(config).await;
    let (status, headers, body) = call(&h.router, get_request("/v1/test/sleepy", &h.bearer)).await;
    assert_eq!(status, StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(body["code"], "REQUEST_TIMEOUT");
    assert_eq!(body["requestId"], headers["x-request-id"].to_str().unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn excess_requests_are_shed_with_503() {
    let mut config = ApiConfig::default();
    config.http.in_flight_max = 1;
    let h = harness(config).await;
    let router = h.router.clone();
    let bearer = h.bearer.clone();
    let first = tokio::spawn(async move { call(&router, get_request("/v1/test/sleepy", &bearer)).await });
    h.entered.notified().await;
    let (status, headers, body) = call(&h.router, get_request("/healthz", &h.bearer)).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body["code"], "SERVICE_OVERLOADED");
    assert!(headers.contains_key("retry-after"));
    assert_eq!(first.await.unwrap().0, StatusCode::OK);
    assert_eq!(
        call(&h.router, get_request("/healthz", &h.bearer)).await.0,
        StatusCode::OK
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_handler_answers_500_and_the_gateway_lives_on() {
    let h = harness(ApiConfig::default()).await;
    let request = Request::post("/v1/test/boom")
        .header("authorization", &h.bearer)
        .body(Body::empty())
        .unwrap();
    let (status, _, body) = call(&h.router, request).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(body["code"], "INTERNAL_SERVER_ERROR");
    assert!(
        !body["message"].as_str().unwrap().contains("deliberate"),
        "internals never reach the client"
    );
    assert_eq!(
        call(&h.router, get_request("/v1/merchants/me", &h.bearer)).await.0,
        StatusCode::OK
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_routes_and_methods() {
    let h = harness(ApiConfig::default()).await;
    let cases: Vec<(Request<Body>, StatusCode, &str)> = vec![
        (get_request("/nope", &h.bearer), StatusCode::NOT_FOUND, "NOT_FOUND"),
        (
            get_request("/v1/merchants/you", &h.bearer),
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
        ),
        (
            Request::post("/v1/merchants/me")
                .header("authorization", &h.bearer)
                .body(Body::empty())
                .unwrap(),
            StatusCode::METHOD_NOT_ALLOWED,
            "METHOD_NOT_ALLOWED",
        ),
        (
            Request::delete("/readyz").body(Body::empty()).unwrap(),
            StatusCode::METHOD_NOT_ALLOWED,
            "METHOD_NOT_ALLOWED",
        ),
    ];
    for (request, status, code) in cases {
        let path = request.uri().to_string();
        let (got, _, body) = call(&h.router, request).await;
        assert_eq!(got, status, "{path}: {body}");
        assert_eq!(body["code"], code, "{path}");
    }
}
