//! Splitting a payment amount into the Korean VAT (부가세) parts that merchants report to the tax office.
//!
//! A payment's `total` contains a tax-free part and a taxable part. Korean VAT is 10% of the supply value, so it is
//! 1/11 of the VAT-inclusive taxable part: `vat = round_half_up((total - tax_free) / 11)` unless the merchant sends
//! its own figure, and `supplied = total - tax_free - vat`.
//!
//! The division is done on minor units for every currency: "half up to the won" for KRW, whose exponent is 0, and
//! half up to the cent for USD. Because 11 is odd, a quotient can never end in exactly one half, so half-up and
//! half-even would agree; half-up is named because that is how the rule is written.

use crate::money::{div_round, Money, MoneyError, Rounding};

/// VAT-inclusive amounts carry 10/11 supply value and 1/11 VAT, because the VAT rate is 10% of supply value.
const VAT_DIVISOR: i64 = 11;

/// Why a VAT split could not be formed from the given amounts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum VatError {
    /// The total must be above zero, since a VAT split describes a charge.
    #[error("total amount must be greater than zero, got {total}")]
    TotalNotPositive {
        /// The rejected total.
        total: Money,
    },
    /// The tax-free part cannot be negative.
    #[error("tax-free amount must not be negative, got {tax_free}")]
    TaxFreeNegative {
        /// The rejected tax-free amount.
        tax_free: Money,
    },
    /// The tax-free part cannot be larger than the total it is part of.
    #[error("tax-free amount {tax_free} exceeds total amount {total}")]
    TaxFreeExceedsTotal {
        /// The rejected tax-free amount.
        tax_free: Money,
        /// The total it was compared with.
        total: Money,
    },
    /// A merchant-supplied VAT cannot be negative.
    #[error("VAT must not be negative, got {vat}")]
    VatNegative {
        /// The rejected VAT.
        vat: Money,
    },
    /// A merchant-supplied VAT cannot exceed the taxable part, or the supplied amount would be negative.
    #[error("VAT {vat} exceeds taxable amount {taxable}")]
    VatExceedsTaxable {
        /// The rejected VAT.
        vat: Money,
        /// The total minus the tax-free amount.
        taxable: Money,
    },
    /// Cancels took more than the split's total or its tax-free amount.
    #[error("the cancels exceed the amounts they cancel")]
    CancelsExceedSplit,
    /// The amounts are in different currencies, or the arithmetic overflowed.
    #[error(transparent)]
    Money(#[from] MoneyError),
}

/// A total broken into tax-free amount, VAT and supplied amount, which always add back up to the total.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct VatSplit {
    total: Money,
    tax_free: Money,
    vat: Money,
    supplied: Money,
}

impl VatSplit {
    /// Splits `total` with the VAT computed by the 1/11 rule, rounded half up on minor units.
    ///
    /// # Errors
    /// [`VatError::Money`] with a currency mismatch if `tax_free` is not in the total's currency;
    /// [`VatError::TotalNotPositive`], [`VatError::TaxFreeNegative`] or [`VatError::TaxFreeExceedsTotal`] for
    /// amounts that cannot describe a charge.
    pub fn compute(total: Money, tax_free: Money) -> Result<VatSplit, VatError> {
        let taxable = taxable_amount(total, tax_free)?;
        let vat_minor = div_round(taxable.amount_minor(), VAT_DIVISOR, Rounding::HalfUp)?;
        let vat = Money::new(vat_minor, total.currency());
        VatSplit::from_parts(total, tax_free, vat, taxable)
    }

    /// Splits `total` using the VAT the merchant sent, which may differ from the 1/11 rule (for example 0).
    ///
    /// # Errors
    /// Everything [`VatSplit::compute`] reports, plus [`VatError::VatNegative`] and [`VatError::VatExceedsTaxable`],
    /// and a currency mismatch if `vat` is not in the total's currency.
    pub fn with_explicit_vat(total: Money, tax_free: Money, vat: Money) -> Result<VatSplit, VatError> {
        // Checking the currency first keeps the comparisons below meaningful.
        total.checked_cmp(&vat)?;
        let taxable = taxable_amount(total, tax_free)?;
        if vat.is_negative() {
            return Err(VatError::VatNegative { vat });
        }
        if vat.checked_cmp(&taxable)?.is_gt() {
            return Err(VatError::VatExceedsTaxable { vat, taxable });
        }
        VatSplit::from_parts(total, tax_free, vat, taxable)
    }

