//! The sandbox bank in its own process (`paygate bank-sim`), the gateway reaching it over BANK-PROTOCOL.md
//! (`banks.sandbox = "http://…"`): a virtual account issued there and paid with `paygate bank-sim deposit` (found
//! through the bank's feed: this bank notifies nobody), and a transfer authorized on the bank's own page, debited,
//! then refunded — every movement once in the bank's journal. Runs on the backend `PAYGATE_TEST_DATABASE_URL`
//! selects.

#![allow(clippy::unwrap_used)]

mod common;
mod toss;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{http, Gateway, TestDb, BIN};
use serde_json::{json, Value};

/// A `paygate bank-sim` process, stopped on drop.
struct BankSim {
    child: Child,
    base: String,
}

impl BankSim {
    fn start() -> BankSim {
        let mut child = Command::new(BIN)
            .args(["bank-sim", "--listen", "127.0.0.1:0"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let base = loop {
            match lines.next() {
                Some(Ok(line)) => {
                    if let Some(rest) = line.strip_prefix("paygate bank-sim listening on ") {
                        break rest.trim().to_owned();
                    }
                }
                _ => {
                    let _ = child.kill();
                    panic!("bank-sim did not start");
                }
            }
        };
        BankSim { child, base }
    }

    async fn journal(&self) -> Vec<Value> {
        let page: Value = http()
            .get(format!("{}/bank/journal?afterSeq=0", self.base))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        page["entries"].as_array().cloned().unwrap_or_default()
    }
}

impl Drop for BankSim {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

fn location(response: &reqwest::Response) -> String {
    response.headers()["location"].to_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateway_reaches_a_bank_in_its_own_process() {
    let bank = BankSim::start();
    let db = TestDb::new().await;
    let env = [
        ("PAYGATE_BANKS__SANDBOX", bank.base.as_str()),
        ("PAYGATE_PAYMENTS__WORKER_INTERVAL_MS", "50"),
        ("PAYGATE_PAYMENTS__BANK_FEED_INTERVAL_MS", "100"),
        ("PAYGATE_RATE_LIMIT__PER_KEY_PER_SECOND", "0"),
        ("PAYGATE_LOG__LEVEL", "warn"),
    ];
    let (gateway, demo) = Gateway::fresh(&db, &[], &env);
    let base = gateway.url("");
    let post = |path: &str, body: Value| {
        http()
            .post(format!("{base}{path}"))
            .basic_auth(&demo.secret_key, Some(""))
            .json(&body)
            .send()
    };
    let get = |path: String| {
        http()
            .get(format!("{base}{path}"))
            .basic_auth(&demo.secret_key, Some(""))
            .send()
    };

    // A virtual account from the bank process, paid there with the CLI; the gateway finds the deposit in the feed.
    let issued: Value = post(
        "/v1/virtual-accounts",
        json!({"amount": 12000, "orderId": "sim-va-0001", "orderName": "책", "customerName": "박토스", "bank": "20"}),
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(issued["status"], "WAITING_FOR_DEPOSIT", "{issued}");
    let account = issued["virtualAccount"]["accountNumber"].as_str().unwrap();
    let deposit = Command::new(BIN)
        .args([
            "bank-sim",
            "deposit",
            "--account",
            account,
            "--amount",
            "12000",
            "--url",
            &bank.base,
        ])
        .output()
        .unwrap();
    assert!(deposit.status.success(), "{}", String::from_utf8_lossy(&deposit.stderr));
    let key = issued["paymentKey"].as_str().unwrap().to_owned();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let payment: Value = get(format!("/v1/payments/{key}")).await.unwrap().json().await.unwrap();
        if payment["status"] == "DONE" {
            let _: toss::Payment = serde_json::from_value(payment).unwrap();
            break;
        }
        assert!(Instant::now() < deadline, "the deposit was never found: {payment}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // A transfer: the gateway sends the browser to the bank process's page, and debits once authorized.
    let created: Value = post(
        "/v1/payments",
        json!({"method": "계좌이체", "amount": 9000, "orderId": "sim-transfer-0001", "orderName": "머그컵",
               "successUrl": "https://shop.example/success", "failUrl": "https://shop.example/fail"}),
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    let key = created["paymentKey"].as_str().unwrap().to_owned();
    let browser = no_redirects();
    let to_bank = browser
        .post(format!("{base}/checkout/{key}/transfer"))
        .form(&[("bank", "06")])
        .send()
        .await
        .unwrap();
    assert_eq!(to_bank.status().as_u16(), 303);
    let authorize = location(&to_bank);
    assert!(
        authorize.starts_with(&format!("{}/bank/transfers/", bank.base)),
        "{authorize}"
    );
    let back = browser
        .post(&authorize)
        .form(&[
            ("accountNumber", "3333-01-1234567"),
            ("holderName", "박토스"),
            ("pin", "4321"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(back.status().as_u16(), 303);
    let back = location(&back);
    assert!(
        back.starts_with(&format!("{base}/checkout/{key}/transfer?code=")),
        "{back}"
    );
    let success = browser.get(&back).send().await.unwrap();
    assert!(location(&success).starts_with("https://shop.example/success"));
    let done: Value = post(
        "/v1/payments/confirm",
        json!({"paymentKey": key, "orderId": "sim-transfer-0001", "amount": 9000}),
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(
        (done["status"].as_str(), done["transfer"]["bankCode"].as_str()),
        (Some("DONE"), Some("06")),
        "{done}"
    );
    let cancelled: Value = post(&format!("/v1/payments/{key}/cancel"), json!({"cancelReason": "반품"}))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(cancelled["status"], "CANCELED", "{cancelled}");

    let journal = bank.journal().await;
    let count = |kind: &str| journal.iter().filter(|e| e["kind"] == kind).count();
    assert_eq!(
        (
            count("ACCOUNT_ISSUED"),
            count("DEPOSIT"),
            count("DEBIT"),
            count("REFUND")
        ),
        (1, 1, 1, 1),
        "{journal:?}"
    );
    let refund = journal.iter().find(|e| e["kind"] == "REFUND").unwrap();
    assert_eq!(
        (refund["accountNumber"].as_str(), refund["amount"].as_i64()),
        (Some("3333011234567"), Some(9000))
    );
}
