//! Webhook endpoints, events and their delivery log, resends, and the merchant's notification URL.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::Json;
use paygate_app::outbox::webhooks::{EndpointPatch, EndpointWithSecret, WebhookError};
use paygate_domain::id::{EventId, WebhookEndpointId};
use paygate_store::{Attempt, Delivery, StoredEvent, WebhookEndpoint};
use serde::{Deserialize, Serialize};
use serde_json::Value;

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

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EndpointBody {
    id: String,
    url: String,
    event_types: Vec<&'static str>,
    status: &'static str,
    disabled_reason: Option<String>,
    failing_since: Option<String>,
    mode: &'static str,
    created_at: String,
    updated_at: String,
    /// Shown only when it is created or rolled; store it then.
    #[serde(skip_serializing_if = "Option::is_none")]
    secret: Option<String>,
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

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateBody {
    url: String,
    event_types: Vec<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PatchBody {
    url: Option<String>,
    event_types: Option<Vec<String>>,
    status: Option<String>,
}

fn endpoint_id(text: &str) -> Result<WebhookEndpointId, ApiError> {
    WebhookEndpointId::parse(text).map_err(|_| ApiError::new(ErrorCode::NotFoundWebhook, "no such webhook endpoint"))
}

fn event_id(text: &str) -> Result<EventId, ApiError> {
    EventId::parse(text).map_err(|_| ApiError::new(ErrorCode::NotFoundEvent, "no such event"))
}

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

pub async fn list(
    State(state): State<AppState>,
    SecretCaller(caller): SecretCaller,
) -> Result<Json<Vec<EndpointBody>>, ApiError> {
    let endpoints = state.app.list_endpoints(&caller).await.map_err(webhook_error)?;
    Ok(Json(endpoints.iter().map(|e| EndpointBody::new(e, None)).collect()))
}

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

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryBody {
    id: String,
    event_id: String,
    kind: &'static str,
    endpoint_id: Option<String>,
    url: String,
    status: &'static str,
    attempts: u32,
    next_attempt_at: Option<String>,
    last_status_code: Option<u16>,
    created_at: String,
    updated_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    attempt_log: Option<Vec<AttemptBody>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AttemptBody {
    attempt: u32,
    started_at: String,
    latency_ms: u32,
    status_code: Option<u16>,
    error: Option<String>,
    response_body: Option<String>,
    succeeded: bool,
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

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PageQuery {
    starting_after: Option<String>,
    limit: Option<u32>,
}

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
fn event_body(event: &StoredEvent) -> Value {
    serde_json::json!({
        "id": event.id.to_string(),
        "type": event.event_type.as_str(),
        "createdAt": rfc3339(event.created_at),
        "sequence": event.sequence,
        "previousStatus": event.previous_status,
        "data": serde_json::from_str::<Value>(&event.data).unwrap_or(Value::Null),
    })
}

pub async fn list_events(
    State(state): State<AppState>,
    SecretCaller(caller): SecretCaller,
    ApiQuery(query): ApiQuery<PageQuery>,
) -> Result<Json<Vec<Value>>, ApiError> {
    let before = query.starting_after.as_deref().map(event_id).transpose()?;
    let events = state
        .app
        .list_events(&caller, before, query.limit.unwrap_or(50))
        .await
        .map_err(webhook_error)?;
    Ok(Json(events.iter().map(event_body).collect()))
}

pub async fn get_event(
    State(state): State<AppState>,
    SecretCaller(caller): SecretCaller,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let (event, deliveries) = state
        .app
        .event_detail(&caller, event_id(&id)?)
        .await
        .map_err(webhook_error)?;
    let mut body = event_body(&event);
    let deliveries: Vec<DeliveryBody> = deliveries.iter().map(|(d, a)| delivery_body(d, Some(a))).collect();
    body["deliveries"] = serde_json::to_value(deliveries).unwrap_or(Value::Null);
    Ok(Json(body))
}

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
            &serde_json::json!({ "eventId": event.to_string(), "deliveriesCreated": created }),
        ),
        Err(error) => Err(webhook_error_ref(error)),
    };
    let answer = state.app.resend_event(&caller, event, key.with(renderer(render))).await;
    Ok(respond(answer, render))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SettingsBody {
    notification_url: Option<String>,
    notification_format: Option<String>,
    redirect_origins: Option<Vec<String>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SettingsOut {
    notification_url: Option<String>,
    notification_format: &'static str,
    redirect_origins: Vec<String>,
    mode: &'static str,
}

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
