//! Sealing data at rest with AES-256-GCM, by envelope encryption: blobs are sealed under versioned **data keys**,
//! and each data key is stored in the database wrapped under a **master key** (`secrets.vault_keys`). What is
//! sealed: a checkout's card until the merchant confirms, billing keys' cards, card registrations' cards, merchants'
//! encData keys, webhook signing secrets.
//!
//! Layout of a sealed blob: 12-byte random nonce || ciphertext || 16-byte tag, with the data key's version stored
//! beside it. The associated data names what the blob is for (`checkout-card:pay_…`), so a blob cannot be moved to
//! another row. One data key is ACTIVE and seals; RETIRING ones still open until `paygate vault rotate` has
//! re-encrypted what they sealed (`rotate` below); a master key can change by re-wrapping the data keys alone.
//!
//! Before a database has data keys (and in tests that never load them), the master keys act as data keys of the same
//! version: that is how blobs sealed by earlier paygate builds keep opening. The first start with data keys records
//! them that way (data key *v* = master key *v*, RETIRING) beside a fresh random ACTIVE key, and the next rotation
//! re-encrypts them.

use std::sync::RwLock;
use std::time::Duration;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use paygate_connectors::CardData;
use paygate_store::{DataKeyRecord, DataKeyState, Resealed, Sealed, SealedCount, SealedKind, StoreError};
use serde::{Deserialize, Serialize};

use crate::App;

/// One version of a key (a master key from the secrets, or a data key once unwrapped).
#[derive(Clone)]
pub struct VaultKey {
    pub version: u32,
    pub bytes: [u8; 32],
}

impl std::fmt::Debug for VaultKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "VaultKey(v{}, [REDACTED])", self.version)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum VaultError {
    #[error("no vault key is configured")]
    NoKey,
    #[error("the vault key version {0} is not configured")]
    UnknownVersion(u32),
    #[error("sealed data failed authentication (wrong key, or tampered)")]
    Tampered,
    #[error("encryption failed")]
    Encryption,
    #[error("the sealed data is not what its purpose says")]
    Malformed,
    #[error("data key {data_key} is wrapped under master key {master} which is not configured")]
    MissingMaster { data_key: u32, master: u32 },
}

/// Bounds and timings of the vault. Defaults are in `docs/configuration.md`.
#[derive(Clone, Debug, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct VaultConfig {
    /// How often a gateway reloads the data keys (to learn of a rotation another process started).
    pub refresh_interval_ms: u32,
    /// Blobs re-encrypted per transaction during a rotation.
    pub rotate_batch_max: u32,
    /// How long a rotation waits, after re-encrypting, before it retires the old keys: longer than the refresh
    /// interval, so every gateway seals with the new key by then.
    pub rotate_grace_ms: u32,
}

impl Default for VaultConfig {
    fn default() -> Self {
        VaultConfig {
            refresh_interval_ms: 1_000,
            rotate_batch_max: 500,
            rotate_grace_ms: 3_000,
        }
    }
}

/// A card as the vault keeps it: number and expiry only. The password digits and the identity number are used once,
/// with the acquirer, and never stored.
#[derive(Serialize, Deserialize)]
struct StoredCard {
    number: String,
    expiry_year: u16,
    expiry_month: u8,
}

#[derive(Clone, Debug)]
struct DataKeys {
    keys: Vec<VaultKey>,
    active: u32,
}

/// The master keys and the data keys they wrap; the ACTIVE data key seals.
#[derive(Debug)]
pub struct Vault {
    masters: Vec<VaultKey>,
    data: RwLock<DataKeys>,
}

const NONCE_LEN: usize = 12;

fn seal_with(key: &VaultKey, purpose: &str, plaintext: &[u8]) -> Result<Sealed, VaultError> {
    let cipher = Aes256Gcm::new_from_slice(&key.bytes).map_err(|_| VaultError::Encryption)?;
    let nonce_bytes: [u8; NONCE_LEN] = crate::random_bytes();
    let ciphertext = cipher
        .encrypt(
            Nonce::from_slice(&nonce_bytes),
            Payload {
                msg: plaintext,
                aad: purpose.as_bytes(),
            },
        )
        .map_err(|_| VaultError::Encryption)?;
    let mut bytes = nonce_bytes.to_vec();
    bytes.extend_from_slice(&ciphertext);
    Ok(Sealed {
        key_version: key.version,
        bytes,
    })
}

