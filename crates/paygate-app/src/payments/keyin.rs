//! Key-in (비인증) approval: the merchant sends the card; paygate routes, records, calls the acquirer.

use paygate_domain::card::Installment;
use paygate_domain::id::PaymentId;
use paygate_domain::order::{OrderId, OrderName};
use paygate_domain::payment::{NewPayment, OrderExtras, Payment};
use paygate_domain::time::DurationMs;
use paygate_domain::vat::VatSplit;
use paygate_store::{IdempotencyResource, InsertPaymentOutcome, PaymentInsert, StoreError};

use super::command::{CardSource, ClearCard, Customer, KeyInCommand};
use super::{PaymentAnswer, PaymentClaim, PaymentError, PaymentIdempotency, PaymentView, Start};
use crate::auth::Caller;
use crate::idempotency::{Answer, IdempotencyRefusal};
use crate::App;

/// The optional parts of a new payment.
pub(crate) struct PaymentExtras {
    pub customer: Customer,
    /// Already checked against the SSRF guard.
    pub notification_url: Option<String>,
    pub order: OrderExtras,
}

impl App {
    /// The card of a key-in: as sent, or decrypted from its `encData` with the caller's keys and then parsed like
    /// clear fields.
    async fn card_of(&self, caller: &Caller, source: CardSource) -> Result<ClearCard, PaymentError> {
        match source {
            CardSource::Clear(card) => Ok(card),
            CardSource::EncData(blob) => self.decrypt_card(caller, &blob).await,
        }
    }

    /// The amounts of a new payment, within the configured ceiling.
    pub(crate) fn check_amounts(&self, amounts: VatSplit) -> Result<VatSplit, PaymentError> {
        self.check_amount(amounts.total(), "amount")?;
        Ok(amounts)
    }

    pub(crate) fn new_payment(
        &self,
        owner: (paygate_domain::id::MerchantId, paygate_domain::api_key::Mode),
        order: (OrderId, OrderName),
        amounts: VatSplit,
        installment: Installment,
        extras: PaymentExtras,
    ) -> NewPayment {
        let now = self.clock().now();
        NewPayment {
            id: PaymentId::new(now, crate::random_bytes()),
            merchant_id: owner.0,
            mode: owner.1,
            order_id: order.0,
            order_name: order.1,
            amounts,
            installment,
            customer_name: extras.customer.name.map(|name| name.into_string()),
            customer_email: extras.customer.email.map(|email| email.into_string()),
            notification_url: extras.notification_url,
            extras: extras.order,
            now,
        }
    }

    /// Approves a key-in payment. Returns the payment DONE, or IN_PROGRESS with an unknown outcome; a decline is
    /// an error that still carries the (ABORTED) payment. Under an `Idempotency-Key`, the key is claimed with the
    /// payment's first write and the answer stored with its outcome (two commits in all).
    pub async fn key_in(
        &self,
        caller: &Caller,
        command: KeyInCommand,
        idempotency: Option<PaymentIdempotency>,
    ) -> PaymentAnswer {
        if caller.key.kind != paygate_domain::api_key::KeyKind::Secret {
            return Err(PaymentError::Forbidden);
        }
        let claim = match self.start_creating_request(caller, idempotency).await? {
            Start::Run(claim) => claim,
            Start::Answer(answer) => return Ok(*answer),
        };
        let amounts = self.check_amounts(command.amounts)?;
        let card = self.card_of(caller, command.card).await?;
        let notification_url = self.check_notification_url(command.notification_url).await?;
        let new = self.new_payment(
            (caller.merchant.id, caller.key.mode),
            (command.order_id, command.order_name),
            amounts,
            command.installment,
            PaymentExtras {
                customer: command.customer,
                notification_url,
                order: command.extras,
            },
        );
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
        self.run_approval(payment, card.card_data(), false, claim.as_ref())
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
