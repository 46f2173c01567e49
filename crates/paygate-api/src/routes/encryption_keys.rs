//! `GET /v1/merchants/me/encryption-key` and `POST /v1/merchants/me/encryption-key/rotate`: the key a merchant
//! uses to send card fields as `encData` (see docs/encdata.md). Secret keys only, per mode.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::Json;
use paygate_app::encdata::EncDataKey;
use paygate_app::payments::PaymentError;
use serde::Serialize;

use crate::error::ApiError;
use crate::middleware::auth::SecretCaller;
use crate::middleware::idempotency::{json, renderer, respond, IdempotencyHeader};
use crate::routes::payments::{payment_error, payment_error_ref};
use crate::AppState;

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EncryptionKeyBody {
    key_version: u32,
    key: String,
    algorithm: &'static str,
    mode: &'static str,
}

fn body(caller: &paygate_app::auth::Caller, key: &paygate_app::encdata::EncDataKey) -> EncryptionKeyBody {
    EncryptionKeyBody {
        key_version: key.version(),
        key: key.to_base64(),
        algorithm: paygate_app::encdata::ALGORITHM,
        mode: caller.key.mode.as_str(),
    }
}

pub async fn get(
    State(state): State<AppState>,
    SecretCaller(caller): SecretCaller,
) -> Result<Json<EncryptionKeyBody>, ApiError> {
    let key = state.app.encryption_key(&caller).await.map_err(payment_error)?;
    Ok(Json(body(&caller, &key)))
}

/// The stored replay of a rotation names the new version without its key material (fetch it with `GET`):
/// keys are kept only sealed, never in an idempotency record.
pub async fn rotate(
    State(state): State<AppState>,
    SecretCaller(caller): SecretCaller,
    key: IdempotencyHeader,
) -> Response {
    let mode = caller.key.mode;
    let stored = move |result: &Result<EncDataKey, PaymentError>| match result {
        Ok(key) => json(
            StatusCode::OK,
            &serde_json::json!({
                "keyVersion": key.version(),
                "key": null,
                "algorithm": paygate_app::encdata::ALGORITHM,
                "mode": mode.as_str(),
            }),
        ),
        Err(error) => Err(payment_error_ref(error)),
    };
    let answer = state
        .app
        .rotate_encryption_key(&caller, key.with(renderer(stored)))
        .await;
    respond(answer, |result| match result {
        Ok(key) => json(StatusCode::OK, &body(&caller, key)),
        Err(error) => Err(payment_error_ref(error)),
    })
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CheckoutKeyBody {
    key: String,
    algorithm: &'static str,
    mode: &'static str,
}

/// `GET /v1/merchants/me/checkout-key`: the key that signs checkout forms and return URLs (HMAC-SHA256).
pub async fn checkout_key(
    State(state): State<AppState>,
    SecretCaller(caller): SecretCaller,
) -> Result<Json<CheckoutKeyBody>, ApiError> {
    use base64::Engine;
    let key = state
        .app
        .checkout_key_for(caller.merchant.id, caller.key.mode)
        .await
        .map_err(payment_error)?;
    Ok(Json(CheckoutKeyBody {
        key: base64::engine::general_purpose::STANDARD.encode(key),
        algorithm: "HMAC-SHA256",
        mode: caller.key.mode.as_str(),
    }))
}
