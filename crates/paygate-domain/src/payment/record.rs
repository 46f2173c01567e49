//! The payment record and the pure rules that move it.
//!
//! Each rule takes the current record and returns the next one (or refuses); the store persists the result
//! conditionally on the record's `version`, so two racing requests cannot both win. Nothing here does I/O.

use crate::api_key::Mode;
use crate::billing::BillingCharge;
use crate::card::{CardSummary, CardType, Installment, OwnerType};
use crate::id::{MerchantId, PaymentId, TransactionKey};
use crate::money::Money;
use crate::order::{OrderId, OrderName};
use crate::payment::status::{cancel_event, transition, CancelError, PaymentEvent, PaymentStatus, TransitionError};
use crate::time::UnixMillis;
use crate::vat::VatSplit;

/// How the payment was started.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flow {
    /// 비인증 key-in: the merchant sent the card; paygate approved at once.
    KeyIn,
    /// 인증결제: created by the merchant, authenticated by the buyer, confirmed by the merchant.
    Checkout,
}

impl Flow {
    pub const ALL: [Flow; 2] = [Flow::KeyIn, Flow::Checkout];

    pub fn as_str(self) -> &'static str {
        match self {
            Flow::KeyIn => "KEY_IN",
            Flow::Checkout => "CHECKOUT",
        }
    }

    pub fn parse(text: &str) -> Option<Flow> {
        match text {
            "KEY_IN" => Some(Flow::KeyIn),
            "CHECKOUT" => Some(Flow::Checkout),
            _ => None,
        }
    }
}

/// What pays the payment (Toss's `method`, which paygate spells in Korean on the wire).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PaymentMethod {
    /// 카드: approved by a card acquirer.
    Card,
    /// 가상계좌: paid by the buyer's deposit into an account a bank issued for this payment.
    VirtualAccount,
    /// 계좌이체: debited from the buyer's bank account after the buyer authorized it at the bank.
    Transfer,
}

impl PaymentMethod {
    pub const ALL: [PaymentMethod; 3] = [
        PaymentMethod::Card,
        PaymentMethod::VirtualAccount,
        PaymentMethod::Transfer,
    ];

    /// The stored spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            PaymentMethod::Card => "CARD",
            PaymentMethod::VirtualAccount => "VIRTUAL_ACCOUNT",
            PaymentMethod::Transfer => "TRANSFER",
        }
    }

    pub fn parse(text: &str) -> Option<PaymentMethod> {
        PaymentMethod::ALL.into_iter().find(|m| m.as_str() == text)
    }

    /// Toss's spelling (`method`).
    pub fn korean(self) -> &'static str {
        match self {
            PaymentMethod::Card => "카드",
            PaymentMethod::VirtualAccount => "가상계좌",
            PaymentMethod::Transfer => "계좌이체",
        }
    }

    /// Toss's spelling, or the stored one, to a method (`카드`, `CARD`; Toss's SDK also takes `VIRTUAL_ACCOUNT`).
    pub fn from_request(text: &str) -> Option<PaymentMethod> {
        PaymentMethod::ALL
            .into_iter()
            .find(|m| m.korean() == text || m.as_str() == text)
    }
}

/// Where the acquirer call stands. `Unknown` means the request may have been applied: only an inquiry decides.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ApprovalState {
    NotRequested,
    Requested,
    Unknown,
    Completed,
}

impl ApprovalState {
    pub fn as_str(self) -> &'static str {
        match self {
            ApprovalState::NotRequested => "NOT_REQUESTED",
            ApprovalState::Requested => "REQUESTED",
            ApprovalState::Unknown => "UNKNOWN",
            ApprovalState::Completed => "COMPLETED",
        }
    }

    pub fn parse(text: &str) -> Option<ApprovalState> {
        match text {
            "NOT_REQUESTED" => Some(ApprovalState::NotRequested),
            "REQUESTED" => Some(ApprovalState::Requested),
            "UNKNOWN" => Some(ApprovalState::Unknown),
            "COMPLETED" => Some(ApprovalState::Completed),
            _ => None,
        }
    }
}

/// Which acquirer serves the payment, and under which of its merchant numbers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Route {
    pub acquirer: String,
    pub acquirer_merchant_id: String,
}

