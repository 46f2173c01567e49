//! Conformance tests for cash receipts, on the backend `PAYGATE_TEST_DATABASE_URL` selects: one issue per order,
//! cancels written with their issue's reserved amount in one transaction, every change conditional on the version
//! it came from, the report queue, the list by request time, and business profiles.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use paygate_domain::api_key::Mode;
use paygate_domain::cash_receipt::{CashReceipt, CustomerIdentity, IssueStatus, NewCashReceipt, ReceiptType};
use paygate_domain::id::CashReceiptKey;
use paygate_domain::merchant::{BusinessProfile, Merchant};
use paygate_domain::money::Money;
use paygate_domain::time::UnixMillis;
use paygate_store::{InsertReceiptOutcome, ReceiptChange, ReceiptFilter, StoreError};

const T0: i64 = 1_700_000_000_000;
fn period(from: i64, to: i64) -> ReceiptFilter {
    ReceiptFilter {
        from: at(from),
        to: at(to),
        status: None,
        min_amount: None,
        max_amount: None,
    }
}

fn at(millis: i64) -> UnixMillis {
    UnixMillis::new(millis)
}

fn issue(merchant: &Merchant, order_id: &str, amount: i64, now: i64) -> CashReceipt {
    CashReceipt::issue(NewCashReceipt {
        key: CashReceiptKey::new(at(now), entropy()),
        merchant_id: merchant.id,
        mode: Mode::Test,
        payment_id: None,
        order_id: order_id.into(),
        order_name: "현금 주문".into(),
        receipt_type: ReceiptType::IncomeDeduction,
        amount: Money::krw(amount),
        tax_free: Money::krw(0),
        identity: CustomerIdentity::parse("01012345678", ReceiptType::IncomeDeduction).unwrap(),
        business_number: "1208147521".into(),
        now: at(now),
    })
    .unwrap()
}

