//! The two-step flow: the merchant creates a payment, the buyer authenticates a card on paygate's side, the
//! merchant confirms within the window. Until confirmation the card is kept sealed in the vault, then deleted.

use paygate_connectors::CardData;
use paygate_domain::api_key::KeyKind;
use paygate_domain::card::Installment;
use paygate_domain::id::PaymentId;
use paygate_domain::order::OrderId;
use paygate_domain::payment::Payment;
use paygate_domain::time::DurationMs;
use paygate_store::{
    CheckoutCardChange, CheckoutSession, IdempotencyResource, InsertPaymentOutcome, PaymentInsert, PaymentUpdate,
    StoreError,
};

use super::command::{AuthenticateCommand, ConfirmCommand, CreateCommand, FieldError, FieldReason, RedirectUrl};
use super::keyin::PaymentExtras;
use super::{InternalError, PaymentAnswer, PaymentClaim, PaymentError, PaymentIdempotency, PaymentView, Start};
use crate::auth::Caller;
use crate::idempotency::{Answer, IdempotencyRefusal};

/// What creating a checkout payment gave: the payment, or (its key lost to a concurrent request) that request's
/// answer.
pub(crate) enum Created {
    Payment(Payment),
    Answer(Answer<PaymentView>),
}
use crate::App;

/// `scheme://host[:port]` of an absolute http(s) URL, lowercase, exactly as written (no default port added):
/// compared with the merchant's registered origins. Anything before the path counts, so a URL with credentials
/// (`https://shop.example@evil.example/`) never matches a registered origin.
pub(crate) fn origin_of(url: &str) -> String {
    let lower = url.to_ascii_lowercase();
    let Some((scheme, rest)) = lower.split_once("://") else {
        return String::new();
    };
    let authority = rest.split(['/', '?', '#', '\\']).next().unwrap_or_default();
    format!("{scheme}://{authority}")
}

// A checkout's card is sealed with number and expiry only (`Vault::seal_card`): the buyer's authentication stands
// in for the password digits and identity number, which are never taken on this path, let alone stored.

fn purpose(id: PaymentId) -> String {
    format!("checkout-card:{id}")
}

impl App {
    pub fn checkout_url(&self, payment: &Payment) -> String {
        format!(
            "{}/checkout/{}",
            self.payments.checkout_base_url.trim_end_matches('/'),
            payment.id
        )
    }

    /// Creates a READY payment for the buyer to authenticate. Client keys (the browser SDK) may do this — it is
    /// the one thing they may do — and must give `successUrl` and `failUrl`.
    pub async fn create_checkout(
        &self,
        caller: &Caller,
        command: CreateCommand,
        idempotency: Option<PaymentIdempotency>,
    ) -> PaymentAnswer {
        let claim = match self.start_creating_request(caller, idempotency).await? {
            Start::Run(claim) => claim,
            Start::Answer(answer) => return Ok(*answer),
        };
        if caller.key.kind != KeyKind::Secret {
            self.check_browser_request(caller, &command).await?;
        }
        let success_url = command.success_url.clone().map(RedirectUrl::into_string);
        let fail_url = command.fail_url.clone().map(RedirectUrl::into_string);
        let method = command.method;
        let session =
            |id| CheckoutSession::api(id, success_url.clone(), fail_url.clone(), self.clock().now()).asking_for(method);
        let created = self
            .create_checkout_for(
                (caller.merchant.id, caller.key.mode),
                command,
                session,
                claim.as_ref().map(|c| (caller, c)),
            )
            .await?;
        match created {
            Created::Payment(payment) => Ok(Answer::Fresh(PaymentView {
                virtual_account: None,
                payment,
                transactions: Vec::new(),
                focus: None,
                cash_receipts: Vec::new(),
            })),
            Created::Answer(answer) => Ok(answer),
        }
    }