/// Why a payment failed: paygate's stable code, and the acquirer's own code when it declined.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    pub code: String,
    pub message: String,
    pub acquirer_code: Option<String>,
}

/// What the acquirer said when it approved. For a virtual account's deposit: `issuer_code` is the bank's code,
/// `acquirer_transaction_id` the bank's deposit ID, `approved_at` the deposit's time, and the card fields are
/// empty or unknown.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApprovalDetails {
    pub approval_number: String,
    /// The issuer's (발급사) card-company code, in Toss Payments' numbering.
    pub issuer_code: String,
    /// The acquirer's (매입사) card-company code, in the same numbering.
    pub acquirer_code: Option<String>,
    pub card_type: CardType,
    pub owner_type: OwnerType,
    pub acquirer_transaction_id: String,
    pub approved_at: UnixMillis,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Payment {
    pub id: PaymentId,
    pub merchant_id: MerchantId,
    pub mode: Mode,
    pub order_id: OrderId,
    pub order_name: OrderName,
    pub flow: Flow,
    pub method: PaymentMethod,
    pub status: PaymentStatus,
    pub approval_state: ApprovalState,
    pub amounts: VatSplit,
    /// What can still be cancelled: total minus completed and pending cancels.
    pub balance: Money,
    pub card: Option<CardSummary>,
    pub installment: Installment,
    pub route: Option<Route>,
    pub approval: Option<ApprovalDetails>,
    pub customer_name: Option<String>,
    pub customer_email: Option<String>,
    /// Overrides the merchant's notification URL (노티) for this payment.
    pub notification_url: Option<String>,
    /// What the merchant sent that paygate keeps and returns but does not act on.
    pub extras: OrderExtras,
    /// The billing key a merchant-initiated charge used (Toss's `type: BILLING`); none for other payments.
    pub billing: Option<BillingCharge>,
    pub failure: Option<Failure>,
    pub requested_at: UnixMillis,
    /// The deadline of the current waiting state (buyer authentication, merchant confirm); none for key-in.
    pub expires_at: Option<UnixMillis>,
    /// When the recovery worker next asks the acquirer about an unknown outcome.
    pub next_inquiry_at: Option<UnixMillis>,
    pub inquiry_attempts: u32,
    /// Incremented by every change; every update is conditional on it.
    pub version: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PaymentRuleError {
    #[error(transparent)]
    Transition(#[from] TransitionError),
    #[error(transparent)]
    Cancel(#[from] CancelError),
    #[error("the payment's approval is already being processed")]
    ApprovalInProgress,
    #[error("the payment expired")]
    Expired,
    #[error("the amount does not match the payment")]
    AmountMismatch,
    #[error("the orderId does not match the payment")]
    OrderMismatch,
    #[error("the balance is {actual}, not the expected {expected}")]
    BalanceMismatch { expected: Money, actual: Money },
    #[error(
        "the cancel's tax-free amount exceeds its amount or what is left of the payment's tax-free amount ({left})"
    )]
    CancelTaxFreeExceeded { left: Money },
}

/// What a merchant may send with a payment that paygate stores and returns as sent, without acting on it.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct OrderExtras {
    /// 과세 제외 금액 (e.g. a cup deposit), part of the total, in its currency's minor units. Informational: the
    /// VAT split does not use it (Toss Payments computes `vat` from `totalAmount - taxFreeAmount` alone).
    pub tax_exemption_minor: i64,
    pub metadata: Option<Metadata>,
    pub customer_mobile_phone: Option<String>,
    /// The merchant asked for an interest-free installment plan (무이자 할부, `useFreeInstallmentPlan`) and pays
    /// the interest. Meaningful only with installments.
    pub free_installment: bool,
}

/// The merchant's own key-value pairs for a payment, as a JSON object of strings (validated by the edge: at most
/// [`Metadata::PAIRS_MAX`] pairs, keys up to [`Metadata::KEY_CHARS_MAX`] characters without `[` or `]`, values up
/// to [`Metadata::VALUE_CHARS_MAX`] characters). The core keeps the text and never parses it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Metadata(String);

impl Metadata {
    pub const PAIRS_MAX: usize = 5;
    pub const KEY_CHARS_MAX: usize = 40;
    pub const VALUE_CHARS_MAX: usize = 500;

