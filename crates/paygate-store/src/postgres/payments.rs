//! PostgreSQL queries for payments, their transactions, the ledger, routing and encData keys.
//!
//! The semantics are those of `sqlite/payments.rs`; the comments here note only what PostgreSQL does differently.
//! Functions that write take the caller's [`Transaction`] and never commit: the caller commits on success, and an
//! error (or a dropped transaction) rolls everything back.

use deadpool_postgres::{GenericClient, Transaction};
use paygate_domain::api_key::Mode;
use paygate_domain::card::{CardSummary, Installment};
use paygate_domain::id::{MerchantId, PaymentId, TransactionKey};
use paygate_domain::ledger::check_balanced;
use paygate_domain::money::{Currency, Money};
use paygate_domain::order::{OrderId, OrderName};
use paygate_domain::payment::{
    ApprovalDetails, ApprovalState, Failure, Flow, Payment, PaymentStatus, PaymentTransaction, Route, TransactionKind,
    TransactionStatus,
};
use paygate_domain::time::UnixMillis;
use paygate_domain::vat::VatSplit;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;
use tokio_postgres::Row;

use super::error::pg_error;
use super::rows::{corrupt, get, parsed};
use crate::payments::{
    AcquirerContract, CheckoutCardChange, InsertPaymentOutcome, LedgerAudit, PaymentInsert, PaymentUpdate, Sealed,
    StoredEncKey, TransactionQuery,
};
use crate::StoreError;

type Param<'a> = &'a (dyn ToSql + Sync);

pub(super) const PAYMENT_COLUMNS: &str = "id, merchant_id, mode, order_id, order_name, flow, status, approval_state, \
    currency, total_amount, tax_free_amount, vat_amount, balance_amount, card_bin, card_last4, card_masked, \
    installment_months, acquirer, acquirer_merchant_id, approval_number, issuer_code, acquirer_transaction_id, \
    approved_at, customer_name, customer_email, failure_code, failure_message, failure_acquirer_code, requested_at, \
    expires_at, next_inquiry_at, inquiry_attempts, version, notification_url";

pub(super) const TRANSACTION_COLUMNS: &str = "transaction_key, payment_id, merchant_id, mode, kind, status, currency, \
    amount, reason, created_at, completed_at, acquirer_transaction_id, next_attempt_at, attempts";

/// The unique constraint on `payments (merchant_id, mode, order_id)`, named in `migrations/postgres/0002`.
const ORDER_ID_CONSTRAINT: &str = "payments_order_id_key";

/// Rows the audit lists at most, per list.
const AUDIT_LIST_MAX: i64 = 1000;

// Rows to domain types.

fn currency(code: &str, what: &str) -> Result<Currency, StoreError> {
    parsed(code.parse::<Currency>(), what)
}

/// An `INTEGER` column that holds an unsigned domain value.
pub(super) fn unsigned<T: TryFrom<i32>>(row: &Row, index: usize, what: &str) -> Result<T, StoreError> {
    parsed(T::try_from(get::<i32>(row, index)?), what)
}

/// An unsigned domain value for an `INTEGER` column. SQLite's INTEGER holds all of `u32`; PostgreSQL's does not, and
/// a value above `i32::MAX` is refused rather than wrapped.
pub(super) fn int4(value: u32, what: &str) -> Result<i32, StoreError> {
    i32::try_from(value).map_err(|_| StoreError::Backend(format!("{what} {value} does not fit a PostgreSQL INTEGER")))
}

fn millis(value: Option<i64>) -> Option<UnixMillis> {
    value.map(UnixMillis::new)
}

