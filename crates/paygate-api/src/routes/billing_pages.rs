//! The buyer's billing-key registration pages (`/billing/{id}`: the card, then the issuer's challenge), and the
//! API that starts a registration (`POST /v1/billing/sessions`, used by the SDK's `requestBillingAuth`) and
//! exchanges its `authKey` (`POST /v1/billing/authorizations/issue`, Toss's).

use askama::Template;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Extension, Json};
use paygate_app::auth::Caller;
use paygate_app::billing::hosted::{AuthPage, AuthStep, StartAuthCommand};
use paygate_app::billing::BillingError;
use paygate_app::payments::command::{Customer, FieldError, RedirectUrl};
use paygate_app::payments::hosted::RetryReason;
use paygate_domain::api_key::Mode;
use paygate_domain::billing::CustomerKey;
use paygate_domain::billing_auth::BillingAuthStatus;
use paygate_domain::id::BillingAuthId;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::billing::render_key;
use super::hosted::{
    card_from_form, error_page, field, page, retry_text, ChallengePage, Lang, PageAnswer, PageForm, PageQuery, Text,
};
use crate::error::{billing_error_ref, field_error, ApiError};
use crate::extract::ApiJson;
use crate::middleware::auth::SecretCaller;
use crate::middleware::idempotency::{renderer, respond, IdempotencyHeader};
use crate::wire::rfc3339;
use crate::AppState;

/// `POST /v1/billing/sessions`: what the SDK's `requestBillingAuth` sends.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StartBody {
    #[schema(
        example = "customer-1042",
        min_length = 2,
        max_length = 300,
        pattern = "^[A-Za-z0-9_=.@-]+$"
    )]
    customer_key: String,
    /// Where the buyer returns with `customerKey` and `authKey`: an absolute http(s) URL.
    #[schema(min_length = 1, max_length = 2048, example = "https://shop.example/billing/success")]
    success_url: String,
    /// Where the buyer returns with `code` and `message` when the registration fails or is abandoned.
    #[schema(min_length = 1, max_length = 2048, example = "https://shop.example/billing/fail")]
    fail_url: String,
    customer_name: Option<String>,
    customer_email: Option<String>,
}

/// A registration, as `POST /v1/billing/sessions` answers it.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = BillingSession)]
pub struct SessionBody {
    #[schema(example = "bau_01M8XB3ZP6M2N4B8V1C5X7Z9K0")]
    session_id: String,
    customer_key: String,
    #[schema(schema_with = auth_status)]
    status: &'static str,
    #[schema(schema_with = paygate_app::schema::mode)]
    mode: &'static str,
    #[schema(schema_with = paygate_app::schema::instant)]
    expires_at: String,
    /// Where to send the buyer.
    checkout: UrlBody,
}

fn auth_status() -> utoipa::openapi::Object {
    paygate_app::schema::string_enum(BillingAuthStatus::ALL.map(|s| s.as_str()))
}

#[derive(Serialize, ToSchema)]
#[schema(as = BillingSessionUrl)]
struct UrlBody {
    url: String,
}

/// Toss's `POST /v1/billing/authorizations/issue` body.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IssueBody {
    /// From the success redirect: 1 to 300 characters, valid 10 minutes, exchanged once.
    #[schema(min_length = 1, max_length = 300)]
    auth_key: String,
    /// The `customerKey` the registration was started for.
    #[schema(
        example = "customer-1042",
        min_length = 2,
        max_length = 300,
        pattern = "^[A-Za-z0-9_=.@-]+$"
    )]
    customer_key: String,
}

/// The longest `authKey` accepted (Toss: 300).
const AUTH_KEY_LEN_MAX: usize = 300;

impl TryFrom<StartBody> for StartAuthCommand {
    type Error = FieldError;

    fn try_from(body: StartBody) -> Result<StartAuthCommand, FieldError> {
        let customer_key = CustomerKey::parse(&body.customer_key).map_err(|e| FieldError::invalid("customerKey", e))?;
        let success_url = RedirectUrl::parse(Some(body.success_url), "successUrl")?
            .ok_or_else(|| FieldError::missing("successUrl"))?;
        let fail_url =
            RedirectUrl::parse(Some(body.fail_url), "failUrl")?.ok_or_else(|| FieldError::missing("failUrl"))?;
        Ok(StartAuthCommand {
            customer_key,
            success_url,
            fail_url,
            customer: Customer::parse(body.customer_name, body.customer_email)?,
        })
    }
}

/// Starts a registration; allowed with the client key (the browser SDK).
#[utoipa::path(post, path = "/v1/billing/sessions", operation_id = "startBillingAuth", tag = "Billing",
    summary = "Start a card registration on paygate's page (paygate's; the SDK's `requestBillingAuth` calls it)",
    description = "Client key allowed (the browser SDK); `successUrl`/`failUrl` must then be on one of the merchant's `redirectOrigins`.",
    request_body(content = StartBody, example = json!({"customerKey": "customer-1042", "successUrl": "https://shop.example/billing/success", "failUrl": "https://shop.example/billing/fail"})),
    responses((status = 200, description = "Started: send the buyer to `checkout.url`", body = SessionBody)))]
