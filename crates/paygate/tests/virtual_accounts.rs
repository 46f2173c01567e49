//! Virtual accounts (가상계좌), black-box: the gateway binary with its in-process sandbox bank, whose routes
//! (`/bank/…`) take deposits as a person or a test makes them and notify the gateway, signed, like a bank's
//! 입금통보. Answers and webhooks are decoded into `toss::*`, types written from Toss's reference. Runs on the
//! backend `PAYGATE_TEST_DATABASE_URL` selects.

#![allow(clippy::unwrap_used)]

mod common;
mod toss;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{cli, http, Gateway, TestDb};
use serde_json::{json, Value};

const NOTIFY_SECRET: &str = "bank-notify-secret-for-tests";

fn env() -> Vec<(&'static str, &'static str)> {
    vec![
        ("PAYGATE_PAYMENTS__WORKER_INTERVAL_MS", "50"),
        ("PAYGATE_PAYMENTS__VIRTUAL_ACCOUNT_EXPIRY_GRACE_MS", "500"),
        ("PAYGATE_OUTBOX__ALLOW_LOOPBACK", "true"),
        ("PAYGATE_OUTBOX__WORKER_INTERVAL_MS", "20"),
        ("PAYGATE_RATE_LIMIT__PER_KEY_PER_SECOND", "0"),
        ("PAYGATE_SECRETS__BANK_NOTIFY_SECRET", NOTIFY_SECRET),
        ("PAYGATE_LOG__LEVEL", "warn"),
    ]
}

struct Shop {
    base: String,
    secret: String,
    mid: String,
}