/// A payment read with [`PAYMENT_COLUMNS`].
pub(super) fn payment(row: &Row) -> Result<Payment, StoreError> {
    let currency = currency(get(row, 8)?, "payments.currency")?;
    let money = |index: usize| -> Result<Money, StoreError> { Ok(Money::new(get(row, index)?, currency)) };
    let amounts = parsed(
        VatSplit::with_explicit_vat(money(9)?, money(10)?, money(11)?),
        "payments amounts",
    )?;
    let card = match (
        get::<Option<String>>(row, 13)?,
        get::<Option<String>>(row, 14)?,
        get(row, 15)?,
    ) {
        (Some(bin), Some(last4), Some(masked)) => Some(CardSummary { bin, last4, masked }),
        _ => None,
    };
    let route = match (get::<Option<String>>(row, 17)?, get::<Option<String>>(row, 18)?) {
        (Some(acquirer), Some(acquirer_merchant_id)) => Some(Route {
            acquirer,
            acquirer_merchant_id,
        }),
        _ => None,
    };
    let approval = match (
        get::<Option<String>>(row, 19)?,
        get::<Option<String>>(row, 20)?,
        get::<Option<String>>(row, 21)?,
        get::<Option<i64>>(row, 22)?,
    ) {
        (Some(approval_number), Some(issuer_code), Some(acquirer_transaction_id), Some(at)) => Some(ApprovalDetails {
            approval_number,
            issuer_code,
            acquirer_transaction_id,
            approved_at: UnixMillis::new(at),
        }),
        _ => None,
    };
    let failure = match (get::<Option<String>>(row, 25)?, get::<Option<String>>(row, 26)?) {
        (Some(code), Some(message)) => Some(Failure {
            code,
            message,
            acquirer_code: get(row, 27)?,
        }),
        _ => None,
    };
    let installment: u8 = unsigned(row, 16, "payments.installment_months")?;
    Ok(Payment {
        id: parsed(PaymentId::parse(get(row, 0)?), "payments.id")?,
        merchant_id: parsed(MerchantId::parse(get(row, 1)?), "payments.merchant_id")?,
        mode: Mode::parse(get(row, 2)?).ok_or_else(|| corrupt("payments.mode"))?,
        order_id: parsed(OrderId::parse(get(row, 3)?), "payments.order_id")?,
        order_name: parsed(OrderName::from_stored(get(row, 4)?), "payments.order_name")?,
        flow: Flow::parse(get(row, 5)?).ok_or_else(|| corrupt("payments.flow"))?,
        status: parsed(get::<&str>(row, 6)?.parse::<PaymentStatus>(), "payments.status")?,
        approval_state: ApprovalState::parse(get(row, 7)?).ok_or_else(|| corrupt("payments.approval_state"))?,
        amounts,
        balance: money(12)?,
        card,
        installment: parsed(Installment::new(installment), "payments.installment_months")?,
        route,
        approval,
        customer_name: get(row, 23)?,
        customer_email: get(row, 24)?,
        failure,
        requested_at: UnixMillis::new(get(row, 28)?),
        expires_at: millis(get(row, 29)?),
        next_inquiry_at: millis(get(row, 30)?),
        inquiry_attempts: unsigned(row, 31, "payments.inquiry_attempts")?,
        version: get(row, 32)?,
        notification_url: get(row, 33)?,
    })
}

/// A transaction read with [`TRANSACTION_COLUMNS`].
pub(super) fn transaction(row: &Row) -> Result<PaymentTransaction, StoreError> {
    let currency = currency(get(row, 6)?, "payment_transactions.currency")?;
    Ok(PaymentTransaction {
        key: parsed(
            TransactionKey::parse(get(row, 0)?),
            "payment_transactions.transaction_key",
        )?,
        payment_id: parsed(PaymentId::parse(get(row, 1)?), "payment_transactions.payment_id")?,
        merchant_id: parsed(MerchantId::parse(get(row, 2)?), "payment_transactions.merchant_id")?,
        mode: Mode::parse(get(row, 3)?).ok_or_else(|| corrupt("payment_transactions.mode"))?,
        kind: TransactionKind::parse(get(row, 4)?).ok_or_else(|| corrupt("payment_transactions.kind"))?,
        status: TransactionStatus::parse(get(row, 5)?).ok_or_else(|| corrupt("payment_transactions.status"))?,
        amount: Money::new(get(row, 7)?, currency),
        reason: get(row, 8)?,
        created_at: UnixMillis::new(get(row, 9)?),
        completed_at: millis(get(row, 10)?),
        acquirer_transaction_id: get(row, 11)?,
        next_attempt_at: millis(get(row, 12)?),
        attempts: unsigned(row, 13, "payment_transactions.attempts")?,
    })
}

