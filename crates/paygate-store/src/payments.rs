//! Types the payment methods of [`crate::Store`] take and return.

use paygate_domain::api_key::Mode;
use paygate_domain::id::{JournalId, MerchantId, PaymentId, TransactionKey};
use paygate_domain::ledger::Journal;
use paygate_domain::money::Money;
use paygate_domain::payment::{Payment, PaymentTransaction};
use paygate_domain::time::UnixMillis;

/// One routing rule of a merchant's acquirer contract: cards whose number starts with `bin_prefix` go to
/// `acquirer` under the merchant's number there. An empty prefix is the fallback.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AcquirerContract {
    pub bin_prefix: String,
    pub acquirer: String,
    pub acquirer_merchant_id: String,
}

/// An encrypted blob and the version of the key that sealed it.
#[derive(Clone, PartialEq, Eq)]
pub struct Sealed {
    pub key_version: u32,
    pub bytes: Vec<u8>,
}

impl std::fmt::Debug for Sealed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Sealed(v{}, {} bytes)", self.key_version, self.bytes.len())
    }
}

/// What happens to the encrypted card of a checkout payment in an update.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CheckoutCardChange {
    Keep,
    Store(Sealed),
    /// Once approved, declined or expired the card is no longer needed and is deleted in the same transaction.
    Delete,
}

/// A balanced journal to post with an update.
#[derive(Clone, Debug)]
pub struct JournalEntry {
    pub id: JournalId,
    pub transaction_key: TransactionKey,
    pub journal: Journal,
    pub created_at: UnixMillis,
}

/// Everything one payment state change writes, in one database transaction, conditional on the payment still
/// having `expected_version` (and a transaction being updated still being `PENDING`).
#[derive(Clone, Debug)]
pub struct PaymentUpdate {
    pub expected_version: i64,
    pub payment: Payment,
    pub insert_transactions: Vec<PaymentTransaction>,
    /// Replaces a pending transaction (a cancel being resolved); conditional on it still being pending.
    pub update_transaction: Option<PaymentTransaction>,
    pub journals: Vec<JournalEntry>,
    pub checkout_card: CheckoutCardChange,
    /// Events the change causes, written (with their deliveries) in the same transaction.
    pub events: Vec<crate::outbox::NewEvent>,
    /// The request's idempotency claim or answer, written in the same transaction.
    pub idempotency: Option<crate::IdempotencyWrite>,
}

impl PaymentUpdate {
    pub fn new(expected_version: i64, payment: Payment) -> PaymentUpdate {
        PaymentUpdate {
            expected_version,
            payment,
            insert_transactions: Vec::new(),
            update_transaction: None,
            journals: Vec::new(),
            checkout_card: CheckoutCardChange::Keep,
            events: Vec::new(),
            idempotency: None,
        }
    }
}

/// A new payment and what is written with it, in one transaction.
#[derive(Clone, Debug)]
pub struct PaymentInsert {
    pub payment: Payment,
    /// A checkout's card, sealed, until the confirm.
    pub checkout_card: Option<Sealed>,
    /// A checkout's session (how it was started, where the browser returns).
    pub checkout_session: Option<CheckoutSession>,
    pub idempotency: Option<crate::IdempotencyWrite>,
}

impl PaymentInsert {
    pub fn new(payment: Payment) -> PaymentInsert {
        PaymentInsert {
            payment,
            checkout_card: None,
            checkout_session: None,
            idempotency: None,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum InsertPaymentOutcome {
    Inserted,
    /// The merchant already used this orderId in this mode.
    DuplicateOrderId,
}

/// Filters for listing a merchant's transactions. `limit` is capped by the caller.
#[derive(Clone, Debug)]
pub struct TransactionQuery {
    pub merchant_id: MerchantId,
    pub mode: Mode,
    pub from: UnixMillis,
    pub until: UnixMillis,
    pub after: Option<TransactionKey>,
    pub limit: u32,
}

/// A merchant's encData key, sealed under the server vault key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredEncKey {
    pub version: u32,
    pub sealed: Sealed,
    pub created_at: UnixMillis,
    pub retires_at: Option<UnixMillis>,
}

/// The result of auditing the ledger.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LedgerAudit {
    pub journals: u64,
    pub postings: u64,
    /// Journals whose postings do not sum to zero per currency.
    pub unbalanced_journals: Vec<String>,
    /// Payments whose acquirer receivable differs from their approved minus completed cancels.
    pub mismatched_payments: Vec<PaymentId>,
    /// Sum of every posting per currency (must be zero).
    pub totals: Vec<Money>,
}

impl LedgerAudit {
    pub fn is_clean(&self) -> bool {
        self.unbalanced_journals.is_empty()
            && self.mismatched_payments.is_empty()
            && self.totals.iter().all(|t| t.is_zero())
    }
}

/// How a checkout payment was started.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CheckoutEntry {
    /// The merchant page POSTed a signed form; paygate approves after the buyer authenticates and sends the browser
    /// to `return_url` with a signed result.
    Form,
    /// `POST /v1/payments` (API or browser SDK); the browser goes to `success_url` and the merchant confirms.
    Api,
}

impl CheckoutEntry {
    pub fn as_str(self) -> &'static str {
        match self {
            CheckoutEntry::Form => "FORM",
            CheckoutEntry::Api => "API",
        }
    }

    pub fn parse(text: &str) -> Option<CheckoutEntry> {
        match text {
            "FORM" => Some(CheckoutEntry::Form),
            "API" => Some(CheckoutEntry::Api),
            _ => None,
        }
    }
}

/// The browser side of a checkout payment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckoutSession {
    pub payment_id: PaymentId,
    pub entry: CheckoutEntry,
    pub return_url: Option<String>,
    pub success_url: Option<String>,
    pub fail_url: Option<String>,
    pub challenge_otp_hash: Option<Vec<u8>>,
    pub challenge_attempts: u32,
    pub challenge_expires_at: Option<UnixMillis>,
    pub created_at: UnixMillis,
    /// Every update is conditional on it, like payments.
    pub version: i64,
}
