//! Webhook endpoints, events and their delivery log, resends, and the merchant's notification URL.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::Json;
use paygate_app::outbox::webhooks::{EndpointPatch, EndpointWithSecret, WebhookError};
use paygate_domain::event::EventType;
use paygate_domain::id::{EventId, WebhookEndpointId};
use paygate_store::{Attempt, Delivery, StoredEvent, WebhookEndpoint};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

use crate::error::{ApiError, ErrorCode};
use crate::extract::{ApiJson, ApiQuery};
use crate::middleware::auth::SecretCaller;
use crate::middleware::idempotency::{json, renderer, respond, IdempotencyHeader, Rendered};
use crate::wire::rfc3339;
use crate::AppState;

pub fn webhook_error(error: WebhookError) -> ApiError {
    webhook_error_ref(&error)
}

pub fn webhook_error_ref(error: &WebhookError) -> ApiError {
    match error {
        WebhookError::Invalid { param, message } => {
            ApiError::new(ErrorCode::InvalidFieldValue, message.clone()).with_param(*param)
        }
        WebhookError::UrlRefused(message) => ApiError::new(ErrorCode::InvalidUrl, message.clone()).with_param("url"),
        WebhookError::NotFound => ApiError::new(ErrorCode::NotFoundWebhook, "no such webhook endpoint"),
        WebhookError::EventNotFound => ApiError::new(ErrorCode::NotFoundEvent, "no such event"),
        WebhookError::TooMany => ApiError::new(ErrorCode::TooManyWebhooks, error.to_string()),
        WebhookError::Forbidden => ApiError::new(ErrorCode::ClientKeyNotAllowed, "client keys cannot manage webhooks"),
        WebhookError::Concurrent => ApiError::new(ErrorCode::AlreadyProcessingRequest, error.to_string()),
        WebhookError::Idempotency(refusal) => crate::routes::payments::idempotency_error(*refusal),
        WebhookError::Internal(internal) => ApiError::internal(internal),
    }
}

/// An endpoint answer; `with_secret` is false for the stored replay, which never keeps the secret (it is shown
/// once, and a replay answers without it: roll the secret to get a new one).
fn render_endpoint(result: &Result<EndpointWithSecret, WebhookError>, with_secret: bool) -> Rendered {
    match result {
        Ok(done) => {
            let secret = if with_secret { done.secret.clone() } else { None };
            json(StatusCode::OK, &EndpointBody::new(&done.endpoint, secret))
        }
        Err(error) => Err(webhook_error_ref(error)),
    }
}

/// A webhook endpoint.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = WebhookEndpoint)]
pub struct EndpointBody {
    #[schema(example = "whk_01M8XB2C7Q4V1N8S3G5H0J6K9P")]
    id: String,
    #[schema(example = "https://shop.example/webhooks/paygate")]
    url: String,
    #[schema(schema_with = event_types)]
    event_types: Vec<&'static str>,
    /// `ENABLED`; `DISABLED` by the merchant or after failing for `outbox.webhook_disable_after_secs`; `DELETED`.
    #[schema(schema_with = endpoint_status)]
    status: &'static str,
    disabled_reason: Option<String>,
    /// Since when every delivery has failed; `null` while deliveries succeed.
    #[schema(schema_with = paygate_app::schema::nullable_instant)]
    failing_since: Option<String>,
    #[schema(schema_with = paygate_app::schema::mode)]
    mode: &'static str,
    #[schema(schema_with = paygate_app::schema::instant)]
    created_at: String,
    #[schema(schema_with = paygate_app::schema::instant)]
    updated_at: String,
    /// The signing secret (`whsec_…`, Standard Webhooks). Present only in the answer that created or rolled it;
    /// store it then.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(example = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")]
    secret: Option<String>,
}

fn event_types() -> utoipa::openapi::Array {
    utoipa::openapi::Array::new(paygate_app::schema::string_enum(EventType::ALL.map(|t| t.as_str())))
}

fn endpoint_status() -> utoipa::openapi::Object {
    paygate_app::schema::string_enum(paygate_domain::webhook::EndpointStatus::ALL.map(|s| s.as_str()))
}

fn delivery_kind() -> utoipa::openapi::Object {
    paygate_app::schema::string_enum(paygate_domain::event::DeliveryKind::ALL.map(|k| k.as_str()))
}

fn delivery_status() -> utoipa::openapi::Object {
    paygate_app::schema::string_enum(paygate_domain::event::DeliveryStatus::ALL.map(|s| s.as_str()))
}

fn event_type() -> utoipa::openapi::Object {
    paygate_app::schema::string_enum(EventType::ALL.map(|t| t.as_str()))
}

