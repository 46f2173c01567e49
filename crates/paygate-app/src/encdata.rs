//! `encData`: the card fields of a key-in (비인증) payment, encrypted by the merchant with a per-merchant key.
//!
//! Instead of sending `cardNumber`, `cardExpirationYear`, … in clear JSON, a merchant may send one string, `encData`:
//!
//! ```text
//! encData = base64url-no-padding( 0x01 || key version (u32 BE) || nonce (12 bytes) || ciphertext || tag (16 bytes) )
//! AES-256-GCM, key = the merchant's 32-byte key of that version, AAD = "{mId}:{mode}" (ASCII)
//! plaintext = UTF-8 JSON object: cardNumber, cardExpirationYear, cardExpirationMonth,
//!             customerIdentityNumber (optional), cardPassword (optional); all strings
//! ```
//!
//! The AAD binds the data to one merchant and mode: data encrypted for `mid_A:test` does not decrypt as
//! `mid_B:test` or `mid_A:live`. The full specification, with a Node and a Python encoder and a shared test vector,
//! is `docs/encdata.md`.
//!
//! Nothing here logs, and no error message carries plaintext or key material: [`EncDataError`] names fields and
//! problems, never values.

use std::fmt;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use base64::alphabet;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD};
use base64::engine::DecodePaddingMode;
use base64::Engine as _;
use paygate_domain::api_key::Mode;
use paygate_domain::id::MerchantId;
use serde::{Deserialize, Serialize};

/// The first byte of every `encData`.
pub const FORMAT_VERSION: u8 = 0x01;
/// What `GET /v1/merchants/me/encryption-key` reports as `algorithm`.
pub const ALGORITHM: &str = "AES-256-GCM";
/// Key length in bytes (AES-256).
pub const KEY_LEN: usize = 32;
/// GCM nonce length in bytes (96 bits, random per message).
pub const NONCE_LEN: usize = 12;
/// GCM tag length in bytes.
pub const TAG_LEN: usize = 16;
/// The longest `encData` accepted, in characters, checked before anything is decoded. The card fields take about
/// 150 bytes of JSON, so this leaves ample room while bounding the work an attacker can cause.
pub const MAX_ENC_DATA_LEN: usize = 4096;

/// Format version, key version, nonce.
const HEADER_LEN: usize = 1 + 4 + NONCE_LEN;

// The reasons of `EncDataError::Malformed`.
const EMPTY: &str = "it is empty";
const TOO_LONG: &str = "it is longer than 4096 characters";
const NOT_BASE64URL: &str = "it is not base64url (A-Z a-z 0-9 - _)";
const TOO_SHORT: &str = "it is too short";

/// base64url. `encrypt` writes no padding; `decrypt` tolerates trailing `=` (Python's `urlsafe_b64encode` adds it)
/// but nothing else: no standard-alphabet `+` `/`, no whitespace, no non-canonical trailing bits.
const BASE64URL: GeneralPurpose = GeneralPurpose::new(
    &alphabet::URL_SAFE,
    GeneralPurposeConfig::new()
        .with_encode_padding(false)
        .with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Why an `encData` could not be produced or read. The API maps these to stable codes (see `docs/encdata.md`):
/// `Malformed`, `UnsupportedFormatVersion` and `InvalidPayload` → `INVALID_ENC_DATA`; `UnknownKeyVersion` →
/// `UNKNOWN_ENC_KEY_VERSION`; `DecryptionFailed` → `ENC_DATA_DECRYPTION_FAILED`. `Encryption` and `InvalidKey` are
/// server-side failures. No message contains plaintext or key material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncDataError {
    /// Empty, too long, not base64url, or too short to hold a header and a tag.
    #[error("encData is malformed: {0}")]
    Malformed(&'static str),
    #[error("encData has an unsupported format version ({0}); the supported version is 1")]
    UnsupportedFormatVersion(u8),
    #[error("encData was encrypted with an unknown key version ({0}); fetch the current key")]
    UnknownKeyVersion(u32),
    /// The GCM tag does not verify: wrong key, tampered data, or data encrypted for another merchant or mode.
    #[error("encData could not be decrypted: wrong key, altered data, or encrypted for another merchant or mode")]
    DecryptionFailed,
    /// The data decrypted, but is not the expected JSON object. The text names the field or the problem, never a
    /// value.
    #[error("the decrypted encData is invalid: {0}")]
    InvalidPayload(String),
    /// Encryption failed (in practice: the fields would make an `encData` longer than [`MAX_ENC_DATA_LEN`]).
    #[error("encData could not be produced")]
    Encryption,
    /// A key is not 32 bytes of standard base64.
    #[error("an encData key must be 32 bytes in standard base64")]
    InvalidKey,
}

/// One version of a merchant's `encData` key. `Debug` shows the version only.
#[derive(Clone)]
pub struct EncDataKey {
    version: u32,
    bytes: [u8; KEY_LEN],
}

impl EncDataKey {
    pub fn new(version: u32, bytes: [u8; KEY_LEN]) -> EncDataKey {
        EncDataKey { version, bytes }
    }

    /// A fresh random key from the CSPRNG. paygate numbers a merchant's keys from 1.
    pub fn generate(version: u32) -> EncDataKey {
        EncDataKey::new(version, crate::random_bytes())
    }

    pub fn version(&self) -> u32 {
        self.version
    }

    /// The raw key, to seal it at rest (see `vault`). Named loudly so call sites are easy to audit.
    pub fn expose_bytes(&self) -> &[u8; KEY_LEN] {
        &self.bytes
    }

    /// The key as the merchant sees it: standard base64 with padding (44 characters).
    pub fn to_base64(&self) -> String {
        STANDARD.encode(self.bytes)
    }

    /// The inverse of [`EncDataKey::to_base64`]; surrounding whitespace is ignored.
    pub fn from_base64(version: u32, text: &str) -> Result<EncDataKey, EncDataError> {
        let decoded = STANDARD.decode(text.trim()).map_err(|_| EncDataError::InvalidKey)?;
        let bytes = <[u8; KEY_LEN]>::try_from(decoded.as_slice()).map_err(|_| EncDataError::InvalidKey)?;
        Ok(EncDataKey::new(version, bytes))
    }

    fn cipher(&self) -> Aes256Gcm {
        Aes256Gcm::new(&Key::<Aes256Gcm>::from(self.bytes))
    }
}

impl fmt::Debug for EncDataKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EncDataKey")
            .field("version", &self.version)
            .field("key", &Redacted)
            .finish()
    }
}

