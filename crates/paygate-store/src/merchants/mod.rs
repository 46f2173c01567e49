//! Merchants and what belongs to each alone: API keys, acquirer contracts, encData keys and notification settings.

use paygate_domain::api_key::{ApiKey, KeyHash, KeyKind, Mode};
use paygate_domain::event::NotificationFormat;
use paygate_domain::id::{ApiKeyId, MerchantId};
use paygate_domain::merchant::{Merchant, MerchantName, MerchantSettings, MerchantStatus};
use paygate_domain::routing::AcquirerContract;
use paygate_domain::sealed::Sealed;
use paygate_domain::time::UnixMillis;

use crate::db::{aggregate, all, first, vals, Db, Dialect, Row};
use crate::{IdempotencyWrite, StoreError};

aggregate! {
    pub trait MerchantStore {
        /// Inserts a merchant together with its first keys, atomically.
        write fn insert_merchant(merchant: &Merchant, keys: &[NewApiKey]) -> ();
        read fn merchant(id: MerchantId) -> Option<Merchant>;
        /// Merchants in ID (creation) order, after a cursor; `limit` is capped by the caller.
        read fn list_merchants(after: Option<MerchantId>, limit: u32) -> Vec<Merchant>;
        /// The key with this hash and its merchant, revoked or not: the caller tells revoked from unknown.
        read fn key_by_hash(hash: &KeyHash) -> Option<(ApiKey, Merchant)>;
        read fn list_keys(merchant_id: MerchantId) -> Vec<ApiKey>;
        /// One key record by its ID, revoked or not.
        read fn key(id: ApiKeyId) -> Option<ApiKey>;
        /// Adds `new` and schedules `old` to stop working at `old_revoked_at`, atomically. Fails with `Conflict`
        /// if `old` is already revoked, and `NotFound` if it does not exist; `new` must have the same merchant,
        /// mode and kind as `old`.
        write fn rotate_key(old: ApiKeyId, old_revoked_at: UnixMillis, new: &NewApiKey) -> ();
        /// Revokes a key at `at` (or keeps an earlier revocation instant). `NotFound` if it does not exist.
        write fn revoke_key(id: ApiKeyId, at: UnixMillis) -> ApiKey;
        /// Replaces a merchant's contracts for one mode, atomically.
        write fn set_contracts(merchant_id: MerchantId, mode: Mode, contracts: &[AcquirerContract]) -> ();
        read fn contracts(merchant_id: MerchantId, mode: Mode) -> Vec<AcquirerContract>;
        read fn enc_keys(merchant_id: MerchantId, mode: Mode) -> Vec<StoredEncKey>;
        /// Adds a key version; earlier versions without a retirement get `retire_previous_at`.
        write fn add_enc_key(
            merchant_id: MerchantId,
            mode: Mode,
            key: &StoredEncKey,
            retire_previous_at: UnixMillis,
            idempotency: Option<&IdempotencyWrite>,
        ) -> ();
        /// A merchant's notification settings for one mode (defaults when never set).
        read fn merchant_settings(merchant_id: MerchantId, mode: Mode) -> MerchantSettings;
        write fn set_merchant_settings(
            merchant_id: MerchantId,
            mode: Mode,
            settings: &MerchantSettings,
            now: UnixMillis,
        ) -> ();
    }
}

/// A key to store beside its record: only the keyed hash, never the key.
#[derive(Clone, Debug)]
pub struct NewApiKey {
    pub record: ApiKey,
    pub hash: KeyHash,
}

/// A merchant's encData key, sealed under the server vault key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredEncKey {
    pub version: u32,
    pub sealed: Sealed,
    pub created_at: UnixMillis,
    pub retires_at: Option<UnixMillis>,
}

macro_rules! merchant_columns {
    () => {
        "m.id, m.name, m.status, m.created_at"
    };
}
macro_rules! key_columns {
    () => {
        "k.id, k.merchant_id, k.mode, k.kind, k.display_prefix, k.created_at, k.revoked_at"
    };
}
const KEY_COLUMN_COUNT: usize = 7;

