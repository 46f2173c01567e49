//! Toss Payments v1 compatibility, black-box: a merchant's code written against Toss's reference must work against
//! paygate by changing only the base URL and the keys. Requests are the bodies Toss documents (with every optional
//! field Toss accepts), and every answer is decoded into `toss::*`, types written from Toss's public reference
//! (`docs/toss-reference.md`), not from paygate's code: a missing key, a wrong type or an enum spelling Toss does
//! not use fails the decode. Runs on the backend `PAYGATE_TEST_DATABASE_URL` selects.

#![allow(clippy::unwrap_used)]

mod common;
mod toss;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{http, Gateway, TestDb};
use serde::de::DeserializeOwned;
use serde_json::{json, Value};

const FAST: [(&str, &str); 3] = [
    ("PAYGATE_PAYMENTS__WORKER_INTERVAL_MS", "50"),
    ("PAYGATE_PAYMENTS__INQUIRY_BACKOFF_BASE_MS", "100"),
    ("PAYGATE_PAYMENTS__INQUIRY_BACKOFF_MAX_MS", "500"),
];

struct Merchant {
    base: String,
    secret: String,
    client_key: String,
}

impl Merchant {
    async fn send(&self, request: reqwest::RequestBuilder) -> (u16, String) {
        let response = request.basic_auth(&self.secret, Some("")).send().await.unwrap();
        (response.status().as_u16(), response.text().await.unwrap())
    }

    async fn post(&self, path: &str, body: &Value) -> (u16, String) {
        self.send(http().post(format!("{}{path}", self.base)).json(body)).await
    }

    async fn get(&self, path: &str) -> (u16, String) {
        self.send(http().get(format!("{}{path}", self.base))).await
    }
}

/// Decodes an answer into a Toss type, failing the test with the decoder's message and the body.
fn decode<T: DeserializeOwned>(what: &str, body: &str) -> T {
    toss::decode(body).unwrap_or_else(|e| panic!("{what}: does not decode as Toss's type: {e}\n{body}"))
}

