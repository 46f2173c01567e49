//! Billing keys (빌링키, 자동결제): issuing one for a card (checked with the issuer first), looking it up, deleting it,
//! and charging it without the buyer.
//!
//! - Issuing verifies the card with the acquirer that would charge it (no money moves), seals the card's number and
//!   expiry in the vault (never the password digits or the identity number), and writes the key, its sealed card,
//!   the `BILLING_ISSUED` event and the request's stored answer in one transaction.
//! - Deleting erases the sealed card in the statement that marks the key deleted, with the `BILLING_DELETED` event
//!   (Toss's shape) in the same transaction. A deleted key is never charged again.
//! - A charge is a key-in payment with the key's card, marked merchant-initiated for the acquirer: it is written
//!   before the acquirer is called, and an unknown outcome is resolved by inquiry exactly like a key-in's. The key
//!   is looked up by merchant and mode, so another merchant's key is simply not found, and its `customerKey` must
//!   match.

pub mod hosted;
pub mod wire;

use paygate_connectors::{CardData, DeclineCode, VerifyOutcome, VerifyRequest};
use paygate_domain::api_key::KeyKind;
use paygate_domain::billing::{
    BillingCharge, BillingKey, BillingKeyStatus, BillingRuleError, CardFacts, CustomerKey, NewBillingKey, Registration,
};
use paygate_domain::card::{CardNumber, Installment};
use paygate_domain::event::EventType;
use paygate_domain::id::{BillingKeyId, EventId};
use paygate_domain::order::{OrderId, OrderName};
use paygate_domain::payment::{OrderExtras, Payment};
use paygate_domain::time::{DurationMs, UnixMillis};
use paygate_domain::vat::VatSplit;
use paygate_store::{BillingKeyInsert, BillingKeyUpdate, IdempotencyResource, NewEvent, PaymentInsert, StoreError};

use crate::auth::Caller;
use crate::idempotency::{Answer, IdempotencyRefusal, Idempotent, Once};
use crate::payments::command::{ClearCard, Customer, FieldError};
use crate::payments::keyin::PaymentExtras;
use crate::payments::{InternalError, PaymentAnswer, PaymentError, PaymentIdempotency, Start};
use crate::App;

/// Toss's `reason` of a `BILLING_DELETED` event sent because the merchant called the delete API.
pub const DELETED_BY_API: &str = "삭제 API 요청";
/// Keys listed per customer at most.
pub const CUSTOMER_KEYS_MAX: u32 = 100;

/// Issue a billing key for a card the merchant sends (`POST /v1/billing/authorizations/card`).
#[derive(Clone, Debug)]
pub struct IssueCardCommand {
    pub customer_key: CustomerKey,
    /// Checked with the issuer, then sealed with number and expiry only.
    pub card: ClearCard,
    pub customer: Customer,
}

/// Charge a billing key (`POST /v1/billing/{billingKey}`).
#[derive(Clone, Debug)]
pub struct ChargeCommand {
    pub customer_key: CustomerKey,
    pub amounts: VatSplit,
    pub order_id: OrderId,
    pub order_name: OrderName,
    pub installment: Installment,
    pub customer: Customer,
    pub extras: OrderExtras,
}