mod sql {
    pub const INSERT_MERCHANT: &str = "INSERT INTO merchants (id, name, status, created_at) VALUES (?1, ?2, ?3, ?4)";
    pub const MERCHANT: &str = concat!("SELECT ", merchant_columns!(), " FROM merchants m WHERE m.id = ?1");
    pub const MERCHANTS_AFTER: &str = concat!(
        "SELECT ",
        merchant_columns!(),
        " FROM merchants m WHERE m.id > ?1 ORDER BY m.id LIMIT ?2"
    );
    /// PostgreSQL only: makes writers of one merchant's settings (contracts, encData keys) take turns, as SQLite's
    /// single writer does. `FOR NO KEY UPDATE` does not block inserts that reference the merchant; a missing
    /// merchant locks nothing, and its inserts then fail on the foreign key.
    pub const LOCK_MERCHANT_POSTGRES: &str = "SELECT 1 FROM merchants WHERE id = ?1 FOR NO KEY UPDATE";

    pub const INSERT_KEY: &str =
        "INSERT INTO api_keys (id, merchant_id, mode, kind, key_hash, display_prefix, created_at, revoked_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)";
    pub const KEY: &str = concat!("SELECT ", key_columns!(), " FROM api_keys k WHERE k.id = ?1");
    pub const KEYS_OF: &str = concat!(
        "SELECT ",
        key_columns!(),
        " FROM api_keys k WHERE k.merchant_id = ?1 ORDER BY k.id"
    );
    pub const KEY_BY_HASH: &str = concat!(
        "SELECT ",
        key_columns!(),
        ", ",
        merchant_columns!(),
        " FROM api_keys k JOIN merchants m ON m.id = k.merchant_id WHERE k.key_hash = ?1"
    );
    /// Conditional on the key not being revoked: of concurrent rotations only one schedules the revocation.
    pub const SCHEDULE_REVOCATION: &str = "UPDATE api_keys SET revoked_at = ?2 WHERE id = ?1 AND revoked_at IS NULL";
    /// An earlier revocation instant wins: revoking never extends a key's life.
    pub const REVOKE: &str =
        "UPDATE api_keys SET revoked_at = ?2 WHERE id = ?1 AND (revoked_at IS NULL OR revoked_at > ?2)";

    pub const DELETE_CONTRACTS: &str = "DELETE FROM acquirer_contracts WHERE merchant_id = ?1 AND mode = ?2";
    pub const INSERT_CONTRACT: &str =
        "INSERT INTO acquirer_contracts (merchant_id, mode, bin_prefix, acquirer, acquirer_merchant_id)
         VALUES (?1, ?2, ?3, ?4, ?5)";
    pub const CONTRACTS: &str = "SELECT bin_prefix, acquirer, acquirer_merchant_id FROM acquirer_contracts
         WHERE merchant_id = ?1 AND mode = ?2 ORDER BY bin_prefix";

    pub const ENC_KEYS: &str = "SELECT version, vault_key_version, sealed_key, created_at, retires_at
         FROM merchant_enc_keys WHERE merchant_id = ?1 AND mode = ?2 ORDER BY version";
    pub const RETIRE_ENC_KEYS: &str = "UPDATE merchant_enc_keys SET retires_at = ?3
         WHERE merchant_id = ?1 AND mode = ?2 AND retires_at IS NULL";
    pub const INSERT_ENC_KEY: &str = "INSERT INTO merchant_enc_keys
             (merchant_id, mode, version, vault_key_version, sealed_key, created_at, retires_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)";

    pub const SETTINGS: &str = "SELECT notification_url, notification_format, redirect_origins
         FROM merchant_settings WHERE merchant_id = ?1 AND mode = ?2";
    pub const SET_SETTINGS: &str = "INSERT INTO merchant_settings
             (merchant_id, mode, notification_url, notification_format, updated_at, redirect_origins)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)
         ON CONFLICT (merchant_id, mode) DO UPDATE SET notification_url = excluded.notification_url,
             notification_format = excluded.notification_format, updated_at = excluded.updated_at,
             redirect_origins = excluded.redirect_origins";
}

