//! SQLite queries for payments, their transactions, the ledger, routing and encData keys.

use super::Cached;
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
use rusqlite::{params, Connection, OptionalExtension, Row};

use super::{backend, corrupt};
use crate::payments::{
    AcquirerContract, CheckoutCardChange, InsertPaymentOutcome, LedgerAudit, PaymentInsert, PaymentUpdate, Sealed,
    StoredEncKey, TransactionQuery,
};
use crate::StoreError;

pub(super) const PAYMENT_COLUMNS: &str = "id, merchant_id, mode, order_id, order_name, flow, status, approval_state, \
    currency, total_amount, tax_free_amount, vat_amount, balance_amount, card_bin, card_last4, card_masked, \
    installment_months, acquirer, acquirer_merchant_id, approval_number, issuer_code, acquirer_transaction_id, \
    approved_at, customer_name, customer_email, failure_code, failure_message, failure_acquirer_code, requested_at, \
    expires_at, next_inquiry_at, inquiry_attempts, version, notification_url";

pub(super) const TRANSACTION_COLUMNS: &str = "transaction_key, payment_id, merchant_id, mode, kind, status, currency, \
    amount, reason, created_at, completed_at, acquirer_transaction_id, next_attempt_at, attempts";

fn parse<T>(value: Option<T>, what: &str) -> rusqlite::Result<T> {
    value.ok_or_else(|| corrupt(what))
}

fn currency(text: &str) -> rusqlite::Result<Currency> {
    text.parse().map_err(|_| corrupt("currency"))
}

pub(super) fn payment_from_row(row: &Row<'_>) -> rusqlite::Result<Payment> {
    let currency = currency(&row.get::<_, String>(8)?)?;
    let total = Money::new(row.get(9)?, currency);
    let tax_free = Money::new(row.get(10)?, currency);
    let vat = Money::new(row.get(11)?, currency);
    let amounts = VatSplit::with_explicit_vat(total, tax_free, vat).map_err(|_| corrupt("payments amounts"))?;
    let card = match (
        row.get::<_, Option<String>>(13)?,
        row.get::<_, Option<String>>(14)?,
        row.get(15)?,
    ) {
        (Some(bin), Some(last4), Some(masked)) => Some(CardSummary { bin, last4, masked }),
        _ => None,
    };
    let route = match (row.get::<_, Option<String>>(17)?, row.get::<_, Option<String>>(18)?) {
        (Some(acquirer), Some(acquirer_merchant_id)) => Some(Route {
            acquirer,
            acquirer_merchant_id,
        }),
        _ => None,
    };
    let approval = match (
        row.get::<_, Option<String>>(19)?,
        row.get(20)?,
        row.get(21)?,
        row.get::<_, Option<i64>>(22)?,
    ) {
        (Some(approval_number), Some(issuer_code), Some(acquirer_transaction_id), Some(at)) => Some(ApprovalDetails {
            approval_number,
            issuer_code,
            acquirer_transaction_id,
            approved_at: UnixMillis::new(at),
        }),
        _ => None,
    };
    let failure = match (row.get::<_, Option<String>>(25)?, row.get::<_, Option<String>>(26)?) {
        (Some(code), Some(message)) => Some(Failure {
            code,
            message,
            acquirer_code: row.get(27)?,
        }),
        _ => None,
    };
    let installment: u8 = row.get(16)?;
    Ok(Payment {
        id: PaymentId::parse(&row.get::<_, String>(0)?).map_err(|_| corrupt("payments.id"))?,
        merchant_id: MerchantId::parse(&row.get::<_, String>(1)?).map_err(|_| corrupt("payments.merchant_id"))?,
        mode: parse(Mode::parse(&row.get::<_, String>(2)?), "payments.mode")?,
        order_id: OrderId::parse(&row.get::<_, String>(3)?).map_err(|_| corrupt("payments.order_id"))?,
        order_name: OrderName::from_stored(&row.get::<_, String>(4)?).map_err(|_| corrupt("payments.order_name"))?,
        flow: parse(Flow::parse(&row.get::<_, String>(5)?), "payments.flow")?,
        status: row
            .get::<_, String>(6)?
            .parse::<PaymentStatus>()
            .map_err(|_| corrupt("payments.status"))?,
        approval_state: parse(
            ApprovalState::parse(&row.get::<_, String>(7)?),
            "payments.approval_state",
        )?,
        amounts,
        balance: Money::new(row.get(12)?, currency),
        card,
        installment: Installment::new(installment).map_err(|_| corrupt("payments.installment_months"))?,
        route,
        approval,
        customer_name: row.get(23)?,
        customer_email: row.get(24)?,
        failure,
        requested_at: UnixMillis::new(row.get(28)?),
        expires_at: row.get::<_, Option<i64>>(29)?.map(UnixMillis::new),
        next_inquiry_at: row.get::<_, Option<i64>>(30)?.map(UnixMillis::new),
        inquiry_attempts: row.get(31)?,
        version: row.get(32)?,
        notification_url: row.get(33)?,
    })
}

