//! Toss Payments v1 wire types (API version `2022-11-16`), written from Toss's public reference only.
//!
//! These types exist so that black-box tests can decode paygate's answers exactly the way a merchant's
//! client written against Toss would. They are deliberately strict:
//!
//! * every key Toss always sends is required; a key that Toss documents as `nullable` must still be
//!   present (its value may be `null`) — every `Option` field goes through [`present`], which has no
//!   `default`, so serde reports a missing key instead of silently producing `None`;
//! * amounts are `i64` (KRW has no minor unit), timestamps are `chrono` date-times, booleans are `bool`;
//! * enums accept only the spellings Toss documents, so a misspelling fails decoding;
//! * unknown extra keys are accepted (Toss adds response fields without a version bump).
//!
//! Sources (see `docs/toss-reference.md` for the digest and every citation):
//! * core API reference — <https://docs.tosspayments.com/reference>
//! * error codes — <https://docs.tosspayments.com/reference/error-codes>
//! * webhook events — <https://docs.tosspayments.com/reference/using-api/webhook-events>
//! * institution codes — <https://docs.tosspayments.com/codes/org-codes>
#![allow(dead_code)]

use std::collections::BTreeMap;

use chrono::{DateTime, FixedOffset, NaiveDateTime};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};

/// Timestamps that carry an offset, `yyyy-MM-dd'T'HH:mm:ss±hh:mm` (e.g. `2022-01-01T00:00:00+09:00`).
/// <https://docs.tosspayments.com/reference#payment-객체>
pub type TossDateTime = DateTime<FixedOffset>;

/// Decodes `json` as `T`, returning the serde error text (which names the missing or mistyped key).
pub fn decode<T: DeserializeOwned>(json: &str) -> Result<T, String> {
    serde_json::from_str(json).map_err(|e| e.to_string())
}

/// Deserializes a nullable field whose key must be present.
///
/// Use as `#[serde(deserialize_with = "present")]` on every `Option` field, without `default`:
/// serde then reports `missing field` when the key is absent, while `null` decodes to `None`.
pub fn present<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer)
}

// ---------------------------------------------------------------------------------------------
// Enums
// ---------------------------------------------------------------------------------------------

/// `Payment.status` / `Transaction.status`.
/// <https://docs.tosspayments.com/reference#payment-객체>
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum PaymentStatus {
    Ready,
    InProgress,
    WaitingForDeposit,
    Done,
    Canceled,
    PartialCanceled,
    Aborted,
    Expired,
}

/// `Payment.method` / `Transaction.method` / `Billing.method` — Toss answers with the Korean names.
/// <https://docs.tosspayments.com/reference#payment-객체>
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
pub enum Method {
    #[serde(rename = "카드")]
    Card,
    #[serde(rename = "가상계좌")]
    VirtualAccount,
    #[serde(rename = "간편결제")]
    EasyPay,
    #[serde(rename = "휴대폰")]
    MobilePhone,
    #[serde(rename = "계좌이체")]
    Transfer,
    #[serde(rename = "문화상품권")]
    CultureGiftCertificate,
    #[serde(rename = "도서문화상품권")]
    BookGiftCertificate,
    #[serde(rename = "게임문화상품권")]
    GameGiftCertificate,
}

/// `Payment.type`.
/// <https://docs.tosspayments.com/reference#payment-객체>
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum PaymentType {
    Normal,
    Billing,
    Brandpay,
}

/// `Payment.card.cardType`.
/// <https://docs.tosspayments.com/reference#payment-객체>
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
pub enum CardType {
    #[serde(rename = "신용")]
    Credit,
    #[serde(rename = "체크")]
    Check,
    #[serde(rename = "기프트")]
    Gift,
    #[serde(rename = "미확인")]
    Unknown,
}

/// `Payment.card.ownerType`.
/// <https://docs.tosspayments.com/reference#payment-객체>
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
pub enum OwnerType {
    #[serde(rename = "개인")]
    Personal,
    #[serde(rename = "법인")]
    Corporate,
    #[serde(rename = "미확인")]
    Unknown,
}

