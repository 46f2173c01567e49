//! Card payments: payments, their money movements (approval and cancels), the workers' due work, and the sealed
//! card of a checkout awaiting confirmation.

use paygate_domain::api_key::Mode;
use paygate_domain::billing::{BillingCharge, CustomerKey};
use paygate_domain::card::{CardSummary, CardType, Installment, OwnerType};
use paygate_domain::checkout::CheckoutSession;
use paygate_domain::id::{BillingKeyId, MerchantId, PaymentId, TransactionKey};
use paygate_domain::money::{Currency, Money};
use paygate_domain::order::{OrderId, OrderName};
use paygate_domain::payment::{
    ApprovalDetails, ApprovalState, Failure, Flow, Metadata, OrderExtras, Payment, PaymentMethod, PaymentStatus,
    PaymentTransaction, Route, TransactionKind, TransactionStatus,
};
use paygate_domain::sealed::Sealed;
use paygate_domain::time::UnixMillis;
use paygate_domain::vat::VatSplit;
use paygate_domain::virtual_account::VirtualAccount;

use crate::db::{aggregate, all, first, vals, Db, Row, Value};
use crate::ledger::JournalEntry;
use crate::outbox::NewEvent;
use crate::virtual_accounts::BankChanges;
use crate::{IdempotencyWrite, StoreError};

aggregate! {
    pub trait PaymentStore {
        /// Inserts a new payment (version 0) with what belongs to it (checkout card and session, idempotency claim)
        /// in one transaction. `IdempotencyConflict` if the claim's key was taken; nothing is written then.
        write fn insert_payment(insert: &PaymentInsert) -> InsertPaymentOutcome;
        /// A payment of this merchant and mode (another merchant's payment is `None`).
        read fn payment(merchant_id: MerchantId, mode: Mode, id: PaymentId) -> Option<Payment>;
        /// A payment by ID alone, for workers.
        read fn payment_by_id(id: PaymentId) -> Option<Payment>;
        read fn payment_by_order(merchant_id: MerchantId, mode: Mode, order_id: &OrderId) -> Option<Payment>;
        /// Applies a state change and its effects in one transaction. `Conflict` if the payment's version moved
        /// (another request or worker won) or a transaction to update is no longer pending; nothing is written then.
        write fn update_payment(update: &PaymentUpdate) -> ();
        /// A payment's approval and cancels, oldest first.
        read fn payment_transactions(payment_id: PaymentId) -> Vec<PaymentTransaction>;
        read fn list_transactions(query: &TransactionQuery) -> Vec<ListedTransaction>;
        /// A merchant's payments requested in a range, filtered (method, status, amount range), oldest first.
        read fn list_payments(query: &PaymentQuery) -> Vec<Payment>;
        read fn checkout_card(payment_id: PaymentId) -> Option<Sealed>;
        /// Payments whose approval was requested or is unknown, with `next_inquiry_at <= now`, oldest due first.
        read fn due_inquiries(now: UnixMillis, limit: u32) -> Vec<Payment>;
        /// READY or IN_PROGRESS payments whose approval was never requested, past `expires_at`, oldest due first.
        read fn due_expiries(now: UnixMillis, limit: u32) -> Vec<Payment>;
        /// Pending cancels with `next_attempt_at <= now`, oldest due first.
        read fn due_cancel_retries(now: UnixMillis, limit: u32) -> Vec<PaymentTransaction>;
    }
}

/// What happens to the encrypted card of a checkout payment in an update.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CheckoutCardChange {
    Keep,
    Store(Sealed),
    /// Once approved, declined or expired the card is no longer needed and is deleted in the same transaction.
    Delete,
}

/// Everything one payment state change writes, in one database transaction, conditional on the payment still
/// having `expected_version` (and a transaction being updated still being `PENDING`).
#[derive(Clone, Debug)]
pub struct PaymentUpdate {
    pub expected_version: i64,
    pub payment: Payment,
    pub insert_transactions: Vec<PaymentTransaction>,
    /// Replaces a pending transaction (a cancel being resolved); conditional on it still being pending.
    pub update_transaction: Option<PaymentTransaction>,
    pub journals: Vec<JournalEntry>,
    pub checkout_card: CheckoutCardChange,
    /// Events the change causes, written (with their deliveries) in the same transaction.
    pub events: Vec<NewEvent>,
    /// The request's idempotency claim or answer, written in the same transaction.
    pub idempotency: Option<IdempotencyWrite>,
    /// A bank method's account and deposits.
    pub bank: BankChanges,
    /// Cash receipts the change issues or cancels (a bank payment's receipt with its deposit or refund).
    pub receipts: crate::cash_receipts::ReceiptChange,
}

