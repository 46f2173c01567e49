//! The JSON shape of a payment, shared by API responses and webhook events (so a webhook's `data` is exactly what
//! `GET /v1/payments/{paymentKey}` returns).

use paygate_domain::payment::{PaymentMethod, PaymentStatus, TransactionKind, TransactionStatus};
use serde::Serialize;
use utoipa::ToSchema;

use super::PaymentView;
/// `2026-11-23T16:04:52.123+09:00`, always three fractional digits.
pub use crate::instant::rfc3339;
use crate::{schema, App};

/// The API version paygate's objects follow: Toss Payments' v1 objects as of this version (`version`).
pub const TOSS_API_VERSION: &str = "2022-11-16";

/// A payment as Toss Payments v1 shapes it (field for field: docs/toss-compat.md), plus paygate's extras under
/// names Toss does not use (`outcomeUnknown`, `flow`, `mode`, `revision`, `customerName`, `customerEmail`,
/// `customerMobilePhone`, `failure.acquirerCode`). Every field is always present; `null` where it does not apply.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = Payment)]
pub struct PaymentBody {
    /// The merchant's ID (상점아이디).
    #[schema(example = "mid_01M8XAPDMNSGF2TRAAG3F8PKT7")]
    m_id: String,
    /// The newest approval or cancel (not a failed one); `null` before the approval.
    #[schema(example = "txn_01M8XAPQGWWP0R3K8550PR5WFC")]
    last_transaction_key: Option<String>,
    /// The payment's key: every later call names the payment by it.
    #[schema(example = "pay_01M8XAPQGS22SKF15R5Z2N2D4C")]
    payment_key: String,
    #[schema(example = "order-20261123-0001")]
    order_id: String,
    #[schema(example = "토스 티셔츠 외 2건")]
    order_name: String,
    /// The tax-exempt part (면세가 아닌 과세 제외 금액), as the merchant declared it.
    tax_exemption_amount: i64,
    #[schema(schema_with = payment_status)]
    status: &'static str,
    #[schema(schema_with = schema::instant)]
    requested_at: String,
    #[schema(schema_with = schema::nullable_instant)]
    approved_at: Option<String>,
    use_escrow: bool,
    culture_expense: bool,
    /// The card, once the acquirer approved; `null` before.
    card: Option<CardBody>,
    /// The virtual account (가상계좌) that pays the payment; `null` for other methods.
    virtual_account: Option<VirtualAccountBody>,
    /// The account transfer (계좌이체) that paid the payment; `null` for other methods and before the debit.
    transfer: Option<TransferBody>,
    // Payment methods paygate does not offer (yet): always `null`.
    #[schema(schema_with = schema::always_null)]
    mobile_phone: Option<Never>,
    #[schema(schema_with = schema::always_null)]
    gift_certificate: Option<Never>,
    /// The cash receipt issued with a bank payment (현금영수증); `null` when none was.
    cash_receipt: Option<crate::cash_receipts::wire::PaymentReceiptBody>,
    /// Every cash receipt request of the payment (its issue and each cancel); `null` when none was issued.
    cash_receipts: Option<Vec<crate::cash_receipts::wire::CashReceiptBody>>,
    #[schema(schema_with = schema::always_null)]
    discount: Option<Never>,
    /// `null` until the first cancel, as Toss writes it.
    cancels: Option<Vec<CancelBodyOut>>,
    /// A virtual account's key: `DEPOSIT_CALLBACK` webhooks carry the same value, which proves them genuine.
    /// `null` for other methods.
    #[schema(example = "ps_3f1c2d9e8b7a6f5e4d3c2b1a0f9e8d7c")]
    secret: Option<String>,
    /// `NORMAL`, or `BILLING` for a charge of a billing key.
    #[serde(rename = "type")]
    #[schema(schema_with = payment_type)]
    kind: &'static str,
    #[schema(schema_with = schema::always_null)]
    easy_pay: Option<Never>,
    #[schema(example = "KR")]
    country: &'static str,
    /// Why the payment failed (`ABORTED`); `null` otherwise.
    failure: Option<FailureBody>,
    is_partial_cancelable: bool,
    /// The public receipt (매출전표), once approved.
    receipt: Option<UrlBody>,
    /// The hosted checkout page (인증결제), for payments created with `POST /v1/payments`.
    checkout: Option<UrlBody>,
    #[schema(schema_with = schema::currency)]
    currency: &'static str,
    /// The amount paid, in the currency's minor unit (won).
    #[schema(example = 15000)]
    total_amount: i64,
    /// What is left to cancel.
    #[schema(example = 15000)]
    balance_amount: i64,
    /// 공급가액 of what is left.
    #[schema(example = 13636)]
    supplied_amount: i64,
    /// 부가세 of what is left.
    #[schema(example = 1364)]
    vat: i64,
    /// 면세 amount of what is left.
    tax_free_amount: i64,
    #[schema(schema_with = schema::method)]
    method: &'static str,
    /// Toss's API version string.
    #[schema(example = "2022-11-16")]
    version: &'static str,
    /// The merchant's own key-value pairs, as sent; `null` if none.
    #[schema(value_type = Option<Object>)]
    metadata: Option<serde_json::Value>,
    // paygate's own fields.
    /// The acquirer's answer is not known yet; the final status follows.
    outcome_unknown: bool,
    /// `KEY_IN` (the merchant sent the card) or `CHECKOUT` (the buyer paid on paygate's page).
    #[schema(schema_with = flow)]
    flow: &'static str,
    #[schema(schema_with = schema::mode)]
    mode: &'static str,
    /// Increases with every change of the payment, so a receiver can order what it sees.
    revision: i64,
    customer_name: Option<String>,
    customer_email: Option<String>,
    customer_mobile_phone: Option<String>,
}

