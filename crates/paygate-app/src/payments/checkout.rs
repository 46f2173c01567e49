//! The two-step flow: the merchant creates a payment, the buyer authenticates a card on paygate's side, the
//! merchant confirms within the window. Until confirmation the card is kept sealed in the vault, then deleted.

use paygate_connectors::CardData;
use paygate_domain::api_key::KeyKind;
use paygate_domain::card::Installment;
use paygate_domain::id::PaymentId;
use paygate_domain::order::OrderId;
use paygate_domain::payment::Payment;
use paygate_domain::time::DurationMs;
use paygate_store::{CheckoutCardChange, InsertPaymentOutcome, PaymentUpdate, StoreError};
use serde::{Deserialize, Serialize};

use super::keyin::{CardFields, PaymentExtras};
use super::{InternalError, PaymentError, PaymentView};
use crate::auth::Caller;
use crate::App;

#[derive(Clone, Debug)]
pub struct CreateRequest {
    pub amount: i64,
    pub order_id: String,
    pub order_name: String,
    pub tax_free_amount: Option<i64>,
    pub vat: Option<i64>,
    pub customer_name: Option<String>,
    pub customer_email: Option<String>,
    /// Overrides the merchant's notification URL for this payment.
    pub notification_url: Option<String>,
}

/// The buyer's card for a checkout: number and expiry (no password digits or identity number: the buyer's
/// authentication replaces them).
#[derive(Clone, Debug)]
pub struct AuthenticateRequest {
    pub card: CardFields,
    pub installment_months: u8,
}

/// The sealed form of a checkout's card: number and expiry only. The buyer's authentication stands in for the
/// password digits and identity number, which are never taken on this path, let alone stored.
#[derive(Serialize, Deserialize)]
struct SealedCard {
    number: String,
    expiry_year: u16,
    expiry_month: u8,
}

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

    /// Creates a READY payment for the buyer to authenticate.
    pub async fn create_checkout(&self, caller: &Caller, request: CreateRequest) -> Result<PaymentView, PaymentError> {
        if caller.key.kind != KeyKind::Secret {
            return Err(PaymentError::Forbidden);
        }
        let amounts = self.parse_amounts(request.amount, request.tax_free_amount, request.vat)?;
        let notification_url = self.check_notification_url(request.notification_url).await?;
        let new = self.new_payment(
            caller,
            &request.order_id,
            &request.order_name,
            amounts,
            Installment::LUMP_SUM,
            PaymentExtras {
                customer_name: request.customer_name,
                customer_email: request.customer_email,
                notification_url,
            },
        )?;
        let expires_at = new
            .now
            .saturating_add_secs(u64::from(self.payments.checkout_ready_secs));
        let payment = Payment::checkout(new, expires_at);
        match self.store().insert_payment(&payment, None).await? {
            InsertPaymentOutcome::Inserted => self.view(payment).await,
            InsertPaymentOutcome::DuplicateOrderId => Err(PaymentError::DuplicateOrderId),
        }
    }

    /// The buyer's side: attaches and authenticates a card. Allowed with the merchant's client or secret key.
    /// (The hosted page calls this on the buyer's behalf.)
    pub async fn authenticate_checkout(
        &self,
        caller: &Caller,
        id: PaymentId,
        request: AuthenticateRequest,
    ) -> Result<PaymentView, PaymentError> {
        let payment = self
            .store()
            .payment(caller.merchant.id, caller.key.mode, id)
            .await?
            .ok_or(PaymentError::NotFound)?;
        let installment = Installment::new(request.installment_months).map_err(|e| PaymentError::Invalid {
            code: "INVALID_FIELD_VALUE",
            param: "cardInstallmentPlan",
            message: e.to_string(),
        })?;
        let card = self.parse_card(&request.card)?;
        let route = self.route(payment.merchant_id, payment.mode, &card.number).await?;
        let now = self.clock().now();
        let confirm_by = now.saturating_add_secs(u64::from(self.payments.confirm_window_secs));
        let next = payment.authenticated(card.number.summary(), installment, route, now, confirm_by)?;
        let sealed_card = SealedCard {
            number: card.data.number.clone(),
            expiry_year: card.data.expiry_year,
            expiry_month: card.data.expiry_month,
        };
        let plaintext = serde_json::to_vec(&sealed_card).map_err(|e| InternalError::Invariant(e.to_string()))?;
        let sealed = self.vault.seal(&purpose(id), &plaintext)?;
        let mut update = PaymentUpdate::new(payment.version, next.clone());
        update.checkout_card = CheckoutCardChange::Store(sealed);
        match self.commit(&payment, update.clone()).await {
            Ok(()) => self.view(next).await,
            Err(StoreError::Conflict(_)) => Err(PaymentError::Concurrent),
            Err(other) => Err(other.into()),
        }
    }

    /// The merchant's confirm: `{paymentKey, orderId, amount}`.
    pub async fn confirm(
        &self,
        caller: &Caller,
        id: PaymentId,
        order_id: &str,
        amount: i64,
    ) -> Result<PaymentView, PaymentError> {
        if caller.key.kind != KeyKind::Secret {
            return Err(PaymentError::Forbidden);
        }
        let payment = self
            .store()
            .payment(caller.merchant.id, caller.key.mode, id)
            .await?
            .ok_or(PaymentError::NotFound)?;
        let order_id = OrderId::parse(order_id)
            .map_err(|_| PaymentError::Rule(paygate_domain::payment::PaymentRuleError::OrderMismatch))?;
        let amount = self.money(amount, "amount")?;
        let now = self.clock().now();
        let inquire_after = now.saturating_add(DurationMs::from_millis(self.payments.first_inquiry_delay_ms));
        let requested = payment.confirm_requested(&order_id, amount, now, inquire_after)?;
        match self
            .commit(&payment, PaymentUpdate::new(payment.version, requested.clone()))
            .await
        {
            Ok(()) => {}
            // A concurrent confirm (or the expiry worker) won; only one approval is ever requested.
            Err(StoreError::Conflict(_)) => return Err(PaymentError::Concurrent),
            Err(other) => return Err(other.into()),
        }
        let sealed = self
            .store()
            .checkout_card(id)
            .await?
            .ok_or_else(|| InternalError::Invariant("an authenticated payment has no sealed card".into()))?;
        let plaintext = self.vault.open(&purpose(id), &sealed)?;
        let card: SealedCard =
            serde_json::from_slice(&plaintext).map_err(|e| InternalError::Invariant(e.to_string()))?;
        let data = CardData {
            number: card.number,
            expiry_year: card.expiry_year,
            expiry_month: card.expiry_month,
            password_two_digits: None,
            identity_number: None,
        };
        let payment = self.run_approval(requested, data, true).await?;
        self.view(payment).await
    }
}
