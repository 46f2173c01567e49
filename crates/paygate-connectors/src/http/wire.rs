//! The JSON bodies of the sandbox HTTP protocol (PROTOCOL.md), and their conversions to and from the connector
//! types. Field names are camelCase; amounts are integer minor units beside an ISO 4217 code; times are integer
//! milliseconds since the epoch.
//!
//! Readers are tolerant (unknown fields are ignored, so either side can add fields); writers are strict. Bodies
//! that carry card data deliberately have no `Debug`, so they cannot end up in a log line by accident.

use paygate_domain::card::{CardType, OwnerType};
use paygate_domain::money::{Currency, Money};
use paygate_domain::time::UnixMillis;
use serde::{Deserialize, Serialize};

use crate::sandbox::{JournalEntry, JournalKind};
use crate::{
    Approval, ApproveOutcome, ApproveRequest, CancelOutcome, CancelRequest, Cancellation, CardData, Decline,
    DeclineCode, InquiryOutcome, Verification, VerifyOutcome, VerifyRequest,
};

/// Longest accepted `reference` / `approvalReference`, in bytes: bounds what the simulator stores per request.
pub const MAX_REFERENCE_LEN: usize = 128;
/// Longest accepted `merchantId`, in bytes.
pub const MAX_MERCHANT_ID_LEN: usize = 64;

