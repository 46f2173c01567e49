//! The in-process sandbox acquirer: deterministic, zero latency, thread-safe, with a journal.
//!
//! [`SandboxAcquirer`] decides by card number, following the sandbox test cards of product.md §5 (see
//! [`test_cards`]), and remembers every decision per reference, so a repeated request gets the first answer back
//! and never a second approval. Its [`journal`](SandboxAcquirer::journal) is what "the acquirer's books" look like:
//! paygate's tests reconcile their own records against it.
//!
//! Optional [`FaultPlan`]s inject timeouts, lost answers and system errors at fixed per-mille rates, drawn from a
//! seeded PRNG keyed by (seed, reference, operation, attempt), so a failing test replays exactly.
//!
//! # Bounds
//! Two things are kept: the per-reference decisions, which make the sandbox idempotent, and the journal, which
//! only tests and benchmarks read. They are kept apart so that the journal can be bounded without forgetting a
//! decision. The journal's bound is a [`JournalBound`]:
//!
//! - [`JournalBound::Latest`] (the in-process sandbox: [`SandboxAcquirer::new`], capped at
//!   [`IN_PROCESS_JOURNAL_CAPACITY`] = 10,000 entries, about 7 MiB): the most recent entries are kept and older ones
//!   dropped; `seq` keeps counting, so a reader sees where its view starts. Nothing in the gateway reads this
//!   journal; tests read it long before it wraps.
//! - [`JournalBound::Complete`] (the simulator process, `paygate acquirer-sim --journal-capacity`, default
//!   [`SIMULATOR_JOURNAL_CAPACITY`] = 1,000,000): every entry is kept, because the benchmarks' verdicts reconcile
//!   paygate against the whole journal and a journal with holes would report phantom differences. Once it is full,
//!   every request that would record something is answered with [`ConnectorError::SystemError`] and nothing is
//!   applied (the honest answer of an acquirer out of space: retryable, certainly not applied); repeats of stored
//!   requests, inquiries and journal reads keep working.
//!
//! Decisions are never dropped: a repeated approve, cancel or reverse gets the first answer however old it is. They
//! are kept compact (the reference, an interned merchant, the amounts, and the numbers from which an answer is
//! rebuilt: the approval number is derived from the reference, decline texts are constants), about 290 bytes per
//! reference: a million approvals in one in-process sandbox measured 282 MiB, against 965 MiB when it kept its
//! whole journal (about 0.7 KiB per entry on top of the decision). This grows with the references a process has
//! seen, the price of an acquirer that stays idempotent per reference for its whole life; a gateway in live mode
//! has no sandbox.

use std::collections::{HashMap, HashSet, VecDeque};
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use paygate_domain::card::{CardType, OwnerType};
use paygate_domain::money::Money;
use paygate_domain::time::UnixMillis;

use crate::{
    Acquirer, AcquirerId, Approval, ApproveOutcome, ApproveRequest, CancelOutcome, CancelRequest, Cancellation,
    ConnectorError, Decline, DeclineCode, InquiryOutcome, Verification, VerifyOutcome, VerifyRequest,
};

/// The sandbox test cards of product.md §5. Any future expiry and any password work unless the name says otherwise.
pub mod test_cards {
    /// Approved (issuer code `11`).
    pub const APPROVED: &str = "4330000000000003";
    /// Declined: insufficient funds (`REJECT_CARD_PAYMENT`, acquirer code `51`).
    pub const INSUFFICIENT_FUNDS: &str = "4330000000000011";
    /// Declined: lost or stolen (acquirer code `43`).
    pub const LOST_OR_STOLEN: &str = "4330000000000029";
    /// Declined: wrong card password (acquirer code `55`).
    pub const WRONG_PASSWORD: &str = "4330000000000037";
    /// Approved, but the answer never arrives: `Timeout`, and a later inquiry shows the approval.
    pub const APPROVED_ANSWER_LOST: &str = "4330000000000045";
    /// Times out without approving: `Timeout`, and a later inquiry shows nothing.
    pub const TIMEOUT_NOT_APPROVED: &str = "4330000000000052";
    /// The acquirer reports a system error and applies nothing (retryable).
    pub const SYSTEM_ERROR: &str = "4330000000000060";
    /// Needs buyer authentication: declined for key-in (`1A`), approved when authenticated.
    pub const AUTHENTICATION_REQUIRED: &str = "4330000000000078";
    /// Approved (issuer code `21`); routed to a different acquirer than `4330…`.
    pub const APPROVED_5400: &str = "5400000000000005";
    /// Approved (issuer code `31`); routed to the third acquirer.
    pub const APPROVED_9400: &str = "9400000000000007";
}

/// Journal entries the in-process sandbox keeps: the most recent ones (see the module's "Bounds").
pub const IN_PROCESS_JOURNAL_CAPACITY: usize = 10_000;

/// Journal entries the simulator keeps per acquirer unless told otherwise: all of them, up to this many.
pub const SIMULATOR_JOURNAL_CAPACITY: usize = 1_000_000;

/// How the journal is bounded (see the module's "Bounds").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JournalBound {
    /// Keep the most recent entries, at most this many; drop the oldest.
    Latest(usize),
    /// Keep every entry, at most this many; then refuse new work with a system error.
    Complete(usize),
}

impl JournalBound {
    pub fn capacity(self) -> usize {
        match self {
            JournalBound::Latest(capacity) | JournalBound::Complete(capacity) => capacity,
        }
    }
}

/// Where the sandbox reads the current time: approval timestamps and the card-expiry check.
pub type Clock = Arc<dyn Fn() -> UnixMillis + Send + Sync>;

