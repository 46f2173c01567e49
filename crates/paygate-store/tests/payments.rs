//! Conformance tests for the payment methods of the store: routing, payments and their conditional updates,
//! transactions, the ledger, checkout cards, worker queues and encData keys. Like `conformance.rs` they run on the
//! backend `PAYGATE_TEST_DATABASE_URL` selects (see `common`). Payments are built and moved with the domain's own
//! rules (`Payment::key_in`, `.approved(..)`, `.cancel_reserved(..)` …), so the values stored are real ones.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashSet;
use std::sync::Arc;

use common::*;
use paygate_domain::api_key::Mode;
use paygate_domain::card::{CardSummary, CardType, Installment, OwnerType};
use paygate_domain::checkout::CheckoutSessionFields;
use paygate_domain::id::{JournalId, PaymentId, TransactionKey};
use paygate_domain::ledger::Journal;
use paygate_domain::merchant::Merchant;
use paygate_domain::money::{Currency, Money};
use paygate_domain::order::{OrderId, OrderName};
use paygate_domain::payment::{
    ApprovalDetails, ApprovalState, Failure, Metadata, NewPayment, OrderExtras, Payment, PaymentStatus,
    PaymentTransaction, Route, TransactionKind, TransactionStatus,
};
use paygate_domain::time::UnixMillis;
use paygate_domain::vat::VatSplit;
use paygate_store::{
    AcquirerContract, CheckoutCardChange, CheckoutEntry, CheckoutSession, InsertPaymentOutcome, JournalEntry,
    JournalOf, PaymentUpdate, Sealed, Store, StoreError, StoredEncKey, TransactionQuery,
};

const T0: i64 = 1_700_000_000_000;
const ACQUIRER: &str = "ACQ_A";

fn at(millis: i64) -> UnixMillis {
    UnixMillis::new(millis)
}

fn is_conflict<T: std::fmt::Debug>(result: &Result<T, StoreError>) -> bool {
    matches!(result, Err(StoreError::Conflict(_)))
}

// Domain values.

