//! The delivery worker: claims due deliveries (a lease, so no other process takes them), sends each once, and
//! records the attempt and what follows (done, retry at…, gave up, endpoint disabled) in one transaction.
//!
//! A crash after sending and before recording means the lease runs out and the delivery is sent again: receivers
//! deduplicate by `webhook-id` (the event ID) and `sequence`. In the normal path every attempt is sent once.

use std::collections::BTreeMap;
use std::sync::Arc;

use paygate_domain::event::{DeliveryKind, DeliveryStatus, EventType};
use paygate_domain::id::EventId;
use paygate_domain::time::DurationMs;
use paygate_outbound::{
    form_encode, notification_succeeded, webhook_headers, webhook_succeeded, WebhookSecret, CONTENT_TYPE_FORM,
    CONTENT_TYPE_JSON,
};
use paygate_store::{
    Attempt, AttemptOutcome, ClaimedDelivery, DisableEndpoint, NewEvent, NotificationFormat, StoreError,
};

use crate::instant::{rfc3339, toss_webhook_local};
use crate::App;

/// What one pass did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DeliveryReport {
    pub attempted: u32,
    pub succeeded: u32,
    pub failed: u32,
    pub lost_claims: u32,
}

impl App {
    /// One pass of the delivery worker.
    pub async fn deliver_due(&self) -> Result<DeliveryReport, StoreError> {
        let now = self.clock().now();
        let lease_until = now.saturating_add(DurationMs::from_millis(self.outbox.lease_ms));
        let token = i64::from_le_bytes(crate::random_bytes());
        let claimed = self
            .store()
            .claim_deliveries(now, lease_until, token, self.outbox.batch_max.max(1))
            .await?;
        let mut report = DeliveryReport::default();
        let permits = Arc::new(tokio::sync::Semaphore::new(
            usize::try_from(self.outbox.concurrency_max.max(1)).unwrap_or(1),
        ));
        let mut tasks = tokio::task::JoinSet::new();
        for delivery in claimed {
            let app = self.clone();
            let permits = permits.clone();
            tasks.spawn(async move {
                let _permit = permits.acquire_owned().await;
                app.deliver_one(delivery).await
            });
        }
        while let Some(joined) = tasks.join_next().await {
            report.attempted += 1;
            match joined {
                Ok(Ok(true)) => report.succeeded += 1,
                Ok(Ok(false)) => report.failed += 1,
                Ok(Err(StoreError::Conflict(_))) => report.lost_claims += 1,
                Ok(Err(error)) => {
                    report.failed += 1;
                    tracing::warn!(%error, "recording a delivery failed; its lease will expire and it will be retried");
                }
                Err(error) => {
                    report.failed += 1;
                    tracing::error!(%error, "a delivery task panicked");
                }
            }
        }
        Ok(report)
    }