    /// Derives the supplied amount from already validated parts.
    fn from_parts(total: Money, tax_free: Money, vat: Money, taxable: Money) -> Result<VatSplit, VatError> {
        let supplied = taxable.checked_sub(vat)?;
        let split = VatSplit {
            total,
            tax_free,
            vat,
            supplied,
        };
        debug_assert!(
            split.parts_add_up(),
            "VAT split parts must be non-negative and sum to the total: {split:?}"
        );
        Ok(split)
    }

    /// Whether every part is non-negative and supplied + vat + tax-free equals the total exactly.
    fn parts_add_up(&self) -> bool {
        let parts_non_negative =
            !self.tax_free.is_negative() && !self.vat.is_negative() && !self.supplied.is_negative();
        let sum = self
            .supplied
            .checked_add(self.vat)
            .and_then(|partial| partial.checked_add(self.tax_free));
        parts_non_negative && sum == Ok(self.total)
    }

    /// The whole amount charged, VAT included.
    #[must_use]
    pub const fn total(&self) -> Money {
        self.total
    }

    /// The part of the total that is exempt from VAT.
    #[must_use]
    pub const fn tax_free(&self) -> Money {
        self.tax_free
    }

    /// The VAT contained in the taxable part.
    #[must_use]
    pub const fn vat(&self) -> Money {
        self.vat
    }

    /// The supply value: the taxable part without its VAT.
    #[must_use]
    pub const fn supplied(&self) -> Money {
        self.supplied
    }

    /// What is left of the split once `cancels` (each cancel's amount and its tax-free part, oldest first) went
    /// through, the way Toss Payments reports a partly cancelled payment: each cancel takes the VAT of its taxable
    /// part (1/11, rounded half up), never more than is left and never so little that the rest of the VAT would
    /// exceed the rest of the taxable amount; the cancel that empties the payment takes all that is left. So the
    /// parts always add up to the remaining total, and are all zero once it is fully cancelled.
    ///
    /// # Errors
    /// [`VatError::CancelsExceedSplit`] if the cancels take more than the total or the tax-free amount;
    /// [`VatError::Money`] if they are in another currency.
    pub fn after_cancels(&self, cancels: impl IntoIterator<Item = (Money, Money)>) -> Result<Remaining, VatError> {
        let mut total = self.total;
        let mut tax_free = self.tax_free;
        let mut vat = self.vat;
        for (amount, cancel_tax_free) in cancels {
            total = total.checked_sub(amount)?;
            tax_free = tax_free.checked_sub(cancel_tax_free)?;
            if total.is_negative() || tax_free.is_negative() {
                return Err(VatError::CancelsExceedSplit);
            }
            let cancel_vat = if total.is_zero() {
                vat
            } else {
                let taxable = amount.checked_sub(cancel_tax_free)?;
                let share = Money::new(
                    div_round(taxable.amount_minor(), VAT_DIVISOR, Rounding::HalfUp)?,
                    vat.currency(),
                );
                // What must go so that the VAT left fits in the taxable amount left.
                let floor = vat.checked_sub(total.checked_sub(tax_free)?)?;
                max_money(min_money(share, vat)?, floor)?
            };
            vat = vat.checked_sub(cancel_vat)?;
        }
        let supplied = total.checked_sub(tax_free)?.checked_sub(vat)?;
        Ok(Remaining {
            total,
            tax_free,
            vat,
            supplied,
        })
    }
}

/// The parts of what is left of a payment after its cancels (all zero once fully cancelled).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Remaining {
    pub total: Money,
    pub tax_free: Money,
    pub vat: Money,
    pub supplied: Money,
}

