//! The JSON shape of a payment, shared by API responses and webhook events (so a webhook's `data` is exactly what
//! `GET /v1/payments/{paymentKey}` returns).

use paygate_domain::payment::{PaymentStatus, TransactionKind, TransactionStatus};
use serde::Serialize;

use super::PaymentView;
/// `2026-11-23T16:04:52.123+09:00`, always three fractional digits.
pub use crate::instant::rfc3339;
use crate::App;

/// The API version paygate's objects follow: Toss Payments' v1 objects as of this version (`version`).
pub const TOSS_API_VERSION: &str = "2022-11-16";

/// A payment as Toss Payments v1 shapes it (field for field: docs/toss-compat.md), plus paygate's extras under
/// names Toss does not use (`outcomeUnknown`, `flow`, `mode`, `revision`, `customerName`, `customerEmail`,
/// `customerMobilePhone`, `failure.acquirerCode`).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PaymentBody {
    m_id: String,
    /// The newest approval or cancel (not a failed one); `null` before the approval.
    last_transaction_key: Option<String>,
    payment_key: String,
    order_id: String,
    order_name: String,
    tax_exemption_amount: i64,
    status: &'static str,
    requested_at: String,
    approved_at: Option<String>,
    use_escrow: bool,
    culture_expense: bool,
    card: Option<CardBody>,
    // Payment methods paygate does not offer (yet): always `null`.
    virtual_account: Option<Never>,
    transfer: Option<Never>,
    mobile_phone: Option<Never>,
    gift_certificate: Option<Never>,
    cash_receipt: Option<Never>,
    cash_receipts: Option<Never>,
    discount: Option<Never>,
    /// `null` until the first cancel, as Toss writes it.
    cancels: Option<Vec<CancelBodyOut>>,
    /// Toss's key for verifying virtual-account deposit callbacks: `null` for cards.
    secret: Option<Never>,
    #[serde(rename = "type")]
    kind: &'static str,
    easy_pay: Option<Never>,
    country: &'static str,
    failure: Option<FailureBody>,
    is_partial_cancelable: bool,
    /// The public receipt (매출전표), once approved.
    receipt: Option<UrlBody>,
    checkout: Option<UrlBody>,
    currency: &'static str,
    total_amount: i64,
    balance_amount: i64,
    supplied_amount: i64,
    vat: i64,
    tax_free_amount: i64,
    method: &'static str,
    /// Toss's API version string.
    version: &'static str,
    metadata: Option<serde_json::Value>,
    // paygate's own fields.
    /// The acquirer's answer is not known yet; the final status follows.
    outcome_unknown: bool,
    flow: &'static str,
    mode: &'static str,
    /// Increases with every change of the payment, so a receiver can order what it sees.
    revision: i64,
    customer_name: Option<String>,
    customer_email: Option<String>,
    customer_mobile_phone: Option<String>,
}

