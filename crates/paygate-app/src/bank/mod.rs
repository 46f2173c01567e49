//! Bank methods: virtual accounts (가상계좌) issued by a bank for one payment, the deposits the bank reports, and
//! the accounts that expire unpaid.
//!
//! The order of operations keeps money accounted for:
//! 1. the bank issues the account under the payment's key as its reference (a repeat answers the same account),
//!    and only then is the payment written, WAITING_FOR_DEPOSIT, with its account, in one transaction. A crash in
//!    between leaves an account at the bank that no payment names; a deposit to it is refused by paygate (the
//!    bank keeps retrying its notification) and the account expires at the bank on its due date;
//! 2. a deposit is recorded once per bank deposit ID (a unique key), with what it causes in the same transaction:
//!    the payment DONE, its transaction and journal, its events — or, for a deposit that pays nothing (wrong
//!    amount, late, the account no longer waiting), the deposit held for its depositor with its own journal. A
//!    notification repeated a hundred times, or reordered, finds the deposit recorded and changes nothing;
//! 3. an account past its due date expires with its payment (EXPIRED, a final status), and is closed at the bank.

use std::sync::Arc;

mod hosted;
pub use hosted::HOLDER_NAME_CHARS_MAX;

use paygate_connectors::bank::{BankConnector, BankRefusal, IssueAccount, SandboxBank};
use paygate_connectors::bank_wire::NotifiedDeposit;
use paygate_connectors::ConnectorError;
use paygate_domain::api_key::{KeyKind, Mode};
use paygate_domain::bank::Bank;
use paygate_domain::card::Installment;
use paygate_domain::id::{DepositId, JournalId, PaymentId};
use paygate_domain::ledger::Journal;
use paygate_domain::payment::{Flow, Payment, PaymentTransaction, TransactionKind, TransactionStatus};
use paygate_domain::time::UnixMillis;
use paygate_domain::virtual_account::{BankDeposit, NewVirtualAccount, ReportedDeposit, VirtualAccount};
use paygate_store::{
    IdempotencyResource, InsertPaymentOutcome, JournalEntry, JournalOf, PaymentInsert, PaymentUpdate, StoreError,
};

use crate::auth::Caller;
use crate::idempotency::{Answer, IdempotencyRefusal};
use crate::payments::command::{Customer, FieldError, FieldReason, VirtualAccountCommand};
use crate::payments::keyin::PaymentExtras;
use crate::payments::{InternalError, PaymentAnswer, PaymentError, PaymentIdempotency, PaymentView, Start};
use crate::App;

/// The banks paygate reaches, per mode (test keys only ever reach a sandbox bank), each with the secret its
/// deposit notifications are signed with.
#[derive(Clone, Default)]
pub struct Banks {
    test: Option<BankLink>,
    live: Option<BankLink>,
    /// The in-process sandbox bank, when test mode uses it (the gateway serves its routes).
    sandbox: Option<SandboxBank>,
}

#[derive(Clone)]
struct BankLink {
    connector: Arc<dyn BankConnector>,
    notify_secret: Arc<[u8]>,
    /// Where this process has read the bank's deposit feed to, and when. In memory: a restarted process reads the
    /// feed again from its start, which records nothing twice.
    feed: Arc<std::sync::Mutex<FeedCursor>>,
}

#[derive(Clone, Copy, Debug, Default)]
struct FeedCursor {
    after_seq: u64,
    polled_at: Option<UnixMillis>,
}

impl Banks {
    pub fn new() -> Banks {
        Banks::default()
    }

    pub fn set(&mut self, mode: Mode, bank: Arc<dyn BankConnector>, notify_secret: &[u8]) {
        let link = Some(BankLink {
            connector: bank,
            notify_secret: Arc::from(notify_secret),
            feed: Arc::default(),
        });
        match mode {
            Mode::Test => self.test = link,
            Mode::Live => self.live = link,
        }
    }

    fn link(&self, mode: Mode) -> Option<&BankLink> {
        match mode {
            Mode::Test => self.test.as_ref(),
            Mode::Live => self.live.as_ref(),
        }
    }

    pub fn get(&self, mode: Mode) -> Option<&Arc<dyn BankConnector>> {
        self.link(mode).map(|link| &link.connector)
    }

    /// The secret the bank of `mode` signs its deposit notifications with.
    pub fn notify_secret(&self, mode: Mode) -> Option<&[u8]> {
        self.link(mode).map(|link| &*link.notify_secret)
    }

    /// A sandbox bank in this process for test mode, serving every bank that issues virtual accounts, whose
    /// notifications are signed with `notify_secret`. Its serials start at `now` (milliseconds) so a restarted
    /// process issues no number it issued before.
    pub fn in_process_sandbox(now: UnixMillis, notify_secret: &[u8]) -> (Banks, SandboxBank) {
        let bank = SandboxBank::new(Bank::virtual_account_issuers().collect())
            .with_serial_start(u64::try_from(now.as_millis()).unwrap_or(0));
        let mut banks = Banks::new();
        banks.set(Mode::Test, Arc::new(bank.clone()), notify_secret);
        banks.sandbox = Some(bank.clone());
        (banks, bank)
    }

    /// The in-process sandbox bank, if test mode uses it.
    pub fn sandbox(&self) -> Option<&SandboxBank> {
        self.sandbox.as_ref()
    }

