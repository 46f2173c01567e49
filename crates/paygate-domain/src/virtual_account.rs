//! Virtual accounts (가상계좌) and the deposits that reach them.
//!
//! A [`VirtualAccount`] belongs to one payment: issued by a bank for the payment's exact amount, open until its due
//! date, then paid, expired or closed. A [`BankDeposit`] is paygate's record of one deposit the bank reported,
//! keyed by the bank's own deposit ID, so a deposit notified a hundred times, or found again in the bank's feed,
//! is decided once. A deposit either pays its account ([`DepositDecision::Apply`]) or is held for its depositor and
//! returned whole; nothing is ever half-accepted (`bank::decide_deposit`).
//!
//! Both keep their fields private (read through `Deref`), change only through the transitions below, and yield the
//! next `version`: the store writes a change conditionally on the version it came from.

use crate::api_key::Mode;
use crate::bank::{
    decide_deposit, AwaitedDeposit, Bank, DepositDecision, DepositRefundReason, RefundStatus, SettlementStatus,
};
use crate::id::{BankRefundId, DepositId, MerchantId, PaymentId};
use crate::money::Money;
use crate::time::UnixMillis;

/// Where a virtual account stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AccountStatus {
    /// Waiting for its deposit.
    Open,
    /// Its deposit arrived and paid the payment.
    Paid,
    /// The due date passed without a matching deposit; the bank refuses further deposits.
    Expired,
    /// Closed before any deposit (the payment was cancelled while waiting).
    Closed,
}

impl AccountStatus {
    pub const ALL: [AccountStatus; 4] = [
        AccountStatus::Open,
        AccountStatus::Paid,
        AccountStatus::Expired,
        AccountStatus::Closed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AccountStatus::Open => "OPEN",
            AccountStatus::Paid => "PAID",
            AccountStatus::Expired => "EXPIRED",
            AccountStatus::Closed => "CLOSED",
        }
    }

    pub fn parse(text: &str) -> Option<AccountStatus> {
        AccountStatus::ALL.into_iter().find(|s| s.as_str() == text)
    }
}

/// What a virtual account holds, as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VirtualAccountFields {
    pub payment_id: PaymentId,
    pub merchant_id: MerchantId,
    pub mode: Mode,
    pub bank: Bank,
    pub account_number: String,
    /// Who is expected to deposit (Toss's `customerName`).
    pub customer_name: String,
    pub amount: Money,
    pub issued_at: UnixMillis,
    /// Deposits at or after it pay nothing.
    pub due_at: UnixMillis,
    pub status: AccountStatus,
    /// The deposit that paid it.
    pub paid_by: Option<DepositId>,
    pub deposited_at: Option<UnixMillis>,
    pub depositor_name: Option<String>,
    pub refund_status: RefundStatus,
    pub settlement_status: SettlementStatus,
    pub version: i64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VirtualAccount(VirtualAccountFields);

impl std::ops::Deref for VirtualAccount {
    type Target = VirtualAccountFields;

