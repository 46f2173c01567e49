//! Payment endpoints: key-in, create, buyer authentication, confirm, lookups, cancel, transactions.
//!
//! A response whose acquirer outcome is not known yet answers `202 Accepted` with the payment (status
//! `IN_PROGRESS`, `outcomeUnknown: true`, or a cancel `PENDING`); the final result follows by lookup or webhook.

use axum::extract::Path;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use paygate_app::auth::Caller;
use paygate_app::payments::command::{self, CardText, ClearCard, Customer, EncData, NotificationUrl, RedirectUrl};
use paygate_app::payments::wire::PaymentBody;
use paygate_app::payments::{
    AuthenticateCommand, CancelCommand, CardSource, ConfirmCommand, CreateCommand, FieldError, KeyInCommand,
    PaymentAnswer, PaymentError, PaymentView,
};
use paygate_domain::id::{PaymentId, TransactionKey};
use paygate_domain::payment::{OrderExtras, PaymentMethod};
use paygate_store::ListedTransaction;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

pub use crate::error::{field_error, idempotency_error, payment_error, payment_error_ref};
use crate::error::{ApiError, ErrorCode};
use crate::extract::{ApiJson, ApiQuery};
use crate::middleware::auth::SecretCaller;
use crate::middleware::idempotency::{json, renderer, respond, IdempotencyHeader, Rendered};
use crate::wire::{parse_instant, rfc3339};
use crate::AppState;

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct KeyInBody {
    /// Won, at least 1.
    #[schema(minimum = 1, example = 15000)]
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
    card_number: Option<String>,
    card_expiration_year: Option<String>,
    card_expiration_month: Option<String>,
    customer_identity_number: Option<String>,
    card_password: Option<String>,
    enc_data: Option<String>,
    /// Months: 0 (lump sum, 일시불) or 2 to 36.
    #[serde(default)]
    #[schema(minimum = 0, maximum = 36)]
    card_installment_plan: u8,
    #[schema(minimum = 0)]
    tax_free_amount: Option<i64>,
    #[schema(minimum = 0)]
    vat: Option<i64>,
    #[schema(max_length = 100)]
    customer_name: Option<String>,
    customer_email: Option<String>,
    /// Where paygate posts the payment's result (노티), over the merchant's setting; at most 2 048 characters.
    #[schema(max_length = 2048)]
    notification_url: Option<String>,
    // Toss Payments' fields, kept and returned (or accepted and ignored): docs/toss-compat.md.
    #[serde(default)]
    use_free_installment_plan: bool,
    #[schema(minimum = 0)]
    tax_exemption_amount: Option<i64>,
    customer_mobile_phone: Option<String>,
    metadata: Option<serde_json::Map<String, serde_json::Value>>,
    /// 3-D Secure results from the merchant's own authentication; the sandbox acquirers do not use them.
    #[allow(dead_code)]
    vbv: Option<VbvBody>,
}