pub async fn start(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiJson(body): ApiJson<StartBody>,
) -> Result<Json<SessionBody>, ApiError> {
    let command = StartAuthCommand::try_from(body).map_err(|e| field_error(&e))?;
    let auth = state
        .app
        .start_billing_auth(&caller, command)
        .await
        .map_err(|e| billing_error_ref(&e))?;
    Ok(Json(SessionBody {
        session_id: auth.id.to_string(),
        customer_key: auth.customer_key.as_str().to_owned(),
        status: auth.status.as_str(),
        mode: auth.mode.as_str(),
        expires_at: rfc3339(auth.expires_at),
        checkout: UrlBody {
            url: state.app.billing_auth_url(auth.id),
        },
    }))
}

/// Exchanges an `authKey` for the billing key (secret key).
#[utoipa::path(post, path = "/v1/billing/authorizations/issue", operation_id = "issueBillingKeyByAuthKey", tag = "Billing",
    summary = "Issue a billing key from a completed registration (authKey 로 빌링키 발급)",
    description = "Exchanging the same `authKey` again answers the same key.",
    request_body(content = IssueBody, example = json!({"authKey": "bak_…", "customerKey": "customer-1042"})),
    responses((status = 200, description = "Issued", body = paygate_app::billing::wire::BillingBody)))]
pub async fn issue(
    State(state): State<AppState>,
    SecretCaller(caller): SecretCaller,
    key: IdempotencyHeader,
    ApiJson(body): ApiJson<IssueBody>,
) -> Result<Response, ApiError> {
    if body.auth_key.is_empty() || body.auth_key.len() > AUTH_KEY_LEN_MAX {
        return Err(field_error(&FieldError::invalid(
            "authKey",
            "`authKey` must be 1 to 300 characters",
        )));
    }
    let customer_key =
        CustomerKey::parse(&body.customer_key).map_err(|e| field_error(&FieldError::invalid("customerKey", e)))?;
    let idempotency = key.with(renderer(render_key));
    let answer = state
        .app
        .issue_billing_key_from_auth(&caller, &body.auth_key, customer_key, idempotency)
        .await;
    Ok(respond(answer, render_key))
}

/// The card page (`templates/billing_card.html`).
#[derive(Template)]
#[template(path = "billing_card.html")]
struct CardPage<'a> {
    lang: Lang,
    path: &'a str,
    auth_id: BillingAuthId,
    merchant: &'a str,
    test_mode: bool,
    error: Option<&'static str>,
}

fn auth_id(text: &str) -> Option<BillingAuthId> {
    BillingAuthId::parse(text).ok()
}

fn not_found(lang: Lang) -> Response {
    error_page(lang, StatusCode::NOT_FOUND, "no such card registration")
}

fn step_response(step: Result<AuthStep, BillingError>, id: BillingAuthId, lang: Lang) -> Response {
    // Only a reason code travels in the URL; the page says it in its own words.
    let query = |reason: RetryReason| match reason {
        RetryReason::None => String::new(),
        other => format!("&error={}", other.code()),
    };
    match step {
        Ok(AuthStep::Redirect(url)) => Redirect::to(&url).into_response(),
        Ok(AuthStep::Card(reason)) => {
            Redirect::to(&format!("/billing/{id}?lang={}{}", lang.code(), query(reason))).into_response()
        }
        Ok(AuthStep::Challenge(reason)) => Redirect::to(&format!(
            "/billing/{id}/challenge?lang={}{}",
            lang.code(),
            query(reason)
        ))
        .into_response(),
        Err(BillingError::NotFound) => not_found(lang),
        Err(other) => {
            tracing::error!(error = %other, "billing registration page failed");
            error_page(
                lang,
                StatusCode::INTERNAL_SERVER_ERROR,
                "an internal error occurred; please try again",
            )
        }
    }
}

fn card_page(data: &AuthPage, lang: Lang, error: Option<&str>) -> Response {
    let path = format!("/billing/{}", data.auth.id);
    page(&CardPage {
        lang,
        path: &path,
        auth_id: data.auth.id,
        merchant: data.merchant.name.as_str(),
        test_mode: data.auth.mode == Mode::Test,
        error: retry_text(lang, error),
    })
}

/// `GET /billing/{id}`: the card form, or where the registration now stands.
#[utoipa::path(get, path = "/billing/{id}", operation_id = "billingPage", tag = "Hosted pages", security(()),
    summary = "The buyer's card-registration page (billing key): `checkout.url` of `POST /v1/billing/sessions`",
    params(("id" = String, Path, description = "The registration's ID (`sessionId`)"), ("lang" = Option<String>, Query, description = "`ko` (the default) or `en`")),
    responses(PageAnswer))]
