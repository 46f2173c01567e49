//! What one operation of each scenario sends, and what its answer must be. A wrong answer (a status, a field, an
//! order that is not what the API promises) is an error, exactly like a failed request.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use anyhow::{bail, Result};
use base64::Engine;
use paygate_domain::id::TransactionKey;
use paygate_domain::time::UnixMillis;
use rand::Rng;
use serde_json::{json, Value};

/// One kind of operation. A checkout is three requests (create, the buyer's authentication, confirm) timed as one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, clap::ValueEnum)]
pub enum Op {
    /// `POST /v1/payments/key-in`: one approval.
    KeyIn,
    /// `POST /v1/payments` → `POST /v1/checkout/{key}/authenticate` → `POST /v1/payments/confirm`.
    Checkout,
    /// `POST /v1/payments/{key}/cancel` of a preloaded DONE payment (full cancel).
    Cancel,
    /// `GET /v1/transactions` page of 100 from a random point of the preloaded history.
    History,
    /// `GET /v1/payments/{key}` of a preloaded payment.
    Lookup,
    /// `GET /v1/merchants/me`: authentication and the framework, no payment work (the ceiling).
    Noop,
}

impl Op {
    pub fn as_str(self) -> &'static str {
        match self {
            Op::KeyIn => "key-in",
            Op::Checkout => "checkout",
            Op::Cancel => "cancel",
            Op::History => "history",
            Op::Lookup => "lookup",
            Op::Noop => "noop",
        }
    }
}

/// A scenario: which operations, in which proportions (weights sum to anything).
#[derive(Clone, Debug)]
pub struct Workload {
    pub name: String,
    pub ops: Vec<(Op, u32)>,
}

impl Workload {
    pub fn single(op: Op) -> Workload {
        Workload {
            name: op.as_str().to_owned(),
            ops: vec![(op, 1)],
        }
    }

    /// The mix: 60% create+confirm, 5% cancel, 25% history, 10% lookups.
    pub fn mix() -> Workload {
        Workload {
            name: "mix".into(),
            ops: vec![(Op::Checkout, 60), (Op::Cancel, 5), (Op::History, 25), (Op::Lookup, 10)],
        }
    }

    /// The operation for arrival number `seq`: a deterministic interleaving that honours the weights exactly over
    /// every `sum(weights)` arrivals (no randomness, so two runs send the same sequence).
    pub fn pick(&self, seq: u64) -> Op {
        let total: u64 = self.ops.iter().map(|(_, w)| u64::from(*w)).sum::<u64>().max(1);
        // Spread the slots: multiply by a constant coprime with common totals so kinds interleave.
        let slot = seq.wrapping_mul(37) % total;
        let mut acc = 0u64;
        for (op, weight) in &self.ops {
            acc += u64::from(*weight);
            if slot < acc {
                return *op;
            }
        }
        self.ops.first().map(|(op, _)| *op).unwrap_or(Op::Noop)
    }

    pub fn needs(&self, op: Op) -> bool {
        self.ops.iter().any(|(o, w)| *o == op && *w > 0)
    }

    /// The share of arrivals that are `op`.
    pub fn share(&self, op: Op) -> f64 {
        let total: u32 = self.ops.iter().map(|(_, w)| *w).sum();
        let this: u32 = self.ops.iter().filter(|(o, _)| *o == op).map(|(_, w)| *w).sum();
        if total == 0 {
            0.0
        } else {
            f64::from(this) / f64::from(total)
        }
    }
}

/// Everything the operations share: the HTTP client, the keys, and the preloaded data.
pub struct Ctx {
    pub http: reqwest::Client,
    pub base: String,
    secret_auth: String,
    client_auth: String,
    /// A prefix unique to this run, so orderIds never collide with an earlier run on the same database.
    run: String,
    seq: AtomicU64,
    pub idempotency_keys: bool,
    /// DONE payments nobody has cancelled yet (cancels consume them).
    cancelable: Mutex<Vec<String>>,
    /// Payments to look up.
    lookups: Vec<String>,
    /// The time span the preloaded transactions were created in (cursors for history pages are drawn from it).
    history_span: Option<(i64, i64)>,
}