/// Toss's `vbv` object (3-D Secure: `cavv`, `xid`, `eci`), accepted and not used.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[allow(dead_code)]
pub struct VbvBody {
    cavv: Option<String>,
    xid: Option<String>,
    eci: Option<String>,
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateBody {
    /// Won, at least 1.
    #[schema(minimum = 1, example = 15000)]
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
    #[schema(minimum = 0)]
    tax_free_amount: Option<i64>,
    #[schema(minimum = 0)]
    vat: Option<i64>,
    #[schema(max_length = 100)]
    customer_name: Option<String>,
    customer_email: Option<String>,
    /// Where paygate posts the payment's result (노티), over the merchant's setting; at most 2 048 characters.
    #[schema(max_length = 2048)]
    notification_url: Option<String>,
    success_url: Option<String>,
    fail_url: Option<String>,
    /// `카드`, `가상계좌` or `계좌이체` (Toss's spellings; also `CARD`, `VIRTUAL_ACCOUNT`, `TRANSFER`): the page
    /// offers only that method. Absent: the buyer picks one on paygate's page.
    #[schema(example = "카드")]
    method: Option<String>,
    #[schema(minimum = 0)]
    tax_exemption_amount: Option<i64>,
    customer_mobile_phone: Option<String>,
    metadata: Option<serde_json::Map<String, serde_json::Value>>,
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AuthenticateBody {
    card_number: String,
    card_expiration_year: String,
    card_expiration_month: String,
    /// Months: 0 (lump sum, 일시불) or 2 to 36.
    #[serde(default)]
    #[schema(minimum = 0, maximum = 36)]
    card_installment_plan: u8,
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ConfirmBody {
    /// From the success redirect.
    #[schema(example = "pay_01M8XAPQGS22SKF15R5Z2N2D4C")]
    payment_key: String,
    /// Must be the payment's.
    #[schema(example = "order-20261123-0002")]
    order_id: String,
    /// Must be the payment's amount.
    #[schema(minimum = 1, example = 15000)]
    amount: i64,
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CancelBody {
    /// 1 to 200 characters.
    #[schema(min_length = 1, max_length = 200, example = "고객 변심")]
    cancel_reason: String,
    /// Won; without it the whole balance is cancelled.
    #[schema(minimum = 1)]
    cancel_amount: Option<i64>,
    /// The balance the merchant expects before this cancel; a mismatch is `BALANCE_MISMATCH`.
    #[schema(minimum = 0)]
    expected_balance: Option<i64>,
    /// Toss's spelling of the balance guard: a mismatch is `NOT_MATCHES_REFUNDABLE_AMOUNT` (`expectedBalance`'s
    /// is `BALANCE_MISMATCH`).
    #[schema(minimum = 0)]
    refundable_amount: Option<i64>,
    #[schema(minimum = 0)]
    tax_free_amount: Option<i64>,
    /// Toss's: the tax-exempt part of the cancel. paygate keeps a payment's tax-exempt amount as information
    /// only, so a cancel's is accepted and reported as 0 (docs/toss-compat.md).
    #[allow(dead_code)]
    #[schema(minimum = 0)]
    tax_exemption_amount: Option<i64>,
    /// Toss's: the currency of `cancelAmount`; must be the payment's (KRW) when sent.
    currency: Option<String>,
    /// Where a paid virtual account's refund goes (required for one); card payments refund to the card and ignore
    /// it.
    refund_receive_account: Option<RefundAccountBody>,
}

/// Toss's `refundReceiveAccount`: bank code, account number, holder name.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RefundAccountBody {
    /// The bank's code (`88`) or name (`신한`).
    #[schema(example = "88")]
    bank: String,
    /// Digits only, 6 to 20.
    #[schema(example = "12345678901", pattern = "^[0-9]{6,20}$")]
    account_number: String,
    #[schema(example = "박토스", max_length = 60)]
    holder_name: String,
}

/// How a key-in body carries its card, once its presence is checked.
enum SentCard {
    Clear {
        number: String,
        year: String,
        month: String,
    },
    EncData(EncData),
}

impl TryFrom<KeyInBody> for KeyInCommand {
    type Error = FieldError;

    /// The card's presence first (clear fields or `encData`, not both), then the fields in the order the API
    /// documents them.
    fn try_from(body: KeyInBody) -> Result<KeyInCommand, FieldError> {
        let sent = match body.enc_data {
            Some(blob) => {
                let clear = [
                    &body.card_number,
                    &body.card_expiration_year,
                    &body.card_expiration_month,
                    &body.card_password,
                    &body.customer_identity_number,
                ];
                if clear.iter().any(|field| field.is_some()) {
                    return Err(FieldError::invalid(
                        "encData",
                        "send the card either as encData or as clear fields, not both",
                    ));
                }
                SentCard::EncData(EncData::new(blob))
            }
            None => SentCard::Clear {
                number: body.card_number.ok_or_else(|| FieldError::missing("cardNumber"))?,
                year: body
                    .card_expiration_year
                    .ok_or_else(|| FieldError::missing("cardExpirationYear"))?,
                month: body
                    .card_expiration_month
                    .ok_or_else(|| FieldError::missing("cardExpirationMonth"))?,
            },
        };
        let amounts = command::amounts(body.amount, body.tax_free_amount, body.vat)?;
        let installment = command::installment(body.card_installment_plan)?;
        let card = match sent {
            SentCard::Clear { number, year, month } => CardSource::Clear(ClearCard::parse(CardText {
                number: &number,
                expiration_year: &year,
                expiration_month: &month,
                password: body.card_password.as_deref(),
                identity_number: body.customer_identity_number.as_deref(),
            })?),
            SentCard::EncData(blob) => CardSource::EncData(blob),
        };
        Ok(KeyInCommand {
            notification_url: NotificationUrl::parse(body.notification_url)?,
            order_id: command::order_id(&body.order_id)?,
            order_name: command::order_name(&body.order_name)?,
            customer: Customer::parse(body.customer_name, body.customer_email)?,
            extras: OrderExtras {
                free_installment: body.use_free_installment_plan && installment.months() > 0,
                ..command::order_extras(
                    &amounts,
                    body.tax_exemption_amount,
                    body.metadata,
                    body.customer_mobile_phone,
                )?
            },
            amounts,
            card,
            installment,
        })
    }
}

impl TryFrom<CreateBody> for CreateCommand {
    type Error = FieldError;

    fn try_from(body: CreateBody) -> Result<CreateCommand, FieldError> {
        let method = match body.method.as_deref() {
            None => None,
            Some(text) => Some(PaymentMethod::from_request(text).ok_or_else(|| {
                FieldError::invalid(
                    "method",
                    "`method` must be `카드`, `가상계좌` or `계좌이체` (or leave it out and let the buyer pick)",
                )
            })?),
        };
        let success_url = RedirectUrl::parse(body.success_url, "successUrl")?;
        let fail_url = RedirectUrl::parse(body.fail_url, "failUrl")?;
        let amounts = command::amounts(body.amount, body.tax_free_amount, body.vat)?;
        let extras = command::order_extras(
            &amounts,
            body.tax_exemption_amount,
            body.metadata,
            body.customer_mobile_phone,
        )?;
        Ok(CreateCommand {
            amounts,
            extras,
            notification_url: NotificationUrl::parse(body.notification_url)?,
            order_id: command::order_id(&body.order_id)?,
            order_name: command::order_name(&body.order_name)?,
            customer: Customer::parse(body.customer_name, body.customer_email)?,
            success_url,
            fail_url,
            method,
        })
    }
}

impl TryFrom<AuthenticateBody> for AuthenticateCommand {
    type Error = FieldError;

    fn try_from(body: AuthenticateBody) -> Result<AuthenticateCommand, FieldError> {
        let installment = command::installment(body.card_installment_plan)?;
        let card = ClearCard::parse(CardText {
            number: &body.card_number,
            expiration_year: &body.card_expiration_year,
            expiration_month: &body.card_expiration_month,
            password: None,
            identity_number: None,
        })?;
        Ok(AuthenticateCommand { card, installment })
    }
}

impl TryFrom<ConfirmBody> for ConfirmCommand {
    type Error = FieldError;

    fn try_from(body: ConfirmBody) -> Result<ConfirmCommand, FieldError> {
        ConfirmCommand::parse(&body.order_id, body.amount)
    }
}

impl TryFrom<CancelBody> for CancelCommand {
    type Error = FieldError;

    fn try_from(body: CancelBody) -> Result<CancelCommand, FieldError> {
        if let Some(currency) = body.currency.as_deref() {
            if currency != "KRW" {
                return Err(FieldError::invalid(
                    "currency",
                    "`currency` must be the payment's currency, KRW",
                ));
            }
        }
        CancelCommand::parse(
            &body.cancel_reason,
            body.cancel_amount,
            body.expected_balance,
            body.tax_free_amount,
        )?
        .with_refundable_amount(body.refundable_amount)
        .and_then(|command| match &body.refund_receive_account {
            Some(to) => command.with_refund_account(&to.bank, &to.account_number, &to.holder_name),
            None => Ok(command),
        })
    }
}

#[utoipa::path(post, path = "/v1/payments/key-in", operation_id = "keyIn", tag = "Payments",
    summary = "Pay by card number (카드 키인, 비인증)",
    description = "The merchant sends the card (clear fields, or `encData` sealed under its encryption key); paygate approves at once. A decline answers its code and leaves the payment `ABORTED` with `failure`.",
    request_body(content = KeyInBody, example = json!({"amount": 15000, "orderId": "order-20261123-0001", "orderName": "토스 티셔츠 외 2건", "cardNumber": "4330000000000003", "cardExpirationYear": "30", "cardExpirationMonth": "12", "cardInstallmentPlan": 0, "customerIdentityNumber": "900101"})),
    responses(
        (status = 200, description = "Approved", body = PaymentBody),
        (status = 202, description = "The acquirer's answer is not known yet (`status: IN_PROGRESS`, `outcomeUnknown: true`); the outcome follows by lookup or webhook", body = PaymentBody),
    ))]
pub async fn key_in(
    state: axum::extract::State<AppState>,
    SecretCaller(caller): SecretCaller,
    key: IdempotencyHeader,
    ApiJson(body): ApiJson<KeyInBody>,
) -> Result<Response, ApiError> {
    let command = KeyInCommand::try_from(body).map_err(|e| field_error(&e))?;
    let idempotency = key.with(payment_renderer(&state));
    let app = state.app.clone();
    let answer = detached(async move { app.key_in(&caller, command, idempotency).await }).await;
    Ok(respond_payment(&state, answer))
}

#[utoipa::path(post, path = "/v1/payments", operation_id = "createPayment", tag = "Payments",
    summary = "Create a payment for paygate's checkout page (인증결제)",
    description = "Secret or client key. The answer's `checkout.url` is where the buyer pays; afterwards the browser returns to `successUrl?paymentKey&orderId&amount` and the merchant confirms.",
    request_body(content = CreateBody, example = json!({"amount": 15000, "orderId": "order-20261123-0002", "orderName": "토스 티셔츠 외 2건", "method": "카드", "successUrl": "https://shop.example/success", "failUrl": "https://shop.example/fail"})),
    responses((status = 200, description = "Created: `READY`, waiting for the buyer", body = PaymentBody)))]
