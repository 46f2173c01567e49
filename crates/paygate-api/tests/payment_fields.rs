//! Fields of a new payment that reach the buyer's pages, receipts and notifications: refused at the edge when they
//! could spoof or are not what they claim to be. Key-in and checkout create build the payment the same way.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use paygate_api::{ApiConfig, AppState};
use paygate_app::{App, Secrets, SystemClock};
use paygate_store::testing::TestDatabase;
use serde_json::{json, Value};
use tower::ServiceExt;

struct Harness {
    router: axum::Router,
    bearer: String,
    _db: TestDatabase,
}

async fn harness() -> Harness {
    let db = TestDatabase::new().await;
    let (store, _) = db.open().await;
    let app = App::new(store, &Secrets::for_tests(9), Arc::new(SystemClock)).unwrap();
    let created = app.create_merchant("Fields Shop").await.unwrap();
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

async fn post(h: &Harness, path: &str, body: &Value) -> (StatusCode, Value) {
    let request = Request::post(path)
        .header("authorization", &h.bearer)
        .header("content-type", "application/json")
        .body(Body::from(body.to_string()))
        .unwrap();
    let response = h.router.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

fn key_in(order: usize, order_name: &str, email: Option<&str>) -> Value {
    let mut body = json!({
        "amount": 1000, "orderId": format!("order-fields-{order}"), "orderName": order_name,
        "cardNumber": "4330000000000003", "cardExpirationYear": "29", "cardExpirationMonth": "12",
    });
    if let Some(email) = email {
        body["customerEmail"] = json!(email);
    }
    body
}

fn create(order: usize, order_name: &str, email: Option<&str>) -> Value {
    let mut body = json!({"amount": 1000, "orderId": format!("order-create-{order}"), "orderName": order_name});
    if let Some(email) = email {
        body["customerEmail"] = json!(email);
    }
    body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spoofing_order_names_and_bad_emails_are_refused() {
    let h = harness().await;
    let cases: &[(&str, Option<&str>, &str)] = &[
        ("invoice\u{202E}fdp.exe", None, "orderName"),
        ("\u{2066}isolated\u{2069}", None, "orderName"),
        ("mark\u{200F}", None, "orderName"),
        ("c1\u{9B}31m", None, "orderName"),
        ("티셔츠", Some("not-an-email"), "customerEmail"),
        ("티셔츠", Some("buyer@localhost"), "customerEmail"),
        ("티셔츠", Some("bu yer@example.com"), "customerEmail"),
        ("티셔츠", Some("buyer\u{202E}@example.com"), "customerEmail"),
    ];
    for (i, (name, email, param)) in cases.iter().enumerate() {
        for (path, body) in [
            ("/v1/payments/key-in", key_in(i, name, *email)),
            ("/v1/payments", create(i, name, *email)),
        ] {
            let (status, answer) = post(&h, path, &body).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{path} {name:?} {email:?}: {answer}");
            assert_eq!(answer["code"], "INVALID_REQUEST", "{path}: {answer}");
            assert_eq!(answer["reason"], "INVALID_FIELD_VALUE", "{path}: {answer}");
            assert_eq!(answer["param"], *param, "{path}: {answer}");
        }
    }
    let (status, answer) = post(
        &h,
        "/v1/payments",
        &create(100, "티셔츠 외 2건", Some("buyer@example.com")),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["status"], "READY");
    // Toss clients send "" for an optional field left blank: it means "not given".
    for (path, body) in [
        ("/v1/payments/key-in", key_in(101, "티셔츠", Some(""))),
        ("/v1/payments", create(101, "티셔츠", Some(""))),
    ] {
        let (status, answer) = post(&h, path, &body).await;
        assert_eq!(status, StatusCode::OK, "{path}: {answer}");
        assert!(answer["customerEmail"].is_null(), "{path}: {answer}");
    }
}