fn min_money(a: Money, b: Money) -> Result<Money, MoneyError> {
    Ok(if a.checked_cmp(&b)?.is_le() { a } else { b })
}

fn max_money(a: Money, b: Money) -> Result<Money, MoneyError> {
    Ok(if a.checked_cmp(&b)?.is_ge() { a } else { b })
}

/// Validates total and tax-free amounts and returns the taxable part, `total - tax_free`.
fn taxable_amount(total: Money, tax_free: Money) -> Result<Money, VatError> {
    let tax_free_vs_total = tax_free.checked_cmp(&total)?;
    if !total.is_positive() {
        return Err(VatError::TotalNotPositive { total });
    }
    if tax_free.is_negative() {
        return Err(VatError::TaxFreeNegative { tax_free });
    }
    if tax_free_vs_total.is_gt() {
        return Err(VatError::TaxFreeExceedsTotal { tax_free, total });
    }
    Ok(total.checked_sub(tax_free)?)
}

#[cfg(test)]
mod remaining_tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn krw(minor: i64) -> Money {
        Money::krw(minor)
    }

    fn parts(r: Remaining) -> (i64, i64, i64, i64) {
        (
            r.total.amount_minor(),
            r.tax_free.amount_minor(),
            r.vat.amount_minor(),
            r.supplied.amount_minor(),
        )
    }

    #[test]
    fn cancels_take_their_share_and_the_last_takes_the_rest() {
        let split = VatSplit::compute(krw(15_000), krw(0)).unwrap(); // vat 1,364, supplied 13,636
        let none = split.after_cancels([]).unwrap();
        assert_eq!(parts(none), (15_000, 0, 1_364, 13_636));
        let one = split.after_cancels([(krw(10_000), krw(0))]).unwrap();
        assert_eq!(parts(one), (5_000, 0, 455, 4_545)); // the cancel took 909
        let all = split
            .after_cancels([(krw(10_000), krw(0)), (krw(5_000), krw(0))])
            .unwrap();
        assert_eq!(parts(all), (0, 0, 0, 0));
    }

    #[test]
    fn tax_free_parts_and_explicit_vat_stay_consistent() {
        let split = VatSplit::compute(krw(11_000), krw(1_000)).unwrap(); // vat 909
        let after = split.after_cancels([(krw(3_000), krw(1_000))]).unwrap();
        assert_eq!(parts(after), (8_000, 0, 727, 7_273));
        // A merchant who declared all of the taxable part as VAT: the rest of the VAT never exceeds the rest.
        let odd = VatSplit::with_explicit_vat(krw(1_100), krw(0), krw(1_100)).unwrap();
        let after = odd.after_cancels([(krw(100), krw(0))]).unwrap();
        assert_eq!(parts(after), (1_000, 0, 1_000, 0));
        for cut in 1..1_100 {
            let r = odd.after_cancels([(krw(cut), krw(0))]).unwrap();
            assert!(!r.supplied.is_negative() && !r.vat.is_negative(), "{cut}: {r:?}");
        }
    }

    #[test]
    fn cancels_beyond_the_split_are_refused() {
        let split = VatSplit::compute(krw(1_000), krw(100)).unwrap();
        assert_eq!(
            split.after_cancels([(krw(1_001), krw(0))]),
            Err(VatError::CancelsExceedSplit)
        );
        assert_eq!(
            split.after_cancels([(krw(500), krw(101))]),
            Err(VatError::CancelsExceedSplit)
        );
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::money::Currency;
    use proptest::prelude::*;

    /// Round half up of `taxable / 11`, written independently of `div_round`:
    /// floor(t / 11 + 1 / 2) = floor((2t + 11) / 22).
    fn reference_vat_minor(taxable_minor: i64) -> i64 {
        let wide = (2 * i128::from(taxable_minor) + 11) / 22;
        i64::try_from(wide).unwrap()
    }

    #[test]
    fn computed_split_table() {
        // (total, tax free, vat, supplied)
        let cases = [
            (10_000, 0, 909, 9_091),
            (11_000, 0, 1_000, 10_000),
            (1, 0, 0, 1),
            (5, 0, 0, 5),
            (6, 0, 1, 5),
            (11, 0, 1, 10),
            (10_000, 1_000, 818, 8_182),
            (10_000, 10_000, 0, 0),
            (1_000_000_000_000, 0, 90_909_090_909, 909_090_909_091),
            (i64::MAX, 0, 838_488_366_986_797_801, 8_384_883_669_867_978_006),
        ];
        for (total_minor, tax_free_minor, vat_minor, supplied_minor) in cases {
            let split = VatSplit::compute(Money::krw(total_minor), Money::krw(tax_free_minor)).unwrap();
            assert_eq!(split.total(), Money::krw(total_minor));
            assert_eq!(split.tax_free(), Money::krw(tax_free_minor));
            assert_eq!(
                split.vat(),
                Money::krw(vat_minor),
                "vat of {total_minor} - {tax_free_minor}"
            );
            assert_eq!(
                split.supplied(),
                Money::krw(supplied_minor),
                "supplied of {total_minor} - {tax_free_minor}"
            );
            assert!(split.parts_add_up());
        }
    }

    #[test]
    fn usd_rounds_half_up_to_the_cent() {
        // $100.00 taxable is 10,000 cents; 10,000 / 11 = 909.09 cents, so the VAT is $9.09.
        let split = VatSplit::compute(Money::new(10_000, Currency::Usd), Money::zero(Currency::Usd)).unwrap();
        assert_eq!(split.vat(), Money::new(909, Currency::Usd));
        assert_eq!(split.supplied(), Money::new(9_091, Currency::Usd));
    }

    #[test]
    fn explicit_vat_table() {
        // (total, tax free, vat, supplied)
        let cases = [
            (10_000, 0, 0, 10_000),
            (10_000, 0, 1_000, 9_000),
            (10_000, 1_000, 9_000, 0),
            (10_000, 10_000, 0, 0),
            (1, 0, 1, 0),
        ];
        for (total_minor, tax_free_minor, vat_minor, supplied_minor) in cases {
            let split = VatSplit::with_explicit_vat(
                Money::krw(total_minor),
                Money::krw(tax_free_minor),
                Money::krw(vat_minor),
            )
            .unwrap();
            assert_eq!(split.vat(), Money::krw(vat_minor));
            assert_eq!(split.supplied(), Money::krw(supplied_minor));
            assert!(split.parts_add_up());
        }
    }

    #[test]
    fn rejected_inputs_table() {
        let usd = |amount_minor| Money::new(amount_minor, Currency::Usd);
        let krw_usd_mismatch = VatError::Money(MoneyError::CurrencyMismatch {
            left: Currency::Krw,
            right: Currency::Usd,
        });
        let usd_krw_mismatch = VatError::Money(MoneyError::CurrencyMismatch {
            left: Currency::Usd,
            right: Currency::Krw,
        });
        // (total, tax free, explicit vat or None for the 1/11 rule, expected error)
        let cases = [
            (
                Money::krw(0),
                Money::krw(0),
                None,
                VatError::TotalNotPositive { total: Money::krw(0) },
            ),
            (
                Money::krw(-1),
                Money::krw(0),
                None,
                VatError::TotalNotPositive { total: Money::krw(-1) },
            ),
            (
                Money::krw(100),
                Money::krw(-1),
                None,
                VatError::TaxFreeNegative {
                    tax_free: Money::krw(-1),
                },
            ),
            (
                Money::krw(100),
                Money::krw(101),
                None,
                VatError::TaxFreeExceedsTotal {
                    tax_free: Money::krw(101),
                    total: Money::krw(100),
                },
            ),
            (Money::krw(100), usd(0), None, usd_krw_mismatch),
            (Money::krw(100), Money::krw(0), Some(usd(0)), krw_usd_mismatch),
            (
                Money::krw(100),
                Money::krw(0),
                Some(Money::krw(-1)),
                VatError::VatNegative { vat: Money::krw(-1) },
            ),
            (
                Money::krw(10_000),
                Money::krw(9_000),
                Some(Money::krw(2_000)),
                VatError::VatExceedsTaxable {
                    vat: Money::krw(2_000),
                    taxable: Money::krw(1_000),
                },
            ),
            (
                Money::krw(10_000),
                Money::krw(10_000),
                Some(Money::krw(1)),
                VatError::VatExceedsTaxable {
                    vat: Money::krw(1),
                    taxable: Money::krw(0),
                },
            ),
        ];
        for (total, tax_free, explicit_vat, expected) in cases {
            let result = match explicit_vat {
                Some(vat) => VatSplit::with_explicit_vat(total, tax_free, vat),
                None => VatSplit::compute(total, tax_free),
            };
            assert_eq!(result, Err(expected), "{total:?} {tax_free:?} {explicit_vat:?}");
        }
    }

    #[test]
    fn error_messages_show_amounts() {
        let error = VatSplit::with_explicit_vat(Money::krw(10_000), Money::krw(9_000), Money::krw(2_000))
            .expect_err("VAT above taxable amount is rejected");
        assert_eq!(error.to_string(), "VAT 2,000 KRW exceeds taxable amount 1,000 KRW");
        let error = VatSplit::compute(Money::krw(1), Money::new(0, Currency::Usd)).expect_err("currencies differ");
        assert_eq!(error.to_string(), "cannot combine USD with KRW: currencies differ");
    }

    /// A total in 1..=10^12 with a tax-free part in 0..=total.
    fn total_and_tax_free() -> impl Strategy<Value = (i64, i64)> {
        (1_i64..=1_000_000_000_000).prop_flat_map(|total_minor| (Just(total_minor), 0..=total_minor))
    }

    proptest! {
        #[test]
        fn computed_parts_are_non_negative_and_sum_to_total(
            (total_minor, tax_free_minor) in total_and_tax_free(),
            currency in proptest::sample::select(Currency::ALL.to_vec()),
        ) {
            let split = VatSplit::compute(Money::new(total_minor, currency), Money::new(tax_free_minor, currency))
                .unwrap();
            let (vat_minor, supplied_minor) = (split.vat().amount_minor(), split.supplied().amount_minor());
            prop_assert!(vat_minor >= 0 && supplied_minor >= 0);
            prop_assert_eq!(supplied_minor + vat_minor + tax_free_minor, total_minor);
            prop_assert_eq!(vat_minor, reference_vat_minor(total_minor - tax_free_minor));
            prop_assert_eq!(split.vat().currency(), currency);
            prop_assert_eq!(split.supplied().currency(), currency);
        }

        #[test]
        fn explicit_vat_within_taxable_always_splits(
            ((total_minor, tax_free_minor), vat_permille) in (total_and_tax_free(), 0_i64..=1_000),
        ) {
            let taxable_minor = total_minor - tax_free_minor;
            let vat_minor = taxable_minor * vat_permille / 1_000;
            let split =
                VatSplit::with_explicit_vat(Money::krw(total_minor), Money::krw(tax_free_minor), Money::krw(vat_minor))
                    .unwrap();
            prop_assert_eq!(split.vat(), Money::krw(vat_minor));
            prop_assert_eq!(split.supplied(), Money::krw(taxable_minor - vat_minor));
            prop_assert!(split.parts_add_up());
        }

        #[test]
        fn explicit_vat_above_taxable_is_rejected(
            ((total_minor, tax_free_minor), excess_minor) in (total_and_tax_free(), 1_i64..=1_000_000),
        ) {
            let taxable_minor = total_minor - tax_free_minor;
            let vat = Money::krw(taxable_minor + excess_minor);
            let result = VatSplit::with_explicit_vat(Money::krw(total_minor), Money::krw(tax_free_minor), vat);
            prop_assert_eq!(result, Err(VatError::VatExceedsTaxable { vat, taxable: Money::krw(taxable_minor) }));
        }
    }
}
