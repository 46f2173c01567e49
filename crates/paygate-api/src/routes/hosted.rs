//! The pages buyers see: the checkout entry (a merchant's signed form POST), the payment page, the OTP challenge,
//! a waiting page, errors, and the receipt (매출전표). Server-rendered HTML that works without JavaScript, in Korean
//! (default) and English (`?lang=en`), with its stylesheet served by the gateway itself.
//!
//! Every page is an askama template under `templates/`: values reach the HTML only through the templates'
//! automatic escaping, so no handler can forget to escape a merchant's name or an order's.

use std::collections::HashMap;

use askama::Template;
use axum::extract::{Path, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::Form;
use paygate_app::payments::command::{self, CardText, CashReceiptAsked, ClearCard, FieldError};
use paygate_app::payments::hosted::{
    CardEntry, FormCheckout, FormError, HostedOutcome, HostedPage, HostedStep, RetryReason, CHALLENGE_ATTEMPTS_MAX,
};
use paygate_app::payments::PaymentError;
use paygate_domain::id::PaymentId;
use paygate_domain::payment::{PaymentMethod, PaymentStatus, TransactionKind, TransactionStatus};

use crate::wire::rfc3339;
use crate::AppState;

const STYLESHEET: &str = include_str!("../../assets/checkout.css");
const SDK: &str = include_str!("../../assets/paygate.js");

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    Ko,
    En,
}

impl Lang {
    pub(crate) fn from_query(query: &HashMap<String, String>) -> Lang {
        match query.get("lang").map(String::as_str) {
            Some("en") => Lang::En,
            _ => Lang::Ko,
        }
    }

    pub(crate) fn code(self) -> &'static str {
        match self {
            Lang::Ko => "ko",
            Lang::En => "en",
        }
    }

    /// The language the page's switch offers.
    pub(crate) fn other(self) -> Lang {
        match self {
            Lang::Ko => Lang::En,
            Lang::En => Lang::Ko,
        }
    }

    /// The language's own name, for the switch.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Lang::Ko => "한국어",
            Lang::En => "English",
        }
    }

    /// The page's words. One table, so a missing translation is a compile error, not a blank label.
    pub(crate) fn t(self, key: Text) -> &'static str {
        use Text::*;
        match (self, key) {
            (Lang::Ko, Title) => "카드 결제",
            (Lang::En, Title) => "Card payment",
            (Lang::Ko, Order) => "주문",
            (Lang::En, Order) => "Order",
            (Lang::Ko, Amount) => "결제 금액",
            (Lang::En, Amount) => "Amount",
            (Lang::Ko, CardNumber) => "카드 번호",
            (Lang::En, CardNumber) => "Card number",
            (Lang::Ko, ExpMonth) => "유효기간 월 (MM)",
            (Lang::En, ExpMonth) => "Expiry month (MM)",
            (Lang::Ko, ExpYear) => "유효기간 연도 (YY)",
            (Lang::En, ExpYear) => "Expiry year (YY)",
            (Lang::Ko, Installment) => "할부",
            (Lang::En, Installment) => "Installments",
            (Lang::Ko, LumpSum) => "일시불",
            (Lang::En, LumpSum) => "Pay in full",
            (Lang::Ko, Months) => "개월",
            (Lang::En, Months) => " months",
            (Lang::Ko, Pay) => "결제하기",
            (Lang::En, Pay) => "Pay",
            (Lang::Ko, TestMode) => "테스트 결제입니다. 실제로 청구되지 않습니다.",
            (Lang::En, TestMode) => "This is a test payment. Nothing is charged.",
            (Lang::Ko, Secure) => "카드 정보는 암호화되어 전송되며 가맹점에 전달되지 않습니다.",
            (Lang::En, Secure) => "Your card details are encrypted and never shared with the merchant.",
            (Lang::Ko, ChallengeTitle) => "카드 본인 인증",
            (Lang::En, ChallengeTitle) => "Verify it's you",
            (Lang::Ko, ChallengeHint) => "카드사가 보낸 6자리 인증번호를 입력하세요.",
            (Lang::En, ChallengeHint) => "Enter the 6-digit code your card issuer sent you.",
            (Lang::Ko, SandboxOtp) => "테스트 카드사 인증번호:",
            (Lang::En, SandboxOtp) => "Sandbox issuer code:",
            (Lang::Ko, Otp) => "인증번호",
            (Lang::En, Otp) => "Verification code",
            (Lang::Ko, Verify) => "인증하기",
            (Lang::En, Verify) => "Verify",
            (Lang::Ko, Waiting) => "결제를 처리하고 있습니다. 잠시만 기다려 주세요.",
            (Lang::En, Waiting) => "Your payment is being processed. Please wait.",
            (Lang::Ko, ErrorTitle) => "결제를 진행할 수 없습니다",
            (Lang::En, ErrorTitle) => "This payment cannot continue",
            (Lang::Ko, Receipt) => "매출전표",
            (Lang::En, Receipt) => "Receipt",
            (Lang::Ko, Print) => "인쇄",
            (Lang::En, Print) => "Print",
            (Lang::Ko, Merchant) => "가맹점",
            (Lang::En, Merchant) => "Merchant",
            (Lang::Ko, Card) => "카드",
            (Lang::En, Card) => "Card",
            (Lang::Ko, ApprovalNo) => "승인번호",
            (Lang::En, ApprovalNo) => "Approval number",
            (Lang::Ko, ApprovedAt) => "승인일시",
            (Lang::En, ApprovedAt) => "Approved at",
            (Lang::Ko, Supplied) => "공급가액",
            (Lang::En, Supplied) => "Supplied amount",
            (Lang::Ko, Vat) => "부가세",
            (Lang::En, Vat) => "VAT",
            (Lang::Ko, TaxFree) => "면세",
            (Lang::En, TaxFree) => "Tax free",
            (Lang::Ko, Canceled) => "취소",
            (Lang::En, Canceled) => "Canceled",
            (Lang::Ko, Balance) => "잔액",
            (Lang::En, Balance) => "Balance",
            (Lang::Ko, Status) => "상태",
            (Lang::En, Status) => "Status",
            (Lang::Ko, TriesLeft) => "남은 입력 횟수:",
            (Lang::En, TriesLeft) => "Tries left:",
            (Lang::Ko, Times) => "회",
            (Lang::En, Times) => "",
            (Lang::Ko, Authenticated) => {
                "결제 정보가 확인되었습니다. 상점에서 결제를 마무리합니다. 이 창을 닫아도 됩니다."
            }
            (Lang::En, Authenticated) => {
                "Your payment details are confirmed. The shop completes the payment; you may close this page."
            }
            (Lang::Ko, Approved) => "결제가 완료되었습니다.",
            (Lang::En, Approved) => "The payment is complete.",
            (Lang::Ko, NotCompleted) => "결제가 완료되지 않았습니다.",
            (Lang::En, NotCompleted) => "The payment did not complete.",
            (Lang::Ko, BillingTitle) => "자동결제 카드 등록",
            (Lang::En, BillingTitle) => "Register a card for automatic payments",
            (Lang::Ko, BillingHint) => "이 카드는 가맹점의 정기결제에 사용됩니다. 등록 후 카드사 본인 인증을 거칩니다.",
            (Lang::En, BillingHint) => {
                "The shop will charge this card for your subscription. Your card issuer verifies it's you next."
            }
            (Lang::Ko, BillingTestMode) => "테스트 등록입니다. 실제 카드로 청구되지 않습니다.",
            (Lang::En, BillingTestMode) => "This is a test registration. No real card is charged.",
            (Lang::Ko, BillingSecure) => "카드 정보는 암호화되어 보관되며 가맹점에는 카드 번호 일부만 전달됩니다.",
            (Lang::En, BillingSecure) => "Your card is stored encrypted; the shop only ever sees part of the number.",
            (Lang::Ko, Register) => "카드 등록",
            (Lang::En, Register) => "Register card",
            (Lang::Ko, CheckoutTitle) => "결제",
            (Lang::En, CheckoutTitle) => "Checkout",
            (Lang::Ko, Method) => "결제수단",
            (Lang::En, Method) => "Payment method",
            (Lang::Ko, MethodCard) => "카드",
            (Lang::En, MethodCard) => "Card",
            (Lang::Ko, MethodVirtualAccount) => "가상계좌",
            (Lang::En, MethodVirtualAccount) => "Virtual account",
            (Lang::Ko, MethodTransfer) => "계좌이체",
            (Lang::En, MethodTransfer) => "Bank transfer",
            (Lang::Ko, Bank) => "은행",
            (Lang::En, Bank) => "Bank",
            (Lang::Ko, ChooseBank) => "은행을 선택하세요",
            (Lang::En, ChooseBank) => "Choose a bank",
            (Lang::Ko, DepositorName) => "입금자명",
            (Lang::En, DepositorName) => "Depositor's name",
            (Lang::Ko, IssueAccount) => "가상계좌 발급받기",
            (Lang::En, IssueAccount) => "Get a virtual account",
            (Lang::Ko, VirtualAccountNotice) => {
                "발급된 계좌로 기한 안에 결제 금액을 정확히 입금하시면 결제가 완료됩니다. 다른 금액은 돌려드립니다."
            }
            (Lang::En, VirtualAccountNotice) => {
                "Deposit exactly the amount into the account you get, before its due date; any other amount is returned."
            }
            (Lang::Ko, TransferNotice) => "선택한 은행의 화면에서 출금을 승인하면 결제가 진행됩니다.",
            (Lang::En, TransferNotice) => "You approve the debit on your bank's page; the payment then completes.",
            (Lang::Ko, BusinessNumber) => "사업자등록번호",
            (Lang::En, BusinessNumber) => "Business registration no.",
            (Lang::Ko, Representative) => "대표자",
            (Lang::En, Representative) => "Representative",
            (Lang::Ko, Address) => "주소",
            (Lang::En, Address) => "Address",
            (Lang::Ko, CardCompany) => "카드사",
            (Lang::En, CardCompany) => "Card company",
            (Lang::Ko, TestCards) => {
                "테스트 카드: 4330 0000 0000 0003 (승인), 4330 0000 0000 0011 (거절), 4330 0000 0000 0078 (본인 인증), 유효기간은 미래의 아무 날짜"
            }
            (Lang::En, TestCards) => {
                "Test cards: 4330 0000 0000 0003 (approved), 4330 0000 0000 0011 (declined), 4330 0000 0000 0078 (verification), any future expiry"
            }
            (Lang::Ko, NoSuchPayment) => "결제 정보를 찾을 수 없습니다. 상점으로 돌아가 다시 시도해 주세요.",
            (Lang::En, NoSuchPayment) => "This payment could not be found. Go back to the shop and try again.",
            (Lang::Ko, NoSuchReceipt) => "영수증을 찾을 수 없습니다. 주소를 다시 확인해 주세요.",
            (Lang::En, NoSuchReceipt) => "This receipt could not be found. Check the link.",
            (Lang::Ko, InternalTrouble) => "일시적인 오류가 발생했습니다. 잠시 후 다시 시도해 주세요.",
            (Lang::En, InternalTrouble) => "Something went wrong on our side. Please try again shortly.",
            (Lang::Ko, CannotContinue) => "이 결제는 더 진행할 수 없습니다. 상점으로 돌아가 주세요.",
            (Lang::En, CannotContinue) => "This payment cannot go on. Please go back to the shop.",
            (Lang::Ko, BackToShop) => "결제를 취소하고 상점으로 돌아가기",
            (Lang::En, BackToShop) => "Cancel and go back to the shop",
            (Lang::Ko, CashReceipt) => "현금영수증",
            (Lang::En, CashReceipt) => "Cash receipt",
            (Lang::Ko, ReceiptNone) => "신청 안 함",
            (Lang::En, ReceiptNone) => "None",
            (Lang::Ko, ReceiptIncome) => "소득공제 (개인)",
            (Lang::En, ReceiptIncome) => "Income deduction (personal)",
            (Lang::Ko, ReceiptExpense) => "지출증빙 (사업자)",
            (Lang::En, ReceiptExpense) => "Proof of expense (business)",
            (Lang::Ko, ReceiptNumber) => "휴대폰 번호 / 사업자등록번호 / 현금영수증 카드 번호",
            (Lang::En, ReceiptNumber) => "Phone, business registration or cash-receipt card number",
            (Lang::Ko, AwaitingDeposit) => {
                "가상계좌가 발급되었습니다. 상점에서 안내하는 계좌로 입금하시면 결제가 완료됩니다."
            }
            (Lang::En, AwaitingDeposit) => {
                "Your virtual account is ready. The payment completes when your deposit arrives in the account the shop shows."
            }
        }
    }
}

