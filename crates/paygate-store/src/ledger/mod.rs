//! The double-entry ledger: journals are posted with the payment change they belong to ([`post`], inside
//! `update_payment`), and audited on their own.

use paygate_domain::id::{DepositId, JournalId, PaymentId, TransactionKey};
use paygate_domain::ledger::{check_balanced, Journal};
use paygate_domain::money::{Currency, Money};
use paygate_domain::time::UnixMillis;

use crate::db::{aggregate, all, first, vals, Db};
use crate::StoreError;

aggregate! {
    pub trait LedgerStore {
        /// Checks the ledger in one consistent snapshot: every journal balanced, every payment's receivable equal
        /// to its approved amount minus its completed cancels.
        snapshot fn audit_ledger() -> LedgerAudit;
    }
}

/// A balanced journal to post with an update.
#[derive(Clone, Debug)]
pub struct JournalEntry {
    pub id: JournalId,
    pub of: JournalOf,
    pub journal: Journal,
    pub created_at: UnixMillis,
}

/// What a journal records: a payment's transaction (its approval, a deposit that paid it, a cancel), or a deposit
/// that paid nothing (held for its depositor, then returned).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JournalOf {
    Transaction(TransactionKey),
    Deposit(DepositId),
}

/// The result of auditing the ledger.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LedgerAudit {
    pub journals: u64,
    pub postings: u64,
    /// Journals whose postings do not sum to zero per currency.
    pub unbalanced_journals: Vec<String>,
    /// Payments whose receivable (from the acquirer, or held by the bank for a deposit) differs from their
    /// approved minus completed cancels.
    pub mismatched_payments: Vec<PaymentId>,
    /// Deposits that paid nothing whose depositor is owed other than the deposit until it is returned, and
    /// nothing after.
    pub mismatched_deposits: Vec<DepositId>,
    /// Sum of every posting per currency (must be zero).
    pub totals: Vec<Money>,
}

impl LedgerAudit {
    pub fn is_clean(&self) -> bool {
        self.unbalanced_journals.is_empty()
            && self.mismatched_payments.is_empty()
            && self.mismatched_deposits.is_empty()
            && self.totals.iter().all(|t| t.is_zero())
    }
}

mod sql {
    pub const INSERT_POSTING: &str = "INSERT INTO ledger_postings
             (journal_id, seq, account, currency, amount, payment_id, transaction_key, created_at, deposit_id)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)";
    pub const COUNTS: &str = "SELECT COUNT(DISTINCT journal_id), COUNT(*) FROM ledger_postings";
    /// A journal unbalanced in several currencies is listed once.
    pub const UNBALANCED: &str = "SELECT DISTINCT journal_id FROM (
             SELECT journal_id FROM ledger_postings GROUP BY journal_id, currency HAVING SUM(amount) <> 0
         ) unbalanced ORDER BY journal_id LIMIT 1000";
    /// PostgreSQL's `SUM(BIGINT)` is NUMERIC: cast back, a total beyond `i64` is an error, as SQLite's overflow is.
    pub const TOTALS: &str =
        "SELECT currency, CAST(SUM(amount) AS BIGINT) FROM ledger_postings GROUP BY currency ORDER BY currency";
    /// Each payment's receivable must equal its approved amount minus its completed cancels: what its acquirer
    /// owes for a card, what the bank holds of its transactions (the deposit that paid it, its refunds) for a bank
    /// method; a deposit that paid nothing is its own journal and is checked below. `substr` rather than LIKE:
    /// `_` is a LIKE wildcard.
    pub const MISMATCHED: &str = "SELECT p.id FROM payments p
         LEFT JOIN (SELECT payment_id, SUM(amount) AS receivable FROM ledger_postings
                    WHERE transaction_key IS NOT NULL AND (substr(account, 1, 20) = 'acquirer_receivable:'
                       OR substr(account, 1, 14) = 'bank_clearing:') GROUP BY payment_id) l
                ON l.payment_id = p.id
         LEFT JOIN (SELECT payment_id, SUM(CASE kind WHEN 'APPROVAL' THEN amount ELSE -amount END) AS settled
                    FROM payment_transactions WHERE status = 'DONE' GROUP BY payment_id) t
                ON t.payment_id = p.id
         WHERE COALESCE(l.receivable, 0) <> COALESCE(t.settled, 0)
         ORDER BY p.id LIMIT 1000";
    /// A deposit that paid nothing is owed to its depositor (a credit of `depositor_refund_payable`) until its
    /// return is confirmed, then nothing; a deposit that paid its account has no journal of its own.
    pub const MISMATCHED_DEPOSITS: &str = "SELECT d.id FROM bank_deposits d
         LEFT JOIN (SELECT deposit_id, SUM(amount) AS owed FROM ledger_postings
                    WHERE deposit_id IS NOT NULL AND account = 'depositor_refund_payable' GROUP BY deposit_id) l
                ON l.deposit_id = d.id
         WHERE COALESCE(l.owed, 0) <> CASE WHEN d.return_status IN ('REQUESTED', 'FAILED') THEN -d.amount ELSE 0 END
         ORDER BY d.id LIMIT 1000";
}

