//! Registering a card for a billing key on paygate's page (빌링키 인증창), as Toss's `requestBillingAuth` does:
//! the merchant (or its page, with the client key) starts a registration; the buyer types the card on paygate's
//! page and answers the issuer's one-time code; the issuer verifies the card (authenticated, no money moves); the
//! browser goes to the merchant's `successUrl?customerKey=…&authKey=…`; the merchant's server exchanges the
//! `authKey` for the billing key with its secret key (`POST /v1/billing/authorizations/issue`).
//!
//! The page's capability is the registration's unguessable ID; the `authKey` is derived from it with a server
//! secret (HMAC), so a reloaded page can send the buyer on again, and only its SHA-256 is stored. Every step is
//! guarded by the registration's state and written conditionally on its version: a double submit or a reload
//! never counts twice, at most [`CHALLENGE_ATTEMPTS_MAX`] codes are compared, and the key is issued once.

use base64::Engine;
use hmac::{Hmac, Mac};
use paygate_domain::api_key::{KeyKind, Mode};
use paygate_domain::billing::{BillingKey, CustomerKey, NewBillingKey, Registration};
use paygate_domain::billing_auth::{BillingAuth, BillingAuthError, BillingAuthStatus, NewBillingAuth};
use paygate_domain::event::EventType;
use paygate_domain::id::{BillingAuthId, BillingKeyId};
use paygate_domain::merchant::Merchant;
use paygate_domain::time::UnixMillis;
use paygate_store::{AuthCardChange, BillingKeyInsert, StoreError};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::{card_purpose, BillingError, BillingIdempotency};
use crate::auth::Caller;
use crate::idempotency::{Answer, Once};
use crate::payments::command::{ClearCard, Customer, FieldError, FieldReason, RedirectUrl};
use crate::payments::hosted::RetryReason;
use crate::payments::InternalError;
use crate::App;

type HmacSha256 = Hmac<Sha256>;

/// How long the buyer has to finish the page, and how long the merchant then has to exchange the `authKey`.
pub const REGISTRATION_SECS: u64 = 30 * 60;
pub const EXCHANGE_SECS: u64 = 10 * 60;
/// How long the buyer has to enter the issuer's code, and how many tries.
pub const CHALLENGE_SECS: u64 = 300;
pub const CHALLENGE_ATTEMPTS_MAX: u32 = 3;
/// The failure code of a registration whose buyer could not answer the issuer's challenge.
pub const AUTHENTICATION_FAILED: &str = "AUTHENTICATION_FAILED";
/// Toss's fail-URL code of a window that was left unfinished until it expired.
pub const PAY_PROCESS_ABORTED: &str = "PAY_PROCESS_ABORTED";

/// Start a registration (`POST /v1/billing/sessions`, and the SDK's `requestBillingAuth`).
#[derive(Clone, Debug)]
pub struct StartAuthCommand {
    pub customer_key: CustomerKey,
    pub success_url: RedirectUrl,
    pub fail_url: RedirectUrl,
    pub customer: Customer,
}

/// What the registration page shows.
#[derive(Clone, Debug)]
pub struct AuthPage {
    pub auth: BillingAuth,
    /// The status now (a registration past its deadline reads as expired).
    pub status: BillingAuthStatus,
    pub merchant: Merchant,
    /// In test mode, the code the sandbox issuer "sent".
    pub sandbox_otp: Option<String>,
    pub tries_left: u32,
}

/// Where the buyer goes next.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AuthStep {
    /// Show the card form.
    Card(RetryReason),
    /// Show the issuer's challenge.
    Challenge(RetryReason),
    /// Send the browser to the merchant (success or fail URL).
    Redirect(String),
}

fn purpose(id: BillingAuthId) -> String {
    format!("billing-auth-card:{id}")
}

fn sha256(text: &str) -> Vec<u8> {
    Sha256::digest(text.as_bytes()).to_vec()
}

