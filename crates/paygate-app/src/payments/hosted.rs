//! Hosted checkout (인증결제): the signed form POST from a merchant page, the buyer's card on paygate's page, the
//! (sandbox) issuer's OTP challenge, approval, and the signed redirect back to the merchant.
//!
//! The capability on these pages is the unguessable payment key; nothing here needs an API key. Every step is
//! guarded by the payment's state, so a double submit, a back-button resubmit or a reloaded page never charges
//! twice: once the payment has left READY, the page only shows (or redirects to) its result.

use hmac::{Hmac, Mac};
use paygate_domain::api_key::Mode;
use paygate_domain::card::Installment;
use paygate_domain::id::{MerchantId, PaymentId};
use paygate_domain::merchant::Merchant;
use paygate_domain::payment::{Failure, OrderExtras, Payment, PaymentMethod, PaymentStatus};
use paygate_store::{CheckoutCardChange, CheckoutEntry, CheckoutSession, PaymentUpdate, StoreError};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::command::{self, ClearCard, CreateCommand, Customer, FieldError, FieldReason, NotificationUrl, RedirectUrl};
use super::{InternalError, PaymentError};
use crate::App;

type HmacSha256 = Hmac<Sha256>;

/// How far a form's `timestamp` may be from paygate's clock.
pub const FORM_TIMESTAMP_SKEW_SECS: i64 = 600;
/// How long the buyer has to enter the issuer's OTP, and how many tries.
pub const CHALLENGE_SECS: u64 = 300;
pub const CHALLENGE_ATTEMPTS_MAX: u32 = 3;

/// The fields of the merchant page's form POST (seed 000), as received.
#[derive(Clone, Debug, Default)]
pub struct FormCheckout {
    pub mid: String,
    pub mode: String,
    pub order_id: String,
    pub amount: String,
    pub goods_name: String,
    pub buyer_name: String,
    pub buyer_email: String,
    pub buyer_tel: String,
    pub return_url: String,
    pub notification_url: String,
    pub timestamp: String,
    pub signature: String,
}

/// What separates the signed fields; a field containing it is refused, so no two forms sign the same message.
const FORM_SIGNATURE_SEPARATOR: char = '|';

impl FormCheckout {
    /// Every field the checkout uses, in the documented order, absent ones as empty strings:
    /// `mId|mode|orderId|amount|timestamp|returnUrl|goodsName|buyerName|buyerEmail|buyerTel|notificationUrl`.
    /// Nothing a buyer could change in the browser is left out of the signature.
    pub fn signing_message(&self) -> Result<String, FormError> {
        let signed = [
            ("mId", &self.mid),
            ("mode", &self.mode),
            ("orderId", &self.order_id),
            ("amount", &self.amount),
            ("timestamp", &self.timestamp),
            ("returnUrl", &self.return_url),
            ("goodsName", &self.goods_name),
            ("buyerName", &self.buyer_name),
            ("buyerEmail", &self.buyer_email),
            ("buyerTel", &self.buyer_tel),
            ("notificationUrl", &self.notification_url),
        ];
        if let Some((field, _)) = signed
            .iter()
            .find(|(_, value)| value.contains(FORM_SIGNATURE_SEPARATOR))
        {
            return Err(FormError::Invalid {
                field,
                message: format!("`{field}` must not contain `{FORM_SIGNATURE_SEPARATOR}`"),
            });
        }
        let values: Vec<&str> = signed.iter().map(|(_, value)| value.as_str()).collect();
        Ok(values.join("|"))
    }
}

impl FormCheckout {
    /// The payment the (verified) form asks for.
    fn command(&self, amount_minor: i64) -> Result<CreateCommand, FieldError> {
        let optional = |text: &str| (!text.trim().is_empty()).then(|| text.trim().to_owned());
        Ok(CreateCommand {
            amounts: command::amounts(amount_minor, None, None)?,
            order_id: command::order_id(&self.order_id)?,
            order_name: command::order_name(&self.goods_name)?,
            customer: Customer::parse(optional(&self.buyer_name), optional(&self.buyer_email))?,
            notification_url: NotificationUrl::parse(optional(&self.notification_url))?,
            extras: OrderExtras::default(),
            success_url: None,
            fail_url: None,
            method: None,
        })
    }
}

