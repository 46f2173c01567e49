//! The vault's data keys (wrapped under master keys) and the re-encryption of every sealed blob when they rotate.
//!
//! Sealed blobs live in the rows they belong to ([`SealedKind`] lists them). A rotation re-encrypts them in bounded
//! batches, each row conditionally on the blob it read, and then retires the old data keys. A write of a blob sealed
//! under a RETIRED key is refused ([`refuse_retired`], called by every operation that writes sealed data), so once a
//! key is retired no row can come back under it; on PostgreSQL the check holds a share lock on the key's row, so a
//! retirement waits for the writes that checked the key before it.

use crate::db::{aggregate, all, first, vals, Db, Row, Value};
use crate::{Sealed, StoreError};
use paygate_domain::time::UnixMillis;

/// Where a data key stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DataKeyState {
    /// Seals new data (at most one).
    Active,
    /// Opens what it sealed until a rotation re-encrypted it.
    Retiring,
    /// Opens and seals nothing: no row is sealed under it.
    Retired,
}

impl DataKeyState {
    pub fn as_str(self) -> &'static str {
        match self {
            DataKeyState::Active => "ACTIVE",
            DataKeyState::Retiring => "RETIRING",
            DataKeyState::Retired => "RETIRED",
        }
    }

    pub fn parse(text: &str) -> Option<DataKeyState> {
        [DataKeyState::Active, DataKeyState::Retiring, DataKeyState::Retired]
            .into_iter()
            .find(|s| s.as_str() == text)
    }
}

/// A data key as stored: wrapped under master key `master_version`.
#[derive(Clone, PartialEq, Eq)]
pub struct DataKeyRecord {
    pub version: u32,
    pub master_version: u32,
    pub wrapped: Vec<u8>,
    pub state: DataKeyState,
    pub created_at: UnixMillis,
    pub retired_at: Option<UnixMillis>,
}

impl std::fmt::Debug for DataKeyRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "DataKeyRecord(v{}, master v{}, {})",
            self.version,
            self.master_version,
            self.state.as_str()
        )
    }
}

/// The places sealed blobs live.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SealedKind {
    /// A checkout's card until the merchant confirms (`checkout_cards`).
    CheckoutCard,
    /// A billing key's card (`billing_keys`).
    BillingCard,
    /// A card registration's card while it runs (`billing_auths`).
    BillingAuthCard,
    /// A merchant's encData key (`merchant_enc_keys`).
    MerchantEncKey,
    /// A webhook endpoint's signing secret, and its previous one during a roll (`webhook_endpoints`).
    WebhookSecret,
    WebhookPreviousSecret,
}

