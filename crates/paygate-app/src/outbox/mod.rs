//! The outbox: events written with the changes they describe, and their delivery to merchants — signed webhooks
//! and the notification URL (노티) — by a worker, at its own pace, with retries.

mod deliver;

pub use deliver::{EndpointDisabledData, WebhookEnvelope};
pub mod webhooks;

use std::collections::BTreeMap;

use paygate_domain::event::{DeliveryKind, EventType, RetrySchedule};
use paygate_domain::id::EventId;
use paygate_domain::payment::{
    Payment, PaymentMethod, PaymentStatus, PaymentTransaction, TransactionKind, TransactionStatus,
};
use paygate_domain::time::DurationMs;
use paygate_outbound::SsrfPolicy;
use paygate_store::{NewEvent, NotificationTarget, PaymentUpdate, StoreError};

use crate::instant::rfc3339;
use crate::payments::command::{FieldError, FieldReason, NotificationUrl};
use crate::payments::wire::PaymentBody;
use crate::payments::{PaymentError, PaymentView};
use crate::App;

pub(crate) use deliver::webhook_secret_purpose;
pub use deliver::DeliveryReport;

/// Bounds and schedules of deliveries. Defaults are listed in `docs/configuration.md`.
#[derive(Clone, Debug, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct OutboxConfig {
    /// Waits between webhook attempts after a failure; one more attempt than entries. About 3 days in all.
    pub webhook_retry_schedule_secs: Vec<u32>,
    /// An endpoint whose deliveries have all failed for this long is disabled, and the merchant told.
    pub webhook_disable_after_secs: u32,
    /// During a secret rotation, how long the previous secret keeps signing too.
    pub webhook_secret_overlap_secs: u32,
    /// The notification URL: one attempt every interval, at most this many (seed: 5 minutes × 10).
    pub notification_interval_ms: u32,
    pub notification_attempts_max: u32,
    /// One HTTP attempt: connecting, and the whole exchange.
    pub connect_timeout_ms: u32,
    pub request_timeout_ms: u32,
    /// Bytes of each response body kept in the delivery log.
    pub response_body_max_bytes: u32,
    /// Deliveries claimed per worker pass, sent at most this many at once.
    pub batch_max: u32,
    pub concurrency_max: u32,
    /// How long a claimed delivery is reserved for its worker; must exceed the request timeout.
    pub lease_ms: u32,
    pub worker_interval_ms: u32,
    /// SSRF guard: destinations on loopback or private networks are refused unless allowed here (tests, local
    /// development, private deployments). Link-local and metadata addresses are always refused.
    pub allow_loopback: bool,
    pub allow_private: bool,
}

impl Default for OutboxConfig {
    fn default() -> Self {
        OutboxConfig {
            webhook_retry_schedule_secs: vec![5, 300, 1_800, 7_200, 18_000, 36_000, 50_400, 72_000, 86_400],
            webhook_disable_after_secs: 5 * 24 * 3_600,
            webhook_secret_overlap_secs: 24 * 3_600,
            notification_interval_ms: 300_000,
            notification_attempts_max: 10,
            connect_timeout_ms: 3_000,
            request_timeout_ms: 10_000,
            response_body_max_bytes: 4_096,
            batch_max: 100,
            concurrency_max: 16,
            lease_ms: 60_000,
            worker_interval_ms: 500,
            allow_loopback: false,
            allow_private: false,
        }
    }
}

impl OutboxConfig {
    pub fn policy(&self) -> SsrfPolicy {
        SsrfPolicy {
            allow_loopback: self.allow_loopback,
            allow_private: self.allow_private,
        }
    }

    pub fn schedule(&self, kind: DeliveryKind) -> RetrySchedule {
        match kind {
            DeliveryKind::Webhook => RetrySchedule::new(
                self.webhook_retry_schedule_secs
                    .iter()
                    .map(|secs| DurationMs::from_millis(secs.saturating_mul(1_000)))
                    .collect(),
            ),
            DeliveryKind::Notification => RetrySchedule::fixed(
                DurationMs::from_millis(self.notification_interval_ms),
                self.notification_attempts_max,
            ),
        }
    }
}

/// The `data` of `DEPOSIT_CALLBACK`, Toss's fields (copied to the body's top level on delivery) and the payment's key.
#[derive(serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DepositCallbackData {
    /// The payment's `secret`: compare it with the one its issue answered.
    #[schema(example = "ps_3f1c2d9e8b7a6f5e4d3c2b1a0f9e8d7c")]
    secret: String,
    /// The payment's status after the change.
    #[schema(example = "DONE")]
    status: &'static str,
    /// The transaction that changed it (the deposit's); `null` before there is one.
    transaction_key: Option<String>,
    order_id: String,
    /// paygate's addition: the payment's key.
    payment_key: String,
}

