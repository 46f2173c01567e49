//! Key-in (비인증) approval: the merchant sends the card; paygate routes, records, calls the acquirer.

use paygate_connectors::CardData;
use paygate_domain::card::{CardExpiry, CardNumber, CardPassword, IdentityNumber, Installment};
use paygate_domain::customer::CustomerEmail;
use paygate_domain::id::PaymentId;
use paygate_domain::money::Money;
use paygate_domain::order::{OrderId, OrderName};
use paygate_domain::payment::{NewPayment, Payment};
use paygate_domain::time::DurationMs;
use paygate_domain::vat::VatSplit;
use paygate_store::{IdempotencyResource, InsertPaymentOutcome, PaymentInsert, StoreError};

use super::{PaymentAnswer, PaymentClaim, PaymentError, PaymentIdempotency, PaymentView, Start};
use crate::auth::Caller;
use crate::idempotency::{Answer, IdempotencyRefusal};
use crate::App;

/// The card as the merchant sent it, in clear fields or decrypted from `encData`.
#[derive(Clone)]
pub struct CardFields {
    pub card_number: String,
    pub expiration_year: String,
    pub expiration_month: String,
    pub identity_number: Option<String>,
    pub password: Option<String>,
}

impl std::fmt::Debug for CardFields {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CardFields([REDACTED])")
    }
}

#[derive(Clone, Debug)]
pub struct KeyInRequest {
    pub amount: i64,
    pub order_id: String,
    pub order_name: String,
    pub card: CardFields,
    pub installment_months: u8,
    pub tax_free_amount: Option<i64>,
    pub vat: Option<i64>,
    pub customer_name: Option<String>,
    pub customer_email: Option<String>,
    /// Overrides the merchant's notification URL for this payment.
    pub notification_url: Option<String>,
}

/// The optional parts of a new payment.
pub(crate) struct PaymentExtras {
    pub customer_name: Option<String>,
    pub customer_email: Option<String>,
    /// Already checked against the SSRF guard.
    pub notification_url: Option<String>,
}

/// Validated card data: what the acquirer gets, and what the payment keeps.
pub(crate) struct ParsedCard {
    pub number: CardNumber,
    pub data: CardData,
}

fn invalid(code: &'static str, param: &'static str, message: impl Into<String>) -> PaymentError {
    PaymentError::Invalid {
        code,
        param,
        message: message.into(),
    }
}

impl App {
    pub(crate) fn parse_card(&self, fields: &CardFields) -> Result<ParsedCard, PaymentError> {
        let number = CardNumber::parse(&fields.card_number)
            .map_err(|e| invalid("INVALID_CARD_NUMBER", "cardNumber", e.to_string()))?;
        let expiry = CardExpiry::parse(&fields.expiration_year, &fields.expiration_month)
            .map_err(|e| invalid("INVALID_CARD_EXPIRATION", "cardExpirationYear", e.to_string()))?;
        let password = fields
            .password
            .as_deref()
            .map(CardPassword::parse)
            .transpose()
            .map_err(|e| invalid("INVALID_FIELD_VALUE", "cardPassword", e.to_string()))?;
        let identity = fields
            .identity_number
            .as_deref()
            .map(IdentityNumber::parse)
            .transpose()
            .map_err(|e| invalid("INVALID_FIELD_VALUE", "customerIdentityNumber", e.to_string()))?;
        let data = CardData {
            number: number.expose_digits().to_owned(),
            expiry_year: expiry.year(),
            expiry_month: expiry.month(),
            password_two_digits: password.map(|p| p.expose_digits().to_owned()),
            identity_number: identity.map(|i| i.expose_digits().to_owned()),
        };
        Ok(ParsedCard { number, data })
    }

    pub(crate) fn parse_amounts(
        &self,
        amount: i64,
        tax_free: Option<i64>,
        vat: Option<i64>,
    ) -> Result<VatSplit, PaymentError> {
        let total = self.money(amount, "amount")?;
        let tax_free = Money::krw(tax_free.unwrap_or(0));
        let split = match vat {
            Some(vat) => VatSplit::with_explicit_vat(total, tax_free, Money::krw(vat)),
            None => VatSplit::compute(total, tax_free),
        };
        split.map_err(|e| {
            invalid(
                "INVALID_FIELD_VALUE",
                if vat.is_some() { "vat" } else { "taxFreeAmount" },
                e.to_string(),
            )
        })
    }