fn merchant_at(row: &Row, at: usize) -> Result<Merchant, StoreError> {
    Ok(Merchant {
        id: row.parse(at, MerchantId::parse)?,
        name: row.parse(at + 1, MerchantName::parse)?,
        status: row.parse(at + 2, MerchantStatus::parse)?,
        created_at: row.millis(at + 3)?,
    })
}

fn key_from(row: &Row) -> Result<ApiKey, StoreError> {
    Ok(ApiKey {
        id: row.parse(0, ApiKeyId::parse)?,
        merchant_id: row.parse(1, MerchantId::parse)?,
        mode: row.parse(2, Mode::parse)?,
        kind: row.parse(3, KeyKind::parse)?,
        display_prefix: row.string(4)?,
        created_at: row.millis(5)?,
        revoked_at: row.opt_millis(6)?,
    })
}

async fn insert_key(db: &impl Db, key: &NewApiKey) -> Result<(), StoreError> {
    let r = &key.record;
    let values = vals![
        r.id,
        r.merchant_id,
        r.mode,
        r.kind.as_str(),
        key.hash.as_bytes().as_slice(),
        &r.display_prefix,
        r.created_at,
        r.revoked_at,
    ];
    db.execute(sql::INSERT_KEY, values).await?;
    Ok(())
}

/// See [`sql::LOCK_MERCHANT_POSTGRES`].
async fn lock_merchant(db: &impl Db, merchant_id: MerchantId) -> Result<(), StoreError> {
    if db.dialect() == Dialect::Postgres {
        db.query(sql::LOCK_MERCHANT_POSTGRES, vals![merchant_id]).await?;
    }
    Ok(())
}

async fn insert_merchant(db: &impl Db, merchant: Merchant, keys: Vec<NewApiKey>) -> Result<(), StoreError> {
    if keys.iter().any(|key| key.record.merchant_id != merchant.id) {
        return Err(StoreError::Conflict("key belongs to another merchant"));
    }
    let values = vals![
        merchant.id,
        merchant.name.as_str(),
        merchant.status.as_str(),
        merchant.created_at
    ];
    db.execute(sql::INSERT_MERCHANT, values).await?;
    for key in &keys {
        insert_key(db, key).await?;
    }
    Ok(())
}

async fn merchant(db: &impl Db, id: MerchantId) -> Result<Option<Merchant>, StoreError> {
    first(db, sql::MERCHANT, vals![id])
        .await?
        .map(|row| merchant_at(&row, 0))
        .transpose()
}

async fn list_merchants(db: &impl Db, after: Option<MerchantId>, limit: u32) -> Result<Vec<Merchant>, StoreError> {
    let after = after.map(|id| id.to_string()).unwrap_or_default();
    all(db, sql::MERCHANTS_AFTER, vals![after, limit], |row| merchant_at(row, 0)).await
}

async fn key_by_hash(db: &impl Db, hash: KeyHash) -> Result<Option<(ApiKey, Merchant)>, StoreError> {
    let row = first(db, sql::KEY_BY_HASH, vals![hash.as_bytes().as_slice()]).await?;
    row.map(|row| Ok((key_from(&row)?, merchant_at(&row, KEY_COLUMN_COUNT)?)))
        .transpose()
}

async fn list_keys(db: &impl Db, merchant_id: MerchantId) -> Result<Vec<ApiKey>, StoreError> {
    all(db, sql::KEYS_OF, vals![merchant_id], key_from).await
}

async fn key(db: &impl Db, id: ApiKeyId) -> Result<Option<ApiKey>, StoreError> {
    first(db, sql::KEY, vals![id]).await?.as_ref().map(key_from).transpose()
}

async fn rotate_key(db: &impl Db, old: ApiKeyId, old_revoked_at: UnixMillis, new: NewApiKey) -> Result<(), StoreError> {
    let existing = key(db, old).await?.ok_or(StoreError::NotFound)?;
    let same_slot = (existing.merchant_id, existing.mode, existing.kind)
        == (new.record.merchant_id, new.record.mode, new.record.kind);
    if !same_slot {
        return Err(StoreError::Conflict(
            "the new key must have the old key's merchant, mode and kind",
        ));
    }
    if db.execute(sql::SCHEDULE_REVOCATION, vals![old, old_revoked_at]).await? != 1 {
        return Err(StoreError::Conflict("the key is already revoked"));
    }
    insert_key(db, &new).await
}