pub(super) fn transaction_from_row(row: &Row<'_>) -> rusqlite::Result<PaymentTransaction> {
    let currency = currency(&row.get::<_, String>(6)?)?;
    Ok(PaymentTransaction {
        key: TransactionKey::parse(&row.get::<_, String>(0)?).map_err(|_| corrupt("transaction_key"))?,
        payment_id: PaymentId::parse(&row.get::<_, String>(1)?).map_err(|_| corrupt("payment_id"))?,
        merchant_id: MerchantId::parse(&row.get::<_, String>(2)?).map_err(|_| corrupt("merchant_id"))?,
        mode: parse(Mode::parse(&row.get::<_, String>(3)?), "mode")?,
        kind: parse(TransactionKind::parse(&row.get::<_, String>(4)?), "kind")?,
        status: parse(TransactionStatus::parse(&row.get::<_, String>(5)?), "status")?,
        amount: Money::new(row.get(7)?, currency),
        reason: row.get(8)?,
        created_at: UnixMillis::new(row.get(9)?),
        completed_at: row.get::<_, Option<i64>>(10)?.map(UnixMillis::new),
        acquirer_transaction_id: row.get(11)?,
        next_attempt_at: row.get::<_, Option<i64>>(12)?.map(UnixMillis::new),
        attempts: row.get(13)?,
    })
}

pub(super) fn set_contracts(
    conn: &Connection,
    merchant_id: MerchantId,
    mode: Mode,
    contracts: &[AcquirerContract],
) -> Result<(), StoreError> {
    conn.exec(
        "DELETE FROM acquirer_contracts WHERE merchant_id = ?1 AND mode = ?2",
        params![merchant_id.to_string(), mode.as_str()],
    )
    .map_err(backend)?;
    for contract in contracts {
        conn.exec(
            "INSERT INTO acquirer_contracts (merchant_id, mode, bin_prefix, acquirer, acquirer_merchant_id)
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![
                merchant_id.to_string(),
                mode.as_str(),
                contract.bin_prefix,
                contract.acquirer,
                contract.acquirer_merchant_id
            ],
        )
        .map_err(backend)?;
    }
    Ok(())
}

pub(super) fn contracts(
    conn: &Connection,
    merchant_id: MerchantId,
    mode: Mode,
) -> Result<Vec<AcquirerContract>, StoreError> {
    let mut stmt = conn
        .prepare_cached(
            "SELECT bin_prefix, acquirer, acquirer_merchant_id FROM acquirer_contracts
             WHERE merchant_id = ?1 AND mode = ?2 ORDER BY bin_prefix",
        )
        .map_err(backend)?;
    let rows = stmt
        .query_map(params![merchant_id.to_string(), mode.as_str()], |row| {
            Ok(AcquirerContract {
                bin_prefix: row.get(0)?,
                acquirer: row.get(1)?,
                acquirer_merchant_id: row.get(2)?,
            })
        })
        .map_err(backend)?;
    rows.collect::<Result<Vec<_>, _>>().map_err(backend)
}

