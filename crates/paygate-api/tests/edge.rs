//! The edge layers: request timeout, load shedding, panics, unknown routes and methods, body limits, rate limits
//! per key and per client address.

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
    app: App,
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
    let state = AppState::new(app.clone(), config).unwrap();
    Harness {
        router: paygate_api::layered(routes, state),
        bearer: format!("Bearer {}", key.secret.expose_secret()),
        entered,
        app,
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
    assert_eq!(body["code"], "FAILED_INTERNAL_SYSTEM_PROCESSING");
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

/// A request as the accept loop hands it over: with the TCP peer's address.
fn get_from(path: &str, bearer: &str, peer: &str, forwarded_for: Option<&str>) -> Request<Body> {
    let mut request = Request::get(path).header("authorization", bearer);
    if let Some(forwarded) = forwarded_for {
        request = request.header("x-forwarded-for", forwarded);
    }
    request
        .extension(axum::extract::ConnectInfo(
            peer.parse::<std::net::SocketAddr>().unwrap(),
        ))
        .body(Body::empty())
        .unwrap()
}

/// A well-formed key that no merchant holds.
fn unknown_bearer(seed: u8) -> String {
    let mut byte = seed;
    let secret = paygate_domain::api_key::ApiKeySecret::generate(
        paygate_domain::api_key::Mode::Test,
        paygate_domain::api_key::KeyKind::Secret,
        move || {
            byte = byte.wrapping_mul(31).wrapping_add(7);
            byte
        },
    );
    format!("Bearer {}", secret.expose_secret())
}

async fn second_key(h: &Harness) -> String {
    let created = h.app.create_merchant("Second Shop").await.unwrap();
    let key = created
        .key(
            paygate_domain::api_key::Mode::Test,
            paygate_domain::api_key::KeyKind::Secret,
        )
        .unwrap();
    format!("Bearer {}", key.secret.expose_secret())
}

/// The table of per-key buckets at its cap: a new key is refused, and the active key's empty bucket stays empty
/// (it used to be cleared, handing every tracked key a fresh burst).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_key_table_refuses_new_keys_and_forgets_no_bucket() {
    let mut config = ApiConfig::default();
    config.rate_limit.per_key_per_second = 1;
    config.rate_limit.burst = 1;
    config.rate_limit.keys_tracked_max = 1;
    let h = harness(config).await;
    let other = second_key(&h).await;
    let (status, _, _) = call(&h.router, get_request("/v1/merchants/me", &h.bearer)).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _, body) = call(&h.router, get_request("/v1/merchants/me", &h.bearer)).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");

    let (status, headers, body) = call(&h.router, get_request("/v1/merchants/me", &other)).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    assert_eq!(body["code"], "TOO_MANY_REQUESTS");
    assert!(headers.contains_key("retry-after"));
    let (status, _, body) = call(&h.router, get_request("/v1/merchants/me", &h.bearer)).await;
    assert_eq!(
        status,
        StatusCode::TOO_MANY_REQUESTS,
        "the first key's bucket is still empty: {body}"
    );
}

/// 300 unknown keys in a burst from one address: the failure budget runs out and the rest are refused with 429
/// before any lookup; a valid key from that address waits too, another address is unaffected.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_authentications_are_throttled_per_client_address() {
    let config = ApiConfig::default();
    let burst = usize::try_from(config.rate_limit.auth_failures_burst).unwrap();
    let h = harness(config).await;
    let mut unauthorized = 0;
    let mut limited = 0;
    for i in 0..300u16 {
        let bearer = unknown_bearer(u8::try_from(i % 251).unwrap());
        let (status, headers, body) = call(
            &h.router,
            get_from("/v1/merchants/me", &bearer, "203.0.113.7:40000", None),
        )
        .await;
        match status {
            StatusCode::UNAUTHORIZED => {
                assert_eq!(body["code"], "UNAUTHORIZED_KEY", "{body}");
                unauthorized += 1;
            }
            StatusCode::TOO_MANY_REQUESTS => {
                assert_eq!(body["code"], "TOO_MANY_REQUESTS", "{body}");
                let retry_after: u64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
                assert!((1..=60).contains(&retry_after), "{retry_after}");
                limited += 1;
            }
            other => panic!("unexpected {other}: {body}"),
        }
    }
    assert_eq!(unauthorized, burst);
    assert_eq!(limited, 300 - burst);
    // Malformed keys and missing credentials are refused the same way from that address.
    let (status, _, _) = call(
        &h.router,
        get_from("/v1/merchants/me", "Bearer nope", "203.0.113.7:1", None),
    )
    .await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    let (status, _, _) = call(
        &h.router,
        get_from("/v1/merchants/me", &h.bearer, "203.0.113.7:1", None),
    )
    .await;
    assert_eq!(
        status,
        StatusCode::TOO_MANY_REQUESTS,
        "refused before the key is looked up"
    );
    // Another address, and another IPv6 /64, keep their budgets; the same /64 shares one.
    let (status, _, _) = call(
        &h.router,
        get_from("/v1/merchants/me", &h.bearer, "198.51.100.1:1", None),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _, _) = call(
        &h.router,
        get_from("/v1/merchants/me", "Bearer nope", "198.51.100.1:1", None),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    for _ in 0..burst {
        let (status, _, _) = call(
            &h.router,
            get_from("/v1/merchants/me", "Bearer nope", "[2001:db8:1:2::1]:1", None),
        )
        .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    let (status, _, _) = call(
        &h.router,
        get_from("/v1/merchants/me", &h.bearer, "[2001:db8:1:2:ffff::9]:1", None),
    )
    .await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    let (status, _, _) = call(
        &h.router,
        get_from("/v1/merchants/me", &h.bearer, "[2001:db8:1:3::1]:1", None),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
}

/// `X-Forwarded-For` buys no new budget unless the peer is a configured proxy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarded_for_is_believed_only_from_trusted_proxies() {
    let mut config = ApiConfig::default();
    config.rate_limit.auth_failures_burst = 2;
    config.http.trusted_proxies = vec!["10.0.0.1".parse().unwrap()];
    let h = harness(config).await;
    let fail = |peer: &'static str, forwarded: &'static str| {
        call(
            &h.router,
            get_from("/v1/merchants/me", "Bearer nope", peer, Some(forwarded)),
        )
    };
    // From an untrusted peer every spoofed header lands in the peer's one budget.
    assert_eq!(fail("192.0.2.5:1", "198.51.100.1").await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(fail("192.0.2.5:1", "198.51.100.2").await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(
        fail("192.0.2.5:1", "198.51.100.3").await.0,
        StatusCode::TOO_MANY_REQUESTS
    );
    // Through the trusted proxy, the rightmost untrusted hop is the client; what it claims further left is ignored.
    assert_eq!(
        fail("10.0.0.1:1", "1.1.1.1, 198.51.100.9").await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        fail("10.0.0.1:1", "2.2.2.2, 198.51.100.9").await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        fail("10.0.0.1:1", "3.3.3.3, 198.51.100.9").await.0,
        StatusCode::TOO_MANY_REQUESTS
    );
    assert_eq!(fail("10.0.0.1:1", "198.51.100.10").await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(
        call(
            &h.router,
            get_from("/v1/merchants/me", &h.bearer, "10.0.0.1:1", Some("198.51.100.11"))
        )
        .await
        .0,
        StatusCode::OK
    );
}