async fn revoke_key(db: &impl Db, id: ApiKeyId, at: UnixMillis) -> Result<ApiKey, StoreError> {
    db.execute(sql::REVOKE, vals![id, at]).await?;
    key(db, id).await?.ok_or(StoreError::NotFound)
}

async fn set_contracts(
    db: &impl Db,
    merchant_id: MerchantId,
    mode: Mode,
    contracts: Vec<AcquirerContract>,
) -> Result<(), StoreError> {
    lock_merchant(db, merchant_id).await?;
    db.execute(sql::DELETE_CONTRACTS, vals![merchant_id, mode]).await?;
    for c in &contracts {
        let values = vals![
            merchant_id,
            mode,
            c.bin_prefix(),
            c.acquirer(),
            c.acquirer_merchant_id()
        ];
        db.execute(sql::INSERT_CONTRACT, values).await?;
    }
    Ok(())
}

async fn contracts(db: &impl Db, merchant_id: MerchantId, mode: Mode) -> Result<Vec<AcquirerContract>, StoreError> {
    all(db, sql::CONTRACTS, vals![merchant_id, mode], |row| {
        Ok(AcquirerContract::new(row.string(0)?, row.string(1)?, row.string(2)?))
    })
    .await
}

async fn enc_keys(db: &impl Db, merchant_id: MerchantId, mode: Mode) -> Result<Vec<StoredEncKey>, StoreError> {
    all(db, sql::ENC_KEYS, vals![merchant_id, mode], |row| {
        Ok(StoredEncKey {
            version: row.num(0)?,
            sealed: Sealed {
                key_version: row.num(1)?,
                bytes: row.blob(2)?,
            },
            created_at: row.millis(3)?,
            retires_at: row.opt_millis(4)?,
        })
    })
    .await
}

async fn add_enc_key(
    db: &impl Db,
    merchant_id: MerchantId,
    mode: Mode,
    key: StoredEncKey,
    retire_previous_at: UnixMillis,
    idempotency: Option<IdempotencyWrite>,
) -> Result<(), StoreError> {
    if let Some(write) = &idempotency {
        crate::idempotency::apply(db, write).await?;
    }
    crate::vault::refuse_retired(db, key.sealed.key_version).await?;
    // Two rotations at once must not both leave their key unretired: they take turns.
    lock_merchant(db, merchant_id).await?;
    db.execute(sql::RETIRE_ENC_KEYS, vals![merchant_id, mode, retire_previous_at])
        .await?;
    let values = vals![
        merchant_id,
        mode,
        key.version,
        key.sealed.key_version,
        &key.sealed.bytes,
        key.created_at,
        key.retires_at,
    ];
    db.execute(sql::INSERT_ENC_KEY, values).await?;
    Ok(())
}

async fn merchant_settings(db: &impl Db, merchant_id: MerchantId, mode: Mode) -> Result<MerchantSettings, StoreError> {
    let Some(row) = first(db, sql::SETTINGS, vals![merchant_id, mode]).await? else {
        return Ok(MerchantSettings::default());
    };
    Ok(MerchantSettings {
        notification_url: row.opt_string(0)?,
        notification_format: row.parse(1, NotificationFormat::parse)?,
        redirect_origins: MerchantSettings::parse_redirect_origins(row.text(2)?),
    })
}

async fn set_merchant_settings(
    db: &impl Db,
    merchant_id: MerchantId,
    mode: Mode,
    settings: MerchantSettings,
    now: UnixMillis,
) -> Result<(), StoreError> {
    let values = vals![
        merchant_id,
        mode,
        settings.notification_url.as_deref(),
        settings.notification_format.as_str(),
        now,
        settings.redirect_origins_text(),
    ];
    db.execute(sql::SET_SETTINGS, values).await?;
    Ok(())
}
