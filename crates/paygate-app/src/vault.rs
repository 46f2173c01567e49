//! Sealing data at rest with AES-256-GCM under versioned server keys: a checkout's card until the merchant
//! confirms, and merchants' encData keys.
//!
//! Layout of a sealed blob: 12-byte random nonce || ciphertext || 16-byte tag. The key version is stored beside the
//! blob, so keys can rotate: new data is sealed with the newest key, old data opens with the key it names.
//! The associated data names what the blob is for (`checkout-card:pay_…`), so a blob cannot be moved to another row.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use paygate_connectors::CardData;
use paygate_store::Sealed;
use serde::{Deserialize, Serialize};

/// One version of the vault key.
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
}

/// A card as the vault keeps it: number and expiry only. The password digits and the identity number are used once,
/// with the acquirer, and never stored.
#[derive(Serialize, Deserialize)]
struct StoredCard {
    number: String,
    expiry_year: u16,
    expiry_month: u8,
}

/// The set of vault keys; the highest version seals.
#[derive(Clone, Debug)]
pub struct Vault {
    keys: Vec<VaultKey>,
}

const NONCE_LEN: usize = 12;

impl Vault {
    pub fn new(mut keys: Vec<VaultKey>) -> Result<Vault, VaultError> {
        if keys.is_empty() {
            return Err(VaultError::NoKey);
        }
        keys.sort_by_key(|k| k.version);
        Ok(Vault { keys })
    }

    fn current(&self) -> Result<&VaultKey, VaultError> {
        self.keys.last().ok_or(VaultError::NoKey)
    }

    pub fn seal(&self, purpose: &str, plaintext: &[u8]) -> Result<Sealed, VaultError> {
        let key = self.current()?;
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

    /// Opens a card sealed by [`Vault::seal_card`], for the acquirer call that needs it.
    pub(crate) fn open_card(&self, purpose: &str, sealed: &Sealed) -> Result<CardData, VaultError> {
        let plaintext = self.open(purpose, sealed)?;
        let stored: StoredCard = serde_json::from_slice(&plaintext).map_err(|_| VaultError::Malformed)?;
        Ok(CardData {
            number: stored.number,
            expiry_year: stored.expiry_year,
            expiry_month: stored.expiry_month,
            password_two_digits: None,
            identity_number: None,
        })
    }

    pub fn open(&self, purpose: &str, sealed: &Sealed) -> Result<Vec<u8>, VaultError> {
        let key = self
            .keys
            .iter()
            .find(|k| k.version == sealed.key_version)
            .ok_or(VaultError::UnknownVersion(sealed.key_version))?;
        if sealed.bytes.len() < NONCE_LEN + 16 {
            return Err(VaultError::Tampered);
        }
        let (nonce, ciphertext) = sealed.bytes.split_at(NONCE_LEN);
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
}