pub const CARD: &str = "4330000000000003";

tokio::task_local! {
    /// Time the gateway itself says it spent on the current operation's requests (`Server-Timing: gateway;dur=`),
    /// in µs. Set by the load generator around each operation; it tells a stall inside the gateway from one on the
    /// way to it (connection set-up, the harness's own scheduling).
    pub static SERVER_US: std::cell::Cell<u64>;
}

/// `"12.345"` (milliseconds, as Server-Timing writes them) → 12,345 µs, without floating point.
fn millis_text_to_micros(text: &str) -> Option<u64> {
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    let whole: u64 = whole.parse().ok()?;
    let mut micros = whole.checked_mul(1_000)?;
    let mut scale = 100u64;
    for digit in fraction.chars().take(3) {
        micros = micros.checked_add(u64::from(digit.to_digit(10)?) * scale)?;
        scale /= 10;
    }
    Some(micros)
}

fn note_server_timing(response: &reqwest::Response) {
    let Some(value) = response.headers().get("server-timing").and_then(|v| v.to_str().ok()) else {
        return;
    };
    let micros = value
        .split(',')
        .find_map(|metric| metric.trim().strip_prefix("gateway;dur="))
        .and_then(|ms| millis_text_to_micros(ms.trim()));
    if let Some(micros) = micros {
        let _ = SERVER_US.try_with(|total| total.set(total.get().saturating_add(micros)));
    }
}

fn basic(key: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{key}:"))
    )
}

pub fn http_client(pool: usize) -> Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .pool_max_idle_per_host(pool)
        .pool_idle_timeout(Duration::from_secs(90))
        .timeout(Duration::from_secs(30))
        .tcp_nodelay(true)
        .build()?)
}

impl Ctx {
    pub fn new(http: reqwest::Client, base: &str, secret_key: &str, client_key: &str, idempotency_keys: bool) -> Ctx {
        Ctx {
            http,
            base: base.to_owned(),
            secret_auth: basic(secret_key),
            client_auth: basic(client_key),
            run: crate::procs::random_hex(4),
            seq: AtomicU64::new(0),
            idempotency_keys,
            cancelable: Mutex::new(Vec::new()),
            lookups: Vec::new(),
            history_span: None,
        }
    }

    pub fn set_fixtures(&mut self, keys: Vec<String>, span: (i64, i64)) {
        self.lookups = keys.clone();
        self.cancelable = Mutex::new(keys);
        self.history_span = Some(span);
    }

    pub fn cancelable_left(&self) -> usize {
        self.cancelable.lock().map(|v| v.len()).unwrap_or(0)
    }

    fn next_order(&self) -> (String, i64) {
        let seq = self.seq.fetch_add(1, Ordering::Relaxed);
        let amount = 1_000 + i64::try_from(seq % 9_000).unwrap_or(0) * 10;
        (format!("b{}-{seq:08}", self.run), amount)
    }

    async fn post(&self, path: &str, auth: &str, body: &Value) -> Result<(u16, Value)> {
        self.post_with(path, auth, body, self.idempotency_keys).await
    }

    async fn post_with(&self, path: &str, auth: &str, body: &Value, idempotency_key: bool) -> Result<(u16, Value)> {
        let mut request = self
            .http
            .post(format!("{}{path}", self.base))
            .header("authorization", auth)
            .json(body);
        if idempotency_key {
            request = request.header("idempotency-key", format!("ik-{}", crate::procs::random_hex(12)));
        }
        let response = request.send().await?;
        note_server_timing(&response);
        let status = response.status().as_u16();
        let body = response.json::<Value>().await.unwrap_or(Value::Null);
        Ok((status, body))
    }

