//! An in-process harness for the app layer: an [`App`] on a fresh database (SQLite in a temporary directory, or
//! PostgreSQL when `PAYGATE_TEST_DATABASE_URL` is set), a [`ManualClock`] the test moves, the three sandbox
//! acquirers (deciding by test card, optionally under a seeded [`FaultPlan`]) behind a script of one-off faults, and
//! a merchant with a secret and a client key.
//!
//! Nothing here sleeps to wait: a worker pass runs when the test says, at the time the test chose
//! ([`Harness::workers_at`], [`Harness::deliver_at`]), and returns once its writes are committed.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use paygate_app::auth::Caller;
use paygate_app::clock::ManualClock;
use paygate_app::idempotency::Answer;
use paygate_app::outbox::{DeliveryReport, OutboxConfig};
use paygate_app::payments::command::{self, CardText, ClearCard, Customer, NotificationUrl};
use paygate_app::payments::workers::WorkReport;
use paygate_app::payments::{
    Acquirers, CancelCommand, CardSource, KeyInCommand, PaymentConfig, PaymentError, PaymentView,
};
use paygate_app::{App, AppOptions, Secrets};
use paygate_connectors::sandbox::{Fault, FaultPlan, JournalEntry, JournalKind, Operation, SandboxAcquirer};
use paygate_connectors::{
    Acquirer, AcquirerId, ApproveOutcome, ApproveRequest, CancelOutcome, CancelRequest, ConnectorError, InquiryOutcome,
};
use paygate_domain::api_key::{KeyKind, Mode};
use paygate_domain::id::PaymentId;
use paygate_domain::time::UnixMillis;
use paygate_store::testing::TestDatabase;
use paygate_store::{Delivery, Store, StoredEvent};

/// Where the manual clock starts: 2026-11-19, a fixed instant so runs compare.
pub const START_MS: i64 = 1_795_000_000_000;

/// What a harness is built with; defaults are paygate's own.
#[derive(Clone, Default)]
pub struct Options {
    pub payments: PaymentConfig,
    pub outbox: OutboxConfig,
    /// Faults the sandboxes draw on their own, seeded (on top of the one-off script).
    pub fault_plan: Option<FaultPlan>,
    /// The banks of the bank methods (none by default).
    pub banks: paygate_app::bank::Banks,
}

/// One-off faults for the next calls of an operation, in order, on any of the three acquirers.
#[derive(Default)]
pub struct FaultScript(Mutex<VecDeque<(Operation, Fault)>>);

impl FaultScript {
    fn take(&self, operation: Operation) -> Option<Fault> {
        let mut script = self.0.lock().unwrap();
        let index = script.iter().position(|(op, _)| *op == operation)?;
        script.remove(index).map(|(_, fault)| fault)
    }

    fn push(&self, operation: Operation, fault: Fault) {
        self.0.lock().unwrap().push_back((operation, fault));
    }

    /// Forgets the faults not met yet.
    pub fn clear(&self) {
        self.0.lock().unwrap().clear();
    }
}

/// A sandbox acquirer behind the script: a scripted fault means what it means in the sandbox (a timeout and a
/// system error apply nothing; a lost answer applies and then loses the answer).
struct Scripted {
    inner: Arc<SandboxAcquirer>,
    script: Arc<FaultScript>,
}

impl Scripted {
    async fn run<T, F>(&self, operation: Operation, call: F) -> Result<T, ConnectorError>
    where
        F: std::future::Future<Output = Result<T, ConnectorError>>,
    {
        match self.script.take(operation) {
            None => call.await,
            Some(Fault::Timeout) => Err(ConnectorError::Timeout),
            Some(Fault::SystemError) => Err(ConnectorError::SystemError("scripted".into())),
            Some(Fault::LostAnswer) => {
                let _applied = call.await;
                Err(ConnectorError::LostAnswer("scripted".into()))
            }
        }
    }
}