// Domain types to parameters.

/// A payment's column values in [`PAYMENT_COLUMNS`] order, typed as the columns are.
struct PaymentValues<'a> {
    id: String,
    merchant_id: String,
    mode: &'static str,
    order_id: &'a str,
    order_name: &'a str,
    flow: &'static str,
    status: &'static str,
    approval_state: &'static str,
    currency: &'static str,
    total: i64,
    tax_free: i64,
    vat: i64,
    balance: i64,
    card_bin: Option<&'a str>,
    card_last4: Option<&'a str>,
    card_masked: Option<&'a str>,
    installment_months: i32,
    acquirer: Option<&'a str>,
    acquirer_merchant_id: Option<&'a str>,
    approval_number: Option<&'a str>,
    issuer_code: Option<&'a str>,
    acquirer_transaction_id: Option<&'a str>,
    approved_at: Option<i64>,
    customer_name: Option<&'a str>,
    customer_email: Option<&'a str>,
    failure_code: Option<&'a str>,
    failure_message: Option<&'a str>,
    failure_acquirer_code: Option<&'a str>,
    requested_at: i64,
    expires_at: Option<i64>,
    next_inquiry_at: Option<i64>,
    inquiry_attempts: i32,
    version: i64,
    notification_url: Option<&'a str>,
}