#[derive(Clone, Copy)]
pub(crate) enum Text {
    Title,
    Order,
    Amount,
    CardNumber,
    ExpMonth,
    ExpYear,
    Installment,
    LumpSum,
    Months,
    Pay,
    TestMode,
    Secure,
    ChallengeTitle,
    ChallengeHint,
    SandboxOtp,
    Otp,
    Verify,
    Waiting,
    ErrorTitle,
    Receipt,
    Print,
    Merchant,
    Card,
    ApprovalNo,
    ApprovedAt,
    Supplied,
    Vat,
    TaxFree,
    Canceled,
    Balance,
    Status,
    TriesLeft,
    Times,
    Authenticated,
    Approved,
    NotCompleted,
    BillingTitle,
    BillingHint,
    BillingTestMode,
    BillingSecure,
    Register,
    CheckoutTitle,
    Method,
    MethodCard,
    MethodVirtualAccount,
    MethodTransfer,
    Bank,
    ChooseBank,
    DepositorName,
    IssueAccount,
    VirtualAccountNotice,
    TransferNotice,
    AwaitingDeposit,
    BusinessNumber,
    Representative,
    Address,
    CardCompany,
    TestCards,
    NoSuchPayment,
    NoSuchReceipt,
    InternalTrouble,
    CannotContinue,
    BackToShop,
    CashReceipt,
    ReceiptNone,
    ReceiptIncome,
    ReceiptExpense,
    ReceiptNumber,
}

/// `15,000원` / `₩15,000`.
fn won(amount: i64, lang: Lang) -> String {
    let digits = amount.unsigned_abs().to_string();
    let mut grouped = String::new();
    for (index, c) in digits.chars().enumerate() {
        if index > 0 && (digits.len() - index).is_multiple_of(3) {
            grouped.push(',');
        }
        grouped.push(c);
    }
    let sign = if amount < 0 { "-" } else { "" };
    match lang {
        Lang::Ko => format!("{sign}{grouped}원"),
        Lang::En => format!("{sign}₩{grouped}"),
    }
}

/// The installment plans the card page offers besides paying in full.
const INSTALLMENT_MONTHS: [u8; 7] = [2, 3, 4, 5, 6, 10, 12];

/// "Pay ₩20,000" / "20,000원 결제하기": the amount where each language puts it.
fn pay_label(amount: i64, lang: Lang) -> String {
    match lang {
        Lang::Ko => format!("{} {}", won(amount, lang), lang.t(Text::Pay)),
        Lang::En => format!("{} {}", lang.t(Text::Pay), won(amount, lang)),
    }
}

/// A method the checkout page offers, as a tab.
struct MethodTab {
    /// `card`, `virtual-account` or `transfer`: the tab's `?method=` and its element's ID.
    code: &'static str,
    label: &'static str,
}

fn method_code(method: PaymentMethod) -> &'static str {
    match method {
        PaymentMethod::Card => "card",
        PaymentMethod::VirtualAccount => "virtual-account",
        PaymentMethod::Transfer => "transfer",
    }
}

fn method_label(method: PaymentMethod, lang: Lang) -> &'static str {
    lang.t(match method {
        PaymentMethod::Card => Text::MethodCard,
        PaymentMethod::VirtualAccount => Text::MethodVirtualAccount,
        PaymentMethod::Transfer => Text::MethodTransfer,
    })
}

/// The checkout page (`templates/card.html`): the method tabs and the chosen method's form.
#[derive(Template)]
#[template(path = "card.html")]
struct CardPage<'a> {
    lang: Lang,
    path: &'a str,
    payment_id: PaymentId,
    merchant: &'a str,
    order: &'a str,
    amount: String,
    pay_label: String,
    test_mode: bool,
    error: Option<&'static str>,
    installment_months: &'static [u8],
    methods: Vec<MethodTab>,
    /// The shown method's code.
    selected: &'static str,
    /// (code, name) of the banks a bank method offers.
    banks: Vec<(&'static str, &'static str)>,
    holder_name: &'a str,
}

