//! The payment status state machine and the arithmetic of cancelling part or all of a payment.
//!
//! Every status change goes through [`transition`], so the full set of allowed moves can be read (and tested) in
//! one place instead of being scattered over handlers that each check a few `if status == …` conditions.

use std::fmt;
use std::str::FromStr;

use crate::money::{Money, MoneyError};

/// Where a payment is in its life cycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PaymentStatus {
    /// Created by the merchant; the buyer has not yet authenticated.
    Ready,
    /// The buyer authenticated and the payment awaits the merchant's approval call.
    InProgress,
    /// A virtual account was issued and the buyer has not yet transferred the money.
    WaitingForDeposit,
    /// Approved and captured; it can still be cancelled.
    Done,
    /// Fully cancelled; nothing more can happen.
    Canceled,
    /// Part of the amount was cancelled and the rest can still be cancelled.
    PartialCanceled,
    /// Approval failed or was refused; nothing more can happen.
    Aborted,
    /// The buyer or merchant did not act in time; nothing more can happen.
    Expired,
}

impl PaymentStatus {
    /// Every status, so tests and admin tooling can enumerate them without a hand-kept list.
    pub const ALL: [PaymentStatus; 8] = [
        PaymentStatus::Ready,
        PaymentStatus::InProgress,
        PaymentStatus::WaitingForDeposit,
        PaymentStatus::Done,
        PaymentStatus::Canceled,
        PaymentStatus::PartialCanceled,
        PaymentStatus::Aborted,
        PaymentStatus::Expired,
    ];

    /// The UPPER_SNAKE name used in the API and in storage.
    #[must_use]
    pub const fn as_str(&self) -> &'static str {
        match self {
            PaymentStatus::Ready => "READY",
            PaymentStatus::InProgress => "IN_PROGRESS",
            PaymentStatus::WaitingForDeposit => "WAITING_FOR_DEPOSIT",
            PaymentStatus::Done => "DONE",
            PaymentStatus::Canceled => "CANCELED",
            PaymentStatus::PartialCanceled => "PARTIAL_CANCELED",
            PaymentStatus::Aborted => "ABORTED",
            PaymentStatus::Expired => "EXPIRED",
        }
    }

    /// Whether no event can move the payment out of this status.
    ///
    /// `Done` and `PartialCanceled` are not terminal because they can still be cancelled.
    #[must_use]
    pub const fn is_terminal(&self) -> bool {
        matches!(
            self,
            PaymentStatus::Canceled | PaymentStatus::Aborted | PaymentStatus::Expired
        )
    }

    /// Whether a cancel request may be accepted in this status, so the API can reject it before doing any work.
    #[must_use]
    pub const fn accepts_cancel(&self) -> bool {
        matches!(
            self,
            PaymentStatus::Done | PaymentStatus::PartialCanceled | PaymentStatus::WaitingForDeposit
        )
    }

    /// The status after `event`; the same as [`transition`]`(self, event)`.
    ///
    /// # Errors
    /// [`TransitionError`] if this status does not accept `event`.
    pub fn next(self, event: PaymentEvent) -> Result<PaymentStatus, TransitionError> {
        transition(self, event)
    }
}

