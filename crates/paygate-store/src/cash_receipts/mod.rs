//! Cash receipts (현금영수증) and the business profiles they are issued under. A receipt is written with the
//! change it belongs to — on its own (`POST /v1/cash-receipts`), or inside a payment's change
//! (`PaymentUpdate::receipts`) — with its events and the request's idempotent answer; every later change is
//! conditional on the version it came from. The receipt entity and its transitions are in
//! `paygate_domain::cash_receipt`.

use paygate_domain::api_key::Mode;
use paygate_domain::cash_receipt::{
    CashReceipt, CashReceiptFields, CustomerIdentity, IdentityKind, IssueStatus, ReceiptRequest, ReceiptTransaction,
    ReceiptType,
};
use paygate_domain::id::{CashReceiptKey, MerchantId, PaymentId, TransactionKey};
use paygate_domain::merchant::BusinessProfile;
use paygate_domain::money::{Currency, Money};
use paygate_domain::time::UnixMillis;

use crate::db::{aggregate, all, first, vals, Db, Row};
use crate::outbox::NewEvent;
use crate::{IdempotencyWrite, StoreError};

aggregate! {
    pub trait CashReceiptStore {
        /// Records an issue with its events and the request's answer. `DuplicateOrderId` (nothing written) if the
        /// merchant's order already has an issue in this mode.
        write fn insert_cash_receipt(
            receipt: &CashReceipt,
            events: &[NewEvent],
            idempotency: Option<&IdempotencyWrite>,
        ) -> InsertReceiptOutcome;
        /// Writes changed receipts (each conditional on its previous version), new ones (a cancel), their events
        /// and the request's answer, in one transaction. `Conflict` if any changed since it was read.
        write fn change_cash_receipts(change: &ReceiptChange) -> ();
        read fn cash_receipt(merchant_id: MerchantId, mode: Mode, key: CashReceiptKey) -> Option<CashReceipt>;
        /// A receipt by its key alone: for the worker and the public receipt page (whose token the caller checked).
        read fn cash_receipt_by_key(key: CashReceiptKey) -> Option<CashReceipt>;
        /// A bank payment's buyer's request for a receipt, kept until the payment is paid.
        read fn cash_receipt_request(payment_id: PaymentId) -> Option<ReceiptRequest>;
        /// A payment's receipts (its issue and cancels), oldest first.
        read fn cash_receipts_of_payment(payment_id: PaymentId) -> Vec<CashReceipt>;
        /// A merchant's receipts requested in `[from, to)` and matching `filter`, oldest first, skipping the first
        /// `skip`, at most `limit`.
        read fn cash_receipts_requested(
            merchant_id: MerchantId,
            mode: Mode,
            filter: &ReceiptFilter,
            skip: u32,
            limit: u32,
        ) -> Vec<CashReceipt>;
        /// Receipts whose report is due (`next_attempt_at <= now`), oldest due first.
        read fn due_cash_receipt_reports(now: UnixMillis, limit: u32) -> Vec<CashReceipt>;
        /// Sets (or replaces) a merchant's business profile.
        write fn set_business_profile(profile: &BusinessProfile) -> ();
        read fn business_profile(merchant_id: MerchantId) -> Option<BusinessProfile>;
    }
}

/// What the receipt list selects: requested in `[from, to)` (Toss's request date: one KST day), and paygate's
/// filters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReceiptFilter {
    pub from: UnixMillis,
    pub to: UnixMillis,
    pub status: Option<IssueStatus>,
    /// `amount` in `[min_amount, max_amount]`, in minor units.
    pub min_amount: Option<i64>,
    pub max_amount: Option<i64>,
}

/// What inserting an issue did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InsertReceiptOutcome {
    Inserted,
    DuplicateOrderId,
}

/// Receipts changed and added together.
#[derive(Clone, Debug, Default)]
pub struct ReceiptChange {
    /// A bank payment's buyer's request for a receipt (written once, with the payment or the buyer's choice).
    pub request: Option<ReceiptRequest>,
    /// Next versions, each written conditionally on the version before it.
    pub changed: Vec<CashReceipt>,
    /// New records (cancels).
    pub added: Vec<CashReceipt>,
    pub events: Vec<NewEvent>,
    pub idempotency: Option<IdempotencyWrite>,
}