#[async_trait]
impl Acquirer for Scripted {
    fn id(&self) -> &AcquirerId {
        self.inner.id()
    }

    async fn approve(&self, request: &ApproveRequest) -> Result<ApproveOutcome, ConnectorError> {
        self.run(Operation::Approve, self.inner.approve(request)).await
    }

    async fn cancel(&self, request: &CancelRequest) -> Result<CancelOutcome, ConnectorError> {
        self.run(Operation::Cancel, self.inner.cancel(request)).await
    }

    async fn reverse(&self, reference: &str, merchant: &str) -> Result<(), ConnectorError> {
        self.run(Operation::Reverse, self.inner.reverse(reference, merchant))
            .await
    }

    async fn inquire(&self, reference: &str, merchant: &str) -> Result<InquiryOutcome, ConnectorError> {
        self.run(Operation::Inquire, self.inner.inquire(reference, merchant))
            .await
    }

    async fn verify(
        &self,
        request: &paygate_connectors::VerifyRequest,
    ) -> Result<paygate_connectors::VerifyOutcome, ConnectorError> {
        self.run(Operation::Verify, self.inner.verify(request)).await
    }
}

pub struct Harness {
    pub app: App,
    pub clock: Arc<ManualClock>,
    pub sandboxes: Vec<Arc<SandboxAcquirer>>,
    pub faults: Arc<FaultScript>,
    /// The merchant's test-mode secret key and client key.
    pub caller: Caller,
    pub client: Caller,
    _db: TestDatabase,
}

impl Harness {
    pub async fn new() -> Harness {
        Harness::with(Options::default()).await
    }

    pub async fn with(options: Options) -> Harness {
        let db = TestDatabase::new().await;
        let (store, _) = db.open().await;
        let clock = Arc::new(ManualClock::new(UnixMillis::new(START_MS)));
        let faults = Arc::new(FaultScript::default());
        let mut acquirers = Acquirers::new();
        let mut sandboxes = Vec::new();
        for name in ["A", "B", "C"] {
            let id = AcquirerId::parse(name).unwrap();
            let sandbox_clock = clock.clone();
            let sandbox = SandboxAcquirer::with_faults(id, options.fault_plan.unwrap_or(FaultPlan::NONE))
                .with_clock(move || paygate_app::clock::Clock::now(sandbox_clock.as_ref()));
            let sandbox = Arc::new(sandbox);
            acquirers.add(
                Mode::Test,
                Arc::new(Scripted {
                    inner: sandbox.clone(),
                    script: faults.clone(),
                }),
            );
            sandboxes.push(sandbox);
        }
        let app_options = AppOptions {
            acquirers,
            banks: options.banks,
            payments: options.payments,
            outbox: options.outbox,
            ..AppOptions::default()
        };
        let app = App::with_options(store, &Secrets::for_tests(7), clock.clone(), app_options).unwrap();
        let created = app.create_merchant("Harness Shop").await.unwrap();
        let secret = created.key(Mode::Test, KeyKind::Secret).unwrap();
        let caller = app.authenticate(secret.secret.expose_secret()).await.unwrap();
        let client_key = created.key(Mode::Test, KeyKind::Client).unwrap();
        let client = app.authenticate(client_key.secret.expose_secret()).await.unwrap();
        Harness {
            app,
            clock,
            sandboxes,
            faults,
            caller,
            client,
            _db: db,
        }
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        self.app.store()
    }

    pub fn now(&self) -> UnixMillis {
        paygate_app::clock::Clock::now(self.clock.as_ref())
    }

    /// The next call of `operation` (on any acquirer) meets `fault`.
    pub fn fault_next(&self, operation: Operation, fault: Fault) {
        self.faults.push(operation, fault);
    }

    /// Moves the clock on by `millis`.
    pub fn advance(&self, millis: i64) {
        self.clock.advance_millis(millis);
    }

