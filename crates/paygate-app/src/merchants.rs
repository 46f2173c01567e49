//! Creating merchants, and issuing, rotating and revoking their API keys.

use paygate_domain::api_key::{ApiKey, ApiKeySecret, KeyKind, Mode};
use paygate_domain::id::{ApiKeyId, MerchantId};
use paygate_domain::merchant::{Merchant, MerchantName, MerchantStatus};
use paygate_domain::time::UnixMillis;
use paygate_store::{NewApiKey, StoreError};

use crate::{random_byte, random_bytes, App, AppError};

/// A key together with its plaintext, which exists only until it has been shown once.
#[derive(Debug, Clone)]
pub struct IssuedKey {
    pub record: ApiKey,
    pub secret: ApiKeySecret,
}

#[derive(Debug, Clone)]
pub struct CreatedMerchant {
    pub merchant: Merchant,
    /// One key per mode and kind: test/live × secret/client.
    pub keys: Vec<IssuedKey>,
}

impl CreatedMerchant {
    pub fn key(&self, mode: Mode, kind: KeyKind) -> Option<&IssuedKey> {
        self.keys
            .iter()
            .find(|k| k.record.mode == mode && k.record.kind == kind)
    }
}

/// The most merchants one listing call returns.
pub const MERCHANT_PAGE_MAX: u32 = 100;

impl App {
    pub async fn create_merchant(&self, name: &str) -> Result<CreatedMerchant, AppError> {
        let name = MerchantName::parse(name).map_err(|e| AppError::InvalidInput(e.to_string()))?;
        let now = self.clock().now();
        let merchant = Merchant {
            id: MerchantId::new(now, random_bytes()),
            name,
            status: MerchantStatus::Active,
            created_at: now,
        };
        let mut issued = Vec::new();
        for mode in Mode::ALL {
            for kind in KeyKind::ALL {
                issued.push(self.issue_key(merchant.id, mode, kind, now));
            }
        }
        let new_keys: Vec<NewApiKey> = issued.iter().map(|k| self.to_new_key(k)).collect();
        self.store().insert_merchant(&merchant, &new_keys).await?;
        // Test mode reaches the sandbox acquirers through the default contract; live contracts are the operator's.
        let contracts = crate::payments::default_test_contracts(merchant.id);
        self.store().set_contracts(merchant.id, Mode::Test, &contracts).await?;
        tracing::info!(merchant_id = %merchant.id, "merchant created");
        Ok(CreatedMerchant { merchant, keys: issued })
    }

    pub async fn list_merchants(&self, after: Option<MerchantId>, limit: u32) -> Result<Vec<Merchant>, AppError> {
        Ok(self
            .store()
            .list_merchants(after, limit.clamp(1, MERCHANT_PAGE_MAX))
            .await?)
    }

    pub async fn merchant(&self, id: MerchantId) -> Result<Merchant, AppError> {
        self.store().merchant(id).await?.ok_or(AppError::NotFound)
    }

    pub async fn list_keys(&self, merchant_id: MerchantId) -> Result<Vec<ApiKey>, AppError> {
        Ok(self.store().list_keys(merchant_id).await?)
    }

    /// Replaces a key with a new one of the same merchant, mode and kind. The old key keeps working for
    /// `grace_secs` (0 = stops at once) so merchants can deploy the new one without downtime.
    pub async fn rotate_key(&self, old: ApiKeyId, grace_secs: u64) -> Result<IssuedKey, AppError> {
        let now = self.clock().now();
        let existing = self.find_key(old).await?;
        if existing.revoked_at.is_some() {
            return Err(AppError::Conflict(format!("key {old} is already revoked")));
        }
        let issued = self.issue_key(existing.merchant_id, existing.mode, existing.kind, now);
        let new_key = self.to_new_key(&issued);
        match self
            .store()
            .rotate_key(old, now.saturating_add_secs(grace_secs), &new_key)
            .await
        {
            Ok(()) => {}
            Err(StoreError::NotFound) => return Err(AppError::NotFound),
            Err(StoreError::Conflict(why)) => return Err(AppError::Conflict(why.to_owned())),
            Err(other) => return Err(other.into()),
        }
        tracing::info!(old_key_id = %old, new_key_id = %issued.record.id, grace_secs, "API key rotated");
        Ok(issued)
    }

    pub async fn revoke_key(&self, id: ApiKeyId) -> Result<ApiKey, AppError> {
        let now = self.clock().now();
        match self.store().revoke_key(id, now).await {
            Ok(key) => {
                tracing::info!(key_id = %id, "API key revoked");
                Ok(key)
            }
            Err(StoreError::NotFound) => Err(AppError::NotFound),
            Err(other) => Err(other.into()),
        }
    }

    async fn find_key(&self, id: ApiKeyId) -> Result<ApiKey, AppError> {
        self.store().key(id).await?.ok_or(AppError::NotFound)
    }

    fn issue_key(&self, merchant_id: MerchantId, mode: Mode, kind: KeyKind, now: UnixMillis) -> IssuedKey {
        let secret = ApiKeySecret::generate(mode, kind, random_byte);
        let record = ApiKey {
            id: ApiKeyId::new(now, random_bytes()),
            merchant_id,
            mode,
            kind,
            display_prefix: secret.display_prefix(),
            created_at: now,
            revoked_at: None,
        };
        IssuedKey { record, secret }
    }

    fn to_new_key(&self, issued: &IssuedKey) -> NewApiKey {
        NewApiKey {
            record: issued.record.clone(),
            hash: self.hasher().hash(&issued.secret),
        }
    }
}