impl SealedKind {
    pub const ALL: [SealedKind; 6] = [
        SealedKind::CheckoutCard,
        SealedKind::BillingCard,
        SealedKind::BillingAuthCard,
        SealedKind::MerchantEncKey,
        SealedKind::WebhookSecret,
        SealedKind::WebhookPreviousSecret,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            SealedKind::CheckoutCard => "checkout_cards",
            SealedKind::BillingCard => "billing_keys",
            SealedKind::BillingAuthCard => "billing_auths",
            SealedKind::MerchantEncKey => "merchant_enc_keys",
            SealedKind::WebhookSecret => "webhook_endpoints.secret",
            SealedKind::WebhookPreviousSecret => "webhook_endpoints.previous_secret",
        }
    }

    /// Selects up to `?2` rows sealed under another version than `?1`: the row's key columns, then the version and
    /// the bytes.
    fn batch_sql(self) -> &'static str {
        match self {
            SealedKind::CheckoutCard => {
                "SELECT payment_id, key_version, sealed FROM checkout_cards WHERE key_version <> ?1
                 ORDER BY payment_id LIMIT ?2"
            }
            SealedKind::BillingCard => {
                "SELECT id, card_key_version, card_sealed FROM billing_keys
                 WHERE card_sealed IS NOT NULL AND card_key_version <> ?1 ORDER BY id LIMIT ?2"
            }
            SealedKind::BillingAuthCard => {
                "SELECT id, card_key_version, card_sealed FROM billing_auths
                 WHERE card_sealed IS NOT NULL AND card_key_version <> ?1 ORDER BY id LIMIT ?2"
            }
            SealedKind::MerchantEncKey => {
                "SELECT merchant_id, mode, CAST(version AS TEXT), vault_key_version, sealed_key FROM merchant_enc_keys
                 WHERE vault_key_version <> ?1 ORDER BY merchant_id, mode, version LIMIT ?2"
            }
            SealedKind::WebhookSecret => {
                "SELECT id, secret_key_version, secret_sealed FROM webhook_endpoints
                 WHERE secret_key_version <> ?1 ORDER BY id LIMIT ?2"
            }
            SealedKind::WebhookPreviousSecret => {
                "SELECT id, previous_secret_key_version, previous_secret_sealed FROM webhook_endpoints
                 WHERE previous_secret_sealed IS NOT NULL AND previous_secret_key_version <> ?1 ORDER BY id LIMIT ?2"
            }
        }
    }

    /// How many key columns [`SealedKind::batch_sql`] selects first.
    fn key_columns(self) -> usize {
        match self {
            SealedKind::MerchantEncKey => 3,
            _ => 1,
        }
    }

    /// Replaces one row's blob: `?1` new version, `?2` new bytes, conditional on `?3`/`?4` (the blob read) and the
    /// row's key from `?5`. A webhook endpoint's version moves too, so an edit computed before cannot write the old
    /// blob back.
    fn reseal_sql(self) -> &'static str {
        match self {
            SealedKind::CheckoutCard => {
                "UPDATE checkout_cards SET key_version = ?1, sealed = ?2
                 WHERE payment_id = ?5 AND key_version = ?3 AND sealed = ?4"
            }
            SealedKind::BillingCard => {
                "UPDATE billing_keys SET card_key_version = ?1, card_sealed = ?2
                 WHERE id = ?5 AND card_key_version = ?3 AND card_sealed = ?4"
            }
            SealedKind::BillingAuthCard => {
                "UPDATE billing_auths SET card_key_version = ?1, card_sealed = ?2
                 WHERE id = ?5 AND card_key_version = ?3 AND card_sealed = ?4"
            }
            SealedKind::MerchantEncKey => {
                "UPDATE merchant_enc_keys SET vault_key_version = ?1, sealed_key = ?2
                 WHERE merchant_id = ?5 AND mode = ?6 AND CAST(version AS TEXT) = ?7 AND vault_key_version = ?3
                   AND sealed_key = ?4"
            }
            SealedKind::WebhookSecret => {
                "UPDATE webhook_endpoints SET secret_key_version = ?1, secret_sealed = ?2, version = version + 1
                 WHERE id = ?5 AND secret_key_version = ?3 AND secret_sealed = ?4"
            }
            SealedKind::WebhookPreviousSecret => {
                "UPDATE webhook_endpoints SET previous_secret_key_version = ?1, previous_secret_sealed = ?2,
                     version = version + 1
                 WHERE id = ?5 AND previous_secret_key_version = ?3 AND previous_secret_sealed = ?4"
            }
        }
    }

    /// Rows per data key version.
    fn count_sql(self) -> &'static str {
        match self {
            SealedKind::CheckoutCard => {
                "SELECT key_version, CAST(COUNT(*) AS BIGINT) FROM checkout_cards GROUP BY key_version"
            }
            SealedKind::BillingCard => {
                "SELECT card_key_version, CAST(COUNT(*) AS BIGINT) FROM billing_keys WHERE card_sealed IS NOT NULL
                 GROUP BY card_key_version"
            }
            SealedKind::BillingAuthCard => {
                "SELECT card_key_version, CAST(COUNT(*) AS BIGINT) FROM billing_auths WHERE card_sealed IS NOT NULL
                 GROUP BY card_key_version"
            }
            SealedKind::MerchantEncKey => {
                "SELECT vault_key_version, CAST(COUNT(*) AS BIGINT) FROM merchant_enc_keys GROUP BY vault_key_version"
            }
            SealedKind::WebhookSecret => {
                "SELECT secret_key_version, CAST(COUNT(*) AS BIGINT) FROM webhook_endpoints GROUP BY secret_key_version"
            }
            SealedKind::WebhookPreviousSecret => {
                "SELECT previous_secret_key_version, CAST(COUNT(*) AS BIGINT) FROM webhook_endpoints
                 WHERE previous_secret_sealed IS NOT NULL GROUP BY previous_secret_key_version"
            }
        }
    }
}