    /// Moves the clock to `at` (never back).
    pub fn advance_to(&self, at: UnixMillis) {
        let now = self.now().as_millis();
        assert!(at.as_millis() >= now, "the clock does not go back");
        self.clock.advance_millis(at.as_millis() - now);
    }

    /// One pass of the payment workers (expiries, inquiries, cancel retries) `millis` from now.
    pub async fn workers_at(&self, millis: i64) -> WorkReport {
        self.advance(millis);
        self.app.run_workers_once().await.unwrap()
    }

    /// One pass of the delivery worker `millis` from now.
    pub async fn deliver_at(&self, millis: i64) -> DeliveryReport {
        self.advance(millis);
        self.app.deliver_due().await.unwrap()
    }

    pub async fn key_in(&self, command: KeyInCommand) -> Result<PaymentView, PaymentError> {
        self.app.key_in(&self.caller, command, None).await.map(fresh)
    }

    pub async fn cancel(&self, id: PaymentId, amount: Option<i64>) -> Result<PaymentView, PaymentError> {
        let command = CancelCommand::parse("harness cancel", amount, None, None).unwrap();
        self.app.cancel(&self.caller, id, command, None).await.map(fresh)
    }

    pub async fn payment(&self, id: PaymentId) -> PaymentView {
        self.app.get_payment(&self.caller, id).await.unwrap()
    }

    /// Every entry of the three sandboxes' journals about `reference` (an approval's, or a cancel's approval).
    pub fn journal(&self, reference: &str) -> Vec<JournalEntry> {
        self.sandboxes
            .iter()
            .flat_map(|s| s.journal())
            .filter(|e| e.reference == reference || e.approval_reference.as_deref() == Some(reference))
            .collect()
    }

    pub fn journal_kinds(&self, reference: &str) -> Vec<JournalKind> {
        self.journal(reference).iter().map(|e| e.kind).collect()
    }

    /// The acquirer's open balance for an approval, in minor units (None if it never approved it).
    pub fn acquirer_balance(&self, reference: &str) -> Option<i64> {
        self.sandboxes
            .iter()
            .find_map(|s| s.balance(reference))
            .map(|m| m.amount_minor())
    }

    /// Asserts the ledger balances and agrees with every payment; returns how many journals it holds.
    pub async fn ledger_journals(&self) -> u64 {
        let audit = self.store().audit_ledger().await.unwrap();
        assert!(audit.is_clean(), "ledger audit: {audit:?}");
        audit.journals
    }

    /// The merchant's events about one payment, in their order (`sequence`: several can share a millisecond).
    pub async fn events_of(&self, id: PaymentId) -> Vec<StoredEvent> {
        let mut events: Vec<StoredEvent> = self
            .store()
            .list_events(self.caller.merchant.id, Mode::Test, None, 100)
            .await
            .unwrap()
            .into_iter()
            .filter(|e| e.object_id == id.to_string())
            .collect();
        events.sort_by_key(|e| e.sequence);
        events
    }

    pub async fn deliveries(&self, event: &StoredEvent) -> Vec<Delivery> {
        self.store().event_deliveries(event.id).await.unwrap()
    }
}

/// A use case's own answer (no idempotency key was sent, so nothing is replayed).
pub fn fresh<T>(answer: Answer<T>) -> T {
    match answer {
        Answer::Fresh(view) => view,
        Answer::Replay(_) => panic!("no idempotency key was sent, nothing can be replayed"),
    }
}

/// A key-in of `amount_minor` won with `card`, lump sum, no extras.
pub fn key_in(order_id: &str, amount_minor: i64, card: &str) -> KeyInCommand {
    key_in_notifying(order_id, amount_minor, card, None)
}

/// A key-in whose notification goes to `notification_url`.
pub fn key_in_notifying(order_id: &str, amount_minor: i64, card: &str, notification_url: Option<&str>) -> KeyInCommand {
    KeyInCommand {
        amounts: command::amounts(amount_minor, None, None).unwrap(),
        order_id: command::order_id(order_id).unwrap(),
        order_name: command::order_name("Harness T-shirt").unwrap(),
        card: CardSource::Clear(clear_card(card)),
        installment: command::installment(0).unwrap(),
        customer: Customer::default(),
        notification_url: NotificationUrl::parse(notification_url.map(str::to_owned)).unwrap(),
        extras: Default::default(),
    }
}

