//! Cash receipts (현금영수증): a merchant's report to the National Tax Service (국세청) that a buyer paid in cash
//! (a virtual account, a transfer, or cash outside paygate), so the buyer can deduct it (소득공제) or a business
//! can prove the expense (지출증빙).
//!
//! A [`CashReceipt`] is one request to the tax authority: an issue (`CONFIRM`) or one cancel of an issue
//! (`CANCEL`, whole or part). It is written `IN_PROGRESS` with its report due, in the transaction of the change it
//! belongs to, and the report worker sends it to the authority (a cancel only once its issue is `COMPLETED`)
//! until it answers: `COMPLETED` with the authority's issue number, or `FAILED` with the authority's reason. The
//! record is its own outbox row: its `next_attempt_at` is the queue.
//!
//! Buyer identifiers are checked before anything is recorded ([`CustomerIdentity::parse`]).

use crate::api_key::Mode;
use crate::id::{CashReceiptKey, MerchantId, PaymentId, TransactionKey};
use crate::money::{Money, MoneyError};
use crate::time::UnixMillis;

/// What the receipt is for (Toss's `type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ReceiptType {
    /// 소득공제: the buyer's income deduction (a phone number or a cash-receipt card number).
    IncomeDeduction,
    /// 지출증빙: a business's proof of expense (its business registration number, or a card or phone number).
    ExpenseProof,
}

impl ReceiptType {
    pub const ALL: [ReceiptType; 2] = [ReceiptType::IncomeDeduction, ReceiptType::ExpenseProof];

    pub fn as_str(self) -> &'static str {
        match self {
            ReceiptType::IncomeDeduction => "INCOME_DEDUCTION",
            ReceiptType::ExpenseProof => "EXPENSE_PROOF",
        }
    }

    pub fn parse(text: &str) -> Option<ReceiptType> {
        ReceiptType::ALL.into_iter().find(|t| t.as_str() == text)
    }

    /// Toss's spelling.
    pub fn korean(self) -> &'static str {
        match self {
            ReceiptType::IncomeDeduction => "소득공제",
            ReceiptType::ExpenseProof => "지출증빙",
        }
    }

    pub fn from_korean(text: &str) -> Option<ReceiptType> {
        ReceiptType::ALL.into_iter().find(|t| t.korean() == text)
    }
}

/// An issue or a cancel (Toss's `transactionType`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ReceiptTransaction {
    Confirm,
    Cancel,
}

impl ReceiptTransaction {
    pub fn as_str(self) -> &'static str {
        match self {
            ReceiptTransaction::Confirm => "CONFIRM",
            ReceiptTransaction::Cancel => "CANCEL",
        }
    }

    pub fn parse(text: &str) -> Option<ReceiptTransaction> {
        [ReceiptTransaction::Confirm, ReceiptTransaction::Cancel]
            .into_iter()
            .find(|t| t.as_str() == text)
    }
}

/// Where the authority's answer stands (Toss's `issueStatus`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum IssueStatus {
    /// Recorded; the authority has not answered yet.
    InProgress,
    /// The authority registered it, with its issue number.
    Completed,
    /// The authority refused it (its reason in `failure`).
    Failed,
}

impl IssueStatus {
    pub const ALL: [IssueStatus; 3] = [IssueStatus::InProgress, IssueStatus::Completed, IssueStatus::Failed];

    pub fn as_str(self) -> &'static str {
        match self {
            IssueStatus::InProgress => "IN_PROGRESS",
            IssueStatus::Completed => "COMPLETED",
            IssueStatus::Failed => "FAILED",
        }
    }

    pub fn parse(text: &str) -> Option<IssueStatus> {
        IssueStatus::ALL.into_iter().find(|s| s.as_str() == text)
    }
}