pub async fn create(
    state: axum::extract::State<AppState>,
    Extension(caller): Extension<Caller>,
    key: IdempotencyHeader,
    ApiJson(body): ApiJson<CreateBody>,
) -> Result<Response, ApiError> {
    let command = CreateCommand::try_from(body).map_err(|e| field_error(&e))?;
    let idempotency = key.with(payment_renderer(&state));
    let app = state.app.clone();
    let answer = detached(async move { app.create_checkout(&caller, command, idempotency).await }).await;
    Ok(respond_payment(&state, answer))
}

/// The buyer's side of checkout; allowed with the merchant's client key.
#[utoipa::path(post, path = "/v1/checkout/{paymentKey}/authenticate", operation_id = "authenticateCheckout", tag = "Payments",
    summary = "The buyer's card for a checkout payment",
    description = "What paygate's checkout page sends for the buyer (client key allowed). Once the issuer authenticated the buyer the payment is `IN_PROGRESS`, waiting for the merchant's confirm.",
    params(("paymentKey" = String, Path, description = "The payment's key")),
    request_body(content = AuthenticateBody, example = json!({"cardNumber": "4330000000000003", "cardExpirationYear": "30", "cardExpirationMonth": "12", "cardInstallmentPlan": 0})),
    responses(
        (status = 200, description = "Authenticated", body = PaymentBody),
        (status = 202, description = "The outcome is not known yet", body = PaymentBody),
    ))]
pub async fn authenticate(
    state: axum::extract::State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(payment_key): Path<String>,
    key: IdempotencyHeader,
    ApiJson(body): ApiJson<AuthenticateBody>,
) -> Result<Response, ApiError> {
    let id = parse_payment_key(&payment_key)?;
    let command = AuthenticateCommand::try_from(body).map_err(|e| field_error(&e))?;
    let idempotency = key.with(payment_renderer(&state));
    let app = state.app.clone();
    let answer = detached(async move { app.authenticate_checkout(&caller, id, command, idempotency).await }).await;
    Ok(respond_payment(&state, answer))
}