fn payment_params(p: &Payment) -> Vec<Box<dyn rusqlite::ToSql>> {
    let amounts = &p.amounts;
    vec![
        Box::new(p.id.to_string()),
        Box::new(p.merchant_id.to_string()),
        Box::new(p.mode.as_str()),
        Box::new(p.order_id.as_str().to_owned()),
        Box::new(p.order_name.as_str().to_owned()),
        Box::new(p.flow.as_str()),
        Box::new(p.status.as_str()),
        Box::new(p.approval_state.as_str()),
        Box::new(amounts.total().currency().code()),
        Box::new(amounts.total().amount_minor()),
        Box::new(amounts.tax_free().amount_minor()),
        Box::new(amounts.vat().amount_minor()),
        Box::new(p.balance.amount_minor()),
        Box::new(p.card.as_ref().map(|c| c.bin.clone())),
        Box::new(p.card.as_ref().map(|c| c.last4.clone())),
        Box::new(p.card.as_ref().map(|c| c.masked.clone())),
        Box::new(p.installment.months()),
        Box::new(p.route.as_ref().map(|r| r.acquirer.clone())),
        Box::new(p.route.as_ref().map(|r| r.acquirer_merchant_id.clone())),
        Box::new(p.approval.as_ref().map(|a| a.approval_number.clone())),
        Box::new(p.approval.as_ref().map(|a| a.issuer_code.clone())),
        Box::new(p.approval.as_ref().map(|a| a.acquirer_transaction_id.clone())),
        Box::new(p.approval.as_ref().map(|a| a.approved_at.as_millis())),
        Box::new(p.customer_name.clone()),
        Box::new(p.customer_email.clone()),
        Box::new(p.failure.as_ref().map(|f| f.code.clone())),
        Box::new(p.failure.as_ref().map(|f| f.message.clone())),
        Box::new(p.failure.as_ref().and_then(|f| f.acquirer_code.clone())),
        Box::new(p.requested_at.as_millis()),
        Box::new(p.expires_at.map(UnixMillis::as_millis)),
        Box::new(p.next_inquiry_at.map(UnixMillis::as_millis)),
        Box::new(p.inquiry_attempts),
        Box::new(p.version),
        Box::new(p.notification_url.clone()),
    ]
}

pub(super) fn insert_payment(conn: &Connection, insert: &PaymentInsert) -> Result<InsertPaymentOutcome, StoreError> {
    let payment = &insert.payment;
    let taken: Option<i64> = conn
        .row(
            "SELECT 1 FROM payments WHERE merchant_id = ?1 AND mode = ?2 AND order_id = ?3",
            params![
                payment.merchant_id.to_string(),
                payment.mode.as_str(),
                payment.order_id.as_str()
            ],
            |row| row.get(0),
        )
        .optional()
        .map_err(backend)?;
    if taken.is_some() {
        return Ok(InsertPaymentOutcome::DuplicateOrderId);
    }
    if let Some(write) = &insert.idempotency {
        crate::idempotency::sqlite::apply(conn, write)?;
    }
    let placeholders: Vec<String> = (1..=34).map(|i| format!("?{i}")).collect();
    let values = payment_params(payment);
    conn.exec(
        &format!(
            "INSERT INTO payments ({PAYMENT_COLUMNS}) VALUES ({})",
            placeholders.join(", ")
        ),
        rusqlite::params_from_iter(values.iter().map(|v| v.as_ref())),
    )
    .map_err(backend)?;
    if let Some(sealed) = &insert.checkout_card {
        store_checkout_card(conn, payment.id, sealed, payment.requested_at)?;
    }
    if let Some(session) = &insert.checkout_session {
        super::checkout::insert(conn, session)?;
    }
    Ok(InsertPaymentOutcome::Inserted)
}

fn store_checkout_card(conn: &Connection, id: PaymentId, sealed: &Sealed, at: UnixMillis) -> Result<(), StoreError> {
    conn.exec(
        "INSERT INTO checkout_cards (payment_id, key_version, sealed, created_at) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (payment_id) DO UPDATE SET key_version = excluded.key_version, sealed = excluded.sealed,
             created_at = excluded.created_at",
        params![id.to_string(), sealed.key_version, sealed.bytes, at.as_millis()],
    )
    .map_err(backend)?;
    Ok(())
}