    /// Sends one claimed delivery and records the outcome; returns whether it succeeded.
    async fn deliver_one(&self, claimed: ClaimedDelivery) -> Result<bool, StoreError> {
        let delivery = &claimed.delivery;
        let started_at = self.clock().now();
        let outgoing = match delivery.kind {
            DeliveryKind::Webhook => self.webhook_request(&claimed).await?,
            DeliveryKind::Notification => notification_request(&claimed)?,
        };
        let result = self
            .deliverer
            .post(&delivery.url, outgoing.headers, outgoing.content_type, outgoing.body)
            .await;
        let succeeded = match delivery.kind {
            DeliveryKind::Webhook => webhook_succeeded(&result),
            DeliveryKind::Notification => notification_succeeded(&result),
        };
        let now = self.clock().now();
        let attempt_number = delivery.attempts.saturating_add(1);
        let next_attempt_at = if succeeded {
            None
        } else {
            self.outbox.schedule(delivery.kind).next_attempt(attempt_number, now)
        };
        let status = match (succeeded, next_attempt_at) {
            (true, _) => DeliveryStatus::Succeeded,
            (false, Some(_)) => DeliveryStatus::Pending,
            (false, None) => DeliveryStatus::Failed,
        };
        // A failed webhook extends (or starts) the endpoint's failure streak; the store keeps the earliest start.
        let failing_since = match (delivery.kind, succeeded) {
            (DeliveryKind::Webhook, false) => Some(started_at),
            _ => None,
        };
        let disable_after_ms = i64::from(self.outbox.webhook_disable_after_secs).saturating_mul(1_000);
        let streak_started = claimed.endpoint_failing_since.unwrap_or(started_at);
        let disable_endpoint = match failing_since {
            Some(_) if now.as_millis().saturating_sub(streak_started.as_millis()) >= disable_after_ms => {
                let (reason, event) = self.disable_event(&claimed, streak_started)?;
                let streak_started_by =
                    paygate_domain::time::UnixMillis::new(now.as_millis().saturating_sub(disable_after_ms));
                Some(DisableEndpoint {
                    reason,
                    event,
                    streak_started_by,
                })
            }
            _ => None,
        };
        let outcome = AttemptOutcome {
            attempt: Attempt {
                delivery_id: delivery.id.clone(),
                attempt: attempt_number,
                started_at,
                latency_ms: result.latency_ms,
                status_code: result.status,
                error: result.error.as_ref().map(|e| e.to_string()),
                response_body: Some(result.response_body.clone()),
                succeeded,
            },
            status,
            next_attempt_at,
            endpoint_failing_since: failing_since,
            disable_endpoint,
        };
        self.store()
            .complete_delivery(claimed.lock_token, &outcome, now)
            .await?;
        tracing::info!(
            delivery_id = %delivery.id,
            kind = delivery.kind.as_str(),
            attempt = attempt_number,
            status = ?result.status,
            succeeded,
            "delivery attempt"
        );
        Ok(succeeded)
    }

    async fn webhook_request(&self, claimed: &ClaimedDelivery) -> Result<Outgoing, StoreError> {
        let event = &claimed.event;
        let data: serde_json::Value =
            serde_json::from_str(&event.data).map_err(|e| StoreError::Corrupt(format!("event data: {e}")))?;
        let envelope = WebhookEnvelope {
            id: event.id.to_string(),
            kind: event.event_type.as_str(),
            event_type: event.event_type.as_str(),
            timestamp: rfc3339(event.created_at),
            created_at: toss_webhook_local(event.created_at),
            sequence: event.sequence,
            previous_status: event.previous_status.clone(),
            data,
        };
        let body = match event.event_type {
            // Toss's DEPOSIT_CALLBACK is flat: its fields (`secret`, `status`, `transactionKey`, `orderId`) at the
            // top level, beside the envelope's `createdAt`. They are copied up, and stay in `data` too.
            EventType::DepositCallback => {
                let mut value = serde_json::to_value(&envelope).map_err(|e| StoreError::Backend(e.to_string()))?;
                if let (Some(top), Some(fields)) = (value.as_object_mut(), envelope.data.as_object()) {
                    for (key, field) in fields {
                        top.entry(key.clone()).or_insert_with(|| field.clone());
                    }
                }
                serde_json::to_vec(&value)
            }
            _ => serde_json::to_vec(&envelope),
        }
        .map_err(|e| StoreError::Backend(e.to_string()))?;
        let endpoint = claimed.delivery.endpoint_id.map(|e| e.to_string()).unwrap_or_default();
        let mut secrets = Vec::new();
        for sealed in &claimed.secrets {
            let text = self
                .open_sealed(&webhook_secret_purpose(&endpoint), sealed)
                .await
                .map_err(|e| StoreError::Corrupt(format!("webhook secret: {e}")))?;
            let text =
                String::from_utf8(text).map_err(|_| StoreError::Corrupt("webhook secret is not UTF-8".into()))?;
            secrets.push(WebhookSecret::parse(&text).map_err(|e| StoreError::Corrupt(format!("webhook secret: {e}")))?);
        }
        let timestamp = self.clock().now().as_millis() / 1_000;
        let headers = webhook_headers(&secrets, &event.id.to_string(), timestamp, &body);
        Ok(Outgoing {
            content_type: CONTENT_TYPE_JSON,
            body,
            headers,
        })
    }

