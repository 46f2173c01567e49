//! The pages buyers see: the checkout entry (a merchant's signed form POST), the payment page, the OTP challenge,
//! a waiting page, errors, and the receipt (매출전표). Server-rendered HTML that works without JavaScript, in Korean
//! (default) and English (`?lang=en`), with its stylesheet served by the gateway itself.

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::Form;
use paygate_app::payments::hosted::{FormCheckout, FormError, HostedPage, HostedStep, RetryReason};
use paygate_app::payments::{CardFields, PaymentError};
use paygate_domain::id::PaymentId;
use paygate_domain::payment::{PaymentStatus, TransactionKind, TransactionStatus};

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
    fn from_query(query: &HashMap<String, String>) -> Lang {
        match query.get("lang").map(String::as_str) {
            Some("en") => Lang::En,
            _ => Lang::Ko,
        }
    }

    fn code(self) -> &'static str {
        match self {
            Lang::Ko => "ko",
            Lang::En => "en",
        }
    }

    /// The page's words. One table, so a missing translation is a compile error, not a blank label.
    fn t(self, key: Text) -> &'static str {
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
        }
    }
}

#[derive(Clone, Copy)]
enum Text {
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
}

/// Escapes text for HTML element content and attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            other => out.push(other),
        }
    }
    out
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