/// The issuer's OTP challenge (`templates/challenge.html`), for a payment or a card registration.
#[derive(Template)]
#[template(path = "challenge.html")]
pub(crate) struct ChallengePage<'a> {
    pub lang: Lang,
    pub path: &'a str,
    /// Under the title: the merchant and what is being authenticated (the amount, or the masked card).
    pub subtitle: String,
    /// Where the form posts.
    pub action: &'a str,
    pub sandbox_otp: Option<&'a str>,
    pub error: Option<&'static str>,
    pub tries_left: u32,
}

/// paygate's own result page, when the merchant gave no URL to send the buyer to (`templates/result.html`).
#[derive(Template)]
#[template(path = "result.html")]
struct ResultPage<'a> {
    lang: Lang,
    /// `AUTHENTICATED`, `APPROVED` or `FAILED`, for scripts and tests.
    outcome: &'static str,
    sentence: &'static str,
    code: Option<&'a str>,
}

/// The page that reloads itself while an outcome is unknown (`templates/waiting.html`).
#[derive(Template)]
#[template(path = "waiting.html")]
struct WaitingPage {
    lang: Lang,
    payment_id: PaymentId,
    refresh_secs: u32,
}

/// A sentence for the buyer and, optionally, the precise cause for the merchant's developer
/// (`templates/error.html`).
#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    lang: Lang,
    summary: &'a str,
    detail: Option<&'a str>,
}

/// The printable receipt (`templates/receipt.html`).
#[derive(Template)]
#[template(path = "receipt.html")]
struct ReceiptPage<'a> {
    lang: Lang,
    path: &'a str,
    payment_id: PaymentId,
    rows: Vec<(&'static str, String)>,
}

/// Renders a page with the headers every hosted page carries.
pub(crate) fn page(template: &impl Template) -> Response {
    let mut response = match template.render() {
        Ok(html) => Html(html).into_response(),
        Err(error) => {
            // Rendering fails only if writing to a String fails; no half-page is ever sent.
            tracing::error!(error = %error, "a hosted page did not render");
            (StatusCode::INTERNAL_SERVER_ERROR, "internal error").into_response()
        }
    };
    let headers = response.headers_mut();
    // Pages with card forms must not be cached, framed by other sites, or load anything from elsewhere.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'self'; form-action 'self' http: https:; frame-ancestors 'none'"),
    );
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    response
}

pub(crate) fn error_page(lang: Lang, status: StatusCode, message: &str) -> Response {
    let mut response = page(&ErrorPage {
        lang,
        summary: message,
        detail: None,
    });
    *response.status_mut() = status;
    response
}

/// An error page with a sentence for the buyer and, smaller, the precise cause for the merchant's developer.
fn error_page_with_detail(lang: Lang, status: StatusCode, summary: &str, detail: &str) -> Response {
    let mut response = page(&ErrorPage {
        lang,
        summary,
        detail: Some(detail),
    });
    *response.status_mut() = status;
    response
}

/// A static file the gateway serves itself (no CDN), with how long browsers may keep it.
fn asset(content_type: &'static str, cache_control: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, cache_control),
        ],
        body,
    )
        .into_response()
}

#[utoipa::path(get, path = "/static/checkout.css", operation_id = "pagesStylesheet", tag = "Hosted pages", security(()),
    summary = "The pages' stylesheet",
    responses((status = 200, description = "CSS", content_type = "text/css")))]
pub async fn stylesheet() -> Response {
    asset("text/css; charset=utf-8", "public, max-age=3600", STYLESHEET)
}

/// The receipt's print button, as a file: the pages' Content-Security-Policy allows no inline script.
#[utoipa::path(get, path = "/static/receipt.js", operation_id = "receiptScript", tag = "Hosted pages", security(()),
    summary = "The receipt page's print button",
    responses((status = 200, description = "JavaScript", content_type = "text/javascript")))]
pub async fn receipt_script() -> Response {
    const SCRIPT: &str = "document.getElementById('print-button')?.addEventListener('click', () => window.print());\n";
    asset("text/javascript; charset=utf-8", "public, max-age=3600", SCRIPT)
}

#[utoipa::path(get, path = "/static/favicon.svg", operation_id = "favicon", tag = "Hosted pages", security(()),
    summary = "The pages' icon",
    responses((status = 200, description = "SVG", content_type = "image/svg+xml")))]
pub async fn favicon() -> Response {
    const ICON: &str = "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 16 16\">\
        <rect width=\"16\" height=\"16\" rx=\"4\" fill=\"#3182f6\"/></svg>";
    asset("image/svg+xml", "public, max-age=86400", ICON)
}

/// The browser SDK; a short cache so a new gateway version reaches shops quickly.
#[utoipa::path(get, path = "/sdk/paygate.js", operation_id = "sdk", tag = "Hosted pages", security(()),
    summary = "The browser SDK (`PayGate(clientKey)`, also `TossPayments(clientKey)`)",
    responses((status = 200, description = "JavaScript", content_type = "text/javascript")))]
pub async fn sdk() -> Response {
    asset("text/javascript; charset=utf-8", "public, max-age=300", SDK)
}

/// The browser SDK at Toss's script path (`js.tosspayments.com/v1/payment`), so only the script's host changes.
#[utoipa::path(get, path = "/v1/payment", operation_id = "sdkTossPath", tag = "Hosted pages", security(()),
    summary = "The browser SDK at Toss's script path",
    responses((status = 200, description = "JavaScript", content_type = "text/javascript")))]
pub async fn sdk_toss_path() -> Response {
    sdk().await
}

/// The card a hosted page's form sent: number (spaces and hyphens dropped) and expiry; never password digits or an
/// identity number, which the buyer's authentication replaces.
pub(crate) fn card_from_form(form: &HashMap<String, String>) -> Result<ClearCard, FieldError> {
    let digits: String = field(form, "cardNumber").chars().filter(char::is_ascii_digit).collect();
    let year = field(form, "expYear");
    let month = field(form, "expMonth");
    ClearCard::parse(CardText {
        number: &digits,
        expiration_year: year.trim(),
        expiration_month: month.trim(),
        password: None,
        identity_number: None,
    })
}

/// What a hosted page can answer, for the OpenAPI document (`responses(PageAnswer)`): every page answers HTML,
/// its errors included.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)] // Describes answers; the handlers build `Response`s.
pub enum PageAnswer {
    /// The page.
    #[response(status = 200, content_type = "text/html")]
    Page(String),
    /// On to the next step (`Location`).
    #[response(status = 303)]
    Next,
    /// An error page: the request cannot be used.
    #[response(status = 400, content_type = "text/html")]
    BadRequest(String),
    /// An error page: no such payment or registration.
    #[response(status = 404, content_type = "text/html")]
    NotFound(String),
    /// An error page: the payment is in no state for this step.
    #[response(status = 409, content_type = "text/html")]
    Conflict(String),
    /// An error page: the form is too large.
    #[response(status = 413, content_type = "text/html")]
    TooLarge(String),
    /// An error page: not a form.
    #[response(status = 415, content_type = "text/html")]
    NotAForm(String),
    /// An error page: the form cannot be read.
    #[response(status = 422, content_type = "text/html")]
    Unreadable(String),
    /// An error page: an internal error.
    #[response(status = 500, content_type = "text/html")]
    Internal(String),
}

/// A page's form body. What cannot be read as a form (another content type, bad encoding, too large) answers
/// paygate's error page with the rejection's status, never axum's plain-text rejection.
pub struct PageForm(pub HashMap<String, String>);

impl<S: Send + Sync> axum::extract::FromRequest<S> for PageForm {
    type Rejection = Response;

    async fn from_request(request: axum::extract::Request, state: &S) -> Result<Self, Self::Rejection> {
        let query: HashMap<String, String> = request
            .uri()
            .query()
            .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
            .unwrap_or_default();
        match Form::<HashMap<String, String>>::from_request(request, state).await {
            Ok(Form(form)) => Ok(PageForm(form)),
            Err(rejection) => {
                let lang = Lang::from_query(&query);
                Err(error_page(lang, rejection.status(), lang.t(Text::CannotContinue)))
            }
        }
    }
}

/// The query of a page: its `lang` (`ko`, the default, or `en`), and whatever else the page reads.
pub struct PageQuery(pub HashMap<String, String>);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for PageQuery {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut http::request::Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let mut query: HashMap<String, String> = parts
            .uri
            .query()
            .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
            .unwrap_or_default();
        // Without `?lang=`, the browser's `Accept-Language` decides (Korean unless English is preferred to it).
        if !query.contains_key("lang") {
            let header = parts
                .headers
                .get(header::ACCEPT_LANGUAGE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default();
            query.insert("lang".into(), preferred_lang(header).code().into());
        }
        Ok(PageQuery(query))
    }
}