/// The system clock as [`UnixMillis`]; a clock before 1970 reads as the epoch.
pub fn system_clock() -> UnixMillis {
    let millis = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| i64::try_from(elapsed.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0);
    UnixMillis::new(millis)
}

/// The ids of the three built-in sandbox acquirers: `A`, `B`, `C`.
pub fn builtin_ids() -> Vec<AcquirerId> {
    ["A", "B", "C"]
        .into_iter()
        .map(|id| AcquirerId(id.to_owned()))
        .collect()
}

// ---------------------------------------------------------------------------------------------------------------
// Fault injection
// ---------------------------------------------------------------------------------------------------------------

/// An operation of the [`Acquirer`] trait, as a key for fault draws and attempt counters.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Operation {
    Approve,
    Cancel,
    Reverse,
    Inquire,
    Verify,
}

impl Operation {
    /// A fixed number per operation, mixed into the PRNG key (explicit, so reordering the enum changes nothing).
    fn key(self) -> u64 {
        match self {
            Operation::Approve => 1,
            Operation::Cancel => 2,
            Operation::Reverse => 3,
            Operation::Inquire => 4,
            Operation::Verify => 5,
        }
    }
}

/// What an injected fault does to one call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Not applied; the caller sees a timeout.
    Timeout,
    /// Applied; the answer is lost on the way back.
    LostAnswer,
    /// Not applied; the acquirer reports a system error.
    SystemError,
}

/// Deterministic fault injection. Each call draws a number in `0..1000` from a PRNG keyed by
/// (`seed`, reference, operation, attempt), where the attempt counts earlier calls of the same operation on the same
/// reference; the draw falls into the timeout band first, then lost answer, then system error. The same seed and
/// the same sequence of calls per reference therefore always give the same faults, whatever other references do
/// concurrently. Rates that add up to more than 1000 are cut at 1000, in that band order.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FaultPlan {
    pub timeout_per_mille: u16,
    pub lost_answer_per_mille: u16,
    pub system_error_per_mille: u16,
    pub seed: u64,
}

impl FaultPlan {
    /// No faults.
    pub const NONE: FaultPlan = FaultPlan {
        timeout_per_mille: 0,
        lost_answer_per_mille: 0,
        system_error_per_mille: 0,
        seed: 0,
    };

    /// Whether the plan can inject anything at all.
    pub fn is_active(&self) -> bool {
        self.timeout_per_mille > 0 || self.lost_answer_per_mille > 0 || self.system_error_per_mille > 0
    }

    /// The fault, if any, for one call. Pure: the same arguments always give the same answer.
    pub fn decide(&self, reference: &str, operation: Operation, attempt: u32) -> Option<Fault> {
        if !self.is_active() {
            return None;
        }
        let draw = self.draw(reference, operation, attempt, 0) % 1000;
        let timeout_end = u64::from(self.timeout_per_mille);
        let lost_end = timeout_end + u64::from(self.lost_answer_per_mille);
        let error_end = lost_end + u64::from(self.system_error_per_mille);
        if draw < timeout_end {
            Some(Fault::Timeout)
        } else if draw < lost_end {
            Some(Fault::LostAnswer)
        } else if draw < error_end {
            Some(Fault::SystemError)
        } else {
            None
        }
    }

    /// A pseudo-random 64-bit value for one call; `salt` separates independent uses (fault band, latency jitter).
    pub fn draw(&self, reference: &str, operation: Operation, attempt: u32, salt: u64) -> u64 {
        let mut state = splitmix64(self.seed ^ fnv1a64(reference.as_bytes()));
        state = splitmix64(state ^ operation.key().wrapping_mul(0x9E37_79B9_7F4A_7C15));
        state = splitmix64(state ^ u64::from(attempt));
        splitmix64(state ^ salt)
    }
}

/// SplitMix64's finaliser: a cheap, well-mixed 64-bit permutation, enough for test fault rates.
pub(crate) fn splitmix64(input: u64) -> u64 {
    let mut z = input.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// FNV-1a: a stable hash of a string (std's `DefaultHasher` is not guaranteed stable across Rust releases).
pub(crate) fn fnv1a64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xCBF2_9CE4_8422_2325, |hash, &byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01B3)
    })
}

// ---------------------------------------------------------------------------------------------------------------
// Journal
// ---------------------------------------------------------------------------------------------------------------

/// What a journal entry records.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum JournalKind {
    /// An approval: `reference` is the approval's, `amount` approved.
    Approved,
    /// A decline, recorded like an approval: repeats return it.
    Declined,
    /// A (partial) cancel: `reference` is the cancel's, `approval_reference` the approval's, `amount` cancelled,
    /// `balance_after` what is left.
    Canceled,
    /// A cancel the acquirer refused (`acquirer_code` says why); nothing moved.
    CancelRefused,
    /// 망취소 of an approval: `amount` is the balance that was still open, `balance_after` zero.
    Reversed,
    /// A reversal of a reference the acquirer never approved: nothing to do, written down so that reconciliation
    /// can see that paygate asked.
    ReverseOfUnknown,
}

impl JournalKind {
    pub const ALL: [JournalKind; 6] = [
        JournalKind::Approved,
        JournalKind::Declined,
        JournalKind::Canceled,
        JournalKind::CancelRefused,
        JournalKind::Reversed,
        JournalKind::ReverseOfUnknown,
    ];

    /// The wire name (see PROTOCOL.md).
    pub fn as_str(self) -> &'static str {
        match self {
            JournalKind::Approved => "APPROVED",
            JournalKind::Declined => "DECLINED",
            JournalKind::Canceled => "CANCELED",
            JournalKind::CancelRefused => "CANCEL_REFUSED",
            JournalKind::Reversed => "REVERSED",
            JournalKind::ReverseOfUnknown => "REVERSE_OF_UNKNOWN",
        }
    }

    pub fn parse(text: &str) -> Option<JournalKind> {
        JournalKind::ALL.into_iter().find(|kind| kind.as_str() == text)
    }
}