fn insert_transaction(conn: &Connection, t: &PaymentTransaction) -> Result<(), StoreError> {
    conn.exec(
        &format!("INSERT INTO payment_transactions ({TRANSACTION_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)"),
        params![
            t.key.to_string(),
            t.payment_id.to_string(),
            t.merchant_id.to_string(),
            t.mode.as_str(),
            t.kind.as_str(),
            t.status.as_str(),
            t.amount.currency().code(),
            t.amount.amount_minor(),
            t.reason,
            t.created_at.as_millis(),
            t.completed_at.map(UnixMillis::as_millis),
            t.acquirer_transaction_id,
            t.next_attempt_at.map(UnixMillis::as_millis),
            t.attempts
        ],
    )
    .map_err(backend)?;
    Ok(())
}

pub(super) fn update_payment(conn: &Connection, update: &PaymentUpdate) -> Result<(), StoreError> {
    let p = &update.payment;
    if Some(p.version) != update.expected_version.checked_add(1) {
        return Err(StoreError::Conflict("the new version must follow the expected one"));
    }
    // Every column but the identity ones is rewritten; the WHERE clause makes the write conditional on the
    // version this change was computed from.
    let values = payment_params(p);
    let changed = conn
        .exec(
            "UPDATE payments SET order_name = ?5, status = ?7, approval_state = ?8, balance_amount = ?13,
                 card_bin = ?14, card_last4 = ?15, card_masked = ?16, installment_months = ?17, acquirer = ?18,
                 acquirer_merchant_id = ?19, approval_number = ?20, issuer_code = ?21, acquirer_transaction_id = ?22,
                 approved_at = ?23, customer_name = ?24, customer_email = ?25, failure_code = ?26,
                 failure_message = ?27, failure_acquirer_code = ?28, expires_at = ?30, next_inquiry_at = ?31,
                 inquiry_attempts = ?32, version = ?33, notification_url = ?34
             WHERE id = ?1 AND version = ?35
               AND merchant_id = ?2 AND mode = ?3 AND order_id = ?4 AND flow = ?6 AND currency = ?9
               AND total_amount = ?10 AND tax_free_amount = ?11 AND vat_amount = ?12 AND requested_at = ?29",
            rusqlite::params_from_iter(
                values
                    .iter()
                    .map(|v| v.as_ref())
                    .chain(std::iter::once(&update.expected_version as &dyn rusqlite::ToSql)),
            ),
        )
        .map_err(backend)?;
    if changed != 1 {
        return Err(StoreError::Conflict("the payment changed since it was read"));
    }
    if let Some(t) = &update.update_transaction {
        let changed = conn
            .exec(
                "UPDATE payment_transactions SET status = ?2, completed_at = ?3, acquirer_transaction_id = ?4,
                     next_attempt_at = ?5, attempts = ?6
                 WHERE transaction_key = ?1 AND status = 'PENDING' AND payment_id = ?7 AND amount = ?8",
                params![
                    t.key.to_string(),
                    t.status.as_str(),
                    t.completed_at.map(UnixMillis::as_millis),
                    t.acquirer_transaction_id,
                    t.next_attempt_at.map(UnixMillis::as_millis),
                    t.attempts,
                    t.payment_id.to_string(),
                    t.amount.amount_minor()
                ],
            )
            .map_err(backend)?;
        if changed != 1 {
            return Err(StoreError::Conflict("the transaction is no longer pending"));
        }
    }
    for t in &update.insert_transactions {
        insert_transaction(conn, t)?;
    }
    for entry in &update.journals {
        // Asserted again where it is stored: an unbalanced journal aborts the whole transaction.
        check_balanced(entry.journal.postings()).map_err(|e| StoreError::Conflict(leak_free(&e)))?;
        for (seq, posting) in entry.journal.postings().iter().enumerate() {
            conn.exec(
                "INSERT INTO ledger_postings
                     (journal_id, seq, account, currency, amount, payment_id, transaction_key, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![
                    entry.id.to_string(),
                    i64::try_from(seq).unwrap_or(i64::MAX),
                    posting.account.as_str(),
                    posting.amount.currency().code(),
                    posting.amount.amount_minor(),
                    p.id.to_string(),
                    entry.transaction_key.to_string(),
                    entry.created_at.as_millis()
                ],
            )
            .map_err(backend)?;
        }
    }
    for event in &update.events {
        super::outbox::insert_new_event(conn, event)?;
    }
    if let Some(write) = &update.idempotency {
        crate::idempotency::sqlite::apply(conn, write)?;
    }
    match &update.checkout_card {
        CheckoutCardChange::Keep => {}
        CheckoutCardChange::Store(sealed) => store_checkout_card(conn, p.id, sealed, p.requested_at)?,
        CheckoutCardChange::Delete => {
            conn.exec(
                "DELETE FROM checkout_cards WHERE payment_id = ?1",
                params![p.id.to_string()],
            )
            .map_err(backend)?;
        }
    }
    Ok(())
}

fn leak_free(_error: &paygate_domain::ledger::LedgerError) -> &'static str {
    "an unbalanced journal was refused"
}