fn open_with(key: &VaultKey, purpose: &str, bytes: &[u8]) -> Result<Vec<u8>, VaultError> {
    if bytes.len() < NONCE_LEN + 16 {
        return Err(VaultError::Tampered);
    }
    let (nonce, ciphertext) = bytes.split_at(NONCE_LEN);
    let cipher = Aes256Gcm::new_from_slice(&key.bytes).map_err(|_| VaultError::Encryption)?;
    cipher
        .decrypt(
            Nonce::from_slice(nonce),
            Payload {
                msg: ciphertext,
                aad: purpose.as_bytes(),
            },
        )
        .map_err(|_| VaultError::Tampered)
}

fn wrap_purpose(version: u32) -> String {
    format!("vault-data-key:{version}")
}

impl Vault {
    pub fn new(mut masters: Vec<VaultKey>) -> Result<Vault, VaultError> {
        if masters.is_empty() {
            return Err(VaultError::NoKey);
        }
        masters.sort_by_key(|k| k.version);
        let active = masters.last().map(|k| k.version).ok_or(VaultError::NoKey)?;
        let data = DataKeys {
            keys: masters.clone(),
            active,
        };
        Ok(Vault {
            masters,
            data: RwLock::new(data),
        })
    }

    fn newest_master(&self) -> Result<&VaultKey, VaultError> {
        self.masters.last().ok_or(VaultError::NoKey)
    }

    fn master(&self, version: u32) -> Option<&VaultKey> {
        self.masters.iter().find(|k| k.version == version)
    }

    /// The data keys, read in place (no copy per seal or open). Every write leaves the keys consistent before it can
    /// panic, so a poisoned lock still guards valid keys.
    fn keys(&self) -> std::sync::RwLockReadGuard<'_, DataKeys> {
        self.data.read().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The version new blobs are sealed under.
    pub fn active_version(&self) -> u32 {
        self.keys().active
    }

    pub fn seal(&self, purpose: &str, plaintext: &[u8]) -> Result<Sealed, VaultError> {
        let data = self.keys();
        let key = data
            .keys
            .iter()
            .find(|k| k.version == data.active)
            .ok_or(VaultError::NoKey)?;
        seal_with(key, purpose, plaintext)
    }

    pub fn open(&self, purpose: &str, sealed: &Sealed) -> Result<Vec<u8>, VaultError> {
        let data = self.keys();
        let key = data
            .keys
            .iter()
            .find(|k| k.version == sealed.key_version)
            .ok_or(VaultError::UnknownVersion(sealed.key_version))?;
        open_with(key, purpose, &sealed.bytes)
    }

    /// Seals a card's number and expiry (a checkout's card until the merchant confirms; a billing key's card).
    pub(crate) fn seal_card(&self, purpose: &str, card: &CardData) -> Result<Sealed, VaultError> {
        let stored = StoredCard {
            number: card.number.clone(),
            expiry_year: card.expiry_year,
            expiry_month: card.expiry_month,
        };
        let plaintext = serde_json::to_vec(&stored).map_err(|_| VaultError::Encryption)?;
        self.seal(purpose, &plaintext)
    }

    fn card_from(plaintext: &[u8]) -> Result<CardData, VaultError> {
        let stored: StoredCard = serde_json::from_slice(plaintext).map_err(|_| VaultError::Malformed)?;
        Ok(CardData {
            number: stored.number,
            expiry_year: stored.expiry_year,
            expiry_month: stored.expiry_month,
            password_two_digits: None,
            identity_number: None,
        })
    }

    /// Wraps a data key under the newest master key.
    fn wrap(&self, key: &VaultKey) -> Result<(u32, Vec<u8>), VaultError> {
        let master = self.newest_master()?;
        let sealed = seal_with(master, &wrap_purpose(key.version), &key.bytes)?;
        Ok((master.version, sealed.bytes))
    }

    fn unwrap_key(&self, record: &DataKeyRecord) -> Result<VaultKey, VaultError> {
        let master = self.master(record.master_version).ok_or(VaultError::MissingMaster {
            data_key: record.version,
            master: record.master_version,
        })?;
        let bytes = open_with(master, &wrap_purpose(record.version), &record.wrapped)?;
        let bytes: [u8; 32] = bytes.try_into().map_err(|_| VaultError::Malformed)?;
        Ok(VaultKey {
            version: record.version,
            bytes,
        })
    }