/// Why issuing, reading or deleting a billing key failed. (A charge fails with a [`PaymentError`], like every
/// payment.)
#[derive(Debug, thiserror::Error)]
pub enum BillingError {
    #[error(transparent)]
    Field(#[from] FieldError),
    #[error("no such billing key")]
    NotFound,
    #[error("the issuer refused the card: {message}")]
    Declined {
        code: DeclineCode,
        message: String,
        acquirer_code: String,
    },
    #[error("the card could not be checked with its issuer; nothing was registered, retrying is safe")]
    AcquirerUnavailable,
    #[error("no acquirer serves this card for the merchant")]
    NoRoute,
    #[error("client keys cannot manage billing keys")]
    Forbidden,
    /// The `authKey` is no longer exchangeable: expired, or its registration did not authenticate.
    #[error("the authKey cannot be exchanged (expired, or not authenticated)")]
    InvalidAuth,
    #[error("the customerKey is not the one the registration was started for")]
    CustomerKeyMismatch,
    #[error("another request changed the billing key at the same time; retry")]
    Concurrent,
    #[error(transparent)]
    Idempotency(#[from] IdempotencyRefusal),
    #[error(transparent)]
    Internal(#[from] InternalError),
}

impl BillingError {
    /// A copy to render an answer from; an internal cause keeps only its description.
    pub fn clone_for_answer(&self) -> BillingError {
        match self {
            BillingError::Field(field) => BillingError::Field(field.clone()),
            BillingError::NotFound => BillingError::NotFound,
            BillingError::Declined {
                code,
                message,
                acquirer_code,
            } => BillingError::Declined {
                code: *code,
                message: message.clone(),
                acquirer_code: acquirer_code.clone(),
            },
            BillingError::AcquirerUnavailable => BillingError::AcquirerUnavailable,
            BillingError::NoRoute => BillingError::NoRoute,
            BillingError::Forbidden => BillingError::Forbidden,
            BillingError::InvalidAuth => BillingError::InvalidAuth,
            BillingError::CustomerKeyMismatch => BillingError::CustomerKeyMismatch,
            BillingError::Concurrent => BillingError::Concurrent,
            BillingError::Idempotency(refusal) => BillingError::Idempotency(*refusal),
            BillingError::Internal(internal) => BillingError::Internal(InternalError::Invariant(internal.to_string())),
        }
    }
}

impl From<StoreError> for BillingError {
    fn from(error: StoreError) -> BillingError {
        BillingError::Internal(error.into())
    }
}

impl From<crate::vault::VaultError> for BillingError {
    fn from(error: crate::vault::VaultError) -> BillingError {
        BillingError::Internal(error.into())
    }
}

/// An issuance request's `Idempotency-Key`, and how its answer is rendered.
pub type BillingIdempotency = Idempotent<BillingKey, BillingError>;

/// The vault purpose of a billing key's card: its sealed bytes cannot be moved to another key.
pub(crate) fn card_purpose(id: BillingKeyId) -> String {
    card_purpose_text(&id.to_string())
}

pub(crate) fn card_purpose_text(id: &str) -> String {
    format!("billing-card:{id}")
}

fn secret_only(caller: &Caller) -> Result<(), BillingError> {
    if caller.key.kind == KeyKind::Secret {
        Ok(())
    } else {
        Err(BillingError::Forbidden)
    }
}

impl App {
    /// Issues a billing key for a card the merchant sent: verified with the issuer, sealed, stored with its
    /// `BILLING_ISSUED` event and the request's answer in one transaction.
    pub async fn issue_billing_key(
        &self,
        caller: &Caller,
        command: IssueCardCommand,
        idempotency: Option<BillingIdempotency>,
    ) -> Result<Answer<BillingKey>, BillingError> {
        secret_only(caller)?;
        let claim = match self.start_once(caller, idempotency).await? {
            Once::Run(claim) => claim,
            Once::Answer(answer) => return Ok(answer),
        };
        let now = self.clock().now();
        let id = BillingKeyId::new(now, crate::random_bytes());
        let card = command.card.card_data();
        let facts = self
            .verify_card_for(
                (caller.merchant.id, caller.key.mode),
                id.to_string(),
                &command.card.number,
                &card,
                false,
            )
            .await?;
        let sealed = self.vault.seal_card(&card_purpose(id), &card)?;
        let key = BillingKey::issue(NewBillingKey {
            id,
            merchant_id: caller.merchant.id,
            mode: caller.key.mode,
            customer_key: command.customer_key,
            registration: Registration::KeyIn,
            card: command.card.number.summary(),
            facts,
            customer_name: command.customer.name.map(|n| n.into_string()),
            customer_email: command.customer.email.map(|e| e.into_string()),
            now,
        });
        let event = self.billing_event(&key, EventType::BillingIssued, None, now)?;
        let answer = Ok(key.clone());
        let insert = BillingKeyInsert {
            key,
            card: sealed,
            events: vec![event],
            idempotency: claim.as_ref().map(|c| c.record(None, &answer, now)),
        };
        match self.store().insert_billing_key(&insert).await {
            Ok(()) => answer.map(Answer::Fresh),
            Err(StoreError::IdempotencyConflict) => match &claim {
                Some(claim) => self.once_after_conflict(claim).await,
                None => Err(BillingError::Concurrent),
            },
            Err(other) => Err(other.into()),
        }
    }

    /// Asks the acquirer that would charge the card whether the issuer accepts it (no money moves). `reference`
    /// names the check (the key being issued, or the registration).
    pub(crate) async fn verify_card_for(
        &self,
        owner: (paygate_domain::id::MerchantId, paygate_domain::api_key::Mode),
        reference: String,
        number: &CardNumber,
        card: &CardData,
        authenticated: bool,
    ) -> Result<CardFacts, BillingError> {
        let (merchant_id, mode) = owner;
        let route = match self.route(merchant_id, mode, number).await {
            Ok(route) => route,
            Err(PaymentError::NoRoute) => return Err(BillingError::NoRoute),
            Err(PaymentError::Internal(internal)) => return Err(BillingError::Internal(internal)),
            Err(other) => return Err(BillingError::Internal(InternalError::Invariant(other.to_string()))),
        };
        let acquirer = self.acquirers.get(mode, &route.acquirer).ok_or(BillingError::NoRoute)?;
        let request = VerifyRequest {
            reference: reference.clone(),
            acquirer_merchant_id: route.acquirer_merchant_id,
            card: card.clone(),
            authenticated,
        };
        match acquirer.verify(&request).await {
            Ok(VerifyOutcome::Verified(v)) => Ok(CardFacts {
                issuer_code: v.issuer_code,
                acquirer_code: v.acquirer_code,
                card_type: v.card_type,
                owner_type: v.owner_type,
            }),
            Ok(VerifyOutcome::Declined(decline)) => Err(BillingError::Declined {
                code: decline.code,
                message: decline.acquirer_message,
                acquirer_code: decline.acquirer_code,
            }),
            // A check moves no money and records nothing a retry could duplicate: whatever happened, nothing
            // was registered, and the merchant may simply try again.
            Err(error) => {
                tracing::warn!(%reference, %error, "card verification failed");
                Err(BillingError::AcquirerUnavailable)
            }
        }
    }

    /// A billing key of the caller's merchant and mode, whatever its status.
    pub async fn billing_key(&self, caller: &Caller, id: BillingKeyId) -> Result<BillingKey, BillingError> {
        secret_only(caller)?;
        self.store()
            .billing_key(caller.merchant.id, caller.key.mode, id)
            .await?
            .ok_or(BillingError::NotFound)
    }

    /// A customer's billing keys, newest first (deleted ones too, with their status).
    pub async fn customer_billing_keys(
        &self,
        caller: &Caller,
        customer_key: &CustomerKey,
    ) -> Result<Vec<BillingKey>, BillingError> {
        secret_only(caller)?;
        Ok(self
            .store()
            .customer_billing_keys(caller.merchant.id, caller.key.mode, customer_key, CUSTOMER_KEYS_MAX)
            .await?)
    }

    /// Deletes a billing key: its sealed card is erased and `BILLING_DELETED` sent. Deleting a deleted key changes
    /// nothing and sends nothing.
    pub async fn delete_billing_key(&self, caller: &Caller, id: BillingKeyId) -> Result<BillingKey, BillingError> {
        let key = self.billing_key(caller, id).await?;
        if key.status == BillingKeyStatus::Deleted {
            return Ok(key);
        }
        let now = self.clock().now();
        let deleted = key
            .delete(now)
            .map_err(|e| BillingError::Internal(InternalError::Invariant(e.to_string())))?;
        let event = self.billing_event(&deleted, EventType::BillingDeleted, Some(DELETED_BY_API), now)?;
        let update = BillingKeyUpdate {
            key: deleted.clone(),
            events: vec![event],
        };
        match self.store().update_billing_key(&update).await {
            Ok(()) => Ok(deleted),
            // Another request changed it first: if that was a delete, this one's answer is the same.
            Err(StoreError::Conflict(_)) => {
                let now_stored = self.billing_key(caller, id).await?;
                if now_stored.status == BillingKeyStatus::Deleted {
                    Ok(now_stored)
                } else {
                    Err(BillingError::Concurrent)
                }
            }
            Err(other) => Err(other.into()),
        }
    }

    pub(crate) fn billing_event(
        &self,
        key: &BillingKey,
        event_type: EventType,
        reason: Option<&str>,
        now: UnixMillis,
    ) -> Result<NewEvent, BillingError> {
        let data = match event_type {
            // Toss's BILLING_DELETED data: the key and why.
            EventType::BillingDeleted => serde_json::to_value(wire::BillingDeletedData::new(key, reason)),
            _ => serde_json::to_value(wire::BillingBody::new(key)),
        }
        .map_err(|e| BillingError::Internal(InternalError::Invariant(e.to_string())))?;
        Ok(NewEvent {
            id: EventId::new(now, crate::random_bytes()),
            merchant_id: key.merchant_id,
            mode: key.mode,
            event_type,
            object_id: key.id.to_string(),
            sequence: key.version,
            previous_status: None,
            data: data.to_string(),
            notification: None,
            created_at: now,
        })
    }

    /// Charges a billing key (merchant-initiated). Like a key-in: DONE, IN_PROGRESS with an unknown outcome, or a
    /// decline that carries the ABORTED payment. An unknown key, another merchant's or mode's, or a deleted one
    /// charges nothing; nor does a `customerKey` that is not the key's.
    pub async fn charge_billing_key(
        &self,
        caller: &Caller,
        id: BillingKeyId,
        command: ChargeCommand,
        idempotency: Option<PaymentIdempotency>,
    ) -> PaymentAnswer {
        if caller.key.kind != KeyKind::Secret {
            return Err(PaymentError::Forbidden);
        }
        let claim = match self.start_creating_request(caller, idempotency).await? {
            Start::Run(claim) => claim,
            Start::Answer(answer) => return Ok(*answer),
        };
        let amounts = self.check_amounts(command.amounts)?;
        let key = self
            .store()
            .billing_key(caller.merchant.id, caller.key.mode, id)
            .await?
            .ok_or(PaymentError::BillingKeyNotFound)?;
        key.check_charge(&command.customer_key)?;
        // Read by the charge path only. A key deleted since the check above has no card any more.
        let sealed = self
            .store()
            .billing_card(caller.merchant.id, caller.key.mode, id)
            .await?
            .ok_or(PaymentError::Billing(BillingRuleError::Deleted))?;
        let card = self.open_card(&card_purpose(id), &sealed).await?;
        let number = CardNumber::parse(&card.number)
            .map_err(|e| InternalError::Invariant(format!("a billing key's sealed card: {e}")))?;
        let new = self.new_payment(
            (caller.merchant.id, caller.key.mode),
            (command.order_id, command.order_name),
            amounts,
            command.installment,
            PaymentExtras {
                customer: command.customer,
                notification_url: None,
                order: command.extras,
            },
        );
        let route = self.route(caller.merchant.id, caller.key.mode, &number).await?;
        let inquire_after = new
            .now
            .saturating_add(DurationMs::from_millis(self.payments.first_inquiry_delay_ms));
        let now = new.now;
        let charge = BillingCharge {
            billing_key_id: id,
            customer_key: command.customer_key,
        };
        let payment = Payment::billing(new, number.summary(), route, inquire_after, charge);
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
        self.run_approval(payment, card, false, claim.as_ref())
            .await
            .map(Answer::Fresh)
    }
}