/// `Billing.card.cardType` — the reference lists only three values here (no `미확인`).
/// <https://docs.tosspayments.com/reference#billing-객체>
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
pub enum BillingCardType {
    #[serde(rename = "신용")]
    Credit,
    #[serde(rename = "체크")]
    Check,
    #[serde(rename = "기프트")]
    Gift,
}

/// `Billing.card.ownerType` — the reference lists only two values here (no `미확인`).
/// <https://docs.tosspayments.com/reference#billing-객체>
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
pub enum BillingOwnerType {
    #[serde(rename = "개인")]
    Personal,
    #[serde(rename = "법인")]
    Corporate,
}

/// `Payment.card.acquireStatus` (매입 상태).
/// <https://docs.tosspayments.com/reference#payment-객체>
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum AcquireStatus {
    Ready,
    Requested,
    Completed,
    CancelRequested,
    Canceled,
}

/// `Payment.card.interestPayer` (who pays the instalment fee).
/// <https://docs.tosspayments.com/reference#payment-객체>
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum InterestPayer {
    Buyer,
    CardCompany,
    Merchant,
}

/// `Payment.cancels[].cancelStatus`.
///
/// The reference documents `DONE`; the cancel-status flow of the `CANCEL_STATUS_CHANGED` webhook
/// (foreign easy-pay only) adds `IN_PROGRESS` and `ABORTED`.
/// <https://docs.tosspayments.com/reference#payment-객체>,
/// <https://docs.tosspayments.com/reference/using-api/webhook-events#cancel_status_changed>
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum CancelStatus {
    Done,
    InProgress,
    Aborted,
}

/// `settlementStatus` of virtual account, transfer, mobile phone and gift certificate details.
/// <https://docs.tosspayments.com/reference#payment-객체>
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum SettlementStatus {
    Incompleted,
    Completed,
}

/// `Payment.virtualAccount.refundStatus`.
/// <https://docs.tosspayments.com/reference#payment-객체>
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RefundStatus {
    None,
    Pending,
    Failed,
    PartialFailed,
    Completed,
}

/// `Payment.virtualAccount.accountType`.
/// <https://docs.tosspayments.com/reference#payment-객체>
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
pub enum VirtualAccountType {
    #[serde(rename = "일반")]
    Normal,
    #[serde(rename = "고정")]
    Fixed,
}

/// `type` of a cash receipt (현금영수증 종류).
/// <https://docs.tosspayments.com/reference#payment-객체>
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
pub enum CashReceiptType {
    #[serde(rename = "소득공제")]
    IncomeDeduction,
    #[serde(rename = "지출증빙")]
    ExpenseProof,
}

/// `Payment.cashReceipts[].transactionType`.
/// <https://docs.tosspayments.com/reference#payment-객체>
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum CashReceiptTransactionType {
    Confirm,
    Cancel,
}

/// `Payment.cashReceipts[].issueStatus`.
/// <https://docs.tosspayments.com/reference#cashreceipt-객체>
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum CashReceiptIssueStatus {
    InProgress,
    Completed,
    Failed,
}

