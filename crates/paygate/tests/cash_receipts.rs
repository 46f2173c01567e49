//! Cash receipts (현금영수증), black-box: `POST /v1/cash-receipts`, partial and whole cancels, the list by request
//! date, the report to the in-process sandbox tax authority with its retries and refusals, the receipt page, the
//! `CASH_RECEIPT_STATUS_CHANGED` webhook, and a receipt issued with a virtual account's deposit and cancelled with
//! its refund. Answers decode into `toss::*`, types written from Toss's reference. Runs on the backend
//! `PAYGATE_TEST_DATABASE_URL` selects.

#![allow(clippy::unwrap_used)]

mod common;
mod toss;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{cli, http, Gateway, TestDb};
use serde_json::{json, Value};

fn env() -> Vec<(&'static str, &'static str)> {
    vec![
        ("PAYGATE_PAYMENTS__WORKER_INTERVAL_MS", "50"),
        ("PAYGATE_OUTBOX__ALLOW_LOOPBACK", "true"),
        ("PAYGATE_OUTBOX__WORKER_INTERVAL_MS", "20"),
        ("PAYGATE_RATE_LIMIT__PER_KEY_PER_SECOND", "0"),
        ("PAYGATE_LOG__LEVEL", "warn"),
    ]
}

struct Shop {
    base: String,
    secret: String,
}

impl Shop {
    async fn send(&self, request: reqwest::RequestBuilder) -> (u16, Value) {
        let response = request.basic_auth(&self.secret, Some("")).send().await.unwrap();
        let status = response.status().as_u16();
        (
            status,
            serde_json::from_str(&response.text().await.unwrap()).unwrap_or(Value::Null),
        )
    }

