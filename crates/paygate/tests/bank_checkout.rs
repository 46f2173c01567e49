//! Bank methods on paygate's hosted page, black-box over HTTP (the browser suite does the same in a real browser):
//! `POST /v1/payments` with `method` 가상계좌 or 계좌이체, the page's forms, the in-process sandbox bank's own
//! authorization page, the merchant's confirm, deposits, debits and refunds. Answers decode into `toss::*`, types
//! written from Toss's reference. Runs on the backend `PAYGATE_TEST_DATABASE_URL` selects.

#![allow(clippy::unwrap_used)]

mod common;
mod toss;

use std::time::{Duration, Instant};

use common::{cli, http, Gateway, TestDb};
use serde_json::{json, Value};

fn env() -> Vec<(&'static str, &'static str)> {
    vec![
        ("PAYGATE_PAYMENTS__WORKER_INTERVAL_MS", "50"),
        ("PAYGATE_RATE_LIMIT__PER_KEY_PER_SECOND", "0"),
        ("PAYGATE_LOG__LEVEL", "warn"),
    ]
}

/// A browser that does not follow redirects, so each hop is seen.
fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

struct Shop {
    base: String,
    secret: String,
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

    async fn get(&self, path: &str) -> Value {
        let response = http()
            .get(format!("{}{path}", self.base))
            .basic_auth(&self.secret, Some(""))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 200);
        response.json().await.unwrap()
    }

    /// A checkout payment for `method`, as Toss's `POST /v1/payments` creates it.
    async fn create(&self, order_id: &str, amount: i64, method: Option<&str>) -> Value {
        let mut body = json!({
            "amount": amount, "orderId": order_id, "orderName": "토스 티셔츠 외 2건", "customerName": "박토스",
            "successUrl": "https://shop.example/success", "failUrl": "https://shop.example/fail"
        });
        if let Some(method) = method {
            body["method"] = json!(method);
        }
        let (status, payment) = self.post("/v1/payments", &body).await;
        assert_eq!(status, 200, "{payment}");
        let _: toss::Payment = serde_json::from_value(payment.clone()).unwrap();
        payment
    }

    async fn confirm(&self, payment: &Value) -> (u16, Value) {
        self.post(
            "/v1/payments/confirm",
            &json!({"paymentKey": payment["paymentKey"], "orderId": payment["orderId"], "amount": payment["totalAmount"]}),
        )
        .await
    }

    /// The page's form, posted as the browser posts it; where it sends the browser.
    async fn form(&self, path: &str, fields: &[(&str, &str)]) -> (u16, String) {
        let url = if path.starts_with("http") {
            path.to_owned()
        } else {
            format!("{}{path}", self.base)
        };
        let response = browser().post(url).form(fields).send().await.unwrap();
        let status = response.status().as_u16();
        let location = response
            .headers()
            .get("location")
            .map(|l| l.to_str().unwrap().to_owned())
            .unwrap_or_else(String::new);
        if location.is_empty() {
            return (status, response.text().await.unwrap());
        }
        (status, location)
    }

    async fn follow(&self, location: &str) -> (u16, String) {
        let url = if location.starts_with("http") {
            location.to_owned()
        } else {
            format!("{}{location}", self.base)
        };
        let response = browser().get(url).send().await.unwrap();
        let status = response.status().as_u16();
        match response.headers().get("location") {
            Some(l) => (status, l.to_str().unwrap().to_owned()),
            None => (status, response.text().await.unwrap()),
        }
    }

    /// Authorizes a transfer on the bank's page: the bank's return URL (to paygate) with its code or error.
    async fn authorize(&self, payment: &Value, bank: &str, account: &str, pin: &str) -> String {
        let key = payment["paymentKey"].as_str().unwrap();
        let (status, bank_page) = self.form(&format!("/checkout/{key}/transfer"), &[("bank", bank)]).await;
        assert_eq!(status, 303, "{bank_page}");
        assert!(bank_page.starts_with("/bank/transfers/trs_"), "{bank_page}");
        let (status, html) = self.follow(&bank_page).await;
        assert_eq!(status, 200);
        assert!(html.contains("출금 승인") && html.contains("15,000원"), "{html}");
        let (status, back) = self
            .form(
                &bank_page,
                &[("accountNumber", account), ("holderName", "박토스"), ("pin", pin)],
            )
            .await;
        assert_eq!(status, 303, "{back}");
        back
    }

    async fn bank_journal(&self) -> Vec<Value> {
        let journal: Value = http()
            .get(format!("{}/bank/journal?afterSeq=0", self.base))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        journal["entries"].as_array().cloned().unwrap_or_default()
    }
}