fn notification_format() -> utoipa::openapi::Object {
    paygate_app::schema::string_enum(paygate_domain::event::NotificationFormat::ALL.map(|f| f.as_str()))
}

impl EndpointBody {
    fn new(endpoint: &WebhookEndpoint, secret: Option<String>) -> EndpointBody {
        EndpointBody {
            id: endpoint.id.to_string(),
            url: endpoint.url.clone(),
            event_types: endpoint.event_types.iter().map(|t| t.as_str()).collect(),
            status: endpoint.status.as_str(),
            disabled_reason: endpoint.disabled_reason.clone(),
            failing_since: endpoint.failing_since.map(rfc3339),
            mode: endpoint.mode.as_str(),
            created_at: rfc3339(endpoint.created_at),
            updated_at: rfc3339(endpoint.updated_at),
            secret,
        }
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schema(as = CreateWebhookEndpoint)]
pub struct CreateBody {
    /// `https` (or `http`) URL on a public address (the SSRF guard refuses loopback, private and metadata
    /// addresses unless `outbox.allow_loopback`).
    #[schema(example = "https://shop.example/webhooks/paygate")]
    url: String,
    /// At least one.
    #[schema(schema_with = event_types)]
    event_types: Vec<String>,
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schema(as = PatchWebhookEndpoint)]
pub struct PatchBody {
    url: Option<String>,
    event_types: Option<Vec<String>>,
    /// `ENABLED` or `DISABLED`.
    #[schema(example = "DISABLED")]
    status: Option<String>,
}

fn endpoint_id(text: &str) -> Result<WebhookEndpointId, ApiError> {
    WebhookEndpointId::parse(text).map_err(|_| ApiError::new(ErrorCode::NotFoundWebhook, "no such webhook endpoint"))
}

fn event_id(text: &str) -> Result<EventId, ApiError> {
    EventId::parse(text).map_err(|_| ApiError::new(ErrorCode::NotFoundEvent, "no such event"))
}

#[utoipa::path(post, path = "/v1/webhooks", operation_id = "createWebhookEndpoint", tag = "Webhooks",
    summary = "Register a webhook endpoint",
    request_body(content = CreateBody, example = json!({"url": "https://shop.example/webhooks/paygate", "eventTypes": ["PAYMENT_STATUS_CHANGED"]})),
    responses((status = 200, description = "Registered; the answer carries the signing `secret`, once", body = EndpointBody)))]
pub async fn create(
    State(state): State<AppState>,
    SecretCaller(caller): SecretCaller,
    key: IdempotencyHeader,
    ApiJson(body): ApiJson<CreateBody>,
) -> Response {
    let idempotency = key.with(renderer(|result| render_endpoint(result, false)));
    let answer = state
        .app
        .create_endpoint(&caller, &body.url, &body.event_types, idempotency)
        .await;
    respond(answer, |result| render_endpoint(result, true))
}

#[utoipa::path(get, path = "/v1/webhooks", operation_id = "listWebhookEndpoints", tag = "Webhooks",
    summary = "The merchant's webhook endpoints in this mode",
    responses((status = 200, description = "Every endpoint but deleted ones", body = Vec<EndpointBody>)))]
pub async fn list(
    State(state): State<AppState>,
    SecretCaller(caller): SecretCaller,
) -> Result<Json<Vec<EndpointBody>>, ApiError> {
    let endpoints = state.app.list_endpoints(&caller).await.map_err(webhook_error)?;
    Ok(Json(endpoints.iter().map(|e| EndpointBody::new(e, None)).collect()))
}

#[utoipa::path(get, path = "/v1/webhooks/{id}", operation_id = "getWebhookEndpoint", tag = "Webhooks",
    summary = "A webhook endpoint",
    params(("id" = String, Path, description = "The webhook endpoint's ID")),
    responses((status = 200, description = "The endpoint", body = EndpointBody)))]
pub async fn get(
    State(state): State<AppState>,
    SecretCaller(caller): SecretCaller,
    Path(id): Path<String>,
) -> Result<Json<EndpointBody>, ApiError> {
    let endpoint = state
        .app
        .get_endpoint(&caller, endpoint_id(&id)?)
        .await
        .map_err(webhook_error)?;
    Ok(Json(EndpointBody::new(&endpoint, None)))
}

#[utoipa::path(patch, path = "/v1/webhooks/{id}", operation_id = "updateWebhookEndpoint", tag = "Webhooks",
    summary = "Change a webhook endpoint's URL, event types or status",
    params(("id" = String, Path, description = "The webhook endpoint's ID")),
    request_body(content = PatchBody, example = json!({"status": "DISABLED"})),
    responses((status = 200, description = "Changed", body = EndpointBody)))]