/// The buyer's card as the hosted page's form parsed it. A refused field is not an error here: the page asks
/// again, naming the field, once the payment is known to still wait for a card.
#[derive(Clone, Debug)]
pub struct CardEntry {
    pub card: Result<ClearCard, FieldError>,
    pub installment: Result<Installment, FieldError>,
}

/// Why a form POST was refused. Nothing is created in any of these cases.
#[derive(Debug, thiserror::Error)]
pub enum FormError {
    #[error("`{0}` is missing")]
    Missing(&'static str),
    #[error("`{field}` is invalid: {message}")]
    Invalid { field: &'static str, message: String },
    #[error("the form is too old or from the future; reload the merchant's page")]
    Stale,
    #[error("the form's signature does not match; it was changed after the merchant signed it")]
    Signature,
    #[error("no such merchant")]
    UnknownMerchant,
    #[error(transparent)]
    Payment(#[from] PaymentError),
}

/// What the hosted page shows.
#[derive(Clone, Debug)]
pub struct HostedPage {
    pub payment: Payment,
    pub session: CheckoutSession,
    pub merchant: Merchant,
    /// In test mode, the OTP the sandbox issuer "sent" (shown on the challenge page).
    pub sandbox_otp: Option<String>,
}

/// Why the buyer is asked again. The page turns it into its own words: a URL can name a reason, never carry text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RetryReason {
    None,
    CardNumber,
    Expiry,
    Installment,
    CardNotAccepted,
    OtpMismatch,
    StartAgain,
    /// The merchant asked for another method than the one posted.
    MethodNotOffered,
    /// No bank (or one paygate does not reach) was picked for this method.
    BankNotOffered(PaymentMethod),
    /// The virtual account's name is missing or too long.
    HolderName,
    /// The bank could not be reached for this method; another method may work.
    BankUnavailable(PaymentMethod),
    /// The buyer left the bank's page without authorizing the transfer.
    TransferCancelled,
    /// The bank did not authorize the transfer (a wrong PIN, an expired page).
    TransferNotAuthorized,
    /// The cash receipt's type or number is not acceptable.
    CashReceipt(PaymentMethod),
}

impl RetryReason {
    pub fn code(self) -> &'static str {
        match self {
            RetryReason::None => "",
            RetryReason::CardNumber => "card_number",
            RetryReason::Expiry => "expiry",
            RetryReason::Installment => "installment",
            RetryReason::CardNotAccepted => "card_not_accepted",
            RetryReason::OtpMismatch => "otp_mismatch",
            RetryReason::StartAgain => "start_again",
            RetryReason::MethodNotOffered => "method_not_offered",
            RetryReason::BankNotOffered(PaymentMethod::Transfer) => "transfer_bank",
            RetryReason::BankNotOffered(_) => "virtual_account_bank",
            RetryReason::HolderName => "holder_name",
            RetryReason::BankUnavailable(PaymentMethod::Transfer) => "transfer_bank_unavailable",
            RetryReason::BankUnavailable(_) => "virtual_account_bank_unavailable",
            RetryReason::TransferCancelled => "transfer_cancelled",
            RetryReason::TransferNotAuthorized => "transfer_not_authorized",
            RetryReason::CashReceipt(PaymentMethod::Transfer) => "transfer_cash_receipt",
            RetryReason::CashReceipt(_) => "virtual_account_cash_receipt",
        }
    }

    pub fn parse(code: &str) -> RetryReason {
        [
            RetryReason::CardNumber,
            RetryReason::Expiry,
            RetryReason::Installment,
            RetryReason::CardNotAccepted,
            RetryReason::OtpMismatch,
            RetryReason::StartAgain,
            RetryReason::MethodNotOffered,
            RetryReason::BankNotOffered(PaymentMethod::Transfer),
            RetryReason::BankNotOffered(PaymentMethod::VirtualAccount),
            RetryReason::HolderName,
            RetryReason::BankUnavailable(PaymentMethod::Transfer),
            RetryReason::BankUnavailable(PaymentMethod::VirtualAccount),
            RetryReason::TransferCancelled,
            RetryReason::TransferNotAuthorized,
            RetryReason::CashReceipt(PaymentMethod::Transfer),
            RetryReason::CashReceipt(PaymentMethod::VirtualAccount),
        ]
        .into_iter()
        .find(|r| r.code() == code)
        .unwrap_or(RetryReason::None)
    }

    /// The method whose form the page shows with this reason, if it concerns one.
    pub fn method(self) -> Option<PaymentMethod> {
        match self {
            RetryReason::None | RetryReason::MethodNotOffered => None,
            RetryReason::CardNumber
            | RetryReason::Expiry
            | RetryReason::Installment
            | RetryReason::CardNotAccepted
            | RetryReason::OtpMismatch
            | RetryReason::StartAgain => Some(PaymentMethod::Card),
            RetryReason::BankNotOffered(method)
            | RetryReason::BankUnavailable(method)
            | RetryReason::CashReceipt(method) => Some(method),
            RetryReason::HolderName => Some(PaymentMethod::VirtualAccount),
            RetryReason::TransferCancelled | RetryReason::TransferNotAuthorized => Some(PaymentMethod::Transfer),
        }
    }
}

/// Where the buyer goes next.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HostedStep {
    /// Show the OTP challenge page.
    Challenge,
    /// Show the page again, explaining why (nothing changed).
    Retry(RetryReason),
    /// Send the browser here (the merchant's return, success or fail URL).
    Redirect(String),
    /// The outcome is not known yet; show a waiting page that reloads.
    Pending,
    /// The merchant gave no URL for this outcome (a secret-key payment without `successUrl`/`failUrl`): paygate
    /// shows it on its own page.
    Outcome(HostedOutcome),
}

