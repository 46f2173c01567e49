//! Card data as it arrives in a request: parsed, validated, and never printable in full.
//!
//! A [`CardNumber`] exists only while a request is processed (and, for the two-step flow, encrypted until the
//! merchant confirms). What is kept with a payment is a [`CardSummary`]: BIN, last four digits and a masked number.

use std::fmt;

/// 13 to 19 digits that pass the Luhn check. `Debug` and `Display` show only the masked form.
#[derive(Clone, PartialEq, Eq)]
pub struct CardNumber(String);

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CardError {
    #[error("the card number must be 13 to 19 digits")]
    NumberFormat,
    #[error("the card number fails the check digit (Luhn) test")]
    NumberChecksum,
    #[error("the expiry month must be 01 to 12")]
    ExpiryMonth,
    #[error("the expiry year must be two or four digits")]
    ExpiryYear,
    #[error("the card has expired")]
    Expired,
    #[error("the card password must be the first two digits")]
    Password,
    #[error("the identity number must be a birth date (YYMMDD) or a 10-digit business registration number")]
    IdentityNumber,
    #[error("installment months must be 0 (lump sum) or 2 to 36")]
    Installment,
}

impl CardNumber {
    pub fn parse(text: &str) -> Result<CardNumber, CardError> {
        let digits_only = text.bytes().all(|b| b.is_ascii_digit());
        if !digits_only || !(13..=19).contains(&text.len()) {
            return Err(CardError::NumberFormat);
        }
        if !luhn_valid(text) {
            return Err(CardError::NumberChecksum);
        }
        Ok(CardNumber(text.to_owned()))
    }

    /// The issuer identification number: the first six digits.
    pub fn bin(&self) -> &str {
        &self.0[..6]
    }

    pub fn last4(&self) -> &str {
        &self.0[self.0.len() - 4..]
    }

    /// First six and last four digits, the rest as `*`: `433000******0003`.
    pub fn masked(&self) -> String {
        let hidden = self.0.len() - 10;
        format!("{}{}{}", self.bin(), "*".repeat(hidden), self.last4())
    }

    /// The digits, for the acquirer call. Named loudly so call sites are easy to audit.
    pub fn expose_digits(&self) -> &str {
        &self.0
    }

    pub fn summary(&self) -> CardSummary {
        CardSummary {
            bin: self.bin().to_owned(),
            last4: self.last4().to_owned(),
            masked: self.masked(),
        }
    }
}

impl fmt::Debug for CardNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CardNumber({})", self.masked())
    }
}

/// What a payment keeps of its card.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CardSummary {
    pub bin: String,
    pub last4: String,
    pub masked: String,
}

pub fn luhn_valid(digits: &str) -> bool {
    let mut sum = 0u32;
    for (index, byte) in digits.bytes().rev().enumerate() {
        let Some(mut digit) = char::from(byte).to_digit(10) else {
            return false;
        };
        if index % 2 == 1 {
            digit *= 2;
            if digit > 9 {
                digit -= 9;
            }
        }
        sum += digit;
    }
    sum.is_multiple_of(10)
}

/// A card's expiry: valid through the last day of its month.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CardExpiry {
    year: u16,
    month: u8,
}

impl CardExpiry {
    /// Accepts `"28"` or `"2028"` and `"1"`…`"12"` / `"01"`…`"12"`.
    pub fn parse(year: &str, month: &str) -> Result<CardExpiry, CardError> {
        let year_digits = year.bytes().all(|b| b.is_ascii_digit());
        let year: u16 = match (year_digits, year.len()) {
            (true, 2) => 2000 + year.parse::<u16>().map_err(|_| CardError::ExpiryYear)?,
            (true, 4) => year.parse().map_err(|_| CardError::ExpiryYear)?,
            _ => return Err(CardError::ExpiryYear),
        };
        let month_ok = !month.is_empty() && month.len() <= 2 && month.bytes().all(|b| b.is_ascii_digit());
        let month: u8 = if month_ok {
            month.parse().map_err(|_| CardError::ExpiryMonth)?
        } else {
            0
        };
        if !(1..=12).contains(&month) {
            return Err(CardError::ExpiryMonth);
        }
        Ok(CardExpiry { year, month })
    }