    /// Takes the data keys as stored (no change if there are none: the master keys keep acting as data keys).
    fn load(&self, records: &[DataKeyRecord]) -> Result<(), VaultError> {
        let mut keys = Vec::new();
        let mut active = None;
        for record in records.iter().filter(|r| r.state != DataKeyState::Retired) {
            keys.push(self.unwrap_key(record)?);
            if record.state == DataKeyState::Active {
                active = Some(record.version);
            }
        }
        let Some(active) = active else {
            return Ok(());
        };
        let mut data = self.data.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        *data = DataKeys { keys, active };
        Ok(())
    }
}

/// Why a vault operation of the CLI failed.
#[derive(Debug, thiserror::Error)]
pub enum VaultAdminError {
    #[error(transparent)]
    Vault(#[from] VaultError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0}")]
    Stuck(String),
}

/// What a rotation did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RotateReport {
    /// The ACTIVE data key afterwards.
    pub active: u32,
    /// Whether this run started a new version (else it finished one an earlier run left unfinished).
    pub started: bool,
    pub resealed: u64,
    pub batches: u64,
    pub retired: Vec<u32>,
    pub rewrapped: Vec<u32>,
}

/// The data keys and what each seals.
#[derive(Clone, Debug)]
pub struct VaultStatus {
    pub keys: Vec<DataKeyRecord>,
    pub counts: Vec<SealedCount>,
}

/// The vault purpose of a stored blob, from its row's key: the same strings the use cases seal with.
fn purpose_of(kind: SealedKind, key: &[String]) -> Result<String, VaultError> {
    let first = key.first().ok_or(VaultError::Malformed)?;
    Ok(match kind {
        SealedKind::CheckoutCard => format!("checkout-card:{first}"),
        SealedKind::BillingCard => crate::billing::card_purpose_text(first),
        SealedKind::BillingAuthCard => format!("billing-auth-card:{first}"),
        SealedKind::MerchantEncKey => match key {
            [merchant, mode, version] => format!("enc-key:{merchant}:{mode}:{version}"),
            _ => return Err(VaultError::Malformed),
        },
        SealedKind::WebhookSecret | SealedKind::WebhookPreviousSecret => crate::outbox::webhook_secret_purpose(first),
    })
}

/// Passes over the sealed rows before a rotation gives up on retiring the old keys (each pass ends with no row
/// left; a row can only reappear if a process keeps sealing with an old key).
const ROTATE_PASSES_MAX: u32 = 10;

impl App {
    /// Opens a blob; if its data key is not known here yet (another process rotated), reloads the keys once.
    pub(crate) async fn open_sealed(&self, purpose: &str, sealed: &Sealed) -> Result<Vec<u8>, VaultError> {
        match self.vault.open(purpose, sealed) {
            Err(VaultError::UnknownVersion(_)) => {
                if let Err(error) = self.vault_refresh().await {
                    tracing::warn!(%error, "reloading the vault's data keys failed");
                }
                self.vault.open(purpose, sealed)
            }
            other => other,
        }
    }

    /// [`App::open_sealed`] for a card sealed by `Vault::seal_card`.
    pub(crate) async fn open_card(&self, purpose: &str, sealed: &Sealed) -> Result<CardData, VaultError> {
        Vault::card_from(&self.open_sealed(purpose, sealed).await?)
    }

    /// Records the first data keys if the database has none (the master keys as legacy data keys, plus a fresh
    /// ACTIVE one), then loads them. Called once at start-up by every process that seals or opens.
    pub async fn vault_bootstrap(&self) -> Result<(), VaultAdminError> {
        if self.store().data_keys().await?.is_empty() {
            let now = self.clock().now();
            let mut records = Vec::new();
            for master in &self.vault.masters {
                let (master_version, wrapped) = self.vault.wrap(master)?;
                records.push(DataKeyRecord {
                    version: master.version,
                    master_version,
                    wrapped,
                    state: DataKeyState::Retiring,
                    created_at: now,
                    retired_at: None,
                });
            }
            let version = self.vault.newest_master()?.version.saturating_add(1);
            let fresh = VaultKey {
                version,
                bytes: crate::random_bytes(),
            };
            let (master_version, wrapped) = self.vault.wrap(&fresh)?;
            records.push(DataKeyRecord {
                version,
                master_version,
                wrapped,
                state: DataKeyState::Active,
                created_at: now,
                retired_at: None,
            });
            self.store().bootstrap_data_keys(&records).await?;
        }
        self.vault_refresh().await
    }

    /// Reloads the data keys (a rotation elsewhere).
    pub async fn vault_refresh(&self) -> Result<(), VaultAdminError> {
        let records = self.store().data_keys().await?;
        self.vault.load(&records)?;
        Ok(())
    }

    pub fn vault_config(&self) -> &VaultConfig {
        &self.vault_config
    }

