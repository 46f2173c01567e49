//! Amounts of money as integer minor units tagged with their currency.
//!
//! Amounts are `i64` counts of the currency's minor unit (won for KRW, cents for USD), so no value is ever
//! approximated by a float. Every operation that could overflow or mix currencies is checked and returns a
//! [`MoneyError`] instead of wrapping or panicking, because a silently wrong amount is worse than a failed request.

use std::cmp::Ordering;
use std::fmt;
use std::fmt::Write as _;
use std::str::FromStr;

/// An ISO 4217 currency that paygate can settle.
///
/// The enum is `non_exhaustive` so that adding a currency later does not break matches in other crates.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Currency {
    /// South Korean won, which has no minor unit in practice.
    Krw,
    /// United States dollar, counted in cents.
    Usd,
    /// Japanese yen, which has no minor unit in practice.
    Jpy,
}

impl Currency {
    /// Every supported currency, so tests and configuration can enumerate them without a hand-kept list.
    pub const ALL: [Currency; 3] = [Currency::Krw, Currency::Usd, Currency::Jpy];

    /// The upper-case ISO 4217 code, as used on the wire.
    #[must_use]
    pub const fn code(&self) -> &'static str {
        match self {
            Currency::Krw => "KRW",
            Currency::Usd => "USD",
            Currency::Jpy => "JPY",
        }
    }

    /// How many decimal places separate the minor unit from the major unit (USD 2, KRW and JPY 0).
    #[must_use]
    pub const fn minor_unit_exponent(&self) -> u32 {
        match self {
            Currency::Krw | Currency::Jpy => 0,
            Currency::Usd => 2,
        }
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// A currency code that is not one of the supported upper-case ISO 4217 codes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown currency code {code:?}: expected an upper-case ISO 4217 code such as \"KRW\"")]
pub struct UnknownCurrency {
    code: String,
}

impl UnknownCurrency {
    /// The rejected input, kept so that the API layer can echo it back to the merchant.
    #[must_use]
    pub fn code(&self) -> &str {
        &self.code
    }
}

impl FromStr for Currency {
    type Err = UnknownCurrency;

    /// Parses an ISO code; lower-case and padded forms are rejected so that every stored code has one spelling.
    fn from_str(code: &str) -> Result<Self, Self::Err> {
        Currency::ALL
            .into_iter()
            .find(|currency| currency.code() == code)
            .ok_or_else(|| UnknownCurrency { code: code.to_owned() })
    }
}

/// Why a money operation could not produce a result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum MoneyError {
    /// The exact result does not fit in an `i64` count of minor units.
    #[error("money arithmetic overflowed the i64 range of minor units")]
    Overflow,
    /// The two operands are in different currencies, which never combine without an explicit conversion.
    #[error("cannot combine {left} with {right}: currencies differ")]
    CurrencyMismatch {
        /// Currency of the left-hand operand.
        left: Currency,
        /// Currency of the right-hand operand.
        right: Currency,
    },
    /// An amount that must be strictly greater than zero was zero or negative.
    #[error("amount must be greater than zero")]
    NotPositive,
    /// A rounded division was asked for with a negative dividend or a non-positive divisor.
    #[error("rounded division needs a non-negative numerator and a positive denominator")]
    InvalidDivision,
}

/// A signed amount of minor units in one currency.
///
/// Negative amounts are representable because the ledger records refunds and reversals as negative postings.
/// There is deliberately no `PartialOrd`: comparing won with cents is meaningless, so use [`Money::checked_cmp`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Money {
    amount_minor: i64,
    currency: Currency,
}

impl Money {
    /// Wraps a count of minor units; every `i64` is a valid amount.
    #[must_use]
    pub const fn new(amount_minor: i64, currency: Currency) -> Money {
        Money { amount_minor, currency }
    }

    /// Shorthand for won amounts, which are the common case for a Korean gateway.
    #[must_use]
    pub const fn krw(amount_minor: i64) -> Money {
        Money::new(amount_minor, Currency::Krw)
    }

    /// Zero in the given currency, the identity for [`Money::checked_add`].
    #[must_use]
    pub const fn zero(currency: Currency) -> Money {
        Money::new(0, currency)
    }