/// Two-character card company codes used by `issuerCode` (발급사) and `acquirerCode` (매입사).
/// Variant names follow Toss's English code names.
/// <https://docs.tosspayments.com/codes/org-codes#카드사-코드>
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
pub enum CardCompanyCode {
    /// 기업비씨
    #[serde(rename = "3K")]
    IbkBc,
    /// 광주
    #[serde(rename = "46")]
    Gwangjubank,
    /// 롯데
    #[serde(rename = "71")]
    Lotte,
    /// 산업
    #[serde(rename = "30")]
    Kdbbank,
    /// BC
    #[serde(rename = "31")]
    Bc,
    /// 삼성
    #[serde(rename = "51")]
    Samsung,
    /// 새마을
    #[serde(rename = "38")]
    Saemaul,
    /// 신한
    #[serde(rename = "41")]
    Shinhan,
    /// 신협
    #[serde(rename = "62")]
    Shinhyeop,
    /// 씨티
    #[serde(rename = "36")]
    Citi,
    /// 우리 (BC가 매입하는 우리카드)
    #[serde(rename = "33")]
    WooriBc,
    /// 우리 (우리카드가 매입)
    #[serde(rename = "W1")]
    Woori,
    /// 우체국
    #[serde(rename = "37")]
    Post,
    /// 저축
    #[serde(rename = "39")]
    Savingbank,
    /// 전북
    #[serde(rename = "35")]
    Jeonbukbank,
    /// 제주
    #[serde(rename = "42")]
    Jejubank,
    /// 카카오뱅크
    #[serde(rename = "15")]
    Kakaobank,
    /// 케이뱅크
    #[serde(rename = "3A")]
    Kbank,
    /// 토스뱅크
    #[serde(rename = "24")]
    Tossbank,
    /// 하나
    #[serde(rename = "21")]
    Hana,
    /// 현대
    #[serde(rename = "61")]
    Hyundai,
    /// 국민
    #[serde(rename = "11")]
    Kookmin,
    /// 농협
    #[serde(rename = "91")]
    Nonghyeop,
    /// 수협
    #[serde(rename = "34")]
    Suhyeop,
    /// 다이너스 (해외)
    #[serde(rename = "6D")]
    Diners,
    /// 디스커버 (해외)
    #[serde(rename = "6I")]
    Discover,
    /// 마스터 (해외)
    #[serde(rename = "4M")]
    Master,
    /// 유니온페이 (해외)
    #[serde(rename = "3C")]
    Unionpay,
    /// AMEX (해외)
    #[serde(rename = "7A")]
    Amex,
    /// JCB (해외)
    #[serde(rename = "4J")]
    Jcb,
    /// 비자 (해외)
    #[serde(rename = "4V")]
    Visa,
}

// ---------------------------------------------------------------------------------------------
// Payment and its nested objects
// ---------------------------------------------------------------------------------------------

/// The Payment object returned by confirm, key-in, lookup (by `paymentKey` / `orderId`), cancel and
/// billing charge.
///
/// Field set = the keys present in Toss's `2022-11-16` examples; nullability = the reference's
/// `nullable` markers. Not modelled (tolerated when present): `transactionKey`, `easyPayAmount`,
/// `easyPayDiscountAmount` — listed as nullable in the current reference but absent from Toss's own
/// `2022-11-16` answers, so a `2022-11-16` client cannot rely on them.
/// <https://docs.tosspayments.com/reference#payment-객체>
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Payment {
    /// Response version, e.g. `2022-11-16`.
    pub version: String,
    pub payment_key: String,
    #[serde(rename = "type")]
    pub payment_type: PaymentType,
    pub order_id: String,
    pub order_name: String,
    /// `mId` (not `mid`).
    #[serde(rename = "mId")]
    pub m_id: String,
    pub currency: String,
    /// Nullable: e.g. an `EXPIRED` payment whose method was never chosen.
    #[serde(deserialize_with = "present")]
    pub method: Option<Method>,
    pub total_amount: i64,
    pub balance_amount: i64,
    pub status: PaymentStatus,
    pub requested_at: TossDateTime,
    #[serde(deserialize_with = "present")]
    pub approved_at: Option<TossDateTime>,
    /// Not nullable in the reference. (Toss was seen answering `null` for foreign easy-pay and expired
    /// sessions; paygate's card flows must send a boolean.)
    pub use_escrow: bool,
    #[serde(deserialize_with = "present")]
    pub last_transaction_key: Option<String>,
    pub supplied_amount: i64,
    pub vat: i64,
    pub culture_expense: bool,
    pub tax_free_amount: i64,
    pub tax_exemption_amount: i64,
    #[serde(deserialize_with = "present")]
    pub cancels: Option<Vec<Cancel>>,
    pub is_partial_cancelable: bool,
    #[serde(deserialize_with = "present")]
    pub card: Option<Card>,
    #[serde(deserialize_with = "present")]
    pub virtual_account: Option<VirtualAccount>,
    #[serde(deserialize_with = "present")]
    pub secret: Option<String>,
    #[serde(deserialize_with = "present")]
    pub mobile_phone: Option<MobilePhone>,
    #[serde(deserialize_with = "present")]
    pub gift_certificate: Option<GiftCertificate>,
    #[serde(deserialize_with = "present")]
    pub transfer: Option<Transfer>,
    /// Up to 5 string pairs set by the merchant through the SDK. Required key: Toss's `2022-11-16`
    /// examples always carry it (usually `null`), although one older example omitted it.
    #[serde(deserialize_with = "present")]
    pub metadata: Option<BTreeMap<String, String>>,
    #[serde(deserialize_with = "present")]
    pub receipt: Option<Receipt>,
    #[serde(deserialize_with = "present")]
    pub checkout: Option<Checkout>,
    #[serde(deserialize_with = "present")]
    pub easy_pay: Option<EasyPay>,
    /// ISO 3166-1 alpha-2, e.g. `KR`.
    pub country: String,
    #[serde(deserialize_with = "present")]
    pub failure: Option<Failure>,
    #[serde(deserialize_with = "present")]
    pub cash_receipt: Option<CashReceipt>,
    /// Required key: present (usually `null`) in every `2022-11-16` example from Toss.
    #[serde(deserialize_with = "present")]
    pub cash_receipts: Option<Vec<CashReceiptHistory>>,
    #[serde(deserialize_with = "present")]
    pub discount: Option<Discount>,
}