impl ReceiptChange {
    pub fn is_empty(&self) -> bool {
        self.changed.is_empty() && self.added.is_empty() && self.request.is_none()
    }
}

macro_rules! receipt_columns {
    () => {
        "receipt_key, merchant_id, mode, payment_id, transaction_key, original_key, order_id, order_name, \
         receipt_type, transaction_type, currency, amount, tax_free_amount, identity_kind, identity_number, \
         business_number, issue_status, issue_number, failure_code, failure_message, cancelled_amount, \
         requested_at, completed_at, next_attempt_at, attempts, version"
    };
}

mod sql {
    pub const INSERT: &str = concat!(
        "INSERT INTO cash_receipts (",
        receipt_columns!(),
        ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21,
             ?22, ?23, ?24, ?25, ?26)"
    );
    /// An issue: a second one for the order inserts nothing.
    pub const INSERT_ISSUE: &str = concat!(
        "INSERT INTO cash_receipts (",
        receipt_columns!(),
        ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21,
             ?22, ?23, ?24, ?25, ?26)
         ON CONFLICT (merchant_id, mode, order_id) WHERE transaction_type = 'CONFIRM' DO NOTHING"
    );
    /// What was reported never changes; its answer and the amount cancelled move only from the version read.
    /// (Every parameter appears, so PostgreSQL can type each.)
    pub const UPDATE: &str = "UPDATE cash_receipts SET issue_status = ?17, issue_number = ?18, failure_code = ?19,
             failure_message = ?20, cancelled_amount = ?21, completed_at = ?23, next_attempt_at = ?24,
             attempts = ?25, version = ?26
         WHERE receipt_key = ?1 AND version = ?27 AND merchant_id = ?2 AND mode = ?3
           AND (payment_id = ?4 OR (payment_id IS NULL AND ?4 IS NULL))
           AND (transaction_key = ?5 OR (transaction_key IS NULL AND ?5 IS NULL))
           AND (original_key = ?6 OR (original_key IS NULL AND ?6 IS NULL))
           AND order_id = ?7 AND order_name = ?8 AND receipt_type = ?9 AND transaction_type = ?10
           AND currency = ?11 AND amount = ?12 AND tax_free_amount = ?13 AND identity_kind = ?14
           AND identity_number = ?15 AND business_number = ?16 AND requested_at = ?22";
    pub const BY_OWNER: &str = concat!(
        "SELECT ",
        receipt_columns!(),
        " FROM cash_receipts WHERE receipt_key = ?3 AND merchant_id = ?1 AND mode = ?2"
    );
    pub const BY_KEY: &str = concat!(
        "SELECT ",
        receipt_columns!(),
        " FROM cash_receipts WHERE receipt_key = ?1"
    );
    pub const OF_PAYMENT: &str = concat!(
        "SELECT ",
        receipt_columns!(),
        " FROM cash_receipts WHERE payment_id = ?1 ORDER BY requested_at, receipt_key"
    );
    pub const REQUESTED: &str = concat!(
        "SELECT ",
        receipt_columns!(),
        " FROM cash_receipts WHERE merchant_id = ?1 AND mode = ?2 AND requested_at >= ?3 AND requested_at < ?4
           AND (?7 = '' OR issue_status = ?7) AND amount >= ?8 AND amount <= ?9
         ORDER BY requested_at, receipt_key LIMIT ?6 OFFSET ?5"
    );
    pub const DUE: &str = concat!(
        "SELECT ",
        receipt_columns!(),
        " FROM cash_receipts WHERE next_attempt_at IS NOT NULL AND next_attempt_at <= ?1
         ORDER BY next_attempt_at, receipt_key LIMIT ?2"
    );
    pub const UPSERT_PROFILE: &str = "INSERT INTO merchant_business_profiles
             (merchant_id, business_number, representative, address, updated_at) VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT (merchant_id) DO UPDATE SET business_number = excluded.business_number,
             representative = excluded.representative, address = excluded.address, updated_at = excluded.updated_at";
    pub const INSERT_REQUEST: &str = "INSERT INTO cash_receipt_requests
             (payment_id, receipt_type, identity_kind, identity_number, requested_at) VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT (payment_id) DO UPDATE SET receipt_type = excluded.receipt_type,
             identity_kind = excluded.identity_kind, identity_number = excluded.identity_number,
             requested_at = excluded.requested_at";
    pub const REQUEST: &str = "SELECT payment_id, receipt_type, identity_kind, identity_number, requested_at
         FROM cash_receipt_requests WHERE payment_id = ?1";
    pub const PROFILE: &str = "SELECT merchant_id, business_number, representative, address, updated_at
         FROM merchant_business_profiles WHERE merchant_id = ?1";
}

