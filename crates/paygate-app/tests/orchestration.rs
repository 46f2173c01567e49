//! The money-critical orchestration in process, on a manual clock: approve (approved, declined, unknown → inquiry
//! → approved or not found → reversed and failed), cancel (full, partial, refused, lost → retried by the worker),
//! expiry of READY and authenticated checkout payments, the reversal (망취소) of an approval that can no longer be
//! written, and the outbox rows written with each change. Every case checks the payment, its transactions, the
//! acquirer's journal and the ledger audit.

#![allow(clippy::unwrap_used, clippy::panic)]

mod harness;

use harness::{clear_card, key_in, Harness, Options};
use paygate_app::payments::command::{self, Customer};
use paygate_app::payments::{
    AuthenticateCommand, ConfirmCommand, CreateCommand, DeclineCode, PaymentError, PaymentView,
};
use paygate_connectors::sandbox::test_cards::*;
use paygate_connectors::sandbox::{Fault, FaultPlan, JournalKind, Operation};
use paygate_domain::event::{DeliveryKind, DeliveryStatus, EventType};
use paygate_domain::money::Money;
use paygate_domain::payment::{ApprovalState, PaymentRuleError, PaymentStatus, TransactionKind, TransactionStatus};

/// What the first answer to a key-in was.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum First {
    Done,
    /// `202`: IN_PROGRESS with the outcome unknown, left to the inquiry worker.
    Unknown,
    Declined(DeclineCode),
    Unavailable,
}

fn first_of(result: &Result<PaymentView, PaymentError>) -> First {
    match result {
        Ok(view) if view.approval_unknown() => First::Unknown,
        Ok(view) => {
            assert_eq!(view.payment.status, PaymentStatus::Done);
            First::Done
        }
        Err(PaymentError::Declined { code, .. }) => First::Declined(*code),
        Err(PaymentError::AcquirerUnavailable { .. }) => First::Unavailable,
        Err(other) => panic!("unexpected answer {other:?}"),
    }
}

struct ApproveCase {
    name: &'static str,
    card: &'static str,
    faults: &'static [(Operation, Fault)],
    first: First,
    /// Inquiries the worker makes before the outcome is known (0: known at once).
    inquiries: u32,
    status: PaymentStatus,
    failure: Option<&'static str>,
    journal: &'static [JournalKind],
}

