#![allow(clippy::unwrap_used)]

//! The bank simulator over real loopback sockets: issuing, deposits and their signed notifications (retried until
//! acknowledged, duplicated by the fault plan), the feed, refunds and the journal. Nothing sleeps to wait: every
//! wait polls with a deadline.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use paygate_connectors::bank_notify::{verify, NotificationFaults};
use paygate_connectors::bank_wire::{DepositNotificationWire, NotifiedDeposit, ACK_BODY};
use paygate_connectors::http::{BankSimConfig, BankSimulator};
use serde_json::{json, Value};

const SECRET: &[u8] = b"bank-sim-test-secret";

/// Records every notification that verifies; answers 500 to the first `fail_first` attempts.
#[derive(Default)]
struct Receiver {
    attempts: usize,
    fail_first: usize,
    refused: usize,
    received: Vec<NotifiedDeposit>,
}

type Shared = Arc<Mutex<Receiver>>;

async fn receive(State(state): State<Shared>, headers: HeaderMap, body: Bytes) -> (StatusCode, &'static str) {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let now = i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs(),
    )
    .unwrap();
    let mut state = state.lock().unwrap();
    state.attempts += 1;
    if state.attempts <= state.fail_first {
        return (StatusCode::INTERNAL_SERVER_ERROR, "down");
    }
    let signed = verify(
        SECRET,
        header("Bank-Timestamp").as_deref(),
        header("Bank-Signature").as_deref(),
        &body,
        now,
    );
    if signed.is_err() {
        state.refused += 1;
        return (StatusCode::UNAUTHORIZED, "bad signature");
    }
    let wire: DepositNotificationWire = serde_json::from_slice(&body).unwrap();
    state.received.push(wire.check().unwrap());
    (StatusCode::OK, ACK_BODY)
}

async fn start_receiver(fail_first: usize) -> (String, Shared) {
    let state: Shared = Arc::new(Mutex::new(Receiver {
        fail_first,
        ..Receiver::default()
    }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = Router::new()
        .route("/notify", post(receive))
        .with_state(Arc::clone(&state));
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}/notify"), state)
}

async fn start_bank(config: BankSimConfig) -> (String, BankSimulator) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    let simulator = BankSimulator::new(config);
    let serving = simulator.clone();
    tokio::spawn(async move { serving.serve(listener, std::future::pending()).await });
    (format!("http://{addr}"), simulator)
}

fn config(notify_url: &str) -> BankSimConfig {
    BankSimConfig {
        notify_url: Some(notify_url.to_owned()),
        notify_secret: SECRET.to_vec(),
        retry_initial_ms: 10,
        retry_max_ms: 40,
        retry_for_ms: 10_000,
        attempt_timeout_ms: 2_000,
        ..BankSimConfig::default()
    }
}

async fn post_json(base: &str, path: &str, body: Value) -> (StatusCode, Value) {
    let response = reqwest::Client::new()
        .post(format!("{base}{path}"))
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = response.status();
    (status, response.json().await.unwrap())
}

