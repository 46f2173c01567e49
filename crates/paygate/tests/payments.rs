//! Card payments over HTTP on the real binary: every sandbox test card through key-in and through checkout,
//! cancels, duplicate orders, idempotent retries, encData — then the ledger check. Expiry and the workers' timing
//! are tested in process on a manual clock (`crates/paygate-app/tests/orchestration.rs`).

#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use base64::Engine;
use common::{cli, http, Demo, Gateway, TestDb};
use serde_json::{json, Value};

/// Short worker timings so unknown outcomes resolve within the test.
const FAST: [(&str, &str); 3] = [
    ("PAYGATE_PAYMENTS__WORKER_INTERVAL_MS", "50"),
    ("PAYGATE_PAYMENTS__INQUIRY_BACKOFF_BASE_MS", "100"),
    ("PAYGATE_PAYMENTS__INQUIRY_BACKOFF_MAX_MS", "500"),
];

struct Client {
    base: String,
    secret: String,
    client_key: String,
}

struct Answer {
    status: u16,
    body: Value,
}

impl Client {
    fn new(gateway: &Gateway, demo: &Demo) -> Client {
        Client {
            base: gateway.url(""),
            secret: demo.secret_key.clone(),
            client_key: demo.client_key.clone(),
        }
    }

    async fn post_as(&self, key: &str, path: &str, body: Value, idempotency_key: Option<&str>) -> Answer {
        let auth = base64::engine::general_purpose::STANDARD.encode(format!("{key}:"));
        let mut request = http()
            .post(format!("{}{path}", self.base))
            .header("authorization", format!("Basic {auth}"))
            .json(&body);
        if let Some(k) = idempotency_key {
            request = request.header("idempotency-key", k);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        Answer {
            status,
            body: response.json().await.unwrap_or(Value::Null),
        }
    }

    async fn post(&self, path: &str, body: Value) -> Answer {
        self.post_as(&self.secret, path, body, None).await
    }

    async fn get(&self, path: &str) -> Answer {
        let response = http()
            .get(format!("{}{path}", self.base))
            .basic_auth(&self.secret, Some(""))
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        Answer {
            status,
            body: response.json().await.unwrap_or(Value::Null),
        }
    }

    /// Polls a payment until its outcome is known (bounded wait; the workers resolve unknown outcomes).
    async fn settled(&self, payment_key: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let answer = self.get(&format!("/v1/payments/{payment_key}")).await;
            assert_eq!(answer.status, 200, "{}", answer.body);
            if answer.body["outcomeUnknown"] == false {
                return answer.body;
            }
            assert!(
                Instant::now() < deadline,
                "payment {payment_key} never settled: {}",
                answer.body
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// What the buyer enters on the checkout side: number and expiry.
fn card(number: &str) -> Value {
    json!({"cardNumber": number, "cardExpirationYear": "29", "cardExpirationMonth": "12"})
}

/// Key-in adds the birth date and the password digits.
fn key_in_body(order_id: &str, amount: i64, number: &str) -> Value {
    let mut body = card(number);
    body["customerIdentityNumber"] = json!("900101");
    body["cardPassword"] = json!("12");
    let fields = body.as_object_mut().unwrap();
    fields.insert("amount".into(), json!(amount));
    fields.insert("orderId".into(), json!(order_id));
    fields.insert("orderName".into(), json!("T-shirt"));
    body
}

/// (card, final status or error code, the acquirer's card-company code once approved) for key-in: A answers as
/// 11 (KB국민카드), B as 21 (하나카드), C as 31 (BC카드).
const KEY_IN_TABLE: [(&str, &str, &str); 11] = [
    ("4330000000000003", "DONE", "11"),
    ("4330000000000011", "REJECT_CARD_PAYMENT", "11"),
    ("4330000000000029", "INVALID_CARD_LOST_OR_STOLEN", "11"),
    ("4330000000000037", "INVALID_CARD_PASSWORD", "11"),
    ("4330000000000045", "DONE", "11"),
    ("4330000000000052", "ABORTED", "11"),
    ("4330000000000060", "ACQUIRER_UNAVAILABLE", "11"),
    ("4330000000000078", "CARD_AUTHENTICATION_REQUIRED", "11"),
    ("5400000000000005", "DONE", "21"),
    ("9400000000000007", "DONE", "31"),
    ("4330000000000004", "INVALID_CARD_NUMBER", ""),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_test_card_through_key_in() {
    let db = TestDb::new().await;
    let (gateway, demo) = Gateway::fresh(&db, &[], &FAST);
    let client = Client::new(&gateway, &demo);
    for (index, (number, expected, acquirer)) in KEY_IN_TABLE.iter().enumerate() {
        let order_id = format!("keyin-{index:04}");
        let answer = client
            .post("/v1/payments/key-in", key_in_body(&order_id, 15_000, number))
            .await;
        let payment = match answer.status {
            200 | 202 => {
                let key = answer.body["paymentKey"].as_str().unwrap().to_owned();
                if answer.status == 202 {
                    assert_eq!(answer.body["status"], "IN_PROGRESS", "{number}");
                    assert_eq!(answer.body["outcomeUnknown"], true, "{number}");
                }
                client.settled(&key).await
            }
            _ => {
                assert_eq!(answer.body["code"], *expected, "{number}: {}", answer.body);
                if *expected == "INVALID_CARD_NUMBER" {
                    assert!(
                        answer.body["paymentKey"].is_null(),
                        "no payment is created for a bad number"
                    );
                    continue;
                }
                // The declined payment is recorded as ABORTED with the acquirer's code.
                let key = answer.body["paymentKey"].as_str().unwrap();
                let payment = client.get(&format!("/v1/payments/{key}")).await.body;
                assert_eq!(payment["status"], "ABORTED", "{number}");
                assert_eq!(payment["failure"]["code"], *expected, "{number}");
                payment
            }
        };
        if answer.status < 300 {
            assert_eq!(payment["status"], *expected, "{number}: {payment}");
        }
        if payment["approvedAt"].is_null() {
            // As Toss writes it: no card object until the acquirer approved.
            assert!(payment["card"].is_null(), "{number}: {payment}");
            continue;
        }
        assert_eq!(payment["card"]["acquirerCode"], *acquirer, "{number}");
        assert_eq!(
            payment["card"]["number"],
            format!("{}******{}", &number[..6], &number[12..]),
            "{number}"
        );
        if payment["status"] == "DONE" {
            assert_eq!(payment["balanceAmount"], 15_000);
            assert_eq!(
                (payment["vat"].as_i64(), payment["suppliedAmount"].as_i64()),
                (Some(1_364), Some(13_636))
            );
            assert!(payment["card"]["approveNo"].as_str().is_some_and(|n| n.len() == 8));
        }
    }
    let (ok, out, err) = cli(&["ledger", "check"], &gateway.data_dir, &db);
    assert!(ok, "{out}{err}");
    assert!(out.contains("4 journals"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_test_card_through_checkout() {
    let db = TestDb::new().await;
    let (gateway, demo) = Gateway::fresh(&db, &[], &FAST);
    let client = Client::new(&gateway, &demo);
    let table: [(&str, &str, &str); 10] = [
        ("4330000000000003", "DONE", "11"),
        ("4330000000000011", "REJECT_CARD_PAYMENT", "11"),
        ("4330000000000029", "INVALID_CARD_LOST_OR_STOLEN", "11"),
        ("4330000000000037", "INVALID_CARD_PASSWORD", "11"),
        ("4330000000000045", "DONE", "11"),
        ("4330000000000052", "ABORTED", "11"),
        ("4330000000000060", "ACQUIRER_UNAVAILABLE", "11"),
        // The buyer authenticated on paygate's side, so the card that needs authentication is approved.
        ("4330000000000078", "DONE", "11"),
        ("5400000000000005", "DONE", "21"),
        ("9400000000000007", "DONE", "31"),
    ];
    for (index, (number, expected, acquirer)) in table.iter().enumerate() {
        let order_id = format!("checkout-{index:04}");
        let created = client
            .post(
                "/v1/payments",
                json!({"amount": 20_000, "orderId": order_id, "orderName": "Mug"}),
            )
            .await;
        assert_eq!(created.status, 200, "{}", created.body);
        assert_eq!(created.body["status"], "READY");
        let key = created.body["paymentKey"].as_str().unwrap().to_owned();
        assert!(created.body["checkout"]["url"].as_str().unwrap().ends_with(&key));
        let authed = client
            .post_as(
                &client.client_key,
                &format!("/v1/checkout/{key}/authenticate"),
                card(number),
                None,
            )
            .await;
        assert_eq!(authed.status, 200, "{number}: {}", authed.body);
        assert_eq!(authed.body["status"], "IN_PROGRESS");
        let confirm = json!({"paymentKey": key, "orderId": order_id, "amount": 20_000});
        let answer = client.post("/v1/payments/confirm", confirm).await;
        let payment = if answer.status < 300 {
            client.settled(&key).await
        } else {
            assert_eq!(answer.body["code"], *expected, "{number}: {}", answer.body);
            client.get(&format!("/v1/payments/{key}")).await.body
        };
        let status = if answer.status < 300 { *expected } else { "ABORTED" };
        assert_eq!(payment["status"], status, "{number}: {payment}");
        if payment["approvedAt"].is_null() {
            assert!(payment["card"].is_null(), "{number}: {payment}");
        } else {
            assert_eq!(payment["card"]["acquirerCode"], *acquirer, "{number}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn confirm_rules_and_expiry() {
    let db = TestDb::new().await;
    let (gateway, demo) = Gateway::fresh(&db, &[], &FAST);
    let client = Client::new(&gateway, &demo);
    let created = client
        .post(
            "/v1/payments",
            json!({"amount": 5_000, "orderId": "rules-0001", "orderName": "Pen"}),
        )
        .await;
    let key = created.body["paymentKey"].as_str().unwrap().to_owned();
    let confirm = |order: &str, amount: i64| json!({"paymentKey": key, "orderId": order, "amount": amount});
    assert_eq!(
        client
            .post("/v1/payments/confirm", confirm("rules-0001", 5_000))
            .await
            .body["code"],
        "INVALID_PAYMENT_STATUS"
    );
    let authed = client
        .post_as(
            &client.client_key,
            &format!("/v1/checkout/{key}/authenticate"),
            card("4330000000000003"),
            None,
        )
        .await;
    assert_eq!(authed.status, 200, "{}", authed.body);
    let cases = [
        (confirm("rules-0001", 4_999), 400, "AMOUNT_MISMATCH"),
        (confirm("rules-0002", 5_000), 400, "ORDER_ID_MISMATCH"),
    ];
    for (body, status, code) in cases {
        let answer = client.post("/v1/payments/confirm", body).await;
        assert_eq!((answer.status, answer.body["code"].as_str()), (status, Some(code)));
    }
    // The client key cannot confirm, read or cancel.
    let answer = client
        .post_as(
            &client.client_key,
            "/v1/payments/confirm",
            confirm("rules-0001", 5_000),
            None,
        )
        .await;
    assert_eq!(answer.body["code"], "CLIENT_KEY_NOT_ALLOWED");
    assert_eq!(
        client
            .post("/v1/payments/confirm", confirm("rules-0001", 5_000))
            .await
            .body["status"],
        "DONE"
    );
    assert_eq!(
        client
            .post("/v1/payments/confirm", confirm("rules-0001", 5_000))
            .await
            .body["code"],
        "ALREADY_PROCESSED_PAYMENT"
    );

    // orderId is unique per merchant and mode.
    let again = client
        .post(
            "/v1/payments",
            json!({"amount": 5_000, "orderId": "rules-0001", "orderName": "Pen"}),
        )
        .await;
    assert_eq!(
        (again.status, again.body["code"].as_str()),
        (400, Some("DUPLICATED_ORDER_ID"))
    );
    let again = client
        .post(
            "/v1/payments/key-in",
            key_in_body("rules-0001", 5_000, "4330000000000003"),
        )
        .await;
    assert_eq!(again.body["code"], "DUPLICATED_ORDER_ID");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partial_partial_full_and_over_cancel() {
    let db = TestDb::new().await;
    let (gateway, demo) = Gateway::fresh(&db, &[], &FAST);
    let client = Client::new(&gateway, &demo);
    let paid = client
        .post(
            "/v1/payments/key-in",
            key_in_body("cancel-0001", 30_000, "5400000000000005"),
        )
        .await;
    assert_eq!(paid.body["status"], "DONE", "{}", paid.body);
    let key = paid.body["paymentKey"].as_str().unwrap().to_owned();
    let cancel_path = format!("/v1/payments/{key}/cancel");
    let steps: Vec<(Value, u16, &str, i64)> = vec![
        (
            json!({"cancelReason": "size", "cancelAmount": 10_000}),
            200,
            "PARTIAL_CANCELED",
            20_000,
        ),
        (
            json!({"cancelReason": "over", "cancelAmount": 20_001}),
            403,
            "NOT_CANCELABLE_AMOUNT",
            20_000,
        ),
        (
            json!({"cancelReason": "guard", "cancelAmount": 1, "expectedBalance": 19_999}),
            409,
            "BALANCE_MISMATCH",
            20_000,
        ),
        (
            json!({"cancelReason": "toss guard", "cancelAmount": 1, "refundableAmount": 19_999}),
            400,
            "NOT_MATCHES_REFUNDABLE_AMOUNT",
            20_000,
        ),
        (
            json!({"cancelReason": "color", "cancelAmount": 5_000, "expectedBalance": 20_000}),
            200,
            "PARTIAL_CANCELED",
            15_000,
        ),
        (json!({"cancelReason": "rest"}), 200, "CANCELED", 0),
        (json!({"cancelReason": "again"}), 400, "ALREADY_CANCELED_PAYMENT", 0),
        (json!({"cancelReason": ""}), 400, "INVALID_REQUEST", 0),
    ];
    for (body, status, outcome, balance) in steps {
        let answer = client.post(&cancel_path, body.clone()).await;
        assert_eq!(answer.status, status, "{body}: {}", answer.body);
        let payment = client.get(&format!("/v1/payments/{key}")).await.body;
        if status == 200 {
            assert_eq!(answer.body["status"], outcome);
        } else {
            assert_eq!(answer.body["code"], outcome, "{body}");
        }
        assert_eq!(payment["balanceAmount"], balance, "{body}");
    }
    let payment = client.get(&format!("/v1/payments/{key}")).await.body;
    let cancels: Vec<(i64, &str)> = payment["cancels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["cancelAmount"].as_i64().unwrap(), c["cancelStatus"].as_str().unwrap()))
        .collect();
    assert_eq!(cancels, vec![(10_000, "DONE"), (5_000, "DONE"), (15_000, "DONE")]);
    let listed = client
        .get("/v1/transactions?startDate=2000-01-01&endDate=2100-01-01&limit=2")
        .await
        .body;
    assert_eq!(listed.as_array().unwrap().len(), 2);
    let after = listed[1]["transactionKey"].as_str().unwrap();
    let rest = client
        .get(&format!(
            "/v1/transactions?startDate=2000-01-01&endDate=2100-01-01&startingAfter={after}"
        ))
        .await
        .body;
    let kinds: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .chain(rest.as_array().unwrap())
        .map(|t| t["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, vec!["APPROVAL", "CANCEL", "CANCEL", "CANCEL"]);
    let (ok, out, err) = cli(&["ledger", "check", "--json"], &gateway.data_dir, &db);
    assert!(ok, "{out}{err}");
    let audit: Value = serde_json::from_str(out.lines().next().unwrap()).unwrap();
    assert_eq!(
        (audit["clean"].as_bool(), audit["journals"].as_u64()),
        (Some(true), Some(4))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotent_key_in_replays_and_refuses_reuse() {
    let db = TestDb::new().await;
    let (gateway, demo) = Gateway::fresh(&db, &[], &FAST);
    let client = Client::new(&gateway, &demo);
    let body = key_in_body("idem-0001", 1_000, "4330000000000003");
    let first = client
        .post_as(&client.secret, "/v1/payments/key-in", body.clone(), Some("pay-once"))
        .await;
    let second = client
        .post_as(&client.secret, "/v1/payments/key-in", body, Some("pay-once"))
        .await;
    assert_eq!((first.status, second.status), (200, 200));
    assert_eq!(first.body, second.body, "the replay is the stored answer");
    let other = client
        .post_as(
            &client.secret,
            "/v1/payments/key-in",
            key_in_body("idem-0002", 1_000, "4330000000000003"),
            Some("pay-once"),
        )
        .await;
    assert_eq!(
        (other.status, other.body["code"].as_str()),
        (422, Some("IDEMPOTENCY_KEY_REUSED"))
    );
    let (ok, out, _) = cli(&["ledger", "check"], &gateway.data_dir, &db);
    assert!(ok && out.contains("1 journals"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enc_data_key_in_and_rotation() {
    use paygate_app::encdata::{associated_data, encrypt, EncDataKey, EncryptedCardFields};
    let db = TestDb::new().await;
    let (gateway, demo) = Gateway::fresh(&db, &[], &FAST);
    let client = Client::new(&gateway, &demo);
    let fetched = client.get("/v1/merchants/me/encryption-key").await.body;
    assert_eq!(
        (fetched["keyVersion"].as_u64(), fetched["algorithm"].as_str()),
        (Some(1), Some("AES-256-GCM"))
    );
    let key_v1 = EncDataKey::from_base64(1, fetched["key"].as_str().unwrap()).unwrap();
    let mid = paygate_domain::id::MerchantId::parse(&demo.mid).unwrap();
    let aad = associated_data(&mid, paygate_domain::api_key::Mode::Test);
    let fields = EncryptedCardFields {
        card_number: "4330000000000003".into(),
        card_expiration_year: "29".into(),
        card_expiration_month: "12".into(),
        customer_identity_number: Some("900101".into()),
        card_password: None,
    };
    let enc = |key: &EncDataKey| encrypt(key, &aad, &fields).unwrap();
    let body = |order: &str, enc_data: String| json!({"amount": 7_000, "orderId": order, "orderName": "Book", "encData": enc_data});
    let paid = client.post("/v1/payments/key-in", body("enc-0001", enc(&key_v1))).await;
    assert_eq!(paid.body["status"], "DONE", "{}", paid.body);
    assert_eq!(paid.body["card"]["number"], "433000******0003");

    let mut tampered = enc(&key_v1);
    tampered.replace_range(30..31, if &tampered[30..31] == "A" { "B" } else { "A" });
    let other_merchant = encrypt(&key_v1, "mid_01KAR3Q5M2V6Y8Z0A1B2C3D4E5:test", &fields).unwrap();
    let cases = [
        (tampered, "ENC_DATA_DECRYPTION_FAILED"),
        (other_merchant, "ENC_DATA_DECRYPTION_FAILED"),
        ("not base64!".to_owned(), "INVALID_ENC_DATA"),
        (enc(&EncDataKey::generate(9)), "UNKNOWN_ENC_KEY_VERSION"),
    ];
    for (index, (enc_data, code)) in cases.into_iter().enumerate() {
        let answer = client
            .post("/v1/payments/key-in", body(&format!("enc-bad-{index}"), enc_data))
            .await;
        assert_eq!(
            (
                answer.status,
                answer.body["code"].as_str(),
                answer.body["param"].as_str()
            ),
            (400, Some(code), Some("encData"))
        );
    }
    let both = {
        let mut b = body("enc-0002", enc(&key_v1));
        b["cardNumber"] = json!("4330000000000003");
        b
    };
    let both = client.post("/v1/payments/key-in", both).await.body;
    assert_eq!(
        (both["code"].as_str(), both["reason"].as_str()),
        (Some("INVALID_REQUEST"), Some("INVALID_FIELD_VALUE"))
    );

    // Rotation: version 2 works at once, version 1 keeps working during the overlap.
    let rotated = client
        .post("/v1/merchants/me/encryption-key/rotate", json!({}))
        .await
        .body;
    assert_eq!(rotated["keyVersion"], 2);
    let key_v2 = EncDataKey::from_base64(2, rotated["key"].as_str().unwrap()).unwrap();
    assert_eq!(
        client
            .post("/v1/payments/key-in", body("enc-0003", enc(&key_v2)))
            .await
            .body["status"],
        "DONE"
    );
    assert_eq!(
        client
            .post("/v1/payments/key-in", body("enc-0004", enc(&key_v1)))
            .await
            .body["status"],
        "DONE"
    );
    assert_eq!(
        client.get("/v1/merchants/me/encryption-key").await.body["keyVersion"],
        2
    );
}