pub async fn patch(
    State(state): State<AppState>,
    SecretCaller(caller): SecretCaller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<PatchBody>,
) -> Result<Json<EndpointBody>, ApiError> {
    let patch = EndpointPatch {
        url: body.url,
        event_types: body.event_types,
        status: body.status,
    };
    let endpoint = state
        .app
        .update_endpoint(&caller, endpoint_id(&id)?, patch)
        .await
        .map_err(webhook_error)?;
    Ok(Json(EndpointBody::new(&endpoint, None)))
}

#[utoipa::path(delete, path = "/v1/webhooks/{id}", operation_id = "deleteWebhookEndpoint", tag = "Webhooks",
    summary = "Delete a webhook endpoint",
    params(("id" = String, Path, description = "The webhook endpoint's ID")),
    responses((status = 200, description = "Deleted (`status: DELETED`); nothing more is sent to it", body = EndpointBody)))]
pub async fn delete(
    State(state): State<AppState>,
    SecretCaller(caller): SecretCaller,
    Path(id): Path<String>,
) -> Result<Json<EndpointBody>, ApiError> {
    let endpoint = state
        .app
        .delete_endpoint(&caller, endpoint_id(&id)?)
        .await
        .map_err(webhook_error)?;
    Ok(Json(EndpointBody::new(&endpoint, None)))
}

#[utoipa::path(post, path = "/v1/webhooks/{id}/secret/roll", operation_id = "rollWebhookSecret", tag = "Webhooks",
    summary = "Roll a webhook endpoint's signing secret",
    description = "The previous secret keeps signing too for `outbox.webhook_secret_overlap_secs`, so the receiver can switch without missing one.",
    params(("id" = String, Path, description = "The webhook endpoint's ID")),
    responses((status = 200, description = "Rolled; the answer carries the new `secret`, once", body = EndpointBody)))]
pub async fn roll_secret(
    State(state): State<AppState>,
    SecretCaller(caller): SecretCaller,
    Path(id): Path<String>,
    key: IdempotencyHeader,
) -> Result<Response, ApiError> {
    let id = endpoint_id(&id)?;
    let idempotency = key.with(renderer(|result| render_endpoint(result, false)));
    let answer = state.app.roll_endpoint_secret(&caller, id, idempotency).await;
    Ok(respond(answer, |result| render_endpoint(result, true)))
}

/// One event's delivery to one destination (a webhook endpoint, or the notification URL).
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = Delivery)]
pub struct DeliveryBody {
    id: String,
    #[schema(example = "evt_01M8XAPQH1T0E3ZB6Y3D9K2M4R")]
    event_id: String,
    #[schema(schema_with = delivery_kind)]
    kind: &'static str,
    /// The webhook endpoint; `null` for the notification URL.
    endpoint_id: Option<String>,
    url: String,
    #[schema(schema_with = delivery_status)]
    status: &'static str,
    attempts: u32,
    #[schema(schema_with = paygate_app::schema::nullable_instant)]
    next_attempt_at: Option<String>,
    last_status_code: Option<u16>,
    #[schema(schema_with = paygate_app::schema::instant)]
    created_at: String,
    #[schema(schema_with = paygate_app::schema::instant)]
    updated_at: String,
    /// Every attempt, oldest first.
    #[serde(skip_serializing_if = "Option::is_none")]
    attempt_log: Option<Vec<AttemptBody>>,
}

/// One HTTP attempt of a delivery.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = DeliveryAttempt)]
pub struct AttemptBody {
    attempt: u32,
    #[schema(schema_with = paygate_app::schema::instant)]
    started_at: String,
    latency_ms: u32,
    /// The receiver's HTTP status; `null` if none came (connection refused, timeout…).
    status_code: Option<u16>,
    error: Option<String>,
    /// The start of the receiver's answer (`outbox.response_body_max_bytes`).
    response_body: Option<String>,
    succeeded: bool,
}

/// An event, as stored and as its webhooks carry it.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = Event)]
pub struct EventBody {
    #[schema(example = "evt_01M8XAPQH1T0E3ZB6Y3D9K2M4R")]
    id: String,
    #[serde(rename = "type")]
    #[schema(schema_with = event_type)]
    kind: &'static str,
    #[schema(schema_with = paygate_app::schema::instant)]
    created_at: String,
    /// Increases per merchant and mode, so a receiver can order events.
    sequence: i64,
    /// For `PAYMENT_STATUS_CHANGED`: the status before; `null` otherwise.
    previous_status: Option<String>,
    /// The object the event is about: a Payment for `PAYMENT_STATUS_CHANGED`, a Billing for `BILLING_*`, a
    /// WebhookEndpoint for `WEBHOOK_ENDPOINT_DISABLED`.
    #[schema(value_type = Object)]
    data: Value,
    /// `GET /v1/events/{id}` only: the event's deliveries.
    #[serde(skip_serializing_if = "Option::is_none")]
    deliveries: Option<Vec<DeliveryBody>>,
}