fn query_of(url: &str, key: &str) -> Option<String> {
    let absolute = if url.starts_with("http") {
        url.to_owned()
    } else {
        format!("http://gateway{url}")
    };
    reqwest::Url::parse(&absolute)
        .ok()?
        .query_pairs()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn virtual_accounts_and_transfers_through_the_hosted_page() {
    let db = TestDb::new().await;
    let (gateway, demo) = Gateway::fresh(&db, &[], &env());
    let shop = Shop {
        base: gateway.url(""),
        secret: demo.secret_key.clone(),
    };

    // A payment without `method` lets the buyer pick among the three; one with a method shows it alone.
    let open = shop.create("order-pick-0001", 15_000, None).await;
    assert_eq!(open["method"], "카드");
    let key = open["paymentKey"].as_str().unwrap();
    let (_, html) = shop.follow(&format!("/checkout/{key}")).await;
    for tab in ["method-card", "method-virtual-account", "method-transfer"] {
        assert!(html.contains(tab), "{tab}: {html}");
    }
    let (_, html) = shop.follow(&format!("/checkout/{key}?method=transfer&lang=en")).await;
    assert!(
        html.contains("id=\"transfer-form\"") && html.contains("Pay ₩15,000"),
        "{html}"
    );

    // 가상계좌: the buyer picks a bank and a name; the merchant's confirm issues the account.
    let va = shop.create("order-va-hosted-0001", 15_000, Some("가상계좌")).await;
    assert_eq!(
        (va["method"].as_str(), va["status"].as_str()),
        (Some("가상계좌"), Some("READY"))
    );
    let key = va["paymentKey"].as_str().unwrap().to_owned();
    let (_, html) = shop.follow(&format!("/checkout/{key}")).await;
    assert!(
        html.contains("id=\"virtual-account-form\"") && !html.contains("method-card"),
        "{html}"
    );
    // No bank, or a name too long: the page asks again and nothing changes.
    let (status, again) = shop
        .form(
            &format!("/checkout/{key}/virtual-account"),
            &[("bank", ""), ("holderName", "박토스")],
        )
        .await;
    assert_eq!(
        (status, again.contains("error=virtual_account_bank")),
        (303, true),
        "{again}"
    );
    let long = "가".repeat(31);
    let (_, again) = shop
        .form(
            &format!("/checkout/{key}/virtual-account"),
            &[("bank", "20"), ("holderName", &long)],
        )
        .await;
    assert!(again.contains("error=holder_name"), "{again}");
    let (_, html) = shop.follow(&again).await;
    assert!(html.contains("입금자명을 30자 이내로"), "{html}");
    assert_eq!(shop.get(&format!("/v1/payments/{key}")).await["status"], "READY");
    let (status, success) = shop
        .form(
            &format!("/checkout/{key}/virtual-account"),
            &[("bank", "20"), ("holderName", "박토스")],
        )
        .await;
    assert_eq!(status, 303);
    assert!(
        success.starts_with("https://shop.example/success?paymentKey="),
        "{success}"
    );
    assert_eq!(query_of(&success, "amount").as_deref(), Some("15000"));
    let (status, waiting) = shop.confirm(&va).await;
    assert_eq!(status, 200, "{waiting}");
    let decoded: toss::Payment = serde_json::from_value(waiting.clone()).unwrap();
    assert_eq!(waiting["status"], "WAITING_FOR_DEPOSIT");
    let account = decoded.virtual_account.clone().unwrap();
    assert_eq!(
        (account.bank_code.as_str(), account.customer_name.as_str()),
        ("20", "박토스")
    );
    // A repeated confirm changes nothing; the deposit pays it.
    let (status, again) = shop.confirm(&va).await;
    assert_ne!(status, 200, "{again}");
    let response = http()
        .post(format!("{}/bank/deposits", shop.base))
        .json(&json!({"accountNumber": account.account_number, "amount": 15000, "currency": "KRW", "depositorName": "박토스"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let payment = shop.get(&format!("/v1/payments/{key}")).await;
        if payment["status"] == "DONE" {
            break;
        }
        assert!(Instant::now() < deadline, "the deposit never paid: {payment}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }

    // 계좌이체: the bank's page, a wrong PIN, then the authorization; the merchant's confirm debits.
    let transfer = shop.create("order-transfer-0001", 15_000, Some("계좌이체")).await;
    let key = transfer["paymentKey"].as_str().unwrap().to_owned();
    let (status, bank_page) = shop.form(&format!("/checkout/{key}/transfer"), &[("bank", "06")]).await;
    assert_eq!(status, 303);
    let (status, html) = shop
        .form(
            &bank_page,
            &[
                ("accountNumber", "110-123-456789"),
                ("holderName", "박토스"),
                ("pin", "0000"),
            ],
        )
        .await;
    assert_eq!(status, 400);
    assert!(
        html.contains("비밀번호가 일치하지 않습니다") && html.contains("남은 입력 횟수: 2회"),
        "{html}"
    );
    // The buyer leaves the bank's page: back on paygate's, to try again.
    let (status, back) = shop.form(&bank_page.replace("/authorize", "/cancel"), &[]).await;
    assert_eq!(
        (status, query_of(&back, "error").as_deref()),
        (303, Some("USER_CANCEL"))
    );
    let (status, retry) = shop.follow(&back).await;
    assert_eq!(status, 303);
    assert!(retry.contains("error=transfer_cancelled"), "{retry}");
    assert_eq!(shop.get(&format!("/v1/payments/{key}")).await["status"], "READY");
    let back = shop.authorize(&transfer, "06", "110-123-456789", "1234").await;
    assert!(query_of(&back, "code").unwrap().starts_with("tac_"), "{back}");
    let (status, success) = shop.follow(&back).await;
    assert_eq!(status, 303);
    assert!(
        success.starts_with("https://shop.example/success?paymentKey="),
        "{success}"
    );
    let (status, done) = shop.confirm(&transfer).await;
    assert_eq!(status, 200, "{done}\n{}", gateway.stderr());
    let decoded: toss::Payment = serde_json::from_value(done.clone()).unwrap();
    assert_eq!(done["status"], "DONE");
    assert_eq!(done["method"], "계좌이체");
    assert_eq!(decoded.transfer.as_ref().unwrap().bank_code, "06");
    let debits: Vec<Value> = shop
        .bank_journal()
        .await
        .into_iter()
        .filter(|e| e["kind"] == "DEBIT" && e["reference"] == key.as_str())
        .collect();
    assert_eq!(debits.len(), 1, "{debits:?}");
    assert_eq!(debits[0]["amount"], 15000);

    // A cancel refunds to the account it came from, in part and then the rest.
    let (status, partial) = shop
        .post(
            &format!("/v1/payments/{key}/cancel"),
            &json!({"cancelReason": "부분 반품", "cancelAmount": 5000}),
        )
        .await;
    assert_eq!(status, 200, "{partial}");
    assert_eq!(
        (partial["status"].as_str(), partial["balanceAmount"].as_i64()),
        (Some("PARTIAL_CANCELED"), Some(10_000))
    );
    let (status, cancelled) = shop
        .post(
            &format!("/v1/payments/{key}/cancel"),
            &json!({"cancelReason": "나머지 반품"}),
        )
        .await;
    assert_eq!(status, 200, "{cancelled}");
    let decoded: toss::Payment = serde_json::from_value(cancelled.clone()).unwrap();
    assert_eq!(cancelled["status"], "CANCELED");
    assert_eq!(decoded.cancels.as_ref().map(Vec::len), Some(2));
    let refunds: Vec<Value> = shop
        .bank_journal()
        .await
        .into_iter()
        .filter(|e| e["kind"] == "REFUND" && e["accountNumber"] == "110123456789")
        .collect();
    assert_eq!(refunds.len(), 2, "{refunds:?}");

    // An account without money: the confirm answers Toss's REJECT_ACCOUNT_PAYMENT and the payment is ABORTED.
    let poor = shop.create("order-transfer-0002", 15_000, Some("계좌이체")).await;
    let back = shop.authorize(&poor, "06", "1101239999", "1234").await;
    shop.follow(&back).await;
    let (status, refused) = shop.confirm(&poor).await;
    assert_eq!(
        (status, refused["code"].as_str()),
        (403, Some("REJECT_ACCOUNT_PAYMENT")),
        "{refused}"
    );
    let _: toss::TossError = serde_json::from_value(refused.clone()).unwrap();
    let poor_key = poor["paymentKey"].as_str().unwrap();
    assert_eq!(shop.get(&format!("/v1/payments/{poor_key}")).await["status"], "ABORTED");

    // The period's transfers and virtual accounts, filtered before the page is cut, with a cursor.
    let today = done["requestedAt"].as_str().unwrap()[..10].to_owned();
    let list = |query: String| {
        let shop = &shop;
        let today = today.clone();
        async move {
            let payments = shop
                .get(&format!("/v1/payments?startDate={today}&endDate={today}{query}"))
                .await;
            let decoded: Vec<toss::Payment> = serde_json::from_value(payments.clone()).unwrap();
            assert_eq!(decoded.len(), payments.as_array().unwrap().len());
            payments
                .as_array()
                .unwrap()
                .iter()
                .map(|p| p["orderId"].as_str().unwrap().to_owned())
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(
        list("&method=계좌이체".into()).await,
        vec!["order-transfer-0001", "order-transfer-0002"]
    );
    assert_eq!(
        list("&method=가상계좌&status=DONE".into()).await,
        vec!["order-va-hosted-0001"]
    );
    assert_eq!(
        list("&method=TRANSFER&status=ABORTED".into()).await,
        vec!["order-transfer-0002"]
    );
    assert_eq!(list("&minAmount=15001".into()).await, Vec::<String>::new());
    let all = list(String::new()).await;
    assert_eq!(all.len(), 4, "{all:?}");
    let first_key = shop.get(&format!("/v1/payments/orders/{}", all[0])).await["paymentKey"].clone();
    let rest = list(format!("&limit=2&startingAfter={}", first_key.as_str().unwrap())).await;
    assert_eq!(rest, all[1..3].to_vec());
    let bad = http()
        .get(format!(
            "{}/v1/payments?startDate={today}&endDate={today}&method=휴대폰",
            shop.base
        ))
        .basic_auth(&shop.secret, Some(""))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status().as_u16(), 400);

    let (ok, stdout, stderr) = cli(&["ledger", "check"], &gateway.data_dir, &db);
    assert!(ok, "ledger check failed:\n{stdout}\n{stderr}");
}