/// `Payment.card` — present when the payment was made by card.
/// <https://docs.tosspayments.com/reference#payment-객체>
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Card {
    /// Amount requested from the card company (includes `discount.amount`).
    pub amount: i64,
    pub issuer_code: CardCompanyCode,
    #[serde(deserialize_with = "present")]
    pub acquirer_code: Option<CardCompanyCode>,
    /// Masked card number, e.g. `12341234****123*`.
    pub number: String,
    /// `0` for a lump-sum (일시불) payment.
    pub installment_plan_months: i32,
    pub approve_no: String,
    pub use_card_point: bool,
    pub card_type: CardType,
    pub owner_type: OwnerType,
    pub acquire_status: AcquireStatus,
    pub is_interest_free: bool,
    #[serde(deserialize_with = "present")]
    pub interest_payer: Option<InterestPayer>,
}

/// One element of `Payment.cancels`.
///
/// Not modelled (tolerated when present): `cardDiscountAmount`, `transferDiscountAmount` — in the
/// current reference but absent from Toss's `2022-11-16` answers.
/// <https://docs.tosspayments.com/reference#payment-객체>
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Cancel {
    pub cancel_amount: i64,
    pub cancel_reason: String,
    pub tax_free_amount: i64,
    pub tax_exemption_amount: i64,
    /// Balance that can still be refunded after this cancel.
    pub refundable_amount: i64,
    pub easy_pay_discount_amount: i64,
    pub canceled_at: TossDateTime,
    pub transaction_key: String,
    #[serde(deserialize_with = "present")]
    pub receipt_key: Option<String>,
    pub cancel_status: CancelStatus,
    /// Always `null` for normal, billing and PayPal payments.
    #[serde(deserialize_with = "present")]
    pub cancel_request_id: Option<String>,
}

/// `Payment.virtualAccount`.
/// <https://docs.tosspayments.com/reference#payment-객체>
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VirtualAccount {
    pub account_type: VirtualAccountType,
    pub account_number: String,
    pub bank_code: String,
    pub customer_name: String,
    /// Optional key: listed in the current reference and seen in 2025 answers, but missing from an
    /// earlier `2022-11-16` answer, so a client cannot rely on it.
    #[serde(default)]
    pub depositor_name: Option<String>,
    /// The reference describes `yyyy-MM-dd'T'HH:mm:ss` (no offset) while Toss's answers carry
    /// `+09:00`; both forms are accepted.
    pub due_date: DateTimeMaybeOffset,
    pub refund_status: RefundStatus,
    pub expired: bool,
    pub settlement_status: SettlementStatus,
    #[serde(deserialize_with = "present")]
    pub refund_receive_account: Option<RefundReceiveAccount>,
}

