//! API key authentication: `Authorization: Basic base64("{key}:")` (Toss-style) or `Authorization: Bearer {key}`.

use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::HeaderMap;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use paygate_app::auth::{AuthError, Caller};
use paygate_domain::api_key::KeyKind;

use crate::error::{ApiError, ErrorCode};
use crate::AppState;

/// Authenticates every request it wraps and puts the [`Caller`] into the request's extensions.
pub async fn authenticate(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    let presented = match presented_key(request.headers()) {
        Ok(key) => key,
        Err(error) => return error.into_response(),
    };
    match state.app.authenticate(&presented).await {
        Ok(caller) => {
            tracing::Span::current().record("merchant_id", tracing::field::display(caller.merchant.id));
            request.extensions_mut().insert(caller);
            next.run(request).await
        }
        Err(error) => auth_error(error).into_response(),
    }
}

fn presented_key(headers: &HeaderMap) -> Result<String, ApiError> {
    let missing = || {
        ApiError::new(
            ErrorCode::UnauthorizedKey,
            "send your secret key as `Authorization: Basic base64(secretKey + \":\")` or `Authorization: Bearer secretKey`",
        )
    };
    let header = headers.get(axum::http::header::AUTHORIZATION).ok_or_else(missing)?;
    let text = header.to_str().map_err(|_| missing())?;
    let (scheme, value) = text.split_once(' ').ok_or_else(missing)?;
    let value = value.trim();
    if scheme.eq_ignore_ascii_case("bearer") {
        return Ok(value.to_owned());
    }
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err(missing());
    }
    let decoded = base64::engine::general_purpose::STANDARD.decode(value).map_err(|_| {
        ApiError::new(
            ErrorCode::InvalidApiKey,
            "the Basic credentials are not valid base64 of `secretKey:`",
        )
    })?;
    let decoded = String::from_utf8(decoded).map_err(|_| {
        ApiError::new(
            ErrorCode::InvalidApiKey,
            "the Basic credentials are not valid base64 of `secretKey:`",
        )
    })?;
    // The key is the user name; the password part is empty by convention and ignored.
    let user = decoded.split_once(':').map(|(user, _)| user).unwrap_or(&decoded);
    Ok(user.to_owned())
}

fn auth_error(error: AuthError) -> ApiError {
    match error {
        AuthError::Malformed(why) => {
            ApiError::new(ErrorCode::InvalidApiKey, format!("the API key is malformed: {why}"))
        }
        AuthError::Unknown => ApiError::new(ErrorCode::UnauthorizedKey, "the API key is not valid"),
        AuthError::Revoked => ApiError::new(
            ErrorCode::RevokedApiKey,
            "the API key has been revoked; use its replacement",
        ),
        AuthError::MerchantInactive => {
            ApiError::new(ErrorCode::MerchantNotActive, "the merchant account is not active")
        }
        AuthError::App(paygate_app::AppError::Store(store)) => store.into(),
        AuthError::App(other) => ApiError::internal(&other),
    }
}

/// A caller authenticated with a secret key. Client keys (browser SDK) are refused here.
#[derive(Debug, Clone)]
pub struct SecretCaller(pub Caller);

impl<S: Send + Sync> FromRequestParts<S> for SecretCaller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let caller = parts
            .extensions
            .get::<Caller>()
            .cloned()
            .ok_or_else(|| ApiError::internal(&"route is not behind the authentication layer"))?;
        if caller.key.kind != KeyKind::Secret {
            return Err(ApiError::new(
                ErrorCode::ClientKeyNotAllowed,
                "client keys can only start payments from a browser; use a secret key on your server",
            ));
        }
        Ok(SecretCaller(caller))
    }
}
