//! Virtual accounts (가상계좌): issuing one for a new payment (Toss's `POST /v1/virtual-accounts`), and the banks'
//! signed deposit notifications (입금통보, `BANK-PROTOCOL.md`), which pay them.

use axum::body::Bytes;
use axum::extract::Path;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use paygate_app::bank::{DepositError, NotificationError};
use paygate_app::payments::command::{self, CashReceiptAsked, CustomerName, NotificationUrl};
use paygate_app::payments::wire::PaymentBody;
use paygate_app::payments::{FieldError, VirtualAccountCommand};
use paygate_connectors::bank_notify::{SIGNATURE_HEADER, TIMESTAMP_HEADER};
use paygate_connectors::bank_wire::ACK_BODY;
use paygate_domain::api_key::Mode;
use paygate_domain::customer::CustomerEmail;
use serde::Deserialize;
use utoipa::ToSchema;

use crate::error::{field_error, ApiError, ErrorCode};
use crate::extract::ApiJson;
use crate::middleware::auth::SecretCaller;
use crate::middleware::idempotency::IdempotencyHeader;
use crate::routes::payments::{detached, payment_renderer, respond_payment};
use crate::AppState;

/// Toss's virtual-account request.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct VirtualAccountRequest {
    /// Won, at least 1: the exact amount the deposit must be.
    #[schema(minimum = 1, example = 15000)]
    amount: i64,
    #[schema(
        example = "order-20261201-0001",
        min_length = 6,
        max_length = 64,
        pattern = "^[A-Za-z0-9._-]+$"
    )]
    order_id: String,
    #[schema(example = "토스 티셔츠 외 2건", min_length = 1, max_length = 100)]
    order_name: String,
    /// Who is expected to deposit (입금자명).
    #[schema(example = "박토스", min_length = 1, max_length = 100)]
    customer_name: String,
    /// The bank that issues the account: its two-digit code (`20`), or its name (`우리`, `WOORI`).
    #[schema(example = "20")]
    bank: String,
    /// Hours the account takes its deposit: 1 to 2160 (default 168, 7 days). Not with `dueDate`.
    #[schema(minimum = 1, maximum = 2160, example = 24)]
    valid_hours: Option<u32>,
    /// The deposit deadline instead: `2026-12-31T23:59:59` (Korea time) or with an offset, at most 90 days ahead.
    #[schema(example = "2026-12-08T23:59:59")]
    due_date: Option<String>,
    customer_email: Option<String>,
    /// Digits (hyphens allowed), 8 to 15.
    customer_mobile_phone: Option<String>,
    #[schema(minimum = 0)]
    tax_free_amount: Option<i64>,
    #[schema(minimum = 0)]
    vat: Option<i64>,
    #[schema(minimum = 0)]
    tax_exemption_amount: Option<i64>,
    /// Where paygate posts the payment's result (노티), over the merchant's setting.
    #[schema(max_length = 2048)]
    notification_url: Option<String>,
    metadata: Option<serde_json::Map<String, serde_json::Value>>,
    /// Escrow is not offered: `false` or absent.
    use_escrow: Option<bool>,
    /// A cash receipt (현금영수증), issued with the deposit and cancelled with refunds (docs/cash-receipts.md).
    cash_receipt: Option<CashReceiptRequest>,
}

/// Toss's `cashReceipt` of a virtual-account request.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CashReceiptRequest {
    /// `소득공제`, `지출증빙` or `미발행`.
    #[serde(rename = "type")]
    kind: String,
    registration_number: Option<String>,
}

impl TryFrom<VirtualAccountRequest> for VirtualAccountCommand {
    type Error = FieldError;

    fn try_from(body: VirtualAccountRequest) -> Result<VirtualAccountCommand, FieldError> {
        let amounts = command::amounts(body.amount, body.tax_free_amount, body.vat)?;
        if body.use_escrow == Some(true) {
            return Err(FieldError::invalid(
                "useEscrow",
                "escrow is not offered: send `false` or leave it out",
            ));
        }
        let cash_receipt = match &body.cash_receipt {
            Some(receipt) => CashReceiptAsked::parse(
                &receipt.kind,
                receipt.registration_number.as_deref(),
                "cashReceipt.type",
                "cashReceipt.registrationNumber",
            )?,
            None => None,
        };
        if body.customer_name.trim().is_empty() {
            return Err(FieldError::missing("customerName"));
        }
        Ok(VirtualAccountCommand {
            order_id: command::order_id(&body.order_id)?,
            order_name: command::order_name(&body.order_name)?,
            customer_name: CustomerName::parse(body.customer_name)?,
            customer_email: body
                .customer_email
                .filter(|e| !e.is_empty())
                .map(|email| CustomerEmail::parse(&email))
                .transpose()
                .map_err(|e| FieldError::invalid("customerEmail", e))?,
            bank: VirtualAccountCommand::bank(&body.bank)?,
            validity: VirtualAccountCommand::validity(body.valid_hours, body.due_date.as_deref())?,
            notification_url: NotificationUrl::parse(body.notification_url)?,
            extras: command::order_extras(
                &amounts,
                body.tax_exemption_amount,
                body.metadata,
                body.customer_mobile_phone,
            )?,
            amounts,
            cash_receipt,
        })
    }
}