/// One line of the acquirer's books. Never holds card data.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JournalEntry {
    /// 1, 2, 3, … in the order the sandbox recorded them.
    pub seq: u64,
    pub at: UnixMillis,
    pub kind: JournalKind,
    /// The reference of the request that was recorded (the approval's, or the cancel's).
    pub reference: String,
    /// For cancels: the approval they cancel.
    pub approval_reference: Option<String>,
    pub acquirer_merchant_id: String,
    pub amount: Option<Money>,
    /// The approval's open balance after this entry (approvals, cancels, reversals).
    pub balance_after: Option<Money>,
    pub acquirer_transaction_id: Option<String>,
    pub approval_number: Option<String>,
    /// Declines and refused cancels: the acquirer's code.
    pub acquirer_code: Option<String>,
    pub decline_code: Option<DeclineCode>,
}

impl JournalEntry {
    fn new(kind: JournalKind, at: UnixMillis, reference: &str, merchant: &str) -> JournalEntry {
        JournalEntry {
            seq: 0,
            at,
            kind,
            reference: reference.to_owned(),
            approval_reference: None,
            acquirer_merchant_id: merchant.to_owned(),
            amount: None,
            balance_after: None,
            acquirer_transaction_id: None,
            approval_number: None,
            acquirer_code: None,
            decline_code: None,
        }
    }
}

/// How many entries of each kind were recorded since the sandbox started (dropped ones included).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct JournalCounts {
    pub approved: u64,
    pub declined: u64,
    pub canceled: u64,
    pub cancel_refused: u64,
    pub reversed: u64,
    pub reverse_of_unknown: u64,
    /// Card checks (billing-key issuance); they move no money and are not journaled.
    pub verifications: u64,
}

impl JournalCounts {
    fn bump(&mut self, kind: JournalKind) {
        let slot = match kind {
            JournalKind::Approved => &mut self.approved,
            JournalKind::Declined => &mut self.declined,
            JournalKind::Canceled => &mut self.canceled,
            JournalKind::CancelRefused => &mut self.cancel_refused,
            JournalKind::Reversed => &mut self.reversed,
            JournalKind::ReverseOfUnknown => &mut self.reverse_of_unknown,
        };
        *slot = slot.saturating_add(1);
    }
}

// ---------------------------------------------------------------------------------------------------------------
// State
// ---------------------------------------------------------------------------------------------------------------

/// What the sandbox decided for an approval reference. Answers are rebuilt from these few fields: the approval
/// number is derived from the reference, the transaction ID from its number, the decline texts are constants.
#[derive(Clone, Copy, Debug)]
enum Decision {
    Approved {
        transaction: u64,
        issuer: IssuerFacts,
        approved_at: UnixMillis,
        /// What can still be cancelled; zero once fully cancelled or reversed.
        balance: Money,
        /// When the approval stopped being open (reversed, or cancelled down to zero).
        closed_at: Option<UnixMillis>,
        reversed: bool,
    },
    Declined(StaticDecline),
}

/// A decline whose texts are the sandbox's constants.
#[derive(Clone, Copy, Debug)]
struct StaticDecline {
    code: DeclineCode,
    acquirer_code: &'static str,
    message: &'static str,
}

impl StaticDecline {
    fn to_decline(self) -> Decline {
        decline(self.code, self.acquirer_code, self.message)
    }
}

/// A merchant ID, interned: there are few merchants and many references.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct MerchantIx(u32);

#[derive(Clone, Copy, Debug)]
struct ApprovalRecord {
    merchant: MerchantIx,
    amount: Money,
    decision: Decision,
}

#[derive(Clone, Copy, Debug)]
enum StoredCancel {
    Canceled { transaction: u64, canceled_at: UnixMillis },
    Refused { code: &'static str, message: &'static str },
}

#[derive(Clone, Debug)]
struct CancelRecord {
    approval_reference: Box<str>,
    merchant: MerchantIx,
    amount: Money,
    outcome: StoredCancel,
}

#[derive(Default)]
struct State {
    journal: VecDeque<JournalEntry>,
    /// Entries dropped from the front of the journal (`JournalBound::Latest`); the first kept has `seq` this + 1.
    dropped: u64,
    counts: JournalCounts,
    merchants: HashMap<Box<str>, MerchantIx>,
    approvals: HashMap<Box<str>, ApprovalRecord>,
    cancels: HashMap<Box<str>, CancelRecord>,
    unknown_reversals: HashSet<Box<str>>,
    /// Attempts per (reference, operation), for fault draws. Cleared wholesale when it reaches the journal
    /// capacity, so it stays bounded; fault sequences are exactly reproducible up to that many keys.
    attempts: HashMap<(String, Operation), u32>,
    /// Feeds `{acquirer}-{n}` transaction ids, shared by approvals and cancels.
    transactions: u64,
}

impl State {
    fn record(&mut self, mut entry: JournalEntry, bound: JournalBound) {
        let held = u64::try_from(self.journal.len()).unwrap_or(u64::MAX);
        entry.seq = self.dropped.saturating_add(held).saturating_add(1);
        self.counts.bump(entry.kind);
        self.journal.push_back(entry);
        if let JournalBound::Latest(capacity) = bound {
            while self.journal.len() > capacity {
                self.journal.pop_front();
                self.dropped = self.dropped.saturating_add(1);
            }
        }
    }

