//! The outbox end to end over the real binary: signed webhooks and their delivery log over the API, the SSRF guard,
//! delivery after a kill -9, and several gateways sharing one outbox. The retry schedules themselves (the
//! notification URL's interval and maximum, webhook retries, disabling an endpoint) are tested in process on a
//! manual clock: `crates/paygate-app/tests/outbox.rs`.

#![allow(clippy::unwrap_used)]

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::post;
use base64::Engine;
use common::{http, Gateway, TestDb};
use serde_json::{json, Value};

/// One request the receiver got.
#[derive(Clone, Debug)]
struct Call {
    headers: HeaderMap,
    body: Bytes,
}

/// A merchant server: answers each call with the next scripted body (the last one repeats).
#[derive(Clone)]
struct Receiver {
    calls: Arc<Mutex<Vec<Call>>>,
    script: Arc<Vec<(u16, &'static str)>>,
    url: String,
}

impl Receiver {
    async fn start(script: Vec<(u16, &'static str)>) -> Receiver {
        let calls = Arc::new(Mutex::new(Vec::new()));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let receiver = Receiver {
            calls,
            script: Arc::new(script),
            url,
        };
        let app = axum::Router::new()
            .route("/hook", post(answer))
            .with_state(receiver.clone());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        receiver
    }

    fn calls(&self) -> Vec<Call> {
        self.calls.lock().unwrap().clone()
    }

    async fn wait_for(&self, count: usize) -> Vec<Call> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let calls = self.calls();
            if calls.len() >= count {
                return calls;
            }
            assert!(
                Instant::now() < deadline,
                "only {} of {count} calls arrived",
                calls.len()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

async fn answer(
    State(receiver): State<Receiver>,
    headers: HeaderMap,
    body: Bytes,
) -> (axum::http::StatusCode, &'static str) {
    let index = {
        let mut calls = receiver.calls.lock().unwrap();
        calls.push(Call { headers, body });
        calls.len() - 1
    };
    let (status, text) = receiver.script[index.min(receiver.script.len() - 1)];
    (axum::http::StatusCode::from_u16(status).unwrap(), text)
}

const INTERVAL_MS: u64 = 200;

fn env() -> Vec<(&'static str, String)> {
    vec![
        ("PAYGATE_OUTBOX__ALLOW_LOOPBACK", "true".into()),
        ("PAYGATE_OUTBOX__NOTIFICATION_INTERVAL_MS", INTERVAL_MS.to_string()),
        ("PAYGATE_OUTBOX__WORKER_INTERVAL_MS", "20".into()),
        ("PAYGATE_OUTBOX__WEBHOOK_RETRY_SCHEDULE_SECS", "[1,1]".into()),
        ("PAYGATE_PAYMENTS__WORKER_INTERVAL_MS", "50".into()),
    ]
}

struct Merchant {
    base: String,
    auth: String,
}

impl Merchant {
    async fn send(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut request = http()
            .request(method, format!("{}{path}", self.base))
            .header("authorization", &self.auth);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// GETs `path` until `done` holds (the worker records an attempt just after the receiver answers it).
    async fn poll(&self, path: &str, done: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let (_, body) = self.send(reqwest::Method::GET, path, None).await;
            if done(&body) {
                return body;
            }
            assert!(Instant::now() < deadline, "{path} never settled: {body}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn pay(&self, order_id: &str, notification_url: Option<&str>) -> Value {
        let mut body = json!({
            "amount": 15_000, "orderId": order_id, "orderName": "T-shirt", "cardNumber": "4330000000000003",
            "cardExpirationYear": "29", "cardExpirationMonth": "12", "customerIdentityNumber": "900101"
        });
        if let Some(url) = notification_url {
            body["notificationUrl"] = json!(url);
        }
        let (status, payment) = self
            .send(reqwest::Method::POST, "/v1/payments/key-in", Some(body))
            .await;
        assert_eq!(status, 200, "{payment}");
        payment
    }
}

fn start(db: &TestDb) -> (Gateway, Merchant) {
    let env = env();
    let refs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (gateway, demo) = Gateway::fresh(db, &[], &refs);
    let auth = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{}:", demo.secret_key))
    );
    let merchant = Merchant {
        base: gateway.url(""),
        auth,
    };
    (gateway, merchant)
}

fn form_fields(body: &[u8]) -> Vec<(String, String)> {
    url_decode_pairs(std::str::from_utf8(body).unwrap())
}

fn url_decode_pairs(text: &str) -> Vec<(String, String)> {
    let decode = |s: &str| {
        let s = s.replace('+', " ");
        let mut out = Vec::new();
        let bytes = s.as_bytes();
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i] == b'%' && i + 2 < bytes.len() {
                out.push(u8::from_str_radix(&s[i + 1..i + 3], 16).unwrap());
                i += 3;
            } else {
                out.push(bytes[i]);
                i += 1;
            }
        }
        String::from_utf8(out).unwrap()
    };
    text.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (decode(k), decode(v))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_are_signed_per_standard_webhooks_and_logged() {
    let db = TestDb::new().await;
    let receiver = Receiver::start(vec![(503, "busy"), (204, "")]).await;
    let (_gateway, merchant) = start(&db);
    let (status, endpoint) = merchant
        .send(
            reqwest::Method::POST,
            "/v1/webhooks",
            Some(json!({"url": receiver.url, "eventTypes": ["PAYMENT_STATUS_CHANGED"]})),
        )
        .await;
    assert_eq!(status, 200, "{endpoint}");
    let secret = endpoint["secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("whsec_"));
    let endpoint_id = endpoint["id"].as_str().unwrap().to_owned();
    let (_, listed) = merchant.send(reqwest::Method::GET, "/v1/webhooks", None).await;
    assert!(listed[0]["secret"].is_null(), "the secret is shown once");

    let payment = merchant.pay("hook-0001", None).await;
    let calls = receiver.wait_for(2).await;
    let call = &calls[1];
    let header = |name: &str| call.headers[name].to_str().unwrap().to_owned();
    let secrets = [paygate_outbound::WebhookSecret::parse(&secret).unwrap()];
    let now = i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs(),
    )
    .unwrap();
    paygate_outbound::verify(
        &secrets,
        (
            &header("webhook-id"),
            &header("webhook-timestamp"),
            &header("webhook-signature"),
        ),
        &call.body,
        now,
        300,
    )
    .unwrap();
    let envelope: Value = serde_json::from_slice(&call.body).unwrap();
    assert_eq!(envelope["type"], "PAYMENT_STATUS_CHANGED");
    assert_eq!(envelope["previousStatus"], "IN_PROGRESS");
    assert_eq!(envelope["data"]["status"], "DONE");
    assert_eq!(envelope["data"]["paymentKey"], payment["paymentKey"]);
    assert_eq!(header("webhook-id"), envelope["id"].as_str().unwrap());
    // The retry kept the same webhook-id, so receivers can deduplicate.
    assert_eq!(calls[0].headers["webhook-id"], calls[1].headers["webhook-id"]);

    let deliveries = merchant
        .poll(&format!("/v1/webhooks/{endpoint_id}/deliveries"), |list: &Value| {
            list.as_array()
                .is_some_and(|l| l.iter().any(|d| d["status"] == "SUCCEEDED"))
        })
        .await;
    let delivered = deliveries
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["status"] == "SUCCEEDED");
    let delivered = delivered.unwrap();
    assert_eq!(delivered["attempts"], 2, "{deliveries}");
    let codes: Vec<u64> = delivered["attemptLog"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["statusCode"].as_u64().unwrap())
        .collect();
    assert_eq!(codes, vec![503, 204]);
    assert_eq!(delivered["attemptLog"][0]["responseBody"], "busy");

    // A rolled secret: the next webhook carries both signatures during the overlap.
    let (_, rolled) = merchant
        .send(
            reqwest::Method::POST,
            &format!("/v1/webhooks/{endpoint_id}/secret/roll"),
            Some(json!({})),
        )
        .await;
    let new_secret = rolled["secret"].as_str().unwrap().to_owned();
    assert_ne!(new_secret, secret);
    let (_, _) = merchant
        .send(
            reqwest::Method::POST,
            &format!("/v1/payments/{}/cancel", payment["paymentKey"].as_str().unwrap()),
            Some(json!({"cancelReason": "test"})),
        )
        .await;
    let calls = receiver.wait_for(3).await;
    let signature = calls[2].headers["webhook-signature"].to_str().unwrap().to_owned();
    assert_eq!(signature.split(' ').count(), 2, "{signature}");
    for text in [&secret, &new_secret] {
        let secrets = [paygate_outbound::WebhookSecret::parse(text).unwrap()];
        let h = |name: &str| calls[2].headers[name].to_str().unwrap().to_owned();
        paygate_outbound::verify(
            &secrets,
            (&h("webhook-id"), &h("webhook-timestamp"), &h("webhook-signature")),
            &calls[2].body,
            now,
            300,
        )
        .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ssrf_guard_refuses_internal_destinations_at_registration() {
    let db = TestDb::new().await;
    // A gateway without the loopback allowance: what production runs.
    let (gateway, demo) = Gateway::fresh(&db, &[], &[]);
    let merchant = Merchant {
        base: gateway.url(""),
        auth: format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{}:", demo.secret_key))
        ),
    };
    let refused = [
        "http://127.0.0.1:9/hook",
        "http://localhost/hook",
        "http://169.254.169.254/latest/meta-data/",
        "http://10.0.0.1/",
        "http://192.168.1.1/",
        "http://100.64.0.1/",
        "http://[::1]/",
        "http://[::ffff:127.0.0.1]/",
        "http://2130706433/",
        "http://0x7f000001/",
        "http://0177.0.0.1/",
        "http://user:pass@example.com/",
        "ftp://example.com/",
    ];
    for url in refused {
        let (status, body) = merchant
            .send(
                reqwest::Method::POST,
                "/v1/webhooks",
                Some(json!({"url": url, "eventTypes": ["PAYMENT_STATUS_CHANGED"]})),
            )
            .await;
        assert_eq!(
            (status, body["code"].as_str(), body["reason"].as_str()),
            (400, Some("INVALID_REQUEST"), Some("INVALID_URL")),
            "{url}: {body}"
        );
        let (status, body) = merchant
            .send(
                reqwest::Method::PATCH,
                "/v1/merchants/me/settings",
                Some(json!({"notificationUrl": url})),
            )
            .await;
        assert_eq!(
            (status, body["code"].as_str(), body["reason"].as_str()),
            (400, Some("INVALID_REQUEST"), Some("INVALID_URL")),
            "{url}: {body}"
        );
    }
    let (_, listed) = merchant.send(reqwest::Method::GET, "/v1/webhooks", None).await;
    assert_eq!(listed.as_array().unwrap().len(), 0, "nothing was registered");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_committed_before_a_kill_9_are_delivered_after_restart() {
    let db = TestDb::new().await;
    let receiver = Receiver::start(vec![(200, "SUCCESS")]).await;
    // First life: the delivery worker makes its first pass at start, then sleeps for ten minutes.
    let mut env = env();
    env.retain(|(k, _)| *k != "PAYGATE_OUTBOX__WORKER_INTERVAL_MS");
    env.push(("PAYGATE_OUTBOX__WORKER_INTERVAL_MS", "600000".into()));
    let refs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (mut gateway, demo) = Gateway::fresh(&db, &[], &refs);
    let merchant = Merchant {
        base: gateway.url(""),
        auth: format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{}:", demo.secret_key))
        ),
    };
    merchant
        .send(
            reqwest::Method::PATCH,
            "/v1/merchants/me/settings",
            Some(json!({"notificationUrl": receiver.url})),
        )
        .await;
    let mut keys = Vec::new();
    for index in 0..5 {
        keys.push(
            merchant.pay(&format!("kill-{index:04}"), None).await["paymentKey"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(receiver.calls().is_empty(), "nothing was delivered before the crash");
    gateway.child.kill().unwrap();
    gateway.child.wait().unwrap();

    // Second life, with the normal worker: every committed event arrives.
    let env = env_refs_owned();
    let refs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let _restarted = Gateway::start(gateway.data_dir.clone(), &db, &[], &refs);
    let calls = receiver.wait_for(5).await;
    let mut delivered: Vec<String> = calls
        .iter()
        .map(|c| {
            form_fields(&c.body)
                .into_iter()
                .find(|(k, _)| k == "paymentKey")
                .unwrap()
                .1
        })
        .collect();
    delivered.sort();
    keys.sort();
    assert_eq!(delivered, keys);
}

fn env_refs_owned() -> Vec<(&'static str, String)> {
    env()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_gateways_deliver_five_thousand_events_once_each() {
    const EVENTS: usize = 5_000;
    let db = TestDb::new().await;
    let receiver = Receiver::start(vec![(204, "")]).await;
    let mut env = env();
    env.push(("PAYGATE_RATE_LIMIT__PER_KEY_PER_SECOND", "0".into()));
    env.push(("PAYGATE_LOG__LEVEL", "warn".into()));
    let refs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (first, demo) = Gateway::fresh(&db, &[], &refs);
    let second = Gateway::start(first.data_dir.clone(), &db, &[], &refs);
    let third = Gateway::start(first.data_dir.clone(), &db, &[], &refs);
    let auth = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{}:", demo.secret_key))
    );
    let merchant = Merchant {
        base: first.url(""),
        auth: auth.clone(),
    };
    let (status, _) = merchant
        .send(
            reqwest::Method::POST,
            "/v1/webhooks",
            Some(json!({"url": receiver.url, "eventTypes": ["PAYMENT_STATUS_CHANGED"]})),
        )
        .await;
    assert_eq!(status, 200);
    let bases = Arc::new([first.url(""), second.url(""), third.url("")]);
    let permits = Arc::new(tokio::sync::Semaphore::new(32));
    let mut tasks = Vec::new();
    for index in 0..EVENTS {
        let permit = permits.clone().acquire_owned().await.unwrap();
        let bases = bases.clone();
        let auth = auth.clone();
        tasks.push(tokio::spawn(async move {
            let body = json!({
                "amount": 1_000, "orderId": format!("many-{index:06}"), "orderName": "Load",
                "cardNumber": "4330000000000003", "cardExpirationYear": "29", "cardExpirationMonth": "12"
            });
            let response = http()
                .post(format!("{}/v1/payments/key-in", bases[index % 3]))
                .header("authorization", auth)
                .json(&body)
                .send()
                .await
                .unwrap();
            drop(permit);
            assert_eq!(response.status().as_u16(), 200);
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let calls = receiver.calls();
        if calls.len() >= EVENTS {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{} of {EVENTS} events delivered",
            calls.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Let any duplicate (a bug) arrive before counting.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let calls = receiver.calls();
    let mut ids: Vec<String> = calls
        .iter()
        .map(|c| c.headers["webhook-id"].to_str().unwrap().to_owned())
        .collect();
    ids.sort();
    ids.dedup();
    eprintln!(
        "{EVENTS} events over 3 gateways: {} deliveries received, {} distinct",
        calls.len(),
        ids.len()
    );
    assert_eq!(ids.len(), EVENTS, "every event delivered");
    assert_eq!(calls.len(), EVENTS, "none delivered twice");
}