/// What kind of number identifies the buyer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum IdentityKind {
    /// A mobile phone number (01X…, 10 or 11 digits).
    Phone,
    /// A business registration number (사업자등록번호, 10 digits with its check digit).
    BusinessNumber,
    /// A cash-receipt card number (현금영수증 카드, 13 to 19 digits).
    CardNumber,
    /// The tax authority's number for a buyer who gave none (자진발급, `0100001234`).
    SelfIssued,
}

/// The tax authority's number for a receipt without the buyer's own (자진발급).
pub const SELF_ISSUE_NUMBER: &str = "0100001234";

/// Why a buyer identifier is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum IdentityError {
    #[error("customerIdentityNumber must be a phone number, a business registration number or a cash-receipt card number, in digits")]
    Format,
    #[error("the business registration number's check digit does not match")]
    BusinessNumberCheck,
    #[error("a 소득공제 receipt is identified by a phone or cash-receipt card number; a 지출증빙 one by a business registration number, a phone or a card number")]
    WrongKindForType,
}

/// The buyer's identifier, checked: digits only (hyphens and spaces are dropped), of a kind the receipt type takes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CustomerIdentity {
    kind: IdentityKind,
    number: String,
}

/// Whether `digits` (10 of them) is a business registration number: its last digit is the check digit of the
/// National Tax Service's weights 1,3,7,1,3,7,1,3,5.
pub fn business_number_checks(digits: &str) -> bool {
    let values: Vec<u32> = digits.chars().filter_map(|c| c.to_digit(10)).collect();
    if values.len() != 10 || digits.len() != 10 {
        return false;
    }
    const WEIGHTS: [u32; 9] = [1, 3, 7, 1, 3, 7, 1, 3, 5];
    let mut sum: u32 = values.iter().zip(WEIGHTS).map(|(v, w)| v * w).sum();
    sum += (values[8] * 5) / 10;
    (10 - sum % 10) % 10 == values[9]
}

impl CustomerIdentity {
    pub fn parse(text: &str, receipt_type: ReceiptType) -> Result<CustomerIdentity, IdentityError> {
        let number: String = text.chars().filter(|c| *c != '-' && *c != ' ').collect();
        if number.is_empty() || number.len() > 30 || !number.bytes().all(|b| b.is_ascii_digit()) {
            return Err(IdentityError::Format);
        }
        let kind = if number == SELF_ISSUE_NUMBER {
            IdentityKind::SelfIssued
        } else if number.starts_with("01") && (10..=11).contains(&number.len()) {
            IdentityKind::Phone
        } else if number.len() == 10 {
            if !business_number_checks(&number) {
                return Err(IdentityError::BusinessNumberCheck);
            }
            IdentityKind::BusinessNumber
        } else if (13..=19).contains(&number.len()) {
            IdentityKind::CardNumber
        } else {
            return Err(IdentityError::Format);
        };
        let allowed = match receipt_type {
            ReceiptType::IncomeDeduction => kind != IdentityKind::BusinessNumber,
            ReceiptType::ExpenseProof => kind != IdentityKind::SelfIssued,
        };
        if !allowed {
            return Err(IdentityError::WrongKindForType);
        }
        Ok(CustomerIdentity { kind, number })
    }

    /// As stored: unchecked (the store reads what it wrote).
    pub fn restore(kind: IdentityKind, number: String) -> CustomerIdentity {
        CustomerIdentity { kind, number }
    }

    pub fn kind(&self) -> IdentityKind {
        self.kind
    }

    /// The whole number: for the tax authority only.
    pub fn number(&self) -> &str {
        &self.number
    }

    /// As answers and pages show it: all but the last four digits masked.
    pub fn masked(&self) -> String {
        let shown = self.number.len().saturating_sub(4);
        self.number
            .chars()
            .enumerate()
            .map(|(i, c)| if i < shown { '*' } else { c })
            .collect()
    }
}