    /// Wraps the JSON text of an object the caller has validated (or that was stored after validation).
    pub fn from_validated_json(json: String) -> Metadata {
        Metadata(json)
    }

    pub fn as_json(&self) -> &str {
        &self.0
    }
}

/// Everything needed to start a payment.
#[derive(Clone, Debug)]
pub struct NewPayment {
    pub id: PaymentId,
    pub merchant_id: MerchantId,
    pub mode: Mode,
    pub order_id: OrderId,
    pub order_name: OrderName,
    pub amounts: VatSplit,
    pub installment: Installment,
    pub customer_name: Option<String>,
    pub customer_email: Option<String>,
    pub notification_url: Option<String>,
    pub extras: OrderExtras,
    pub now: UnixMillis,
}

impl Payment {
    /// A key-in payment, recorded before the acquirer is called (write-ahead), so a crash after the call leaves a
    /// record the recovery worker resolves by inquiry.
    pub fn key_in(new: NewPayment, card: CardSummary, route: Route, inquire_after: UnixMillis) -> Payment {
        let mut payment = Payment::base(new, Flow::KeyIn, PaymentStatus::InProgress);
        payment.card = Some(card);
        payment.route = Some(route);
        payment.approval_state = ApprovalState::Requested;
        payment.next_inquiry_at = Some(inquire_after);
        payment
    }

    /// A merchant-initiated charge of a billing key: approved at once like a key-in, with the key's stored card.
    pub fn billing(
        new: NewPayment,
        card: CardSummary,
        route: Route,
        inquire_after: UnixMillis,
        charge: BillingCharge,
    ) -> Payment {
        let mut payment = Payment::key_in(new, card, route, inquire_after);
        payment.billing = Some(charge);
        payment
    }

    /// A checkout payment waiting for the buyer until `expires_at`.
    pub fn checkout(new: NewPayment, expires_at: UnixMillis) -> Payment {
        let mut payment = Payment::base(new, Flow::Checkout, PaymentStatus::Ready);
        payment.expires_at = Some(expires_at);
        payment
    }

    /// A new checkout payment for the method the merchant asked for (`None`: the buyer picks; shown as a card
    /// until then).
    pub fn asking_for(mut self, method: Option<PaymentMethod>) -> Payment {
        if self.status == PaymentStatus::Ready && self.version == 0 {
            self.method = method.unwrap_or(PaymentMethod::Card);
        }
        self
    }

    /// A payment by virtual account, recorded once the bank issued the account: WAITING_FOR_DEPOSIT until the
    /// deposit, the due date (`expires_at`) or a cancel. `flow` says whether the merchant's server asked for it
    /// (`KeyIn`) or the buyer chose it on paygate's page (`Checkout`).
    pub fn virtual_account(new: NewPayment, flow: Flow, due_at: UnixMillis) -> Result<Payment, PaymentRuleError> {
        let mut payment = Payment::base(new, flow, PaymentStatus::InProgress);
        payment.method = PaymentMethod::VirtualAccount;
        payment.status = transition(payment.status, PaymentEvent::VirtualAccountIssued)?;
        // As Toss shows it, the whole amount is cancellable while the deposit is awaited (the cancel closes the
        // account; nothing was paid).
        payment.balance = payment.total();
        payment.expires_at = Some(due_at);
        Ok(payment)
    }

    /// A virtual account's payment cancelled before its deposit: CANCELED, nothing paid and nothing to refund.
    pub fn cancelled_unpaid(&self) -> Result<Payment, PaymentRuleError> {
        if self.status != PaymentStatus::WaitingForDeposit {
            return Err(TransitionError {
                from: self.status,
                event: PaymentEvent::FullyCanceled,
            }
            .into());
        }
        let mut next = self.next();
        next.status = transition(self.status, PaymentEvent::FullyCanceled)?;
        next.balance = Money::zero(self.total().currency());
        next.expires_at = None;
        Ok(next)
    }

