//! Card payments: key-in, checkout (create → buyer authenticates → merchant confirms), cancels, lookups, and the
//! workers that resolve unknown outcomes, expire payments and retry cancels.
//!
//! The order of operations is what keeps money safe:
//! 1. the payment is written (IN_PROGRESS, approval REQUESTED) *before* the acquirer is called, with an inquiry
//!    scheduled, so a crash mid-call leaves a record the inquiry worker resolves;
//! 2. the acquirer is called with paygate's unique reference (the payment key), so a retry or an inquiry can never
//!    create a second approval;
//! 3. the result is written conditionally on the version read in step 1; an approval that cannot be written
//!    (the payment moved on, or expired meanwhile) is reversed (망취소), never left dangling;
//! 4. a timeout or lost answer is recorded as unknown and only an inquiry decides it.

pub(crate) mod approve;
mod cancel;
mod checkout;
pub mod command;
pub mod hosted;
pub(crate) mod keyin;
mod routing;
pub mod wire;
pub mod workers;

use std::collections::HashMap;
use std::sync::Arc;

use paygate_connectors::{Acquirer, AcquirerId};
use paygate_domain::api_key::{KeyKind, Mode};
use paygate_domain::id::{PaymentId, TransactionKey};
use paygate_domain::money::Money;
use paygate_domain::order::OrderId;
use paygate_domain::payment::{Payment, PaymentRuleError, PaymentTransaction};
use paygate_domain::time::UnixMillis;
use paygate_store::{ListedTransaction, StoreError, TransactionQuery};

use crate::auth::Caller;
use crate::App;

pub(crate) use checkout::origin_of as checkout_origin;
pub use command::{
    AuthenticateCommand, CancelCommand, CardSource, ConfirmCommand, CreateCommand, FieldError, FieldReason,
    KeyInCommand, VirtualAccountCommand,
};
pub use paygate_connectors::DeclineCode;
pub use routing::default_test_contracts;

/// Bounds and timings of the payment flows. Defaults are listed in `docs/configuration.md`.
#[derive(Clone, Debug, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct PaymentConfig {
    /// A READY checkout payment waits this long for the buyer.
    pub checkout_ready_secs: u32,
    /// An authenticated checkout payment waits this long for the merchant's confirm.
    pub confirm_window_secs: u32,
    /// After an approval request is written, when the inquiry worker looks at it if nothing else has (crash
    /// recovery). Must exceed the acquirer request timeout.
    pub first_inquiry_delay_ms: u32,
    /// Backoff between inquiries about an unknown outcome: base, doubled per attempt, capped.
    pub inquiry_backoff_base_ms: u32,
    pub inquiry_backoff_max_ms: u32,
    /// Attempts at an approval the acquirer certainly did not apply (system error, unreachable).
    pub approve_attempts_max: u32,
    /// Largest amount accepted for one payment, in minor units.
    pub amount_max_minor: i64,
    /// Payments handled per worker pass, per queue.
    pub worker_batch_max: u32,
    /// Inquiries (and, separately, payments' cancel retries) in flight at once in one worker pass.
    pub worker_concurrency_max: u32,
    /// Base URL of the hosted checkout pages; empty means `http://<server.listen>`.
    pub checkout_base_url: String,
    /// Transactions returned per page at most.
    pub transactions_page_max: u32,
    /// How often the workers look for due work (expiries, inquiries, cancel retries).
    pub worker_interval_ms: u32,
    /// How long after its due date an unpaid virtual account still waits before it expires with its payment: a
    /// deposit made before the due date whose notification arrives within it still pays (later, it is returned).
    pub virtual_account_expiry_grace_ms: u32,
    /// How often each bank's deposit feed is read for deposits whose notification never came.
    pub bank_feed_interval_ms: u32,
    /// Deposits read from a feed per request.
    pub bank_feed_page_max: u32,
}

impl Default for PaymentConfig {
    fn default() -> Self {
        PaymentConfig {
            checkout_ready_secs: 30 * 60,
            confirm_window_secs: 10 * 60,
            first_inquiry_delay_ms: 20_000,
            inquiry_backoff_base_ms: 1_000,
            inquiry_backoff_max_ms: 60_000,
            approve_attempts_max: 3,
            amount_max_minor: 10_000_000_000,
            worker_batch_max: 100,
            worker_concurrency_max: 16,
            checkout_base_url: String::new(),
            transactions_page_max: 100,
            worker_interval_ms: 500,
            virtual_account_expiry_grace_ms: 600_000,
            bank_feed_interval_ms: 5_000,
            bank_feed_page_max: 500,
        }
    }
}