/// A posting's place in its journal. A journal too long to number is refused (the whole change is), on both
/// backends alike: nothing is clamped.
pub(crate) fn posting_seq(index: usize) -> Result<i64, StoreError> {
    i64::try_from(index).map_err(|_| StoreError::Conflict("a journal has too many postings"))
}

/// Posts a journal of `payment_id` inside the caller's transaction, asserting again where it is stored that it
/// balances: an unbalanced journal aborts the whole change.
pub(crate) async fn post(db: &impl Db, payment_id: PaymentId, entry: &JournalEntry) -> Result<(), StoreError> {
    check_balanced(entry.journal.postings()).map_err(|_| StoreError::Conflict("an unbalanced journal was refused"))?;
    let (transaction_key, deposit_id) = match entry.of {
        JournalOf::Transaction(key) => (Some(key), None),
        JournalOf::Deposit(id) => (None, Some(id)),
    };
    for (index, posting) in entry.journal.postings().iter().enumerate() {
        let values = vals![
            entry.id,
            posting_seq(index)?,
            posting.account.as_str(),
            posting.amount.currency().code(),
            posting.amount.amount_minor(),
            payment_id,
            transaction_key,
            entry.created_at,
            deposit_id,
        ];
        db.execute(sql::INSERT_POSTING, values).await?;
    }
    Ok(())
}

async fn audit_ledger(db: &impl Db) -> Result<LedgerAudit, StoreError> {
    let counts = first(db, sql::COUNTS, &[]).await?.ok_or(StoreError::NotFound)?;
    let corrupt = |what: &str| StoreError::Corrupt(what.to_owned());
    Ok(LedgerAudit {
        journals: counts.num(0)?,
        postings: counts.num(1)?,
        unbalanced_journals: all(db, sql::UNBALANCED, &[], |row| row.string(0)).await?,
        totals: all(db, sql::TOTALS, &[], |row| {
            let currency: Currency = row
                .parse(0, str::parse::<Currency>)
                .map_err(|_| corrupt("ledger currency"))?;
            Ok(Money::new(row.int(1)?, currency))
        })
        .await?,
        mismatched_payments: all(db, sql::MISMATCHED, &[], |row| row.parse(0, PaymentId::parse)).await?,
        mismatched_deposits: all(db, sql::MISMATCHED_DEPOSITS, &[], |row| row.parse(0, DepositId::parse)).await?,
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_posting_sequence_is_refused_not_clamped() {
        assert_eq!(super::posting_seq(3).ok(), Some(3));
        assert!(matches!(
            super::posting_seq(usize::MAX),
            Err(crate::StoreError::Conflict(_))
        ));
    }
}