/// `Payment.virtualAccount.refundReceiveAccount`.
/// <https://docs.tosspayments.com/reference#payment-객체>
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RefundReceiveAccount {
    pub bank_code: String,
    pub account_number: String,
    pub holder_name: String,
}

/// A timestamp with or without an offset (see [`VirtualAccount::due_date`]).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum DateTimeMaybeOffset {
    Offset(TossDateTime),
    Local(NaiveDateTime),
}

/// `Payment.transfer` — account transfer (계좌이체) details.
/// <https://docs.tosspayments.com/reference#payment-객체>
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Transfer {
    pub bank_code: String,
    pub settlement_status: SettlementStatus,
}

/// `Payment.mobilePhone` — mobile phone payment details.
/// <https://docs.tosspayments.com/reference#payment-객체>
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MobilePhone {
    pub customer_mobile_phone: String,
    pub settlement_status: SettlementStatus,
    pub receipt_url: String,
}

/// `Payment.giftCertificate` — gift certificate (상품권) payment details.
/// <https://docs.tosspayments.com/reference#payment-객체>
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GiftCertificate {
    pub approve_no: String,
    pub settlement_status: SettlementStatus,
}

/// `Payment.easyPay`.
/// <https://docs.tosspayments.com/reference#payment-객체>
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EasyPay {
    /// Easy-pay provider name as Toss answers it, e.g. `토스페이`. Kept as a string: the full provider
    /// list (org-codes) was not confirmed.
    pub provider: String,
    pub amount: i64,
    pub discount_amount: i64,
}

/// `Payment.cashReceipt`.
/// <https://docs.tosspayments.com/reference#payment-객체>
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CashReceipt {
    #[serde(rename = "type")]
    pub receipt_type: CashReceiptType,
    pub receipt_key: String,
    pub issue_number: String,
    pub receipt_url: String,
    pub amount: i64,
    pub tax_free_amount: i64,
}

/// One element of `Payment.cashReceipts` (issue and cancel history, unordered).
/// <https://docs.tosspayments.com/reference#payment-객체>
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CashReceiptHistory {
    pub receipt_key: String,
    pub order_id: String,
    pub order_name: String,
    #[serde(rename = "type")]
    pub receipt_type: CashReceiptType,
    pub issue_number: String,
    pub receipt_url: String,
    pub business_number: String,
    pub transaction_type: CashReceiptTransactionType,
    pub amount: i64,
    pub tax_free_amount: i64,
    pub issue_status: CashReceiptIssueStatus,
    /// The reference does not mark it nullable here, but the CashReceipt object's `failure` is; a
    /// successful issue has no failure, so `null` is accepted (the key must be present).
    #[serde(deserialize_with = "present")]
    pub failure: Option<Failure>,
    pub customer_identity_number: String,
    pub requested_at: TossDateTime,
}

/// `Payment.discount` — card company / quick transfer instant discount.
/// <https://docs.tosspayments.com/reference#payment-객체>
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Discount {
    pub amount: i64,
}

/// `Payment.failure` — why a payment was not approved (e.g. on an `ABORTED` payment).
/// <https://docs.tosspayments.com/reference#payment-객체>
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Failure {
    pub code: String,
    pub message: String,
}

/// `Payment.receipt` — link to the sales slip / receipt.
/// <https://docs.tosspayments.com/reference#payment-객체>
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Receipt {
    pub url: String,
}

/// `Payment.checkout` — link to the payment window.
/// <https://docs.tosspayments.com/reference#payment-객체>
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Checkout {
    pub url: String,
}

// ---------------------------------------------------------------------------------------------
// Transactions
// ---------------------------------------------------------------------------------------------