fn values(r: &CashReceipt) -> Vec<crate::db::Value<'_>> {
    vals![
        r.key,
        r.merchant_id,
        r.mode,
        r.payment_id,
        r.transaction_key,
        r.original,
        r.order_id.as_str(),
        r.order_name.as_str(),
        r.receipt_type.as_str(),
        r.transaction.as_str(),
        r.amount.currency().code(),
        r.amount.amount_minor(),
        r.tax_free.amount_minor(),
        r.identity.kind().as_str(),
        r.identity.number(),
        r.business_number.as_str(),
        r.status.as_str(),
        r.issue_number.as_deref(),
        r.failure_code.as_deref(),
        r.failure_message.as_deref(),
        r.cancelled.amount_minor(),
        r.requested_at,
        r.completed_at,
        r.next_attempt_at,
        r.attempts,
        r.version,
    ]
    .to_vec()
}

fn receipt_from(row: &Row) -> Result<CashReceipt, StoreError> {
    let currency: Currency = row.parse(10, str::parse::<Currency>)?;
    let kind = row.parse(13, IdentityKind::parse)?;
    Ok(CashReceipt::restore(CashReceiptFields {
        key: row.parse(0, CashReceiptKey::parse)?,
        merchant_id: row.parse(1, MerchantId::parse)?,
        mode: row.parse(2, Mode::parse)?,
        payment_id: row.opt_parse(3, PaymentId::parse)?,
        transaction_key: row.opt_parse(4, TransactionKey::parse)?,
        original: row.opt_parse(5, CashReceiptKey::parse)?,
        order_id: row.string(6)?,
        order_name: row.string(7)?,
        receipt_type: row.parse(8, ReceiptType::parse)?,
        transaction: row.parse(9, ReceiptTransaction::parse)?,
        amount: Money::new(row.int(11)?, currency),
        tax_free: Money::new(row.int(12)?, currency),
        identity: CustomerIdentity::restore(kind, row.string(14)?),
        business_number: row.string(15)?,
        status: row.parse(16, IssueStatus::parse)?,
        issue_number: row.opt_string(17)?,
        failure_code: row.opt_string(18)?,
        failure_message: row.opt_string(19)?,
        cancelled: Money::new(row.int(20)?, currency),
        requested_at: row.millis(21)?,
        completed_at: row.opt_millis(22)?,
        next_attempt_at: row.opt_millis(23)?,
        attempts: row.num(24)?,
        version: row.int(25)?,
    }))
}

async fn insert_cash_receipt(
    db: &impl Db,
    receipt: CashReceipt,
    events: Vec<NewEvent>,
    idempotency: Option<IdempotencyWrite>,
) -> Result<InsertReceiptOutcome, StoreError> {
    if db.execute(sql::INSERT_ISSUE, &values(&receipt)).await? == 0 {
        return Ok(InsertReceiptOutcome::DuplicateOrderId);
    }
    if let Some(write) = &idempotency {
        crate::idempotency::apply(db, write).await?;
    }
    for event in &events {
        crate::outbox::insert_new_event(db, event).await?;
    }
    Ok(InsertReceiptOutcome::Inserted)
}