/// Toss's documented key-in body, with every optional field Toss accepts.
fn key_in(order_id: &str, amount: i64, number: &str) -> Value {
    json!({
        "amount": amount, "orderId": order_id, "orderName": "토스 티셔츠 외 2건",
        "cardNumber": number, "cardExpirationYear": "29", "cardExpirationMonth": "12",
        "customerIdentityNumber": "900101", "cardPassword": "12", "cardInstallmentPlan": 3,
        "useFreeInstallmentPlan": true, "taxFreeAmount": 1_000, "taxExemptionAmount": 0,
        "customerName": "박토스", "customerEmail": "", "customerMobilePhone": "010-1234-5678",
        "metadata": {"campaign": "봄 세일", "channel": "app"},
        "vbv": {"cavv": "AAABBBCCC", "xid": "XID0001", "eci": "05"}
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn toss_clients_decode_every_answer() {
    let db = TestDb::new().await;
    let (gateway, demo) = Gateway::fresh(&db, &[], &FAST);
    let m = Merchant {
        base: gateway.url(""),
        secret: demo.secret_key.clone(),
        client_key: demo.client_key.clone(),
    };

    // Key-in with Toss's body: DONE, every field of the Payment object.
    let (status, body) = m
        .post(
            "/v1/payments/key-in",
            &key_in("toss-order-0001", 50_000, "4330000000000003"),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let paid: toss::Payment = decode("key-in", &body);
    assert_eq!(paid.status, toss::PaymentStatus::Done);
    assert_eq!(paid.method, Some(toss::Method::Card));
    assert_eq!(paid.version, "2022-11-16");
    assert_eq!(paid.payment_type, toss::PaymentType::Normal);
    assert_eq!((paid.total_amount, paid.balance_amount), (50_000, 50_000));
    assert_eq!(
        (paid.tax_free_amount, paid.vat, paid.supplied_amount),
        (1_000, 4_455, 44_545)
    );
    assert!(paid.cancels.is_none(), "no cancels yet: null, as Toss writes it");
    assert!(paid.last_transaction_key.is_some());
    let card = paid.card.clone().expect("an approved card payment has its card");
    assert_eq!((card.amount, card.installment_plan_months), (50_000, 3));
    assert!(
        card.is_interest_free,
        "useFreeInstallmentPlan: the merchant pays the interest"
    );
    assert_eq!(card.interest_payer, Some(toss::InterestPayer::Merchant));
    assert_eq!(card.number, "433000******0003");
    assert_eq!(card.approve_no.len(), 8);
    let metadata = paid.metadata.clone().expect("metadata is returned as sent");
    assert_eq!(metadata.get("campaign").map(String::as_str), Some("봄 세일"));
    let key = paid.payment_key.clone();

    // Both lookups answer the same Payment.
    let (status, body) = m.get(&format!("/v1/payments/{key}")).await;
    assert_eq!(status, 200, "{body}");
    let by_key: toss::Payment = decode("lookup by paymentKey", &body);
    let (status, body) = m.get("/v1/payments/orders/toss-order-0001").await;
    assert_eq!(status, 200, "{body}");
    let by_order: toss::Payment = decode("lookup by orderId", &body);
    assert_eq!(by_key, by_order);
    assert_eq!(by_key.payment_key, key);

    // A partial cancel with Toss's optional fields, then the rest.
    let partial = json!({"cancelReason": "사이즈 교환", "cancelAmount": 20_000, "taxFreeAmount": 1_000,
                         "currency": "KRW", "refundReceiveAccount": null});
    let (status, body) = m.post(&format!("/v1/payments/{key}/cancel"), &partial).await;
    assert_eq!(status, 200, "{body}");
    let part: toss::Payment = decode("partial cancel", &body);
    assert_eq!(part.status, toss::PaymentStatus::PartialCanceled);
    assert_eq!(part.balance_amount, 30_000);
    // As Toss does, the amounts' parts describe what is left: 19,000 taxable cancelled carried 1,727 of VAT.
    assert_eq!(
        (part.tax_free_amount, part.vat, part.supplied_amount),
        (0, 2_728, 27_272)
    );
    let cancels = part.cancels.clone().unwrap();
    assert_eq!(cancels.len(), 1);
    assert_eq!((cancels[0].cancel_amount, cancels[0].tax_free_amount), (20_000, 1_000));
    assert_eq!(cancels[0].refundable_amount, 30_000);
    assert_eq!(cancels[0].cancel_status, toss::CancelStatus::Done);
    assert_eq!(
        part.last_transaction_key.as_deref(),
        Some(cancels[0].transaction_key.as_str())
    );
    let (status, body) = m
        .post(
            &format!("/v1/payments/{key}/cancel"),
            &json!({"cancelReason": "전액 취소"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let canceled: toss::Payment = decode("full cancel", &body);
    assert_eq!(canceled.status, toss::PaymentStatus::Canceled);
    assert_eq!(
        (canceled.balance_amount, canceled.vat, canceled.supplied_amount),
        (0, 0, 0)
    );
    assert_eq!(canceled.card.unwrap().acquire_status, toss::AcquireStatus::Canceled);
    assert_eq!(canceled.cancels.unwrap().len(), 2);

    // A declined key-in is recorded ABORTED; Toss's error object, and the payment decodes.
    let (status, body) = m
        .post(
            "/v1/payments/key-in",
            &key_in("toss-order-0002", 10_000, "4330000000000011"),
        )
        .await;
    assert_eq!(status, 403, "{body}");
    let error: toss::TossError = decode("decline", &body);
    assert_eq!(error.code, "REJECT_CARD_PAYMENT");
    let (status, body) = m.get("/v1/payments/orders/toss-order-0002").await;
    assert_eq!(status, 200, "{body}");
    let aborted: toss::Payment = decode("aborted payment", &body);
    assert_eq!(aborted.status, toss::PaymentStatus::Aborted);
    assert!(aborted.card.is_none() && aborted.approved_at.is_none());
    assert_eq!(aborted.failure.unwrap().code, "REJECT_CARD_PAYMENT");

    // Bad input: Toss's INVALID_REQUEST (paygate's finer reason beside it), and nothing is recorded.
    let mut bad = key_in("toss-order-0009", 10_000, "4330000000000003");
    bad["amount"] = json!("10000");
    let (status, body) = m.post("/v1/payments/key-in", &bad).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(decode::<toss::TossError>("bad input", &body).code, "INVALID_REQUEST");
    assert_eq!(m.get("/v1/payments/orders/toss-order-0009").await.0, 404);

    // Unknown payments: Toss's code and error object.
    for path in [
        "/v1/payments/pay_01M8V52D3Y11P9CTQCV99T4YTY",
        "/v1/payments/orders/no-such-order",
    ] {
        let (status, body) = m.get(path).await;
        assert_eq!(status, 404, "{path}: {body}");
        assert_eq!(decode::<toss::TossError>(path, &body).code, "NOT_FOUND_PAYMENT");
    }

    // The two-step flow: create, the buyer authenticates, confirm; a second confirm is ALREADY_PROCESSED_PAYMENT.
    let created = json!({"method": "카드", "amount": 15_000, "orderId": "toss-order-0003", "orderName": "머그컵",
                         "successUrl": "https://shop.example/success", "failUrl": "https://shop.example/fail"});
    let (status, body) = m.post("/v1/payments", &created).await;
    assert_eq!(status, 200, "{body}");
    let ready: toss::Payment = decode("created", &body);
    assert_eq!(ready.status, toss::PaymentStatus::Ready);
    assert!(ready.checkout.is_some());
    let ready_key = ready.payment_key;
    let auth = json!({"cardNumber": "5400000000000005", "cardExpirationYear": "29", "cardExpirationMonth": "12"});
    let response = http()
        .post(format!("{}/v1/checkout/{ready_key}/authenticate", m.base))
        .basic_auth(&m.client_key, Some(""))
        .json(&auth)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let confirm = json!({"paymentKey": ready_key, "orderId": "toss-order-0003", "amount": 15_000});
    let (status, body) = m.post("/v1/payments/confirm", &confirm).await;
    assert_eq!(status, 200, "{body}");
    let confirmed: toss::Payment = decode("confirm", &body);
    assert_eq!(confirmed.status, toss::PaymentStatus::Done);
    assert_eq!(confirmed.card.unwrap().acquirer_code, Some(toss::CardCompanyCode::Hana));
    let (status, body) = m.post("/v1/payments/confirm", &confirm).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(
        decode::<toss::TossError>("re-confirm", &body).code,
        "ALREADY_PROCESSED_PAYMENT"
    );

    // Transactions, queried with Toss's date form (KST, no offset): every approval and cancel.
    let deadline = Instant::now() + Duration::from_secs(10);
    let listed: Vec<toss::Transaction> = loop {
        let (status, body) = m
            .get("/v1/transactions?startDate=2000-01-01T00:00:00&endDate=2100-01-01T00:00:00")
            .await;
        assert_eq!(status, 200, "{body}");
        let listed: Vec<toss::Transaction> = decode("transactions", &body);
        if listed.len() >= 4 || Instant::now() > deadline {
            break listed;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let statuses: Vec<toss::PaymentStatus> = listed.iter().map(|t| t.status).collect();
    assert_eq!(
        statuses,
        vec![
            toss::PaymentStatus::Done,
            toss::PaymentStatus::PartialCanceled,
            toss::PaymentStatus::Canceled,
            toss::PaymentStatus::Done
        ]
    );
    assert!(listed.iter().all(|t| t.method == toss::Method::Card));
    assert_eq!(listed[0].order_id, "toss-order-0001");
}

/// Collects the bodies POSTed to it, answering 200.
#[derive(Clone, Default)]
struct Hooks(Arc<Mutex<Vec<String>>>);

impl Hooks {
    async fn start() -> (Hooks, String) {
        let hooks = Hooks::default();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/toss-webhook", listener.local_addr().unwrap());
        let collected = hooks.clone();
        let app = axum::Router::new().route(
            "/toss-webhook",
            axum::routing::post(move |body: String| {
                let collected = collected.clone();
                async move {
                    collected.0.lock().unwrap().push(body);
                    "OK"
                }
            }),
        );
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (hooks, url)
    }

    /// Polls until `count` bodies arrived, with a deadline.
    async fn wait_for(&self, count: usize) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let bodies = self.0.lock().unwrap().clone();
            if bodies.len() >= count {
                return bodies;
            }
            assert!(
                Instant::now() < deadline,
                "only {} of {count} webhooks arrived",
                bodies.len()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn toss_webhook_handlers_decode_every_event() {
    let db = TestDb::new().await;
    let mut env = FAST.to_vec();
    env.extend([
        ("PAYGATE_OUTBOX__ALLOW_LOOPBACK", "true"),
        ("PAYGATE_OUTBOX__WORKER_INTERVAL_MS", "20"),
    ]);
    let (gateway, demo) = Gateway::fresh(&db, &[], &env);
    let m = Merchant {
        base: gateway.url(""),
        secret: demo.secret_key.clone(),
        client_key: demo.client_key.clone(),
    };
    let (hooks, url) = Hooks::start().await;
    let (status, body) = m
        .post(
            "/v1/webhooks",
            &json!({"url": url, "eventTypes": ["PAYMENT_STATUS_CHANGED"]}),
        )
        .await;
    assert_eq!(status, 200, "{body}");

    // An approval, a partial cancel and the rest: three status changes, each a Toss PAYMENT_STATUS_CHANGED body.
    let (status, body) = m
        .post(
            "/v1/payments/key-in",
            &key_in("toss-hook-0001", 30_000, "9400000000000007"),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let key = decode::<toss::Payment>("key-in", &body).payment_key;
    for cancel in [
        json!({"cancelReason": "일부", "cancelAmount": 10_000}),
        json!({"cancelReason": "나머지"}),
    ] {
        let (status, body) = m.post(&format!("/v1/payments/{key}/cancel"), &cancel).await;
        assert_eq!(status, 200, "{body}");
    }
    let events: Vec<toss::PaymentStatusChangedEvent> = hooks
        .wait_for(3)
        .await
        .iter()
        .map(|body| decode("PAYMENT_STATUS_CHANGED webhook", body))
        .collect();
    let mut statuses: Vec<toss::PaymentStatus> = events.iter().map(|e| e.data.status).collect();
    statuses.sort_by_key(|s| format!("{s:?}"));
    assert_eq!(
        statuses,
        vec![
            toss::PaymentStatus::Canceled,
            toss::PaymentStatus::Done,
            toss::PaymentStatus::PartialCanceled
        ]
    );
    assert!(events.iter().all(|e| e.data.payment_key == key));
    let acquirer = events[0].data.card.as_ref().and_then(|c| c.acquirer_code);
    assert_eq!(acquirer, Some(toss::CardCompanyCode::Bc), "acquirer C is BC카드 (31)");
}

/// Toss's body for issuing a billing key from card data.
fn billing_card(customer_key: &str, number: &str) -> Value {
    json!({
        "customerKey": customer_key, "cardNumber": number, "cardExpirationYear": "29",
        "cardExpirationMonth": "12", "customerIdentityNumber": "900101", "cardPassword": "12",
        "customerName": "박토스", "customerEmail": "customer@example.com"
    })
}

/// Toss's body for charging a billing key.
fn billing_charge(customer_key: &str, order_id: &str, amount: i64) -> Value {
    json!({
        "customerKey": customer_key, "amount": amount, "orderId": order_id, "orderName": "토스 프라임 구독",
        "customerEmail": "customer@example.com", "customerName": "박토스", "customerIp": "203.0.113.7",
        "taxFreeAmount": 0, "taxExemptionAmount": 0, "cardInstallmentPlan": 0
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn toss_billing_clients_decode_every_answer() {
    let db = TestDb::new().await;
    let mut env = FAST.to_vec();
    env.extend([
        ("PAYGATE_OUTBOX__ALLOW_LOOPBACK", "true"),
        ("PAYGATE_OUTBOX__WORKER_INTERVAL_MS", "20"),
    ]);
    let (gateway, demo) = Gateway::fresh(&db, &[], &env);
    let m = Merchant {
        base: gateway.url(""),
        secret: demo.secret_key.clone(),
        client_key: demo.client_key.clone(),
    };
    let (hooks, url) = Hooks::start().await;
    let (status, body) = m
        .post(
            "/v1/webhooks",
            &json!({"url": url, "eventTypes": ["BILLING_ISSUED", "BILLING_DELETED"]}),
        )
        .await;
    assert_eq!(status, 200, "{body}");

    // Issue: Toss's Billing object.
    let customer = "2d5f9c1e-6b1a-4d8e-9f3a-1c2b3d4e5f60";
    let (status, body) = m
        .post(
            "/v1/billing/authorizations/card",
            &billing_card(customer, "4330000000000003"),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let billing: toss::Billing = decode("billing key issue", &body);
    assert_eq!(billing.customer_key, customer);
    assert_eq!(billing.method, toss::Method::Card);
    assert_eq!(billing.card.issuer_code, toss::CardCompanyCode::Kookmin);
    assert_eq!(billing.card.acquirer_code, toss::CardCompanyCode::Kookmin);
    assert_eq!(billing.card.card_type, toss::BillingCardType::Credit);
    assert_eq!(billing.card.owner_type, toss::BillingOwnerType::Personal);
    assert_eq!(
        (billing.card_company.as_str(), billing.card_number.as_str()),
        ("국민", "433000******0003")
    );
    assert!(
        !body.contains("4330000000000003"),
        "the full number never comes back: {body}"
    );
    let key = billing.billing_key.clone();

    // paygate's own look-up answers the same object.
    let (status, body) = m.get(&format!("/v1/billing/{key}")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(decode::<toss::Billing>("billing key lookup", &body), billing);

    // Charge: a Payment of type BILLING with its card; then it cancels like any payment.
    let (status, body) = m
        .post(
            &format!("/v1/billing/{key}"),
            &billing_charge(customer, "toss-bill-0001", 9_900),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let charged: toss::Payment = decode("billing charge", &body);
    assert_eq!(charged.payment_type, toss::PaymentType::Billing);
    assert_eq!(charged.status, toss::PaymentStatus::Done);
    assert_eq!(charged.method, Some(toss::Method::Card));
    let card = charged.card.clone().expect("a billing charge has its card");
    assert_eq!((card.number.as_str(), card.amount), ("433000******0003", 9_900));
    let (status, body) = m
        .post(
            &format!("/v1/payments/{}/cancel", charged.payment_key),
            &json!({"cancelReason": "구독 해지"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let canceled: toss::Payment = decode("billing cancel", &body);
    assert_eq!(
        (canceled.status, canceled.payment_type),
        (toss::PaymentStatus::Canceled, toss::PaymentType::Billing)
    );
    let (status, body) = m
        .get("/v1/transactions?startDate=2000-01-01T00:00:00&endDate=2100-01-01T00:00:00")
        .await;
    assert_eq!(status, 200, "{body}");
    let listed: Vec<toss::Transaction> = decode("transactions", &body);
    assert!(
        listed.iter().all(|t| t.customer_key.as_deref() == Some(customer)),
        "a billing payment's transactions name its customer: {body}"
    );

    // Refusals with Toss's codes, and nothing charged.
    let cases = [
        (
            format!("/v1/billing/{key}"),
            billing_charge("someone-else", "toss-bill-0002", 9_900),
            400,
            "NOT_MATCHES_CUSTOMER_KEY",
        ),
        (
            "/v1/billing/bil_01M8VGWB8EJCZ5D358GSM2Y283".to_owned(),
            billing_charge(customer, "toss-bill-0003", 9_900),
            404,
            "NOT_FOUND_BILLING",
        ),
        (
            "/v1/billing/authorizations/card".to_owned(),
            billing_card(customer, "4330000000000029"),
            400,
            "INVALID_CARD_LOST_OR_STOLEN",
        ),
        (
            "/v1/billing/authorizations/card".to_owned(),
            billing_card("a", "4330000000000003"),
            400,
            "INVALID_REQUEST",
        ),
    ];
    for (path, request, status, code) in cases {
        let (got, body) = m.post(&path, &request).await;
        assert_eq!(got, status, "{path}: {body}");
        assert_eq!(decode::<toss::TossError>(&path, &body).code, code, "{path}");
    }
    for order in ["toss-bill-0002", "toss-bill-0003"] {
        assert_eq!(m.get(&format!("/v1/payments/orders/{order}")).await.0, 404, "{order}");
    }

    // Delete: 200 with an empty body, Toss's BILLING_DELETED webhook; the key charges nothing any more.
    let response = http()
        .delete(format!("{}/v1/billing/{key}", m.base))
        .basic_auth(&m.secret, Some(""))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(response.text().await.unwrap(), "");
    let (status, body) = m
        .post(
            &format!("/v1/billing/{key}"),
            &billing_charge(customer, "toss-bill-0004", 9_900),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(
        decode::<toss::TossError>("charge after delete", &body).code,
        "INVALID_BILL_KEY_REQUEST"
    );
    assert_eq!(m.get("/v1/payments/orders/toss-bill-0004").await.0, 404);
    let bodies = hooks.wait_for(2).await;
    let deleted = bodies
        .iter()
        .find(|b| b.contains("\"BILLING_DELETED\""))
        .expect("a BILLING_DELETED webhook");
    let event: toss::BillingDeletedEvent = decode("BILLING_DELETED webhook", deleted);
    assert_eq!(event.data.billing_key, key);
    assert_eq!(event.data.reason.as_deref(), Some("삭제 API 요청"));
    let issued = bodies
        .iter()
        .find(|b| b.contains("\"BILLING_ISSUED\""))
        .expect("a BILLING_ISSUED webhook");
    let issued: Value = serde_json::from_str(issued).unwrap();
    assert_eq!(
        decode::<toss::Billing>("BILLING_ISSUED data", &issued["data"].to_string()).billing_key,
        key
    );
}

/// The registration page's flow as a browser without JavaScript drives it: no redirect is followed, so each step's
/// answer can be checked.
fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

fn location(response: &reqwest::Response) -> String {
    response
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

/// The text of `<strong id="sandbox-otp">…</strong>` on the challenge page.
fn sandbox_otp(html: &str) -> String {
    let start = html
        .find("id=\"sandbox-otp\">")
        .expect("the test-mode challenge shows the code")
        + 17;
    html[start..start + 6].to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn toss_billing_auth_key_flow_issues_a_key_once() {
    let db = TestDb::new().await;
    let (gateway, demo) = Gateway::fresh(&db, &[], &FAST);
    let m = Merchant {
        base: gateway.url(""),
        secret: demo.secret_key.clone(),
        client_key: demo.client_key.clone(),
    };
    let (status, body) = m
        .send(
            http()
                .patch(format!("{}/v1/merchants/me/settings", m.base))
                .json(&json!({"redirectOrigins": ["https://shop.example"]})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let customer = "cust-0b6a4c2e";
    let start = |success: &str| {
        json!({"customerKey": customer, "successUrl": success, "failUrl": "https://shop.example/billing/fail",
               "customerName": "박토스"})
    };
    // The browser (client key) may start one only toward a registered origin.
    let sdk = |body: Value| {
        http()
            .post(format!("{}/v1/billing/sessions", m.base))
            .basic_auth(&m.client_key, Some(""))
            .json(&body)
            .send()
    };
    let refused = sdk(start("https://elsewhere.example/ok")).await.unwrap();
    assert_eq!(refused.status().as_u16(), 400);
    let session: Value = sdk(start("https://shop.example/billing/success"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let page_url = session["checkout"]["url"].as_str().unwrap().to_owned();
    assert_eq!(session["status"], "READY", "{session}");

    // Card, then a wrong code, then the right one: the browser lands on successUrl with the authKey.
    let b = browser();
    let page = b.get(&page_url).send().await.unwrap();
    assert_eq!(page.status().as_u16(), 200);
    assert!(page.text().await.unwrap().contains("id=\"card-form\""));
    let card = [
        ("cardNumber", "4330 0000 0000 0078"),
        ("expMonth", "12"),
        ("expYear", "29"),
    ];
    let answer = b.post(format!("{page_url}/card")).form(&card).send().await.unwrap();
    assert_eq!(answer.status().as_u16(), 303, "card accepted: on to the challenge");
    assert!(location(&answer).contains("/challenge"), "{}", location(&answer));
    let challenge = b
        .get(format!("{page_url}/challenge"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let otp = sandbox_otp(&challenge);
    let wrong = if otp == "000000" { "111111" } else { "000000" };
    let answer = b
        .post(format!("{page_url}/challenge"))
        .form(&[("otp", wrong)])
        .send()
        .await
        .unwrap();
    assert!(
        location(&answer).contains("error=otp_mismatch"),
        "{}",
        location(&answer)
    );
    let answer = b
        .post(format!("{page_url}/challenge"))
        .form(&[("otp", otp.as_str())])
        .send()
        .await
        .unwrap();
    let landed = location(&answer);
    assert!(
        landed.starts_with("https://shop.example/billing/success?customerKey=cust-0b6a4c2e&authKey=bak_"),
        "{landed}"
    );
    let auth_key = landed.split("authKey=").nth(1).unwrap().to_owned();
    // A reload sends the buyer on again, never back to the form.
    let reload = b.get(&page_url).send().await.unwrap();
    assert_eq!(location(&reload), landed);

    // The merchant's server exchanges it (Toss's call), once; the same call again answers the same key.
    let issue = json!({"authKey": auth_key, "customerKey": customer});
    let (status, body) = m.post("/v1/billing/authorizations/issue", &issue).await;
    assert_eq!(status, 200, "{body}");
    let billing: toss::Billing = decode("authKey exchange", &body);
    assert_eq!(
        (billing.customer_key.as_str(), billing.card_number.as_str()),
        (customer, "433000******0078")
    );
    let (status, body) = m.post("/v1/billing/authorizations/issue", &issue).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        decode::<toss::Billing>("second exchange", &body).billing_key,
        billing.billing_key
    );
    for (request, status, code) in [
        (
            json!({"authKey": auth_key, "customerKey": "cust-someone-else"}),
            400,
            "NOT_MATCHES_CUSTOMER_KEY",
        ),
        (
            json!({"authKey": "bak_not-a-key", "customerKey": customer}),
            404,
            "NOT_FOUND_BILLING",
        ),
    ] {
        let (got, body) = m.post("/v1/billing/authorizations/issue", &request).await;
        assert_eq!(got, status, "{body}");
        assert_eq!(decode::<toss::TossError>("exchange refused", &body).code, code);
    }
    // The card that needed the buyer's authentication is charged merchant-initiated, without the buyer.
    let (status, body) = m
        .post(
            &format!("/v1/billing/{}", billing.billing_key),
            &billing_charge(customer, "toss-auth-bill-0001", 12_000),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let paid: toss::Payment = decode("charge of an authenticated key", &body);
    assert_eq!(
        (paid.status, paid.payment_type),
        (toss::PaymentStatus::Done, toss::PaymentType::Billing)
    );

    // Three wrong codes fail the registration: the browser goes to failUrl, and nothing can be exchanged.
    let session: Value = sdk(start("https://shop.example/billing/success"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let page_url = session["checkout"]["url"].as_str().unwrap().to_owned();
    b.post(format!("{page_url}/card")).form(&card).send().await.unwrap();
    let challenge = b
        .get(format!("{page_url}/challenge"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let wrong = if sandbox_otp(&challenge) == "000000" {
        "111111"
    } else {
        "000000"
    };
    let mut last = String::new();
    for _ in 0..3 {
        let answer = b
            .post(format!("{page_url}/challenge"))
            .form(&[("otp", wrong)])
            .send()
            .await
            .unwrap();
        last = location(&answer);
    }
    assert!(
        last.starts_with("https://shop.example/billing/fail?code=AUTHENTICATION_FAILED"),
        "{last}"
    );
}