    /// The amount as a count of minor units.
    #[must_use]
    pub const fn amount_minor(&self) -> i64 {
        self.amount_minor
    }

    /// The currency the amount is denominated in.
    #[must_use]
    pub const fn currency(&self) -> Currency {
        self.currency
    }

    /// Whether the amount is exactly zero.
    #[must_use]
    pub const fn is_zero(&self) -> bool {
        self.amount_minor == 0
    }

    /// Whether the amount is strictly below zero.
    #[must_use]
    pub const fn is_negative(&self) -> bool {
        self.amount_minor < 0
    }

    /// Whether the amount is strictly above zero.
    #[must_use]
    pub const fn is_positive(&self) -> bool {
        self.amount_minor > 0
    }

    /// Adds two amounts of the same currency.
    ///
    /// # Errors
    /// [`MoneyError::CurrencyMismatch`] if the currencies differ, [`MoneyError::Overflow`] if the sum does not fit.
    pub fn checked_add(self, other: Money) -> Result<Money, MoneyError> {
        let currency = self.same_currency(other)?;
        let amount_minor = self
            .amount_minor
            .checked_add(other.amount_minor)
            .ok_or(MoneyError::Overflow)?;
        Ok(Money::new(amount_minor, currency))
    }

    /// Subtracts an amount of the same currency.
    ///
    /// # Errors
    /// [`MoneyError::CurrencyMismatch`] if the currencies differ, [`MoneyError::Overflow`] if the difference does
    /// not fit.
    pub fn checked_sub(self, other: Money) -> Result<Money, MoneyError> {
        let currency = self.same_currency(other)?;
        let amount_minor = self
            .amount_minor
            .checked_sub(other.amount_minor)
            .ok_or(MoneyError::Overflow)?;
        Ok(Money::new(amount_minor, currency))
    }

    /// Flips the sign, as when a capture is reversed.
    ///
    /// # Errors
    /// [`MoneyError::Overflow`] for `i64::MIN`, whose negation is not representable.
    pub fn checked_neg(self) -> Result<Money, MoneyError> {
        let amount_minor = self.amount_minor.checked_neg().ok_or(MoneyError::Overflow)?;
        Ok(Money::new(amount_minor, self.currency))
    }

    /// Multiplies by an integer count, such as a quantity of identical items.
    ///
    /// # Errors
    /// [`MoneyError::Overflow`] if the product does not fit.
    pub fn checked_mul_int(self, factor: i64) -> Result<Money, MoneyError> {
        let amount_minor = self.amount_minor.checked_mul(factor).ok_or(MoneyError::Overflow)?;
        Ok(Money::new(amount_minor, self.currency))
    }

    /// Orders two amounts of the same currency.
    ///
    /// # Errors
    /// [`MoneyError::CurrencyMismatch`] if the currencies differ, since such amounts have no meaningful order.
    pub fn checked_cmp(&self, other: &Money) -> Result<Ordering, MoneyError> {
        self.same_currency(*other)?;
        Ok(self.amount_minor.cmp(&other.amount_minor))
    }

    /// Returns the shared currency, or the mismatch error that every binary operation reports.
    fn same_currency(self, other: Money) -> Result<Currency, MoneyError> {
        if self.currency == other.currency {
            Ok(self.currency)
        } else {
            Err(MoneyError::CurrencyMismatch {
                left: self.currency,
                right: other.currency,
            })
        }
    }
}

impl fmt::Display for Money {
    /// Formats as "1,000 KRW" or "-12.34 USD", placing the decimal point by the currency's minor unit exponent.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // unsigned_abs keeps i64::MIN printable, where a signed negation would overflow.
        let magnitude_minor = self.amount_minor.unsigned_abs();
        let exponent = self.currency.minor_unit_exponent();
        let scale_minor = 10_u64.pow(exponent);
        let major = magnitude_minor / scale_minor;
        let fraction_minor = magnitude_minor % scale_minor;

        let mut text = String::new();
        if self.is_negative() {
            text.push('-');
        }
        push_grouped_thousands(&mut text, major);
        if exponent > 0 {
            let width = usize::try_from(exponent).map_err(|_| fmt::Error)?;
            write!(text, ".{fraction_minor:0width$}")?;
        }
        text.push(' ');
        text.push_str(self.currency.code());
        // pad honours width and alignment flags, so amounts line up in tables and logs.
        f.pad(&text)
    }
}