    fn next_transaction(&mut self) -> u64 {
        self.transactions = self.transactions.saturating_add(1);
        self.transactions
    }

    /// The interned ID of `merchant`, adding it if new.
    fn intern(&mut self, merchant: &str) -> MerchantIx {
        if let Some(ix) = self.merchants.get(merchant) {
            return *ix;
        }
        let ix = MerchantIx(u32::try_from(self.merchants.len()).unwrap_or(u32::MAX));
        self.merchants.insert(merchant.into(), ix);
        ix
    }

    /// The approval `reference` of `merchant`; another merchant's approval is treated as unknown, as an acquirer
    /// scopes every lookup by merchant number.
    fn approval_of(&self, reference: &str, merchant: &str) -> Option<&ApprovalRecord> {
        let merchant = *self.merchants.get(merchant)?;
        self.approvals
            .get(reference)
            .filter(|record| record.merchant == merchant)
    }
}

fn transaction_id(acquirer: &AcquirerId, transaction: u64) -> String {
    format!("{acquirer}-{transaction}")
}

// ---------------------------------------------------------------------------------------------------------------
// The sandbox
// ---------------------------------------------------------------------------------------------------------------

/// A sandbox acquirer. See the module documentation.
pub struct SandboxAcquirer {
    id: AcquirerId,
    faults: FaultPlan,
    clock: Clock,
    bound: JournalBound,
    state: Mutex<State>,
}

impl fmt::Debug for SandboxAcquirer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SandboxAcquirer")
            .field("id", &self.id)
            .field("faults", &self.faults)
            .field("bound", &self.bound)
            .field("counts", &self.counts())
            .finish_non_exhaustive()
    }
}

const NO_APPROVAL: &str = "NO_APPROVAL";
const EXCEEDS_BALANCE: &str = "EXCEEDS_BALANCE";
const INVALID_AMOUNT: &str = "INVALID_AMOUNT";
const CURRENCY_MISMATCH: &str = "CURRENCY_MISMATCH";
const DUPLICATE_REFERENCE: &str = "DUPLICATE_REFERENCE";

impl SandboxAcquirer {
    /// A sandbox without faults, on the system clock.
    pub fn new(id: AcquirerId) -> SandboxAcquirer {
        SandboxAcquirer::with_faults(id, FaultPlan::NONE)
    }

    /// A sandbox that injects faults by `plan`.
    pub fn with_faults(id: AcquirerId, plan: FaultPlan) -> SandboxAcquirer {
        SandboxAcquirer {
            id,
            faults: plan,
            clock: Arc::new(system_clock),
            bound: JournalBound::Latest(IN_PROCESS_JOURNAL_CAPACITY),
            state: Mutex::new(State::default()),
        }
    }

    /// Sandboxes `A`, `B` and `C`, without faults.
    pub fn default_three() -> Vec<SandboxAcquirer> {
        builtin_ids().into_iter().map(SandboxAcquirer::new).collect()
    }

    /// Reads time from `clock` instead of the system clock (approval times, the expiry check).
    #[must_use]
    pub fn with_clock(mut self, clock: impl Fn() -> UnixMillis + Send + Sync + 'static) -> SandboxAcquirer {
        self.clock = Arc::new(clock);
        self
    }

    /// Bounds the journal by `bound` instead of keeping the latest [`IN_PROCESS_JOURNAL_CAPACITY`] entries.
    #[must_use]
    pub fn with_journal_bound(mut self, bound: JournalBound) -> SandboxAcquirer {
        self.bound = bound;
        self
    }

    pub fn fault_plan(&self) -> FaultPlan {
        self.faults
    }

    /// Every entry held, oldest first.
    pub fn journal(&self) -> Vec<JournalEntry> {
        self.lock().journal.iter().cloned().collect()
    }

    /// Up to `limit` held entries with `seq > after_seq`, oldest first: for paging through a large journal.
    pub fn journal_page(&self, after_seq: u64, limit: usize) -> Vec<JournalEntry> {
        let state = self.lock();
        // The first held entry has seq `dropped + 1`, so entries after `after_seq` start at `after_seq - dropped`.
        let start = usize::try_from(after_seq.saturating_sub(state.dropped))
            .unwrap_or(usize::MAX)
            .min(state.journal.len());
        state.journal.range(start..).take(limit).cloned().collect()
    }

    /// Entries held.
    pub fn journal_len(&self) -> usize {
        self.lock().journal.len()
    }

    /// Entries dropped from the front of the journal to keep it within its bound.
    pub fn journal_dropped(&self) -> u64 {
        self.lock().dropped
    }

    pub fn journal_bound(&self) -> JournalBound {
        self.bound
    }

    /// The references the held journal shows approved (including ones later cancelled or reversed), in order.
    pub fn approved_references(&self) -> Vec<String> {
        self.lock()
            .journal
            .iter()
            .filter(|entry| entry.kind == JournalKind::Approved)
            .map(|entry| entry.reference.clone())
            .collect()
    }

    pub fn counts(&self) -> JournalCounts {
        self.lock().counts
    }

    /// The open balance of approval `reference`, if it was approved.
    pub fn balance(&self, reference: &str) -> Option<Money> {
        match self.lock().approvals.get(reference).map(|record| &record.decision) {
            Some(Decision::Approved { balance, .. }) => Some(*balance),
            _ => None,
        }
    }