    async fn get(&self, path: &str) -> Result<(u16, Value)> {
        let response = self
            .http
            .get(format!("{}{path}", self.base))
            .header("authorization", &self.secret_auth)
            .send()
            .await?;
        note_server_timing(&response);
        let status = response.status().as_u16();
        let body = response.json::<Value>().await.unwrap_or(Value::Null);
        Ok((status, body))
    }

    /// One key-in approval; returns the paymentKey.
    pub async fn key_in(&self) -> Result<String> {
        self.key_in_with(self.idempotency_keys).await
    }

    /// A key-in for preloading: no Idempotency-Key (a backfill script's choice; it is setup, not measured).
    pub async fn preload_key_in(&self) -> Result<String> {
        self.key_in_with(false).await
    }

    async fn key_in_with(&self, idempotency_key: bool) -> Result<String> {
        let (order_id, amount) = self.next_order();
        let (status, body) = self
            .post_with(
                "/v1/payments/key-in",
                &self.secret_auth,
                &json!({
                    "amount": amount, "orderId": order_id, "orderName": "bench",
                    "cardNumber": CARD, "cardExpirationYear": "29", "cardExpirationMonth": "12",
                    "customerIdentityNumber": "900101"
                }),
                idempotency_key,
            )
            .await?;
        expect(status == 200, "key-in status", status, &body)?;
        expect(body["status"] == "DONE", "key-in payment status", status, &body)?;
        expect(body["orderId"] == order_id.as_str(), "key-in orderId", status, &body)?;
        expect(body["totalAmount"] == amount, "key-in totalAmount", status, &body)?;
        payment_key(&body)
    }

    async fn checkout(&self) -> Result<()> {
        let (order_id, amount) = self.next_order();
        let (status, created) = self
            .post(
                "/v1/payments",
                &self.secret_auth,
                &json!({"amount": amount, "orderId": order_id, "orderName": "bench"}),
            )
            .await?;
        expect(
            status == 200 && created["status"] == "READY",
            "create",
            status,
            &created,
        )?;
        let key = payment_key(&created)?;
        let (status, authenticated) = self
            .post(
                &format!("/v1/checkout/{key}/authenticate"),
                &self.client_auth,
                &json!({"cardNumber": CARD, "cardExpirationYear": "29", "cardExpirationMonth": "12",
                        "cardInstallmentPlan": 0}),
            )
            .await?;
        expect(
            status == 200 && authenticated["status"] == "IN_PROGRESS",
            "authenticate",
            status,
            &authenticated,
        )?;
        let (status, confirmed) = self
            .post(
                "/v1/payments/confirm",
                &self.secret_auth,
                &json!({"paymentKey": key, "orderId": order_id, "amount": amount}),
            )
            .await?;
        expect(
            status == 200 && confirmed["status"] == "DONE",
            "confirm",
            status,
            &confirmed,
        )?;
        expect(
            confirmed["totalAmount"] == amount,
            "confirm totalAmount",
            status,
            &confirmed,
        )?;
        Ok(())
    }

    async fn cancel(&self) -> Result<()> {
        let key = self.cancelable.lock().ok().and_then(|mut v| v.pop());
        let Some(key) = key else {
            bail!("preload exhausted: no DONE payment left to cancel (raise --preload)")
        };
        let (status, body) = self
            .post(
                &format!("/v1/payments/{key}/cancel"),
                &self.secret_auth,
                &json!({"cancelReason": "bench"}),
            )
            .await?;
        expect(status == 200 && body["status"] == "CANCELED", "cancel", status, &body)?;
        expect(body["balanceAmount"] == 0, "cancel balance", status, &body)?;
        Ok(())
    }

    async fn lookup(&self) -> Result<()> {
        if self.lookups.is_empty() {
            bail!("nothing preloaded to look up (raise --preload)");
        }
        let index = rand::rng().random_range(0..self.lookups.len());
        let key = &self.lookups[index];
        let (status, body) = self.get(&format!("/v1/payments/{key}")).await?;
        expect(
            status == 200 && body["paymentKey"] == key.as_str(),
            "lookup",
            status,
            &body,
        )?;
        Ok(())
    }