    fn deref(&self) -> &VirtualAccountFields {
        &self.0
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum VirtualAccountError {
    #[error("the virtual account is {status:?}, not open")]
    NotOpen { status: AccountStatus },
    #[error("the virtual account's due date has not passed")]
    NotDue,
    #[error("the virtual account was not paid")]
    NotPaid,
    #[error("a refund of the virtual account's payment is already in progress")]
    RefundInProgress,
    #[error("no refund of the virtual account's payment is in progress")]
    NoRefundInProgress,
}

/// A new account's parts, as the bank issued it.
#[derive(Clone, Debug)]
pub struct NewVirtualAccount {
    pub payment_id: PaymentId,
    pub merchant_id: MerchantId,
    pub mode: Mode,
    pub bank: Bank,
    pub account_number: String,
    pub customer_name: String,
    pub amount: Money,
    pub issued_at: UnixMillis,
    pub due_at: UnixMillis,
}

impl VirtualAccount {
    pub fn issue(new: NewVirtualAccount) -> VirtualAccount {
        VirtualAccount(VirtualAccountFields {
            payment_id: new.payment_id,
            merchant_id: new.merchant_id,
            mode: new.mode,
            bank: new.bank,
            account_number: new.account_number,
            customer_name: new.customer_name,
            amount: new.amount,
            issued_at: new.issued_at,
            due_at: new.due_at,
            status: AccountStatus::Open,
            paid_by: None,
            deposited_at: None,
            depositor_name: None,
            refund_status: RefundStatus::None,
            settlement_status: SettlementStatus::Incompleted,
            version: 1,
        })
    }

    pub fn restore(fields: VirtualAccountFields) -> VirtualAccount {
        VirtualAccount(fields)
    }

    fn next(&self) -> VirtualAccountFields {
        let mut next = self.0.clone();
        next.version = self.version.saturating_add(1);
        next
    }

    /// Toss's `virtualAccount.expired`: no deposit can pay it any more (expired, closed, or past due and not yet
    /// swept by the worker).
    pub fn expired_at(&self, now: UnixMillis) -> bool {
        match self.status {
            AccountStatus::Open => now >= self.due_at,
            AccountStatus::Paid => false,
            AccountStatus::Expired | AccountStatus::Closed => true,
        }
    }

    /// What `deposit` does to this account: the decision, and the account's next version if it pays it.
    pub fn take_deposit(&self, deposit: &BankDeposit) -> (DepositDecision, Option<VirtualAccount>) {
        let awaited = AwaitedDeposit {
            amount: self.amount,
            due_at: self.due_at,
            waiting: self.status == AccountStatus::Open,
        };
        let decision = decide_deposit(awaited, deposit.amount, deposit.deposited_at);
        match decision {
            DepositDecision::Apply => {
                let mut next = self.next();
                next.status = AccountStatus::Paid;
                next.paid_by = Some(deposit.id);
                next.deposited_at = Some(deposit.deposited_at);
                next.depositor_name = Some(deposit.depositor_name.clone());
                (decision, Some(VirtualAccount(next)))
            }
            DepositDecision::Refund(_) => (decision, None),
        }
    }

    /// The due date passed with no deposit.
    pub fn expire(&self, now: UnixMillis) -> Result<VirtualAccount, VirtualAccountError> {
        self.open()?;
        if now < self.due_at {
            return Err(VirtualAccountError::NotDue);
        }
        let mut next = self.next();
        next.status = AccountStatus::Expired;
        Ok(VirtualAccount(next))
    }

    /// The payment was cancelled before its deposit: the account is closed at the bank.
    pub fn close(&self) -> Result<VirtualAccount, VirtualAccountError> {
        self.open()?;
        let mut next = self.next();
        next.status = AccountStatus::Closed;
        Ok(VirtualAccount(next))
    }

    fn open(&self) -> Result<(), VirtualAccountError> {
        match self.status {
            AccountStatus::Open => Ok(()),
            status => Err(VirtualAccountError::NotOpen { status }),
        }
    }

    /// A cancel of the paid payment asked the bank to refund the buyer.
    pub fn refund_requested(&self) -> Result<VirtualAccount, VirtualAccountError> {
        if self.status != AccountStatus::Paid {
            return Err(VirtualAccountError::NotPaid);
        }
        if self.refund_status == RefundStatus::Pending {
            return Err(VirtualAccountError::RefundInProgress);
        }
        let mut next = self.next();
        next.refund_status = RefundStatus::Pending;
        Ok(VirtualAccount(next))
    }

    /// The bank answered the refund. `partial` says the refund was for part of the payment (Toss's
    /// `PARTIAL_FAILED` when such a refund fails).
    pub fn refund_answered(&self, paid: bool, partial: bool) -> Result<VirtualAccount, VirtualAccountError> {
        if self.refund_status != RefundStatus::Pending {
            return Err(VirtualAccountError::NoRefundInProgress);
        }
        let mut next = self.next();
        next.refund_status = match (paid, partial) {
            (true, _) => RefundStatus::Completed,
            (false, true) => RefundStatus::PartialFailed,
            (false, false) => RefundStatus::Failed,
        };
        Ok(VirtualAccount(next))
    }
}

/// Where the return of a deposit that paid nothing stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ReturnStatus {
    /// The deposit paid its account: nothing to return.
    NotNeeded,
    /// Held for its depositor; the bank is asked (again) to pay it back.
    Requested,
    /// Back with its depositor.
    Returned,
    /// The bank refused to pay it back (the depositor's account is unknown, say): an operator must act.
    Failed,
}

impl ReturnStatus {
    pub const ALL: [ReturnStatus; 4] = [
        ReturnStatus::NotNeeded,
        ReturnStatus::Requested,
        ReturnStatus::Returned,
        ReturnStatus::Failed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ReturnStatus::NotNeeded => "NOT_NEEDED",
            ReturnStatus::Requested => "REQUESTED",
            ReturnStatus::Returned => "RETURNED",
            ReturnStatus::Failed => "FAILED",
        }
    }

