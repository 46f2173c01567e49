//! Events and their delivery: what happened, who must hear about it, and when to try again.
//!
//! An event is written in the same database transaction as the change it describes (the outbox). Each destination
//! — a webhook endpoint, or the payment's notification URL (노티) — gets its own delivery, retried on its own
//! schedule until it succeeds or runs out of attempts.

use crate::time::{DurationMs, UnixMillis};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EventType {
    /// A payment's status changed, or a cancel completed (the status may stay PARTIAL_CANCELED).
    PaymentStatusChanged,
    /// paygate disabled a webhook endpoint that kept failing.
    WebhookEndpointDisabled,
    /// A billing key was issued (paygate's event; `data` is the Billing object).
    BillingIssued,
    /// A billing key was deleted (Toss's event; `data` is `{billingKey, reason}`).
    BillingDeleted,
    /// A virtual account's payment changed status (issued, deposited, cancelled, expired): Toss's event, whose
    /// body carries `secret`, `status`, `transactionKey` and `orderId` at the top level.
    DepositCallback,
    /// A cash receipt was requested or the tax authority answered it (paygate's event; `data` is the CashReceipt
    /// object).
    CashReceiptStatusChanged,
}

impl EventType {
    pub const ALL: [EventType; 6] = [
        EventType::PaymentStatusChanged,
        EventType::WebhookEndpointDisabled,
        EventType::BillingIssued,
        EventType::BillingDeleted,
        EventType::DepositCallback,
        EventType::CashReceiptStatusChanged,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventType::PaymentStatusChanged => "PAYMENT_STATUS_CHANGED",
            EventType::WebhookEndpointDisabled => "WEBHOOK_ENDPOINT_DISABLED",
            EventType::BillingIssued => "BILLING_ISSUED",
            EventType::BillingDeleted => "BILLING_DELETED",
            EventType::DepositCallback => "DEPOSIT_CALLBACK",
            EventType::CashReceiptStatusChanged => "CASH_RECEIPT_STATUS_CHANGED",
        }
    }

    pub fn parse(text: &str) -> Option<EventType> {
        EventType::ALL.into_iter().find(|t| t.as_str() == text)
    }
}

/// How the notification URL (노티) receives its fields.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NotificationFormat {
    /// `application/x-www-form-urlencoded`, the Korean PG convention.
    Form,
    Json,
}

impl NotificationFormat {
    pub const ALL: [NotificationFormat; 2] = [NotificationFormat::Form, NotificationFormat::Json];

    pub fn as_str(self) -> &'static str {
        match self {
            NotificationFormat::Form => "FORM",
            NotificationFormat::Json => "JSON",
        }
    }

    pub fn parse(text: &str) -> Option<NotificationFormat> {
        [NotificationFormat::Form, NotificationFormat::Json]
            .into_iter()
            .find(|f| f.as_str() == text)
    }
}

/// Where a delivery goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeliveryKind {
    /// A signed JSON webhook to an endpoint the merchant registered.
    Webhook,
    /// The notification URL (노티): success is a 2xx answer whose body contains `SUCCESS`.
    Notification,
}

impl DeliveryKind {
    pub const ALL: [DeliveryKind; 2] = [DeliveryKind::Webhook, DeliveryKind::Notification];

    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryKind::Webhook => "WEBHOOK",
            DeliveryKind::Notification => "NOTIFICATION",
        }
    }

    pub fn parse(text: &str) -> Option<DeliveryKind> {
        match text {
            "WEBHOOK" => Some(DeliveryKind::Webhook),
            "NOTIFICATION" => Some(DeliveryKind::Notification),
            _ => None,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeliveryStatus {
    Pending,
    Succeeded,
    /// Every attempt failed; a manual resend starts a new delivery.
    Failed,
}

impl DeliveryStatus {
    pub const ALL: [DeliveryStatus; 3] = [
        DeliveryStatus::Pending,
        DeliveryStatus::Succeeded,
        DeliveryStatus::Failed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Pending => "PENDING",
            DeliveryStatus::Succeeded => "SUCCEEDED",
            DeliveryStatus::Failed => "FAILED",
        }
    }

    pub fn parse(text: &str) -> Option<DeliveryStatus> {
        match text {
            "PENDING" => Some(DeliveryStatus::Pending),
            "SUCCEEDED" => Some(DeliveryStatus::Succeeded),
            "FAILED" => Some(DeliveryStatus::Failed),
            _ => None,
        }
    }
}

/// When to try again: a fixed list of waits after each failed attempt. The delivery gives up after the last.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetrySchedule {
    /// Wait before attempt n+2 after attempt n+1 failed; `len() + 1` attempts in all.
    waits: Vec<DurationMs>,
}

impl RetrySchedule {
    pub fn new(waits: Vec<DurationMs>) -> RetrySchedule {
        RetrySchedule { waits }
    }

    /// Every `interval`, `attempts_max` attempts in all (the notification URL: 5 minutes × 10).
    pub fn fixed(interval: DurationMs, attempts_max: u32) -> RetrySchedule {
        let waits = (1..attempts_max.max(1)).map(|_| interval).collect();
        RetrySchedule { waits }
    }

    pub fn attempts_max(&self) -> u32 {
        u32::try_from(self.waits.len()).unwrap_or(u32::MAX).saturating_add(1)
    }

    /// After `attempts_made` failed attempts, when to try next, or `None` to give up.
    pub fn next_attempt(&self, attempts_made: u32, now: UnixMillis) -> Option<UnixMillis> {
        let index = usize::try_from(attempts_made.checked_sub(1)?).ok()?;
        self.waits.get(index).map(|wait| now.saturating_add(*wait))
    }

    /// The time from the first attempt to the last, if every attempt fails.
    pub fn total_span_ms(&self) -> u64 {
        self.waits.iter().map(|w| u64::from(w.as_millis())).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_schedule_is_ten_attempts_five_minutes_apart() {
        let schedule = RetrySchedule::fixed(DurationMs::from_millis(300_000), 10);
        assert_eq!(schedule.attempts_max(), 10);
        let now = UnixMillis::new(1_000);
        for made in 1..10 {
            assert_eq!(
                schedule.next_attempt(made, now),
                Some(UnixMillis::new(301_000)),
                "after {made}"
            );
        }
        assert_eq!(schedule.next_attempt(10, now), None);
        assert_eq!(schedule.next_attempt(0, now), None);
        assert_eq!(schedule.total_span_ms(), 9 * 300_000);
    }

    #[test]
    fn names_round_trip() {
        for t in EventType::ALL {
            assert_eq!(EventType::parse(t.as_str()), Some(t));
        }
        for k in [DeliveryKind::Webhook, DeliveryKind::Notification] {
            assert_eq!(DeliveryKind::parse(k.as_str()), Some(k));
        }
        for s in [
            DeliveryStatus::Pending,
            DeliveryStatus::Succeeded,
            DeliveryStatus::Failed,
        ] {
            assert_eq!(DeliveryStatus::parse(s.as_str()), Some(s));
        }
    }
}