/// The card fields carried in `encData`, as the merchant would otherwise send them in clear. Values are taken as
/// sent; the key-in request validates them like the clear fields. `Debug` shows only the card number's last 4 digits.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EncryptedCardFields {
    /// Digits only, e.g. `"4330000000000003"`.
    pub card_number: String,
    /// `"YY"`, e.g. `"28"` (the key-in validation also accepts `"YYYY"`).
    pub card_expiration_year: String,
    /// Two digits, `"MM"`, e.g. `"07"`.
    pub card_expiration_month: String,
    /// Date of birth `YYMMDD` (personal card) or the 10-digit business registration number (corporate card).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer_identity_number: Option<String>,
    /// The first 2 digits of the card PIN.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub card_password: Option<String>,
}

/// The JSON names, in the order `encrypt` writes them.
const FIELD_NAMES: [&str; 5] = [
    "cardNumber",
    "cardExpirationYear",
    "cardExpirationMonth",
    "customerIdentityNumber",
    "cardPassword",
];

impl fmt::Debug for EncryptedCardFields {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EncryptedCardFields")
            .field("card_number", &MaskedCardNumber(&self.card_number))
            .field("card_expiration_year", &Redacted)
            .field("card_expiration_month", &Redacted)
            .field(
                "customer_identity_number",
                &self.customer_identity_number.as_ref().map(|_| Redacted),
            )
            .field("card_password", &self.card_password.as_ref().map(|_| Redacted))
            .finish()
    }
}

struct Redacted;

impl fmt::Debug for Redacted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[REDACTED]")
    }
}

/// `****0003` for a plausible card number (13 or more ASCII digits); anything else is shown as `[REDACTED]`, since
/// its last 4 characters could be most of a short or misplaced secret.
struct MaskedCardNumber<'a>(&'a str);

impl fmt::Debug for MaskedCardNumber<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let number = self.0;
        if number.len() >= 13 && number.bytes().all(|b| b.is_ascii_digit()) {
            // All ASCII, so any byte index is a character boundary.
            f.write_str("****")?;
            f.write_str(number.get(number.len() - 4..).unwrap_or_default())
        } else {
            Redacted.fmt(f)
        }
    }
}

/// The associated data that binds an `encData` to a merchant and mode: `"{mId}:{mode}"`, e.g.
/// `"mid_01KAR3Q5M2V6Y8Z0A1B2C3D4E5:test"`.
pub fn associated_data(merchant_id: &MerchantId, mode: Mode) -> String {
    format!("{merchant_id}:{}", mode.as_str())
}

/// Encrypts `fields` with a fresh random nonce. paygate itself only decrypts; this is for tests, docs and tools.
pub fn encrypt(key: &EncDataKey, aad: &str, fields: &EncryptedCardFields) -> Result<String, EncDataError> {
    encrypt_with_nonce(key, aad, fields, crate::random_bytes())
}