/// The acquirers paygate can reach, per mode: test keys only ever reach sandbox acquirers.
#[derive(Clone, Default)]
pub struct Acquirers {
    test: HashMap<String, Arc<dyn Acquirer>>,
    live: HashMap<String, Arc<dyn Acquirer>>,
}

impl Acquirers {
    pub fn new() -> Acquirers {
        Acquirers::default()
    }

    pub fn add(&mut self, mode: Mode, acquirer: Arc<dyn Acquirer>) {
        let id = acquirer.id().as_str().to_owned();
        match mode {
            Mode::Test => self.test.insert(id, acquirer),
            Mode::Live => self.live.insert(id, acquirer),
        };
    }

    /// The three in-process sandbox acquirers A, B and C for test mode.
    pub fn in_process_sandbox() -> (Acquirers, Vec<Arc<paygate_connectors::sandbox::SandboxAcquirer>>) {
        let mut acquirers = Acquirers::new();
        let mut sandboxes = Vec::new();
        for name in ["A", "B", "C"] {
            let Some(id) = AcquirerId::parse(name) else { continue };
            let sandbox = Arc::new(paygate_connectors::sandbox::SandboxAcquirer::new(id));
            acquirers.add(Mode::Test, sandbox.clone());
            sandboxes.push(sandbox);
        }
        (acquirers, sandboxes)
    }

    pub fn get(&self, mode: Mode, id: &str) -> Option<Arc<dyn Acquirer>> {
        match mode {
            Mode::Test => self.test.get(id).cloned(),
            Mode::Live => self.live.get(id).cloned(),
        }
    }
}

