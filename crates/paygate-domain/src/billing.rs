//! Billing keys (빌링키, 자동결제): a card a customer registered once with a merchant, which the merchant then charges
//! without the buyer (merchant-initiated: subscriptions, instalments of a contract, usage billing).
//!
//! A key is bound to its merchant, its mode and the merchant's `customerKey`: a charge must name the same customer,
//! and nothing of another merchant or mode can reach it. The card itself is sealed in the vault beside the key (the
//! store keeps it); the key only knows the card's BIN, last four digits and the masked number, and what the issuer
//! said about the card when it was registered. Keys are changed only by the transitions below, each of which yields
//! the next version: the store writes it conditionally on the version it came from.

use crate::api_key::Mode;
use crate::card::{CardSummary, CardType, OwnerType};
use crate::id::{BillingKeyId, MerchantId};
use crate::time::UnixMillis;

/// The merchant's name for its customer: what a billing key belongs to. Toss's rules: 2 to 300 characters of
/// `A-Z a-z 0-9 - _ = . @`. It should be unguessable (a UUID), never an email address or a phone number.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct CustomerKey(String);

pub const CUSTOMER_KEY_LEN_MIN: usize = 2;
pub const CUSTOMER_KEY_LEN_MAX: usize = 300;

#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CustomerKeyError {
    #[error("customerKey must be {CUSTOMER_KEY_LEN_MIN} to {CUSTOMER_KEY_LEN_MAX} characters")]
    Length,
    #[error("customerKey may contain only letters, digits and - _ = . @")]
    Characters,
}

impl CustomerKey {
    pub fn parse(text: &str) -> Result<CustomerKey, CustomerKeyError> {
        if !(CUSTOMER_KEY_LEN_MIN..=CUSTOMER_KEY_LEN_MAX).contains(&text.len()) {
            return Err(CustomerKeyError::Length);
        }
        let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '=' | '.' | '@');
        if !text.chars().all(allowed) {
            return Err(CustomerKeyError::Characters);
        }
        Ok(CustomerKey(text.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for CustomerKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CustomerKey({})", self.0)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BillingKeyStatus {
    /// Can be charged.
    Active,
    /// Deleted by the merchant: never charged again, and its sealed card is erased.
    Deleted,
}

impl BillingKeyStatus {
    pub const ALL: [BillingKeyStatus; 2] = [BillingKeyStatus::Active, BillingKeyStatus::Deleted];

    pub fn as_str(self) -> &'static str {
        match self {
            BillingKeyStatus::Active => "ACTIVE",
            BillingKeyStatus::Deleted => "DELETED",
        }
    }

    pub fn parse(text: &str) -> Option<BillingKeyStatus> {
        BillingKeyStatus::ALL.into_iter().find(|s| s.as_str() == text)
    }
}

/// How the card was registered.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Registration {
    /// The merchant sent the card (`POST /v1/billing/authorizations/card`).
    KeyIn,
    /// The buyer typed the card on paygate's registration page and passed the issuer's authentication.
    Authenticated,
}

impl Registration {
    pub const ALL: [Registration; 2] = [Registration::KeyIn, Registration::Authenticated];

    pub fn as_str(self) -> &'static str {
        match self {
            Registration::KeyIn => "KEY_IN",
            Registration::Authenticated => "AUTHENTICATED",
        }
    }

    pub fn parse(text: &str) -> Option<Registration> {
        Registration::ALL.into_iter().find(|r| r.as_str() == text)
    }
}

/// What the issuer said about the card when it was registered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CardFacts {
    /// Toss's card-company code of the issuer (발급사).
    pub issuer_code: String,
    /// Toss's card-company code of the acquirer (매입사) that verified the card.
    pub acquirer_code: String,
    pub card_type: CardType,
    pub owner_type: OwnerType,
}

/// What a billing key holds, as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BillingKeyFields {
    pub id: BillingKeyId,
    pub merchant_id: MerchantId,
    pub mode: Mode,
    pub customer_key: CustomerKey,
    pub status: BillingKeyStatus,
    pub registration: Registration,
    pub card: CardSummary,
    pub facts: CardFacts,
    pub customer_name: Option<String>,
    pub customer_email: Option<String>,
    /// When the card was verified with the issuer (Toss's `authenticatedAt`).
    pub authenticated_at: UnixMillis,
    pub deleted_at: Option<UnixMillis>,
    /// Every change is conditional on it.
    pub version: i64,
}

/// A registered card. Read through its fields (it dereferences to them); changed only by its transitions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BillingKey(BillingKeyFields);

impl std::ops::Deref for BillingKey {
    type Target = BillingKeyFields;

    fn deref(&self) -> &BillingKeyFields {
        &self.0
    }
}

/// Why a billing key refused a change or a charge.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BillingRuleError {
    #[error("the billing key was deleted")]
    Deleted,
    #[error("the customerKey is not the one the billing key was issued to")]
    CustomerKeyMismatch,
}

/// What a payment charged through a billing key remembers of it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BillingCharge {
    pub billing_key_id: BillingKeyId,
    pub customer_key: CustomerKey,
}