/// [`encrypt`] with a caller-chosen nonce, for deterministic test vectors only. Never encrypt two messages with the
/// same key and nonce: GCM then leaks the XOR of the plaintexts and lets anyone forge tags.
pub fn encrypt_with_nonce(
    key: &EncDataKey,
    aad: &str,
    fields: &EncryptedCardFields,
    nonce: [u8; NONCE_LEN],
) -> Result<String, EncDataError> {
    let plaintext = serde_json::to_vec(fields).map_err(|_| EncDataError::Encryption)?;
    seal(key, aad, &plaintext, nonce)
}

/// Builds an `encData` around any plaintext (tests use it to encrypt payloads `EncryptedCardFields` cannot express).
fn seal(key: &EncDataKey, aad: &str, plaintext: &[u8], nonce: [u8; NONCE_LEN]) -> Result<String, EncDataError> {
    let sealed = key
        .cipher()
        .encrypt(
            &Nonce::from(nonce),
            Payload {
                msg: plaintext,
                aad: aad.as_bytes(),
            },
        )
        .map_err(|_| EncDataError::Encryption)?;
    let mut raw = Vec::with_capacity(HEADER_LEN + sealed.len());
    raw.push(FORMAT_VERSION);
    raw.extend_from_slice(&key.version.to_be_bytes());
    raw.extend_from_slice(&nonce);
    raw.extend_from_slice(&sealed);
    let enc_data = BASE64URL.encode(raw);
    // Never produce what `decrypt` would refuse.
    if enc_data.len() > MAX_ENC_DATA_LEN {
        return Err(EncDataError::Encryption);
    }
    Ok(enc_data)
}

/// Decrypts an `encData` with whichever of `keys` has the version named in its header (during a rotation the
/// merchant's previous and current keys are both passed), authenticating `aad` (see [`associated_data`]).
pub fn decrypt(keys: &[EncDataKey], aad: &str, enc_data: &str) -> Result<EncryptedCardFields, EncDataError> {
    if enc_data.is_empty() {
        return Err(EncDataError::Malformed(EMPTY));
    }
    if enc_data.len() > MAX_ENC_DATA_LEN {
        return Err(EncDataError::Malformed(TOO_LONG));
    }
    let raw = BASE64URL
        .decode(enc_data)
        .map_err(|_| EncDataError::Malformed(NOT_BASE64URL))?;
    let (header, sealed) = match raw.split_first_chunk::<HEADER_LEN>() {
        Some((header, sealed)) if sealed.len() >= TAG_LEN => (header, sealed),
        _ => return Err(EncDataError::Malformed(TOO_SHORT)),
    };
    let [format, v0, v1, v2, v3, nonce @ ..] = *header;
    if format != FORMAT_VERSION {
        return Err(EncDataError::UnsupportedFormatVersion(format));
    }
    let key_version = u32::from_be_bytes([v0, v1, v2, v3]);
    let key = keys
        .iter()
        .find(|key| key.version == key_version)
        .ok_or(EncDataError::UnknownKeyVersion(key_version))?;
    let plaintext = key
        .cipher()
        .decrypt(
            &Nonce::from(nonce),
            Payload {
                msg: sealed,
                aad: aad.as_bytes(),
            },
        )
        .map_err(|_| EncDataError::DecryptionFailed)?;
    parse_fields(&plaintext)
}

/// Parses the plaintext by hand rather than with `serde_json::from_slice::<EncryptedCardFields>`, because serde's
/// messages quote values (`invalid type: string "4330…"`). Duplicate names are refused, not silently overwritten.
fn parse_fields(plaintext: &[u8]) -> Result<EncryptedCardFields, EncDataError> {
    let entries = match serde_json::from_slice::<Entries>(plaintext) {
        Ok(Entries(entries)) => entries,
        // A well-formed JSON value that is not an object.
        Err(error) if error.is_data() => return Err(invalid("it is not a JSON object".to_owned())),
        Err(error) => {
            let (line, column) = (error.line(), error.column());
            return Err(invalid(format!(
                "it is not valid UTF-8 JSON (line {line}, column {column})"
            )));
        }
    };
    let mut values: [Option<serde_json::Value>; FIELD_NAMES.len()] = Default::default();
    for (name, value) in entries {
        let slot = FIELD_NAMES
            .iter()
            .position(|known| *known == name)
            .and_then(|index| values.get_mut(index))
            .ok_or_else(|| invalid(unknown_field(&name)))?;
        if slot.is_some() {
            return Err(invalid(format!("duplicate field `{name}`")));
        }
        *slot = Some(value);
    }
    let [card_number, card_expiration_year, card_expiration_month, customer_identity_number, card_password] = values;
    Ok(EncryptedCardFields {
        card_number: required("cardNumber", card_number)?,
        card_expiration_year: required("cardExpirationYear", card_expiration_year)?,
        card_expiration_month: required("cardExpirationMonth", card_expiration_month)?,
        customer_identity_number: optional("customerIdentityNumber", customer_identity_number)?,
        card_password: optional("cardPassword", card_password)?,
    })
}

