#![allow(clippy::unwrap_used)]

//! The in-process sandbox acquirer: product.md §5, idempotency, cancel accounting, reversal, bounds and faults.

mod common;

use std::collections::HashSet;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use common::{approve_request, check_table_journal, run_table, MERCHANT};
use paygate_connectors::sandbox::{
    test_cards, Fault, FaultPlan, JournalBound, JournalKind, Operation, SandboxAcquirer, IN_PROCESS_JOURNAL_CAPACITY,
};
use paygate_connectors::{
    Acquirer, AcquirerId, ApproveOutcome, CancelOutcome, CancelRequest, ConnectorError, DeclineCode, InquiryOutcome,
};
use paygate_domain::money::{Currency, Money};
use paygate_domain::time::UnixMillis;

/// 2025-06-15T00:00:00Z.
const NOW: i64 = 1_749_945_600_000;

fn id(text: &str) -> AcquirerId {
    AcquirerId::parse(text).unwrap()
}

fn sandbox() -> SandboxAcquirer {
    SandboxAcquirer::new(id("A")).with_clock(|| UnixMillis::new(NOW))
}

fn cancel_request(reference: &str, approval: &str, amount: i64) -> CancelRequest {
    CancelRequest {
        reference: reference.to_owned(),
        approval_reference: approval.to_owned(),
        acquirer_merchant_id: MERCHANT.to_owned(),
        amount: Money::krw(amount),
    }
}

fn refused_code(outcome: &CancelOutcome) -> &str {
    match outcome {
        CancelOutcome::Refused { acquirer_code, .. } => acquirer_code,
        CancelOutcome::Canceled(_) => panic!("expected a refusal, got {outcome:?}"),
    }
}

async fn approve_ok(acquirer: &SandboxAcquirer, reference: &str, amount: i64) {
    let outcome = acquirer
        .approve(&approve_request(reference, test_cards::APPROVED, amount))
        .await
        .unwrap();
    assert!(matches!(outcome, ApproveOutcome::Approved(_)), "{outcome:?}");
}

#[tokio::test]
async fn test_card_table() {
    let acquirer = sandbox();
    run_table(&acquirer).await;
    check_table_journal(&acquirer.journal());
    let counts = acquirer.counts();
    assert_eq!(counts.approved, 6);
    assert_eq!(counts.declined, 6);
    assert_eq!(acquirer.approved_references().len(), 6);
}

#[tokio::test]
async fn approval_details_are_deterministic() {
    let first = sandbox();
    let second = sandbox();
    for acquirer in [&first, &second] {
        approve_ok(acquirer, "pay_1", 1000).await;
        approve_ok(acquirer, "pay_2", 1000).await;
    }
    assert_eq!(first.journal(), second.journal());
    let journal = first.journal();
    assert_eq!(journal[0].acquirer_transaction_id.as_deref(), Some("A-1"));
    assert_eq!(journal[1].acquirer_transaction_id.as_deref(), Some("A-2"));
    assert_ne!(journal[0].approval_number, journal[1].approval_number);
    assert_eq!(journal[0].at, UnixMillis::new(NOW));
}