/// Statuses after which the notification URL is called: the outcome of a payment, not its steps.
fn notifies(status: PaymentStatus) -> bool {
    matches!(
        status,
        PaymentStatus::Done
            | PaymentStatus::Canceled
            | PaymentStatus::PartialCanceled
            | PaymentStatus::Aborted
            | PaymentStatus::Expired
    )
}

impl App {
    pub fn outbox_config(&self) -> &OutboxConfig {
        &self.outbox
    }

    /// Checks a notification URL against the SSRF guard (registration time; delivery checks again).
    pub(crate) async fn check_notification_url(
        &self,
        url: Option<NotificationUrl>,
    ) -> Result<Option<String>, PaymentError> {
        let Some(url) = url else {
            return Ok(None);
        };
        self.outbox
            .policy()
            .check_url(url.as_str())
            .await
            .map_err(|e| FieldError::new("notificationUrl", FieldReason::InvalidUrl, e.to_string()))?;
        Ok(Some(url.into_string()))
    }

    /// Writes a payment change, with the event it causes (a status change, or a completed cancel) and that
    /// event's deliveries, in one transaction.
    pub(crate) async fn commit(&self, previous: &Payment, mut update: PaymentUpdate) -> Result<(), StoreError> {
        let cancel_completed = update
            .update_transaction
            .as_ref()
            .is_some_and(|t| t.kind == TransactionKind::Cancel && t.status == TransactionStatus::Done);
        if update.payment.status != previous.status || cancel_completed {
            let events = self.payment_events(previous, &update, None).await?;
            update.events.extend(events);
        }
        self.store().update_payment(&update).await
    }

    /// [`App::commit`] for a change made while the payment's approval is pending (its outcome, failure, reversal or
    /// postponement): a payment has no transactions before its approval, so none need to be read for the event.
    pub(crate) async fn commit_before_approval(
        &self,
        previous: &Payment,
        mut update: PaymentUpdate,
    ) -> Result<(), StoreError> {
        if update.payment.status != previous.status {
            let events = self.payment_events(previous, &update, Some(Vec::new())).await?;
            update.events.extend(events);
        }
        self.store().update_payment(&update).await
    }

    /// The events of a status change: `PAYMENT_STATUS_CHANGED`, and for a virtual account Toss's
    /// `DEPOSIT_CALLBACK` too. `stored`: the payment's transactions before this update, when the caller knows them
    /// (else they are read).
    async fn payment_events(
        &self,
        previous: &Payment,
        update: &PaymentUpdate,
        stored: Option<Vec<PaymentTransaction>>,
    ) -> Result<Vec<NewEvent>, StoreError> {
        let next = &update.payment;
        // The event shows the payment as it will be once this update commits.
        let mut transactions = match stored {
            Some(transactions) => transactions,
            None => self.store().payment_transactions(next.id).await?,
        };
        if let Some(changed) = &update.update_transaction {
            for t in transactions.iter_mut().filter(|t| t.key == changed.key) {
                *t = changed.clone();
            }
        }
        transactions.extend(update.insert_transactions.iter().cloned());
        let virtual_account = match (
            update.bank.account.as_ref().or(update.bank.new_account.as_ref()),
            next.method,
        ) {
            (Some(account), _) => Some(Box::new(account.clone())),
            (None, PaymentMethod::VirtualAccount) => self.store().virtual_account(next.id).await?.map(Box::new),
            (None, _) => None,
        };
        // The receipts as this update leaves them.
        let mut cash_receipts = match next.method {
            PaymentMethod::Card => Vec::new(),
            _ => self.store().cash_receipts_of_payment(next.id).await?,
        };
        for changed in &update.receipts.changed {
            for r in cash_receipts.iter_mut().filter(|r| r.key == changed.key) {
                *r = changed.clone();
            }
        }
        cash_receipts.extend(update.receipts.added.iter().cloned());
        let view = PaymentView {
            virtual_account,
            payment: next.clone(),
            transactions,
            focus: None,
            cash_receipts,
        };
        let mut events = vec![self.status_event(&view, Some(previous.status)).await?];
        if view.virtual_account.is_some() && update.payment.status != previous.status {
            events.push(self.deposit_callback(&view, Some(previous.status))?);
        }
        Ok(events)
    }

