//! Account transfers in process, with a manual clock: a debit whose answer the bank lost is recorded as unknown
//! (never guessed), and the inquiry worker settles it from the bank's own record under the payment's key — once.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod harness;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use harness::{fresh, Harness, Options};
use paygate_app::payments::command::{self, ConfirmCommand, CreateCommand, Customer, RedirectUrl};
use paygate_app::payments::hosted::HostedStep;
use paygate_connectors::bank::{
    AuthorizeStep, BankConnector, BankJournalKind, BankRefusal, BeginTransfer, Debit, DebitAnswer, Deposit,
    IssueAccount, IssuedAccount, Refund, RefundAnswer, SandboxBank, TransferSession,
};
use paygate_connectors::ConnectorError;
use paygate_domain::api_key::Mode;
use paygate_domain::bank::Bank;
use paygate_domain::payment::{ApprovalState, PaymentMethod, PaymentStatus};

/// The sandbox bank, losing the answer of the next debit once armed (the debit is made; its answer never comes), or
/// timing out before the next debit reaches the bank (nothing is debited).
struct LosingBank {
    inner: SandboxBank,
    lose_next_debit: AtomicBool,
    drop_next_debit: AtomicBool,
}

#[async_trait::async_trait]
impl BankConnector for LosingBank {
    fn serves(&self, bank: Bank) -> bool {
        BankConnector::serves(&self.inner, bank)
    }

    fn banks(&self) -> Vec<Bank> {
        BankConnector::banks(&self.inner)
    }

    async fn issue_account(
        &self,
        request: &IssueAccount,
    ) -> Result<Result<IssuedAccount, BankRefusal>, ConnectorError> {
        BankConnector::issue_account(&self.inner, request).await
    }

    async fn close_account(
        &self,
        merchant_id: &str,
        account_number: &str,
    ) -> Result<Result<(), BankRefusal>, ConnectorError> {
        BankConnector::close_account(&self.inner, merchant_id, account_number).await
    }

    async fn refund(&self, request: &Refund) -> Result<Result<RefundAnswer, BankRefusal>, ConnectorError> {
        BankConnector::refund(&self.inner, request).await
    }

    async fn deposits_after(&self, after_seq: u64, limit: usize) -> Result<Vec<Deposit>, ConnectorError> {
        BankConnector::deposits_after(&self.inner, after_seq, limit).await
    }

    async fn return_deposit(
        &self,
        merchant_id: &str,
        reference: &str,
        deposit_id: &str,
    ) -> Result<Result<RefundAnswer, BankRefusal>, ConnectorError> {
        BankConnector::return_deposit(&self.inner, merchant_id, reference, deposit_id).await
    }

    async fn begin_transfer(
        &self,
        request: &BeginTransfer,
    ) -> Result<Result<TransferSession, BankRefusal>, ConnectorError> {
        BankConnector::begin_transfer(&self.inner, request).await
    }

    async fn debit(&self, request: &Debit) -> Result<Result<DebitAnswer, BankRefusal>, ConnectorError> {
        if self.drop_next_debit.swap(false, Ordering::SeqCst) {
            return Err(ConnectorError::Timeout);
        }
        let answer = BankConnector::debit(&self.inner, request).await;
        if self.lose_next_debit.swap(false, Ordering::SeqCst) {
            return Err(ConnectorError::LostAnswer("the bank's answer was lost".into()));
        }
        answer
    }

    async fn inquire_debit(&self, merchant_id: &str, reference: &str) -> Result<Option<DebitAnswer>, ConnectorError> {
        BankConnector::inquire_debit(&self.inner, merchant_id, reference).await
    }
}

