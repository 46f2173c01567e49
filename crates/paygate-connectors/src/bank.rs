//! The sandbox bank's ledger of accounts, deposits and refunds (the state behind `BANK-PROTOCOL.md`, a draft).
//!
//! It issues virtual account numbers (with a check digit, so a mistyped number is unknown), accepts deposits to
//! them, lists deposits as a feed ordered by `seq`, closes accounts, refunds to a named account, and journals every
//! step. Every paygate call carries a caller reference; a repeat with the same reference is the same request and
//! gets the first answer, so a retry after a timeout never issues or refunds twice.
//!
//! This is the in-process core. The HTTP simulator (`paygate bank-sim`), the deposit notifications and fault
//! injection are built on it in later steps of issue 12.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use paygate_domain::bank::Bank;
use paygate_domain::money::Money;
use paygate_domain::time::UnixMillis;

use crate::sandbox::{system_clock, Clock};

mod transfer;
pub use transfer::{
    AuthorizationView, AuthorizeRetry, AuthorizeStep, BeginTransfer, Debit, DebitAnswer, TransferSession,
    AUTHORIZATION_TTL_MS, PIN_TRIES_MAX,
};

/// Why the bank refused a request. Stable codes (`BANK-PROTOCOL.md`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BankRefusal {
    #[error("the bank code is not one this bank serves")]
    NotSupportedBank,
    #[error("no such account")]
    UnknownAccount,
    #[error("the account is closed")]
    AccountClosed,
    #[error("the holder's name does not match the account")]
    HolderMismatch,
    #[error("the amount must be positive")]
    InvalidAmount,
    #[error("the reference was already used with a different request")]
    DuplicateReference,
    #[error("the bank's journal is full")]
    Capacity,
    #[error("the transfer's authorization is unknown, used or expired")]
    InvalidAuthorization,
    #[error("the account's balance does not cover the debit")]
    InsufficientFunds,
}

impl BankRefusal {
    pub const ALL: [BankRefusal; 9] = [
        BankRefusal::NotSupportedBank,
        BankRefusal::UnknownAccount,
        BankRefusal::AccountClosed,
        BankRefusal::HolderMismatch,
        BankRefusal::InvalidAmount,
        BankRefusal::DuplicateReference,
        BankRefusal::Capacity,
        BankRefusal::InvalidAuthorization,
        BankRefusal::InsufficientFunds,
    ];

    /// A refusal by its code, as the protocol's answers carry it.
    pub fn parse(code: &str) -> Option<BankRefusal> {
        BankRefusal::ALL.into_iter().find(|r| r.code() == code)
    }

    pub fn code(self) -> &'static str {
        match self {
            BankRefusal::NotSupportedBank => "NOT_SUPPORTED_BANK",
            BankRefusal::UnknownAccount => "UNKNOWN_ACCOUNT",
            BankRefusal::AccountClosed => "ACCOUNT_CLOSED",
            BankRefusal::HolderMismatch => "HOLDER_MISMATCH",
            BankRefusal::InvalidAmount => "INVALID_AMOUNT",
            BankRefusal::DuplicateReference => "DUPLICATE_REFERENCE",
            BankRefusal::Capacity => "SYSTEM_ERROR",
            BankRefusal::InvalidAuthorization => "INVALID_AUTHORIZATION",
            BankRefusal::InsufficientFunds => "INSUFFICIENT_FUNDS",
        }
    }
}

/// Issue a virtual account for one expected deposit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IssueAccount {
    pub reference: String,
    pub merchant_id: String,
    pub bank_code: Bank,
    pub amount: Money,
    pub holder_name: String,
    pub expires_at: UnixMillis,
}

/// An issued virtual account.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IssuedAccount {
    pub account_number: String,
    pub bank_code: Bank,
    pub issued_at: UnixMillis,
}

/// A deposit someone makes (a person at an ATM, a test).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MakeDeposit {
    pub account_number: String,
    pub amount: Money,
    pub depositor_name: String,
    /// When it happened; the bank's clock if absent.
    pub at: Option<UnixMillis>,
}

