//! Authenticating API requests by key.

use paygate_domain::api_key::{ApiKey, ApiKeySecret, KeyFormatError, KeyState};
use paygate_domain::merchant::Merchant;

use crate::{App, AppError};

/// Who is calling: the merchant, and the key (hence mode and kind) it used.
#[derive(Debug, Clone)]
pub struct Caller {
    pub merchant: Merchant,
    pub key: ApiKey,
}

/// Why a presented key does not authenticate. Each maps to its own stable error code, so a merchant can tell a
/// typo from a revoked key; none says anything about other merchants' keys.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("the API key is malformed: {0}")]
    Malformed(KeyFormatError),
    #[error("the API key is not known")]
    Unknown,
    #[error("the API key has been revoked")]
    Revoked,
    #[error("the merchant is not active")]
    MerchantInactive,
    #[error(transparent)]
    App(#[from] AppError),
}

impl App {
    pub async fn authenticate(&self, presented: &str) -> Result<Caller, AuthError> {
        let secret = ApiKeySecret::parse(presented).map_err(AuthError::Malformed)?;
        let hash = self.hasher().hash(&secret);
        let (key, merchant) = self
            .store()
            .key_by_hash(&hash)
            .await
            .map_err(AppError::from)?
            .ok_or(AuthError::Unknown)?;
        if key.state_at(self.clock().now()) == KeyState::Revoked {
            return Err(AuthError::Revoked);
        }
        if !merchant.status.may_transact() {
            return Err(AuthError::MerchantInactive);
        }
        Ok(Caller { merchant, key })
    }
}