/// A harness whose test-mode bank is `bank`, and a transfer payment authorized at the bank, ready to confirm.
async fn authorized_transfer(bank: Arc<LosingBank>, order_id: &str) -> (Harness, paygate_domain::id::PaymentId) {
    let sandbox = bank.inner.clone();
    let mut banks = paygate_app::bank::Banks::new();
    banks.set(Mode::Test, bank, b"transfer-test-secret");
    let h = Harness::with(Options {
        banks,
        ..Options::default()
    })
    .await;
    let command = CreateCommand {
        amounts: command::amounts(15_000, None, None).unwrap(),
        order_id: command::order_id(order_id).unwrap(),
        order_name: command::order_name("계좌이체 주문").unwrap(),
        customer: Customer::default(),
        notification_url: None,
        extras: Default::default(),
        success_url: RedirectUrl::parse(Some("https://shop.example/success".into()), "successUrl").unwrap(),
        fail_url: RedirectUrl::parse(Some("https://shop.example/fail".into()), "failUrl").unwrap(),
        method: Some(PaymentMethod::Transfer),
    };
    let created = fresh(h.app.create_checkout(&h.caller, command, None).await.unwrap());
    let id = created.payment.id;
    assert_eq!(created.payment.method, PaymentMethod::Transfer);
    // The buyer picks the bank and authorizes at the bank's page.
    let HostedStep::Redirect(authorize) = h.app.hosted_transfer(id, "06", Ok(None)).await.unwrap() else {
        panic!("not sent to the bank");
    };
    let session = authorize.split('/').nth(3).unwrap().to_owned();
    let Some(AuthorizeStep::Return(back)) = sandbox.authorize_transfer(&session, "1101234567", "박토스", "1234")
    else {
        panic!("not authorized");
    };
    let code = back.split("code=").nth(1).unwrap().to_owned();
    let step = h.app.hosted_transfer_return(id, Some(&code), None).await.unwrap();
    assert!(
        matches!(step, HostedStep::Redirect(ref url) if url.starts_with("https://shop.example/success")),
        "{step:?}"
    );
    (h, id)
}

fn losing_bank(lose: bool, drop: bool) -> Arc<LosingBank> {
    Arc::new(LosingBank {
        inner: SandboxBank::new(Bank::virtual_account_issuers().collect()),
        lose_next_debit: AtomicBool::new(lose),
        drop_next_debit: AtomicBool::new(drop),
    })
}

fn debits(bank: &LosingBank) -> usize {
    bank.inner
        .journal_page(0, 100)
        .into_iter()
        .filter(|e| e.kind == BankJournalKind::Debit)
        .count()
}

#[tokio::test]
async fn a_lost_debit_answer_is_settled_by_inquiry_once() {
    let bank = losing_bank(true, false);
    let (h, id) = authorized_transfer(bank.clone(), "transfer-lost-0001").await;

    // The confirm's debit is made at the bank, but its answer is lost: the payment waits, outcome unknown.
    let confirm = ConfirmCommand::parse("transfer-lost-0001", 15_000).unwrap();
    let waiting = fresh(h.app.confirm(&h.caller, id, confirm, None).await.unwrap());
    assert_eq!(waiting.payment.status, PaymentStatus::InProgress);
    assert_eq!(waiting.payment.approval_state, ApprovalState::Unknown);
    assert!(waiting.approval_unknown());

    // The inquiry worker asks the bank under the payment's key, and settles the payment from its answer.
    h.workers_at(60_000).await;
    let done = h.payment(id).await;
    assert_eq!(done.payment.status, PaymentStatus::Done, "{:?}", done.payment);
    assert_eq!(done.transactions.len(), 1);
    let transfer = h.store().transfer(id).await.unwrap().unwrap();
    assert_eq!(
        (transfer.account_number.as_str(), transfer.amount.amount_minor()),
        ("1101234567", 15_000)
    );
    // Once: the bank debited once, and another pass changes nothing.
    h.workers_at(120_000).await;
    assert_eq!(h.payment(id).await.payment.version, done.payment.version);
    assert_eq!(debits(&bank), 1);
    // One balanced journal, and the ledger agrees with the payment.
    assert_eq!(h.ledger_journals().await, 1);
}

#[tokio::test]
async fn a_debit_the_bank_never_saw_is_aborted_only_once_the_authorization_is_dead() {
    let bank = losing_bank(false, true);
    let (h, id) = authorized_transfer(bank.clone(), "transfer-gone-0001").await;
    let confirm = ConfirmCommand::parse("transfer-gone-0001", 15_000).unwrap();
    let waiting = fresh(h.app.confirm(&h.caller, id, confirm, None).await.unwrap());
    assert_eq!(waiting.payment.approval_state, ApprovalState::Unknown);
    // The bank knows no debit, but one could still be in flight while the authorization lives: asked again.
    h.workers_at(60_000).await;
    assert_eq!(h.payment(id).await.payment.status, PaymentStatus::InProgress);
    // After the confirm deadline and the authorization's lifetime, nothing can be debited any more: ABORTED.
    let dead = 10 * 60_000 + paygate_connectors::bank::AUTHORIZATION_TTL_MS + 60_000;
    for step in 1..=8 {
        h.workers_at(dead / 8 * step + 60_000).await;
    }
    let aborted = h.payment(id).await;
    assert_eq!(aborted.payment.status, PaymentStatus::Aborted, "{:?}", aborted.payment);
    assert_eq!(aborted.payment.failure.as_ref().unwrap().code, "BANK_TIMEOUT");
    assert_eq!(debits(&bank), 0);
    assert_eq!(h.ledger_journals().await, 0);
}