/// A deposit, as the feed and the notifications report it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Deposit {
    /// Orders the bank's deposits; starts at 1.
    pub seq: u64,
    pub deposit_id: String,
    pub merchant_id: String,
    pub account_number: String,
    pub bank_code: Bank,
    pub amount: Money,
    pub depositor_name: String,
    pub deposited_at: UnixMillis,
}

/// A refund to a named account.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refund {
    pub reference: String,
    pub merchant_id: String,
    pub bank_code: Bank,
    pub account_number: String,
    pub holder_name: String,
    pub amount: Money,
}

/// The bank's answer to a refund, kept per reference.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RefundAnswer {
    Done { refund_id: String, refunded_at: UnixMillis },
    Failed { refusal: BankRefusal },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BankJournalKind {
    AccountIssued,
    AccountClosed,
    Deposit,
    Refund,
    Debit,
}

impl BankJournalKind {
    pub fn as_str(self) -> &'static str {
        match self {
            BankJournalKind::AccountIssued => "ACCOUNT_ISSUED",
            BankJournalKind::AccountClosed => "ACCOUNT_CLOSED",
            BankJournalKind::Deposit => "DEPOSIT",
            BankJournalKind::Refund => "REFUND",
            BankJournalKind::Debit => "DEBIT",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BankJournalEntry {
    pub seq: u64,
    pub at: UnixMillis,
    pub kind: BankJournalKind,
    pub merchant_id: String,
    /// The caller's reference (issue, close, refund) or the deposit's ID.
    pub reference: String,
    pub account_number: String,
    /// Money that moved (deposits, refunds); `None` for issuing and closing.
    pub amount: Option<Money>,
}

/// Bounds of the sandbox bank's memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BankBounds {
    /// Journal entries kept; beyond them every request that would add one is refused (`SYSTEM_ERROR`).
    pub journal_max: usize,
}

impl Default for BankBounds {
    fn default() -> BankBounds {
        BankBounds { journal_max: 1_000_000 }
    }
}

struct Account {
    number: String,
    bank_code: Bank,
    merchant_id: String,
    reference: String,
    amount: Money,
    holder_name: String,
    issued_at: UnixMillis,
    closed: bool,
}

#[derive(Default)]
struct State {
    serial: u64,
    /// Set by [`SandboxBank::with_serial_start`]: makes deposit IDs unique across restarts.
    deposit_prefix: String,
    accounts: HashMap<String, Account>,
    by_reference: HashMap<(String, String), String>,
    deposits: Vec<Deposit>,
    refunds: HashMap<(String, String), (Refund, RefundAnswer)>,
    /// Deposits returned to their depositor.
    returned: std::collections::HashSet<String>,
    transfers: transfer::Transfers,
    journal: Vec<BankJournalEntry>,
}

impl State {
    /// Appends `entry` with the next `seq`; refused once the journal holds `bounds.journal_max` entries.
    fn record(&mut self, bounds: BankBounds, mut entry: BankJournalEntry) -> Result<(), BankRefusal> {
        if self.journal.len() >= bounds.journal_max {
            return Err(BankRefusal::Capacity);
        }
        entry.seq = u64::try_from(self.journal.len()).map_err(|_| BankRefusal::Capacity)? + 1;
        self.journal.push(entry);
        Ok(())
    }
}

fn entry(
    at: UnixMillis,
    kind: BankJournalKind,
    merchant_id: &str,
    reference: &str,
    account_number: &str,
    amount: Option<Money>,
) -> BankJournalEntry {
    BankJournalEntry {
        seq: 0,
        at,
        kind,
        merchant_id: merchant_id.to_owned(),
        reference: reference.to_owned(),
        account_number: account_number.to_owned(),
        amount,
    }
}

/// The sandbox bank. Cheap to clone; clones share state.
#[derive(Clone)]
pub struct SandboxBank {
    state: Arc<Mutex<State>>,
    banks: Arc<Vec<Bank>>,
    bounds: BankBounds,
    clock: Clock,
}

impl SandboxBank {
    /// A bank serving these bank codes, on the system clock.
    pub fn new(banks: Vec<Bank>) -> SandboxBank {
        SandboxBank {
            state: Arc::new(Mutex::new(State::default())),
            banks: Arc::new(banks),
            bounds: BankBounds::default(),
            clock: Arc::new(system_clock),
        }
    }

