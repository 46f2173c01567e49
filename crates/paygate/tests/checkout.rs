//! Hosted checkout over HTTP, without a browser: the signed form POST, the card page, the OTP challenge, the signed
//! return, double submits, the SDK's two-step flow and the receipt. (The browser suite in tests/browser drives the
//! same pages in Chromium.)

#![allow(clippy::unwrap_used)]

mod common;

use base64::Engine;
use common::{http, Gateway, TestDb};
use serde_json::{json, Value};

struct Shop {
    base: String,
    secret: String,
    client: String,
    mid: String,
    key: Vec<u8>,
    http: reqwest::Client,
}

fn basic(key: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{key}:"))
    )
}

/// HMAC-SHA256 (RFC 2104) written out, so the test checks paygate's signatures independently of its code.
fn hmac_sha256_hex(key: &[u8], message: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    let mut block = [0u8; 64];
    if key.len() > 64 {
        block[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let inner_pad: Vec<u8> = block.iter().map(|b| b ^ 0x36).collect();
    let outer_pad: Vec<u8> = block.iter().map(|b| b ^ 0x5c).collect();
    let inner = Sha256::digest([inner_pad.as_slice(), message].concat());
    hex::encode(Sha256::digest([outer_pad.as_slice(), inner.as_slice()].concat()))
}

impl Shop {
    async fn open(gateway: &Gateway, demo: &common::Demo) -> Shop {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let response = http
            .get(gateway.url("/v1/merchants/me/checkout-key"))
            .header("authorization", basic(&demo.secret_key))
            .send()
            .await
            .unwrap();
        let body: Value = response.json().await.unwrap();
        let key = base64::engine::general_purpose::STANDARD
            .decode(body["key"].as_str().unwrap())
            .unwrap();
        Shop {
            base: gateway.url(""),
            secret: demo.secret_key.clone(),
            client: demo.client_key.clone(),
            mid: demo.mid.clone(),
            key,
            http,
        }
    }

    fn form(&self, order_id: &str, amount: i64, return_url: &str) -> Vec<(String, String)> {
        let timestamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
            .to_string();
        let mut fields: Vec<(String, String)> = vec![
            ("mId".into(), self.mid.clone()),
            ("mode".into(), "test".into()),
            ("orderId".into(), order_id.into()),
            ("amount".into(), amount.to_string()),
            ("goodsName".into(), "머그컵".into()),
            ("buyerName".into(), "홍길동".into()),
            ("buyerEmail".into(), "buyer@example.com".into()),
            ("buyerTel".into(), "01012345678".into()),
            ("returnUrl".into(), return_url.into()),
            ("timestamp".into(), timestamp),
        ];
        let signature = self.signature(&fields);
        fields.push(("signature".into(), signature));
        fields
    }

    /// The form's signature as docs/checkout.md defines it: every field, absent ones empty, in a fixed order.
    fn signature(&self, fields: &[(String, String)]) -> String {
        let names = [
            "mId",
            "mode",
            "orderId",
            "amount",
            "timestamp",
            "returnUrl",
            "goodsName",
            "buyerName",
            "buyerEmail",
            "buyerTel",
            "notificationUrl",
        ];
        let values: Vec<String> = names.iter().map(|name| param(fields, name)).collect();
        hmac_sha256_hex(&self.key, values.join("|").as_bytes())
    }

    /// Sets `field` (adding it if absent) and signs the form again, as the merchant's server would.
    fn signed_with(&self, fields: &[(String, String)], field: &str, value: &str) -> Vec<(String, String)> {
        let fields = with(fields, field, value);
        let signature = self.signature(&fields);
        with(&fields, "signature", &signature)
    }

    async fn challenge(&self, key: &str, otp: &str) -> (u16, String, String) {
        self.post_form(
            &format!("/checkout/{key}/challenge"),
            &[("otp".to_owned(), otp.to_owned())],
        )
        .await
    }

    async fn register_redirect_origins(&self, origins: &[&str]) {
        let (status, body) = self
            .api(
                reqwest::Method::PATCH,
                "/v1/merchants/me/settings",
                &self.secret,
                Some(json!({ "redirectOrigins": origins })),
            )
            .await;
        assert_eq!(status, 200, "{body}");
    }

    async fn post_form(&self, path: &str, fields: &[(String, String)]) -> (u16, String, String) {
        let response = self
            .http
            .post(format!("{}{path}", self.base))
            .form(fields)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let location = response
            .headers()
            .get("location")
            .map(|l| l.to_str().unwrap().to_owned())
            .unwrap_or_default();
        (status, location, response.text().await.unwrap())
    }

    async fn get_page(&self, path: &str) -> (u16, String, String) {
        let response = self.http.get(format!("{}{path}", self.base)).send().await.unwrap();
        let status = response.status().as_u16();
        let location = response
            .headers()
            .get("location")
            .map(|l| l.to_str().unwrap().to_owned())
            .unwrap_or_default();
        (status, location, response.text().await.unwrap())
    }

    async fn api(&self, method: reqwest::Method, path: &str, key: &str, body: Option<Value>) -> (u16, Value) {
        let mut request = http()
            .request(method, format!("{}{path}", self.base))
            .header("authorization", basic(key));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// Starts a form checkout and returns the payment key.
    async fn start(&self, order_id: &str, amount: i64) -> String {
        let (status, location, body) = self.post_form("/checkout", &self.form(order_id, amount, RETURN)).await;
        assert_eq!(status, 303, "{body}");
        location
            .trim_start_matches("/checkout/")
            .split('?')
            .next()
            .unwrap()
            .to_owned()
    }

    async fn pay(&self, key: &str, number: &str) -> (u16, String, String) {
        let card = [
            ("cardNumber", number),
            ("expMonth", "12"),
            ("expYear", "29"),
            ("installment", "0"),
        ];
        let fields: Vec<(String, String)> = card.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        self.post_form(&format!("/checkout/{key}/pay"), &fields).await
    }
}

const RETURN: &str = "https://shop.example/return";
/// A notification URL the gateway accepts offline (loopback, allowed by `LOOPBACK`; nothing listens there).
const NOTI: &str = "http://127.0.0.1:9/noti";
const LOOPBACK: [(&str, &str); 1] = [("PAYGATE_OUTBOX__ALLOW_LOOPBACK", "true")];

/// `fields` with `field` set to `value` (appended when absent).
fn with(fields: &[(String, String)], field: &str, value: &str) -> Vec<(String, String)> {
    let mut out = fields.to_vec();
    match out.iter_mut().find(|(k, _)| k == field) {
        Some(entry) => entry.1 = value.to_owned(),
        None => out.push((field.to_owned(), value.to_owned())),
    }
    out
}

fn query_of(url: &str) -> Vec<(String, String)> {
    let query = url.split_once('?').map(|(_, q)| q).unwrap_or("");
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (k.to_owned(), percent_decode(v))
        })
        .collect()
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 3 <= bytes.len() {
            out.push(u8::from_str_radix(&text[i + 1..i + 3], 16).unwrap());
            i += 3;
        } else {
            out.push(if bytes[i] == b'+' { b' ' } else { bytes[i] });
            i += 1;
        }
    }
    String::from_utf8(out).unwrap()
}

