//! `GET /v1/merchants/me`.

use axum::Json;
use serde::Serialize;

use crate::error::ApiError;
use crate::middleware::auth::SecretCaller;
use crate::wire::rfc3339;

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MerchantBody {
    m_id: String,
    name: String,
    status: &'static str,
    /// The mode of the key that made this call: `test` or `live`.
    mode: &'static str,
    created_at: String,
    api_key: KeyBody,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct KeyBody {
    id: String,
    #[serde(rename = "type")]
    kind: &'static str,
    prefix: String,
}

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