/// Appends `value` with a comma between each group of three digits, the convention for both KRW and USD.
fn push_grouped_thousands(text: &mut String, value: u64) {
    let digits = value.to_string();
    // The leading group takes one to three digits so that every later group has exactly three.
    let leading_len = match digits.len() % 3 {
        0 => 3,
        remainder => remainder,
    };
    let (leading, rest) = digits.split_at(leading_len);
    text.push_str(leading);
    for group in rest.as_bytes().chunks(3) {
        text.push(',');
        text.extend(group.iter().copied().map(char::from));
    }
}

/// An amount that is strictly greater than zero, as every payment or cancel request amount must be.
///
/// Validating once at the edge lets the rest of the code take this type and skip re-checking the sign.
/// Per-merchant maximums are policy and are checked elsewhere.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PositiveAmount(Money);

impl PositiveAmount {
    /// Accepts `money` only if its amount is above zero.
    ///
    /// # Errors
    /// [`MoneyError::NotPositive`] for zero or negative amounts.
    pub fn new(money: Money) -> Result<Self, MoneyError> {
        if money.is_positive() {
            Ok(PositiveAmount(money))
        } else {
            Err(MoneyError::NotPositive)
        }
    }

    /// The wrapped amount.
    #[must_use]
    pub const fn money(&self) -> Money {
        self.0
    }

    /// The amount as a count of minor units, always at least one.
    #[must_use]
    pub const fn amount_minor(&self) -> i64 {
        self.0.amount_minor()
    }

    /// The currency the amount is denominated in.
    #[must_use]
    pub const fn currency(&self) -> Currency {
        self.0.currency()
    }
}

impl TryFrom<Money> for PositiveAmount {
    type Error = MoneyError;

    fn try_from(money: Money) -> Result<Self, Self::Error> {
        PositiveAmount::new(money)
    }
}

impl From<PositiveAmount> for Money {
    fn from(amount: PositiveAmount) -> Money {
        amount.0
    }
}

impl fmt::Display for PositiveAmount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

/// How a division that leaves a remainder is brought back to a whole number of minor units.
///
/// Every division of money names its rounding so that the choice is visible in review rather than implied by `/`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Rounding {
    /// Round to the nearest unit, with an exact half going up (the Korean VAT rule).
    HalfUp,
    /// Drop the remainder, which never gives away more than was computed.
    Down,
    /// Round any remainder up to the next unit.
    Up,
}

/// Divides `numerator` by `denominator` and rounds the quotient as `rounding` says.
///
/// Only non-negative numerators are accepted because "half up" and "down" are ambiguous for negative values;
/// callers that handle refunds divide the magnitude and apply the sign themselves.
///
/// # Errors
/// [`MoneyError::InvalidDivision`] if `numerator` is negative or `denominator` is not positive.
pub fn div_round(numerator: i64, denominator: i64, rounding: Rounding) -> Result<i64, MoneyError> {
    if numerator < 0 || denominator <= 0 {
        return Err(MoneyError::InvalidDivision);
    }
    div_round_wide(i128::from(numerator), i128::from(denominator), rounding)
}

/// Computes `value * mul / div` rounded as `rounding` says, as for a fee rate of `mul / div`.
///
/// The product is formed in `i128`, where the product of any two `i64` values fits, so multiplying before dividing
/// keeps full precision without risking overflow. Only the final quotient has to fit in `i64`.
///
/// # Errors
/// [`MoneyError::InvalidDivision`] if `value` or `mul` is negative or `div` is not positive;
/// [`MoneyError::Overflow`] if the rounded quotient does not fit in `i64`.
pub fn mul_div_round(value: i64, mul: i64, div: i64, rounding: Rounding) -> Result<i64, MoneyError> {
    if value < 0 || mul < 0 || div <= 0 {
        return Err(MoneyError::InvalidDivision);
    }
    let product = i128::from(value) * i128::from(mul);
    div_round_wide(product, i128::from(div), rounding)
}