impl crate::db::Arg for SealedKind {
    type Owned = SealedKind;
    fn owned(self) -> SealedKind {
        self
    }
}

/// One sealed blob and the key of its row (for the vault's purpose string).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SealedRow {
    pub kind: SealedKind,
    /// The row's key columns as text: one ID, or (merchant, mode, version) for encData keys.
    pub key: Vec<String>,
    pub sealed: Sealed,
}

/// A row's blob re-encrypted: written only if the row still holds `from`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Resealed {
    pub row: SealedRow,
    pub to: Sealed,
}

/// How many blobs one data key version seals, per place.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SealedCount {
    pub kind: SealedKind,
    pub key_version: u32,
    pub rows: u64,
}

aggregate! {
    pub trait VaultStore {
        read fn data_keys() -> Vec<DataKeyRecord>;
        /// Writes the first data keys, if there are none yet (several processes may start at once: the first wins,
        /// the others write nothing and read its keys).
        write fn bootstrap_data_keys(keys: &[DataKeyRecord]) -> ();
        /// Starts a rotation: the ACTIVE key `from` (conditionally) becomes RETIRING, every key in `rewrapped` takes
        /// its new wrapping, and `to` is inserted ACTIVE; one transaction.
        write fn rotate_data_keys(from: u32, to: &DataKeyRecord, rewrapped: &[DataKeyRecord]) -> ();
        /// Re-wraps keys under another master key (the keys themselves, and what they sealed, do not change).
        write fn rewrap_data_keys(rewrapped: &[DataKeyRecord]) -> ();
        /// Retires a RETIRING key if no blob is sealed under it any more; `Conflict` if one is.
        write fn retire_data_key(version: u32, now: UnixMillis) -> ();
        read fn sealed_batch(kind: SealedKind, except_version: u32, limit: u32) -> Vec<SealedRow>;
        /// Writes re-encrypted blobs, each conditional on its row still holding the blob read; returns how many
        /// were written.
        write fn reseal(rows: &[Resealed]) -> u64;
        read fn sealed_counts() -> Vec<SealedCount>;
    }
}

mod sql {
    pub const KEYS: &str = "SELECT version, master_version, wrapped, state, created_at, retired_at
         FROM vault_data_keys ORDER BY version";
    pub const ANY: &str = "SELECT version FROM vault_data_keys LIMIT 1";
    /// Two processes bootstrapping at once write the same versions: the second's wait, then do nothing.
    pub const INSERT_IF_NEW: &str = "INSERT INTO vault_data_keys
             (version, master_version, wrapped, state, created_at, retired_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)
         ON CONFLICT (version) DO NOTHING";
    pub const INSERT: &str = "INSERT INTO vault_data_keys
             (version, master_version, wrapped, state, created_at, retired_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)";
    pub const DEMOTE: &str = "UPDATE vault_data_keys SET state = 'RETIRING' WHERE version = ?1 AND state = 'ACTIVE'";
    pub const REWRAP: &str = "UPDATE vault_data_keys SET master_version = ?2, wrapped = ?3 WHERE version = ?1";
    pub const RETIRE: &str = "UPDATE vault_data_keys SET state = 'RETIRED', retired_at = ?2
         WHERE version = ?1 AND state = 'RETIRING'";
    pub const STATE_SQLITE: &str = "SELECT state FROM vault_data_keys WHERE version = ?1";
    /// The share lock makes a retirement wait for this transaction.
    pub const STATE_POSTGRES: &str = "SELECT state FROM vault_data_keys WHERE version = ?1 FOR SHARE";
}

fn key_from(row: &Row) -> Result<DataKeyRecord, StoreError> {
    Ok(DataKeyRecord {
        version: row.num(0)?,
        master_version: row.num(1)?,
        wrapped: row.blob(2)?,
        state: row.parse(3, DataKeyState::parse)?,
        created_at: row.millis(4)?,
        retired_at: row.opt_millis(5)?,
    })
}

fn key_values(k: &DataKeyRecord) -> Vec<Value<'_>> {
    vals![
        k.version,
        k.master_version,
        &k.wrapped,
        k.state.as_str(),
        k.created_at,
        k.retired_at
    ]
    .to_vec()
}