#[utoipa::path(post, path = "/v1/payments/confirm", operation_id = "confirmPayment", tag = "Payments",
    summary = "Confirm an authenticated checkout payment (결제 승인)",
    description = "Toss's confirm: the `paymentKey`, `orderId` and `amount` from the success redirect. Confirming again answers `ALREADY_PROCESSED_PAYMENT`.",
    request_body(content = ConfirmBody, example = json!({"paymentKey": "pay_01M8XAPQGS22SKF15R5Z2N2D4C", "orderId": "order-20261123-0002", "amount": 15000})),
    responses(
        (status = 200, description = "Approved", body = PaymentBody),
        (status = 202, description = "The acquirer's answer is not known yet", body = PaymentBody),
    ))]
pub async fn confirm(
    state: axum::extract::State<AppState>,
    SecretCaller(caller): SecretCaller,
    key: IdempotencyHeader,
    ApiJson(body): ApiJson<ConfirmBody>,
) -> Result<Response, ApiError> {
    let id = parse_payment_key(&body.payment_key)?;
    let command = ConfirmCommand::try_from(body).map_err(|e| field_error(&e))?;
    let idempotency = key.with(payment_renderer(&state));
    let app = state.app.clone();
    let answer = detached(async move { app.confirm(&caller, id, command, idempotency).await }).await;
    Ok(respond_payment(&state, answer))
}

#[utoipa::path(get, path = "/v1/payments/{paymentKey}", operation_id = "getPayment", tag = "Payments",
    summary = "Look up a payment by its key",
    params(("paymentKey" = String, Path, description = "The payment's key", example = "pay_01M8XAPQGS22SKF15R5Z2N2D4C")),
    responses((status = 200, description = "The payment", body = PaymentBody)))]
pub async fn get(
    state: axum::extract::State<AppState>,
    SecretCaller(caller): SecretCaller,
    Path(payment_key): Path<String>,
) -> Result<Response, ApiError> {
    let id = parse_payment_key(&payment_key)?;
    let view = state.app.get_payment(&caller, id).await.map_err(payment_error)?;
    Ok(Json(PaymentBody::new(&state.app, &view)).into_response())
}

#[utoipa::path(get, path = "/v1/payments/orders/{orderId}", operation_id = "getPaymentByOrder", tag = "Payments",
    summary = "Look up a payment by the merchant's order ID",
    params(("orderId" = String, Path, description = "The merchant's order ID", example = "order-20261123-0001")),
    responses((status = 200, description = "The payment", body = PaymentBody)))]
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

#[utoipa::path(post, path = "/v1/payments/{paymentKey}/cancel", operation_id = "cancelPayment", tag = "Payments",
    summary = "Cancel a payment, wholly or in part (결제 취소)",
    description = "Without `cancelAmount` the whole balance is cancelled. `expectedBalance` (or Toss's `refundableAmount`) guards against cancelling twice.",
    params(("paymentKey" = String, Path, description = "The payment's key")),
    request_body(content = CancelBody, example = json!({"cancelReason": "고객 변심", "cancelAmount": 5000})),
    responses(
        (status = 200, description = "Cancelled: the payment with its `cancels`", body = PaymentBody),
        (status = 202, description = "The acquirer's answer is not known yet: the cancel is `IN_PROGRESS`", body = PaymentBody),
    ))]
pub async fn cancel(
    state: axum::extract::State<AppState>,
    SecretCaller(caller): SecretCaller,
    Path(payment_key): Path<String>,
    key: IdempotencyHeader,
    ApiJson(body): ApiJson<CancelBody>,
) -> Result<Response, ApiError> {
    let id = parse_payment_key(&payment_key)?;
    let command = CancelCommand::try_from(body).map_err(|e| field_error(&e))?;
    let idempotency = key.with(payment_renderer(&state));
    let app = state.app.clone();
    let answer = detached(async move { app.cancel(&caller, id, command, idempotency).await }).await;
    Ok(respond_payment(&state, answer))
}

#[derive(Deserialize, IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct TransactionsQuery {
    /// From (inclusive): RFC 3339, `YYYY-MM-DDThh:mm:ss` (KST, Toss's form) or `YYYY-MM-DD` (KST).
    #[param(example = "2026-11-01T00:00:00")]
    start_date: String,
    /// Until (exclusive; a bare date includes its whole day).
    #[param(example = "2026-11-30")]
    end_date: String,
    /// The `transactionKey` of the last transaction of the previous page.
    #[param(pattern = "^txn_[0-9A-HJKMNP-TV-Z]{26}$", example = "txn_01M8XAPQGWWP0R3K8550PR5WFC")]
    starting_after: Option<String>,
    /// At most this many (default 100); held to 1 … `payments.transactions_page_max` (100 unless configured), so
    /// 0 counts as 1.
    #[param(minimum = 0, maximum = 4294967295_u64)]
    limit: Option<u32>,
}

