//! API keys: their textual format, checksum, keyed hash and lifecycle.
//!
//! A key reads `{mode}_{kind}_{body}{checksum}`: `test_sk_` + 32 base62 characters of CSPRNG output + 6 base62
//! characters of CRC-32 over everything before them. The checksum lets paygate tell a mistyped key (answer:
//! "malformed key") from a well-formed one it does not know or has revoked, without a database lookup.
//! paygate stores only an HMAC-SHA256 of the whole key under a server-side pepper, plus a short display prefix;
//! the key itself is shown once, at creation.

use std::fmt;

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::id::{ApiKeyId, MerchantId};
use crate::time::UnixMillis;

const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
const BODY_LEN: usize = 32;
const CHECKSUM_LEN: usize = 6;
const PREFIX_LEN: usize = 8; // "test_sk_"
/// How many body characters the stored display prefix keeps after `test_sk_`.
const DISPLAY_BODY_LEN: usize = 4;
pub const KEY_LEN: usize = PREFIX_LEN + BODY_LEN + CHECKSUM_LEN;

/// Test keys only ever reach sandbox acquirers; live keys reach real ones.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Mode {
    Test,
    Live,
}

impl Mode {
    pub const ALL: [Mode; 2] = [Mode::Test, Mode::Live];

    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Test => "test",
            Mode::Live => "live",
        }
    }

    pub fn parse(text: &str) -> Option<Mode> {
        match text {
            "test" => Some(Mode::Test),
            "live" => Some(Mode::Live),
            _ => None,
        }
    }
}

/// Secret keys are for merchant servers; client keys may only start payments from a browser.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum KeyKind {
    Secret,
    Client,
}

impl KeyKind {
    pub const ALL: [KeyKind; 2] = [KeyKind::Secret, KeyKind::Client];

    pub fn as_str(self) -> &'static str {
        match self {
            KeyKind::Secret => "sk",
            KeyKind::Client => "ck",
        }
    }

    pub fn parse(text: &str) -> Option<KeyKind> {
        match text {
            "sk" => Some(KeyKind::Secret),
            "ck" => Some(KeyKind::Client),
            _ => None,
        }
    }
}

/// Why a presented key string is not a paygate key at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum KeyFormatError {
    #[error("the key must start with test_sk_, live_sk_, test_ck_ or live_ck_")]
    UnknownPrefix,
    #[error("the key has the wrong length")]
    WrongLength,
    #[error("the key contains a character that keys never contain")]
    BadCharacter,
    #[error("the key's checksum does not match; it was probably mistyped or truncated")]
    ChecksumMismatch,
}

/// The full plaintext of a key. It exists only while a key is generated or a request is authenticated;
/// `Debug` and `Display` never show it.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKeySecret {
    text: String,
    mode: Mode,
    kind: KeyKind,
}

impl ApiKeySecret {
    /// Generates a key from a source of uniformly random bytes (the caller passes a CSPRNG).
    /// Bytes are mapped to base62 by rejection sampling, so every character is equally likely.
    pub fn generate(mode: Mode, kind: KeyKind, mut random_byte: impl FnMut() -> u8) -> ApiKeySecret {
        let mut text = String::with_capacity(KEY_LEN);
        text.push_str(mode.as_str());
        text.push('_');
        text.push_str(kind.as_str());
        text.push('_');
        let mut produced = 0;
        // 248 = 62 * 4: bytes at or above it would bias the low characters, so they are drawn again.
        // With a uniform source the expected number of draws is 32 * 256/248 ≈ 33.
        while produced < BODY_LEN {
            let byte = random_byte();
            if byte < 248 {
                text.push(char::from(BASE62[usize::from(byte % 62)]));
                produced += 1;
            }
        }
        let checksum = checksum_chars(text.as_bytes());
        text.push_str(&checksum);
        ApiKeySecret { text, mode, kind }
    }

    /// Checks the format and checksum of a presented key.
    pub fn parse(text: &str) -> Result<ApiKeySecret, KeyFormatError> {
        let (mode, kind) = parse_prefix(text).ok_or(KeyFormatError::UnknownPrefix)?;
        if text.len() != KEY_LEN {
            return Err(KeyFormatError::WrongLength);
        }
        let rest = &text.as_bytes()[PREFIX_LEN..];
        if !rest.iter().all(u8::is_ascii_alphanumeric) {
            return Err(KeyFormatError::BadCharacter);
        }
        let (signed, checksum) = text.as_bytes().split_at(PREFIX_LEN + BODY_LEN);
        if checksum_chars(signed).as_bytes() != checksum {
            return Err(KeyFormatError::ChecksumMismatch);
        }
        Ok(ApiKeySecret {
            text: text.to_owned(),
            mode,
            kind,
        })
    }

