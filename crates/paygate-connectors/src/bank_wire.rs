//! The JSON body of the sandbox bank's deposit notification (입금통보, `BANK-PROTOCOL.md`), and its conversion to
//! a typed deposit. The bank writes it from its [`Deposit`]; paygate reads it, tolerantly (unknown fields are
//! ignored, so the bank can add some), and refuses a body whose values are not what the protocol says, naming the
//! field and never echoing the value.

use paygate_domain::bank::Bank;
use paygate_domain::money::{Currency, Money};
use paygate_domain::time::UnixMillis;
use serde::{Deserialize, Serialize};

use crate::bank::Deposit;

/// The body that acknowledges a notification.
pub const ACK_BODY: &str = r#"{"result":"OK"}"#;
/// Longest accepted ID (`notificationId`, `depositId`) and account number, in bytes.
pub const MAX_ID_LEN: usize = 64;
/// Longest accepted depositor name, in characters (Toss's `depositorName` limit is 100).
pub const MAX_DEPOSITOR_CHARS: usize = 100;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DepositNotificationWire {
    pub notification_id: String,
    pub deposit_id: String,
    pub seq: u64,
    pub account_number: String,
    pub bank_code: String,
    pub amount: i64,
    pub currency: String,
    pub depositor_name: String,
    /// Unix milliseconds.
    pub deposited_at: i64,
}

/// A notified deposit, checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NotifiedDeposit {
    pub notification_id: String,
    pub deposit_id: String,
    pub seq: u64,
    pub account_number: String,
    pub bank: Bank,
    pub amount: Money,
    pub depositor_name: String,
    pub deposited_at: UnixMillis,
}

/// The field of a notification that was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the notification's {0} is not valid")]
pub struct BadField(pub &'static str);

fn id(field: &'static str, value: &str) -> Result<(), BadField> {
    let ok = !value.is_empty() && value.len() <= MAX_ID_LEN && value.bytes().all(|b| b.is_ascii_graphic());
    ok.then_some(()).ok_or(BadField(field))
}

impl DepositNotificationWire {
    pub fn from_deposit(deposit: &Deposit, notification_id: &str) -> DepositNotificationWire {
        DepositNotificationWire {
            notification_id: notification_id.to_owned(),
            deposit_id: deposit.deposit_id.clone(),
            seq: deposit.seq,
            account_number: deposit.account_number.clone(),
            bank_code: deposit.bank_code.code().to_owned(),
            amount: deposit.amount.amount_minor(),
            currency: deposit.amount.currency().code().to_owned(),
            depositor_name: deposit.depositor_name.clone(),
            deposited_at: deposit.deposited_at.as_millis(),
        }
    }

    pub fn check(self) -> Result<NotifiedDeposit, BadField> {
        id("notificationId", &self.notification_id)?;
        id("depositId", &self.deposit_id)?;
        let digits = !self.account_number.is_empty()
            && self.account_number.len() <= MAX_ID_LEN
            && self.account_number.bytes().all(|b| b.is_ascii_digit());
        if !digits {
            return Err(BadField("accountNumber"));
        }
        // Answers carry Toss's two-character code only, never the Korean or English spellings requests may use.
        let bank = Bank::parse(&self.bank_code)
            .filter(|bank| bank.code() == self.bank_code)
            .ok_or(BadField("bankCode"))?;
        let currency: Currency = self.currency.parse().map_err(|_| BadField("currency"))?;
        let amount = Money::new(self.amount, currency);
        if !amount.is_positive() {
            return Err(BadField("amount"));
        }
        let name_chars = self.depositor_name.chars().count();
        if name_chars > MAX_DEPOSITOR_CHARS || self.depositor_name.chars().any(char::is_control) {
            return Err(BadField("depositorName"));
        }
        if self.deposited_at <= 0 {
            return Err(BadField("depositedAt"));
        }
        Ok(NotifiedDeposit {
            notification_id: self.notification_id,
            deposit_id: self.deposit_id,
            seq: self.seq,
            account_number: self.account_number,
            bank,
            amount,
            depositor_name: self.depositor_name,
            deposited_at: UnixMillis::new(self.deposited_at),
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// The example of BANK-PROTOCOL.md, with a field the protocol does not have.
    const EXAMPLE: &str = r#"{"notificationId": "ntf_1", "depositId": "dep_000000000042", "seq": 42,
        "accountNumber": "98800000000017", "bankCode": "88", "amount": 15000, "currency": "KRW",
        "depositorName": "홍길동", "depositedAt": 1749945600000, "branch": "강남"}"#;

    #[test]
    fn the_protocol_example_decodes() {
        let wire: DepositNotificationWire = serde_json::from_str(EXAMPLE).unwrap();
        let deposit = wire.clone().check().unwrap();
        assert_eq!(deposit.bank.code(), "88");
        assert_eq!(deposit.amount, Money::krw(15_000));
        assert_eq!(deposit.deposited_at, UnixMillis::new(1_749_945_600_000));
        assert_eq!((deposit.seq, deposit.depositor_name.as_str()), (42, "홍길동"));
        let written = serde_json::to_value(&wire).unwrap();
        assert!(written.get("branch").is_none(), "the writer is strict");
        assert_eq!(written["bankCode"], "88");
    }

    #[test]
    fn bad_values_name_their_field() {
        let cases: [(&str, serde_json::Value, &str); 9] = [
            ("bankCode", "신한".into(), "bankCode"),
            ("bankCode", "99".into(), "bankCode"),
            ("amount", 0.into(), "amount"),
            ("currency", "krw".into(), "currency"),
            ("accountNumber", "9880-0000".into(), "accountNumber"),
            ("depositId", "".into(), "depositId"),
            ("notificationId", "a b".into(), "notificationId"),
            ("depositorName", "홍\u{0}길동".into(), "depositorName"),
            ("depositedAt", 0.into(), "depositedAt"),
        ];
        for (field, value, expected) in cases {
            let mut json: serde_json::Value = serde_json::from_str(EXAMPLE).unwrap();
            json[field] = value;
            let wire: DepositNotificationWire = serde_json::from_value(json).unwrap();
            assert_eq!(wire.check(), Err(BadField(expected)), "{field}");
        }
    }
}
