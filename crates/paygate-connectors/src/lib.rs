//! Acquirer connectors (원천사 연동).
//!
//! [`Acquirer`] is the one interface paygate uses to reach a card acquirer, typed by operation: approve, cancel,
//! reverse (망취소) and inquire. Every request carries paygate's own unique reference, and an acquirer must treat a
//! repeated reference as the same request: that is what makes retries and inquiries safe, so a timeout never turns
//! into a second approval.
//!
//! An error says whether the request could have taken effect ([`ConnectorError::outcome`]): a payment whose
//! approval timed out is *unknown*, never failed, until an inquiry says otherwise.

use std::fmt;

use async_trait::async_trait;
use paygate_domain::card::{CardType, OwnerType};
use paygate_domain::money::Money;
use paygate_domain::time::UnixMillis;

pub mod bank;
pub mod bank_notify;
pub mod bank_wire;
pub mod http;
pub mod sandbox;
pub mod tax;

/// Which acquirer: `A`, `B`, `C` for the built-in sandboxes; an operator-chosen short code in general.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AcquirerId(String);

impl AcquirerId {
    /// 1 to 16 characters of `[A-Z0-9_]`.
    pub fn parse(text: &str) -> Option<AcquirerId> {
        let ok = !text.is_empty()
            && text.len() <= 16
            && text
                .bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_');
        ok.then(|| AcquirerId(text.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for AcquirerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Card data as it travels to an acquirer. It lives only for the duration of the call; `Debug` shows the masked
/// number and nothing else.
#[derive(Clone, PartialEq, Eq)]
pub struct CardData {
    /// Digits only, 13 to 19, Luhn-valid (checked before a connector is called).
    pub number: String,
    pub expiry_year: u16,
    pub expiry_month: u8,
    /// The first two digits of the card password, when the merchant collected them.
    pub password_two_digits: Option<String>,
    /// Birth date `YYMMDD` or a 10-digit business registration number.
    pub identity_number: Option<String>,
}

impl fmt::Debug for CardData {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let last4 = self.number.get(self.number.len().saturating_sub(4)..).unwrap_or("");
        write!(f, "CardData(****{last4}, [REDACTED])")
    }
}

#[derive(Clone, Debug)]
pub struct ApproveRequest {
    /// paygate's unique reference for this approval (the payment key). A repeat is the same request.
    pub reference: String,
    /// The merchant's number at the acquirer (가맹점 번호), from the contract.
    pub acquirer_merchant_id: String,
    pub card: CardData,
    pub amount: Money,
    /// 0 = lump sum (일시불).
    pub installment_months: u8,
    /// The buyer passed authentication on a paygate page (인증결제); false for key-in (비인증).
    pub authenticated: bool,
    /// The merchant charges a card the customer registered earlier (a billing key), without the buyer present
    /// (MIT). The authentication, if any, happened when the card was registered.
    pub merchant_initiated: bool,
}

/// A check of a card that moves no money (카드 유효성 인증), as when a billing key is issued.
#[derive(Clone, Debug)]
pub struct VerifyRequest {
    /// paygate's reference for the check (the billing key being issued).
    pub reference: String,
    pub acquirer_merchant_id: String,
    pub card: CardData,
    /// The buyer passed the issuer's authentication on a paygate page.
    pub authenticated: bool,
}

/// What the issuer says about a card it accepted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verification {
    /// Toss card-company codes of the issuer (발급사) and of the acquirer (매입사).
    pub issuer_code: String,
    pub acquirer_code: String,
    pub card_type: CardType,
    pub owner_type: OwnerType,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum VerifyOutcome {
    Verified(Verification),
    Declined(Decline),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Approval {
    /// 승인번호.
    pub approval_number: String,
    /// The acquirer's own ID for the transaction.
    pub acquirer_transaction_id: String,
    /// The issuer (발급사) code, e.g. from the BIN, as a Toss card-company code (`11` KB국민, …).
    pub issuer_code: String,
    /// The acquirer's (매입사) own card-company code, in the same numbering.
    pub acquirer_code: String,
    /// What the issuer says the card is (credit, check, gift) and whose it is (a person's, a company's).
    pub card_type: CardType,
    pub owner_type: OwnerType,
    pub approved_at: UnixMillis,
}

/// The acquirer's definite refusal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decline {
    /// paygate's stable code for the reason, e.g. `REJECT_CARD_PAYMENT`.
    pub code: DeclineCode,
    /// The acquirer's own code and message, passed through for support.
    pub acquirer_code: String,
    pub acquirer_message: String,
}

/// Why an acquirer refused. paygate maps every acquirer's codes onto these.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DeclineCode {
    /// Insufficient funds or over the limit.
    RejectCardPayment,
    LostOrStolenCard,
    InvalidPassword,
    InvalidCardExpiration,
    InvalidCardNumber,
    /// The card requires buyer authentication, which key-in cannot give.
    AuthenticationRequired,
    /// The issuer refused without a more precise reason.
    RejectCardCompany,
}

impl DeclineCode {
    /// Every decline code, for parsing and for tests that must cover them all.
    pub const ALL: [DeclineCode; 7] = [
        DeclineCode::RejectCardPayment,
        DeclineCode::LostOrStolenCard,
        DeclineCode::InvalidPassword,
        DeclineCode::InvalidCardExpiration,
        DeclineCode::InvalidCardNumber,
        DeclineCode::AuthenticationRequired,
        DeclineCode::RejectCardCompany,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            DeclineCode::RejectCardPayment => "REJECT_CARD_PAYMENT",
            DeclineCode::LostOrStolenCard => "INVALID_CARD_LOST_OR_STOLEN",
            DeclineCode::InvalidPassword => "INVALID_CARD_PASSWORD",
            DeclineCode::InvalidCardExpiration => "INVALID_CARD_EXPIRATION",
            DeclineCode::InvalidCardNumber => "INVALID_CARD_NUMBER",
            DeclineCode::AuthenticationRequired => "CARD_AUTHENTICATION_REQUIRED",
            DeclineCode::RejectCardCompany => "REJECT_CARD_COMPANY",
        }
    }

    pub fn parse(text: &str) -> Option<DeclineCode> {
        DeclineCode::ALL.into_iter().find(|code| code.as_str() == text)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ApproveOutcome {
    Approved(Approval),
    Declined(Decline),
}

#[derive(Clone, Debug)]
pub struct CancelRequest {
    /// paygate's unique reference for this cancel (the cancel's transaction key). A repeat is the same request.
    pub reference: String,
    /// The reference of the approval being cancelled.
    pub approval_reference: String,
    pub acquirer_merchant_id: String,
    pub amount: Money,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cancellation {
    pub acquirer_transaction_id: String,
    pub canceled_at: UnixMillis,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CancelOutcome {
    Canceled(Cancellation),
    /// The acquirer refused (e.g. nothing left to cancel, unknown approval).
    Refused {
        acquirer_code: String,
        acquirer_message: String,
    },
}

/// What the acquirer knows about a reference.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum InquiryOutcome {
    /// It never processed the reference (or declined it before recording anything).
    NotFound,
    Approved(Approval),
    Declined(Decline),
    /// Approved, then reversed or fully cancelled.
    Reversed {
        approval: Approval,
        reversed_at: UnixMillis,
    },
}

/// Whether a failed call may have taken effect at the acquirer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The request certainly did not take effect (never sent, or refused before processing).
    NotApplied,
    /// It may have taken effect: resolve by inquiry, never by guessing.
    Unknown,
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum ConnectorError {
    /// No connection could be made; nothing was sent.
    #[error("acquirer unreachable: {0}")]
    Unreachable(String),
    /// The request was sent but no answer came in time.
    #[error("acquirer timed out")]
    Timeout,
    /// The answer was lost or unreadable after the request was sent.
    #[error("acquirer answer lost: {0}")]
    LostAnswer(String),
    /// The acquirer reported a system error and did not process the request; retrying is allowed.
    #[error("acquirer system error: {0}")]
    SystemError(String),
}

impl ConnectorError {
    pub fn outcome(&self) -> Outcome {
        match self {
            ConnectorError::Unreachable(_) | ConnectorError::SystemError(_) => Outcome::NotApplied,
            ConnectorError::Timeout | ConnectorError::LostAnswer(_) => Outcome::Unknown,
        }
    }
}

/// One acquirer. Implementations must be idempotent per `reference`.
#[async_trait]
pub trait Acquirer: Send + Sync + 'static {
    fn id(&self) -> &AcquirerId;

    async fn approve(&self, request: &ApproveRequest) -> Result<ApproveOutcome, ConnectorError>;

    /// Cancels part or all of an approval.
    async fn cancel(&self, request: &CancelRequest) -> Result<CancelOutcome, ConnectorError>;

    /// 망취소: undoes an approval paygate could not complete (e.g. it expired while its outcome was unknown).
    /// Reversing a reference that was never approved is a success with nothing to do.
    async fn reverse(&self, approval_reference: &str, acquirer_merchant_id: &str) -> Result<(), ConnectorError>;

    async fn inquire(&self, reference: &str, acquirer_merchant_id: &str) -> Result<InquiryOutcome, ConnectorError>;

    /// Checks a card with its issuer without moving money. Nothing is recorded that a retry could duplicate, so
    /// an unknown outcome may simply be asked again.
    async fn verify(&self, request: &VerifyRequest) -> Result<VerifyOutcome, ConnectorError>;
}