    /// Counts one more call of `operation` on `reference` and returns its attempt number (0 for the first).
    pub(crate) fn next_attempt(&self, operation: Operation, reference: &str) -> u32 {
        let mut state = self.lock();
        if state.attempts.len() >= self.bound.capacity().max(1) {
            state.attempts.clear();
        }
        let counter = state.attempts.entry((reference.to_owned(), operation)).or_insert(0);
        let attempt = *counter;
        *counter = counter.saturating_add(1);
        attempt
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Every critical section leaves the state consistent before anything can panic, so a poisoned lock still
        // guards valid data; refusing service over it would only hide the original panic.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn ensure_room(&self, state: &State) -> Result<(), ConnectorError> {
        match self.bound {
            JournalBound::Complete(capacity) if state.journal.len() >= capacity => {
                Err(ConnectorError::SystemError("sandbox journal full".to_owned()))
            }
            _ => Ok(()),
        }
    }

    fn approval(&self, reference: &str, transaction: u64, issuer: IssuerFacts, approved_at: UnixMillis) -> Approval {
        Approval {
            approval_number: approval_number(&self.id, reference),
            acquirer_transaction_id: transaction_id(&self.id, transaction),
            issuer_code: issuer.code.to_owned(),
            acquirer_code: card_company_code(&self.id).to_owned(),
            card_type: issuer.card_type,
            owner_type: issuer.owner_type,
            approved_at,
        }
    }

    fn answer(&self, reference: &str, decision: &Decision) -> ApproveOutcome {
        match *decision {
            Decision::Approved {
                transaction,
                issuer,
                approved_at,
                ..
            } => ApproveOutcome::Approved(self.approval(reference, transaction, issuer, approved_at)),
            Decision::Declined(declined) => ApproveOutcome::Declined(declined.to_decline()),
        }
    }

    fn cancel_answer(&self, outcome: StoredCancel) -> CancelOutcome {
        match outcome {
            StoredCancel::Canceled {
                transaction,
                canceled_at,
            } => CancelOutcome::Canceled(Cancellation {
                acquirer_transaction_id: transaction_id(&self.id, transaction),
                canceled_at,
            }),
            StoredCancel::Refused { code, message } => refused(code, message),
        }
    }

    /// Runs `apply` under the fault plan: the in-process meaning of each fault.
    fn faulted<T>(
        &self,
        operation: Operation,
        reference: &str,
        apply: impl FnOnce() -> Result<T, ConnectorError>,
    ) -> Result<T, ConnectorError> {
        if !self.faults.is_active() {
            return apply();
        }
        let attempt = self.next_attempt(operation, reference);
        match self.faults.decide(reference, operation, attempt) {
            None => apply(),
            Some(Fault::Timeout) => Err(ConnectorError::Timeout),
            Some(Fault::SystemError) => Err(ConnectorError::SystemError("sandbox fault: system error".to_owned())),
            Some(Fault::LostAnswer) => {
                // Applied, whatever the answer was; the caller only learns that it was lost.
                let _applied = apply();
                Err(ConnectorError::LostAnswer("sandbox fault: answer lost".to_owned()))
            }
        }
    }

    /// Approves without fault injection (the simulator injects its own).
    pub(crate) fn approve_now(&self, request: &ApproveRequest) -> Result<ApproveOutcome, ConnectorError> {
        let now = (self.clock)();
        let mut state = self.lock();
        if let Some(record) = state.approvals.get(request.reference.as_str()) {
            let same_merchant = state.merchants.get(request.acquirer_merchant_id.as_str()) == Some(&record.merchant);
            if !same_merchant || record.amount != request.amount {
                // Not the same request: answering with the first decision would tell this caller about money it
                // did not move. The first decision stands and stays visible to inquiries.
                return Ok(ApproveOutcome::Declined(decline(
                    DeclineCode::RejectCardCompany,
                    "94",
                    "duplicate reference with a different request",
                )));
            }
            return Ok(self.answer(&request.reference, &record.decision));
        }

        // A reference paygate already reversed (망취소) is void: an approval request for it that arrives late —
        // after the timeout that made paygate reverse it — must not move money.
        if state.unknown_reversals.contains(request.reference.as_str()) {
            return Ok(ApproveOutcome::Declined(decline(
                DeclineCode::RejectCardCompany,
                "96",
                "the reference was reversed before it was approved",
            )));
        }

        let number = request.card.number.as_str();
        scripted_failure(number)?;
        self.ensure_room(&state)?;

        let verdict = card_verdict(
            &request.card,
            Some(request.amount),
            request.authenticated || request.merchant_initiated,
            now,
        );

        let mut entry = JournalEntry::new(
            JournalKind::Approved,
            now,
            &request.reference,
            &request.acquirer_merchant_id,
        );
        entry.amount = Some(request.amount);
        let decision = match verdict {
            Ok(()) => {
                let transaction = state.next_transaction();
                entry.balance_after = Some(request.amount);
                entry.acquirer_transaction_id = Some(transaction_id(&self.id, transaction));
                entry.approval_number = Some(approval_number(&self.id, &request.reference));
                Decision::Approved {
                    transaction,
                    issuer: issuer_facts(number, request.card.identity_number.as_deref()),
                    approved_at: now,
                    balance: request.amount,
                    closed_at: None,
                    reversed: false,
                }
            }
            Err(declined) => {
                entry.kind = JournalKind::Declined;
                entry.acquirer_code = Some(declined.acquirer_code.to_owned());
                entry.decline_code = Some(declined.code);
                Decision::Declined(declined)
            }
        };
        let outcome = self.answer(&request.reference, &decision);
        state.record(entry, self.bound);
        let merchant = state.intern(&request.acquirer_merchant_id);
        state.approvals.insert(
            request.reference.as_str().into(),
            ApprovalRecord {
                merchant,
                amount: request.amount,
                decision,
            },
        );
        drop(state);

        if is_valid_card_number(number) && number.ends_with("0045") {
            // Decided and booked; the answer "never arrives". A repeat finds the stored decision above.
            return Err(ConnectorError::Timeout);
        }
        Ok(outcome)
    }

