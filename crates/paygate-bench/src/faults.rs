//! Fault scenarios. Each runs the real binaries (gateway and acquirer simulator in their own processes), does
//! something hostile, then checks the invariants and prints a verdict with its figures:
//!
//! * `storm`: 100 concurrent identical requests for each of 50 Idempotency-Keys over two gateway processes on one
//!   database → exactly 50 approvals at the acquirer, one stored answer per key.
//! * `kill9`: 20 deaths of the gateway under load — SIGKILL at random moments and aborts at fail points between
//!   "acquirer called" and "result committed", on the approval path and the cancel path in turn — each followed by
//!   a restart; merchants retry with the same Idempotency-Key. Every 4th approved payment is canceled by its
//!   merchant (fully, partially, partially twice, or partially then for the rest), each cancel under its own key and
//!   retried until answered. Afterwards: no acknowledged payment lost, no double approval at the acquirer, no
//!   order acknowledged only by a lookup, every payment final and matching the acquirer's journal one for one,
//!   every acknowledged cancel applied exactly once at paygate and at the acquirer (same reference, same amount),
//!   no cancel nobody asked for, no retry answered wrongly, balances and statuses following the cancels, the
//!   ledger balanced.
//! * `acquirer`: 10% timeouts and 10% lost answers → every payment final, the time it took, reconciled one for one.
//! * `bank`: virtual accounts paid through the in-process sandbox bank with 10% of deposit notifications lost, 10%
//!   duplicated and 10% delayed → every payment DONE, one deposit at the bank per account and the amount asked, no
//!   held deposit, the ledger balanced.
//! * `db-restart`: PostgreSQL stopped and started under load → no acknowledged payment missing, same checks.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use base64::Engine;
use rand::Rng;
use serde_json::{json, Value};

use crate::procs::{free_port, paygate_cli, random_hex, Backend, Database, Gateway, GatewayArgs, Setup, Simulator};

#[derive(clap::Args, Clone)]
pub struct FaultArgs {
    #[command(subcommand)]
    scenario: Scenario,
    #[command(flatten)]
    setup: Setup,
    /// The short version run by CI (smaller counts, same checks).
    #[arg(long, global = true)]
    quick: bool,
}

#[derive(clap::Subcommand, Clone)]
enum Scenario {
    /// 100 concurrent identical requests × 50 Idempotency-Keys over two gateways → exactly 50 approvals.
    Storm {
        #[arg(long)]
        keys: Option<usize>,
        #[arg(long, default_value_t = 100)]
        copies: usize,
    },
    /// SIGKILLs and fail-point aborts under load, each followed by a restart.
    Kill9 {
        #[arg(long)]
        kills: Option<usize>,
        /// Merchants sending at once (each retries its own order until it gets an answer).
        #[arg(long, default_value_t = 32)]
        concurrency: usize,
    },
    /// Payments through 10% acquirer timeouts and 10% lost answers.
    Acquirer {
        #[arg(long)]
        payments: Option<usize>,
        #[arg(long, default_value_t = 32)]
        concurrency: usize,
        #[arg(long, default_value_t = 7)]
        seed: u64,
    },
    /// Virtual accounts paid through 10% lost, 10% duplicated and 10% delayed deposit notifications.
    Bank {
        #[arg(long)]
        accounts: Option<usize>,
        #[arg(long, default_value_t = 16)]
        concurrency: usize,
        #[arg(long, default_value_t = 7)]
        seed: u64,
    },
    /// PostgreSQL stopped and started under load (PostgreSQL backend only).
    DbRestart {
        /// Shell command that stops the server (default: pg_ctlcluster <newest> main stop -m fast).
        #[arg(long)]
        stop_cmd: Option<String>,
        /// Shell command that starts it again.
        #[arg(long)]
        start_cmd: Option<String>,
        /// Seconds the server stays down.
        #[arg(long, default_value_t = 5)]
        down_secs: u64,
        #[arg(long, default_value_t = 16)]
        concurrency: usize,
    },
}

pub async fn run(args: FaultArgs) -> Result<bool> {
    let binary = args.setup.paygate_binary()?;
    let started = Instant::now();
    let verdict = match args.scenario.clone() {
        Scenario::Storm { keys, copies } => {
            storm(
                &args.setup,
                &binary,
                keys.unwrap_or(if args.quick { 10 } else { 50 }),
                copies,
            )
            .await
        }
        Scenario::Kill9 { kills, concurrency } => {
            kill9(
                &args.setup,
                &binary,
                kills.unwrap_or(if args.quick { 6 } else { 20 }),
                concurrency,
            )
            .await
        }
        Scenario::Acquirer {
            payments,
            concurrency,
            seed,
        } => {
            acquirer(
                &args.setup,
                &binary,
                payments.unwrap_or(if args.quick { 300 } else { 2_000 }),
                concurrency,
                seed,
            )
            .await
        }
        Scenario::Bank {
            accounts,
            concurrency,
            seed,
        } => {
            bank(
                &args.setup,
                &binary,
                accounts.unwrap_or(if args.quick { 300 } else { 1_000 }),
                concurrency,
                seed,
            )
            .await
        }
        Scenario::DbRestart {
            stop_cmd,
            start_cmd,
            down_secs,
            concurrency,
        } => db_restart(&args.setup, &binary, stop_cmd, start_cmd, down_secs, concurrency).await,
    }?;
    println!("{}", verdict.render(args.setup.backend, started.elapsed()));
    Ok(verdict.passed())
}

/// Figures, and the invariants that failed (none means PASS).
#[derive(Default)]
struct Verdict {
    name: String,
    figures: Vec<String>,
    failures: Vec<String>,
}

impl Verdict {
    fn new(name: &str) -> Verdict {
        Verdict {
            name: name.to_owned(),
            ..Verdict::default()
        }
    }

    fn figure(&mut self, text: impl Into<String>) {
        self.figures.push(text.into());
    }

    fn check(&mut self, ok: bool, failure: impl Into<String>) {
        if !ok {
            self.failures.push(failure.into());
        }
    }

    fn passed(&self) -> bool {
        self.failures.is_empty()
    }

    fn render(&self, backend: Backend, elapsed: Duration) -> String {
        let mut out = format!(
            "fault {} on {}: {} in {:.1} s\n",
            self.name,
            backend.as_str(),
            if self.passed() { "PASS" } else { "FAIL" },
            elapsed.as_secs_f64()
        );
        for figure in &self.figures {
            out.push_str(&format!("  {figure}\n"));
        }
        for failure in &self.failures {
            out.push_str(&format!("  FAILED: {failure}\n"));
        }
        out
    }
}

fn basic(key: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{key}:"))
    )
}

fn client() -> Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .timeout(Duration::from_secs(15))
        .pool_max_idle_per_host(256)
        .build()?)
}

fn key_in_body(order_id: &str, amount: i64) -> Value {
    json!({
        "amount": amount, "orderId": order_id, "orderName": "fault",
        "cardNumber": crate::scenarios::CARD, "cardExpirationYear": "29", "cardExpirationMonth": "12",
        "customerIdentityNumber": "900101"
    })
}

/// Gateway settings for the simulator: short acquirer timeouts and fast workers, so faults resolve in seconds.
fn sim_env(sim: &Simulator, setup: &Setup) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = [
        ("PAYGATE_ACQUIRERS__SANDBOX", sim.base.as_str()),
        ("PAYGATE_ACQUIRERS__REQUEST_TIMEOUT_MS", "300"),
        ("PAYGATE_PAYMENTS__FIRST_INQUIRY_DELAY_MS", "1000"),
        ("PAYGATE_PAYMENTS__WORKER_INTERVAL_MS", "50"),
        ("PAYGATE_PAYMENTS__INQUIRY_BACKOFF_BASE_MS", "100"),
        ("PAYGATE_PAYMENTS__INQUIRY_BACKOFF_MAX_MS", "400"),
    ]
    .iter()
    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
    .collect();
    env.extend(setup.gateway_env.iter().cloned());
    env
}

/// For scenarios where the gateway dies or loses its database: a claimed Idempotency-Key whose holder died lapses
/// after 2.5 s instead of a minute (it must outlive the request timeout, so that drops to 2 s), so merchants'
/// retries get through within the run.
fn with_fast_recovery(mut env: Vec<(String, String)>) -> Vec<(String, String)> {
    env.insert(0, ("PAYGATE_HTTP__REQUEST_TIMEOUT_MS".into(), "2000".into()));
    env.insert(1, ("PAYGATE_IDEMPOTENCY__IN_FLIGHT_LOCK_MS".into(), "2500".into()));
    env
}