/// An `Accept-Language` quality (`1`, `0.8`, `0.853`) in thousandths; `None` if it is not one.
fn quality_thousandths(text: &str) -> Option<u16> {
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    if fraction.len() > 3 || !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let fraction: u16 = format!("{fraction:0<3}").parse().ok()?;
    match whole {
        "0" => Some(fraction),
        "1" if fraction == 0 => Some(1000),
        _ => None,
    }
}

/// The page language an `Accept-Language` header prefers: English if an `en` tag outranks every `ko` tag, else
/// Korean (the default, also for an absent or unreadable header).
fn preferred_lang(header: &str) -> Lang {
    let mut best: Option<(u16, Lang)> = None;
    for item in header.split(',') {
        let mut parts = item.trim().split(';');
        let tag = parts.next().unwrap_or_default().trim().to_ascii_lowercase();
        let quality = parts
            .find_map(|p| p.trim().strip_prefix("q="))
            .map_or(Some(1000), quality_thousandths)
            .unwrap_or(0);
        let lang = match tag.split('-').next().unwrap_or_default() {
            "ko" => Lang::Ko,
            "en" => Lang::En,
            _ => continue,
        };
        if quality > 0 && best.is_none_or(|(q, _)| quality > q) {
            best = Some((quality, lang));
        }
    }
    best.map_or(Lang::Ko, |(_, lang)| lang)
}

pub(crate) fn field(form: &HashMap<String, String>, name: &str) -> String {
    form.get(name).cloned().unwrap_or_default()
}

/// `POST /checkout`: a merchant page's signed form.
#[utoipa::path(post, path = "/checkout", operation_id = "checkoutForm", tag = "Hosted pages", security(()),
    summary = "A merchant page's signed checkout form (HTML form POST, 인증결제): starts a payment on paygate's page",
    description = "The fields (`mId`, `mode`, `orderId`, `amount`, `goodsName`, `buyerName`, `buyerEmail`, `buyerTel`, `returnUrl`, `notificationUrl`, `timestamp`, `signature`, optionally `lang`) and how to sign them: docs/checkout.md. A valid form answers `303` to the checkout page; anything else an error page, with nothing created.",
    params(("lang" = Option<String>, Query, description = "`ko` (the default) or `en`")),
    request_body(content = inline(std::collections::HashMap<String, String>), content_type = "application/x-www-form-urlencoded", description = "The signed checkout form (docs/checkout.md)"),
    responses(PageAnswer))]
pub async fn entry(State(state): State<AppState>, PageQuery(query): PageQuery, PageForm(form): PageForm) -> Response {
    let lang = match form.get("lang").map(String::as_str) {
        Some("en") => Lang::En,
        _ => Lang::from_query(&query),
    };
    let checkout = FormCheckout {
        mid: field(&form, "mId"),
        mode: field(&form, "mode"),
        order_id: field(&form, "orderId"),
        amount: field(&form, "amount"),
        goods_name: field(&form, "goodsName"),
        buyer_name: field(&form, "buyerName"),
        buyer_email: field(&form, "buyerEmail"),
        buyer_tel: field(&form, "buyerTel"),
        return_url: field(&form, "returnUrl"),
        notification_url: field(&form, "notificationUrl"),
        timestamp: field(&form, "timestamp"),
        signature: field(&form, "signature"),
    };
    match state.app.form_checkout(checkout).await {
        Ok(id) => Redirect::to(&format!("/checkout/{id}?lang={}", lang.code())).into_response(),
        Err(FormError::Payment(PaymentError::Internal(internal))) => {
            tracing::error!(error = %internal, "checkout entry failed");
            error_page(lang, StatusCode::INTERNAL_SERVER_ERROR, lang.t(Text::InternalTrouble))
        }
        Err(FormError::Payment(PaymentError::DuplicateOrderId)) => error_page_with_detail(
            lang,
            StatusCode::CONFLICT,
            lang.t(Text::CannotContinue),
            "this order was already paid or started (DUPLICATED_ORDER_ID)",
        ),
        Err(error) => {
            // The buyer reads a sentence in the page's language; the merchant's developer gets the precise cause.
            let summary = match (lang, &error) {
                (Lang::Ko, FormError::Signature) => {
                    "결제 요청의 서명이 올바르지 않습니다. 상점 페이지에서 다시 시도해 주세요."
                }
                (Lang::Ko, FormError::Stale) => {
                    "결제 요청이 만료되었습니다. 상점 페이지를 새로 고친 뒤 다시 시도해 주세요."
                }
                (Lang::Ko, FormError::UnknownMerchant) => "가맹점 정보를 찾을 수 없습니다.",
                (Lang::Ko, _) => "결제 요청이 올바르지 않습니다. 상점에 문의해 주세요.",
                (Lang::En, FormError::Signature) => {
                    "The payment request's signature is not valid. Try again from the shop."
                }
                (Lang::En, FormError::Stale) => {
                    "The payment request has expired. Reload the shop's page and try again."
                }
                (Lang::En, FormError::UnknownMerchant) => "The merchant could not be found.",
                (Lang::En, _) => "The payment request is not valid. Contact the shop.",
            };
            let detail = error.to_string();
            tracing::info!(reason = %detail, "checkout form refused");
            error_page_with_detail(lang, StatusCode::BAD_REQUEST, summary, &detail)
        }
    }
}

fn card_form(
    state: &AppState,
    page_data: &HostedPage,
    lang: Lang,
    query: &HashMap<String, String>,
    path: &str,
) -> Response {
    let p = &page_data.payment;
    let error = query.get("error").map(String::as_str);
    let offered = state.app.hosted_methods(page_data);
    // The tab: the one asked for in the URL, else the one a retry concerns, else the payment's own.
    let asked = query
        .get("method")
        .and_then(|code| PaymentMethod::ALL.into_iter().find(|m| method_code(*m) == code));
    let retried = RetryReason::parse(error.unwrap_or_default()).method();
    let selected = [asked, retried, Some(p.method)]
        .into_iter()
        .flatten()
        .find(|m| offered.contains(m))
        .or_else(|| offered.first().copied())
        .unwrap_or(PaymentMethod::Card);
    let amount = p.total().amount_minor();
    page(&CardPage {
        lang,
        path,
        payment_id: p.id,
        merchant: page_data.merchant.name.as_str(),
        order: p.order_name.as_str(),
        amount: won(amount, lang),
        pay_label: pay_label(amount, lang),
        test_mode: p.mode == paygate_domain::api_key::Mode::Test,
        error: retry_text(lang, error),
        installment_months: &INSTALLMENT_MONTHS,
        methods: offered
            .iter()
            .map(|m| MethodTab {
                code: method_code(*m),
                label: method_label(*m, lang),
            })
            .collect(),
        selected: method_code(selected),
        banks: state
            .app
            .hosted_banks(page_data)
            .into_iter()
            .map(|bank| (bank.code(), bank.name()))
            .collect(),
        holder_name: p.customer_name.as_deref().unwrap_or_default(),
    })
}

fn challenge_form(page_data: &HostedPage, lang: Lang, error: Option<&str>, path: &str) -> Response {
    let p = &page_data.payment;
    let action = format!("/checkout/{}/challenge", p.id);
    page(&ChallengePage {
        lang,
        path,
        subtitle: format!(
            "{} · {}",
            page_data.merchant.name.as_str(),
            won(p.total().amount_minor(), lang)
        ),
        action: &action,
        sandbox_otp: page_data.sandbox_otp.as_deref(),
        error: retry_text(lang, error),
        tries_left: CHALLENGE_ATTEMPTS_MAX.saturating_sub(page_data.session.challenge_attempts),
    })
}

/// `2026-11-24 01:51:08` in KST, as receipts print it.
fn local_time(at: paygate_domain::time::UnixMillis) -> String {
    let text = rfc3339(at);
    text.get(..19).map(|t| t.replace('T', " ")).unwrap_or(text)
}