/// The type of a field that is always `null`.
#[derive(Serialize)]
enum Never {}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct CardBody {
    /// What was charged to the card: the total.
    amount: i64,
    /// The issuer's (발급사) card-company code.
    issuer_code: String,
    /// The acquirer's (매입사) card-company code.
    acquirer_code: Option<String>,
    /// Masked: first six and last four digits.
    number: String,
    installment_plan_months: u8,
    /// 승인번호.
    approve_no: String,
    use_card_point: bool,
    card_type: &'static str,
    owner_type: &'static str,
    /// 매입 status: `READY` until paygate's settlement acquires it (a later capability), `CANCELED` once fully
    /// cancelled.
    acquire_status: &'static str,
    is_interest_free: bool,
    interest_payer: Option<&'static str>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct CancelBodyOut {
    transaction_key: String,
    cancel_reason: Option<String>,
    tax_exemption_amount: i64,
    /// When the acquirer confirmed it; while the answer is not known, or if it refused, when it was asked.
    canceled_at: String,
    easy_pay_discount_amount: i64,
    receipt_key: Option<String>,
    /// `DONE`; `IN_PROGRESS` while the acquirer's answer is not known (the request answered `202`); `ABORTED`
    /// when the acquirer did not apply it (nothing was refunded and the amount is back in the balance).
    cancel_status: &'static str,
    cancel_request_id: Option<String>,
    cancel_amount: i64,
    tax_free_amount: i64,
    /// What was left to cancel after this cancel (aborted cancels do not count).
    refundable_amount: i64,
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
        let approval = p.approval.as_ref();
        // As Toss writes it, a payment has a card object once the acquirer approved (before that, the issuer, the
        // approval number and the card's type are not known).
        let card = p.card.as_ref().zip(approval).map(|(card, approval)| CardBody {
            amount: p.total().amount_minor(),
            issuer_code: approval.issuer_code.clone(),
            acquirer_code: approval.acquirer_code.clone(),
            number: card.masked.clone(),
            installment_plan_months: p.installment.months(),
            approve_no: approval.approval_number.clone(),
            use_card_point: false,
            card_type: approval.card_type.korean(),
            owner_type: approval.owner_type.korean(),
            acquire_status: if p.status == PaymentStatus::Canceled {
                "CANCELED"
            } else {
                "READY"
            },
            is_interest_free: p.extras.free_installment,
            interest_payer: p.extras.free_installment.then_some("MERCHANT"),
        });
        let mut refundable = p.total().amount_minor();
        let cancels: Vec<CancelBodyOut> = view
            .transactions
            .iter()
            .filter(|t| t.kind == TransactionKind::Cancel)
            .map(|t| {
                if t.status != TransactionStatus::Failed {
                    refundable = refundable.saturating_sub(t.amount.amount_minor());
                }
                CancelBodyOut {
                    transaction_key: t.key.to_string(),
                    cancel_reason: t.reason.clone(),
                    tax_exemption_amount: 0,
                    canceled_at: rfc3339(t.completed_at.unwrap_or(t.created_at)),
                    easy_pay_discount_amount: 0,
                    receipt_key: None,
                    cancel_status: match t.status {
                        TransactionStatus::Pending => "IN_PROGRESS",
                        TransactionStatus::Done => "DONE",
                        TransactionStatus::Failed => "ABORTED",
                    },
                    cancel_request_id: None,
                    cancel_amount: t.amount.amount_minor(),
                    tax_free_amount: t.tax_free.amount_minor(),
                    refundable_amount: refundable,
                }
            })
            .collect();
        let last_transaction_key = view
            .transactions
            .iter()
            .rev()
            .find(|t| t.status != TransactionStatus::Failed)
            .map(|t| t.key.to_string());
        let checkout = matches!(p.flow, paygate_domain::payment::Flow::Checkout).then(|| UrlBody {
            url: app.checkout_url(p),
        });
        // Like Toss, the amounts' parts shrink with the cancels (pending ones included, as `balanceAmount` does):
        // they describe what is left.
        let live_cancels = view
            .transactions
            .iter()
            .filter(|t| t.kind == TransactionKind::Cancel && t.status != TransactionStatus::Failed)
            .map(|t| (t.amount, t.tax_free));
        let left = p.amounts.after_cancels(live_cancels).ok();
        let part = |pick: fn(&paygate_domain::vat::Remaining) -> i64, whole: i64| left.as_ref().map_or(whole, pick);
        let metadata = p
            .extras
            .metadata
            .as_ref()
            .and_then(|m| serde_json::from_str(m.as_json()).ok());
        PaymentBody {
            m_id: p.merchant_id.to_string(),
            last_transaction_key,
            payment_key: p.id.to_string(),
            order_id: p.order_id.as_str().to_owned(),
            order_name: p.order_name.as_str().to_owned(),
            tax_exemption_amount: if p.balance.is_zero() && p.approval.is_some() {
                0
            } else {
                p.extras.tax_exemption_minor
            },
            status: p.status.as_str(),
            requested_at: rfc3339(p.requested_at),
            approved_at: approval.map(|a| rfc3339(a.approved_at)),
            use_escrow: false,
            culture_expense: false,
            card,
            virtual_account: None,
            transfer: None,
            mobile_phone: None,
            gift_certificate: None,
            cash_receipt: None,
            cash_receipts: None,
            discount: None,
            cancels: (!cancels.is_empty()).then_some(cancels),
            secret: None,
            kind: if p.billing.is_some() { "BILLING" } else { "NORMAL" },
            easy_pay: None,
            country: "KR",
            failure: p.failure.as_ref().map(|f| FailureBody {
                code: f.code.clone(),
                message: f.message.clone(),
                acquirer_code: f.acquirer_code.clone(),
            }),
            is_partial_cancelable: true,
            receipt: approval.map(|_| UrlBody {
                url: app.receipt_url(p.id),
            }),
            checkout,
            currency: p.total().currency().code(),
            total_amount: p.total().amount_minor(),
            balance_amount: p.balance.amount_minor(),
            supplied_amount: part(|r| r.supplied.amount_minor(), p.amounts.supplied().amount_minor()),
            vat: part(|r| r.vat.amount_minor(), p.amounts.vat().amount_minor()),
            tax_free_amount: part(|r| r.tax_free.amount_minor(), p.amounts.tax_free().amount_minor()),
            method: "카드",
            version: TOSS_API_VERSION,
            metadata,
            outcome_unknown: view.approval_unknown(),
            flow: p.flow.as_str(),
            mode: p.mode.as_str(),
            revision: p.version,
            customer_name: p.customer_name.clone(),
            customer_email: p.customer_email.clone(),
            customer_mobile_phone: p.extras.customer_mobile_phone.clone(),
        }
    }
}
