//! Virtual accounts and the deposits banks report. Reads are here; writes ride with the payment change they belong
//! to (`PaymentInsert::virtual_account`, `PaymentUpdate::bank`), in its transaction, each conditional on the
//! version it came from, and a deposit's insert on its bank deposit ID being new.

use paygate_domain::api_key::Mode;
use paygate_domain::bank::{Bank, DepositRefundReason, RefundStatus, SettlementStatus};
use paygate_domain::id::{BankRefundId, DepositId, MerchantId, PaymentId, TransactionKey};
use paygate_domain::money::{Currency, Money};
use paygate_domain::time::UnixMillis;
use paygate_domain::virtual_account::{
    AccountStatus, BankDeposit, BankDepositFields, BankRefund, BankRefundFields, RefundAccount, RefundState,
    ReturnStatus, VirtualAccount, VirtualAccountFields,
};

use crate::db::{aggregate, all, first, vals, Db, Row};
use crate::StoreError;

aggregate! {
    pub trait VirtualAccountStore {
        /// The virtual account of a payment.
        read fn virtual_account(payment_id: PaymentId) -> Option<VirtualAccount>;
        /// The account a deposit to `account_number` at `bank` reaches: the open one, else the one issued last.
        read fn virtual_account_by_number(mode: Mode, bank: Bank, account_number: &str) -> Option<VirtualAccount>;
        /// A deposit by the bank's own ID.
        read fn bank_deposit(mode: Mode, bank: Bank, bank_deposit_id: &str) -> Option<BankDeposit>;
        /// Every deposit reported for a payment's account, oldest first.
        read fn deposits_of(payment_id: PaymentId) -> Vec<BankDeposit>;
        /// Open accounts whose due date passed (`due_at <= now`), oldest due first.
        read fn due_account_expiries(now: UnixMillis, limit: u32) -> Vec<VirtualAccount>;
        /// Deposits whose return is due (`next_attempt_at <= now`), oldest due first.
        read fn due_deposit_returns(now: UnixMillis, limit: u32) -> Vec<BankDeposit>;
        /// The refunds of a payment's cancels, oldest first.
        read fn bank_refunds_of(payment_id: PaymentId) -> Vec<BankRefund>;
        /// Refunds whose answer is not in and whose next attempt is due (`next_attempt_at <= now`).
        read fn due_bank_refunds(now: UnixMillis, limit: u32) -> Vec<BankRefund>;
    }
}

/// What a payment change writes of its bank method, in the payment's transaction.
#[derive(Clone, Debug, Default)]
pub struct BankChanges {
    /// An account the bank issued for a payment that existed before (a checkout's confirm).
    pub new_account: Option<VirtualAccount>,
    /// The transfer that paid the payment (its insert is refused if the bank's debit ID was recorded before).
    pub new_transfer: Option<paygate_domain::transfer::Transfer>,
    /// The payment's checkout session's next version, written conditionally on the version before it.
    pub checkout_session: Option<paygate_domain::checkout::CheckoutSession>,
    /// The account's next version, written conditionally on the version before it.
    pub account: Option<VirtualAccount>,
    /// A deposit reported for the first time: refused (`Conflict`, nothing written) if the bank's deposit ID was
    /// already recorded.
    pub new_deposit: Option<BankDeposit>,
    /// A recorded deposit's next version, written conditionally on the version before it.
    pub deposit: Option<BankDeposit>,
    /// A refund of a cancel, recorded with the cancel's transaction (which it names).
    pub new_refund: Option<BankRefund>,
    /// A recorded refund's next version, written conditionally on the version before it.
    pub refund: Option<BankRefund>,
}

impl BankChanges {
    pub fn is_empty(&self) -> bool {
        self.account.is_none()
            && self.new_account.is_none()
            && self.new_transfer.is_none()
            && self.checkout_session.is_none()
            && self.new_deposit.is_none()
            && self.deposit.is_none()
            && self.new_refund.is_none()
            && self.refund.is_none()
    }
}