fn status_text(lang: Lang, status: PaymentStatus) -> &'static str {
    match (lang, status) {
        (Lang::Ko, PaymentStatus::Done) => "승인",
        (Lang::En, PaymentStatus::Done) => "Approved",
        (Lang::Ko, PaymentStatus::PartialCanceled) => "부분취소",
        (Lang::En, PaymentStatus::PartialCanceled) => "Partially canceled",
        (Lang::Ko, PaymentStatus::Canceled) => "취소",
        (Lang::En, PaymentStatus::Canceled) => "Canceled",
        (_, other) => other.as_str(),
    }
}

/// The alert for a retry reason named in the URL; unknown codes show nothing.
pub(crate) fn retry_text(lang: Lang, code: Option<&str>) -> Option<&'static str> {
    let text = match (RetryReason::parse(code.unwrap_or_default()), lang) {
        (RetryReason::None, _) => return None,
        (RetryReason::CardNumber, Lang::Ko) => "카드 번호를 다시 확인해 주세요.",
        (RetryReason::CardNumber, Lang::En) => "Check the card number.",
        (RetryReason::Expiry, Lang::Ko) => "유효기간을 다시 확인해 주세요.",
        (RetryReason::Expiry, Lang::En) => "Check the expiry date.",
        (RetryReason::Installment, Lang::Ko) => "선택할 수 없는 할부 개월입니다.",
        (RetryReason::Installment, Lang::En) => "That installment plan is not available.",
        (RetryReason::CardNotAccepted, Lang::Ko) => "이 가맹점에서 사용할 수 없는 카드입니다.",
        (RetryReason::CardNotAccepted, Lang::En) => "This card cannot be used here.",
        (RetryReason::OtpMismatch, Lang::Ko) => "인증번호가 일치하지 않습니다. 다시 입력해 주세요.",
        (RetryReason::OtpMismatch, Lang::En) => "The code does not match. Try again.",
        (RetryReason::StartAgain, Lang::Ko) => "카드 정보를 다시 입력해 주세요.",
        (RetryReason::StartAgain, Lang::En) => "Enter your card again.",
        (RetryReason::MethodNotOffered, Lang::Ko) => "이 주문에서 사용할 수 없는 결제수단입니다.",
        (RetryReason::MethodNotOffered, Lang::En) => "This payment method is not available for this order.",
        (RetryReason::BankNotOffered(_), Lang::Ko) => "은행을 선택해 주세요.",
        (RetryReason::BankNotOffered(_), Lang::En) => "Choose a bank.",
        (RetryReason::HolderName, Lang::Ko) => "입금자명을 30자 이내로 입력해 주세요.",
        (RetryReason::HolderName, Lang::En) => "Enter the depositor's name (at most 30 characters).",
        (RetryReason::BankUnavailable(_), Lang::Ko) => {
            "은행에 연결할 수 없습니다. 잠시 후 다시 시도하거나 다른 결제수단을 선택해 주세요."
        }
        (RetryReason::BankUnavailable(_), Lang::En) => {
            "The bank cannot be reached. Try again shortly or choose another payment method."
        }
        (RetryReason::TransferCancelled, Lang::Ko) => {
            "계좌이체가 취소되었습니다. 다시 시도하거나 다른 결제수단을 선택해 주세요."
        }
        (RetryReason::TransferCancelled, Lang::En) => {
            "The bank transfer was cancelled. Try again or choose another payment method."
        }
        (RetryReason::TransferNotAuthorized, Lang::Ko) => {
            "은행에서 출금이 승인되지 않았습니다. 다시 시도하거나 다른 결제수단을 선택해 주세요."
        }
        (RetryReason::TransferNotAuthorized, Lang::En) => {
            "Your bank did not approve the debit. Try again or choose another payment method."
        }
        (RetryReason::CashReceipt(_), Lang::Ko) => {
            "현금영수증 번호를 확인해 주세요. 소득공제는 휴대폰 또는 현금영수증 카드 번호, 지출증빙은 사업자등록번호를 넣습니다."
        }
        (RetryReason::CashReceipt(_), Lang::En) => {
            "Check the cash receipt number: a phone or cash-receipt card number for a deduction, a business number for an expense."
        }
    };
    Some(text)
}

fn waiting_page(lang: Lang, id: PaymentId) -> Response {
    page(&WaitingPage {
        lang,
        payment_id: id,
        refresh_secs: 2,
    })
}

fn result_page(lang: Lang, outcome: &HostedOutcome) -> Response {
    let (name, text, code) = match outcome {
        HostedOutcome::Authenticated => ("AUTHENTICATED", Text::Authenticated, None),
        HostedOutcome::Approved => ("APPROVED", Text::Approved, None),
        HostedOutcome::AwaitingDeposit => ("AWAITING_DEPOSIT", Text::AwaitingDeposit, None),
        HostedOutcome::Failed { code } => ("FAILED", Text::NotCompleted, Some(code.as_str())),
    };
    page(&ResultPage {
        lang,
        outcome: name,
        sentence: lang.t(text),
        code,
    })
}

fn payment_id(text: &str) -> Option<PaymentId> {
    PaymentId::parse(text).ok()
}

fn step_response(step: Result<HostedStep, PaymentError>, id: PaymentId, lang: Lang) -> Response {
    match step {
        Ok(HostedStep::Redirect(url)) => Redirect::to(&url).into_response(),
        Ok(HostedStep::Challenge) => {
            Redirect::to(&format!("/checkout/{id}/challenge?lang={}", lang.code())).into_response()
        }
        Ok(HostedStep::Pending) => waiting_page(lang, id),
        Ok(HostedStep::Outcome(outcome)) => result_page(lang, &outcome),
        Ok(HostedStep::Retry(reason)) => {
            // Only a reason code travels in the URL; the page says it in its own words, so nobody can put their
            // own text on paygate's page through a link.
            let query = match reason {
                RetryReason::None => String::new(),
                other => format!("&error={}", other.code()),
            };
            Redirect::to(&format!("/checkout/{id}?lang={}{query}", lang.code())).into_response()
        }
        Err(PaymentError::NotFound) => error_page(lang, StatusCode::NOT_FOUND, lang.t(Text::NoSuchPayment)),
        Err(PaymentError::Internal(internal)) => {
            tracing::error!(error = %internal, "hosted checkout failed");
            error_page(lang, StatusCode::INTERNAL_SERVER_ERROR, lang.t(Text::InternalTrouble))
        }
        // The buyer reads a sentence in the page's language; the precise cause is the developer's, smaller.
        Err(other) => error_page_with_detail(
            lang,
            StatusCode::BAD_REQUEST,
            lang.t(Text::CannotContinue),
            &other.to_string(),
        ),
    }
}

/// `GET /checkout/{paymentKey}`: the payment page, or where the payment now stands.
#[utoipa::path(get, path = "/checkout/{key}", operation_id = "checkoutPage", tag = "Hosted pages", security(()),
    summary = "The buyer's checkout page: the order and the card form",
    params(("key" = String, Path, description = "The payment's key"), ("lang" = Option<String>, Query, description = "`ko` (the default) or `en`")),
    responses(PageAnswer))]
pub async fn show(State(state): State<AppState>, Path(key): Path<String>, PageQuery(query): PageQuery) -> Response {
    let lang = Lang::from_query(&query);
    let Some(id) = payment_id(&key) else {
        return error_page(lang, StatusCode::NOT_FOUND, lang.t(Text::NoSuchPayment));
    };
    let page_data = match state.app.hosted_page(id).await {
        Ok(page_data) => page_data,
        Err(error) => return step_response(Err(error), id, lang),
    };
    let path = format!("/checkout/{id}");
    match page_data.payment.status {
        PaymentStatus::Ready if page_data.session.challenge_expires_at.is_some() => {
            Redirect::to(&format!("/checkout/{id}/challenge?lang={}", lang.code())).into_response()
        }
        PaymentStatus::Ready => card_form(&state, &page_data, lang, &query, &path),
        _ => {
            // Reloaded, or reached with the back button after paying: show where it stands, never the form.
            let step = state.app.hosted_result(id).await;
            step_response(step, id, lang)
        }
    }
}

/// `POST /checkout/{paymentKey}/pay`: the buyer's card.
#[utoipa::path(post, path = "/checkout/{key}/pay", operation_id = "checkoutPay", tag = "Hosted pages", security(()),
    summary = "The card form of the checkout page (posted by the page)",
    params(("key" = String, Path, description = "The payment's key"), ("lang" = Option<String>, Query, description = "`ko` (the default) or `en`")),
    request_body(content = inline(std::collections::HashMap<String, String>), content_type = "application/x-www-form-urlencoded", description = "`cardNumber`, `expYear`, `expMonth`, `installment`"),
    responses(PageAnswer))]