#[utoipa::path(post, path = "/v1/virtual-accounts", operation_id = "issueVirtualAccount", tag = "Virtual accounts",
    summary = "Issue a virtual account (가상계좌) for a new payment",
    description = "Secret key. The bank issues an account for the exact amount; the payment is `WAITING_FOR_DEPOSIT` with its `virtualAccount` and `secret`. The deposit makes it `DONE` (`approvedAt` is the deposit's time); a deposit of another amount, or after `dueDate`, pays nothing and is returned to its depositor; past `dueDate` the payment is `EXPIRED`. Each change sends `PAYMENT_STATUS_CHANGED` and `DEPOSIT_CALLBACK`. See docs/bank-methods.md.",
    request_body(content = VirtualAccountRequest, example = json!({"amount": 15000, "orderId": "order-20261201-0001", "orderName": "토스 티셔츠 외 2건", "customerName": "박토스", "bank": "20", "validHours": 24})),
    responses((status = 200, description = "Issued: `WAITING_FOR_DEPOSIT`", body = PaymentBody)))]
pub async fn issue(
    state: axum::extract::State<AppState>,
    SecretCaller(caller): SecretCaller,
    key: IdempotencyHeader,
    ApiJson(body): ApiJson<VirtualAccountRequest>,
) -> Result<Response, ApiError> {
    let command = VirtualAccountCommand::try_from(body).map_err(|e| field_error(&e))?;
    let idempotency = key.with(payment_renderer(&state));
    let app = state.app.clone();
    let answer = detached(async move { app.issue_virtual_account(&caller, command, idempotency).await }).await;
    Ok(respond_payment(&state, answer))
}

/// A deposit notification from the bank of `mode`, signed (`Bank-Timestamp`, `Bank-Signature`). Acknowledged with
/// `{"result":"OK"}` once the deposit is recorded (or was before); any other answer makes the bank send it again.
#[utoipa::path(post, path = "/bank-notifications/{mode}", operation_id = "bankDepositNotification",
    tag = "Virtual accounts", security(()),
    summary = "A bank's deposit notification (입금통보), signed",
    description = "Called by the bank, not by merchants: the body and signature are those of BANK-PROTOCOL.md. The in-process sandbox bank calls it for `test`.",
    params(("mode" = String, Path, description = "`test` or `live`: whose bank is notifying")),
    request_body(content = String, content_type = "application/json",
        description = "`{notificationId, depositId, seq, accountNumber, bankCode, amount, currency, depositorName, depositedAt}`",
        example = json!({"notificationId": "ntf_dep_000000000001", "depositId": "dep_000000000001", "seq": 1, "accountNumber": "92000000000017", "bankCode": "20", "amount": 15000, "currency": "KRW", "depositorName": "박토스", "depositedAt": 1796308437108_i64})),
    responses(
        (status = 200, description = "Recorded (or recorded before): `{\"result\":\"OK\"}`"),
    ))]
pub async fn bank_notification(
    state: axum::extract::State<AppState>,
    Path(mode): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let mode =
        Mode::parse(&mode).ok_or_else(|| ApiError::new(ErrorCode::NotFound, "no such bank notification endpoint"))?;
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let outcome = state
        .app
        .bank_notification(mode, header(TIMESTAMP_HEADER), header(SIGNATURE_HEADER), &body)
        .await;
    match outcome {
        Ok(outcome) => {
            tracing::debug!(?outcome, "bank notification acknowledged");
            Ok((
                StatusCode::OK,
                [(axum::http::header::CONTENT_TYPE, "application/json")],
                ACK_BODY,
            )
                .into_response())
        }
        Err(error) => Err(notification_error(error)),
    }
}

fn notification_error(error: NotificationError) -> ApiError {
    match error {
        NotificationError::NoBank(_) => ApiError::new(ErrorCode::NotFound, "no bank is configured for this mode"),
        NotificationError::Unauthorized(refusal) => {
            tracing::warn!(%refusal, "bank notification refused");
            ApiError::new(ErrorCode::UnauthorizedKey, "the notification's signature is not valid")
        }
        NotificationError::Malformed(message) => ApiError::new(ErrorCode::MalformedJson, message),
        NotificationError::BadField(field) => ApiError::new(ErrorCode::InvalidFieldValue, field.to_string()),
        NotificationError::Deposit(DepositError::UnknownAccount) => ApiError::new(
            ErrorCode::NotFoundPayment,
            "no virtual account has this number at this bank",
        ),
        NotificationError::Deposit(DepositError::CurrencyMismatch) => ApiError::new(
            ErrorCode::InvalidFieldValue,
            "the deposit's currency is not the account's",
        ),
        NotificationError::Deposit(DepositError::Contended) => ApiError::new(
            ErrorCode::AlreadyProcessingRequest,
            "the deposit is being recorded; send it again",
        ),
        NotificationError::Deposit(DepositError::Internal(internal)) => ApiError::internal(&internal),
    }
}