    /// `PAYMENT_STATUS_CHANGED` for the payment as `view` shows it (with the notification URL's call when the
    /// status is an outcome). `previous`: the status before; `None` for a payment created in this status.
    pub(crate) async fn status_event(
        &self,
        view: &PaymentView,
        previous: Option<PaymentStatus>,
    ) -> Result<NewEvent, StoreError> {
        let next = &view.payment;
        let body = PaymentBody::new(self, view);
        let data = serde_json::to_string(&body).map_err(|e| StoreError::Backend(e.to_string()))?;
        let now = self.clock().now();
        let notification = if notifies(next.status) {
            self.notification_target(view).await?
        } else {
            None
        };
        Ok(NewEvent {
            id: EventId::new(now, crate::random_bytes()),
            merchant_id: next.merchant_id,
            mode: next.mode,
            event_type: EventType::PaymentStatusChanged,
            object_id: next.id.to_string(),
            sequence: next.version,
            previous_status: previous.map(|s| s.as_str().to_owned()),
            data,
            notification,
            created_at: now,
        })
    }

    /// Toss's `DEPOSIT_CALLBACK` for a virtual account's payment as `view` shows it: the payment's `secret`, its
    /// status, the transaction that changed it (the deposit's, or the newest), its orderId.
    pub(crate) fn deposit_callback(
        &self,
        view: &PaymentView,
        previous: Option<PaymentStatus>,
    ) -> Result<NewEvent, StoreError> {
        let payment = &view.payment;
        let transaction_key = view
            .transactions
            .iter()
            .rev()
            .find(|t| t.status != TransactionStatus::Failed)
            .map(|t| t.key.to_string());
        let data = DepositCallbackData {
            secret: self.virtual_account_secret(payment.id),
            status: payment.status.as_str(),
            transaction_key,
            order_id: payment.order_id.as_str().to_owned(),
            payment_key: payment.id.to_string(),
        };
        let data = serde_json::to_string(&data).map_err(|e| StoreError::Backend(e.to_string()))?;
        let now = self.clock().now();
        Ok(NewEvent {
            id: EventId::new(now, crate::random_bytes()),
            merchant_id: payment.merchant_id,
            mode: payment.mode,
            event_type: EventType::DepositCallback,
            object_id: payment.id.to_string(),
            sequence: payment.version,
            previous_status: previous.map(|s| s.as_str().to_owned()),
            data,
            notification: None,
            created_at: now,
        })
    }

    /// The notification URL's fields for a payment: flat strings, like Korean PGs send them.
    pub(crate) async fn notification_target(
        &self,
        view: &PaymentView,
    ) -> Result<Option<NotificationTarget>, StoreError> {
        let payment = &view.payment;
        let settings = self
            .store()
            .merchant_settings(payment.merchant_id, payment.mode)
            .await?;
        let Some(url) = payment.notification_url.clone().or(settings.notification_url) else {
            return Ok(None);
        };
        let mut fields = BTreeMap::new();
        fields.insert("mId", payment.merchant_id.to_string());
        fields.insert("paymentKey", payment.id.to_string());
        fields.insert("orderId", payment.order_id.as_str().to_owned());
        fields.insert("orderName", payment.order_name.as_str().to_owned());
        fields.insert("status", payment.status.as_str().to_owned());
        fields.insert("method", payment.method.as_str().to_owned());
        fields.insert("mode", payment.mode.as_str().to_owned());
        fields.insert("currency", payment.total().currency().code().to_owned());
        fields.insert("totalAmount", payment.total().amount_minor().to_string());
        fields.insert("balanceAmount", payment.balance.amount_minor().to_string());
        fields.insert("sequence", payment.version.to_string());
        if let Some(card) = &payment.card {
            fields.insert("cardNumber", card.masked.clone());
        }
        if let Some(approval) = &payment.approval {
            fields.insert("approveNo", approval.approval_number.clone());
            fields.insert("approvedAt", rfc3339(approval.approved_at));
        }
        if let Some(failure) = &payment.failure {
            fields.insert("failureCode", failure.code.clone());
        }
        let canceled: i64 = view
            .transactions
            .iter()
            .filter(|t| t.kind == TransactionKind::Cancel && t.status == TransactionStatus::Done)
            .map(|t| t.amount.amount_minor())
            .sum();
        fields.insert("canceledAmount", canceled.to_string());
        let fields_json = serde_json::to_string(&fields).map_err(|e| StoreError::Backend(e.to_string()))?;
        Ok(Some(NotificationTarget {
            url,
            format: settings.notification_format,
            fields_json,
        }))
    }
}