impl PaymentUpdate {
    pub fn new(expected_version: i64, payment: Payment) -> PaymentUpdate {
        PaymentUpdate {
            expected_version,
            payment,
            insert_transactions: Vec::new(),
            update_transaction: None,
            journals: Vec::new(),
            checkout_card: CheckoutCardChange::Keep,
            events: Vec::new(),
            idempotency: None,
            bank: BankChanges::default(),
            receipts: crate::cash_receipts::ReceiptChange::default(),
        }
    }
}

/// A new payment and what is written with it, in one transaction.
#[derive(Clone, Debug)]
pub struct PaymentInsert {
    pub payment: Payment,
    /// A checkout's card, sealed, until the confirm.
    pub checkout_card: Option<Sealed>,
    /// A checkout's session (how it was started, where the browser returns).
    pub checkout_session: Option<CheckoutSession>,
    pub idempotency: Option<IdempotencyWrite>,
    /// A virtual-account payment's account, as the bank issued it.
    pub virtual_account: Option<VirtualAccount>,
    /// Events the new payment causes, written (with their deliveries) in the same transaction.
    pub events: Vec<NewEvent>,
    /// The buyer's request for a cash receipt with the payment (issued once it is paid).
    pub receipt_request: Option<paygate_domain::cash_receipt::ReceiptRequest>,
}