/// What paygate's own result page says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HostedOutcome {
    /// The buyer authenticated the card; the merchant confirms next.
    Authenticated,
    /// The payment is approved.
    Approved,
    /// A virtual account was issued; the payment waits for the buyer's deposit.
    AwaitingDeposit,
    /// The payment did not complete, with the stable failure code.
    Failed { code: String },
}

pub(crate) fn append_query(url: &str, pairs: &[(&str, String)]) -> String {
    let mut out = url.to_owned();
    let mut separator = if url.contains('?') { '&' } else { '?' };
    for (key, value) in pairs {
        out.push(separator);
        out.push_str(key);
        out.push('=');
        out.push_str(&percent_encode(value));
        separator = '&';
    }
    out
}

fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

impl App {
    /// The key a merchant signs checkout forms with (and verifies return signatures with), per mode. Derived from
    /// the merchant's encData key, so rotating that key rotates this one.
    pub async fn checkout_key_for(&self, merchant: MerchantId, mode: Mode) -> Result<[u8; 32], PaymentError> {
        let enc = self.encryption_key_for(merchant, mode).await?;
        let mut mac =
            HmacSha256::new_from_slice(enc.expose_bytes()).map_err(|_| InternalError::Invariant("HMAC key".into()))?;
        mac.update(b"paygate checkout signing key");
        Ok(mac.finalize().into_bytes().into())
    }

    fn sign(key: &[u8; 32], message: &str) -> Result<String, PaymentError> {
        let mut mac = HmacSha256::new_from_slice(key).map_err(|_| InternalError::Invariant("HMAC key".into()))?;
        mac.update(message.as_bytes());
        Ok(hex::encode(mac.finalize().into_bytes()))
    }