    pub fn mode(&self) -> Mode {
        self.mode
    }

    pub fn kind(&self) -> KeyKind {
        self.kind
    }

    /// The short prefix kept in clear for display (`test_sk_AbCd`), enough to recognise a key, useless to guess it.
    pub fn display_prefix(&self) -> String {
        self.text[..PREFIX_LEN + DISPLAY_BODY_LEN].to_owned()
    }

    /// The plaintext, for showing once to its owner. Named loudly so that a call site is easy to audit.
    pub fn expose_secret(&self) -> &str {
        &self.text
    }
}

impl fmt::Debug for ApiKeySecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ApiKeySecret({}…[REDACTED])", &self.text[..PREFIX_LEN])
    }
}

fn parse_prefix(text: &str) -> Option<(Mode, KeyKind)> {
    let prefix = text.get(..PREFIX_LEN)?;
    let (mode, rest) = prefix.split_once('_')?;
    let kind = rest.strip_suffix('_')?;
    Some((Mode::parse(mode)?, KeyKind::parse(kind)?))
}

/// CRC-32 (IEEE) of the input, written as 6 base62 characters (62^6 > 2^32).
fn checksum_chars(input: &[u8]) -> String {
    let mut value = crc32(input);
    let mut out = [b'0'; CHECKSUM_LEN];
    for slot in out.iter_mut().rev() {
        *slot = BASE62[usize::try_from(value % 62).unwrap_or(0)];
        value /= 62;
    }
    out.iter().map(|&b| char::from(b)).collect()
}

fn crc32(input: &[u8]) -> u32 {
    let mut crc: u32 = 0xFFFF_FFFF;
    for &byte in input {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            let mask = (crc & 1).wrapping_neg();
            crc = (crc >> 1) ^ (0xEDB8_8320 & mask);
        }
    }
    !crc
}

/// The stored form of a key: HMAC-SHA256 under the server's pepper. Without the pepper, a leaked table of hashes
/// cannot even be brute-forced offline.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct KeyHash([u8; 32]);

impl KeyHash {
    pub fn from_bytes(bytes: [u8; 32]) -> KeyHash {
        KeyHash(bytes)
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Debug for KeyHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("KeyHash(..)")
    }
}

/// Holds the pepper. At least 32 bytes, so the HMAC key is never the weak link.
#[derive(Clone)]
pub struct KeyHasher {
    pepper: Vec<u8>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the API key pepper must be at least 32 bytes")]
pub struct PepperTooShort;

impl KeyHasher {
    pub const MIN_PEPPER_LEN: usize = 32;

    pub fn new(pepper: Vec<u8>) -> Result<KeyHasher, PepperTooShort> {
        if pepper.len() < Self::MIN_PEPPER_LEN {
            return Err(PepperTooShort);
        }
        Ok(KeyHasher { pepper })
    }

    pub fn hash(&self, key: &ApiKeySecret) -> KeyHash {
        // HMAC accepts keys of any length, so construction cannot fail; the fallback keeps clippy's unwrap ban.
        let mut mac = match Hmac::<Sha256>::new_from_slice(&self.pepper) {
            Ok(mac) => mac,
            Err(_) => return KeyHash([0; 32]),
        };
        mac.update(key.expose_secret().as_bytes());
        KeyHash(mac.finalize().into_bytes().into())
    }
}

impl fmt::Debug for KeyHasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("KeyHasher([REDACTED])")
    }
}

/// What paygate keeps about a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKey {
    pub id: ApiKeyId,
    pub merchant_id: MerchantId,
    pub mode: Mode,
    pub kind: KeyKind,
    pub display_prefix: String,
    pub created_at: UnixMillis,
    /// Set when the key was revoked (at once, or scheduled by a rotation's grace period).
    pub revoked_at: Option<UnixMillis>,
}

/// Whether a stored key may authenticate a request at a given instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyState {
    Active,
    Revoked,
}