    /// Verifies a card without fault injection: the card rules of an approval that do not depend on an amount.
    /// Nothing is journaled (no money moves); verifications are counted.
    pub(crate) fn verify_now(&self, request: &VerifyRequest) -> Result<VerifyOutcome, ConnectorError> {
        let now = (self.clock)();
        let number = request.card.number.as_str();
        scripted_failure(number)?;
        let verdict = card_verdict(&request.card, None, request.authenticated, now);
        self.lock().counts.verifications += 1;
        Ok(match verdict {
            Ok(()) => {
                let issuer = issuer_facts(number, request.card.identity_number.as_deref());
                VerifyOutcome::Verified(Verification {
                    issuer_code: issuer.code.to_owned(),
                    acquirer_code: card_company_code(&self.id).to_owned(),
                    card_type: issuer.card_type,
                    owner_type: issuer.owner_type,
                })
            }
            Err(declined) => VerifyOutcome::Declined(declined.to_decline()),
        })
    }

    /// Cancels without fault injection.
    pub(crate) fn cancel_now(&self, request: &CancelRequest) -> Result<CancelOutcome, ConnectorError> {
        let now = (self.clock)();
        let mut state = self.lock();
        if let Some(record) = state.cancels.get(request.reference.as_str()) {
            let same = *record.approval_reference == *request.approval_reference
                && state.merchants.get(request.acquirer_merchant_id.as_str()) == Some(&record.merchant)
                && record.amount == request.amount;
            if !same {
                return Ok(refused(
                    DUPLICATE_REFERENCE,
                    "cancel reference reused with a different request",
                ));
            }
            return Ok(self.cancel_answer(record.outcome));
        }
        self.ensure_room(&state)?;

        let mut entry = JournalEntry::new(
            JournalKind::Canceled,
            now,
            &request.reference,
            &request.acquirer_merchant_id,
        );
        entry.approval_reference = Some(request.approval_reference.clone());
        entry.amount = Some(request.amount);

        let merchant = state.intern(&request.acquirer_merchant_id);
        let verdict = match state
            .approvals
            .get_mut(request.approval_reference.as_str())
            .filter(|record| record.merchant == merchant)
            .map(|record| &mut record.decision)
        {
            Some(Decision::Approved {
                balance,
                closed_at,
                reversed: false,
                ..
            }) => match request.amount.checked_cmp(balance) {
                Err(_) => Err((CURRENCY_MISMATCH, "currency differs from the approval")),
                Ok(_) if !request.amount.is_positive() => Err((INVALID_AMOUNT, "cancel amount must be positive")),
                Ok(std::cmp::Ordering::Greater) => Err((EXCEEDS_BALANCE, "cancel amount exceeds the balance")),
                Ok(_) => match balance.checked_sub(request.amount) {
                    Ok(left) => {
                        *balance = left;
                        if left.is_zero() {
                            *closed_at = Some(now);
                        }
                        Ok(left)
                    }
                    Err(_) => Err((EXCEEDS_BALANCE, "cancel amount exceeds the balance")),
                },
            },
            _ => Err((NO_APPROVAL, "no open approval with that reference")),
        };

        let outcome = match verdict {
            Ok(left) => {
                let transaction = state.next_transaction();
                entry.balance_after = Some(left);
                entry.acquirer_transaction_id = Some(transaction_id(&self.id, transaction));
                StoredCancel::Canceled {
                    transaction,
                    canceled_at: now,
                }
            }
            Err((code, message)) => {
                entry.kind = JournalKind::CancelRefused;
                entry.acquirer_code = Some(code.to_owned());
                StoredCancel::Refused { code, message }
            }
        };
        state.record(entry, self.bound);
        state.cancels.insert(
            request.reference.as_str().into(),
            CancelRecord {
                approval_reference: request.approval_reference.as_str().into(),
                merchant,
                amount: request.amount,
                outcome,
            },
        );
        Ok(self.cancel_answer(outcome))
    }

    /// Reverses without fault injection.
    pub(crate) fn reverse_now(&self, approval_reference: &str, merchant: &str) -> Result<(), ConnectorError> {
        let now = (self.clock)();
        let mut state = self.lock();
        let known = state.approval_of(approval_reference, merchant).is_some();
        if !known {
            // Recorded once per reference: a retried reversal is the same request.
            if !state.unknown_reversals.contains(approval_reference) {
                self.ensure_room(&state)?;
                state.unknown_reversals.insert(approval_reference.into());
                state.record(
                    JournalEntry::new(JournalKind::ReverseOfUnknown, now, approval_reference, merchant),
                    self.bound,
                );
            }
            return Ok(());
        }
        self.ensure_room(&state)?;
        let reversed_amount = match state
            .approvals
            .get_mut(approval_reference)
            .map(|record| &mut record.decision)
        {
            Some(Decision::Approved {
                balance,
                closed_at,
                reversed,
                ..
            }) if !*reversed && !balance.is_zero() => {
                let open = *balance;
                *balance = Money::zero(open.currency());
                *reversed = true;
                *closed_at = Some(now);
                open
            }
            // Declined, already reversed, or cancelled down to zero: nothing left to undo.
            _ => return Ok(()),
        };
        let mut entry = JournalEntry::new(JournalKind::Reversed, now, approval_reference, merchant);
        entry.amount = Some(reversed_amount);
        entry.balance_after = Some(Money::zero(reversed_amount.currency()));
        state.record(entry, self.bound);
        Ok(())
    }