fn invalid(problem: String) -> EncDataError {
    EncDataError::InvalidPayload(problem)
}

fn required(name: &str, value: Option<serde_json::Value>) -> Result<String, EncDataError> {
    optional(name, value)?.ok_or_else(|| invalid(format!("`{name}` is required and must be a string")))
}

/// Absent and `null` are both "not given".
fn optional(name: &str, value: Option<serde_json::Value>) -> Result<Option<String>, EncDataError> {
    match value {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(serde_json::Value::String(text)) => Ok(Some(text)),
        Some(_) => Err(invalid(format!("`{name}` must be a string"))),
    }
}

/// Names an unknown field only when its name looks like an identifier, so a value sent as a name is not echoed.
fn unknown_field(name: &str) -> String {
    let identifier = name.len() <= 64
        && name.starts_with(|c: char| c.is_ascii_alphabetic())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && name.chars().filter(char::is_ascii_digit).count() < 4;
    if identifier {
        format!("unknown field `{name}`")
    } else {
        "unknown field (name not shown)".to_owned()
    }
}

/// A JSON object's members in order, duplicates included.
struct Entries(Vec<(String, serde_json::Value)>);

impl<'de> Deserialize<'de> for Entries {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Entries, D::Error> {
        struct Visitor;

        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = Entries;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }

            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Entries, A::Error> {
                let mut entries = Vec::new();
                while let Some(entry) = map.next_entry::<String, serde_json::Value>()? {
                    entries.push(entry);
                }
                Ok(Entries(entries))
            }
        }

        deserializer.deserialize_map(Visitor)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    // The test vectors of docs/encdata.md, produced by examples/encdata/encrypt.mjs (Node 20) and reproduced
    // byte for byte by examples/encdata/encrypt.py (Python 3.11, cryptography 48).
    const MID: &str = "mid_01KAR3Q5M2V6Y8Z0A1B2C3D4E5";
    const AAD: &str = "mid_01KAR3Q5M2V6Y8Z0A1B2C3D4E5:test";
    const VECTOR_1: &str = concat!(
        "AQAAAAGgoaKjpKWmp6ipqqudOh9MN69Myg8H4qElQOLqQ59pIKKHclysPha2T5tGI_5UJJ7dRhZFL_V2qX0T7Jcefic6QOo4THl8",
        "J3zHEffU8cT1BkLEkImbjLJ34bqkmPcpm5Pn7bsZmwZK9dz_P93r4UXfatr21eu2ZDX3qtcKHWBRn-4EuRANrL_W0AWT",
        "PrZm3w23YLo1Bmvc9of1lFxqILeXianGbo9Rgak",
    );
    const VECTOR_2: &str = concat!(
        "AQECAwSwsbKztLW2t7i5urtN2Ekm4EeGe19veIghB78CpQCSq7p4pAHQdJ9o5Rc-_TjvMpWnmVNesQ1pbKjI806OnIcNCTco",
        "KmA-SfMy2i0MV6HQpD61sR90_c1hLyJ1qk-HPA90wCaNkUtQFMHLSUHHuUAB3Es",
    );

    fn key_bytes(first: u8) -> [u8; 32] {
        std::array::from_fn(|i| first + u8::try_from(i).unwrap())
    }

    /// Key version 1 = bytes 00..1f, as in the docs.
    fn key1() -> EncDataKey {
        EncDataKey::new(1, key_bytes(0x00))
    }

    fn fields(identity: Option<&str>, password: Option<&str>) -> EncryptedCardFields {
        EncryptedCardFields {
            card_number: "4330000000000003".to_owned(),
            card_expiration_year: "28".to_owned(),
            card_expiration_month: "07".to_owned(),
            customer_identity_number: identity.map(str::to_owned),
            card_password: password.map(str::to_owned),
        }
    }

    fn full_fields() -> EncryptedCardFields {
        fields(Some("900101"), Some("12"))
    }

    fn b64(raw: &[u8]) -> String {
        BASE64URL.encode(raw)
    }

    fn unb64(text: &str) -> Vec<u8> {
        BASE64URL.decode(text).unwrap()
    }

    #[test]
    fn fixed_vectors_match_the_node_and_python_examples() {
        let cases = [
            (
                "v1, all fields",
                EncDataKey::from_base64(1, "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=").unwrap(),
                [0xa0, 0xa1, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6, 0xa7, 0xa8, 0xa9, 0xaa, 0xab],
                full_fields(),
                VECTOR_1,
            ),
            (
                "v0x01020304, required fields only",
                EncDataKey::from_base64(0x0102_0304, "ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8=").unwrap(),
                [0xb0, 0xb1, 0xb2, 0xb3, 0xb4, 0xb5, 0xb6, 0xb7, 0xb8, 0xb9, 0xba, 0xbb],
                fields(None, None),
                VECTOR_2,
            ),
        ];
        let aad = associated_data(&MerchantId::parse(MID).unwrap(), Mode::Test);
        assert_eq!(aad, AAD);
        for (name, key, nonce, fields, expected) in cases {
            assert_eq!(
                encrypt_with_nonce(&key, &aad, &fields, nonce).unwrap(),
                expected,
                "{name}"
            );
            assert_eq!(
                decrypt(std::slice::from_ref(&key), &aad, expected).unwrap(),
                fields,
                "{name}"
            );
        }
        assert_eq!(key1().to_base64(), "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=");
        // The layout, byte by byte.
        let raw = unb64(VECTOR_2);
        assert_eq!(raw[..5], [0x01, 0x01, 0x02, 0x03, 0x04]);
        assert_eq!(
            raw[5..17],
            [0xb0, 0xb1, 0xb2, 0xb3, 0xb4, 0xb5, 0xb6, 0xb7, 0xb8, 0xb9, 0xba, 0xbb]
        );
        let plaintext = br#"{"cardNumber":"4330000000000003","cardExpirationYear":"28","cardExpirationMonth":"07"}"#;
        assert_eq!(raw.len(), HEADER_LEN + plaintext.len() + TAG_LEN);
    }

    #[test]
    fn round_trips() {
        let key = EncDataKey::generate(3);
        let cases = [
            ("all fields", full_fields()),
            ("required only", fields(None, None)),
            ("identity only", fields(Some("1234567890"), None)),
            ("password only", fields(None, Some("00"))),
            ("empty strings", fields(Some(""), Some(""))),
            ("non-ASCII survives", fields(Some("생년월일"), None)),
        ];
        for (name, fields) in cases {
            let enc_data = encrypt(&key, AAD, &fields).unwrap();
            assert!(!enc_data.contains('='), "{name}: no padding");
            assert_eq!(
                decrypt(std::slice::from_ref(&key), AAD, &enc_data).unwrap(),
                fields,
                "{name}"
            );
        }
        // Fresh nonce each time.
        let a = encrypt(&key, AAD, &full_fields()).unwrap();
        let b = encrypt(&key, AAD, &full_fields()).unwrap();
        assert_ne!(a, b);
        assert_ne!(unb64(&a)[5..17], unb64(&b)[5..17]);
    }

    #[test]
    fn tampering_is_detected() {
        let key2 = EncDataKey::new(2, key_bytes(0x40));
        let keys = [key1(), key2];
        let raw = unb64(VECTOR_1);
        let last = raw.len() - 1;
        let cases = [
            ("format version 0", 0, 0x01, EncDataError::UnsupportedFormatVersion(0)),
            ("format version 3", 0, 0x02, EncDataError::UnsupportedFormatVersion(3)),
            (
                "key version high byte",
                1,
                0x80,
                EncDataError::UnknownKeyVersion(0x8000_0001),
            ),
            ("key version 1 → 3", 4, 0x02, EncDataError::UnknownKeyVersion(3)),
            (
                "key version 1 → 2 (another real key)",
                4,
                0x03,
                EncDataError::DecryptionFailed,
            ),
            ("nonce first byte", 5, 0x01, EncDataError::DecryptionFailed),
            ("nonce last byte", 16, 0x80, EncDataError::DecryptionFailed),
            ("ciphertext first byte", 17, 0x01, EncDataError::DecryptionFailed),
            ("ciphertext middle byte", 60, 0x40, EncDataError::DecryptionFailed),
            (
                "ciphertext last byte",
                last - TAG_LEN,
                0x01,
                EncDataError::DecryptionFailed,
            ),
            (
                "tag first byte",
                last - TAG_LEN + 1,
                0x01,
                EncDataError::DecryptionFailed,
            ),
            ("tag last byte", last, 0x80, EncDataError::DecryptionFailed),
        ];
        assert_eq!(decrypt(&keys, AAD, VECTOR_1).unwrap(), full_fields());
        for (name, index, mask, expected) in cases {
            let mut tampered = raw.clone();
            tampered[index] ^= mask;
            assert_eq!(decrypt(&keys, AAD, &b64(&tampered)), Err(expected), "{name}");
        }
        let truncated_tag = b64(&raw[..last]);
        assert_eq!(decrypt(&keys, AAD, &truncated_tag), Err(EncDataError::DecryptionFailed));
        let appended = b64(&[raw.as_slice(), &[0]].concat());
        assert_eq!(decrypt(&keys, AAD, &appended), Err(EncDataError::DecryptionFailed));
    }

    #[test]
    fn the_aad_binds_merchant_and_mode() {
        let keys = [key1()];
        let cases = [
            ("live mode", "mid_01KAR3Q5M2V6Y8Z0A1B2C3D4E5:live"),
            ("another merchant", "mid_01KAR3Q5M2V6Y8Z0A1B2C3D4E6:test"),
            ("no mode", "mid_01KAR3Q5M2V6Y8Z0A1B2C3D4E5"),
            ("lower case", "mid_01kar3q5m2v6y8z0a1b2c3d4e5:test"),
            ("trailing space", "mid_01KAR3Q5M2V6Y8Z0A1B2C3D4E5:test "),
            ("empty", ""),
        ];
        for (name, aad) in cases {
            assert_eq!(
                decrypt(&keys, aad, VECTOR_1),
                Err(EncDataError::DecryptionFailed),
                "{name}"
            );
        }
        let other_key_same_version = EncDataKey::new(1, key_bytes(0x01));
        assert_eq!(
            decrypt(&[other_key_same_version], AAD, VECTOR_1),
            Err(EncDataError::DecryptionFailed)
        );
    }

    #[test]
    fn key_rotation() {
        let v1 = EncDataKey::generate(1);
        let v2 = EncDataKey::generate(2);
        let old = encrypt(&v1, AAD, &full_fields()).unwrap();
        let new = encrypt(&v2, AAD, &full_fields()).unwrap();
        type Case<'a> = (
            &'a str,
            Vec<EncDataKey>,
            &'a str,
            Result<EncryptedCardFields, EncDataError>,
        );
        let cases: [Case; 6] = [
            (
                "old data, grace period",
                vec![v1.clone(), v2.clone()],
                &old,
                Ok(full_fields()),
            ),
            (
                "old data, keys in any order",
                vec![v2.clone(), v1.clone()],
                &old,
                Ok(full_fields()),
            ),
            (
                "new data, grace period",
                vec![v1.clone(), v2.clone()],
                &new,
                Ok(full_fields()),
            ),
            (
                "old data after v1 removed",
                vec![v2.clone()],
                &old,
                Err(EncDataError::UnknownKeyVersion(1)),
            ),
            ("new data after v1 removed", vec![v2.clone()], &new, Ok(full_fields())),
            ("no keys at all", vec![], &new, Err(EncDataError::UnknownKeyVersion(2))),
        ];
        for (name, keys, enc_data, expected) in cases {
            assert_eq!(decrypt(&keys, AAD, enc_data), expected, "{name}");
        }
    }

    #[test]
    fn malformed_inputs() {
        let keys = [key1()];
        let short = |n: usize| b64(&unb64(VECTOR_1)[..n]);
        let padded = format!("{VECTOR_1}==");
        let cases: Vec<(&str, String, Result<(), EncDataError>)> = vec![
            ("empty", String::new(), Err(EncDataError::Malformed(EMPTY))),
            (
                "one character",
                "A".to_owned(),
                Err(EncDataError::Malformed(NOT_BASE64URL)),
            ),
            ("one byte", "AQ".to_owned(), Err(EncDataError::Malformed(TOO_SHORT))),
            (
                "header only",
                short(HEADER_LEN),
                Err(EncDataError::Malformed(TOO_SHORT)),
            ),
            (
                "one byte short of a tag",
                short(HEADER_LEN + TAG_LEN - 1),
                Err(EncDataError::Malformed(TOO_SHORT)),
            ),
            (
                "header and tag, no ciphertext",
                short(HEADER_LEN + TAG_LEN),
                Err(EncDataError::DecryptionFailed),
            ),
            (
                "4097 characters",
                "A".repeat(4097),
                Err(EncDataError::Malformed(TOO_LONG)),
            ),
            ("1 MiB", "A".repeat(1 << 20), Err(EncDataError::Malformed(TOO_LONG))),
            (
                "standard alphabet",
                VECTOR_1.replace('_', "/"),
                Err(EncDataError::Malformed(NOT_BASE64URL)),
            ),
            (
                "embedded newline",
                format!("{}\n{}", &VECTOR_1[..40], &VECTOR_1[40..]),
                Err(EncDataError::Malformed(NOT_BASE64URL)),
            ),
            (
                "surrounding space",
                format!(" {VECTOR_1}"),
                Err(EncDataError::Malformed(NOT_BASE64URL)),
            ),
            (
                "non-ASCII",
                "한글".repeat(30),
                Err(EncDataError::Malformed(NOT_BASE64URL)),
            ),
            ("padding is tolerated", padded[..padded.len() - 1].to_owned(), Ok(())),
            (
                "unsupported version with a valid length",
                b64(&[[2u8].as_slice(), &[0; 40]].concat()),
                Err(EncDataError::UnsupportedFormatVersion(2)),
            ),
        ];
        for (name, input, expected) in cases {
            assert_eq!(decrypt(&keys, AAD, &input).map(|_| ()), expected, "{name}");
        }
        // Exactly the limit is decoded (and then fails on its content, not its length).
        let at_limit = "A".repeat(MAX_ENC_DATA_LEN);
        assert_eq!(
            decrypt(&keys, AAD, &at_limit),
            Err(EncDataError::UnsupportedFormatVersion(0))
        );
    }

    #[test]
    fn invalid_payloads_name_the_problem_not_the_value() {
        let key = key1();
        let decrypt_plaintext = |plaintext: &[u8]| {
            let enc_data = seal(&key, AAD, plaintext, [7; NONCE_LEN]).unwrap();
            decrypt(std::slice::from_ref(&key), AAD, &enc_data)
        };
        // The expiry members, valid in every case below.
        const EXP: &str = r#""cardExpirationYear":"28","cardExpirationMonth":"07""#;
        const PAN: &str = r#""cardNumber":"4330000000000003""#;
        let json = |members: &str| format!("{{{members}}}").into_bytes();
        let cases: Vec<(&str, Vec<u8>, &str)> = vec![
            (
                "unknown field",
                json(&format!(r#"{PAN},{EXP},"cvc":"4330""#)),
                "unknown field `cvc`",
            ),
            (
                "value-like name",
                json(r#""4330000000000003":"x""#),
                "unknown field (name not shown)",
            ),
            (
                "letter, digits",
                json(r#""x4330000000000003":"x""#),
                "unknown field (name not shown)",
            ),
            (
                "missing number",
                json(EXP),
                "`cardNumber` is required and must be a string",
            ),
            (
                "missing month",
                json(&format!(r#"{PAN},"cardExpirationYear":"28""#)),
                "`cardExpirationMonth` is required and must be a string",
            ),
            (
                "null number",
                json(&format!(r#""cardNumber":null,{EXP}"#)),
                "`cardNumber` is required and must be a string",
            ),
            (
                "number not a string",
                json(&format!(r#""cardNumber":4330000000000003,{EXP}"#)),
                "`cardNumber` must be a string",
            ),
            (
                "password not a string",
                json(&format!(r#"{PAN},{EXP},"cardPassword":43"#)),
                "`cardPassword` must be a string",
            ),
            (
                "object value",
                json(&format!(r#"{PAN},{EXP},"cardPassword":{{"a":"4330"}}"#)),
                "`cardPassword` must be a string",
            ),
            (
                "duplicate",
                json(&format!(r#"{PAN},{EXP},"cardNumber":"4330000000000004""#)),
                "duplicate field `cardNumber`",
            ),
            ("bare number", b"4330000000000003".to_vec(), "it is not a JSON object"),
            (
                "bare string",
                br#""4330000000000003""#.to_vec(),
                "it is not a JSON object",
            ),
            ("array", br#"["4330000000000003"]"#.to_vec(), "it is not a JSON object"),
            ("null", b"null".to_vec(), "it is not a JSON object"),
            (
                "truncated",
                br#"{"cardNumber":"43300000"#.to_vec(),
                "it is not valid UTF-8 JSON (line 1, column 23)",
            ),
            (
                "trailing data",
                json(PAN).into_iter().chain(*b" 4330").collect(),
                "it is not valid UTF-8 JSON (line 1, column 35)",
            ),
            ("empty", Vec::new(), "it is not valid UTF-8 JSON (line 1, column 0)"),
            (
                "invalid UTF-8",
                b"{\"cardNumber\":\"4330\xff\"}".to_vec(),
                "it is not valid UTF-8 JSON (line 1, column 20)",
            ),
        ];
        for (name, plaintext, problem) in cases {
            let error = decrypt_plaintext(&plaintext).unwrap_err();
            assert_eq!(error, EncDataError::InvalidPayload(problem.to_owned()), "{name}");
            assert!(!format!("{error} {error:?}").contains("4330"), "{name}: {error}");
        }

        let cases: Vec<(&str, Vec<u8>, EncryptedCardFields)> = vec![
            (
                "explicit nulls are \"not given\"",
                json(&format!(
                    r#"{PAN},{EXP},"customerIdentityNumber":null,"cardPassword":null"#
                )),
                fields(None, None),
            ),
            (
                "any order, any whitespace",
                format!(" {{\n {EXP} , {PAN} }}\n").into_bytes(),
                fields(None, None),
            ),
            (
                "all fields",
                json(&format!(
                    r#"{PAN},{EXP},"customerIdentityNumber":"900101","cardPassword":"12""#
                )),
                full_fields(),
            ),
        ];
        for (name, plaintext, expected) in cases {
            assert_eq!(decrypt_plaintext(&plaintext).unwrap(), expected, "{name}");
        }
    }

    #[test]
    fn debug_and_errors_do_not_leak() {
        let cases = [
            (
                full_fields(),
                "EncryptedCardFields { card_number: ****0003, card_expiration_year: [REDACTED], \
                 card_expiration_month: [REDACTED], customer_identity_number: Some([REDACTED]), \
                 card_password: Some([REDACTED]) }",
            ),
            (
                fields(None, None),
                "EncryptedCardFields { card_number: ****0003, card_expiration_year: [REDACTED], \
                 card_expiration_month: [REDACTED], customer_identity_number: None, card_password: None }",
            ),
            (
                EncryptedCardFields {
                    card_number: "123456".to_owned(),
                    ..fields(None, None)
                },
                "EncryptedCardFields { card_number: [REDACTED], card_expiration_year: [REDACTED], \
                 card_expiration_month: [REDACTED], customer_identity_number: None, card_password: None }",
            ),
            (
                EncryptedCardFields {
                    card_number: "4330-0000-0000-0003".to_owned(),
                    ..fields(None, None)
                },
                "EncryptedCardFields { card_number: [REDACTED], card_expiration_year: [REDACTED], \
                 card_expiration_month: [REDACTED], customer_identity_number: None, card_password: None }",
            ),
        ];
        for (fields, expected) in cases {
            assert_eq!(format!("{fields:?}"), expected);
            assert!(!format!("{fields:#?}").contains("4330"));
        }

        let key = key1();
        let debug = format!("{key:?}");
        assert_eq!(debug, "EncDataKey { version: 1, key: [REDACTED] }");
        assert!(!format!("{key:#?}").contains(&key.to_base64()[..8]));

        let errors = [
            EncDataError::Malformed(EMPTY),
            EncDataError::UnsupportedFormatVersion(2),
            EncDataError::UnknownKeyVersion(7),
            EncDataError::DecryptionFailed,
            EncDataError::InvalidPayload("unknown field `cvc`".to_owned()),
            EncDataError::Encryption,
            EncDataError::InvalidKey,
        ];
        for error in errors {
            let text = format!("{error} {error:?}");
            assert!(!text.contains("4330") && !text.contains("AAECAwQF"), "{text}");
        }
    }

    #[test]
    fn keys_in_base64() {
        let key = EncDataKey::generate(9);
        assert_eq!(key.version(), 9);
        let text = key.to_base64();
        assert_eq!(text.len(), 44);
        let again = EncDataKey::from_base64(9, &format!(" {text}\n")).unwrap();
        assert_eq!(again.expose_bytes(), key.expose_bytes());
        assert_eq!(EncDataKey::new(9, *key.expose_bytes()).to_base64(), text);
        assert_ne!(EncDataKey::generate(9).bytes, key.bytes);

        let cases = [
            ("31 bytes", STANDARD.encode([0u8; 31])),
            ("33 bytes", STANDARD.encode([0u8; 33])),
            ("empty", String::new()),
            ("no padding", "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8".to_owned()),
            ("url-safe alphabet", BASE64URL.encode([0xfb; 32])),
            ("hex", hex::encode([0u8; 32])),
        ];
        for (name, text) in cases {
            assert_eq!(
                EncDataKey::from_base64(1, &text).map(|_| ()),
                Err(EncDataError::InvalidKey),
                "{name}"
            );
        }
    }

    #[test]
    fn serde_shape() {
        let json = serde_json::to_string(&fields(None, Some("12"))).unwrap();
        assert_eq!(
            json,
            concat!(
                r#"{"cardNumber":"4330000000000003","cardExpirationYear":"28","cardExpirationMonth":"07","#,
                r#""cardPassword":"12"}"#
            )
        );
        let back: EncryptedCardFields = serde_json::from_str(&json).unwrap();
        assert_eq!(back, fields(None, Some("12")));
        let unknown =
            r#"{"cardNumber":"4330000000000003","cardExpirationYear":"28","cardExpirationMonth":"07","cvc":"1"}"#;
        assert!(serde_json::from_str::<EncryptedCardFields>(unknown).is_err());
        let mut names: Vec<String> = match serde_json::to_value(full_fields()).unwrap() {
            serde_json::Value::Object(map) => map.keys().cloned().collect(),
            _ => unreachable!(),
        };
        names.sort();
        let mut expected: Vec<String> = FIELD_NAMES.iter().map(|n| (*n).to_owned()).collect();
        expected.sort();
        assert_eq!(names, expected);
    }

    #[test]
    fn oversized_fields_are_refused_at_encryption() {
        let huge = EncryptedCardFields {
            card_number: "4".repeat(3100),
            ..fields(None, None)
        };
        assert_eq!(encrypt(&key1(), AAD, &huge), Err(EncDataError::Encryption));
        let fits = EncryptedCardFields {
            card_number: "4".repeat(2900),
            ..fields(None, None)
        };
        let enc_data = encrypt(&key1(), AAD, &fits).unwrap();
        assert!(enc_data.len() <= MAX_ENC_DATA_LEN);
        assert_eq!(decrypt(&[key1()], AAD, &enc_data).unwrap(), fits);
    }
}