    /// The secret the in-process sandbox bank signs its notifications with: derived from the API key pepper, so
    /// it is stable across restarts and never configured.
    pub fn sandbox_notify_secret(secrets: &crate::Secrets) -> Vec<u8> {
        crate::derive_key(&secrets.api_key_pepper, b"paygate sandbox bank notifications")
    }
}

/// Why a deposit notification was refused. The bank retries until it is acknowledged.
#[derive(Debug, thiserror::Error)]
pub enum NotificationError {
    #[error("no bank is configured for {0} mode")]
    NoBank(&'static str),
    #[error(transparent)]
    Unauthorized(#[from] paygate_connectors::bank_notify::NotifyRefusal),
    #[error("the notification is not valid JSON of the protocol: {0}")]
    Malformed(String),
    #[error(transparent)]
    BadField(#[from] paygate_connectors::bank_wire::BadField),
    #[error(transparent)]
    Deposit(#[from] DepositError),
}

/// What became of a reported deposit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DepositOutcome {
    /// It paid its account: the payment is DONE.
    Paid { payment_id: PaymentId },
    /// It paid nothing and is held for its depositor, to be returned.
    Held { payment_id: PaymentId },
    /// It was recorded before (a repeated or reordered notification): nothing changed.
    AlreadyRecorded,
}

/// Why a reported deposit could not be recorded. The bank keeps notifying until it is.
#[derive(Debug, thiserror::Error)]
pub enum DepositError {
    #[error("no virtual account has this number at this bank")]
    UnknownAccount,
    #[error("the deposit's currency is not the account's")]
    CurrencyMismatch,
    #[error("the deposit could not be recorded after several attempts; the bank will notify again")]
    Contended,
    #[error(transparent)]
    Internal(#[from] InternalError),
}

impl From<StoreError> for DepositError {
    fn from(error: StoreError) -> DepositError {
        DepositError::Internal(InternalError::Store(error))
    }
}

/// Attempts at recording one deposit when a concurrent change of its payment wins the race.
const DEPOSIT_ATTEMPTS_MAX: u32 = 3;

impl App {
    pub fn banks(&self) -> &Banks {
        &self.banks
    }

    /// A virtual account's `secret`: what its `DEPOSIT_CALLBACK` webhooks carry to prove them genuine. Derived,
    /// never stored.
    pub fn virtual_account_secret(&self, id: PaymentId) -> String {
        use hmac::Mac;
        let Ok(mut mac) = hmac::Hmac::<sha2::Sha256>::new_from_slice(&self.receipt_key) else {
            return String::new();
        };
        mac.update(format!("virtual-account-secret:{id}").as_bytes());
        format!("ps_{}", hex::encode(&mac.finalize().into_bytes()[..16]))
    }

    /// Issues a virtual account for a new payment (`POST /v1/virtual-accounts`): the payment is
    /// WAITING_FOR_DEPOSIT with its account, or nothing is recorded. Under an `Idempotency-Key` the answer is
    /// stored with the payment, in one commit.
    pub async fn issue_virtual_account(
        &self,
        caller: &Caller,
        command: VirtualAccountCommand,
        idempotency: Option<PaymentIdempotency>,
    ) -> PaymentAnswer {
        if caller.key.kind != KeyKind::Secret {
            return Err(PaymentError::Forbidden);
        }
        let claim = match self.start_creating_request(caller, idempotency).await? {
            Start::Run(claim) => claim,
            Start::Answer(answer) => return Ok(*answer),
        };
        let (merchant_id, mode) = (caller.merchant.id, caller.key.mode);
        let amounts = self.check_amounts(command.amounts)?;
        let notification_url = self.check_notification_url(command.notification_url).await?;
        let bank = self
            .banks
            .get(mode)
            .filter(|connector| connector.serves(command.bank))
            .cloned()
            .ok_or_else(|| {
                FieldError::new(
                    "bank",
                    FieldReason::InvalidBank,
                    format!(
                        "{} does not issue virtual accounts for paygate in {} mode",
                        command.bank.korean(),
                        mode.as_str()
                    ),
                )
            })?;
        // A used orderId is refused before the bank is asked for an account nobody would pay.
        if self
            .store()
            .payment_by_order(merchant_id, mode, &command.order_id)
            .await?
            .is_some()
        {
            return Err(PaymentError::DuplicateOrderId);
        }
        let customer_name = command.customer_name.clone().into_string();
        let new = self.new_payment(
            (merchant_id, mode),
            (command.order_id, command.order_name),
            amounts,
            Installment::LUMP_SUM,
            PaymentExtras {
                customer: Customer {
                    name: Some(command.customer_name),
                    email: command.customer_email,
                },
                notification_url,
                order: command.extras,
            },
        );
        let now = new.now;
        let due_at = command.validity.due_at(now).map_err(|_| {
            FieldError::new(
                "dueDate",
                FieldReason::ExceedMaxDueDate,
                format!(
                    "`dueDate` must be in the future and at most {} days ahead",
                    paygate_domain::bank::Validity::DAYS_MAX
                ),
            )
        })?;
        let request = IssueAccount {
            reference: new.id.to_string(),
            merchant_id: merchant_id.to_string(),
            bank_code: command.bank,
            amount: amounts.total(),
            holder_name: customer_name.clone(),
            expires_at: due_at,
        };
        let issued = issue_with_retry(bank.as_ref(), &request).await?;
        let payment = Payment::virtual_account(new, Flow::KeyIn, due_at)?;
        let account = VirtualAccount::issue(NewVirtualAccount {
            payment_id: payment.id,
            merchant_id,
            mode,
            bank: issued.bank_code,
            account_number: issued.account_number,
            customer_name,
            amount: amounts.total(),
            issued_at: now,
            due_at,
        });
        let view = PaymentView {
            payment: payment.clone(),
            transactions: Vec::new(),
            focus: None,
            cash_receipts: Vec::new(),
            virtual_account: Some(Box::new(account.clone())),
        };
        let answer = Ok(view.clone());
        let mut insert = PaymentInsert::new(payment.clone());
        insert.virtual_account = Some(account.clone());
        insert.receipt_request =
            command
                .cash_receipt
                .clone()
                .map(|asked| paygate_domain::cash_receipt::ReceiptRequest {
                    payment_id: payment.id,
                    receipt_type: asked.receipt_type,
                    identity: asked.identity,
                    requested_at: now,
                });
        insert.idempotency = claim.as_ref().map(|c| {
            c.record(
                Some(IdempotencyResource {
                    payment_id: payment.id,
                    focus: None,
                }),
                &answer,
                now,
            )
        });
        insert.events = vec![
            self.status_event(&view, None).await?,
            self.deposit_callback(&view, None)?,
        ];
        let lost = match self.store().insert_payment(&insert).await {
            Ok(InsertPaymentOutcome::Inserted) => return answer.map(Answer::Fresh),
            Ok(InsertPaymentOutcome::DuplicateOrderId) => PaymentError::DuplicateOrderId,
            Err(StoreError::IdempotencyConflict) => PaymentError::Idempotency(IdempotencyRefusal::InFlight),
            Err(other) => return Err(other.into()),
        };
        // Nobody will pay the account the bank just issued: close it (best effort; unclosed, it expires).
        if let Err(error) = bank
            .close_account(&merchant_id.to_string(), &account.account_number)
            .await
        {
            tracing::warn!(%error, payment = %payment.id, "closing an unused virtual account failed");
        }
        let Some(claim) = claim else {
            return Err(lost);
        };
        match self.restart_payment_request(caller, &claim).await? {
            Some(answer) => Ok(answer),
            None => Err(lost),
        }
    }

    /// A deposit notification as the bank of `mode` sent it (`BANK-PROTOCOL.md`): its signature checked against
    /// the body, then the deposit recorded (once).
    pub async fn bank_notification(
        &self,
        mode: Mode,
        timestamp: Option<&str>,
        signature: Option<&str>,
        body: &[u8],
    ) -> Result<DepositOutcome, NotificationError> {
        let secret = self
            .banks
            .notify_secret(mode)
            .ok_or(NotificationError::NoBank(mode.as_str()))?;
        let now_secs = self.clock().now().as_millis().div_euclid(1_000);
        paygate_connectors::bank_notify::verify(secret, timestamp, signature, body, now_secs)?;
        let wire: paygate_connectors::bank_wire::DepositNotificationWire =
            serde_json::from_slice(body).map_err(|e| NotificationError::Malformed(e.to_string()))?;
        let notified = wire.check()?;
        Ok(self.receive_deposit(mode, &notified).await?)
    }

    /// Records a deposit the bank reported (a notification, or its deposit feed) for an account of `mode`, once:
    /// it pays its account or is held for its depositor; a deposit recorded before changes nothing.
    pub async fn receive_deposit(
        &self,
        mode: Mode,
        notified: &NotifiedDeposit,
    ) -> Result<DepositOutcome, DepositError> {
        for _ in 0..DEPOSIT_ATTEMPTS_MAX {
            if self
                .store()
                .bank_deposit(mode, notified.bank, &notified.deposit_id)
                .await?
                .is_some()
            {
                return Ok(DepositOutcome::AlreadyRecorded);
            }
            let account = self
                .store()
                .virtual_account_by_number(mode, notified.bank, &notified.account_number)
                .await?
                .ok_or(DepositError::UnknownAccount)?;
            if account.amount.currency() != notified.amount.currency() {
                return Err(DepositError::CurrencyMismatch);
            }
            let payment = self.store().payment_by_id(account.payment_id).await?.ok_or_else(|| {
                InternalError::Invariant(format!("account of missing payment {}", account.payment_id))
            })?;
            let now = self.clock().now();
            let reported = ReportedDeposit {
                id: DepositId::new(now, crate::random_bytes()),
                bank: notified.bank,
                bank_deposit_id: notified.deposit_id.clone(),
                account_number: notified.account_number.clone(),
                amount: notified.amount,
                depositor_name: notified.depositor_name.clone(),
                deposited_at: notified.deposited_at,
                received_at: now,
            };
            let (deposit, paid) = BankDeposit::receive(reported, &account);
            let (mut update, outcome) = match paid {
                Some(paid) => self.deposit_paid(&payment, &deposit, paid, now)?,
                None => self.deposit_held(&payment, &deposit, now)?,
            };
            if matches!(outcome, DepositOutcome::Paid { .. }) {
                // The buyer's cash receipt, asked for with the account, is issued with the deposit.
                let request = self.store().cash_receipt_request(payment.id).await?;
                if let Some((receipt, event)) = self.receipt_with_payment(&update.payment, request, now).await? {
                    update.receipts.added.push(receipt);
                    update.receipts.events.push(event);
                }
            }
            match self.commit(&payment, update).await {
                Ok(()) => {
                    tracing::info!(
                        payment = %payment.id,
                        deposit = %deposit.id,
                        bank_deposit = %deposit.bank_deposit_id,
                        held = ?deposit.held_because,
                        "deposit recorded"
                    );
                    return Ok(outcome);
                }
                // The deposit was recorded meanwhile (the same notification twice at once), or the payment moved:
                // read again and decide again.
                Err(StoreError::Conflict(_)) => continue,
                Err(other) => return Err(other.into()),
            }
        }
        Err(DepositError::Contended)
    }

    /// The change a deposit that pays its account makes: DONE, with the deposit as the payment's approval
    /// transaction and its journal (the bank holds the money for paygate, which owes it to the merchant).
    fn deposit_paid(
        &self,
        payment: &Payment,
        deposit: &BankDeposit,
        account: VirtualAccount,
        now: UnixMillis,
    ) -> Result<(PaymentUpdate, DepositOutcome), DepositError> {
        let next = payment
            .deposit_received(account.bank.code(), &deposit.bank_deposit_id, deposit.deposited_at)
            .map_err(|e| InternalError::Invariant(format!("a deposit that pays its account: {e}")))?;
        let transaction = PaymentTransaction {
            key: self.new_transaction_key(now),
            payment_id: payment.id,
            merchant_id: payment.merchant_id,
            mode: payment.mode,
            kind: TransactionKind::Approval,
            status: TransactionStatus::Done,
            amount: deposit.amount,
            tax_free: payment.amounts.tax_free(),
            reason: None,
            created_at: now,
            completed_at: Some(deposit.deposited_at),
            acquirer_transaction_id: Some(deposit.bank_deposit_id.clone()),
            next_attempt_at: None,
            attempts: 1,
        };
        let journal = Journal::deposit_applied(payment.merchant_id, account.bank.code(), deposit.amount)
            .map_err(|e| InternalError::Invariant(e.to_string()))?;
        let mut update = PaymentUpdate::new(payment.version, next);
        update.journals.push(JournalEntry {
            id: JournalId::new(now, crate::random_bytes()),
            of: JournalOf::Transaction(transaction.key),
            journal,
            created_at: now,
        });
        update.insert_transactions.push(transaction);
        update.bank.account = Some(account);
        update.bank.new_deposit = Some(deposit.clone());
        Ok((update, DepositOutcome::Paid { payment_id: payment.id }))
    }

    /// The change a deposit that pays nothing makes: the deposit held for its depositor with its own journal; the
    /// payment is unchanged but for its version (the deposit is ordered with its other changes).
    fn deposit_held(
        &self,
        payment: &Payment,
        deposit: &BankDeposit,
        now: UnixMillis,
    ) -> Result<(PaymentUpdate, DepositOutcome), DepositError> {
        let journal = Journal::deposit_held(deposit.bank.code(), deposit.amount)
            .map_err(|e| InternalError::Invariant(e.to_string()))?;
        let mut update = PaymentUpdate::new(payment.version, payment.touched());
        update.journals.push(JournalEntry {
            id: JournalId::new(now, crate::random_bytes()),
            of: JournalOf::Deposit(deposit.id),
            journal,
            created_at: now,
        });
        update.bank.new_deposit = Some(deposit.clone());
        Ok((update, DepositOutcome::Held { payment_id: payment.id }))
    }

    /// Cancels a virtual account's payment. Before its deposit: whole (`cancelAmount` absent or the total), the
    /// account closed, CANCELED, nothing to refund. After it: a refund through the bank to the account the buyer
    /// names (`refundReceiveAccount`), whole or part of the balance.
    pub(crate) async fn cancel_virtual_account(
        &self,
        payment: Payment,
        command: &crate::payments::command::CancelCommand,
        amount: Option<paygate_domain::money::Money>,
        claim: Option<&crate::payments::PaymentClaim>,
    ) -> Result<PaymentView, PaymentError> {
        use paygate_domain::payment::PaymentStatus;
        match payment.status {
            PaymentStatus::WaitingForDeposit => {}
            PaymentStatus::Done | PaymentStatus::PartialCanceled => {
                let to = command.refund_account.clone().ok_or_else(|| {
                    FieldError::new(
                        "refundReceiveAccount",
                        FieldReason::Missing,
                        "a deposited virtual account is refunded to an account the buyer names: send `refundReceiveAccount`",
                    )
                })?;
                let account = self.store().virtual_account(payment.id).await?.ok_or_else(|| {
                    InternalError::Invariant(format!("payment {} has no virtual account", payment.id))
                })?;
                return self
                    .refund_through_bank(payment, to, Some(account), command, amount, claim)
                    .await;
            }
            status => return Err(PaymentError::NotCancelable { status }),
        }
        if amount.is_some_and(|amount| amount != payment.total()) {
            return Err(PaymentError::PartialCancelWhileWaiting);
        }
        let account = self
            .store()
            .virtual_account(payment.id)
            .await?
            .ok_or_else(|| InternalError::Invariant(format!("payment {} has no virtual account", payment.id)))?;
        let closed = account
            .close()
            .map_err(|_| PaymentError::NotCancelable { status: payment.status })?;
        let next = payment.cancelled_unpaid()?;
        let now = self.clock().now();
        let view = PaymentView {
            payment: next.clone(),
            transactions: Vec::new(),
            focus: None,
            cash_receipts: Vec::new(),
            virtual_account: Some(Box::new(closed.clone())),
        };
        let result = Ok(view.clone());
        let mut update = PaymentUpdate::new(payment.version, next);
        update.bank.account = Some(closed);
        update.idempotency = crate::payments::answer_write(claim, &result, now);
        match self.commit(&payment, update).await {
            Ok(()) => {}
            // A deposit, an expiry or another cancel won: the caller reads the payment again.
            Err(StoreError::Conflict(_)) => return Err(PaymentError::Concurrent),
            Err(other) => return Err(other.into()),
        }
        if let Some(bank) = self.banks.get(payment.mode) {
            // Unclosed, a later deposit is held and returned: nothing is applied to a cancelled payment.
            if let Err(error) = bank
                .close_account(&payment.merchant_id.to_string(), &account.account_number)
                .await
            {
                tracing::warn!(%error, payment = %payment.id, "closing a cancelled virtual account failed");
            }
        }
        result
    }

    /// Refunds part or all of a paid bank payment's balance: a virtual account's to the account the buyer named,
    /// a transfer's to the account it was debited from. The cancel is reserved from the balance and its refund
    /// recorded (`REQUESTED`; a virtual account's `refundStatus: PENDING`) before the bank is asked, under the
    /// refund's ID as reference; the answer settles both. An answer that never comes leaves the cancel
    /// `IN_PROGRESS` (`202`) for the refund worker, which asks again under the same reference.
    pub(crate) async fn refund_through_bank(
        &self,
        payment: Payment,
        to: paygate_domain::virtual_account::RefundAccount,
        account: Option<VirtualAccount>,
        command: &crate::payments::command::CancelCommand,
        amount: Option<paygate_domain::money::Money>,
        claim: Option<&crate::payments::PaymentClaim>,
    ) -> Result<PaymentView, PaymentError> {
        use paygate_domain::payment::PaymentRuleError;
        use paygate_domain::virtual_account::{BankRefund, NewBankRefund};
        let bank = self
            .banks
            .get(payment.mode)
            .cloned()
            .ok_or_else(|| InternalError::Invariant("no bank for a virtual account's mode".into()))?;
        if amount.is_none() && payment.balance.is_zero() {
            return Err(PaymentError::NotCancelable { status: payment.status });
        }
        let amount = amount.unwrap_or(payment.balance);
        if !command.tax_free.is_zero() {
            let cancelled = self.tax_free_cancelled(&payment).await?;
            payment.check_cancel_tax_free(amount, command.tax_free, cancelled)?;
        }
        let reserved = match payment.cancel_reserved(amount, command.expected_balance) {
            Err(PaymentRuleError::BalanceMismatch { actual, .. }) if command.balance_as_refundable => {
                return Err(PaymentError::RefundableMismatch { actual });
            }
            other => other?,
        };
        let pending = match account {
            Some(account) => Some(account.refund_requested().map_err(|_| PaymentError::Concurrent)?),
            None => None,
        };
        let now = self.clock().now();
        let key = self.new_transaction_key(now);
        let transaction = PaymentTransaction {
            key,
            payment_id: payment.id,
            merchant_id: payment.merchant_id,
            mode: payment.mode,
            kind: TransactionKind::Cancel,
            status: TransactionStatus::Pending,
            amount,
            tax_free: command.tax_free,
            reason: Some(command.reason.as_str().to_owned()),
            created_at: now,
            completed_at: None,
            acquirer_transaction_id: None,
            // The refund, not the card cancels' retry queue, is what the worker asks again.
            next_attempt_at: None,
            attempts: 1,
        };
        let refund = BankRefund::request(NewBankRefund {
            id: paygate_domain::id::BankRefundId::new(now, crate::random_bytes()),
            transaction_key: key,
            payment_id: payment.id,
            merchant_id: payment.merchant_id,
            mode: payment.mode,
            to: to.clone(),
            amount,
            now,
            retry_at: now.saturating_add(paygate_domain::time::DurationMs::from_millis(
                self.payments.first_inquiry_delay_ms,
            )),
        });
        let mut update = PaymentUpdate::new(payment.version, reserved.clone());
        update.insert_transactions.push(transaction.clone());
        update.bank.account = pending.clone();
        update.bank.new_refund = Some(refund.clone());
        update.idempotency = claim.map(|c| {
            c.claim(
                IdempotencyResource {
                    payment_id: payment.id,
                    focus: Some(key),
                },
                now,
            )
        });
        match self.commit(&payment, update).await {
            Ok(()) => {}
            Err(StoreError::Conflict(_)) => return Err(PaymentError::Concurrent),
            Err(StoreError::IdempotencyConflict) => {
                return Err(PaymentError::Idempotency(IdempotencyRefusal::InFlight))
            }
            Err(other) => return Err(other.into()),
        }
        let answer = bank.refund(&refund_request(&refund)).await;
        self.settle_refund(reserved, transaction, pending, refund, answer, claim)
            .await
    }

    /// Writes the bank's answer to a refund: paid (the cancel DONE, its `bank_refund` journal, `refundStatus`
    /// `COMPLETED`), refused (the cancel FAILED, the amount back in the balance, `refundStatus` `FAILED` or
    /// `PARTIAL_FAILED`), or not known (nothing written: the worker asks again).
    async fn settle_refund(
        &self,
        payment: Payment,
        transaction: PaymentTransaction,
        account: Option<VirtualAccount>,
        refund: paygate_domain::virtual_account::BankRefund,
        answer: Result<Result<paygate_connectors::bank::RefundAnswer, BankRefusal>, ConnectorError>,
        claim: Option<&crate::payments::PaymentClaim>,
    ) -> Result<PaymentView, PaymentError> {
        use paygate_connectors::bank::RefundAnswer;
        let now = self.clock().now();
        let partial = transaction.amount != payment.total();
        let invariant = |e: &dyn std::fmt::Display| InternalError::Invariant(e.to_string());
        let mut transactions = self.store().payment_transactions(payment.id).await?;
        // The bank that holds the payment's money: a virtual account's issuer, or the bank a transfer came from.
        let clearing_bank = account.as_ref().map_or(refund.to.bank, |a| a.bank);
        let answered = |paid: bool| match &account {
            Some(account) => account
                .refund_answered(paid, partial)
                .map(Some)
                .map_err(|e| invariant(&e)),
            None => Ok(None),
        };
        let (next, settled, account, refund, result) = match answer {
            Ok(Ok(RefundAnswer::Done { refund_id, .. })) => {
                let mut done = transaction.clone();
                done.status = TransactionStatus::Done;
                done.completed_at = Some(now);
                for t in transactions.iter_mut().filter(|t| t.key == done.key) {
                    *t = done.clone();
                }
                let cancelled = transactions
                    .iter()
                    .filter(|t| t.kind == TransactionKind::Cancel && t.status == TransactionStatus::Done)
                    .try_fold(
                        paygate_domain::money::Money::zero(payment.total().currency()),
                        |sum, t| sum.checked_add(t.amount),
                    )
                    .map_err(|e| invariant(&e))?;
                let remaining = payment.total().checked_sub(cancelled).map_err(|e| invariant(&e))?;
                let next = payment.cancel_completed(remaining)?;
                (
                    next,
                    done,
                    answered(true)?,
                    refund.paid(refund_id, now).map_err(|e| invariant(&e))?,
                    None,
                )
            }
            Ok(Ok(RefundAnswer::Failed { refusal })) | Ok(Err(refusal)) => {
                let mut failed = transaction.clone();
                failed.status = TransactionStatus::Failed;
                failed.completed_at = Some(now);
                for t in transactions.iter_mut().filter(|t| t.key == failed.key) {
                    *t = failed.clone();
                }
                (
                    payment.cancel_released(transaction.amount)?,
                    failed,
                    answered(false)?,
                    refund.refused(refusal.code(), now).map_err(|e| invariant(&e))?,
                    Some(PaymentError::RefundRefused { code: refusal.code() }),
                )
            }
            Err(error) => {
                tracing::warn!(%error, refund = %refund.id, "refund: no answer from the bank; asked again later");
                return Ok(PaymentView {
                    payment,
                    transactions,
                    focus: Some(transaction.key),
                    cash_receipts: Vec::new(),
                    virtual_account: account.map(Box::new),
                });
            }
        };
        let view = PaymentView {
            payment: next.clone(),
            transactions,
            focus: Some(settled.key),
            cash_receipts: Vec::new(),
            virtual_account: account.clone().map(Box::new),
        };
        let result = match result {
            None => Ok(view),
            Some(error) => Err(error),
        };
        let mut update = PaymentUpdate::new(payment.version, next);
        if settled.status == TransactionStatus::Done {
            let journal = Journal::bank_refund(payment.merchant_id, clearing_bank.code(), settled.amount)
                .map_err(|e| invariant(&e))?;
            update.journals.push(JournalEntry {
                id: JournalId::new(now, crate::random_bytes()),
                of: JournalOf::Transaction(settled.key),
                journal,
                created_at: now,
            });
        }
        if settled.status == TransactionStatus::Done {
            // The payment's cash receipt is cancelled by what was refunded.
            update.receipts = self
                .receipt_cancel_with_refund(payment.id, settled.key, settled.amount, now)
                .await?;
        }
        update.update_transaction = Some(settled);
        update.bank.account = account;
        update.bank.refund = Some(refund);
        update.idempotency = crate::payments::answer_write(claim, &result, now);
        match self.commit(&payment, update).await {
            Ok(()) => result,
            // The worker (or a retry) settled it first; the caller reads the payment.
            Err(StoreError::Conflict(_)) => Err(PaymentError::Concurrent),
            Err(other) => Err(other.into()),
        }
    }

    /// Asks the bank again about refunds whose answer is not in (the same reference: it answers its first
    /// answer), at most `limit`, and settles them. Returns how many were asked.
    pub(crate) async fn retry_bank_refunds(&self, now: UnixMillis, limit: u32) -> Result<u32, PaymentError> {
        let mut asked = 0;
        for refund in self.store().due_bank_refunds(now, limit).await? {
            let Some(bank) = self.banks.get(refund.mode).cloned() else {
                continue;
            };
            let Some(payment) = self.store().payment_by_id(refund.payment_id).await? else {
                continue;
            };
            // A transfer's refund has no virtual account.
            let account = self.store().virtual_account(payment.id).await?;
            let transactions = self.store().payment_transactions(payment.id).await?;
            let Some(transaction) = transactions
                .into_iter()
                .find(|t| t.key == refund.transaction_key && t.status == TransactionStatus::Pending)
            else {
                continue;
            };
            let retry_at = now.saturating_add(paygate_domain::time::DurationMs::from_millis(
                self.inquiry_backoff_ms(refund.attempts),
            ));
            let Ok(resent) = refund.resent(retry_at) else { continue };
            let mut update = PaymentUpdate::new(payment.version, payment.touched());
            update.bank.refund = Some(resent.clone());
            match self.store().update_payment(&update).await {
                Ok(()) => {}
                Err(StoreError::Conflict(_)) => continue,
                Err(other) => return Err(other.into()),
            }
            asked += 1;
            let answer = bank.refund(&refund_request(&resent)).await;
            match self
                .settle_refund(update.payment, transaction, account, resent, answer, None)
                .await
            {
                Ok(_) | Err(PaymentError::RefundRefused { .. } | PaymentError::Concurrent) => {}
                Err(other) => return Err(other),
            }
        }
        Ok(asked)
    }

    /// Expires open accounts whose due date is at or before `due_before` with their payments (EXPIRED), at most
    /// `limit`, and closes them at the bank. Returns how many expired.
    pub(crate) async fn expire_virtual_accounts(
        &self,
        due_before: UnixMillis,
        now: UnixMillis,
        limit: u32,
    ) -> Result<u32, PaymentError> {
        let mut expired = 0;
        for account in self.store().due_account_expiries(due_before, limit).await? {
            let Ok(closed) = account.expire(now) else { continue };
            let Some(payment) = self.store().payment_by_id(account.payment_id).await? else {
                continue;
            };
            let Ok(next) = payment.expired() else { continue };
            let mut update = PaymentUpdate::new(payment.version, next);
            update.bank.account = Some(closed);
            match self.commit(&payment, update).await {
                Ok(()) => expired += 1,
                Err(StoreError::Conflict(_)) => continue,
                Err(other) => return Err(other.into()),
            }
            if let Some(bank) = self.banks.get(account.mode) {
                // Unclosed, the bank still takes deposits: each is held and returned, never applied.
                if let Err(error) = bank
                    .close_account(&account.merchant_id.to_string(), &account.account_number)
                    .await
                {
                    tracing::warn!(%error, payment = %payment.id, "closing an expired virtual account failed");
                }
            }
        }
        Ok(expired)
    }
}

impl App {
    /// Reads each bank's deposit feed past where this process last read it, at most every
    /// `payments.bank_feed_interval_ms`, and records every deposit in it (once: those notified are found recorded).
    /// This is what finds a deposit whose notification was lost. Returns the deposits recorded by this pass.
    pub(crate) async fn poll_bank_feeds(&self, now: UnixMillis) -> Result<u32, PaymentError> {
        let mut recorded = 0;
        for mode in [Mode::Test, Mode::Live] {
            let Some(link) = self.banks.link(mode).cloned() else {
                continue;
            };
            let after_seq = {
                let mut cursor = link.feed.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                let interval = paygate_domain::time::DurationMs::from_millis(self.payments.bank_feed_interval_ms);
                if cursor.polled_at.is_some_and(|at| now < at.saturating_add(interval)) {
                    continue;
                }
                cursor.polled_at = Some(now);
                cursor.after_seq
            };
            let page = usize::try_from(self.payments.bank_feed_page_max.max(1)).unwrap_or(500);
            let deposits = match link.connector.deposits_after(after_seq, page).await {
                Ok(deposits) => deposits,
                Err(error) => {
                    tracing::warn!(%error, mode = mode.as_str(), "reading the bank's deposit feed failed");
                    continue;
                }
            };
            let mut reached = after_seq;
            for deposit in &deposits {
                let notified = NotifiedDeposit {
                    notification_id: format!("feed_{}", deposit.deposit_id),
                    deposit_id: deposit.deposit_id.clone(),
                    seq: deposit.seq,
                    account_number: deposit.account_number.clone(),
                    bank: deposit.bank_code,
                    amount: deposit.amount,
                    depositor_name: deposit.depositor_name.clone(),
                    deposited_at: deposit.deposited_at,
                };
                match self.receive_deposit(mode, &notified).await {
                    Ok(DepositOutcome::AlreadyRecorded) => {}
                    // Its notification has not come (lost, or late): worth an operator's eye if it keeps happening.
                    Ok(_) => {
                        tracing::warn!(bank_deposit = %deposit.deposit_id, "deposit found in the bank's feed");
                        recorded += 1;
                    }
                    // An account no payment names (its issue was never recorded): nothing to pay; its deposit is
                    // the bank's to return when the account expires there.
                    Err(DepositError::UnknownAccount | DepositError::CurrencyMismatch) => {
                        tracing::warn!(bank_deposit = %deposit.deposit_id, "a deposit in the bank's feed names no payment");
                    }
                    // Read again from here next time.
                    Err(error) => {
                        tracing::warn!(%error, bank_deposit = %deposit.deposit_id, "recording a deposit from the feed failed");
                        break;
                    }
                }
                reached = deposit.seq;
            }
            let mut cursor = link.feed.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            cursor.after_seq = cursor.after_seq.max(reached);
            // A full page: read on at the next pass.
            if deposits.len() >= page {
                cursor.polled_at = None;
            }
        }
        Ok(recorded)
    }

    /// Sends held deposits back to their depositors through their bank, at most `limit`: each return is recorded
    /// (with its reference and the time to ask again) before the bank is called, so a crash or a lost answer is
    /// asked again under the same reference and pays nothing twice. A confirmed return posts its
    /// `deposit_returned` journal; a refused one stays owed to its depositor (`FAILED`, for an operator).
    /// Returns how many were handled and how many failed.
    pub(crate) async fn return_held_deposits(&self, now: UnixMillis, limit: u32) -> Result<(u32, u32), PaymentError> {
        use paygate_connectors::bank::RefundAnswer;
        let (mut handled, mut failed) = (0, 0);
        for deposit in self.store().due_deposit_returns(now, limit).await? {
            let Some(bank) = self.banks.get(deposit.mode).cloned() else {
                continue;
            };
            let Some(payment) = self.store().payment_by_id(deposit.payment_id).await? else {
                continue;
            };
            let refund = deposit
                .return_refund
                .unwrap_or_else(|| paygate_domain::id::BankRefundId::new(now, crate::random_bytes()));
            let retry_at = now.saturating_add(paygate_domain::time::DurationMs::from_millis(
                self.inquiry_backoff_ms(deposit.attempts),
            ));
            let Ok(sent) = deposit.return_sent(refund, retry_at) else {
                continue;
            };
            let mut update = PaymentUpdate::new(payment.version, payment.touched());
            update.bank.deposit = Some(sent.clone());
            match self.store().update_payment(&update).await {
                Ok(()) => {}
                Err(StoreError::Conflict(_)) => continue,
                Err(other) => return Err(other.into()),
            }
            handled += 1;
            let reference = sent.return_refund.unwrap_or(refund).to_string();
            let answer = bank
                .return_deposit(&deposit.merchant_id.to_string(), &reference, &deposit.bank_deposit_id)
                .await;
            let paid = match answer {
                Ok(Ok(RefundAnswer::Done { .. })) => true,
                Ok(Ok(RefundAnswer::Failed { refusal })) | Ok(Err(refusal)) => {
                    tracing::warn!(deposit = %deposit.id, code = refusal.code(), "the bank refused to return a deposit");
                    failed += 1;
                    false
                }
                Err(error) => {
                    // Unknown: asked again at `retry_at`, under the same reference.
                    tracing::warn!(%error, deposit = %deposit.id, "returning a deposit: no answer from the bank");
                    continue;
                }
            };
            let touched = update.payment;
            let Ok(answered) = sent.return_answered(paid) else {
                continue;
            };
            let mut update = PaymentUpdate::new(touched.version, touched.touched());
            if paid {
                let journal = Journal::deposit_returned(deposit.bank.code(), deposit.amount)
                    .map_err(|e| InternalError::Invariant(e.to_string()))?;
                update.journals.push(JournalEntry {
                    id: JournalId::new(now, crate::random_bytes()),
                    of: JournalOf::Deposit(deposit.id),
                    journal,
                    created_at: now,
                });
            }
            update.bank.deposit = Some(answered);
            match self.store().update_payment(&update).await {
                Ok(()) => {}
                // The payment moved meanwhile: the return is asked again at `retry_at`, and answered the same.
                Err(StoreError::Conflict(_)) => continue,
                Err(other) => return Err(other.into()),
            }
        }
        Ok((handled, failed))
    }
}

/// The bank's request for a refund: its ID is the reference, so a repeat is the same request.
fn refund_request(refund: &paygate_domain::virtual_account::BankRefund) -> paygate_connectors::bank::Refund {
    paygate_connectors::bank::Refund {
        reference: refund.id.to_string(),
        merchant_id: refund.merchant_id.to_string(),
        bank_code: refund.to.bank,
        account_number: refund.to.account_number.clone(),
        holder_name: refund.to.holder_name.clone(),
        amount: refund.amount,
    }
}

/// Asks the bank for the account, once more if the first answer was lost: the reference makes the repeat the same
/// request.
async fn issue_with_retry(
    bank: &dyn BankConnector,
    request: &IssueAccount,
) -> Result<paygate_connectors::bank::IssuedAccount, PaymentError> {
    let mut last = None;
    for _ in 0..2 {
        match bank.issue_account(request).await {
            Ok(Ok(issued)) => return Ok(issued),
            Ok(Err(refusal)) => return Err(refused(refusal)),
            Err(error) => last = Some(error),
        }
    }
    Err(PaymentError::BankUnavailable {
        message: last.map_or_else(String::new, |e: ConnectorError| e.to_string()),
    })
}

fn refused(refusal: BankRefusal) -> PaymentError {
    match refusal {
        BankRefusal::NotSupportedBank => FieldError::new(
            "bank",
            FieldReason::InvalidBank,
            "the bank does not issue virtual accounts for paygate",
        )
        .into(),
        BankRefusal::InvalidAmount => FieldError::invalid("amount", "the bank refused the amount").into(),
        other => PaymentError::BankUnavailable {
            message: format!("the bank refused: {}", other.code()),
        },
    }
}