    pub fn with_clock(mut self, clock: impl Fn() -> UnixMillis + Send + Sync + 'static) -> SandboxBank {
        self.clock = Arc::new(clock);
        self
    }

    /// Starts account serials after `start` and prefixes deposit IDs with it. The bank keeps its state in memory: an
    /// in-process bank restarted with the current time in milliseconds as `start` issues no account number and no
    /// deposit ID it issued before (unless a previous run issued more accounts than milliseconds passed since it
    /// started), while the gateway's database still remembers those.
    pub fn with_serial_start(self, start: u64) -> SandboxBank {
        {
            let mut state = self.lock();
            state.serial = start % 10_000_000_000;
            state.deposit_prefix = format!("{start}_");
        }
        self
    }

    pub fn with_bounds(mut self, bounds: BankBounds) -> SandboxBank {
        self.bounds = bounds;
        self
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding the lock leaves plain data behind; the sandbox keeps serving.
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Issues a virtual account. The same reference again answers the same account; with another amount, bank or
    /// holder it is refused.
    pub fn issue(&self, request: &IssueAccount) -> Result<IssuedAccount, BankRefusal> {
        if !self.banks.contains(&request.bank_code) {
            return Err(BankRefusal::NotSupportedBank);
        }
        if !request.amount.is_positive() {
            return Err(BankRefusal::InvalidAmount);
        }
        let now = (self.clock)();
        let mut state = self.lock();
        let key = (request.merchant_id.clone(), request.reference.clone());
        if let Some(number) = state.by_reference.get(&key) {
            let account = state.accounts.get(number).ok_or(BankRefusal::UnknownAccount)?;
            let same = account.amount == request.amount
                && account.bank_code == request.bank_code
                && account.holder_name == request.holder_name;
            return if same {
                Ok(IssuedAccount {
                    account_number: account.number.clone(),
                    bank_code: account.bank_code,
                    issued_at: account.issued_at,
                })
            } else {
                Err(BankRefusal::DuplicateReference)
            };
        }
        state.serial += 1;
        let number = account_number(&request.bank_code, state.serial);
        state.record(
            self.bounds,
            entry(
                now,
                BankJournalKind::AccountIssued,
                &request.merchant_id,
                &request.reference,
                &number,
                None,
            ),
        )?;
        state.accounts.insert(
            number.clone(),
            Account {
                number: number.clone(),
                bank_code: request.bank_code,
                merchant_id: request.merchant_id.clone(),
                reference: request.reference.clone(),
                amount: request.amount,
                holder_name: request.holder_name.clone(),
                issued_at: now,
                closed: false,
            },
        );
        state.by_reference.insert(key, number.clone());
        Ok(IssuedAccount {
            account_number: number,
            bank_code: request.bank_code,
            issued_at: now,
        })
    }

    /// Closes an account: later deposits are refused. Closing a closed account changes nothing.
    pub fn close(&self, merchant_id: &str, account_number: &str) -> Result<(), BankRefusal> {
        let now = (self.clock)();
        let mut state = self.lock();
        let account = state
            .accounts
            .get(account_number)
            .filter(|a| a.merchant_id == merchant_id)
            .ok_or(BankRefusal::UnknownAccount)?;
        if account.closed {
            return Ok(());
        }
        let reference = account.reference.clone();
        state.record(
            self.bounds,
            entry(
                now,
                BankJournalKind::AccountClosed,
                merchant_id,
                &reference,
                account_number,
                None,
            ),
        )?;
        if let Some(account) = state.accounts.get_mut(account_number) {
            account.closed = true;
        }
        Ok(())
    }

    /// A deposit to an open account, of any positive amount: whether it matches is the gateway's decision.
    pub fn deposit(&self, request: &MakeDeposit) -> Result<Deposit, BankRefusal> {
        if !request.amount.is_positive() {
            return Err(BankRefusal::InvalidAmount);
        }
        let at = request.at.unwrap_or_else(|| (self.clock)());
        let mut state = self.lock();
        let account = state
            .accounts
            .get(&request.account_number)
            .ok_or(BankRefusal::UnknownAccount)?;
        if account.closed {
            return Err(BankRefusal::AccountClosed);
        }
        if account.amount.currency() != request.amount.currency() {
            return Err(BankRefusal::InvalidAmount);
        }
        let (merchant_id, bank_code) = (account.merchant_id.clone(), account.bank_code);
        let seq = u64::try_from(state.deposits.len()).map_err(|_| BankRefusal::Capacity)? + 1;
        let deposit = Deposit {
            seq,
            deposit_id: format!("dep_{}{seq:012}", state.deposit_prefix),
            merchant_id,
            account_number: request.account_number.clone(),
            bank_code,
            amount: request.amount,
            depositor_name: request.depositor_name.clone(),
            deposited_at: at,
        };
        state.record(
            self.bounds,
            entry(
                at,
                BankJournalKind::Deposit,
                &deposit.merchant_id,
                &deposit.deposit_id,
                &deposit.account_number,
                Some(deposit.amount),
            ),
        )?;
        state.deposits.push(deposit.clone());
        Ok(deposit)
    }

    /// Every merchant's deposits with `seq` above `after_seq`, oldest first, at most `limit`: the feed of the
    /// gateway, which holds the accounts of all its merchants at this bank.
    pub fn all_deposits_after(&self, after_seq: u64, limit: usize) -> Vec<Deposit> {
        let state = self.lock();
        let start = usize::try_from(after_seq)
            .unwrap_or(usize::MAX)
            .min(state.deposits.len());
        state.deposits[start..].iter().take(limit).cloned().collect()
    }

    /// A merchant's deposits with `seq` above `after_seq`, oldest first, at most `limit`.
    pub fn deposits_after(&self, merchant_id: &str, after_seq: u64, limit: usize) -> Vec<Deposit> {
        let state = self.lock();
        let start = usize::try_from(after_seq)
            .unwrap_or(usize::MAX)
            .min(state.deposits.len());
        state.deposits[start..]
            .iter()
            .filter(|d| d.merchant_id == merchant_id)
            .take(limit)
            .cloned()
            .collect()
    }

    /// Returns a deposit to the account it came from (반환): the whole amount, once per deposit. The same reference
    /// again answers the first answer; another reference for a returned deposit is refused.
    pub fn return_deposit(
        &self,
        merchant_id: &str,
        reference: &str,
        deposit_id: &str,
    ) -> Result<RefundAnswer, BankRefusal> {
        let now = (self.clock)();
        let mut state = self.lock();
        let key = (merchant_id.to_owned(), reference.to_owned());
        if let Some((first, answer)) = state.refunds.get(&key) {
            return if first.account_number == deposit_id {
                Ok(answer.clone())
            } else {
                Err(BankRefusal::DuplicateReference)
            };
        }
        let Some(deposit) = state
            .deposits
            .iter()
            .find(|d| d.deposit_id == deposit_id && d.merchant_id == merchant_id)
            .cloned()
        else {
            return Ok(RefundAnswer::Failed {
                refusal: BankRefusal::UnknownAccount,
            });
        };
        if state.returned.contains(deposit_id) {
            return Err(BankRefusal::DuplicateReference);
        }
        state.record(
            self.bounds,
            entry(
                now,
                BankJournalKind::Refund,
                merchant_id,
                reference,
                &deposit.account_number,
                Some(deposit.amount),
            ),
        )?;
        let answer = RefundAnswer::Done {
            refund_id: format!("rfd_{:012}", state.journal.len()),
            refunded_at: now,
        };
        state.returned.insert(deposit_id.to_owned());
        // Kept with the refunds, under the deposit's ID in place of an account, so a repeat finds its answer.
        let request = Refund {
            reference: reference.to_owned(),
            merchant_id: merchant_id.to_owned(),
            bank_code: deposit.bank_code,
            account_number: deposit_id.to_owned(),
            holder_name: deposit.depositor_name.clone(),
            amount: deposit.amount,
        };
        state.refunds.insert(key, (request, answer.clone()));
        Ok(answer)
    }

    /// Refunds to a named account. The sandbox's accounts: a number ending in `0000` is unknown, the holder
    /// `잘못된예금주` does not match; anything else is paid. The same reference again answers the first answer;
    /// with another request it is refused and the first answer stands.
    pub fn refund(&self, request: &Refund) -> Result<RefundAnswer, BankRefusal> {
        if !self.banks.contains(&request.bank_code) {
            return Err(BankRefusal::NotSupportedBank);
        }
        if !request.amount.is_positive() {
            return Err(BankRefusal::InvalidAmount);
        }
        let now = (self.clock)();
        let mut state = self.lock();
        let key = (request.merchant_id.clone(), request.reference.clone());
        if let Some((first, answer)) = state.refunds.get(&key) {
            return if first == request {
                Ok(answer.clone())
            } else {
                Err(BankRefusal::DuplicateReference)
            };
        }
        let answer = if request.account_number.ends_with("0000") {
            RefundAnswer::Failed {
                refusal: BankRefusal::UnknownAccount,
            }
        } else if request.holder_name == "잘못된예금주" {
            RefundAnswer::Failed {
                refusal: BankRefusal::HolderMismatch,
            }
        } else {
            state.record(
                self.bounds,
                entry(
                    now,
                    BankJournalKind::Refund,
                    &request.merchant_id,
                    &request.reference,
                    &request.account_number,
                    Some(request.amount),
                ),
            )?;
            RefundAnswer::Done {
                refund_id: format!("rfd_{:012}", state.journal.len()),
                refunded_at: now,
            }
        };
        state.refunds.insert(key, (request.clone(), answer.clone()));
        Ok(answer)
    }

    /// The first answer to a refund reference, if the bank has one.
    pub fn inquire_refund(&self, merchant_id: &str, reference: &str) -> Option<RefundAnswer> {
        let state = self.lock();
        state
            .refunds
            .get(&(merchant_id.to_owned(), reference.to_owned()))
            .map(|(_, answer)| answer.clone())
    }

    /// Journal entries with `seq` above `after_seq`, at most `limit`.
    pub fn journal_page(&self, after_seq: u64, limit: usize) -> Vec<BankJournalEntry> {
        let state = self.lock();
        let start = usize::try_from(after_seq)
            .unwrap_or(usize::MAX)
            .min(state.journal.len());
        state.journal[start..].iter().take(limit).cloned().collect()
    }
}

/// A 14-digit account number: `9`, the bank code, a 10-digit serial, and a Luhn check digit, so a mistyped number
/// is an unknown account rather than someone else's.
/// The gateway's side of a bank: what paygate asks of the bank that issues its virtual accounts and pays its
/// refunds. Every request carries a reference, and a repeat answers the first answer, so a call whose answer was
/// lost may be sent again. `Err` is a transport failure (the request may or may not have been applied);
/// `Ok(Err(refusal))` is the bank's answer.
#[async_trait::async_trait]
pub trait BankConnector: Send + Sync + 'static {
    /// Whether this bank issues accounts for `bank` (a bank code).
    fn serves(&self, bank: Bank) -> bool;