/// What `POST /v1/events/{id}/resend` did.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = EventResend)]
pub struct ResendBody {
    event_id: String,
    /// One per enabled endpoint subscribed to the event's type (and the notification URL, if set).
    deliveries_created: u32,
}

fn delivery_body(delivery: &Delivery, attempts: Option<&[Attempt]>) -> DeliveryBody {
    DeliveryBody {
        id: delivery.id.clone(),
        event_id: delivery.event_id.to_string(),
        kind: delivery.kind.as_str(),
        endpoint_id: delivery.endpoint_id.map(|e| e.to_string()),
        url: delivery.url.clone(),
        status: delivery.status.as_str(),
        attempts: delivery.attempts,
        next_attempt_at: delivery.next_attempt_at.map(rfc3339),
        last_status_code: delivery.last_status_code,
        created_at: rfc3339(delivery.created_at),
        updated_at: rfc3339(delivery.updated_at),
        attempt_log: attempts.map(|list| {
            list.iter()
                .map(|a| AttemptBody {
                    attempt: a.attempt,
                    started_at: rfc3339(a.started_at),
                    latency_ms: a.latency_ms,
                    status_code: a.status_code,
                    error: a.error.clone(),
                    response_body: a.response_body.clone(),
                    succeeded: a.succeeded,
                })
                .collect()
        }),
    }
}

#[derive(Deserialize, IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// Events: the `id` of the last event of the previous page (newest first).
    #[param(pattern = "^evt_[0-9A-HJKMNP-TV-Z]{26}$", example = "evt_01M8XAPQH1T0E3ZB6Y3D9K2M4R")]
    starting_after: Option<String>,
    /// At most this many (default 50); held to 1 … 100, so 0 counts as 1.
    #[param(minimum = 0, maximum = 4294967295_u64)]
    limit: Option<u32>,
}

#[utoipa::path(get, path = "/v1/webhooks/{id}/deliveries", operation_id = "listWebhookDeliveries", tag = "Webhooks",
    summary = "An endpoint's recent deliveries, with every attempt",
    params(("id" = String, Path, description = "The webhook endpoint's ID"), PageQuery),
    responses((status = 200, description = "Newest first", body = Vec<DeliveryBody>)))]
pub async fn endpoint_deliveries(
    State(state): State<AppState>,
    SecretCaller(caller): SecretCaller,
    Path(id): Path<String>,
    ApiQuery(query): ApiQuery<PageQuery>,
) -> Result<Json<Vec<DeliveryBody>>, ApiError> {
    let deliveries = state
        .app
        .endpoint_deliveries(&caller, endpoint_id(&id)?, query.limit.unwrap_or(50))
        .await
        .map_err(webhook_error)?;
    Ok(Json(
        deliveries.iter().map(|(d, a)| delivery_body(d, Some(a))).collect(),
    ))
}

/// The envelope a webhook carries, as stored.
fn event_body(event: &StoredEvent, deliveries: Option<Vec<DeliveryBody>>) -> EventBody {
    EventBody {
        id: event.id.to_string(),
        kind: event.event_type.as_str(),
        created_at: rfc3339(event.created_at),
        sequence: event.sequence,
        previous_status: event.previous_status.clone(),
        data: serde_json::from_str::<Value>(&event.data).unwrap_or(Value::Null),
        deliveries,
    }
}

#[utoipa::path(get, path = "/v1/events", operation_id = "listEvents", tag = "Webhooks",
    summary = "Events in this mode, newest first",
    params(PageQuery),
    responses((status = 200, description = "Newest first; page with `startingAfter`", body = Vec<EventBody>)))]
pub async fn list_events(
    State(state): State<AppState>,
    SecretCaller(caller): SecretCaller,
    ApiQuery(query): ApiQuery<PageQuery>,
) -> Result<Json<Vec<EventBody>>, ApiError> {
    let before = query.starting_after.as_deref().map(event_id).transpose()?;
    let events = state
        .app
        .list_events(&caller, before, query.limit.unwrap_or(50))
        .await
        .map_err(webhook_error)?;
    Ok(Json(events.iter().map(|e| event_body(e, None)).collect()))
}

