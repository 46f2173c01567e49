//! The payment workers with a clock the test moves and an acquirer the test holds: unknown approvals are resolved,
//! and cancels whose answer was lost retried, concurrently within `payments.worker_concurrency_max`.

#![allow(clippy::unwrap_used)]

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use paygate_app::clock::ManualClock;
use paygate_app::idempotency::Answer;
use paygate_app::payments::command::{self, CardText, ClearCard, Customer};
use paygate_app::payments::{Acquirers, CancelCommand, CardSource, KeyInCommand, PaymentConfig, PaymentView};
use paygate_app::{App, AppOptions, Secrets};
use paygate_connectors::{
    Acquirer, AcquirerId, Approval, ApproveOutcome, ApproveRequest, CancelOutcome, CancelRequest, Cancellation,
    ConnectorError, InquiryOutcome,
};
use paygate_domain::api_key::{KeyKind, Mode};
use paygate_domain::payment::PaymentStatus;
use paygate_domain::time::UnixMillis;
use paygate_store::testing::TestDatabase;
use tokio::sync::watch;

/// Approvals time out (outcome unknown) or, with `approve`, succeed; a cancel times out until `hold_cancels`, then
/// waits at the gate. Inquiries wait at the gate the test opens; calls at the gate are counted.
struct SlowAcquirer {
    id: AcquirerId,
    approve: bool,
    hold_cancels: AtomicBool,
    in_flight: AtomicUsize,
    in_flight_max: AtomicUsize,
    waiting: watch::Sender<usize>,
    gate: watch::Sender<bool>,
}

#[async_trait]
impl Acquirer for SlowAcquirer {
    fn id(&self) -> &AcquirerId {
        &self.id
    }

    async fn approve(&self, request: &ApproveRequest) -> Result<ApproveOutcome, ConnectorError> {
        if !self.approve {
            return Err(ConnectorError::Timeout);
        }
        Ok(ApproveOutcome::Approved(approval(&request.reference)))
    }

    async fn cancel(&self, request: &CancelRequest) -> Result<CancelOutcome, ConnectorError> {
        if !self.hold_cancels.load(Ordering::SeqCst) {
            return Err(ConnectorError::Timeout);
        }
        self.at_gate().await;
        Ok(CancelOutcome::Canceled(Cancellation {
            acquirer_transaction_id: format!("A-{}", request.reference),
            canceled_at: UnixMillis::new(2),
        }))
    }

    async fn reverse(&self, _reference: &str, _merchant: &str) -> Result<(), ConnectorError> {
        Ok(())
    }

    async fn inquire(&self, reference: &str, _merchant: &str) -> Result<InquiryOutcome, ConnectorError> {
        self.at_gate().await;
        Ok(InquiryOutcome::Approved(approval(reference)))
    }

    async fn verify(
        &self,
        _request: &paygate_connectors::VerifyRequest,
    ) -> Result<paygate_connectors::VerifyOutcome, ConnectorError> {
        Err(ConnectorError::SystemError("this acquirer verifies no cards".into()))
    }
}

impl SlowAcquirer {
    fn new(approve: bool) -> SlowAcquirer {
        SlowAcquirer {
            id: AcquirerId::parse("A").unwrap(),
            approve,
            hold_cancels: AtomicBool::new(false),
            in_flight: AtomicUsize::new(0),
            in_flight_max: AtomicUsize::new(0),
            waiting: watch::Sender::new(0),
            gate: watch::Sender::new(false),
        }
    }

    async fn at_gate(&self) {
        let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.in_flight_max.fetch_max(now, Ordering::SeqCst);
        // The count is read under the channel's lock: with `send_replace(now)`, two calls arriving together could
        // publish 16 then 15, and the waiter never saw the bound reached (a flaky failure under load).
        self.publish_in_flight();
        let mut gate = self.gate.subscribe();
        let _ = gate.wait_for(|open| *open).await;
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
        self.publish_in_flight();
    }

    fn publish_in_flight(&self) {
        self.waiting
            .send_modify(|published| *published = self.in_flight.load(Ordering::SeqCst));
    }

    /// Waits, with a deadline rather than a sleep, until `count` calls are at the gate; then opens it.
    async fn open_gate_when(&self, count: usize) -> (bool, usize) {
        let mut waiting = self.waiting.subscribe();
        // (Keep no `Ref` from `wait_for`: it holds the channel's lock, and the acquirer writes to it.)
        let reached = tokio::time::timeout(Duration::from_secs(20), waiting.wait_for(|n| *n >= count))
            .await
            .is_ok_and(|changed| changed.is_ok());
        let in_flight = self.in_flight.load(Ordering::SeqCst);
        self.gate.send_replace(true);
        (reached, in_flight)
    }
}

fn approval(reference: &str) -> Approval {
    Approval {
        approval_number: "00000001".into(),
        acquirer_transaction_id: format!("A-{reference}"),
        issuer_code: "11".into(),
        acquirer_code: "11".into(),
        card_type: paygate_domain::card::CardType::Credit,
        owner_type: paygate_domain::card::OwnerType::Personal,
        approved_at: UnixMillis::new(1),
    }
}

