//! Bank methods' vocabulary and rules: bank codes as Toss Payments writes them, a virtual account's validity,
//! its statuses (`refundStatus`, `settlementStatus`), and the rule that decides what a deposit does.
//!
//! The rules here are the documented decisions of issue 12 (`docs/toss-reference.md` §10–20 for what Toss does):
//! - a virtual account is valid for `validHours` (default 168, at most 2,160: Toss's current reference) or until a
//!   `dueDate` at most 90 days after the request;
//! - a deposit is applied only if the payment still awaits it, before the due date, for exactly the amount; any other
//!   deposit is refunded whole to the depositor (never half-accepted, never kept).

use crate::money::Money;
use crate::time::UnixMillis;

/// A bank or securities company in Toss's institution table: its two-character code (what answers carry), its
/// Korean short name and its English code (what requests may also send).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Bank {
    code: &'static str,
    korean: &'static str,
    english: &'static str,
    name: &'static str,
    issues_virtual_accounts: bool,
}

macro_rules! banks {
    ($($code:literal, $korean:literal, $english:literal, $name:literal, $va:literal;)*) => {
        /// Toss's bank table (docs/toss-reference.md §15). `true`: the bank issues virtual accounts.
        pub const BANKS: &[Bank] = &[$(Bank {
            code: $code,
            korean: $korean,
            english: $english,
            name: $name,
            issues_virtual_accounts: $va,
        }),*];
    };
}

banks! {
    "39", "경남", "KYONGNAMBANK", "경남은행", true;
    "34", "광주", "GWANGJUBANK", "광주은행", true;
    "12", "단위농협", "LOCALNONGHYEOP", "지역농·축협", false;
    "32", "부산", "BUSANBANK", "부산은행", true;
    "45", "새마을", "SAEMAUL", "새마을금고", true;
    "64", "산림", "SANLIM", "산림조합", false;
    "88", "신한", "SHINHAN", "신한은행", true;
    "48", "신협", "SHINHYEOP", "신협", false;
    "27", "씨티", "CITI", "씨티은행", false;
    "20", "우리", "WOORI", "우리은행", true;
    "71", "우체국", "POST", "우체국예금보험", true;
    "50", "저축", "SAVINGBANK", "저축은행중앙회", false;
    "37", "전북", "JEONBUKBANK", "전북은행", true;
    "35", "제주", "JEJUBANK", "제주은행", false;
    "90", "카카오", "KAKAOBANK", "카카오뱅크", false;
    "89", "케이", "KBANK", "케이뱅크", true;
    "92", "토스", "TOSSBANK", "토스뱅크", false;
    "81", "하나", "HANA", "하나은행", true;
    "54", "HSBC", "HSBC", "홍콩상하이은행", false;
    "31", "대구", "DAEGUBANK", "DGB대구은행", true;
    "03", "기업", "IBK", "IBK기업은행", true;
    "06", "국민", "KOOKMIN", "KB국민은행", true;
    "02", "산업", "KDBBANK", "KDB산업은행", false;
    "11", "농협", "NONGHYEOP", "NH농협은행", true;
    "23", "SC제일", "SC", "SC제일은행", false;
    "07", "수협", "SUHYEOP", "Sh수협은행", true;
}

impl Bank {
    /// A bank by its code, Korean short name or English code, as Toss's requests send it (`"20"`, `"우리"`,
    /// `"WOORI"`); `None` for anything else. Toss's SDK spells two English codes differently (`KDB`, `SHINHYUP`);
    /// they are accepted too.
    pub fn parse(text: &str) -> Option<Bank> {
        let text = match text {
            "KDB" => "KDBBANK",
            "SHINHYUP" => "SHINHYEOP",
            other => other,
        };
        BANKS
            .iter()
            .find(|b| b.code == text || b.korean == text || b.english == text)
            .copied()
    }

    /// The two-character code every answer carries (`virtualAccount.bankCode`).
    pub fn code(&self) -> &'static str {
        self.code
    }

    pub fn korean(&self) -> &'static str {
        self.korean
    }

    pub fn english(&self) -> &'static str {
        self.english
    }

    /// The bank's full name, as a buyer reads it.
    pub fn name(&self) -> &'static str {
        self.name
    }

    pub fn issues_virtual_accounts(&self) -> bool {
        self.issues_virtual_accounts
    }

    /// The banks that issue virtual accounts, in table order (the hosted page's choices).
    pub fn virtual_account_issuers() -> impl Iterator<Item = Bank> {
        BANKS.iter().copied().filter(Bank::issues_virtual_accounts)
    }
}