    /// The deposit that pays a virtual account arrived: DONE at `deposited_at`, with the whole amount cancellable
    /// (by a refund to an account the buyer names).
    pub fn deposit_received(
        &self,
        bank_code: &str,
        deposit_id: &str,
        deposited_at: UnixMillis,
    ) -> Result<Payment, PaymentRuleError> {
        let mut next = self.next();
        next.status = transition(self.status, PaymentEvent::DepositReceived)?;
        next.approval_state = ApprovalState::Completed;
        next.balance = self.total();
        next.approval = Some(ApprovalDetails {
            approval_number: String::new(),
            issuer_code: bank_code.to_owned(),
            acquirer_code: None,
            card_type: CardType::Unknown,
            owner_type: OwnerType::Unknown,
            acquirer_transaction_id: deposit_id.to_owned(),
            approved_at: deposited_at,
        });
        next.expires_at = None;
        next.next_inquiry_at = None;
        Ok(next)
    }

    /// A change that leaves the payment as it is but must be ordered with its other changes (a deposit that paid
    /// nothing was recorded against it): only the version moves.
    pub fn touched(&self) -> Payment {
        self.next()
    }

    fn base(new: NewPayment, flow: Flow, status: PaymentStatus) -> Payment {
        Payment {
            id: new.id,
            merchant_id: new.merchant_id,
            mode: new.mode,
            order_id: new.order_id,
            order_name: new.order_name,
            flow,
            method: PaymentMethod::Card,
            status,
            approval_state: ApprovalState::NotRequested,
            balance: Money::zero(new.amounts.total().currency()),
            amounts: new.amounts,
            card: None,
            installment: new.installment,
            route: None,
            approval: None,
            customer_name: new.customer_name,
            customer_email: new.customer_email,
            notification_url: new.notification_url,
            extras: new.extras,
            billing: None,
            failure: None,
            requested_at: new.now,
            expires_at: None,
            next_inquiry_at: None,
            inquiry_attempts: 0,
            version: 0,
        }
    }

    pub fn total(&self) -> Money {
        self.amounts.total()
    }

    fn next(&self) -> Payment {
        let mut next = self.clone();
        next.version += 1;
        next
    }

    /// The buyer authenticated a card on a paygate page: the merchant now has until `confirm_by` to confirm.
    pub fn authenticated(
        &self,
        card: CardSummary,
        installment: Installment,
        route: Route,
        now: UnixMillis,
        confirm_by: UnixMillis,
    ) -> Result<Payment, PaymentRuleError> {
        self.not_expired(now)?;
        let mut next = self.next();
        next.status = transition(self.status, PaymentEvent::BuyerAuthenticated)?;
        next.card = Some(card);
        next.installment = installment;
        next.route = Some(route);
        next.expires_at = Some(confirm_by);
        Ok(next)
    }

    /// The buyer chose a bank method on paygate's page (a virtual account's bank, or a transfer the buyer
    /// authorized at the bank): the merchant now has until `confirm_by` to confirm, which issues the account or
    /// debits the transfer. The card and route of an earlier card attempt do not apply.
    pub fn bank_method_chosen(
        &self,
        method: PaymentMethod,
        now: UnixMillis,
        confirm_by: UnixMillis,
    ) -> Result<Payment, PaymentRuleError> {
        self.not_expired(now)?;
        let mut next = self.next();
        next.status = transition(self.status, PaymentEvent::BuyerAuthenticated)?;
        next.method = method;
        next.card = None;
        next.route = None;
        next.installment = Installment::LUMP_SUM;
        next.expires_at = Some(confirm_by);
        Ok(next)
    }

    /// The merchant confirmed a virtual account the buyer chose on paygate's page, and the bank issued it:
    /// WAITING_FOR_DEPOSIT until `due_at`, with the whole amount cancellable (as [`Payment::virtual_account`]).
    pub fn account_confirmed(
        &self,
        order_id: &OrderId,
        amount: Money,
        now: UnixMillis,
        due_at: UnixMillis,
    ) -> Result<Payment, PaymentRuleError> {
        self.confirmable(order_id, amount, now)?;
        let mut next = self.next();
        next.status = transition(self.status, PaymentEvent::VirtualAccountIssued)?;
        next.balance = self.total();
        next.expires_at = Some(due_at);
        Ok(next)
    }

    /// Whether a confirm with this orderId and amount may proceed now (the payment's own checks, before any I/O).
    pub fn confirmable(&self, order_id: &OrderId, amount: Money, now: UnixMillis) -> Result<(), PaymentRuleError> {
        if &self.order_id != order_id {
            return Err(PaymentRuleError::OrderMismatch);
        }
        if self.total() != amount {
            return Err(PaymentRuleError::AmountMismatch);
        }
        if self.status != PaymentStatus::InProgress {
            return Err(TransitionError {
                from: self.status,
                event: PaymentEvent::Approved,
            }
            .into());
        }
        self.not_expired(now)
    }