impl IdentityKind {
    pub fn as_str(self) -> &'static str {
        match self {
            IdentityKind::Phone => "PHONE",
            IdentityKind::BusinessNumber => "BUSINESS_NUMBER",
            IdentityKind::CardNumber => "CARD_NUMBER",
            IdentityKind::SelfIssued => "SELF_ISSUED",
        }
    }

    pub fn parse(text: &str) -> Option<IdentityKind> {
        [
            IdentityKind::Phone,
            IdentityKind::BusinessNumber,
            IdentityKind::CardNumber,
            IdentityKind::SelfIssued,
        ]
        .into_iter()
        .find(|k| k.as_str() == text)
    }
}

/// A buyer's request for a cash receipt with a bank payment (a virtual account or a transfer), kept until the
/// payment is paid: its issue is written with the payment's `DONE`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReceiptRequest {
    pub payment_id: PaymentId,
    pub receipt_type: ReceiptType,
    pub identity: CustomerIdentity,
    pub requested_at: UnixMillis,
}

/// A receipt as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CashReceiptFields {
    pub key: CashReceiptKey,
    pub merchant_id: MerchantId,
    pub mode: Mode,
    /// The payment it was issued with, for a receipt paygate issued with a bank payment.
    pub payment_id: Option<PaymentId>,
    /// The payment's cancel it was cancelled with, for a cancel paygate made with a refund.
    pub transaction_key: Option<TransactionKey>,
    /// A cancel's issue.
    pub original: Option<CashReceiptKey>,
    pub order_id: String,
    pub order_name: String,
    pub receipt_type: ReceiptType,
    pub transaction: ReceiptTransaction,
    pub amount: Money,
    pub tax_free: Money,
    pub identity: CustomerIdentity,
    /// The issuing merchant's business registration number.
    pub business_number: String,
    pub status: IssueStatus,
    /// The authority's number, once `COMPLETED`.
    pub issue_number: Option<String>,
    pub failure_code: Option<String>,
    pub failure_message: Option<String>,
    /// An issue's amount cancelled so far (requested cancels that did not fail).
    pub cancelled: Money,
    pub requested_at: UnixMillis,
    pub completed_at: Option<UnixMillis>,
    /// When the report is (re)sent next; `None` once answered.
    pub next_attempt_at: Option<UnixMillis>,
    pub attempts: u32,
    pub version: i64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CashReceipt(CashReceiptFields);

impl std::ops::Deref for CashReceipt {
    type Target = CashReceiptFields;

    fn deref(&self) -> &CashReceiptFields {
        &self.0
    }
}

/// An issue to record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewCashReceipt {
    pub key: CashReceiptKey,
    pub merchant_id: MerchantId,
    pub mode: Mode,
    pub payment_id: Option<PaymentId>,
    pub order_id: String,
    pub order_name: String,
    pub receipt_type: ReceiptType,
    pub amount: Money,
    pub tax_free: Money,
    pub identity: CustomerIdentity,
    pub business_number: String,
    pub now: UnixMillis,
}

/// Why a receipt cannot change as asked.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ReceiptError {
    #[error("the amount must be positive and the tax-free part at most the amount")]
    InvalidAmount,
    #[error("only an issue is cancelled, and only once the authority has not refused it")]
    NotCancelable,
    #[error("the cancel exceeds what is left of the receipt ({left})")]
    ExceedsRemaining { left: Money },
    #[error("the receipt was already answered")]
    AlreadyAnswered,
    #[error(transparent)]
    Money(#[from] MoneyError),
}

