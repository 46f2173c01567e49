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
//! The journal holds at most [`DEFAULT_JOURNAL_CAPACITY`] entries (see [`SandboxAcquirer::with_capacity`]). Every
//! stored decision writes exactly one journal entry, so the cap also bounds the per-reference state. Once the
//! journal is full, every request that would record something is answered with
//! [`ConnectorError::SystemError`] and nothing is applied (the honest answer of an acquirer that is out of space:
//! retryable, certainly not applied); repeats of stored requests, inquiries and journal reads keep working.
//! Entries are never dropped, because a journal with holes would make reconciliation report phantom differences.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use paygate_domain::money::Money;
use paygate_domain::time::UnixMillis;

use crate::{
    Acquirer, AcquirerId, Approval, ApproveOutcome, ApproveRequest, CancelOutcome, CancelRequest, Cancellation,
    ConnectorError, Decline, DeclineCode, InquiryOutcome,
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

/// How many journal entries a sandbox keeps unless told otherwise (see the module's "Bounds").
pub const DEFAULT_JOURNAL_CAPACITY: usize = 1_000_000;

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
}

impl Operation {
    /// A fixed number per operation, mixed into the PRNG key (explicit, so reordering the enum changes nothing).
    fn key(self) -> u64 {
        match self {
            Operation::Approve => 1,
            Operation::Cancel => 2,
            Operation::Reverse => 3,
            Operation::Inquire => 4,
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
fn splitmix64(input: u64) -> u64 {
    let mut z = input.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// FNV-1a: a stable hash of a string (std's `DefaultHasher` is not guaranteed stable across Rust releases).
fn fnv1a64(bytes: &[u8]) -> u64 {
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

/// How many entries of each kind the journal holds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct JournalCounts {
    pub approved: u64,
    pub declined: u64,
    pub canceled: u64,
    pub cancel_refused: u64,
    pub reversed: u64,
    pub reverse_of_unknown: u64,
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

/// What the sandbox decided for an approval reference.
#[derive(Clone, Debug)]
enum Decision {
    Approved {
        approval: Approval,
        /// What can still be cancelled; zero once fully cancelled or reversed.
        balance: Money,
        /// When the approval stopped being open (reversed, or cancelled down to zero).
        closed_at: Option<UnixMillis>,
        reversed: bool,
    },
    Declined(Decline),
}

#[derive(Clone, Debug)]
struct ApprovalRecord {
    merchant: String,
    amount: Money,
    decision: Decision,
}

#[derive(Clone, Debug)]
struct CancelRecord {
    approval_reference: String,
    merchant: String,
    amount: Money,
    outcome: CancelOutcome,
}

#[derive(Default)]
struct State {
    journal: Vec<JournalEntry>,
    counts: JournalCounts,
    approvals: HashMap<String, ApprovalRecord>,
    /// Approval references in the order they were approved.
    approved_order: Vec<String>,
    cancels: HashMap<String, CancelRecord>,
    unknown_reversals: HashSet<String>,
    /// Attempts per (reference, operation), for fault draws. Cleared wholesale when it reaches the journal
    /// capacity, so it stays bounded; fault sequences are exactly reproducible up to that many keys.
    attempts: HashMap<(String, Operation), u32>,
    /// Feeds `{acquirer}-{n}` transaction ids, shared by approvals and cancels.
    transactions: u64,
}

impl State {
    fn record(&mut self, mut entry: JournalEntry) {
        entry.seq = u64::try_from(self.journal.len()).unwrap_or(u64::MAX).saturating_add(1);
        self.counts.bump(entry.kind);
        self.journal.push(entry);
    }

    fn next_transaction_id(&mut self, acquirer: &AcquirerId) -> String {
        self.transactions = self.transactions.saturating_add(1);
        format!("{acquirer}-{}", self.transactions)
    }

    /// The approval `reference` of `merchant`; another merchant's approval is treated as unknown, as an acquirer
    /// scopes every lookup by merchant number.
    fn approval_of(&self, reference: &str, merchant: &str) -> Option<&ApprovalRecord> {
        self.approvals
            .get(reference)
            .filter(|record| record.merchant == merchant)
    }
}

// ---------------------------------------------------------------------------------------------------------------
// The sandbox
// ---------------------------------------------------------------------------------------------------------------

/// A sandbox acquirer. See the module documentation.
pub struct SandboxAcquirer {
    id: AcquirerId,
    faults: FaultPlan,
    clock: Clock,
    capacity: usize,
    state: Mutex<State>,
}

impl fmt::Debug for SandboxAcquirer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SandboxAcquirer")
            .field("id", &self.id)
            .field("faults", &self.faults)
            .field("capacity", &self.capacity)
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
            capacity: DEFAULT_JOURNAL_CAPACITY,
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

    /// Caps the journal at `capacity` entries instead of [`DEFAULT_JOURNAL_CAPACITY`].
    #[must_use]
    pub fn with_capacity(mut self, capacity: usize) -> SandboxAcquirer {
        self.capacity = capacity;
        self
    }

    pub fn fault_plan(&self) -> FaultPlan {
        self.faults
    }

    /// Every entry, oldest first.
    pub fn journal(&self) -> Vec<JournalEntry> {
        self.lock().journal.clone()
    }

    /// Up to `limit` entries with `seq > after_seq`, oldest first: for paging through a large journal.
    pub fn journal_page(&self, after_seq: u64, limit: usize) -> Vec<JournalEntry> {
        let state = self.lock();
        // seq n sits at index n - 1, so entries after `after_seq` start at index `after_seq`.
        let start = usize::try_from(after_seq)
            .unwrap_or(usize::MAX)
            .min(state.journal.len());
        state.journal[start..].iter().take(limit).cloned().collect()
    }

    pub fn journal_len(&self) -> usize {
        self.lock().journal.len()
    }

    /// Every reference this sandbox ever approved (including ones later cancelled or reversed), in order.
    pub fn approved_references(&self) -> Vec<String> {
        self.lock().approved_order.clone()
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
        if state.attempts.len() >= self.capacity.max(1) {
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
        if state.journal.len() >= self.capacity {
            Err(ConnectorError::SystemError("sandbox journal full".to_owned()))
        } else {
            Ok(())
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
        if let Some(record) = state.approvals.get(&request.reference) {
            if record.merchant != request.acquirer_merchant_id || record.amount != request.amount {
                // Not the same request: answering with the first decision would tell this caller about money it
                // did not move. The first decision stands and stays visible to inquiries.
                return Ok(ApproveOutcome::Declined(decline(
                    DeclineCode::RejectCardCompany,
                    "94",
                    "duplicate reference with a different request",
                )));
            }
            return Ok(match &record.decision {
                Decision::Approved { approval, .. } => ApproveOutcome::Approved(approval.clone()),
                Decision::Declined(declined) => ApproveOutcome::Declined(declined.clone()),
            });
        }

        // A reference paygate already reversed (망취소) is void: an approval request for it that arrives late —
        // after the timeout that made paygate reverse it — must not move money.
        if state.unknown_reversals.contains(&request.reference) {
            return Ok(ApproveOutcome::Declined(decline(
                DeclineCode::RejectCardCompany,
                "96",
                "the reference was reversed before it was approved",
            )));
        }

        let number = request.card.number.as_str();
        let valid_number = is_valid_card_number(number);
        let suffix = number.get(number.len().saturating_sub(4)..).unwrap_or("");
        if valid_number {
            match suffix {
                "0060" => return Err(ConnectorError::SystemError("issuer system unavailable".to_owned())),
                "0052" => return Err(ConnectorError::Timeout),
                _ => {}
            }
        }
        self.ensure_room(&state)?;

        let verdict = if !valid_number {
            Err(decline(DeclineCode::InvalidCardNumber, "14", "invalid card number"))
        } else if !request.amount.is_positive() {
            Err(decline(DeclineCode::RejectCardCompany, "13", "invalid amount"))
        } else if is_expired(request.card.expiry_year, request.card.expiry_month, now) {
            Err(decline(DeclineCode::InvalidCardExpiration, "54", "expired card"))
        } else {
            match suffix {
                "0011" => Err(decline(DeclineCode::RejectCardPayment, "51", "insufficient funds")),
                "0029" => Err(decline(DeclineCode::LostOrStolenCard, "43", "lost or stolen card")),
                "0037" => Err(decline(DeclineCode::InvalidPassword, "55", "incorrect card password")),
                "0078" if !request.authenticated => Err(decline(
                    DeclineCode::AuthenticationRequired,
                    "1A",
                    "buyer authentication required",
                )),
                _ => Ok(()),
            }
        };

        let mut entry = JournalEntry::new(
            JournalKind::Approved,
            now,
            &request.reference,
            &request.acquirer_merchant_id,
        );
        entry.amount = Some(request.amount);
        let (decision, outcome) = match verdict {
            Ok(()) => {
                let approval = Approval {
                    approval_number: approval_number(&self.id, &request.reference),
                    acquirer_transaction_id: state.next_transaction_id(&self.id),
                    issuer_code: issuer_code(number).to_owned(),
                    approved_at: now,
                };
                entry.balance_after = Some(request.amount);
                entry.acquirer_transaction_id = Some(approval.acquirer_transaction_id.clone());
                entry.approval_number = Some(approval.approval_number.clone());
                state.approved_order.push(request.reference.clone());
                let decision = Decision::Approved {
                    approval: approval.clone(),
                    balance: request.amount,
                    closed_at: None,
                    reversed: false,
                };
                (decision, ApproveOutcome::Approved(approval))
            }
            Err(declined) => {
                entry.kind = JournalKind::Declined;
                entry.acquirer_code = Some(declined.acquirer_code.clone());
                entry.decline_code = Some(declined.code);
                (Decision::Declined(declined.clone()), ApproveOutcome::Declined(declined))
            }
        };
        state.record(entry);
        state.approvals.insert(
            request.reference.clone(),
            ApprovalRecord {
                merchant: request.acquirer_merchant_id.clone(),
                amount: request.amount,
                decision,
            },
        );
        drop(state);

        if valid_number && suffix == "0045" {
            // Decided and booked; the answer "never arrives". A repeat finds the stored decision above.
            return Err(ConnectorError::Timeout);
        }
        Ok(outcome)
    }

    /// Cancels without fault injection.
    pub(crate) fn cancel_now(&self, request: &CancelRequest) -> Result<CancelOutcome, ConnectorError> {
        let now = (self.clock)();
        let mut state = self.lock();
        if let Some(record) = state.cancels.get(&request.reference) {
            let same = record.approval_reference == request.approval_reference
                && record.merchant == request.acquirer_merchant_id
                && record.amount == request.amount;
            if !same {
                return Ok(refused(
                    DUPLICATE_REFERENCE,
                    "cancel reference reused with a different request",
                ));
            }
            return Ok(record.outcome.clone());
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

        let merchant = request.acquirer_merchant_id.as_str();
        let verdict = match state
            .approvals
            .get_mut(&request.approval_reference)
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
                let transaction_id = state.next_transaction_id(&self.id);
                entry.balance_after = Some(left);
                entry.acquirer_transaction_id = Some(transaction_id.clone());
                CancelOutcome::Canceled(Cancellation {
                    acquirer_transaction_id: transaction_id,
                    canceled_at: now,
                })
            }
            Err((code, message)) => {
                entry.kind = JournalKind::CancelRefused;
                entry.acquirer_code = Some(code.to_owned());
                refused(code, message)
            }
        };
        state.record(entry);
        state.cancels.insert(
            request.reference.clone(),
            CancelRecord {
                approval_reference: request.approval_reference.clone(),
                merchant: request.acquirer_merchant_id.clone(),
                amount: request.amount,
                outcome: outcome.clone(),
            },
        );
        Ok(outcome)
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
                state.unknown_reversals.insert(approval_reference.to_owned());
                state.record(JournalEntry::new(
                    JournalKind::ReverseOfUnknown,
                    now,
                    approval_reference,
                    merchant,
                ));
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
        state.record(entry);
        Ok(())
    }

    /// Inquires without fault injection.
    pub(crate) fn inquire_now(&self, reference: &str, merchant: &str) -> InquiryOutcome {
        let state = self.lock();
        match state.approval_of(reference, merchant).map(|record| &record.decision) {
            None => InquiryOutcome::NotFound,
            Some(Decision::Declined(declined)) => InquiryOutcome::Declined(declined.clone()),
            Some(Decision::Approved {
                approval,
                closed_at: Some(closed_at),
                ..
            }) => InquiryOutcome::Reversed {
                approval: approval.clone(),
                reversed_at: *closed_at,
            },
            Some(Decision::Approved { approval, .. }) => InquiryOutcome::Approved(approval.clone()),
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
}

// ---------------------------------------------------------------------------------------------------------------
// Card rules
// ---------------------------------------------------------------------------------------------------------------

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

/// The issuer (카드사) code from the BIN, as the sandbox's pretend card companies number them.
fn issuer_code(number: &str) -> &'static str {
    match number.get(..4) {
        Some("4330") => "11",
        Some("5400") => "21",
        Some("9400") => "31",
        _ => "99",
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
