//! The sandbox bank's own pages: where the buyer authorizes an account transfer (BANK-PROTOCOL.md, transfers).
//! A bank's page, not paygate's: the gateway only sends the browser here and reads the code it comes back with.
//! Rendered by askama (values escaped), with no script and nothing loaded from elsewhere.

use std::collections::HashMap;
use std::sync::Arc;

use askama::Template;
use axum::extract::{Path, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::Form;

use super::Shared;
use crate::bank::{AuthorizeRetry, AuthorizeStep};

const STYLESHEET: &str = "body{font-family:system-ui,sans-serif;background:#f2f4f6;margin:0}\
main{max-width:420px;margin:32px auto;background:#fff;padding:24px;border-radius:12px}\
.brand{font-weight:700;color:#1b64da}.sandbox{font-size:12px;color:#c00;margin-left:6px}\
label{display:block;margin-top:12px;font-size:14px}input{width:100%;box-sizing:border-box;padding:10px;font-size:16px}\
button{margin-top:16px;width:100%;padding:12px;font-size:16px;background:#1b64da;color:#fff;border:0;border-radius:8px}\
button.secondary{background:#e5e8eb;color:#333}.amount{font-size:24px;font-weight:700}\
.hint{font-size:12px;color:#6b7684}[role=alert]{color:#c00}\n";

#[derive(Template)]
#[template(path = "bank_authorize.html")]
struct AuthorizePage<'a> {
    bank_name: &'a str,
    amount: String,
    session_id: &'a str,
    open: bool,
    error: Option<&'static str>,
    tries_left: u32,
}

fn html(page: &impl Template, status: StatusCode) -> Response {
    let mut response = match page.render() {
        Ok(body) => (status, Html(body)).into_response(),
        Err(error) => {
            tracing::error!(%error, "the bank's page did not render");
            (StatusCode::INTERNAL_SERVER_ERROR, "internal error").into_response()
        }
    };
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'self'; form-action 'self' http: https:; frame-ancestors 'none'"),
    );
    response
}

fn won(amount: i64) -> String {
    let digits = amount.unsigned_abs().to_string();
    let mut grouped = String::new();
    for (index, c) in digits.chars().enumerate() {
        if index > 0 && (digits.len() - index).is_multiple_of(3) {
            grouped.push(',');
        }
        grouped.push(c);
    }
    format!("{grouped}원")
}

fn render(shared: &Shared, session_id: &str, error: Option<&'static str>) -> Response {
    let Some(view) = shared.bank.authorization(session_id) else {
        return (StatusCode::NOT_FOUND, "no such transfer").into_response();
    };
    let status = if error.is_some() {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    html(
        &AuthorizePage {
            bank_name: view.bank_code.name(),
            amount: won(view.amount.amount_minor()),
            session_id,
            open: view.open,
            error,
            tries_left: view.pin_tries_left,
        },
        status,
    )
}

pub(super) async fn stylesheet() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        STYLESHEET,
    )
        .into_response()
}

pub(super) async fn favicon() -> Response {
    const ICON: &str = "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 16 16\">\
        <rect width=\"16\" height=\"16\" rx=\"4\" fill=\"#1b64da\"/></svg>";
    (
        [
            (header::CONTENT_TYPE, "image/svg+xml"),
            (header::CACHE_CONTROL, "public, max-age=86400"),
        ],
        ICON,
    )
        .into_response()
}

pub(super) async fn authorize_page(State(shared): State<Arc<Shared>>, Path(session_id): Path<String>) -> Response {
    render(&shared, &session_id, None)
}

pub(super) async fn authorize(
    State(shared): State<Arc<Shared>>,
    Path(session_id): Path<String>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let field = |name: &str| form.get(name).map(String::as_str).unwrap_or_default();
    match shared
        .bank
        .authorize_transfer(&session_id, field("accountNumber"), field("holderName"), field("pin"))
    {
        None => (StatusCode::NOT_FOUND, "no such transfer").into_response(),
        Some(AuthorizeStep::Return(url)) => Redirect::to(&url).into_response(),
        Some(AuthorizeStep::Retry(reason)) => {
            let error = match reason {
                AuthorizeRetry::AccountNumber => "계좌번호를 확인해 주세요 (숫자 10~14자리).",
                AuthorizeRetry::HolderName => "예금주를 입력해 주세요.",
                AuthorizeRetry::Pin => "계좌 비밀번호가 일치하지 않습니다.",
            };
            render(&shared, &session_id, Some(error))
        }
    }
}

pub(super) async fn cancel(State(shared): State<Arc<Shared>>, Path(session_id): Path<String>) -> Response {
    match shared.bank.cancel_transfer(&session_id) {
        Some(url) => Redirect::to(&url).into_response(),
        None => (StatusCode::NOT_FOUND, "no such transfer").into_response(),
    }
}