impl<'a> PaymentValues<'a> {
    fn new(p: &'a Payment) -> Result<PaymentValues<'a>, StoreError> {
        let card = p.card.as_ref();
        let route = p.route.as_ref();
        let approval = p.approval.as_ref();
        let failure = p.failure.as_ref();
        Ok(PaymentValues {
            id: p.id.to_string(),
            merchant_id: p.merchant_id.to_string(),
            mode: p.mode.as_str(),
            order_id: p.order_id.as_str(),
            order_name: p.order_name.as_str(),
            flow: p.flow.as_str(),
            status: p.status.as_str(),
            approval_state: p.approval_state.as_str(),
            currency: p.amounts.total().currency().code(),
            total: p.amounts.total().amount_minor(),
            tax_free: p.amounts.tax_free().amount_minor(),
            vat: p.amounts.vat().amount_minor(),
            balance: p.balance.amount_minor(),
            card_bin: card.map(|c| c.bin.as_str()),
            card_last4: card.map(|c| c.last4.as_str()),
            card_masked: card.map(|c| c.masked.as_str()),
            installment_months: i32::from(p.installment.months()),
            acquirer: route.map(|r| r.acquirer.as_str()),
            acquirer_merchant_id: route.map(|r| r.acquirer_merchant_id.as_str()),
            approval_number: approval.map(|a| a.approval_number.as_str()),
            issuer_code: approval.map(|a| a.issuer_code.as_str()),
            acquirer_transaction_id: approval.map(|a| a.acquirer_transaction_id.as_str()),
            approved_at: approval.map(|a| a.approved_at.as_millis()),
            customer_name: p.customer_name.as_deref(),
            customer_email: p.customer_email.as_deref(),
            failure_code: failure.map(|f| f.code.as_str()),
            failure_message: failure.map(|f| f.message.as_str()),
            failure_acquirer_code: failure.and_then(|f| f.acquirer_code.as_deref()),
            requested_at: p.requested_at.as_millis(),
            expires_at: p.expires_at.map(UnixMillis::as_millis),
            next_inquiry_at: p.next_inquiry_at.map(UnixMillis::as_millis),
            inquiry_attempts: int4(p.inquiry_attempts, "payments.inquiry_attempts")?,
            version: p.version,
            notification_url: p.notification_url.as_deref(),
        })
    }

    /// `$1` to `$34`.
    fn params(&self) -> [Param<'_>; 34] {
        [
            &self.id,
            &self.merchant_id,
            &self.mode,
            &self.order_id,
            &self.order_name,
            &self.flow,
            &self.status,
            &self.approval_state,
            &self.currency,
            &self.total,
            &self.tax_free,
            &self.vat,
            &self.balance,
            &self.card_bin,
            &self.card_last4,
            &self.card_masked,
            &self.installment_months,
            &self.acquirer,
            &self.acquirer_merchant_id,
            &self.approval_number,
            &self.issuer_code,
            &self.acquirer_transaction_id,
            &self.approved_at,
            &self.customer_name,
            &self.customer_email,
            &self.failure_code,
            &self.failure_message,
            &self.failure_acquirer_code,
            &self.requested_at,
            &self.expires_at,
            &self.next_inquiry_at,
            &self.inquiry_attempts,
            &self.version,
            &self.notification_url,
        ]
    }
}

// Routing.

/// Makes writers of one merchant's settings (contracts, encData keys) take turns, so a replacement sees the rows
/// the previous one committed, as SQLite's single writer does. `FOR NO KEY UPDATE` does not block inserts that
/// reference the merchant. A missing merchant locks nothing; its inserts then fail on the foreign key.
async fn lock_merchant_settings(tx: &Transaction<'_>, merchant_id: &str) -> Result<(), StoreError> {
    let statement = tx
        .prepare_cached("SELECT 1 FROM merchants WHERE id = $1 FOR NO KEY UPDATE")
        .await
        .map_err(pg_error)?;
    tx.query_opt(&statement, &[&merchant_id]).await.map_err(pg_error)?;
    Ok(())
}

pub(super) async fn set_contracts(
    tx: &Transaction<'_>,
    merchant_id: MerchantId,
    mode: Mode,
    contracts: &[AcquirerContract],
) -> Result<(), StoreError> {
    let merchant_id = merchant_id.to_string();
    lock_merchant_settings(tx, &merchant_id).await?;
    tx.execute(
        "DELETE FROM acquirer_contracts WHERE merchant_id = $1 AND mode = $2",
        &[&merchant_id, &mode.as_str()],
    )
    .await
    .map_err(pg_error)?;
    let insert = tx
        .prepare_cached(
            "INSERT INTO acquirer_contracts (merchant_id, mode, bin_prefix, acquirer, acquirer_merchant_id)
             VALUES ($1, $2, $3, $4, $5)",
        )
        .await
        .map_err(pg_error)?;
    for contract in contracts {
        tx.execute(
            &insert,
            &[
                &merchant_id,
                &mode.as_str(),
                &contract.bin_prefix,
                &contract.acquirer,
                &contract.acquirer_merchant_id,
            ],
        )
        .await
        .map_err(pg_error)?;
    }
    Ok(())
}

pub(super) async fn contracts(
    client: &impl GenericClient,
    merchant_id: MerchantId,
    mode: Mode,
) -> Result<Vec<AcquirerContract>, StoreError> {
    let statement = client
        .prepare_cached(
            "SELECT bin_prefix, acquirer, acquirer_merchant_id FROM acquirer_contracts
             WHERE merchant_id = $1 AND mode = $2 ORDER BY bin_prefix",
        )
        .await
        .map_err(pg_error)?;
    let rows = client
        .query(&statement, &[&merchant_id.to_string(), &mode.as_str()])
        .await
        .map_err(pg_error)?;
    rows.iter()
        .map(|row| {
            Ok(AcquirerContract {
                bin_prefix: get(row, 0)?,
                acquirer: get(row, 1)?,
                acquirer_merchant_id: get(row, 2)?,
            })
        })
        .collect()
}

// Payments.

/// Whether `error` is the (merchant, mode, orderId) uniqueness, and not another unique violation (a reused ID).
fn is_duplicate_order_id(error: &tokio_postgres::Error) -> bool {
    error
        .as_db_error()
        .is_some_and(|db| *db.code() == SqlState::UNIQUE_VIOLATION && db.constraint() == Some(ORDER_ID_CONSTRAINT))
}

/// No pre-check: the unique constraint decides, so two racing inserts of one orderId cannot both succeed, and the
/// loser (which waits for the winner's commit) hears `DuplicateOrderId`. The transaction is then aborted; the caller
/// rolls it back.
pub(super) async fn insert_payment(
    tx: &Transaction<'_>,
    insert: &PaymentInsert,
) -> Result<InsertPaymentOutcome, StoreError> {
    let payment = &insert.payment;
    let statement = tx
        .prepare_cached(&format!(
            "INSERT INTO payments ({PAYMENT_COLUMNS}) VALUES ({})",
            (1..=34).map(|i| format!("${i}")).collect::<Vec<_>>().join(", ")
        ))
        .await
        .map_err(pg_error)?;
    let values = PaymentValues::new(payment)?;
    match tx.execute(&statement, &values.params()).await {
        Ok(_) => {}
        Err(error) if is_duplicate_order_id(&error) => return Ok(InsertPaymentOutcome::DuplicateOrderId),
        Err(error) => return Err(pg_error(error)),
    }
    if let Some(sealed) = &insert.checkout_card {
        store_checkout_card(tx, &values.id, sealed, payment.requested_at).await?;
    }
    if let Some(session) = &insert.checkout_session {
        super::insert_checkout_session(tx, session).await?;
    }
    // Last: the payment's own INSERT decides DuplicateOrderId first, whichever request holds the key.
    if let Some(write) = &insert.idempotency {
        crate::idempotency::postgres::apply(tx, write).await?;
    }
    Ok(InsertPaymentOutcome::Inserted)
}

async fn store_checkout_card(
    tx: &Transaction<'_>,
    payment_id: &str,
    sealed: &Sealed,
    at: UnixMillis,
) -> Result<(), StoreError> {
    let statement = tx
        .prepare_cached(
            "INSERT INTO checkout_cards (payment_id, key_version, sealed, created_at) VALUES ($1, $2, $3, $4)
             ON CONFLICT (payment_id) DO UPDATE SET key_version = excluded.key_version, sealed = excluded.sealed,
                 created_at = excluded.created_at",
        )
        .await
        .map_err(pg_error)?;
    let key_version = int4(sealed.key_version, "checkout_cards.key_version")?;
    tx.execute(
        &statement,
        &[&payment_id, &key_version, &sealed.bytes.as_slice(), &at.as_millis()],
    )
    .await
    .map_err(pg_error)?;
    Ok(())
}

async fn insert_transaction(tx: &Transaction<'_>, t: &PaymentTransaction) -> Result<(), StoreError> {
    let statement = tx
        .prepare_cached(&format!(
            "INSERT INTO payment_transactions ({TRANSACTION_COLUMNS})
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)"
        ))
        .await
        .map_err(pg_error)?;
    tx.execute(
        &statement,
        &[
            &t.key.to_string(),
            &t.payment_id.to_string(),
            &t.merchant_id.to_string(),
            &t.mode.as_str(),
            &t.kind.as_str(),
            &t.status.as_str(),
            &t.amount.currency().code(),
            &t.amount.amount_minor(),
            &t.reason,
            &t.created_at.as_millis(),
            &t.completed_at.map(UnixMillis::as_millis),
            &t.acquirer_transaction_id,
            &t.next_attempt_at.map(UnixMillis::as_millis),
            &int4(t.attempts, "payment_transactions.attempts")?,
        ],
    )
    .await
    .map_err(pg_error)?;
    Ok(())
}