    /// The bank codes it issues accounts for.
    fn banks(&self) -> Vec<Bank>;

    async fn issue_account(
        &self,
        request: &IssueAccount,
    ) -> Result<Result<IssuedAccount, BankRefusal>, crate::ConnectorError>;

    /// Closes an account: later deposits are refused at the bank. Closing a closed account changes nothing.
    async fn close_account(
        &self,
        merchant_id: &str,
        account_number: &str,
    ) -> Result<Result<(), BankRefusal>, crate::ConnectorError>;

    /// Refunds to a named account. The same reference again answers the first answer, so a lost answer is asked
    /// again by sending the same request.
    async fn refund(&self, request: &Refund) -> Result<Result<RefundAnswer, BankRefusal>, crate::ConnectorError>;

    /// The bank's deposits with `seq` above `after_seq`, oldest first, at most `limit`: what paygate reads to find
    /// the deposits whose notification never came.
    async fn deposits_after(&self, after_seq: u64, limit: usize) -> Result<Vec<Deposit>, crate::ConnectorError>;

    /// Returns a deposit, whole, to the account it came from, under `reference`.
    async fn return_deposit(
        &self,
        merchant_id: &str,
        reference: &str,
        deposit_id: &str,
    ) -> Result<Result<RefundAnswer, BankRefusal>, crate::ConnectorError>;