async fn get_json(base: &str, path: &str) -> Value {
    reqwest::get(format!("{base}{path}"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

async fn issue(base: &str, reference: &str, amount: i64) -> String {
    let (status, answer) = post_json(
        base,
        "/bank/virtual-accounts",
        json!({"reference": reference, "merchantId": "m1", "bankCode": "88", "amount": amount,
               "currency": "KRW", "holderName": "데모상점", "expiresAt": 4_102_444_800_000_i64}),
    )
    .await;
    assert_eq!(
        (status, answer["result"].as_str()),
        (StatusCode::OK, Some("ISSUED")),
        "{answer}"
    );
    answer["accountNumber"].as_str().unwrap().to_owned()
}

/// Polls `state` until `done` holds, for at most 10 s.
async fn until(state: &Shared, done: impl Fn(&Receiver) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !done(&state.lock().unwrap()) {
        assert!(Instant::now() < deadline, "timed out waiting for notifications");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn a_deposit_is_notified_signed_and_retried_until_acknowledged() {
    let (notify_url, receiver) = start_receiver(2).await;
    let (base, simulator) = start_bank(config(&notify_url)).await;
    let health = get_json(&base, "/bank/healthz").await;
    assert_eq!(health["banks"].as_array().unwrap().len(), 15);

    let account = issue(&base, "pay_1", 15_000).await;
    assert_eq!(
        issue(&base, "pay_1", 15_000).await,
        account,
        "the same reference, the same account"
    );
    let (_, made) = post_json(
        &base,
        "/bank/deposits",
        json!({"accountNumber": account, "amount": 15_000, "currency": "KRW", "depositorName": "홍길동"}),
    )
    .await;
    assert_eq!(made["result"], "ACCEPTED");
    until(&receiver, |r| !r.received.is_empty()).await;
    {
        let r = receiver.lock().unwrap();
        assert_eq!((r.attempts, r.refused), (3, 0), "two failures, then acknowledged once");
        let got = &r.received[0];
        assert_eq!(got.deposit_id, made["depositId"].as_str().unwrap());
        assert_eq!((got.account_number.as_str(), got.bank.code()), (account.as_str(), "88"));
        assert_eq!(got.amount.amount_minor(), 15_000);
    }
    // The feed lists the same deposit under the same ID.
    let feed = get_json(&base, "/bank/deposits?merchantId=m1&afterSeq=0").await;
    assert_eq!(feed["deposits"][0]["depositId"], made["depositId"]);
    assert_eq!(feed["nextSeq"], 1);
    let empty = get_json(&base, "/bank/deposits?merchantId=m1&afterSeq=1").await;
    assert_eq!(empty["deposits"].as_array().unwrap().len(), 0);
    assert_eq!(empty["nextSeq"], 1);

    // A closed account refuses deposits; refunds are paid once per reference.
    let (_, closed) = post_json(
        &base,
        "/bank/virtual-accounts/close",
        json!({"merchantId": "m1", "accountNumber": account}),
    )
    .await;
    assert_eq!(closed["result"], "CLOSED");
    let (_, refusal) = post_json(
        &base,
        "/bank/deposits",
        json!({"accountNumber": account, "amount": 15_000, "currency": "KRW", "depositorName": "홍길동"}),
    )
    .await;
    assert_eq!(
        (refusal["result"].as_str(), refusal["code"].as_str()),
        (Some("REFUSED"), Some("ACCOUNT_CLOSED"))
    );
    let refund = json!({"reference": "rf_1", "merchantId": "m1", "bankCode": "06", "accountNumber": "12345678901",
                        "holderName": "홍길동", "amount": 15_000, "currency": "KRW"});
    let (_, first) = post_json(&base, "/bank/refunds", refund.clone()).await;
    let (_, again) = post_json(&base, "/bank/refunds", refund).await;
    assert_eq!(first["result"], "DONE");
    assert_eq!(first, again);
    let (_, inquired) = post_json(
        &base,
        "/bank/refunds/inquire",
        json!({"reference": "rf_1", "merchantId": "m1"}),
    )
    .await;
    assert_eq!(inquired, first);
    let (_, unknown) = post_json(
        &base,
        "/bank/refunds/inquire",
        json!({"reference": "rf_2", "merchantId": "m1"}),
    )
    .await;
    assert_eq!(unknown["result"], "NOT_FOUND");

    let journal = get_json(&base, "/bank/journal").await;
    let kinds: Vec<&str> = journal["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["ACCOUNT_ISSUED", "DEPOSIT", "ACCOUNT_CLOSED", "REFUND"]);
    assert_eq!(simulator.bank().journal_page(0, 10).len(), 4);
}

#[tokio::test]
async fn faults_duplicate_notifications_and_miss_the_amount() {
    let (notify_url, receiver) = start_receiver(0).await;
    let faults = NotificationFaults {
        duplicate_per_mille: 1_000,
        wrong_amount_per_mille: 1_000,
        seed: 7,
        ..NotificationFaults::default()
    };
    let (base, _) = start_bank(BankSimConfig {
        faults,
        ..config(&notify_url)
    })
    .await;
    let account = issue(&base, "pay_2", 20_000).await;
    let (_, made) = post_json(
        &base,
        "/bank/deposits",
        json!({"accountNumber": account, "amount": 20_000, "currency": "KRW", "depositorName": "홍길동",
               "reference": "buyer-typo"}),
    )
    .await;
    assert_eq!(made["amount"], 19_999, "the buyer typed one won less");
    until(&receiver, |r| {
        r.received.len() == NotificationFaults::DUPLICATES as usize
    })
    .await;
    let r = receiver.lock().unwrap();
    let mut ids: Vec<&str> = r.received.iter().map(|d| d.notification_id.as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 3, "each copy has its own notification ID");
    assert!(r
        .received
        .iter()
        .all(|d| d.deposit_id == made["depositId"].as_str().unwrap()));
}

#[tokio::test]
async fn bad_requests_name_their_field_and_change_nothing() {
    let (base, simulator) = start_bank(BankSimConfig::default()).await;
    let cases = [
        json!({"reference": "p", "merchantId": "m1", "bankCode": "신한", "amount": 1000, "currency": "KRW",
               "holderName": "x", "expiresAt": 1}),
        json!({"reference": "p", "merchantId": "m1", "bankCode": "88", "amount": 1000, "currency": "krw",
               "holderName": "x", "expiresAt": 1}),
        json!({"reference": "", "merchantId": "m1", "bankCode": "88", "amount": 1000, "currency": "KRW",
               "holderName": "x", "expiresAt": 1}),
    ];
    for body in cases {
        let (status, answer) = post_json(&base, "/bank/virtual-accounts", body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    }
    let (status, answer) = post_json(
        &base,
        "/bank/virtual-accounts",
        json!({"reference": "p", "merchantId": "m1", "bankCode": "90", "amount": 1000, "currency": "KRW",
               "holderName": "x", "expiresAt": 1}),
    )
    .await;
    assert_eq!(
        (status, answer["code"].as_str()),
        (StatusCode::OK, Some("NOT_SUPPORTED_BANK")),
        "카카오뱅크 issues none"
    );
    // Without `merchantId` the feed is the bank's whole feed (what paygate reads); a bad cursor is refused.
    let feed = reqwest::get(format!("{base}/bank/deposits")).await.unwrap();
    assert_eq!(feed.status(), StatusCode::OK, "the bank's whole feed");
    let feed = reqwest::get(format!("{base}/bank/deposits?afterSeq=abc"))
        .await
        .unwrap();
    assert_eq!(feed.status(), StatusCode::BAD_REQUEST, "the feed's cursor is a number");
    assert!(simulator.bank().journal_page(0, 10).is_empty());
}
