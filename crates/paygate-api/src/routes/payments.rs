//! Payment endpoints: key-in, create, buyer authentication, confirm, lookups, cancel, transactions.
//!
//! A response whose acquirer outcome is not known yet answers `202 Accepted` with the payment (status
//! `IN_PROGRESS`, `outcomeUnknown: true`, or a cancel `PENDING`); the final result follows by lookup or webhook.

use axum::extract::Path;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use paygate_app::auth::Caller;
use paygate_app::payments::wire::PaymentBody;
use paygate_app::payments::{
    AuthenticateRequest, CancelRequest, CardFields, CreateRequest, KeyInRequest, PaymentAnswer, PaymentError,
    PaymentView,
};
use paygate_domain::id::{PaymentId, TransactionKey};
use paygate_domain::payment::PaymentRuleError;
use serde::{Deserialize, Serialize};

use crate::error::{ApiError, ErrorCode, ErrorDetails};
use crate::extract::{ApiJson, ApiQuery};
use crate::middleware::auth::SecretCaller;
use crate::middleware::idempotency::{json, renderer, respond, IdempotencyHeader, Rendered};
use crate::wire::{parse_instant, rfc3339};
use crate::AppState;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct KeyInBody {
    amount: i64,
    order_id: String,
    order_name: String,
    card_number: Option<String>,
    card_expiration_year: Option<String>,
    card_expiration_month: Option<String>,
    customer_identity_number: Option<String>,
    card_password: Option<String>,
    enc_data: Option<String>,
    #[serde(default)]
    card_installment_plan: u8,
    tax_free_amount: Option<i64>,
    vat: Option<i64>,
    customer_name: Option<String>,
    customer_email: Option<String>,
    notification_url: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateBody {
    amount: i64,
    order_id: String,
    order_name: String,
    tax_free_amount: Option<i64>,
    vat: Option<i64>,
    customer_name: Option<String>,
    customer_email: Option<String>,
    notification_url: Option<String>,
    success_url: Option<String>,
    fail_url: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AuthenticateBody {
    card_number: String,
    card_expiration_year: String,
    card_expiration_month: String,
    #[serde(default)]
    card_installment_plan: u8,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ConfirmBody {
    payment_key: String,
    order_id: String,
    amount: i64,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CancelBody {
    cancel_reason: String,
    cancel_amount: Option<i64>,
    expected_balance: Option<i64>,
}

fn missing(param: &'static str) -> ApiError {
    ApiError::new(ErrorCode::MissingField, format!("`{param}` is required")).with_param(param)
}

pub async fn key_in(
    state: axum::extract::State<AppState>,
    SecretCaller(caller): SecretCaller,
    key: IdempotencyHeader,
    ApiJson(body): ApiJson<KeyInBody>,
) -> Result<Response, ApiError> {
    let card = match body.enc_data {
        Some(enc_data) => {
            let clear_fields = [
                &body.card_number,
                &body.card_expiration_year,
                &body.card_expiration_month,
            ];
            if clear_fields.iter().any(|f| f.is_some())
                || body.card_password.is_some()
                || body.customer_identity_number.is_some()
            {
                return Err(ApiError::new(
                    ErrorCode::InvalidFieldValue,
                    "send the card either as encData or as clear fields, not both",
                )
                .with_param("encData"));
            }
            state
                .app
                .decrypt_card_fields(&caller, &enc_data)
                .await
                .map_err(payment_error)?
        }
        None => CardFields {
            card_number: body.card_number.ok_or_else(|| missing("cardNumber"))?,
            expiration_year: body.card_expiration_year.ok_or_else(|| missing("cardExpirationYear"))?,
            expiration_month: body
                .card_expiration_month
                .ok_or_else(|| missing("cardExpirationMonth"))?,
            identity_number: body.customer_identity_number,
            password: body.card_password,
        },
    };
    let request = KeyInRequest {
        amount: body.amount,
        order_id: body.order_id,
        order_name: body.order_name,
        card,
        installment_months: body.card_installment_plan,
        tax_free_amount: body.tax_free_amount,
        vat: body.vat,
        customer_name: body.customer_name,
        customer_email: body.customer_email,
        notification_url: body.notification_url,
    };
    let idempotency = key.with(payment_renderer(&state));
    let app = state.app.clone();
    let answer = detached(async move { app.key_in(&caller, request, idempotency).await }).await;
    Ok(respond_payment(&state, answer))
}

pub async fn create(
    state: axum::extract::State<AppState>,
    Extension(caller): Extension<Caller>,
    key: IdempotencyHeader,
    ApiJson(body): ApiJson<CreateBody>,
) -> Result<Response, ApiError> {
    let request = CreateRequest {
        amount: body.amount,
        order_id: body.order_id,
        order_name: body.order_name,
        tax_free_amount: body.tax_free_amount,
        vat: body.vat,
        customer_name: body.customer_name,
        customer_email: body.customer_email,
        notification_url: body.notification_url,
        success_url: body.success_url,
        fail_url: body.fail_url,
    };
    let idempotency = key.with(payment_renderer(&state));
    let app = state.app.clone();
    let answer = detached(async move { app.create_checkout(&caller, request, idempotency).await }).await;
    Ok(respond_payment(&state, answer))
}

/// The buyer's side of checkout; allowed with the merchant's client key.
pub async fn authenticate(
    state: axum::extract::State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(payment_key): Path<String>,
    key: IdempotencyHeader,
    ApiJson(body): ApiJson<AuthenticateBody>,
) -> Result<Response, ApiError> {
    let id = parse_payment_key(&payment_key)?;
    let request = AuthenticateRequest {
        card: CardFields {
            card_number: body.card_number,
            expiration_year: body.card_expiration_year,
            expiration_month: body.card_expiration_month,
            identity_number: None,
            password: None,
        },
        installment_months: body.card_installment_plan,
    };
    let idempotency = key.with(payment_renderer(&state));
    let app = state.app.clone();
    let answer = detached(async move { app.authenticate_checkout(&caller, id, request, idempotency).await }).await;
    Ok(respond_payment(&state, answer))
}

pub async fn confirm(
    state: axum::extract::State<AppState>,
    SecretCaller(caller): SecretCaller,
    key: IdempotencyHeader,
    ApiJson(body): ApiJson<ConfirmBody>,
) -> Result<Response, ApiError> {
    let id = parse_payment_key(&body.payment_key)?;
    let idempotency = key.with(payment_renderer(&state));
    let app = state.app.clone();
    let answer =
        detached(async move { app.confirm(&caller, id, &body.order_id, body.amount, idempotency).await }).await;
    Ok(respond_payment(&state, answer))
}

pub async fn get(
    state: axum::extract::State<AppState>,
    SecretCaller(caller): SecretCaller,
    Path(payment_key): Path<String>,
) -> Result<Response, ApiError> {
    let id = parse_payment_key(&payment_key)?;
    let view = state.app.get_payment(&caller, id).await.map_err(payment_error)?;
    Ok(Json(PaymentBody::new(&state.app, &view)).into_response())
}

pub async fn get_by_order(
    state: axum::extract::State<AppState>,
    SecretCaller(caller): SecretCaller,
    Path(order_id): Path<String>,
) -> Result<Response, ApiError> {
    let view = state
        .app
        .get_payment_by_order(&caller, &order_id)
        .await
        .map_err(payment_error)?;
    Ok(Json(PaymentBody::new(&state.app, &view)).into_response())
}

pub async fn cancel(
    state: axum::extract::State<AppState>,
    SecretCaller(caller): SecretCaller,
    Path(payment_key): Path<String>,
    key: IdempotencyHeader,
    ApiJson(body): ApiJson<CancelBody>,
) -> Result<Response, ApiError> {
    let id = parse_payment_key(&payment_key)?;
    let request = CancelRequest {
        reason: body.cancel_reason,
        amount: body.cancel_amount,
        expected_balance: body.expected_balance,
    };
    let idempotency = key.with(payment_renderer(&state));
    let app = state.app.clone();
    let answer = detached(async move { app.cancel(&caller, id, request, idempotency).await }).await;
    Ok(respond_payment(&state, answer))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TransactionsQuery {
    start_date: String,
    end_date: String,
    starting_after: Option<String>,
    limit: Option<u32>,
}

pub async fn transactions(
    state: axum::extract::State<AppState>,
    SecretCaller(caller): SecretCaller,
    ApiQuery(query): ApiQuery<TransactionsQuery>,
) -> Result<Response, ApiError> {
    let from = parse_instant(&query.start_date, false).ok_or_else(|| bad_date("startDate"))?;
    let until = parse_instant(&query.end_date, true).ok_or_else(|| bad_date("endDate"))?;
    if until <= from {
        return Err(
            ApiError::new(ErrorCode::InvalidFieldValue, "endDate must be after startDate").with_param("endDate"),
        );
    }
    let after = match &query.starting_after {
        Some(key) => Some(TransactionKey::parse(key).map_err(|_| {
            ApiError::new(ErrorCode::InvalidFieldValue, "startingAfter must be a transactionKey")
                .with_param("startingAfter")
        })?),
        None => None,
    };
    let limit = query.limit.unwrap_or(100);
    let rows = state
        .app
        .list_transactions(&caller, from, until, after, limit)
        .await
        .map_err(payment_error)?;
    let body: Vec<TransactionBody> = rows.iter().map(|t| TransactionBody::new(&caller, t)).collect();
    Ok(Json(body).into_response())
}

fn bad_date(param: &'static str) -> ApiError {
    ApiError::new(
        ErrorCode::InvalidFieldValue,
        format!("`{param}` must be RFC 3339, YYYY-MM-DDThh:mm:ss (KST) or YYYY-MM-DD (KST)"),
    )
    .with_param(param)
}

fn parse_payment_key(text: &str) -> Result<PaymentId, ApiError> {
    PaymentId::parse(text).map_err(|_| ApiError::new(ErrorCode::NotFoundPayment, "no such payment"))
}

/// A payment answer: `202 Accepted` while the outcome it is about is pending, `200` otherwise; errors as their
/// stable codes.
fn render_payment(app: &paygate_app::App, result: &Result<PaymentView, PaymentError>) -> Rendered {
    match result {
        Ok(view) => {
            let status = if view.outcome_pending() {
                StatusCode::ACCEPTED
            } else {
                StatusCode::OK
            };
            json(status, &PaymentBody::new(app, view))
        }
        Err(error) => Err(payment_error_ref(error)),
    }
}

fn payment_renderer(state: &AppState) -> paygate_app::idempotency::Render<PaymentView, PaymentError> {
    let app = state.app.clone();
    renderer(move |result| render_payment(&app, result))
}

fn respond_payment(state: &AppState, answer: PaymentAnswer) -> Response {
    respond(answer, |result| render_payment(&state.app, result))
}

/// Maps the use cases' errors onto stable codes.
pub fn payment_error(error: PaymentError) -> ApiError {
    payment_error_ref(&error)
}

/// Maps the use cases' errors onto stable codes (the same mapping renders live and stored answers).
pub fn payment_error_ref(error: &PaymentError) -> ApiError {
    match error.clone_for_answer() {
        PaymentError::Invalid { code, param, message } => {
            let code = match code {
                "INVALID_URL" => ErrorCode::InvalidUrl,
                "MISSING_FIELD" => ErrorCode::MissingField,
                "INVALID_CARD_NUMBER" => ErrorCode::InvalidCardNumber,
                "INVALID_CARD_EXPIRATION" => ErrorCode::InvalidCardExpiration,
                _ => ErrorCode::InvalidFieldValue,
            };
            ApiError::new(code, message).with_param(param)
        }
        PaymentError::DuplicateOrderId => {
            ApiError::new(ErrorCode::DuplicatedOrderId, "this orderId was already used").with_param("orderId")
        }
        PaymentError::NotFound => ApiError::new(ErrorCode::NotFoundPayment, "no such payment"),
        PaymentError::Rule(rule) => rule_error(rule),
        PaymentError::Concurrent => ApiError::new(
            ErrorCode::AlreadyProcessingRequest,
            "another request is changing this payment; retry shortly and read the result",
        ),
        PaymentError::Declined {
            payment,
            code,
            message,
            acquirer_code,
        } => {
            let code = match code.as_str() {
                "REJECT_CARD_PAYMENT" => ErrorCode::RejectCardPayment,
                "INVALID_CARD_LOST_OR_STOLEN" => ErrorCode::InvalidCardLostOrStolen,
                "INVALID_CARD_PASSWORD" => ErrorCode::InvalidCardPassword,
                "INVALID_CARD_EXPIRATION" => ErrorCode::InvalidCardExpiration,
                "INVALID_CARD_NUMBER" => ErrorCode::InvalidCardNumber,
                "CARD_AUTHENTICATION_REQUIRED" => ErrorCode::CardAuthenticationRequired,
                _ => ErrorCode::RejectCardCompany,
            };
            ApiError::new(code, "the card was declined").with_details(ErrorDetails {
                acquirer_code,
                acquirer_message: Some(message),
                payment_key: Some(payment.id.to_string()),
            })
        }
        PaymentError::AcquirerUnavailable { payment } => ApiError::new(
            ErrorCode::AcquirerUnavailable,
            "the acquirer could not process the request; nothing was charged or refunded",
        )
        .with_details(ErrorDetails {
            payment_key: payment.map(|p| p.id.to_string()),
            ..ErrorDetails::default()
        }),
        PaymentError::NoRoute => ApiError::new(
            ErrorCode::NoAcquirerRoute,
            "no acquirer serves this card for this merchant and mode",
        ),
        PaymentError::CancelRefused { message, acquirer_code } => {
            ApiError::new(ErrorCode::CancelRefused, "the acquirer refused the cancel").with_details(ErrorDetails {
                acquirer_code: Some(acquirer_code),
                acquirer_message: Some(message),
                payment_key: None,
            })
        }
        PaymentError::EncData(enc) => enc_error(enc),
        PaymentError::Forbidden => ApiError::new(
            ErrorCode::ClientKeyNotAllowed,
            "client keys can only start payments from a browser; use a secret key on your server",
        ),
        PaymentError::NotCancelable { status } => ApiError::new(
            ErrorCode::NotCancelablePayment,
            format!("the payment is {} and has nothing left to cancel", status.as_str()),
        ),
        PaymentError::Idempotency(refusal) => idempotency_error(refusal),
        PaymentError::Internal(internal) => ApiError::internal(&internal),
    }
}

/// 409 while the first request under a key runs, 422 for another request under a used key.
pub fn idempotency_error(refusal: paygate_app::idempotency::IdempotencyRefusal) -> ApiError {
    use paygate_app::idempotency::IdempotencyRefusal;
    match refusal {
        IdempotencyRefusal::InFlight => {
            let mut error = ApiError::new(ErrorCode::IdempotentRequestProcessing, refusal.to_string());
            error.retry_after_secs = Some(1);
            error
        }
        IdempotencyRefusal::Reused => ApiError::new(ErrorCode::IdempotencyKeyReused, refusal.to_string()),
    }
}

/// Runs a use case on its own task, so it completes even when the request times out or the client goes away
/// (a dropped future would stop it between the acquirer's answer and the record of it). The caller gets
/// `REQUEST_TIMEOUT` from the timeout layer and finds the outcome by lookup, or by retrying with its key.
pub(crate) async fn detached<T: Send + 'static>(
    work: impl std::future::Future<Output = Result<T, PaymentError>> + Send + 'static,
) -> Result<T, PaymentError> {
    match tokio::spawn(work).await {
        Ok(result) => result,
        Err(error) => Err(PaymentError::Internal(paygate_app::payments::InternalError::Invariant(
            format!("the use case task failed: {error}"),
        ))),
    }
}

fn enc_error(error: paygate_app::encdata::EncDataError) -> ApiError {
    use paygate_app::encdata::EncDataError;
    let (code, message) = match &error {
        EncDataError::UnknownKeyVersion(_) => (ErrorCode::UnknownEncKeyVersion, error.to_string()),
        EncDataError::DecryptionFailed => (ErrorCode::EncDataDecryptionFailed, error.to_string()),
        EncDataError::Encryption | EncDataError::InvalidKey => return ApiError::internal(&error),
        _ => (ErrorCode::InvalidEncData, error.to_string()),
    };
    ApiError::new(code, message).with_param("encData")
}

fn rule_error(rule: PaymentRuleError) -> ApiError {
    use paygate_domain::payment::CancelError;
    match rule {
        PaymentRuleError::Transition(t) => {
            let code = match t.event {
                paygate_domain::payment::PaymentEvent::PartiallyCanceled
                | paygate_domain::payment::PaymentEvent::FullyCanceled => ErrorCode::NotCancelablePayment,
                // Its deadline passed (the expiry worker already moved it): say so, as errors.md promises.
                _ if t.from == paygate_domain::payment::PaymentStatus::Expired => ErrorCode::PaymentExpired,
                _ => ErrorCode::InvalidPaymentStatus,
            };
            ApiError::new(code, format!("the payment is {}", t.from.as_str()))
        }
        PaymentRuleError::Cancel(CancelError::ExceedsBalance { balance, .. }) => ApiError::new(
            ErrorCode::ExceedsCancelableAmount,
            format!("the cancellable balance is {}", balance.amount_minor()),
        )
        .with_param("cancelAmount"),
        PaymentRuleError::Cancel(other) => {
            ApiError::new(ErrorCode::InvalidFieldValue, other.to_string()).with_param("cancelAmount")
        }
        PaymentRuleError::ApprovalInProgress => ApiError::new(
            ErrorCode::AlreadyProcessingRequest,
            "the payment's approval is already being processed",
        ),
        PaymentRuleError::Expired => ApiError::new(ErrorCode::PaymentExpired, "the payment expired"),
        PaymentRuleError::AmountMismatch => {
            ApiError::new(ErrorCode::AmountMismatch, "the amount does not match the payment").with_param("amount")
        }
        PaymentRuleError::OrderMismatch => {
            ApiError::new(ErrorCode::OrderIdMismatch, "the orderId does not match the payment").with_param("orderId")
        }
        PaymentRuleError::BalanceMismatch { actual, .. } => ApiError::new(
            ErrorCode::BalanceMismatch,
            format!("the balance is {}; nothing was cancelled", actual.amount_minor()),
        )
        .with_param("expectedBalance"),
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TransactionBody {
    m_id: String,
    transaction_key: String,
    payment_key: String,
    method: &'static str,
    kind: &'static str,
    status: &'static str,
    transaction_at: String,
    currency: &'static str,
    amount: i64,
    mode: &'static str,
}

impl TransactionBody {
    fn new(caller: &Caller, t: &paygate_domain::payment::PaymentTransaction) -> TransactionBody {
        TransactionBody {
            m_id: caller.merchant.id.to_string(),
            transaction_key: t.key.to_string(),
            payment_key: t.payment_id.to_string(),
            method: "CARD",
            kind: t.kind.as_str(),
            status: t.status.as_str(),
            transaction_at: rfc3339(t.created_at),
            currency: t.amount.currency().code(),
            amount: t.amount.amount_minor(),
            mode: t.mode.as_str(),
        }
    }
}
