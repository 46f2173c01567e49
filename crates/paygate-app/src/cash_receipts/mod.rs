//! Cash receipts (현금영수증): `POST /v1/cash-receipts` (issue), `…/{receiptKey}/cancel` (whole or part),
//! `GET /v1/cash-receipts` (by request date), receipts issued and cancelled with bank payments, and the report
//! worker that registers each with the tax authority.
//!
//! Each use case writes its receipts in one transaction with their `CASH_RECEIPT_STATUS_CHANGED` events and the
//! request's idempotent answer; the receipt row is its own outbox entry (`next_attempt_at`), so a receipt recorded
//! is reported however the process ends. The worker claims a report (its try counted and the next one scheduled)
//! before it calls the authority under the receipt's key, and writes the answer conditionally on that claim: a
//! lost answer is asked again under the same key, which answers the first answer.

pub mod wire;

use std::sync::Arc;

use paygate_connectors::tax::{ReceiptReport, ReportAnswer, TaxAuthority};
use paygate_domain::api_key::{KeyKind, Mode};
use paygate_domain::cash_receipt::{
    CashReceipt, CustomerIdentity, IdentityError, IssueStatus, NewCashReceipt, ReceiptError, ReceiptRequest,
    ReceiptTransaction, ReceiptType,
};
use paygate_domain::event::EventType;
use paygate_domain::id::{CashReceiptKey, EventId, PaymentId, TransactionKey};
use paygate_domain::merchant::{BusinessProfile, Merchant};
use paygate_domain::money::Money;
use paygate_domain::order::{OrderId, OrderName};
use paygate_domain::time::{DurationMs, UnixMillis};
use paygate_store::{InsertReceiptOutcome, NewEvent, ReceiptChange, StoreError};

use crate::auth::Caller;
use crate::idempotency::{Answer, IdempotencyRefusal, Idempotent, Once};
use crate::payments::command::FieldError;
use crate::payments::InternalError;
use crate::App;

/// Most receipts one list page answers (Toss's maximum).
pub const LIST_LIMIT_MAX: u32 = 10_000;
/// A list page's size when the request names none (Toss's default).
pub const LIST_LIMIT_DEFAULT: u32 = 100;
/// The first retry of a report the authority did not answer, doubled per try up to [`REPORT_RETRY_MAX_MS`].
pub const REPORT_RETRY_INITIAL_MS: u32 = 1_000;
pub const REPORT_RETRY_MAX_MS: u32 = 3_600_000;
/// How long a cancel waits for its issue's answer before it is looked at again.
pub const CANCEL_WAIT_MS: u32 = 1_000;

/// The tax authorities paygate reports to, per mode (test mode: the in-process sandbox).
#[derive(Clone, Default)]
pub struct TaxAuthorities {
    test: Option<Arc<dyn TaxAuthority>>,
    live: Option<Arc<dyn TaxAuthority>>,
}

impl TaxAuthorities {
    pub fn new() -> TaxAuthorities {
        TaxAuthorities::default()
    }

    pub fn set(&mut self, mode: Mode, authority: Arc<dyn TaxAuthority>) {
        match mode {
            Mode::Test => self.test = Some(authority),
            Mode::Live => self.live = Some(authority),
        }
    }

    pub fn get(&self, mode: Mode) -> Option<&Arc<dyn TaxAuthority>> {
        match mode {
            Mode::Test => self.test.as_ref(),
            Mode::Live => self.live.as_ref(),
        }
    }

    /// Test mode reports to an in-process sandbox authority (returned for tests to inspect).
    pub fn in_process_sandbox() -> (TaxAuthorities, paygate_connectors::tax::SandboxTaxAuthority) {
        let sandbox = paygate_connectors::tax::SandboxTaxAuthority::new();
        let mut authorities = TaxAuthorities::new();
        authorities.set(Mode::Test, Arc::new(sandbox.clone()));
        (authorities, sandbox)
    }
}