fn with_query(url: &str, pairs: &[(&str, &str)]) -> String {
    let pairs: Vec<(&str, String)> = pairs.iter().map(|(k, v)| (*k, (*v).to_owned())).collect();
    crate::payments::hosted::append_query(url, &pairs)
}

impl App {
    /// Starts a registration. With a client key (the browser), `successUrl` and `failUrl` must be on an origin the
    /// merchant registered, as for checkout.
    pub async fn start_billing_auth(
        &self,
        caller: &Caller,
        command: StartAuthCommand,
    ) -> Result<BillingAuth, BillingError> {
        if caller.key.kind != KeyKind::Secret {
            let settings = self
                .store()
                .merchant_settings(caller.merchant.id, caller.key.mode)
                .await?;
            for (param, url) in [("successUrl", &command.success_url), ("failUrl", &command.fail_url)] {
                if !settings
                    .redirect_origins
                    .contains(&crate::payments::checkout_origin(url.as_str()))
                {
                    return Err(FieldError::new(
                        param,
                        FieldReason::InvalidUrl,
                        format!("`{param}` must be on an origin registered in the merchant's redirectOrigins"),
                    )
                    .into());
                }
            }
        }
        let now = self.clock().now();
        let auth = BillingAuth::start(NewBillingAuth {
            id: BillingAuthId::new(now, crate::random_bytes()),
            merchant_id: caller.merchant.id,
            mode: caller.key.mode,
            customer_key: command.customer_key,
            success_url: command.success_url.into_string(),
            fail_url: command.fail_url.into_string(),
            customer_name: command.customer.name.map(|n| n.into_string()),
            customer_email: command.customer.email.map(|e| e.into_string()),
            now,
            expires_at: now.saturating_add_secs(REGISTRATION_SECS),
        });
        self.store().insert_billing_auth(&auth).await?;
        Ok(auth)
    }

    /// The registration page's URL.
    pub fn billing_auth_url(&self, id: BillingAuthId) -> String {
        format!("{}/billing/{id}", self.payments.checkout_base_url.trim_end_matches('/'))
    }

    /// What the registration page shows.
    pub async fn billing_auth_page(&self, id: BillingAuthId) -> Result<AuthPage, BillingError> {
        let auth = self.store().billing_auth(id).await?.ok_or(BillingError::NotFound)?;
        let merchant = self
            .store()
            .merchant(auth.merchant_id)
            .await?
            .ok_or(BillingError::NotFound)?;
        let now = self.clock().now();
        let status = auth.status_at(now);
        let sandbox_otp = match (auth.mode, status, auth.challenge_expires_at) {
            (Mode::Test, BillingAuthStatus::Challenged, Some(expires)) => Some(self.auth_otp(id, expires)?),
            _ => None,
        };
        Ok(AuthPage {
            tries_left: CHALLENGE_ATTEMPTS_MAX.saturating_sub(auth.challenge_attempts),
            auth,
            status,
            merchant,
            sandbox_otp,
        })
    }

    fn auth_mac(&self, message: &str) -> Result<Vec<u8>, BillingError> {
        let mut mac = HmacSha256::new_from_slice(&self.receipt_key)
            .map_err(|_| BillingError::Internal(InternalError::Invariant("HMAC key".into())))?;
        mac.update(message.as_bytes());
        Ok(mac.finalize().into_bytes().to_vec())
    }