/// Writes a change inside the caller's transaction (on its own, or a payment's change).
pub(crate) async fn apply(db: &impl Db, change: &ReceiptChange) -> Result<(), StoreError> {
    if let Some(r) = &change.request {
        let values = vals![
            r.payment_id,
            r.receipt_type.as_str(),
            r.identity.kind().as_str(),
            r.identity.number(),
            r.requested_at,
        ];
        db.execute(sql::INSERT_REQUEST, values).await?;
    }
    for receipt in &change.changed {
        let mut row = values(receipt);
        row.push(
            receipt
                .version
                .checked_sub(1)
                .ok_or(StoreError::Conflict("a receipt's first version"))?
                .into(),
        );
        if db.execute(sql::UPDATE, &row).await? != 1 {
            return Err(StoreError::Conflict("the cash receipt changed since it was read"));
        }
    }
    for receipt in &change.added {
        let inserted = match receipt.transaction {
            ReceiptTransaction::Confirm => db.execute(sql::INSERT_ISSUE, &values(receipt)).await?,
            ReceiptTransaction::Cancel => db.execute(sql::INSERT, &values(receipt)).await?,
        };
        if inserted != 1 {
            return Err(StoreError::Conflict("the order already has a cash receipt"));
        }
    }
    if let Some(write) = &change.idempotency {
        crate::idempotency::apply(db, write).await?;
    }
    for event in &change.events {
        crate::outbox::insert_new_event(db, event).await?;
    }
    Ok(())
}

async fn change_cash_receipts(db: &impl Db, change: ReceiptChange) -> Result<(), StoreError> {
    apply(db, &change).await
}

async fn cash_receipt(
    db: &impl Db,
    merchant_id: MerchantId,
    mode: Mode,
    key: CashReceiptKey,
) -> Result<Option<CashReceipt>, StoreError> {
    first(db, sql::BY_OWNER, vals![merchant_id, mode, key])
        .await?
        .as_ref()
        .map(receipt_from)
        .transpose()
}

async fn cash_receipt_by_key(db: &impl Db, key: CashReceiptKey) -> Result<Option<CashReceipt>, StoreError> {
    first(db, sql::BY_KEY, vals![key])
        .await?
        .as_ref()
        .map(receipt_from)
        .transpose()
}

async fn cash_receipt_request(db: &impl Db, payment_id: PaymentId) -> Result<Option<ReceiptRequest>, StoreError> {
    let Some(row) = first(db, sql::REQUEST, vals![payment_id]).await? else {
        return Ok(None);
    };
    let kind = row.parse(2, IdentityKind::parse)?;
    Ok(Some(ReceiptRequest {
        payment_id: row.parse(0, PaymentId::parse)?,
        receipt_type: row.parse(1, ReceiptType::parse)?,
        identity: CustomerIdentity::restore(kind, row.string(3)?),
        requested_at: row.millis(4)?,
    }))
}

async fn cash_receipts_of_payment(db: &impl Db, payment_id: PaymentId) -> Result<Vec<CashReceipt>, StoreError> {
    all(db, sql::OF_PAYMENT, vals![payment_id], receipt_from).await
}

async fn cash_receipts_requested(
    db: &impl Db,
    merchant_id: MerchantId,
    mode: Mode,
    filter: ReceiptFilter,
    skip: u32,
    limit: u32,
) -> Result<Vec<CashReceipt>, StoreError> {
    let values = vals![
        merchant_id,
        mode,
        filter.from,
        filter.to,
        skip,
        limit,
        filter.status.map_or("", |s| s.as_str()),
        filter.min_amount.unwrap_or(i64::MIN),
        filter.max_amount.unwrap_or(i64::MAX),
    ];
    all(db, sql::REQUESTED, values, receipt_from).await
}

async fn due_cash_receipt_reports(db: &impl Db, now: UnixMillis, limit: u32) -> Result<Vec<CashReceipt>, StoreError> {
    all(db, sql::DUE, vals![now, limit], receipt_from).await
}

async fn set_business_profile(db: &impl Db, p: BusinessProfile) -> Result<(), StoreError> {
    let values = vals![
        p.merchant_id,
        p.business_number.as_str(),
        p.representative.as_str(),
        p.address.as_str(),
        p.updated_at,
    ];
    db.execute(sql::UPSERT_PROFILE, values).await?;
    Ok(())
}

async fn business_profile(db: &impl Db, merchant_id: MerchantId) -> Result<Option<BusinessProfile>, StoreError> {
    let Some(row) = first(db, sql::PROFILE, vals![merchant_id]).await? else {
        return Ok(None);
    };
    Ok(Some(BusinessProfile {
        merchant_id: row.parse(0, MerchantId::parse)?,
        business_number: row.string(1)?,
        representative: row.string(2)?,
        address: row.string(3)?,
        updated_at: row.millis(4)?,
    }))
}