/// Every column but the identity ones is rewritten; the WHERE clause makes the write conditional on the version
/// this change was computed from (and on the identity columns being unchanged). Under READ COMMITTED a concurrent
/// update of the same row makes this one wait, then re-check the WHERE clause against the committed row: the
/// version has moved, nothing is updated, and the loser hears `Conflict`.
const UPDATE_PAYMENT: &str = "UPDATE payments SET order_name = $5, status = $7, approval_state = $8,
        balance_amount = $13, card_bin = $14, card_last4 = $15, card_masked = $16, installment_months = $17,
        acquirer = $18, acquirer_merchant_id = $19, approval_number = $20, issuer_code = $21,
        acquirer_transaction_id = $22, approved_at = $23, customer_name = $24, customer_email = $25,
        failure_code = $26, failure_message = $27, failure_acquirer_code = $28, expires_at = $30,
        next_inquiry_at = $31, inquiry_attempts = $32, version = $33, notification_url = $34
    WHERE id = $1 AND version = $35
      AND merchant_id = $2 AND mode = $3 AND order_id = $4 AND flow = $6 AND currency = $9
      AND total_amount = $10 AND tax_free_amount = $11 AND vat_amount = $12 AND requested_at = $29";

pub(super) async fn update_payment(tx: &Transaction<'_>, update: &PaymentUpdate) -> Result<(), StoreError> {
    let p = &update.payment;
    if update.expected_version.checked_add(1) != Some(p.version) {
        return Err(StoreError::Conflict("the new version must follow the expected one"));
    }
    let values = PaymentValues::new(p)?;
    let mut params: Vec<Param<'_>> = values.params().to_vec();
    params.push(&update.expected_version);
    let statement = tx.prepare_cached(UPDATE_PAYMENT).await.map_err(pg_error)?;
    let changed = tx.execute(&statement, &params).await.map_err(pg_error)?;
    if changed != 1 {
        return Err(StoreError::Conflict("the payment changed since it was read"));
    }
    if let Some(t) = &update.update_transaction {
        let statement = tx
            .prepare_cached(
                "UPDATE payment_transactions SET status = $2, completed_at = $3, acquirer_transaction_id = $4,
                     next_attempt_at = $5, attempts = $6
                 WHERE transaction_key = $1 AND status = 'PENDING' AND payment_id = $7 AND amount = $8",
            )
            .await
            .map_err(pg_error)?;
        let changed = tx
            .execute(
                &statement,
                &[
                    &t.key.to_string(),
                    &t.status.as_str(),
                    &t.completed_at.map(UnixMillis::as_millis),
                    &t.acquirer_transaction_id,
                    &t.next_attempt_at.map(UnixMillis::as_millis),
                    &int4(t.attempts, "payment_transactions.attempts")?,
                    &t.payment_id.to_string(),
                    &t.amount.amount_minor(),
                ],
            )
            .await
            .map_err(pg_error)?;
        if changed != 1 {
            return Err(StoreError::Conflict("the transaction is no longer pending"));
        }
    }
    for t in &update.insert_transactions {
        insert_transaction(tx, t).await?;
    }
    if !update.journals.is_empty() {
        let statement = tx
            .prepare_cached(
                "INSERT INTO ledger_postings
                     (journal_id, seq, account, currency, amount, payment_id, transaction_key, created_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .await
            .map_err(pg_error)?;
        for entry in &update.journals {
            // Asserted again where it is stored: an unbalanced journal aborts the whole transaction.
            check_balanced(entry.journal.postings())
                .map_err(|_| StoreError::Conflict("an unbalanced journal was refused"))?;
            let (journal_id, transaction_key) = (entry.id.to_string(), entry.transaction_key.to_string());
            for (seq, posting) in entry.journal.postings().iter().enumerate() {
                let seq = i32::try_from(seq).map_err(|_| StoreError::Conflict("a journal has too many postings"))?;
                tx.execute(
                    &statement,
                    &[
                        &journal_id,
                        &seq,
                        &posting.account.as_str(),
                        &posting.amount.currency().code(),
                        &posting.amount.amount_minor(),
                        &values.id,
                        &transaction_key,
                        &entry.created_at.as_millis(),
                    ],
                )
                .await
                .map_err(pg_error)?;
            }
        }
    }
    // The events the change causes, and their deliveries, commit or roll back with it.
    for event in &update.events {
        super::outbox::insert_new_event(tx, event).await?;
    }
    if let Some(write) = &update.idempotency {
        crate::idempotency::postgres::apply(tx, write).await?;
    }
    match &update.checkout_card {
        CheckoutCardChange::Keep => {}
        CheckoutCardChange::Store(sealed) => store_checkout_card(tx, &values.id, sealed, p.requested_at).await?,
        CheckoutCardChange::Delete => {
            let statement = tx
                .prepare_cached("DELETE FROM checkout_cards WHERE payment_id = $1")
                .await
                .map_err(pg_error)?;
            tx.execute(&statement, &[&values.id]).await.map_err(pg_error)?;
        }
    }
    Ok(())
}

/// At most one payment matching `clause` (written with `$n` placeholders for `params`).
pub(super) async fn payment_where(
    client: &impl GenericClient,
    clause: &str,
    params: &[Param<'_>],
) -> Result<Option<Payment>, StoreError> {
    let statement = client
        .prepare_cached(&format!("SELECT {PAYMENT_COLUMNS} FROM payments WHERE {clause}"))
        .await
        .map_err(pg_error)?;
    let row = client.query_opt(&statement, params).await.map_err(pg_error)?;
    row.as_ref().map(payment).transpose()
}

pub(super) async fn payments_where(
    client: &impl GenericClient,
    clause: &str,
    params: &[Param<'_>],
) -> Result<Vec<Payment>, StoreError> {
    let statement = client
        .prepare_cached(&format!("SELECT {PAYMENT_COLUMNS} FROM payments WHERE {clause}"))
        .await
        .map_err(pg_error)?;
    let rows = client.query(&statement, params).await.map_err(pg_error)?;
    rows.iter().map(payment).collect()
}

pub(super) async fn transactions_where(
    client: &impl GenericClient,
    clause: &str,
    params: &[Param<'_>],
) -> Result<Vec<PaymentTransaction>, StoreError> {
    let statement = client
        .prepare_cached(&format!(
            "SELECT {TRANSACTION_COLUMNS} FROM payment_transactions WHERE {clause}"
        ))
        .await
        .map_err(pg_error)?;
    let rows = client.query(&statement, params).await.map_err(pg_error)?;
    rows.iter().map(transaction).collect()
}

pub(super) async fn list_transactions(
    client: &impl GenericClient,
    q: &TransactionQuery,
) -> Result<Vec<PaymentTransaction>, StoreError> {
    let after = q.after.map(|k| k.to_string()).unwrap_or_default();
    transactions_where(
        client,
        "merchant_id = $1 AND mode = $2 AND created_at >= $3 AND created_at < $4 AND transaction_key > $5
         ORDER BY transaction_key LIMIT $6",
        &[
            &q.merchant_id.to_string(),
            &q.mode.as_str(),
            &q.from.as_millis(),
            &q.until.as_millis(),
            &after,
            &i64::from(q.limit),
        ],
    )
    .await
}

pub(super) async fn checkout_card(client: &impl GenericClient, id: PaymentId) -> Result<Option<Sealed>, StoreError> {
    let statement = client
        .prepare_cached("SELECT key_version, sealed FROM checkout_cards WHERE payment_id = $1")
        .await
        .map_err(pg_error)?;
    let row = client
        .query_opt(&statement, &[&id.to_string()])
        .await
        .map_err(pg_error)?;
    row.map(|row| {
        Ok(Sealed {
            key_version: unsigned(&row, 0, "checkout_cards.key_version")?,
            bytes: get(&row, 1)?,
        })
    })
    .transpose()
}

// encData keys.

pub(super) async fn enc_keys(
    client: &impl GenericClient,
    merchant_id: MerchantId,
    mode: Mode,
) -> Result<Vec<StoredEncKey>, StoreError> {
    let statement = client
        .prepare_cached(
            "SELECT version, vault_key_version, sealed_key, created_at, retires_at FROM merchant_enc_keys
             WHERE merchant_id = $1 AND mode = $2 ORDER BY version",
        )
        .await
        .map_err(pg_error)?;
    let rows = client
        .query(&statement, &[&merchant_id.to_string(), &mode.as_str()])
        .await
        .map_err(pg_error)?;
    rows.iter()
        .map(|row| {
            Ok(StoredEncKey {
                version: unsigned(row, 0, "merchant_enc_keys.version")?,
                sealed: Sealed {
                    key_version: unsigned(row, 1, "merchant_enc_keys.vault_key_version")?,
                    bytes: get(row, 2)?,
                },
                created_at: UnixMillis::new(get(row, 3)?),
                retires_at: millis(get(row, 4)?),
            })
        })
        .collect()
}

pub(super) async fn add_enc_key(
    tx: &Transaction<'_>,
    merchant_id: MerchantId,
    mode: Mode,
    key: &StoredEncKey,
    retire_previous_at: UnixMillis,
) -> Result<(), StoreError> {
    let merchant_id = merchant_id.to_string();
    // Two rotations at once must not both leave their key unretired: they take turns.
    lock_merchant_settings(tx, &merchant_id).await?;
    tx.execute(
        "UPDATE merchant_enc_keys SET retires_at = $3 WHERE merchant_id = $1 AND mode = $2 AND retires_at IS NULL",
        &[&merchant_id, &mode.as_str(), &retire_previous_at.as_millis()],
    )
    .await
    .map_err(pg_error)?;
    tx.execute(
        "INSERT INTO merchant_enc_keys
             (merchant_id, mode, version, vault_key_version, sealed_key, created_at, retires_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
        &[
            &merchant_id,
            &mode.as_str(),
            &int4(key.version, "merchant_enc_keys.version")?,
            &int4(key.sealed.key_version, "merchant_enc_keys.vault_key_version")?,
            &key.sealed.bytes.as_slice(),
            &key.created_at.as_millis(),
            &key.retires_at.map(UnixMillis::as_millis),
        ],
    )
    .await
    .map_err(pg_error)?;
    Ok(())
}

// Ledger.

/// Read in one REPEATABLE READ transaction (the caller's), so the counts and lists describe one snapshot.
/// `SUM(BIGINT)` is NUMERIC in PostgreSQL: totals are cast back, and a total beyond `i64` is an error, as SQLite's
/// integer overflow is.
pub(super) async fn audit_ledger(tx: &Transaction<'_>) -> Result<LedgerAudit, StoreError> {
    let mut audit = LedgerAudit::default();
    let row = tx
        .query_one("SELECT COUNT(DISTINCT journal_id), COUNT(*) FROM ledger_postings", &[])
        .await
        .map_err(pg_error)?;
    audit.journals = u64::try_from(get::<i64>(&row, 0)?).unwrap_or(0);
    audit.postings = u64::try_from(get::<i64>(&row, 1)?).unwrap_or(0);

    // A journal unbalanced in several currencies is listed once.
    let rows = tx
        .query(
            "SELECT DISTINCT journal_id FROM (
                 SELECT journal_id FROM ledger_postings GROUP BY journal_id, currency HAVING SUM(amount) <> 0
             ) unbalanced ORDER BY journal_id LIMIT $1",
            &[&AUDIT_LIST_MAX],
        )
        .await
        .map_err(pg_error)?;
    audit.unbalanced_journals = rows.iter().map(|row| get(row, 0)).collect::<Result<_, _>>()?;

    let rows = tx
        .query(
            "SELECT currency, SUM(amount)::BIGINT FROM ledger_postings GROUP BY currency ORDER BY currency",
            &[],
        )
        .await
        .map_err(pg_error)?;
    for row in &rows {
        let currency = currency(get(row, 0)?, "ledger_postings.currency")?;
        audit.totals.push(Money::new(get(row, 1)?, currency));
    }

    // Each payment's receivable must equal its approved amount minus its completed cancels. `starts_with` rather
    // than LIKE: `_` is a LIKE wildcard.
    let rows = tx
        .query(
            "SELECT p.id FROM payments p
             LEFT JOIN (SELECT payment_id, SUM(amount) AS receivable FROM ledger_postings
                        WHERE starts_with(account, 'acquirer_receivable:') GROUP BY payment_id) l
                    ON l.payment_id = p.id
             LEFT JOIN (SELECT payment_id,
                               SUM(CASE kind WHEN 'APPROVAL' THEN amount ELSE -amount END) AS settled
                        FROM payment_transactions WHERE status = 'DONE' GROUP BY payment_id) t
                    ON t.payment_id = p.id
             WHERE COALESCE(l.receivable, 0) <> COALESCE(t.settled, 0)
             ORDER BY p.id LIMIT $1",
            &[&AUDIT_LIST_MAX],
        )
        .await
        .map_err(pg_error)?;
    for row in &rows {
        audit
            .mismatched_payments
            .push(parsed(PaymentId::parse(get(row, 0)?), "payments.id")?);
    }
    Ok(audit)
}