    /// Inquires without fault injection.
    pub(crate) fn inquire_now(&self, reference: &str, merchant: &str) -> InquiryOutcome {
        let state = self.lock();
        match state.approval_of(reference, merchant).map(|record| record.decision) {
            None => InquiryOutcome::NotFound,
            Some(Decision::Declined(declined)) => InquiryOutcome::Declined(declined.to_decline()),
            Some(Decision::Approved {
                transaction,
                issuer,
                approved_at,
                closed_at,
                ..
            }) => {
                let approval = self.approval(reference, transaction, issuer, approved_at);
                match closed_at {
                    Some(reversed_at) => InquiryOutcome::Reversed { approval, reversed_at },
                    None => InquiryOutcome::Approved(approval),
                }
            }
        }
    }
}

#[async_trait]
impl Acquirer for SandboxAcquirer {
    fn id(&self) -> &AcquirerId {
        &self.id
    }

    async fn approve(&self, request: &ApproveRequest) -> Result<ApproveOutcome, ConnectorError> {
        self.faulted(Operation::Approve, &request.reference, || self.approve_now(request))
    }

    async fn cancel(&self, request: &CancelRequest) -> Result<CancelOutcome, ConnectorError> {
        self.faulted(Operation::Cancel, &request.reference, || self.cancel_now(request))
    }

    async fn reverse(&self, approval_reference: &str, acquirer_merchant_id: &str) -> Result<(), ConnectorError> {
        self.faulted(Operation::Reverse, approval_reference, || {
            self.reverse_now(approval_reference, acquirer_merchant_id)
        })
    }

    async fn inquire(&self, reference: &str, acquirer_merchant_id: &str) -> Result<InquiryOutcome, ConnectorError> {
        self.faulted(Operation::Inquire, reference, || {
            Ok(self.inquire_now(reference, acquirer_merchant_id))
        })
    }

