//! Conformance tests for virtual accounts and bank deposits, on the backend `PAYGATE_TEST_DATABASE_URL` selects:
//! an account is written with its payment, a deposit with the payment change it causes, a bank deposit ID is
//! recorded once, every write is conditional on the version it came from, and the ledger check covers deposits.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use paygate_domain::api_key::Mode;
use paygate_domain::bank::{Bank, DepositRefundReason};
use paygate_domain::card::Installment;
use paygate_domain::id::{DepositId, JournalId, PaymentId, TransactionKey};
use paygate_domain::ledger::Journal;
use paygate_domain::merchant::Merchant;
use paygate_domain::money::Money;
use paygate_domain::order::{OrderId, OrderName};
use paygate_domain::payment::{
    Flow, NewPayment, OrderExtras, Payment, PaymentMethod, PaymentStatus, PaymentTransaction, TransactionKind,
    TransactionStatus,
};
use paygate_domain::time::UnixMillis;
use paygate_domain::vat::VatSplit;
use paygate_domain::virtual_account::{
    AccountStatus, BankDeposit, NewVirtualAccount, ReportedDeposit, ReturnStatus, VirtualAccount,
};
use paygate_store::{BankChanges, JournalEntry, JournalOf, PaymentInsert, PaymentUpdate, Store, StoreError};

const T0: i64 = 1_700_000_000_000;
const DAY: i64 = 86_400_000;

fn at(millis: i64) -> UnixMillis {
    UnixMillis::new(millis)
}

fn bank() -> Bank {
    Bank::parse("20").unwrap()
}

fn waiting(merchant: &Merchant, order_id: &str, total: i64) -> (Payment, VirtualAccount) {
    let new = NewPayment {
        id: PaymentId::new(at(T0), entropy()),
        merchant_id: merchant.id,
        mode: Mode::Test,
        order_id: OrderId::parse(order_id).unwrap(),
        order_name: OrderName::parse("가상계좌 주문").unwrap(),
        amounts: VatSplit::compute(Money::krw(total), Money::krw(0)).unwrap(),
        installment: Installment::LUMP_SUM,
        customer_name: Some("홍길동".into()),
        customer_email: None,
        notification_url: None,
        extras: OrderExtras::default(),
        now: at(T0),
    };
    let payment = Payment::virtual_account(new, Flow::KeyIn, at(T0 + 7 * DAY)).unwrap();
    let account = VirtualAccount::issue(NewVirtualAccount {
        payment_id: payment.id,
        merchant_id: merchant.id,
        mode: Mode::Test,
        bank: bank(),
        account_number: format!("920000{}", &order_id[order_id.len() - 8..]),
        customer_name: "홍길동".into(),
        amount: Money::krw(total),
        issued_at: at(T0),
        due_at: at(T0 + 7 * DAY),
    });
    (payment, account)
}

async fn issued(store: &dyn Store, merchant: &Merchant, order_id: &str, total: i64) -> (Payment, VirtualAccount) {
    let (payment, account) = waiting(merchant, order_id, total);
    let mut insert = PaymentInsert::new(payment.clone());
    insert.virtual_account = Some(account.clone());
    store.insert_payment(&insert).await.unwrap();
    (payment, account)
}

fn reported(account: &VirtualAccount, bank_deposit_id: &str, amount: i64, when: i64) -> ReportedDeposit {
    ReportedDeposit {
        id: DepositId::new(at(when), entropy()),
        bank: account.bank,
        bank_deposit_id: bank_deposit_id.into(),
        account_number: account.account_number.clone(),
        amount: Money::krw(amount),
        depositor_name: "홍길동".into(),
        deposited_at: at(when),
        received_at: at(when + 1),
    }
}