fn page(lang: Lang, title: &str, body: &str, refresh_secs: Option<u32>) -> Response {
    let refresh = refresh_secs
        .map(|s| format!("<meta http-equiv=\"refresh\" content=\"{s}\">"))
        .unwrap_or_default();
    let html = format!(
        "<!doctype html><html lang=\"{lang}\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">{refresh}\
         <title>{title} · paygate</title><link rel=\"icon\" href=\"/static/favicon.svg\" type=\"image/svg+xml\">\
         <link rel=\"stylesheet\" href=\"/static/checkout.css\"></head>\
         <body><main>{body}</main></body></html>",
        lang = lang.code(),
        title = escape(title),
    );
    let mut response = Html(html).into_response();
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

fn error_page(lang: Lang, status: StatusCode, message: &str) -> Response {
    let body = format!(
        "<h1>{}</h1><p role=\"alert\" id=\"error\">{}</p>",
        escape(lang.t(Text::ErrorTitle)),
        escape(message)
    );
    let mut response = page(lang, lang.t(Text::ErrorTitle), &body, None);
    *response.status_mut() = status;
    response
}

/// An error page with a sentence for the buyer and, smaller, the precise cause for the merchant's developer.
fn error_page_with_detail(lang: Lang, status: StatusCode, summary: &str, detail: &str) -> Response {
    let body = format!(
        "<h1>{}</h1><p role=\"alert\" id=\"error\">{}</p><p class=\"notice\" id=\"error-detail\" lang=\"en\">{}</p>",
        escape(lang.t(Text::ErrorTitle)),
        escape(summary),
        escape(detail)
    );
    let mut response = page(lang, lang.t(Text::ErrorTitle), &body, None);
    *response.status_mut() = status;
    response
}

fn header_html(lang: Lang, path: &str) -> String {
    let other = match lang {
        Lang::Ko => format!("<a href=\"{}?lang=en\" lang=\"en\">English</a>", escape(path)),
        Lang::En => format!("<a href=\"{}?lang=ko\" lang=\"ko\">한국어</a>", escape(path)),
    };
    format!("<header><span class=\"brand\">paygate</span><nav class=\"no-print\">{other}</nav></header>")
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

pub async fn stylesheet() -> Response {
    asset("text/css; charset=utf-8", "public, max-age=3600", STYLESHEET)
}

/// The receipt's print button, as a file: the pages' Content-Security-Policy allows no inline script.
pub async fn receipt_script() -> Response {
    const SCRIPT: &str = "document.getElementById('print-button')?.addEventListener('click', () => window.print());\n";
    asset("text/javascript; charset=utf-8", "public, max-age=3600", SCRIPT)
}

pub async fn favicon() -> Response {
    const ICON: &str = "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 16 16\">\
        <rect width=\"16\" height=\"16\" rx=\"4\" fill=\"#3182f6\"/></svg>";
    asset("image/svg+xml", "public, max-age=86400", ICON)
}

/// The browser SDK; a short cache so a new gateway version reaches shops quickly.
pub async fn sdk() -> Response {
    asset("text/javascript; charset=utf-8", "public, max-age=300", SDK)
}

fn field(form: &HashMap<String, String>, name: &str) -> String {
    form.get(name).cloned().unwrap_or_default()
}

/// `POST /checkout`: a merchant page's signed form.
pub async fn entry(
    State(state): State<AppState>,
    Query(query): Query<HashMap<String, String>>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
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
            error_page(
                lang,
                StatusCode::INTERNAL_SERVER_ERROR,
                "an internal error occurred; please try again",
            )
        }
        Err(FormError::Payment(PaymentError::DuplicateOrderId)) => error_page(
            lang,
            StatusCode::CONFLICT,
            "this order was already paid or started; return to the shop",
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

fn card_form(page_data: &HostedPage, lang: Lang, error: Option<&str>, path: &str) -> Response {
    let p = &page_data.payment;
    let error_html = retry_text(lang, error);
    let mut installments = format!("<option value=\"0\">{}</option>", escape(lang.t(Text::LumpSum)));
    for months in [2u8, 3, 4, 5, 6, 10, 12] {
        installments.push_str(&format!(
            "<option value=\"{months}\">{months}{}</option>",
            lang.t(Text::Months)
        ));
    }
    let test_notice = match p.mode {
        paygate_domain::api_key::Mode::Test => format!("<p class=\"sandbox\">{}</p>", escape(lang.t(Text::TestMode))),
        paygate_domain::api_key::Mode::Live => String::new(),
    };
    let body = format!(
        "{header}<h1>{title}</h1><p class=\"merchant\">{merchant}</p>\
         <dl class=\"summary\"><dt>{order_label}</dt><dd>{order}</dd></dl>\
         <p class=\"amount\" aria-label=\"{amount_label}\">{amount}</p>{test_notice}{error_html}\
         <form id=\"card-form\" method=\"post\" action=\"/checkout/{key}/pay?lang={lang}\" autocomplete=\"on\">\
         <label for=\"card-number\">{card_label}</label>\
         <input id=\"card-number\" name=\"cardNumber\" inputmode=\"numeric\" autocomplete=\"cc-number\" \
                required pattern=\"[0-9 \\-]{{13,23}}\" maxlength=\"23\">\
         <div class=\"row\"><div><label for=\"exp-month\">{month_label}</label>\
         <input id=\"exp-month\" name=\"expMonth\" inputmode=\"numeric\" autocomplete=\"cc-exp-month\" required \
                pattern=\"[0-9]{{1,2}}\" maxlength=\"2\"></div>\
         <div><label for=\"exp-year\">{year_label}</label>\
         <input id=\"exp-year\" name=\"expYear\" inputmode=\"numeric\" autocomplete=\"cc-exp-year\" required \
                pattern=\"[0-9]{{2}}\" maxlength=\"2\"></div></div>\
         <label for=\"installment\">{installment_label}</label>\
         <select id=\"installment\" name=\"installment\">{installments}</select>\
         <button id=\"pay-button\" type=\"submit\">{amount} {pay}</button></form>\
         <p class=\"notice\">{secure}</p>",
        header = header_html(lang, path),
        title = escape(lang.t(Text::Title)),
        merchant = escape(page_data.merchant.name.as_str()),
        order_label = escape(lang.t(Text::Order)),
        order = escape(p.order_name.as_str()),
        amount_label = escape(lang.t(Text::Amount)),
        amount = escape(&won(p.total().amount_minor(), lang)),
        key = p.id,
        lang = lang.code(),
        card_label = escape(lang.t(Text::CardNumber)),
        month_label = escape(lang.t(Text::ExpMonth)),
        year_label = escape(lang.t(Text::ExpYear)),
        installment_label = escape(lang.t(Text::Installment)),
        pay = escape(lang.t(Text::Pay)),
        secure = escape(lang.t(Text::Secure)),
    );
    page(lang, lang.t(Text::Title), &body, None)
}

fn challenge_form(page_data: &HostedPage, lang: Lang, error: Option<&str>, path: &str) -> Response {
    let p = &page_data.payment;
    let sandbox = page_data
        .sandbox_otp
        .as_ref()
        .map(|otp| {
            format!(
                "<p class=\"sandbox\">{} <strong id=\"sandbox-otp\">{}</strong></p>",
                escape(lang.t(Text::SandboxOtp)),
                escape(otp)
            )
        })
        .unwrap_or_default();
    let error_html = retry_text(lang, error);
    let body = format!(
        "{header}<h1>{title}</h1><p class=\"merchant\">{merchant} · {amount}</p><p>{text}</p>{sandbox}{error_html}\
         <form id=\"otp-form\" method=\"post\" action=\"/checkout/{key}/challenge?lang={lang}\">\
         <label for=\"otp\">{otp_label}</label>\
         <input id=\"otp\" name=\"otp\" inputmode=\"numeric\" autocomplete=\"one-time-code\" required \
                pattern=\"[0-9]{{6}}\" maxlength=\"6\" autofocus>\
         <button id=\"verify-button\" type=\"submit\">{verify}</button></form>",
        header = header_html(lang, path),
        title = escape(lang.t(Text::ChallengeTitle)),
        merchant = escape(page_data.merchant.name.as_str()),
        amount = escape(&won(p.total().amount_minor(), lang)),
        text = escape(lang.t(Text::ChallengeHint)),
        key = p.id,
        lang = lang.code(),
        otp_label = escape(lang.t(Text::Otp)),
        verify = escape(lang.t(Text::Verify)),
    );
    page(lang, lang.t(Text::ChallengeTitle), &body, None)
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
fn retry_text(lang: Lang, code: Option<&str>) -> String {
    let text = match (RetryReason::parse(code.unwrap_or_default()), lang) {
        (RetryReason::None, _) => return String::new(),
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
    };
    format!("<p role=\"alert\" id=\"error\">{}</p>", escape(text))
}

fn waiting_page(lang: Lang, id: PaymentId) -> Response {
    let body = format!(
        "<h1>{}</h1><p role=\"status\">{}</p><p class=\"notice\"><a href=\"/checkout/{id}?lang={}\">↻</a></p>",
        escape(lang.t(Text::Title)),
        escape(lang.t(Text::Waiting)),
        lang.code()
    );
    page(lang, lang.t(Text::Title), &body, Some(2))
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
        Ok(HostedStep::Retry(reason)) => {
            // Only a reason code travels in the URL; the page says it in its own words, so nobody can put their
            // own text on paygate's page through a link.
            let query = match reason {
                RetryReason::None => String::new(),
                other => format!("&error={}", other.code()),
            };
            Redirect::to(&format!("/checkout/{id}?lang={}{query}", lang.code())).into_response()
        }
        Err(PaymentError::NotFound) => error_page(lang, StatusCode::NOT_FOUND, "no such payment"),
        Err(PaymentError::Internal(internal)) => {
            tracing::error!(error = %internal, "hosted checkout failed");
            error_page(
                lang,
                StatusCode::INTERNAL_SERVER_ERROR,
                "an internal error occurred; please try again",
            )
        }
        Err(other) => error_page(lang, StatusCode::BAD_REQUEST, &other.to_string()),
    }
}

/// `GET /checkout/{paymentKey}`: the payment page, or where the payment now stands.
pub async fn show(
    State(state): State<AppState>,
    Path(key): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let lang = Lang::from_query(&query);
    let Some(id) = payment_id(&key) else {
        return error_page(lang, StatusCode::NOT_FOUND, "no such payment");
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
        PaymentStatus::Ready => card_form(&page_data, lang, query.get("error").map(String::as_str), &path),
        _ => {
            // Reloaded, or reached with the back button after paying: show where it stands, never the form.
            let step = state.app.hosted_result(id).await;
            step_response(step, id, lang)
        }
    }
}

/// `POST /checkout/{paymentKey}/pay`: the buyer's card.
pub async fn pay(
    State(state): State<AppState>,
    Path(key): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let lang = Lang::from_query(&query);
    let Some(id) = payment_id(&key) else {
        return error_page(lang, StatusCode::NOT_FOUND, "no such payment");
    };
    let digits: String = field(&form, "cardNumber")
        .chars()
        .filter(char::is_ascii_digit)
        .collect();
    let card = CardFields {
        card_number: digits,
        expiration_year: field(&form, "expYear").trim().to_owned(),
        expiration_month: field(&form, "expMonth").trim().to_owned(),
        identity_number: None,
        password: None,
    };
    let installment: u8 = field(&form, "installment").parse().unwrap_or(0);
    let step = state.app.hosted_pay(id, card, installment).await;
    step_response(step, id, lang)
}

/// `GET /checkout/{paymentKey}/challenge`: the OTP page.
pub async fn challenge_page(
    State(state): State<AppState>,
    Path(key): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let lang = Lang::from_query(&query);
    let Some(id) = payment_id(&key) else {
        return error_page(lang, StatusCode::NOT_FOUND, "no such payment");
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
pub async fn challenge(
    State(state): State<AppState>,
    Path(key): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let lang = Lang::from_query(&query);
    let Some(id) = payment_id(&key) else {
        return error_page(lang, StatusCode::NOT_FOUND, "no such payment");
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

/// `GET /receipts/{paymentKey}/{token}`: the printable receipt.
pub async fn receipt(
    State(state): State<AppState>,
    Path((key, token)): Path<(String, String)>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let lang = Lang::from_query(&query);
    let Some(id) = payment_id(&key) else {
        return error_page(lang, StatusCode::NOT_FOUND, "no such receipt");
    };
    let (view, merchant) = match state.app.receipt(id, &token).await {
        Ok(found) => found,
        Err(_) => return error_page(lang, StatusCode::NOT_FOUND, "no such receipt"),
    };
    let p = &view.payment;
    let mut rows = vec![
        (
            lang.t(Text::Merchant),
            escape(&format!("{} ({})", merchant.name.as_str(), merchant.id)),
        ),
        (
            lang.t(Text::Order),
            escape(&format!("{} · {}", p.order_name.as_str(), p.order_id.as_str())),
        ),
        (
            lang.t(Text::Card),
            escape(p.card.as_ref().map(|c| c.masked.as_str()).unwrap_or("-")),
        ),
        (
            lang.t(Text::Installment),
            escape(&match p.installment.months() {
                0 => lang.t(Text::LumpSum).to_owned(),
                months => format!("{months}{}", lang.t(Text::Months)),
            }),
        ),
        (
            lang.t(Text::ApprovalNo),
            escape(p.approval.as_ref().map(|a| a.approval_number.as_str()).unwrap_or("-")),
        ),
        (
            lang.t(Text::ApprovedAt),
            escape(
                &p.approval
                    .as_ref()
                    .map(|a| local_time(a.approved_at))
                    .unwrap_or_default(),
            ),
        ),
        (lang.t(Text::Amount), escape(&won(p.total().amount_minor(), lang))),
        (
            lang.t(Text::Supplied),
            escape(&won(p.amounts.supplied().amount_minor(), lang)),
        ),
        (lang.t(Text::Vat), escape(&won(p.amounts.vat().amount_minor(), lang))),
        (
            lang.t(Text::TaxFree),
            escape(&won(p.amounts.tax_free().amount_minor(), lang)),
        ),
    ];
    for cancel in view
        .transactions
        .iter()
        .filter(|t| t.kind == TransactionKind::Cancel && t.status == TransactionStatus::Done)
    {
        let when = cancel.completed_at.map(local_time).unwrap_or_default();
        rows.push((
            lang.t(Text::Canceled),
            escape(&format!("-{} ({when})", won(cancel.amount.amount_minor(), lang))),
        ));
    }
    rows.push((lang.t(Text::Balance), escape(&won(p.balance.amount_minor(), lang))));
    rows.push((lang.t(Text::Status), escape(status_text(lang, p.status))));
    let table: String = rows
        .iter()
        .map(|(label, value)| format!("<tr><th scope=\"row\">{}</th><td>{value}</td></tr>", escape(label)))
        .collect();
    let path = format!("/receipts/{id}/{token}");
    let body = format!(
        "{header}<h1>{title}</h1><table class=\"receipt\" id=\"receipt\">{table}</table>\
         <p class=\"notice\">paymentKey {id}</p>\
         <button class=\"no-print\" id=\"print-button\" type=\"button\">{print}</button>\
         <script src=\"/static/receipt.js\" defer></script>",
        header = header_html(lang, &path),
        title = escape(lang.t(Text::Receipt)),
        print = escape(lang.t(Text::Print)),
    );
    page(lang, lang.t(Text::Receipt), &body, None)
}
