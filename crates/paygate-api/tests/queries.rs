//! Query strings: a bad one gets the JSON error object naming the parameter, on every route that takes one.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use paygate_api::{ApiConfig, AppState};
use paygate_app::{App, Secrets, SystemClock};
use paygate_domain::id::WebhookEndpointId;
use paygate_domain::time::UnixMillis;
use paygate_store::testing::TestDatabase;
use serde_json::Value;
use tower::ServiceExt;

struct Harness {
    router: axum::Router,
    bearer: String,
    _db: TestDatabase,
}

async fn harness() -> Harness {
    let db = TestDatabase::new().await;
    let (store, _) = db.open().await;
    let app = App::new(store, &Secrets::for_tests(5), Arc::new(SystemClock)).unwrap();
    let created = app.create_merchant("Query Shop").await.unwrap();
    let key = created
        .key(
            paygate_domain::api_key::Mode::Test,
            paygate_domain::api_key::KeyKind::Secret,
        )
        .unwrap();
    let state = AppState::new(app, ApiConfig::default()).unwrap();
    Harness {
        router: paygate_api::router(state),
        bearer: format!("Bearer {}", key.secret.expose_secret()),
        _db: db,
    }
}

async fn get(h: &Harness, path: &str) -> (StatusCode, Option<String>, Value) {
    let request = Request::get(path)
        .header("authorization", &h.bearer)
        .body(Body::empty())
        .unwrap();
    let response = h.router.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let content_type = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned());
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        content_type,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_query_strings_name_the_parameter() {
    let h = harness().await;
    let endpoint = WebhookEndpointId::new(UnixMillis::new(1), [7; 10]);
    let deliveries = format!("/v1/webhooks/{endpoint}/deliveries");
    let range = "startDate=2022-01-01&endDate=2022-02-01";
    let cases: Vec<(String, &str, &str)> = vec![
        ("/v1/events?limit=abc".into(), "INVALID_FIELD_TYPE", "limit"),
        ("/v1/events?limit=-5".into(), "INVALID_FIELD_TYPE", "limit"),
        ("/v1/events?limit=99999999999".into(), "INVALID_FIELD_VALUE", "limit"),
        ("/v1/events?limt=5".into(), "INVALID_FIELD_VALUE", "limt"),
        (format!("{deliveries}?limit=ten"), "INVALID_FIELD_TYPE", "limit"),
        (
            format!("{deliveries}?startingAfter=x&page=2"),
            "INVALID_FIELD_VALUE",
            "page",
        ),
        (
            format!("/v1/transactions?{range}&limit=abc"),
            "INVALID_FIELD_TYPE",
            "limit",
        ),
        (
            format!("/v1/transactions?{range}&limit=1&limit=2"),
            "INVALID_FIELD_VALUE",
            "limit",
        ),
        (
            "/v1/transactions?endDate=2022-02-01".into(),
            "MISSING_FIELD",
            "startDate",
        ),
        (
            "/v1/transactions?startDate=2022-01-01".into(),
            "MISSING_FIELD",
            "endDate",
        ),
        (
            "/v1/transactions?startDate=01/01/2022&endDate=2022-02-01".into(),
            "INVALID_DATE",
            "startDate",
        ),
    ];
    for (path, code, param) in cases {
        let (status, content_type, body) = get(&h, &path).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path}: {body}");
        assert_eq!(content_type.as_deref(), Some("application/json"), "{path}");
        // Toss's INVALID_REQUEST, with paygate's finer reason beside it.
        let detail = body["reason"].as_str().or(body["code"].as_str());
        assert_eq!(detail, Some(code), "{path}: {body}");
        if body["reason"].is_string() {
            assert_eq!(body["code"], "INVALID_REQUEST", "{path}: {body}");
        }
        assert_eq!(body["param"], param, "{path}: {body}");
        assert!(body["requestId"].as_str().is_some(), "{path}: {body}");
    }
    // Good query strings still pass.
    assert_eq!(get(&h, "/v1/events?limit=5").await.0, StatusCode::OK);
    assert_eq!(get(&h, &format!("{deliveries}?limit=5")).await.0, StatusCode::NOT_FOUND);
    assert_eq!(
        get(&h, &format!("/v1/transactions?{range}&limit=5")).await.0,
        StatusCode::OK
    );
}

/// Toss documents `startDate=2022-01-01T00:00:00`: a local date-time, meaning KST.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transactions_accept_a_local_date_time_as_kst() {
    let h = harness().await;
    let (status, _, body) = get(
        &h,
        "/v1/transactions?startDate=2022-01-01T00:00:00&endDate=2022-01-31T23:59:59",
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, Value::Array(vec![]));
    let (status, _, body) = get(
        &h,
        "/v1/transactions?startDate=2022-01-02T00:00:00&endDate=2022-01-01T23:59:59",
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["param"], "endDate");
}