impl PaymentInsert {
    pub fn new(payment: Payment) -> PaymentInsert {
        PaymentInsert {
            payment,
            checkout_card: None,
            checkout_session: None,
            idempotency: None,
            virtual_account: None,
            events: Vec::new(),
            receipt_request: None,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum InsertPaymentOutcome {
    Inserted,
    /// The merchant already used this orderId in this mode.
    DuplicateOrderId,
}

/// A transaction as the merchant's transaction list shows it: with its payment's orderId, and what was left to
/// cancel of the payment once this transaction (and the ones before it, failed cancels excluded) went through.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListedTransaction {
    pub transaction: PaymentTransaction,
    pub order_id: OrderId,
    pub balance_after: Money,
    /// The billing key's customer, for a billing key's charge.
    pub customer_key: Option<String>,
}

/// Filters for listing a merchant's transactions. `limit` is capped by the caller.
#[derive(Clone, Debug)]
pub struct TransactionQuery {
    pub merchant_id: MerchantId,
    pub mode: Mode,
    pub from: UnixMillis,
    pub until: UnixMillis,
    pub after: Option<TransactionKey>,
    pub limit: u32,
}

/// What `list_payments` selects: every filter is applied before the page is cut.
#[derive(Clone, Debug)]
pub struct PaymentQuery {
    pub merchant_id: MerchantId,
    pub mode: Mode,
    /// `requested_at` in `[from, until)`.
    pub from: UnixMillis,
    pub until: UnixMillis,
    pub method: Option<paygate_domain::payment::PaymentMethod>,
    pub status: Option<paygate_domain::payment::PaymentStatus>,
    /// `totalAmount` in `[min_amount, max_amount]`, in minor units.
    pub min_amount: Option<i64>,
    pub max_amount: Option<i64>,
    /// The page starts after this payment (IDs order payments by creation).
    pub after: Option<PaymentId>,
    pub limit: u32,
}

macro_rules! payment_columns {
    () => {
        "id, merchant_id, mode, order_id, order_name, flow, status, approval_state, currency, total_amount, \
         tax_free_amount, vat_amount, balance_amount, card_bin, card_last4, card_masked, installment_months, \
         acquirer, acquirer_merchant_id, approval_number, issuer_code, acquirer_transaction_id, approved_at, \
         customer_name, customer_email, failure_code, failure_message, failure_acquirer_code, requested_at, \
         expires_at, next_inquiry_at, inquiry_attempts, version, notification_url, approval_acquirer_code, card_type, \
         card_owner_type, tax_exemption_amount, metadata, customer_mobile_phone, free_installment, billing_key_id, \
         customer_key, method"
    };
}
macro_rules! transaction_columns {
    () => {
        "transaction_key, payment_id, merchant_id, mode, kind, status, currency, amount, reason, created_at, \
         completed_at, acquirer_transaction_id, next_attempt_at, attempts, tax_free_amount"
    };
}

mod sql {
    /// Conditional on the orderId being new to the merchant and mode: the unique constraint decides, so of two
    /// racing inserts of one orderId exactly one inserts (the other waits for its commit, then inserts nothing).
    pub const INSERT_PAYMENT: &str = concat!(
        "INSERT INTO payments (",
        payment_columns!(),
        ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21,
             ?22, ?23, ?24, ?25, ?26, ?27, ?28, ?29, ?30, ?31, ?32, ?33, ?34, ?35, ?36, ?37, ?38, ?39, ?40, ?41, ?42, ?43, ?44)
         ON CONFLICT (merchant_id, mode, order_id) DO NOTHING"
    );
    /// Every column but the identity ones is rewritten; the WHERE clause makes the write conditional on the version
    /// this change was computed from (and on the identity columns being unchanged). On PostgreSQL (READ COMMITTED)
    /// a concurrent update of the same row makes this one wait, then re-check the clause against the committed row:
    /// the version has moved, nothing is updated, and the loser hears `Conflict`.
    /// What the payment is never changes; its method changes once, when the buyer picks one on paygate's page
    /// (the domain allows it from READY only).
    pub const UPDATE_PAYMENT: &str = "UPDATE payments SET order_name = ?5, status = ?7, approval_state = ?8,
             balance_amount = ?13, card_bin = ?14, card_last4 = ?15, card_masked = ?16, installment_months = ?17,
             acquirer = ?18, acquirer_merchant_id = ?19, approval_number = ?20, issuer_code = ?21,
             acquirer_transaction_id = ?22, approved_at = ?23, customer_name = ?24, customer_email = ?25,
             failure_code = ?26, failure_message = ?27, failure_acquirer_code = ?28, expires_at = ?30,
             next_inquiry_at = ?31, inquiry_attempts = ?32, version = ?33, notification_url = ?34,
             approval_acquirer_code = ?35, card_type = ?36, card_owner_type = ?37, tax_exemption_amount = ?38,
             metadata = ?39, customer_mobile_phone = ?40, free_installment = ?41, billing_key_id = ?42,
             customer_key = ?43, method = ?44
         WHERE id = ?1 AND version = ?45
           AND merchant_id = ?2 AND mode = ?3 AND order_id = ?4 AND flow = ?6 AND currency = ?9
           AND total_amount = ?10 AND tax_free_amount = ?11 AND vat_amount = ?12 AND requested_at = ?29";
    // By the primary key alone, the owner checked by the caller: with `AND merchant_id = … AND mode = …` in the
    // query, a PostgreSQL planner without fresh statistics picked the (merchant_id, mode, order_id) index and
    // filtered every payment of the merchant (BENCHMARKS.md, "lookup on PostgreSQL").
    pub const PAYMENT_BY_ID: &str = concat!("SELECT ", payment_columns!(), " FROM payments WHERE id = ?1");
    pub const PAYMENT_BY_ORDER: &str = concat!(
        "SELECT ",
        payment_columns!(),
        " FROM payments WHERE merchant_id = ?1 AND mode = ?2 AND order_id = ?3"
    );
    // The worker queues are plain reads: two workers may pick the same row, and the version check of
    // `update_payment` lets only one of them act on it.
    pub const DUE_INQUIRIES: &str = concat!(
        "SELECT ",
        payment_columns!(),
        " FROM payments WHERE next_inquiry_at IS NOT NULL AND next_inquiry_at <= ?1
           AND approval_state IN ('REQUESTED', 'UNKNOWN') ORDER BY next_inquiry_at, id LIMIT ?2"
    );
    pub const DUE_EXPIRIES: &str = concat!(
        "SELECT ",
        payment_columns!(),
        " FROM payments WHERE expires_at IS NOT NULL AND expires_at <= ?1 AND status IN ('READY', 'IN_PROGRESS')
           AND approval_state = 'NOT_REQUESTED' ORDER BY expires_at, id LIMIT ?2"
    );

    pub const INSERT_TRANSACTION: &str = concat!(
        "INSERT INTO payment_transactions (",
        transaction_columns!(),
        ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)"
    );
    /// Conditional on the transaction still being pending (and being the payment's, for that amount).
    pub const UPDATE_TRANSACTION: &str = "UPDATE payment_transactions SET status = ?2, completed_at = ?3,
             acquirer_transaction_id = ?4, next_attempt_at = ?5, attempts = ?6
         WHERE transaction_key = ?1 AND status = 'PENDING' AND payment_id = ?7 AND amount = ?8";
    pub const TRANSACTIONS_OF: &str = concat!(
        "SELECT ",
        transaction_columns!(),
        " FROM payment_transactions WHERE payment_id = ?1 ORDER BY transaction_key"
    );
    /// With each row its payment's orderId and the payment's balance after it: the total minus the cancels up to
    /// and including it that did not fail (two lookups by primary key and by the payment_id index).
    pub const LIST_TRANSACTIONS: &str = concat!(
        "SELECT ",
        transaction_columns!(),
        ", (SELECT order_id FROM payments p WHERE p.id = t.payment_id),
           CAST((SELECT total_amount FROM payments p WHERE p.id = t.payment_id)
             - (SELECT COALESCE(SUM(c.amount), 0) FROM payment_transactions c WHERE c.payment_id = t.payment_id
                  AND c.kind = 'CANCEL' AND c.status <> 'FAILED' AND c.transaction_key <= t.transaction_key)
             AS BIGINT),
           (SELECT customer_key FROM payments p WHERE p.id = t.payment_id)
         FROM payment_transactions t WHERE merchant_id = ?1 AND mode = ?2 AND created_at >= ?3 AND created_at < ?4
           AND transaction_key > ?5 ORDER BY transaction_key LIMIT ?6"
    );
    /// Absent filters are sent as values that match everything ('' for text, the extremes for amounts), so the
    /// statement is the same for every query and each parameter has one type on PostgreSQL.
    pub const LIST_PAYMENTS: &str = concat!(
        "SELECT ",
        payment_columns!(),
        " FROM payments WHERE merchant_id = ?1 AND mode = ?2 AND requested_at >= ?3 AND requested_at < ?4
           AND (?5 = '' OR method = ?5) AND (?6 = '' OR status = ?6) AND total_amount >= ?7 AND total_amount <= ?8
           AND id > ?9 ORDER BY id LIMIT ?10"
    );
    pub const DUE_CANCEL_RETRIES: &str = concat!(
        "SELECT ",
        transaction_columns!(),
        " FROM payment_transactions WHERE next_attempt_at IS NOT NULL AND next_attempt_at <= ?1
           AND status = 'PENDING' ORDER BY next_attempt_at, transaction_key LIMIT ?2"
    );