impl ApiKey {
    pub fn state_at(&self, now: UnixMillis) -> KeyState {
        match self.revoked_at {
            Some(at) if at <= now => KeyState::Revoked,
            _ => KeyState::Active,
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn counter_source() -> impl FnMut() -> u8 {
        let mut next: u8 = 0;
        move || {
            next = next.wrapping_add(37);
            next
        }
    }

    #[test]
    fn generated_keys_parse_back() {
        for mode in Mode::ALL {
            for kind in KeyKind::ALL {
                let key = ApiKeySecret::generate(mode, kind, counter_source());
                let text = key.expose_secret();
                assert_eq!(text.len(), KEY_LEN);
                assert!(text.starts_with(&format!("{}_{}_", mode.as_str(), kind.as_str())));
                let parsed = ApiKeySecret::parse(text).unwrap();
                assert_eq!(parsed.mode(), mode);
                assert_eq!(parsed.kind(), kind);
                assert_eq!(parsed.display_prefix().len(), 12);
            }
        }
    }

    #[test]
    fn tells_typos_apart() {
        let key = ApiKeySecret::generate(Mode::Test, KeyKind::Secret, counter_source());
        let text = key.expose_secret().to_owned();
        let mut typo = text.clone().into_bytes();
        typo[20] = if typo[20] == b'a' { b'b' } else { b'a' };
        let typo = String::from_utf8(typo).unwrap();
        let cases: Vec<(String, KeyFormatError)> = vec![
            ("".into(), KeyFormatError::UnknownPrefix),
            ("prod_sk_abc".into(), KeyFormatError::UnknownPrefix),
            ("test_pk_".to_owned() + &text[8..], KeyFormatError::UnknownPrefix),
            (text[..KEY_LEN - 1].to_owned(), KeyFormatError::WrongLength),
            (text.clone() + "x", KeyFormatError::WrongLength),
            (text[..KEY_LEN - 1].to_owned() + "-", KeyFormatError::BadCharacter),
            (typo, KeyFormatError::ChecksumMismatch),
        ];
        for (input, expected) in cases {
            assert_eq!(ApiKeySecret::parse(&input).unwrap_err(), expected, "input {input}");
        }
    }

    #[test]
    fn debug_never_shows_the_key() {
        let key = ApiKeySecret::generate(Mode::Live, KeyKind::Secret, counter_source());
        let debug = format!("{key:?}");
        assert!(!debug.contains(&key.expose_secret()[8..]));
        assert!(debug.contains("REDACTED"));
        let hasher = KeyHasher::new(vec![9; 32]).unwrap();
        assert_eq!(format!("{hasher:?}"), "KeyHasher([REDACTED])");
    }

    #[test]
    fn hash_depends_on_pepper_and_key() {
        let key = ApiKeySecret::generate(Mode::Test, KeyKind::Secret, counter_source());
        let other = ApiKeySecret::generate(Mode::Test, KeyKind::Client, counter_source());
        let a = KeyHasher::new(vec![1; 32]).unwrap();
        let b = KeyHasher::new(vec![2; 32]).unwrap();
        assert_eq!(a.hash(&key), a.hash(&key));
        assert_ne!(a.hash(&key), b.hash(&key));
        assert_ne!(a.hash(&key), a.hash(&other));
        assert_eq!(KeyHasher::new(vec![1; 31]).unwrap_err(), PepperTooShort);
    }

    #[test]
    fn crc32_matches_known_vector() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
    }

    #[test]
    fn revocation_takes_effect_at_its_instant() {
        let key = ApiKey {
            id: ApiKeyId::new(UnixMillis::new(1), [0; 10]),
            merchant_id: MerchantId::new(UnixMillis::new(1), [0; 10]),
            mode: Mode::Test,
            kind: KeyKind::Secret,
            display_prefix: "test_sk_abcd".into(),
            created_at: UnixMillis::new(1),
            revoked_at: Some(UnixMillis::new(100)),
        };
        assert_eq!(key.state_at(UnixMillis::new(99)), KeyState::Active);
        assert_eq!(key.state_at(UnixMillis::new(100)), KeyState::Revoked);
    }

    proptest! {
        #[test]
        fn any_single_character_change_is_detected(bytes in proptest::collection::vec(any::<u8>(), 64), position in 8usize..KEY_LEN, replacement in 0usize..62) {
            let mut iter = bytes.into_iter().cycle();
            let key = ApiKeySecret::generate(Mode::Test, KeyKind::Secret, move || iter.next().unwrap_or(0));
            let mut text = key.expose_secret().as_bytes().to_vec();
            let new_char = BASE62[replacement];
            prop_assume!(text[position] != new_char);
            text[position] = new_char;
            let text = String::from_utf8(text).unwrap();
            prop_assert_eq!(ApiKeySecret::parse(&text).unwrap_err(), KeyFormatError::ChecksumMismatch);
        }
    }
}