pub(super) fn payment_where(
    conn: &Connection,
    clause: &str,
    values: &[&dyn rusqlite::ToSql],
) -> Result<Option<Payment>, StoreError> {
    let mut stmt = conn
        .prepare_cached(&format!("SELECT {PAYMENT_COLUMNS} FROM payments WHERE {clause}"))
        .map_err(backend)?;
    stmt.query_row(values, payment_from_row).optional().map_err(backend)
}

pub(super) fn payments_where(
    conn: &Connection,
    clause: &str,
    values: &[&dyn rusqlite::ToSql],
) -> Result<Vec<Payment>, StoreError> {
    let mut stmt = conn
        .prepare_cached(&format!("SELECT {PAYMENT_COLUMNS} FROM payments WHERE {clause}"))
        .map_err(backend)?;
    let rows = stmt.query_map(values, payment_from_row).map_err(backend)?;
    rows.collect::<Result<Vec<_>, _>>().map_err(backend)
}

pub(super) fn transactions_where(
    conn: &Connection,
    clause: &str,
    values: &[&dyn rusqlite::ToSql],
) -> Result<Vec<PaymentTransaction>, StoreError> {
    let mut stmt = conn
        .prepare_cached(&format!(
            "SELECT {TRANSACTION_COLUMNS} FROM payment_transactions WHERE {clause}"
        ))
        .map_err(backend)?;
    let rows = stmt.query_map(values, transaction_from_row).map_err(backend)?;
    rows.collect::<Result<Vec<_>, _>>().map_err(backend)
}

pub(super) fn list_transactions(
    conn: &Connection,
    q: &TransactionQuery,
) -> Result<Vec<PaymentTransaction>, StoreError> {
    let after = q.after.map(|k| k.to_string()).unwrap_or_default();
    transactions_where(
        conn,
        "merchant_id = ?1 AND mode = ?2 AND created_at >= ?3 AND created_at < ?4 AND transaction_key > ?5
         ORDER BY transaction_key LIMIT ?6",
        &[
            &q.merchant_id.to_string(),
            &q.mode.as_str(),
            &q.from.as_millis(),
            &q.until.as_millis(),
            &after,
            &q.limit,
        ],
    )
}

pub(super) fn checkout_card(conn: &Connection, id: PaymentId) -> Result<Option<Sealed>, StoreError> {
    conn.row(
        "SELECT key_version, sealed FROM checkout_cards WHERE payment_id = ?1",
        params![id.to_string()],
        |row| {
            Ok(Sealed {
                key_version: row.get(0)?,
                bytes: row.get(1)?,
            })
        },
    )
    .optional()
    .map_err(backend)
}

pub(super) fn enc_keys(
    conn: &Connection,
    merchant_id: MerchantId,
    mode: Mode,
) -> Result<Vec<StoredEncKey>, StoreError> {
    let mut stmt = conn
        .prepare_cached(
            "SELECT version, vault_key_version, sealed_key, created_at, retires_at FROM merchant_enc_keys
             WHERE merchant_id = ?1 AND mode = ?2 ORDER BY version",
        )
        .map_err(backend)?;
    let rows = stmt
        .query_map(params![merchant_id.to_string(), mode.as_str()], |row| {
            Ok(StoredEncKey {
                version: row.get(0)?,
                sealed: Sealed {
                    key_version: row.get(1)?,
                    bytes: row.get(2)?,
                },
                created_at: UnixMillis::new(row.get(3)?),
                retires_at: row.get::<_, Option<i64>>(4)?.map(UnixMillis::new),
            })
        })
        .map_err(backend)?;
    rows.collect::<Result<Vec<_>, _>>().map_err(backend)
}