async fn ledger_check(binary: &Path, database: &Database, verdict: &mut Verdict) -> Result<()> {
    let (ok, text) = paygate_cli(binary, database, &["ledger", "check"])?;
    verdict.figure(text.trim().lines().last().unwrap_or_default().to_owned());
    verdict.check(ok, format!("ledger check failed: {}", text.trim()));
    Ok(())
}

// ---------------------------------------------------------------------------------------------------------------
// storm

async fn storm(setup: &Setup, binary: &Path, keys: usize, copies: usize) -> Result<Verdict> {
    let mut verdict = Verdict::new("storm");
    let sim = Simulator::start(binary, &["--latency-ms", "50"])?;
    let database = Database::create(setup).await?;
    // This scenario is about idempotency, not acquirer timeouts: with the other scenarios' 300 ms acquirer timeout,
    // a thousand requests at once on a debug build queue long enough in the simulator for a call to time out, and
    // its key then rightly answers 202 (outcome unknown) until an inquiry resolves it. The gateway's own default
    // timeout (10 s) is far away; 5 s keeps a run short if the simulator hangs.
    let mut env = sim_env(&sim, setup);
    env.extend([
        ("PAYGATE_ACQUIRERS__REQUEST_TIMEOUT_MS".to_owned(), "5000".to_owned()),
        ("PAYGATE_PAYMENTS__FIRST_INQUIRY_DELAY_MS".to_owned(), "6000".to_owned()),
    ]);
    env.extend(setup.gateway_env.iter().cloned()); // the operator's `--gateway-env` still wins
    let args = GatewayArgs {
        binary,
        database: &database,
        listen: "127.0.0.1:0".into(),
        env: env.clone(),
    };
    let first = Gateway::start(&args)?;
    let demo = first.demo()?;
    let second = Gateway::start(&args)?;
    let bases = Arc::new([first.base.clone(), second.base.clone()]);
    let auth = basic(&demo.secret_key);
    let http = client()?;
    let run = random_hex(3);
    let started = Instant::now();
    let mut answers: BTreeMap<usize, Vec<(u16, String, String)>> = BTreeMap::new();
    // Ten keys at a time: 10 × `copies` requests in flight.
    for wave in (0..keys).collect::<Vec<_>>().chunks(10) {
        let mut tasks = Vec::new();
        for &key in wave {
            for copy in 0..copies {
                let http = http.clone();
                let base = bases[copy % 2].clone();
                let auth = auth.clone();
                let run = run.clone();
                tasks.push(tokio::spawn(async move {
                    let body = key_in_body(
                        &format!("storm-{run}-{key:03}"),
                        10_000 + i64::try_from(key).unwrap_or(0),
                    );
                    let response = http
                        .post(format!("{base}/v1/payments/key-in"))
                        .header("authorization", auth)
                        .header("idempotency-key", format!("storm-{run}-{key}"))
                        .json(&body)
                        .send()
                        .await?;
                    let status = response.status().as_u16();
                    let text = response.text().await?;
                    let code = serde_json::from_str::<Value>(&text)
                        .ok()
                        .and_then(|v| v["code"].as_str().map(str::to_owned))
                        .unwrap_or_default();
                    anyhow::Ok((key, status, code, text))
                }));
            }
        }
        for task in tasks {
            let (key, status, code, text) = task.await??;
            answers.entry(key).or_default().push((status, code, text));
        }
    }
    let sent = started.elapsed();
    let mut processing = 0usize;
    let mut stored = 0usize;
    let mut payment_keys: HashMap<usize, String> = HashMap::new();
    for (key, list) in &answers {
        let bodies: HashSet<&String> = list.iter().filter(|(s, _, _)| *s == 200).map(|(_, _, t)| t).collect();
        processing += list
            .iter()
            .filter(|(s, c, _)| *s == 409 && c == "IDEMPOTENT_REQUEST_PROCESSING")
            .count();
        stored += list.iter().filter(|(s, _, _)| *s == 200).count();
        let odd: Vec<_> = list
            .iter()
            .filter(|(s, c, _)| !(*s == 200 || (*s == 409 && c == "IDEMPOTENT_REQUEST_PROCESSING")))
            .map(|(s, c, _)| format!("{s} {c}"))
            .collect();
        verdict.check(odd.is_empty(), format!("key {key}: unexpected answers {odd:?}"));
        verdict.check(
            bodies.len() == 1,
            format!(
                "key {key}: {} different successful answers (want exactly 1)",
                bodies.len()
            ),
        );
        if let Some(body) = bodies.iter().next() {
            if let Some(pk) = serde_json::from_str::<Value>(body)
                .ok()
                .and_then(|v| v["paymentKey"].as_str().map(str::to_owned))
            {
                payment_keys.insert(*key, pk);
            }
        }
    }
    // Every key replays its stored answer afterwards.
    let mut replayed = 0usize;
    for key in 0..keys {
        let response = http
            .post(format!("{}/v1/payments/key-in", bases[key % 2]))
            .header("authorization", &auth)
            .header("idempotency-key", format!("storm-{run}-{key}"))
            .json(&key_in_body(
                &format!("storm-{run}-{key:03}"),
                10_000 + i64::try_from(key).unwrap_or(0),
            ))
            .send()
            .await?;
        let header = response
            .headers()
            .get("idempotent-replayed")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        if header == "true" && body["paymentKey"].as_str() == payment_keys.get(&key).map(String::as_str) {
            replayed += 1;
        }
    }
    let journal = sim.journal(&http, "A").await?;
    let approvals: Vec<&str> = journal
        .iter()
        .filter(|e| e["kind"] == "APPROVED")
        .filter_map(|e| e["reference"].as_str())
        .collect();
    let distinct: HashSet<&str> = approvals.iter().copied().collect();
    verdict.figure(format!(
        "{keys} keys × {copies} concurrent copies over 2 gateways in {:.2} s: {stored} answered 200 (the stored answer), {processing} answered 409 IDEMPOTENT_REQUEST_PROCESSING",
        sent.as_secs_f64()
    ));
    verdict.figure(format!(
        "acquirer journal: {} approvals for {} references; replays afterwards: {replayed}/{keys} with Idempotent-Replayed: true",
        approvals.len(),
        distinct.len()
    ));
    verdict.check(
        approvals.len() == keys,
        format!("{} approvals at the acquirer, want exactly {keys}", approvals.len()),
    );
    verdict.check(distinct.len() == approvals.len(), "a reference was approved twice");
    verdict.check(
        replayed == keys,
        format!("only {replayed} of {keys} keys replayed their answer"),
    );
    ledger_check(binary, &database, &mut verdict).await?;
    drop((first, second));
    database.drop_database().await;
    Ok(verdict)
}

// ---------------------------------------------------------------------------------------------------------------
// Merchants that keep sending under faults: each order is retried with its own Idempotency-Key until it has a
// definite answer, the way a careful integration behaves.

#[derive(Clone, Debug)]
struct Ack {
    order_id: String,
    payment_key: String,
    /// The status in the answer that acknowledged it (DONE, or IN_PROGRESS with a 202).
    status: String,
    /// Acknowledged by looking the order up after a retry found it already recorded.
    by_lookup: bool,
}

#[derive(Default)]
struct Merchants {
    acks: Mutex<Vec<Ack>>,
    sent_orders: Mutex<Vec<String>>,
    retries: AtomicU64,
    connection_errors: AtomicU64,
    server_errors: AtomicU64,
    unresolved: Mutex<Vec<String>>,
    cancels: Cancels,
}

/// One cancel a merchant asked for, as the merchant saw it.
#[derive(Clone, Debug)]
struct CancelAsk {
    payment_key: String,
    /// Unique per request: paygate keeps it with the cancel, which is how the verdict finds the cancel again.
    reason: String,
    /// What the cancel must take: the amount sent, or (a full cancel) the balance left by the earlier ones.
    amount_minor: i64,
    /// The request omitted `cancelAmount` (cancel the whole balance).
    full: bool,
}