/// An issue, as the request asked for it (checked at the edge).
#[derive(Clone, Debug)]
pub struct IssueReceiptCommand {
    pub amount: Money,
    pub tax_free: Money,
    pub order_id: OrderId,
    pub order_name: OrderName,
    pub receipt_type: ReceiptType,
    pub identity: CustomerIdentity,
}

/// Why a cash-receipt request was refused. Nothing was recorded in any of these cases.
#[derive(Debug, thiserror::Error)]
pub enum CashReceiptError {
    #[error(transparent)]
    Field(#[from] FieldError),
    #[error("no such cash receipt")]
    NotFound,
    #[error("the order already has a cash receipt")]
    DuplicateOrder,
    #[error("the merchant has no business registration number on file; an operator sets it with `paygate merchant business`")]
    NoBusinessProfile,
    #[error("paygate reports no cash receipts in {0} mode")]
    NoTaxAuthority(&'static str),
    #[error(transparent)]
    Rule(#[from] ReceiptError),
    #[error("the receipt changed meanwhile; read it again")]
    Concurrent,
    #[error("client keys cannot issue cash receipts")]
    Forbidden,
    #[error(transparent)]
    Idempotency(#[from] IdempotencyRefusal),
    #[error(transparent)]
    Internal(#[from] InternalError),
}

impl From<StoreError> for CashReceiptError {
    fn from(error: StoreError) -> CashReceiptError {
        CashReceiptError::Internal(InternalError::Store(error))
    }
}

impl CashReceiptError {
    /// A copy to render an answer from (the edge renders the same error live and for the stored answer).
    pub fn clone_for_answer(&self) -> CashReceiptError {
        match self {
            CashReceiptError::Field(field) => CashReceiptError::Field(field.clone()),
            CashReceiptError::NotFound => CashReceiptError::NotFound,
            CashReceiptError::DuplicateOrder => CashReceiptError::DuplicateOrder,
            CashReceiptError::NoBusinessProfile => CashReceiptError::NoBusinessProfile,
            CashReceiptError::NoTaxAuthority(mode) => CashReceiptError::NoTaxAuthority(mode),
            CashReceiptError::Rule(rule) => CashReceiptError::Rule(rule.clone()),
            CashReceiptError::Concurrent => CashReceiptError::Concurrent,
            CashReceiptError::Forbidden => CashReceiptError::Forbidden,
            CashReceiptError::Idempotency(refusal) => CashReceiptError::Idempotency(*refusal),
            CashReceiptError::Internal(internal) => {
                CashReceiptError::Internal(InternalError::Invariant(internal.to_string()))
            }
        }
    }
}

/// Maps a buyer identifier's refusal to the request field it concerns.
pub fn identity_field_error(error: IdentityError) -> FieldError {
    FieldError::new(
        "customerIdentityNumber",
        crate::payments::command::FieldReason::Invalid,
        error.to_string(),
    )
}

/// One page of `GET /v1/cash-receipts`.
#[derive(Clone, Debug)]
pub struct ReceiptPage {
    pub receipts: Vec<CashReceipt>,
    pub has_next: bool,
    /// The position after this page's last receipt: the next page's `cursor`.
    pub last_cursor: u32,
}

/// A receipt's public page: the receipt, its merchant and the business it was issued under.
pub struct ReceiptView {
    pub receipt: CashReceipt,
    pub merchant: Merchant,
    pub business: Option<BusinessProfile>,
}

fn secret_only(caller: &Caller) -> Result<(), CashReceiptError> {
    if caller.key.kind != KeyKind::Secret {
        return Err(CashReceiptError::Forbidden);
    }
    Ok(())
}

impl App {
    /// The public receipt page's token: unguessable, derived, never stored.
    pub fn cash_receipt_token(&self, key: CashReceiptKey) -> String {
        use hmac::Mac;
        let Ok(mut mac) = hmac::Hmac::<sha2::Sha256>::new_from_slice(&self.receipt_key) else {
            return String::new();
        };
        mac.update(format!("cash-receipt:{key}").as_bytes());
        hex::encode(&mac.finalize().into_bytes()[..16])
    }

    pub fn cash_receipt_url(&self, key: CashReceiptKey) -> String {
        format!(
            "{}/cash-receipts/{key}/{}",
            self.payments.checkout_base_url.trim_end_matches('/'),
            self.cash_receipt_token(key)
        )
    }

    /// `CASH_RECEIPT_STATUS_CHANGED` for a receipt as it will be once written.
    pub(crate) fn receipt_event(&self, receipt: &CashReceipt, now: UnixMillis) -> Result<NewEvent, InternalError> {
        let data = serde_json::to_string(&wire::CashReceiptBody::new(self, receipt))
            .map_err(|e| InternalError::Invariant(e.to_string()))?;
        Ok(NewEvent {
            id: EventId::new(now, crate::random_bytes()),
            merchant_id: receipt.merchant_id,
            mode: receipt.mode,
            event_type: EventType::CashReceiptStatusChanged,
            object_id: receipt.key.to_string(),
            sequence: receipt.version,
            previous_status: None,
            data,
            notification: None,
            created_at: now,
        })
    }

    async fn business_number(&self, merchant: paygate_domain::id::MerchantId) -> Result<String, CashReceiptError> {
        self.store()
            .business_profile(merchant)
            .await?
            .map(|p| p.business_number)
            .ok_or(CashReceiptError::NoBusinessProfile)
    }

    /// Sets a merchant's business profile (an operator's command).
    pub async fn set_business_profile(&self, profile: &BusinessProfile) -> Result<(), CashReceiptError> {
        self.store()
            .merchant(profile.merchant_id)
            .await?
            .ok_or(CashReceiptError::NotFound)?;
        Ok(self.store().set_business_profile(profile).await?)
    }

    /// `POST /v1/cash-receipts`: an issue, `IN_PROGRESS` until the tax authority answers.
    pub async fn issue_cash_receipt(
        &self,
        caller: &Caller,
        command: IssueReceiptCommand,
        idempotency: Option<Idempotent<CashReceipt, CashReceiptError>>,
    ) -> Result<Answer<CashReceipt>, CashReceiptError> {
        secret_only(caller)?;
        let claim = match self.start_once(caller, idempotency).await? {
            Once::Run(claim) => claim,
            Once::Answer(answer) => return Ok(answer),
        };
        let (merchant_id, mode) = (caller.merchant.id, caller.key.mode);
        if self.tax_authorities.get(mode).is_none() {
            return Err(CashReceiptError::NoTaxAuthority(mode.as_str()));
        }
        let business_number = self.business_number(merchant_id).await?;
        let now = self.clock().now();
        let receipt = CashReceipt::issue(NewCashReceipt {
            key: CashReceiptKey::new(now, crate::random_bytes()),
            merchant_id,
            mode,
            payment_id: None,
            order_id: command.order_id.as_str().to_owned(),
            order_name: command.order_name.as_str().to_owned(),
            receipt_type: command.receipt_type,
            amount: command.amount,
            tax_free: command.tax_free,
            identity: command.identity,
            business_number,
            now,
        })?;
        let answer = Ok(receipt.clone());
        let idempotency = claim.as_ref().map(|c| c.record(None, &answer, now));
        let events = [self.receipt_event(&receipt, now)?];
        match self
            .store()
            .insert_cash_receipt(&receipt, &events, idempotency.as_ref())
            .await
        {
            Ok(InsertReceiptOutcome::Inserted) => answer.map(Answer::Fresh),
            Ok(InsertReceiptOutcome::DuplicateOrderId) => Err(CashReceiptError::DuplicateOrder),
            Err(StoreError::IdempotencyConflict) => match &claim {
                Some(claim) => self.once_after_conflict(claim).await,
                None => Err(CashReceiptError::Concurrent),
            },
            Err(other) => Err(other.into()),
        }
    }

    /// `POST /v1/cash-receipts/{receiptKey}/cancel`: a cancel of `amount` (the rest when absent) of an issue.
    /// Answers the cancel record, `IN_PROGRESS` until the authority answers (after the issue's own answer).
    pub async fn cancel_cash_receipt(
        &self,
        caller: &Caller,
        key: CashReceiptKey,
        amount: Option<Money>,
        idempotency: Option<Idempotent<CashReceipt, CashReceiptError>>,
    ) -> Result<Answer<CashReceipt>, CashReceiptError> {
        secret_only(caller)?;
        let claim = match self.start_once(caller, idempotency).await? {
            Once::Run(claim) => claim,
            Once::Answer(answer) => return Ok(answer),
        };
        let issue = self
            .store()
            .cash_receipt(caller.merchant.id, caller.key.mode, key)
            .await?
            .ok_or(CashReceiptError::NotFound)?;
        let now = self.clock().now();
        let (reserved, cancel) =
            issue.cancel_requested(CashReceiptKey::new(now, crate::random_bytes()), amount, None, now)?;
        let answer = Ok(cancel.clone());
        let change = ReceiptChange {
            request: None,
            events: vec![self.receipt_event(&cancel, now)?],
            idempotency: claim.as_ref().map(|c| c.record(None, &answer, now)),
            changed: vec![reserved],
            added: vec![cancel],
        };
        match self.store().change_cash_receipts(&change).await {
            Ok(()) => answer.map(Answer::Fresh),
            Err(StoreError::IdempotencyConflict) => match &claim {
                Some(claim) => self.once_after_conflict(claim).await,
                None => Err(CashReceiptError::Concurrent),
            },
            Err(StoreError::Conflict(_)) => Err(CashReceiptError::Concurrent),
            Err(other) => Err(other.into()),
        }
    }

    /// `GET /v1/cash-receipts/{receiptKey}` (paygate's): one receipt request of the caller's.
    pub async fn get_cash_receipt(
        &self,
        caller: &Caller,
        key: CashReceiptKey,
    ) -> Result<CashReceipt, CashReceiptError> {
        secret_only(caller)?;
        self.store()
            .cash_receipt(caller.merchant.id, caller.key.mode, key)
            .await?
            .ok_or(CashReceiptError::NotFound)
    }

    /// `GET /v1/cash-receipts`: the receipts `filter` selects (requested in its period: Toss's `requestDate` is
    /// one KST day), oldest first, from position `cursor`.
    pub async fn list_cash_receipts(
        &self,
        caller: &Caller,
        filter: &paygate_store::ReceiptFilter,
        cursor: u32,
        limit: u32,
    ) -> Result<ReceiptPage, CashReceiptError> {
        secret_only(caller)?;
        let limit = limit.clamp(1, LIST_LIMIT_MAX);
        let mut receipts = self
            .store()
            .cash_receipts_requested(
                caller.merchant.id,
                caller.key.mode,
                filter,
                cursor,
                limit.saturating_add(1),
            )
            .await?;
        let has_next = receipts.len() > usize::try_from(limit).unwrap_or(usize::MAX);
        receipts.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
        let last_cursor = cursor.saturating_add(u32::try_from(receipts.len()).unwrap_or(u32::MAX));
        Ok(ReceiptPage {
            receipts,
            has_next,
            last_cursor,
        })
    }

    /// A receipt for its public page, if the token matches.
    pub async fn cash_receipt_page(&self, key: CashReceiptKey, token: &str) -> Result<ReceiptView, CashReceiptError> {
        use subtle::ConstantTimeEq;
        let expected = self.cash_receipt_token(key);
        if !bool::from(expected.as_bytes().ct_eq(token.as_bytes())) {
            return Err(CashReceiptError::NotFound);
        }
        let receipt = self
            .store()
            .cash_receipt_by_key(key)
            .await?
            .ok_or(CashReceiptError::NotFound)?;
        let merchant = self
            .store()
            .merchant(receipt.merchant_id)
            .await?
            .ok_or(CashReceiptError::NotFound)?;
        let business = self.store().business_profile(receipt.merchant_id).await?;
        Ok(ReceiptView {
            receipt,
            merchant,
            business,
        })
    }

    /// The issue a bank payment's `DONE` brings, when the buyer asked for one: to write with the payment's change.
    /// `None` when nobody asked, or the merchant cannot issue (no business profile: logged, the payment is not held
    /// back for it).
    pub(crate) async fn receipt_with_payment(
        &self,
        payment: &paygate_domain::payment::Payment,
        request: Option<ReceiptRequest>,
        now: UnixMillis,
    ) -> Result<Option<(CashReceipt, NewEvent)>, InternalError> {
        let Some(request) = request else {
            return Ok(None);
        };
        if self.tax_authorities.get(payment.mode).is_none() {
            return Ok(None);
        }
        let Some(profile) = self.store().business_profile(payment.merchant_id).await? else {
            tracing::warn!(payment_id = %payment.id, "a cash receipt was asked for but the merchant has no business profile");
            return Ok(None);
        };
        let receipt = CashReceipt::issue(NewCashReceipt {
            key: CashReceiptKey::new(now, crate::random_bytes()),
            merchant_id: payment.merchant_id,
            mode: payment.mode,
            payment_id: Some(payment.id),
            order_id: payment.order_id.as_str().to_owned(),
            order_name: payment.order_name.as_str().to_owned(),
            receipt_type: request.receipt_type,
            amount: payment.total(),
            tax_free: payment.amounts.tax_free(),
            identity: request.identity,
            business_number: profile.business_number,
            now,
        })
        .map_err(|e| InternalError::Invariant(e.to_string()))?;
        let event = self.receipt_event(&receipt, now)?;
        Ok(Some((receipt, event)))
    }

    /// The cancel of a bank payment's receipt a refund of `amount` brings (for the payment's cancel `transaction`):
    /// to write with the refund's completion. `None` when the payment has no receipt left to cancel.
    pub(crate) async fn receipt_cancel_with_refund(
        &self,
        payment_id: PaymentId,
        transaction: TransactionKey,
        amount: Money,
        now: UnixMillis,
    ) -> Result<ReceiptChange, InternalError> {
        let receipts = self.store().cash_receipts_of_payment(payment_id).await?;
        let Some(issue) = receipts
            .into_iter()
            .find(|r| r.transaction == ReceiptTransaction::Confirm && r.status != IssueStatus::Failed)
        else {
            return Ok(ReceiptChange::default());
        };
        let left = issue.remaining().map_err(|e| InternalError::Invariant(e.to_string()))?;
        if left.is_zero() {
            return Ok(ReceiptChange::default());
        }
        let amount = if amount.checked_sub(left).is_ok_and(|over| over.is_positive()) {
            left
        } else {
            amount
        };
        let (reserved, cancel) = issue
            .cancel_requested(
                CashReceiptKey::new(now, crate::random_bytes()),
                Some(amount),
                Some(transaction),
                now,
            )
            .map_err(|e| InternalError::Invariant(e.to_string()))?;
        Ok(ReceiptChange {
            request: None,
            events: vec![self.receipt_event(&cancel, now)?],
            idempotency: None,
            changed: vec![reserved],
            added: vec![cancel],
        })
    }

    /// Reports due receipts to the tax authority, at most `limit`; returns how many were sent.
    pub(crate) async fn report_cash_receipts(&self, now: UnixMillis, limit: u32) -> Result<u32, CashReceiptError> {
        let mut sent = 0;
        for receipt in self.store().due_cash_receipt_reports(now, limit).await? {
            match self.report_one(receipt, now).await {
                Ok(true) => sent += 1,
                Ok(false) | Err(CashReceiptError::Concurrent) => {}
                Err(error) => tracing::warn!(%error, "a cash receipt report failed; tried again later"),
            }
        }
        Ok(sent)
    }

    async fn report_one(&self, receipt: CashReceipt, now: UnixMillis) -> Result<bool, CashReceiptError> {
        let Some(authority) = self.tax_authorities.get(receipt.mode).cloned() else {
            return Ok(false);
        };
        // A cancel names its issue's number: it waits for the issue's answer, and fails with it.
        let mut original = None;
        if let Some(key) = receipt.original {
            let issue = self
                .store()
                .cash_receipt_by_key(key)
                .await?
                .ok_or_else(|| InternalError::Invariant(format!("cash receipt {key} has no issue")))?;
            match issue.status {
                IssueStatus::InProgress => {
                    let later = receipt.report_deferred(now.saturating_add(DurationMs::from_millis(CANCEL_WAIT_MS)))?;
                    self.write_receipts(vec![later], Vec::new()).await?;
                    return Ok(false);
                }
                IssueStatus::Failed => {
                    let failed =
                        receipt.failed("NTS_ERROR", "[TSC] 원거래가 등록되지 않아 취소할 수 없습니다.", now)?;
                    let released = issue.cancel_released(receipt.amount)?;
                    let events = vec![self.receipt_event(&failed, now)?];
                    self.write_receipts(vec![failed, released], events).await?;
                    return Ok(false);
                }
                IssueStatus::Completed => original = Some(issue),
            }
        }
        let backoff = REPORT_RETRY_INITIAL_MS
            .saturating_mul(1_u32 << receipt.attempts.min(20))
            .min(REPORT_RETRY_MAX_MS);
        let claimed = receipt.report_sent(now.saturating_add(DurationMs::from_millis(backoff)))?;
        self.write_receipts(vec![claimed.clone()], Vec::new()).await?;
        let report = ReceiptReport {
            reference: claimed.key.to_string(),
            business_number: claimed.business_number.clone(),
            receipt_type: claimed.receipt_type.as_str(),
            transaction: claimed.transaction.as_str(),
            identity_number: claimed.identity.number().to_owned(),
            amount: claimed.amount,
            tax_free: claimed.tax_free,
            original_issue_number: original.as_ref().and_then(|o| o.issue_number.clone()),
            requested_at: claimed.requested_at,
        };
        let answer = match authority.report(&report).await {
            Ok(answer) => answer,
            Err(error) => {
                tracing::info!(receipt = %claimed.key, %error, attempts = claimed.attempts, "the tax authority did not answer; reported again later");
                return Ok(true);
            }
        };
        let answered_at = self.clock().now();
        let (answered, released) = match answer {
            ReportAnswer::Issued { issue_number } => (claimed.completed(issue_number, answered_at)?, None),
            ReportAnswer::Rejected { code, message } => {
                let failed = claimed.failed(&code, &message, answered_at)?;
                // A refused cancel gives its amount back to its issue.
                let released = match original {
                    Some(issue) => Some(issue.cancel_released(claimed.amount)?),
                    None => None,
                };
                (failed, released)
            }
        };
        let events = vec![self.receipt_event(&answered, answered_at)?];
        let mut changed = vec![answered];
        changed.extend(released);
        self.write_receipts(changed, events).await?;
        Ok(true)
    }

    async fn write_receipts(&self, changed: Vec<CashReceipt>, events: Vec<NewEvent>) -> Result<(), CashReceiptError> {
        let change = ReceiptChange {
            changed,
            events,
            ..ReceiptChange::default()
        };
        match self.store().change_cash_receipts(&change).await {
            Ok(()) => Ok(()),
            Err(StoreError::Conflict(_)) => Err(CashReceiptError::Concurrent),
            Err(other) => Err(other.into()),
        }
    }
}