impl CashReceipt {
    /// An issue, recorded `IN_PROGRESS` with its report due now.
    pub fn issue(new: NewCashReceipt) -> Result<CashReceipt, ReceiptError> {
        let over = new
            .tax_free
            .checked_sub(new.amount)
            .map_err(|_| ReceiptError::InvalidAmount)?;
        if !new.amount.is_positive() || new.tax_free.is_negative() || over.is_positive() {
            return Err(ReceiptError::InvalidAmount);
        }
        Ok(CashReceipt(CashReceiptFields {
            key: new.key,
            merchant_id: new.merchant_id,
            mode: new.mode,
            payment_id: new.payment_id,
            transaction_key: None,
            original: None,
            order_id: new.order_id,
            order_name: new.order_name,
            receipt_type: new.receipt_type,
            transaction: ReceiptTransaction::Confirm,
            cancelled: Money::zero(new.amount.currency()),
            amount: new.amount,
            tax_free: new.tax_free,
            identity: new.identity,
            business_number: new.business_number,
            status: IssueStatus::InProgress,
            issue_number: None,
            failure_code: None,
            failure_message: None,
            requested_at: new.now,
            completed_at: None,
            next_attempt_at: Some(new.now),
            attempts: 0,
            version: 0,
        }))
    }

    pub fn restore(fields: CashReceiptFields) -> CashReceipt {
        CashReceipt(fields)
    }

    fn next(&self, change: impl FnOnce(&mut CashReceiptFields)) -> CashReceipt {
        let mut next = self.0.clone();
        change(&mut next);
        next.version = self.version.saturating_add(1);
        CashReceipt(next)
    }

    /// What is left to cancel of an issue.
    pub fn remaining(&self) -> Result<Money, ReceiptError> {
        Ok(self.amount.checked_sub(self.cancelled)?)
    }

    /// A cancel of `amount` (the rest when `None`) of this issue: the issue with the amount reserved, and the
    /// cancel record, `IN_PROGRESS`, reported once the issue is `COMPLETED`. A cancel takes the taxable part first
    /// and the tax-free part last, so the cancels' tax-free parts never exceed the receipt's.
    pub fn cancel_requested(
        &self,
        key: CashReceiptKey,
        amount: Option<Money>,
        transaction_key: Option<TransactionKey>,
        now: UnixMillis,
    ) -> Result<(CashReceipt, CashReceipt), ReceiptError> {
        if self.transaction != ReceiptTransaction::Confirm || self.status == IssueStatus::Failed {
            return Err(ReceiptError::NotCancelable);
        }
        let left = self.remaining()?;
        let amount = amount.unwrap_or(left);
        if !amount.is_positive() {
            return Err(if left.is_zero() {
                ReceiptError::NotCancelable
            } else {
                ReceiptError::InvalidAmount
            });
        }
        if amount.checked_sub(left)?.is_positive() {
            return Err(ReceiptError::ExceedsRemaining { left });
        }
        // The taxable part is cancelled first; the tax-free part only once the taxable part is used up.
        let taxable_left = left.checked_sub(self.tax_free_left()?)?;
        let beyond_taxable = amount.checked_sub(taxable_left)?;
        let tax_free = if beyond_taxable.is_positive() {
            beyond_taxable
        } else {
            Money::zero(amount.currency())
        };
        let cancelled = self.cancelled.checked_add(amount)?;
        let issue = self.next(|r| r.cancelled = cancelled);
        let cancel = CashReceipt(CashReceiptFields {
            key,
            transaction_key,
            original: Some(self.key),
            transaction: ReceiptTransaction::Cancel,
            amount,
            tax_free,
            cancelled: Money::zero(amount.currency()),
            status: IssueStatus::InProgress,
            issue_number: None,
            failure_code: None,
            failure_message: None,
            requested_at: now,
            completed_at: None,
            next_attempt_at: Some(now),
            attempts: 0,
            version: 0,
            ..self.0.clone()
        });
        Ok((issue, cancel))
    }

    /// The tax-free part not cancelled yet (cancels take it last).
    fn tax_free_left(&self) -> Result<Money, ReceiptError> {
        let taxable = self.amount.checked_sub(self.tax_free)?;
        let over = self.cancelled.checked_sub(taxable)?;
        Ok(if over.is_positive() {
            self.tax_free.checked_sub(over)?
        } else {
            self.tax_free
        })
    }