/// The change a deposit causes: DONE with its transaction and journal, or (paying nothing) the deposit held.
fn deposit_update(payment: &Payment, deposit: &BankDeposit, paid: Option<VirtualAccount>) -> PaymentUpdate {
    let now = deposit.received_at;
    match paid {
        Some(account) => {
            let next = payment
                .deposit_received(account.bank.code(), &deposit.bank_deposit_id, deposit.deposited_at)
                .unwrap();
            let transaction = PaymentTransaction {
                key: TransactionKey::new(now, entropy()),
                payment_id: payment.id,
                merchant_id: payment.merchant_id,
                mode: payment.mode,
                kind: TransactionKind::Approval,
                status: TransactionStatus::Done,
                amount: deposit.amount,
                tax_free: Money::krw(0),
                reason: None,
                created_at: now,
                completed_at: Some(now),
                acquirer_transaction_id: Some(deposit.bank_deposit_id.clone()),
                next_attempt_at: None,
                attempts: 1,
            };
            let mut update = PaymentUpdate::new(payment.version, next);
            update.journals.push(JournalEntry {
                id: JournalId::new(now, entropy()),
                of: JournalOf::Transaction(transaction.key),
                journal: Journal::deposit_applied(payment.merchant_id, account.bank.code(), deposit.amount).unwrap(),
                created_at: now,
            });
            update.insert_transactions.push(transaction);
            update.bank = BankChanges {
                account: Some(account),
                new_deposit: Some(deposit.clone()),
                ..BankChanges::default()
            };
            update
        }
        None => {
            let mut update = PaymentUpdate::new(payment.version, payment.touched());
            update.journals.push(JournalEntry {
                id: JournalId::new(now, entropy()),
                of: JournalOf::Deposit(deposit.id),
                journal: Journal::deposit_held(deposit.bank.code(), deposit.amount).unwrap(),
                created_at: now,
            });
            update.bank.new_deposit = Some(deposit.clone());
            update
        }
    }
}

#[tokio::test]
async fn an_account_is_stored_with_its_payment_and_found_by_number() {
    let store = fresh_store().await;
    let (merchant, _) = seeded_merchant(&*store, T0).await;
    let (payment, account) = issued(&*store, &merchant, "va-order-00000001", 15_000).await;

    let stored = store.payment_by_id(payment.id).await.unwrap().unwrap();
    assert_eq!(stored, payment);
    assert_eq!(
        (stored.method, stored.status),
        (PaymentMethod::VirtualAccount, PaymentStatus::WaitingForDeposit)
    );
    assert_eq!(store.virtual_account(payment.id).await.unwrap(), Some(account.clone()));
    let by_number = store
        .virtual_account_by_number(Mode::Test, bank(), &account.account_number)
        .await
        .unwrap();
    assert_eq!(by_number, Some(account.clone()));
    assert_eq!(
        store
            .virtual_account_by_number(Mode::Live, bank(), &account.account_number)
            .await
            .unwrap(),
        None,
        "a test account is not found in live mode"
    );

    // While it is open no other account may hold its number.
    let (other, mut clash) = waiting(&merchant, "va-order-10000001", 15_000);
    clash = VirtualAccount::issue(NewVirtualAccount {
        payment_id: other.id,
        merchant_id: merchant.id,
        mode: Mode::Test,
        bank: bank(),
        account_number: account.account_number.clone(),
        customer_name: clash.customer_name.clone(),
        amount: clash.amount,
        issued_at: clash.issued_at,
        due_at: clash.due_at,
    });
    let mut insert = PaymentInsert::new(other.clone());
    insert.virtual_account = Some(clash);
    assert!(store.insert_payment(&insert).await.is_err());
    assert!(
        store.payment_by_id(other.id).await.unwrap().is_none(),
        "nothing of the refused insert stays"
    );

    // Due accounts are listed once past their due date.
    assert!(store
        .due_account_expiries(at(T0 + 7 * DAY - 1), 10)
        .await
        .unwrap()
        .is_empty());
    let due = store.due_account_expiries(at(T0 + 7 * DAY), 10).await.unwrap();
    assert_eq!(due, vec![account]);
}

