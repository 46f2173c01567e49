//! Account transfers (계좌이체): the buyer authorizes the debit at the bank's own page, the merchant confirms, and
//! the bank debits the buyer's account. The record is written with the payment's DONE, in one transaction; a cancel
//! refunds to the account recorded here.

use crate::api_key::Mode;
use crate::bank::{Bank, SettlementStatus};
use crate::id::{MerchantId, PaymentId};
use crate::money::Money;
use crate::time::UnixMillis;

/// What a transfer holds, as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TransferFields {
    pub payment_id: PaymentId,
    pub merchant_id: MerchantId,
    pub mode: Mode,
    pub bank: Bank,
    /// The buyer's account, as the bank reported it with the debit.
    pub account_number: String,
    pub holder_name: String,
    /// The bank's ID of the debit.
    pub bank_debit_id: String,
    pub amount: Money,
    pub debited_at: UnixMillis,
    pub settlement_status: SettlementStatus,
    pub version: i64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transfer(TransferFields);

impl std::ops::Deref for Transfer {
    type Target = TransferFields;

    fn deref(&self) -> &TransferFields {
        &self.0
    }
}

/// A debit the bank made.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewTransfer {
    pub payment_id: PaymentId,
    pub merchant_id: MerchantId,
    pub mode: Mode,
    pub bank: Bank,
    pub account_number: String,
    pub holder_name: String,
    pub bank_debit_id: String,
    pub amount: Money,
    pub debited_at: UnixMillis,
}

impl Transfer {
    pub fn debited(new: NewTransfer) -> Transfer {
        Transfer(TransferFields {
            payment_id: new.payment_id,
            merchant_id: new.merchant_id,
            mode: new.mode,
            bank: new.bank,
            account_number: new.account_number,
            holder_name: new.holder_name,
            bank_debit_id: new.bank_debit_id,
            amount: new.amount,
            debited_at: new.debited_at,
            settlement_status: SettlementStatus::Incompleted,
            version: 0,
        })
    }

    /// A transfer as stored, unchecked: for the store and tests.
    pub fn restore(fields: TransferFields) -> Transfer {
        Transfer(fields)
    }

    /// The account number as a buyer's receipt or a merchant's screen shows it: the last four digits.
    pub fn masked_account_number(&self) -> String {
        let digits: Vec<char> = self.account_number.chars().collect();
        let shown = digits.len().saturating_sub(4);
        digits
            .iter()
            .enumerate()
            .map(|(i, c)| if i < shown { '*' } else { *c })
            .collect()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::money::Currency;

    #[test]
    fn a_debited_transfer_waits_for_settlement_and_masks_its_account() {
        let id = PaymentId::new(UnixMillis::new(1), [1; 10]);
        let transfer = Transfer::debited(NewTransfer {
            payment_id: id,
            merchant_id: MerchantId::new(UnixMillis::new(1), [2; 10]),
            mode: Mode::Test,
            bank: Bank::parse("06").unwrap(),
            account_number: "12345678901".into(),
            holder_name: "홍길동".into(),
            bank_debit_id: "dbt_1".into(),
            amount: Money::new(15_000, Currency::Krw),
            debited_at: UnixMillis::new(9),
        });
        assert_eq!(transfer.settlement_status, SettlementStatus::Incompleted);
        assert_eq!(transfer.masked_account_number(), "*******8901");
        assert_eq!(transfer.version, 0);
    }
}