    async fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        self.send(http().post(format!("{}{path}", self.base)).json(body)).await
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        self.send(http().get(format!("{}{path}", self.base))).await
    }

    /// Polls a receipt until its `issueStatus` is `status`, with a deadline.
    async fn until(&self, key: &str, status: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let (code, receipt) = self.get(&format!("/v1/cash-receipts/{key}")).await;
            assert_eq!(code, 200, "{receipt}");
            if receipt["issueStatus"] == status {
                return receipt;
            }
            assert!(
                Instant::now() < deadline,
                "the receipt never became {status}: {receipt}"
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
}

fn decode<T: serde::de::DeserializeOwned>(what: &str, body: &Value) -> T {
    serde_json::from_value(body.clone())
        .unwrap_or_else(|e| panic!("{what} does not decode as Toss's type: {e}\n{body}"))
}

fn issue_body(order_id: &str, amount: i64, number: &str, kind: &str) -> Value {
    json!({"amount": amount, "orderId": order_id, "orderName": "현금 결제 주문", "customerIdentityNumber": number, "type": kind})
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

    async fn wait_for(&self, receipt_key: &str, status: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let found = self
                .0
                .lock()
                .unwrap()
                .iter()
                .find(|b| {
                    b["eventType"] == "CASH_RECEIPT_STATUS_CHANGED"
                        && b["data"]["receiptKey"] == receipt_key
                        && b["data"]["issueStatus"] == status
                })
                .cloned();
            if let Some(body) = found {
                return body;
            }
            assert!(Instant::now() < deadline, "no {status} webhook for {receipt_key}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cash_receipts_are_issued_cancelled_listed_and_reported() {
    let db = TestDb::new().await;
    let (gateway, demo) = Gateway::fresh(&db, &[], &env());
    let shop = Shop {
        base: gateway.url(""),
        secret: demo.secret_key.clone(),
    };
    let (hooks, url) = Hooks::start().await;
    let (status, body) = shop
        .post(
            "/v1/webhooks",
            &json!({"url": url, "eventTypes": ["CASH_RECEIPT_STATUS_CHANGED"]}),
        )
        .await;
    assert_eq!(status, 200, "{body}");

    // Refused before anything is recorded: the wrong kind of number, a bad check digit, a bad type.
    let (status, body) = shop
        .post(
            "/v1/cash-receipts",
            &issue_body("cash-bad-0001", 10_000, "120-81-47521", "소득공제"),
        )
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("INVALID_REGISTRATION_NUMBER_TYPE")),
        "{body}"
    );
    let (status, body) = shop
        .post(
            "/v1/cash-receipts",
            &issue_body("cash-bad-0002", 10_000, "1208147522", "지출증빙"),
        )
        .await;
    assert_eq!(
        (status, body["param"].as_str()),
        (400, Some("customerIdentityNumber")),
        "{body}"
    );
    let (status, _) = shop
        .post(
            "/v1/cash-receipts",
            &issue_body("cash-bad-0003", 10_000, "01012345678", "영수증"),
        )
        .await;
    assert_eq!(status, 400);

    // Issued: IN_PROGRESS, then COMPLETED with the authority's number, and its webhook.
    let (status, issued) = shop
        .post(
            "/v1/cash-receipts",
            &issue_body("cash-order-0001", 10_000, "010-1234-5678", "소득공제"),
        )
        .await;
    assert_eq!(status, 200, "{issued}");
    let decoded: toss::CashReceiptObject = decode("issue", &issued);
    assert_eq!(decoded.issue_status, toss::CashReceiptIssueStatus::InProgress);
    assert_eq!(decoded.customer_identity_number, "*******5678");
    assert_eq!(decoded.business_number, "1208147521");
    let key = issued["receiptKey"].as_str().unwrap().to_owned();
    let done = shop.until(&key, "COMPLETED").await;
    assert_eq!(done["issueNumber"].as_str().map(str::len), Some(9), "{done}");
    let hook = hooks.wait_for(&key, "COMPLETED").await;
    let _: toss::CashReceiptObject = decode("webhook data", &hook["data"]);
    // One issue per order.
    let (status, body) = shop
        .post(
            "/v1/cash-receipts",
            &issue_body("cash-order-0001", 5_000, "01012345678", "소득공제"),
        )
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("DUPLICATED_CASH_RECEIPT")),
        "{body}"
    );

    // A partial cancel, then the rest; nothing is left after.
    let (status, partial) = shop
        .post(&format!("/v1/cash-receipts/{key}/cancel"), &json!({"amount": 4000}))
        .await;
    assert_eq!(status, 200, "{partial}");
    let cancel: toss::CashReceiptObject = decode("cancel", &partial);
    assert_eq!(
        (cancel.transaction_type, cancel.amount),
        (toss::CashReceiptTransactionType::Cancel, 4_000)
    );
    assert_eq!(partial["originalReceiptKey"], key.as_str());
    let (status, over) = shop
        .post(&format!("/v1/cash-receipts/{key}/cancel"), &json!({"amount": 6001}))
        .await;
    assert_eq!(
        (status, over["code"].as_str()),
        (403, Some("NOT_CANCELABLE_AMOUNT")),
        "{over}"
    );
    let response = http()
        .post(format!("{}/v1/cash-receipts/{key}/cancel", shop.base))
        .basic_auth(&shop.secret, Some(""))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let rest: Value = response.json().await.unwrap();
    assert_eq!(rest["amount"], 6000);
    for cancel in [&partial, &rest] {
        shop.until(cancel["receiptKey"].as_str().unwrap(), "COMPLETED").await;
    }
    let (_, issue_now) = shop.get(&format!("/v1/cash-receipts/{key}")).await;
    assert_eq!(issue_now["cancelableAmount"], 0, "{issue_now}");
    let (status, none_left) = shop.post(&format!("/v1/cash-receipts/{key}/cancel"), &json!({})).await;
    assert_eq!(
        (status, none_left["code"].as_str()),
        (403, Some("NOT_CANCELABLE_AMOUNT")),
        "{none_left}"
    );

    // The authority fails twice for this number: the report is sent again until registered.
    let (_, flaky) = shop
        .post(
            "/v1/cash-receipts",
            &issue_body("cash-order-0002", 3_000, "01012349999", "소득공제"),
        )
        .await;
    let flaky_key = flaky["receiptKey"].as_str().unwrap();
    let registered = shop.until(flaky_key, "COMPLETED").await;
    assert!(registered["issueNumber"].as_str().unwrap().len() == 9);
    // The authority refuses this number: FAILED with its reason, and it cannot be cancelled.
    let (_, refused) = shop
        .post(
            "/v1/cash-receipts",
            &issue_body("cash-order-0003", 3_000, "01012340000", "소득공제"),
        )
        .await;
    let refused_key = refused["receiptKey"].as_str().unwrap();
    let failed = shop.until(refused_key, "FAILED").await;
    let decoded: toss::CashReceiptObject = decode("failed", &failed);
    assert_eq!(decoded.failure.unwrap().code, "NTS_ERROR");
    hooks.wait_for(refused_key, "FAILED").await;
    let (status, _) = shop
        .post(&format!("/v1/cash-receipts/{refused_key}/cancel"), &json!({}))
        .await;
    assert_eq!(status, 403);

    // The day's list, in pages.
    let today = {
        let (_, first) = shop.get(&format!("/v1/cash-receipts/{key}")).await;
        first["requestedAt"].as_str().unwrap()[..10].to_owned()
    };
    let (status, page) = shop
        .get(&format!("/v1/cash-receipts?requestDate={today}&limit=2"))
        .await;
    assert_eq!(status, 200, "{page}");
    let list: toss::CashReceiptList = decode("list", &page);
    assert!(list.has_next);
    assert_eq!(list.data.len(), 2);
    let mut seen = list.data.iter().map(|r| r.receipt_key.clone()).collect::<Vec<_>>();
    let mut cursor = list.last_cursor;
    loop {
        let (_, page) = shop
            .get(&format!(
                "/v1/cash-receipts?requestDate={today}&limit=2&cursor={cursor}"
            ))
            .await;
        let list: toss::CashReceiptList = decode("list", &page);
        seen.extend(list.data.iter().map(|r| r.receipt_key.clone()));
        cursor = list.last_cursor;
        if !list.has_next {
            break;
        }
    }
    assert_eq!(seen.len(), 5, "three issues and two cancels: {seen:?}");
    // paygate's filters: a period, the authority's answer, an amount range.
    let (_, failed_only) = shop
        .get(&format!(
            "/v1/cash-receipts?startDate={today}&endDate={today}&issueStatus=FAILED"
        ))
        .await;
    let failed_only: toss::CashReceiptList = decode("filtered", &failed_only);
    assert_eq!(
        failed_only
            .data
            .iter()
            .map(|r| r.receipt_key.as_str())
            .collect::<Vec<_>>(),
        vec![refused_key]
    );
    let (_, small) = shop
        .get(&format!(
            "/v1/cash-receipts?requestDate={today}&minAmount=3000&maxAmount=4000"
        ))
        .await;
    let small: toss::CashReceiptList = decode("filtered", &small);
    assert_eq!(small.data.len(), 3, "the two 3,000 issues and the 4,000 cancel");
    let (status, bad) = shop.get("/v1/cash-receipts?requestDate=2026-13-01").await;
    assert_eq!((status, bad["code"].as_str()), (400, Some("INVALID_DATE")));

    // The receipt's page.
    let page = http().get(done["receiptUrl"].as_str().unwrap()).send().await.unwrap();
    assert_eq!(page.status().as_u16(), 200);
    let html = page.text().await.unwrap();
    assert!(
        html.contains("현금영수증") && html.contains("120-81-47521") && html.contains("*******5678"),
        "{html}"
    );
    assert!(html.contains(done["issueNumber"].as_str().unwrap()), "{html}");
    let forged = done["receiptUrl"].as_str().unwrap().replace(&key, refused_key);
    assert_eq!(http().get(forged).send().await.unwrap().status().as_u16(), 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_virtual_accounts_receipt_is_issued_with_its_deposit_and_cancelled_with_its_refund() {
    let db = TestDb::new().await;
    let (gateway, demo) = Gateway::fresh(&db, &[], &env());
    let shop = Shop {
        base: gateway.url(""),
        secret: demo.secret_key.clone(),
    };
    let (status, issued) = shop
        .post(
            "/v1/virtual-accounts",
            &json!({"amount": 20000, "orderId": "va-receipt-0001", "orderName": "책 2권", "customerName": "박토스",
                    "bank": "20", "cashReceipt": {"type": "소득공제", "registrationNumber": "01055556666"}}),
        )
        .await;
    assert_eq!(status, 200, "{issued}");
    assert!(
        issued["cashReceipt"].is_null(),
        "no receipt before the deposit: {issued}"
    );
    let key = issued["paymentKey"].as_str().unwrap().to_owned();
    let account = issued["virtualAccount"]["accountNumber"].as_str().unwrap();
    let deposit = http()
        .post(format!("{}/bank/deposits", shop.base))
        .json(&json!({"accountNumber": account, "amount": 20000, "currency": "KRW", "depositorName": "박토스"}))
        .send()
        .await
        .unwrap();
    assert_eq!(deposit.status().as_u16(), 200);
    let deadline = Instant::now() + Duration::from_secs(20);
    let paid = loop {
        let (_, payment) = shop.get(&format!("/v1/payments/{key}")).await;
        if payment["status"] == "DONE" && payment["cashReceipts"][0]["issueStatus"] == "COMPLETED" {
            break payment;
        }
        assert!(Instant::now() < deadline, "never paid with its receipt: {payment}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    };
    let decoded: toss::Payment = decode("paid", &paid);
    let receipt = decoded.cash_receipt.unwrap();
    assert_eq!(
        (receipt.amount, receipt.receipt_type),
        (20_000, toss::CashReceiptType::IncomeDeduction)
    );
    assert_eq!(receipt.issue_number.len(), 9);

    // A partial refund cancels that much of the receipt.
    let (status, cancelled) = shop
        .post(
            &format!("/v1/payments/{key}/cancel"),
            &json!({"cancelReason": "한 권 반품", "cancelAmount": 8000,
                    "refundReceiveAccount": {"bank": "88", "accountNumber": "110123456789", "holderName": "박토스"}}),
        )
        .await;
    assert_eq!(status, 200, "{cancelled}");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (_, payment) = shop.get(&format!("/v1/payments/{key}")).await;
        let receipts = payment["cashReceipts"].as_array().cloned().unwrap_or_default();
        let cancel = receipts.iter().find(|r| r["transactionType"] == "CANCEL");
        if cancel.is_some_and(|c| c["issueStatus"] == "COMPLETED") {
            assert_eq!(cancel.unwrap()["amount"], 8000);
            let _: toss::Payment = decode("refunded", &payment);
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the refund's receipt cancel never completed: {payment}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let (ok, stdout, stderr) = cli(&["ledger", "check"], &gateway.data_dir, &db);
    assert!(ok, "ledger check failed:\n{stdout}\n{stderr}");
}