impl Shop {
    async fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        let response = http()
            .post(format!("{}{path}", self.base))
            .basic_auth(&self.secret, Some(""))
            .json(body)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (
            status,
            serde_json::from_str(&response.text().await.unwrap()).unwrap_or(Value::Null),
        )
    }

    async fn payment(&self, key: &str) -> (Value, toss::Payment) {
        let response = http()
            .get(format!("{}/v1/payments/{key}", self.base))
            .basic_auth(&self.secret, Some(""))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 200);
        let text = response.text().await.unwrap();
        (serde_json::from_str(&text).unwrap(), decode("payment", &text))
    }

    /// Polls the payment until `done` holds, with a deadline.
    async fn until(&self, key: &str, what: &str, done: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let (payment, _) = self.payment(key).await;
            if done(&payment) {
                return payment;
            }
            assert!(Instant::now() < deadline, "the payment never became {what}: {payment}");
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// A deposit at the sandbox bank, as `paygate bank-sim deposit` makes it.
    async fn deposit(&self, account: &str, amount: i64) -> (u16, Value) {
        let response = http()
            .post(format!("{}/bank/deposits", self.base))
            .json(&json!({"accountNumber": account, "amount": amount, "currency": "KRW", "depositorName": "박토스"}))
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// The bank's deposit feed for this shop, as notifications' bodies.
    async fn bank_deposits(&self) -> Vec<Value> {
        let feed: Value = http()
            .get(format!(
                "{}/bank/deposits?merchantId={}&afterSeq=0",
                self.base, self.mid
            ))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        feed["deposits"].as_array().unwrap().clone()
    }

    /// Posts a notification body, signed as the bank signs it; the status and the body of the answer.
    async fn notify(&self, body: &[u8], secret: &str) -> (u16, String) {
        let now = i64::try_from(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_secs(),
        )
        .unwrap();
        let response = http()
            .post(format!("{}/bank-notifications/test", self.base))
            .header("content-type", "application/json")
            .header("Bank-Timestamp", now.to_string())
            .header(
                "Bank-Signature",
                paygate_connectors::bank_notify::sign(secret.as_bytes(), now, body),
            )
            .body(body.to_vec())
            .send()
            .await
            .unwrap();
        (response.status().as_u16(), response.text().await.unwrap())
    }
}

fn decode<T: serde::de::DeserializeOwned>(what: &str, body: &str) -> T {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{what} does not decode as Toss's type: {e}\n{body}"))
}

fn issue_body(order_id: &str, amount: i64) -> Value {
    json!({
        "amount": amount, "orderId": order_id, "orderName": "토스 티셔츠 외 2건", "customerName": "박토스",
        "bank": "20", "validHours": 24, "customerEmail": "buyer@example.com", "customerMobilePhone": "01012345678",
        "taxFreeAmount": 0, "useEscrow": false, "cashReceipt": {"type": "미발행"}
    })
}

/// Collects webhook bodies, answering 200.
#[derive(Clone, Default)]
struct Hooks(Arc<Mutex<Vec<Value>>>);

impl Hooks {
    async fn start() -> (Hooks, String) {
        let hooks = Hooks::default();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let collected = hooks.clone();
        let app = axum::Router::new().route(
            "/hook",
            axum::routing::post(move |body: String| {
                let collected = collected.clone();
                async move {
                    collected.0.lock().unwrap().push(serde_json::from_str(&body).unwrap());
                    "OK"
                }
            }),
        );
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (hooks, url)
    }

    /// Polls until `count` bodies of `event_type` arrived for `order_id`, with a deadline.
    async fn wait_for(&self, event_type: &str, order_id: &str, count: usize) -> Vec<Value> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let bodies: Vec<Value> = self
                .0
                .lock()
                .unwrap()
                .iter()
                .filter(|b| b["eventType"] == event_type && b["data"]["orderId"] == order_id)
                .cloned()
                .collect();
            if bodies.len() >= count {
                return bodies;
            }
            assert!(
                Instant::now() < deadline,
                "only {} of {count} {event_type} webhooks arrived for {order_id}",
                bodies.len()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_deposit_pays_its_account_once_however_often_it_is_notified() {
    let db = TestDb::new().await;
    let (gateway, demo) = Gateway::fresh(&db, &[], &env());
    let shop = Shop {
        base: gateway.url(""),
        secret: demo.secret_key.clone(),
        mid: demo.mid.clone(),
    };
    let (hooks, url) = Hooks::start().await;
    let (status, body) = shop
        .post(
            "/v1/webhooks",
            &json!({"url": url, "eventTypes": ["PAYMENT_STATUS_CHANGED", "DEPOSIT_CALLBACK"]}),
        )
        .await;
    assert_eq!(status, 200, "{body}");

    // Issued: WAITING_FOR_DEPOSIT with its account and secret, as Toss answers it.
    let (status, body) = shop
        .post("/v1/virtual-accounts", &issue_body("va-order-0001", 15_000))
        .await;
    assert_eq!(status, 200, "{body}");
    let issued: toss::Payment = decode("issue", &body.to_string());
    assert_eq!(issued.status, toss::PaymentStatus::WaitingForDeposit);
    assert_eq!(issued.method, Some(toss::Method::VirtualAccount));
    assert_eq!((issued.total_amount, issued.balance_amount), (15_000, 15_000));
    assert!(issued.approved_at.is_none() && issued.card.is_none());
    let account = issued.virtual_account.clone().unwrap();
    assert_eq!(
        (account.bank_code.as_str(), account.customer_name.as_str()),
        ("20", "박토스")
    );
    assert_eq!(account.account_type, toss::VirtualAccountType::Normal);
    assert_eq!(account.refund_status, toss::RefundStatus::None);
    assert!(!account.expired);
    let secret = issued.secret.clone().unwrap();
    assert!(secret.starts_with("ps_") && secret.len() <= 50, "{secret}");

    // The same request again (another orderId is needed; the same one is refused).
    let (status, body) = shop
        .post("/v1/virtual-accounts", &issue_body("va-order-0001", 15_000))
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("DUPLICATED_ORDER_ID")),
        "{body}"
    );

    // A deposit of the exact amount at the bank: notified, DONE at the deposit's time.
    let (status, made) = shop.deposit(&account.account_number, 15_000).await;
    assert_eq!(status, 200, "{made}");
    let done = shop.until(&issued.payment_key, "DONE", |p| p["status"] == "DONE").await;
    let (_, done_toss) = shop.payment(&issued.payment_key).await;
    assert!(done_toss.approved_at.is_some());
    assert_eq!(done_toss.balance_amount, 15_000);
    assert_eq!(done["virtualAccount"]["depositorName"], "박토스");
    let revision = done["revision"].as_i64().unwrap();

    // The bank's notification of that deposit, a hundred times at once, with the first's ID and others': each is
    // acknowledged, nothing changes again.
    let deposits = shop.bank_deposits().await;
    assert_eq!(deposits.len(), 1, "{deposits:?}");
    let mut sends = Vec::new();
    for copy in 0..100 {
        let mut notification = deposits[0].clone();
        notification["notificationId"] = json!(format!("ntf_copy_{copy}"));
        let body = serde_json::to_vec(&notification).unwrap();
        let shop = Shop {
            base: shop.base.clone(),
            secret: shop.secret.clone(),
            mid: shop.mid.clone(),
        };
        sends.push(tokio::spawn(async move { shop.notify(&body, NOTIFY_SECRET).await }));
    }
    for send in sends {
        let (status, answer) = send.await.unwrap();
        assert_eq!((status, answer.as_str()), (200, r#"{"result":"OK"}"#));
    }
    let (after, _) = shop.payment(&issued.payment_key).await;
    assert_eq!(
        after["revision"].as_i64(),
        Some(revision),
        "a repeated deposit changed the payment"
    );
    assert_eq!(after["status"], "DONE");

    // A forged notification is refused and changes nothing.
    let forged = serde_json::to_vec(&deposits[0]).unwrap();
    let (status, _) = shop.notify(&forged, "not-the-secret").await;
    assert_eq!(status, 401);

    // Webhooks: PAYMENT_STATUS_CHANGED for the issue and the deposit, and Toss's DEPOSIT_CALLBACK with the secret.
    // Deliveries run concurrently: ordered by the payment's revision, as a receiver orders them.
    let mut changes = hooks.wait_for("PAYMENT_STATUS_CHANGED", "va-order-0001", 2).await;
    changes.sort_by_key(|c| c["sequence"].as_i64());
    let statuses: Vec<&str> = changes.iter().map(|c| c["data"]["status"].as_str().unwrap()).collect();
    assert_eq!(statuses, ["WAITING_FOR_DEPOSIT", "DONE"]);
    for change in &changes {
        let event: toss::PaymentStatusChangedEvent = decode("PAYMENT_STATUS_CHANGED", &change.to_string());
        assert_eq!(event.data.secret.as_deref(), Some(secret.as_str()));
    }
    let mut callbacks = hooks.wait_for("DEPOSIT_CALLBACK", "va-order-0001", 2).await;
    callbacks.sort_by_key(|c| c["sequence"].as_i64());
    // Before the deposit there is no transaction yet: paygate's transactionKey is null then (toss-compat.md).
    assert_eq!(callbacks[0]["status"], "WAITING_FOR_DEPOSIT");
    assert_eq!(callbacks[0]["transactionKey"], Value::Null);
    let paid: toss::DepositCallback = decode("DEPOSIT_CALLBACK", &callbacks[1].to_string());
    assert_eq!(paid.status, toss::PaymentStatus::Done);
    assert_eq!(paid.secret, secret);
    assert_eq!(paid.order_id, "va-order-0001");
    assert_eq!(Some(paid.transaction_key), done_toss.last_transaction_key);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        hooks.wait_for("DEPOSIT_CALLBACK", "va-order-0001", 2).await.len(),
        2,
        "the repeated notifications sent no more webhooks"
    );

    // A deposit of another amount to another account pays nothing (never half-accepted): held for its depositor.
    let (status, body) = shop
        .post("/v1/virtual-accounts", &issue_body("va-order-0002", 20_000))
        .await;
    assert_eq!(status, 200, "{body}");
    let second: toss::Payment = decode("issue", &body.to_string());
    let number = second.virtual_account.unwrap().account_number;
    let (status, _) = shop.deposit(&number, 19_000).await;
    assert_eq!(status, 200);
    // The held deposit moves the payment's revision (1), and its return twice more.
    shop.until(&second.payment_key, "touched by the held deposit", |p| {
        p["revision"].as_i64() >= Some(1)
    })
    .await;
    let (after, _) = shop.payment(&second.payment_key).await;
    assert_eq!(after["status"], "WAITING_FOR_DEPOSIT");
    assert_eq!(after["balanceAmount"], 20_000);
    // The held deposit goes back to its depositor through the bank, once.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let journal: Value = http()
            .get(format!("{}/bank/journal", shop.base))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let returns: Vec<&Value> = journal["entries"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["kind"] == "REFUND" && e["accountNumber"] == number.as_str())
            .collect();
        assert!(returns.len() <= 1, "returned twice: {returns:?}");
        if returns.len() == 1 {
            assert_eq!(returns[0]["amount"], 19_000);
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the held deposit was never returned: {journal}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    // The right amount afterwards still pays it.
    let (status, _) = shop.deposit(&number, 20_000).await;
    assert_eq!(status, 200);
    shop.until(&second.payment_key, "DONE", |p| p["status"] == "DONE").await;

    // Refunds of the first (paid) payment go through the bank to the account the buyer names.
    let cancel = |amount: Option<i64>, holder: &str| {
        let mut body = json!({"cancelReason": "고객 변심",
            "refundReceiveAccount": {"bank": "88", "accountNumber": "12345678901", "holderName": holder}});
        if let Some(amount) = amount {
            body["cancelAmount"] = json!(amount);
        }
        body
    };
    let path = format!("/v1/payments/{}/cancel", issued.payment_key);
    let (status, answer) = shop.post(&path, &json!({"cancelReason": "고객 변심"})).await;
    assert_eq!(
        (status, answer["param"].as_str()),
        (400, Some("refundReceiveAccount")),
        "{answer}"
    );
    let (status, answer) = shop.post(&path, &cancel(Some(5_000), "박토스")).await;
    assert_eq!(status, 200, "{answer}");
    let partial: toss::Payment = decode("refund", &answer.to_string());
    assert_eq!(partial.status, toss::PaymentStatus::PartialCanceled);
    assert_eq!(partial.balance_amount, 10_000);
    assert_eq!(
        partial.virtual_account.unwrap().refund_status,
        toss::RefundStatus::Completed
    );
    assert_eq!(partial.cancels.unwrap()[0].cancel_status, toss::CancelStatus::Done);
    // An account whose holder does not match: refused, nothing refunded, the balance as it was.
    let (status, answer) = shop.post(&path, &cancel(Some(1_000), "잘못된예금주")).await;
    assert_eq!(
        (status, answer["code"].as_str()),
        (400, Some("INVALID_REFUND_ACCOUNT_INFO")),
        "{answer}"
    );
    let (after, _) = shop.payment(&issued.payment_key).await;
    assert_eq!(after["balanceAmount"], 10_000);
    assert_eq!(after["virtualAccount"]["refundStatus"], "PARTIAL_FAILED");
    let (status, answer) = shop.post(&path, &cancel(None, "박토스")).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        (answer["status"].as_str(), answer["balanceAmount"].as_i64()),
        (Some("CANCELED"), Some(0))
    );
    let journal: Value = http()
        .get(format!("{}/bank/journal", shop.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let refunds: Vec<i64> = journal["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "REFUND" && e["accountNumber"] == "12345678901")
        .map(|e| e["amount"].as_i64().unwrap())
        .collect();
    assert_eq!(refunds, [5_000, 10_000], "each refund paid once, for its amount");

    let (ok, stdout, stderr) = cli(&["ledger", "check"], &gateway.data_dir, &db);
    assert!(ok, "{stdout}{stderr}");
    assert!(
        stdout.contains("0 mismatched payments, 0 mismatched deposits"),
        "{stdout}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unpaid_account_expires_or_is_cancelled_and_then_pays_nothing() {
    let db = TestDb::new().await;
    let (gateway, demo) = Gateway::fresh(&db, &[], &env());
    let shop = Shop {
        base: gateway.url(""),
        secret: demo.secret_key.clone(),
        mid: demo.mid.clone(),
    };

    // Bad requests change nothing, each with Toss's code.
    let cases = [
        (json!({"bank": "카카오"}), "INVALID_BANK"),
        (json!({"bank": "99"}), "INVALID_BANK"),
        (json!({"validHours": 2161}), "EXCEED_MAX_VALID_HOURS"),
        (json!({"validHours": 0}), "EXCEED_MAX_VALID_HOURS"),
        (
            json!({"validHours": 1, "dueDate": "2030-01-01T00:00:00"}),
            "INVALID_VALID_HOURS_WITH_DUE_DATE_AND_SINGLE",
        ),
        (json!({"validHours": null, "dueDate": "tomorrow"}), "INVALID_DATE"),
        (
            json!({"validHours": null, "dueDate": "2020-01-01T00:00:00"}),
            "EXCEED_MAX_DUE_DATE",
        ),
        (json!({"customerName": ""}), "INVALID_REQUEST"),
        (json!({"amount": 0}), "INVALID_REQUEST"),
    ];
    for (change, code) in cases {
        let mut body = issue_body("va-refused-01", 5_000);
        for (key, value) in change.as_object().unwrap() {
            body[key] = value.clone();
        }
        let (status, answer) = shop.post("/v1/virtual-accounts", &body).await;
        assert_eq!(
            (status, answer["code"].as_str()),
            (400, Some(code)),
            "{change}: {answer}"
        );
    }

    // Due in two seconds (Korea time, as Toss takes `dueDate`).
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let kst_in_two_seconds = i64::try_from(now).unwrap() + 9 * 3_600 + 2;
    let due_date = chrono::DateTime::from_timestamp(kst_in_two_seconds, 0)
        .unwrap()
        .naive_utc()
        .format("%Y-%m-%dT%H:%M:%S")
        .to_string();
    let mut body = issue_body("va-expiring-01", 5_000);
    body["validHours"] = Value::Null;
    body["dueDate"] = json!(due_date);
    let (status, body) = shop.post("/v1/virtual-accounts", &body).await;
    assert_eq!(status, 200, "{body}");
    let expiring: toss::Payment = decode("issue", &body.to_string());
    let expired = shop
        .until(&expiring.payment_key, "EXPIRED", |p| p["status"] == "EXPIRED")
        .await;
    assert_eq!(expired["virtualAccount"]["expired"], true);
    // The bank closed the account: a late deposit is refused there.
    let number = expiring.virtual_account.unwrap().account_number;
    let (_, refused) = shop.deposit(&number, 5_000).await;
    assert_eq!(refused["code"], "ACCOUNT_CLOSED", "{refused}");

    // Cancelled before its deposit: whole only, then CANCELED and closed.
    let (status, body) = shop
        .post("/v1/virtual-accounts", &issue_body("va-cancel-01", 7_000))
        .await;
    assert_eq!(status, 200, "{body}");
    let key = body["paymentKey"].as_str().unwrap().to_owned();
    let number = body["virtualAccount"]["accountNumber"].as_str().unwrap().to_owned();
    let (status, answer) = shop
        .post(
            &format!("/v1/payments/{key}/cancel"),
            &json!({"cancelReason": "고객 변심", "cancelAmount": 1_000}),
        )
        .await;
    assert_eq!(
        (status, answer["code"].as_str()),
        (403, Some("NOT_ALLOWED_PARTIAL_REFUND_WAITING_DEPOSIT")),
        "{answer}"
    );
    let (status, answer) = shop
        .post(
            &format!("/v1/payments/{key}/cancel"),
            &json!({"cancelReason": "고객 변심"}),
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    let cancelled: toss::Payment = decode("cancel", &answer.to_string());
    assert_eq!(cancelled.status, toss::PaymentStatus::Canceled);
    assert_eq!(cancelled.balance_amount, 0);
    assert!(cancelled.virtual_account.unwrap().expired);
    let (_, refused) = shop.deposit(&number, 7_000).await;
    assert_eq!(refused["code"], "ACCOUNT_CLOSED", "{refused}");
    let (status, again) = shop
        .post(
            &format!("/v1/payments/{key}/cancel"),
            &json!({"cancelReason": "고객 변심"}),
        )
        .await;
    assert_eq!(
        (status, again["code"].as_str()),
        (400, Some("ALREADY_CANCELED_PAYMENT")),
        "{again}"
    );

    let (ok, stdout, stderr) = cli(&["ledger", "check"], &gateway.data_dir, &db);
    assert!(ok, "{stdout}{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deposit_whose_notification_is_lost_is_found_in_the_bank_feed() {
    let db = TestDb::new().await;
    let mut env = env();
    env.extend([
        ("PAYGATE_BANKS__NOTIFICATION_LOST_PER_MILLE", "1000"),
        ("PAYGATE_PAYMENTS__BANK_FEED_INTERVAL_MS", "200"),
    ]);
    let (_gateway, demo) = Gateway::fresh(&db, &[], &env);
    let shop = Shop {
        base: _gateway.url(""),
        secret: demo.secret_key.clone(),
        mid: demo.mid.clone(),
    };
    let (status, body) = shop
        .post("/v1/virtual-accounts", &issue_body("va-lost-0001", 12_000))
        .await;
    assert_eq!(status, 200, "{body}");
    let key = body["paymentKey"].as_str().unwrap().to_owned();
    let number = body["virtualAccount"]["accountNumber"].as_str().unwrap().to_owned();
    let (status, made) = shop.deposit(&number, 12_000).await;
    assert_eq!(status, 200, "{made}");
    let done = shop.until(&key, "DONE", |p| p["status"] == "DONE").await;
    assert_eq!(done["balanceAmount"], 12_000);
}