/// One element of the array returned by `GET /v1/transactions`.
/// <https://docs.tosspayments.com/reference#transaction-객체>
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Transaction {
    #[serde(rename = "mId")]
    pub m_id: String,
    pub transaction_key: String,
    pub payment_key: String,
    pub order_id: String,
    pub method: Method,
    /// Not marked nullable in the reference, but Toss answers `null` for non-billing payments; the key
    /// must be present.
    #[serde(deserialize_with = "present")]
    pub customer_key: Option<String>,
    pub use_escrow: bool,
    pub receipt_url: String,
    pub status: PaymentStatus,
    pub transaction_at: TossDateTime,
    pub currency: String,
    pub amount: i64,
}

// ---------------------------------------------------------------------------------------------
// Billing
// ---------------------------------------------------------------------------------------------

/// The Billing object returned by `POST /v1/billing/authorizations/issue` and `.../card`.
///
/// `cardCompany` and `cardNumber` are part of the `2022-11-16` answer (Toss removed them only from
/// version `2024-06-01` on), so they are required here. Not modelled: `transfers` (account billing).
/// <https://docs.tosspayments.com/reference#billing-객체>
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Billing {
    #[serde(rename = "mId")]
    pub m_id: String,
    pub customer_key: String,
    pub authenticated_at: TossDateTime,
    pub method: Method,
    pub billing_key: String,
    pub card: BillingCard,
    /// Issuer's Korean short name, e.g. `현대`.
    pub card_company: String,
    /// Masked card number.
    pub card_number: String,
}

/// `Billing.card`.
/// <https://docs.tosspayments.com/reference#billing-객체>
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BillingCard {
    pub issuer_code: CardCompanyCode,
    pub acquirer_code: CardCompanyCode,
    pub number: String,
    pub card_type: BillingCardType,
    pub owner_type: BillingOwnerType,
}

// ---------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------

/// The error body of every failed API call, e.g. `{"code":"NOT_FOUND_PAYMENT","message":"..."}`.
/// <https://docs.tosspayments.com/reference/error-codes>
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TossError {
    pub code: String,
    pub message: String,
}

// ---------------------------------------------------------------------------------------------
// Webhooks
// ---------------------------------------------------------------------------------------------

/// Webhook `createdAt`: `yyyy-MM-dd'T'HH:mm:ss.SSSSSS`, local time without an offset.
/// <https://docs.tosspayments.com/reference/using-api/webhook-events>
pub type WebhookDateTime = NaiveDateTime;

/// `eventType` of a payment status webhook.
/// <https://docs.tosspayments.com/reference/using-api/webhook-events#payment_status_changed>
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
pub enum PaymentStatusChangedType {
    #[serde(rename = "PAYMENT_STATUS_CHANGED")]
    PaymentStatusChanged,
}

/// `PAYMENT_STATUS_CHANGED` webhook body: `data` is the Payment object.
/// <https://docs.tosspayments.com/reference/using-api/webhook-events#payment_status_changed>
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PaymentStatusChangedEvent {
    pub event_type: PaymentStatusChangedType,
    pub created_at: WebhookDateTime,
    pub data: Payment,
}

/// `DEPOSIT_CALLBACK` webhook body (virtual accounts): flat, no `eventType` or `data` in Toss's own example —
/// exactly `createdAt`, `secret`, `status`, `transactionKey`, `orderId` (docs/toss-reference.md §12).
/// <https://docs.tosspayments.com/reference/using-api/webhook-events#deposit_callback>
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DepositCallback {
    pub created_at: WebhookDateTime,
    /// Equals the Payment's `secret` from the issue answer.
    pub secret: String,
    /// The Payment's status after the change.
    pub status: PaymentStatus,
    pub transaction_key: String,
    pub order_id: String,
}

/// `eventType` of a billing-key deletion webhook.
/// <https://docs.tosspayments.com/reference/using-api/webhook-events#billing_deleted>
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
pub enum BillingDeletedType {
    #[serde(rename = "BILLING_DELETED")]
    BillingDeleted,
}

/// `BILLING_DELETED` webhook body.
/// <https://docs.tosspayments.com/reference/using-api/webhook-events#billing_deleted>
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BillingDeletedEvent {
    pub event_type: BillingDeletedType,
    pub created_at: WebhookDateTime,
    pub data: BillingDeletedData,
}