    pub const STORE_CHECKOUT_CARD: &str =
        "INSERT INTO checkout_cards (payment_id, key_version, sealed, created_at) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (payment_id) DO UPDATE SET key_version = excluded.key_version, sealed = excluded.sealed,
             created_at = excluded.created_at";
    pub const CHECKOUT_CARD: &str = "SELECT key_version, sealed FROM checkout_cards WHERE payment_id = ?1";
    pub const DELETE_CHECKOUT_CARD: &str = "DELETE FROM checkout_cards WHERE payment_id = ?1";
}

/// A payment read with `payment_columns!()`.
fn payment_from(row: &Row) -> Result<Payment, StoreError> {
    let currency: Currency = row.parse(8, str::parse::<Currency>)?;
    let money = |index: usize| -> Result<Money, StoreError> { Ok(Money::new(row.int(index)?, currency)) };
    let amounts = VatSplit::with_explicit_vat(money(9)?, money(10)?, money(11)?)
        .map_err(|_| StoreError::Corrupt("payments amounts".into()))?;
    let card = match (row.opt_string(13)?, row.opt_string(14)?, row.opt_string(15)?) {
        (Some(bin), Some(last4), Some(masked)) => Some(CardSummary { bin, last4, masked }),
        _ => None,
    };
    let route = match (row.opt_string(17)?, row.opt_string(18)?) {
        (Some(acquirer), Some(acquirer_merchant_id)) => Some(Route {
            acquirer,
            acquirer_merchant_id,
        }),
        _ => None,
    };
    let approval = match (
        row.opt_string(19)?,
        row.opt_string(20)?,
        row.opt_string(21)?,
        row.opt_millis(22)?,
    ) {
        (Some(approval_number), Some(issuer_code), Some(acquirer_transaction_id), Some(approved_at)) => {
            Some(ApprovalDetails {
                approval_number,
                issuer_code,
                acquirer_code: row.opt_string(34)?,
                card_type: row.opt_parse(35, CardType::parse)?.unwrap_or(CardType::Unknown),
                owner_type: row.opt_parse(36, OwnerType::parse)?.unwrap_or(OwnerType::Unknown),
                acquirer_transaction_id,
                approved_at,
            })
        }
        _ => None,
    };
    let failure = match (row.opt_string(25)?, row.opt_string(26)?) {
        (Some(code), Some(message)) => Some(Failure {
            code,
            message,
            acquirer_code: row.opt_string(27)?,
        }),
        _ => None,
    };
    Ok(Payment {
        id: row.parse(0, PaymentId::parse)?,
        merchant_id: row.parse(1, MerchantId::parse)?,
        mode: row.parse(2, Mode::parse)?,
        order_id: row.parse(3, OrderId::parse)?,
        order_name: row.parse(4, OrderName::from_stored)?,
        flow: row.parse(5, Flow::parse)?,
        method: row.parse(43, PaymentMethod::parse)?,
        status: row.parse(6, str::parse::<PaymentStatus>)?,
        approval_state: row.parse(7, ApprovalState::parse)?,
        amounts,
        balance: money(12)?,
        card,
        installment: Installment::new(row.num(16)?)
            .map_err(|_| StoreError::Corrupt("payments.installment_months".into()))?,
        route,
        approval,
        customer_name: row.opt_string(23)?,
        customer_email: row.opt_string(24)?,
        failure,
        requested_at: row.millis(28)?,
        expires_at: row.opt_millis(29)?,
        next_inquiry_at: row.opt_millis(30)?,
        inquiry_attempts: row.num(31)?,
        version: row.int(32)?,
        notification_url: row.opt_string(33)?,
        extras: OrderExtras {
            tax_exemption_minor: row.int(37)?,
            metadata: row.opt_string(38)?.map(Metadata::from_validated_json),
            customer_mobile_phone: row.opt_string(39)?,
            free_installment: row.flag(40)?,
        },
        billing: match (
            row.opt_parse(41, BillingKeyId::parse)?,
            row.opt_parse(42, CustomerKey::parse)?,
        ) {
            (Some(billing_key_id), Some(customer_key)) => Some(BillingCharge {
                billing_key_id,
                customer_key,
            }),
            _ => None,
        },
    })
}