/// The cancels the merchants sent, each under its own Idempotency-Key, and how they were answered.
#[derive(Default)]
struct Cancels {
    /// Every cancel request, answered or not.
    asked: Mutex<Vec<CancelAsk>>,
    /// Acknowledged with 200 (the cancel DONE) …
    done: AtomicU64,
    /// … or with 202 (the cancel PENDING; the worker finishes it).
    pending: AtomicU64,
    /// The reasons of the acknowledged cancels.
    acknowledged: Mutex<HashSet<String>>,
    retries: AtomicU64,
    /// 409 IDEMPOTENT_REQUEST_PROCESSING: the previous attempt's holder died with the key claimed.
    in_flight: AtomicU64,
    connection_errors: AtomicU64,
    server_errors: AtomicU64,
    /// A final answer that is not the cancel asked for (a refusal, DUPLICATED_…, a body without the cancel).
    wrong: Mutex<Vec<String>>,
    unresolved: Mutex<Vec<String>>,
}

/// What one cancel request does: cancel the rest of the balance, or this share of the payment's amount.
#[derive(Clone, Copy)]
enum CancelStep {
    Full,
    Partial { divisor: i64 },
}

/// The cancels of order number `n`: every 4th approved order is canceled, in turn fully, partially, partially
/// twice, and partially then for the rest.
fn cancel_plan(n: u64) -> &'static [CancelStep] {
    const PLANS: [&[CancelStep]; 4] = [
        &[CancelStep::Full],
        &[CancelStep::Partial { divisor: 3 }],
        &[CancelStep::Partial { divisor: 3 }, CancelStep::Partial { divisor: 4 }],
        &[CancelStep::Partial { divisor: 4 }, CancelStep::Full],
    ];
    if !n.is_multiple_of(4) {
        return &[];
    }
    PLANS[usize::try_from((n / 4) % 4).unwrap_or(0)]
}

struct Load {
    /// The gateway's address; a restarted gateway comes back on the same port.
    base: String,
    auth: String,
    http: reqwest::Client,
    run: String,
    next: AtomicU64,
    stop: AtomicBool,
    merchants: Merchants,
}

impl Load {
    fn new(base: &str, secret_key: &str) -> Result<Arc<Load>> {
        Ok(Arc::new(Load {
            base: base.to_owned(),
            auth: basic(secret_key),
            http: client()?,
            run: random_hex(3),
            next: AtomicU64::new(0),
            stop: AtomicBool::new(false),
            merchants: Merchants::default(),
        }))
    }

    fn base(&self) -> &str {
        &self.base
    }

    /// One merchant: orders until told to stop; each order until it is acknowledged (or 90 s pass).
    async fn merchant(self: Arc<Self>) {
        while !self.stop.load(Ordering::Relaxed) {
            let n = self.next.fetch_add(1, Ordering::Relaxed);
            let order_id = format!("f-{}-{n:06}", self.run);
            let amount = 1_000 + i64::try_from(n % 9_000).unwrap_or(0);
            if let Ok(mut sent) = self.merchants.sent_orders.lock() {
                sent.push(order_id.clone());
            }
            let deadline = Instant::now() + Duration::from_secs(90);
            let mut first = true;
            loop {
                if !first {
                    self.merchants.retries.fetch_add(1, Ordering::Relaxed);
                }
                first = false;
                if Instant::now() > deadline {
                    if let Ok(mut list) = self.merchants.unresolved.lock() {
                        list.push(order_id.clone());
                    }
                    break;
                }
                match self.attempt(&order_id, amount).await {
                    Attempt::Ack(ack) => {
                        let approved = ack.status == "DONE";
                        let payment_key = ack.payment_key.clone();
                        if let Ok(mut acks) = self.merchants.acks.lock() {
                            acks.push(ack);
                        }
                        if approved {
                            self.cancel_order(&order_id, &payment_key, amount, cancel_plan(n)).await;
                        }
                        break;
                    }
                    Attempt::Retry(pause) => tokio::time::sleep(pause).await,
                }
            }
        }
    }

    async fn attempt(&self, order_id: &str, amount: i64) -> Attempt {
        let base = self.base();
        let response = self
            .http
            .post(format!("{base}/v1/payments/key-in"))
            .header("authorization", &self.auth)
            .header("idempotency-key", format!("ik-{order_id}"))
            .json(&key_in_body(order_id, amount))
            .send()
            .await;
        let response = match response {
            Ok(r) => r,
            Err(_) => {
                self.merchants.connection_errors.fetch_add(1, Ordering::Relaxed);
                return Attempt::Retry(Duration::from_millis(100));
            }
        };
        let status = response.status().as_u16();
        let body: Value = match response.json().await {
            Ok(b) => b,
            Err(_) => {
                self.merchants.connection_errors.fetch_add(1, Ordering::Relaxed);
                return Attempt::Retry(Duration::from_millis(100));
            }
        };
        let code = body["code"].as_str().unwrap_or_default();
        match status {
            200 | 202 => match body["paymentKey"].as_str() {
                Some(key) => Attempt::Ack(Ack {
                    order_id: order_id.to_owned(),
                    payment_key: key.to_owned(),
                    status: body["status"].as_str().unwrap_or_default().to_owned(),
                    by_lookup: false,
                }),
                None => Attempt::Retry(Duration::from_millis(100)),
            },
            // The previous attempt's holder died with the key claimed: wait for the claim to lapse.
            409 if code == "IDEMPOTENT_REQUEST_PROCESSING" => Attempt::Retry(Duration::from_millis(250)),
            // Must not happen (the verdict fails on it): the previous attempt recorded the payment under this key.
            // Looked up all the same, so the other invariants are still checked.
            400 if code == "DUPLICATED_ORDER_ID" => match self.lookup(base, order_id).await {
                Some(payment) => Attempt::Ack(Ack {
                    order_id: order_id.to_owned(),
                    payment_key: payment["paymentKey"].as_str().unwrap_or_default().to_owned(),
                    status: payment["status"].as_str().unwrap_or_default().to_owned(),
                    by_lookup: true,
                }),
                None => Attempt::Retry(Duration::from_millis(100)),
            },
            _ => {
                self.merchants.server_errors.fetch_add(1, Ordering::Relaxed);
                Attempt::Retry(Duration::from_millis(100))
            }
        }
    }

    /// Sends the order's cancels one after the other, each retried under its own key until it is answered (or
    /// 90 s pass).
    async fn cancel_order(&self, order_id: &str, payment_key: &str, amount: i64, plan: &[CancelStep]) {
        let cancels = &self.merchants.cancels;
        let mut balance = amount;
        for (index, step) in plan.iter().enumerate() {
            let (amount_minor, full) = match *step {
                CancelStep::Full => (balance, true),
                CancelStep::Partial { divisor } => (amount / divisor, false),
            };
            balance -= amount_minor;
            let ask = CancelAsk {
                payment_key: payment_key.to_owned(),
                reason: format!("kill9 {order_id} #{index}"),
                amount_minor,
                full,
            };
            if let Ok(mut asked) = cancels.asked.lock() {
                asked.push(ask.clone());
            }
            let key = format!("ck-{order_id}-{index}");
            let deadline = Instant::now() + Duration::from_secs(90);
            let mut first = true;
            loop {
                if !first {
                    cancels.retries.fetch_add(1, Ordering::Relaxed);
                }
                first = false;
                if Instant::now() > deadline {
                    if let Ok(mut list) = cancels.unresolved.lock() {
                        list.push(ask.reason.clone());
                    }
                    return;
                }
                match self.cancel_attempt(&ask, &key).await {
                    CancelAttempt::Acknowledged => break,
                    // Later cancels of this order would be asked against a balance the merchant does not know.
                    CancelAttempt::Wrong => return,
                    CancelAttempt::Retry(pause) => tokio::time::sleep(pause).await,
                }
            }
        }
    }