    /// The report is about to be sent: the next try is due at `retry_at` unless an answer comes first.
    pub fn report_sent(&self, retry_at: UnixMillis) -> Result<CashReceipt, ReceiptError> {
        if self.status != IssueStatus::InProgress {
            return Err(ReceiptError::AlreadyAnswered);
        }
        Ok(self.next(|r| {
            r.attempts = r.attempts.saturating_add(1);
            r.next_attempt_at = Some(retry_at);
        }))
    }

    /// The report waits (a cancel whose issue is not answered yet) until `retry_at`, without counting a try.
    pub fn report_deferred(&self, retry_at: UnixMillis) -> Result<CashReceipt, ReceiptError> {
        if self.status != IssueStatus::InProgress {
            return Err(ReceiptError::AlreadyAnswered);
        }
        Ok(self.next(|r| r.next_attempt_at = Some(retry_at)))
    }

    /// The authority registered it.
    pub fn completed(&self, issue_number: String, now: UnixMillis) -> Result<CashReceipt, ReceiptError> {
        if self.status != IssueStatus::InProgress {
            return Err(ReceiptError::AlreadyAnswered);
        }
        Ok(self.next(|r| {
            r.status = IssueStatus::Completed;
            r.issue_number = Some(issue_number);
            r.completed_at = Some(now);
            r.next_attempt_at = None;
        }))
    }

    /// The authority refused it.
    pub fn failed(&self, code: &str, message: &str, now: UnixMillis) -> Result<CashReceipt, ReceiptError> {
        if self.status != IssueStatus::InProgress {
            return Err(ReceiptError::AlreadyAnswered);
        }
        Ok(self.next(|r| {
            r.status = IssueStatus::Failed;
            r.failure_code = Some(code.to_owned());
            r.failure_message = Some(message.to_owned());
            r.completed_at = Some(now);
            r.next_attempt_at = None;
        }))
    }