    pub fn year(&self) -> u16 {
        self.year
    }

    pub fn month(&self) -> u8 {
        self.month
    }

    /// Whether the card is still valid in the given calendar month.
    pub fn valid_in(&self, year: u16, month: u8) -> bool {
        (self.year, self.month) >= (year, month)
    }
}

/// The first two digits of the card password. Never stored.
#[derive(Clone, PartialEq, Eq)]
pub struct CardPassword(String);

impl CardPassword {
    pub fn parse(text: &str) -> Result<CardPassword, CardError> {
        if text.len() == 2 && text.bytes().all(|b| b.is_ascii_digit()) {
            Ok(CardPassword(text.to_owned()))
        } else {
            Err(CardError::Password)
        }
    }

    pub fn expose_digits(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for CardPassword {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CardPassword([REDACTED])")
    }
}

/// Birth date `YYMMDD` (personal cards) or a 10-digit business registration number (corporate cards). Never stored.
#[derive(Clone, PartialEq, Eq)]
pub struct IdentityNumber(String);

impl IdentityNumber {
    pub fn parse(text: &str) -> Result<IdentityNumber, CardError> {
        let digits = text.bytes().all(|b| b.is_ascii_digit());
        let ok = digits
            && match text.len() {
                6 => {
                    let month: u8 = text[2..4].parse().unwrap_or(0);
                    let day: u8 = text[4..6].parse().unwrap_or(0);
                    (1..=12).contains(&month) && (1..=31).contains(&day)
                }
                10 => true,
                _ => false,
            };
        if ok {
            Ok(IdentityNumber(text.to_owned()))
        } else {
            Err(CardError::IdentityNumber)
        }
    }

    pub fn expose_digits(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for IdentityNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("IdentityNumber([REDACTED])")
    }
}

/// Installment months: 0 = lump sum (일시불), else 2 to 36.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Installment(u8);

impl Installment {
    pub const LUMP_SUM: Installment = Installment(0);

    pub fn new(months: u8) -> Result<Installment, CardError> {
        if months == 0 || (2..=36).contains(&months) {
            Ok(Installment(months))
        } else {
            Err(CardError::Installment)
        }
    }

    pub fn months(&self) -> u8 {
        self.0
    }
}

/// What kind of card the issuer says it is. Stored as the names below; the API spells them as Toss does
/// (`신용`, `체크`, `기프트`, `미확인`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CardType {
    Credit,
    Check,
    Gift,
    Unknown,
}

impl CardType {
    pub const ALL: [CardType; 4] = [CardType::Credit, CardType::Check, CardType::Gift, CardType::Unknown];

    pub fn as_str(self) -> &'static str {
        match self {
            CardType::Credit => "CREDIT",
            CardType::Check => "CHECK",
            CardType::Gift => "GIFT",
            CardType::Unknown => "UNKNOWN",
        }
    }

    pub fn parse(text: &str) -> Option<CardType> {
        CardType::ALL.into_iter().find(|kind| kind.as_str() == text)
    }

    /// Toss's spelling (`card.cardType`).
    pub fn korean(self) -> &'static str {
        match self {
            CardType::Credit => "신용",
            CardType::Check => "체크",
            CardType::Gift => "기프트",
            CardType::Unknown => "미확인",
        }
    }
}

/// Whose card it is, as the issuer says: a person's or a company's. The API spells them as Toss does (`개인`,
/// `법인`, `미확인`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OwnerType {
    Personal,
    Corporate,
    Unknown,
}

impl OwnerType {
    pub const ALL: [OwnerType; 3] = [OwnerType::Personal, OwnerType::Corporate, OwnerType::Unknown];