    async fn cancel_attempt(&self, ask: &CancelAsk, key: &str) -> CancelAttempt {
        let cancels = &self.merchants.cancels;
        let body = if ask.full {
            json!({"cancelReason": ask.reason})
        } else {
            json!({"cancelReason": ask.reason, "cancelAmount": ask.amount_minor})
        };
        let response = self
            .http
            .post(format!("{}/v1/payments/{}/cancel", self.base(), ask.payment_key))
            .header("authorization", &self.auth)
            .header("idempotency-key", key)
            .json(&body)
            .send()
            .await;
        let Ok(response) = response else {
            cancels.connection_errors.fetch_add(1, Ordering::Relaxed);
            return CancelAttempt::Retry(Duration::from_millis(100));
        };
        let status = response.status().as_u16();
        let Ok(body) = response.json::<Value>().await else {
            cancels.connection_errors.fetch_add(1, Ordering::Relaxed);
            return CancelAttempt::Retry(Duration::from_millis(100));
        };
        let code = body["code"].as_str().unwrap_or_default();
        let want = match status {
            200 => "DONE",
            202 => "IN_PROGRESS",
            409 if code == "IDEMPOTENT_REQUEST_PROCESSING" => {
                cancels.in_flight.fetch_add(1, Ordering::Relaxed);
                return CancelAttempt::Retry(Duration::from_millis(250));
            }
            500.. => {
                cancels.server_errors.fetch_add(1, Ordering::Relaxed);
                return CancelAttempt::Retry(Duration::from_millis(100));
            }
            _ => {
                if let Ok(mut wrong) = cancels.wrong.lock() {
                    wrong.push(format!("{}: {status} {code} {}", ask.reason, body["message"]));
                }
                return CancelAttempt::Wrong;
            }
        };
        // The answer must show this request's cancel (found by its reason), once, in the state the status says;
        // cancels the acquirer did not apply (ABORTED) may sit beside it.
        let mine: Vec<&Value> = body["cancels"]
            .as_array()
            .map(|list| {
                list.iter()
                    .filter(|c| {
                        c["cancelReason"].as_str() == Some(ask.reason.as_str()) && c["cancelStatus"] != "ABORTED"
                    })
                    .collect()
            })
            .unwrap_or_default();
        let shown = match mine.as_slice() {
            [one] => one["cancelStatus"] == want && one["cancelAmount"].as_i64() == Some(ask.amount_minor),
            _ => false,
        };
        if !shown {
            if let Ok(mut wrong) = cancels.wrong.lock() {
                wrong.push(format!(
                    "{}: {status} without its cancel ({} {want}) once: {}",
                    ask.reason, ask.amount_minor, body["cancels"]
                ));
            }
            return CancelAttempt::Wrong;
        }
        let counter = if status == 200 { &cancels.done } else { &cancels.pending };
        counter.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut acknowledged) = cancels.acknowledged.lock() {
            acknowledged.insert(ask.reason.clone());
        }
        CancelAttempt::Acknowledged
    }

    async fn lookup(&self, base: &str, order_id: &str) -> Option<Value> {
        let response = self
            .http
            .get(format!("{base}/v1/payments/orders/{order_id}"))
            .header("authorization", &self.auth)
            .send()
            .await
            .ok()?;
        if response.status().as_u16() != 200 {
            return None;
        }
        response.json().await.ok()
    }
}

enum Attempt {
    Ack(Ack),
    Retry(Duration),
}

enum CancelAttempt {
    Acknowledged,
    Wrong,
    Retry(Duration),
}