/// A payment's values in `payment_columns!()` order (`?1` to `?44`).
fn payment_values(p: &Payment) -> Vec<Value<'_>> {
    let (card, route, approval, failure) = (
        p.card.as_ref(),
        p.route.as_ref(),
        p.approval.as_ref(),
        p.failure.as_ref(),
    );
    vals![
        p.id,
        p.merchant_id,
        p.mode,
        p.order_id.as_str(),
        p.order_name.as_str(),
        p.flow.as_str(),
        p.status.as_str(),
        p.approval_state.as_str(),
        p.amounts.total().currency().code(),
        p.amounts.total().amount_minor(),
        p.amounts.tax_free().amount_minor(),
        p.amounts.vat().amount_minor(),
        p.balance.amount_minor(),
        card.map(|c| c.bin.as_str()),
        card.map(|c| c.last4.as_str()),
        card.map(|c| c.masked.as_str()),
        p.installment.months(),
        route.map(|r| r.acquirer.as_str()),
        route.map(|r| r.acquirer_merchant_id.as_str()),
        approval.map(|a| a.approval_number.as_str()),
        approval.map(|a| a.issuer_code.as_str()),
        approval.map(|a| a.acquirer_transaction_id.as_str()),
        approval.map(|a| a.approved_at),
        p.customer_name.as_deref(),
        p.customer_email.as_deref(),
        failure.map(|f| f.code.as_str()),
        failure.map(|f| f.message.as_str()),
        failure.and_then(|f| f.acquirer_code.as_deref()),
        p.requested_at,
        p.expires_at,
        p.next_inquiry_at,
        p.inquiry_attempts,
        p.version,
        p.notification_url.as_deref(),
        approval.and_then(|a| a.acquirer_code.as_deref()),
        approval.map(|a| a.card_type.as_str()),
        approval.map(|a| a.owner_type.as_str()),
        p.extras.tax_exemption_minor,
        p.extras.metadata.as_ref().map(Metadata::as_json),
        p.extras.customer_mobile_phone.as_deref(),
        p.extras.free_installment,
        p.billing.as_ref().map(|b| b.billing_key_id),
        p.billing.as_ref().map(|b| b.customer_key.as_str()),
        p.method.as_str(),
    ]
    .to_vec()
}

