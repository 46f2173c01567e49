//! `GET /v1/merchants/me`.

use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;

use crate::error::ApiError;
use crate::middleware::auth::SecretCaller;
use crate::wire::rfc3339;

/// The merchant a key belongs to.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = Merchant)]
pub struct MerchantBody {
    #[schema(example = "mid_01M8XAPDMNSGF2TRAAG3F8PKT7")]
    m_id: String,
    name: String,
    #[schema(schema_with = merchant_status)]
    status: &'static str,
    /// The mode of the key that made this call: `test` or `live`.
    #[schema(schema_with = paygate_app::schema::mode)]
    mode: &'static str,
    #[schema(schema_with = paygate_app::schema::instant)]
    created_at: String,
    api_key: KeyBody,
}

fn merchant_status() -> utoipa::openapi::Object {
    paygate_app::schema::string_enum(paygate_domain::merchant::MerchantStatus::ALL.map(|s| s.as_str()))
}

/// The key that made this call.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = ApiKey)]
pub struct KeyBody {
    id: String,
    /// `SECRET` or `CLIENT`.
    #[serde(rename = "type")]
    #[schema(schema_with = key_kind)]
    kind: &'static str,
    /// The key's visible start, e.g. `test_sk_AbC1`.
    prefix: String,
}

fn key_kind() -> utoipa::openapi::Object {
    paygate_app::schema::string_enum(["SECRET", "CLIENT"])
}

#[utoipa::path(get, path = "/v1/merchants/me", operation_id = "getMerchant", tag = "Merchant",
    summary = "The merchant and the key that made this call",
    responses((status = 200, description = "The merchant", body = MerchantBody)))]
pub async fn me(SecretCaller(caller): SecretCaller) -> Result<Json<MerchantBody>, ApiError> {
    let merchant = caller.merchant;
    Ok(Json(MerchantBody {
        m_id: merchant.id.to_string(),
        name: merchant.name.as_str().to_owned(),
        status: merchant.status.as_str(),
        mode: caller.key.mode.as_str(),
        created_at: rfc3339(merchant.created_at),
        api_key: KeyBody {
            id: caller.key.id.to_string(),
            kind: match caller.key.kind {
                paygate_domain::api_key::KeyKind::Secret => "SECRET",
                paygate_domain::api_key::KeyKind::Client => "CLIENT",
            },
            prefix: caller.key.display_prefix,
        },
    }))
}
