//! A billing-key registration on paygate's page (빌링키 인증창): the buyer types the card, answers the issuer's
//! challenge, and comes back to the merchant's `successUrl` with a one-time `authKey`, which the merchant's server
//! exchanges for the billing key (`POST /v1/billing/authorizations/issue`).
//!
//! ```text
//! READY ──card──▶ CHALLENGED ──right OTP, card verified──▶ AUTHENTICATED ──issue──▶ ISSUED
//!   │                 │  (wrong OTP: tries counted)             │
//!   └──── expires ────┴──── no try left, declined ──▶ FAILED   └── not issued in time ──▶ EXPIRED
//! ```
//!
//! The registration is read through its fields (it dereferences to them) and changed only by the transitions
//! below, each yielding the next version: the store writes it conditionally on the version it came from, so of
//! concurrent answers to the challenge only one is counted per version, and the `authKey` is exchanged once.

use crate::api_key::Mode;
use crate::billing::{CardFacts, CustomerKey};
use crate::card::CardSummary;
use crate::id::{BillingAuthId, BillingKeyId, MerchantId};
use crate::time::UnixMillis;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BillingAuthStatus {
    /// Waiting for the buyer's card.
    Ready,
    /// The card was entered; the issuer's one-time code is awaited.
    Challenged,
    /// The buyer authenticated and the issuer accepted the card: the merchant may exchange the `authKey`.
    Authenticated,
    /// The billing key was issued.
    Issued,
    /// The buyer could not authenticate, or the issuer refused the card.
    Failed,
    /// Nobody finished in time.
    Expired,
}

impl BillingAuthStatus {
    pub const ALL: [BillingAuthStatus; 6] = [
        BillingAuthStatus::Ready,
        BillingAuthStatus::Challenged,
        BillingAuthStatus::Authenticated,
        BillingAuthStatus::Issued,
        BillingAuthStatus::Failed,
        BillingAuthStatus::Expired,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            BillingAuthStatus::Ready => "READY",
            BillingAuthStatus::Challenged => "CHALLENGED",
            BillingAuthStatus::Authenticated => "AUTHENTICATED",
            BillingAuthStatus::Issued => "ISSUED",
            BillingAuthStatus::Failed => "FAILED",
            BillingAuthStatus::Expired => "EXPIRED",
        }
    }

    pub fn parse(text: &str) -> Option<BillingAuthStatus> {
        BillingAuthStatus::ALL.into_iter().find(|s| s.as_str() == text)
    }

    /// Nothing can happen to the registration any more.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            BillingAuthStatus::Issued | BillingAuthStatus::Failed | BillingAuthStatus::Expired
        )
    }
}

/// What a registration holds, as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BillingAuthFields {
    pub id: BillingAuthId,
    pub merchant_id: MerchantId,
    pub mode: Mode,
    pub customer_key: CustomerKey,
    pub success_url: String,
    pub fail_url: String,
    pub customer_name: Option<String>,
    pub customer_email: Option<String>,
    pub status: BillingAuthStatus,
    /// The card entered (BIN, last four, masked), once there is one.
    pub card: Option<CardSummary>,
    /// What the issuer said about the card, once it accepted it.
    pub facts: Option<CardFacts>,
    /// SHA-256 of the challenge's one-time code; never the code itself.
    pub challenge_otp_hash: Option<Vec<u8>>,
    pub challenge_attempts: u32,
    pub challenge_expires_at: Option<UnixMillis>,
    /// SHA-256 of the `authKey` given to the merchant; never the key itself.
    pub auth_key_hash: Option<Vec<u8>>,
    pub billing_key_id: Option<BillingKeyId>,
    /// Why it failed: a stable code (a decline's, or `AUTHENTICATION_FAILED`).
    pub failure_code: Option<String>,
    /// The deadline of the current state: the buyer's, then the merchant's exchange.
    pub expires_at: UnixMillis,
    pub created_at: UnixMillis,
    pub version: i64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BillingAuth(BillingAuthFields);

impl std::ops::Deref for BillingAuth {
    type Target = BillingAuthFields;

    fn deref(&self) -> &BillingAuthFields {
        &self.0
    }
}

/// Why a registration refused a change.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BillingAuthError {
    #[error("the registration is {}", .0.as_str())]
    WrongStatus(BillingAuthStatus),
    #[error("the registration's deadline passed")]
    Expired,
    #[error("the customerKey is not the registration's")]
    CustomerKeyMismatch,
}

