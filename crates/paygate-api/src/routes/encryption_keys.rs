//! `GET /v1/merchants/me/encryption-key` and `POST /v1/merchants/me/encryption-key/rotate`: the key a merchant
//! uses to send card fields as `encData` (see docs/encdata.md). Secret keys only, per mode.

use axum::extract::State;
use axum::Json;
use serde::Serialize;

use crate::error::ApiError;
use crate::middleware::auth::SecretCaller;
use crate::routes::payments::payment_error;
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

pub async fn rotate(
    State(state): State<AppState>,
    SecretCaller(caller): SecretCaller,
) -> Result<Json<EncryptionKeyBody>, ApiError> {
    let key = state.app.rotate_encryption_key(&caller).await.map_err(payment_error)?;
    Ok(Json(body(&caller, &key)))
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