impl fmt::Display for PaymentStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A status name that is not one of the UPPER_SNAKE names from [`PaymentStatus::as_str`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown payment status {name:?}: expected one of READY, IN_PROGRESS, WAITING_FOR_DEPOSIT, DONE, CANCELED, PARTIAL_CANCELED, ABORTED, EXPIRED")]
pub struct UnknownPaymentStatus {
    name: String,
}

impl UnknownPaymentStatus {
    /// The rejected input.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl FromStr for PaymentStatus {
    type Err = UnknownPaymentStatus;

    /// Parses the exact UPPER_SNAKE name, so that each status has a single stored spelling.
    fn from_str(name: &str) -> Result<Self, Self::Err> {
        PaymentStatus::ALL
            .into_iter()
            .find(|status| status.as_str() == name)
            .ok_or_else(|| UnknownPaymentStatus { name: name.to_owned() })
    }
}

/// Something that happens to a payment and may change its status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PaymentEvent {
    /// The buyer completed authentication with the card issuer or wallet (READY → IN_PROGRESS).
    BuyerAuthenticated,
    /// The merchant's approval call succeeded (IN_PROGRESS → DONE).
    Approved,
    /// A virtual account was issued for bank transfer (IN_PROGRESS → WAITING_FOR_DEPOSIT).
    VirtualAccountIssued,
    /// The buyer's transfer into the virtual account arrived (WAITING_FOR_DEPOSIT → DONE).
    DepositReceived,
    /// Authentication or approval failed (READY or IN_PROGRESS → ABORTED).
    Failed,
    /// The deadline to authenticate, approve or deposit passed (READY, IN_PROGRESS, WAITING_FOR_DEPOSIT → EXPIRED).
    Expired,
    /// Part of the remaining balance was cancelled (DONE or PARTIAL_CANCELED → PARTIAL_CANCELED).
    PartiallyCanceled,
    /// The whole remaining balance was cancelled (DONE, PARTIAL_CANCELED, WAITING_FOR_DEPOSIT → CANCELED).
    FullyCanceled,
}

impl PaymentEvent {
    /// Every event, so tests can enumerate them without a hand-kept list.
    pub const ALL: [PaymentEvent; 8] = [
        PaymentEvent::BuyerAuthenticated,
        PaymentEvent::Approved,
        PaymentEvent::VirtualAccountIssued,
        PaymentEvent::DepositReceived,
        PaymentEvent::Failed,
        PaymentEvent::Expired,
        PaymentEvent::PartiallyCanceled,
        PaymentEvent::FullyCanceled,
    ];

    /// The event's name as written in logs and error messages.
    #[must_use]
    pub const fn name(&self) -> &'static str {
        match self {
            PaymentEvent::BuyerAuthenticated => "BuyerAuthenticated",
            PaymentEvent::Approved => "Approved",
            PaymentEvent::VirtualAccountIssued => "VirtualAccountIssued",
            PaymentEvent::DepositReceived => "DepositReceived",
            PaymentEvent::Failed => "Failed",
            PaymentEvent::Expired => "Expired",
            PaymentEvent::PartiallyCanceled => "PartiallyCanceled",
            PaymentEvent::FullyCanceled => "FullyCanceled",
        }
    }
}

impl fmt::Display for PaymentEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A payment in status `from` was asked to take an event that status does not accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("payment in status {from} cannot take event {event}")]
pub struct TransitionError {
    /// The status the payment was in, which is left unchanged.
    pub from: PaymentStatus,
    /// The event that was refused.
    pub event: PaymentEvent,
}

/// The status a payment moves to when `event` happens in status `from`.
///
/// This match is the whole state machine: any pair not listed is refused.
///
/// # Errors
/// [`TransitionError`] if `from` does not accept `event`, including every event in a terminal status.
pub fn transition(from: PaymentStatus, event: PaymentEvent) -> Result<PaymentStatus, TransitionError> {
    use PaymentEvent as E;
    use PaymentStatus as S;

    match (from, event) {
        (S::Ready, E::BuyerAuthenticated) => Ok(S::InProgress),
        (S::InProgress, E::Approved) | (S::WaitingForDeposit, E::DepositReceived) => Ok(S::Done),
        (S::InProgress, E::VirtualAccountIssued) => Ok(S::WaitingForDeposit),
        (S::Ready | S::InProgress, E::Failed) => Ok(S::Aborted),
        (S::Ready | S::InProgress | S::WaitingForDeposit, E::Expired) => Ok(S::Expired),
        (S::Done | S::PartialCanceled, E::PartiallyCanceled) => Ok(S::PartialCanceled),
        // An unpaid virtual account can be cancelled, but only as a whole since no money has moved yet.
        (S::Done | S::PartialCanceled | S::WaitingForDeposit, E::FullyCanceled) => Ok(S::Canceled),
        _ => Err(TransitionError { from, event }),
    }
}