    /// Checks the merchant page's signed form and creates the payment. Returns the payment key to send the browser to.
    pub async fn form_checkout(&self, form: FormCheckout) -> Result<PaymentId, FormError> {
        let required = [
            ("mId", &form.mid),
            ("mode", &form.mode),
            ("orderId", &form.order_id),
            ("amount", &form.amount),
            ("goodsName", &form.goods_name),
            ("returnUrl", &form.return_url),
            ("timestamp", &form.timestamp),
            ("signature", &form.signature),
        ];
        if let Some((name, _)) = required.iter().find(|(_, value)| value.trim().is_empty()) {
            return Err(FormError::Missing(name));
        }
        let merchant_id = MerchantId::parse(&form.mid).map_err(|_| FormError::UnknownMerchant)?;
        let merchant = self
            .store()
            .merchant(merchant_id)
            .await
            .map_err(PaymentError::from)?
            .ok_or(FormError::UnknownMerchant)?;
        if !merchant.status.may_transact() {
            return Err(FormError::UnknownMerchant);
        }
        let mode = Mode::parse(&form.mode).ok_or(FormError::Invalid {
            field: "mode",
            message: "`mode` is test or live".into(),
        })?;
        let amount: i64 = form.amount.parse().map_err(|_| FormError::Invalid {
            field: "amount",
            message: "`amount` must be a whole number".into(),
        })?;
        let timestamp: i64 = form.timestamp.parse().map_err(|_| FormError::Invalid {
            field: "timestamp",
            message: "Unix seconds".into(),
        })?;
        let now_secs = self.clock().now().as_millis() / 1_000;
        if (now_secs - timestamp).abs() > FORM_TIMESTAMP_SKEW_SECS {
            return Err(FormError::Stale);
        }
        let message = form.signing_message()?;
        let key = self.checkout_key_for(merchant_id, mode).await?;
        let expected = Self::sign(&key, &message)?;
        if !bool::from(
            expected
                .as_bytes()
                .ct_eq(form.signature.trim().to_ascii_lowercase().as_bytes()),
        ) {
            return Err(FormError::Signature);
        }
        let return_url = RedirectUrl::parse(Some(form.return_url.clone()), "returnUrl")
            .map_err(PaymentError::from)?
            .map(RedirectUrl::into_string);
        let command = form.command(amount).map_err(PaymentError::from)?;
        let now = self.clock().now();
        let session = |id| CheckoutSession::form(id, return_url.clone(), now);
        // A form POST carries no Idempotency-Key: its orderId keeps a resubmitted form from paying twice.
        let payment = match self
            .create_checkout_for((merchant_id, mode), command, session, None)
            .await?
        {
            super::checkout::Created::Payment(payment) => payment,
            super::checkout::Created::Answer(_) => return Err(PaymentError::Concurrent.into()),
        };
        tracing::info!(payment_id = %payment.id, "checkout started from a merchant form");
        Ok(payment.id)
    }

    /// What the hosted page for a payment shows.
    pub async fn hosted_page(&self, id: PaymentId) -> Result<HostedPage, PaymentError> {
        let payment = self.store().payment_by_id(id).await?.ok_or(PaymentError::NotFound)?;
        let session = self.store().checkout_session(id).await?.ok_or(PaymentError::NotFound)?;
        let merchant = self
            .store()
            .merchant(payment.merchant_id)
            .await?
            .ok_or(PaymentError::NotFound)?;
        let sandbox_otp = match (payment.mode, session.challenge_expires_at) {
            (Mode::Test, Some(expires)) => Some(self.sandbox_otp(id, expires)?),
            _ => None,
        };
        Ok(HostedPage {
            payment,
            session,
            merchant,
            sandbox_otp,
        })
    }