macro_rules! account_columns {
    () => {
        "payment_id, merchant_id, mode, bank, account_number, customer_name, currency, amount, issued_at, due_at, \
         status, paid_by, deposited_at, depositor_name, refund_status, settlement_status, version"
    };
}
macro_rules! deposit_columns {
    () => {
        "id, mode, bank, bank_deposit_id, account_number, payment_id, merchant_id, currency, amount, depositor_name, \
         deposited_at, received_at, held_because, return_status, return_refund, next_attempt_at, attempts, version"
    };
}

macro_rules! refund_columns {
    () => {
        "id, transaction_key, payment_id, merchant_id, mode, bank, account_number, holder_name, currency, amount, \
         state, failure_code, bank_refund_id, created_at, completed_at, next_attempt_at, attempts, version"
    };
}

mod sql {
    pub const INSERT_ACCOUNT: &str = concat!(
        "INSERT INTO virtual_accounts (",
        account_columns!(),
        ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)"
    );
    /// What the bank issued never changes; the rest moves only from the version it came from. (Every parameter
    /// appears, so PostgreSQL can type each.)
    pub const UPDATE_ACCOUNT: &str = "UPDATE virtual_accounts SET status = ?11, paid_by = ?12, deposited_at = ?13,
             depositor_name = ?14, refund_status = ?15, settlement_status = ?16, version = ?17
         WHERE payment_id = ?1 AND version = ?18 AND merchant_id = ?2 AND mode = ?3 AND bank = ?4
           AND account_number = ?5 AND customer_name = ?6 AND currency = ?7 AND amount = ?8 AND issued_at = ?9
           AND due_at = ?10";
    pub const ACCOUNT: &str = concat!(
        "SELECT ",
        account_columns!(),
        " FROM virtual_accounts WHERE payment_id = ?1"
    );
    /// The open account first (at most one per number), then the newest.
    pub const ACCOUNT_BY_NUMBER: &str = concat!(
        "SELECT ",
        account_columns!(),
        " FROM virtual_accounts WHERE bank = ?2 AND account_number = ?3 AND mode = ?1
         ORDER BY CASE status WHEN 'OPEN' THEN 0 ELSE 1 END, issued_at DESC, payment_id DESC LIMIT 1"
    );
    pub const DUE_EXPIRIES: &str = concat!(
        "SELECT ",
        account_columns!(),
        " FROM virtual_accounts WHERE status = 'OPEN' AND due_at <= ?1 ORDER BY due_at, payment_id LIMIT ?2"
    );

    /// A repeated bank deposit ID inserts nothing (the unique constraint decides, also between racing inserts).
    pub const INSERT_DEPOSIT: &str = concat!(
        "INSERT INTO bank_deposits (",
        deposit_columns!(),
        ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18)
         ON CONFLICT (mode, bank, bank_deposit_id) DO NOTHING"
    );
    pub const UPDATE_DEPOSIT: &str = "UPDATE bank_deposits SET return_status = ?14, return_refund = ?15,
             next_attempt_at = ?16, attempts = ?17, version = ?18
         WHERE id = ?1 AND version = ?19 AND mode = ?2 AND bank = ?3 AND bank_deposit_id = ?4
           AND account_number = ?5 AND payment_id = ?6 AND merchant_id = ?7 AND currency = ?8 AND amount = ?9
           AND depositor_name = ?10 AND deposited_at = ?11 AND received_at = ?12
           AND (held_because = ?13 OR (held_because IS NULL AND ?13 IS NULL))";
    pub const DEPOSIT: &str = concat!(
        "SELECT ",
        deposit_columns!(),
        " FROM bank_deposits WHERE mode = ?1 AND bank = ?2 AND bank_deposit_id = ?3"
    );
    pub const DEPOSITS_OF: &str = concat!(
        "SELECT ",
        deposit_columns!(),
        " FROM bank_deposits WHERE payment_id = ?1 ORDER BY received_at, id"
    );
    pub const INSERT_REFUND: &str = concat!(
        "INSERT INTO bank_refunds (",
        refund_columns!(),
        ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18)"
    );
    /// Where it goes and how much never change; its answer moves it only from the version it came from.
    pub const UPDATE_REFUND: &str = "UPDATE bank_refunds SET state = ?11, failure_code = ?12, bank_refund_id = ?13,
             completed_at = ?15, next_attempt_at = ?16, attempts = ?17, version = ?18
         WHERE id = ?1 AND version = ?19 AND transaction_key = ?2 AND payment_id = ?3 AND merchant_id = ?4
           AND mode = ?5 AND bank = ?6 AND account_number = ?7 AND holder_name = ?8 AND currency = ?9
           AND amount = ?10 AND created_at = ?14";
    pub const REFUNDS_OF: &str = concat!(
        "SELECT ",
        refund_columns!(),
        " FROM bank_refunds WHERE payment_id = ?1 ORDER BY created_at, id"
    );
    pub const DUE_REFUNDS: &str = concat!(
        "SELECT ",
        refund_columns!(),
        " FROM bank_refunds WHERE next_attempt_at IS NOT NULL AND next_attempt_at <= ?1
         ORDER BY next_attempt_at, id LIMIT ?2"
    );
    pub const DUE_RETURNS: &str = concat!(
        "SELECT ",
        deposit_columns!(),
        " FROM bank_deposits WHERE next_attempt_at IS NOT NULL AND next_attempt_at <= ?1
         ORDER BY next_attempt_at, id LIMIT ?2"
    );
}