    async fn verify(&self, request: &VerifyRequest) -> Result<VerifyOutcome, ConnectorError> {
        self.faulted(Operation::Verify, &request.reference, || self.verify_now(request))
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Card rules
// ---------------------------------------------------------------------------------------------------------------

/// The faults a valid test card number scripts, before anything is booked: `…0060` a system error, `…0052` a timeout.
fn scripted_failure(number: &str) -> Result<(), ConnectorError> {
    if !is_valid_card_number(number) {
        return Ok(());
    }
    match number.get(number.len().saturating_sub(4)..).unwrap_or("") {
        "0060" => Err(ConnectorError::SystemError("issuer system unavailable".to_owned())),
        "0052" => Err(ConnectorError::Timeout),
        _ => Ok(()),
    }
}

/// The issuer's rules for a card, shared by approvals and verifications. `amount` is `None` for a verification:
/// nothing is charged, so neither the amount nor the funds (`…0011`) are checked. `authenticated`: the buyer passed
/// authentication now, or (a merchant-initiated charge) when the card was registered.
fn card_verdict(
    card: &crate::CardData,
    amount: Option<Money>,
    authenticated: bool,
    now: UnixMillis,
) -> Result<(), StaticDecline> {
    let number = card.number.as_str();
    let suffix = number.get(number.len().saturating_sub(4)..).unwrap_or("");
    if !is_valid_card_number(number) {
        return Err(static_decline(
            DeclineCode::InvalidCardNumber,
            "14",
            "invalid card number",
        ));
    }
    if amount.is_some_and(|a| !a.is_positive()) {
        return Err(static_decline(DeclineCode::RejectCardCompany, "13", "invalid amount"));
    }
    if is_expired(card.expiry_year, card.expiry_month, now) {
        return Err(static_decline(DeclineCode::InvalidCardExpiration, "54", "expired card"));
    }
    match suffix {
        "0011" if amount.is_some() => Err(static_decline(
            DeclineCode::RejectCardPayment,
            "51",
            "insufficient funds",
        )),
        "0029" => Err(static_decline(
            DeclineCode::LostOrStolenCard,
            "43",
            "lost or stolen card",
        )),
        "0037" => Err(static_decline(
            DeclineCode::InvalidPassword,
            "55",
            "incorrect card password",
        )),
        "0078" if !authenticated => Err(static_decline(
            DeclineCode::AuthenticationRequired,
            "1A",
            "buyer authentication required",
        )),
        _ => Ok(()),
    }
}

fn static_decline(code: DeclineCode, acquirer_code: &'static str, message: &'static str) -> StaticDecline {
    StaticDecline {
        code,
        acquirer_code,
        message,
    }
}

fn decline(code: DeclineCode, acquirer_code: &str, message: &str) -> Decline {
    Decline {
        code,
        acquirer_code: acquirer_code.to_owned(),
        acquirer_message: message.to_owned(),
    }
}

fn refused(code: &str, message: &str) -> CancelOutcome {
    CancelOutcome::Refused {
        acquirer_code: code.to_owned(),
        acquirer_message: message.to_owned(),
    }
}

/// 13 to 19 ASCII digits that pass the Luhn check. paygate checks before calling; the sandbox checks again
/// because an acquirer never trusts its caller.
/// Whether the sandbox issuer asks the buyer to authenticate (an OTP on the hosted page) before it will approve.
pub fn requires_challenge(number: &str) -> bool {
    number.ends_with("0078")
}

pub fn is_valid_card_number(number: &str) -> bool {
    let length_ok = (13..=19).contains(&number.len());
    if !length_ok || !number.bytes().all(|b| b.is_ascii_digit()) {
        return false;
    }
    let sum: u32 = number
        .bytes()
        .rev()
        .enumerate()
        .map(|(index, byte)| {
            let digit = u32::from(byte - b'0');
            if index % 2 == 1 {
                // Doubling a digit above 4 gives two digits, which Luhn adds up: 2d - 9.
                let doubled = digit * 2;
                if doubled > 9 {
                    doubled - 9
                } else {
                    doubled
                }
            } else {
                digit
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

/// What the sandbox's pretend issuers say about a card they approved.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct IssuerFacts {
    /// Toss's card-company code of the issuer.
    code: &'static str,
    card_type: CardType,
    owner_type: OwnerType,
}

/// The issuer from the BIN, numbered with Toss Payments' card-company codes: `4330…` is KB국민카드 (`11`),
/// `5400…` 하나카드 (`21`), `9400…` BC카드 (`31`), any other number 신한카드 (`41`). Every sandbox card is a
/// credit card; it is a company's card when the merchant sent a 10-digit business registration number as the
/// identity number, a person's otherwise (the hosted checkout sends none: a person's).
fn issuer_facts(number: &str, identity_number: Option<&str>) -> IssuerFacts {
    let code = match number.get(..4) {
        Some("4330") => "11",
        Some("5400") => "21",
        Some("9400") => "31",
        _ => "41",
    };
    let owner_type = match identity_number.map(str::len) {
        Some(10) => OwnerType::Corporate,
        _ => OwnerType::Personal,
    };
    IssuerFacts {
        code,
        card_type: CardType::Credit,
        owner_type,
    }
}

/// The card-company code (Toss Payments' numbering) each sandbox acquirer answers as its own (매입사): `A` is
/// KB국민카드 (`11`), `B` 하나카드 (`21`), `C` BC카드 (`31`); an acquirer the sandbox was given another name for is
/// 신한카드 (`41`).
pub fn card_company_code(acquirer: &AcquirerId) -> &'static str {
    match acquirer.as_str() {
        "A" => "11",
        "B" => "21",
        "C" => "31",
        _ => "41",
    }
}

/// Eight digits derived from (acquirer, reference): the same reference always gets the same number.
fn approval_number(acquirer: &AcquirerId, reference: &str) -> String {
    let hash = splitmix64(fnv1a64(acquirer.as_str().as_bytes()) ^ fnv1a64(reference.as_bytes()).rotate_left(1));
    format!("{:08}", hash % 100_000_000)
}

/// Whether a card that is valid through the end of (`year`, `month`) has expired at `now`, judged in KST (+09:00)
/// because the sandbox pretends to be a Korean issuer. Two-digit years mean 20YY; a month outside 1..=12 is
/// treated as expired, since no real card carries one.
fn is_expired(year: u16, month: u8, now: UnixMillis) -> bool {
    if !(1..=12).contains(&month) {
        return true;
    }
    let year = if year < 100 {
        2000 + i64::from(year)
    } else {
        i64::from(year)
    };
    let (now_year, now_month) = year_month_kst(now);
    (year, i64::from(month)) < (now_year, now_month)
}

/// The civil (year, month) of an instant in KST: Howard Hinnant's days-to-civil algorithm, integers only.
fn year_month_kst(now: UnixMillis) -> (i64, i64) {
    const KST_OFFSET_MS: i64 = 9 * 60 * 60 * 1000;
    let days = now.as_millis().saturating_add(KST_OFFSET_MS).div_euclid(86_400_000);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era = (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let shifted_month = (5 * day_of_year + 2) / 153;
    let month = if shifted_month < 10 {
        shifted_month + 3
    } else {
        shifted_month - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_cards_pass_luhn() {
        for card in [
            test_cards::APPROVED,
            test_cards::INSUFFICIENT_FUNDS,
            test_cards::LOST_OR_STOLEN,
            test_cards::WRONG_PASSWORD,
            test_cards::APPROVED_ANSWER_LOST,
            test_cards::TIMEOUT_NOT_APPROVED,
            test_cards::SYSTEM_ERROR,
            test_cards::AUTHENTICATION_REQUIRED,
            test_cards::APPROVED_5400,
            test_cards::APPROVED_9400,
        ] {
            assert!(is_valid_card_number(card), "{card}");
        }
        assert!(!is_valid_card_number("4330000000000004"));
        assert!(!is_valid_card_number("43300000000a0003"));
        assert!(!is_valid_card_number("4"));
    }

    #[test]
    fn civil_months() {
        // 2024-02-29T14:59:59.999Z is 23:59:59.999 KST on the 29th; one millisecond later it is March in Seoul.
        assert_eq!(year_month_kst(UnixMillis::new(1_709_218_799_999)), (2024, 2));
        assert_eq!(year_month_kst(UnixMillis::new(1_709_218_800_000)), (2024, 3));
        assert_eq!(year_month_kst(UnixMillis::EPOCH), (1970, 1));
        // 1969-12-31T15:00Z is already 1970-01-01 in Seoul; an hour earlier still 1969-12.
        assert_eq!(year_month_kst(UnixMillis::new(-9 * 3_600_000 - 1)), (1969, 12));
    }

    #[test]
    fn expiry_is_inclusive_of_the_month() {
        let march_2024 = UnixMillis::new(1_709_218_800_000);
        assert!(!is_expired(2024, 3, march_2024));
        assert!(!is_expired(24, 3, march_2024));
        assert!(is_expired(2024, 2, march_2024));
        assert!(is_expired(2030, 13, march_2024));
        assert!(is_expired(2030, 0, march_2024));
    }

    #[test]
    fn approval_numbers_are_eight_stable_digits() {
        let a = AcquirerId("A".to_owned());
        let first = approval_number(&a, "pay_1");
        assert_eq!(first.len(), 8);
        assert!(first.bytes().all(|b| b.is_ascii_digit()));
        assert_eq!(first, approval_number(&a, "pay_1"));
        assert_ne!(first, approval_number(&a, "pay_2"));
    }
}