/// Rounded division for a non-negative numerator and positive denominator, already validated by the caller.
fn div_round_wide(numerator: i128, denominator: i128, rounding: Rounding) -> Result<i64, MoneyError> {
    let quotient = numerator / denominator;
    let remainder = numerator % denominator;
    // The remainder is below the denominator, which came from an i64, so doubling it cannot overflow i128.
    let rounds_up = match rounding {
        Rounding::Down => false,
        Rounding::Up => remainder > 0,
        Rounding::HalfUp => remainder * 2 >= denominator,
    };
    let rounded = if rounds_up { quotient + 1 } else { quotient };
    i64::try_from(rounded).map_err(|_| MoneyError::Overflow)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn any_currency() -> impl Strategy<Value = Currency> {
        proptest::sample::select(Currency::ALL.to_vec())
    }

    /// Two currencies that are guaranteed to differ.
    fn distinct_currencies() -> impl Strategy<Value = (Currency, Currency)> {
        (any_currency(), any_currency()).prop_filter("currencies must differ", |(left, right)| left != right)
    }

    /// Converts an exact i128 result into what the checked i64 operation should report.
    fn expected_from_wide(exact: i128, currency: Currency) -> Result<Money, MoneyError> {
        i64::try_from(exact)
            .map(|amount_minor| Money::new(amount_minor, currency))
            .map_err(|_| MoneyError::Overflow)
    }

    #[test]
    fn currency_codes_and_exponents() {
        let cases = [
            (Currency::Krw, "KRW", 0),
            (Currency::Usd, "USD", 2),
            (Currency::Jpy, "JPY", 0),
        ];
        for (currency, code, exponent) in cases {
            assert_eq!(currency.code(), code);
            assert_eq!(currency.to_string(), code);
            assert_eq!(currency.minor_unit_exponent(), exponent, "{code}");
            assert_eq!(code.parse::<Currency>(), Ok(currency));
        }
    }

    #[test]
    fn currency_parsing_rejects_anything_but_upper_case_codes() {
        for input in ["krw", "Krw", " KRW", "KRW ", "", "EUR", "KRWX", "원"] {
            let error = input.parse::<Currency>().expect_err(input);
            assert_eq!(error.code(), input);
        }
    }

    #[test]
    fn unknown_currency_message_names_the_input() {
        let error = "eur".parse::<Currency>().expect_err("lower case is rejected");
        assert_eq!(
            error.to_string(),
            "unknown currency code \"eur\": expected an upper-case ISO 4217 code such as \"KRW\""
        );
    }

    #[test]
    fn constructors_and_sign_predicates() {
        let cases = [
            (Money::krw(-1), true, false, false),
            (Money::zero(Currency::Usd), false, true, false),
            (Money::new(1, Currency::Jpy), false, false, true),
            (Money::new(i64::MIN, Currency::Krw), true, false, false),
            (Money::new(i64::MAX, Currency::Krw), false, false, true),
        ];
        for (money, negative, zero, positive) in cases {
            assert_eq!(money.is_negative(), negative, "{money:?}");
            assert_eq!(money.is_zero(), zero, "{money:?}");
            assert_eq!(money.is_positive(), positive, "{money:?}");
        }
        assert_eq!(Money::krw(5).currency(), Currency::Krw);
        assert_eq!(Money::krw(5).amount_minor(), 5);
    }

    #[test]
    fn display_places_separators_and_decimal_point() {
        let cases = [
            (Money::krw(0), "0 KRW"),
            (Money::krw(999), "999 KRW"),
            (Money::krw(1_000), "1,000 KRW"),
            (Money::krw(1_234_567), "1,234,567 KRW"),
            (Money::krw(-1_000), "-1,000 KRW"),
            (Money::new(100, Currency::Jpy), "100 JPY"),
            (Money::new(1_234, Currency::Usd), "12.34 USD"),
            (Money::new(5, Currency::Usd), "0.05 USD"),
            (Money::new(-5, Currency::Usd), "-0.05 USD"),
            (Money::new(100_000, Currency::Usd), "1,000.00 USD"),
            (Money::new(123_456_789, Currency::Usd), "1,234,567.89 USD"),
            (Money::new(i64::MAX, Currency::Krw), "9,223,372,036,854,775,807 KRW"),
            (Money::new(i64::MIN, Currency::Krw), "-9,223,372,036,854,775,808 KRW"),
            (Money::new(i64::MIN, Currency::Usd), "-92,233,720,368,547,758.08 USD"),
        ];
        for (money, expected) in cases {
            assert_eq!(money.to_string(), expected);
        }
        assert_eq!(format!("{:>12}", Money::krw(1_000)), "   1,000 KRW");
    }

    #[test]
    fn arithmetic_table() {
        let usd = |amount_minor| Money::new(amount_minor, Currency::Usd);
        let cases = [
            (Money::krw(1), Money::krw(2), Ok(Money::krw(3)), Ok(Money::krw(-1))),
            (
                Money::krw(i64::MAX),
                Money::krw(1),
                Err(MoneyError::Overflow),
                Ok(Money::krw(i64::MAX - 1)),
            ),
            (
                Money::krw(i64::MIN),
                Money::krw(1),
                Ok(Money::krw(i64::MIN + 1)),
                Err(MoneyError::Overflow),
            ),
            (Money::krw(-5), Money::krw(-5), Ok(Money::krw(-10)), Ok(Money::krw(0))),
            (
                Money::krw(1),
                usd(1),
                Err(MoneyError::CurrencyMismatch {
                    left: Currency::Krw,
                    right: Currency::Usd,
                }),
                Err(MoneyError::CurrencyMismatch {
                    left: Currency::Krw,
                    right: Currency::Usd,
                }),
            ),
        ];
        for (left, right, sum, difference) in cases {
            assert_eq!(left.checked_add(right), sum, "{left:?} + {right:?}");
            assert_eq!(left.checked_sub(right), difference, "{left:?} - {right:?}");
        }
    }

    #[test]
    fn negation_and_multiplication_table() {
        assert_eq!(Money::krw(5).checked_neg(), Ok(Money::krw(-5)));
        assert_eq!(Money::krw(i64::MAX).checked_neg(), Ok(Money::krw(-i64::MAX)));
        assert_eq!(Money::krw(i64::MIN).checked_neg(), Err(MoneyError::Overflow));
        assert_eq!(Money::krw(1_000).checked_mul_int(3), Ok(Money::krw(3_000)));
        assert_eq!(Money::krw(1_000).checked_mul_int(-1), Ok(Money::krw(-1_000)));
        assert_eq!(Money::krw(i64::MAX).checked_mul_int(2), Err(MoneyError::Overflow));
        assert_eq!(Money::krw(i64::MIN).checked_mul_int(-1), Err(MoneyError::Overflow));
    }

    #[test]
    fn checked_cmp_orders_within_a_currency_only() {
        assert_eq!(Money::krw(1).checked_cmp(&Money::krw(2)), Ok(Ordering::Less));
        assert_eq!(Money::krw(2).checked_cmp(&Money::krw(2)), Ok(Ordering::Equal));
        assert_eq!(Money::krw(3).checked_cmp(&Money::krw(2)), Ok(Ordering::Greater));
        assert_eq!(
            Money::krw(1).checked_cmp(&Money::new(1, Currency::Jpy)),
            Err(MoneyError::CurrencyMismatch {
                left: Currency::Krw,
                right: Currency::Jpy,
            })
        );
    }

    #[test]
    fn error_messages_are_readable() {
        let mismatch = MoneyError::CurrencyMismatch {
            left: Currency::Krw,
            right: Currency::Usd,
        };
        assert_eq!(mismatch.to_string(), "cannot combine KRW with USD: currencies differ");
        assert_eq!(
            MoneyError::Overflow.to_string(),
            "money arithmetic overflowed the i64 range of minor units"
        );
    }

    #[test]
    fn positive_amount_accepts_only_amounts_above_zero() {
        let cases = [
            (Money::krw(1), true),
            (Money::krw(i64::MAX), true),
            (Money::krw(0), false),
            (Money::krw(-1), false),
            (Money::new(i64::MIN, Currency::Usd), false),
        ];
        for (money, accepted) in cases {
            let result = PositiveAmount::new(money);
            if accepted {
                let amount = result.unwrap();
                assert_eq!(amount.money(), money);
                assert_eq!(amount.amount_minor(), money.amount_minor());
                assert_eq!(amount.currency(), money.currency());
                assert_eq!(Money::from(amount), money);
                assert_eq!(amount.to_string(), money.to_string());
            } else {
                assert_eq!(result, Err(MoneyError::NotPositive), "{money:?}");
            }
            assert_eq!(PositiveAmount::try_from(money), result);
        }
    }

    #[test]
    fn div_round_table() {
        // (numerator, denominator, half up, down, up)
        let cases = [
            (0, 1, 0, 0, 0),
            (10, 5, 2, 2, 2),
            (10, 4, 3, 2, 3),
            (9, 4, 2, 2, 3),
            (11, 4, 3, 2, 3),
            (1, 3, 0, 0, 1),
            (2, 3, 1, 0, 1),
            (10_000, 11, 909, 909, 910),
            (6, 11, 1, 0, 1),
            (5, 11, 0, 0, 1),
            (i64::MAX, 1, i64::MAX, i64::MAX, i64::MAX),
            (i64::MAX, 2, i64::MAX / 2 + 1, i64::MAX / 2, i64::MAX / 2 + 1),
            (i64::MAX, i64::MAX, 1, 1, 1),
        ];
        for (numerator, denominator, half_up, down, up) in cases {
            let label = format!("{numerator} / {denominator}");
            assert_eq!(
                div_round(numerator, denominator, Rounding::HalfUp),
                Ok(half_up),
                "{label}"
            );
            assert_eq!(div_round(numerator, denominator, Rounding::Down), Ok(down), "{label}");
            assert_eq!(div_round(numerator, denominator, Rounding::Up), Ok(up), "{label}");
        }
    }

    #[test]
    fn div_round_rejects_negative_numerators_and_non_positive_denominators() {
        for (numerator, denominator) in [(-1, 1), (1, 0), (1, -1), (i64::MIN, 1), (0, 0)] {
            for rounding in [Rounding::HalfUp, Rounding::Down, Rounding::Up] {
                assert_eq!(
                    div_round(numerator, denominator, rounding),
                    Err(MoneyError::InvalidDivision),
                    "{numerator} / {denominator} {rounding:?}"
                );
            }
        }
    }

    #[test]
    fn mul_div_round_table() {
        let cases = [
            // A 3.3% fee on 10,000 won, expressed as 33 / 1000.
            (10_000, 33, 1_000, Rounding::HalfUp, Ok(330)),
            (10_001, 33, 1_000, Rounding::Down, Ok(330)),
            (10_001, 33, 1_000, Rounding::Up, Ok(331)),
            // The product overflows i64 but the quotient does not, which is why the product is formed in i128.
            (i64::MAX, 3, 3, Rounding::Down, Ok(i64::MAX)),
            (i64::MAX, i64::MAX, i64::MAX, Rounding::HalfUp, Ok(i64::MAX)),
            (i64::MAX, 2, 1, Rounding::Down, Err(MoneyError::Overflow)),
            (-1, 1, 1, Rounding::Down, Err(MoneyError::InvalidDivision)),
            (1, -1, 1, Rounding::Down, Err(MoneyError::InvalidDivision)),
            (1, 1, 0, Rounding::Down, Err(MoneyError::InvalidDivision)),
        ];
        for (value, mul, div, rounding, expected) in cases {
            assert_eq!(
                mul_div_round(value, mul, div, rounding),
                expected,
                "{value} * {mul} / {div} {rounding:?}"
            );
        }
    }

    proptest! {
        #[test]
        fn add_then_sub_round_trips(a in any::<i64>(), b in any::<i64>(), currency in any_currency()) {
            let left = Money::new(a, currency);
            let right = Money::new(b, currency);
            if let Ok(sum) = left.checked_add(right) {
                prop_assert_eq!(sum.checked_sub(right), Ok(left));
            }
            if let Ok(difference) = left.checked_sub(right) {
                prop_assert_eq!(difference.checked_add(right), Ok(left));
            }
        }

        #[test]
        fn overflow_is_reported_not_wrapped(a in any::<i64>(), b in any::<i64>(), currency in any_currency()) {
            let left = Money::new(a, currency);
            let right = Money::new(b, currency);
            let (wide_a, wide_b) = (i128::from(a), i128::from(b));
            prop_assert_eq!(left.checked_add(right), expected_from_wide(wide_a + wide_b, currency));
            prop_assert_eq!(left.checked_sub(right), expected_from_wide(wide_a - wide_b, currency));
            prop_assert_eq!(left.checked_mul_int(b), expected_from_wide(wide_a * wide_b, currency));
            prop_assert_eq!(left.checked_neg(), expected_from_wide(-wide_a, currency));
        }

        #[test]
        fn overflow_near_the_edges(
            a in prop_oneof![i64::MAX - 1_000..=i64::MAX, i64::MIN..=i64::MIN + 1_000],
            b in -2_000_i64..=2_000,
        ) {
            let left = Money::krw(a);
            let right = Money::krw(b);
            let (wide_a, wide_b) = (i128::from(a), i128::from(b));
            prop_assert_eq!(left.checked_add(right), expected_from_wide(wide_a + wide_b, Currency::Krw));
            prop_assert_eq!(left.checked_sub(right), expected_from_wide(wide_a - wide_b, Currency::Krw));
        }

        #[test]
        fn currency_mismatch_always_errors(
            a in any::<i64>(),
            b in any::<i64>(),
            (left_currency, right_currency) in distinct_currencies(),
        ) {
            let left = Money::new(a, left_currency);
            let right = Money::new(b, right_currency);
            let mismatch = MoneyError::CurrencyMismatch { left: left_currency, right: right_currency };
            prop_assert_eq!(left.checked_add(right), Err(mismatch));
            prop_assert_eq!(left.checked_sub(right), Err(mismatch));
            prop_assert_eq!(left.checked_cmp(&right), Err(mismatch));
        }

        #[test]
        fn checked_cmp_matches_integer_order(a in any::<i64>(), b in any::<i64>(), currency in any_currency()) {
            prop_assert_eq!(Money::new(a, currency).checked_cmp(&Money::new(b, currency)), Ok(a.cmp(&b)));
        }

        #[test]
        fn div_round_matches_i128_reference(numerator in 0_i64..=i64::MAX, denominator in 1_i64..=i64::MAX) {
            let (n, d) = (i128::from(numerator), i128::from(denominator));
            let half_up = i64::try_from((2 * n + d) / (2 * d)).unwrap();
            let down = i64::try_from(n / d).unwrap();
            let up = i64::try_from((n + d - 1) / d).unwrap();
            prop_assert_eq!(div_round(numerator, denominator, Rounding::HalfUp), Ok(half_up));
            prop_assert_eq!(div_round(numerator, denominator, Rounding::Down), Ok(down));
            prop_assert_eq!(div_round(numerator, denominator, Rounding::Up), Ok(up));
        }

        #[test]
        fn div_round_with_small_denominators_matches_reference(numerator in 0_i64..=1_000_000, denominator in 1_i64..=50) {
            let half_up = (2 * numerator + denominator) / (2 * denominator);
            prop_assert_eq!(div_round(numerator, denominator, Rounding::HalfUp), Ok(half_up));
        }

        #[test]
        fn roundings_are_ordered_and_at_most_one_apart(
            numerator in 0_i64..=i64::MAX,
            denominator in prop_oneof![1_i64..=1_000, 1_i64..=i64::MAX],
        ) {
            let half_up = div_round(numerator, denominator, Rounding::HalfUp).unwrap();
            let down = div_round(numerator, denominator, Rounding::Down).unwrap();
            let up = div_round(numerator, denominator, Rounding::Up).unwrap();
            prop_assert!(down <= half_up && half_up <= up);
            prop_assert!(up - down <= 1);
            prop_assert_eq!(up == down, numerator % denominator == 0);
        }

        #[test]
        fn mul_div_round_matches_i128_reference(
            value in 0_i64..=i64::MAX,
            mul in 0_i64..=i64::MAX,
            div in 1_i64..=i64::MAX,
        ) {
            let (v, m, d) = (i128::from(value), i128::from(mul), i128::from(div));
            let reference = |exact: i128| i64::try_from(exact).map_err(|_| MoneyError::Overflow);
            prop_assert_eq!(mul_div_round(value, mul, div, Rounding::Down), reference(v * m / d));
            prop_assert_eq!(mul_div_round(value, mul, div, Rounding::Up), reference((v * m + d - 1) / d));
            prop_assert_eq!(mul_div_round(value, mul, div, Rounding::HalfUp), reference((2 * v * m + d) / (2 * d)));
        }
    }
}