    /// Opens an account transfer for the buyer to authorize on the bank's page.
    async fn begin_transfer(
        &self,
        request: &BeginTransfer,
    ) -> Result<Result<TransferSession, BankRefusal>, crate::ConnectorError>;

    /// Debits the account the buyer authorized. The same reference again answers the first answer.
    async fn debit(&self, request: &Debit) -> Result<Result<DebitAnswer, BankRefusal>, crate::ConnectorError>;

    /// The first answer to a debit, if the bank has one (`None`: it never saw the debit, which may be sent again).
    async fn inquire_debit(
        &self,
        merchant_id: &str,
        reference: &str,
    ) -> Result<Option<DebitAnswer>, crate::ConnectorError>;
}

#[async_trait::async_trait]
impl BankConnector for SandboxBank {
    fn serves(&self, bank: Bank) -> bool {
        self.banks.contains(&bank)
    }

    fn banks(&self) -> Vec<Bank> {
        self.banks.to_vec()
    }

    async fn issue_account(
        &self,
        request: &IssueAccount,
    ) -> Result<Result<IssuedAccount, BankRefusal>, crate::ConnectorError> {
        Ok(self.issue(request))
    }

    async fn close_account(
        &self,
        merchant_id: &str,
        account_number: &str,
    ) -> Result<Result<(), BankRefusal>, crate::ConnectorError> {
        Ok(self.close(merchant_id, account_number))
    }