/// A new key's parts, as the use case decided them.
#[derive(Clone, Debug)]
pub struct NewBillingKey {
    pub id: BillingKeyId,
    pub merchant_id: MerchantId,
    pub mode: Mode,
    pub customer_key: CustomerKey,
    pub registration: Registration,
    pub card: CardSummary,
    pub facts: CardFacts,
    pub customer_name: Option<String>,
    pub customer_email: Option<String>,
    pub now: UnixMillis,
}

impl BillingKey {
    /// A key issued now for a card the issuer verified.
    pub fn issue(new: NewBillingKey) -> BillingKey {
        BillingKey(BillingKeyFields {
            id: new.id,
            merchant_id: new.merchant_id,
            mode: new.mode,
            customer_key: new.customer_key,
            status: BillingKeyStatus::Active,
            registration: new.registration,
            card: new.card,
            facts: new.facts,
            customer_name: new.customer_name,
            customer_email: new.customer_email,
            authenticated_at: new.now,
            deleted_at: None,
            version: 1,
        })
    }

    /// A key as stored.
    pub fn restore(fields: BillingKeyFields) -> BillingKey {
        BillingKey(fields)
    }

    /// May `customer_key` charge this key now?
    pub fn check_charge(&self, customer_key: &CustomerKey) -> Result<(), BillingRuleError> {
        if self.status == BillingKeyStatus::Deleted {
            return Err(BillingRuleError::Deleted);
        }
        if self.customer_key != *customer_key {
            return Err(BillingRuleError::CustomerKeyMismatch);
        }
        Ok(())
    }

    /// Deletes the key: the next version, DELETED. Deleting a deleted key is refused (the caller answers it as
    /// done without a second event).
    pub fn delete(&self, now: UnixMillis) -> Result<BillingKey, BillingRuleError> {
        if self.status == BillingKeyStatus::Deleted {
            return Err(BillingRuleError::Deleted);
        }
        let mut next = self.0.clone();
        next.status = BillingKeyStatus::Deleted;
        next.deleted_at = Some(now);
        next.version = self.version.saturating_add(1);
        Ok(BillingKey(next))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn key() -> BillingKey {
        BillingKey::issue(NewBillingKey {
            id: BillingKeyId::new(UnixMillis::new(1), [1; 10]),
            merchant_id: MerchantId::new(UnixMillis::new(1), [2; 10]),
            mode: Mode::Test,
            customer_key: CustomerKey::parse("customer-0001").unwrap(),
            registration: Registration::KeyIn,
            card: CardSummary {
                bin: "433000".into(),
                last4: "0003".into(),
                masked: "433000******0003".into(),
            },
            facts: CardFacts {
                issuer_code: "11".into(),
                acquirer_code: "11".into(),
                card_type: CardType::Credit,
                owner_type: OwnerType::Personal,
            },
            customer_name: None,
            customer_email: None,
            now: UnixMillis::new(10),
        })
    }

    #[test]
    fn customer_keys_follow_toss_rules() {
        for good in [
            "ab",
            "customer_01=.@-",
            &"a".repeat(300),
            "2d5f9c1e-6b1a-4d8e-9f3a-1c2b3d4e5f60",
        ] {
            assert!(CustomerKey::parse(good).is_ok(), "{good}");
        }
        assert_eq!(CustomerKey::parse("a").unwrap_err(), CustomerKeyError::Length);
        assert_eq!(
            CustomerKey::parse(&"a".repeat(301)).unwrap_err(),
            CustomerKeyError::Length
        );
        for bad in ["has space", "한글키", "a/b", "a+b", "a#b"] {
            assert_eq!(
                CustomerKey::parse(bad).unwrap_err(),
                CustomerKeyError::Characters,
                "{bad}"
            );
        }
    }

    #[test]
    fn a_key_charges_for_its_customer_until_deleted() {
        let key = key();
        let own = CustomerKey::parse("customer-0001").unwrap();
        let other = CustomerKey::parse("customer-0002").unwrap();
        assert_eq!(key.check_charge(&own), Ok(()));
        assert_eq!(key.check_charge(&other), Err(BillingRuleError::CustomerKeyMismatch));
        let deleted = key.delete(UnixMillis::new(20)).unwrap();
        assert_eq!((deleted.status, deleted.version), (BillingKeyStatus::Deleted, 2));
        assert_eq!(deleted.deleted_at, Some(UnixMillis::new(20)));
        assert_eq!(deleted.check_charge(&own), Err(BillingRuleError::Deleted));
        assert_eq!(deleted.delete(UnixMillis::new(30)), Err(BillingRuleError::Deleted));
        assert_eq!(key.version, 1, "the old value is untouched");
    }

    #[test]
    fn names_round_trip() {
        for s in BillingKeyStatus::ALL {
            assert_eq!(BillingKeyStatus::parse(s.as_str()), Some(s));
        }
        for r in Registration::ALL {
            assert_eq!(Registration::parse(r.as_str()), Some(r));
        }
        assert_eq!(BillingKeyStatus::parse("active"), None);
    }
}