/// How long a virtual account accepts its deposit, as the merchant asked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Validity {
    /// `validHours`: hours from issuance.
    Hours(u32),
    /// `dueDate`: a fixed deadline.
    Until(UnixMillis),
}

/// Why a requested validity is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ValidityError {
    #[error("validHours must be between 1 and {max}", max = Validity::HOURS_MAX)]
    HoursOutOfRange,
    #[error("dueDate must be in the future and at most {max} days after the request", max = Validity::DAYS_MAX)]
    DueDateOutOfRange,
}

impl Validity {
    pub const HOURS_DEFAULT: u32 = 168;
    pub const HOURS_MAX: u32 = 2_160;
    pub const DAYS_MAX: u64 = 90;
    const HOUR_SECS: u64 = 3_600;

    /// The deadline of an account issued at `now`.
    pub fn due_at(self, now: UnixMillis) -> Result<UnixMillis, ValidityError> {
        match self {
            Validity::Hours(hours) => {
                if hours == 0 || hours > Validity::HOURS_MAX {
                    return Err(ValidityError::HoursOutOfRange);
                }
                Ok(now.saturating_add_secs(u64::from(hours) * Validity::HOUR_SECS))
            }
            Validity::Until(due) => {
                let latest = now.saturating_add_secs(Validity::DAYS_MAX * 24 * Validity::HOUR_SECS);
                if due <= now || due > latest {
                    return Err(ValidityError::DueDateOutOfRange);
                }
                Ok(due)
            }
        }
    }
}

/// Toss's `virtualAccount.refundStatus`: where a refund to the buyer stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RefundStatus {
    None,
    Pending,
    Failed,
    PartialFailed,
    Completed,
}

impl RefundStatus {
    pub const ALL: [RefundStatus; 5] = [
        RefundStatus::None,
        RefundStatus::Pending,
        RefundStatus::Failed,
        RefundStatus::PartialFailed,
        RefundStatus::Completed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RefundStatus::None => "NONE",
            RefundStatus::Pending => "PENDING",
            RefundStatus::Failed => "FAILED",
            RefundStatus::PartialFailed => "PARTIAL_FAILED",
            RefundStatus::Completed => "COMPLETED",
        }
    }

    pub fn parse(text: &str) -> Option<RefundStatus> {
        RefundStatus::ALL.into_iter().find(|s| s.as_str() == text)
    }
}

/// Toss's `virtualAccount.settlementStatus`: whether the deposit was settled to the merchant.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SettlementStatus {
    Incompleted,
    Completed,
}

impl SettlementStatus {
    pub const ALL: [SettlementStatus; 2] = [SettlementStatus::Incompleted, SettlementStatus::Completed];

    pub fn as_str(self) -> &'static str {
        match self {
            SettlementStatus::Incompleted => "INCOMPLETED",
            SettlementStatus::Completed => "COMPLETED",
        }
    }

    pub fn parse(text: &str) -> Option<SettlementStatus> {
        SettlementStatus::ALL.into_iter().find(|s| s.as_str() == text)
    }
}

/// What a virtual account waits for: the exact amount, before the due date.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AwaitedDeposit {
    pub amount: Money,
    pub due_at: UnixMillis,
    /// Whether the payment still waits (`WAITING_FOR_DEPOSIT`); false once paid, cancelled or expired.
    pub waiting: bool,
}

/// Why a deposit is sent back to its depositor.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DepositRefundReason {
    /// Not the payment's amount (more or less): paygate never half-accepts.
    WrongAmount,
    /// After the due date.
    AfterDueDate,
    /// The payment no longer waits (already paid, cancelled or expired).
    NotWaiting,
}

impl DepositRefundReason {
    pub const ALL: [DepositRefundReason; 3] = [
        DepositRefundReason::WrongAmount,
        DepositRefundReason::AfterDueDate,
        DepositRefundReason::NotWaiting,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            DepositRefundReason::WrongAmount => "WRONG_AMOUNT",
            DepositRefundReason::AfterDueDate => "AFTER_DUE_DATE",
            DepositRefundReason::NotWaiting => "NOT_WAITING",
        }
    }

    pub fn parse(text: &str) -> Option<DepositRefundReason> {
        DepositRefundReason::ALL.into_iter().find(|r| r.as_str() == text)
    }
}

/// What one deposit (identified by the bank's deposit ID, applied once whatever the number of notifications) does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DepositDecision {
    /// The payment becomes `DONE` at the deposit's time.
    Apply,
    /// The whole deposit goes back to the depositor; the payment does not change.
    Refund(DepositRefundReason),
}