/// A transaction read with `transaction_columns!()`.
fn transaction_from(row: &Row) -> Result<PaymentTransaction, StoreError> {
    let currency: Currency = row.parse(6, str::parse::<Currency>)?;
    Ok(PaymentTransaction {
        key: row.parse(0, TransactionKey::parse)?,
        payment_id: row.parse(1, PaymentId::parse)?,
        merchant_id: row.parse(2, MerchantId::parse)?,
        mode: row.parse(3, Mode::parse)?,
        kind: row.parse(4, TransactionKind::parse)?,
        status: row.parse(5, TransactionStatus::parse)?,
        amount: Money::new(row.int(7)?, currency),
        reason: row.opt_string(8)?,
        created_at: row.millis(9)?,
        completed_at: row.opt_millis(10)?,
        acquirer_transaction_id: row.opt_string(11)?,
        next_attempt_at: row.opt_millis(12)?,
        attempts: row.num(13)?,
        tax_free: Money::new(row.int(14)?, currency),
    })
}

async fn insert_transaction(db: &impl Db, t: &PaymentTransaction) -> Result<(), StoreError> {
    let values = vals![
        t.key,
        t.payment_id,
        t.merchant_id,
        t.mode,
        t.kind.as_str(),
        t.status.as_str(),
        t.amount.currency().code(),
        t.amount.amount_minor(),
        t.reason.as_deref(),
        t.created_at,
        t.completed_at,
        t.acquirer_transaction_id.as_deref(),
        t.next_attempt_at,
        t.attempts,
        t.tax_free.amount_minor(),
    ];
    db.execute(sql::INSERT_TRANSACTION, values).await?;
    Ok(())
}

async fn store_checkout_card(db: &impl Db, id: PaymentId, sealed: &Sealed, at: UnixMillis) -> Result<(), StoreError> {
    crate::vault::refuse_retired(db, sealed.key_version).await?;
    db.execute(
        sql::STORE_CHECKOUT_CARD,
        vals![id, sealed.key_version, &sealed.bytes, at],
    )
    .await?;
    Ok(())
}

async fn insert_payment(db: &impl Db, insert: PaymentInsert) -> Result<InsertPaymentOutcome, StoreError> {
    let payment = &insert.payment;
    let values = payment_values(payment);
    // The payment and its claim go out together (one round trip on PostgreSQL, whose connection pipelines
    // statements polled together; on SQLite each completes at once, in this order). The claim is conditional on the
    // payment having been inserted, so the payment's own insert decides DuplicateOrderId first, whichever request
    // holds the key, and a duplicate order writes no claim.
    let claim = async {
        match &insert.idempotency {
            Some(write) => crate::idempotency::claim_for_new_payment(db, write, payment.id).await,
            None => None,
        }
    };
    db.prepare(&[sql::INSERT_PAYMENT]).await?;
    let (inserted, claimed) = tokio::join!(biased; db.execute(sql::INSERT_PAYMENT, &values), claim);
    if inserted? == 0 {
        return Ok(InsertPaymentOutcome::DuplicateOrderId);
    }
    match claimed {
        Some(Ok(true)) => {}
        Some(Ok(false)) => return Err(StoreError::IdempotencyConflict),
        Some(Err(error)) => return Err(error),
        None => {
            if let Some(write) = &insert.idempotency {
                crate::idempotency::apply(db, write).await?;
            }
        }
    }
    if let Some(sealed) = &insert.checkout_card {
        store_checkout_card(db, payment.id, sealed, payment.requested_at).await?;
    }
    if let Some(session) = &insert.checkout_session {
        crate::checkout::insert(db, session).await?;
    }
    if let Some(account) = &insert.virtual_account {
        crate::virtual_accounts::insert_account(db, account).await?;
    }
    if let Some(request) = &insert.receipt_request {
        let change = crate::cash_receipts::ReceiptChange {
            request: Some(request.clone()),
            ..Default::default()
        };
        crate::cash_receipts::apply(db, &change).await?;
    }
    for event in &insert.events {
        crate::outbox::insert_new_event(db, event).await?;
    }
    Ok(InsertPaymentOutcome::Inserted)
}