#[tokio::test]
async fn a_deposit_is_recorded_once_and_pays_its_account() {
    let store = fresh_store().await;
    let (merchant, _) = seeded_merchant(&*store, T0).await;
    let (payment, account) = issued(&*store, &merchant, "va-order-00000002", 15_000).await;

    let (deposit, paid) = BankDeposit::receive(reported(&account, "dep-1", 15_000, T0 + DAY), &account);
    assert!(paid.is_some());
    let update = deposit_update(&payment, &deposit, paid);
    store.update_payment(&update).await.unwrap();

    let done = store.payment_by_id(payment.id).await.unwrap().unwrap();
    assert_eq!((done.status, done.balance), (PaymentStatus::Done, Money::krw(15_000)));
    let stored_account = store.virtual_account(payment.id).await.unwrap().unwrap();
    assert_eq!(
        (stored_account.status, stored_account.paid_by),
        (AccountStatus::Paid, Some(deposit.id))
    );
    assert_eq!(
        store.bank_deposit(Mode::Test, bank(), "dep-1").await.unwrap(),
        Some(deposit.clone())
    );
    assert!(store
        .due_account_expiries(at(T0 + 8 * DAY), 10)
        .await
        .unwrap()
        .is_empty());

    // The same bank deposit ID again, even with a fresh version of the payment: refused, nothing written.
    let (again, _) = BankDeposit::receive(reported(&stored_account, "dep-1", 15_000, T0 + DAY), &stored_account);
    let mut repeat = PaymentUpdate::new(done.version, done.touched());
    repeat.bank.new_deposit = Some(again);
    assert!(matches!(
        store.update_payment(&repeat).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(
        store.payment_by_id(payment.id).await.unwrap().unwrap().version,
        done.version
    );
    assert_eq!(store.deposits_of(payment.id).await.unwrap(), vec![deposit]);

    // A stale account version is refused too.
    let mut stale = PaymentUpdate::new(done.version, done.touched());
    stale.bank.account = Some(account.close().unwrap());
    assert!(matches!(
        store.update_payment(&stale).await,
        Err(StoreError::Conflict(_))
    ));

    let audit = store.audit_ledger().await.unwrap();
    assert!(audit.is_clean(), "{audit:?}");
}

#[tokio::test]
async fn a_deposit_that_pays_nothing_is_held_until_returned_and_the_ledger_check_sees_it() {
    let store = fresh_store().await;
    let (merchant, _) = seeded_merchant(&*store, T0).await;
    let (payment, account) = issued(&*store, &merchant, "va-order-00000003", 15_000).await;

    let (deposit, paid) = BankDeposit::receive(reported(&account, "dep-wrong", 14_999, T0 + DAY), &account);
    assert!(paid.is_none());
    assert_eq!(deposit.held_because, Some(DepositRefundReason::WrongAmount));
    store
        .update_payment(&deposit_update(&payment, &deposit, None))
        .await
        .unwrap();
    let after = store.payment_by_id(payment.id).await.unwrap().unwrap();
    assert_eq!(
        after.status,
        PaymentStatus::WaitingForDeposit,
        "a wrong amount is never half-accepted"
    );
    assert_eq!(
        store.due_deposit_returns(at(T0 + DAY + 1), 10).await.unwrap(),
        vec![deposit.clone()]
    );
    let audit = store.audit_ledger().await.unwrap();
    assert!(audit.is_clean(), "held and owed to its depositor: {audit:?}");

    // Returned at the bank, but the journal of the return is missing: the check names the deposit.
    let returned = deposit.return_answered(true).unwrap();
    assert_eq!(returned.return_status, ReturnStatus::Returned);
    let mut update = PaymentUpdate::new(after.version, after.touched());
    update.bank.deposit = Some(returned.clone());
    store.update_payment(&update).await.unwrap();
    let audit = store.audit_ledger().await.unwrap();
    assert_eq!(audit.mismatched_deposits, vec![deposit.id]);
    assert!(store
        .due_deposit_returns(at(T0 + 2 * DAY), 10)
        .await
        .unwrap()
        .is_empty());

    // With the return's journal the ledger is clean again.
    let after = store.payment_by_id(payment.id).await.unwrap().unwrap();
    let mut update = PaymentUpdate::new(after.version, after.touched());
    update.journals.push(JournalEntry {
        id: JournalId::new(at(T0 + 2 * DAY), entropy()),
        of: JournalOf::Deposit(deposit.id),
        journal: Journal::deposit_returned(bank().code(), deposit.amount).unwrap(),
        created_at: at(T0 + 2 * DAY),
    });
    store.update_payment(&update).await.unwrap();
    let audit = store.audit_ledger().await.unwrap();
    assert!(audit.is_clean(), "{audit:?}");
}

#[tokio::test]
async fn a_paid_payment_without_its_deposit_journal_is_a_mismatch() {
    let store = fresh_store().await;
    let (merchant, _) = seeded_merchant(&*store, T0).await;
    let (payment, account) = issued(&*store, &merchant, "va-order-00000004", 15_000).await;
    let (deposit, paid) = BankDeposit::receive(reported(&account, "dep-4", 15_000, T0 + DAY), &account);
    let mut update = deposit_update(&payment, &deposit, paid);
    update.journals.clear();
    store.update_payment(&update).await.unwrap();
    let audit = store.audit_ledger().await.unwrap();
    assert_eq!(audit.mismatched_payments, vec![payment.id]);
}