    pub fn parse(text: &str) -> Option<ReturnStatus> {
        ReturnStatus::ALL.into_iter().find(|s| s.as_str() == text)
    }
}

/// One deposit a bank reported, as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BankDepositFields {
    pub id: DepositId,
    pub bank: Bank,
    /// The bank's own ID of the deposit: unique per bank, what makes a repeated notification the same deposit.
    pub bank_deposit_id: String,
    pub account_number: String,
    pub payment_id: PaymentId,
    pub merchant_id: MerchantId,
    pub mode: Mode,
    pub amount: Money,
    pub depositor_name: String,
    pub deposited_at: UnixMillis,
    pub received_at: UnixMillis,
    /// Why it paid nothing; `None` when it paid its account.
    pub held_because: Option<DepositRefundReason>,
    pub return_status: ReturnStatus,
    /// The refund that returns it, once asked for.
    pub return_refund: Option<BankRefundId>,
    /// When the return worker next asks the bank to return it (or about its return); `None` when nothing is due.
    pub next_attempt_at: Option<UnixMillis>,
    pub attempts: u32,
    pub version: i64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BankDeposit(BankDepositFields);

impl std::ops::Deref for BankDeposit {
    type Target = BankDepositFields;

    fn deref(&self) -> &BankDepositFields {
        &self.0
    }
}

/// A deposit as the bank reported it, before paygate decided anything.
#[derive(Clone, Debug)]
pub struct ReportedDeposit {
    pub id: DepositId,
    pub bank: Bank,
    pub bank_deposit_id: String,
    pub account_number: String,
    pub amount: Money,
    pub depositor_name: String,
    pub deposited_at: UnixMillis,
    pub received_at: UnixMillis,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DepositError {
    #[error("the deposit paid its account: there is nothing to return")]
    NothingToReturn,
    #[error("the deposit's return is not in progress")]
    ReturnNotRequested,
}

impl BankDeposit {
    /// Records `reported` against `account`, and decides it: the deposit record, and the account's next version if
    /// the deposit pays it.
    pub fn receive(reported: ReportedDeposit, account: &VirtualAccount) -> (BankDeposit, Option<VirtualAccount>) {
        let mut deposit = BankDeposit(BankDepositFields {
            id: reported.id,
            bank: reported.bank,
            bank_deposit_id: reported.bank_deposit_id,
            account_number: reported.account_number,
            payment_id: account.payment_id,
            merchant_id: account.merchant_id,
            mode: account.mode,
            amount: reported.amount,
            depositor_name: reported.depositor_name,
            deposited_at: reported.deposited_at,
            received_at: reported.received_at,
            held_because: None,
            return_status: ReturnStatus::NotNeeded,
            return_refund: None,
            next_attempt_at: None,
            attempts: 0,
            version: 1,
        });
        let (decision, paid) = account.take_deposit(&deposit);
        if let DepositDecision::Refund(reason) = decision {
            deposit.0.held_because = Some(reason);
            deposit.0.return_status = ReturnStatus::Requested;
            deposit.0.next_attempt_at = Some(deposit.received_at);
        }
        (deposit, paid)
    }

    pub fn restore(fields: BankDepositFields) -> BankDeposit {
        BankDeposit(fields)
    }

    /// The return is about to be sent to the bank under `refund` (recorded first, so a crash after the call is
    /// asked again, at `retry_at`, under the same reference); a repeat keeps the first refund's ID, since the bank
    /// answers a repeated reference with its first answer.
    pub fn return_sent(&self, refund: BankRefundId, retry_at: UnixMillis) -> Result<BankDeposit, DepositError> {
        if self.return_status != ReturnStatus::Requested {
            return Err(DepositError::ReturnNotRequested);
        }
        let mut next = self.0.clone();
        next.return_refund = Some(self.return_refund.unwrap_or(refund));
        next.attempts = self.attempts.saturating_add(1);
        next.next_attempt_at = Some(retry_at);
        next.version = self.version.saturating_add(1);
        Ok(BankDeposit(next))
    }