/// A new registration's parts.
#[derive(Clone, Debug)]
pub struct NewBillingAuth {
    pub id: BillingAuthId,
    pub merchant_id: MerchantId,
    pub mode: Mode,
    pub customer_key: CustomerKey,
    pub success_url: String,
    pub fail_url: String,
    pub customer_name: Option<String>,
    pub customer_email: Option<String>,
    pub now: UnixMillis,
    pub expires_at: UnixMillis,
}

impl BillingAuth {
    pub fn start(new: NewBillingAuth) -> BillingAuth {
        BillingAuth(BillingAuthFields {
            id: new.id,
            merchant_id: new.merchant_id,
            mode: new.mode,
            customer_key: new.customer_key,
            success_url: new.success_url,
            fail_url: new.fail_url,
            customer_name: new.customer_name,
            customer_email: new.customer_email,
            status: BillingAuthStatus::Ready,
            card: None,
            facts: None,
            challenge_otp_hash: None,
            challenge_attempts: 0,
            challenge_expires_at: None,
            auth_key_hash: None,
            billing_key_id: None,
            failure_code: None,
            expires_at: new.expires_at,
            created_at: new.now,
            version: 1,
        })
    }

    pub fn restore(fields: BillingAuthFields) -> BillingAuth {
        BillingAuth(fields)
    }

    fn next(&self) -> BillingAuthFields {
        let mut next = self.0.clone();
        next.version = self.version.saturating_add(1);
        next
    }

    /// The status as of `now`: a registration past its deadline that has not finished is expired, even before a
    /// write says so.
    pub fn status_at(&self, now: UnixMillis) -> BillingAuthStatus {
        if !self.status.is_final() && now >= self.expires_at {
            BillingAuthStatus::Expired
        } else {
            self.status
        }
    }

    fn require(&self, allowed: &[BillingAuthStatus], now: UnixMillis) -> Result<(), BillingAuthError> {
        match self.status_at(now) {
            BillingAuthStatus::Expired if self.status != BillingAuthStatus::Expired => Err(BillingAuthError::Expired),
            status if allowed.contains(&status) => Ok(()),
            status => Err(BillingAuthError::WrongStatus(status)),
        }
    }

    /// The buyer entered a card; the issuer's challenge starts (a new card restarts it, with fresh tries).
    pub fn card_entered(
        &self,
        card: CardSummary,
        otp_hash: Vec<u8>,
        challenge_expires_at: UnixMillis,
        now: UnixMillis,
    ) -> Result<BillingAuth, BillingAuthError> {
        self.require(&[BillingAuthStatus::Ready, BillingAuthStatus::Challenged], now)?;
        let mut next = self.next();
        next.status = BillingAuthStatus::Challenged;
        next.card = Some(card);
        next.challenge_otp_hash = Some(otp_hash);
        next.challenge_attempts = 0;
        next.challenge_expires_at = Some(challenge_expires_at);
        Ok(BillingAuth(next))
    }

    /// One answer to the challenge is counted (before it is compared).
    pub fn challenge_attempted(&self, now: UnixMillis) -> Result<BillingAuth, BillingAuthError> {
        self.require(&[BillingAuthStatus::Challenged], now)?;
        let mut next = self.next();
        next.challenge_attempts = next.challenge_attempts.saturating_add(1);
        Ok(BillingAuth(next))
    }

    /// The buyer authenticated and the issuer accepted the card: the merchant has until `exchange_by` to exchange
    /// the `authKey` whose hash is kept.
    pub fn authenticated(
        &self,
        facts: CardFacts,
        auth_key_hash: Vec<u8>,
        exchange_by: UnixMillis,
        now: UnixMillis,
    ) -> Result<BillingAuth, BillingAuthError> {
        self.require(&[BillingAuthStatus::Challenged], now)?;
        let mut next = self.next();
        next.status = BillingAuthStatus::Authenticated;
        next.facts = Some(facts);
        next.auth_key_hash = Some(auth_key_hash);
        next.challenge_otp_hash = None;
        next.expires_at = exchange_by;
        Ok(BillingAuth(next))
    }

    /// No try left, or the issuer refused the card.
    pub fn failed(&self, code: &str, now: UnixMillis) -> Result<BillingAuth, BillingAuthError> {
        self.require(&[BillingAuthStatus::Ready, BillingAuthStatus::Challenged], now)?;
        let mut next = self.next();
        next.status = BillingAuthStatus::Failed;
        next.failure_code = Some(code.to_owned());
        next.challenge_otp_hash = None;
        Ok(BillingAuth(next))
    }

    /// Whether `customer_key` may exchange the `authKey` now.
    pub fn check_exchange(&self, customer_key: &CustomerKey, now: UnixMillis) -> Result<(), BillingAuthError> {
        self.require(&[BillingAuthStatus::Authenticated], now)?;
        if self.customer_key != *customer_key {
            return Err(BillingAuthError::CustomerKeyMismatch);
        }
        Ok(())
    }