/// Waits until every order sent is final, then checks it against the acknowledgements and the acquirer's journal.
async fn converge_and_verify(
    load: &Load,
    sim: &Simulator,
    binary: &Path,
    database: &Database,
    verdict: &mut Verdict,
    since: Instant,
) -> Result<()> {
    let orders = load.merchants.sent_orders.lock().map(|v| v.clone()).unwrap_or_default();
    let acks = load.merchants.acks.lock().map(|v| v.clone()).unwrap_or_default();
    let unresolved = load.merchants.unresolved.lock().map(|v| v.clone()).unwrap_or_default();
    let base = load.base();
    let converge_started = Instant::now();
    let deadline = converge_started + Duration::from_secs(180);
    let mut finals: HashMap<String, Value> = HashMap::new();
    let mut missing: HashSet<String> = HashSet::new();
    loop {
        missing.clear();
        let open: Vec<&String> = orders.iter().filter(|o| !finals.contains_key(*o)).collect();
        for order in open {
            match load.lookup(base, order).await {
                Some(payment) => {
                    let status = payment["status"].as_str().unwrap_or_default();
                    let cancel_pending = payment["cancels"]
                        .as_array()
                        .is_some_and(|list| list.iter().any(|c| c["cancelStatus"] == "IN_PROGRESS"));
                    if matches!(status, "DONE" | "ABORTED" | "EXPIRED" | "CANCELED" | "PARTIAL_CANCELED")
                        && payment["outcomeUnknown"] == false
                        && !cancel_pending
                    {
                        finals.insert(order.clone(), payment);
                    }
                }
                None => {
                    missing.insert(order.clone());
                }
            }
        }
        let pending = orders.len() - finals.len() - missing.len();
        if pending == 0 || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let converged = converge_started.elapsed();
    let not_final = orders.len() - finals.len() - missing.len();

    // Acknowledged payments: all there, and none went backwards (an acknowledged DONE is still DONE).
    let by_order: HashMap<&str, &Ack> = acks.iter().map(|a| (a.order_id.as_str(), a)).collect();
    let mut lost = Vec::new();
    let mut regressed = Vec::new();
    for ack in &acks {
        match finals.get(&ack.order_id) {
            None if missing.contains(&ack.order_id) => lost.push(ack.order_id.clone()),
            Some(payment) => {
                if payment["paymentKey"].as_str() != Some(ack.payment_key.as_str()) {
                    lost.push(format!(
                        "{} (acknowledged as {}, found {})",
                        ack.order_id, ack.payment_key, payment["paymentKey"]
                    ));
                }
                if ack.status == "DONE" && !approved(payment) {
                    regressed.push(format!(
                        "{}: acknowledged DONE, now {}",
                        ack.order_id, payment["status"]
                    ));
                }
            }
            None => {}
        }
    }
    // Orders never recorded are fine only if they were never acknowledged (the process died before the insert).
    let never_recorded_unacked = missing.iter().filter(|o| !by_order.contains_key(o.as_str())).count();

    // The acquirer's journal, one for one.
    let http = client()?;
    let journal = sim.journal(&http, "A").await?;
    let mut approvals: HashMap<String, usize> = HashMap::new();
    let mut reversed: HashSet<String> = HashSet::new();
    for entry in &journal {
        let reference = entry["reference"].as_str().unwrap_or_default().to_owned();
        match entry["kind"].as_str().unwrap_or_default() {
            "APPROVED" => *approvals.entry(reference).or_default() += 1,
            "REVERSED" => {
                reversed.insert(reference);
            }
            _ => {}
        }
    }
    let double = approvals.values().filter(|n| **n > 1).count();
    let known: HashSet<String> = finals
        .values()
        .filter_map(|p| p["paymentKey"].as_str().map(str::to_owned))
        .collect();
    let unknown_to_paygate = approvals.keys().filter(|r| !known.contains(*r)).count();
    let mut mismatched = Vec::new();
    for payment in finals.values() {
        let key = payment["paymentKey"].as_str().unwrap_or_default();
        let charged = approvals.contains_key(key) && !reversed.contains(key);
        if charged != approved(payment) {
            mismatched.push(format!(
                "{key}: {} but the acquirer {}",
                payment["status"],
                if charged { "holds an approval" } else { "holds none" }
            ));
        }
    }
    let approved_count = finals.values().filter(|p| approved(p)).count();
    let by_lookup = acks.iter().filter(|a| a.by_lookup).count();

    // A retry under the order's own Idempotency-Key must get the payment (its stored answer, or its current state
    // after a crash), never DUPLICATED_ORDER_ID: the key is claimed in the payment's own transaction.
    verdict.check(
        by_lookup == 0,
        format!(
            "{by_lookup} retries were answered DUPLICATED_ORDER_ID for their own order (acknowledged only by a lookup)"
        ),
    );
    verdict.figure(format!(
        "{} orders sent, {} acknowledged ({} of them by looking the order up after a retry), retries {}, connection errors {}, 5xx {}",
        orders.len(),
        acks.len(),
        by_lookup,
        load.merchants.retries.load(Ordering::Relaxed),
        load.merchants.connection_errors.load(Ordering::Relaxed),
        load.merchants.server_errors.load(Ordering::Relaxed)
    ));
    verdict.figure(format!(
        "final: {} ({} approved: DONE, or canceled since; {} not), {} never recorded (unacknowledged), {} not final; all final {:.1} s after the load stopped ({:.1} s after it began)",
        finals.len(),
        approved_count,
        finals.len() - approved_count,
        never_recorded_unacked,
        not_final,
        converged.as_secs_f64(),
        since.elapsed().as_secs_f64()
    ));
    verdict.figure(format!(
        "acquirer journal: {} approvals, {} reversals; {} match, {} mismatch, {} double approvals, {} approvals unknown to paygate",
        approvals.values().sum::<usize>(),
        reversed.len(),
        finals.len() - mismatched.len(),
        mismatched.len(),
        double,
        unknown_to_paygate
    ));
    verdict.check(
        unresolved.is_empty(),
        format!(
            "{} orders never got an answer: {:?}",
            unresolved.len(),
            unresolved.iter().take(5).collect::<Vec<_>>()
        ),
    );
    verdict.check(
        lost.is_empty(),
        format!(
            "{} acknowledged payments lost: {:?}",
            lost.len(),
            lost.iter().take(5).collect::<Vec<_>>()
        ),
    );
    verdict.check(
        regressed.is_empty(),
        format!(
            "acknowledged payments changed their outcome: {:?}",
            regressed.iter().take(5).collect::<Vec<_>>()
        ),
    );
    verdict.check(
        not_final == 0,
        format!("{not_final} payments not final after {:.0} s", converged.as_secs_f64()),
    );
    verdict.check(double == 0, format!("{double} references approved twice"));
    verdict.check(
        unknown_to_paygate == 0,
        format!("{unknown_to_paygate} approvals at the acquirer paygate has no payment for"),
    );
    verdict.check(
        mismatched.is_empty(),
        format!(
            "mismatches with the acquirer: {:?}",
            mismatched.iter().take(5).collect::<Vec<_>>()
        ),
    );
    verify_cancels(load, &finals, &journal, verdict);
    ledger_check(binary, database, verdict).await
}

/// Approved at the acquirer as paygate sees it: approved, and perhaps (partly) canceled since.
fn approved(payment: &Value) -> bool {
    matches!(
        payment["status"].as_str(),
        Some("DONE" | "PARTIAL_CANCELED" | "CANCELED")
    ) && !payment["approvedAt"].is_null()
}

/// Every acknowledged cancel applied exactly once, at paygate and at the acquirer; nothing canceled that nobody
/// asked for; every balance and status what the cancels make them.
fn verify_cancels(load: &Load, finals: &HashMap<String, Value>, journal: &[Value], verdict: &mut Verdict) {
    let cancels = &load.merchants.cancels;
    let asked = cancels.asked.lock().map(|v| v.clone()).unwrap_or_default();
    let acknowledged = cancels.acknowledged.lock().map(|v| v.clone()).unwrap_or_default();
    let wrong = cancels.wrong.lock().map(|v| v.clone()).unwrap_or_default();
    let unresolved = cancels.unresolved.lock().map(|v| v.clone()).unwrap_or_default();
    let asks_by_reason: HashMap<&str, &CancelAsk> = asked.iter().map(|a| (a.reason.as_str(), a)).collect();

    // The acquirer's cancels, by their reference (paygate's transactionKey).
    let mut at_acquirer: HashMap<&str, Vec<&Value>> = HashMap::new();
    let mut refused_at_acquirer = 0usize;
    for entry in journal {
        match entry["kind"].as_str() {
            Some("CANCELED") => at_acquirer
                .entry(entry["reference"].as_str().unwrap_or_default())
                .or_default()
                .push(entry),
            Some("CANCEL_REFUSED") => refused_at_acquirer += 1,
            _ => {}
        }
    }

    let mut problems: Vec<String> = Vec::new();
    let mut done_at_paygate = 0usize;
    let mut failed_at_paygate = 0usize;
    let mut matched_at_acquirer = 0usize;
    let mut paygate_references: HashSet<&str> = HashSet::new();
    let mut applied_reasons: HashSet<&str> = HashSet::new();
    for payment in finals.values() {
        let key = payment["paymentKey"].as_str().unwrap_or_default();
        let list = payment["cancels"].as_array().map(Vec::as_slice).unwrap_or_default();
        let mut canceled_minor = 0i64;
        for cancel in list {
            let reference = cancel["transactionKey"].as_str().unwrap_or_default();
            let reason = cancel["cancelReason"].as_str().unwrap_or_default();
            let amount = cancel["cancelAmount"].as_i64().unwrap_or_default();
            paygate_references.insert(reference);
            let entries = at_acquirer.get(reference).map(Vec::as_slice).unwrap_or_default();
            if cancel["cancelStatus"] == "ABORTED" {
                // Released because the acquirer did not apply it: it must not be in the acquirer's books.
                failed_at_paygate += 1;
                if !entries.is_empty() {
                    problems.push(format!(
                        "{key}: cancel {reference} FAILED at paygate but canceled at the acquirer"
                    ));
                }
                continue;
            }
            done_at_paygate += 1;
            canceled_minor += amount;
            match asks_by_reason.get(reason) {
                None => problems.push(format!("{key}: cancel {reference} ({amount}) nobody asked for")),
                Some(ask) if ask.payment_key != key || ask.amount_minor != amount => problems.push(format!(
                    "{key}: cancel {reference} of {amount} for `{reason}`, asked {} on {}",
                    ask.amount_minor, ask.payment_key
                )),
                Some(_) => {}
            }
            if !applied_reasons.insert(reason) {
                problems.push(format!("{key}: `{reason}` applied twice at paygate"));
            }
            let same =
                |e: &&Value| e["approvalReference"].as_str() == Some(key) && e["amount"].as_i64() == Some(amount);
            match entries {
                [one] if same(one) => matched_at_acquirer += 1,
                [] => problems.push(format!(
                    "{key}: cancel {reference} ({amount}) DONE at paygate, not at the acquirer"
                )),
                _ => problems.push(format!(
                    "{key}: cancel {reference} ({amount}) at the acquirer as {entries:?}"
                )),
            }
        }
        let total = payment["totalAmount"].as_i64().unwrap_or_default();
        let balance = payment["balanceAmount"].as_i64().unwrap_or_default();
        let status = payment["status"].as_str().unwrap_or_default();
        if canceled_minor > 0 {
            let want = if canceled_minor == total {
                "CANCELED"
            } else {
                "PARTIAL_CANCELED"
            };
            if balance != total - canceled_minor || status != want {
                problems.push(format!(
                    "{key}: {status}, balance {balance} after cancels of {canceled_minor} from {total} (want {want}, {})",
                    total - canceled_minor
                ));
            }
        }
    }
    // Every acknowledged cancel applied (it was asked once, so applied once is checked above).
    let not_applied: Vec<&String> = acknowledged
        .iter()
        .filter(|r| !applied_reasons.contains(r.as_str()))
        .collect();
    let unknown_to_paygate: Vec<&&str> = at_acquirer
        .keys()
        .filter(|r| !paygate_references.contains(**r))
        .collect();
    let doubled_at_acquirer = at_acquirer.values().filter(|e| e.len() > 1).count();

    verdict.figure(format!(
        "cancels: {} asked ({} full, {} partial) on {} payments, {} acknowledged ({} × 200 DONE, {} × 202 PENDING), retries {} ({} × 409 in flight, {} connection errors, {} 5xx), {} wrong answers, {} unanswered",
        asked.len(),
        asked.iter().filter(|a| a.full).count(),
        asked.iter().filter(|a| !a.full).count(),
        asked.iter().map(|a| a.payment_key.as_str()).collect::<HashSet<_>>().len(),
        acknowledged.len(),
        cancels.done.load(Ordering::Relaxed),
        cancels.pending.load(Ordering::Relaxed),
        cancels.retries.load(Ordering::Relaxed),
        cancels.in_flight.load(Ordering::Relaxed),
        cancels.connection_errors.load(Ordering::Relaxed),
        cancels.server_errors.load(Ordering::Relaxed),
        wrong.len(),
        unresolved.len()
    ));
    verdict.figure(format!(
        "cancels at paygate: {done_at_paygate} applied, {failed_at_paygate} released (not applied); acquirer journal: {} cancels, {matched_at_acquirer} match paygate's one for one, {doubled_at_acquirer} references canceled twice, {} unknown to paygate, {refused_at_acquirer} refused",
        at_acquirer.values().map(Vec::len).sum::<usize>(),
        unknown_to_paygate.len()
    ));
    verdict.check(
        wrong.is_empty(),
        format!(
            "{} cancels answered wrongly: {:?}",
            wrong.len(),
            wrong.iter().take(5).collect::<Vec<_>>()
        ),
    );
    verdict.check(
        unresolved.is_empty(),
        format!(
            "{} cancels never answered: {:?}",
            unresolved.len(),
            unresolved.iter().take(5).collect::<Vec<_>>()
        ),
    );
    verdict.check(
        not_applied.is_empty(),
        format!(
            "{} acknowledged cancels not applied: {:?}",
            not_applied.len(),
            not_applied.iter().take(5).collect::<Vec<_>>()
        ),
    );
    verdict.check(
        problems.is_empty(),
        format!(
            "{} cancel mismatches: {:?}",
            problems.len(),
            problems.iter().take(5).collect::<Vec<_>>()
        ),
    );
    verdict.check(
        unknown_to_paygate.is_empty() && doubled_at_acquirer == 0,
        format!(
            "acquirer cancels paygate does not have: {:?}; references canceled twice: {doubled_at_acquirer}",
            unknown_to_paygate.iter().take(5).collect::<Vec<_>>()
        ),
    );
    verdict.check(
        refused_at_acquirer == 0,
        format!("{refused_at_acquirer} cancels refused by the acquirer"),
    );
}

// ---------------------------------------------------------------------------------------------------------------
// kill9

/// The fail points of the armed gateways, in turn: the approval path (and the inquiry worker), then the cancel path
/// (and the cancel worker, which runs the same code), so even a short run aborts on both.
const FAILPOINTS: [&str; 2] = [
    "approve.before_acquirer=0.002,approve.after_acquirer=0.004,approve.after_outcome=0.002,inquiry.after_acquirer=0.05",
    "cancel.before_acquirer=0.01,cancel.after_acquirer=0.02,cancel.after_outcome=0.01,inquiry.after_acquirer=0.05",
];

async fn kill9(setup: &Setup, binary: &Path, kills: usize, concurrency: usize) -> Result<Verdict> {
    let mut verdict = Verdict::new("kill9");
    let sim = Simulator::start(binary, &["--latency-ms", "5"])?;
    let database = Database::create(setup).await?;
    let port = free_port()?;
    let calm_env = with_fast_recovery(sim_env(&sim, setup));
    let armed_envs = FAILPOINTS.map(|spec| {
        let mut env = calm_env.clone();
        env.push(("PAYGATE_FAILPOINTS".into(), spec.into()));
        env
    });
    // Deaths alternate: an armed gateway is given up to 4 s to abort at a fail point (else it is killed); an
    // unarmed one is SIGKILLed at a random moment 0.3–2 s after it started. Armed gateways alternate between the
    // two sets of fail points.
    let args_for = |index: usize| GatewayArgs {
        binary,
        database: &database,
        listen: format!("127.0.0.1:{port}"),
        env: match index % 4 {
            0 => armed_envs[0].clone(),
            2 => armed_envs[1].clone(),
            _ => calm_env.clone(),
        },
    };
    let mut gateway = Gateway::start(&args_for(0))?;
    let demo = gateway.demo()?;
    let load = Load::new(&gateway.base, &demo.secret_key)?;
    let started = Instant::now();
    let workers: Vec<_> = (0..concurrency.max(1))
        .map(|_| tokio::spawn(load.clone().merchant()))
        .collect();
    let (mut by_signal, mut by_failpoint) = (0usize, 0usize);
    let mut failpoints_hit: BTreeMap<String, usize> = BTreeMap::new();
    let mut downtime = Duration::ZERO;
    let note_failpoint = |gateway: &Gateway, hits: &mut BTreeMap<String, usize>| {
        let point = gateway
            .stderr()
            .lines()
            .rev()
            .filter_map(|l| l.split("fail point ").nth(1))
            .find_map(|l| l.split_whitespace().next())
            .unwrap_or("?")
            .to_owned();
        *hits.entry(point).or_default() += 1;
    };
    for index in 0..kills {
        let armed = index % 2 == 0;
        let wait = if armed {
            Duration::from_secs(4)
        } else {
            Duration::from_millis(rand::rng().random_range(300..2_000))
        };
        let until = Instant::now() + wait;
        let mut died_alone = false;
        while Instant::now() < until {
            if gateway.exited().is_some() {
                died_alone = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let down_at = Instant::now();
        if died_alone {
            by_failpoint += 1;
            note_failpoint(&gateway, &mut failpoints_hit);
        } else {
            gateway.kill9();
            by_signal += 1;
        }
        gateway = restart(&args_for(index + 1), port).await?;
        downtime += down_at.elapsed();
    }
    load.stop.store(true, Ordering::Relaxed);
    // Let the merchants finish their current orders (retrying through any last death), then stop killing:
    // the final gateway runs without fail points while everything converges.
    let finish_deadline = Instant::now() + Duration::from_secs(120);
    let mut restarts_after = 0;
    loop {
        if workers.iter().all(|w| w.is_finished()) || Instant::now() > finish_deadline {
            break;
        }
        if gateway.exited().is_some() {
            by_failpoint += 1;
            restarts_after += 1;
            note_failpoint(&gateway, &mut failpoints_hit);
            gateway = restart(&args_for(2 * restarts_after), port).await?;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for worker in workers {
        worker.abort();
    }
    gateway.kill9();
    let gateway = restart(&args_for(1), port).await?;
    verdict.figure(format!(
        "{} deaths: {by_signal} SIGKILL at random moments, {by_failpoint} aborts at fail points {failpoints_hit:?} ({restarts_after} while the last orders finished); restarted each time, {:.2} s down in all",
        by_signal + by_failpoint,
        downtime.as_secs_f64()
    ));
    converge_and_verify(&load, &sim, binary, &database, &mut verdict, started).await?;
    verdict.check(by_signal + by_failpoint >= kills, "fewer deaths than asked");
    drop(gateway);
    database.drop_database().await;
    Ok(verdict)
}

/// Starts the gateway again on the same port (the old socket may linger for a moment).
async fn restart(args: &GatewayArgs<'_>, port: u16) -> Result<Gateway> {
    let mut last = None;
    for _ in 0..50 {
        match Gateway::start(args) {
            Ok(gateway) => return Ok(gateway),
            Err(error) => {
                last = Some(error);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    Err(last
        .unwrap_or_else(|| anyhow::anyhow!("restart failed"))
        .context(format!("restarting on port {port}")))
}

// ---------------------------------------------------------------------------------------------------------------
// acquirer

async fn acquirer(setup: &Setup, binary: &Path, payments: usize, concurrency: usize, seed: u64) -> Result<Verdict> {
    let mut verdict = Verdict::new("acquirer");
    let seed = seed.to_string();
    let sim = Simulator::start(
        binary,
        &[
            "--timeout-per-mille",
            "100",
            "--lost-answer-per-mille",
            "100",
            "--hang-ms",
            "800",
            "--seed",
            &seed,
        ],
    )?;
    let database = Database::create(setup).await?;
    let gateway = Gateway::start(&GatewayArgs {
        binary,
        database: &database,
        listen: "127.0.0.1:0".into(),
        env: sim_env(&sim, setup),
    })?;
    let demo = gateway.demo()?;
    let load = Load::new(&gateway.base, &demo.secret_key)?;
    let started = Instant::now();
    let first_answers: Arc<Mutex<BTreeMap<u16, usize>>> = Arc::default();
    let next = Arc::new(AtomicU64::new(0));
    let total = u64::try_from(payments).unwrap_or(u64::MAX);
    let mut tasks = Vec::new();
    for _ in 0..concurrency.max(1) {
        let load = load.clone();
        let next = next.clone();
        let first_answers = first_answers.clone();
        tasks.push(tokio::spawn(async move {
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= total {
                    return;
                }
                let order_id = format!("a-{}-{n:06}", load.run);
                if let Ok(mut sent) = load.merchants.sent_orders.lock() {
                    sent.push(order_id.clone());
                }
                let response = load
                    .http
                    .post(format!("{}/v1/payments/key-in", load.base()))
                    .header("authorization", &load.auth)
                    .header("idempotency-key", format!("ik-{order_id}"))
                    .json(&key_in_body(&order_id, 1_000 + i64::try_from(n).unwrap_or(0)))
                    .send()
                    .await;
                let Ok(response) = response else { continue };
                let status = response.status().as_u16();
                if let Ok(mut answers) = first_answers.lock() {
                    *answers.entry(status).or_default() += 1;
                }
                let body: Value = response.json().await.unwrap_or(Value::Null);
                if let (200 | 202, Some(key)) = (status, body["paymentKey"].as_str()) {
                    if let Ok(mut acks) = load.merchants.acks.lock() {
                        acks.push(Ack {
                            order_id,
                            payment_key: key.to_owned(),
                            status: body["status"].as_str().unwrap_or_default().to_owned(),
                            by_lookup: false,
                        });
                    }
                }
            }
        }));
    }
    for task in tasks {
        task.await.context("load task")?;
    }
    let submitted = started.elapsed();
    verdict.figure(format!(
        "{payments} payments through 10% timeouts and 10% lost answers (seed {seed}) submitted in {:.1} s; first answers by status {:?}",
        submitted.as_secs_f64(),
        first_answers.lock().map(|a| a.clone()).unwrap_or_default()
    ));
    converge_and_verify(&load, &sim, binary, &database, &mut verdict, started).await?;
    drop(gateway);
    database.drop_database().await;
    Ok(verdict)
}

// ---------------------------------------------------------------------------------------------------------------
// db-restart

fn newest_cluster() -> Option<String> {
    let mut versions: Vec<String> = std::fs::read_dir("/etc/postgresql")
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect();
    versions.sort_by_key(|v| v.parse::<u32>().unwrap_or(0));
    versions.pop()
}

fn shell(command: &str) -> Result<()> {
    let status = std::process::Command::new("sh").args(["-c", command]).status()?;
    if !status.success() {
        bail!("`{command}` failed: {status}");
    }
    Ok(())
}

async fn db_restart(
    setup: &Setup,
    binary: &Path,
    stop_cmd: Option<String>,
    start_cmd: Option<String>,
    down_secs: u64,
    concurrency: usize,
) -> Result<Verdict> {
    if setup.backend != Backend::Postgres {
        bail!("db-restart needs --backend postgres (SQLite is embedded: there is no server to restart)");
    }
    let cluster = newest_cluster();
    let stop_cmd = stop_cmd
        .or_else(|| cluster.as_ref().map(|v| format!("pg_ctlcluster {v} main stop -m fast")))
        .context("no PostgreSQL cluster found; pass --stop-cmd and --start-cmd")?;
    let start_cmd = start_cmd
        .or_else(|| cluster.as_ref().map(|v| format!("pg_ctlcluster {v} main start")))
        .context("no PostgreSQL cluster found; pass --start-cmd")?;
    let mut verdict = Verdict::new("db-restart");
    let sim = Simulator::start(binary, &["--latency-ms", "5"])?;
    let database = Database::create(setup).await?;
    let gateway = Gateway::start(&GatewayArgs {
        binary,
        database: &database,
        listen: "127.0.0.1:0".into(),
        env: with_fast_recovery(sim_env(&sim, setup)),
    })?;
    let demo = gateway.demo()?;
    let load = Load::new(&gateway.base, &demo.secret_key)?;
    let started = Instant::now();
    let workers: Vec<_> = (0..concurrency.max(1))
        .map(|_| tokio::spawn(load.clone().merchant()))
        .collect();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let acked_before = load.merchants.acks.lock().map(|a| a.len()).unwrap_or(0);
    eprintln!("  stopping PostgreSQL: {stop_cmd}");
    let stop_started = Instant::now();
    shell(&stop_cmd)?;
    tokio::time::sleep(Duration::from_secs(down_secs)).await;
    eprintln!("  starting PostgreSQL: {start_cmd}");
    shell(&start_cmd)?;
    let down = stop_started.elapsed();
    // Time until the gateway answers payments again.
    let acked_at_start = load.merchants.acks.lock().map(|a| a.len()).unwrap_or(0);
    let back = Instant::now();
    let recovered = loop {
        let now = load.merchants.acks.lock().map(|a| a.len()).unwrap_or(0);
        if now > acked_at_start {
            break Some(back.elapsed());
        }
        if back.elapsed() > Duration::from_secs(60) {
            break None;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    tokio::time::sleep(Duration::from_secs(3)).await;
    load.stop.store(true, Ordering::Relaxed);
    for worker in workers {
        let _ = tokio::time::timeout(Duration::from_secs(120), worker).await;
    }
    verdict.figure(format!(
        "{acked_before} payments acknowledged before the stop; PostgreSQL down {:.1} s; payments acknowledged again {} after it came back",
        down.as_secs_f64(),
        recovered.map(|d| format!("{:.2} s", d.as_secs_f64())).unwrap_or_else(|| "never".into())
    ));
    verdict.check(
        recovered.is_some(),
        "the gateway never recovered after PostgreSQL came back",
    );
    converge_and_verify(&load, &sim, binary, &database, &mut verdict, started).await?;
    drop(gateway);
    database.drop_database().await;
    Ok(verdict)
}

/// Issues `accounts` virtual accounts, deposits each one's amount at the sandbox bank (whose notifications are lost,
/// duplicated or delayed by the seeded faults), and waits until every payment is final; then reconciles the
/// payments with the bank's journal one for one and checks the ledger.
async fn bank(setup: &Setup, binary: &Path, accounts: usize, concurrency: usize, seed: u64) -> Result<Verdict> {
    let mut verdict = Verdict::new("bank");
    let database = Database::create(setup).await?;
    let mut env: Vec<(String, String)> = [
        ("PAYGATE_BANKS__NOTIFICATION_LOST_PER_MILLE", "100"),
        ("PAYGATE_BANKS__NOTIFICATION_DUPLICATE_PER_MILLE", "100"),
        ("PAYGATE_BANKS__NOTIFICATION_DELAYED_PER_MILLE", "100"),
        ("PAYGATE_BANKS__NOTIFICATION_DELAY_MS", "1500"),
        ("PAYGATE_PAYMENTS__WORKER_INTERVAL_MS", "50"),
        ("PAYGATE_PAYMENTS__BANK_FEED_INTERVAL_MS", "1000"),
        ("PAYGATE_RATE_LIMIT__PER_KEY_PER_SECOND", "0"),
    ]
    .iter()
    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
    .collect();
    env.push(("PAYGATE_BANKS__FAULT_SEED".into(), seed.to_string()));
    env.extend(setup.gateway_env.iter().cloned());
    let gateway = Gateway::start(&GatewayArgs {
        binary,
        database: &database,
        listen: "127.0.0.1:0".into(),
        env,
    })?;
    let demo = gateway.demo()?;
    let http = reqwest::Client::builder().timeout(Duration::from_secs(30)).build()?;
    let base = gateway.base.clone();
    let auth = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{}:", demo.secret_key))
    );
    let run = random_hex(4);
    let started = Instant::now();

    // Issue and pay, `concurrency` buyers at a time.
    let next = Arc::new(AtomicU64::new(0));
    let total = u64::try_from(accounts).unwrap_or(u64::MAX);
    let issued: Arc<Mutex<Vec<(String, String, i64)>>> = Arc::default();
    let refused = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for _ in 0..concurrency.max(1) {
        let (http, base, auth, run) = (http.clone(), base.clone(), auth.clone(), run.clone());
        let (next, issued, refused) = (next.clone(), issued.clone(), refused.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= total {
                    return;
                }
                let order_id = format!("va-{run}-{n:06}");
                let amount = 10_000 + i64::try_from(n).unwrap_or(0);
                let body = json!({"amount": amount, "orderId": order_id, "orderName": "가상계좌 주문",
                    "customerName": "박토스", "bank": "20", "validHours": 24});
                let answer: Option<Value> = async {
                    let response = http
                        .post(format!("{base}/v1/virtual-accounts"))
                        .header("authorization", &auth)
                        .header("idempotency-key", format!("ik-{order_id}"))
                        .json(&body)
                        .send()
                        .await
                        .ok()?;
                    if response.status() != 200 {
                        return None;
                    }
                    response.json().await.ok()
                }
                .await;
                let Some(answer) = answer else {
                    refused.fetch_add(1, Ordering::Relaxed);
                    continue;
                };
                let (Some(key), Some(number)) = (
                    answer["paymentKey"].as_str(),
                    answer["virtualAccount"]["accountNumber"].as_str(),
                ) else {
                    refused.fetch_add(1, Ordering::Relaxed);
                    continue;
                };
                let deposit = json!({"accountNumber": number, "amount": amount, "currency": "KRW",
                    "depositorName": "박토스", "reference": format!("buyer-{order_id}")});
                let made = http.post(format!("{base}/bank/deposits")).json(&deposit).send().await;
                if !made.is_ok_and(|r| r.status() == 200) {
                    refused.fetch_add(1, Ordering::Relaxed);
                }
                if let Ok(mut issued) = issued.lock() {
                    issued.push((key.to_owned(), number.to_owned(), amount));
                }
            }
        }));
    }
    for task in tasks {
        task.await?;
    }
    let issued = issued.lock().map(|i| i.clone()).unwrap_or_default();
    let paid_in = started.elapsed();
    verdict.figure(format!(
        "{} virtual accounts issued and paid at the bank in {:.1} s ({} requests refused)",
        issued.len(),
        paid_in.as_secs_f64(),
        refused.load(Ordering::Relaxed)
    ));
    verdict.check(
        issued.len() == accounts,
        "not every virtual account was issued and paid",
    );
    verdict.check(refused.load(Ordering::Relaxed) == 0, "requests were refused");

    // Wait until every payment is DONE (the lost notifications are found in the bank's feed).
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut statuses: HashMap<String, String> = HashMap::new();
    loop {
        for (key, _, _) in &issued {
            if statuses.get(key).is_some_and(|s| s == "DONE") {
                continue;
            }
            let payment: Value = http
                .get(format!("{base}/v1/payments/{key}"))
                .header("authorization", &auth)
                .send()
                .await?
                .json()
                .await?;
            statuses.insert(key.clone(), payment["status"].as_str().unwrap_or_default().to_owned());
        }
        let done = statuses.values().filter(|s| *s == "DONE").count();
        if done == issued.len() || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let done = statuses.values().filter(|s| *s == "DONE").count();
    verdict.figure(format!(
        "{done} of {} payments DONE {:.1} s after the last deposit",
        issued.len(),
        (started.elapsed() - paid_in).as_secs_f64()
    ));
    verdict.check(done == issued.len(), "payments not DONE after 120 s");
    let found = gateway.stderr().matches("deposit found in the bank's feed").count();
    verdict.figure(format!(
        "{found} deposits found in the bank's feed (their notification lost, or not yet sent)"
    ));
    verdict.check(
        found > 0,
        "no deposit came through the feed: the lost notifications were not exercised",
    );

    // One for one with the bank's journal: one deposit per account, of the amount asked, and nothing returned.
    let mut deposits: HashMap<String, Vec<i64>> = HashMap::new();
    let mut returns = 0;
    let mut after_seq = 0;
    loop {
        let page: Value = http
            .get(format!("{base}/bank/journal?afterSeq={after_seq}"))
            .send()
            .await?
            .json()
            .await?;
        let entries = page["entries"].as_array().cloned().unwrap_or_default();
        if entries.is_empty() {
            break;
        }
        for entry in &entries {
            match entry["kind"].as_str() {
                Some("DEPOSIT") => deposits
                    .entry(entry["accountNumber"].as_str().unwrap_or_default().to_owned())
                    .or_default()
                    .push(entry["amount"].as_i64().unwrap_or_default()),
                Some("REFUND") => returns += 1,
                _ => {}
            }
        }
        after_seq = page["nextSeq"].as_u64().unwrap_or(u64::MAX);
    }
    let matching = issued
        .iter()
        .filter(|(_, number, amount)| deposits.get(number).is_some_and(|d| d.as_slice() == [*amount]))
        .count();
    verdict.figure(format!(
        "bank journal: {} accounts with deposits, {matching} matching their payment one for one, {returns} returns",
        deposits.len()
    ));
    verdict.check(
        matching == issued.len(),
        "the bank's deposits do not match the payments one for one",
    );
    verdict.check(
        deposits.len() == issued.len(),
        "the bank has deposits for accounts no payment names",
    );
    verdict.check(returns == 0, "deposits were returned: an exact deposit was held");

    drop(gateway);
    let (ok, text) = paygate_cli(binary, &database, &["ledger", "check"])?;
    verdict.figure(text.lines().next().unwrap_or_default().to_owned());
    verdict.check(ok, "ledger check failed");
    database.drop_database().await;
    Ok(verdict)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn payment(key: &str, total: i64, balance: i64, status: &str, cancels: Value) -> Value {
        json!({"paymentKey": key, "totalAmount": total, "balanceAmount": balance, "status": status,
               "approvedAt": "2026-12-02T11:00:00.000+09:00", "cancels": cancels})
    }

    fn cancel(reference: &str, reason: &str, amount: i64, status: &str) -> Value {
        json!({"transactionKey": reference, "cancelReason": reason, "cancelAmount": amount, "cancelStatus": status})
    }

    fn canceled(reference: &str, key: &str, amount: i64) -> Value {
        json!({"kind": "CANCELED", "reference": reference, "approvalReference": key, "amount": amount})
    }

    /// Failures the cancel check reports for one payment of 9,000 with one acknowledged cancel of 3,000 asked.
    fn failures(payment: Value, journal: Vec<Value>) -> Vec<String> {
        let load = Load::new("http://127.0.0.1:9", "sk").unwrap();
        load.merchants.cancels.asked.lock().unwrap().push(CancelAsk {
            payment_key: "pay_1".into(),
            reason: "r0".into(),
            amount_minor: 3_000,
            full: false,
        });
        load.merchants.cancels.acknowledged.lock().unwrap().insert("r0".into());
        let finals = HashMap::from([("order".to_owned(), payment)]);
        let mut verdict = Verdict::new("test");
        verify_cancels(&load, &finals, &journal, &mut verdict);
        verdict.failures
    }

    #[test]
    fn cancel_check_passes_exactly_once_and_catches_the_rest() {
        let once = json!([cancel("t1", "r0", 3_000, "DONE")]);
        let cases: Vec<(&str, Value, Vec<Value>, bool)> = vec![
            (
                "applied once on both sides",
                payment("pay_1", 9_000, 6_000, "PARTIAL_CANCELED", once.clone()),
                vec![canceled("t1", "pay_1", 3_000)],
                true,
            ),
            (
                "a released cancel beside it, not at the acquirer",
                payment(
                    "pay_1",
                    9_000,
                    6_000,
                    "PARTIAL_CANCELED",
                    json!([cancel("t0", "r0", 3_000, "ABORTED"), cancel("t1", "r0", 3_000, "DONE")]),
                ),
                vec![canceled("t1", "pay_1", 3_000)],
                true,
            ),
            (
                "applied twice at paygate",
                payment(
                    "pay_1",
                    9_000,
                    3_000,
                    "PARTIAL_CANCELED",
                    json!([cancel("t1", "r0", 3_000, "DONE"), cancel("t2", "r0", 3_000, "DONE")]),
                ),
                vec![canceled("t1", "pay_1", 3_000), canceled("t2", "pay_1", 3_000)],
                false,
            ),
            (
                "missing at the acquirer",
                payment("pay_1", 9_000, 6_000, "PARTIAL_CANCELED", once.clone()),
                vec![],
                false,
            ),
            (
                "another amount at the acquirer",
                payment("pay_1", 9_000, 6_000, "PARTIAL_CANCELED", once.clone()),
                vec![canceled("t1", "pay_1", 2_000)],
                false,
            ),
            (
                "a cancel at the acquirer paygate does not have",
                payment("pay_1", 9_000, 6_000, "PARTIAL_CANCELED", once.clone()),
                vec![canceled("t1", "pay_1", 3_000), canceled("t9", "pay_1", 3_000)],
                false,
            ),
            (
                "the acknowledged cancel never applied",
                payment("pay_1", 9_000, 9_000, "DONE", json!([])),
                vec![],
                false,
            ),
            (
                "a cancel nobody asked for",
                payment(
                    "pay_1",
                    9_000,
                    5_000,
                    "PARTIAL_CANCELED",
                    json!([cancel("t1", "r0", 3_000, "DONE"), cancel("t2", "other", 1_000, "DONE")]),
                ),
                vec![canceled("t1", "pay_1", 3_000), canceled("t2", "pay_1", 1_000)],
                false,
            ),
            (
                "the balance does not follow the cancels",
                payment("pay_1", 9_000, 9_000, "PARTIAL_CANCELED", once.clone()),
                vec![canceled("t1", "pay_1", 3_000)],
                false,
            ),
            (
                "the status does not follow the cancels",
                payment("pay_1", 9_000, 6_000, "DONE", once),
                vec![canceled("t1", "pay_1", 3_000)],
                false,
            ),
        ];
        for (name, payment, journal, pass) in cases {
            let failures = failures(payment, journal);
            assert_eq!(failures.is_empty(), pass, "{name}: {failures:?}");
        }
    }

    #[test]
    fn cancel_plans_never_exceed_the_amount() {
        for n in 0..64u64 {
            let amount = 1_000 + i64::try_from(n).unwrap();
            let mut balance = amount;
            for step in cancel_plan(n) {
                balance -= match *step {
                    CancelStep::Full => balance,
                    CancelStep::Partial { divisor } => amount / divisor,
                };
                assert!(balance >= 0, "order {n}");
            }
            assert_eq!(cancel_plan(n).is_empty(), !n.is_multiple_of(4), "order {n}");
        }
    }
}