    /// The merchant confirms: amounts must match, the payment must be authenticated, not expired and not already
    /// being approved. Returns the record to persist before calling the acquirer.
    pub fn confirm_requested(
        &self,
        order_id: &OrderId,
        amount: Money,
        now: UnixMillis,
        inquire_after: UnixMillis,
    ) -> Result<Payment, PaymentRuleError> {
        if &self.order_id != order_id {
            return Err(PaymentRuleError::OrderMismatch);
        }
        if self.total() != amount {
            return Err(PaymentRuleError::AmountMismatch);
        }
        // Only an authenticated payment can be approved; READY or final statuses refuse via the status machine.
        transition(self.status, PaymentEvent::Approved)?;
        if self.approval_state != ApprovalState::NotRequested {
            return Err(PaymentRuleError::ApprovalInProgress);
        }
        self.not_expired(now)?;
        let mut next = self.next();
        next.approval_state = ApprovalState::Requested;
        next.next_inquiry_at = Some(inquire_after);
        Ok(next)
    }

    fn not_expired(&self, now: UnixMillis) -> Result<(), PaymentRuleError> {
        match self.expires_at {
            Some(deadline) if now >= deadline => Err(PaymentRuleError::Expired),
            _ => Ok(()),
        }
    }

    /// The acquirer approved: DONE, with the whole amount cancellable.
    pub fn approved(&self, details: ApprovalDetails) -> Result<Payment, PaymentRuleError> {
        let mut next = self.next();
        next.status = transition(self.status, PaymentEvent::Approved)?;
        next.approval_state = ApprovalState::Completed;
        next.balance = self.total();
        next.approval = Some(details);
        next.expires_at = None;
        next.next_inquiry_at = None;
        next.failure = None;
        Ok(next)
    }

    /// The acquirer declined, or certainly did not apply the request: ABORTED.
    pub fn failed(&self, failure: Failure) -> Result<Payment, PaymentRuleError> {
        let mut next = self.next();
        next.status = transition(self.status, PaymentEvent::Failed)?;
        next.approval_state = ApprovalState::Completed;
        next.failure = Some(failure);
        next.expires_at = None;
        next.next_inquiry_at = None;
        Ok(next)
    }

    /// The acquirer call's outcome is unknown: keep IN_PROGRESS, flag it, and schedule an inquiry.
    pub fn outcome_unknown(&self, inquire_at: UnixMillis) -> Payment {
        let mut next = self.next();
        next.approval_state = ApprovalState::Unknown;
        next.next_inquiry_at = Some(inquire_at);
        next
    }

    /// An inquiry did not settle it; ask again later.
    pub fn inquiry_postponed(&self, inquire_at: UnixMillis) -> Payment {
        let mut next = self.next();
        next.approval_state = ApprovalState::Unknown;
        next.inquiry_attempts = self.inquiry_attempts.saturating_add(1);
        next.next_inquiry_at = Some(inquire_at);
        next
    }

    /// Whether an approval found by inquiry can still complete this payment. A checkout payment whose confirm
    /// deadline passed cannot: paygate reverses the approval and expires the payment instead.
    pub fn can_complete_at(&self, now: UnixMillis) -> bool {
        self.not_expired(now).is_ok()
    }

    /// The deadline passed without completion (READY not authenticated, or authenticated but not confirmed,
    /// or an approval found too late and reversed).
    pub fn expired(&self) -> Result<Payment, PaymentRuleError> {
        let mut next = self.next();
        next.status = transition(self.status, PaymentEvent::Expired)?;
        next.approval_state = match self.approval_state {
            ApprovalState::NotRequested => ApprovalState::NotRequested,
            _ => ApprovalState::Completed,
        };
        next.next_inquiry_at = None;
        Ok(next)
    }

