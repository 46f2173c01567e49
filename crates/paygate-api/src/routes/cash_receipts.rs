//! Cash receipts (현금영수증), Toss's `/v1/cash-receipts`: issue, cancel (whole or part) and the list by request
//! date, plus paygate's look-up by key. Bodies become checked commands here; the use cases are in
//! `paygate_app::cash_receipts`.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::Json;
use paygate_app::cash_receipts::wire::CashReceiptBody;
use paygate_app::cash_receipts::{CashReceiptError, IssueReceiptCommand, LIST_LIMIT_DEFAULT, LIST_LIMIT_MAX};
use paygate_app::payments::command::{self, FieldError, FieldReason};
use paygate_domain::cash_receipt::{
    CashReceipt, CustomerIdentity, IdentityError, IssueStatus, ReceiptError, ReceiptType,
};
use paygate_domain::id::CashReceiptKey;
use paygate_domain::money::Money;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::error::{field_error, ApiError, ErrorCode};
use crate::extract::{ApiJson, ApiQuery};

use crate::middleware::auth::SecretCaller;
use crate::middleware::idempotency::{json, renderer, respond, IdempotencyHeader, Rendered};
use crate::AppState;

/// Toss's cash receipt request.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IssueBody {
    /// Won, at least 1.
    #[schema(minimum = 1, example = 15000)]
    amount: i64,
    #[schema(
        example = "order-20261204-0001",
        min_length = 6,
        max_length = 64,
        pattern = "^[A-Za-z0-9._-]+$"
    )]
    order_id: String,
    #[schema(example = "토스 티셔츠 외 2건", min_length = 1, max_length = 100)]
    order_name: String,
    /// The buyer's phone number or cash-receipt card number (소득공제), or business registration number
    /// (지출증빙); digits, hyphens allowed. `0100001234` when the buyer gave none (자진발급, 소득공제 only).
    #[schema(example = "01012345678", max_length = 30)]
    customer_identity_number: Option<String>,
    /// The name `customerIdentityNumber` had before Toss's `2022-07-27` version.
    #[schema(max_length = 30)]
    registration_number: Option<String>,
    /// `소득공제` or `지출증빙`.
    #[serde(rename = "type")]
    #[schema(example = "소득공제")]
    kind: String,
    /// The tax-free part (0 by default).
    #[schema(minimum = 0)]
    tax_free_amount: Option<i64>,
}

/// A cancel: the whole receipt, or `amount` of it.
#[derive(Deserialize, ToSchema, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CancelBody {
    /// What to cancel; the rest of the receipt when absent.
    #[schema(minimum = 1)]
    amount: Option<i64>,
}

#[derive(Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// The day the receipts were requested, `YYYY-MM-DD` (KST). Or a period: `startDate` and `endDate`.
    #[param(example = "2026-12-04")]
    request_date: Option<String>,
    /// paygate's: from (inclusive), RFC 3339, `YYYY-MM-DDThh:mm:ss` (KST) or `YYYY-MM-DD`; with `endDate`, instead
    /// of `requestDate`.
    start_date: Option<String>,
    /// paygate's: until (exclusive; a bare date includes its whole day).
    end_date: Option<String>,
    /// paygate's: `IN_PROGRESS`, `COMPLETED` or `FAILED`.
    issue_status: Option<String>,
    /// paygate's: `amount` at least this.
    #[param(minimum = 0)]
    min_amount: Option<i64>,
    /// paygate's: `amount` at most this.
    #[param(minimum = 0)]
    max_amount: Option<i64>,
    /// The previous page's `lastCursor`.
    cursor: Option<u32>,
    /// At most 10,000; 100 by default.
    #[param(minimum = 1, maximum = 10000)]
    limit: Option<u32>,
}

/// One page of receipts.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = CashReceiptList)]
pub struct ListBody {
    has_next: bool,
    /// The next page's `cursor`.
    last_cursor: u32,
    data: Vec<CashReceiptBody>,
}