    pub(crate) fn new_payment(
        &self,
        owner: (paygate_domain::id::MerchantId, paygate_domain::api_key::Mode),
        order_id: &str,
        order_name: &str,
        amounts: VatSplit,
        installment: Installment,
        extras: PaymentExtras,
    ) -> Result<NewPayment, PaymentError> {
        let order_id =
            OrderId::parse(order_id).map_err(|e| invalid("INVALID_FIELD_VALUE", "orderId", e.to_string()))?;
        let order_name =
            OrderName::parse(order_name).map_err(|e| invalid("INVALID_FIELD_VALUE", "orderName", e.to_string()))?;
        let bounded = |value: Option<String>, param: &'static str| match value {
            Some(text) if text.chars().count() > 100 => {
                Err(invalid("INVALID_FIELD_VALUE", param, format!("`{param}` is too long")))
            }
            other => Ok(other),
        };
        let now = self.clock().now();
        Ok(NewPayment {
            id: PaymentId::new(now, crate::random_bytes()),
            merchant_id: owner.0,
            mode: owner.1,
            order_id,
            order_name,
            amounts,
            installment,
            customer_name: bounded(extras.customer_name, "customerName")?,
            customer_email: extras
                .customer_email
                .map(|email| CustomerEmail::parse(&email).map(CustomerEmail::into_string))
                .transpose()
                .map_err(|e| invalid("INVALID_FIELD_VALUE", "customerEmail", e.to_string()))?,
            notification_url: extras.notification_url,
            now,
        })
    }

    /// Approves a key-in payment. Returns the payment DONE, or IN_PROGRESS with an unknown outcome; a decline is
    /// an error that still carries the (ABORTED) payment. Under an `Idempotency-Key`, the key is claimed with the
    /// payment's first write and the answer stored with its outcome (two commits in all).
    pub async fn key_in(
        &self,
        caller: &Caller,
        request: KeyInRequest,
        idempotency: Option<PaymentIdempotency>,
    ) -> PaymentAnswer {
        if caller.key.kind != paygate_domain::api_key::KeyKind::Secret {
            return Err(PaymentError::Forbidden);
        }
        let claim = match self.start_creating_request(caller, idempotency).await? {
            Start::Run(claim) => claim,
            Start::Answer(answer) => return Ok(*answer),
        };
        let amounts = self.parse_amounts(request.amount, request.tax_free_amount, request.vat)?;
        let installment = Installment::new(request.installment_months)
            .map_err(|e| invalid("INVALID_FIELD_VALUE", "cardInstallmentPlan", e.to_string()))?;
        let card = self.parse_card(&request.card)?;
        let notification_url = self.check_notification_url(request.notification_url).await?;
        let new = self.new_payment(
            (caller.merchant.id, caller.key.mode),
            &request.order_id,
            &request.order_name,
            amounts,
            installment,
            PaymentExtras {
                customer_name: request.customer_name,
                customer_email: request.customer_email,
                notification_url,
            },
        )?;
        let route = self.route(caller.merchant.id, caller.key.mode, &card.number).await?;
        let inquire_after = new
            .now
            .saturating_add(DurationMs::from_millis(self.payments.first_inquiry_delay_ms));
        let now = new.now;
        let payment = Payment::key_in(new, card.number.summary(), route, inquire_after);
        let mut insert = PaymentInsert::new(payment.clone());
        insert.idempotency = claim.as_ref().map(|c| {
            c.claim(
                IdempotencyResource {
                    payment_id: payment.id,
                    focus: None,
                },
                now,
            )
        });
        if let Some(answer) = self.insert_claimed(caller, &insert, claim.as_ref()).await? {
            return Ok(answer);
        }
        self.run_approval(payment, card.data, false, claim.as_ref())
            .await
            .map(Answer::Fresh)
    }

    /// Inserts a new payment with its claim. `Some` when the request must answer otherwise: its key went to a
    /// concurrent request (the same request retried, typically), which decides the answer.
    pub(crate) async fn insert_claimed(
        &self,
        caller: &Caller,
        insert: &PaymentInsert,
        claim: Option<&PaymentClaim>,
    ) -> Result<Option<Answer<PaymentView>>, PaymentError> {
        let lost = match self.store().insert_payment(insert).await {
            Ok(InsertPaymentOutcome::Inserted) => return Ok(None),
            Ok(InsertPaymentOutcome::DuplicateOrderId) => PaymentError::DuplicateOrderId,
            Err(StoreError::IdempotencyConflict) => PaymentError::Idempotency(IdempotencyRefusal::InFlight),
            Err(other) => return Err(other.into()),
        };
        let Some(claim) = claim else {
            return Err(lost);
        };
        match self.restart_payment_request(caller, claim).await? {
            Some(answer) => Ok(Some(answer)),
            None => Err(lost),
        }
    }
}