fn new_payment(merchant: &Merchant, mode: Mode, order_id: &str, amounts: VatSplit, now: i64) -> NewPayment {
    NewPayment {
        id: PaymentId::new(at(now), entropy()),
        merchant_id: merchant.id,
        mode,
        order_id: OrderId::parse(order_id).unwrap(),
        order_name: OrderName::parse("토스 티셔츠 외 2건").unwrap(),
        amounts,
        installment: Installment::LUMP_SUM,
        customer_name: None,
        customer_email: None,
        notification_url: None,
        // Every stored extra is set, so each test's round trip covers them.
        extras: OrderExtras {
            tax_exemption_minor: 500,
            metadata: Some(Metadata::from_validated_json(r#"{"campaign":"봄 세일"}"#.to_owned())),
            customer_mobile_phone: Some("01012345678".into()),
            free_installment: true,
        },
        now: at(now),
    }
}

fn krw(total: i64) -> VatSplit {
    VatSplit::compute(Money::krw(total), Money::krw(0)).unwrap()
}

fn card() -> CardSummary {
    CardSummary {
        bin: "433000".into(),
        last4: "0003".into(),
        masked: "433000******0003".into(),
    }
}

fn route() -> Route {
    Route {
        acquirer: ACQUIRER.into(),
        acquirer_merchant_id: "A-1234567".into(),
    }
}

/// A key-in payment of `total` won, approval requested, inquiry due at `now + 30 s`.
fn key_in(merchant: &Merchant, mode: Mode, order_id: &str, total: i64, now: i64) -> Payment {
    Payment::key_in(
        new_payment(merchant, mode, order_id, krw(total), now),
        card(),
        route(),
        at(now + 30_000),
    )
}

/// A checkout payment of `total` won waiting for the buyer until `expires`.
fn checkout(merchant: &Merchant, mode: Mode, order_id: &str, total: i64, now: i64, expires: i64) -> Payment {
    Payment::checkout(new_payment(merchant, mode, order_id, krw(total), now), at(expires))
}

fn details(now: i64) -> ApprovalDetails {
    ApprovalDetails {
        approval_number: "30001234".into(),
        issuer_code: "11".into(),
        acquirer_code: Some("21".into()),
        card_type: CardType::Check,
        owner_type: OwnerType::Corporate,
        acquirer_transaction_id: format!("A-{now}"),
        approved_at: at(now),
    }
}

fn declined() -> Failure {
    Failure {
        code: "REJECT_CARD_COMPANY".into(),
        message: "카드사에서 거절했습니다.".into(),
        acquirer_code: Some("51".into()),
    }
}

fn sealed(key_version: u32, seed: u8) -> Sealed {
    Sealed {
        key_version,
        // Zero bytes and bytes above 0x7f must survive.
        bytes: (0..48u8)
            .map(|i| i.wrapping_mul(seed).wrapping_add(seed))
            .chain([0, 0xff])
            .collect(),
    }
}

fn approval_transaction(p: &Payment, now: i64) -> PaymentTransaction {
    PaymentTransaction {
        key: TransactionKey::new(at(now), entropy()),
        payment_id: p.id,
        merchant_id: p.merchant_id,
        mode: p.mode,
        kind: TransactionKind::Approval,
        status: TransactionStatus::Done,
        amount: p.total(),
        tax_free: p.amounts.tax_free(),
        reason: None,
        created_at: at(now),
        completed_at: Some(at(now)),
        acquirer_transaction_id: Some(format!("A-{now}")),
        next_attempt_at: None,
        attempts: 1,
    }
}

fn pending_cancel(p: &Payment, amount: i64, now: i64, retry_at: i64) -> PaymentTransaction {
    PaymentTransaction {
        key: TransactionKey::new(at(now), entropy()),
        payment_id: p.id,
        merchant_id: p.merchant_id,
        mode: p.mode,
        kind: TransactionKind::Cancel,
        status: TransactionStatus::Pending,
        amount: Money::new(amount, p.total().currency()),
        tax_free: Money::new(amount.min(p.amounts.tax_free().amount_minor()), p.total().currency()),
        reason: Some("구매자 변심".into()),
        created_at: at(now),
        completed_at: None,
        acquirer_transaction_id: None,
        next_attempt_at: Some(at(retry_at)),
        attempts: 1,
    }
}

fn approval_journal(p: &Payment, t: &PaymentTransaction, now: i64) -> JournalEntry {
    JournalEntry {
        id: JournalId::new(at(now), entropy()),
        of: JournalOf::Transaction(t.key),
        journal: Journal::card_approval(p.merchant_id, ACQUIRER, t.amount).unwrap(),
        created_at: at(now),
    }
}

fn cancel_journal(p: &Payment, t: &PaymentTransaction, now: i64) -> JournalEntry {
    JournalEntry {
        id: JournalId::new(at(now), entropy()),
        of: JournalOf::Transaction(t.key),
        journal: Journal::card_cancel(p.merchant_id, ACQUIRER, t.amount).unwrap(),
        created_at: at(now),
    }
}

/// The update that approves `p`: the approval transaction and its journal, and the checkout card deleted.
fn approval_update(p: &Payment, now: i64) -> PaymentUpdate {
    let approved = p.approved(details(now)).unwrap();
    let txn = approval_transaction(&approved, now);
    let journal = approval_journal(&approved, &txn, now);
    PaymentUpdate {
        insert_transactions: vec![txn],
        journals: vec![journal],
        checkout_card: CheckoutCardChange::Delete,
        ..PaymentUpdate::new(p.version, approved)
    }
}

async fn insert(store: &dyn Store, p: &Payment, card: Option<&Sealed>) {
    assert_eq!(
        store.insert_payment(&payment_insert(p, card)).await.unwrap(),
        InsertPaymentOutcome::Inserted
    );
}

/// Inserts a key-in payment and approves it; returns the approved record and its approval transaction.
async fn approved_key_in(
    store: &dyn Store,
    merchant: &Merchant,
    order_id: &str,
    total: i64,
    now: i64,
) -> (Payment, PaymentTransaction) {
    let p = key_in(merchant, Mode::Test, order_id, total, now);
    insert(store, &p, None).await;
    let update = approval_update(&p, now + 1);
    store.update_payment(&update).await.unwrap();
    (update.payment.clone(), update.insert_transactions[0].clone())
}

/// Applies one rule to `p` and persists the result; returns it.
async fn advance(store: &dyn Store, p: &Payment, rule: impl FnOnce(&Payment) -> Payment) -> Payment {
    let next = rule(p);
    store
        .update_payment(&PaymentUpdate::new(p.version, next.clone()))
        .await
        .unwrap();
    next
}

async fn stored(store: &dyn Store, id: PaymentId) -> Payment {
    store.payment_by_id(id).await.unwrap().unwrap()
}

// Routing.

#[tokio::test]
async fn contracts_are_replaced_per_merchant_and_mode() {
    let ts = fresh_store().await;
    let (merchant, _) = seeded_merchant(&*ts, T0).await;
    let contract = |prefix: &str, acquirer: &str| {
        AcquirerContract::new(prefix.into(), acquirer.into(), format!("{acquirer}-{prefix}"))
    };
    assert_eq!(ts.contracts(merchant.id, Mode::Test).await.unwrap(), vec![]);
    let test = vec![contract("94", "C"), contract("", "A"), contract("4330", "B")];
    ts.set_contracts(merchant.id, Mode::Test, &test).await.unwrap();
    ts.set_contracts(merchant.id, Mode::Live, &[contract("", "L")])
        .await
        .unwrap();
    // Ordered by prefix, the fallback ('') first.
    assert_eq!(
        ts.contracts(merchant.id, Mode::Test).await.unwrap(),
        vec![contract("", "A"), contract("4330", "B"), contract("94", "C")]
    );
    let replacement = vec![contract("", "Z"), contract("54", "Y")];
    ts.set_contracts(merchant.id, Mode::Test, &replacement).await.unwrap();
    assert_eq!(ts.contracts(merchant.id, Mode::Test).await.unwrap(), replacement);
    assert_eq!(
        ts.contracts(merchant.id, Mode::Live).await.unwrap(),
        vec![contract("", "L")]
    );

    // A failing replacement (a duplicate prefix) keeps the old contracts.
    let duplicate = vec![contract("1", "A"), contract("1", "B")];
    assert!(is_conflict(
        &ts.set_contracts(merchant.id, Mode::Test, &duplicate).await
    ));
    assert_eq!(ts.contracts(merchant.id, Mode::Test).await.unwrap(), replacement);

    ts.set_contracts(merchant.id, Mode::Test, &[]).await.unwrap();
    assert_eq!(ts.contracts(merchant.id, Mode::Test).await.unwrap(), vec![]);
    let stranger = merchant_at(T0 + 1);
    assert!(is_conflict(&ts.set_contracts(stranger.id, Mode::Test, &test).await));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_contract_replacements_leave_one_whole_set() {
    let ts = fresh_store().await;
    let (merchant, _) = seeded_merchant(&*ts, T0).await;
    let stores = processes(&ts, 3).await;
    let set = |i: usize| -> Vec<AcquirerContract> {
        ["", "4", "54"]
            .iter()
            .map(|prefix| AcquirerContract::new((*prefix).into(), format!("ACQ{i}"), format!("M{i}")))
            .collect()
    };
    let tasks: Vec<_> = (0..12)
        .map(|i| {
            let store = Arc::clone(&stores[i % stores.len()]);
            let contracts = set(i);
            tokio::spawn(async move { store.set_contracts(merchant.id, Mode::Test, &contracts).await })
        })
        .collect();
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    let stored = ts.contracts(merchant.id, Mode::Test).await.unwrap();
    assert!(
        (0..12).any(|i| stored == set(i)),
        "a mixture of replacements: {stored:?}"
    );
}

// Payments.

#[tokio::test]
async fn payments_round_trip_and_are_scoped() {
    let ts = fresh_store().await;
    let (merchant, _) = seeded_merchant(&*ts, T0).await;
    let (other, _) = seeded_merchant(&*ts, T0 + 1).await;

    // Every optional field set, an explicit VAT that is not the 1/11 rule, and a currency with a minor unit.
    let mut new = new_payment(
        &merchant,
        Mode::Live,
        "order-key-in.01",
        VatSplit::with_explicit_vat(
            Money::new(1_234_567, Currency::Usd),
            Money::new(100_000, Currency::Usd),
            Money::new(0, Currency::Usd),
        )
        .unwrap(),
        T0 + 10,
    );
    new.installment = Installment::new(3).unwrap();
    new.customer_name = Some("김토스".into());
    new.customer_email = Some("buyer@example.com".into());
    new.notification_url = Some("https://shop.example/noti?order=01&n=한".into());
    let keyed = Payment::key_in(new, card(), route(), at(T0 + 30_010));
    let ready = checkout(
        &merchant,
        Mode::Test,
        "order-checkout-01",
        50_000,
        T0 + 20,
        T0 + 1_800_020,
    );
    insert(&*ts, &keyed, None).await;
    insert(&*ts, &ready, Some(&sealed(1, 7))).await;

    for p in [&keyed, &ready] {
        assert_eq!(ts.payment(p.merchant_id, p.mode, p.id).await.unwrap().as_ref(), Some(p));
        assert_eq!(ts.payment_by_id(p.id).await.unwrap().as_ref(), Some(p));
        assert_eq!(
            ts.payment_by_order(p.merchant_id, p.mode, &p.order_id)
                .await
                .unwrap()
                .as_ref(),
            Some(p)
        );
        // Another merchant, or the other mode, sees nothing.
        let other_mode = if p.mode == Mode::Live { Mode::Test } else { Mode::Live };
        assert_eq!(ts.payment(other.id, p.mode, p.id).await.unwrap(), None);
        assert_eq!(ts.payment(p.merchant_id, other_mode, p.id).await.unwrap(), None);
        assert_eq!(ts.payment_by_order(other.id, p.mode, &p.order_id).await.unwrap(), None);
        assert_eq!(
            ts.payment_by_order(p.merchant_id, other_mode, &p.order_id)
                .await
                .unwrap(),
            None
        );
    }
    assert_eq!(ts.checkout_card(ready.id).await.unwrap(), Some(sealed(1, 7)));
    assert_eq!(ts.checkout_card(keyed.id).await.unwrap(), None);
    let unknown = PaymentId::new(at(T0), entropy());
    assert_eq!(ts.payment_by_id(unknown).await.unwrap(), None);
    assert_eq!(ts.payment_transactions(unknown).await.unwrap(), vec![]);

    // A payment of a merchant that does not exist breaks the foreign key.
    let stranger = merchant_at(T0 + 2);
    let orphan = key_in(&stranger, Mode::Test, "order-orphan", 1_000, T0);
    assert!(is_conflict(&ts.insert_payment(&payment_insert(&orphan, None)).await));
}

#[tokio::test]
async fn duplicate_order_ids_are_refused_and_write_nothing() {
    let ts = fresh_store().await;
    let (merchant, _) = seeded_merchant(&*ts, T0).await;
    let (other, _) = seeded_merchant(&*ts, T0 + 1).await;
    let first = checkout(&merchant, Mode::Test, "order-0001", 10_000, T0, T0 + 60_000);
    insert(&*ts, &first, Some(&sealed(1, 1))).await;

    let again = checkout(&merchant, Mode::Test, "order-0001", 20_000, T0 + 5, T0 + 60_000);
    assert_eq!(
        ts.insert_payment(&payment_insert(&again, Some(&sealed(1, 2))))
            .await
            .unwrap(),
        InsertPaymentOutcome::DuplicateOrderId
    );
    assert_eq!(ts.payment_by_id(again.id).await.unwrap(), None);
    assert_eq!(
        ts.checkout_card(again.id).await.unwrap(),
        None,
        "the duplicate's card was kept"
    );
    assert_eq!(stored(&*ts, first.id).await, first);
    assert_eq!(ts.checkout_card(first.id).await.unwrap(), Some(sealed(1, 1)));

    // The orderId is unique per merchant and mode only.
    for (m, mode) in [(&merchant, Mode::Live), (&other, Mode::Test)] {
        let p = checkout(m, mode, "order-0001", 10_000, T0 + 9, T0 + 60_000);
        insert(&*ts, &p, None).await;
    }
    // A reused payment ID is another unique violation: a conflict, not a duplicate orderId.
    let mut same_id = checkout(&merchant, Mode::Test, "order-0002", 10_000, T0, T0 + 60_000);
    same_id.id = first.id;
    assert!(is_conflict(&ts.insert_payment(&payment_insert(&same_id, None)).await));
    assert_eq!(
        ts.payment_by_order(merchant.id, Mode::Test, &same_id.order_id)
            .await
            .unwrap(),
        None
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_inserts_of_one_order_id_have_one_winner() {
    let ts = fresh_store().await;
    let (merchant, _) = seeded_merchant(&*ts, T0).await;
    let stores = processes(&ts, 3).await;
    let tasks: Vec<_> = (0..20)
        .map(|i: i64| {
            let store = Arc::clone(&stores[usize::try_from(i).unwrap() % stores.len()]);
            let p = checkout(&merchant, Mode::Test, "order-race", 1_000 + i, T0 + i, T0 + 60_000);
            let card = sealed(1, u8::try_from(i).unwrap());
            tokio::spawn(async move { (store.insert_payment(&payment_insert(&p, Some(&card))).await, p) })
        })
        .collect();
    let mut winners = Vec::new();
    let mut losers = Vec::new();
    for task in tasks {
        match task.await.unwrap() {
            (Ok(InsertPaymentOutcome::Inserted), p) => winners.push(p),
            (Ok(InsertPaymentOutcome::DuplicateOrderId), p) => losers.push(p),
            (Err(e), _) => panic!("unexpected insert error: {e:?}"),
        }
    }
    assert_eq!((winners.len(), losers.len()), (1, 19));
    let order = OrderId::parse("order-race").unwrap();
    assert_eq!(
        ts.payment_by_order(merchant.id, Mode::Test, &order).await.unwrap(),
        Some(winners[0].clone())
    );
    for loser in &losers {
        assert_eq!(ts.payment_by_id(loser.id).await.unwrap(), None);
        assert_eq!(ts.checkout_card(loser.id).await.unwrap(), None);
    }
}

// Updates.

#[tokio::test]
async fn updates_persist_exactly() {
    let ts = fresh_store().await;
    let (merchant, _) = seeded_merchant(&*ts, T0).await;

    // Checkout: authenticated (card stored), confirm requested, approved (card deleted).
    let ready = checkout(&merchant, Mode::Test, "order-checkout", 33_000, T0, T0 + 1_800_000);
    insert(&*ts, &ready, None).await;
    let authed = ready
        .authenticated(
            card(),
            Installment::new(12).unwrap(),
            route(),
            at(T0 + 100),
            at(T0 + 600_100),
        )
        .unwrap();
    let update = PaymentUpdate {
        checkout_card: CheckoutCardChange::Store(sealed(2, 9)),
        ..PaymentUpdate::new(ready.version, authed.clone())
    };
    ts.update_payment(&update).await.unwrap();
    assert_eq!(stored(&*ts, ready.id).await, authed);
    assert_eq!(ts.checkout_card(ready.id).await.unwrap(), Some(sealed(2, 9)));

    let requested = authed
        .confirm_requested(&authed.order_id, authed.total(), at(T0 + 200), at(T0 + 30_200))
        .unwrap();
    ts.update_payment(&PaymentUpdate::new(authed.version, requested.clone()))
        .await
        .unwrap();
    assert_eq!(stored(&*ts, ready.id).await, requested);
    assert_eq!(
        ts.checkout_card(ready.id).await.unwrap(),
        Some(sealed(2, 9)),
        "Keep kept the card"
    );

    let update = approval_update(&requested, T0 + 300);
    ts.update_payment(&update).await.unwrap();
    let approved = stored(&*ts, ready.id).await;
    assert_eq!(approved, update.payment);
    assert_eq!((approved.status, approved.version), (PaymentStatus::Done, 3));
    assert!(approved.approval.is_some() && approved.card.is_some() && approved.route.is_some());
    assert_eq!(
        ts.payment_transactions(ready.id).await.unwrap(),
        update.insert_transactions
    );
    assert_eq!(ts.checkout_card(ready.id).await.unwrap(), None);

    // Key-in declined: the failure with and without the acquirer's code.
    for acquirer_code in [Some("51".to_owned()), None] {
        let order = if acquirer_code.is_some() {
            "order-declined-1"
        } else {
            "order-declined-2"
        };
        let p = key_in(&merchant, Mode::Test, order, 7_700, T0 + 400);
        insert(&*ts, &p, None).await;
        let failed = p
            .failed(Failure {
                acquirer_code,
                ..declined()
            })
            .unwrap();
        ts.update_payment(&PaymentUpdate::new(p.version, failed.clone()))
            .await
            .unwrap();
        assert_eq!(stored(&*ts, p.id).await, failed);
        assert_eq!(failed.status, PaymentStatus::Aborted);
    }

    // Unknown outcome, then postponed inquiries: the counters and instants round-trip.
    let p = key_in(&merchant, Mode::Test, "order-unknown", 9_900, T0 + 500);
    insert(&*ts, &p, None).await;
    let unknown = p.outcome_unknown(at(T0 + 10_000));
    ts.update_payment(&PaymentUpdate::new(p.version, unknown.clone()))
        .await
        .unwrap();
    let postponed = unknown
        .inquiry_postponed(at(T0 + 20_000))
        .inquiry_postponed(at(T0 + 40_000));
    // Two rule steps in one update: version 3 from expected 1 is refused.
    assert!(is_conflict(
        &ts.update_payment(&PaymentUpdate::new(unknown.version, postponed.clone()))
            .await
    ));
    let postponed = unknown.inquiry_postponed(at(T0 + 20_000));
    ts.update_payment(&PaymentUpdate::new(unknown.version, postponed.clone()))
        .await
        .unwrap();
    let read = stored(&*ts, p.id).await;
    assert_eq!(read, postponed);
    assert_eq!(
        (read.approval_state, read.inquiry_attempts),
        (ApprovalState::Unknown, 1)
    );

    assert!(ts.audit_ledger().await.unwrap().is_clean());
}

#[tokio::test]
async fn stale_or_failing_updates_write_nothing() {
    let ts = fresh_store().await;
    let (merchant, _) = seeded_merchant(&*ts, T0).await;
    let ready = checkout(&merchant, Mode::Test, "order-stale", 10_000, T0, T0 + 1_800_000);
    insert(&*ts, &ready, Some(&sealed(1, 3))).await;
    let authed = ready
        .authenticated(card(), Installment::LUMP_SUM, route(), at(T0 + 1), at(T0 + 600_000))
        .unwrap();
    let requested = authed
        .confirm_requested(&authed.order_id, authed.total(), at(T0 + 2), at(T0 + 30_000))
        .unwrap();
    ts.update_payment(&PaymentUpdate::new(0, authed.clone())).await.unwrap();
    ts.update_payment(&PaymentUpdate::new(1, requested.clone()))
        .await
        .unwrap();
    let audit_before = ts.audit_ledger().await.unwrap();

    let assert_untouched = |what: &'static str| {
        let ts = &ts;
        let requested = requested.clone();
        let audit_before = audit_before.clone();
        async move {
            assert_eq!(
                stored(&**ts, requested.id).await,
                requested,
                "{what}: the payment changed"
            );
            assert_eq!(
                ts.payment_transactions(requested.id).await.unwrap(),
                vec![],
                "{what}: transactions"
            );
            assert_eq!(ts.audit_ledger().await.unwrap(), audit_before, "{what}: ledger");
            assert_eq!(
                ts.checkout_card(requested.id).await.unwrap(),
                Some(sealed(1, 3)),
                "{what}: card"
            );
        }
    };

    // Computed from a stale version (1 instead of 2): a conflict, and none of its effects.
    let stale = approval_update(&authed, T0 + 3);
    let stale = PaymentUpdate {
        checkout_card: CheckoutCardChange::Store(sealed(9, 9)),
        ..stale
    };
    assert!(is_conflict(&ts.update_payment(&stale).await));
    assert_untouched("stale").await;
    let stale = PaymentUpdate {
        checkout_card: CheckoutCardChange::Delete,
        ..approval_update(&authed, T0 + 3)
    };
    assert!(is_conflict(&ts.update_payment(&stale).await));
    assert_untouched("stale delete").await;

    // The right version, but an identity column changed: refused.
    let mut moved = approval_update(&requested, T0 + 4);
    moved.payment.requested_at = at(T0 + 1);
    assert!(is_conflict(&ts.update_payment(&moved).await));
    assert_untouched("identity").await;

    // The payment row updates, then a later write fails (a transaction key that exists already): all rolled back.
    let ok = approval_update(&requested, T0 + 5);
    let (other, taken) = approved_key_in(&*ts, &merchant, "order-other", 5_000, T0 + 5).await;
    let audit_before = ts.audit_ledger().await.unwrap();
    let mut clash = ok.clone();
    clash.insert_transactions[0].key = taken.key;
    assert!(is_conflict(&ts.update_payment(&clash).await));
    // … and a pending transaction to resolve that is not pending (it is the other payment's DONE approval).
    let mut not_pending = ok.clone();
    not_pending.update_transaction = Some(PaymentTransaction {
        status: TransactionStatus::Done,
        ..taken.clone()
    });
    assert!(is_conflict(&ts.update_payment(&not_pending).await));
    // … and a pending transaction that does not exist.
    let mut missing = ok.clone();
    missing.update_transaction = Some(pending_cancel(&requested, 1, T0 + 6, T0 + 7));
    assert!(is_conflict(&ts.update_payment(&missing).await));
    assert_eq!(stored(&*ts, requested.id).await, requested);
    assert_eq!(ts.payment_transactions(requested.id).await.unwrap(), vec![]);
    assert_eq!(ts.checkout_card(requested.id).await.unwrap(), Some(sealed(1, 3)));
    assert_eq!(ts.payment_transactions(other.id).await.unwrap(), vec![taken]);
    assert_eq!(ts.audit_ledger().await.unwrap(), audit_before);

    // The untouched update still applies.
    ts.update_payment(&ok).await.unwrap();
    assert_eq!(stored(&*ts, requested.id).await, ok.payment);
    assert!(ts.audit_ledger().await.unwrap().is_clean());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_updates_from_one_version_have_one_winner() {
    let ts = fresh_store().await;
    let (merchant, _) = seeded_merchant(&*ts, T0).await;
    let stores = processes(&ts, 3).await;
    let p = key_in(&merchant, Mode::Test, "order-contested", 25_000, T0);
    insert(&*ts, &p, None).await;
    let tasks: Vec<_> = (0..50)
        .map(|i: i64| {
            let store = Arc::clone(&stores[usize::try_from(i).unwrap() % stores.len()]);
            // Half the contenders approve (with a transaction and a journal), half decline.
            let update = if i % 2 == 0 {
                approval_update(&p, T0 + 1 + i)
            } else {
                let failure = Failure {
                    message: format!("declined #{i}"),
                    ..declined()
                };
                PaymentUpdate::new(p.version, p.failed(failure).unwrap())
            };
            tokio::spawn(async move { (store.update_payment(&update).await, update) })
        })
        .collect();
    let mut winners = Vec::new();
    for task in tasks {
        match task.await.unwrap() {
            (Ok(()), update) => winners.push(update),
            (Err(StoreError::Conflict(_)), _) => {}
            (Err(other), _) => panic!("unexpected update error: {other:?}"),
        }
    }
    assert_eq!(winners.len(), 1);
    let winner = &winners[0];
    assert_eq!(stored(&*ts, p.id).await, winner.payment);
    assert_eq!(ts.payment_transactions(p.id).await.unwrap(), winner.insert_transactions);
    let audit = ts.audit_ledger().await.unwrap();
    assert!(audit.is_clean(), "{audit:?}");
    assert_eq!(audit.journals, u64::try_from(winner.journals.len()).unwrap());
}

#[tokio::test]
async fn cancels_resolve_only_while_pending() {
    let ts = fresh_store().await;
    let (merchant, _) = seeded_merchant(&*ts, T0).await;
    let (done, _) = approved_key_in(&*ts, &merchant, "order-cancel", 10_000, T0).await;

    // Reserve 3,000 for a cancel whose outcome is unknown: a pending transaction the worker retries.
    let reserved = done
        .cancel_reserved(Money::krw(3_000), Some(Money::krw(10_000)))
        .unwrap();
    let cancel = pending_cancel(&reserved, 3_000, T0 + 10, T0 + 60_010);
    let update = PaymentUpdate {
        insert_transactions: vec![cancel.clone()],
        ..PaymentUpdate::new(done.version, reserved.clone())
    };
    ts.update_payment(&update).await.unwrap();
    assert_eq!(
        ts.due_cancel_retries(at(T0 + 60_010), 10).await.unwrap(),
        vec![cancel.clone()]
    );
    assert_eq!(ts.due_cancel_retries(at(T0 + 60_009), 10).await.unwrap(), vec![]);
    assert!(
        ts.audit_ledger().await.unwrap().is_clean(),
        "a pending cancel is not yet in the ledger"
    );

    // The acquirer confirms it: the transaction is resolved and the cancel posted, conditionally on PENDING.
    let resolved = PaymentTransaction {
        status: TransactionStatus::Done,
        completed_at: Some(at(T0 + 60_020)),
        acquirer_transaction_id: Some("A-cancel-1".into()),
        next_attempt_at: None,
        attempts: 2,
        ..cancel.clone()
    };
    let completed = reserved.cancel_completed(Money::krw(7_000)).unwrap();
    let resolve = PaymentUpdate {
        update_transaction: Some(resolved.clone()),
        journals: vec![cancel_journal(&completed, &resolved, T0 + 60_020)],
        ..PaymentUpdate::new(reserved.version, completed.clone())
    };
    ts.update_payment(&resolve).await.unwrap();
    assert_eq!(stored(&*ts, done.id).await.status, PaymentStatus::PartialCanceled);
    let transactions = ts.payment_transactions(done.id).await.unwrap();
    assert_eq!(transactions.len(), 2);
    assert_eq!(transactions[1], resolved);
    assert_eq!(ts.due_cancel_retries(at(T0 + 99_999_999), 10).await.unwrap(), vec![]);
    let audit = ts.audit_ledger().await.unwrap();
    assert!(audit.is_clean(), "{audit:?}");
    assert_eq!((audit.journals, audit.postings), (2, 4));

    // Resolving it again (say, a worker that read it before) is a conflict even from the current version, and
    // writes nothing.
    let released = completed.cancel_released(Money::krw(3_000)).unwrap();
    let again = PaymentUpdate {
        update_transaction: Some(PaymentTransaction {
            status: TransactionStatus::Failed,
            ..resolved.clone()
        }),
        ..PaymentUpdate::new(completed.version, released)
    };
    assert!(is_conflict(&ts.update_payment(&again).await));
    assert_eq!(stored(&*ts, done.id).await, completed);
    assert_eq!(ts.payment_transactions(done.id).await.unwrap()[1], resolved);

    // A pending cancel whose amount does not match is not the one to resolve.
    let reserved = completed.cancel_reserved(Money::krw(7_000), None).unwrap();
    let rest = pending_cancel(&reserved, 7_000, T0 + 70_000, T0 + 70_000);
    ts.update_payment(&PaymentUpdate {
        insert_transactions: vec![rest.clone()],
        ..PaymentUpdate::new(completed.version, reserved.clone())
    })
    .await
    .unwrap();
    let wrong_amount = PaymentUpdate {
        update_transaction: Some(PaymentTransaction {
            status: TransactionStatus::Done,
            amount: Money::krw(6_999),
            tax_free: Money::krw(0),
            ..rest.clone()
        }),
        ..PaymentUpdate::new(reserved.version, reserved.cancel_completed(Money::krw(0)).unwrap())
    };
    assert!(is_conflict(&ts.update_payment(&wrong_amount).await));
    assert_eq!(stored(&*ts, done.id).await, reserved);
    assert_eq!(ts.due_cancel_retries(at(T0 + 70_000), 10).await.unwrap(), vec![rest]);

    // The transaction list shows what each left to cancel: the approval all of it, the done cancel 7,000, the
    // pending one (it may have gone through) nothing.
    let listed = ts
        .list_transactions(&TransactionQuery {
            merchant_id: merchant.id,
            mode: Mode::Test,
            from: at(0),
            until: at(T0 + 99_999_999),
            after: None,
            limit: 10,
        })
        .await
        .unwrap();
    assert_eq!(
        listed
            .iter()
            .map(|l| l.balance_after.amount_minor())
            .collect::<Vec<_>>(),
        vec![10_000, 7_000, 0]
    );
}

// Ledger.

#[tokio::test]
async fn ledger_audit_finds_tampering() {
    let ts = fresh_store().await;
    let (merchant, _) = seeded_merchant(&*ts, T0).await;
    let empty = ts.audit_ledger().await.unwrap();
    assert!(empty.is_clean());
    assert_eq!((empty.journals, empty.postings, empty.totals.len()), (0, 0, 0));

    let (first, approval) = approved_key_in(&*ts, &merchant, "order-ledger-1", 12_000, T0).await;
    let (second, _) = approved_key_in(&*ts, &merchant, "order-ledger-2", 8_000, T0 + 1).await;
    let clean = ts.audit_ledger().await.unwrap();
    assert!(clean.is_clean(), "{clean:?}");
    assert_eq!((clean.journals, clean.postings), (2, 4));
    assert_eq!(clean.totals, vec![Money::krw(0)]);

    // An operator posts by hand: 500 won to the first payment's receivable in one journal, without the other leg,
    // and 7 cents to the same journal, unbalanced in a second currency too.
    let journal = JournalId::new(at(T0 + 2), entropy());
    ts.db
        .execute(&format!(
            "INSERT INTO ledger_postings
                 (journal_id, seq, account, currency, amount, payment_id, transaction_key, created_at)
             VALUES ('{journal}', 0, 'acquirer_receivable:{ACQUIRER}', 'KRW', 500, '{id}', '{key}', {T0}),
                    ('{journal}', 1, 'merchant_payable:{merchant}', 'USD', 7, '{id}', '{key}', {T0})",
            id = first.id,
            key = approval.key,
            merchant = merchant.id,
        ))
        .await;
    let audit = ts.audit_ledger().await.unwrap();
    assert!(!audit.is_clean());
    assert_eq!(audit.unbalanced_journals, vec![journal.to_string()], "listed once");
    assert_eq!(audit.mismatched_payments, vec![first.id]);
    let totals: HashSet<Money> = audit.totals.iter().copied().collect();
    assert_eq!(totals, HashSet::from([Money::krw(500), Money::new(7, Currency::Usd)]));
    assert_eq!((audit.journals, audit.postings), (3, 6));
    assert!(!audit.mismatched_payments.contains(&second.id));
}

// Checkout cards.

#[tokio::test]
async fn checkout_cards_are_stored_kept_and_deleted() {
    let ts = fresh_store().await;
    let (merchant, _) = seeded_merchant(&*ts, T0).await;
    let mut p = checkout(&merchant, Mode::Test, "order-card", 1_000, T0, T0 + 1_800_000);
    insert(&*ts, &p, None).await;
    assert_eq!(ts.checkout_card(p.id).await.unwrap(), None);
    let steps = [
        (CheckoutCardChange::Keep, None),
        (CheckoutCardChange::Store(sealed(1, 1)), Some(sealed(1, 1))),
        (CheckoutCardChange::Keep, Some(sealed(1, 1))),
        (CheckoutCardChange::Store(sealed(2, 5)), Some(sealed(2, 5))),
        (CheckoutCardChange::Delete, None),
        (CheckoutCardChange::Delete, None),
        (CheckoutCardChange::Store(sealed(3, 6)), Some(sealed(3, 6))),
    ];
    for (i, (change, expected)) in steps.into_iter().enumerate() {
        let next = p.outcome_unknown(at(T0 + 1_000 + i64::try_from(i).unwrap()));
        let update = PaymentUpdate {
            checkout_card: change.clone(),
            ..PaymentUpdate::new(p.version, next.clone())
        };
        ts.update_payment(&update).await.unwrap();
        assert_eq!(ts.checkout_card(p.id).await.unwrap(), expected, "step {i}: {change:?}");
        p = next;
    }
}

// Worker queues.

#[tokio::test]
async fn worker_queues_return_due_rows_in_due_order() {
    let ts = fresh_store().await;
    let (merchant, _) = seeded_merchant(&*ts, T0).await;
    let now = T0 + 1_000_000;

    // Inquiries: approval requested or unknown, due by `now`.
    let mut due_inquiries = Vec::new();
    for (order, inquire_at, unknown) in [
        ("order-inq-late", now - 100, false),
        ("order-inq-early", now - 900, false),
        ("order-inq-unknown", now - 500, true),
        ("order-inq-exact", now, false),
        ("order-inq-future", now + 1, false),
    ] {
        let mut p = key_in(&merchant, Mode::Test, order, 1_000, T0);
        p.next_inquiry_at = Some(at(inquire_at));
        insert(&*ts, &p, None).await;
        if unknown {
            let next = p.outcome_unknown(at(inquire_at));
            ts.update_payment(&PaymentUpdate::new(p.version, next.clone()))
                .await
                .unwrap();
            p = next;
        }
        if inquire_at <= now {
            due_inquiries.push(p);
        }
    }
    // Settled payments are never due, whatever their instants.
    approved_key_in(&*ts, &merchant, "order-inq-settled", 1_000, T0).await;
    due_inquiries.sort_by_key(|p| p.next_inquiry_at);
    assert_eq!(ts.due_inquiries(at(now), 10).await.unwrap(), due_inquiries);
    assert_eq!(ts.due_inquiries(at(now), 2).await.unwrap(), due_inquiries[..2]);
    assert_eq!(ts.due_inquiries(at(T0), 10).await.unwrap(), vec![]);

    // Expiries: READY or IN_PROGRESS, approval never requested, past the deadline.
    let mut due_expiries = Vec::new();
    for (order, expires_at) in [
        ("order-exp-b", now - 10),
        ("order-exp-a", now - 20),
        ("order-exp-c", now + 5),
    ] {
        let p = checkout(&merchant, Mode::Live, order, 2_000, T0, expires_at);
        insert(&*ts, &p, None).await;
        if expires_at <= now {
            due_expiries.push(p);
        }
    }
    // Authenticated but never confirmed: due too.
    let authed = checkout(&merchant, Mode::Test, "order-exp-authed", 2_000, T0, now);
    insert(&*ts, &authed, None).await;
    let authed = advance(&*ts, &authed, |p| {
        p.authenticated(card(), Installment::LUMP_SUM, route(), at(T0 + 1), at(now - 15))
            .unwrap()
    })
    .await;
    due_expiries.push(authed);
    // Already expired, or approval requested (the inquiry worker owns those): not due.
    let gone = checkout(&merchant, Mode::Test, "order-exp-gone", 2_000, T0, now - 30);
    insert(&*ts, &gone, None).await;
    advance(&*ts, &gone, |p| p.expired().unwrap()).await;
    let requesting = checkout(&merchant, Mode::Test, "order-exp-requested", 2_000, T0, now);
    insert(&*ts, &requesting, None).await;
    let requesting = advance(&*ts, &requesting, |p| {
        p.authenticated(card(), Installment::LUMP_SUM, route(), at(T0 + 1), at(now - 25))
            .unwrap()
    })
    .await;
    advance(&*ts, &requesting, |p| {
        p.confirm_requested(&p.order_id, p.total(), at(T0 + 2), at(now + 10))
            .unwrap()
    })
    .await;
    due_expiries.sort_by_key(|p| p.expires_at);
    assert_eq!(ts.due_expiries(at(now), 10).await.unwrap(), due_expiries);
    assert_eq!(ts.due_expiries(at(now), 1).await.unwrap(), due_expiries[..1]);

    // Cancel retries: pending cancels due by `now`.
    let (done, _) = approved_key_in(&*ts, &merchant, "order-retries", 10_000, T0).await;
    let mut p = done;
    let mut due_cancels = Vec::new();
    for (i, retry_at) in [now - 5, now - 50, now + 50, now].into_iter().enumerate() {
        let reserved = p.cancel_reserved(Money::krw(1_000), None).unwrap();
        let cancel = pending_cancel(&reserved, 1_000, T0 + 10 + i64::try_from(i).unwrap(), retry_at);
        let update = PaymentUpdate {
            insert_transactions: vec![cancel.clone()],
            ..PaymentUpdate::new(p.version, reserved.clone())
        };
        ts.update_payment(&update).await.unwrap();
        if retry_at <= now {
            due_cancels.push(cancel);
        }
        p = reserved;
    }
    // A failed cancel that still carries an instant is not retried.
    let reserved = p.cancel_reserved(Money::krw(1_000), None).unwrap();
    let failed = PaymentTransaction {
        status: TransactionStatus::Failed,
        ..pending_cancel(&reserved, 1_000, T0 + 20, now - 999)
    };
    ts.update_payment(&PaymentUpdate {
        insert_transactions: vec![failed],
        ..PaymentUpdate::new(p.version, reserved)
    })
    .await
    .unwrap();
    due_cancels.sort_by_key(|t| t.next_attempt_at);
    assert_eq!(ts.due_cancel_retries(at(now), 10).await.unwrap(), due_cancels);
    assert_eq!(ts.due_cancel_retries(at(now), 2).await.unwrap(), due_cancels[..2]);
}

// encData keys.

#[tokio::test]
async fn enc_keys_rotate() {
    let ts = fresh_store().await;
    let (merchant, _) = seeded_merchant(&*ts, T0).await;
    let (other, _) = seeded_merchant(&*ts, T0 + 1).await;
    let key = |version: u32, created: i64| StoredEncKey {
        version,
        sealed: sealed(7, u8::try_from(version).unwrap()),
        created_at: at(created),
        retires_at: None,
    };
    assert_eq!(ts.enc_keys(merchant.id, Mode::Test).await.unwrap(), vec![]);
    ts.add_enc_key(merchant.id, Mode::Test, &key(1, T0), at(T0), None)
        .await
        .unwrap();
    ts.add_enc_key(merchant.id, Mode::Live, &key(1, T0), at(T0), None)
        .await
        .unwrap();
    ts.add_enc_key(other.id, Mode::Test, &key(1, T0), at(T0), None)
        .await
        .unwrap();
    assert_eq!(ts.enc_keys(merchant.id, Mode::Test).await.unwrap(), vec![key(1, T0)]);

    ts.add_enc_key(merchant.id, Mode::Test, &key(2, T0 + 10), at(T0 + 1_000), None)
        .await
        .unwrap();
    ts.add_enc_key(merchant.id, Mode::Test, &key(3, T0 + 20), at(T0 + 2_000), None)
        .await
        .unwrap();
    let retired = |version, created, retires| StoredEncKey {
        retires_at: Some(at(retires)),
        ..key(version, created)
    };
    let expected = vec![
        retired(1, T0, T0 + 1_000),
        retired(2, T0 + 10, T0 + 2_000),
        key(3, T0 + 20),
    ];
    assert_eq!(ts.enc_keys(merchant.id, Mode::Test).await.unwrap(), expected);

    // A version that exists already: refused, and the retirement it would have made is rolled back.
    assert!(is_conflict(
        &ts.add_enc_key(merchant.id, Mode::Test, &key(3, T0 + 30), at(T0 + 3_000), None)
            .await
    ));
    assert_eq!(ts.enc_keys(merchant.id, Mode::Test).await.unwrap(), expected);
    // The other mode and merchant were not touched.
    assert_eq!(ts.enc_keys(merchant.id, Mode::Live).await.unwrap(), vec![key(1, T0)]);
    assert_eq!(ts.enc_keys(other.id, Mode::Test).await.unwrap(), vec![key(1, T0)]);
    let stranger = merchant_at(T0 + 2);
    assert!(is_conflict(
        &ts.add_enc_key(stranger.id, Mode::Test, &key(1, T0), at(T0), None).await
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_enc_key_rotations_leave_one_current_key() {
    let ts = fresh_store().await;
    let (merchant, _) = seeded_merchant(&*ts, T0).await;
    let stores = processes(&ts, 3).await;
    let tasks: Vec<_> = (1..=12u32)
        .map(|version| {
            let store = Arc::clone(&stores[usize::try_from(version).unwrap() % stores.len()]);
            let key = StoredEncKey {
                version,
                sealed: sealed(1, 1),
                created_at: at(T0),
                retires_at: None,
            };
            tokio::spawn(async move { store.add_enc_key(merchant.id, Mode::Test, &key, at(T0 + 1), None).await })
        })
        .collect();
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    let keys = ts.enc_keys(merchant.id, Mode::Test).await.unwrap();
    assert_eq!(keys.len(), 12);
    assert_eq!(keys.iter().filter(|k| k.retires_at.is_none()).count(), 1, "{keys:?}");
}

// Transactions.

#[tokio::test]
async fn transactions_page_by_period() {
    let ts = fresh_store().await;
    let (merchant, _) = seeded_merchant(&*ts, T0).await;
    let (other, _) = seeded_merchant(&*ts, T0 + 1).await;
    let from = T0 + 10_000;
    let until = T0 + 80_000;
    // Seven approvals inside the period, ten seconds apart, plus some that must not be listed: at the period's
    // edges, of another merchant, and in the other mode.
    let mut inside = Vec::new();
    for i in 0..7 {
        let (_, txn) = approved_key_in(
            &*ts,
            &merchant,
            &format!("order-list-{i}"),
            1_000 + i,
            from + i * 10_000 - 1,
        )
        .await;
        inside.push(txn);
    }
    for (m, mode, created, order) in [
        (&merchant, Mode::Test, from - 2, "order-too-early"),
        (&merchant, Mode::Test, until - 1, "order-at-until"),
        (&other, Mode::Test, from + 5, "order-other-merchant"),
        (&merchant, Mode::Live, from + 5, "order-live"),
    ] {
        let p = key_in(m, mode, order, 500, created);
        insert(&*ts, &p, None).await;
        ts.update_payment(&approval_update(&p, created + 1)).await.unwrap();
    }
    inside.sort_by_key(|t| t.key);

    let query = |after: Option<TransactionKey>| TransactionQuery {
        merchant_id: merchant.id,
        mode: Mode::Test,
        from: at(from),
        until: at(until),
        after,
        limit: 3,
    };
    let mut pages = Vec::new();
    let mut after = None;
    loop {
        let page = ts.list_transactions(&query(after)).await.unwrap();
        if page.is_empty() {
            break;
        }
        after = page.last().map(|t| t.transaction.key);
        pages.push(page);
    }
    assert_eq!(pages.iter().map(Vec::len).collect::<Vec<_>>(), vec![3, 3, 1]);
    let listed = pages.concat();
    assert_eq!(listed.iter().map(|l| l.transaction.clone()).collect::<Vec<_>>(), inside);
    for (i, l) in listed.iter().enumerate() {
        // Approvals leave the whole amount to cancel; each is listed with its payment's orderId.
        assert_eq!(l.balance_after, l.transaction.amount);
        assert!(l.order_id.as_str().starts_with("order-list-"), "{i}: {:?}", l.order_id);
    }
    let everything = TransactionQuery {
        limit: 100,
        until: at(until + 1),
        from: at(from - 2),
        ..query(None)
    };
    assert_eq!(ts.list_transactions(&everything).await.unwrap().len(), 9);
}

// Corrupt rows.

#[tokio::test]
async fn payment_rows_the_domain_cannot_read_are_corrupt() {
    let ts = fresh_store().await;
    let (merchant, _) = seeded_merchant(&*ts, T0).await;
    let p = key_in(&merchant, Mode::Test, "order-corrupt", 1_000, T0);
    insert(&*ts, &p, None).await;
    let bad = key_in(&merchant, Mode::Test, "order-corrupt-2", 1_000, T0);
    insert(&*ts, &bad, None).await;
    // Schema-valid values the domain refuses: an unknown currency, and a VAT above the taxable amount.
    ts.db
        .execute(&format!("UPDATE payments SET currency = 'XYZ' WHERE id = '{}'", p.id))
        .await;
    ts.db
        .execute(&format!(
            "UPDATE payments SET vat_amount = 5000 WHERE id = '{}'",
            bad.id
        ))
        .await;
    for id in [p.id, bad.id] {
        let read = ts.payment_by_id(id).await;
        assert!(matches!(read, Err(StoreError::Corrupt(_))), "{read:?}");
    }
    let listed = ts.due_inquiries(at(T0 + 1_000_000), 10).await;
    assert!(matches!(listed, Err(StoreError::Corrupt(_))), "{listed:?}");
}

// Checkout sessions.

/// The OTP try limit rests on this: of concurrent writes from one read of a session, exactly one commits; the
/// others are conflicts and change nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_checkout_session_updates_have_one_winner() {
    let ts = fresh_store().await;
    let (merchant, _) = seeded_merchant(&*ts, T0).await;
    let payment = checkout(&merchant, Mode::Test, "order-session.01", 5_000, T0, T0 + 60_000);
    insert(&*ts.store, &payment, None).await;
    let session = CheckoutSession::restore(CheckoutSessionFields {
        payment_id: payment.id,
        entry: CheckoutEntry::Api,
        return_url: None,
        success_url: Some("https://shop.example/success".into()),
        fail_url: None,
        challenge_otp_hash: Some(vec![7; 32]),
        challenge_attempts: 0,
        challenge_expires_at: Some(at(T0 + 300_000)),
        method: None,
        bank: None,
        holder_name: None,
        bank_authorization: None,
        created_at: at(T0),
        version: 0,
    });
    ts.insert_checkout_session(&session).await.unwrap();
    let stores = processes(&ts, 3).await;
    let tasks: Vec<_> = (0..24)
        .map(|i| {
            let store = Arc::clone(&stores[i % stores.len()]);
            let next = session.challenge_attempted();
            tokio::spawn(async move { store.update_checkout_session(&next).await })
        })
        .collect();
    let mut committed = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(()) => committed += 1,
            Err(StoreError::Conflict(_)) => {}
            Err(other) => panic!("not a conflict: {other:?}"),
        }
    }
    assert_eq!(committed, 1);
    let stored = ts.checkout_session(payment.id).await.unwrap().unwrap();
    assert_eq!((stored.challenge_attempts, stored.version), (1, 1));
    // A write computed from a stale version changes nothing.
    let stale = session.challenge_started(vec![8; 32], at(T0 + 400_000));
    assert!(is_conflict(&ts.update_checkout_session(&stale).await));
    assert_eq!(
        ts.checkout_session(payment.id)
            .await
            .unwrap()
            .unwrap()
            .challenge_attempts,
        1
    );
    // The bank method the buyer picks, and the bank's authorization, are kept with the session.
    let bank = paygate_domain::bank::Bank::parse("06").unwrap();
    let picked = stored
        .bank_chosen(bank, Some("홍길동".into()))
        .transfer_authorized("tac_1".into());
    ts.update_checkout_session(&picked.bank_chosen(bank, Some("홍길동".into())))
        .await
        .expect_err("two versions ahead");
    ts.update_checkout_session(&stored.bank_chosen(bank, Some("홍길동".into())))
        .await
        .unwrap();
    ts.update_checkout_session(&picked).await.unwrap();
    let read = ts.checkout_session(payment.id).await.unwrap().unwrap();
    assert_eq!(read, picked);
    assert_eq!(
        (
            read.bank,
            read.holder_name.as_deref(),
            read.bank_authorization.as_deref(),
            read.method
        ),
        (Some(bank), Some("홍길동"), Some("tac_1"), None)
    );
}

/// Several stores on one database stand in for several gateway processes.
async fn processes(ts: &TestStore, count: usize) -> Vec<Arc<dyn Store>> {
    let mut stores = vec![Arc::clone(&ts.store)];
    for _ in 1..count {
        stores.push(ts.db.open().await.unwrap().0);
    }
    stores
}