    /// The billing key was issued from it.
    pub fn issued(&self, billing_key_id: BillingKeyId, now: UnixMillis) -> Result<BillingAuth, BillingAuthError> {
        self.require(&[BillingAuthStatus::Authenticated], now)?;
        let mut next = self.next();
        next.status = BillingAuthStatus::Issued;
        // The hash stays: the same authKey asked again is answered with the key it issued.
        next.billing_key_id = Some(billing_key_id);
        Ok(BillingAuth(next))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::card::{CardType, OwnerType};

    fn auth() -> BillingAuth {
        BillingAuth::start(NewBillingAuth {
            id: BillingAuthId::new(UnixMillis::new(1), [1; 10]),
            merchant_id: MerchantId::new(UnixMillis::new(1), [2; 10]),
            mode: Mode::Test,
            customer_key: CustomerKey::parse("customer-1").unwrap(),
            success_url: "https://shop.example/ok".into(),
            fail_url: "https://shop.example/fail".into(),
            customer_name: None,
            customer_email: None,
            now: UnixMillis::new(1_000),
            expires_at: UnixMillis::new(10_000),
        })
    }

    fn card() -> CardSummary {
        CardSummary {
            bin: "433000".into(),
            last4: "0003".into(),
            masked: "433000******0003".into(),
        }
    }

    fn facts() -> CardFacts {
        CardFacts {
            issuer_code: "11".into(),
            acquirer_code: "11".into(),
            card_type: CardType::Credit,
            owner_type: OwnerType::Personal,
        }
    }

    #[test]
    fn the_happy_path_issues_once() {
        let now = UnixMillis::new(2_000);
        let challenged = auth()
            .card_entered(card(), vec![1], UnixMillis::new(5_000), now)
            .unwrap();
        let tried = challenged.challenge_attempted(now).unwrap();
        assert_eq!((tried.challenge_attempts, tried.version), (1, 3));
        let done = tried
            .authenticated(facts(), vec![9], UnixMillis::new(20_000), now)
            .unwrap();
        assert_eq!(
            (done.status, done.expires_at),
            (BillingAuthStatus::Authenticated, UnixMillis::new(20_000))
        );
        let own = CustomerKey::parse("customer-1").unwrap();
        assert_eq!(done.check_exchange(&own, UnixMillis::new(15_000)), Ok(()));
        assert_eq!(
            done.check_exchange(&CustomerKey::parse("customer-2").unwrap(), now),
            Err(BillingAuthError::CustomerKeyMismatch)
        );
        let key = BillingKeyId::new(now, [3; 10]);
        let issued = done.issued(key, now).unwrap();
        assert_eq!(
            (issued.status, issued.billing_key_id, issued.auth_key_hash.clone()),
            (BillingAuthStatus::Issued, Some(key), Some(vec![9])),
            "the hash stays, so the same authKey asked again finds the key it issued"
        );
        assert_eq!(
            issued.issued(key, now),
            Err(BillingAuthError::WrongStatus(BillingAuthStatus::Issued))
        );
        assert_eq!(
            done.check_exchange(&own, UnixMillis::new(20_000)),
            Err(BillingAuthError::Expired),
            "the authKey is exchanged in time or never"
        );
    }

    #[test]
    fn out_of_order_and_late_steps_are_refused() {
        let fresh = auth();
        let now = UnixMillis::new(2_000);
        assert_eq!(
            fresh.challenge_attempted(now),
            Err(BillingAuthError::WrongStatus(BillingAuthStatus::Ready))
        );
        assert_eq!(
            fresh.authenticated(facts(), vec![], UnixMillis::new(1), now),
            Err(BillingAuthError::WrongStatus(BillingAuthStatus::Ready))
        );
        assert_eq!(fresh.status_at(UnixMillis::new(10_000)), BillingAuthStatus::Expired);
        assert_eq!(
            fresh.card_entered(card(), vec![1], UnixMillis::new(5_000), UnixMillis::new(10_000)),
            Err(BillingAuthError::Expired)
        );
        let failed = fresh.failed("AUTHENTICATION_FAILED", now).unwrap();
        assert_eq!(failed.status_at(UnixMillis::new(99_000)), BillingAuthStatus::Failed);
        assert!(failed
            .card_entered(card(), vec![1], UnixMillis::new(5_000), now)
            .is_err());
    }

    #[test]
    fn names_round_trip() {
        for s in BillingAuthStatus::ALL {
            assert_eq!(BillingAuthStatus::parse(s.as_str()), Some(s));
        }
    }
}
