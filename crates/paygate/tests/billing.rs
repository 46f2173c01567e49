//! Billing keys against the acquirer simulator in its own process (the HTTP wire, verification included): concurrent
//! charges of one key each approve exactly once, and a deleted key, a foreign `customerKey` and another merchant's
//! key charge nothing, as the simulator's journal shows. Runs on the backend `PAYGATE_TEST_DATABASE_URL` selects.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashMap;
use std::sync::Arc;

use common::{cli, http, Gateway, SimProcess, TestDb};
use serde_json::{json, Value};

const CUSTOMER: &str = "customer-7f3a9c";

fn sim_env(sim: &SimProcess) -> Vec<(String, String)> {
    vec![
        ("PAYGATE_ACQUIRERS__SANDBOX".into(), sim.base.clone()),
        ("PAYGATE_ACQUIRERS__REQUEST_TIMEOUT_MS".into(), "2000".into()),
        ("PAYGATE_PAYMENTS__WORKER_INTERVAL_MS".into(), "50".into()),
        ("PAYGATE_RATE_LIMIT__PER_KEY_PER_SECOND".into(), "0".into()),
        ("PAYGATE_LOG__LEVEL".into(), "warn".into()),
    ]
}

async fn send(base: &str, secret: &str, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
    let mut request = http()
        .request(method, format!("{base}{path}"))
        .basic_auth(secret, Some(""));
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

fn charge(customer_key: &str, order_id: &str) -> Value {
    json!({"customerKey": customer_key, "amount": 4_900, "orderId": order_id, "orderName": "월 구독"})
}

/// Approval entries per reference in the simulator's journal, all acquirers.
async fn approvals(sim: &SimProcess) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for acquirer in ["A", "B", "C"] {
        for entry in sim.journal(acquirer).await {
            if entry["kind"] == "APPROVED" {
                *counts
                    .entry(entry["reference"].as_str().unwrap().to_owned())
                    .or_default() += 1;
            }
        }
    }
    counts
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_concurrent_charges_of_one_key_approve_once_each_and_refusals_charge_nothing() {
    let db = TestDb::new().await;
    let sim = SimProcess::start(&["--latency-ms", "20"]);
    let env = sim_env(&sim);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let (gateway, demo) = Gateway::fresh(&db, &[], &env);
    let base = gateway.url("");
    let secret = demo.secret_key.clone();

    // Issued through the simulator's verification; the card that needs buyer authentication cannot be
    // registered by key-in.
    let issue = |number: &str| {
        json!({"customerKey": CUSTOMER, "cardNumber": number, "cardExpirationYear": "29",
               "cardExpirationMonth": "12", "customerIdentityNumber": "900101"})
    };
    let (status, body) = send(
        &base,
        &secret,
        reqwest::Method::POST,
        "/v1/billing/authorizations/card",
        Some(issue("5400000000000005")),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["card"]["acquirerCode"], "21", "{body}");
    let key = body["billingKey"].as_str().unwrap().to_owned();
    let (status, body) = send(
        &base,
        &secret,
        reqwest::Method::POST,
        "/v1/billing/authorizations/card",
        Some(issue("4330000000000078")),
    )
    .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("CARD_AUTHENTICATION_REQUIRED")),
        "{body}"
    );
    assert!(approvals(&sim).await.is_empty(), "verification moves no money");

    // 50 charges at once, distinct orders: 50 payments, each approved exactly once at the acquirer.
    let base = Arc::new(base);
    let secret = Arc::new(secret);
    let mut tasks = Vec::new();
    for index in 0..50 {
        let (base, secret, key) = (base.clone(), secret.clone(), key.clone());
        tasks.push(tokio::spawn(async move {
            let order = format!("sub-{index:04}");
            send(
                &base,
                &secret,
                reqwest::Method::POST,
                &format!("/v1/billing/{key}"),
                Some(charge(CUSTOMER, &order)),
            )
            .await
        }));
    }
    let mut payment_keys = Vec::new();
    for task in tasks {
        let (status, body) = task.await.unwrap();
        assert_eq!(status, 200, "{body}");
        assert_eq!(
            (body["status"].as_str(), body["type"].as_str()),
            (Some("DONE"), Some("BILLING"))
        );
        payment_keys.push(body["paymentKey"].as_str().unwrap().to_owned());
    }
    let counts = approvals(&sim).await;
    assert_eq!(counts.len(), 50, "50 distinct approvals at the acquirer");
    for payment_key in &payment_keys {
        assert_eq!(counts.get(payment_key), Some(&1), "{payment_key}");
    }

    // Refused charges leave the acquirer's journal as it was.
    let (status, body) = send(
        &base,
        &secret,
        reqwest::Method::POST,
        &format!("/v1/billing/{key}"),
        Some(charge("another-customer", "sub-foreign")),
    )
    .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("NOT_MATCHES_CUSTOMER_KEY")),
        "{body}"
    );

    // Another merchant cannot see, charge or delete this merchant's key.
    let (ok, out, err) = cli(
        &["merchant", "create", "--name", "다른 가맹점", "--json"],
        &gateway.data_dir,
        &db,
    );
    assert!(ok, "{err}");
    let other: Value = serde_json::from_str(&out).unwrap();
    let other_secret = other["testSecretKey"].as_str().unwrap().to_owned();
    for (method, body) in [
        (reqwest::Method::POST, Some(charge(CUSTOMER, "sub-other-merchant"))),
        (reqwest::Method::GET, None),
        (reqwest::Method::DELETE, None),
    ] {
        let (status, answer) = send(
            &base,
            &other_secret,
            method.clone(),
            &format!("/v1/billing/{key}"),
            body,
        )
        .await;
        assert_eq!(
            (status, answer["code"].as_str()),
            (404, Some("NOT_FOUND_BILLING")),
            "{method}: {answer}"
        );
    }

    // Deleted: its card is erased, and charges are refused.
    let (status, _) = send(
        &base,
        &secret,
        reqwest::Method::DELETE,
        &format!("/v1/billing/{key}"),
        None,
    )
    .await;
    assert_eq!(status, 200);
    let (status, _) = send(
        &base,
        &secret,
        reqwest::Method::DELETE,
        &format!("/v1/billing/{key}"),
        None,
    )
    .await;
    assert_eq!(status, 200, "deleting again changes nothing and succeeds");
    let (status, body) = send(
        &base,
        &secret,
        reqwest::Method::GET,
        &format!("/v1/billing/{key}"),
        None,
    )
    .await;
    assert_eq!(
        (status, body["billingKeyStatus"].as_str()),
        (200, Some("DELETED")),
        "{body}"
    );
    let (status, body) = send(
        &base,
        &secret,
        reqwest::Method::POST,
        &format!("/v1/billing/{key}"),
        Some(charge(CUSTOMER, "sub-after-delete")),
    )
    .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("INVALID_BILL_KEY_REQUEST")),
        "{body}"
    );

    assert_eq!(
        approvals(&sim).await.len(),
        50,
        "no refused charge reached the acquirer"
    );
    for order in ["sub-foreign", "sub-other-merchant", "sub-after-delete"] {
        let (status, _) = send(
            &base,
            &secret,
            reqwest::Method::GET,
            &format!("/v1/payments/orders/{order}"),
            None,
        )
        .await;
        assert_eq!(status, 404, "{order} was not recorded");
    }
    let (status, listed) = send(
        &base,
        &secret,
        reqwest::Method::GET,
        &format!("/v1/billing?customerKey={CUSTOMER}"),
        None,
    )
    .await;
    assert_eq!(status, 200, "{listed}");
    assert_eq!(listed.as_array().map(Vec::len), Some(1), "{listed}");
}