    pub async fn vault_status(&self) -> Result<VaultStatus, VaultAdminError> {
        Ok(VaultStatus {
            keys: self.store().data_keys().await?,
            counts: self.store().sealed_counts().await?,
        })
    }

    /// Rotates the data key: a new ACTIVE version (with `resume`, none: the current one is kept and an earlier,
    /// interrupted run is finished), every data key re-wrapped under the newest master key, every blob re-encrypted
    /// under the active key in batches of `vault.rotate_batch_max` (each row conditionally on what it read, so
    /// concurrent writes are never overwritten), then the old keys retired once nothing is sealed under them. Safe
    /// to run while gateways run, and to run again after a crash.
    pub async fn vault_rotate(
        &self,
        resume: bool,
        mut progress: impl FnMut(&str),
    ) -> Result<RotateReport, VaultAdminError> {
        self.vault_bootstrap().await?;
        let mut report = RotateReport::default();
        let records = self.store().data_keys().await?;
        let newest_master = self.vault.newest_master()?.version;
        let mut rewrapped = Vec::new();
        for record in records.iter().filter(|r| r.state != DataKeyState::Retired) {
            if record.master_version != newest_master {
                let key = self.vault.unwrap_key(record)?;
                let (master_version, wrapped) = self.vault.wrap(&key)?;
                rewrapped.push(DataKeyRecord {
                    master_version,
                    wrapped,
                    ..record.clone()
                });
                report.rewrapped.push(record.version);
            }
        }
        let active = records
            .iter()
            .find(|r| r.state == DataKeyState::Active)
            .map(|r| r.version)
            .ok_or(VaultError::NoKey)?;
        if resume {
            progress(&format!("finishing the rotation to data key v{active}"));
            if !rewrapped.is_empty() {
                self.store().rewrap_data_keys(&rewrapped).await?;
            }
            report.active = active;
        } else {
            let version = records.iter().map(|r| r.version).max().unwrap_or(0).saturating_add(1);
            let fresh = VaultKey {
                version,
                bytes: crate::random_bytes(),
            };
            let (master_version, wrapped) = self.vault.wrap(&fresh)?;
            let record = DataKeyRecord {
                version,
                master_version,
                wrapped,
                state: DataKeyState::Active,
                created_at: self.clock().now(),
                retired_at: None,
            };
            self.store().rotate_data_keys(active, &record, &rewrapped).await?;
            progress(&format!("data key v{version} is active; v{active} is retiring"));
            report.active = version;
            report.started = true;
        }
        self.vault_refresh().await?;
        for pass in 0..ROTATE_PASSES_MAX {
            self.reseal_all(report.active, &mut report, &mut progress).await?;
            if pass == 0 {
                // Gateways learn of the new key within their refresh interval; wait that long (and then some) so
                // none is still sealing with an old one, then look again.
                tokio::time::sleep(Duration::from_millis(u64::from(self.vault_config.rotate_grace_ms))).await;
                continue;
            }
            let retiring: Vec<u32> = self
                .store()
                .data_keys()
                .await?
                .iter()
                .filter(|r| r.state == DataKeyState::Retiring)
                .map(|r| r.version)
                .collect();
            let mut left = false;
            for version in retiring {
                match self.store().retire_data_key(version, self.clock().now()).await {
                    Ok(()) => {
                        progress(&format!("data key v{version} retired: nothing is sealed under it"));
                        report.retired.push(version);
                    }
                    Err(StoreError::Conflict(_)) => left = true,
                    Err(other) => return Err(other.into()),
                }
            }
            if !left {
                self.vault_refresh().await?;
                return Ok(report);
            }
        }
        Err(VaultAdminError::Stuck(format!(
            "blobs keep appearing under old data keys after {ROTATE_PASSES_MAX} passes: a process is sealing with a \
             key it has not reloaded (check vault.refresh_interval_ms); run `paygate vault rotate` again"
        )))
    }