fn param(pairs: &[(String, String)], name: &str) -> String {
    pairs
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.clone())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn form_post_card_approved_returns_a_signed_result_and_double_submits_change_nothing() {
    let db = TestDb::new().await;
    let (gateway, demo) = Gateway::fresh(&db, &[], &[]);
    let shop = Shop::open(&gateway, &demo).await;
    let key = shop.start("form-0001", 20_000).await;
    let (status, _, page) = shop.get_page(&format!("/checkout/{key}?lang=en")).await;
    assert_eq!(status, 200);
    for needle in [
        "id=\"card-form\"",
        "for=\"card-number\"",
        "₩20,000",
        "머그컵",
        "Demo Shop",
    ] {
        assert!(page.contains(needle), "page lacks {needle}");
    }
    let (status, location, _) = shop.pay(&key, "4330 0000 0000 0003").await;
    assert_eq!(status, 303);
    assert!(location.starts_with(RETURN), "{location}");
    let result = query_of(&location);
    assert_eq!(param(&result, "status"), "DONE");
    assert_eq!(param(&result, "paymentKey"), key);
    let message = format!("{key}|form-0001|20000|DONE");
    assert_eq!(
        param(&result, "signature"),
        hmac_sha256_hex(&shop.key, message.as_bytes()),
        "the return is signed"
    );

    // Double submit, back button, reload: the same result, never a second approval.
    for _ in 0..3 {
        let (status, again, _) = shop.pay(&key, "4330000000000003").await;
        assert_eq!((status, again.as_str()), (303, location.as_str()));
    }
    let (status, again, _) = shop.get_page(&format!("/checkout/{key}")).await;
    assert_eq!((status, again.as_str()), (303, location.as_str()));
    let (_, payment) = shop
        .api(reqwest::Method::GET, &format!("/v1/payments/{key}"), &shop.secret, None)
        .await;
    assert_eq!(payment["status"], "DONE");
    let (_, transactions) = shop
        .api(
            reqwest::Method::GET,
            "/v1/transactions?startDate=2000-01-01&endDate=2100-01-01",
            &shop.secret,
            None,
        )
        .await;
    let approvals = transactions
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["paymentKey"] == key.as_str())
        .count();
    assert_eq!(approvals, 1);

    // The receipt: public, unguessable, printable.
    let receipt = payment["receipt"]["url"].as_str().unwrap();
    let path = receipt.trim_start_matches(&shop.base);
    let (status, _, page) = shop.get_page(path).await;
    assert_eq!(status, 200);
    for needle in [
        "433000******0003",
        payment["card"]["approveNo"].as_str().unwrap(),
        "20,000원",
        "1,818원",
        "18,182원",
    ] {
        assert!(page.contains(needle), "receipt lacks {needle}");
    }
    let (status, _, _) = shop.get_page(&format!("/receipts/{key}/{}", "0".repeat(32))).await;
    assert_eq!(status, 404, "a wrong token shows nothing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_forms_create_nothing() {
    let db = TestDb::new().await;
    let (gateway, demo) = Gateway::fresh(&db, &[], &[]);
    let shop = Shop::open(&gateway, &demo).await;
    let good = shop.form("bad-0001", 10_000, RETURN);
    let mut cases: Vec<(&str, Vec<(String, String)>)> = Vec::new();
    let mut tampered = good.clone();
    tampered[3].1 = "1".into();
    cases.push(("tampered amount", tampered));
    let mut missing = good.clone();
    missing.retain(|(k, _)| k != "returnUrl");
    cases.push(("missing returnUrl", missing));
    let mut stale = good.clone();
    stale[9].1 = "1000000000".into();
    cases.push(("stale timestamp", stale));
    let mut other_merchant = good.clone();
    other_merchant[0].1 = "mid_01KAR3Q5M2V6Y8Z0A1B2C3D4E5".into();
    cases.push(("unknown merchant", other_merchant));
    let mut bad_signature = good.clone();
    bad_signature[10].1 = "00".repeat(32);
    cases.push(("wrong signature", bad_signature));
    for (name, fields) in cases {
        let (status, _, page) = shop.post_form("/checkout", &fields).await;
        assert_eq!(status, 400, "{name}");
        assert!(page.contains("role=\"alert\""), "{name}: the buyer sees an error");
    }
    let (status, body) = shop
        .api(reqwest::Method::GET, "/v1/payments/orders/bad-0001", &shop.secret, None)
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (404, Some("NOT_FOUND_PAYMENT")),
        "nothing was created"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn challenge_card_wrong_then_right_otp_and_a_decline_returns_failed() {
    let db = TestDb::new().await;
    let (gateway, demo) = Gateway::fresh(&db, &[], &[]);
    let shop = Shop::open(&gateway, &demo).await;
    let key = shop.start("otp-0001", 5_000).await;
    let (status, location, _) = shop.pay(&key, "4330000000000078").await;
    assert_eq!((status, location.contains("/challenge")), (303, true), "{location}");
    let (_, _, page) = shop.get_page(&location).await;
    let otp = page.split("id=\"sandbox-otp\">").nth(1).unwrap()[..6].to_owned();
    let wrong = if otp == "000000" { "111111" } else { "000000" };
    let (status, location, _) = shop
        .post_form(
            &format!("/checkout/{key}/challenge"),
            &[("otp".to_owned(), wrong.to_owned())],
        )
        .await;
    assert_eq!(status, 303);
    let (_, _, page) = shop.get_page(&location).await;
    assert!(page.contains("id=\"error\""), "a wrong code is explained");
    let (status, location, _) = shop
        .post_form(&format!("/checkout/{key}/challenge"), &[("otp".to_owned(), otp)])
        .await;
    assert_eq!(status, 303);
    assert_eq!(param(&query_of(&location), "status"), "DONE", "{location}");

    let declined = shop.start("otp-0002", 5_000).await;
    let (_, location, _) = shop.pay(&declined, "4330000000000011").await;
    let result = query_of(&location);
    assert_eq!(
        (param(&result, "status").as_str(), param(&result, "code").as_str()),
        ("FAILED", "REJECT_CARD_PAYMENT")
    );
    let message = "|otp-0002|5000|FAILED";
    assert_eq!(
        param(&result, "signature"),
        hmac_sha256_hex(&shop.key, message.as_bytes())
    );

    // A card number that fails Luhn is re-asked on the page; nothing changes.
    let retry = shop.start("otp-0003", 5_000).await;
    let (_, location, _) = shop.pay(&retry, "4330000000000004").await;
    assert!(
        location.starts_with(&format!("/checkout/{retry}")) && location.contains("error="),
        "{location}"
    );
    let (_, payment) = shop
        .api(
            reqwest::Method::GET,
            &format!("/v1/payments/{retry}"),
            &shop.secret,
            None,
        )
        .await;
    assert_eq!(payment["status"], "READY");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sdk_two_step_flow_with_a_client_key() {
    let db = TestDb::new().await;
    let (gateway, demo) = Gateway::fresh(&db, &[], &[]);
    let shop = Shop::open(&gateway, &demo).await;
    shop.register_redirect_origins(&["https://shop.example/"]).await;
    // The SDK may start a payment with the client key, and must say where the browser goes afterwards.
    let (status, body) = shop
        .api(
            reqwest::Method::POST,
            "/v1/payments",
            &shop.client,
            Some(json!({"amount": 7_000, "orderId": "sdk-0001", "orderName": "Book"})),
        )
        .await;
    assert_eq!(
        (status, body["code"].as_str(), body["reason"].as_str()),
        (400, Some("INVALID_REQUEST"), Some("MISSING_FIELD")),
        "{body}"
    );
    let create = json!({
        "amount": 7_000, "orderId": "sdk-0001", "orderName": "Book",
        "successUrl": "https://shop.example/success", "failUrl": "https://shop.example/fail"
    });
    let (status, created) = shop
        .api(reqwest::Method::POST, "/v1/payments", &shop.client, Some(create))
        .await;
    assert_eq!(status, 200, "{created}");
    let key = created["paymentKey"].as_str().unwrap().to_owned();
    let checkout = created["checkout"]["url"].as_str().unwrap();
    assert!(checkout.ends_with(&format!("/checkout/{key}")));
    // …but it can do nothing else with it.
    let (status, _) = shop
        .api(reqwest::Method::GET, &format!("/v1/payments/{key}"), &shop.client, None)
        .await;
    assert_eq!(status, 403);

    let (status, location, _) = shop.pay(&key, "5400000000000005").await;
    assert_eq!(status, 303);
    assert!(location.starts_with("https://shop.example/success?"), "{location}");
    let result = query_of(&location);
    assert_eq!(
        (param(&result, "paymentKey"), param(&result, "amount")),
        (key.clone(), "7000".to_owned())
    );
    let (_, payment) = shop
        .api(reqwest::Method::GET, &format!("/v1/payments/{key}"), &shop.secret, None)
        .await;
    assert_eq!(payment["status"], "IN_PROGRESS", "waiting for the merchant's confirm");
    let confirm = json!({"paymentKey": key, "orderId": "sdk-0001", "amount": 7_000});
    let (status, done) = shop
        .api(
            reqwest::Method::POST,
            "/v1/payments/confirm",
            &shop.secret,
            Some(confirm),
        )
        .await;
    assert_eq!(
        (status, done["status"].as_str(), done["card"]["acquirerCode"].as_str()),
        (200, Some("DONE"), Some("21"))
    );

    // A declined card goes to failUrl with the code.
    let create = json!({
        "amount": 7_000, "orderId": "sdk-0002", "orderName": "Book",
        "successUrl": "https://shop.example/success", "failUrl": "javascript:alert(1)"
    });
    let (status, body) = shop
        .api(reqwest::Method::POST, "/v1/payments", &shop.client, Some(create))
        .await;
    assert_eq!(
        (status, body["code"].as_str(), body["reason"].as_str()),
        (400, Some("INVALID_REQUEST"), Some("INVALID_URL")),
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_form_signature_covers_every_field_the_checkout_uses() {
    let db = TestDb::new().await;
    let (gateway, demo) = Gateway::fresh(&db, &[], &LOOPBACK);
    let shop = Shop::open(&gateway, &demo).await;
    let good = shop.form("sig-0001", 10_000, RETURN);
    let noti = shop.signed_with(&good, "notificationUrl", NOTI);
    let mut cases: Vec<(&str, Vec<(String, String)>)> = vec![
        (
            "a notificationUrl added",
            with(&good, "notificationUrl", "https://attacker.example/noti"),
        ),
        (
            "the notificationUrl changed",
            with(&noti, "notificationUrl", "https://attacker.example/noti"),
        ),
        (
            "the notificationUrl removed",
            noti.iter().filter(|(k, _)| k != "notificationUrl").cloned().collect(),
        ),
        ("the goodsName changed", with(&good, "goodsName", "공짜")),
    ];
    for field in ["buyerName", "buyerEmail", "buyerTel"] {
        cases.push((field, with(&good, field, "someone-else")));
    }
    // The separator cannot appear in a signed field: `a|b` + `` would sign like `a` + `b`.
    let ambiguous = shop.signed_with(&good, "goodsName", "머그컵|홍길동");
    cases.push(("a separator in a field", ambiguous));
    for (name, fields) in cases {
        let (status, _, page) = shop.post_form("/checkout", &fields).await;
        assert_eq!(status, 400, "{name}: {page}");
        assert!(page.contains("role=\"alert\""), "{name}: the buyer sees an error");
    }
    let (status, body) = shop
        .api(reqwest::Method::GET, "/v1/payments/orders/sig-0001", &shop.secret, None)
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (404, Some("NOT_FOUND_PAYMENT")),
        "nothing was created"
    );

    // Signed by the merchant, the notification URL is taken.
    let (status, _, page) = shop.post_form("/checkout", &noti).await;
    assert_eq!(status, 303, "{page}");
    let (_, payment) = shop
        .api(reqwest::Method::GET, "/v1/payments/orders/sig-0001", &shop.secret, None)
        .await;
    assert_eq!(payment["orderName"], "머그컵", "{payment}");
}

/// Starts a challenge-card checkout and returns its payment key and the sandbox issuer's code.
async fn challenged(shop: &Shop, order_id: &str) -> (String, String) {
    let key = shop.start(order_id, 5_000).await;
    let (status, location, _) = shop.pay(&key, "4330000000000078").await;
    assert_eq!((status, location.contains("/challenge")), (303, true), "{location}");
    let (_, _, page) = shop.get_page(&location).await;
    let otp = page.split("id=\"sandbox-otp\">").nth(1).unwrap()[..6].to_owned();
    (key, otp)
}

fn wrong_code(otp: &str, seed: u32) -> String {
    let code = format!("{:06}", (otp.parse::<u32>().unwrap() + 1 + seed) % 1_000_000);
    assert_ne!(code, otp);
    code
}

fn tries_left(page: &str) -> String {
    page.split("data-tries-left=\"")
        .nth(1)
        .unwrap_or_default()
        .split('"')
        .next()
        .unwrap()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_otp_page_counts_down_three_tries_then_the_payment_fails() {
    let db = TestDb::new().await;
    let (gateway, demo) = Gateway::fresh(&db, &[], &[]);
    let shop = Shop::open(&gateway, &demo).await;
    let (key, otp) = challenged(&shop, "tries-0001").await;
    let (_, _, page) = shop.get_page(&format!("/checkout/{key}/challenge?lang=en")).await;
    assert_eq!(tries_left(&page), "3", "{page}");
    assert!(page.contains("Tries left: 3"), "{page}");
    for (round, left) in [(0, "2"), (1, "1")] {
        let (status, location, _) = shop.challenge(&key, &wrong_code(&otp, round)).await;
        assert_eq!(status, 303);
        assert!(location.contains("error=otp_mismatch"), "{location}");
        let (_, _, page) = shop.get_page(&location).await;
        assert_eq!(tries_left(&page), left, "{page}");
    }
    // The third wrong code is the last try: the right one is not asked for again.
    let (status, location, _) = shop.challenge(&key, &wrong_code(&otp, 2)).await;
    assert_eq!(status, 303);
    let result = query_of(&location);
    assert_eq!(
        (param(&result, "status").as_str(), param(&result, "code").as_str()),
        ("FAILED", "AUTHENTICATION_FAILED"),
        "{location}"
    );
    let (status, again, _) = shop.challenge(&key, &otp).await;
    assert_eq!(
        (status, again.as_str()),
        (303, location.as_str()),
        "the right code comes too late"
    );
}

/// 100 guesses at once, one of them right: at most three are compared (so at most two are told "wrong, try
/// again"), every loser of the race gets a page, never a 500, and the payment is approved at most once (or, if
/// no compared answer decided it, still waits with exactly the uncompared tries left).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_otp_guesses_are_counted_before_they_are_compared() {
    let db = TestDb::new().await;
    let (gateway, demo) = Gateway::fresh(&db, &[], &[]);
    let shop = std::sync::Arc::new(Shop::open(&gateway, &demo).await);
    for burst in 0..3u32 {
        let (key, otp) = challenged(&shop, &format!("race-otp-{burst}")).await;
        let guesses: Vec<String> = (0..100u32)
            .map(|i| if i == 50 { otp.clone() } else { wrong_code(&otp, i) })
            .collect();
        let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(guesses.len()));
        let tasks: Vec<_> = guesses
            .into_iter()
            .map(|guess| {
                let (shop, key, barrier) = (shop.clone(), key.clone(), barrier.clone());
                tokio::spawn(async move {
                    barrier.wait().await;
                    shop.challenge(&key, &guess).await
                })
            })
            .collect();
        let mut answers = Vec::new();
        for task in tasks {
            answers.push(task.await.unwrap());
        }
        let errors: Vec<_> = answers.iter().filter(|(status, _, _)| *status >= 500).collect();
        assert!(
            errors.is_empty(),
            "burst {burst}: {} answers were errors: {:?}",
            errors.len(),
            errors.first()
        );
        assert!(
            answers.iter().all(|(status, _, _)| *status == 303 || *status == 200),
            "burst {burst}"
        );
        let mismatches = answers
            .iter()
            .filter(|(_, location, _)| location.contains("error=otp_mismatch"))
            .count();
        assert!(
            mismatches <= 2,
            "burst {burst}: {mismatches} wrong codes were compared and retried"
        );
        let (_, payment) = shop
            .api(reqwest::Method::GET, &format!("/v1/payments/{key}"), &shop.secret, None)
            .await;
        let status = payment["status"].as_str().unwrap().to_owned();
        assert!(
            ["READY", "DONE", "ABORTED"].contains(&status.as_str()),
            "burst {burst}: {payment}"
        );
        if status == "READY" {
            // Every answer that lost the race was neither compared nor counted: the tries left are exactly the
            // ones not used by the compared (wrong) answers.
            let (_, _, page) = shop.get_page(&format!("/checkout/{key}/challenge")).await;
            assert_eq!(tries_left(&page), (3 - mismatches).to_string(), "burst {burst}");
        }
        let (_, transactions) = shop
            .api(
                reqwest::Method::GET,
                "/v1/transactions?startDate=2000-01-01&endDate=2100-01-01",
                &shop.secret,
                None,
            )
            .await;
        let approvals = transactions
            .as_array()
            .unwrap()
            .iter()
            .filter(|t| t["paymentKey"] == key.as_str())
            .count();
        assert_eq!(approvals, usize::from(status == "DONE"), "burst {burst}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_keys_cannot_choose_the_notification_url_or_an_unregistered_redirect() {
    let db = TestDb::new().await;
    let (gateway, demo) = Gateway::fresh(&db, &[], &LOOPBACK);
    let shop = Shop::open(&gateway, &demo).await;
    let create = |order: &str, success: &str, fail: &str| json!({"amount": 1_000, "orderId": order, "orderName": "Pen", "successUrl": success, "failUrl": fail});
    let success = "https://shop.example/success";
    let fail = "https://shop.example/fail";
    // Nothing registered: no client-key payment can send the buyer anywhere.
    let (status, body) = shop
        .api(
            reqwest::Method::POST,
            "/v1/payments",
            &shop.client,
            Some(create("redir-0001", success, fail)),
        )
        .await;
    assert_eq!(
        (status, body["reason"].as_str(), body["param"].as_str()),
        (400, Some("INVALID_URL"), Some("successUrl")),
        "{body}"
    );

    shop.register_redirect_origins(&["https://Shop.Example"]).await;
    let (_, settings) = shop
        .api(reqwest::Method::GET, "/v1/merchants/me/settings", &shop.secret, None)
        .await;
    assert_eq!(
        settings["redirectOrigins"],
        json!(["https://shop.example"]),
        "{settings}"
    );
    for (name, success, fail, param) in [
        ("another host", "https://attacker.example/success", fail, "successUrl"),
        (
            "another host for failUrl",
            success,
            "https://attacker.example/fail",
            "failUrl",
        ),
        (
            "credentials before the host",
            "https://shop.example@attacker.example/",
            fail,
            "successUrl",
        ),
        (
            "a longer host",
            "https://shop.example.attacker.example/",
            fail,
            "successUrl",
        ),
        ("another scheme", "http://shop.example/success", fail, "successUrl"),
        ("another port", "https://shop.example:8443/success", fail, "successUrl"),
    ] {
        let (status, body) = shop
            .api(
                reqwest::Method::POST,
                "/v1/payments",
                &shop.client,
                Some(create("redir-0002", success, fail)),
            )
            .await;
        assert_eq!(
            (status, body["reason"].as_str(), body["param"].as_str()),
            (400, Some("INVALID_URL"), Some(param)),
            "{name}: {body}"
        );
    }
    let mut with_noti = create("redir-0002", success, fail);
    with_noti["notificationUrl"] = json!("https://attacker.example/noti");
    let (status, body) = shop
        .api(reqwest::Method::POST, "/v1/payments", &shop.client, Some(with_noti))
        .await;
    assert_eq!(
        (status, body["reason"].as_str(), body["param"].as_str()),
        (400, Some("INVALID_FIELD_VALUE"), Some("notificationUrl")),
        "{body}"
    );
    let (status, body) = shop
        .api(
            reqwest::Method::POST,
            "/v1/payments",
            &shop.client,
            Some(create("redir-0002", "https://SHOP.example/ok?x=1", fail)),
        )
        .await;
    assert_eq!(status, 200, "a registered origin is accepted: {body}");
    // The merchant's own server is trusted with both.
    let mut from_server = create("redir-0003", "https://elsewhere.example/success", fail);
    from_server["notificationUrl"] = json!(NOTI);
    let (status, body) = shop
        .api(reqwest::Method::POST, "/v1/payments", &shop.secret, Some(from_server))
        .await;
    assert_eq!(status, 200, "{body}");
    // Origins are origins.
    for bad in [
        json!(["https://shop.example/path"]),
        json!(["javascript:alert(1)"]),
        json!(["shop.example"]),
    ] {
        let (status, body) = shop
            .api(
                reqwest::Method::PATCH,
                "/v1/merchants/me/settings",
                &shop.secret,
                Some(json!({"redirectOrigins": bad})),
            )
            .await;
        assert_eq!(
            (status, body["param"].as_str()),
            (400, Some("redirectOrigins")),
            "{body}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secret_key_payment_without_urls_ends_on_paygates_result_page() {
    let db = TestDb::new().await;
    let (gateway, demo) = Gateway::fresh(&db, &[], &[]);
    let shop = Shop::open(&gateway, &demo).await;
    for (order, card, outcome) in [
        ("nourl-0001", "4330000000000003", "AUTHENTICATED"),
        ("nourl-0002", "4330000000000078", "FAILED"),
    ] {
        let (status, created) = shop
            .api(
                reqwest::Method::POST,
                "/v1/payments",
                &shop.secret,
                Some(json!({"amount": 3_000, "orderId": order, "orderName": "Cup"})),
            )
            .await;
        assert_eq!(status, 200, "{created}");
        let key = created["paymentKey"].as_str().unwrap().to_owned();
        let (mut status, mut location, mut page) = shop.pay(&key, card).await;
        if outcome == "FAILED" {
            // The challenge card, and three wrong codes.
            let (_, _, challenge) = shop.get_page(&location).await;
            let otp = challenge.split("id=\"sandbox-otp\">").nth(1).unwrap()[..6].to_owned();
            for round in 0..3 {
                (status, location, page) = shop.challenge(&key, &wrong_code(&otp, round)).await;
            }
        }
        assert_eq!(
            status, 200,
            "paygate shows the result itself, no redirect to {location:?}"
        );
        assert!(page.contains(&format!("data-outcome=\"{outcome}\"")), "{page}");
        if outcome == "FAILED" {
            assert!(page.contains("AUTHENTICATION_FAILED"), "{page}");
        }
        // A reload shows the same page.
        let (status, _, again) = shop.get_page(&format!("/checkout/{key}")).await;
        assert_eq!(status, 200);
        assert!(again.contains(&format!("data-outcome=\"{outcome}\"")), "{again}");
    }
}