fn bank_of(text: &str) -> Option<Bank> {
    Bank::parse(text).filter(|bank| bank.code() == text)
}

fn account_from(row: &Row) -> Result<VirtualAccount, StoreError> {
    let currency: Currency = row.parse(6, str::parse::<Currency>)?;
    Ok(VirtualAccount::restore(VirtualAccountFields {
        payment_id: row.parse(0, PaymentId::parse)?,
        merchant_id: row.parse(1, MerchantId::parse)?,
        mode: row.parse(2, Mode::parse)?,
        bank: row.parse(3, bank_of)?,
        account_number: row.string(4)?,
        customer_name: row.string(5)?,
        amount: Money::new(row.int(7)?, currency),
        issued_at: row.millis(8)?,
        due_at: row.millis(9)?,
        status: row.parse(10, AccountStatus::parse)?,
        paid_by: row.opt_parse(11, DepositId::parse)?,
        deposited_at: row.opt_millis(12)?,
        depositor_name: row.opt_string(13)?,
        refund_status: row.parse(14, RefundStatus::parse)?,
        settlement_status: row.parse(15, SettlementStatus::parse)?,
        version: row.int(16)?,
    }))
}

fn deposit_from(row: &Row) -> Result<BankDeposit, StoreError> {
    let currency: Currency = row.parse(7, str::parse::<Currency>)?;
    Ok(BankDeposit::restore(BankDepositFields {
        id: row.parse(0, DepositId::parse)?,
        mode: row.parse(1, Mode::parse)?,
        bank: row.parse(2, bank_of)?,
        bank_deposit_id: row.string(3)?,
        account_number: row.string(4)?,
        payment_id: row.parse(5, PaymentId::parse)?,
        merchant_id: row.parse(6, MerchantId::parse)?,
        amount: Money::new(row.int(8)?, currency),
        depositor_name: row.string(9)?,
        deposited_at: row.millis(10)?,
        received_at: row.millis(11)?,
        held_because: row.opt_parse(12, DepositRefundReason::parse)?,
        return_status: row.parse(13, ReturnStatus::parse)?,
        return_refund: row.opt_parse(14, BankRefundId::parse)?,
        next_attempt_at: row.opt_millis(15)?,
        attempts: row.num(16)?,
        version: row.int(17)?,
    }))
}