pub async fn pay(
    State(state): State<AppState>,
    Path(key): Path<String>,
    PageQuery(query): PageQuery,
    PageForm(form): PageForm,
) -> Response {
    let lang = Lang::from_query(&query);
    let Some(id) = payment_id(&key) else {
        return error_page(lang, StatusCode::NOT_FOUND, lang.t(Text::NoSuchPayment));
    };
    let entry = CardEntry {
        card: card_from_form(&form),
        installment: command::installment(field(&form, "installment").parse().unwrap_or(0)),
    };
    let step = state.app.hosted_pay(id, entry).await;
    step_response(step, id, lang)
}

/// `POST /checkout/{paymentKey}/cancel`: the buyer goes back to the shop without paying.
#[utoipa::path(post, path = "/checkout/{key}/cancel", operation_id = "checkoutCancel", tag = "Hosted pages", security(()),
    summary = "The checkout page's way back to the shop (posted by the page): the payment ends `ABORTED` with `USER_CANCEL`",
    description = "The browser goes to `failUrl?code=USER_CANCEL&message&orderId` (a form checkout: `returnUrl` with `status=FAILED`, `code=USER_CANCEL`, signed). A payment that is no longer `READY` only shows where it stands.",
    params(("key" = String, Path, description = "The payment's key"), ("lang" = Option<String>, Query, description = "`ko` (the default) or `en`")),
    responses(PageAnswer))]
pub async fn abandon(State(state): State<AppState>, Path(key): Path<String>, PageQuery(query): PageQuery) -> Response {
    let lang = Lang::from_query(&query);
    let Some(id) = payment_id(&key) else {
        return error_page(lang, StatusCode::NOT_FOUND, lang.t(Text::NoSuchPayment));
    };
    step_response(state.app.hosted_abandon(id).await, id, lang)
}

/// The cash receipt a bank method's form asks for (`cashReceiptType`, `cashReceiptNumber`).
fn receipt_from_form(form: &HashMap<String, String>) -> Result<Option<CashReceiptAsked>, FieldError> {
    let number = field(form, "cashReceiptNumber");
    CashReceiptAsked::parse(
        &field(form, "cashReceiptType"),
        Some(number.as_str()),
        "cashReceiptType",
        "cashReceiptNumber",
    )
}

/// `POST /checkout/{paymentKey}/virtual-account`: the buyer's bank and name for a virtual account.
#[utoipa::path(post, path = "/checkout/{key}/virtual-account", operation_id = "checkoutVirtualAccount", tag = "Hosted pages", security(()),
    summary = "The virtual-account form of the checkout page (posted by the page): the bank and the depositor's name",
    description = "Records the buyer's choice (the payment `IN_PROGRESS`); the browser then goes to `successUrl` for the merchant's confirm, which issues the account (`WAITING_FOR_DEPOSIT`). A form checkout issues it at once and returns to `returnUrl`.",
    params(("key" = String, Path, description = "The payment's key"), ("lang" = Option<String>, Query, description = "`ko` (the default) or `en`")),
    request_body(content = inline(std::collections::HashMap<String, String>), content_type = "application/x-www-form-urlencoded", description = "`bank` (a bank code), `holderName`, and optionally `cashReceiptType` (`미발행`, `소득공제`, `지출증빙`) with `cashReceiptNumber`"),
    responses(PageAnswer))]
pub async fn virtual_account(
    State(state): State<AppState>,
    Path(key): Path<String>,
    PageQuery(query): PageQuery,
    PageForm(form): PageForm,
) -> Response {
    let lang = Lang::from_query(&query);
    let Some(id) = payment_id(&key) else {
        return error_page(lang, StatusCode::NOT_FOUND, lang.t(Text::NoSuchPayment));
    };
    let step = state
        .app
        .hosted_virtual_account(
            id,
            &field(&form, "bank"),
            &field(&form, "holderName"),
            receipt_from_form(&form),
        )
        .await;
    step_response(step, id, lang)
}

/// `POST /checkout/{paymentKey}/transfer`: the buyer's bank for an account transfer; on to the bank's page.
#[utoipa::path(post, path = "/checkout/{key}/transfer", operation_id = "checkoutTransfer", tag = "Hosted pages", security(()),
    summary = "The transfer form of the checkout page (posted by the page): the bank, then the bank's own authorization page",
    params(("key" = String, Path, description = "The payment's key"), ("lang" = Option<String>, Query, description = "`ko` (the default) or `en`")),
    request_body(content = inline(std::collections::HashMap<String, String>), content_type = "application/x-www-form-urlencoded", description = "`bank` (a bank code), and optionally `cashReceiptType` (`미발행`, `소득공제`, `지출증빙`) with `cashReceiptNumber`"),
    responses(PageAnswer))]
pub async fn transfer(
    State(state): State<AppState>,
    Path(key): Path<String>,
    PageQuery(query): PageQuery,
    PageForm(form): PageForm,
) -> Response {
    let lang = Lang::from_query(&query);
    let Some(id) = payment_id(&key) else {
        return error_page(lang, StatusCode::NOT_FOUND, lang.t(Text::NoSuchPayment));
    };
    let step = state
        .app
        .hosted_transfer(id, &field(&form, "bank"), receipt_from_form(&form))
        .await;
    step_response(step, id, lang)
}

/// `GET /checkout/{paymentKey}/transfer`: where the bank sends the browser back, with `code` or `error`.
#[utoipa::path(get, path = "/checkout/{key}/transfer", operation_id = "checkoutTransferReturn", tag = "Hosted pages", security(()),
    summary = "The bank's return from its transfer authorization page",
    description = "With `code` (the bank's one-time authorization): the payment `IN_PROGRESS` and the browser on to `successUrl` for the merchant's confirm, which debits the account (a form checkout is debited at once). With `error` (`USER_CANCEL`, `AUTHENTICATION_FAILED`, …): the checkout page again, to try again or pick another method.",
    params(("key" = String, Path, description = "The payment's key"), ("code" = Option<String>, Query, description = "The bank's authorization code"), ("error" = Option<String>, Query, description = "Why the bank did not authorize"), ("lang" = Option<String>, Query, description = "`ko` (the default) or `en`")),
    responses(PageAnswer))]
pub async fn transfer_return(
    State(state): State<AppState>,
    Path(key): Path<String>,
    PageQuery(query): PageQuery,
) -> Response {
    let lang = Lang::from_query(&query);
    let Some(id) = payment_id(&key) else {
        return error_page(lang, StatusCode::NOT_FOUND, lang.t(Text::NoSuchPayment));
    };
    let step = state
        .app
        .hosted_transfer_return(
            id,
            query.get("code").map(String::as_str),
            query.get("error").map(String::as_str),
        )
        .await;
    step_response(step, id, lang)
}

/// `GET /checkout/{paymentKey}/challenge`: the OTP page.
#[utoipa::path(get, path = "/checkout/{key}/challenge", operation_id = "checkoutChallengePage", tag = "Hosted pages", security(()),
    summary = "The issuer's authentication (OTP) page of a checkout",
    params(("key" = String, Path, description = "The payment's key"), ("lang" = Option<String>, Query, description = "`ko` (the default) or `en`")),
    responses(PageAnswer))]
pub async fn challenge_page(
    State(state): State<AppState>,
    Path(key): Path<String>,
    PageQuery(query): PageQuery,
) -> Response {
    let lang = Lang::from_query(&query);
    let Some(id) = payment_id(&key) else {
        return error_page(lang, StatusCode::NOT_FOUND, lang.t(Text::NoSuchPayment));
    };
    match state.app.hosted_page(id).await {
        Ok(page_data) if page_data.payment.status == PaymentStatus::Ready => {
            let path = format!("/checkout/{id}/challenge");
            challenge_form(&page_data, lang, query.get("error").map(String::as_str), &path)
        }
        Ok(_) => Redirect::to(&format!("/checkout/{id}?lang={}", lang.code())).into_response(),
        Err(error) => step_response(Err(error), id, lang),
    }
}