/// The query of `GET /v1/payments` (paygate's).
#[derive(Deserialize, IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PaymentsQuery {
    /// From (inclusive): RFC 3339, `YYYY-MM-DDThh:mm:ss` (KST) or `YYYY-MM-DD` (KST midnight).
    #[param(example = "2026-12-01")]
    start_date: String,
    /// Until (exclusive; a bare date includes its whole day).
    #[param(example = "2026-12-31")]
    end_date: String,
    /// `카드`, `가상계좌` or `계좌이체` (or `CARD`, `VIRTUAL_ACCOUNT`, `TRANSFER`).
    method: Option<String>,
    /// A payment status (`DONE`, `WAITING_FOR_DEPOSIT`, `CANCELED`…).
    status: Option<String>,
    /// `totalAmount` at least this.
    #[param(minimum = 0)]
    min_amount: Option<i64>,
    /// `totalAmount` at most this.
    #[param(minimum = 0)]
    max_amount: Option<i64>,
    /// The `paymentKey` of the last payment of the previous page.
    #[param(pattern = "^pay_[0-9A-HJKMNP-TV-Z]{26}$")]
    starting_after: Option<String>,
    /// At most this many (default 100); held to 1 … `payments.transactions_page_max`.
    #[param(minimum = 0, maximum = 4294967295_u64)]
    limit: Option<u32>,
}

#[utoipa::path(get, path = "/v1/payments", operation_id = "listPayments", tag = "Payments",
    summary = "Payments requested in a time range, filtered by method, status and amount (paygate's; Toss has no such list)",
    description = "Every filter is applied before the page is cut. Oldest first; page with `startingAfter` (the last `paymentKey`). The transfers and virtual accounts of a period: `method=계좌이체` or `method=가상계좌`.",
    params(PaymentsQuery),
    responses((status = 200, description = "One page of payments", body = Vec<PaymentBody>)))]
pub async fn list(
    state: axum::extract::State<AppState>,
    SecretCaller(caller): SecretCaller,
    ApiQuery(query): ApiQuery<PaymentsQuery>,
) -> Result<Response, ApiError> {
    let from = parse_instant(&query.start_date, false).ok_or_else(|| bad_date("startDate"))?;
    let until = parse_instant(&query.end_date, true).ok_or_else(|| bad_date("endDate"))?;
    if until <= from {
        return Err(ApiError::new(ErrorCode::InvalidDate, "endDate must be after startDate").with_param("endDate"));
    }
    let invalid =
        |param: &'static str, message: &str| ApiError::new(ErrorCode::InvalidFieldValue, message).with_param(param);
    let method = match query.method.as_deref() {
        None => None,
        Some(text) => Some(
            PaymentMethod::from_request(text)
                .ok_or_else(|| invalid("method", "`method` is `카드`, `가상계좌` or `계좌이체`"))?,
        ),
    };
    let status = match query.status.as_deref() {
        None => None,
        Some(text) => Some(
            paygate_domain::payment::PaymentStatus::ALL
                .into_iter()
                .find(|s| s.as_str() == text)
                .ok_or_else(|| invalid("status", "`status` is a payment status (`DONE`, `CANCELED`, …)"))?,
        ),
    };
    if let (Some(min), Some(max)) = (query.min_amount, query.max_amount) {
        if min > max {
            return Err(invalid("maxAmount", "`maxAmount` must be at least `minAmount`"));
        }
    }
    let after = match &query.starting_after {
        Some(key) => {
            Some(PaymentId::parse(key).map_err(|_| invalid("startingAfter", "`startingAfter` must be a paymentKey"))?)
        }
        None => None,
    };
    let filter = paygate_app::payments::PaymentFilter {
        from,
        until,
        method,
        status,
        min_amount: query.min_amount,
        max_amount: query.max_amount,
        after,
        limit: query.limit.unwrap_or(100),
    };
    let views = state.app.list_payments(&caller, filter).await.map_err(payment_error)?;
    let body: Vec<PaymentBody> = views.iter().map(|view| PaymentBody::new(&state.app, view)).collect();
    Ok(axum::Json(body).into_response())
}

#[utoipa::path(get, path = "/v1/transactions", operation_id = "listTransactions", tag = "Payments",
    summary = "Transactions (거래) in a time range: approvals and cancels",
    params(TransactionsQuery),
    responses((status = 200, description = "Oldest first; page with `startingAfter`", body = Vec<TransactionBody>)))]