    /// The sandbox issuer's one-time password, derived so it never has to be stored.
    fn sandbox_otp(&self, id: PaymentId, issued_for: paygate_domain::time::UnixMillis) -> Result<String, PaymentError> {
        let mut mac =
            HmacSha256::new_from_slice(&self.receipt_key).map_err(|_| InternalError::Invariant("HMAC key".into()))?;
        mac.update(format!("sandbox-otp:{id}:{}", issued_for.as_millis()).as_bytes());
        let digest = mac.finalize().into_bytes();
        let number = u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]]) % 1_000_000;
        Ok(format!("{number:06}"))
    }

    /// The buyer submitted a card on the hosted page.
    pub async fn hosted_pay(&self, id: PaymentId, entry: CardEntry) -> Result<HostedStep, PaymentError> {
        let page = self.hosted_page(id).await?;
        if page.payment.status != PaymentStatus::Ready {
            return self.result_step(&page.payment, &page.session).await;
        }
        let Ok(installment) = entry.installment else {
            return Ok(HostedStep::Retry(RetryReason::Installment));
        };
        let card = match entry.card {
            Ok(card) => card,
            Err(FieldError {
                reason: FieldReason::InvalidCardNumber,
                ..
            }) => return Ok(HostedStep::Retry(RetryReason::CardNumber)),
            Err(_) => return Ok(HostedStep::Retry(RetryReason::Expiry)),
        };
        let data = card.card_data();
        let payment = &page.payment;
        if payment.mode == Mode::Test && paygate_connectors::sandbox::requires_challenge(&data.number) {
            // Keep the card sealed (the payment stays READY) until the buyer answers the issuer's OTP.
            let sealed = self.seal_checkout_card(id, &data)?;
            let mut next = payment.clone();
            next.installment = installment;
            next.version += 1;
            let mut update = PaymentUpdate::new(payment.version, next);
            update.checkout_card = CheckoutCardChange::Store(sealed);
            if let Err(error) = self.commit(payment, update).await {
                return match error {
                    StoreError::Conflict(_) => self.current_step(id).await,
                    other => Err(other.into()),
                };
            }
            let now = self.clock().now();
            let expires = now.saturating_add_secs(CHALLENGE_SECS);
            let otp = self.sandbox_otp(id, expires)?;
            let session = page
                .session
                .challenge_started(Sha256::digest(otp.as_bytes()).to_vec(), expires);
            return match self.store().update_checkout_session(&session).await {
                Ok(()) => Ok(HostedStep::Challenge),
                Err(StoreError::Conflict(_)) => self.current_step(id).await,
                Err(other) => Err(other.into()),
            };
        }
        self.authenticate_and_finish(page, data, installment).await
    }

    /// The buyer left paygate's page with its "back to the shop" button: the payment is ABORTED with
    /// `USER_CANCEL`, and the browser goes to `failUrl` (or `returnUrl`, signed) with that code. A payment no
    /// longer READY shows where it stands.
    pub async fn hosted_abandon(&self, id: PaymentId) -> Result<HostedStep, PaymentError> {
        let page = self.hosted_page(id).await?;
        if page.payment.status != PaymentStatus::Ready {
            return self.result_step(&page.payment, &page.session).await;
        }
        let failure = Failure {
            code: "USER_CANCEL".into(),
            message: "the buyer cancelled the payment on paygate's page".into(),
            acquirer_code: None,
        };
        let payment = self.record_failure_from_ready(&page.payment, failure).await?;
        self.result_step(&payment, &page.session).await
    }

    /// The buyer answered the OTP challenge.
    ///
    /// The try is counted before the code is compared, by a write conditional on the session's version: of
    /// concurrent answers only the one that wins the write is compared, and the others compare nothing. So at most
    /// [`CHALLENGE_ATTEMPTS_MAX`] codes are ever compared per challenge, however many arrive at once.
    pub async fn hosted_challenge(&self, id: PaymentId, otp: &str) -> Result<HostedStep, PaymentError> {
        let page = self.hosted_page(id).await?;
        if page.payment.status != PaymentStatus::Ready {
            return self.result_step(&page.payment, &page.session).await;
        }
        let (Some(hash), Some(expires)) = (
            page.session.challenge_otp_hash.clone(),
            page.session.challenge_expires_at,
        ) else {
            return Ok(HostedStep::Retry(RetryReason::StartAgain));
        };
        let now = self.clock().now();
        if page.session.challenge_attempts >= CHALLENGE_ATTEMPTS_MAX || now >= expires {
            return self.fail_challenge(&page.payment, &page.session).await;
        }
        let session = page.session.challenge_attempted();
        match self.store().update_checkout_session(&session).await {
            Ok(()) => {}
            // Another answer was counted first; this one is not compared. The page shows where the payment stands.
            Err(StoreError::Conflict(_)) => return self.current_step(id).await,
            Err(other) => return Err(other.into()),
        }
        let matches = bool::from(Sha256::digest(otp.trim().as_bytes()).as_slice().ct_eq(&hash));
        if matches {
            // A concurrent last wrong answer may have failed the payment (and deleted the card) meanwhile.
            let Some(card) = self.open_checkout_card(id).await? else {
                return self.current_step(id).await;
            };
            let installment = page.payment.installment;
            let page = HostedPage { session, ..page };
            return self.authenticate_and_finish(page, card, installment).await;
        }
        if session.challenge_attempts < CHALLENGE_ATTEMPTS_MAX {
            return Ok(HostedStep::Retry(RetryReason::OtpMismatch));
        }
        self.fail_challenge(&page.payment, &session).await
    }

    /// No try left, or too late: the payment fails with `AUTHENTICATION_FAILED`.
    async fn fail_challenge(&self, payment: &Payment, session: &CheckoutSession) -> Result<HostedStep, PaymentError> {
        let failure = Failure {
            code: "AUTHENTICATION_FAILED".into(),
            message: "the buyer could not authenticate the card".into(),
            acquirer_code: None,
        };
        let payment = self.record_failure_from_ready(payment, failure).await?;
        self.result_step(&payment, session).await
    }

    async fn record_failure_from_ready(&self, payment: &Payment, failure: Failure) -> Result<Payment, PaymentError> {
        let next = payment.failed(failure)?;
        let mut update = PaymentUpdate::new(payment.version, next.clone());
        update.checkout_card = CheckoutCardChange::Delete;
        match self.commit(payment, update).await {
            Ok(()) => Ok(next),
            Err(StoreError::Conflict(_)) => self.reload(payment).await,
            Err(other) => Err(other.into()),
        }
    }

    /// Marks the payment authenticated with the card, then: from a form, approves it at once and returns to the
    /// merchant with the result; from the API or SDK, sends the buyer to `successUrl` for the merchant to confirm.
    async fn authenticate_and_finish(
        &self,
        page: HostedPage,
        card: paygate_connectors::CardData,
        installment: Installment,
    ) -> Result<HostedStep, PaymentError> {
        let payment = page.payment;
        let number = paygate_domain::card::CardNumber::parse(&card.number)
            .map_err(|e| InternalError::Invariant(e.to_string()))?;
        let route = match self.route(payment.merchant_id, payment.mode, &number).await {
            Ok(route) => route,
            Err(PaymentError::NoRoute) => return Ok(HostedStep::Retry(RetryReason::CardNotAccepted)),
            Err(other) => return Err(other),
        };
        let now = self.clock().now();
        let confirm_by = now.saturating_add_secs(u64::from(self.payments.confirm_window_secs));
        let next = match payment.authenticated(number.summary(), installment, route, now, confirm_by) {
            Ok(next) => next,
            Err(_) => return self.result_step(&payment, &page.session).await,
        };
        let mut update = PaymentUpdate::new(payment.version, next.clone());
        update.checkout_card = CheckoutCardChange::Store(self.seal_checkout_card(payment.id, &card)?);
        match self.commit(&payment, update).await {
            Ok(()) => {}
            Err(StoreError::Conflict(_)) => return self.current_step(payment.id).await,
            Err(other) => return Err(other.into()),
        }
        if page.session.entry == CheckoutEntry::Api {
            return self.result_step(&next, &page.session).await;
        }
        let order_id = next.order_id.clone();
        let amount = next.total();
        match self.confirm_payment(next.clone(), &order_id, amount, None).await {
            Ok(_) | Err(PaymentError::Declined { .. }) | Err(PaymentError::AcquirerUnavailable { .. }) => {}
            Err(PaymentError::Concurrent) => {}
            Err(other) => return Err(other),
        }
        self.current_step(payment.id).await
    }

    /// Where a payment's hosted page sends the browser now (used when a page is reloaded after paying).
    pub async fn hosted_result(&self, id: PaymentId) -> Result<HostedStep, PaymentError> {
        self.current_step(id).await
    }

    pub(crate) async fn current_step(&self, id: PaymentId) -> Result<HostedStep, PaymentError> {
        let page = self.hosted_page(id).await?;
        self.result_step(&page.payment, &page.session).await
    }

    /// Where a payment in its current state sends the browser.
    pub(crate) async fn result_step(
        &self,
        payment: &Payment,
        session: &CheckoutSession,
    ) -> Result<HostedStep, PaymentError> {
        let amount = payment.total().amount_minor().to_string();
        match session.entry {
            CheckoutEntry::Api => match payment.status {
                PaymentStatus::Ready => Ok(HostedStep::Retry(RetryReason::None)),
                PaymentStatus::Aborted | PaymentStatus::Expired | PaymentStatus::Canceled => {
                    let (code, message) = match &payment.failure {
                        Some(failure) => (failure.code.clone(), failure.message.clone()),
                        None => (
                            payment.status.as_str().to_owned(),
                            "the payment did not complete".to_owned(),
                        ),
                    };
                    let Some(url) = session.fail_url.clone() else {
                        return Ok(HostedStep::Outcome(HostedOutcome::Failed { code }));
                    };
                    Ok(HostedStep::Redirect(append_query(
                        &url,
                        &[
                            ("code", code),
                            ("message", message),
                            ("orderId", payment.order_id.as_str().to_owned()),
                        ],
                    )))
                }
                status => {
                    let Some(url) = session.success_url.clone() else {
                        return Ok(HostedStep::Outcome(match status {
                            PaymentStatus::InProgress => HostedOutcome::Authenticated,
                            PaymentStatus::WaitingForDeposit => HostedOutcome::AwaitingDeposit,
                            _ => HostedOutcome::Approved,
                        }));
                    };
                    Ok(HostedStep::Redirect(append_query(
                        &url,
                        &[
                            ("paymentKey", payment.id.to_string()),
                            ("orderId", payment.order_id.as_str().to_owned()),
                            ("amount", amount),
                        ],
                    )))
                }
            },
            CheckoutEntry::Form => {
                let url = session.return_url.clone().unwrap_or_default();
                let key = self.checkout_key_for(payment.merchant_id, payment.mode).await?;
                match payment.status {
                    PaymentStatus::Ready => Ok(HostedStep::Retry(RetryReason::None)),
                    PaymentStatus::InProgress => Ok(HostedStep::Pending),
                    PaymentStatus::Aborted | PaymentStatus::Expired => {
                        let code = payment
                            .failure
                            .as_ref()
                            .map(|f| f.code.clone())
                            .unwrap_or_else(|| "EXPIRED".into());
                        let message = payment.failure.as_ref().map(|f| f.message.clone()).unwrap_or_default();
                        let signature = Self::sign(&key, &format!("|{}|{}|FAILED", payment.order_id.as_str(), amount))?;
                        Ok(HostedStep::Redirect(append_query(
                            &url,
                            &[
                                ("orderId", payment.order_id.as_str().to_owned()),
                                ("amount", amount),
                                ("status", "FAILED".into()),
                                ("code", code),
                                ("message", message),
                                ("signature", signature),
                            ],
                        )))
                    }
                    status => {
                        let status = status.as_str();
                        let message = format!("{}|{}|{}|{}", payment.id, payment.order_id.as_str(), amount, status);
                        let signature = Self::sign(&key, &message)?;
                        Ok(HostedStep::Redirect(append_query(
                            &url,
                            &[
                                ("paymentKey", payment.id.to_string()),
                                ("orderId", payment.order_id.as_str().to_owned()),
                                ("amount", amount),
                                ("status", status.to_owned()),
                                ("signature", signature),
                            ],
                        )))
                    }
                }
            }
        }
    }

    /// The public receipt URL token of a payment: unguessable, derived, never stored.
    pub fn receipt_token(&self, id: PaymentId) -> String {
        let Ok(mut mac) = HmacSha256::new_from_slice(&self.receipt_key) else {
            return String::new();
        };
        mac.update(format!("receipt:{id}").as_bytes());
        hex::encode(&mac.finalize().into_bytes()[..16])
    }

    pub fn receipt_url(&self, id: PaymentId) -> String {
        format!(
            "{}/receipts/{id}/{}",
            self.payments.checkout_base_url.trim_end_matches('/'),
            self.receipt_token(id)
        )
    }

    /// A payment for its receipt page, if the token matches.
    pub async fn receipt(
        &self,
        id: PaymentId,
        token: &str,
    ) -> Result<
        (
            super::PaymentView,
            Merchant,
            Option<paygate_domain::merchant::BusinessProfile>,
        ),
        PaymentError,
    > {
        let expected = self.receipt_token(id);
        if !bool::from(expected.as_bytes().ct_eq(token.as_bytes())) {
            return Err(PaymentError::NotFound);
        }
        let payment = self.store().payment_by_id(id).await?.ok_or(PaymentError::NotFound)?;
        let merchant = self
            .store()
            .merchant(payment.merchant_id)
            .await?
            .ok_or(PaymentError::NotFound)?;
        let business = self.store().business_profile(payment.merchant_id).await?;
        Ok((self.view(payment).await?, merchant, business))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_appending_and_encoding() {
        assert_eq!(
            append_query("https://a/r", &[("x", "1 2".into())]),
            "https://a/r?x=1%202"
        );
        assert_eq!(
            append_query("https://a/r?y=1", &[("x", "가".into())]),
            "https://a/r?y=1&x=%EA%B0%80"
        );
        assert_eq!(percent_encode("order-1_a.b~"), "order-1_a.b~");
    }
}