fn identity_error(error: IdentityError) -> FieldError {
    let reason = match error {
        IdentityError::WrongKindForType => FieldReason::RegistrationNumberType,
        IdentityError::Format | IdentityError::BusinessNumberCheck => FieldReason::Invalid,
    };
    FieldError::new("customerIdentityNumber", reason, error.to_string())
}

impl TryFrom<IssueBody> for IssueReceiptCommand {
    type Error = FieldError;

    fn try_from(body: IssueBody) -> Result<IssueReceiptCommand, FieldError> {
        let receipt_type = ReceiptType::from_korean(&body.kind)
            .ok_or_else(|| FieldError::invalid("type", "`type` is `소득공제` or `지출증빙`"))?;
        let number = body
            .customer_identity_number
            .or(body.registration_number)
            .filter(|n| !n.trim().is_empty())
            .ok_or_else(|| FieldError::missing("customerIdentityNumber"))?;
        let identity = CustomerIdentity::parse(&number, receipt_type).map_err(identity_error)?;
        let amounts = command::amounts(body.amount, body.tax_free_amount, None)?;
        Ok(IssueReceiptCommand {
            amount: amounts.total(),
            tax_free: amounts.tax_free(),
            order_id: command::order_id(&body.order_id)?,
            order_name: command::order_name(&body.order_name)?,
            receipt_type,
            identity,
        })
    }
}

pub fn receipt_error(error: &CashReceiptError) -> ApiError {
    match error {
        CashReceiptError::Field(field) => field_error(field),
        CashReceiptError::NotFound => ApiError::new(ErrorCode::NotFoundCashReceipt, "no such cash receipt"),
        CashReceiptError::DuplicateOrder => ApiError::new(
            ErrorCode::DuplicatedCashReceipt,
            "the order already has a cash receipt: cancel it to issue another",
        )
        .with_param("orderId"),
        CashReceiptError::NoBusinessProfile => ApiError::new(ErrorCode::InvalidBusinessNumber, error.to_string()),
        CashReceiptError::NoTaxAuthority(_) => ApiError::new(ErrorCode::InvalidCashReceiptInfo, error.to_string()),
        CashReceiptError::Rule(ReceiptError::ExceedsRemaining { left }) => ApiError::new(
            ErrorCode::NotCancelableAmount,
            format!(
                "the cancel exceeds what is left of the receipt ({})",
                left.amount_minor()
            ),
        )
        .with_param("amount"),
        CashReceiptError::Rule(ReceiptError::NotCancelable) => ApiError::new(
            ErrorCode::NotCancelableAmount,
            "nothing is left to cancel of this receipt, or it is a cancel, or the tax authority refused it",
        ),
        CashReceiptError::Rule(ReceiptError::InvalidAmount) => ApiError::new(
            ErrorCode::InvalidFieldValue,
            "the amount must be positive and the tax-free part at most the amount",
        )
        .with_param("amount"),
        CashReceiptError::Rule(other) => ApiError::internal(other),
        CashReceiptError::Concurrent => ApiError::new(ErrorCode::AlreadyProcessingRequest, error.to_string()),
        CashReceiptError::Forbidden => ApiError::new(ErrorCode::ClientKeyNotAllowed, error.to_string()),
        CashReceiptError::Idempotency(refusal) => crate::routes::payments::idempotency_error(*refusal),
        CashReceiptError::Internal(internal) => ApiError::internal(internal),
    }
}

fn render(
    state: &AppState,
) -> impl Fn(&Result<CashReceipt, CashReceiptError>) -> Rendered + Clone + Send + Sync + 'static {
    let app = state.app.clone();
    move |result| match result {
        Ok(receipt) => json(StatusCode::OK, &CashReceiptBody::new(&app, receipt)),
        Err(error) => Err(receipt_error(error)),
    }
}