    /// Reserves `amount` of the balance for a cancel about to be sent to the acquirer. The status changes only
    /// when the acquirer confirms ([`Payment::cancel_completed`]); the reservation keeps concurrent cancels from
    /// exceeding the balance meanwhile.
    pub fn cancel_reserved(&self, amount: Money, expected_balance: Option<Money>) -> Result<Payment, PaymentRuleError> {
        if let Some(expected) = expected_balance {
            if expected != self.balance {
                return Err(PaymentRuleError::BalanceMismatch {
                    expected,
                    actual: self.balance,
                });
            }
        }
        if !self.status.accepts_cancel() {
            // Route through the status machine for a uniform error.
            transition(self.status, PaymentEvent::PartiallyCanceled)?;
        }
        let (_, balance) = cancel_event(self.balance, amount)?;
        let mut next = self.next();
        next.balance = balance;
        Ok(next)
    }

    /// Whether a cancel may declare `tax_free` of its `amount` as tax-free, when earlier cancels (pending or done)
    /// already declared `tax_free_cancelled`: at most the amount, and at most what is left of the payment's
    /// tax-free amount.
    pub fn check_cancel_tax_free(
        &self,
        amount: Money,
        tax_free: Money,
        tax_free_cancelled: Money,
    ) -> Result<(), PaymentRuleError> {
        let left = self
            .amounts
            .tax_free()
            .checked_sub(tax_free_cancelled)
            .map_err(CancelError::from)?;
        let over = |limit: &Money| tax_free.checked_cmp(limit).map(|o| o == std::cmp::Ordering::Greater);
        if over(&amount).map_err(CancelError::from)? || over(&left).map_err(CancelError::from)? {
            return Err(PaymentRuleError::CancelTaxFreeExceeded { left });
        }
        Ok(())
    }

    /// The acquirer confirmed a reserved cancel. `settled_remaining` is total minus all completed cancels
    /// (pending ones excluded): zero means fully cancelled.
    pub fn cancel_completed(&self, settled_remaining: Money) -> Result<Payment, PaymentRuleError> {
        let event = if settled_remaining.is_zero() {
            PaymentEvent::FullyCanceled
        } else {
            PaymentEvent::PartiallyCanceled
        };
        let mut next = self.next();
        next.status = transition(self.status, event)?;
        Ok(next)
    }

    /// The acquirer refused a reserved cancel: give the amount back to the balance.
    pub fn cancel_released(&self, amount: Money) -> Result<Payment, PaymentRuleError> {
        let mut next = self.next();
        next.balance = self.balance.checked_add(amount).map_err(CancelError::from)?;
        Ok(next)
    }
}

/// A money movement of a payment: its approval, or one cancel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TransactionKind {
    Approval,
    Cancel,
}

impl TransactionKind {
    pub const ALL: [TransactionKind; 2] = [TransactionKind::Approval, TransactionKind::Cancel];

    pub fn as_str(self) -> &'static str {
        match self {
            TransactionKind::Approval => "APPROVAL",
            TransactionKind::Cancel => "CANCEL",
        }
    }

    pub fn parse(text: &str) -> Option<TransactionKind> {
        match text {
            "APPROVAL" => Some(TransactionKind::Approval),
            "CANCEL" => Some(TransactionKind::Cancel),
            _ => None,
        }
    }
}

/// `Pending` is sent or about to be sent to the acquirer, with an unknown answer until it is resolved.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TransactionStatus {
    Pending,
    Done,
    Failed,
}