    /// The bank answered the return.
    pub fn return_answered(&self, paid: bool) -> Result<BankDeposit, DepositError> {
        if self.held_because.is_none() {
            return Err(DepositError::NothingToReturn);
        }
        if self.return_status != ReturnStatus::Requested {
            return Err(DepositError::ReturnNotRequested);
        }
        let mut next = self.0.clone();
        next.return_status = if paid {
            ReturnStatus::Returned
        } else {
            ReturnStatus::Failed
        };
        next.next_attempt_at = None;
        next.version = self.version.saturating_add(1);
        Ok(BankDeposit(next))
    }
}

/// Where a refund of a bank payment's cancel stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RefundState {
    /// Recorded and sent (or about to be); the bank's answer is not in.
    Requested,
    /// The bank paid it to the named account.
    Done,
    /// The bank refused it (the account or its holder did not match): nothing was paid.
    Failed,
}

impl RefundState {
    pub const ALL: [RefundState; 3] = [RefundState::Requested, RefundState::Done, RefundState::Failed];

    pub fn as_str(self) -> &'static str {
        match self {
            RefundState::Requested => "REQUESTED",
            RefundState::Done => "DONE",
            RefundState::Failed => "FAILED",
        }
    }

    pub fn parse(text: &str) -> Option<RefundState> {
        RefundState::ALL.into_iter().find(|s| s.as_str() == text)
    }
}

/// The account a refund goes to, as the buyer named it (Toss's `refundReceiveAccount`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RefundAccount {
    pub bank: Bank,
    pub account_number: String,
    pub holder_name: String,
}

/// A refund through the bank of one cancel of a paid virtual account, as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BankRefundFields {
    pub id: BankRefundId,
    /// The cancel it pays.
    pub transaction_key: crate::id::TransactionKey,
    pub payment_id: PaymentId,
    pub merchant_id: MerchantId,
    pub mode: Mode,
    pub to: RefundAccount,
    pub amount: Money,
    pub state: RefundState,
    /// The bank's refusal code, once refused.
    pub failure_code: Option<String>,
    /// The bank's ID of the paid refund.
    pub bank_refund_id: Option<String>,
    pub created_at: UnixMillis,
    pub completed_at: Option<UnixMillis>,
    /// When the worker asks the bank again (the same reference) while the answer is not in.
    pub next_attempt_at: Option<UnixMillis>,
    pub attempts: u32,
    pub version: i64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BankRefund(BankRefundFields);

impl std::ops::Deref for BankRefund {
    type Target = BankRefundFields;

    fn deref(&self) -> &BankRefundFields {
        &self.0
    }
}

/// A new refund's parts.
#[derive(Clone, Debug)]
pub struct NewBankRefund {
    pub id: BankRefundId,
    pub transaction_key: crate::id::TransactionKey,
    pub payment_id: PaymentId,
    pub merchant_id: MerchantId,
    pub mode: Mode,
    pub to: RefundAccount,
    pub amount: Money,
    pub now: UnixMillis,
    /// When to ask the bank again if this attempt's answer is lost.
    pub retry_at: UnixMillis,
}

impl BankRefund {
    /// Recorded before the bank is asked, with its first attempt counted.
    pub fn request(new: NewBankRefund) -> BankRefund {
        BankRefund(BankRefundFields {
            id: new.id,
            transaction_key: new.transaction_key,
            payment_id: new.payment_id,
            merchant_id: new.merchant_id,
            mode: new.mode,
            to: new.to,
            amount: new.amount,
            state: RefundState::Requested,
            failure_code: None,
            bank_refund_id: None,
            created_at: new.now,
            completed_at: None,
            next_attempt_at: Some(new.retry_at),
            attempts: 1,
            version: 1,
        })
    }

    pub fn restore(fields: BankRefundFields) -> BankRefund {
        BankRefund(fields)
    }

    fn next(&self) -> Result<BankRefundFields, DepositError> {
        if self.state != RefundState::Requested {
            return Err(DepositError::ReturnNotRequested);
        }
        let mut next = self.0.clone();
        next.version = self.version.saturating_add(1);
        Ok(next)
    }

    /// Asked again (the same reference), to be asked once more at `retry_at` if this answer is lost too.
    pub fn resent(&self, retry_at: UnixMillis) -> Result<BankRefund, DepositError> {
        let mut next = self.next()?;
        next.attempts = self.attempts.saturating_add(1);
        next.next_attempt_at = Some(retry_at);
        Ok(BankRefund(next))
    }