    /// One pass: every blob not under `active`, re-encrypted in batches.
    async fn reseal_all(
        &self,
        active: u32,
        report: &mut RotateReport,
        progress: &mut impl FnMut(&str),
    ) -> Result<(), VaultAdminError> {
        let limit = self.vault_config.rotate_batch_max.max(1);
        for kind in SealedKind::ALL {
            let mut done = 0u64;
            loop {
                let batch = self.store().sealed_batch(kind, active, limit).await?;
                if batch.is_empty() {
                    break;
                }
                let mut resealed = Vec::with_capacity(batch.len());
                for row in batch {
                    let purpose = purpose_of(kind, &row.key)?;
                    let plaintext = self.open_sealed(&purpose, &row.sealed).await?;
                    let to = self.vault.seal(&purpose, &plaintext)?;
                    resealed.push(Resealed { row, to });
                }
                let asked = u64::try_from(resealed.len()).unwrap_or(u64::MAX);
                let written = self.store().reseal(&resealed).await?;
                report.batches = report.batches.saturating_add(1);
                report.resealed = report.resealed.saturating_add(written);
                done = done.saturating_add(written);
                if written < asked {
                    // Rows changed meanwhile (a charge deleted its card, a roll replaced a secret): the next batch
                    // reads them again.
                    tracing::debug!(
                        kind = kind.as_str(),
                        asked,
                        written,
                        "rows changed during re-encryption"
                    );
                }
            }
            if done > 0 {
                progress(&format!("{}: {done} re-encrypted under v{active}", kind.as_str()));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn seal_open_rotate_and_tamper() {
        let v1 = VaultKey {
            version: 1,
            bytes: [1; 32],
        };
        let v2 = VaultKey {
            version: 2,
            bytes: [2; 32],
        };
        let old = Vault::new(vec![v1.clone()]).unwrap();
        let sealed = old.seal("checkout-card:pay_1", b"4330000000000003").unwrap();
        assert_eq!(sealed.key_version, 1);
        assert!(!sealed.bytes.windows(4).any(|w| w == b"4330"));
        let rotated = Vault::new(vec![v2.clone(), v1]).unwrap();
        assert_eq!(
            rotated.open("checkout-card:pay_1", &sealed).unwrap(),
            b"4330000000000003"
        );
        assert_eq!(rotated.seal("x", b"y").unwrap().key_version, 2);
        assert_eq!(
            rotated.open("checkout-card:pay_2", &sealed).unwrap_err(),
            VaultError::Tampered
        );
        let mut tampered = sealed.clone();
        tampered.bytes[20] ^= 1;
        assert_eq!(
            rotated.open("checkout-card:pay_1", &tampered).unwrap_err(),
            VaultError::Tampered
        );
        let newest_only = Vault::new(vec![v2]).unwrap();
        assert_eq!(
            newest_only.open("checkout-card:pay_1", &sealed).unwrap_err(),
            VaultError::UnknownVersion(1)
        );
        assert!(format!("{newest_only:?}").contains("REDACTED"));
        assert_eq!(Vault::new(vec![]).unwrap_err(), VaultError::NoKey);
    }

    #[test]
    fn data_keys_are_wrapped_under_the_master_and_seal_once_loaded() {
        let master = VaultKey {
            version: 1,
            bytes: [7; 32],
        };
        let vault = Vault::new(vec![master.clone()]).unwrap();
        let legacy = vault.seal("p", b"before data keys").unwrap();
        assert_eq!(legacy.key_version, 1, "without data keys the master seals");
        let data_key = VaultKey {
            version: 2,
            bytes: [9; 32],
        };
        let (master_version, wrapped) = vault.wrap(&data_key).unwrap();
        assert_eq!(master_version, 1);
        assert!(
            !wrapped.windows(8).any(|w| w == [9; 8]),
            "the data key is never stored in clear"
        );
        let (legacy_master, legacy_wrapped) = vault.wrap(&master).unwrap();
        let records = [
            DataKeyRecord {
                version: 1,
                master_version: legacy_master,
                wrapped: legacy_wrapped,
                state: DataKeyState::Retiring,
                created_at: paygate_domain::time::UnixMillis::new(0),
                retired_at: None,
            },
            DataKeyRecord {
                version: 2,
                master_version,
                wrapped: wrapped.clone(),
                state: DataKeyState::Active,
                created_at: paygate_domain::time::UnixMillis::new(0),
                retired_at: None,
            },
        ];
        vault.load(&records).unwrap();
        assert_eq!(vault.active_version(), 2);
        assert_eq!(
            vault.open("p", &legacy).unwrap(),
            b"before data keys",
            "the legacy blob still opens"
        );
        let fresh = vault.seal("p", b"after").unwrap();
        assert_eq!(fresh.key_version, 2);
        // A record whose wrapping was tampered with, or that names an unknown master, is refused.
        let mut bad = records.clone();
        bad[1].wrapped[15] ^= 1;
        assert_eq!(vault.load(&bad), Err(VaultError::Tampered));
        bad[1].master_version = 5;
        assert_eq!(
            vault.load(&bad),
            Err(VaultError::MissingMaster { data_key: 2, master: 5 })
        );
    }
}