    /// What a client key (the browser, so anyone) may not choose: where the notification goes (the merchant's
    /// settings decide), and where the browser goes afterwards unless it is an origin the merchant registered.
    async fn check_browser_request(&self, caller: &Caller, command: &CreateCommand) -> Result<(), PaymentError> {
        let redirects = [("successUrl", &command.success_url), ("failUrl", &command.fail_url)];
        if let Some((param, _)) = redirects.iter().find(|(_, url)| url.is_none()) {
            return Err(FieldError::new(
                param,
                FieldReason::Missing,
                "a browser-started payment needs successUrl and failUrl",
            )
            .into());
        }
        if command.notification_url.is_some() {
            return Err(FieldError::invalid(
                "notificationUrl",
                "a client key cannot set notificationUrl; the merchant's settings apply",
            )
            .into());
        }
        let settings = self
            .store()
            .merchant_settings(caller.merchant.id, caller.key.mode)
            .await?;
        for (param, url) in redirects {
            let Some(url) = url else { continue };
            if !settings.redirect_origins.contains(&origin_of(url.as_str())) {
                return Err(FieldError::new(
                    param,
                    FieldReason::InvalidUrl,
                    format!("`{param}` must be on an origin registered in the merchant's redirectOrigins"),
                )
                .into());
            }
        }
        Ok(())
    }

    /// Creates a READY checkout payment and its session, and under a key records the answer, in one transaction.
    pub(crate) async fn create_checkout_for(
        &self,
        owner: (paygate_domain::id::MerchantId, paygate_domain::api_key::Mode),
        command: CreateCommand,
        session: impl Fn(PaymentId) -> CheckoutSession,
        claim: Option<(&Caller, &PaymentClaim)>,
    ) -> Result<Created, PaymentError> {
        let amounts = self.check_amounts(command.amounts)?;
        let notification_url = self.check_notification_url(command.notification_url).await?;
        let new = self.new_payment(
            owner,
            (command.order_id, command.order_name),
            amounts,
            Installment::LUMP_SUM,
            PaymentExtras {
                customer: command.customer,
                notification_url,
                order: command.extras,
            },
        );
        let expires_at = new
            .now
            .saturating_add_secs(u64::from(self.payments.checkout_ready_secs));
        let now = new.now;
        let payment = Payment::checkout(new, expires_at).asking_for(command.method);
        let mut insert = PaymentInsert::new(payment.clone());
        insert.checkout_session = Some(session(payment.id));
        if let Some((_, claim)) = claim {
            let answer = Ok(PaymentView {
                virtual_account: None,
                payment: payment.clone(),
                transactions: Vec::new(),
                focus: None,
                cash_receipts: Vec::new(),
            });
            let resource = IdempotencyResource {
                payment_id: payment.id,
                focus: None,
            };
            insert.idempotency = Some(claim.record(Some(resource), &answer, now));
        }
        match claim {
            Some((caller, claim)) => {
                if let Some(answer) = self.insert_claimed(caller, &insert, Some(claim)).await? {
                    return Ok(Created::Answer(answer));
                }
            }
            None => match self.store().insert_payment(&insert).await? {
                InsertPaymentOutcome::Inserted => {}
                InsertPaymentOutcome::DuplicateOrderId => return Err(PaymentError::DuplicateOrderId),
            },
        }
        Ok(Created::Payment(payment))
    }

    /// The buyer's side: attaches and authenticates a card. Allowed with the merchant's client or secret key.
    /// (The hosted page calls this on the buyer's behalf.)
    pub async fn authenticate_checkout(
        &self,
        caller: &Caller,
        id: PaymentId,
        command: AuthenticateCommand,
        idempotency: Option<PaymentIdempotency>,
    ) -> PaymentAnswer {
        let claim = match self.start_payment_request(caller, idempotency).await? {
            Start::Run(claim) => claim,
            Start::Answer(answer) => return Ok(*answer),
        };
        let payment = self
            .store()
            .payment(caller.merchant.id, caller.key.mode, id)
            .await?
            .ok_or(PaymentError::NotFound)?;
        let installment = command.installment;
        let card = command.card;
        let route = self.route(payment.merchant_id, payment.mode, &card.number).await?;
        let now = self.clock().now();
        let confirm_by = now.saturating_add_secs(u64::from(self.payments.confirm_window_secs));
        let next = payment.authenticated(card.number.summary(), installment, route, now, confirm_by)?;
        let sealed = self.vault.seal_card(&purpose(id), &card.card_data())?;
        let mut update = PaymentUpdate::new(payment.version, next.clone());
        update.checkout_card = CheckoutCardChange::Store(sealed);
        let answer = Ok(PaymentView {
            virtual_account: None,
            payment: next.clone(),
            transactions: Vec::new(),
            focus: None,
            cash_receipts: Vec::new(),
        });
        update.idempotency = claim.as_ref().map(|c| {
            let resource = IdempotencyResource {
                payment_id: id,
                focus: None,
            };
            c.record(Some(resource), &answer, now)
        });
        match self.commit(&payment, update).await {
            Ok(()) => answer.map(Answer::Fresh),
            Err(StoreError::IdempotencyConflict) => match claim {
                Some(claim) => self
                    .restart_payment_request(caller, &claim)
                    .await?
                    .ok_or(PaymentError::Concurrent),
                None => Err(PaymentError::Concurrent),
            },
            Err(StoreError::Conflict(_)) => Err(PaymentError::Concurrent),
            Err(other) => Err(other.into()),
        }
    }