const PAYMENTS: usize = 32;

fn fresh(answer: Answer<PaymentView>) -> PaymentView {
    match answer {
        Answer::Fresh(view) => view,
        Answer::Replay(_) => panic!("no idempotency key was sent, nothing can be replayed"),
    }
}

struct Harness {
    app: App,
    clock: Arc<ManualClock>,
    acquirer: Arc<SlowAcquirer>,
    caller: paygate_app::auth::Caller,
    bound: usize,
    _db: TestDatabase,
}

async fn harness(acquirer: SlowAcquirer) -> Harness {
    let db = TestDatabase::new().await;
    let (store, _) = db.open().await;
    let clock = Arc::new(ManualClock::new(UnixMillis::new(1_795_000_000_000)));
    let acquirer = Arc::new(acquirer);
    let mut acquirers = Acquirers::new();
    acquirers.add(Mode::Test, acquirer.clone());
    let payments = PaymentConfig::default();
    let bound = usize::try_from(payments.worker_concurrency_max).unwrap();
    assert_eq!(bound, 16);
    let options = AppOptions {
        acquirers,
        payments,
        ..AppOptions::default()
    };
    let app = App::with_options(store, &Secrets::for_tests(11), clock.clone(), options).unwrap();
    let created = app.create_merchant("Slow Acquirer Shop").await.unwrap();
    let key = created.key(Mode::Test, KeyKind::Secret).unwrap();
    let caller = app.authenticate(key.secret.expose_secret()).await.unwrap();
    Harness {
        app,
        clock,
        acquirer,
        caller,
        bound,
        _db: db,
    }
}

fn key_in(index: usize) -> KeyInCommand {
    let card = ClearCard::parse(CardText {
        number: "4330000000000003",
        expiration_year: "40",
        expiration_month: "12",
        password: None,
        identity_number: None,
    });
    KeyInCommand {
        amounts: command::amounts(1000, None, None).unwrap(),
        order_id: command::order_id(&format!("order-slow-{index}")).unwrap(),
        order_name: command::order_name("slow").unwrap(),
        card: CardSource::Clear(card.unwrap()),
        installment: command::installment(0).unwrap(),
        customer: Customer::default(),
        notification_url: None,
        extras: Default::default(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_approvals_are_resolved_concurrently_within_the_bound() {
    let h = harness(SlowAcquirer::new(false)).await;
    for index in 0..PAYMENTS {
        let view = fresh(h.app.key_in(&h.caller, key_in(index), None).await.unwrap());
        assert_eq!(view.payment.status, PaymentStatus::InProgress);
    }
    h.clock.advance_millis(60_000);
    let worker = tokio::spawn({
        let app = h.app.clone();
        async move { app.run_workers_once().await }
    });
    // One at a time, the count at the gate never gets past 1.
    let (reached, in_flight) = h.acquirer.open_gate_when(h.bound).await;
    let report = worker.await.unwrap().unwrap();
    assert!(
        reached,
        "inquiries ran one at a time: {in_flight} in flight while {PAYMENTS} were due"
    );
    assert_eq!(h.acquirer.in_flight_max.load(Ordering::SeqCst), h.bound);
    assert_eq!(report.inquiries, u32::try_from(PAYMENTS).unwrap());
    assert_eq!(report.errors, 0);
    for index in 0..PAYMENTS {
        let order = format!("order-slow-{index}");
        let view = h.app.get_payment_by_order(&h.caller, &order).await.unwrap();
        assert_eq!(view.payment.status, PaymentStatus::Done, "{order}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_cancels_are_retried_concurrently_within_the_bound() {
    let h = harness(SlowAcquirer::new(true)).await;
    for index in 0..PAYMENTS {
        let view = fresh(h.app.key_in(&h.caller, key_in(index), None).await.unwrap());
        assert_eq!(view.payment.status, PaymentStatus::Done);
        let request = CancelCommand::parse("changed my mind", None, None, None).unwrap();
        // The answer is lost: the cancel stays pending for the worker.
        let _ = h.app.cancel(&h.caller, view.payment.id, request, None).await;
    }
    h.acquirer.hold_cancels.store(true, Ordering::SeqCst);
    h.clock.advance_millis(600_000);
    let worker = tokio::spawn({
        let app = h.app.clone();
        async move { app.run_workers_once().await }
    });
    let (reached, in_flight) = h.acquirer.open_gate_when(h.bound).await;
    let report = worker.await.unwrap().unwrap();
    assert!(
        reached,
        "cancel retries ran one at a time: {in_flight} in flight while {PAYMENTS} were due"
    );
    assert_eq!(h.acquirer.in_flight_max.load(Ordering::SeqCst), h.bound);
    assert_eq!(report.cancel_retries, u32::try_from(PAYMENTS).unwrap());
    assert_eq!(report.errors, 0);
    for index in 0..PAYMENTS {
        let order = format!("order-slow-{index}");
        let view = h.app.get_payment_by_order(&h.caller, &order).await.unwrap();
        assert_eq!(view.payment.status, PaymentStatus::Canceled, "{order}");
    }
}