    /// A cancel of this issue failed: its amount is cancellable again.
    pub fn cancel_released(&self, amount: Money) -> Result<CashReceipt, ReceiptError> {
        let cancelled = self.cancelled.checked_sub(amount)?;
        Ok(self.next(|r| r.cancelled = cancelled))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::money::Currency;

    fn krw(amount: i64) -> Money {
        Money::new(amount, Currency::Krw)
    }

    fn issue(amount: i64, tax_free: i64) -> CashReceipt {
        CashReceipt::issue(NewCashReceipt {
            key: CashReceiptKey::new(UnixMillis::new(1), [1; 10]),
            merchant_id: MerchantId::new(UnixMillis::new(1), [2; 10]),
            mode: Mode::Test,
            payment_id: None,
            order_id: "order-0001".into(),
            order_name: "책".into(),
            receipt_type: ReceiptType::IncomeDeduction,
            amount: krw(amount),
            tax_free: krw(tax_free),
            identity: CustomerIdentity::parse("010-1234-5678", ReceiptType::IncomeDeduction).unwrap(),
            business_number: "1208147521".into(),
            now: UnixMillis::new(10),
        })
        .unwrap()
    }

    #[test]
    fn identities_are_checked_by_kind_and_type() {
        use ReceiptType::*;
        let phone = CustomerIdentity::parse("010-1234-5678", IncomeDeduction).unwrap();
        assert_eq!(
            (phone.kind(), phone.number(), phone.masked().as_str()),
            (IdentityKind::Phone, "01012345678", "*******5678")
        );
        assert!(business_number_checks("1208147521"));
        assert!(!business_number_checks("1208147522"));
        let business = CustomerIdentity::parse("120-81-47521", ExpenseProof).unwrap();
        assert_eq!(business.kind(), IdentityKind::BusinessNumber);
        assert_eq!(
            CustomerIdentity::parse("1208147521", IncomeDeduction),
            Err(IdentityError::WrongKindForType)
        );
        assert_eq!(
            CustomerIdentity::parse("1208147522", ExpenseProof),
            Err(IdentityError::BusinessNumberCheck)
        );
        assert_eq!(
            CustomerIdentity::parse("12ab", IncomeDeduction),
            Err(IdentityError::Format)
        );
        assert_eq!(
            CustomerIdentity::parse("12345", IncomeDeduction),
            Err(IdentityError::Format)
        );
        let card = CustomerIdentity::parse("1234 5678 9012 345678", IncomeDeduction).unwrap();
        assert_eq!(card.kind(), IdentityKind::CardNumber);
        let own = CustomerIdentity::parse("010-000-1234", IncomeDeduction).unwrap();
        assert_eq!(own.kind(), IdentityKind::SelfIssued);
        assert_eq!(
            CustomerIdentity::parse("0100001234", ExpenseProof),
            Err(IdentityError::WrongKindForType)
        );
    }

    #[test]
    fn cancels_take_the_taxable_part_first_and_never_exceed_the_issue() {
        let receipt = issue(10_000, 3_000);
        assert_eq!(
            (receipt.status, receipt.next_attempt_at),
            (IssueStatus::InProgress, Some(UnixMillis::new(10)))
        );
        let key = |n| CashReceiptKey::new(UnixMillis::new(2), [n; 10]);
        let (receipt, first) = receipt
            .cancel_requested(key(3), Some(krw(6_000)), None, UnixMillis::new(20))
            .unwrap();
        assert_eq!(
            (first.amount, first.tax_free, first.original),
            (krw(6_000), krw(0), Some(receipt.key))
        );
        assert_eq!(first.transaction, ReceiptTransaction::Cancel);
        let (receipt, second) = receipt
            .cancel_requested(key(4), Some(krw(2_000)), None, UnixMillis::new(21))
            .unwrap();
        assert_eq!((second.amount, second.tax_free), (krw(2_000), krw(1_000)));
        assert_eq!(
            receipt.cancel_requested(key(5), Some(krw(2_001)), None, UnixMillis::new(22)),
            Err(ReceiptError::ExceedsRemaining { left: krw(2_000) })
        );
        let (receipt, rest) = receipt
            .cancel_requested(key(6), None, None, UnixMillis::new(23))
            .unwrap();
        assert_eq!(
            (rest.amount, rest.tax_free, receipt.remaining().unwrap()),
            (krw(2_000), krw(2_000), krw(0))
        );
        assert_eq!(
            receipt.cancel_requested(key(7), None, None, UnixMillis::new(24)),
            Err(ReceiptError::NotCancelable)
        );
        // A cancel that failed gives its amount back.
        let receipt = receipt.cancel_released(krw(2_000)).unwrap();
        assert_eq!(receipt.remaining().unwrap(), krw(2_000));
    }

    #[test]
    fn a_report_is_answered_once() {
        let receipt = issue(5_000, 0);
        let sent = receipt.report_sent(UnixMillis::new(100)).unwrap();
        assert_eq!((sent.attempts, sent.next_attempt_at), (1, Some(UnixMillis::new(100))));
        let done = sent.completed("123456789".into(), UnixMillis::new(50)).unwrap();
        assert_eq!(
            (done.status, done.next_attempt_at, done.issue_number.as_deref()),
            (IssueStatus::Completed, None, Some("123456789"))
        );
        assert_eq!(
            done.failed("NTS_ERROR", "x", UnixMillis::new(60)),
            Err(ReceiptError::AlreadyAnswered)
        );
        assert!(done
            .cancel_requested(
                CashReceiptKey::new(UnixMillis::new(2), [9; 10]),
                None,
                None,
                UnixMillis::new(70)
            )
            .is_ok());
        let refused = sent
            .failed("NTS_ERROR", "[TS1] 식별번호 오류", UnixMillis::new(50))
            .unwrap();
        assert_eq!(
            refused.cancel_requested(
                CashReceiptKey::new(UnixMillis::new(2), [9; 10]),
                None,
                None,
                UnixMillis::new(70)
            ),
            Err(ReceiptError::NotCancelable)
        );
    }
}