pub async fn show(State(state): State<AppState>, Path(key): Path<String>, PageQuery(query): PageQuery) -> Response {
    let lang = Lang::from_query(&query);
    let Some(id) = auth_id(&key) else {
        return not_found(lang);
    };
    match state.app.billing_auth_page(id).await {
        Ok(data) if data.status == BillingAuthStatus::Ready => {
            card_page(&data, lang, query.get("error").map(String::as_str))
        }
        Ok(data) if data.status == BillingAuthStatus::Challenged && query.contains_key("error") => {
            // Asked to enter the card again (the issuer could not be reached): the form, with why.
            card_page(&data, lang, query.get("error").map(String::as_str))
        }
        Ok(data) if data.status == BillingAuthStatus::Challenged => {
            Redirect::to(&format!("/billing/{id}/challenge?lang={}", lang.code())).into_response()
        }
        Ok(_) => step_response(state.app.current_billing_auth_step(id).await, id, lang),
        Err(error) => step_response(Err(error), id, lang),
    }
}

/// `POST /billing/{id}/card`: the buyer's card.
#[utoipa::path(post, path = "/billing/{id}/card", operation_id = "billingCard", tag = "Hosted pages", security(()),
    summary = "The card form of the registration page (posted by the page)",
    params(("id" = String, Path, description = "The registration's ID (`sessionId`)"), ("lang" = Option<String>, Query, description = "`ko` (the default) or `en`")),
    request_body(content = inline(std::collections::HashMap<String, String>), content_type = "application/x-www-form-urlencoded", description = "`cardNumber`, `expYear`, `expMonth`"),
    responses(PageAnswer))]
pub async fn card(
    State(state): State<AppState>,
    Path(key): Path<String>,
    PageQuery(query): PageQuery,
    PageForm(form): PageForm,
) -> Response {
    let lang = Lang::from_query(&query);
    let Some(id) = auth_id(&key) else {
        return not_found(lang);
    };
    step_response(state.app.billing_auth_card(id, card_from_form(&form)).await, id, lang)
}

/// `GET /billing/{id}/challenge`: the issuer's code.
#[utoipa::path(get, path = "/billing/{id}/challenge", operation_id = "billingChallengePage", tag = "Hosted pages", security(()),
    summary = "The issuer's authentication (OTP) page of a registration",
    params(("id" = String, Path, description = "The registration's ID (`sessionId`)"), ("lang" = Option<String>, Query, description = "`ko` (the default) or `en`")),
    responses(PageAnswer))]
pub async fn challenge_page(
    State(state): State<AppState>,
    Path(key): Path<String>,
    PageQuery(query): PageQuery,
) -> Response {
    let lang = Lang::from_query(&query);
    let Some(id) = auth_id(&key) else {
        return not_found(lang);
    };
    match state.app.billing_auth_page(id).await {
        Ok(data) if data.status == BillingAuthStatus::Challenged => {
            let path = format!("/billing/{id}/challenge");
            let card = data.auth.card.as_ref().map(|c| c.masked.clone()).unwrap_or_default();
            page(&ChallengePage {
                lang,
                path: &path,
                subtitle: format!("{} · {card}", data.merchant.name.as_str()),
                action: &path,
                sandbox_otp: data.sandbox_otp.as_deref(),
                error: retry_text(lang, query.get("error").map(String::as_str)),
                tries_left: data.tries_left,
            })
        }
        Ok(_) => Redirect::to(&format!("/billing/{id}?lang={}", lang.code())).into_response(),
        Err(error) => step_response(Err(error), id, lang),
    }
}

/// `POST /billing/{id}/challenge`: the buyer's code.
#[utoipa::path(post, path = "/billing/{id}/challenge", operation_id = "billingChallenge", tag = "Hosted pages", security(()),
    summary = "The OTP form of a registration's authentication page (posted by the page)",
    params(("id" = String, Path, description = "The registration's ID (`sessionId`)"), ("lang" = Option<String>, Query, description = "`ko` (the default) or `en`")),
    request_body(content = inline(std::collections::HashMap<String, String>), content_type = "application/x-www-form-urlencoded", description = "`otp`"),
    responses(PageAnswer))]
pub async fn challenge(
    State(state): State<AppState>,
    Path(key): Path<String>,
    PageQuery(query): PageQuery,
    PageForm(form): PageForm,
) -> Response {
    let lang = Lang::from_query(&query);
    let Some(id) = auth_id(&key) else {
        return not_found(lang);
    };
    step_response(
        state.app.billing_auth_challenge(id, &field(&form, "otp")).await,
        id,
        lang,
    )
}