    /// The bank paid it.
    pub fn paid(&self, bank_refund_id: String, at: UnixMillis) -> Result<BankRefund, DepositError> {
        let mut next = self.next()?;
        next.state = RefundState::Done;
        next.bank_refund_id = Some(bank_refund_id);
        next.completed_at = Some(at);
        next.next_attempt_at = None;
        Ok(BankRefund(next))
    }

    /// The bank refused it: nothing was paid.
    pub fn refused(&self, code: &str, at: UnixMillis) -> Result<BankRefund, DepositError> {
        let mut next = self.next()?;
        next.state = RefundState::Failed;
        next.failure_code = Some(code.to_owned());
        next.completed_at = Some(at);
        next.next_attempt_at = None;
        Ok(BankRefund(next))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_refund_is_answered_once() {
        let refund = BankRefund::request(NewBankRefund {
            id: BankRefundId::new(UnixMillis::new(1), [3; 10]),
            transaction_key: crate::id::TransactionKey::new(UnixMillis::new(1), [4; 10]),
            payment_id: PaymentId::new(UnixMillis::new(1), [1; 10]),
            merchant_id: MerchantId::new(UnixMillis::new(1), [2; 10]),
            mode: Mode::Test,
            to: RefundAccount {
                bank: Bank::parse("88").unwrap(),
                account_number: "12345678901".into(),
                holder_name: "홍길동".into(),
            },
            amount: Money::krw(5_000),
            now: UnixMillis::new(10),
            retry_at: UnixMillis::new(1_010),
        });
        assert_eq!(
            (refund.state, refund.attempts, refund.version),
            (RefundState::Requested, 1, 1)
        );
        let again = refund.resent(UnixMillis::new(3_000)).unwrap();
        assert_eq!(
            (again.attempts, again.next_attempt_at),
            (2, Some(UnixMillis::new(3_000)))
        );
        let paid = again.paid("rfd_1".into(), UnixMillis::new(2_000)).unwrap();
        assert_eq!(
            (paid.state, paid.next_attempt_at, paid.version),
            (RefundState::Done, None, 3)
        );
        assert!(paid.refused("HOLDER_MISMATCH", UnixMillis::new(2_001)).is_err());
        assert!(paid.resent(UnixMillis::new(4_000)).is_err());
        let refused = refund.refused("HOLDER_MISMATCH", UnixMillis::new(20)).unwrap();
        assert_eq!(refused.failure_code.as_deref(), Some("HOLDER_MISMATCH"));
        for state in RefundState::ALL {
            assert_eq!(RefundState::parse(state.as_str()), Some(state));
        }
    }

    fn account(amount: i64) -> VirtualAccount {
        VirtualAccount::issue(NewVirtualAccount {
            payment_id: PaymentId::new(UnixMillis::new(1), [1; 10]),
            merchant_id: MerchantId::new(UnixMillis::new(1), [2; 10]),
            mode: Mode::Test,
            bank: Bank::parse("88").unwrap(),
            account_number: "98800000000017".into(),
            customer_name: "박토스".into(),
            amount: Money::krw(amount),
            issued_at: UnixMillis::new(1_000),
            due_at: UnixMillis::new(100_000),
        })
    }

    fn reported(n: u8, amount: i64, at: i64) -> ReportedDeposit {
        ReportedDeposit {
            id: DepositId::new(UnixMillis::new(at), [n; 10]),
            bank: Bank::parse("88").unwrap(),
            bank_deposit_id: format!("dep_{n}"),
            account_number: "98800000000017".into(),
            amount: Money::krw(amount),
            depositor_name: "박토스".into(),
            deposited_at: UnixMillis::new(at),
            received_at: UnixMillis::new(at + 5),
        }
    }

    #[test]
    fn the_right_deposit_pays_the_account_once() {
        let open = account(15_000);
        assert!(!open.expired_at(UnixMillis::new(99_999)));
        assert!(
            open.expired_at(UnixMillis::new(100_000)),
            "past due is expired before the sweep"
        );
        let (deposit, paid) = BankDeposit::receive(reported(1, 15_000, 50_000), &open);
        let paid = paid.unwrap();
        assert_eq!((paid.status, paid.version), (AccountStatus::Paid, 2));
        assert_eq!(paid.paid_by, Some(deposit.id));
        assert_eq!(paid.deposited_at, Some(UnixMillis::new(50_000)));
        assert_eq!(
            (deposit.held_because, deposit.return_status),
            (None, ReturnStatus::NotNeeded)
        );
        assert_eq!(deposit.return_answered(true), Err(DepositError::NothingToReturn));
        assert!(!paid.expired_at(UnixMillis::new(1_000_000)));

        // A second deposit of the right amount pays nothing: it is held and returned.
        let (second, none) = BankDeposit::receive(reported(2, 15_000, 60_000), &paid);
        assert!(none.is_none());
        assert_eq!(second.held_because, Some(DepositRefundReason::NotWaiting));
        assert_eq!(second.return_status, ReturnStatus::Requested);
    }

    #[test]
    fn wrong_and_late_deposits_are_held_and_returned() {
        let open = account(15_000);
        let (wrong, none) = BankDeposit::receive(reported(1, 14_000, 50_000), &open);
        assert!(none.is_none());
        assert_eq!(wrong.held_because, Some(DepositRefundReason::WrongAmount));
        let refund = BankRefundId::new(UnixMillis::new(1), [9; 10]);
        let sent = wrong.return_sent(refund, UnixMillis::new(9)).unwrap();
        let again = sent
            .return_sent(BankRefundId::new(UnixMillis::new(2), [8; 10]), UnixMillis::new(9))
            .unwrap();
        assert_eq!(again.return_refund, Some(refund), "a repeat keeps the first reference");
        let returned = again.return_answered(true).unwrap();
        assert_eq!(returned.return_status, ReturnStatus::Returned);
        assert_eq!(returned.return_answered(true), Err(DepositError::ReturnNotRequested));

        let (late, none) = BankDeposit::receive(reported(2, 15_000, 100_000), &open);
        assert!(none.is_none());
        assert_eq!(late.held_because, Some(DepositRefundReason::AfterDueDate));
        assert_eq!(late.return_answered(false).unwrap().return_status, ReturnStatus::Failed);
    }

    #[test]
    fn expiry_closing_and_refunds() {
        let open = account(15_000);
        assert_eq!(open.expire(UnixMillis::new(99_999)), Err(VirtualAccountError::NotDue));
        let expired = open.expire(UnixMillis::new(100_000)).unwrap();
        assert_eq!(expired.status, AccountStatus::Expired);
        assert_eq!(
            expired.close(),
            Err(VirtualAccountError::NotOpen {
                status: AccountStatus::Expired
            })
        );
        let (late, none) = BankDeposit::receive(reported(1, 15_000, 90_000), &expired);
        assert!(
            none.is_none(),
            "an expired account takes nothing, even before its due time"
        );
        assert_eq!(late.held_because, Some(DepositRefundReason::NotWaiting));

        let closed = open.close().unwrap();
        assert!(closed.expired_at(UnixMillis::new(0)));
        assert_eq!(closed.refund_requested(), Err(VirtualAccountError::NotPaid));

        let (_, paid) = BankDeposit::receive(reported(2, 15_000, 50_000), &open);
        let paid = paid.unwrap();
        assert_eq!(
            paid.refund_answered(true, false),
            Err(VirtualAccountError::NoRefundInProgress)
        );
        let pending = paid.refund_requested().unwrap();
        assert_eq!(pending.refund_status, RefundStatus::Pending);
        assert_eq!(pending.refund_requested(), Err(VirtualAccountError::RefundInProgress));
        assert_eq!(
            pending.refund_answered(false, true).unwrap().refund_status,
            RefundStatus::PartialFailed
        );
        let failed = pending.refund_answered(false, false).unwrap();
        assert_eq!(failed.refund_status, RefundStatus::Failed);
        // A failed refund can be asked again (with a corrected account).
        let retried = failed.refund_requested().unwrap();
        assert_eq!(
            retried.refund_answered(true, false).unwrap().refund_status,
            RefundStatus::Completed
        );
        assert_eq!(retried.version, 5);
    }

    #[test]
    fn names_round_trip() {
        for s in AccountStatus::ALL {
            assert_eq!(AccountStatus::parse(s.as_str()), Some(s));
        }
        for s in ReturnStatus::ALL {
            assert_eq!(ReturnStatus::parse(s.as_str()), Some(s));
        }
    }
}