fn receipt_key(text: &str) -> Result<CashReceiptKey, ApiError> {
    CashReceiptKey::parse(text).map_err(|_| ApiError::new(ErrorCode::NotFoundCashReceipt, "no such cash receipt"))
}

#[utoipa::path(post, path = "/v1/cash-receipts", operation_id = "issueCashReceipt", tag = "Cash receipts",
    summary = "Issue a cash receipt (현금영수증 발급)",
    description = "Secret key. The receipt is `IN_PROGRESS` until the tax authority registers it (`COMPLETED`, with its `issueNumber`) or refuses it (`FAILED`, with `failure`); each change sends `CASH_RECEIPT_STATUS_CHANGED`. One issue per `orderId`. The merchant's business registration number must be on file (`paygate merchant business`). See docs/cash-receipts.md.",
    request_body(content = IssueBody, example = json!({"amount": 15000, "orderId": "order-20261204-0001", "orderName": "토스 티셔츠 외 2건", "customerIdentityNumber": "01012345678", "type": "소득공제"})),
    responses((status = 200, description = "Requested: `IN_PROGRESS`", body = CashReceiptBody)))]
pub async fn issue(
    State(state): State<AppState>,
    SecretCaller(caller): SecretCaller,
    key: IdempotencyHeader,
    ApiJson(body): ApiJson<IssueBody>,
) -> Response {
    let render = render(&state);
    let command = match IssueReceiptCommand::try_from(body) {
        Ok(command) => command,
        Err(error) => return respond::<CashReceipt, CashReceiptError>(Err(error.into()), render),
    };
    let answer = state
        .app
        .issue_cash_receipt(&caller, command, key.with(renderer(render.clone())))
        .await;
    respond(answer, render)
}

#[utoipa::path(post, path = "/v1/cash-receipts/{receiptKey}/cancel", operation_id = "cancelCashReceipt", tag = "Cash receipts",
    summary = "Cancel a cash receipt, whole or in part (현금영수증 취소)",
    description = "Answers the cancel's own record (`transactionType: CANCEL`, its own `receiptKey`, `originalReceiptKey` naming the issue), `IN_PROGRESS` until the tax authority answers; the cancel is reported once the issue is `COMPLETED`. Without `amount`, the rest of the receipt is cancelled.",
    params(("receiptKey" = String, Path, description = "The issue's `receiptKey`")),
    request_body(content = CancelBody, example = json!({"amount": 5000})),
    responses((status = 200, description = "The cancel, requested", body = CashReceiptBody)))]
pub async fn cancel(
    State(state): State<AppState>,
    SecretCaller(caller): SecretCaller,
    Path(receipt): Path<String>,
    key: IdempotencyHeader,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let render = render(&state);
    let receipt = match receipt_key(&receipt) {
        Ok(receipt) => receipt,
        Err(_) => {
            return Ok(respond::<CashReceipt, CashReceiptError>(
                Err(CashReceiptError::NotFound),
                render,
            ))
        }
    };
    // The body is optional: none cancels the rest of the receipt.
    let body: CancelBody = if body.iter().all(u8::is_ascii_whitespace) {
        CancelBody::default()
    } else {
        crate::extract::parse_json(&body)?
    };
    let amount = match body.amount {
        None => None,
        Some(amount) if amount > 0 => Some(Money::krw(amount)),
        Some(_) => {
            let error = FieldError::invalid("amount", "`amount` must be at least 1");
            return Ok(respond::<CashReceipt, CashReceiptError>(Err(error.into()), render));
        }
    };
    let answer = state
        .app
        .cancel_cash_receipt(&caller, receipt, amount, key.with(renderer(render.clone())))
        .await;
    Ok(respond(answer, render))
}

#[utoipa::path(get, path = "/v1/cash-receipts", operation_id = "listCashReceipts", tag = "Cash receipts",
    summary = "Cash receipts requested on a day (현금영수증 조회)",
    description = "Issues and cancels requested on `requestDate` (KST), oldest first, `limit` per page; pass `lastCursor` as the next `cursor` while `hasNext`.",
    params(ListQuery),
    responses((status = 200, description = "One page", body = ListBody)))]
