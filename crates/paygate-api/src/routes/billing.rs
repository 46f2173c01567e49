//! Billing keys (빌링키, 자동결제), as Toss Payments v1 shapes them: issue one for a card
//! (`POST /v1/billing/authorizations/card`), charge it (`POST /v1/billing/{billingKey}`), delete it
//! (`DELETE /v1/billing/{billingKey}`); and paygate's own look-ups (`GET /v1/billing/{billingKey}`,
//! `GET /v1/billing?customerKey=…`), which Toss does not offer.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use paygate_app::billing::wire::BillingBody;
use paygate_app::billing::{BillingError, ChargeCommand, IssueCardCommand};
use paygate_app::payments::command::{self, CardText, ClearCard, Customer};
use paygate_app::payments::FieldError;
use paygate_domain::billing::{BillingKey, CustomerKey};
use paygate_domain::id::BillingKeyId;
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

use super::payments::{detached, payment_renderer, respond_payment, VbvBody};
use crate::error::{billing_error_ref, field_error, ApiError, ErrorCode};
use crate::extract::{ApiJson, ApiQuery};
use crate::middleware::auth::SecretCaller;
use crate::middleware::idempotency::{json, renderer, respond, IdempotencyHeader, Rendered};
use crate::AppState;

/// Toss's body for issuing a billing key from card data.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IssueCardBody {
    /// The merchant's ID for the buyer: 2 to 300 of `A-Z a-z 0-9 - _ = . @`.
    #[schema(
        example = "customer-1042",
        min_length = 2,
        max_length = 300,
        pattern = "^[A-Za-z0-9_=.@-]+$"
    )]
    customer_key: String,
    card_number: String,
    card_expiration_year: String,
    card_expiration_month: String,
    /// Birth date `YYMMDD` or a 10-digit business registration number; sent to the issuer, never stored.
    customer_identity_number: Option<String>,
    /// The first two digits of the card password; sent to the issuer, never stored.
    card_password: Option<String>,
    customer_name: Option<String>,
    customer_email: Option<String>,
    /// 3-D Secure results from the merchant's own authentication; the sandbox acquirers do not use them.
    #[allow(dead_code)]
    vbv: Option<VbvBody>,
}

/// Toss's body for charging a billing key.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ChargeBody {
    /// Must be the key's own `customerKey`.
    #[schema(
        example = "customer-1042",
        min_length = 2,
        max_length = 300,
        pattern = "^[A-Za-z0-9_=.@-]+$"
    )]
    customer_key: String,
    /// Won, at least 1.
    #[schema(minimum = 1, example = 9900)]
    amount: i64,
    #[schema(
        example = "order-20261123-0001",
        min_length = 6,
        max_length = 64,
        pattern = "^[A-Za-z0-9._-]+$"
    )]
    order_id: String,
    #[schema(example = "토스 티셔츠 외 2건", min_length = 1, max_length = 100)]
    order_name: String,
    customer_email: Option<String>,
    customer_name: Option<String>,
    /// The buyer's IP address as the merchant saw it; accepted and not used.
    #[allow(dead_code)]
    customer_ip: Option<String>,
    #[schema(minimum = 0)]
    tax_free_amount: Option<i64>,
    #[schema(minimum = 0)]
    tax_exemption_amount: Option<i64>,
    /// Months: 0 (lump sum, 일시불) or 2 to 36.
    #[serde(default)]
    #[schema(minimum = 0, maximum = 36)]
    card_installment_plan: u8,
    #[schema(minimum = 0)]
    vat: Option<i64>,
    customer_mobile_phone: Option<String>,
    metadata: Option<serde_json::Map<String, serde_json::Value>>,
}

#[derive(Deserialize, IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// The merchant's ID for the buyer.
    #[param(
        example = "customer-1042",
        min_length = 2,
        max_length = 300,
        pattern = "^[A-Za-z0-9_=.@-]+$"
    )]
    customer_key: String,
}

fn customer_key(text: &str) -> Result<CustomerKey, FieldError> {
    CustomerKey::parse(text).map_err(|e| FieldError::invalid("customerKey", e))
}

impl TryFrom<IssueCardBody> for IssueCardCommand {
    type Error = FieldError;

    fn try_from(body: IssueCardBody) -> Result<IssueCardCommand, FieldError> {
        Ok(IssueCardCommand {
            customer_key: customer_key(&body.customer_key)?,
            card: ClearCard::parse(CardText {
                number: &body.card_number,
                expiration_year: &body.card_expiration_year,
                expiration_month: &body.card_expiration_month,
                password: body.card_password.as_deref().filter(|p| !p.is_empty()),
                identity_number: body.customer_identity_number.as_deref().filter(|i| !i.is_empty()),
            })?,
            customer: Customer::parse(body.customer_name, body.customer_email)?,
        })
    }
}

impl TryFrom<ChargeBody> for ChargeCommand {
    type Error = FieldError;

    fn try_from(body: ChargeBody) -> Result<ChargeCommand, FieldError> {
        let customer_key = customer_key(&body.customer_key)?;
        let amounts = command::amounts(body.amount, body.tax_free_amount, body.vat)?;
        let installment = command::installment(body.card_installment_plan)?;
        Ok(ChargeCommand {
            customer_key,
            order_id: command::order_id(&body.order_id)?,
            order_name: command::order_name(&body.order_name)?,
            customer: Customer::parse(body.customer_name, body.customer_email)?,
            extras: command::order_extras(
                &amounts,
                body.tax_exemption_amount,
                body.metadata,
                body.customer_mobile_phone,
            )?,
            amounts,
            installment,
        })
    }
}