#[tokio::test]
async fn expiry_follows_the_injected_clock() {
    let now = Arc::new(AtomicI64::new(NOW));
    let clock = Arc::clone(&now);
    let acquirer = SandboxAcquirer::new(id("A")).with_clock(move || UnixMillis::new(clock.load(Ordering::SeqCst)));
    let mut request = approve_request("pay_june", test_cards::APPROVED, 1000);
    request.card.expiry_year = 2025;
    request.card.expiry_month = 6;
    assert!(matches!(
        acquirer.approve(&request).await.unwrap(),
        ApproveOutcome::Approved(_)
    ));

    // 2025-07-01 in Seoul: a card valid through June has expired.
    now.store(1_751_295_600_000, Ordering::SeqCst);
    request.reference = "pay_july".to_owned();
    match acquirer.approve(&request).await.unwrap() {
        ApproveOutcome::Declined(decline) => {
            assert_eq!(decline.code, DeclineCode::InvalidCardExpiration);
            assert_eq!(decline.acquirer_code, "54");
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn approve_is_idempotent_per_reference() {
    let acquirer = sandbox();
    let request = approve_request("pay_1", test_cards::APPROVED, 1000);
    let first = acquirer.approve(&request).await.unwrap();
    for _ in 0..3 {
        assert_eq!(acquirer.approve(&request).await.unwrap(), first);
    }
    assert_eq!(acquirer.counts().approved, 1);

    let declined = approve_request("pay_2", test_cards::INSUFFICIENT_FUNDS, 1000);
    let first = acquirer.approve(&declined).await.unwrap();
    assert_eq!(acquirer.approve(&declined).await.unwrap(), first);
    assert_eq!(acquirer.counts().declined, 1);

    // …0045: the first answer is lost, the repeat delivers the one stored approval.
    let lost = approve_request("pay_3", test_cards::APPROVED_ANSWER_LOST, 1000);
    assert!(matches!(acquirer.approve(&lost).await, Err(ConnectorError::Timeout)));
    let ApproveOutcome::Approved(approval) = acquirer.approve(&lost).await.unwrap() else {
        panic!("expected the stored approval");
    };
    assert_eq!(
        acquirer.inquire("pay_3", MERCHANT).await.unwrap(),
        InquiryOutcome::Approved(approval)
    );
    assert_eq!(acquirer.counts().approved, 2);

    // …0052 and …0060 never approve, however often retried.
    for _ in 0..3 {
        let request = approve_request("pay_4", test_cards::TIMEOUT_NOT_APPROVED, 1000);
        assert!(matches!(acquirer.approve(&request).await, Err(ConnectorError::Timeout)));
        let request = approve_request("pay_5", test_cards::SYSTEM_ERROR, 1000);
        assert!(matches!(
            acquirer.approve(&request).await,
            Err(ConnectorError::SystemError(_))
        ));
    }
    assert_eq!(
        acquirer.inquire("pay_4", MERCHANT).await.unwrap(),
        InquiryOutcome::NotFound
    );
    assert_eq!(
        acquirer.inquire("pay_5", MERCHANT).await.unwrap(),
        InquiryOutcome::NotFound
    );
    assert_eq!(acquirer.journal_len(), 3);
}

#[tokio::test]
async fn a_reused_reference_with_another_request_is_not_the_first_answer() {
    let acquirer = sandbox();
    approve_ok(&acquirer, "pay_1", 1000).await;
    let other_amount = approve_request("pay_1", test_cards::APPROVED, 2000);
    match acquirer.approve(&other_amount).await.unwrap() {
        ApproveOutcome::Declined(decline) => assert_eq!(decline.acquirer_code, "94"),
        other => panic!("{other:?}"),
    }
    // The first decision stands.
    assert!(matches!(
        acquirer.inquire("pay_1", MERCHANT).await.unwrap(),
        InquiryOutcome::Approved(_)
    ));
    assert_eq!(acquirer.balance("pay_1"), Some(Money::krw(1000)));
    assert_eq!(acquirer.journal_len(), 1);
}

#[tokio::test]
async fn lookups_are_scoped_by_merchant() {
    let acquirer = sandbox();
    approve_ok(&acquirer, "pay_1", 1000).await;
    assert_eq!(
        acquirer.inquire("pay_1", "OTHER").await.unwrap(),
        InquiryOutcome::NotFound
    );
    let mut cancel = cancel_request("cxl_1", "pay_1", 500);
    cancel.acquirer_merchant_id = "OTHER".to_owned();
    assert_eq!(refused_code(&acquirer.cancel(&cancel).await.unwrap()), "NO_APPROVAL");
    acquirer.reverse("pay_1", "OTHER").await.unwrap();
    assert_eq!(acquirer.balance("pay_1"), Some(Money::krw(1000)));
}

#[tokio::test]
async fn cancel_balance_accounting() {
    let acquirer = sandbox();
    approve_ok(&acquirer, "pay_1", 10_000).await;

    for (reference, amount, left) in [("cxl_1", 3_000, 7_000), ("cxl_2", 2_000, 5_000), ("cxl_3", 5_000, 0)] {
        let outcome = acquirer
            .cancel(&cancel_request(reference, "pay_1", amount))
            .await
            .unwrap();
        assert!(matches!(outcome, CancelOutcome::Canceled(_)), "{outcome:?}");
        assert_eq!(acquirer.balance("pay_1"), Some(Money::krw(left)));
    }
    let over = acquirer.cancel(&cancel_request("cxl_4", "pay_1", 1)).await.unwrap();
    assert_eq!(refused_code(&over), "EXCEEDS_BALANCE");

    // Fully cancelled reads as reversed.
    match acquirer.inquire("pay_1", MERCHANT).await.unwrap() {
        InquiryOutcome::Reversed { reversed_at, .. } => assert_eq!(reversed_at, UnixMillis::new(NOW)),
        other => panic!("{other:?}"),
    }

    let journal = acquirer.journal();
    let cancels: Vec<_> = journal.iter().filter(|e| e.kind == JournalKind::Canceled).collect();
    assert_eq!(cancels.len(), 3);
    assert_eq!(cancels[0].amount, Some(Money::krw(3_000)));
    assert_eq!(cancels[0].balance_after, Some(Money::krw(7_000)));
    assert_eq!(cancels[0].approval_reference.as_deref(), Some("pay_1"));
    assert_eq!(cancels[2].balance_after, Some(Money::krw(0)));
    assert_eq!(acquirer.counts().cancel_refused, 1);
}

#[tokio::test]
async fn cancel_over_the_balance_changes_nothing() {
    let acquirer = sandbox();
    approve_ok(&acquirer, "pay_1", 1000).await;
    let over = acquirer.cancel(&cancel_request("cxl_1", "pay_1", 1001)).await.unwrap();
    assert_eq!(refused_code(&over), "EXCEEDS_BALANCE");
    assert_eq!(acquirer.balance("pay_1"), Some(Money::krw(1000)));
    let full = acquirer.cancel(&cancel_request("cxl_2", "pay_1", 1000)).await.unwrap();
    assert!(matches!(full, CancelOutcome::Canceled(_)));
}

#[tokio::test]
async fn cancel_refusals() {
    let acquirer = sandbox();
    approve_ok(&acquirer, "pay_1", 1000).await;
    let declined = approve_request("pay_declined", test_cards::LOST_OR_STOLEN, 1000);
    acquirer.approve(&declined).await.unwrap();

    let unknown = acquirer
        .cancel(&cancel_request("cxl_1", "pay_nope", 100))
        .await
        .unwrap();
    assert_eq!(refused_code(&unknown), "NO_APPROVAL");
    let of_decline = acquirer
        .cancel(&cancel_request("cxl_2", "pay_declined", 100))
        .await
        .unwrap();
    assert_eq!(refused_code(&of_decline), "NO_APPROVAL");
    let zero = acquirer.cancel(&cancel_request("cxl_3", "pay_1", 0)).await.unwrap();
    assert_eq!(refused_code(&zero), "INVALID_AMOUNT");
    let mut dollars = cancel_request("cxl_4", "pay_1", 100);
    dollars.amount = Money::new(100, Currency::Usd);
    assert_eq!(
        refused_code(&acquirer.cancel(&dollars).await.unwrap()),
        "CURRENCY_MISMATCH"
    );

    acquirer.reverse("pay_1", MERCHANT).await.unwrap();
    let after_reverse = acquirer.cancel(&cancel_request("cxl_5", "pay_1", 100)).await.unwrap();
    assert_eq!(refused_code(&after_reverse), "NO_APPROVAL");
}

#[tokio::test]
async fn cancel_is_idempotent_per_reference() {
    let acquirer = sandbox();
    approve_ok(&acquirer, "pay_1", 1000).await;
    let request = cancel_request("cxl_1", "pay_1", 400);
    let first = acquirer.cancel(&request).await.unwrap();
    assert!(matches!(first, CancelOutcome::Canceled(_)));
    for _ in 0..3 {
        assert_eq!(acquirer.cancel(&request).await.unwrap(), first);
    }
    assert_eq!(acquirer.balance("pay_1"), Some(Money::krw(600)), "refunded once");
    assert_eq!(acquirer.counts().canceled, 1);

    // The same cancel reference for a different amount is not the same request.
    let reused = acquirer.cancel(&cancel_request("cxl_1", "pay_1", 500)).await.unwrap();
    assert_eq!(refused_code(&reused), "DUPLICATE_REFERENCE");
    assert_eq!(acquirer.balance("pay_1"), Some(Money::krw(600)));

    // A refusal is remembered too: same reference, same answer.
    let over = cancel_request("cxl_2", "pay_1", 5000);
    let refused = acquirer.cancel(&over).await.unwrap();
    assert_eq!(acquirer.cancel(&over).await.unwrap(), refused);
    assert_eq!(acquirer.counts().cancel_refused, 1);
}

#[tokio::test]
async fn reverse_is_idempotent_and_journaled() {
    let acquirer = sandbox();
    approve_ok(&acquirer, "pay_1", 1000).await;
    acquirer.cancel(&cancel_request("cxl_1", "pay_1", 300)).await.unwrap();
    for _ in 0..3 {
        acquirer.reverse("pay_1", MERCHANT).await.unwrap();
    }
    let reversals: Vec<_> = acquirer
        .journal()
        .into_iter()
        .filter(|entry| entry.kind == JournalKind::Reversed)
        .collect();
    assert_eq!(reversals.len(), 1);
    assert_eq!(
        reversals[0].amount,
        Some(Money::krw(700)),
        "the open balance is reversed"
    );
    assert_eq!(acquirer.balance("pay_1"), Some(Money::krw(0)));
    assert!(matches!(
        acquirer.inquire("pay_1", MERCHANT).await.unwrap(),
        InquiryOutcome::Reversed { .. }
    ));
    // A repeated approve still returns the stored approval (the outcome of that request never changes).
    let again = acquirer
        .approve(&approve_request("pay_1", test_cards::APPROVED, 1000))
        .await
        .unwrap();
    assert!(matches!(again, ApproveOutcome::Approved(_)));
    assert_eq!(acquirer.counts().approved, 1);
}

#[tokio::test]
async fn reverse_of_unknown_or_declined_reference() {
    let acquirer = sandbox();
    acquirer.reverse("pay_never", MERCHANT).await.unwrap();
    acquirer.reverse("pay_never", MERCHANT).await.unwrap();
    let journal = acquirer.journal();
    assert_eq!(journal.len(), 1, "recorded once");
    assert_eq!(journal[0].kind, JournalKind::ReverseOfUnknown);
    assert_eq!(journal[0].reference, "pay_never");
    assert_eq!(
        acquirer.inquire("pay_never", MERCHANT).await.unwrap(),
        InquiryOutcome::NotFound
    );

    let declined = approve_request("pay_declined", test_cards::WRONG_PASSWORD, 1000);
    acquirer.approve(&declined).await.unwrap();
    acquirer.reverse("pay_declined", MERCHANT).await.unwrap();
    assert_eq!(acquirer.counts().reversed, 0);
    assert!(matches!(
        acquirer.inquire("pay_declined", MERCHANT).await.unwrap(),
        InquiryOutcome::Declined(_)
    ));
}

#[tokio::test]
async fn a_full_journal_refuses_new_work_but_answers_repeats() {
    let acquirer = sandbox().with_journal_bound(JournalBound::Complete(2));
    approve_ok(&acquirer, "pay_1", 1000).await;
    approve_ok(&acquirer, "pay_2", 1000).await;
    let third = acquirer
        .approve(&approve_request("pay_3", test_cards::APPROVED, 1000))
        .await;
    assert!(matches!(third, Err(ConnectorError::SystemError(_))), "{third:?}");
    assert_eq!(
        acquirer.inquire("pay_3", MERCHANT).await.unwrap(),
        InquiryOutcome::NotFound
    );
    approve_ok(&acquirer, "pay_1", 1000).await;
    let cancel = acquirer.cancel(&cancel_request("cxl_1", "pay_1", 10)).await;
    assert!(matches!(cancel, Err(ConnectorError::SystemError(_))));
    assert_eq!(acquirer.balance("pay_1"), Some(Money::krw(1000)));
    assert_eq!(acquirer.journal_len(), 2);
}

/// The in-process sandbox used to keep every entry up to a million (968 MiB in a million-payment run); it keeps the
/// latest ones now, and a repeat of a reference whose entry is long gone still gets the first answer.
#[tokio::test]
async fn the_in_process_journal_keeps_the_latest_entries_and_every_decision() {
    let acquirer = sandbox();
    let first = acquirer
        .approve(&approve_request("pay_first", test_cards::APPROVED, 1000))
        .await
        .unwrap();
    for index in 0..IN_PROCESS_JOURNAL_CAPACITY + 50 {
        approve_ok(&acquirer, &format!("pay_{index}"), 1000).await;
    }
    assert_eq!(acquirer.journal_len(), 10_000);
    let journal = acquirer.journal();
    assert!(journal.iter().all(|entry| entry.reference != "pay_first"));
    assert_eq!(journal.last().unwrap().seq, 10_051);
    assert_eq!(
        acquirer
            .approve(&approve_request("pay_first", test_cards::APPROVED, 1000))
            .await
            .unwrap(),
        first
    );
    assert_eq!(acquirer.counts().approved, 10_051, "the repeat approved nothing");
}

#[tokio::test]
async fn a_latest_journal_forgets_entries_never_decisions() {
    let acquirer = sandbox().with_journal_bound(JournalBound::Latest(3));
    let first = acquirer
        .approve(&approve_request("pay_1", test_cards::APPROVED, 1000))
        .await
        .unwrap();
    let declined = acquirer
        .approve(&approve_request("pay_declined", test_cards::INSUFFICIENT_FUNDS, 1000))
        .await
        .unwrap();
    let cancel = acquirer.cancel(&cancel_request("cxl_1", "pay_1", 300)).await.unwrap();
    acquirer.reverse("pay_void", MERCHANT).await.unwrap();
    for index in 2..6 {
        approve_ok(&acquirer, &format!("pay_{index}"), 1000).await;
    }
    assert_eq!(acquirer.journal_len(), 3);
    assert_eq!(acquirer.journal_dropped(), 5);
    assert_eq!(
        acquirer.journal().iter().map(|e| e.seq).collect::<Vec<_>>(),
        vec![6, 7, 8]
    );
    assert_eq!(
        acquirer.journal_page(0, 10).iter().map(|e| e.seq).collect::<Vec<_>>(),
        vec![6, 7, 8]
    );
    assert_eq!(
        acquirer.journal_page(6, 1).iter().map(|e| e.seq).collect::<Vec<_>>(),
        vec![7]
    );
    assert_eq!(
        acquirer.approved_references(),
        vec!["pay_3".to_owned(), "pay_4".to_owned(), "pay_5".to_owned()]
    );
    // Every dropped reference still answers as it first did, and nothing moves again.
    let before = acquirer.counts();
    let repeat = |reference: &'static str, card: &'static str| {
        let acquirer = &acquirer;
        async move { acquirer.approve(&approve_request(reference, card, 1000)).await.unwrap() }
    };
    assert_eq!(repeat("pay_1", test_cards::APPROVED).await, first);
    assert_eq!(repeat("pay_declined", test_cards::APPROVED).await, declined);
    assert_eq!(
        acquirer.cancel(&cancel_request("cxl_1", "pay_1", 300)).await.unwrap(),
        cancel
    );
    let late = repeat("pay_void", test_cards::APPROVED).await;
    assert!(
        matches!(&late, ApproveOutcome::Declined(d) if d.acquirer_code == "96"),
        "{late:?}"
    );
    assert_eq!(acquirer.counts(), before);
    assert_eq!(acquirer.balance("pay_1"), Some(Money::krw(700)));
    let InquiryOutcome::Approved(approval) = acquirer.inquire("pay_1", MERCHANT).await.unwrap() else {
        panic!("pay_1 is still approved")
    };
    assert_eq!(ApproveOutcome::Approved(approval), first);
    // Another merchant's reference stays unknown, as before.
    assert_eq!(
        acquirer.inquire("pay_1", "another-merchant").await.unwrap(),
        InquiryOutcome::NotFound
    );
}

#[tokio::test]
async fn journal_pages() {
    let acquirer = sandbox();
    for index in 0..5 {
        approve_ok(&acquirer, &format!("pay_{index}"), 1000).await;
    }
    let page = acquirer.journal_page(2, 2);
    assert_eq!(page.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![3, 4]);
    assert!(acquirer.journal_page(5, 10).is_empty());
    assert!(acquirer.journal_page(u64::MAX, 10).is_empty());
}

#[tokio::test]
async fn concurrent_repeats_approve_once_and_cancels_never_overdraw() {
    let acquirer = Arc::new(sandbox());
    let mut tasks = Vec::new();
    for _ in 0..32 {
        let acquirer = Arc::clone(&acquirer);
        tasks.push(tokio::spawn(async move {
            acquirer
                .approve(&approve_request("pay_1", test_cards::APPROVED, 10_000))
                .await
                .unwrap()
        }));
    }
    let mut outcomes = Vec::new();
    for task in tasks {
        outcomes.push(task.await.unwrap());
    }
    assert!(outcomes.windows(2).all(|pair| pair[0] == pair[1]));
    assert_eq!(acquirer.counts().approved, 1);

    let mut tasks = Vec::new();
    for index in 0..20 {
        let acquirer = Arc::clone(&acquirer);
        tasks.push(tokio::spawn(async move {
            acquirer
                .cancel(&cancel_request(&format!("cxl_{index}"), "pay_1", 1_000))
                .await
                .unwrap()
        }));
    }
    let mut canceled = 0;
    for task in tasks {
        if matches!(task.await.unwrap(), CancelOutcome::Canceled(_)) {
            canceled += 1;
        }
    }
    assert_eq!(canceled, 10);
    assert_eq!(acquirer.balance("pay_1"), Some(Money::krw(0)));
}

#[tokio::test]
async fn default_three_are_independent() {
    let acquirers = SandboxAcquirer::default_three();
    let ids: Vec<&str> = acquirers.iter().map(|a| a.id().as_str()).collect();
    assert_eq!(ids, ["A", "B", "C"]);
    approve_ok(&acquirers[0], "pay_1", 1000).await;
    assert_eq!(acquirers[0].journal_len(), 1);
    assert_eq!(acquirers[1].journal_len(), 0);
    assert_eq!(
        acquirers[1].inquire("pay_1", MERCHANT).await.unwrap(),
        InquiryOutcome::NotFound
    );
}

// ----------------------------------------------------------------------------------------------------------------
// Fault injection
// ----------------------------------------------------------------------------------------------------------------

const TEN_PERCENT_EACH: FaultPlan = FaultPlan {
    timeout_per_mille: 100,
    lost_answer_per_mille: 100,
    system_error_per_mille: 100,
    seed: 42,
};

#[test]
fn fault_decisions_are_pure() {
    for attempt in 0..100 {
        let reference = format!("pay_{attempt}");
        assert_eq!(
            TEN_PERCENT_EACH.decide(&reference, Operation::Approve, attempt),
            TEN_PERCENT_EACH.decide(&reference, Operation::Approve, attempt)
        );
    }
    assert_eq!(FaultPlan::NONE.decide("pay_1", Operation::Approve, 0), None);
    let always = FaultPlan {
        lost_answer_per_mille: 1000,
        ..FaultPlan::NONE
    };
    assert_eq!(always.decide("pay_1", Operation::Inquire, 7), Some(Fault::LostAnswer));
}

#[test]
fn fault_rates_hold_for_every_operation() {
    for operation in [
        Operation::Approve,
        Operation::Cancel,
        Operation::Reverse,
        Operation::Inquire,
    ] {
        let mut counts = [0_u32; 4];
        for index in 0..10_000 {
            let slot = match TEN_PERCENT_EACH.decide(&format!("ref_{index}"), operation, 0) {
                Some(Fault::Timeout) => 0,
                Some(Fault::LostAnswer) => 1,
                Some(Fault::SystemError) => 2,
                None => 3,
            };
            counts[slot] += 1;
        }
        for count in &counts[..3] {
            assert!((800..=1200).contains(count), "{operation:?}: {counts:?}");
        }
    }
}

/// Approves `count` references once each through a faulty sandbox and sorts the results.
async fn faulty_run(plan: FaultPlan, count: usize) -> (SandboxAcquirer, Vec<String>) {
    let acquirer = SandboxAcquirer::with_faults(id("A"), plan).with_clock(|| UnixMillis::new(NOW));
    let mut results = Vec::new();
    for index in 0..count {
        let request = approve_request(&format!("pay_{index}"), test_cards::APPROVED, 1000);
        results.push(format!("{:?}", acquirer.approve(&request).await));
    }
    (acquirer, results)
}

#[tokio::test]
async fn fault_rates_over_ten_thousand_calls() {
    let (acquirer, results) = faulty_run(TEN_PERCENT_EACH, 10_000).await;
    let count = |prefix: &str| results.iter().filter(|r| r.starts_with(prefix)).count();
    let timeouts = count("Err(Timeout");
    let lost = count("Err(LostAnswer");
    let errors = count("Err(SystemError");
    let ok = count("Ok(");
    for (name, value) in [("timeouts", timeouts), ("lost", lost), ("system errors", errors)] {
        assert!((800..=1200).contains(&value), "{name}: {value}");
    }
    assert_eq!(timeouts + lost + errors + ok, 10_000);
    // Lost answers were applied, timeouts and system errors were not.
    assert_eq!(acquirer.counts().approved, u64::try_from(ok + lost).unwrap());
    let approved: HashSet<String> = acquirer.approved_references().into_iter().collect();
    for (index, result) in results.iter().enumerate() {
        let applied = result.starts_with("Ok(") || result.starts_with("Err(LostAnswer");
        assert_eq!(
            approved.contains(&format!("pay_{index}")),
            applied,
            "pay_{index}: {result}"
        );
    }
}

#[tokio::test]
async fn fault_sequences_replay_from_the_seed() {
    let (first, first_results) = faulty_run(TEN_PERCENT_EACH, 2_000).await;
    let (second, second_results) = faulty_run(TEN_PERCENT_EACH, 2_000).await;
    assert_eq!(first_results, second_results);
    assert_eq!(first.journal(), second.journal());

    let other_seed = FaultPlan {
        seed: 43,
        ..TEN_PERCENT_EACH
    };
    let (_, other_results) = faulty_run(other_seed, 2_000).await;
    assert_ne!(first_results, other_results);
}

#[tokio::test]
async fn retries_draw_fresh_faults_and_eventually_resolve() {
    let acquirer = SandboxAcquirer::with_faults(id("A"), TEN_PERCENT_EACH).with_clock(|| UnixMillis::new(NOW));
    for index in 0..500 {
        let request = approve_request(&format!("pay_{index}"), test_cards::APPROVED, 1000);
        let mut answer = acquirer.approve(&request).await;
        let mut attempts = 1;
        while answer.is_err() {
            attempts += 1;
            assert!(attempts < 50, "a 30% fault rate should not fail 50 times in a row");
            answer = acquirer.approve(&request).await;
        }
    }
    // However many retries and lost answers, one approval per reference.
    assert_eq!(acquirer.counts().approved, 500);
}

#[tokio::test]
async fn faults_on_every_operation() {
    let lost = FaultPlan {
        lost_answer_per_mille: 1000,
        ..FaultPlan::NONE
    };
    let acquirer = SandboxAcquirer::with_faults(id("A"), lost).with_clock(|| UnixMillis::new(NOW));
    let request = approve_request("pay_1", test_cards::APPROVED, 1000);
    assert!(matches!(
        acquirer.approve(&request).await,
        Err(ConnectorError::LostAnswer(_))
    ));
    assert_eq!(
        acquirer.balance("pay_1"),
        Some(Money::krw(1000)),
        "a lost answer was applied"
    );
    let cancel = acquirer.cancel(&cancel_request("cxl_1", "pay_1", 400)).await;
    assert!(matches!(cancel, Err(ConnectorError::LostAnswer(_))));
    assert_eq!(acquirer.balance("pay_1"), Some(Money::krw(600)));
    assert!(matches!(
        acquirer.inquire("pay_1", MERCHANT).await,
        Err(ConnectorError::LostAnswer(_))
    ));
    assert!(matches!(
        acquirer.reverse("pay_1", MERCHANT).await,
        Err(ConnectorError::LostAnswer(_))
    ));
    assert_eq!(acquirer.balance("pay_1"), Some(Money::krw(0)));
    assert_eq!(acquirer.counts().reversed, 1);

    for (plan, expect_timeout) in [
        (
            FaultPlan {
                timeout_per_mille: 1000,
                ..FaultPlan::NONE
            },
            true,
        ),
        (
            FaultPlan {
                system_error_per_mille: 1000,
                ..FaultPlan::NONE
            },
            false,
        ),
    ] {
        let acquirer = SandboxAcquirer::with_faults(id("A"), plan).with_clock(|| UnixMillis::new(NOW));
        let results = [
            acquirer.approve(&request).await.map(|_| ()),
            acquirer.cancel(&cancel_request("cxl_1", "pay_1", 1)).await.map(|_| ()),
            acquirer.reverse("pay_1", MERCHANT).await,
            acquirer.inquire("pay_1", MERCHANT).await.map(|_| ()),
        ];
        for result in results {
            match result {
                Err(ConnectorError::Timeout) if expect_timeout => {}
                Err(ConnectorError::SystemError(_)) if !expect_timeout => {}
                other => panic!("{plan:?}: {other:?}"),
            }
        }
        assert_eq!(acquirer.journal_len(), 0, "{plan:?}: nothing applied");
    }
}

#[test]
fn card_data_debug_is_redacted() {
    let request = approve_request("pay_1", test_cards::APPROVED, 1000);
    let text = format!("{request:?}");
    assert!(!text.contains(test_cards::APPROVED), "{text}");
    assert!(!text.contains("900101"));
    let acquirer = sandbox();
    assert!(format!("{acquirer:?}").contains("SandboxAcquirer"));
}

#[test]
fn decline_codes_round_trip() {
    for code in [
        DeclineCode::RejectCardPayment,
        DeclineCode::LostOrStolenCard,
        DeclineCode::InvalidPassword,
        DeclineCode::InvalidCardExpiration,
        DeclineCode::InvalidCardNumber,
        DeclineCode::AuthenticationRequired,
        DeclineCode::RejectCardCompany,
    ] {
        assert_eq!(DeclineCode::parse(code.as_str()), Some(code));
    }
    for kind in JournalKind::ALL {
        assert_eq!(JournalKind::parse(kind.as_str()), Some(kind));
    }
}

#[tokio::test]
async fn a_reference_reversed_before_approval_can_never_be_approved() {
    let acquirer = sandbox();
    // 망취소 of a reference the acquirer never saw (paygate's inquiry found nothing after a timeout)…
    acquirer.reverse("pay_late", MERCHANT).await.unwrap();
    // …then the original request finally arrives: it must not move money.
    let outcome = acquirer
        .approve(&approve_request("pay_late", test_cards::APPROVED, 1_000))
        .await
        .unwrap();
    assert!(
        matches!(outcome, ApproveOutcome::Declined(ref d) if d.acquirer_code == "96"),
        "{outcome:?}"
    );
    assert!(acquirer.approved_references().is_empty());
    assert!(matches!(
        acquirer.inquire("pay_late", MERCHANT).await.unwrap(),
        InquiryOutcome::NotFound | InquiryOutcome::Declined(_)
    ));
}