    fn disable_event(
        &self,
        claimed: &ClaimedDelivery,
        failing_since: paygate_domain::time::UnixMillis,
    ) -> Result<(String, NewEvent), StoreError> {
        let now = self.clock().now();
        let endpoint = claimed.delivery.endpoint_id.map(|e| e.to_string()).unwrap_or_default();
        let reason = format!("every delivery failed since {}", rfc3339(failing_since));
        let data = EndpointDisabledData {
            endpoint_id: endpoint.clone(),
            url: claimed.delivery.url.clone(),
            status: "DISABLED",
            reason: reason.clone(),
        };
        let data = serde_json::to_string(&data).map_err(|e| StoreError::Backend(e.to_string()))?;
        let event = NewEvent {
            id: EventId::new(now, crate::random_bytes()),
            merchant_id: claimed.delivery.merchant_id,
            mode: claimed.delivery.mode,
            event_type: EventType::WebhookEndpointDisabled,
            object_id: endpoint,
            sequence: 0,
            previous_status: Some("ENABLED".into()),
            data,
            notification: None,
            created_at: now,
        };
        Ok((reason, event))
    }
}

/// A webhook's body: Standard Webhooks' envelope (`type`, `timestamp`, `data`) and Toss Payments' (`eventType`,
/// `createdAt`, `data`) at once, so a receiver written for either decodes it.
#[derive(serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WebhookEnvelope {
    /// The event's ID; the same on every retry (and in the `webhook-id` header).
    #[schema(example = "evt_01M8XAPQH1T0E3ZB6Y3D9K2M4R")]
    id: String,
    /// Standard Webhooks' event type.
    #[serde(rename = "type")]
    #[schema(schema_with = event_type)]
    kind: &'static str,
    /// Toss's event type: the same value.
    #[schema(schema_with = event_type)]
    event_type: &'static str,
    /// When the event happened, with its offset.
    #[schema(schema_with = crate::schema::instant)]
    timestamp: String,
    /// Toss's form: KST local time with microseconds, no offset.
    #[schema(example = "2026-11-23T16:04:52.123000")]
    created_at: String,
    /// Increases per merchant and mode.
    sequence: i64,
    /// The status before (`PAYMENT_STATUS_CHANGED`, `WEBHOOK_ENDPOINT_DISABLED`); `null` otherwise.
    previous_status: Option<String>,
    /// The object the event is about, as the API answers it.
    #[schema(value_type = Object)]
    data: serde_json::Value,
}

fn event_type() -> utoipa::openapi::Object {
    crate::schema::string_enum(EventType::ALL.map(|t| t.as_str()))
}

/// The `data` of `WEBHOOK_ENDPOINT_DISABLED`.
#[derive(serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EndpointDisabledData {
    #[schema(example = "whk_01M8XB2C7Q4V1N8S3G5H0J6K9P")]
    endpoint_id: String,
    url: String,
    #[schema(schema_with = disabled)]
    status: &'static str,
    /// Why: since when every delivery failed.
    reason: String,
}

fn disabled() -> utoipa::openapi::Object {
    crate::schema::string_enum(["DISABLED"])
}

/// What one attempt sends.
struct Outgoing {
    content_type: &'static str,
    body: Vec<u8>,
    headers: Vec<(String, String)>,
}

pub(crate) fn webhook_secret_purpose(endpoint_id: &str) -> String {
    format!("webhook-secret:{endpoint_id}")
}

fn notification_request(claimed: &ClaimedDelivery) -> Result<Outgoing, StoreError> {
    let fields_json = claimed.event.notification_fields.as_deref().unwrap_or("{}");
    let mut fields: BTreeMap<String, String> =
        serde_json::from_str(fields_json).map_err(|e| StoreError::Corrupt(format!("notification fields: {e}")))?;
    fields.insert("eventId".into(), claimed.event.id.to_string());
    fields.insert(
        "attempt".into(),
        claimed.delivery.attempts.saturating_add(1).to_string(),
    );
    match claimed.delivery.notification_format.unwrap_or(NotificationFormat::Form) {
        NotificationFormat::Form => {
            let pairs: Vec<(&str, String)> = fields.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
            Ok(Outgoing {
                content_type: CONTENT_TYPE_FORM,
                body: form_encode(&pairs),
                headers: Vec::new(),
            })
        }
        NotificationFormat::Json => {
            let body = serde_json::to_vec(&fields).map_err(|e| StoreError::Backend(e.to_string()))?;
            Ok(Outgoing {
                content_type: CONTENT_TYPE_JSON,
                body,
                headers: Vec::new(),
            })
        }
    }
}