    pub fn as_str(self) -> &'static str {
        match self {
            OwnerType::Personal => "PERSONAL",
            OwnerType::Corporate => "CORPORATE",
            OwnerType::Unknown => "UNKNOWN",
        }
    }

    pub fn parse(text: &str) -> Option<OwnerType> {
        OwnerType::ALL.into_iter().find(|kind| kind.as_str() == text)
    }

    /// Toss's spelling (`card.ownerType`).
    pub fn korean(self) -> &'static str {
        match self {
            OwnerType::Personal => "개인",
            OwnerType::Corporate => "법인",
            OwnerType::Unknown => "미확인",
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn card_and_owner_types_round_trip() {
        for kind in CardType::ALL {
            assert_eq!(CardType::parse(kind.as_str()), Some(kind));
        }
        for kind in OwnerType::ALL {
            assert_eq!(OwnerType::parse(kind.as_str()), Some(kind));
        }
        assert_eq!(CardType::parse("신용"), None);
    }

    #[test]
    fn card_numbers() {
        let cases: &[(&str, Result<&str, CardError>)] = &[
            ("4330000000000003", Ok("433000******0003")),
            ("5400000000000005", Ok("540000******0005")),
            ("9400000000000007", Ok("940000******0007")),
            ("4330000000000078", Ok("433000******0078")),
            ("4330000000000004", Err(CardError::NumberChecksum)),
            ("4330 0000 0000 0003", Err(CardError::NumberFormat)),
            ("433000000003", Err(CardError::NumberFormat)),
            ("43300000000000000000", Err(CardError::NumberFormat)),
            ("", Err(CardError::NumberFormat)),
        ];
        for (input, expected) in cases {
            let got = CardNumber::parse(input).map(|c| c.masked());
            assert_eq!(got.as_deref(), expected.as_ref().map(|s| *s), "{input}");
        }
        let card = CardNumber::parse("4330000000000003").unwrap();
        assert_eq!((card.bin(), card.last4()), ("433000", "0003"));
        assert!(!format!("{card:?}").contains("4330000000000003"));
    }

    #[test]
    fn every_sandbox_test_card_passes_luhn() {
        for number in [
            "4330000000000003",
            "4330000000000011",
            "4330000000000029",
            "4330000000000037",
            "4330000000000045",
            "4330000000000052",
            "4330000000000060",
            "4330000000000078",
            "5400000000000005",
            "9400000000000007",
        ] {
            assert!(luhn_valid(number), "{number}");
        }
    }

    #[test]
    fn expiry_password_identity_installment() {
        assert_eq!(
            CardExpiry::parse("28", "12").unwrap(),
            CardExpiry { year: 2028, month: 12 }
        );
        assert_eq!(
            CardExpiry::parse("2030", "1").unwrap(),
            CardExpiry { year: 2030, month: 1 }
        );
        assert_eq!(CardExpiry::parse("28", "13").unwrap_err(), CardError::ExpiryMonth);
        assert_eq!(CardExpiry::parse("28", "00").unwrap_err(), CardError::ExpiryMonth);
        assert_eq!(CardExpiry::parse("2x", "01").unwrap_err(), CardError::ExpiryYear);
        assert_eq!(CardExpiry::parse("123", "01").unwrap_err(), CardError::ExpiryYear);
        let expiry = CardExpiry::parse("26", "11").unwrap();
        assert!(expiry.valid_in(2026, 11));
        assert!(!expiry.valid_in(2026, 12));
        assert!(CardPassword::parse("12").is_ok());
        assert_eq!(CardPassword::parse("123").unwrap_err(), CardError::Password);
        assert!(IdentityNumber::parse("900101").is_ok());
        assert!(IdentityNumber::parse("1234567890").is_ok());
        assert_eq!(IdentityNumber::parse("901301").unwrap_err(), CardError::IdentityNumber);
        assert_eq!(IdentityNumber::parse("12345").unwrap_err(), CardError::IdentityNumber);
        assert_eq!(Installment::new(1).unwrap_err(), CardError::Installment);
        assert_eq!(Installment::new(37).unwrap_err(), CardError::Installment);
        assert_eq!(Installment::new(3).unwrap().months(), 3);
    }
}