pub fn clear_card(number: &str) -> ClearCard {
    ClearCard::parse(CardText {
        number,
        expiration_year: "2040",
        expiration_month: "12",
        password: None,
        identity_number: None,
    })
    .unwrap()
}

/// A merchant's server for notifications and webhooks: answers each request with the next scripted status and
/// body (the last one repeats), and keeps what it received. A minimal HTTP/1.1 server, one request per connection.
#[derive(Clone)]
pub struct Receiver {
    pub url: String,
    calls: Arc<Mutex<Vec<Received>>>,
}

/// One request the receiver got.
#[derive(Clone, Debug)]
pub struct Received {
    /// Header names lowercased.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Received {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    /// The body's `application/x-www-form-urlencoded` field `name`, decoded.
    pub fn form_field(&self, name: &str) -> Option<String> {
        let text = std::str::from_utf8(&self.body).ok()?;
        text.split('&').find_map(|pair| {
            let (key, value) = pair.split_once('=')?;
            (key == name).then(|| percent_decode(value))
        })
    }
}

fn percent_decode(text: &str) -> String {
    let bytes = text.replace('+', " ").into_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok());
        match (bytes[i], hex.and_then(|h| u8::from_str_radix(h, 16).ok())) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl Receiver {
    pub async fn start(script: Vec<(u16, &'static str)>) -> Receiver {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let calls = Arc::new(Mutex::new(Vec::new()));
        let receiver = Receiver {
            url,
            calls: calls.clone(),
        };
        let script = Arc::new(script);
        tokio::spawn(async move {
            loop {
                let Ok((mut stream, _)) = listener.accept().await else {
                    return;
                };
                let calls = calls.clone();
                let script = script.clone();
                tokio::spawn(async move {
                    let mut buffer = Vec::new();
                    let mut chunk = [0u8; 4096];
                    let (head_end, length) = loop {
                        let Ok(read) = stream.read(&mut chunk).await else {
                            return;
                        };
                        if read == 0 || buffer.len() > 1 << 20 {
                            return;
                        }
                        buffer.extend_from_slice(&chunk[..read]);
                        if let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
                            let head = String::from_utf8_lossy(&buffer[..end]).to_ascii_lowercase();
                            let length = head
                                .lines()
                                .find_map(|l| l.strip_prefix("content-length:"))
                                .and_then(|v| v.trim().parse::<usize>().ok())
                                .unwrap_or(0);
                            break (end + 4, length);
                        }
                    };
                    while buffer.len() < head_end + length {
                        let Ok(read) = stream.read(&mut chunk).await else {
                            return;
                        };
                        if read == 0 {
                            return;
                        }
                        buffer.extend_from_slice(&chunk[..read]);
                    }
                    let head = String::from_utf8_lossy(&buffer[..head_end]).into_owned();
                    let headers = head
                        .lines()
                        .skip(1)
                        .filter_map(|line| line.split_once(':'))
                        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
                        .collect();
                    let body = buffer[head_end..head_end + length].to_vec();
                    let index = {
                        let mut calls = calls.lock().unwrap();
                        calls.push(Received { headers, body });
                        calls.len() - 1
                    };
                    let (status, text) = script[index.min(script.len() - 1)];
                    let response = format!(
                        "HTTP/1.1 {status} X\r\ncontent-type: text/plain\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{text}",
                        text.len()
                    );
                    let _ = stream.write_all(response.as_bytes()).await;
                    let _ = stream.shutdown().await;
                });
            }
        });
        receiver
    }

    pub fn calls(&self) -> Vec<Received> {
        self.calls.lock().unwrap().clone()
    }
}