    /// The merchant's confirm: `{paymentKey, orderId, amount}`.
    pub async fn confirm(
        &self,
        caller: &Caller,
        id: PaymentId,
        command: ConfirmCommand,
        idempotency: Option<PaymentIdempotency>,
    ) -> PaymentAnswer {
        if caller.key.kind != KeyKind::Secret {
            return Err(PaymentError::Forbidden);
        }
        let claim = match self.start_payment_request(caller, idempotency).await? {
            Start::Run(claim) => claim,
            Start::Answer(answer) => return Ok(*answer),
        };
        let payment = self
            .store()
            .payment(caller.merchant.id, caller.key.mode, id)
            .await?
            .ok_or(PaymentError::NotFound)?;
        let amount = self.check_amount(command.amount, "amount")?;
        let view = match self
            .confirm_payment(payment, &command.order_id, amount, claim.as_ref())
            .await
        {
            Err(PaymentError::Idempotency(_)) if claim.is_some() => {
                let claim = claim.as_ref().ok_or(PaymentError::Concurrent)?;
                return self
                    .restart_payment_request(caller, claim)
                    .await?
                    .ok_or(PaymentError::Concurrent);
            }
            other => other?,
        };
        Ok(Answer::Fresh(view))
    }

    /// Moves an authenticated payment to approval (only one caller ever gets past the version check), then calls
    /// the acquirer with the sealed card.
    pub(crate) async fn confirm_payment(
        &self,
        payment: Payment,
        order_id: &OrderId,
        amount: paygate_domain::money::Money,
        claim: Option<&PaymentClaim>,
    ) -> Result<PaymentView, PaymentError> {
        if payment.method != paygate_domain::payment::PaymentMethod::Card {
            return self.confirm_bank_payment(payment, order_id, amount, claim).await;
        }
        let id = payment.id;
        let now = self.clock().now();
        let inquire_after = now.saturating_add(DurationMs::from_millis(self.payments.first_inquiry_delay_ms));
        let requested = payment.confirm_requested(order_id, amount, now, inquire_after)?;
        let mut update = PaymentUpdate::new(payment.version, requested.clone());
        update.idempotency = claim.map(|c| {
            c.claim(
                IdempotencyResource {
                    payment_id: id,
                    focus: None,
                },
                now,
            )
        });
        match self.commit_before_approval(&payment, update).await {
            Ok(()) => {}
            Err(StoreError::IdempotencyConflict) => return Err(IdempotencyRefusal::InFlight.into()),
            // A concurrent confirm (or the expiry worker) won; only one approval is ever requested.
            Err(StoreError::Conflict(_)) => return Err(PaymentError::Concurrent),
            Err(other) => return Err(other.into()),
        }
        let sealed = self
            .store()
            .checkout_card(id)
            .await?
            .ok_or_else(|| InternalError::Invariant("an authenticated payment has no sealed card".into()))?;
        let data = self.open_card(&purpose(id), &sealed).await?;
        self.run_approval(requested, data, true, claim).await
    }

    /// Seals a buyer's card for a payment (number and expiry only).
    pub(crate) fn seal_checkout_card(
        &self,
        id: PaymentId,
        card: &CardData,
    ) -> Result<paygate_store::Sealed, PaymentError> {
        Ok(self.vault.seal_card(&purpose(id), card)?)
    }

    /// Opens a checkout's sealed card.
    pub(crate) async fn open_checkout_card(&self, id: PaymentId) -> Result<Option<CardData>, PaymentError> {
        let Some(sealed) = self.store().checkout_card(id).await? else {
            return Ok(None);
        };
        Ok(Some(self.open_card(&purpose(id), &sealed).await?))
    }
}