impl TransactionStatus {
    pub const ALL: [TransactionStatus; 3] = [
        TransactionStatus::Pending,
        TransactionStatus::Done,
        TransactionStatus::Failed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            TransactionStatus::Pending => "PENDING",
            TransactionStatus::Done => "DONE",
            TransactionStatus::Failed => "FAILED",
        }
    }

    pub fn parse(text: &str) -> Option<TransactionStatus> {
        match text {
            "PENDING" => Some(TransactionStatus::Pending),
            "DONE" => Some(TransactionStatus::Done),
            "FAILED" => Some(TransactionStatus::Failed),
            _ => None,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PaymentTransaction {
    pub key: TransactionKey,
    pub payment_id: PaymentId,
    pub merchant_id: MerchantId,
    pub mode: Mode,
    pub kind: TransactionKind,
    pub status: TransactionStatus,
    pub amount: Money,
    /// The tax-free part of `amount`: the payment's `taxFreeAmount` for its approval, a cancel's own for a cancel.
    pub tax_free: Money,
    pub reason: Option<String>,
    pub created_at: UnixMillis,
    pub completed_at: Option<UnixMillis>,
    pub acquirer_transaction_id: Option<String>,
    /// For a pending cancel with an unknown outcome: when the worker retries it.
    pub next_attempt_at: Option<UnixMillis>,
    pub attempts: u32,
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn new_payment(total: i64) -> NewPayment {
        NewPayment {
            id: PaymentId::new(UnixMillis::new(1), [1; 10]),
            merchant_id: MerchantId::new(UnixMillis::new(1), [2; 10]),
            mode: Mode::Test,
            order_id: OrderId::parse("order-0001").unwrap(),
            order_name: OrderName::parse("T-shirt").unwrap(),
            amounts: VatSplit::compute(Money::krw(total), Money::krw(0)).unwrap(),
            installment: Installment::LUMP_SUM,
            customer_name: None,
            customer_email: None,
            notification_url: None,
            extras: OrderExtras::default(),
            now: UnixMillis::new(1_000),
        }
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
            acquirer: "A".into(),
            acquirer_merchant_id: "A-1".into(),
        }
    }

    fn details() -> ApprovalDetails {
        ApprovalDetails {
            approval_number: "12345678".into(),
            issuer_code: "11".into(),
            acquirer_code: Some("11".into()),
            card_type: CardType::Credit,
            owner_type: OwnerType::Personal,
            acquirer_transaction_id: "A-1".into(),
            approved_at: UnixMillis::new(2_000),
        }
    }

    #[test]
    fn key_in_approval_then_cancels() {
        let payment = Payment::key_in(new_payment(10_000), card(), route(), UnixMillis::new(31_000));
        assert_eq!(
            (payment.status, payment.approval_state),
            (PaymentStatus::InProgress, ApprovalState::Requested)
        );
        let done = payment.approved(details()).unwrap();
        assert_eq!(
            (done.status, done.balance, done.version),
            (PaymentStatus::Done, Money::krw(10_000), 1)
        );

        let reserved = done.cancel_reserved(Money::krw(3_000), None).unwrap();
        assert_eq!(
            (reserved.status, reserved.balance),
            (PaymentStatus::Done, Money::krw(7_000))
        );
        let partial = reserved.cancel_completed(Money::krw(7_000)).unwrap();
        assert_eq!(partial.status, PaymentStatus::PartialCanceled);
        assert!(matches!(
            partial.cancel_reserved(Money::krw(7_001), None),
            Err(PaymentRuleError::Cancel(CancelError::ExceedsBalance { .. }))
        ));
        assert!(matches!(
            partial.cancel_reserved(Money::krw(1), Some(Money::krw(6_999))),
            Err(PaymentRuleError::BalanceMismatch { .. })
        ));
        let rest = partial
            .cancel_reserved(Money::krw(7_000), Some(Money::krw(7_000)))
            .unwrap();
        let canceled = rest.cancel_completed(Money::krw(0)).unwrap();
        assert_eq!(
            (canceled.status, canceled.balance),
            (PaymentStatus::Canceled, Money::krw(0))
        );
        assert!(canceled.cancel_reserved(Money::krw(1), None).is_err());
    }

    #[test]
    fn refused_cancel_gives_the_balance_back() {
        let done = Payment::key_in(new_payment(5_000), card(), route(), UnixMillis::new(1))
            .approved(details())
            .unwrap();
        let reserved = done.cancel_reserved(Money::krw(5_000), None).unwrap();
        let released = reserved.cancel_released(Money::krw(5_000)).unwrap();
        assert_eq!(
            (released.status, released.balance),
            (PaymentStatus::Done, Money::krw(5_000))
        );
    }

    #[test]
    fn checkout_rules() {
        let ready = Payment::checkout(new_payment(20_000), UnixMillis::new(1_800_000));
        let order = OrderId::parse("order-0001").unwrap();
        // Not authenticated yet: confirm is refused by the status machine.
        assert!(matches!(
            ready.confirm_requested(
                &order,
                Money::krw(20_000),
                UnixMillis::new(2_000),
                UnixMillis::new(3_000)
            ),
            Err(PaymentRuleError::Transition(_))
        ));
        let authed = ready
            .authenticated(
                card(),
                Installment::LUMP_SUM,
                route(),
                UnixMillis::new(2_000),
                UnixMillis::new(602_000),
            )
            .unwrap();
        assert_eq!(authed.status, PaymentStatus::InProgress);
        let cases = [
            ("order-0001", 19_999, 3_000, Err(PaymentRuleError::AmountMismatch)),
            ("order-0002", 20_000, 3_000, Err(PaymentRuleError::OrderMismatch)),
            ("order-0001", 20_000, 602_000, Err(PaymentRuleError::Expired)),
        ];
        for (order_id, amount, now, expected) in cases {
            let got = authed.confirm_requested(
                &OrderId::parse(order_id).unwrap(),
                Money::krw(amount),
                UnixMillis::new(now),
                UnixMillis::new(now + 30_000),
            );
            assert_eq!(
                got.map(|p| p.status),
                expected.map(|p: Payment| p.status),
                "{order_id} {amount} {now}"
            );
        }
        let requested = authed
            .confirm_requested(
                &order,
                Money::krw(20_000),
                UnixMillis::new(3_000),
                UnixMillis::new(33_000),
            )
            .unwrap();
        assert_eq!(
            requested.confirm_requested(
                &order,
                Money::krw(20_000),
                UnixMillis::new(3_000),
                UnixMillis::new(33_000)
            ),
            Err(PaymentRuleError::ApprovalInProgress)
        );
        let unknown = requested.outcome_unknown(UnixMillis::new(5_000));
        assert_eq!(
            (unknown.status, unknown.approval_state),
            (PaymentStatus::InProgress, ApprovalState::Unknown)
        );
        assert!(unknown.can_complete_at(UnixMillis::new(601_999)));
        assert!(!unknown.can_complete_at(UnixMillis::new(602_000)));
        let expired = unknown.expired().unwrap();
        assert_eq!(expired.status, PaymentStatus::Expired);
        assert!(
            expired.approved(details()).is_err(),
            "an expired payment never becomes DONE"
        );
    }

    #[test]
    fn a_virtual_account_waits_then_is_paid_or_cancelled_or_expires() {
        let due = UnixMillis::new(1_000 + 86_400_000);
        let waiting = Payment::virtual_account(new_payment(15_000), Flow::KeyIn, due).unwrap();
        assert_eq!(
            (waiting.status, waiting.method, waiting.balance, waiting.expires_at),
            (
                PaymentStatus::WaitingForDeposit,
                PaymentMethod::VirtualAccount,
                Money::krw(15_000),
                Some(due)
            )
        );
        let paid = waiting.deposit_received("20", "dep-1", UnixMillis::new(5_000)).unwrap();
        assert_eq!(
            (paid.status, paid.balance, paid.version),
            (PaymentStatus::Done, Money::krw(15_000), 1)
        );
        assert_eq!(
            paid.approval.as_ref().map(|a| a.approved_at),
            Some(UnixMillis::new(5_000))
        );
        assert!(
            paid.deposit_received("20", "dep-2", UnixMillis::new(6_000)).is_err(),
            "paid once"
        );
        assert!(
            paid.cancelled_unpaid().is_err(),
            "a paid account is refunded, not closed"
        );

        let cancelled = waiting.cancelled_unpaid().unwrap();
        assert_eq!(
            (cancelled.status, cancelled.balance),
            (PaymentStatus::Canceled, Money::krw(0))
        );
        assert!(cancelled
            .deposit_received("20", "dep-1", UnixMillis::new(5_000))
            .is_err());

        let expired = waiting.expired().unwrap();
        assert_eq!(expired.status, PaymentStatus::Expired);
        assert!(expired.deposit_received("20", "dep-1", UnixMillis::new(5_000)).is_err());
        assert_eq!(waiting.touched().version, 1);
        for method in PaymentMethod::ALL {
            assert_eq!(PaymentMethod::parse(method.as_str()), Some(method));
            assert_eq!(PaymentMethod::from_request(method.korean()), Some(method));
        }
    }

    #[test]
    fn every_change_bumps_the_version() {
        let payment = Payment::checkout(new_payment(1_000), UnixMillis::new(10));
        assert_eq!(payment.version, 0);
        assert_eq!(payment.expired().unwrap().version, 1);
        assert_eq!(payment.outcome_unknown(UnixMillis::new(5)).version, 1);
    }
}
