//! `GET /v1/merchants/me/encryption-key` and `POST /v1/merchants/me/encryption-key/rotate`: the key a merchant
//! uses to send card fields as `encData` (see docs/encdata.md). Secret keys only, per mode.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::Json;
use paygate_app::encdata::EncDataKey;
use paygate_app::payments::PaymentError;
use serde::Serialize;
use utoipa::ToSchema;

use crate::error::ApiError;
use crate::middleware::auth::SecretCaller;
use crate::middleware::idempotency::{json, renderer, respond, IdempotencyHeader};
use crate::routes::payments::{payment_error, payment_error_ref};
use crate::AppState;

/// The key a merchant seals `encData` with.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = EncryptionKey)]
pub struct EncryptionKeyBody {
    /// Goes into each `encData`, so paygate knows which key opens it.
    key_version: u32,
    /// Base64 of the 32-byte AES-256-GCM key. `null` only in the stored replay of a rotation (an
    /// `Idempotency-Key` retry): fetch it with `GET`.
    #[schema(value_type = Option<String>, required = true, example = "q7B3u0Jm0m7m5cTzY0cJ7mP1v4yWc2oG3jR8kQ2sX9A=")]
    key: String,
    #[schema(schema_with = aes_gcm)]
    algorithm: &'static str,
    #[schema(schema_with = paygate_app::schema::mode)]
    mode: &'static str,
}

fn aes_gcm() -> utoipa::openapi::Object {
    paygate_app::schema::string_enum([paygate_app::encdata::ALGORITHM])
}

fn hmac_sha256() -> utoipa::openapi::Object {
    paygate_app::schema::string_enum(["HMAC-SHA256"])
}

fn body(caller: &paygate_app::auth::Caller, key: &paygate_app::encdata::EncDataKey) -> EncryptionKeyBody {
    EncryptionKeyBody {
        key_version: key.version(),
        key: key.to_base64(),
        algorithm: paygate_app::encdata::ALGORITHM,
        mode: caller.key.mode.as_str(),
    }
}

#[utoipa::path(get, path = "/v1/merchants/me/encryption-key", operation_id = "getEncryptionKey", tag = "Merchant",
    summary = "The key to seal card fields as `encData` (docs/encdata.md)",
    responses((status = 200, description = "The current key of this mode", body = EncryptionKeyBody)))]
pub async fn get(
    State(state): State<AppState>,
    SecretCaller(caller): SecretCaller,
) -> Result<Json<EncryptionKeyBody>, ApiError> {
    let key = state.app.encryption_key(&caller).await.map_err(payment_error)?;
    Ok(Json(body(&caller, &key)))
}

/// The stored replay of a rotation names the new version without its key material (fetch it with `GET`):
/// keys are kept only sealed, never in an idempotency record.
#[utoipa::path(post, path = "/v1/merchants/me/encryption-key/rotate", operation_id = "rotateEncryptionKey", tag = "Merchant",
    summary = "Start using a new `encData` key",
    description = "`encData` sealed under the previous version is still accepted for a grace period.",
    responses((status = 200, description = "The new key", body = EncryptionKeyBody)))]
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

/// The key that signs checkout forms and return URLs.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = CheckoutKey)]
pub struct CheckoutKeyBody {
    /// Base64 of the HMAC key.
    key: String,
    #[schema(schema_with = hmac_sha256)]
    algorithm: &'static str,
    #[schema(schema_with = paygate_app::schema::mode)]
    mode: &'static str,
}

/// `GET /v1/merchants/me/checkout-key`: the key that signs checkout forms and return URLs (HMAC-SHA256).
#[utoipa::path(get, path = "/v1/merchants/me/checkout-key", operation_id = "getCheckoutKey", tag = "Merchant",
    summary = "The key that signs checkout forms and return URLs (HMAC-SHA256, docs/checkout.md)",
    responses((status = 200, description = "The key of this mode", body = CheckoutKeyBody)))]
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
