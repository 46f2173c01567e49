//! Account transfers (계좌이체) the banks debited. Reads are here; the insert rides with the payment's DONE
//! (`PaymentUpdate::bank.new_transfer`), in its transaction, refused if the bank's debit ID was recorded before.

use paygate_domain::api_key::Mode;
use paygate_domain::bank::{Bank, SettlementStatus};
use paygate_domain::id::{MerchantId, PaymentId};
use paygate_domain::money::{Currency, Money};
use paygate_domain::transfer::{Transfer, TransferFields};

use crate::db::{aggregate, first, vals, Db, Row};
use crate::StoreError;

aggregate! {
    pub trait TransferStore {
        /// The transfer that paid a payment.
        read fn transfer(payment_id: PaymentId) -> Option<Transfer>;
    }
}

macro_rules! transfer_columns {
    () => {
        "payment_id, merchant_id, mode, bank, account_number, holder_name, bank_debit_id, currency, amount, \
         debited_at, settlement_status, version"
    };
}

mod sql {
    pub const INSERT: &str = concat!(
        "INSERT INTO transfers (",
        transfer_columns!(),
        ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)"
    );
    pub const SELECT: &str = concat!("SELECT ", transfer_columns!(), " FROM transfers WHERE payment_id = ?1");
}

pub(crate) async fn insert(db: &impl Db, t: &Transfer) -> Result<(), StoreError> {
    let values = vals![
        t.payment_id,
        t.merchant_id,
        t.mode,
        t.bank.code(),
        t.account_number.as_str(),
        t.holder_name.as_str(),
        t.bank_debit_id.as_str(),
        t.amount.currency().code(),
        t.amount.amount_minor(),
        t.debited_at,
        t.settlement_status.as_str(),
        t.version,
    ];
    db.execute(sql::INSERT, values).await?;
    Ok(())
}

fn transfer_from(row: &Row) -> Result<Transfer, StoreError> {
    let currency: Currency = row.parse(7, str::parse::<Currency>)?;
    Ok(Transfer::restore(TransferFields {
        payment_id: row.parse(0, PaymentId::parse)?,
        merchant_id: row.parse(1, MerchantId::parse)?,
        mode: row.parse(2, Mode::parse)?,
        bank: row.parse(3, |code| Bank::parse(code).filter(|b| b.code() == code))?,
        account_number: row.string(4)?,
        holder_name: row.string(5)?,
        bank_debit_id: row.string(6)?,
        amount: Money::new(row.int(8)?, currency),
        debited_at: row.millis(9)?,
        settlement_status: row.parse(10, SettlementStatus::parse)?,
        version: row.int(11)?,
    }))
}

async fn transfer(db: &impl Db, payment_id: PaymentId) -> Result<Option<Transfer>, StoreError> {
    first(db, sql::SELECT, vals![payment_id])
        .await?
        .as_ref()
        .map(transfer_from)
        .transpose()
}