fn payment_status() -> utoipa::openapi::Object {
    schema::string_enum(PaymentStatus::ALL.map(|s| s.as_str()))
}

fn payment_type() -> utoipa::openapi::Object {
    schema::string_enum(["NORMAL", "BILLING"])
}

fn flow() -> utoipa::openapi::Object {
    schema::string_enum(paygate_domain::payment::Flow::ALL.map(|f| f.as_str()))
}

/// A transfer, as Toss's `transfer` object.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = Transfer)]
pub struct TransferBody {
    /// The two-character code of the buyer's bank (docs/toss-compat.md, the bank table).
    #[schema(example = "06")]
    bank_code: String,
    /// `INCOMPLETED` until the payment is settled to the merchant, then `COMPLETED`.
    #[schema(schema_with = settlement_status)]
    settlement_status: &'static str,
}

/// The type of a field that is always `null`.
#[derive(Serialize)]
enum Never {}

/// A payment's card, as Toss's `card` object.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = PaymentCard)]
struct CardBody {
    /// What was charged to the card: the total.
    amount: i64,
    /// The issuer's (발급사) card-company code.
    #[schema(example = "11")]
    issuer_code: String,
    /// The acquirer's (매입사) card-company code.
    #[schema(example = "11")]
    acquirer_code: Option<String>,
    /// Masked: first six and last four digits.
    #[schema(example = "433000******0003")]
    number: String,
    installment_plan_months: u8,
    /// 승인번호.
    #[schema(example = "00000000")]
    approve_no: String,
    use_card_point: bool,
    #[schema(schema_with = schema::card_type)]
    card_type: &'static str,
    #[schema(schema_with = schema::owner_type)]
    owner_type: &'static str,
    /// 매입 status: `READY` until paygate's settlement acquires it (a later capability), `CANCELED` once fully
    /// cancelled.
    #[schema(schema_with = acquire_status)]
    acquire_status: &'static str,
    is_interest_free: bool,
    /// `MERCHANT` for a merchant-paid interest-free installment (무이자); `null` otherwise.
    #[schema(schema_with = interest_payer)]
    interest_payer: Option<&'static str>,
}

fn acquire_status() -> utoipa::openapi::Object {
    schema::string_enum(["READY", "CANCELED"])
}

fn interest_payer() -> utoipa::openapi::Object {
    schema::nullable_string_enum(["MERCHANT"])
}

/// One cancel of a payment, as Toss's `cancels[]` entries.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = PaymentCancel)]
struct CancelBodyOut {
    #[schema(example = "txn_01M8XAPQGWWP0R3K8550PR5WFC")]
    transaction_key: String,
    cancel_reason: Option<String>,
    tax_exemption_amount: i64,
    /// When the acquirer confirmed it; while the answer is not known, or if it refused, when it was asked.
    #[schema(schema_with = schema::instant)]
    canceled_at: String,
    easy_pay_discount_amount: i64,
    receipt_key: Option<String>,
    /// `DONE`; `IN_PROGRESS` while the acquirer's answer is not known (the request answered `202`); `ABORTED`
    /// when the acquirer did not apply it (nothing was refunded and the amount is back in the balance).
    #[schema(schema_with = cancel_status)]
    cancel_status: &'static str,
    cancel_request_id: Option<String>,
    cancel_amount: i64,
    tax_free_amount: i64,
    /// What was left to cancel after this cancel (aborted cancels do not count).
    refundable_amount: i64,
}

fn cancel_status() -> utoipa::openapi::Object {
    schema::string_enum(["DONE", "IN_PROGRESS", "ABORTED"])
}