fn refund_from(row: &Row) -> Result<BankRefund, StoreError> {
    let currency: Currency = row.parse(8, str::parse::<Currency>)?;
    Ok(BankRefund::restore(BankRefundFields {
        id: row.parse(0, BankRefundId::parse)?,
        transaction_key: row.parse(1, TransactionKey::parse)?,
        payment_id: row.parse(2, PaymentId::parse)?,
        merchant_id: row.parse(3, MerchantId::parse)?,
        mode: row.parse(4, Mode::parse)?,
        to: RefundAccount {
            bank: row.parse(5, bank_of)?,
            account_number: row.string(6)?,
            holder_name: row.string(7)?,
        },
        amount: Money::new(row.int(9)?, currency),
        state: row.parse(10, RefundState::parse)?,
        failure_code: row.opt_string(11)?,
        bank_refund_id: row.opt_string(12)?,
        created_at: row.millis(13)?,
        completed_at: row.opt_millis(14)?,
        next_attempt_at: row.opt_millis(15)?,
        attempts: row.num(16)?,
        version: row.int(17)?,
    }))
}

fn refund_values(r: &BankRefund) -> Vec<crate::db::Value<'_>> {
    vals![
        r.id,
        r.transaction_key,
        r.payment_id,
        r.merchant_id,
        r.mode,
        r.to.bank.code(),
        r.to.account_number.as_str(),
        r.to.holder_name.as_str(),
        r.amount.currency().code(),
        r.amount.amount_minor(),
        r.state.as_str(),
        r.failure_code.as_deref(),
        r.bank_refund_id.as_deref(),
        r.created_at,
        r.completed_at,
        r.next_attempt_at,
        r.attempts,
        r.version,
    ]
    .to_vec()
}

/// Writes a payment change's refunds, after its transactions (a refund names its cancel's).
pub(crate) async fn apply_refunds(db: &impl Db, changes: &BankChanges) -> Result<(), StoreError> {
    if let Some(refund) = &changes.new_refund {
        db.execute(sql::INSERT_REFUND, &refund_values(refund)).await?;
    }
    if let Some(refund) = &changes.refund {
        let mut values = refund_values(refund);
        values.push(previous(refund.version)?.into());
        if db.execute(sql::UPDATE_REFUND, &values).await? != 1 {
            return Err(StoreError::Conflict("the bank refund changed since it was read"));
        }
    }
    Ok(())
}

async fn bank_refunds_of(db: &impl Db, payment_id: PaymentId) -> Result<Vec<BankRefund>, StoreError> {
    all(db, sql::REFUNDS_OF, vals![payment_id], refund_from).await
}

async fn due_bank_refunds(db: &impl Db, now: UnixMillis, limit: u32) -> Result<Vec<BankRefund>, StoreError> {
    all(db, sql::DUE_REFUNDS, vals![now, limit], refund_from).await
}

pub(crate) async fn insert_account(db: &impl Db, a: &VirtualAccount) -> Result<(), StoreError> {
    db.execute(sql::INSERT_ACCOUNT, &account_values(a)).await?;
    Ok(())
}

fn account_values(a: &VirtualAccount) -> Vec<crate::db::Value<'_>> {
    vals![
        a.payment_id,
        a.merchant_id,
        a.mode,
        a.bank.code(),
        a.account_number.as_str(),
        a.customer_name.as_str(),
        a.amount.currency().code(),
        a.amount.amount_minor(),
        a.issued_at,
        a.due_at,
        a.status.as_str(),
        a.paid_by,
        a.deposited_at,
        a.depositor_name.as_deref(),
        a.refund_status.as_str(),
        a.settlement_status.as_str(),
        a.version,
    ]
    .to_vec()
}

