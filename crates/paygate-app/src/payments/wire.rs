//! The JSON shape of a payment, shared by API responses and webhook events (so a webhook's `data` is exactly what
//! `GET /v1/payments/{paymentKey}` returns).

use paygate_domain::payment::TransactionKind;
use serde::Serialize;

use super::PaymentView;
/// `2026-11-23T16:04:52.123+09:00`, always three fractional digits.
pub use crate::instant::rfc3339;
use crate::App;

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PaymentBody {
    m_id: String,
    payment_key: String,
    order_id: String,
    order_name: String,
    status: &'static str,
    /// The acquirer's answer is not known yet; the final status follows.
    outcome_unknown: bool,
    method: &'static str,
    flow: &'static str,
    currency: &'static str,
    total_amount: i64,
    balance_amount: i64,
    supplied_amount: i64,
    vat: i64,
    tax_free_amount: i64,
    requested_at: String,
    approved_at: Option<String>,
    card: Option<CardBody>,
    cancels: Vec<CancelBodyOut>,
    checkout: Option<UrlBody>,
    /// The public receipt (매출전표), once approved.
    receipt: Option<UrlBody>,
    failure: Option<FailureBody>,
    customer_name: Option<String>,
    customer_email: Option<String>,
    /// Increases with every change, so a receiver can order what it sees.
    version: i64,
    mode: &'static str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct CardBody {
    number: String,
    issuer_code: Option<String>,
    acquirer_code: Option<String>,
    approve_no: Option<String>,
    installment_plan_months: u8,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct CancelBodyOut {
    transaction_key: String,
    cancel_amount: i64,
    cancel_reason: Option<String>,
    canceled_at: Option<String>,
    status: &'static str,
}

#[derive(Serialize)]
struct UrlBody {
    url: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct FailureBody {
    code: String,
    message: String,
    acquirer_code: Option<String>,
}

impl PaymentBody {
    pub fn new(app: &App, view: &PaymentView) -> PaymentBody {
        let p = &view.payment;
        let card = p.card.as_ref().map(|card| CardBody {
            number: card.masked.clone(),
            issuer_code: p.approval.as_ref().map(|a| a.issuer_code.clone()),
            acquirer_code: p.route.as_ref().map(|r| r.acquirer.clone()),
            approve_no: p.approval.as_ref().map(|a| a.approval_number.clone()),
            installment_plan_months: p.installment.months(),
        });
        let cancels = view
            .transactions
            .iter()
            .filter(|t| t.kind == TransactionKind::Cancel)
            .map(|t| CancelBodyOut {
                transaction_key: t.key.to_string(),
                cancel_amount: t.amount.amount_minor(),
                cancel_reason: t.reason.clone(),
                canceled_at: t.completed_at.map(rfc3339),
                status: t.status.as_str(),
            })
            .collect();
        let checkout = matches!(p.flow, paygate_domain::payment::Flow::Checkout).then(|| UrlBody {
            url: app.checkout_url(p),
        });
        PaymentBody {
            m_id: p.merchant_id.to_string(),
            payment_key: p.id.to_string(),
            order_id: p.order_id.as_str().to_owned(),
            order_name: p.order_name.as_str().to_owned(),
            status: p.status.as_str(),
            outcome_unknown: view.approval_unknown(),
            method: "CARD",
            flow: p.flow.as_str(),
            currency: p.total().currency().code(),
            total_amount: p.total().amount_minor(),
            balance_amount: p.balance.amount_minor(),
            supplied_amount: p.amounts.supplied().amount_minor(),
            vat: p.amounts.vat().amount_minor(),
            tax_free_amount: p.amounts.tax_free().amount_minor(),
            requested_at: rfc3339(p.requested_at),
            approved_at: p.approval.as_ref().map(|a| rfc3339(a.approved_at)),
            card,
            cancels,
            checkout,
            receipt: p.approval.as_ref().map(|_| UrlBody {
                url: app.receipt_url(p.id),
            }),
            failure: p.failure.as_ref().map(|f| FailureBody {
                code: f.code.clone(),
                message: f.message.clone(),
                acquirer_code: f.acquirer_code.clone(),
            }),
            customer_name: p.customer_name.clone(),
            customer_email: p.customer_email.clone(),
            version: p.version,
            mode: p.mode.as_str(),
        }
    }
}