const APPROVE_CASES: &[ApproveCase] = &[
    ApproveCase {
        name: "approved",
        card: APPROVED,
        faults: &[],
        first: First::Done,
        inquiries: 0,
        status: PaymentStatus::Done,
        failure: None,
        journal: &[JournalKind::Approved],
    },
    ApproveCase {
        name: "insufficient funds",
        card: INSUFFICIENT_FUNDS,
        faults: &[],
        first: First::Declined(DeclineCode::RejectCardPayment),
        inquiries: 0,
        status: PaymentStatus::Aborted,
        failure: Some("REJECT_CARD_PAYMENT"),
        journal: &[JournalKind::Declined],
    },
    ApproveCase {
        name: "lost or stolen",
        card: LOST_OR_STOLEN,
        faults: &[],
        first: First::Declined(DeclineCode::LostOrStolenCard),
        inquiries: 0,
        status: PaymentStatus::Aborted,
        failure: Some("INVALID_CARD_LOST_OR_STOLEN"),
        journal: &[JournalKind::Declined],
    },
    ApproveCase {
        name: "authentication required for key-in",
        card: AUTHENTICATION_REQUIRED,
        faults: &[],
        first: First::Declined(DeclineCode::AuthenticationRequired),
        inquiries: 0,
        status: PaymentStatus::Aborted,
        failure: Some("CARD_AUTHENTICATION_REQUIRED"),
        journal: &[JournalKind::Declined],
    },
    ApproveCase {
        name: "system error three times: nothing charged",
        card: SYSTEM_ERROR,
        faults: &[],
        first: First::Unavailable,
        inquiries: 0,
        status: PaymentStatus::Aborted,
        failure: Some("ACQUIRER_UNAVAILABLE"),
        journal: &[],
    },
    ApproveCase {
        name: "one system error, then approved on the retry",
        card: APPROVED,
        faults: &[(Operation::Approve, Fault::SystemError)],
        first: First::Done,
        inquiries: 0,
        status: PaymentStatus::Done,
        failure: None,
        journal: &[JournalKind::Approved],
    },
    ApproveCase {
        name: "approved, answer lost (test card): the inquiry finds the approval",
        card: APPROVED_ANSWER_LOST,
        faults: &[],
        first: First::Unknown,
        inquiries: 1,
        status: PaymentStatus::Done,
        failure: None,
        journal: &[JournalKind::Approved],
    },
    ApproveCase {
        name: "approved, answer lost (fault): the inquiry finds the approval",
        card: APPROVED,
        faults: &[(Operation::Approve, Fault::LostAnswer)],
        first: First::Unknown,
        inquiries: 1,
        status: PaymentStatus::Done,
        failure: None,
        journal: &[JournalKind::Approved],
    },
    ApproveCase {
        name: "timeout (test card): not found, reversed first, then failed",
        card: TIMEOUT_NOT_APPROVED,
        faults: &[],
        first: First::Unknown,
        inquiries: 1,
        status: PaymentStatus::Aborted,
        failure: Some("ACQUIRER_TIMEOUT"),
        journal: &[JournalKind::ReverseOfUnknown],
    },
    ApproveCase {
        name: "timeout (fault): not found, reversed first, then failed",
        card: APPROVED,
        faults: &[(Operation::Approve, Fault::Timeout)],
        first: First::Unknown,
        inquiries: 1,
        status: PaymentStatus::Aborted,
        failure: Some("ACQUIRER_TIMEOUT"),
        journal: &[JournalKind::ReverseOfUnknown],
    },
    ApproveCase {
        name: "answer lost and the first inquiry times out: the second finds the approval",
        card: APPROVED,
        faults: &[
            (Operation::Approve, Fault::LostAnswer),
            (Operation::Inquire, Fault::Timeout),
        ],
        first: First::Unknown,
        inquiries: 2,
        status: PaymentStatus::Done,
        failure: None,
        journal: &[JournalKind::Approved],
    },
    ApproveCase {
        name: "timeout and the reversal fails: the inquiry is postponed, then reverses and fails",
        card: APPROVED,
        faults: &[
            (Operation::Approve, Fault::Timeout),
            (Operation::Reverse, Fault::Timeout),
        ],
        first: First::Unknown,
        inquiries: 2,
        status: PaymentStatus::Aborted,
        failure: Some("ACQUIRER_TIMEOUT"),
        journal: &[JournalKind::ReverseOfUnknown],
    },
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approvals_end_approved_or_failed_and_unknown_outcomes_are_resolved_by_inquiry() {
    for (index, case) in APPROVE_CASES.iter().enumerate() {
        let h = Harness::new().await;
        for (operation, fault) in case.faults {
            h.fault_next(*operation, *fault);
        }
        let order = format!("approve-{index:04}");
        let result = h.key_in(key_in(&order, 15_000, case.card)).await;
        assert_eq!(first_of(&result), case.first, "{}", case.name);
        let id = match &result {
            Ok(view) => view.payment.id,
            Err(PaymentError::Declined { payment, .. }) => payment.id,
            Err(PaymentError::AcquirerUnavailable { payment: Some(payment) }) => payment.id,
            Err(other) => panic!("{}: {other:?}", case.name),
        };

        // An unknown outcome is asked about after the first backoff (1 s), never before; then with backoff.
        let mut inquiries = 0;
        if case.first == First::Unknown {
            let early = h.workers_at(999).await;
            assert_eq!(early.inquiries, 0, "{}: asked before the backoff", case.name);
            let mut wait_ms = 1;
            for _ in 0..8 {
                let report = h.workers_at(wait_ms).await;
                assert_eq!(report.errors, 0, "{}", case.name);
                inquiries += report.inquiries;
                if !h.payment(id).await.approval_unknown() {
                    break;
                }
                wait_ms = 60_000;
            }
        }
        assert_eq!(inquiries, case.inquiries, "{}: inquiries", case.name);

        let view = h.payment(id).await;
        assert_eq!(view.payment.status, case.status, "{}", case.name);
        assert_eq!(
            view.payment.failure.as_ref().map(|f| f.code.as_str()),
            case.failure,
            "{}",
            case.name
        );
        assert_eq!(view.payment.next_inquiry_at, None, "{}: nothing left to ask", case.name);
        assert_eq!(
            h.journal_kinds(&id.to_string()),
            case.journal,
            "{}: the acquirer's journal",
            case.name
        );
        let approvals: Vec<_> = view
            .transactions
            .iter()
            .filter(|t| t.kind == TransactionKind::Approval)
            .collect();
        let approved = case.status == PaymentStatus::Done;
        assert_eq!(
            approvals.len(),
            usize::from(approved),
            "{}: approval transaction",
            case.name
        );
        if approved {
            assert_eq!(approvals[0].status, TransactionStatus::Done, "{}", case.name);
            assert_eq!(approvals[0].amount, Money::krw(15_000), "{}", case.name);
            assert_eq!(view.payment.balance, Money::krw(15_000), "{}", case.name);
            assert_eq!(h.acquirer_balance(&id.to_string()), Some(15_000), "{}", case.name);
        } else {
            assert_ne!(
                h.acquirer_balance(&id.to_string()),
                Some(15_000),
                "{}: money moved",
                case.name
            );
        }
        assert_eq!(h.ledger_journals().await, u64::from(approved), "{}: ledger", case.name);
        // A settled payment is left alone by later passes.
        let later = h.workers_at(3_600_000).await;
        assert!(later.is_idle(), "{}: {later:?}", case.name);
    }
}

/// What a cancel answered at first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum CancelFirst {
    Done,
    /// `202`: the cancel is PENDING, left to the worker.
    Pending,
    Refused,
    Unavailable,
    ExceedsBalance,
}