    async fn history(&self) -> Result<()> {
        let Some((from, until)) = self.history_span else {
            bail!("nothing preloaded to page through (raise --preload)")
        };
        // A cursor at a random instant of the preloaded span: the page starts there, as a merchant paging through
        // its history would be anywhere in it.
        // The last tenth of the span is left out, so a page always has transactions after its cursor.
        let end = (until - (until - from) / 10).max(from + 1);
        let at = rand::rng().random_range(from..end);
        let cursor = TransactionKey::new(UnixMillis::new(at), [0u8; 10]).to_string();
        let (status, body) = self
            .get(&format!(
                "/v1/transactions?startDate=2000-01-01&endDate=2099-12-31&limit=100&startingAfter={cursor}"
            ))
            .await?;
        expect(status == 200, "history status", status, &body)?;
        let Some(items) = body.as_array() else {
            bail!("history: not a list: {body}")
        };
        expect(
            !items.is_empty() && items.len() <= 100,
            "history page size",
            status,
            &Value::Null,
        )?;
        let mut previous = cursor;
        for item in items {
            let key = item["transactionKey"].as_str().unwrap_or_default().to_owned();
            if key <= previous {
                bail!("history: {key} does not follow {previous}");
            }
            previous = key;
        }
        Ok(())
    }

    async fn noop(&self) -> Result<()> {
        let (status, body) = self.get("/v1/merchants/me").await?;
        expect(status == 200 && body["mId"].is_string(), "merchants/me", status, &body)
    }

    pub async fn run(&self, op: Op) -> Result<()> {
        match op {
            Op::KeyIn => self.key_in().await.map(|_| ()),
            Op::Checkout => self.checkout().await,
            Op::Cancel => self.cancel().await,
            Op::History => self.history().await,
            Op::Lookup => self.lookup().await,
            Op::Noop => self.noop().await,
        }
    }
}

fn payment_key(body: &Value) -> Result<String> {
    match body["paymentKey"].as_str() {
        Some(key) if key.starts_with("pay_") => Ok(key.to_owned()),
        _ => bail!("no paymentKey in {body}"),
    }
}

/// An error class for the report: the check that failed and the status (bodies vary, classes should not).
fn expect(ok: bool, what: &str, status: u16, body: &Value) -> Result<()> {
    if ok {
        Ok(())
    } else {
        let code = body["code"].as_str().unwrap_or("");
        bail!("{what}: HTTP {status} {code}")
    }
}

pub fn now_millis() -> i64 {
    i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or(0),
    )
    .unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_timing_milliseconds_become_micros() {
        assert_eq!(millis_text_to_micros("12.345"), Some(12_345));
        assert_eq!(millis_text_to_micros("0.5"), Some(500));
        assert_eq!(millis_text_to_micros("7"), Some(7_000));
        assert_eq!(millis_text_to_micros("1.23456"), Some(1_234));
        assert_eq!(millis_text_to_micros("x"), None);
        assert_eq!(millis_text_to_micros("-1.0"), None);
    }

    #[test]
    fn the_mix_honours_its_weights_exactly() {
        let mix = Workload::mix();
        let mut counts = std::collections::HashMap::new();
        for seq in 0..1_000 {
            *counts.entry(mix.pick(seq)).or_insert(0) += 1;
        }
        assert_eq!(counts[&Op::Checkout], 600);
        assert_eq!(counts[&Op::Cancel], 50);
        assert_eq!(counts[&Op::History], 250);
        assert_eq!(counts[&Op::Lookup], 100);
        // Interleaved, not in blocks: the first 20 arrivals hold more than one kind.
        let first: std::collections::HashSet<_> = (0..20).map(|s| mix.pick(s)).collect();
        assert!(first.len() >= 3, "{first:?}");
        assert!((mix.share(Op::Cancel) - 0.05).abs() < 1e-9);
    }
}