/// A payment's virtual account, as Toss's `virtualAccount` object.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = PaymentVirtualAccount)]
struct VirtualAccountBody {
    /// `일반`: issued for this payment alone.
    #[schema(schema_with = account_type)]
    account_type: &'static str,
    #[schema(example = "92000000000017")]
    account_number: String,
    /// The bank's two-digit code (Toss's bank table).
    #[schema(example = "20")]
    bank_code: &'static str,
    /// Who is expected to deposit.
    #[schema(example = "박토스")]
    customer_name: String,
    /// The deposit deadline.
    #[schema(schema_with = schema::instant)]
    due_date: String,
    /// The refund of a cancelled deposit: `NONE`, `PENDING`, `FAILED`, `PARTIAL_FAILED`, `COMPLETED`.
    #[schema(schema_with = refund_status)]
    refund_status: &'static str,
    /// No deposit can pay it any more (its deadline passed, or the payment was cancelled before the deposit).
    expired: bool,
    #[schema(schema_with = settlement_status)]
    settlement_status: &'static str,
    /// The refund account the buyer entered on a payment page: paygate's pages do not ask for one, so `null`.
    #[schema(schema_with = schema::always_null)]
    refund_receive_account: Option<Never>,
    /// The name on the account that deposited; `null` before the deposit.
    depositor_name: Option<String>,
}

fn account_type() -> utoipa::openapi::Object {
    schema::string_enum(["일반"])
}

fn refund_status() -> utoipa::openapi::Object {
    schema::string_enum(paygate_domain::bank::RefundStatus::ALL.map(|s| s.as_str()))
}

fn settlement_status() -> utoipa::openapi::Object {
    schema::string_enum(paygate_domain::bank::SettlementStatus::ALL.map(|s| s.as_str()))
}

/// A link.
#[derive(Serialize, ToSchema)]
#[schema(as = Url)]
struct UrlBody {
    #[schema(example = "http://127.0.0.1:8080/receipts/pay_01M8XAPQGS22SKF15R5Z2N2D4C/…")]
    url: String,
}

/// Why a payment failed.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = PaymentFailure)]
struct FailureBody {
    /// paygate's stable code (docs/errors.md).
    #[schema(example = "REJECT_CARD_PAYMENT")]
    code: String,
    message: String,
    /// The acquirer's own code.
    acquirer_code: Option<String>,
}

impl PaymentBody {
    pub fn new(app: &App, view: &PaymentView) -> PaymentBody {
        let p = &view.payment;
        let approval = p.approval.as_ref();
        // As Toss writes it, a payment has a card object once the acquirer approved (before that, the issuer, the
        // approval number and the card's type are not known).
        let card = p
            .card
            .as_ref()
            .zip(approval)
            .filter(|_| p.method == PaymentMethod::Card)
            .map(|(card, approval)| CardBody {
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
            virtual_account: view.virtual_account.as_ref().map(|a| VirtualAccountBody {
                account_type: "일반",
                account_number: a.account_number.clone(),
                bank_code: a.bank.code(),
                customer_name: a.customer_name.clone(),
                due_date: rfc3339(a.due_at),
                refund_status: a.refund_status.as_str(),
                expired: a.expired_at(app.clock().now()),
                settlement_status: a.settlement_status.as_str(),
                refund_receive_account: None,
                depositor_name: a.depositor_name.clone(),
            }),
            transfer: approval
                .filter(|_| p.method == PaymentMethod::Transfer)
                .map(|a| TransferBody {
                    bank_code: a.issuer_code.clone(),
                    // Settlement (issue 13) is not built yet: nothing is settled to the merchant.
                    settlement_status: "INCOMPLETED",
                }),
            mobile_phone: None,
            gift_certificate: None,
            cash_receipt: view
                .cash_receipts
                .iter()
                .find(|r| r.transaction == paygate_domain::cash_receipt::ReceiptTransaction::Confirm)
                .map(|r| crate::cash_receipts::wire::PaymentReceiptBody::new(app, r)),
            cash_receipts: (!view.cash_receipts.is_empty()).then(|| {
                view.cash_receipts
                    .iter()
                    .map(|r| crate::cash_receipts::wire::CashReceiptBody::new(app, r))
                    .collect()
            }),
            discount: None,
            cancels: (!cancels.is_empty()).then_some(cancels),
            secret: view
                .virtual_account
                .as_ref()
                .map(|a| app.virtual_account_secret(a.payment_id)),
            kind: if p.billing.is_some() { "BILLING" } else { "NORMAL" },
            easy_pay: None,
            country: "KR",
            failure: p.failure.as_ref().map(|f| FailureBody {
                code: f.code.clone(),
                message: f.message.clone(),
                acquirer_code: f.acquirer_code.clone(),
            }),
            is_partial_cancelable: true,
            receipt: approval.filter(|_| p.method == PaymentMethod::Card).map(|_| UrlBody {
                url: app.receipt_url(p.id),
            }),
            checkout,
            currency: p.total().currency().code(),
            total_amount: p.total().amount_minor(),
            balance_amount: p.balance.amount_minor(),
            supplied_amount: part(|r| r.supplied.amount_minor(), p.amounts.supplied().amount_minor()),
            vat: part(|r| r.vat.amount_minor(), p.amounts.vat().amount_minor()),
            tax_free_amount: part(|r| r.tax_free.amount_minor(), p.amounts.tax_free().amount_minor()),
            method: p.method.korean(),
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
