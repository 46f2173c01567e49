//! The JSON shape of a cash receipt: Toss Payments' `CashReceipt` object (`2022-11-16`), shared by the API's
//! answers and the `CASH_RECEIPT_STATUS_CHANGED` webhook's `data`, plus paygate's extras under names Toss does
//! not use (`paymentKey`, `originalReceiptKey`, `cancelableAmount`, `mode`).

use paygate_domain::cash_receipt::{CashReceipt, IssueStatus, ReceiptTransaction, ReceiptType};
use serde::Serialize;
use utoipa::ToSchema;

use crate::instant::rfc3339;
use crate::{schema, App};

/// A cash receipt request (현금영수증): an issue (`CONFIRM`) or one cancel (`CANCEL`).
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = CashReceipt)]
pub struct CashReceiptBody {
    /// The request's key; a cancel has its own.
    #[schema(example = "rcp_01M8XAPQGS22SKF15R5Z2N2D4C")]
    receipt_key: String,
    /// The tax authority's number once `COMPLETED`; an empty string until then.
    #[schema(example = "000000001")]
    issue_number: String,
    #[schema(schema_with = issue_status)]
    issue_status: &'static str,
    #[schema(example = 15000)]
    amount: i64,
    tax_free_amount: i64,
    #[schema(example = "order-20261204-0001")]
    order_id: String,
    #[schema(example = "토스 티셔츠 외 2건")]
    order_name: String,
    /// `소득공제` or `지출증빙`.
    #[serde(rename = "type")]
    #[schema(schema_with = receipt_type)]
    kind: &'static str,
    #[schema(schema_with = transaction_type)]
    transaction_type: &'static str,
    /// The issuing merchant's business registration number.
    #[schema(example = "1208147521")]
    business_number: String,
    /// The buyer's identifier, all but its last four digits masked.
    #[schema(example = "*******5678")]
    customer_identity_number: String,
    /// Why the authority refused it (`FAILED`); `null` otherwise.
    failure: Option<FailureBody>,
    #[schema(schema_with = schema::instant)]
    requested_at: String,
    /// The receipt's page.
    receipt_url: String,
    // paygate's own fields.
    /// The payment it was issued with (a virtual account or a transfer); `null` for a receipt issued on its own.
    payment_key: Option<String>,
    /// A cancel's issue; `null` for an issue.
    original_receipt_key: Option<String>,
    /// What is left to cancel of an issue (`0` for a cancel).
    cancelable_amount: i64,
    #[schema(schema_with = schema::mode)]
    mode: &'static str,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = CashReceiptFailure)]
pub struct FailureBody {
    #[schema(example = "NTS_ERROR")]
    code: String,
    #[schema(example = "[TS1] 등록되지 않은 현금영수증 식별번호입니다.")]
    message: String,
}

fn issue_status() -> utoipa::openapi::Object {
    schema::string_enum(IssueStatus::ALL.map(IssueStatus::as_str))
}

fn receipt_type() -> utoipa::openapi::Object {
    schema::string_enum(ReceiptType::ALL.map(ReceiptType::korean))
}

fn transaction_type() -> utoipa::openapi::Object {
    schema::string_enum([
        ReceiptTransaction::Confirm.as_str(),
        ReceiptTransaction::Cancel.as_str(),
    ])
}

impl CashReceiptBody {
    pub fn new(app: &App, r: &CashReceipt) -> CashReceiptBody {
        CashReceiptBody {
            receipt_key: r.key.to_string(),
            issue_number: r.issue_number.clone().unwrap_or_default(),
            issue_status: r.status.as_str(),
            amount: r.amount.amount_minor(),
            tax_free_amount: r.tax_free.amount_minor(),
            order_id: r.order_id.clone(),
            order_name: r.order_name.clone(),
            kind: r.receipt_type.korean(),
            transaction_type: r.transaction.as_str(),
            business_number: r.business_number.clone(),
            customer_identity_number: r.identity.masked(),
            failure: r.failure_code.as_ref().map(|code| FailureBody {
                code: code.clone(),
                message: r.failure_message.clone().unwrap_or_default(),
            }),
            requested_at: rfc3339(r.requested_at),
            receipt_url: app.cash_receipt_url(r.key),
            payment_key: r.payment_id.map(|p| p.to_string()),
            original_receipt_key: r.original.map(|k| k.to_string()),
            cancelable_amount: match r.transaction {
                ReceiptTransaction::Confirm => r.remaining().map(|m| m.amount_minor()).unwrap_or(0),
                ReceiptTransaction::Cancel => 0,
            },
            mode: r.mode.as_str(),
        }
    }
}

/// A payment's `cashReceipt`: its issue, as Toss shows it inside the Payment.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = PaymentCashReceipt)]
pub struct PaymentReceiptBody {
    #[serde(rename = "type")]
    #[schema(schema_with = receipt_type)]
    kind: &'static str,
    receipt_key: String,
    issue_number: String,
    receipt_url: String,
    amount: i64,
    tax_free_amount: i64,
}

impl PaymentReceiptBody {
    pub fn new(app: &App, r: &CashReceipt) -> PaymentReceiptBody {
        PaymentReceiptBody {
            kind: r.receipt_type.korean(),
            receipt_key: r.key.to_string(),
            issue_number: r.issue_number.clone().unwrap_or_default(),
            receipt_url: app.cash_receipt_url(r.key),
            amount: r.amount.amount_minor(),
            tax_free_amount: r.tax_free.amount_minor(),
        }
    }
}