pub async fn transactions(
    state: axum::extract::State<AppState>,
    SecretCaller(caller): SecretCaller,
    ApiQuery(query): ApiQuery<TransactionsQuery>,
) -> Result<Response, ApiError> {
    let from = parse_instant(&query.start_date, false).ok_or_else(|| bad_date("startDate"))?;
    let until = parse_instant(&query.end_date, true).ok_or_else(|| bad_date("endDate"))?;
    if until <= from {
        return Err(ApiError::new(ErrorCode::InvalidDate, "endDate must be after startDate").with_param("endDate"));
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
    let body: Vec<TransactionBody> = rows
        .iter()
        .map(|t| TransactionBody::new(&state.app, &caller, t))
        .collect();
    Ok(Json(body).into_response())
}

fn bad_date(param: &'static str) -> ApiError {
    ApiError::new(
        ErrorCode::InvalidDate,
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

pub(crate) fn payment_renderer(state: &AppState) -> paygate_app::idempotency::Render<PaymentView, PaymentError> {
    let app = state.app.clone();
    renderer(move |result| render_payment(&app, result))
}

pub(crate) fn respond_payment(state: &AppState, answer: PaymentAnswer) -> Response {
    respond(answer, |result| render_payment(&state.app, result))
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

/// A transaction (거래) as Toss Payments v1 shapes it, plus paygate's `kind`, `transactionStatus` and `mode`.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = Transaction)]
pub struct TransactionBody {
    #[schema(example = "mid_01M8XAPDMNSGF2TRAAG3F8PKT7")]
    m_id: String,
    #[schema(example = "txn_01M8XAPQGWWP0R3K8550PR5WFC")]
    transaction_key: String,
    #[schema(example = "pay_01M8XAPQGS22SKF15R5Z2N2D4C")]
    payment_key: String,
    #[schema(example = "order-20261123-0001")]
    order_id: String,
    #[schema(schema_with = paygate_app::schema::method)]
    method: &'static str,
    /// The billing key's customer for a billing payment; `null` otherwise.
    customer_key: Option<String>,
    use_escrow: bool,
    receipt_url: String,
    /// The payment's status as this transaction left it: `DONE` (approval), `PARTIAL_CANCELED` or `CANCELED`
    /// (a cancel), `IN_PROGRESS` (a cancel the acquirer has not answered yet), `ABORTED` (a cancel it refused).
    #[schema(schema_with = transaction_payment_status)]
    status: &'static str,
    #[schema(schema_with = paygate_app::schema::instant)]
    transaction_at: String,
    #[schema(schema_with = paygate_app::schema::currency)]
    currency: &'static str,
    #[schema(example = 15000)]
    amount: i64,
    /// `APPROVAL` or `CANCEL`.
    #[schema(schema_with = transaction_kind)]
    kind: &'static str,
    /// `PENDING`, `DONE` or `FAILED`.
    #[schema(schema_with = transaction_status)]
    transaction_status: &'static str,
    #[schema(schema_with = paygate_app::schema::mode)]
    mode: &'static str,
}

fn transaction_payment_status() -> utoipa::openapi::Object {
    use paygate_domain::payment::PaymentStatus;
    let statuses = [
        PaymentStatus::Done,
        PaymentStatus::PartialCanceled,
        PaymentStatus::Canceled,
        PaymentStatus::InProgress,
        PaymentStatus::Aborted,
    ];
    paygate_app::schema::string_enum(statuses.map(|s| s.as_str()))
}

fn transaction_kind() -> utoipa::openapi::Object {
    use paygate_domain::payment::TransactionKind;
    paygate_app::schema::string_enum(TransactionKind::ALL.map(|k| k.as_str()))
}

fn transaction_status() -> utoipa::openapi::Object {
    use paygate_domain::payment::TransactionStatus;
    paygate_app::schema::string_enum(TransactionStatus::ALL.map(|s| s.as_str()))
}

impl TransactionBody {
    fn new(app: &paygate_app::App, caller: &Caller, listed: &ListedTransaction) -> TransactionBody {
        use paygate_domain::payment::{PaymentStatus, TransactionKind, TransactionStatus};
        let t = &listed.transaction;
        let status = match (t.kind, t.status) {
            (TransactionKind::Approval, _) => PaymentStatus::Done,
            (TransactionKind::Cancel, TransactionStatus::Pending) => PaymentStatus::InProgress,
            (TransactionKind::Cancel, TransactionStatus::Failed) => PaymentStatus::Aborted,
            (TransactionKind::Cancel, TransactionStatus::Done) if listed.balance_after.is_zero() => {
                PaymentStatus::Canceled
            }
            (TransactionKind::Cancel, TransactionStatus::Done) => PaymentStatus::PartialCanceled,
        };
        TransactionBody {
            m_id: caller.merchant.id.to_string(),
            transaction_key: t.key.to_string(),
            payment_key: t.payment_id.to_string(),
            order_id: listed.order_id.as_str().to_owned(),
            method: "카드",
            customer_key: listed.customer_key.clone(),
            use_escrow: false,
            receipt_url: app.receipt_url(t.payment_id),
            status: status.as_str(),
            transaction_at: rfc3339(t.created_at),
            currency: t.amount.currency().code(),
            amount: t.amount.amount_minor(),
            kind: t.kind.as_str(),
            transaction_status: t.status.as_str(),
            mode: t.mode.as_str(),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use serde_json::{json, Value};

    use super::*;

    /// `None`: the body converts; `Some((code, param))`: it is refused with that code, status 400, and param.
    type Expected = Option<(&'static str, &'static str)>;

    fn key_in_body(changes: Value) -> KeyInBody {
        let mut body = json!({
            "amount": 15000,
            "orderId": "order-0001",
            "orderName": "T-shirt",
            "cardNumber": "4330000000000003",
            "cardExpirationYear": "30",
            "cardExpirationMonth": "12",
        });
        merge(&mut body, changes);
        serde_json::from_value(body).unwrap()
    }

    fn merge(body: &mut Value, changes: Value) {
        let (Some(body), Value::Object(changes)) = (body.as_object_mut(), changes) else {
            panic!("objects only");
        };
        for (name, value) in changes {
            if value.is_null() {
                body.remove(&name);
            } else {
                body.insert(name, value);
            }
        }
    }

    fn check<T>(case: &str, result: Result<T, FieldError>, expected: Expected) {
        match (result, expected) {
            (Ok(_), None) => {}
            (Ok(_), Some((code, param))) => panic!("{case}: converted, expected {code} on {param}"),
            (Err(error), None) => panic!("{case}: refused with {error:?}"),
            (Err(error), Some((code, param))) => {
                let api = field_error(&error);
                assert_eq!(api.code.detail(), code, "{case}");
                assert_eq!(api.param.as_deref(), Some(param), "{case}");
                assert_eq!(api.code.status(), StatusCode::BAD_REQUEST, "{case}");
            }
        }
    }

    #[test]
    fn key_in_bodies_become_commands_or_field_errors() {
        let long_url = format!("https://shop.example/{}", "a".repeat(2_048));
        let cases: Vec<(&str, Value, Expected)> = vec![
            ("clear card", json!({}), None),
            ("installments", json!({"cardInstallmentPlan": 3}), None),
            (
                "encData alone",
                json!({"cardNumber": null, "cardExpirationYear": null, "cardExpirationMonth": null, "encData": "v1.abc"}),
                None,
            ),
            (
                "encData and clear fields",
                json!({"encData": "v1.abc"}),
                Some(("INVALID_FIELD_VALUE", "encData")),
            ),
            (
                "encData and a password",
                json!({"cardNumber": null, "cardExpirationYear": null, "cardExpirationMonth": null, "encData": "v1.abc", "cardPassword": "12"}),
                Some(("INVALID_FIELD_VALUE", "encData")),
            ),
            (
                "no card number",
                json!({"cardNumber": null}),
                Some(("MISSING_FIELD", "cardNumber")),
            ),
            (
                "no expiry year",
                json!({"cardExpirationYear": null}),
                Some(("MISSING_FIELD", "cardExpirationYear")),
            ),
            (
                "no expiry month",
                json!({"cardExpirationMonth": null}),
                Some(("MISSING_FIELD", "cardExpirationMonth")),
            ),
            (
                "zero amount",
                json!({"amount": 0}),
                Some(("INVALID_FIELD_VALUE", "amount")),
            ),
            (
                "negative amount",
                json!({"amount": -1}),
                Some(("INVALID_FIELD_VALUE", "amount")),
            ),
            (
                "tax-free above the total",
                json!({"taxFreeAmount": 20000}),
                Some(("INVALID_FIELD_VALUE", "taxFreeAmount")),
            ),
            (
                "negative tax-free",
                json!({"taxFreeAmount": -1}),
                Some(("INVALID_FIELD_VALUE", "taxFreeAmount")),
            ),
            (
                "VAT above the taxable amount",
                json!({"vat": 15001}),
                Some(("INVALID_FIELD_VALUE", "vat")),
            ),
            ("explicit zero VAT", json!({"vat": 0}), None),
            (
                "37 months",
                json!({"cardInstallmentPlan": 37}),
                Some(("INVALID_FIELD_VALUE", "cardInstallmentPlan")),
            ),
            (
                "Luhn failure",
                json!({"cardNumber": "4330000000000004"}),
                Some(("INVALID_CARD_NUMBER", "cardNumber")),
            ),
            (
                "month 13",
                json!({"cardExpirationMonth": "13"}),
                Some(("INVALID_CARD_EXPIRATION", "cardExpirationYear")),
            ),
            (
                "three-digit year",
                json!({"cardExpirationYear": "203"}),
                Some(("INVALID_CARD_EXPIRATION", "cardExpirationYear")),
            ),
            (
                "one password digit",
                json!({"cardPassword": "1"}),
                Some(("INVALID_FIELD_VALUE", "cardPassword")),
            ),
            (
                "identity number",
                json!({"customerIdentityNumber": "12"}),
                Some(("INVALID_FIELD_VALUE", "customerIdentityNumber")),
            ),
            ("blank notification URL", json!({"notificationUrl": "  "}), None),
            (
                "long notification URL",
                json!({"notificationUrl": long_url}),
                Some(("INVALID_FIELD_VALUE", "notificationUrl")),
            ),
            (
                "short orderId",
                json!({"orderId": "abc"}),
                Some(("INVALID_FIELD_VALUE", "orderId")),
            ),
            (
                "orderId with a space",
                json!({"orderId": "order 0001"}),
                Some(("INVALID_FIELD_VALUE", "orderId")),
            ),
            (
                "empty orderName",
                json!({"orderName": ""}),
                Some(("INVALID_FIELD_VALUE", "orderName")),
            ),
            (
                "bidi orderName",
                json!({"orderName": "shirt\u{202E}"}),
                Some(("INVALID_FIELD_VALUE", "orderName")),
            ),
            ("100-character name", json!({"customerName": "가".repeat(100)}), None),
            (
                "101-character name",
                json!({"customerName": "가".repeat(101)}),
                Some(("INVALID_FIELD_VALUE", "customerName")),
            ),
            ("email", json!({"customerEmail": "buyer@shop.example"}), None),
            (
                "not an email",
                json!({"customerEmail": "buyer"}),
                Some(("INVALID_FIELD_VALUE", "customerEmail")),
            ),
        ];
        for (case, changes, expected) in cases {
            check(case, KeyInCommand::try_from(key_in_body(changes)), expected);
        }
    }

    #[test]
    fn a_key_in_card_arrives_parsed_or_sealed() {
        let command = KeyInCommand::try_from(key_in_body(json!({"cardPassword": "12"}))).unwrap();
        let CardSource::Clear(card) = command.card else {
            panic!("a clear card");
        };
        assert_eq!(card.number.last4(), "0003");
        assert_eq!((card.expiry.year(), card.expiry.month()), (2030, 12));
        assert!(card.password.is_some() && card.identity.is_none());
        assert_eq!(command.amounts.total().amount_minor(), 15000);
        let sealed =
            json!({"cardNumber": null, "cardExpirationYear": null, "cardExpirationMonth": null, "encData": "v1.abc"});
        let command = KeyInCommand::try_from(key_in_body(sealed)).unwrap();
        assert!(matches!(command.card, CardSource::EncData(ref blob) if blob.as_str() == "v1.abc"));
        assert_eq!(format!("{:?}", command.card), "EncData(EncData([REDACTED]))");
    }

    #[test]
    fn create_bodies_become_commands_or_field_errors() {
        let cases: Vec<(&str, Value, Expected)> = vec![
            ("minimal", json!({}), None),
            (
                "redirects",
                json!({"successUrl": "https://shop.example/ok", "failUrl": "http://shop.example/no"}),
                None,
            ),
            ("empty redirect", json!({"successUrl": ""}), None),
            (
                "script URL",
                json!({"successUrl": "javascript:alert(1)"}),
                Some(("INVALID_URL", "successUrl")),
            ),
            (
                "relative fail URL",
                json!({"failUrl": "/fail"}),
                Some(("INVALID_URL", "failUrl")),
            ),
            (
                "URL with a space",
                json!({"failUrl": "https://shop.example/a b"}),
                Some(("INVALID_URL", "failUrl")),
            ),
            (
                "zero amount",
                json!({"amount": 0}),
                Some(("INVALID_FIELD_VALUE", "amount")),
            ),
            (
                "tax-free above the total",
                json!({"taxFreeAmount": 20000}),
                Some(("INVALID_FIELD_VALUE", "taxFreeAmount")),
            ),
            (
                "bad orderId",
                json!({"orderId": "x"}),
                Some(("INVALID_FIELD_VALUE", "orderId")),
            ),
            (
                "bad orderName",
                json!({"orderName": "\u{7}"}),
                Some(("INVALID_FIELD_VALUE", "orderName")),
            ),
            (
                "bad email",
                json!({"customerEmail": "@"}),
                Some(("INVALID_FIELD_VALUE", "customerEmail")),
            ),
        ];
        for (case, changes, expected) in cases {
            let mut body = json!({"amount": 15000, "orderId": "order-0001", "orderName": "T-shirt"});
            merge(&mut body, changes);
            let body: CreateBody = serde_json::from_value(body).unwrap();
            check(case, CreateCommand::try_from(body), expected);
        }
    }

    #[test]
    fn authenticate_confirm_and_cancel_bodies_become_commands_or_field_errors() {
        let authenticate: Vec<(&str, Value, Expected)> = vec![
            ("card", json!({}), None),
            (
                "Luhn failure",
                json!({"cardNumber": "4330000000000004"}),
                Some(("INVALID_CARD_NUMBER", "cardNumber")),
            ),
            (
                "month 0",
                json!({"cardExpirationMonth": "0"}),
                Some(("INVALID_CARD_EXPIRATION", "cardExpirationYear")),
            ),
            (
                "37 months",
                json!({"cardInstallmentPlan": 37}),
                Some(("INVALID_FIELD_VALUE", "cardInstallmentPlan")),
            ),
        ];
        for (case, changes, expected) in authenticate {
            let mut body =
                json!({"cardNumber": "4330000000000003", "cardExpirationYear": "2030", "cardExpirationMonth": "1"});
            merge(&mut body, changes);
            let body: AuthenticateBody = serde_json::from_value(body).unwrap();
            check(case, AuthenticateCommand::try_from(body), expected);
        }
        let confirm: Vec<(&str, Value, Expected)> = vec![
            ("confirm", json!({}), None),
            (
                "malformed orderId",
                json!({"orderId": "no"}),
                Some(("ORDER_ID_MISMATCH", "orderId")),
            ),
            (
                "zero amount",
                json!({"amount": 0}),
                Some(("INVALID_FIELD_VALUE", "amount")),
            ),
        ];
        for (case, changes, expected) in confirm {
            let mut body = json!({"paymentKey": "pay_x", "orderId": "order-0001", "amount": 15000});
            merge(&mut body, changes);
            let body: ConfirmBody = serde_json::from_value(body).unwrap();
            check(case, ConfirmCommand::try_from(body), expected);
        }
        let cancel: Vec<(&str, Value, Expected)> = vec![
            ("full", json!({}), None),
            (
                "partial with a balance check",
                json!({"cancelAmount": 500, "expectedBalance": 15000}),
                None,
            ),
            (
                "blank reason",
                json!({"cancelReason": "   "}),
                Some(("INVALID_FIELD_VALUE", "cancelReason")),
            ),
            (
                "201 characters",
                json!({"cancelReason": "a".repeat(201)}),
                Some(("INVALID_FIELD_VALUE", "cancelReason")),
            ),
            (
                "zero amount",
                json!({"cancelAmount": 0}),
                Some(("INVALID_FIELD_VALUE", "cancelAmount")),
            ),
        ];
        for (case, changes, expected) in cancel {
            let mut body = json!({"cancelReason": "changed my mind"});
            merge(&mut body, changes);
            let body: CancelBody = serde_json::from_value(body).unwrap();
            check(case, CancelCommand::try_from(body), expected);
        }
        let reason =
            CancelCommand::try_from(serde_json::from_value::<CancelBody>(json!({"cancelReason": "  late  "})).unwrap());
        assert_eq!(reason.unwrap().reason.as_str(), "late");
    }
}
