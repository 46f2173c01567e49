//! Merchants (가맹점).

use crate::event::NotificationFormat;
use crate::id::MerchantId;
use crate::time::UnixMillis;

/// Whether a merchant may transact. Suspension is reversible; termination is not.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MerchantStatus {
    Active,
    Suspended,
    Terminated,
}

impl MerchantStatus {
    pub const ALL: [MerchantStatus; 3] = [
        MerchantStatus::Active,
        MerchantStatus::Suspended,
        MerchantStatus::Terminated,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            MerchantStatus::Active => "ACTIVE",
            MerchantStatus::Suspended => "SUSPENDED",
            MerchantStatus::Terminated => "TERMINATED",
        }
    }

    pub fn parse(text: &str) -> Option<MerchantStatus> {
        match text {
            "ACTIVE" => Some(MerchantStatus::Active),
            "SUSPENDED" => Some(MerchantStatus::Suspended),
            "TERMINATED" => Some(MerchantStatus::Terminated),
            _ => None,
        }
    }

    pub fn may_transact(self) -> bool {
        matches!(self, MerchantStatus::Active)
    }
}

/// A merchant's display name: trimmed, 1 to 100 characters, no control characters.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct MerchantName(String);

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum MerchantNameError {
    #[error("the merchant name must not be empty")]
    Empty,
    #[error("the merchant name must be at most {max} characters", max = MerchantName::MAX_CHARS)]
    TooLong,
    #[error("the merchant name must not contain control characters")]
    ControlCharacter,
}

impl MerchantName {
    pub const MAX_CHARS: usize = 100;

    pub fn parse(text: &str) -> Result<MerchantName, MerchantNameError> {
        let trimmed = text.trim();
        if trimmed.is_empty() {
            return Err(MerchantNameError::Empty);
        }
        if trimmed.chars().count() > Self::MAX_CHARS {
            return Err(MerchantNameError::TooLong);
        }
        if trimmed.chars().any(char::is_control) {
            return Err(MerchantNameError::ControlCharacter);
        }
        Ok(MerchantName(trimmed.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Merchant {
    pub id: MerchantId,
    pub name: MerchantName,
    pub status: MerchantStatus,
    pub created_at: UnixMillis,
}

/// A merchant's defaults for one mode.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MerchantSettings {
    pub notification_url: Option<String>,
    pub notification_format: NotificationFormat,
    /// Origins (`scheme://host[:port]`, lowercase) that client-key payments may send the browser back to.
    pub redirect_origins: Vec<String>,
}

impl MerchantSettings {
    /// The stored form of `redirect_origins`: one per line (an origin holds no line break).
    pub fn redirect_origins_text(&self) -> String {
        self.redirect_origins.join("\n")
    }

    pub fn parse_redirect_origins(text: &str) -> Vec<String> {
        text.lines().filter(|l| !l.is_empty()).map(str::to_owned).collect()
    }
}

impl Default for MerchantSettings {
    fn default() -> Self {
        MerchantSettings {
            notification_url: None,
            notification_format: NotificationFormat::Form,
            redirect_origins: Vec::new(),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        let cases: &[(&str, Result<&str, MerchantNameError>)] = &[
            ("  Coffee 상점 ", Ok("Coffee 상점")),
            ("", Err(MerchantNameError::Empty)),
            ("   ", Err(MerchantNameError::Empty)),
            ("a\u{7}b", Err(MerchantNameError::ControlCharacter)),
        ];
        for (input, expected) in cases {
            let got = MerchantName::parse(input);
            assert_eq!(
                got.as_ref().map(MerchantName::as_str),
                expected.as_ref().map(|s| *s),
                "{input:?}"
            );
        }
        assert_eq!(
            MerchantName::parse(&"가".repeat(100)).unwrap().as_str().chars().count(),
            100
        );
        assert_eq!(
            MerchantName::parse(&"가".repeat(101)).unwrap_err(),
            MerchantNameError::TooLong
        );
    }

    #[test]
    fn statuses_round_trip() {
        for status in [
            MerchantStatus::Active,
            MerchantStatus::Suspended,
            MerchantStatus::Terminated,
        ] {
            assert_eq!(MerchantStatus::parse(status.as_str()), Some(status));
        }
        assert!(MerchantStatus::Active.may_transact());
        assert!(!MerchantStatus::Suspended.may_transact());
    }
}

/// What a merchant's receipts print and its cash receipts are issued under (사업자 정보), set by an operator.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BusinessProfile {
    pub merchant_id: MerchantId,
    /// 사업자등록번호: 10 digits with its check digit.
    pub business_number: String,
    /// 대표자명.
    pub representative: String,
    /// 사업장 주소.
    pub address: String,
    pub updated_at: UnixMillis,
}

/// Why a business profile is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BusinessProfileError {
    #[error("the business registration number must be 10 digits with a valid check digit")]
    BusinessNumber,
    #[error("the representative's name must be 1 to 50 characters")]
    Representative,
    #[error("the address must be 1 to 200 characters")]
    Address,
}

impl BusinessProfile {
    pub fn parse(
        merchant_id: MerchantId,
        business_number: &str,
        representative: &str,
        address: &str,
        now: UnixMillis,
    ) -> Result<BusinessProfile, BusinessProfileError> {
        let number: String = business_number.chars().filter(|c| *c != '-' && *c != ' ').collect();
        if !crate::cash_receipt::business_number_checks(&number) {
            return Err(BusinessProfileError::BusinessNumber);
        }
        let text = |value: &str, max: usize| {
            let value = value.trim();
            let count = value.chars().count();
            (count > 0 && count <= max && !value.chars().any(char::is_control)).then(|| value.to_owned())
        };
        Ok(BusinessProfile {
            merchant_id,
            business_number: number,
            representative: text(representative, 50).ok_or(BusinessProfileError::Representative)?,
            address: text(address, 200).ok_or(BusinessProfileError::Address)?,
            updated_at: now,
        })
    }

    /// `120-81-47521`, as receipts print it.
    pub fn business_number_display(&self) -> String {
        let n = &self.business_number;
        match (n.get(..3), n.get(3..5), n.get(5..)) {
            (Some(a), Some(b), Some(c)) => format!("{a}-{b}-{c}"),
            _ => n.clone(),
        }
    }
}