/// `POST /checkout/{paymentKey}/challenge`: the buyer's OTP.
#[utoipa::path(post, path = "/checkout/{key}/challenge", operation_id = "checkoutChallenge", tag = "Hosted pages", security(()),
    summary = "The OTP form of the authentication page (posted by the page)",
    params(("key" = String, Path, description = "The payment's key"), ("lang" = Option<String>, Query, description = "`ko` (the default) or `en`")),
    request_body(content = inline(std::collections::HashMap<String, String>), content_type = "application/x-www-form-urlencoded", description = "`otp`"),
    responses(PageAnswer))]
pub async fn challenge(
    State(state): State<AppState>,
    Path(key): Path<String>,
    PageQuery(query): PageQuery,
    PageForm(form): PageForm,
) -> Response {
    let lang = Lang::from_query(&query);
    let Some(id) = payment_id(&key) else {
        return error_page(lang, StatusCode::NOT_FOUND, lang.t(Text::NoSuchPayment));
    };
    match state.app.hosted_challenge(id, &field(&form, "otp")).await {
        Ok(HostedStep::Retry(reason)) => Redirect::to(&format!(
            "/checkout/{id}/challenge?lang={}&error={}",
            lang.code(),
            reason.code()
        ))
        .into_response(),
        step => step_response(step, id, lang),
    }
}

/// The printable cash receipt (`templates/cash_receipt.html`).
#[derive(Template)]
#[template(path = "cash_receipt.html")]
struct CashReceiptPage<'a> {
    lang: Lang,
    path: &'a str,
    receipt_key: String,
    status: &'static str,
    rows: Vec<(&'static str, String)>,
}

/// `GET /cash-receipts/{receiptKey}/{token}`: a cash receipt's printable page (the `receiptUrl` of its answers).
#[utoipa::path(get, path = "/cash-receipts/{key}/{token}", operation_id = "cashReceiptPage", tag = "Hosted pages", security(()),
    summary = "A cash receipt's public page (현금영수증): the link in a CashReceipt's `receiptUrl`",
    params(("key" = String, Path, description = "The receipt's key"), ("token" = String, Path, description = "The page's token, from `receiptUrl`"), ("lang" = Option<String>, Query, description = "`ko` (the default) or `en`")),
    responses(PageAnswer))]
pub async fn cash_receipt_page(
    State(state): State<AppState>,
    Path((key, token)): Path<(String, String)>,
    PageQuery(query): PageQuery,
) -> Response {
    let lang = Lang::from_query(&query);
    let Ok(key) = paygate_domain::id::CashReceiptKey::parse(&key) else {
        return error_page(lang, StatusCode::NOT_FOUND, lang.t(Text::NoSuchReceipt));
    };
    let Ok(view) = state.app.cash_receipt_page(key, &token).await else {
        return error_page(lang, StatusCode::NOT_FOUND, lang.t(Text::NoSuchReceipt));
    };
    let r = &view.receipt;
    let ko = lang == Lang::Ko;
    let label = |ko_text: &'static str, en_text: &'static str| if ko { ko_text } else { en_text };
    let status = match (r.status, ko) {
        (paygate_domain::cash_receipt::IssueStatus::InProgress, true) => "발급 요청 중",
        (paygate_domain::cash_receipt::IssueStatus::InProgress, false) => "Requested",
        (paygate_domain::cash_receipt::IssueStatus::Completed, true) => "발급 완료",
        (paygate_domain::cash_receipt::IssueStatus::Completed, false) => "Issued",
        (paygate_domain::cash_receipt::IssueStatus::Failed, true) => "발급 실패",
        (paygate_domain::cash_receipt::IssueStatus::Failed, false) => "Failed",
    };
    let kind = match r.transaction {
        paygate_domain::cash_receipt::ReceiptTransaction::Confirm => label("승인", "Issue"),
        paygate_domain::cash_receipt::ReceiptTransaction::Cancel => label("취소", "Cancel"),
    };
    let mut rows = vec![
        (lang.t(Text::Merchant), view.merchant.name.as_str().to_owned()),
        (
            label("사업자등록번호", "Business registration no."),
            view.business
                .as_ref()
                .map(|b| b.business_number_display())
                .unwrap_or_else(|| r.business_number.clone()),
        ),
    ];
    if let Some(business) = &view.business {
        rows.push((label("대표자", "Representative"), business.representative.clone()));
        rows.push((label("주소", "Address"), business.address.clone()));
    }
    rows.extend([
        (lang.t(Text::Order), r.order_name.clone()),
        (label("용도", "Purpose"), r.receipt_type.korean().to_owned()),
        (label("거래 구분", "Transaction"), kind.to_owned()),
        (label("식별번호", "Identifier"), r.identity.masked()),
        (lang.t(Text::Amount), won(r.amount.amount_minor(), lang)),
        (lang.t(Text::TaxFree), won(r.tax_free.amount_minor(), lang)),
        (label("요청일시", "Requested at"), local_time(r.requested_at)),
        (lang.t(Text::Status), status.to_owned()),
        (
            label("국세청 승인번호", "Tax authority's number"),
            r.issue_number.clone().unwrap_or_else(|| "-".into()),
        ),
    ]);
    if let Some(message) = &r.failure_message {
        rows.push((label("실패 사유", "Reason"), message.clone()));
    }
    let path = format!("/cash-receipts/{key}/{token}");
    page(&CashReceiptPage {
        lang,
        path: &path,
        receipt_key: key.to_string(),
        status: r.status.as_str(),
        rows,
    })
}

/// `GET /receipts/{paymentKey}/{token}`: the printable receipt.
#[utoipa::path(get, path = "/receipts/{key}/{token}", operation_id = "receiptPage", tag = "Hosted pages", security(()),
    summary = "A payment's public receipt (매출전표): the link in a Payment's `receipt.url`",
    params(("key" = String, Path, description = "The payment's key"), ("token" = String, Path, description = "The receipt's token, from `receipt.url`"), ("lang" = Option<String>, Query, description = "`ko` (the default) or `en`")),
    responses(PageAnswer))]
pub async fn receipt(
    State(state): State<AppState>,
    Path((key, token)): Path<(String, String)>,
    PageQuery(query): PageQuery,
) -> Response {
    let lang = Lang::from_query(&query);
    let Some(id) = payment_id(&key) else {
        return error_page(lang, StatusCode::NOT_FOUND, lang.t(Text::NoSuchReceipt));
    };
    let (view, merchant, business) = match state.app.receipt(id, &token).await {
        Ok(found) => found,
        Err(_) => return error_page(lang, StatusCode::NOT_FOUND, lang.t(Text::NoSuchReceipt)),
    };
    let path = format!("/receipts/{id}/{token}");
    page(&ReceiptPage {
        lang,
        path: &path,
        payment_id: id,
        rows: receipt_rows(lang, &view, &merchant, business.as_ref()),
    })
}