pub(super) fn add_enc_key(
    conn: &Connection,
    merchant_id: MerchantId,
    mode: Mode,
    key: &StoredEncKey,
    retire_previous_at: UnixMillis,
) -> Result<(), StoreError> {
    conn.exec(
        "UPDATE merchant_enc_keys SET retires_at = ?3 WHERE merchant_id = ?1 AND mode = ?2 AND retires_at IS NULL",
        params![merchant_id.to_string(), mode.as_str(), retire_previous_at.as_millis()],
    )
    .map_err(backend)?;
    conn.exec(
        "INSERT INTO merchant_enc_keys (merchant_id, mode, version, vault_key_version, sealed_key, created_at, retires_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![
            merchant_id.to_string(),
            mode.as_str(),
            key.version,
            key.sealed.key_version,
            key.sealed.bytes,
            key.created_at.as_millis(),
            key.retires_at.map(UnixMillis::as_millis)
        ],
    )
    .map_err(backend)?;
    Ok(())
}

pub(super) fn audit_ledger(conn: &Connection) -> Result<LedgerAudit, StoreError> {
    let mut audit = LedgerAudit::default();
    let (journals, postings): (i64, i64) = conn
        .row(
            "SELECT COUNT(DISTINCT journal_id), COUNT(*) FROM ledger_postings",
            [],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .map_err(backend)?;
    audit.journals = u64::try_from(journals).unwrap_or(0);
    audit.postings = u64::try_from(postings).unwrap_or(0);
    let mut stmt = conn
        .prepare_cached(
            // A journal unbalanced in several currencies is listed once.
            "SELECT DISTINCT journal_id FROM (
                 SELECT journal_id FROM ledger_postings GROUP BY journal_id, currency HAVING SUM(amount) <> 0
             ) ORDER BY journal_id LIMIT 1000",
        )
        .map_err(backend)?;
    audit.unbalanced_journals = stmt
        .query_map([], |row| row.get(0))
        .map_err(backend)?
        .collect::<Result<Vec<String>, _>>()
        .map_err(backend)?;
    let mut stmt = conn
        .prepare_cached("SELECT currency, SUM(amount) FROM ledger_postings GROUP BY currency")
        .map_err(backend)?;
    let totals = stmt
        .query_map([], |row| Ok((row.get::<_, String>(0)?, row.get::<_, i64>(1)?)))
        .map_err(backend)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(backend)?;
    for (code, sum) in totals {
        audit.totals.push(Money::new(
            sum,
            code.parse()
                .map_err(|_| StoreError::Corrupt("ledger currency".into()))?,
        ));
    }
    // Each payment's receivable must equal its approved amount minus its completed cancels.
    let mut stmt = conn
        .prepare_cached(
            "SELECT p.id FROM payments p
             LEFT JOIN (SELECT payment_id, SUM(amount) AS receivable FROM ledger_postings
                        WHERE substr(account, 1, 20) = 'acquirer_receivable:' GROUP BY payment_id) l ON l.payment_id = p.id
             LEFT JOIN (SELECT payment_id,
                               SUM(CASE kind WHEN 'APPROVAL' THEN amount ELSE -amount END) AS settled
                        FROM payment_transactions WHERE status = 'DONE' GROUP BY payment_id) t ON t.payment_id = p.id
             WHERE COALESCE(l.receivable, 0) <> COALESCE(t.settled, 0)
             LIMIT 1000",
        )
        .map_err(backend)?;
    let ids = stmt.query_map([], |row| row.get::<_, String>(0)).map_err(backend)?;
    for id in ids {
        let id = id.map_err(backend)?;
        audit
            .mismatched_payments
            .push(PaymentId::parse(&id).map_err(|_| StoreError::Corrupt("payments.id".into()))?);
    }
    Ok(audit)
}