#[utoipa::path(get, path = "/v1/events/{id}", operation_id = "getEvent", tag = "Webhooks",
    summary = "An event and its deliveries",
    params(("id" = String, Path, description = "The event's ID")),
    responses((status = 200, description = "The event with `deliveries`", body = EventBody)))]
pub async fn get_event(
    State(state): State<AppState>,
    SecretCaller(caller): SecretCaller,
    Path(id): Path<String>,
) -> Result<Json<EventBody>, ApiError> {
    let (event, deliveries) = state
        .app
        .event_detail(&caller, event_id(&id)?)
        .await
        .map_err(webhook_error)?;
    let deliveries: Vec<DeliveryBody> = deliveries.iter().map(|(d, a)| delivery_body(d, Some(a))).collect();
    Ok(Json(event_body(&event, Some(deliveries))))
}

#[utoipa::path(post, path = "/v1/events/{id}/resend", operation_id = "resendEvent", tag = "Webhooks",
    summary = "Send an event again to every subscribed endpoint",
    params(("id" = String, Path, description = "The event's ID")),
    responses((status = 200, description = "New deliveries were queued", body = ResendBody)))]
pub async fn resend(
    State(state): State<AppState>,
    SecretCaller(caller): SecretCaller,
    Path(id): Path<String>,
    key: IdempotencyHeader,
) -> Result<Response, ApiError> {
    let event = event_id(&id)?;
    let render = move |result: &Result<u32, WebhookError>| match result {
        Ok(created) => json(
            StatusCode::OK,
            &ResendBody {
                event_id: event.to_string(),
                deliveries_created: *created,
            },
        ),
        Err(error) => Err(webhook_error_ref(error)),
    };
    let answer = state.app.resend_event(&caller, event, key.with(renderer(render))).await;
    Ok(respond(answer, render))
}

/// A change of the merchant's settings: the fields sent are changed, the others kept.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schema(as = PatchMerchantSettings)]
pub struct SettingsBody {
    /// The notification URL (노티) for payment results; an empty string removes it.
    #[schema(example = "https://shop.example/noti")]
    notification_url: Option<String>,
    /// `FORM` (`application/x-www-form-urlencoded`, the Korean PGs' 노티) or `JSON`.
    #[schema(example = "FORM")]
    notification_format: Option<String>,
    /// Origins (`https://shop.example`) a client-key payment may redirect to.
    redirect_origins: Option<Vec<String>>,
}

/// The merchant's settings, per mode.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = MerchantSettings)]
pub struct SettingsOut {
    notification_url: Option<String>,
    #[schema(schema_with = notification_format)]
    notification_format: &'static str,
    redirect_origins: Vec<String>,
    #[schema(schema_with = paygate_app::schema::mode)]
    mode: &'static str,
}

#[utoipa::path(get, path = "/v1/merchants/me/settings", operation_id = "getMerchantSettings", tag = "Merchant",
    summary = "The notification URL, its format and the redirect origins",
    responses((status = 200, description = "The settings of this mode", body = SettingsOut)))]
pub async fn get_settings(
    State(state): State<AppState>,
    SecretCaller(caller): SecretCaller,
) -> Result<Json<SettingsOut>, ApiError> {
    let settings = state.app.merchant_settings(&caller).await.map_err(webhook_error)?;
    Ok(Json(SettingsOut {
        notification_url: settings.notification_url,
        notification_format: settings.notification_format.as_str(),
        redirect_origins: settings.redirect_origins,
        mode: caller.key.mode.as_str(),
    }))
}

#[utoipa::path(patch, path = "/v1/merchants/me/settings", operation_id = "updateMerchantSettings", tag = "Merchant",
    summary = "Change the notification URL, its format or the redirect origins",
    request_body(content = SettingsBody, example = json!({"notificationUrl": "https://shop.example/noti", "notificationFormat": "FORM"})),
    responses((status = 200, description = "The settings after the change", body = SettingsOut)))]
pub async fn set_settings(
    State(state): State<AppState>,
    SecretCaller(caller): SecretCaller,
    ApiJson(body): ApiJson<SettingsBody>,
) -> Result<Json<SettingsOut>, ApiError> {
    let settings = state
        .app
        .set_notification(
            &caller,
            body.notification_url,
            body.notification_format.as_deref(),
            body.redirect_origins,
        )
        .await
        .map_err(webhook_error)?;
    Ok(Json(SettingsOut {
        notification_url: settings.notification_url,
        notification_format: settings.notification_format.as_str(),
        redirect_origins: settings.redirect_origins,
        mode: caller.key.mode.as_str(),
    }))
}