    /// The sandbox issuer's one-time code for the challenge issued for `expires`, derived, never stored.
    fn auth_otp(&self, id: BillingAuthId, expires: UnixMillis) -> Result<String, BillingError> {
        let digest = self.auth_mac(&format!("sandbox-otp:{id}:{}", expires.as_millis()))?;
        let number = u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]]) % 1_000_000;
        Ok(format!("{number:06}"))
    }

    /// The registration's `authKey`: derived from its unguessable ID with the server secret, so only its hash is
    /// stored and a reloaded page can still send the buyer on.
    fn auth_key(&self, id: BillingAuthId) -> Result<String, BillingError> {
        let digest = self.auth_mac(&format!("billing-auth-key:{id}"))?;
        Ok(format!(
            "bak_{}",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest)
        ))
    }

    /// Where a registration sends the browser once it has left the card and challenge pages.
    fn auth_step(&self, auth: &BillingAuth, status: BillingAuthStatus) -> Result<AuthStep, BillingError> {
        Ok(match status {
            BillingAuthStatus::Ready => AuthStep::Card(RetryReason::None),
            BillingAuthStatus::Challenged => AuthStep::Challenge(RetryReason::None),
            BillingAuthStatus::Authenticated | BillingAuthStatus::Issued => AuthStep::Redirect(with_query(
                &auth.success_url,
                &[
                    ("customerKey", auth.customer_key.as_str()),
                    ("authKey", &self.auth_key(auth.id)?),
                ],
            )),
            BillingAuthStatus::Failed => {
                let code = auth
                    .failure_code
                    .clone()
                    .unwrap_or_else(|| AUTHENTICATION_FAILED.to_owned());
                AuthStep::Redirect(with_query(
                    &auth.fail_url,
                    &[
                        ("code", &code),
                        ("message", "카드를 등록하지 못했습니다. The card was not registered."),
                    ],
                ))
            }
            BillingAuthStatus::Expired => AuthStep::Redirect(with_query(
                &auth.fail_url,
                &[
                    ("code", PAY_PROCESS_ABORTED),
                    (
                        "message",
                        "시간이 지나 등록이 취소되었습니다. The registration expired.",
                    ),
                ],
            )),
        })
    }

    /// Where a registration sends the browser now (a reload of a finished page).
    pub async fn current_billing_auth_step(&self, id: BillingAuthId) -> Result<AuthStep, BillingError> {
        self.current_auth_step(id).await
    }

    async fn current_auth_step(&self, id: BillingAuthId) -> Result<AuthStep, BillingError> {
        let page = self.billing_auth_page(id).await?;
        self.auth_step(&page.auth, page.status)
    }

    /// The buyer submitted a card: the issuer's challenge starts, the card sealed until it is answered.
    pub async fn billing_auth_card(
        &self,
        id: BillingAuthId,
        card: Result<ClearCard, FieldError>,
    ) -> Result<AuthStep, BillingError> {
        let page = self.billing_auth_page(id).await?;
        if !matches!(page.status, BillingAuthStatus::Ready | BillingAuthStatus::Challenged) {
            return self.auth_step(&page.auth, page.status);
        }
        let card = match card {
            Ok(card) => card,
            Err(FieldError {
                reason: FieldReason::InvalidCardNumber,
                ..
            }) => return Ok(AuthStep::Card(RetryReason::CardNumber)),
            Err(_) => return Ok(AuthStep::Card(RetryReason::Expiry)),
        };
        let now = self.clock().now();
        let expires = now.saturating_add_secs(CHALLENGE_SECS);
        let otp = self.auth_otp(id, expires)?;
        let sealed = self.vault.seal_card(&purpose(id), &card.card_data())?;
        let next = match page
            .auth
            .card_entered(card.number.summary(), sha256(&otp), expires, now)
        {
            Ok(next) => next,
            Err(_) => return self.current_auth_step(id).await,
        };
        match self
            .store()
            .update_billing_auth(&next, &AuthCardChange::Store(sealed))
            .await
        {
            Ok(()) => Ok(AuthStep::Challenge(RetryReason::None)),
            Err(StoreError::Conflict(_)) => self.current_auth_step(id).await,
            Err(other) => Err(other.into()),
        }
    }

    /// The buyer answered the issuer's challenge. The try is counted (a conditional write) before the code is
    /// compared, so concurrent answers compare at most one per version.
    pub async fn billing_auth_challenge(&self, id: BillingAuthId, otp: &str) -> Result<AuthStep, BillingError> {
        let page = self.billing_auth_page(id).await?;
        if page.status != BillingAuthStatus::Challenged {
            return self.auth_step(&page.auth, page.status);
        }
        let auth = page.auth;
        let now = self.clock().now();
        let (Some(hash), Some(expires)) = (auth.challenge_otp_hash.clone(), auth.challenge_expires_at) else {
            return Ok(AuthStep::Card(RetryReason::StartAgain));
        };
        if auth.challenge_attempts >= CHALLENGE_ATTEMPTS_MAX || now >= expires {
            return self.fail_auth(&auth, AUTHENTICATION_FAILED).await;
        }
        let tried = match auth.challenge_attempted(now) {
            Ok(tried) => tried,
            Err(_) => return self.current_auth_step(id).await,
        };
        match self.store().update_billing_auth(&tried, &AuthCardChange::Keep).await {
            Ok(()) => {}
            Err(StoreError::Conflict(_)) => return self.current_auth_step(id).await,
            Err(other) => return Err(other.into()),
        }
        if !bool::from(sha256(otp.trim()).as_slice().ct_eq(&hash)) {
            if tried.challenge_attempts < CHALLENGE_ATTEMPTS_MAX {
                return Ok(AuthStep::Challenge(RetryReason::OtpMismatch));
            }
            return self.fail_auth(&tried, AUTHENTICATION_FAILED).await;
        }
        let Some(sealed) = self.store().billing_auth_card(id).await? else {
            return self.current_auth_step(id).await;
        };
        let card = self.open_card(&purpose(id), &sealed).await?;
        let number = paygate_domain::card::CardNumber::parse(&card.number)
            .map_err(|e| InternalError::Invariant(format!("a registration's sealed card: {e}")))?;
        let facts = match self
            .verify_card_for((tried.merchant_id, tried.mode), id.to_string(), &number, &card, true)
            .await
        {
            Ok(facts) => facts,
            Err(BillingError::Declined { code, .. }) => return self.fail_auth(&tried, code.as_str()).await,
            // The issuer could not be asked: nothing is registered; the buyer may enter the card again.
            Err(BillingError::AcquirerUnavailable) => return Ok(AuthStep::Card(RetryReason::CardNotAccepted)),
            Err(BillingError::NoRoute) => return self.fail_auth(&tried, "NO_ACQUIRER_ROUTE").await,
            Err(other) => return Err(other),
        };
        let auth_key = self.auth_key(id)?;
        let exchange_by = now.saturating_add_secs(EXCHANGE_SECS);
        let done = match tried.authenticated(facts, sha256(&auth_key), exchange_by, now) {
            Ok(done) => done,
            Err(_) => return self.current_auth_step(id).await,
        };
        match self.store().update_billing_auth(&done, &AuthCardChange::Keep).await {
            Ok(()) => self.auth_step(&done, done.status),
            Err(StoreError::Conflict(_)) => self.current_auth_step(id).await,
            Err(other) => Err(other.into()),
        }
    }

    async fn fail_auth(&self, auth: &BillingAuth, code: &str) -> Result<AuthStep, BillingError> {
        let now = self.clock().now();
        let failed = match auth.failed(code, now) {
            Ok(failed) => failed,
            Err(_) => return self.current_auth_step(auth.id).await,
        };
        match self.store().update_billing_auth(&failed, &AuthCardChange::Erase).await {
            Ok(()) => self.auth_step(&failed, failed.status),
            Err(StoreError::Conflict(_)) => self.current_auth_step(auth.id).await,
            Err(other) => Err(other.into()),
        }
    }

    /// Exchanges a registration's `authKey` for its billing key (`POST /v1/billing/authorizations/issue`). The
    /// same `authKey` and `customerKey` again answer the key already issued.
    pub async fn issue_billing_key_from_auth(
        &self,
        caller: &Caller,
        auth_key: &str,
        customer_key: CustomerKey,
        idempotency: Option<BillingIdempotency>,
    ) -> Result<Answer<BillingKey>, BillingError> {
        if caller.key.kind != KeyKind::Secret {
            return Err(BillingError::Forbidden);
        }
        let claim = match self.start_once(caller, idempotency).await? {
            Once::Run(claim) => claim,
            Once::Answer(answer) => return Ok(answer),
        };
        let auth = self
            .store()
            .billing_auth_by_key(caller.merchant.id, caller.key.mode, &sha256(auth_key))
            .await?
            .ok_or(BillingError::NotFound)?;
        let now = self.clock().now();
        if let Some(existing) = self.already_issued(caller, &auth, &customer_key).await? {
            return Ok(Answer::Fresh(existing));
        }
        match auth.check_exchange(&customer_key, now) {
            Ok(()) => {}
            Err(BillingAuthError::CustomerKeyMismatch) => return Err(BillingError::CustomerKeyMismatch),
            Err(_) => return Err(BillingError::InvalidAuth),
        }
        let (Some(card_summary), Some(facts)) = (auth.card.clone(), auth.facts.clone()) else {
            return Err(InternalError::Invariant("an authenticated registration has no card".into()).into());
        };
        let sealed = self
            .store()
            .billing_auth_card(auth.id)
            .await?
            .ok_or(BillingError::InvalidAuth)?;
        let card = self.open_card(&purpose(auth.id), &sealed).await?;
        let key_id = BillingKeyId::new(now, crate::random_bytes());
        let resealed = self.vault.seal_card(&card_purpose(key_id), &card)?;
        let key = BillingKey::issue(NewBillingKey {
            id: key_id,
            merchant_id: auth.merchant_id,
            mode: auth.mode,
            customer_key,
            registration: Registration::Authenticated,
            card: card_summary,
            facts,
            customer_name: auth.customer_name.clone(),
            customer_email: auth.customer_email.clone(),
            now,
        });
        let issued = auth.issued(key_id, now).map_err(|_| BillingError::InvalidAuth)?;
        let event = self.billing_event(&key, EventType::BillingIssued, None, now)?;
        let answer = Ok(key.clone());
        let insert = BillingKeyInsert {
            key,
            card: resealed,
            events: vec![event],
            idempotency: claim.as_ref().map(|c| c.record(None, &answer, now)),
        };
        match self.store().issue_from_auth(&issued, &insert).await {
            Ok(()) => answer.map(Answer::Fresh),
            Err(StoreError::IdempotencyConflict) => match &claim {
                Some(claim) => self.once_after_conflict(claim).await,
                None => Err(BillingError::Concurrent),
            },
            // Another exchange of the same authKey won: answer the key it issued.
            Err(StoreError::Conflict(_)) => {
                let now_stored = self
                    .store()
                    .billing_auth(auth.id)
                    .await?
                    .ok_or(BillingError::NotFound)?;
                self.already_issued(caller, &now_stored, &insert.key.customer_key)
                    .await?
                    .map(Answer::Fresh)
                    .ok_or(BillingError::Concurrent)
            }
            Err(other) => Err(other.into()),
        }
    }

    /// The key a registration already issued, if it did (for the same customer).
    async fn already_issued(
        &self,
        caller: &Caller,
        auth: &BillingAuth,
        customer_key: &CustomerKey,
    ) -> Result<Option<BillingKey>, BillingError> {
        let (BillingAuthStatus::Issued, Some(key_id)) = (auth.status, auth.billing_key_id) else {
            return Ok(None);
        };
        if auth.customer_key != *customer_key {
            return Err(BillingError::CustomerKeyMismatch);
        }
        Ok(self
            .store()
            .billing_key(caller.merchant.id, caller.key.mode, key_id)
            .await?)
    }
}