/// Why a cancel request cannot be applied to the remaining balance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CancelError {
    /// A cancel must be for more than zero, or it would record an event that changes nothing.
    #[error("cancel amount must be greater than zero, got {requested}")]
    NotPositive {
        /// The rejected cancel amount.
        requested: Money,
    },
    /// More was requested than remains, which would refund money the merchant never received.
    #[error("cancel amount {requested} exceeds the cancelable balance {balance}")]
    ExceedsBalance {
        /// What remained to be cancelled.
        balance: Money,
        /// The rejected cancel amount.
        requested: Money,
    },
    /// The cancel amount is in a different currency from the balance.
    #[error(transparent)]
    Money(#[from] MoneyError),
}

/// Decides which cancel event `cancel_amount` causes and what balance remains after it.
///
/// The result is [`PaymentEvent::FullyCanceled`] when the remaining balance reaches zero and
/// [`PaymentEvent::PartiallyCanceled`] otherwise. Whether the payment's status accepts that event is for
/// [`transition`] to decide.
///
/// # Errors
/// [`CancelError::Money`] with a currency mismatch if the currencies differ, [`CancelError::NotPositive`] for a
/// zero or negative amount, and [`CancelError::ExceedsBalance`] if more than the balance is requested.
pub fn cancel_event(balance: Money, cancel_amount: Money) -> Result<(PaymentEvent, Money), CancelError> {
    let requested_vs_balance = cancel_amount.checked_cmp(&balance)?;
    if !cancel_amount.is_positive() {
        return Err(CancelError::NotPositive {
            requested: cancel_amount,
        });
    }
    if requested_vs_balance.is_gt() {
        return Err(CancelError::ExceedsBalance {
            balance,
            requested: cancel_amount,
        });
    }
    let remaining = balance.checked_sub(cancel_amount)?;
    let event = if remaining.is_zero() {
        PaymentEvent::FullyCanceled
    } else {
        PaymentEvent::PartiallyCanceled
    };
    Ok((event, remaining))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::money::Currency;
    use proptest::prelude::*;
    use PaymentEvent as E;
    use PaymentStatus as S;

    /// The allowed transitions, written out independently of the match in [`transition`].
    const ALLOWED: [(PaymentStatus, PaymentEvent, PaymentStatus); 14] = [
        (S::Ready, E::BuyerAuthenticated, S::InProgress),
        (S::Ready, E::Failed, S::Aborted),
        (S::Ready, E::Expired, S::Expired),
        (S::InProgress, E::Approved, S::Done),
        (S::InProgress, E::VirtualAccountIssued, S::WaitingForDeposit),
        (S::InProgress, E::Failed, S::Aborted),
        (S::InProgress, E::Expired, S::Expired),
        (S::WaitingForDeposit, E::DepositReceived, S::Done),
        (S::WaitingForDeposit, E::Expired, S::Expired),
        (S::WaitingForDeposit, E::FullyCanceled, S::Canceled),
        (S::Done, E::PartiallyCanceled, S::PartialCanceled),
        (S::Done, E::FullyCanceled, S::Canceled),
        (S::PartialCanceled, E::PartiallyCanceled, S::PartialCanceled),
        (S::PartialCanceled, E::FullyCanceled, S::Canceled),
    ];

    fn allowed_target(from: PaymentStatus, event: PaymentEvent) -> Option<PaymentStatus> {
        ALLOWED
            .iter()
            .find(|(allowed_from, allowed_event, _)| *allowed_from == from && *allowed_event == event)
            .map(|(_, _, to)| *to)
    }

    #[test]
    fn every_status_event_pair_matches_the_allowed_table() {
        let mut checked_pairs = 0;
        let mut allowed_pairs = 0;
        for from in PaymentStatus::ALL {
            for event in PaymentEvent::ALL {
                let expected = allowed_target(from, event).ok_or(TransitionError { from, event });
                assert_eq!(transition(from, event), expected, "{from} + {event}");
                assert_eq!(from.next(event), expected, "{from}.next({event})");
                checked_pairs += 1;
                allowed_pairs += usize::from(expected.is_ok());
            }
        }
        assert_eq!(checked_pairs, 64);
        assert_eq!(allowed_pairs, ALLOWED.len());
    }

    #[test]
    fn terminal_statuses_refuse_every_event() {
        for from in PaymentStatus::ALL {
            let refuses_everything = PaymentEvent::ALL
                .into_iter()
                .all(|event| transition(from, event).is_err());
            assert_eq!(from.is_terminal(), refuses_everything, "{from}");
        }
        let terminal: Vec<_> = PaymentStatus::ALL
            .into_iter()
            .filter(PaymentStatus::is_terminal)
            .collect();
        assert_eq!(terminal, [S::Canceled, S::Aborted, S::Expired]);
    }

    #[test]
    fn accepts_cancel_agrees_with_the_full_cancel_transition() {
        for from in PaymentStatus::ALL {
            assert_eq!(
                from.accepts_cancel(),
                transition(from, E::FullyCanceled).is_ok(),
                "{from}"
            );
        }
    }

    #[test]
    fn status_names_round_trip() {
        let cases = [
            (S::Ready, "READY"),
            (S::InProgress, "IN_PROGRESS"),
            (S::WaitingForDeposit, "WAITING_FOR_DEPOSIT"),
            (S::Done, "DONE"),
            (S::Canceled, "CANCELED"),
            (S::PartialCanceled, "PARTIAL_CANCELED"),
            (S::Aborted, "ABORTED"),
            (S::Expired, "EXPIRED"),
        ];
        assert_eq!(cases.map(|(status, _)| status), PaymentStatus::ALL);
        for (status, name) in cases {
            assert_eq!(status.as_str(), name);
            assert_eq!(status.to_string(), name);
            assert_eq!(name.parse::<PaymentStatus>(), Ok(status));
        }
    }

    #[test]
    fn status_parsing_rejects_other_spellings() {
        for input in [
            "done",
            "Done",
            "DONE ",
            "",
            "CANCELLED",
            "PARTIAL_CANCELLED",
            "InProgress",
        ] {
            let error = input.parse::<PaymentStatus>().expect_err(input);
            assert_eq!(error.name(), input);
        }
    }

    #[test]
    fn transition_error_message_names_status_and_event() {
        let error = transition(S::Done, E::Approved).expect_err("DONE cannot be approved again");
        assert_eq!(error.to_string(), "payment in status DONE cannot take event Approved");
        let error = transition(S::WaitingForDeposit, E::PartiallyCanceled).expect_err("unpaid accounts cancel fully");
        assert_eq!(
            error.to_string(),
            "payment in status WAITING_FOR_DEPOSIT cannot take event PartiallyCanceled"
        );
    }

    #[test]
    fn cancel_event_table() {
        let usd = |amount_minor| Money::new(amount_minor, Currency::Usd);
        let cases = [
            (
                Money::krw(10_000),
                Money::krw(10_000),
                Ok((E::FullyCanceled, Money::krw(0))),
            ),
            (
                Money::krw(10_000),
                Money::krw(3_000),
                Ok((E::PartiallyCanceled, Money::krw(7_000))),
            ),
            (
                Money::krw(10_000),
                Money::krw(9_999),
                Ok((E::PartiallyCanceled, Money::krw(1))),
            ),
            (Money::krw(1), Money::krw(1), Ok((E::FullyCanceled, Money::krw(0)))),
            (
                Money::krw(10_000),
                Money::krw(10_001),
                Err(CancelError::ExceedsBalance {
                    balance: Money::krw(10_000),
                    requested: Money::krw(10_001),
                }),
            ),
            (
                Money::krw(0),
                Money::krw(1),
                Err(CancelError::ExceedsBalance {
                    balance: Money::krw(0),
                    requested: Money::krw(1),
                }),
            ),
            (
                Money::krw(10_000),
                Money::krw(0),
                Err(CancelError::NotPositive {
                    requested: Money::krw(0),
                }),
            ),
            (
                Money::krw(10_000),
                Money::krw(-1),
                Err(CancelError::NotPositive {
                    requested: Money::krw(-1),
                }),
            ),
            (
                Money::krw(10_000),
                usd(100),
                Err(CancelError::Money(MoneyError::CurrencyMismatch {
                    left: Currency::Usd,
                    right: Currency::Krw,
                })),
            ),
        ];
        for (balance, requested, expected) in cases {
            assert_eq!(
                cancel_event(balance, requested),
                expected,
                "cancel {requested} of {balance}"
            );
        }
    }

    #[test]
    fn cancel_error_message_shows_amounts() {
        let error = cancel_event(Money::krw(1_000), Money::krw(1_500)).expect_err("more than the balance");
        assert_eq!(
            error.to_string(),
            "cancel amount 1,500 KRW exceeds the cancelable balance 1,000 KRW"
        );
    }

    fn any_event() -> impl Strategy<Value = PaymentEvent> {
        proptest::sample::select(PaymentEvent::ALL.to_vec())
    }

    /// Applies `event`, checking the invariants that must hold for every step of any walk.
    fn step(status: PaymentStatus, event: PaymentEvent) -> Result<PaymentStatus, TestCaseError> {
        let result = transition(status, event);
        if status.is_terminal() {
            prop_assert_eq!(result, Err(TransitionError { from: status, event }));
        }
        match result {
            Ok(next) => {
                if next == S::Done {
                    prop_assert!(
                        matches!(status, S::InProgress | S::WaitingForDeposit),
                        "DONE entered from {}",
                        status
                    );
                }
                Ok(next)
            }
            Err(error) => {
                prop_assert_eq!(error, TransitionError { from: status, event });
                Ok(status)
            }
        }
    }

    proptest! {
        #[test]
        fn random_events_never_leave_a_terminal_status(events in proptest::collection::vec(any_event(), 0..64)) {
            let mut status = S::Ready;
            let mut terminal_reached = None;
            for event in events {
                status = step(status, event)?;
                if let Some(terminal) = terminal_reached {
                    prop_assert_eq!(status, terminal);
                } else if status.is_terminal() {
                    terminal_reached = Some(status);
                }
            }
        }

        #[test]
        fn walks_through_accepted_events_stop_only_in_terminal_statuses(
            choices in proptest::collection::vec(any::<prop::sample::Index>(), 0..32),
        ) {
            // Choosing only among accepted events makes the walk reach deep statuses that random events rarely hit.
            let mut status = S::Ready;
            for choice in choices {
                let accepted: Vec<_> =
                    PaymentEvent::ALL.into_iter().filter(|event| transition(status, *event).is_ok()).collect();
                if accepted.is_empty() {
                    prop_assert!(status.is_terminal());
                    for event in PaymentEvent::ALL {
                        prop_assert_eq!(step(status, event)?, status);
                    }
                    break;
                }
                let next = step(status, *choice.get(&accepted))?;
                prop_assert_ne!(next, S::Ready, "nothing leads back to READY");
                status = next;
            }
        }

        #[test]
        fn partial_cancels_never_overdraw_and_end_canceled_at_zero(
            initial_minor in 1_i64..=5_000_000,
            requests_minor in proptest::collection::vec(1_i64..=1_000_000, 0..30),
        ) {
            let mut status = S::Done;
            let mut balance = Money::krw(initial_minor);
            let mut total_canceled_minor = 0;
            for request_minor in requests_minor {
                let requested = Money::krw(request_minor);
                match cancel_event(balance, requested) {
                    Ok((event, remaining)) => {
                        prop_assert!(!remaining.is_negative());
                        prop_assert_eq!(remaining.amount_minor(), balance.amount_minor() - request_minor);
                        prop_assert_eq!(event == E::FullyCanceled, remaining.is_zero());
                        status = transition(status, event).unwrap();
                        balance = remaining;
                        total_canceled_minor += request_minor;
                    }
                    Err(error) => {
                        prop_assert!(request_minor > balance.amount_minor());
                        prop_assert_eq!(error, CancelError::ExceedsBalance { balance, requested });
                    }
                }
                prop_assert_eq!(status == S::Canceled, balance.is_zero());
                prop_assert_eq!(total_canceled_minor + balance.amount_minor(), initial_minor);
            }
            if balance.is_positive() {
                let (event, remaining) = cancel_event(balance, balance).unwrap();
                prop_assert_eq!(event, E::FullyCanceled);
                prop_assert!(remaining.is_zero());
                status = transition(status, event).unwrap();
            }
            prop_assert_eq!(status, S::Canceled);
            prop_assert!(status.is_terminal());
        }
    }
}