async fn update_payment(db: &impl Db, update: PaymentUpdate) -> Result<(), StoreError> {
    let p = &update.payment;
    if update.expected_version.checked_add(1) != Some(p.version) {
        return Err(StoreError::Conflict("the new version must follow the expected one"));
    }
    let mut values = payment_values(p);
    values.push(update.expected_version.into());
    // The statements go out together: on PostgreSQL, futures polled together share the connection's pipeline, so
    // the change costs a few round trips instead of one per statement (measured: one socket write per statement
    // was 40% of the gateway's CPU per key-in); on SQLite each completes at once, in the order written here. The
    // conditional update of the payment is sent first, so it takes the row lock before anything else runs; its
    // answer is checked before any other, and a failed condition rolls everything back.
    db.prepare(&[sql::UPDATE_PAYMENT]).await?;
    let payment_changed = db.execute(sql::UPDATE_PAYMENT, &values);
    let transaction_changed = async {
        match &update.update_transaction {
            Some(t) => {
                let values = vals![
                    t.key,
                    t.status.as_str(),
                    t.completed_at,
                    t.acquirer_transaction_id.as_deref(),
                    t.next_attempt_at,
                    t.attempts,
                    t.payment_id,
                    t.amount.amount_minor(),
                ];
                db.execute(sql::UPDATE_TRANSACTION, values).await.map(Some)
            }
            None => Ok(None),
        }
    };
    // A journal names its transaction or its deposit (foreign keys): they go in first, in this chain.
    let ledger = async {
        crate::virtual_accounts::apply(db, &update.bank).await?;
        for t in &update.insert_transactions {
            insert_transaction(db, t).await?;
        }
        crate::virtual_accounts::apply_refunds(db, &update.bank).await?;
        for entry in &update.journals {
            crate::ledger::post(db, p.id, entry).await?;
        }
        // A receipt names its payment's transaction: after the transactions.
        crate::cash_receipts::apply(db, &update.receipts).await?;
        Ok::<(), StoreError>(())
    };
    // The events the change causes, and their deliveries, commit or roll back with it.
    let events = async {
        for event in &update.events {
            crate::outbox::insert_new_event(db, event).await?;
        }
        Ok::<(), StoreError>(())
    };
    let idempotency = async {
        match &update.idempotency {
            Some(write) => crate::idempotency::apply(db, write).await,
            None => Ok(()),
        }
    };
    let card = async {
        match &update.checkout_card {
            CheckoutCardChange::Keep => Ok(()),
            CheckoutCardChange::Store(sealed) => store_checkout_card(db, p.id, sealed, p.requested_at).await,
            CheckoutCardChange::Delete => db.execute(sql::DELETE_CHECKOUT_CARD, vals![p.id]).await.map(|_| ()),
        }
    };
    let (payment_changed, transaction_changed, ledger, events, idempotency, card) =
        tokio::join!(biased; payment_changed, transaction_changed, ledger, events, idempotency, card);
    if payment_changed? != 1 {
        return Err(StoreError::Conflict("the payment changed since it was read"));
    }
    if transaction_changed?.is_some_and(|changed| changed != 1) {
        return Err(StoreError::Conflict("the transaction is no longer pending"));
    }
    first_failure([ledger, events, idempotency, card])
}

