//! Double-entry ledger postings.
//!
//! Every money movement is a [`Journal`]: postings whose amounts sum to zero in each currency. A journal that does
//! not balance cannot be constructed, so it cannot be stored. Sign convention: positive = debit, negative = credit.
//!
//! Accounts so far: what an acquirer owes paygate for approved card payments (`acquirer_receivable:{acquirer}`) and
//! what paygate owes a merchant (`merchant_payable:{mid}`); for bank methods, the money a bank holds for paygate
//! (`bank_clearing:{bankCode}`) and deposits paygate owes back to their depositors (`depositor_refund_payable`).
//! Fees and settlement add accounts later.

use crate::id::MerchantId;
use crate::money::{Money, MoneyError};

#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Account(String);

impl Account {
    pub fn acquirer_receivable(acquirer: &str) -> Account {
        Account(format!("acquirer_receivable:{acquirer}"))
    }

    pub fn merchant_payable(merchant: MerchantId) -> Account {
        Account(format!("merchant_payable:{merchant}"))
    }

    pub fn bank_clearing(bank_code: &str) -> Account {
        Account(format!("bank_clearing:{bank_code}"))
    }

    pub fn depositor_refund_payable() -> Account {
        Account("depositor_refund_payable".to_owned())
    }

    pub fn from_stored(name: String) -> Account {
        Account(name)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Posting {
    pub account: Account,
    pub amount: Money,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LedgerError {
    #[error("a journal needs at least two postings")]
    TooFewPostings,
    #[error("the journal does not balance: {0}")]
    Unbalanced(String),
    #[error(transparent)]
    Money(#[from] MoneyError),
}

/// Balanced postings, checked at construction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Journal {
    postings: Vec<Posting>,
}

impl Journal {
    pub fn new(postings: Vec<Posting>) -> Result<Journal, LedgerError> {
        if postings.len() < 2 {
            return Err(LedgerError::TooFewPostings);
        }
        check_balanced(&postings)?;
        Ok(Journal { postings })
    }

    pub fn postings(&self) -> &[Posting] {
        &self.postings
    }

    /// An approved card payment: the acquirer owes the amount, paygate owes it to the merchant.
    pub fn card_approval(merchant: MerchantId, acquirer: &str, amount: Money) -> Result<Journal, LedgerError> {
        Journal::new(vec![
            Posting {
                account: Account::acquirer_receivable(acquirer),
                amount,
            },
            Posting {
                account: Account::merchant_payable(merchant),
                amount: amount.checked_neg()?,
            },
        ])
    }

    /// A cancel (full or partial) reverses the approval's postings for the cancelled amount.
    pub fn card_cancel(merchant: MerchantId, acquirer: &str, amount: Money) -> Result<Journal, LedgerError> {
        Journal::new(vec![
            Posting {
                account: Account::acquirer_receivable(acquirer),
                amount: amount.checked_neg()?,
            },
            Posting {
                account: Account::merchant_payable(merchant),
                amount,
            },
        ])
    }

    /// Two postings: `debit` gets `amount`, `credit` its negation.
    fn transfer(debit: Account, credit: Account, amount: Money) -> Result<Journal, LedgerError> {
        Journal::new(vec![
            Posting { account: debit, amount },
            Posting {
                account: credit,
                amount: amount.checked_neg()?,
            },
        ])
    }

    /// A deposit that pays a virtual account: the bank holds the money for paygate, paygate owes it to the merchant.
    pub fn deposit_applied(merchant: MerchantId, bank_code: &str, amount: Money) -> Result<Journal, LedgerError> {
        Journal::transfer(
            Account::bank_clearing(bank_code),
            Account::merchant_payable(merchant),
            amount,
        )
    }

    /// An account transfer the bank debited from the buyer: the bank holds the money for paygate, paygate owes it
    /// to the merchant (the same shape as a deposit).
    pub fn transfer_debited(merchant: MerchantId, bank_code: &str, amount: Money) -> Result<Journal, LedgerError> {
        Journal::deposit_applied(merchant, bank_code, amount)
    }

    /// A deposit that pays nothing (wrong amount, late, already paid): held for its depositor until refunded.
    pub fn deposit_held(bank_code: &str, amount: Money) -> Result<Journal, LedgerError> {
        Journal::transfer(
            Account::bank_clearing(bank_code),
            Account::depositor_refund_payable(),
            amount,
        )
    }

    /// A held deposit went back to its depositor through the bank.
    pub fn deposit_returned(bank_code: &str, amount: Money) -> Result<Journal, LedgerError> {
        Journal::transfer(
            Account::depositor_refund_payable(),
            Account::bank_clearing(bank_code),
            amount,
        )
    }

    /// A refund of a paid bank payment (its cancel) reached the buyer's account: the merchant's payable shrinks.
    pub fn bank_refund(merchant: MerchantId, bank_code: &str, amount: Money) -> Result<Journal, LedgerError> {
        Journal::transfer(
            Account::merchant_payable(merchant),
            Account::bank_clearing(bank_code),
            amount,
        )
    }
}

/// Checks that postings sum to zero per currency; used when building journals and when auditing stored ones.
pub fn check_balanced(postings: &[Posting]) -> Result<(), LedgerError> {
    let mut sums: Vec<Money> = Vec::new();
    for posting in postings {
        match sums.iter_mut().find(|s| s.currency() == posting.amount.currency()) {
            Some(sum) => *sum = sum.checked_add(posting.amount)?,
            None => sums.push(posting.amount),
        }
    }
    match sums.iter().find(|s| !s.is_zero()) {
        Some(off) => Err(LedgerError::Unbalanced(off.to_string())),
        None => Ok(()),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::money::Currency;
    use crate::time::UnixMillis;
    use proptest::prelude::*;

    #[test]
    fn journals_balance() {
        let merchant = MerchantId::new(UnixMillis::new(1), [1; 10]);
        let approval = Journal::card_approval(merchant, "A", Money::krw(15_000)).unwrap();
        assert_eq!(approval.postings().len(), 2);
        assert!(check_balanced(approval.postings()).is_ok());
        let unbalanced = vec![
            Posting {
                account: Account::acquirer_receivable("A"),
                amount: Money::krw(10),
            },
            Posting {
                account: Account::merchant_payable(merchant),
                amount: Money::krw(-9),
            },
        ];
        assert!(matches!(Journal::new(unbalanced), Err(LedgerError::Unbalanced(_))));
        let mixed = vec![
            Posting {
                account: Account::acquirer_receivable("A"),
                amount: Money::krw(10),
            },
            Posting {
                account: Account::merchant_payable(merchant),
                amount: Money::new(-10, Currency::Usd),
            },
        ];
        assert!(Journal::new(mixed).is_err());
        assert_eq!(Journal::new(vec![]).unwrap_err(), LedgerError::TooFewPostings);
    }

    proptest! {
        #[test]
        fn approvals_and_cancels_net_to_zero(amount in 1i64..10_000_000_000, cancel in 0i64..10_000_000_000) {
            let merchant = MerchantId::new(UnixMillis::new(1), [2; 10]);
            let cancel = cancel.min(amount);
            let mut all = Journal::card_approval(merchant, "B", Money::krw(amount)).unwrap().postings().to_vec();
            if cancel > 0 {
                all.extend(Journal::card_cancel(merchant, "B", Money::krw(cancel)).unwrap().postings().to_vec());
            }
            prop_assert!(check_balanced(&all).is_ok());
        }

        #[test]
        fn a_held_deposit_returned_leaves_nothing_owed(amount in 1i64..10_000_000_000, paid in 1i64..10_000_000_000) {
            let merchant = MerchantId::new(UnixMillis::new(1), [3; 10]);
            let refunded = paid.min(amount);
            let journals = [
                Journal::deposit_applied(merchant, "88", Money::krw(amount)).unwrap(),
                Journal::bank_refund(merchant, "88", Money::krw(refunded)).unwrap(),
                Journal::deposit_held("88", Money::krw(paid)).unwrap(),
                Journal::deposit_returned("88", Money::krw(paid)).unwrap(),
            ];
            let mut balances = std::collections::BTreeMap::<Account, i64>::new();
            for posting in journals.iter().flat_map(|j| j.postings()) {
                *balances.entry(posting.account.clone()).or_default() += posting.amount.amount_minor();
            }
            prop_assert_eq!(balances[&Account::depositor_refund_payable()], 0);
            prop_assert_eq!(balances[&Account::bank_clearing("88")], amount - refunded);
            prop_assert_eq!(balances[&Account::merchant_payable(merchant)], refunded - amount);
        }
    }
}