/// A billing key in a path: one that does not parse is simply not found.
fn billing_key_id(text: &str) -> Result<BillingKeyId, ApiError> {
    BillingKeyId::parse(text).map_err(|_| {
        ApiError::new(
            ErrorCode::NotFoundBilling,
            "no such billing key for this merchant and mode",
        )
    })
}

pub(crate) fn render_key(result: &Result<BillingKey, BillingError>) -> Rendered {
    match result {
        Ok(key) => json(StatusCode::OK, &BillingBody::new(key)),
        Err(error) => Err(billing_error_ref(error)),
    }
}

#[utoipa::path(post, path = "/v1/billing/authorizations/card", operation_id = "issueBillingKeyByCard", tag = "Billing",
    summary = "Issue a billing key from card data (빌링키 발급, 키인)",
    description = "The card is verified with its issuer first (no money moves). A card whose issuer asks for authentication answers `CARD_AUTHENTICATION_REQUIRED`: register it through paygate's page instead.",
    request_body(content = IssueCardBody, example = json!({"customerKey": "customer-1042", "cardNumber": "4330000000000003", "cardExpirationYear": "30", "cardExpirationMonth": "12", "customerIdentityNumber": "900101"})),
    responses((status = 200, description = "Issued", body = BillingBody)))]
pub async fn issue_card(
    State(state): State<AppState>,
    SecretCaller(caller): SecretCaller,
    key: IdempotencyHeader,
    ApiJson(body): ApiJson<IssueCardBody>,
) -> Result<Response, ApiError> {
    let command = IssueCardCommand::try_from(body).map_err(|e| field_error(&e))?;
    let idempotency = key.with(renderer(render_key));
    let answer = state.app.issue_billing_key(&caller, command, idempotency).await;
    Ok(respond(answer, render_key))
}

#[utoipa::path(post, path = "/v1/billing/{billingKey}", operation_id = "chargeBillingKey", tag = "Billing",
    summary = "Charge a billing key (자동결제 승인)",
    description = "A merchant-initiated charge of the stored card: a Payment of `type: BILLING`, cancellable like any other.",
    params(("billingKey" = String, Path, description = "The billing key")),
    request_body(content = ChargeBody, example = json!({"customerKey": "customer-1042", "amount": 9900, "orderId": "sub-2026-12-1042", "orderName": "월간 구독"})),
    responses(
        (status = 200, description = "Approved", body = paygate_app::payments::wire::PaymentBody),
        (status = 202, description = "The acquirer's answer is not known yet", body = paygate_app::payments::wire::PaymentBody),
    ))]
pub async fn charge(
    state: axum::extract::State<AppState>,
    SecretCaller(caller): SecretCaller,
    Path(billing_key): Path<String>,
    key: IdempotencyHeader,
    ApiJson(body): ApiJson<ChargeBody>,
) -> Result<Response, ApiError> {
    let id = billing_key_id(&billing_key)?;
    let command = ChargeCommand::try_from(body).map_err(|e| field_error(&e))?;
    let idempotency = key.with(payment_renderer(&state));
    let app = state.app.clone();
    let answer = detached(async move { app.charge_billing_key(&caller, id, command, idempotency).await }).await;
    Ok(respond_payment(&state, answer))
}

#[utoipa::path(get, path = "/v1/billing/{billingKey}", operation_id = "getBillingKey", tag = "Billing",
    summary = "Look up a billing key (paygate's; Toss has no such call)",
    params(("billingKey" = String, Path, description = "The billing key")),
    responses((status = 200, description = "The billing key, deleted ones included", body = BillingBody)))]
pub async fn get(
    State(state): State<AppState>,
    SecretCaller(caller): SecretCaller,
    Path(billing_key): Path<String>,
) -> Result<Json<BillingBody>, ApiError> {
    let id = billing_key_id(&billing_key)?;
    let key = state
        .app
        .billing_key(&caller, id)
        .await
        .map_err(|e| billing_error_ref(&e))?;
    Ok(Json(BillingBody::new(&key)))
}

#[utoipa::path(get, path = "/v1/billing", operation_id = "listBillingKeys", tag = "Billing",
    summary = "A customer's billing keys (paygate's)",
    params(ListQuery),
    responses((status = 200, description = "Newest first, deleted ones included", body = Vec<BillingBody>)))]
pub async fn list(
    State(state): State<AppState>,
    SecretCaller(caller): SecretCaller,
    ApiQuery(query): ApiQuery<ListQuery>,
) -> Result<Json<Vec<BillingBody>>, ApiError> {
    let customer_key = customer_key(&query.customer_key).map_err(|e| field_error(&e))?;
    let keys = state
        .app
        .customer_billing_keys(&caller, &customer_key)
        .await
        .map_err(|e| billing_error_ref(&e))?;
    Ok(Json(keys.iter().map(BillingBody::new).collect()))
}

/// Toss answers a deletion with `200` and an empty body.
#[utoipa::path(delete, path = "/v1/billing/{billingKey}", operation_id = "deleteBillingKey", tag = "Billing",
    summary = "Delete a billing key (빌링키 삭제)",
    description = "Further charges answer `NOT_FOUND_BILLING`; the stored card is erased. Sends `BILLING_DELETED`.",
    params(("billingKey" = String, Path, description = "The billing key")),
    responses((status = 200, description = "Deleted; the body is empty, as Toss answers")))]
pub async fn delete(
    State(state): State<AppState>,
    SecretCaller(caller): SecretCaller,
    Path(billing_key): Path<String>,
) -> Result<Response, ApiError> {
    let id = billing_key_id(&billing_key)?;
    state
        .app
        .delete_billing_key(&caller, id)
        .await
        .map_err(|e| billing_error_ref(&e))?;
    Ok(StatusCode::OK.into_response())
}