/// The error that explains a group of statements run together. After one statement fails, PostgreSQL refuses the
/// rest of the transaction with a generic error; a specific error (a key already taken, a lost condition) is the
/// cause and wins over those, whichever answer arrived first.
fn first_failure<const N: usize>(results: [Result<(), StoreError>; N]) -> Result<(), StoreError> {
    let mut generic = None;
    for result in results {
        match result {
            Ok(()) => {}
            Err(error @ (StoreError::IdempotencyConflict | StoreError::Conflict(_))) => return Err(error),
            Err(error) => {
                generic.get_or_insert(error);
            }
        }
    }
    generic.map_or(Ok(()), Err)
}

async fn payment(
    db: &impl Db,
    merchant_id: MerchantId,
    mode: Mode,
    id: PaymentId,
) -> Result<Option<Payment>, StoreError> {
    let found = payment_by_id(db, id).await?;
    Ok(found.filter(|p| p.merchant_id == merchant_id && p.mode == mode))
}

async fn payment_by_id(db: &impl Db, id: PaymentId) -> Result<Option<Payment>, StoreError> {
    first(db, sql::PAYMENT_BY_ID, vals![id])
        .await?
        .as_ref()
        .map(payment_from)
        .transpose()
}

async fn payment_by_order(
    db: &impl Db,
    merchant_id: MerchantId,
    mode: Mode,
    order_id: OrderId,
) -> Result<Option<Payment>, StoreError> {
    let row = first(db, sql::PAYMENT_BY_ORDER, vals![merchant_id, mode, order_id.as_str()]).await?;
    row.as_ref().map(payment_from).transpose()
}

async fn payment_transactions(db: &impl Db, payment_id: PaymentId) -> Result<Vec<PaymentTransaction>, StoreError> {
    all(db, sql::TRANSACTIONS_OF, vals![payment_id], transaction_from).await
}

async fn list_transactions(db: &impl Db, q: TransactionQuery) -> Result<Vec<ListedTransaction>, StoreError> {
    let after = q.after.map(|k| k.to_string()).unwrap_or_default();
    let values = vals![q.merchant_id, q.mode, q.from, q.until, after, q.limit];
    all(db, sql::LIST_TRANSACTIONS, values, |row| {
        let transaction = transaction_from(row)?;
        let currency = transaction.amount.currency();
        Ok(ListedTransaction {
            order_id: row.parse(15, OrderId::parse)?,
            balance_after: Money::new(row.int(16)?, currency),
            customer_key: row.opt_string(17)?,
            transaction,
        })
    })
    .await
}

async fn list_payments(db: &impl Db, q: PaymentQuery) -> Result<Vec<Payment>, StoreError> {
    let after = q.after.map(|k| k.to_string()).unwrap_or_default();
    let values = vals![
        q.merchant_id,
        q.mode,
        q.from,
        q.until,
        q.method.map_or("", |m| m.as_str()),
        q.status.map_or("", |s| s.as_str()),
        q.min_amount.unwrap_or(i64::MIN),
        q.max_amount.unwrap_or(i64::MAX),
        after,
        q.limit,
    ];
    all(db, sql::LIST_PAYMENTS, values, payment_from).await
}

async fn checkout_card(db: &impl Db, payment_id: PaymentId) -> Result<Option<Sealed>, StoreError> {
    let row = first(db, sql::CHECKOUT_CARD, vals![payment_id]).await?;
    row.map(|row| {
        Ok(Sealed {
            key_version: row.num(0)?,
            bytes: row.blob(1)?,
        })
    })
    .transpose()
}

async fn due_inquiries(db: &impl Db, now: UnixMillis, limit: u32) -> Result<Vec<Payment>, StoreError> {
    all(db, sql::DUE_INQUIRIES, vals![now, limit], payment_from).await
}

async fn due_expiries(db: &impl Db, now: UnixMillis, limit: u32) -> Result<Vec<Payment>, StoreError> {
    all(db, sql::DUE_EXPIRIES, vals![now, limit], payment_from).await
}

async fn due_cancel_retries(db: &impl Db, now: UnixMillis, limit: u32) -> Result<Vec<PaymentTransaction>, StoreError> {
    all(db, sql::DUE_CANCEL_RETRIES, vals![now, limit], transaction_from).await
}