/// Refuses a write of data sealed under a RETIRED data key (a process that has not seen the rotation yet). A version
/// the table does not know is allowed: data written before the vault kept data keys, and tests without them.
pub(crate) async fn refuse_retired(db: &impl Db, key_version: u32) -> Result<(), StoreError> {
    let statement = db.dialect().pick(sql::STATE_SQLITE, sql::STATE_POSTGRES);
    match first(db, statement, vals![key_version]).await? {
        Some(row) if row.text(0)? == DataKeyState::Retired.as_str() => Err(StoreError::StaleVaultKey(key_version)),
        _ => Ok(()),
    }
}

async fn data_keys(db: &impl Db) -> Result<Vec<DataKeyRecord>, StoreError> {
    all(db, sql::KEYS, vals![], key_from).await
}

async fn bootstrap_data_keys(db: &impl Db, keys: Vec<DataKeyRecord>) -> Result<(), StoreError> {
    if first(db, sql::ANY, vals![]).await?.is_some() {
        return Ok(());
    }
    for key in &keys {
        db.execute(sql::INSERT_IF_NEW, &key_values(key)).await?;
    }
    Ok(())
}

async fn rotate_data_keys(
    db: &impl Db,
    from: u32,
    to: DataKeyRecord,
    rewrapped: Vec<DataKeyRecord>,
) -> Result<(), StoreError> {
    if db.execute(sql::DEMOTE, vals![from]).await? != 1 {
        return Err(StoreError::Conflict("the active data key changed since it was read"));
    }
    rewrap_data_keys(db, rewrapped).await?;
    db.execute(sql::INSERT, &key_values(&to)).await?;
    Ok(())
}

async fn rewrap_data_keys(db: &impl Db, rewrapped: Vec<DataKeyRecord>) -> Result<(), StoreError> {
    for key in &rewrapped {
        db.execute(sql::REWRAP, vals![key.version, key.master_version, &key.wrapped])
            .await?;
    }
    Ok(())
}

async fn retire_data_key(db: &impl Db, version: u32, now: UnixMillis) -> Result<(), StoreError> {
    // The state changes first: on PostgreSQL this waits for the writers that checked the key (they hold a share
    // lock), so the counts below see their rows.
    if db.execute(sql::RETIRE, vals![version, now]).await? != 1 {
        return Err(StoreError::Conflict("the data key is not retiring"));
    }
    for count in sealed_counts(db).await? {
        if count.key_version == version && count.rows > 0 {
            return Err(StoreError::Conflict("blobs are still sealed under the data key"));
        }
    }
    Ok(())
}

async fn sealed_batch(
    db: &impl Db,
    kind: SealedKind,
    except_version: u32,
    limit: u32,
) -> Result<Vec<SealedRow>, StoreError> {
    let keys = kind.key_columns();
    all(db, kind.batch_sql(), vals![except_version, limit], |row| {
        let key = (0..keys).map(|i| row.string(i)).collect::<Result<Vec<_>, _>>()?;
        Ok(SealedRow {
            kind,
            key,
            sealed: Sealed {
                key_version: row.num(keys)?,
                bytes: row.blob(keys + 1)?,
            },
        })
    })
    .await
}

async fn reseal(db: &impl Db, rows: Vec<Resealed>) -> Result<u64, StoreError> {
    let mut written = 0u64;
    for r in &rows {
        refuse_retired(db, r.to.key_version).await?;
        let mut values = vals![
            r.to.key_version,
            &r.to.bytes,
            r.row.sealed.key_version,
            &r.row.sealed.bytes
        ]
        .to_vec();
        values.extend(r.row.key.iter().map(Value::from));
        written = written.saturating_add(db.execute(r.row.kind.reseal_sql(), &values).await?);
    }
    Ok(written)
}

async fn sealed_counts(db: &impl Db) -> Result<Vec<SealedCount>, StoreError> {
    let mut counts = Vec::new();
    for kind in SealedKind::ALL {
        counts.extend(
            all(db, kind.count_sql(), vals![], |row| {
                Ok(SealedCount {
                    kind,
                    key_version: row.num(0)?,
                    rows: row.num(1)?,
                })
            })
            .await?,
        );
    }
    Ok(counts)
}
