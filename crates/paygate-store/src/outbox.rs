//! Types of the outbox methods of [`crate::Store`]: events, deliveries, attempts, webhook endpoints and merchants'
//! notification settings.

use paygate_domain::api_key::Mode;
use paygate_domain::event::{DeliveryKind, DeliveryStatus, EventType};
use paygate_domain::id::{EventId, MerchantId, WebhookEndpointId};
use paygate_domain::time::UnixMillis;

use crate::payments::Sealed;

/// How the notification URL (노티) receives its fields.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NotificationFormat {
    /// `application/x-www-form-urlencoded`, the Korean PG convention.
    Form,
    Json,
}

impl NotificationFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            NotificationFormat::Form => "FORM",
            NotificationFormat::Json => "JSON",
        }
    }

    pub fn parse(text: &str) -> Option<NotificationFormat> {
        match text {
            "FORM" => Some(NotificationFormat::Form),
            "JSON" => Some(NotificationFormat::Json),
            _ => None,
        }
    }
}

/// A merchant's defaults for one mode.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MerchantSettings {
    pub notification_url: Option<String>,
    pub notification_format: NotificationFormat,
    /// Origins (`scheme://host[:port]`, lowercase) that client-key payments may send the browser back to.
    pub redirect_origins: Vec<String>,
}

impl MerchantSettings {
    /// The stored form of `redirect_origins`: one per line (an origin holds no line break).
    pub fn redirect_origins_text(&self) -> String {
        self.redirect_origins.join("\n")
    }

    pub fn parse_redirect_origins(text: &str) -> Vec<String> {
        text.lines().filter(|l| !l.is_empty()).map(str::to_owned).collect()
    }
}

impl Default for MerchantSettings {
    fn default() -> Self {
        MerchantSettings {
            notification_url: None,
            notification_format: NotificationFormat::Form,
            redirect_origins: Vec::new(),
        }
    }
}

/// Where an event's notification goes, frozen when the event is written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NotificationTarget {
    pub url: String,
    pub format: NotificationFormat,
    /// The fields to send, as a JSON object of strings.
    pub fields_json: String,
}

/// An event to write with a state change; its deliveries are created in the same transaction: one per enabled
/// endpoint of the merchant and mode subscribed to its type, and one to the notification URL if any.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewEvent {
    pub id: EventId,
    pub merchant_id: MerchantId,
    pub mode: Mode,
    pub event_type: EventType,
    pub object_id: String,
    pub sequence: i64,
    pub previous_status: Option<String>,
    /// The event's `data`, as JSON.
    pub data: String,
    pub notification: Option<NotificationTarget>,
    pub created_at: UnixMillis,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredEvent {
    pub id: EventId,
    pub merchant_id: MerchantId,
    pub mode: Mode,
    pub event_type: EventType,
    pub object_id: String,
    pub sequence: i64,
    pub previous_status: Option<String>,
    pub data: String,
    pub notification_fields: Option<String>,
    pub created_at: UnixMillis,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delivery {
    pub id: String,
    pub event_id: EventId,
    pub merchant_id: MerchantId,
    pub mode: Mode,
    pub kind: DeliveryKind,
    pub endpoint_id: Option<WebhookEndpointId>,
    pub url: String,
    pub notification_format: Option<NotificationFormat>,
    pub status: DeliveryStatus,
    pub attempts: u32,
    pub next_attempt_at: Option<UnixMillis>,
    pub last_status_code: Option<u16>,
    pub created_at: UnixMillis,
    pub updated_at: UnixMillis,
}

/// A delivery a worker has claimed, with what it needs to send it.
#[derive(Clone, Debug)]
pub struct ClaimedDelivery {
    pub delivery: Delivery,
    pub event: StoredEvent,
    pub lock_token: i64,
    /// The endpoint's signing secrets (current, then the previous one during a rotation), sealed.
    pub secrets: Vec<Sealed>,
    pub endpoint_failing_since: Option<UnixMillis>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attempt {
    pub delivery_id: String,
    pub attempt: u32,
    pub started_at: UnixMillis,
    pub latency_ms: u32,
    pub status_code: Option<u16>,
    pub error: Option<String>,
    pub response_body: Option<String>,
    pub succeeded: bool,
}

/// What a finished attempt does to its delivery and endpoint.
#[derive(Clone, Debug)]
pub struct AttemptOutcome {
    pub attempt: Attempt,
    /// `Pending` with `next_attempt_at`, `Succeeded`, or `Failed` (gave up).
    pub status: DeliveryStatus,
    pub next_attempt_at: Option<UnixMillis>,
    /// For a failed webhook: when this attempt started. The store keeps an earlier start of a running failure
    /// streak, and a success (`attempt.succeeded`) ends the streak.
    pub endpoint_failing_since: Option<UnixMillis>,
    /// Set when this failure may disable the endpoint.
    pub disable_endpoint: Option<DisableEndpoint>,
}

/// Disables an endpoint whose failure streak, as stored once this attempt is recorded, began at or before
/// `streak_started_by`; the decision is made in the database, so a success recorded meanwhile by another worker
/// wins. The event tells the merchant, and is written only if the endpoint is actually disabled.
#[derive(Clone, Debug)]
pub struct DisableEndpoint {
    pub reason: String,
    pub event: NewEvent,
    pub streak_started_by: UnixMillis,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EndpointStatus {
    Enabled,
    Disabled,
    Deleted,
}

impl EndpointStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            EndpointStatus::Enabled => "ENABLED",
            EndpointStatus::Disabled => "DISABLED",
            EndpointStatus::Deleted => "DELETED",
        }
    }

    pub fn parse(text: &str) -> Option<EndpointStatus> {
        match text {
            "ENABLED" => Some(EndpointStatus::Enabled),
            "DISABLED" => Some(EndpointStatus::Disabled),
            "DELETED" => Some(EndpointStatus::Deleted),
            _ => None,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WebhookEndpoint {
    pub id: WebhookEndpointId,
    pub merchant_id: MerchantId,
    pub mode: Mode,
    pub url: String,
    pub event_types: Vec<EventType>,
    pub status: EndpointStatus,
    pub disabled_reason: Option<String>,
    pub secret: Sealed,
    pub previous_secret: Option<(Sealed, UnixMillis)>,
    pub failing_since: Option<UnixMillis>,
    pub created_at: UnixMillis,
    pub updated_at: UnixMillis,
    pub version: i64,
}