/// Why a request body was refused: names the field, never echoes its value.
pub(crate) type FieldError = String;

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct CardWire {
    pub number: String,
    pub expiry_year: u16,
    pub expiry_month: u8,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_two_digits: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity_number: Option<String>,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ApproveWire {
    pub reference: String,
    pub merchant_id: String,
    pub amount: i64,
    pub currency: String,
    #[serde(default)]
    pub installment_months: u8,
    #[serde(default)]
    pub authenticated: bool,
    /// A charge of a registered card without the buyer (a billing key); absent means false.
    #[serde(default)]
    pub merchant_initiated: bool,
    pub card: CardWire,
}

impl ApproveWire {
    pub fn from_request(request: &ApproveRequest) -> ApproveWire {
        ApproveWire {
            reference: request.reference.clone(),
            merchant_id: request.acquirer_merchant_id.clone(),
            amount: request.amount.amount_minor(),
            currency: request.amount.currency().code().to_owned(),
            installment_months: request.installment_months,
            authenticated: request.authenticated,
            merchant_initiated: request.merchant_initiated,
            card: CardWire {
                number: request.card.number.clone(),
                expiry_year: request.card.expiry_year,
                expiry_month: request.card.expiry_month,
                password_two_digits: request.card.password_two_digits.clone(),
                identity_number: request.card.identity_number.clone(),
            },
        }
    }

    pub fn into_request(self) -> Result<ApproveRequest, FieldError> {
        check_reference("reference", &self.reference)?;
        check_merchant(&self.merchant_id)?;
        // Lengths only: the sandbox itself decides what an invalid card number means (a decline, as a real
        // acquirer would), but nothing longer than any real card field is stored or hashed.
        if self.card.number.len() > 19 {
            return Err("card.number".to_owned());
        }
        if self.card.password_two_digits.as_ref().is_some_and(|p| p.len() > 2) {
            return Err("card.passwordTwoDigits".to_owned());
        }
        if self.card.identity_number.as_ref().is_some_and(|p| p.len() > 10) {
            return Err("card.identityNumber".to_owned());
        }
        Ok(ApproveRequest {
            amount: money(self.amount, &self.currency)?,
            reference: self.reference,
            acquirer_merchant_id: self.merchant_id,
            card: CardData {
                number: self.card.number,
                expiry_year: self.card.expiry_year,
                expiry_month: self.card.expiry_month,
                password_two_digits: self.card.password_two_digits,
                identity_number: self.card.identity_number,
            },
            installment_months: self.installment_months,
            authenticated: self.authenticated,
            merchant_initiated: self.merchant_initiated,
        })
    }
}

impl CardWire {
    fn from_card(card: &CardData) -> CardWire {
        CardWire {
            number: card.number.clone(),
            expiry_year: card.expiry_year,
            expiry_month: card.expiry_month,
            password_two_digits: card.password_two_digits.clone(),
            identity_number: card.identity_number.clone(),
        }
    }

    /// Lengths only: the sandbox itself decides what an invalid card means.
    fn into_card(self) -> Result<CardData, FieldError> {
        if self.number.len() > 19 {
            return Err("card.number".to_owned());
        }
        if self.password_two_digits.as_ref().is_some_and(|p| p.len() > 2) {
            return Err("card.passwordTwoDigits".to_owned());
        }
        if self.identity_number.as_ref().is_some_and(|p| p.len() > 10) {
            return Err("card.identityNumber".to_owned());
        }
        Ok(CardData {
            number: self.number,
            expiry_year: self.expiry_year,
            expiry_month: self.expiry_month,
            password_two_digits: self.password_two_digits,
            identity_number: self.identity_number,
        })
    }
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct VerifyWire {
    pub reference: String,
    pub merchant_id: String,
    #[serde(default)]
    pub authenticated: bool,
    pub card: CardWire,
}

impl VerifyWire {
    pub fn from_request(request: &VerifyRequest) -> VerifyWire {
        VerifyWire {
            reference: request.reference.clone(),
            merchant_id: request.acquirer_merchant_id.clone(),
            authenticated: request.authenticated,
            card: CardWire::from_card(&request.card),
        }
    }

    pub fn into_request(self) -> Result<VerifyRequest, FieldError> {
        check_reference("reference", &self.reference)?;
        check_merchant(&self.merchant_id)?;
        Ok(VerifyRequest {
            reference: self.reference,
            acquirer_merchant_id: self.merchant_id,
            card: self.card.into_card()?,
            authenticated: self.authenticated,
        })
    }
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct VerificationWire {
    pub issuer_code: String,
    pub acquirer_code: String,
    pub card_type: String,
    pub owner_type: String,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "SCREAMING_SNAKE_CASE")]
pub(crate) enum VerifyAnswer {
    Verified { verification: VerificationWire },
    Declined { decline: DeclineWire },
}

impl From<&VerifyOutcome> for VerifyAnswer {
    fn from(outcome: &VerifyOutcome) -> VerifyAnswer {
        match outcome {
            VerifyOutcome::Verified(v) => VerifyAnswer::Verified {
                verification: VerificationWire {
                    issuer_code: v.issuer_code.clone(),
                    acquirer_code: v.acquirer_code.clone(),
                    card_type: v.card_type.as_str().to_owned(),
                    owner_type: v.owner_type.as_str().to_owned(),
                },
            },
            VerifyOutcome::Declined(decline) => VerifyAnswer::Declined {
                decline: decline.into(),
            },
        }
    }
}

impl From<VerifyAnswer> for VerifyOutcome {
    fn from(answer: VerifyAnswer) -> VerifyOutcome {
        match answer {
            VerifyAnswer::Verified { verification: v } => VerifyOutcome::Verified(Verification {
                issuer_code: v.issuer_code,
                acquirer_code: v.acquirer_code,
                card_type: CardType::parse(&v.card_type).unwrap_or(CardType::Unknown),
                owner_type: OwnerType::parse(&v.owner_type).unwrap_or(OwnerType::Unknown),
            }),
            VerifyAnswer::Declined { decline } => VerifyOutcome::Declined(decline.into()),
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ApprovalWire {
    pub approval_number: String,
    pub transaction_id: String,
    pub issuer_code: String,
    pub acquirer_code: String,
    /// `CREDIT`, `CHECK`, `GIFT` or `UNKNOWN`; an unknown spelling reads as `UNKNOWN`.
    pub card_type: String,
    /// `PERSONAL`, `CORPORATE` or `UNKNOWN`; an unknown spelling reads as `UNKNOWN`.
    pub owner_type: String,
    pub approved_at: i64,
}

impl From<&Approval> for ApprovalWire {
    fn from(approval: &Approval) -> ApprovalWire {
        ApprovalWire {
            approval_number: approval.approval_number.clone(),
            transaction_id: approval.acquirer_transaction_id.clone(),
            issuer_code: approval.issuer_code.clone(),
            acquirer_code: approval.acquirer_code.clone(),
            card_type: approval.card_type.as_str().to_owned(),
            owner_type: approval.owner_type.as_str().to_owned(),
            approved_at: approval.approved_at.as_millis(),
        }
    }
}

impl From<ApprovalWire> for Approval {
    fn from(wire: ApprovalWire) -> Approval {
        Approval {
            approval_number: wire.approval_number,
            acquirer_transaction_id: wire.transaction_id,
            issuer_code: wire.issuer_code,
            acquirer_code: wire.acquirer_code,
            card_type: CardType::parse(&wire.card_type).unwrap_or(CardType::Unknown),
            owner_type: OwnerType::parse(&wire.owner_type).unwrap_or(OwnerType::Unknown),
            approved_at: UnixMillis::new(wire.approved_at),
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct DeclineWire {
    /// paygate's stable code ([`DeclineCode::as_str`]).
    pub code: String,
    pub acquirer_code: String,
    pub message: String,
}

impl From<&Decline> for DeclineWire {
    fn from(decline: &Decline) -> DeclineWire {
        DeclineWire {
            code: decline.code.as_str().to_owned(),
            acquirer_code: decline.acquirer_code.clone(),
            message: decline.acquirer_message.clone(),
        }
    }
}

impl From<DeclineWire> for Decline {
    fn from(wire: DeclineWire) -> Decline {
        Decline {
            // A code this build does not know is still a definite refusal: the issuer's generic one.
            code: DeclineCode::parse(&wire.code).unwrap_or(DeclineCode::RejectCardCompany),
            acquirer_code: wire.acquirer_code,
            acquirer_message: wire.message,
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "SCREAMING_SNAKE_CASE")]
pub(crate) enum ApproveAnswer {
    Approved { approval: ApprovalWire },
    Declined { decline: DeclineWire },
}

impl From<&ApproveOutcome> for ApproveAnswer {
    fn from(outcome: &ApproveOutcome) -> ApproveAnswer {
        match outcome {
            ApproveOutcome::Approved(approval) => ApproveAnswer::Approved {
                approval: approval.into(),
            },
            ApproveOutcome::Declined(decline) => ApproveAnswer::Declined {
                decline: decline.into(),
            },
        }
    }
}

impl From<ApproveAnswer> for ApproveOutcome {
    fn from(answer: ApproveAnswer) -> ApproveOutcome {
        match answer {
            ApproveAnswer::Approved { approval } => ApproveOutcome::Approved(approval.into()),
            ApproveAnswer::Declined { decline } => ApproveOutcome::Declined(decline.into()),
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct CancelWire {
    pub reference: String,
    pub approval_reference: String,
    pub merchant_id: String,
    pub amount: i64,
    pub currency: String,
}

impl CancelWire {
    pub fn from_request(request: &CancelRequest) -> CancelWire {
        CancelWire {
            reference: request.reference.clone(),
            approval_reference: request.approval_reference.clone(),
            merchant_id: request.acquirer_merchant_id.clone(),
            amount: request.amount.amount_minor(),
            currency: request.amount.currency().code().to_owned(),
        }
    }

    pub fn into_request(self) -> Result<CancelRequest, FieldError> {
        check_reference("reference", &self.reference)?;
        check_reference("approvalReference", &self.approval_reference)?;
        check_merchant(&self.merchant_id)?;
        Ok(CancelRequest {
            amount: money(self.amount, &self.currency)?,
            reference: self.reference,
            approval_reference: self.approval_reference,
            acquirer_merchant_id: self.merchant_id,
        })
    }
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct CancellationWire {
    pub transaction_id: String,
    pub canceled_at: i64,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "SCREAMING_SNAKE_CASE", rename_all_fields = "camelCase")]
pub(crate) enum CancelAnswer {
    Canceled { cancellation: CancellationWire },
    Refused { acquirer_code: String, message: String },
}

impl From<&CancelOutcome> for CancelAnswer {
    fn from(outcome: &CancelOutcome) -> CancelAnswer {
        match outcome {
            CancelOutcome::Canceled(cancellation) => CancelAnswer::Canceled {
                cancellation: CancellationWire {
                    transaction_id: cancellation.acquirer_transaction_id.clone(),
                    canceled_at: cancellation.canceled_at.as_millis(),
                },
            },
            CancelOutcome::Refused {
                acquirer_code,
                acquirer_message,
            } => CancelAnswer::Refused {
                acquirer_code: acquirer_code.clone(),
                message: acquirer_message.clone(),
            },
        }
    }
}

impl From<CancelAnswer> for CancelOutcome {
    fn from(answer: CancelAnswer) -> CancelOutcome {
        match answer {
            CancelAnswer::Canceled { cancellation } => CancelOutcome::Canceled(Cancellation {
                acquirer_transaction_id: cancellation.transaction_id,
                canceled_at: UnixMillis::new(cancellation.canceled_at),
            }),
            CancelAnswer::Refused { acquirer_code, message } => CancelOutcome::Refused {
                acquirer_code,
                acquirer_message: message,
            },
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ReverseWire {
    pub approval_reference: String,
    pub merchant_id: String,
}

impl ReverseWire {
    pub fn check(&self) -> Result<(), FieldError> {
        check_reference("approvalReference", &self.approval_reference)?;
        check_merchant(&self.merchant_id)
    }
}

/// `{"result": "OK"}`: the reversal is done, or there was nothing to reverse.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct ReverseAnswer {
    pub result: String,
}

pub(crate) const REVERSE_OK: &str = "OK";

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct InquireWire {
    pub reference: String,
    pub merchant_id: String,
}

impl InquireWire {
    pub fn check(&self) -> Result<(), FieldError> {
        check_reference("reference", &self.reference)?;
        check_merchant(&self.merchant_id)
    }
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "SCREAMING_SNAKE_CASE", rename_all_fields = "camelCase")]
pub(crate) enum InquiryAnswer {
    NotFound {},
    Approved { approval: ApprovalWire },
    Declined { decline: DeclineWire },
    Reversed { approval: ApprovalWire, reversed_at: i64 },
}

impl From<&InquiryOutcome> for InquiryAnswer {
    fn from(outcome: &InquiryOutcome) -> InquiryAnswer {
        match outcome {
            InquiryOutcome::NotFound => InquiryAnswer::NotFound {},
            InquiryOutcome::Approved(approval) => InquiryAnswer::Approved {
                approval: approval.into(),
            },
            InquiryOutcome::Declined(decline) => InquiryAnswer::Declined {
                decline: decline.into(),
            },
            InquiryOutcome::Reversed { approval, reversed_at } => InquiryAnswer::Reversed {
                approval: approval.into(),
                reversed_at: reversed_at.as_millis(),
            },
        }
    }
}

impl From<InquiryAnswer> for InquiryOutcome {
    fn from(answer: InquiryAnswer) -> InquiryOutcome {
        match answer {
            InquiryAnswer::NotFound {} => InquiryOutcome::NotFound,
            InquiryAnswer::Approved { approval } => InquiryOutcome::Approved(approval.into()),
            InquiryAnswer::Declined { decline } => InquiryOutcome::Declined(decline.into()),
            InquiryAnswer::Reversed { approval, reversed_at } => InquiryOutcome::Reversed {
                approval: approval.into(),
                reversed_at: UnixMillis::new(reversed_at),
            },
        }
    }
}

/// The body of every non-200 answer the simulator gives on purpose.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct ErrorWire {
    pub error: String,
    pub message: String,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct JournalQuery {
    #[serde(default)]
    pub after_seq: u64,
    pub limit: Option<usize>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct JournalPageWire {
    pub acquirer: String,
    pub entries: Vec<JournalEntryWire>,
    /// Present when more entries follow: pass it as `afterSeq` to get them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_after_seq: Option<u64>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct JournalEntryWire {
    pub seq: u64,
    pub at: i64,
    pub kind: String,
    pub reference: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval_reference: Option<String>,
    pub merchant_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amount: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub balance_after: Option<i64>,
    /// The currency of `amount` and `balanceAfter`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub currency: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transaction_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval_number: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acquirer_code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decline_code: Option<String>,
}

impl From<&JournalEntry> for JournalEntryWire {
    fn from(entry: &JournalEntry) -> JournalEntryWire {
        let currency = entry
            .amount
            .or(entry.balance_after)
            .map(|m| m.currency().code().to_owned());
        JournalEntryWire {
            seq: entry.seq,
            at: entry.at.as_millis(),
            kind: entry.kind.as_str().to_owned(),
            reference: entry.reference.clone(),
            approval_reference: entry.approval_reference.clone(),
            merchant_id: entry.acquirer_merchant_id.clone(),
            amount: entry.amount.map(|m| m.amount_minor()),
            balance_after: entry.balance_after.map(|m| m.amount_minor()),
            currency,
            transaction_id: entry.acquirer_transaction_id.clone(),
            approval_number: entry.approval_number.clone(),
            acquirer_code: entry.acquirer_code.clone(),
            decline_code: entry.decline_code.map(|code| code.as_str().to_owned()),
        }
    }
}

impl JournalEntryWire {
    /// Back to a [`JournalEntry`]; `Err` names the field that does not parse.
    pub fn into_entry(self) -> Result<JournalEntry, FieldError> {
        let kind = JournalKind::parse(&self.kind).ok_or_else(|| "kind".to_owned())?;
        let currency = match &self.currency {
            Some(code) => Some(code.parse::<Currency>().map_err(|_| "currency".to_owned())?),
            None => None,
        };
        let with_currency = |amount: Option<i64>, field: &str| match (amount, currency) {
            (None, _) => Ok(None),
            (Some(amount), Some(currency)) => Ok(Some(Money::new(amount, currency))),
            (Some(_), None) => Err(field.to_owned()),
        };
        let decline_code = self
            .decline_code
            .as_deref()
            .map(|code| DeclineCode::parse(code).unwrap_or(DeclineCode::RejectCardCompany));
        Ok(JournalEntry {
            seq: self.seq,
            at: UnixMillis::new(self.at),
            kind,
            amount: with_currency(self.amount, "amount")?,
            balance_after: with_currency(self.balance_after, "balanceAfter")?,
            reference: self.reference,
            approval_reference: self.approval_reference,
            acquirer_merchant_id: self.merchant_id,
            acquirer_transaction_id: self.transaction_id,
            approval_number: self.approval_number,
            acquirer_code: self.acquirer_code,
            decline_code,
        })
    }
}

#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct HealthWire {
    pub status: String,
    pub acquirers: Vec<String>,
}

fn money(amount: i64, currency: &str) -> Result<Money, FieldError> {
    let currency = currency.parse::<Currency>().map_err(|_| "currency".to_owned())?;
    Ok(Money::new(amount, currency))
}

fn check_reference(field: &str, value: &str) -> Result<(), FieldError> {
    let ok = !value.is_empty() && value.len() <= MAX_REFERENCE_LEN && !value.chars().any(char::is_control);
    if ok {
        Ok(())
    } else {
        Err(field.to_owned())
    }
}

fn check_merchant(value: &str) -> Result<(), FieldError> {
    let ok = !value.is_empty() && value.len() <= MAX_MERCHANT_ID_LEN && !value.chars().any(char::is_control);
    if ok {
        Ok(())
    } else {
        Err("merchantId".to_owned())
    }
}
