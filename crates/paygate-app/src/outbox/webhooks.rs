//! Managing webhook endpoints, notification settings, events and resends.

use paygate_domain::api_key::KeyKind;
use paygate_domain::event::EventType;
use paygate_domain::id::{EventId, WebhookEndpointId};
use paygate_outbound::WebhookSecret;
use paygate_store::{
    Attempt, Delivery, EndpointStatus, MerchantSettings, NotificationFormat, StoreError, StoredEvent, WebhookEndpoint,
};

use super::deliver::webhook_secret_purpose;
use crate::auth::Caller;
use crate::idempotency::{Answer, IdempotencyRefusal, Idempotent, Once};
use crate::payments::{PaymentError, PaymentView};
use crate::App;

/// Endpoints one merchant may have per mode.
pub const ENDPOINTS_MAX: usize = 16;
/// Events and deliveries returned per page at most.
pub const EVENTS_PAGE_MAX: u32 = 100;

#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    #[error("{message}")]
    Invalid { param: &'static str, message: String },
    #[error("the URL is not allowed: {0}")]
    UrlRefused(String),
    #[error("no such webhook endpoint")]
    NotFound,
    #[error("no such event")]
    EventNotFound,
    #[error("at most {ENDPOINTS_MAX} endpoints per mode")]
    TooMany,
    #[error("client keys cannot manage webhooks")]
    Forbidden,
    #[error("another request changed the endpoint at the same time; retry")]
    Concurrent,
    #[error(transparent)]
    Idempotency(#[from] IdempotencyRefusal),
    #[error(transparent)]
    Internal(#[from] crate::payments::InternalError),
}

impl From<StoreError> for WebhookError {
    fn from(error: StoreError) -> WebhookError {
        WebhookError::Internal(error.into())
    }
}

impl From<crate::vault::VaultError> for WebhookError {
    fn from(error: crate::vault::VaultError) -> WebhookError {
        WebhookError::Internal(error.into())
    }
}

/// A change to an endpoint; absent fields stay as they are.
#[derive(Clone, Debug, Default)]
pub struct EndpointPatch {
    pub url: Option<String>,
    pub event_types: Option<Vec<String>>,
    /// `ENABLED` re-enables a disabled endpoint (and clears its failure streak); `DISABLED` pauses it.
    pub status: Option<String>,
}

/// An endpoint together with a secret to show once (on creation and rotation).
#[derive(Clone, Debug)]
pub struct EndpointWithSecret {
    pub endpoint: WebhookEndpoint,
    pub secret: Option<String>,
}

fn secret_only(caller: &Caller) -> Result<(), WebhookError> {
    if caller.key.kind == KeyKind::Secret {
        Ok(())
    } else {
        Err(WebhookError::Forbidden)
    }
}

fn parse_types(types: &[String]) -> Result<Vec<EventType>, WebhookError> {
    if types.is_empty() {
        return Err(WebhookError::Invalid {
            param: "eventTypes",
            message: "name at least one event type".into(),
        });
    }
    let mut parsed = Vec::new();
    for name in types {
        let event_type = EventType::parse(name).ok_or_else(|| WebhookError::Invalid {
            param: "eventTypes",
            message: format!(
                "unknown event type; known: {}",
                EventType::ALL.iter().map(|t| t.as_str()).collect::<Vec<_>>().join(", ")
            ),
        })?;
        if !parsed.contains(&event_type) {
            parsed.push(event_type);
        }
    }
    parsed.sort();
    Ok(parsed)
}

impl App {
    async fn checked_url(&self, url: &str) -> Result<String, WebhookError> {
        if url.len() > 2_048 {
            return Err(WebhookError::Invalid {
                param: "url",
                message: "the URL is longer than 2048 characters".into(),
            });
        }
        self.outbox
            .policy()
            .check_url(url)
            .await
            .map_err(|e| WebhookError::UrlRefused(e.to_string()))?;
        Ok(url.to_owned())
    }

    pub async fn create_endpoint(
        &self,
        caller: &Caller,
        url: &str,
        event_types: &[String],
        idempotency: Option<Idempotent<EndpointWithSecret, WebhookError>>,
    ) -> Result<Answer<EndpointWithSecret>, WebhookError> {
        secret_only(caller)?;
        let claim = match self.start_once(caller, idempotency).await? {
            Once::Run(claim) => claim,
            Once::Answer(answer) => return Ok(answer),
        };
        let url = self.checked_url(url).await?;
        let event_types = parse_types(event_types)?;
        let existing = self.store().list_endpoints(caller.merchant.id, caller.key.mode).await?;
        if existing.len() >= ENDPOINTS_MAX {
            return Err(WebhookError::TooMany);
        }
        let now = self.clock().now();
        let id = WebhookEndpointId::new(now, crate::random_bytes());
        let secret = WebhookSecret::generate();
        let sealed = self
            .vault
            .seal(&webhook_secret_purpose(&id.to_string()), secret.as_str().as_bytes())?;
        let endpoint = WebhookEndpoint::new(id, caller.merchant.id, caller.key.mode, url, event_types, sealed, now);
        let answer = Ok(EndpointWithSecret {
            endpoint: endpoint.clone(),
            secret: Some(secret.as_str().to_owned()),
        });
        let idempotency = claim.as_ref().map(|c| c.record(None, &answer, now));
        match self.store().insert_endpoint(&endpoint, idempotency.as_ref()).await {
            Ok(()) => answer.map(Answer::Fresh),
            Err(StoreError::IdempotencyConflict) => match &claim {
                Some(claim) => self.once_after_conflict(claim).await,
                None => Err(WebhookError::Concurrent),
            },
            Err(other) => Err(other.into()),
        }
    }

    pub async fn list_endpoints(&self, caller: &Caller) -> Result<Vec<WebhookEndpoint>, WebhookError> {
        secret_only(caller)?;
        Ok(self.store().list_endpoints(caller.merchant.id, caller.key.mode).await?)
    }

    pub async fn get_endpoint(&self, caller: &Caller, id: WebhookEndpointId) -> Result<WebhookEndpoint, WebhookError> {
        secret_only(caller)?;
        let endpoint = self
            .store()
            .endpoint(caller.merchant.id, caller.key.mode, id)
            .await?
            .ok_or(WebhookError::NotFound)?;
        if endpoint.status == EndpointStatus::Deleted {
            return Err(WebhookError::NotFound);
        }
        Ok(endpoint)
    }

    pub async fn update_endpoint(
        &self,
        caller: &Caller,
        id: WebhookEndpointId,
        patch: EndpointPatch,
    ) -> Result<WebhookEndpoint, WebhookError> {
        let current = self.get_endpoint(caller, id).await?;
        let url = match &patch.url {
            Some(url) => Some(self.checked_url(url).await?),
            None => None,
        };
        let event_types = patch.event_types.as_deref().map(parse_types).transpose()?;
        let enabled = match patch.status.as_deref() {
            None => None,
            Some("ENABLED") => Some(true),
            Some("DISABLED") => Some(false),
            Some(_) => {
                return Err(WebhookError::Invalid {
                    param: "status",
                    message: "status is ENABLED or DISABLED".into(),
                })
            }
        };
        self.write_endpoint(current.edited(url, event_types, enabled, self.clock().now()))
            .await
    }

    pub async fn delete_endpoint(
        &self,
        caller: &Caller,
        id: WebhookEndpointId,
    ) -> Result<WebhookEndpoint, WebhookError> {
        let current = self.get_endpoint(caller, id).await?;
        self.write_endpoint(current.deleted(self.clock().now())).await
    }

    /// Issues a new secret; the previous one keeps signing too for the overlap, so receivers can switch safely.
    pub async fn roll_endpoint_secret(
        &self,
        caller: &Caller,
        id: WebhookEndpointId,
        idempotency: Option<Idempotent<EndpointWithSecret, WebhookError>>,
    ) -> Result<Answer<EndpointWithSecret>, WebhookError> {
        let current = self.get_endpoint(caller, id).await?;
        let claim = match self.start_once(caller, idempotency).await? {
            Once::Run(claim) => claim,
            Once::Answer(answer) => return Ok(answer),
        };
        let now = self.clock().now();
        let secret = WebhookSecret::generate();
        let sealed = self
            .vault
            .seal(&webhook_secret_purpose(&id.to_string()), secret.as_str().as_bytes())?;
        let overlap_until = now.saturating_add_secs(u64::from(self.outbox.webhook_secret_overlap_secs));
        let next = current.secret_rolled(sealed, overlap_until, now);
        let answer = Ok(EndpointWithSecret {
            endpoint: next.clone(),
            secret: Some(secret.as_str().to_owned()),
        });
        let idempotency = claim.as_ref().map(|c| c.record(None, &answer, now));
        match self.store().update_endpoint(&next, idempotency.as_ref()).await {
            Ok(()) => answer.map(Answer::Fresh),
            Err(StoreError::IdempotencyConflict) => match &claim {
                Some(claim) => self.once_after_conflict(claim).await,
                None => Err(WebhookError::Concurrent),
            },
            Err(StoreError::Conflict(_)) => Err(WebhookError::Concurrent),
            Err(other) => Err(other.into()),
        }
    }

    /// Writes the next version of an endpoint, conditionally on the one it was computed from.
    async fn write_endpoint(&self, next: WebhookEndpoint) -> Result<WebhookEndpoint, WebhookError> {
        match self.store().update_endpoint(&next, None).await {
            Ok(()) => Ok(next),
            Err(StoreError::Conflict(_)) => Err(WebhookError::Concurrent),
            Err(other) => Err(other.into()),
        }
    }

    /// An endpoint's deliveries, newest first, each with its attempts.
    pub async fn endpoint_deliveries(
        &self,
        caller: &Caller,
        id: WebhookEndpointId,
        limit: u32,
    ) -> Result<Vec<(Delivery, Vec<Attempt>)>, WebhookError> {
        self.get_endpoint(caller, id).await?;
        let mut out = Vec::new();
        for delivery in self
            .store()
            .endpoint_deliveries(id, limit.clamp(1, EVENTS_PAGE_MAX))
            .await?
        {
            let attempts = self.store().attempts(&delivery.id).await?;
            out.push((delivery, attempts));
        }
        Ok(out)
    }

    pub async fn list_events(
        &self,
        caller: &Caller,
        before: Option<EventId>,
        limit: u32,
    ) -> Result<Vec<StoredEvent>, WebhookError> {
        secret_only(caller)?;
        Ok(self
            .store()
            .list_events(
                caller.merchant.id,
                caller.key.mode,
                before,
                limit.clamp(1, EVENTS_PAGE_MAX),
            )
            .await?)
    }

    /// An event with its deliveries and each delivery's attempts.
    pub async fn event_detail(
        &self,
        caller: &Caller,
        id: EventId,
    ) -> Result<(StoredEvent, Vec<(Delivery, Vec<Attempt>)>), WebhookError> {
        secret_only(caller)?;
        let event = self
            .store()
            .event(caller.merchant.id, caller.key.mode, id)
            .await?
            .ok_or(WebhookError::EventNotFound)?;
        let mut deliveries = Vec::new();
        for delivery in self.store().event_deliveries(id).await? {
            let attempts = self.store().attempts(&delivery.id).await?;
            deliveries.push((delivery, attempts));
        }
        Ok((event, deliveries))
    }

    /// Sends an event again to the endpoints subscribed now (and, for payment events, the notification URL).
    pub async fn resend_event(
        &self,
        caller: &Caller,
        id: EventId,
        idempotency: Option<Idempotent<u32, WebhookError>>,
    ) -> Result<Answer<u32>, WebhookError> {
        let (event, deliveries) = self.event_detail(caller, id).await?;
        let claim = match self.start_once(caller, idempotency).await? {
            Once::Run(claim) => claim,
            Once::Answer(answer) => return Ok(answer),
        };
        let round = u32::try_from(deliveries.iter().filter(|(d, _)| d.id.contains(":r")).count()).unwrap_or(0) + 1;
        let notification = match event.notification_fields.as_ref() {
            Some(fields) => {
                let payment = paygate_domain::id::PaymentId::parse(&event.object_id)
                    .ok()
                    .map(|id| self.store().payment(caller.merchant.id, caller.key.mode, id));
                match payment {
                    Some(lookup) => match lookup.await? {
                        Some(payment) => {
                            let view = PaymentView {
                                virtual_account: None,
                                payment,
                                transactions: Vec::new(),
                                focus: None,
                                cash_receipts: Vec::new(),
                            };
                            self.notification_target(&view).await?.map(|mut target| {
                                // The frozen fields of the event are resent, not the payment as it is now.
                                target.fields_json = fields.clone();
                                target
                            })
                        }
                        None => None,
                    },
                    None => None,
                }
            }
            None => None,
        };
        // The answer is the number of deliveries created, known before the write: the current subscriptions.
        let now = self.clock().now();
        let subscribed = self.store().list_endpoints(caller.merchant.id, caller.key.mode).await?;
        let expected = subscribed
            .iter()
            .filter(|e| e.receives(event.event_type))
            .count()
            .saturating_add(usize::from(notification.is_some()));
        let answer = Ok(u32::try_from(expected).unwrap_or(u32::MAX));
        let idempotency = claim.as_ref().map(|c| c.record(None, &answer, now));
        match self
            .store()
            .resend_event(&event, notification.as_ref(), round, now, idempotency.as_ref())
            .await
        {
            Ok(created) => Ok(Answer::Fresh(created)),
            Err(StoreError::IdempotencyConflict) => match &claim {
                Some(claim) => self.once_after_conflict(claim).await,
                None => Err(WebhookError::Concurrent),
            },
            Err(other) => Err(other.into()),
        }
    }

    pub async fn merchant_settings(&self, caller: &Caller) -> Result<MerchantSettings, WebhookError> {
        secret_only(caller)?;
        Ok(self
            .store()
            .merchant_settings(caller.merchant.id, caller.key.mode)
            .await?)
    }

    /// Sets the merchant's notification URL and format, and the origins client-key payments may redirect to, for
    /// the caller's mode. An empty URL removes it; what is absent stays as it was.
    pub async fn set_notification(
        &self,
        caller: &Caller,
        url: Option<String>,
        format: Option<&str>,
        redirect_origins: Option<Vec<String>>,
    ) -> Result<MerchantSettings, WebhookError> {
        secret_only(caller)?;
        let redirect_origins = redirect_origins.map(|origins| parse_origins(&origins)).transpose()?;
        let mut settings = self
            .store()
            .merchant_settings(caller.merchant.id, caller.key.mode)
            .await?;
        if let Some(url) = url {
            settings.notification_url = if url.trim().is_empty() {
                None
            } else {
                Some(self.checked_url(&url).await?)
            };
        }
        if let Some(format) = format {
            settings.notification_format = NotificationFormat::parse(format).ok_or_else(|| WebhookError::Invalid {
                param: "notificationFormat",
                message: "notificationFormat is FORM or JSON".into(),
            })?;
        }
        if let Some(origins) = redirect_origins {
            settings.redirect_origins = origins;
        }
        self.store()
            .set_merchant_settings(caller.merchant.id, caller.key.mode, &settings, self.clock().now())
            .await?;
        Ok(settings)
    }
}

/// The most redirect origins a merchant may register per mode.
pub const REDIRECT_ORIGINS_MAX: usize = 16;

/// Checks and normalises registered redirect origins: `http(s)://host[:port]`, lowercase, no path, query,
/// fragment or credentials (a trailing `/` is dropped), without duplicates.
fn parse_origins(origins: &[String]) -> Result<Vec<String>, WebhookError> {
    let invalid = |message: String| WebhookError::Invalid {
        param: "redirectOrigins",
        message,
    };
    if origins.len() > REDIRECT_ORIGINS_MAX {
        return Err(invalid(format!("at most {REDIRECT_ORIGINS_MAX} redirect origins")));
    }
    let mut parsed: Vec<String> = Vec::with_capacity(origins.len());
    for (index, origin) in origins.iter().enumerate() {
        let lower = origin.trim().trim_end_matches('/').to_ascii_lowercase();
        let authority = lower
            .strip_prefix("https://")
            .or_else(|| lower.strip_prefix("http://"))
            .unwrap_or_default();
        let ok = !authority.is_empty()
            && lower.len() <= 255
            && authority
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'));
        if !ok {
            return Err(invalid(format!(
                "`redirectOrigins[{index}]` must be an origin: http(s)://host[:port], nothing after it"
            )));
        }
        if !parsed.contains(&lower) {
            parsed.push(lower);
        }
    }
    Ok(parsed)
}

impl From<PaymentError> for WebhookError {
    fn from(error: PaymentError) -> WebhookError {
        match error {
            PaymentError::Internal(internal) => WebhookError::Internal(internal),
            other => WebhookError::Invalid {
                param: "body",
                message: other.to_string(),
            },
        }
    }
}