pub async fn list(
    State(state): State<AppState>,
    SecretCaller(caller): SecretCaller,
    ApiQuery(query): ApiQuery<ListQuery>,
) -> Result<Json<ListBody>, ApiError> {
    let bad = |param: &'static str, message: &str| ApiError::new(ErrorCode::InvalidDate, message).with_param(param);
    let period = match (&query.request_date, &query.start_date, &query.end_date) {
        (Some(day), None, None) => {
            let from = (day.len() == 10)
                .then(|| crate::wire::parse_instant(day, false))
                .flatten()
                .ok_or_else(|| bad("requestDate", "`requestDate` must be YYYY-MM-DD (KST)"))?;
            (
                from,
                from.saturating_add(paygate_domain::time::DurationMs::from_millis(86_400_000)),
            )
        }
        (None, Some(start), Some(end)) => {
            let from = crate::wire::parse_instant(start, false)
                .ok_or_else(|| bad("startDate", "`startDate` must be RFC 3339 or YYYY-MM-DD (KST)"))?;
            let to = crate::wire::parse_instant(end, true)
                .ok_or_else(|| bad("endDate", "`endDate` must be RFC 3339 or YYYY-MM-DD (KST)"))?;
            if to <= from {
                return Err(bad("endDate", "`endDate` must be after `startDate`"));
            }
            (from, to)
        }
        _ => {
            return Err(ApiError::new(
                ErrorCode::MissingField,
                "send `requestDate`, or `startDate` and `endDate` (not both)",
            )
            .with_param("requestDate"))
        }
    };
    let status = match query.issue_status.as_deref() {
        None => None,
        Some(text) => Some(IssueStatus::parse(text).ok_or_else(|| {
            ApiError::new(
                ErrorCode::InvalidFieldValue,
                "`issueStatus` is IN_PROGRESS, COMPLETED or FAILED",
            )
            .with_param("issueStatus")
        })?),
    };
    let filter = paygate_store::ReceiptFilter {
        from: period.0,
        to: period.1,
        status,
        min_amount: query.min_amount,
        max_amount: query.max_amount,
    };
    let limit = query.limit.unwrap_or(LIST_LIMIT_DEFAULT);
    if limit == 0 || limit > LIST_LIMIT_MAX {
        return Err(ApiError::new(
            ErrorCode::ExceedMaxQueryLimit,
            format!("`limit` is 1 to {LIST_LIMIT_MAX}"),
        )
        .with_param("limit"));
    }
    let page = state
        .app
        .list_cash_receipts(&caller, &filter, query.cursor.unwrap_or(0), limit)
        .await
        .map_err(|e| receipt_error(&e))?;
    Ok(Json(ListBody {
        has_next: page.has_next,
        last_cursor: page.last_cursor,
        data: page
            .receipts
            .iter()
            .map(|r| CashReceiptBody::new(&state.app, r))
            .collect(),
    }))
}

#[utoipa::path(get, path = "/v1/cash-receipts/{receiptKey}", operation_id = "getCashReceipt", tag = "Cash receipts",
    summary = "One cash receipt request by its key (paygate's; Toss has no such call)",
    params(("receiptKey" = String, Path, description = "An issue's or a cancel's `receiptKey`")),
    responses((status = 200, description = "The receipt", body = CashReceiptBody)))]
pub async fn get(
    State(state): State<AppState>,
    SecretCaller(caller): SecretCaller,
    Path(receipt): Path<String>,
) -> Result<Json<CashReceiptBody>, ApiError> {
    let key = receipt_key(&receipt)?;
    let receipt = state
        .app
        .get_cash_receipt(&caller, key)
        .await
        .map_err(|e| receipt_error(&e))?;
    Ok(Json(CashReceiptBody::new(&state.app, &receipt)))
}