/// The deposit rule. A deposit at exactly the due time is late (the deadline is exclusive, like the payment's
/// other deadlines).
pub fn decide_deposit(awaited: AwaitedDeposit, amount: Money, deposited_at: UnixMillis) -> DepositDecision {
    if !awaited.waiting {
        return DepositDecision::Refund(DepositRefundReason::NotWaiting);
    }
    if deposited_at >= awaited.due_at {
        return DepositDecision::Refund(DepositRefundReason::AfterDueDate);
    }
    if amount != awaited.amount {
        return DepositDecision::Refund(DepositRefundReason::WrongAmount);
    }
    DepositDecision::Apply
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn banks_parse_from_each_spelling_and_answer_with_the_code() {
        for text in ["20", "우리", "WOORI"] {
            assert_eq!(Bank::parse(text).unwrap().code(), "20", "{text}");
        }
        assert_eq!(Bank::parse("KDB").unwrap().code(), "02");
        assert_eq!(Bank::parse("SHINHYUP").unwrap().code(), "48");
        // Toss's 국민 is 06, not the clearing house's 004.
        assert_eq!(Bank::parse("국민").unwrap().code(), "06");
        for bad in ["", "04", "004", "woori", "우리은행", "99"] {
            assert_eq!(Bank::parse(bad), None, "{bad}");
        }
        let mut codes: Vec<&str> = BANKS.iter().map(Bank::code).collect();
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes.len(), BANKS.len(), "codes are unique");
        assert!(codes
            .iter()
            .all(|c| c.len() == 2 && c.bytes().all(|b| b.is_ascii_digit())));
        let issuers: Vec<&str> = Bank::virtual_account_issuers().map(|b| b.korean()).collect();
        assert_eq!(issuers.len(), 15, "Toss's list of virtual-account banks: {issuers:?}");
        assert!(!Bank::parse("카카오").unwrap().issues_virtual_accounts());
    }

    #[test]
    fn validity_bounds() {
        let now = UnixMillis::new(1_000);
        let hour = 3_600_000;
        assert_eq!(Validity::Hours(1).due_at(now), Ok(UnixMillis::new(1_000 + hour)));
        assert_eq!(
            Validity::Hours(Validity::HOURS_MAX).due_at(now),
            Ok(UnixMillis::new(1_000 + 2_160 * hour))
        );
        assert_eq!(Validity::Hours(0).due_at(now), Err(ValidityError::HoursOutOfRange));
        assert_eq!(Validity::Hours(2_161).due_at(now), Err(ValidityError::HoursOutOfRange));
        let ninety_days = UnixMillis::new(1_000 + 90 * 24 * hour);
        assert_eq!(Validity::Until(ninety_days).due_at(now), Ok(ninety_days));
        assert_eq!(
            Validity::Until(UnixMillis::new(1_001 + 90 * 24 * hour)).due_at(now),
            Err(ValidityError::DueDateOutOfRange)
        );
        assert_eq!(Validity::Until(now).due_at(now), Err(ValidityError::DueDateOutOfRange));
    }

    #[test]
    fn statuses_round_trip() {
        for s in RefundStatus::ALL {
            assert_eq!(RefundStatus::parse(s.as_str()), Some(s));
        }
        for s in SettlementStatus::ALL {
            assert_eq!(SettlementStatus::parse(s.as_str()), Some(s));
        }
        for r in DepositRefundReason::ALL {
            assert_eq!(DepositRefundReason::parse(r.as_str()), Some(r));
        }
        assert_eq!(RefundStatus::parse("none"), None);
    }

    #[test]
    fn the_deposit_rule() {
        let awaited = AwaitedDeposit {
            amount: Money::krw(15_000),
            due_at: UnixMillis::new(10_000),
            waiting: true,
        };
        let at = UnixMillis::new(9_999);
        assert_eq!(decide_deposit(awaited, Money::krw(15_000), at), DepositDecision::Apply);
        for wrong in [14_999, 15_001, 30_000, 1] {
            assert_eq!(
                decide_deposit(awaited, Money::krw(wrong), at),
                DepositDecision::Refund(DepositRefundReason::WrongAmount),
                "{wrong}"
            );
        }
        assert_eq!(
            decide_deposit(awaited, Money::krw(15_000), UnixMillis::new(10_000)),
            DepositDecision::Refund(DepositRefundReason::AfterDueDate),
            "the deadline is exclusive"
        );
        let paid = AwaitedDeposit {
            waiting: false,
            ..awaited
        };
        assert_eq!(
            decide_deposit(paid, Money::krw(15_000), at),
            DepositDecision::Refund(DepositRefundReason::NotWaiting),
            "a second deposit of the right amount is refunded too"
        );
    }
}