fn deposit_values(d: &BankDeposit) -> Vec<crate::db::Value<'_>> {
    vals![
        d.id,
        d.mode,
        d.bank.code(),
        d.bank_deposit_id.as_str(),
        d.account_number.as_str(),
        d.payment_id,
        d.merchant_id,
        d.amount.currency().code(),
        d.amount.amount_minor(),
        d.depositor_name.as_str(),
        d.deposited_at,
        d.received_at,
        d.held_because.map(DepositRefundReason::as_str),
        d.return_status.as_str(),
        d.return_refund,
        d.next_attempt_at,
        d.attempts,
        d.version,
    ]
    .to_vec()
}

/// The version a change was computed from.
fn previous(version: i64) -> Result<i64, StoreError> {
    version
        .checked_sub(1)
        .filter(|v| *v >= 1)
        .ok_or(StoreError::Conflict("a changed row must follow a stored version"))
}

/// Writes a payment change's bank part inside the caller's transaction.
pub(crate) async fn apply(db: &impl Db, changes: &BankChanges) -> Result<(), StoreError> {
    if let Some(session) = &changes.checkout_session {
        crate::checkout::update(db, session).await?;
    }
    if let Some(account) = &changes.new_account {
        insert_account(db, account).await?;
    }
    if let Some(transfer) = &changes.new_transfer {
        crate::transfers::insert(db, transfer).await?;
    }
    // A deposit names its account's payment, and a journal its deposit: the deposit goes in first.
    if let Some(deposit) = &changes.new_deposit {
        if db.execute(sql::INSERT_DEPOSIT, &deposit_values(deposit)).await? != 1 {
            return Err(StoreError::Conflict("the bank deposit was already recorded"));
        }
    }
    if let Some(deposit) = &changes.deposit {
        let mut values = deposit_values(deposit);
        values.push(previous(deposit.version)?.into());
        if db.execute(sql::UPDATE_DEPOSIT, &values).await? != 1 {
            return Err(StoreError::Conflict("the bank deposit changed since it was read"));
        }
    }
    if let Some(account) = &changes.account {
        let mut values = account_values(account);
        values.push(previous(account.version)?.into());
        if db.execute(sql::UPDATE_ACCOUNT, &values).await? != 1 {
            return Err(StoreError::Conflict("the virtual account changed since it was read"));
        }
    }
    Ok(())
}

async fn virtual_account(db: &impl Db, payment_id: PaymentId) -> Result<Option<VirtualAccount>, StoreError> {
    first(db, sql::ACCOUNT, vals![payment_id])
        .await?
        .as_ref()
        .map(account_from)
        .transpose()
}

async fn virtual_account_by_number(
    db: &impl Db,
    mode: Mode,
    bank: Bank,
    account_number: String,
) -> Result<Option<VirtualAccount>, StoreError> {
    first(
        db,
        sql::ACCOUNT_BY_NUMBER,
        vals![mode, bank.code(), account_number.as_str()],
    )
    .await?
    .as_ref()
    .map(account_from)
    .transpose()
}

async fn bank_deposit(
    db: &impl Db,
    mode: Mode,
    bank: Bank,
    bank_deposit_id: String,
) -> Result<Option<BankDeposit>, StoreError> {
    first(db, sql::DEPOSIT, vals![mode, bank.code(), bank_deposit_id.as_str()])
        .await?
        .as_ref()
        .map(deposit_from)
        .transpose()
}

async fn deposits_of(db: &impl Db, payment_id: PaymentId) -> Result<Vec<BankDeposit>, StoreError> {
    all(db, sql::DEPOSITS_OF, vals![payment_id], deposit_from).await
}

async fn due_account_expiries(db: &impl Db, now: UnixMillis, limit: u32) -> Result<Vec<VirtualAccount>, StoreError> {
    all(db, sql::DUE_EXPIRIES, vals![now, limit], account_from).await
}

async fn due_deposit_returns(db: &impl Db, now: UnixMillis, limit: u32) -> Result<Vec<BankDeposit>, StoreError> {
    all(db, sql::DUE_RETURNS, vals![now, limit], deposit_from).await
}