struct CancelCase {
    name: &'static str,
    /// Cancels in order; `None` cancels the balance. The last one meets `faults`.
    amounts: &'static [Option<i64>],
    faults: &'static [(Operation, Fault)],
    /// The acquirer voids the approval behind paygate's back first (so it refuses the cancel).
    voided_at_acquirer: bool,
    first: CancelFirst,
    /// Retries the worker makes for the last cancel.
    retries: u32,
    status: PaymentStatus,
    balance: i64,
    /// Cancel transactions DONE and FAILED in the end.
    done: usize,
    failed: usize,
    cancels_at_acquirer: usize,
}

const CANCEL_CASES: &[CancelCase] = &[
    CancelCase {
        name: "full",
        amounts: &[None],
        faults: &[],
        voided_at_acquirer: false,
        first: CancelFirst::Done,
        retries: 0,
        status: PaymentStatus::Canceled,
        balance: 0,
        done: 1,
        failed: 0,
        cancels_at_acquirer: 1,
    },
    CancelCase {
        name: "partial",
        amounts: &[Some(5_000)],
        faults: &[],
        voided_at_acquirer: false,
        first: CancelFirst::Done,
        retries: 0,
        status: PaymentStatus::PartialCanceled,
        balance: 10_000,
        done: 1,
        failed: 0,
        cancels_at_acquirer: 1,
    },
    CancelCase {
        name: "partial, partial, then the rest",
        amounts: &[Some(5_000), Some(4_000), None],
        faults: &[],
        voided_at_acquirer: false,
        first: CancelFirst::Done,
        retries: 0,
        status: PaymentStatus::Canceled,
        balance: 0,
        done: 3,
        failed: 0,
        cancels_at_acquirer: 3,
    },
    CancelCase {
        name: "more than the balance",
        amounts: &[Some(5_000), Some(10_001)],
        faults: &[],
        voided_at_acquirer: false,
        first: CancelFirst::ExceedsBalance,
        retries: 0,
        status: PaymentStatus::PartialCanceled,
        balance: 10_000,
        done: 1,
        failed: 0,
        cancels_at_acquirer: 1,
    },
    CancelCase {
        name: "refused by the acquirer: the reservation is released",
        amounts: &[None],
        faults: &[],
        voided_at_acquirer: true,
        first: CancelFirst::Refused,
        retries: 0,
        status: PaymentStatus::Done,
        balance: 15_000,
        done: 0,
        failed: 1,
        cancels_at_acquirer: 0,
    },
    CancelCase {
        name: "system error: not applied, released",
        amounts: &[Some(5_000)],
        faults: &[(Operation::Cancel, Fault::SystemError)],
        voided_at_acquirer: false,
        first: CancelFirst::Unavailable,
        retries: 0,
        status: PaymentStatus::Done,
        balance: 15_000,
        done: 0,
        failed: 1,
        cancels_at_acquirer: 0,
    },
    CancelCase {
        name: "timeout: the worker sends it again",
        amounts: &[None],
        faults: &[(Operation::Cancel, Fault::Timeout)],
        voided_at_acquirer: false,
        first: CancelFirst::Pending,
        retries: 1,
        status: PaymentStatus::Canceled,
        balance: 0,
        done: 1,
        failed: 0,
        cancels_at_acquirer: 1,
    },
    CancelCase {
        name: "answer lost: the worker's retry gets the first answer, refunded once",
        amounts: &[Some(5_000)],
        faults: &[(Operation::Cancel, Fault::LostAnswer)],
        voided_at_acquirer: false,
        first: CancelFirst::Pending,
        retries: 1,
        status: PaymentStatus::PartialCanceled,
        balance: 10_000,
        done: 1,
        failed: 0,
        cancels_at_acquirer: 1,
    },
    CancelCase {
        // The first attempt was applied but its answer lost; the retry meets a system error ("not applied" speaks
        // for the retry alone): the cancel stays pending and the next retry gets the acquirer's answer.
        name: "answer lost, then a system error: still pending, never released, refunded once",
        amounts: &[Some(3_000)],
        faults: &[
            (Operation::Cancel, Fault::LostAnswer),
            (Operation::Cancel, Fault::SystemError),
        ],
        voided_at_acquirer: false,
        first: CancelFirst::Pending,
        retries: 2,
        status: PaymentStatus::PartialCanceled,
        balance: 12_000,
        done: 1,
        failed: 0,
        cancels_at_acquirer: 1,
    },
    CancelCase {
        name: "timeout twice: retried with backoff",
        amounts: &[None],
        faults: &[(Operation::Cancel, Fault::Timeout), (Operation::Cancel, Fault::Timeout)],
        voided_at_acquirer: false,
        first: CancelFirst::Pending,
        retries: 2,
        status: PaymentStatus::Canceled,
        balance: 0,
        done: 1,
        failed: 0,
        cancels_at_acquirer: 1,
    },
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancels_full_partial_refused_and_lost_ones_retried_by_the_worker() {
    for (index, case) in CANCEL_CASES.iter().enumerate() {
        let h = Harness::new().await;
        let approved = h
            .key_in(key_in(&format!("cancel-{index:04}"), 15_000, APPROVED))
            .await
            .unwrap();
        let id = approved.payment.id;
        if case.voided_at_acquirer {
            use paygate_connectors::Acquirer;
            let route = approved.payment.route.clone().unwrap();
            h.sandboxes[0]
                .reverse(&id.to_string(), &route.acquirer_merchant_id)
                .await
                .unwrap();
        }
        let (last, earlier) = case.amounts.split_last().unwrap();
        for amount in earlier {
            h.cancel(id, *amount).await.unwrap();
        }
        for (operation, fault) in case.faults {
            h.fault_next(*operation, *fault);
        }
        let result = h.cancel(id, *last).await;
        let first = match &result {
            Ok(view) if view.outcome_pending() => CancelFirst::Pending,
            Ok(_) => CancelFirst::Done,
            Err(PaymentError::CancelRefused { .. }) => CancelFirst::Refused,
            Err(PaymentError::AcquirerUnavailable { .. }) => CancelFirst::Unavailable,
            Err(PaymentError::Rule(PaymentRuleError::Cancel(_))) => CancelFirst::ExceedsBalance,
            Err(other) => panic!("{}: {other:?}", case.name),
        };
        assert_eq!(first, case.first, "{}", case.name);

        // A pending cancel is sent again after the backoff (1 s, doubling), never before.
        let mut retries = 0;
        if first == CancelFirst::Pending {
            let early = h.workers_at(999).await;
            assert_eq!(early.cancel_retries, 0, "{}: retried before the backoff", case.name);
            let mut wait_ms = 1;
            for _ in 0..8 {
                let report = h.workers_at(wait_ms).await;
                assert_eq!(report.errors, 0, "{}", case.name);
                retries += report.cancel_retries;
                if !h
                    .payment(id)
                    .await
                    .transactions
                    .iter()
                    .any(|t| t.status == TransactionStatus::Pending)
                {
                    break;
                }
                wait_ms = 60_000;
            }
        }
        assert_eq!(retries, case.retries, "{}: retries", case.name);

        let view = h.payment(id).await;
        assert_eq!(view.payment.status, case.status, "{}", case.name);
        assert_eq!(view.payment.balance, Money::krw(case.balance), "{}", case.name);
        let cancels = |status| {
            view.transactions
                .iter()
                .filter(|t| t.kind == TransactionKind::Cancel && t.status == status)
                .count()
        };
        assert_eq!(
            cancels(TransactionStatus::Done),
            case.done,
            "{}: done cancels",
            case.name
        );
        assert_eq!(
            cancels(TransactionStatus::Failed),
            case.failed,
            "{}: failed cancels",
            case.name
        );
        assert_eq!(cancels(TransactionStatus::Pending), 0, "{}: pending cancels", case.name);
        let journal = h.journal_kinds(&id.to_string());
        let at_acquirer = journal.iter().filter(|k| **k == JournalKind::Canceled).count();
        assert_eq!(at_acquirer, case.cancels_at_acquirer, "{}: {journal:?}", case.name);
        if !case.voided_at_acquirer {
            assert_eq!(h.acquirer_balance(&id.to_string()), Some(case.balance), "{}", case.name);
        }
        // One journal for the approval, one per completed cancel; all balanced and matching the payment.
        assert_eq!(
            h.ledger_journals().await,
            1 + u64::try_from(case.done).unwrap(),
            "{}: ledger",
            case.name
        );
    }
}

fn create_command(order_id: &str, amount_minor: i64) -> CreateCommand {
    CreateCommand {
        amounts: command::amounts(amount_minor, None, None).unwrap(),
        order_id: command::order_id(order_id).unwrap(),
        order_name: command::order_name("Harness pen").unwrap(),
        customer: Customer::default(),
        notification_url: None,
        extras: Default::default(),
        success_url: None,
        fail_url: None,
        method: None,
    }
}

fn authenticate_command(card: &str) -> AuthenticateCommand {
    AuthenticateCommand {
        card: clear_card(card),
        installment: command::installment(0).unwrap(),
    }
}

/// A checkout payment created now, and (with `authenticated`) the buyer's card attached.
async fn checkout(h: &Harness, order_id: &str, authenticated: bool) -> PaymentView {
    let created = h
        .app
        .create_checkout(&h.caller, create_command(order_id, 5_000), None)
        .await
        .unwrap();
    let created = harness::fresh(created);
    assert_eq!(created.payment.status, PaymentStatus::Ready);
    if !authenticated {
        return created;
    }
    let id = created.payment.id;
    let authed = h
        .app
        .authenticate_checkout(&h.client, id, authenticate_command(APPROVED), None)
        .await
        .unwrap();
    let authed = harness::fresh(authed);
    assert_eq!(authed.payment.status, PaymentStatus::InProgress);
    authed
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checkout_payments_expire_at_their_deadline_and_not_before() {
    let payments = paygate_app::payments::PaymentConfig::default();
    let ready_ms = i64::from(payments.checkout_ready_secs) * 1_000;
    let confirm_ms = i64::from(payments.confirm_window_secs) * 1_000;
    // (case, authenticated first, the deadline from creation)
    let cases = [
        ("READY, never authenticated", false, ready_ms),
        ("authenticated, never confirmed", true, confirm_ms),
    ];
    for (index, (case, authenticated, deadline_ms)) in cases.into_iter().enumerate() {
        let h = Harness::new().await;
        let order = format!("expiry-{index:04}");
        let view = checkout(&h, &order, authenticated).await;
        let id = view.payment.id;
        let before = h.workers_at(deadline_ms - 1).await;
        assert_eq!(before.expired, 0, "{case}: expired early");
        assert_eq!(h.payment(id).await.payment.status, view.payment.status, "{case}");
        let at = h.workers_at(1).await;
        assert_eq!(at.expired, 1, "{case}");
        let expired = h.payment(id).await;
        assert_eq!(expired.payment.status, PaymentStatus::Expired, "{case}");
        assert!(expired.transactions.is_empty(), "{case}");
        assert_eq!(
            h.store().checkout_card(id).await.unwrap(),
            None,
            "{case}: the sealed card is deleted"
        );
        assert!(
            h.journal(&id.to_string()).is_empty(),
            "{case}: the acquirer never heard of it"
        );
        assert_eq!(h.ledger_journals().await, 0, "{case}");
        // Late steps are refused as expired.
        let late = if authenticated {
            let confirm = ConfirmCommand::parse(&order, 5_000).unwrap();
            h.app.confirm(&h.caller, id, confirm, None).await.map(harness::fresh)
        } else {
            h.app
                .authenticate_checkout(&h.client, id, authenticate_command(APPROVED), None)
                .await
                .map(harness::fresh)
        };
        match late {
            Err(PaymentError::Rule(PaymentRuleError::Expired)) => {}
            Err(PaymentError::Rule(PaymentRuleError::Transition(t))) if t.from == PaymentStatus::Expired => {}
            other => panic!("{case}: a late step answered {other:?}"),
        }
        let events = h.events_of(id).await;
        let last = events.last().unwrap();
        assert_eq!(
            last.previous_status.as_deref(),
            Some(view.payment.status.as_str()),
            "{case}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approval_found_after_the_deadline_is_reversed_and_the_payment_expires() {
    let h = Harness::new().await;
    let view = checkout(&h, "reversal-0001", true).await;
    let id = view.payment.id;
    // The confirm reaches the acquirer, which approves; the answer is lost.
    h.fault_next(Operation::Approve, Fault::LostAnswer);
    let confirm = ConfirmCommand::parse("reversal-0001", 5_000).unwrap();
    let unknown = harness::fresh(h.app.confirm(&h.caller, id, confirm, None).await.unwrap());
    assert!(unknown.approval_unknown());
    assert_eq!(
        h.acquirer_balance(&id.to_string()),
        Some(5_000),
        "the acquirer holds an approval"
    );
    // Inquiries fail until the confirm window has passed.
    for _ in 0..12 {
        h.fault_next(Operation::Inquire, Fault::Timeout);
    }
    let deadline = view.payment.expires_at.unwrap();
    let mut passes = 0;
    while h.now() < deadline {
        let report = h.workers_at(60_000).await;
        assert_eq!(report.expired, 0, "an approval in doubt is never expired blindly");
        passes += 1;
        assert!(passes < 20, "the deadline never came");
    }
    h.faults.clear();
    let report = h.workers_at(60_000).await;
    assert_eq!(report.inquiries, 1);
    let after = h.payment(id).await;
    assert_eq!(after.payment.status, PaymentStatus::Expired);
    assert_eq!(after.payment.approval_state, ApprovalState::Completed);
    assert!(after.transactions.is_empty(), "no approval is recorded");
    assert_eq!(
        h.journal_kinds(&id.to_string()),
        [JournalKind::Approved, JournalKind::Reversed],
        "approved, then reversed at the acquirer"
    );
    assert_eq!(h.acquirer_balance(&id.to_string()), Some(0));
    assert_eq!(h.ledger_journals().await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_payment_change_writes_its_event_and_deliveries_in_the_same_transaction() {
    let outbox = paygate_app::outbox::OutboxConfig {
        allow_loopback: true,
        ..Default::default()
    };
    let h = Harness::with(Options {
        outbox,
        ..Options::default()
    })
    .await;
    let receiver = harness::Receiver::start(vec![(200, "SUCCESS")]).await;
    h.app
        .set_notification(&h.caller, Some(receiver.url.clone()), None, None)
        .await
        .unwrap();
    h.app
        .create_endpoint(&h.caller, &receiver.url, &["PAYMENT_STATUS_CHANGED".to_owned()], None)
        .await
        .unwrap();

    // (case, card, fault, cancel afterwards, the status changes recorded as events)
    type Case = (
        &'static str,
        &'static str,
        Option<(Operation, Fault)>,
        Option<i64>,
        &'static [(&'static str, &'static str)],
    );
    let cases: &[Case] = &[
        ("approved", APPROVED, None, None, &[("IN_PROGRESS", "DONE")]),
        (
            "declined",
            INSUFFICIENT_FUNDS,
            None,
            None,
            &[("IN_PROGRESS", "ABORTED")],
        ),
        (
            "unknown: no event until the inquiry",
            APPROVED,
            Some((Operation::Approve, Fault::LostAnswer)),
            None,
            &[("IN_PROGRESS", "DONE")],
        ),
        (
            "approved, then partly cancelled",
            APPROVED,
            None,
            Some(5_000),
            &[("IN_PROGRESS", "DONE"), ("DONE", "PARTIAL_CANCELED")],
        ),
        (
            "approved, then cancelled",
            APPROVED,
            None,
            Some(15_000),
            &[("IN_PROGRESS", "DONE"), ("DONE", "CANCELED")],
        ),
    ];
    for (index, (case, card, fault, cancel, changes)) in cases.iter().enumerate() {
        if let Some((operation, fault)) = fault {
            h.fault_next(*operation, *fault);
        }
        let result = h.key_in(key_in(&format!("outbox-{index:04}"), 15_000, card)).await;
        let id = match &result {
            Ok(view) => view.payment.id,
            Err(PaymentError::Declined { payment, .. }) => payment.id,
            Err(other) => panic!("{case}: {other:?}"),
        };
        if result.as_ref().is_ok_and(|v| v.approval_unknown()) {
            assert!(
                h.events_of(id).await.is_empty(),
                "{case}: an unknown outcome is not an event"
            );
            assert_eq!(h.workers_at(1_000).await.inquiries, 1, "{case}");
        }
        if let Some(amount) = cancel {
            h.cancel(id, Some(*amount)).await.unwrap();
        }
        let events = h.events_of(id).await;
        let seen: Vec<(String, String)> = events
            .iter()
            .map(|e| {
                assert_eq!(e.event_type, EventType::PaymentStatusChanged, "{case}");
                let data: serde_json::Value = serde_json::from_str(&e.data).unwrap();
                let status = data["status"].as_str().unwrap().to_owned();
                (e.previous_status.clone().unwrap_or_default(), status)
            })
            .collect();
        let expected: Vec<(String, String)> = changes
            .iter()
            .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
            .collect();
        assert_eq!(seen, expected, "{case}");
        for event in &events {
            let deliveries = h.deliveries(event).await;
            let kinds: Vec<DeliveryKind> = deliveries.iter().map(|d| d.kind).collect();
            assert!(kinds.contains(&DeliveryKind::Webhook), "{case}: {kinds:?}");
            assert!(kinds.contains(&DeliveryKind::Notification), "{case}: {kinds:?}");
            assert_eq!(deliveries.len(), 2, "{case}: one webhook, one notification");
            for delivery in deliveries {
                assert_eq!(
                    (delivery.status, delivery.attempts),
                    (DeliveryStatus::Pending, 0),
                    "{case}"
                );
                assert!(delivery.next_attempt_at.unwrap() <= h.now(), "{case}: due at once");
                assert_eq!(delivery.url, receiver.url, "{case}");
            }
        }
        // One pass delivers everything that is due, and nothing is due afterwards.
        let report = h.deliver_at(0).await;
        assert_eq!(
            report.succeeded,
            2 * u32::try_from(events.len()).unwrap(),
            "{case}: {report:?}"
        );
        assert_eq!(h.deliver_at(3_600_000).await.attempted, 0, "{case}");
        h.ledger_journals().await;
    }
}

/// Runs worker passes a minute apart until no payment of `ids` has an unknown approval or a pending cancel.
async fn settle(h: &Harness, ids: &[paygate_domain::id::PaymentId]) {
    for _ in 0..50 {
        let mut open = 0;
        for id in ids {
            let view = h.payment(*id).await;
            let pending = view.transactions.iter().any(|t| t.status == TransactionStatus::Pending);
            open += usize::from(view.approval_unknown() || pending);
        }
        if open == 0 {
            return;
        }
        h.workers_at(60_000).await;
    }
    panic!("payments still open after 50 worker passes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_seeded_faults_every_payment_settles_and_agrees_with_the_acquirer() {
    let plan = FaultPlan {
        timeout_per_mille: 150,
        lost_answer_per_mille: 150,
        system_error_per_mille: 100,
        seed: 20_261_202,
    };
    let h = Harness::with(Options {
        fault_plan: Some(plan),
        ..Options::default()
    })
    .await;
    let mut ids = Vec::new();
    for index in 0..40 {
        let order = format!("seeded-{index:04}");
        let result = h.key_in(key_in(&order, 10_000 + index, APPROVED)).await;
        ids.push(match result {
            Ok(view) => view.payment.id,
            Err(PaymentError::AcquirerUnavailable { payment: Some(payment) }) => payment.id,
            Err(other) => panic!("{order}: {other:?}"),
        });
    }
    settle(&h, &ids).await;
    for id in ids.iter().step_by(2) {
        if h.payment(*id).await.payment.status == PaymentStatus::Done {
            // A cancel the acquirer did not apply is released and answered as such; every other ends settled.
            match h.cancel(*id, Some(3_000)).await {
                Ok(_) | Err(PaymentError::AcquirerUnavailable { .. }) => {}
                Err(other) => panic!("{id}: {other:?}"),
            }
        }
    }
    settle(&h, &ids).await;
    let mut statuses = std::collections::BTreeMap::new();
    for id in &ids {
        let view = h.payment(*id).await;
        *statuses.entry(view.payment.status.as_str()).or_insert(0) += 1;
        let at_acquirer = h.acquirer_balance(&id.to_string()).unwrap_or(0);
        match view.payment.status {
            PaymentStatus::Done | PaymentStatus::PartialCanceled => {
                assert_eq!(
                    at_acquirer,
                    view.payment.balance.amount_minor(),
                    "{id}: the books disagree: {:#?}",
                    view.transactions
                );
            }
            PaymentStatus::Aborted => assert_eq!(at_acquirer, 0, "{id}: failed but charged"),
            other => panic!("{id}: ended {other:?}"),
        }
    }
    // The faults did happen: some approvals failed or were resolved late, some cancels took effect.
    assert!(statuses.get("ABORTED").is_some_and(|n| *n > 0), "{statuses:?}");
    assert!(statuses.get("PARTIAL_CANCELED").is_some_and(|n| *n > 0), "{statuses:?}");
    h.ledger_journals().await;
}