/// `data` of a `BILLING_DELETED` webhook.
/// <https://docs.tosspayments.com/reference/using-api/webhook-events#billing_deleted>
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BillingDeletedData {
    pub billing_key: String,
    /// Nullable per the example (e.g. `삭제 API 요청`).
    #[serde(deserialize_with = "present")]
    pub reason: Option<String>,
}

// ---------------------------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------------------------

/// Hand-written answers shaped like Toss's documented examples (values are invented).
pub mod fixtures {
    /// Card number (key-in) payment, `DONE`.
    pub const PAYMENT_DONE_KEYIN: &str = include_str!("fixtures/payment_done_keyin.json");
    /// Card payment after one partial cancel.
    pub const PAYMENT_PARTIAL_CANCELED: &str = include_str!("fixtures/payment_partial_canceled.json");
    /// Card payment fully canceled in two steps.
    pub const PAYMENT_CANCELED: &str = include_str!("fixtures/payment_canceled.json");
    /// Card payment whose approval failed.
    pub const PAYMENT_ABORTED: &str = include_str!("fixtures/payment_aborted.json");
    /// Payment window session that expired before approval.
    pub const PAYMENT_EXPIRED: &str = include_str!("fixtures/payment_expired.json");
    /// Billing-key charge, `DONE`.
    pub const PAYMENT_BILLING_DONE: &str = include_str!("fixtures/payment_billing_done.json");
    /// Virtual account issued, waiting for the deposit.
    pub const PAYMENT_VIRTUAL_ACCOUNT_WAITING: &str = include_str!("fixtures/payment_virtual_account_waiting.json");
    /// Account transfer with a cash receipt.
    pub const PAYMENT_TRANSFER_DONE: &str = include_str!("fixtures/payment_transfer_done.json");
    /// Billing object from `POST /v1/billing/authorizations/issue`.
    pub const BILLING: &str = include_str!("fixtures/billing.json");
    /// `GET /v1/transactions` answer.
    pub const TRANSACTIONS: &str = include_str!("fixtures/transactions.json");
    /// Error body, unknown payment.
    pub const ERROR_NOT_FOUND_PAYMENT: &str = include_str!("fixtures/error_not_found_payment.json");
    /// Error body, confirm of an already processed payment.
    pub const ERROR_ALREADY_PROCESSED_PAYMENT: &str = include_str!("fixtures/error_already_processed_payment.json");
    /// `PAYMENT_STATUS_CHANGED` webhook.
    pub const WEBHOOK_PAYMENT_STATUS_CHANGED: &str = include_str!("fixtures/webhook_payment_status_changed.json");
    /// `BILLING_DELETED` webhook.
    pub const WEBHOOK_BILLING_DELETED: &str = include_str!("fixtures/webhook_billing_deleted.json");

    /// Every fixture that decodes as a `Payment`, with its file name.
    pub const PAYMENTS: &[(&str, &str)] = &[
        ("payment_done_keyin.json", PAYMENT_DONE_KEYIN),
        ("payment_partial_canceled.json", PAYMENT_PARTIAL_CANCELED),
        ("payment_canceled.json", PAYMENT_CANCELED),
        ("payment_aborted.json", PAYMENT_ABORTED),
        ("payment_expired.json", PAYMENT_EXPIRED),
        ("payment_billing_done.json", PAYMENT_BILLING_DONE),
        ("payment_virtual_account_waiting.json", PAYMENT_VIRTUAL_ACCOUNT_WAITING),
        ("payment_transfer_done.json", PAYMENT_TRANSFER_DONE),
    ];
}

/// The CashReceipt object answered by `/v1/cash-receipts` (the same fields as `Payment.cashReceipts[]`).
/// <https://docs.tosspayments.com/reference#cashreceipt-객체>
pub type CashReceiptObject = CashReceiptHistory;

/// `GET /v1/cash-receipts`'s answer.
/// <https://docs.tosspayments.com/reference#현금영수증-조회>
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CashReceiptList {
    pub has_next: bool,
    pub last_cursor: i64,
    pub data: Vec<CashReceiptObject>,
}