    async fn refund(&self, request: &Refund) -> Result<Result<RefundAnswer, BankRefusal>, crate::ConnectorError> {
        Ok(SandboxBank::refund(self, request))
    }

    async fn deposits_after(&self, after_seq: u64, limit: usize) -> Result<Vec<Deposit>, crate::ConnectorError> {
        Ok(self.all_deposits_after(after_seq, limit))
    }

    async fn return_deposit(
        &self,
        merchant_id: &str,
        reference: &str,
        deposit_id: &str,
    ) -> Result<Result<RefundAnswer, BankRefusal>, crate::ConnectorError> {
        Ok(SandboxBank::return_deposit(self, merchant_id, reference, deposit_id))
    }

    async fn begin_transfer(
        &self,
        request: &BeginTransfer,
    ) -> Result<Result<TransferSession, BankRefusal>, crate::ConnectorError> {
        Ok(SandboxBank::begin_transfer(self, request))
    }

    async fn debit(&self, request: &Debit) -> Result<Result<DebitAnswer, BankRefusal>, crate::ConnectorError> {
        Ok(SandboxBank::debit(self, request))
    }

    async fn inquire_debit(
        &self,
        merchant_id: &str,
        reference: &str,
    ) -> Result<Option<DebitAnswer>, crate::ConnectorError> {
        Ok(SandboxBank::inquire_debit(self, merchant_id, reference))
    }
}

fn account_number(bank: &Bank, serial: u64) -> String {
    let body = format!("9{}{:010}", bank.code(), serial % 10_000_000_000);
    let check = luhn_check_digit(&body);
    format!("{body}{check}")
}

/// The digit that makes `digits` + it pass the Luhn check.
fn luhn_check_digit(digits: &str) -> u32 {
    let sum: u32 = digits
        .chars()
        .rev()
        .filter_map(|c| c.to_digit(10))
        .enumerate()
        .map(|(i, d)| {
            if i % 2 == 0 {
                let doubled = d * 2;
                if doubled > 9 {
                    doubled - 9
                } else {
                    doubled
                }
            } else {
                d
            }
        })
        .sum();
    (10 - sum % 10) % 10
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::sync::atomic::{AtomicI64, Ordering};

    use super::*;

    fn bank() -> (SandboxBank, Arc<AtomicI64>) {
        let now = Arc::new(AtomicI64::new(1_000));
        let clock = now.clone();
        let codes = ["88", "06"].map(|c| Bank::parse(c).unwrap()).to_vec();
        let bank = SandboxBank::new(codes).with_clock(move || UnixMillis::new(clock.load(Ordering::SeqCst)));
        (bank, now)
    }

    fn issue(reference: &str, amount: i64) -> IssueAccount {
        IssueAccount {
            reference: reference.into(),
            merchant_id: "m1".into(),
            bank_code: Bank::parse("88").unwrap(),
            amount: Money::krw(amount),
            holder_name: "데모상점".into(),
            expires_at: UnixMillis::new(100_000),
        }
    }

    fn deposit(account: &str, amount: i64) -> MakeDeposit {
        MakeDeposit {
            account_number: account.into(),
            amount: Money::krw(amount),
            depositor_name: "홍길동".into(),
            at: None,
        }
    }

    #[test]
    fn account_numbers_carry_a_check_digit() {
        let number = account_number(&Bank::parse("88").unwrap(), 42);
        assert_eq!(number.len(), 14);
        assert!(number.starts_with("988"));
        // Luhn over the whole number passes; changing the last digit fails.
        let luhn_ok = |n: &str| luhn_check_digit(&n[..n.len() - 1]).to_string() == n[n.len() - 1..];
        assert!(luhn_ok(&number));
        let mut typo = number.clone();
        let last = typo.pop().unwrap().to_digit(10).unwrap();
        typo.push(char::from_digit((last + 1) % 10, 10).unwrap());
        assert!(!luhn_ok(&typo));
        assert_eq!(luhn_check_digit("7992739871"), 3);
    }

    #[test]
    fn issuing_is_idempotent_per_reference() {
        let (bank, _) = bank();
        let first = bank.issue(&issue("pay_1", 15_000)).unwrap();
        assert_eq!(bank.issue(&issue("pay_1", 15_000)).unwrap(), first);
        assert_eq!(bank.issue(&issue("pay_1", 9_000)), Err(BankRefusal::DuplicateReference));
        let second = bank.issue(&issue("pay_2", 15_000)).unwrap();
        assert_ne!(first.account_number, second.account_number);
        let mut other_bank = issue("pay_3", 15_000);
        other_bank.bank_code = Bank::parse("11").unwrap();
        assert_eq!(bank.issue(&other_bank), Err(BankRefusal::NotSupportedBank));
        assert_eq!(bank.issue(&issue("pay_4", 0)), Err(BankRefusal::InvalidAmount));
        let issued = bank.journal_page(0, 100);
        assert_eq!(issued.len(), 2, "one entry per account, none for repeats or refusals");
    }

    #[test]
    fn deposits_go_to_open_accounts_and_form_a_feed() {
        let (bank, now) = bank();
        let a = bank.issue(&issue("pay_1", 15_000)).unwrap().account_number;
        let b = bank.issue(&issue("pay_2", 20_000)).unwrap().account_number;
        now.store(2_000, Ordering::SeqCst);
        let d1 = bank.deposit(&deposit(&a, 15_000)).unwrap();
        assert_eq!((d1.seq, d1.deposited_at), (1, UnixMillis::new(2_000)));
        // Any amount is taken: matching it is the gateway's decision.
        let d2 = bank.deposit(&deposit(&b, 19_000)).unwrap();
        assert_eq!(bank.deposits_after("m1", 0, 10), vec![d1.clone(), d2.clone()]);
        assert_eq!(bank.deposits_after("m1", 1, 10), vec![d2]);
        assert_eq!(bank.deposits_after("m1", 0, 1), vec![d1]);
        assert!(
            bank.deposits_after("m2", 0, 10).is_empty(),
            "another merchant sees none"
        );
        assert_eq!(
            bank.deposit(&deposit("98800000000000", 1)),
            Err(BankRefusal::UnknownAccount)
        );
        bank.close("m1", &a).unwrap();
        bank.close("m1", &a).unwrap();
        assert_eq!(bank.deposit(&deposit(&a, 15_000)), Err(BankRefusal::AccountClosed));
        assert_eq!(bank.close("m2", &b), Err(BankRefusal::UnknownAccount));
        let kinds: Vec<&str> = bank.journal_page(0, 100).iter().map(|e| e.kind.as_str()).collect();
        assert_eq!(
            kinds,
            [
                "ACCOUNT_ISSUED",
                "ACCOUNT_ISSUED",
                "DEPOSIT",
                "DEPOSIT",
                "ACCOUNT_CLOSED"
            ]
        );
    }

    #[test]
    fn a_deposit_is_returned_once() {
        let (bank, _) = bank();
        let issued = bank.issue(&issue("pay_1", 15_000)).unwrap();
        let made = bank
            .deposit(&MakeDeposit {
                account_number: issued.account_number.clone(),
                amount: Money::krw(14_000),
                depositor_name: "홍길동".into(),
                at: None,
            })
            .unwrap();
        let first = bank.return_deposit("m1", "brf_1", &made.deposit_id).unwrap();
        assert!(matches!(first, RefundAnswer::Done { .. }));
        assert_eq!(bank.return_deposit("m1", "brf_1", &made.deposit_id).unwrap(), first);
        assert_eq!(
            bank.return_deposit("m1", "brf_2", &made.deposit_id),
            Err(BankRefusal::DuplicateReference)
        );
        assert!(matches!(
            bank.return_deposit("m1", "brf_3", "dep_unknown").unwrap(),
            RefundAnswer::Failed {
                refusal: BankRefusal::UnknownAccount
            }
        ));
        let returns = bank
            .journal_page(0, 100)
            .into_iter()
            .filter(|e| e.kind == BankJournalKind::Refund)
            .count();
        assert_eq!(returns, 1);
    }

    #[test]
    fn refunds_are_paid_once_per_reference() {
        let (bank, _) = bank();
        let refund = |reference: &str, account: &str, holder: &str| Refund {
            reference: reference.into(),
            merchant_id: "m1".into(),
            bank_code: Bank::parse("06").unwrap(),
            account_number: account.into(),
            holder_name: holder.into(),
            amount: Money::krw(5_000),
        };
        let done = bank.refund(&refund("rf_1", "12345678901", "홍길동")).unwrap();
        assert!(matches!(done, RefundAnswer::Done { .. }));
        assert_eq!(bank.refund(&refund("rf_1", "12345678901", "홍길동")).unwrap(), done);
        assert_eq!(
            bank.refund(&refund("rf_1", "99999999999", "홍길동")),
            Err(BankRefusal::DuplicateReference)
        );
        assert_eq!(bank.inquire_refund("m1", "rf_1"), Some(done));
        assert_eq!(bank.inquire_refund("m2", "rf_1"), None);
        assert_eq!(
            bank.refund(&refund("rf_2", "12345670000", "홍길동")).unwrap(),
            RefundAnswer::Failed {
                refusal: BankRefusal::UnknownAccount
            }
        );
        assert_eq!(
            bank.refund(&refund("rf_3", "12345678901", "잘못된예금주")).unwrap(),
            RefundAnswer::Failed {
                refusal: BankRefusal::HolderMismatch
            }
        );
        let refunds = bank
            .journal_page(0, 100)
            .into_iter()
            .filter(|e| e.kind == BankJournalKind::Refund)
            .count();
        assert_eq!(refunds, 1, "money left the bank once");
    }

    #[test]
    fn a_full_journal_refuses_new_work() {
        let (bank, _) = bank();
        let bank = bank.with_bounds(BankBounds { journal_max: 1 });
        bank.issue(&issue("pay_1", 1_000)).unwrap();
        assert_eq!(bank.issue(&issue("pay_2", 1_000)), Err(BankRefusal::Capacity));
        assert_eq!(bank.issue(&issue("pay_1", 1_000)).unwrap().account_number.len(), 14);
    }
}
