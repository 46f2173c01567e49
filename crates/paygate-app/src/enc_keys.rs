//! Merchants' encData keys: issued on first use, rotated on request, sealed at rest under the vault key.
//! A rotated-out key keeps working for [`ENC_KEY_OVERLAP_SECS`] so merchants can deploy the new one.

use paygate_store::{StoreError, StoredEncKey};

use crate::auth::Caller;
use crate::encdata::{self, EncDataError, EncDataKey};
use crate::idempotency::{Answer, Claim, Idempotent, Once};
use crate::payments::command::{CardText, ClearCard, EncData};
use crate::payments::{InternalError, PaymentError};
use crate::App;

/// How long the previous key keeps working after a rotation.
pub const ENC_KEY_OVERLAP_SECS: u64 = 24 * 60 * 60;

fn purpose(caller: &Caller, version: u32) -> String {
    format!("enc-key:{}:{}:{version}", caller.merchant.id, caller.key.mode.as_str())
}

impl App {
    async fn live_enc_keys(&self, caller: &Caller) -> Result<Vec<EncDataKey>, PaymentError> {
        let now = self.clock().now();
        let stored = self.store().enc_keys(caller.merchant.id, caller.key.mode).await?;
        let mut keys = Vec::new();
        for key in stored.into_iter().filter(|k| k.retires_at.is_none_or(|at| at > now)) {
            let bytes = self.open_sealed(&purpose(caller, key.version), &key.sealed).await?;
            let bytes: [u8; encdata::KEY_LEN] = bytes
                .try_into()
                .map_err(|_| InternalError::Invariant("a sealed encData key has the wrong length".into()))?;
            keys.push(EncDataKey::new(key.version, bytes));
        }
        Ok(keys)
    }

    /// The merchant's current encData key for a mode, created on first use.
    pub(crate) async fn encryption_key_for(
        &self,
        merchant: paygate_domain::id::MerchantId,
        mode: paygate_domain::api_key::Mode,
    ) -> Result<EncDataKey, PaymentError> {
        let caller = crate::auth::Caller {
            merchant: self.store().merchant(merchant).await?.ok_or(PaymentError::NotFound)?,
            key: paygate_domain::api_key::ApiKey {
                id: paygate_domain::id::ApiKeyId::new(paygate_domain::time::UnixMillis::EPOCH, [0; 10]),
                merchant_id: merchant,
                mode,
                kind: paygate_domain::api_key::KeyKind::Secret,
                display_prefix: String::new(),
                created_at: paygate_domain::time::UnixMillis::EPOCH,
                revoked_at: None,
            },
        };
        self.encryption_key(&caller).await
    }

    /// The merchant's current encData key for the caller's mode, created on first use.
    pub async fn encryption_key(&self, caller: &Caller) -> Result<EncDataKey, PaymentError> {
        if let Some(newest) = self
            .live_enc_keys(caller)
            .await?
            .into_iter()
            .max_by_key(EncDataKey::version)
        {
            return Ok(newest);
        }
        self.add_encryption_key(caller, 1).await
    }

    /// Issues the next version; the previous one keeps working for a day.
    pub async fn rotate_encryption_key(
        &self,
        caller: &Caller,
        idempotency: Option<Idempotent<EncDataKey, PaymentError>>,
    ) -> Result<Answer<EncDataKey>, PaymentError> {
        let claim = match self.start_once(caller, idempotency).await? {
            Once::Run(claim) => claim,
            Once::Answer(answer) => return Ok(answer),
        };
        let stored = self.store().enc_keys(caller.merchant.id, caller.key.mode).await?;
        let next = stored.iter().map(|k| k.version).max().unwrap_or(0).saturating_add(1);
        match self.add_encryption_key_once(caller, next, claim.as_ref()).await {
            Err(PaymentError::Idempotency(_)) => match &claim {
                Some(claim) => self.once_after_conflict(claim).await,
                None => Err(PaymentError::Concurrent),
            },
            other => other.map(Answer::Fresh),
        }
    }

    async fn add_encryption_key(&self, caller: &Caller, version: u32) -> Result<EncDataKey, PaymentError> {
        self.add_encryption_key_once(caller, version, None).await
    }

    async fn add_encryption_key_once(
        &self,
        caller: &Caller,
        version: u32,
        claim: Option<&Claim<EncDataKey, PaymentError>>,
    ) -> Result<EncDataKey, PaymentError> {
        let key = EncDataKey::generate(version);
        let now = self.clock().now();
        let sealed = self.vault.seal(&purpose(caller, version), key.expose_bytes())?;
        let stored = StoredEncKey {
            version,
            sealed,
            created_at: now,
            retires_at: None,
        };
        // The stored answer is the edge's rendering; it carries no key material (see the API's renderer).
        let answer: Result<EncDataKey, PaymentError> = Ok(key.clone());
        let idempotency = claim.map(|c| c.record(None, &answer, now));
        match self
            .store()
            .add_enc_key(
                caller.merchant.id,
                caller.key.mode,
                &stored,
                now.saturating_add_secs(ENC_KEY_OVERLAP_SECS),
                idempotency.as_ref(),
            )
            .await
        {
            Ok(()) => Ok(key),
            Err(StoreError::IdempotencyConflict) => Err(crate::idempotency::IdempotencyRefusal::InFlight.into()),
            // Two first-use requests raced: the other one's key stands.
            Err(StoreError::Conflict(_)) => self
                .live_enc_keys(caller)
                .await?
                .into_iter()
                .max_by_key(EncDataKey::version)
                .ok_or(PaymentError::Concurrent),
            Err(other) => Err(other.into()),
        }
    }

    /// Decrypts a key-in request's `encData` and parses the card in it like clear fields.
    pub(crate) async fn decrypt_card(&self, caller: &Caller, enc_data: &EncData) -> Result<ClearCard, PaymentError> {
        let keys = self.live_enc_keys(caller).await?;
        if keys.is_empty() {
            return Err(EncDataError::UnknownKeyVersion(0).into());
        }
        let aad = encdata::associated_data(&caller.merchant.id, caller.key.mode);
        let fields = encdata::decrypt(&keys, &aad, enc_data.as_str())?;
        Ok(ClearCard::parse(CardText {
            number: &fields.card_number,
            expiration_year: &fields.card_expiration_year,
            expiration_month: &fields.card_expiration_month,
            password: fields.card_password.as_deref(),
            identity_number: fields.customer_identity_number.as_deref(),
        })?)
    }
}