/// The receipt's lines, label and value, in print order.
fn receipt_rows(
    lang: Lang,
    view: &paygate_app::payments::PaymentView,
    merchant: &paygate_domain::merchant::Merchant,
    business: Option<&paygate_domain::merchant::BusinessProfile>,
) -> Vec<(&'static str, String)> {
    let p = &view.payment;
    let installment = match p.installment.months() {
        0 => lang.t(Text::LumpSum).to_owned(),
        months => format!("{months}{}", lang.t(Text::Months)),
    };
    let mut rows = vec![(
        lang.t(Text::Merchant),
        format!("{} ({})", merchant.name.as_str(), merchant.id),
    )];
    // The merchant's business (사업자 정보), as a 매출전표 prints it.
    if let Some(business) = business {
        rows.push((lang.t(Text::BusinessNumber), business.business_number_display()));
        rows.push((lang.t(Text::Representative), business.representative.clone()));
        rows.push((lang.t(Text::Address), business.address.clone()));
    }
    let card_company = p
        .approval
        .as_ref()
        .map(|a| paygate_app::billing::wire::card_company_name(&a.issuer_code))
        .filter(|name| !name.is_empty());
    rows.extend([
        (
            lang.t(Text::Order),
            format!("{} · {}", p.order_name.as_str(), p.order_id.as_str()),
        ),
        (lang.t(Text::CardCompany), card_company.unwrap_or("-").to_owned()),
        (
            lang.t(Text::Card),
            p.card.as_ref().map(|c| c.masked.as_str()).unwrap_or("-").to_owned(),
        ),
        (lang.t(Text::Installment), installment),
        (
            lang.t(Text::ApprovalNo),
            p.approval
                .as_ref()
                .map(|a| a.approval_number.as_str())
                .unwrap_or("-")
                .to_owned(),
        ),
        (
            lang.t(Text::ApprovedAt),
            p.approval
                .as_ref()
                .map(|a| local_time(a.approved_at))
                .unwrap_or_default(),
        ),
        (lang.t(Text::Amount), won(p.total().amount_minor(), lang)),
        (lang.t(Text::Supplied), won(p.amounts.supplied().amount_minor(), lang)),
        (lang.t(Text::Vat), won(p.amounts.vat().amount_minor(), lang)),
        (lang.t(Text::TaxFree), won(p.amounts.tax_free().amount_minor(), lang)),
    ]);
    for cancel in view
        .transactions
        .iter()
        .filter(|t| t.kind == TransactionKind::Cancel && t.status == TransactionStatus::Done)
    {
        let when = cancel.completed_at.map(local_time).unwrap_or_default();
        rows.push((
            lang.t(Text::Canceled),
            format!("-{} ({when})", won(cancel.amount.amount_minor(), lang)),
        ));
    }
    rows.push((lang.t(Text::Balance), won(p.balance.amount_minor(), lang)));
    rows.push((lang.t(Text::Status), status_text(lang, p.status).to_owned()));
    rows
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    const HOSTILE: &str = "<script>alert(\"x\")</script>'&amp;";
    // askama writes numeric character references.
    const ESCAPED: &str = "&#60;script&#62;alert(&#34;x&#34;)&#60;/script&#62;&#39;&#38;amp;";

    fn id() -> PaymentId {
        PaymentId::parse("pay_01KAR3Q5M2V6Y8Z0A1B2C3D4E5").unwrap()
    }

    fn assert_escaped(name: &str, html: &str, occurrences: usize) {
        assert!(
            !html.contains("<script>"),
            "{name}: raw markup reached the page:\n{html}"
        );
        assert!(!html.contains("\"x\""), "{name}: a raw quote reached the page:\n{html}");
        assert_eq!(html.matches(ESCAPED).count(), occurrences, "{name}:\n{html}");
    }

    /// Every page, in both languages, with a merchant's name, an order's name and every other text the page shows
    /// set to markup: it reaches the HTML escaped, each time.
    #[test]
    fn hostile_values_are_escaped_on_every_page() {
        for lang in [Lang::Ko, Lang::En] {
            let card = CardPage {
                lang,
                path: "/checkout/pay_01KAR3Q5M2V6Y8Z0A1B2C3D4E5",
                payment_id: id(),
                merchant: HOSTILE,
                order: HOSTILE,
                amount: won(15_000, lang),
                pay_label: pay_label(15_000, lang),
                test_mode: true,
                error: retry_text(lang, Some("card_number")),
                installment_months: &INSTALLMENT_MONTHS,
                methods: Vec::new(),
                selected: "card",
                banks: Vec::new(),
                holder_name: HOSTILE,
            };
            assert_escaped("card", &card.render().unwrap(), 2);
            // The virtual-account form shows the buyer's name as the depositor's, escaped.
            let account = CardPage {
                selected: "virtual-account",
                ..card
            };
            assert_escaped("virtual account", &account.render().unwrap(), 3);
            let challenge = ChallengePage {
                lang,
                path: "/checkout/pay_01KAR3Q5M2V6Y8Z0A1B2C3D4E5/challenge",
                subtitle: format!("{HOSTILE} · {}", won(15_000, lang)),
                action: "/checkout/pay_01KAR3Q5M2V6Y8Z0A1B2C3D4E5/challenge",
                sandbox_otp: Some(HOSTILE),
                error: None,
                tries_left: 2,
            };
            assert_escaped("challenge", &challenge.render().unwrap(), 2);
            let error = ErrorPage {
                lang,
                summary: HOSTILE,
                detail: Some(HOSTILE),
            };
            assert_escaped("error", &error.render().unwrap(), 2);
            let result = ResultPage {
                lang,
                outcome: "FAILED",
                sentence: lang.t(Text::NotCompleted),
                code: Some(HOSTILE),
            };
            assert_escaped("result", &result.render().unwrap(), 1);
            let receipt = ReceiptPage {
                lang,
                path: "/receipts/pay_01KAR3Q5M2V6Y8Z0A1B2C3D4E5/token",
                payment_id: id(),
                rows: vec![
                    (lang.t(Text::Merchant), format!("{HOSTILE} (mid_1)")),
                    (lang.t(Text::Order), format!("{HOSTILE} · order-1")),
                ],
            };
            assert_escaped("receipt", &receipt.render().unwrap(), 2);
        }
    }

    /// A page's path is ours (a payment key), but it is escaped in the language switch like everything else.
    #[test]
    fn the_language_switch_and_the_waiting_page_escape_too() {
        let receipt = ReceiptPage {
            lang: Lang::Ko,
            path: HOSTILE,
            payment_id: id(),
            rows: vec![],
        };
        let html = receipt.render().unwrap();
        assert_escaped("switch", &html, 1);
        assert!(html.contains("?lang=en\" lang=\"en\">English</a>"), "{html}");
        let waiting = WaitingPage {
            lang: Lang::En,
            payment_id: id(),
            refresh_secs: 2,
        }
        .render()
        .unwrap();
        assert!(waiting.contains("<html lang=\"en\">"), "{waiting}");
        assert!(
            waiting.contains("<meta http-equiv=\"refresh\" content=\"2\">"),
            "{waiting}"
        );
        assert!(
            waiting.contains("href=\"/checkout/pay_01KAR3Q5M2V6Y8Z0A1B2C3D4E5?lang=en\""),
            "{waiting}"
        );
    }

    #[test]
    fn accept_language_picks_the_page_language() {
        for (header, lang) in [
            ("", Lang::Ko),
            ("en-US,en;q=0.9", Lang::En),
            ("ko-KR,ko;q=0.9,en-US;q=0.8", Lang::Ko),
            ("fr-FR, en;q=0.5, ko;q=0.4", Lang::En),
            ("en;q=0, ko;q=0.1", Lang::Ko),
            ("de, fr", Lang::Ko),
        ] {
            assert!(preferred_lang(header) == lang, "{header}");
        }
    }

    /// The card page keeps what the black-box and browser suites rely on: its form, labels, and no inline script.
    #[test]
    fn card_page_keeps_its_form_and_loads_no_inline_script() {
        let html = CardPage {
            lang: Lang::En,
            path: "/checkout/pay_01KAR3Q5M2V6Y8Z0A1B2C3D4E5",
            payment_id: id(),
            merchant: "Demo Shop",
            order: "머그컵",
            amount: won(20_000, Lang::En),
            pay_label: pay_label(20_000, Lang::En),
            test_mode: false,
            error: None,
            installment_months: &INSTALLMENT_MONTHS,
            methods: [PaymentMethod::Card, PaymentMethod::VirtualAccount]
                .map(|m| MethodTab {
                    code: method_code(m),
                    label: method_label(m, Lang::En),
                })
                .into(),
            selected: "card",
            banks: vec![("06", "KB국민은행")],
            holder_name: "",
        }
        .render()
        .unwrap();
        for needle in [
            "<!doctype html>",
            "<html lang=\"en\">",
            "<title>Checkout · paygate</title>",
            "<a id=\"method-virtual-account\" href=\"/checkout/pay_01KAR3Q5M2V6Y8Z0A1B2C3D4E5?lang=en&amp;method=virtual-account\">Virtual account</a>",
            "<a id=\"method-card\" href=\"/checkout/pay_01KAR3Q5M2V6Y8Z0A1B2C3D4E5?lang=en&amp;method=card\" aria-current=\"page\">Card</a>",
            "id=\"card-form\" method=\"post\" action=\"/checkout/pay_01KAR3Q5M2V6Y8Z0A1B2C3D4E5/pay?lang=en\"",
            "<label for=\"card-number\">Card number</label>",
            "pattern=\"[0-9 \\-]{13,23}\"",
            "<option value=\"12\">12 months</option>",
            "<button id=\"pay-button\" type=\"submit\">Pay ₩20,000</button>",
            "<a href=\"/checkout/pay_01KAR3Q5M2V6Y8Z0A1B2C3D4E5?lang=ko\" lang=\"ko\">한국어</a>",
        ] {
            assert!(html.contains(needle), "page lacks {needle}:\n{html}");
        }
        assert!(!html.contains("<script"), "{html}");
        assert!(!html.contains("id=\"error\""), "{html}");
        assert!(!html.contains("class=\"sandbox\""), "{html}");
    }
}