#[tokio::test]
async fn receipts_are_issued_once_per_order_and_change_from_their_version() {
    let store = fresh_store().await;
    let (merchant, _) = seeded_merchant(&*store, T0).await;
    let receipt = issue(&merchant, "cash-order-0001", 10_000, T0);
    assert_eq!(
        store.insert_cash_receipt(&receipt, &[], None).await.unwrap(),
        InsertReceiptOutcome::Inserted
    );
    let again = issue(&merchant, "cash-order-0001", 5_000, T0 + 1);
    assert_eq!(
        store.insert_cash_receipt(&again, &[], None).await.unwrap(),
        InsertReceiptOutcome::DuplicateOrderId
    );
    let read = store
        .cash_receipt(merchant.id, Mode::Test, receipt.key)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(read, receipt);
    assert!(store
        .cash_receipt(merchant.id, Mode::Live, receipt.key)
        .await
        .unwrap()
        .is_none());
    assert_eq!(
        store.due_cash_receipt_reports(at(T0), 10).await.unwrap(),
        vec![receipt.clone()]
    );

    // The report is sent and answered; a stale write changes nothing.
    let sent = receipt.report_sent(at(T0 + 5_000)).unwrap();
    store
        .change_cash_receipts(&ReceiptChange {
            changed: vec![sent.clone()],
            ..ReceiptChange::default()
        })
        .await
        .unwrap();
    assert!(store.due_cash_receipt_reports(at(T0 + 1), 10).await.unwrap().is_empty());
    let stale = receipt.report_sent(at(T0 + 9_000)).unwrap();
    let conflict = store
        .change_cash_receipts(&ReceiptChange {
            changed: vec![stale],
            ..ReceiptChange::default()
        })
        .await;
    assert!(matches!(conflict, Err(StoreError::Conflict(_))), "{conflict:?}");
    let done = sent.completed("000000001".into(), at(T0 + 100)).unwrap();
    store
        .change_cash_receipts(&ReceiptChange {
            changed: vec![done.clone()],
            ..ReceiptChange::default()
        })
        .await
        .unwrap();

    // A cancel goes in with its issue's reserved amount, or not at all.
    let (reserved, cancel) = done
        .cancel_requested(
            CashReceiptKey::new(at(T0 + 200), entropy()),
            Some(Money::krw(4_000)),
            None,
            at(T0 + 200),
        )
        .unwrap();
    store
        .change_cash_receipts(&ReceiptChange {
            changed: vec![reserved.clone()],
            added: vec![cancel.clone()],
            ..ReceiptChange::default()
        })
        .await
        .unwrap();
    let (_, twice) = done
        .cancel_requested(
            CashReceiptKey::new(at(T0 + 201), entropy()),
            Some(Money::krw(4_000)),
            None,
            at(T0 + 201),
        )
        .unwrap();
    let lost = store
        .change_cash_receipts(&ReceiptChange {
            changed: vec![
                done.cancel_requested(twice.key, Some(Money::krw(4_000)), None, at(T0 + 201))
                    .unwrap()
                    .0,
            ],
            added: vec![twice.clone()],
            ..ReceiptChange::default()
        })
        .await;
    assert!(matches!(lost, Err(StoreError::Conflict(_))), "{lost:?}");
    assert!(store.cash_receipt_by_key(twice.key).await.unwrap().is_none());
    let issue_now = store.cash_receipt_by_key(done.key).await.unwrap().unwrap();
    assert_eq!(
        (issue_now.cancelled, issue_now.status),
        (Money::krw(4_000), IssueStatus::Completed)
    );
    assert_eq!(store.cash_receipt_by_key(cancel.key).await.unwrap().unwrap(), cancel);

    // The list by request time, paged by position.
    let later = issue(&merchant, "cash-order-0002", 3_000, T0 + 300);
    store.insert_cash_receipt(&later, &[], None).await.unwrap();
    let whole = period(T0, T0 + 1_000);
    let page = |skip, limit| store.cash_receipts_requested(merchant.id, Mode::Test, &whole, skip, limit);
    let keys = |list: Vec<CashReceipt>| list.into_iter().map(|r| r.key).collect::<Vec<_>>();
    assert_eq!(keys(page(0, 10).await.unwrap()), vec![done.key, cancel.key, later.key]);
    assert_eq!(keys(page(1, 1).await.unwrap()), vec![cancel.key]);
    assert!(page(3, 10).await.unwrap().is_empty());
    // Filters apply before the page is cut: by period, status and amount.
    let filtered = |filter: ReceiptFilter| {
        let store = &store;
        async move {
            keys(
                store
                    .cash_receipts_requested(merchant.id, Mode::Test, &filter, 0, 10)
                    .await
                    .unwrap(),
            )
        }
    };
    let completed = ReceiptFilter {
        status: Some(IssueStatus::Completed),
        ..period(T0, T0 + 1_000)
    };
    assert_eq!(filtered(completed).await, vec![done.key]);
    let small = ReceiptFilter {
        max_amount: Some(4_000),
        ..period(T0, T0 + 1_000)
    };
    assert_eq!(filtered(small).await, vec![cancel.key, later.key]);
    let mid = ReceiptFilter {
        min_amount: Some(3_500),
        max_amount: Some(9_999),
        ..period(T0, T0 + 1_000)
    };
    assert_eq!(filtered(mid).await, vec![cancel.key]);
    assert_eq!(filtered(period(T0 + 250, T0 + 1_000)).await, vec![later.key]);
}

#[tokio::test]
async fn a_business_profile_is_set_and_replaced() {
    let store = fresh_store().await;
    let (merchant, _) = seeded_merchant(&*store, T0).await;
    assert!(store.business_profile(merchant.id).await.unwrap().is_none());
    let profile = BusinessProfile::parse(
        merchant.id,
        "120-81-47521",
        "홍길동",
        "서울특별시 중구 세종대로 110",
        at(T0),
    )
    .unwrap();
    store.set_business_profile(&profile).await.unwrap();
    assert_eq!(
        store.business_profile(merchant.id).await.unwrap(),
        Some(profile.clone())
    );
    let moved = BusinessProfile::parse(merchant.id, "1208147521", "김대표", "부산광역시 해운대구", at(T0 + 1)).unwrap();
    store.set_business_profile(&moved).await.unwrap();
    assert_eq!(store.business_profile(merchant.id).await.unwrap(), Some(moved));
    assert_eq!(profile.business_number_display(), "120-81-47521");
}