/// Why a payment use case (key-in, create, authenticate, confirm, cancel, lookups) failed. One enum serves them
/// all because they share almost every reason (a refused field, the payment's rules, the acquirer's answer, the
/// idempotency key) and the machinery that stores their answers; the HTTP layer maps each variant to its stable
/// code in one place (`paygate_api::error`).
#[derive(Debug, thiserror::Error)]
pub enum PaymentError {
    /// A request field was refused: by the edge's parse, or by a check that needs configuration or the merchant's
    /// settings (the amount ceiling, the SSRF guard, redirect origins, what a client key may set).
    #[error(transparent)]
    Field(#[from] FieldError),
    #[error("the orderId was already used")]
    DuplicateOrderId,
    #[error("no such payment")]
    NotFound,
    #[error(transparent)]
    Rule(#[from] PaymentRuleError),
    /// A billing key's charge: the key is not this merchant's in this mode (or does not exist).
    #[error("no such billing key")]
    BillingKeyNotFound,
    /// A billing key's charge: the key was deleted, or belongs to another customer.
    #[error(transparent)]
    Billing(#[from] paygate_domain::billing::BillingRuleError),
    #[error("another request changed the payment at the same time; retry")]
    Concurrent,
    #[error("the card was declined: {message}")]
    Declined {
        payment: Box<Payment>,
        code: paygate_connectors::DeclineCode,
        message: String,
        acquirer_code: Option<String>,
    },
    #[error("the acquirer could not process the request; nothing was charged")]
    AcquirerUnavailable { payment: Option<Box<Payment>> },
    #[error("no acquirer serves this card for the merchant")]
    NoRoute,
    /// The bank could not be asked (or answered with a system error); nothing was recorded.
    #[error("the bank could not process the request: {message}")]
    BankUnavailable { message: String },
    /// The bank refused a refund to the account the buyer named (its code: `UNKNOWN_ACCOUNT`,
    /// `HOLDER_MISMATCH`, …); nothing was refunded and the amount is back in the balance.
    #[error("the bank refused the refund: {code}")]
    RefundRefused { code: &'static str },
    /// A virtual account not paid yet is cancelled whole.
    #[error("a virtual account waiting for its deposit can only be cancelled whole")]
    PartialCancelWhileWaiting,
    /// The bank refused a transfer's debit (its code: `INSUFFICIENT_FUNDS`, `INVALID_AUTHORIZATION`, …); the
    /// payment is ABORTED and nothing was debited.
    #[error("the bank refused the transfer: {code}")]
    TransferRefused { payment: Box<Payment>, code: &'static str },
    /// Toss's balance guard (`refundableAmount`) differed from the balance; nothing was cancelled.
    #[error("the balance is {actual}, not the refundableAmount sent")]
    RefundableMismatch { actual: Money },
    #[error("the payment has nothing left to cancel")]
    NotCancelable {
        status: paygate_domain::payment::PaymentStatus,
    },
    #[error("the acquirer refused the cancel: {message}")]
    CancelRefused { message: String, acquirer_code: String },
    #[error("the encrypted card data could not be used: {0}")]
    EncData(#[from] crate::encdata::EncDataError),
    #[error("client keys can only start payments")]
    Forbidden,
    #[error(transparent)]
    Idempotency(#[from] crate::idempotency::IdempotencyRefusal),
    #[error(transparent)]
    Internal(#[from] InternalError),
}

impl PaymentError {
    /// A copy to render an answer from (the edge renders the same error live and for the stored answer). An
    /// internal cause keeps only its description, which is logged and never sent.
    pub fn clone_for_answer(&self) -> PaymentError {
        match self {
            PaymentError::Field(field) => PaymentError::Field(field.clone()),
            PaymentError::DuplicateOrderId => PaymentError::DuplicateOrderId,
            PaymentError::NotFound => PaymentError::NotFound,
            PaymentError::Rule(rule) => PaymentError::Rule(rule.clone()),
            PaymentError::BillingKeyNotFound => PaymentError::BillingKeyNotFound,
            PaymentError::Billing(rule) => PaymentError::Billing(*rule),
            PaymentError::Concurrent => PaymentError::Concurrent,
            PaymentError::Declined {
                payment,
                code,
                message,
                acquirer_code,
            } => PaymentError::Declined {
                payment: payment.clone(),
                code: *code,
                message: message.clone(),
                acquirer_code: acquirer_code.clone(),
            },
            PaymentError::AcquirerUnavailable { payment } => PaymentError::AcquirerUnavailable {
                payment: payment.clone(),
            },
            PaymentError::NoRoute => PaymentError::NoRoute,
            PaymentError::BankUnavailable { message } => PaymentError::BankUnavailable {
                message: message.clone(),
            },
            PaymentError::RefundRefused { code } => PaymentError::RefundRefused { code },
            PaymentError::PartialCancelWhileWaiting => PaymentError::PartialCancelWhileWaiting,
            PaymentError::TransferRefused { payment, code } => PaymentError::TransferRefused {
                payment: payment.clone(),
                code,
            },
            PaymentError::NotCancelable { status } => PaymentError::NotCancelable { status: *status },
            PaymentError::RefundableMismatch { actual } => PaymentError::RefundableMismatch { actual: *actual },
            PaymentError::CancelRefused { message, acquirer_code } => PaymentError::CancelRefused {
                message: message.clone(),
                acquirer_code: acquirer_code.clone(),
            },
            PaymentError::EncData(error) => PaymentError::EncData(error.clone()),
            PaymentError::Forbidden => PaymentError::Forbidden,
            PaymentError::Idempotency(refusal) => PaymentError::Idempotency(*refusal),
            PaymentError::Internal(internal) => PaymentError::Internal(InternalError::Invariant(internal.to_string())),
        }
    }

    /// Whether a retry of the same request could get another answer: such answers are never stored under an
    /// `Idempotency-Key`.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            PaymentError::Concurrent
                | PaymentError::Idempotency(_)
                | PaymentError::Internal(_)
                | PaymentError::BankUnavailable { .. }
        )
    }
}

/// A payment request's `Idempotency-Key`, and how its answer is rendered.
pub type PaymentIdempotency = crate::idempotency::Idempotent<PaymentView, PaymentError>;
pub(crate) type PaymentClaim = crate::idempotency::Claim<PaymentView, PaymentError>;
/// What a payment use case run under a key answers.
pub type PaymentAnswer = Result<crate::idempotency::Answer<PaymentView>, PaymentError>;

/// Whether a result is the request's final answer (stored under its key) rather than a pending or transient one.
pub(crate) fn is_final(result: &Result<PaymentView, PaymentError>) -> bool {
    match result {
        Ok(view) => !view.outcome_pending(),
        Err(error) => !error.is_transient(),
    }
}

/// The idempotency part of an outcome's transaction: the answer when it is final, else the end of the claim.
pub(crate) fn answer_write(
    claim: Option<&PaymentClaim>,
    result: &Result<PaymentView, PaymentError>,
    now: UnixMillis,
) -> Option<paygate_store::IdempotencyWrite> {
    let claim = claim?;
    Some(if is_final(result) {
        claim.complete(result, now)
    } else {
        claim.detach(now)
    })
}

#[derive(Debug, thiserror::Error)]
pub enum InternalError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Vault(#[from] crate::vault::VaultError),
    #[error("{0}")]
    Invariant(String),
}

impl From<StoreError> for PaymentError {
    fn from(error: StoreError) -> PaymentError {
        PaymentError::Internal(InternalError::Store(error))
    }
}

impl From<crate::vault::VaultError> for PaymentError {
    fn from(error: crate::vault::VaultError) -> PaymentError {
        PaymentError::Internal(InternalError::Vault(error))
    }
}

/// The filters of `GET /v1/payments`, checked at the edge.
#[derive(Clone, Debug)]
pub struct PaymentFilter {
    pub from: UnixMillis,
    pub until: UnixMillis,
    pub method: Option<paygate_domain::payment::PaymentMethod>,
    pub status: Option<paygate_domain::payment::PaymentStatus>,
    pub min_amount: Option<i64>,
    pub max_amount: Option<i64>,
    pub after: Option<PaymentId>,
    pub limit: u32,
}

/// A payment with the transactions (approval, cancels) a response shows.
#[derive(Clone, Debug)]
pub struct PaymentView {
    pub payment: Payment,
    pub transactions: Vec<PaymentTransaction>,
    /// The transaction this response is about (a cancel request), if any.
    pub focus: Option<TransactionKey>,
    /// A virtual-account payment's account.
    pub virtual_account: Option<Box<paygate_domain::virtual_account::VirtualAccount>>,
    /// A bank payment's cash receipts (its issue and cancels), oldest first.
    pub cash_receipts: Vec<paygate_domain::cash_receipt::CashReceipt>,
}

impl PaymentView {
    /// The acquirer's answer to the approval is not known yet; an inquiry will settle it.
    pub fn approval_unknown(&self) -> bool {
        use paygate_domain::payment::{ApprovalState, PaymentStatus};
        self.payment.status == PaymentStatus::InProgress
            && matches!(
                self.payment.approval_state,
                ApprovalState::Unknown | ApprovalState::Requested
            )
    }

    /// The outcome this response is about is not known yet: the approval, or the cancel in focus.
    pub fn outcome_pending(&self) -> bool {
        use paygate_domain::payment::TransactionStatus;
        match self.focus {
            Some(key) => self
                .transactions
                .iter()
                .any(|t| t.key == key && t.status == TransactionStatus::Pending),
            None => self.approval_unknown(),
        }
    }
}

/// What a payment request under a key does first: run (with the key to claim), or answer at once.
pub(crate) enum Start {
    Run(Option<PaymentClaim>),
    Answer(Box<crate::idempotency::Answer<PaymentView>>),
}

impl App {
    /// Looks the request's key up (step 1 of `crate::idempotency`).
    pub(crate) async fn start_payment_request(
        &self,
        caller: &Caller,
        idempotency: Option<PaymentIdempotency>,
    ) -> Result<Start, PaymentError> {
        let begin = self.idempotency_begin(caller, idempotency).await?;
        self.started(caller, begin).await
    }

    /// Step 1 for a request that creates a payment: no lookup, the key is claimed with the insert (see
    /// `App::idempotency_claim_first`).
    pub(crate) async fn start_creating_request(
        &self,
        caller: &Caller,
        idempotency: Option<PaymentIdempotency>,
    ) -> Result<Start, PaymentError> {
        let begin = self.idempotency_claim_first(caller, idempotency);
        self.started(caller, begin).await
    }

    /// After a write lost the request's key (or its orderId) to a concurrent request: what to answer instead.
    /// `None` if the key is free after all (then the original error stands).
    pub(crate) async fn restart_payment_request(
        &self,
        caller: &Caller,
        claim: &PaymentClaim,
    ) -> Result<Option<crate::idempotency::Answer<PaymentView>>, PaymentError> {
        let Some(begin) = self.idempotency_after_conflict(claim).await? else {
            return Ok(None);
        };
        match self.started(caller, begin).await? {
            Start::Answer(answer) => Ok(Some(*answer)),
            Start::Run(_) => Err(crate::idempotency::IdempotencyRefusal::InFlight.into()),
        }
    }

    async fn started(
        &self,
        caller: &Caller,
        begin: crate::idempotency::Begin<PaymentView, PaymentError>,
    ) -> Result<Start, PaymentError> {
        use crate::idempotency::{Answer, Begin};
        match begin {
            Begin::Run(claim) => Ok(Start::Run(claim)),
            Begin::Replay(stored) => Ok(Start::Answer(Box::new(Answer::Replay(stored)))),
            Begin::Refused(refusal) => Err(refusal.into()),
            Begin::Recover(resource) => {
                let mut view = self.get_payment(caller, resource.payment_id).await?;
                view.focus = resource.focus;
                Ok(Start::Answer(Box::new(Answer::Fresh(view))))
            }
        }
    }

    pub fn payment_config(&self) -> &PaymentConfig {
        &self.payments
    }

    pub(crate) fn acquirer(&self, payment: &Payment) -> Result<Arc<dyn Acquirer>, PaymentError> {
        let route = payment.route.as_ref().ok_or(PaymentError::NoRoute)?;
        self.acquirers
            .get(payment.mode, &route.acquirer)
            .ok_or(PaymentError::NoRoute)
    }

    pub(crate) fn new_transaction_key(&self, now: UnixMillis) -> TransactionKey {
        TransactionKey::new(now, crate::random_bytes())
    }

    pub(crate) async fn view(&self, payment: Payment) -> Result<PaymentView, PaymentError> {
        let transactions = self.store().payment_transactions(payment.id).await?;
        let virtual_account = match payment.method {
            paygate_domain::payment::PaymentMethod::VirtualAccount => {
                self.store().virtual_account(payment.id).await?.map(Box::new)
            }
            _ => None,
        };
        let cash_receipts = match payment.method {
            paygate_domain::payment::PaymentMethod::Card => Vec::new(),
            _ => self.store().cash_receipts_of_payment(payment.id).await?,
        };
        Ok(PaymentView {
            virtual_account,
            payment,
            transactions,
            focus: None,
            cash_receipts,
        })
    }

    pub async fn get_payment(&self, caller: &Caller, id: PaymentId) -> Result<PaymentView, PaymentError> {
        let payment = self
            .store()
            .payment(caller.merchant.id, caller.key.mode, id)
            .await?
            .ok_or(PaymentError::NotFound)?;
        self.view(payment).await
    }

    pub async fn get_payment_by_order(&self, caller: &Caller, order_id: &str) -> Result<PaymentView, PaymentError> {
        let order_id = OrderId::parse(order_id).map_err(|_| PaymentError::NotFound)?;
        let payment = self
            .store()
            .payment_by_order(caller.merchant.id, caller.key.mode, &order_id)
            .await?
            .ok_or(PaymentError::NotFound)?;
        self.view(payment).await
    }

    pub async fn list_transactions(
        &self,
        caller: &Caller,
        from: UnixMillis,
        until: UnixMillis,
        after: Option<TransactionKey>,
        limit: u32,
    ) -> Result<Vec<ListedTransaction>, PaymentError> {
        let query = TransactionQuery {
            merchant_id: caller.merchant.id,
            mode: caller.key.mode,
            from,
            until,
            after,
            limit: limit.clamp(1, self.payments.transactions_page_max),
        };
        Ok(self.store().list_transactions(&query).await?)
    }

    /// `GET /v1/payments` (paygate's): the caller's payments requested in `[from, until)`, oldest first, filtered
    /// before the page is cut, after `query.after`, at most `payments.transactions_page_max`.
    pub async fn list_payments(
        &self,
        caller: &Caller,
        mut query: PaymentFilter,
    ) -> Result<Vec<PaymentView>, PaymentError> {
        if caller.key.kind != KeyKind::Secret {
            return Err(PaymentError::Forbidden);
        }
        query.limit = query.limit.clamp(1, self.payments.transactions_page_max);
        let payments = self
            .store()
            .list_payments(&paygate_store::PaymentQuery {
                merchant_id: caller.merchant.id,
                mode: caller.key.mode,
                from: query.from,
                until: query.until,
                method: query.method,
                status: query.status,
                min_amount: query.min_amount,
                max_amount: query.max_amount,
                after: query.after,
                limit: query.limit,
            })
            .await?;
        let mut views = Vec::with_capacity(payments.len());
        for payment in payments {
            views.push(self.view(payment).await?);
        }
        Ok(views)
    }

    /// Refuses an amount above the configured ceiling (the edge already refused amounts below 1).
    pub(crate) fn check_amount(&self, amount: Money, param: &'static str) -> Result<Money, PaymentError> {
        if amount.amount_minor() <= 0 || amount.amount_minor() > self.payments.amount_max_minor {
            return Err(FieldError::invalid(
                param,
                format!("`{param}` must be between 1 and {}", self.payments.amount_max_minor),
            )
            .into());
        }
        Ok(amount)
    }

    /// Exponential backoff for inquiry attempt `attempt` (0-based), capped.
    pub(crate) fn inquiry_backoff_ms(&self, attempt: u32) -> u32 {
        let base = u64::from(self.payments.inquiry_backoff_base_ms.max(1));
        let factor = 1u64 << attempt.min(20);
        u32::try_from(base.saturating_mul(factor))
            .unwrap_or(u32::MAX)
            .min(self.payments.inquiry_backoff_max_ms)
    }
}
