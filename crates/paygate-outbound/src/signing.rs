//! Standard Webhooks signing (<https://www.standardwebhooks.com/>).
//!
//! Every webhook carries three headers: `webhook-id` (the message ID, the same on every retry, for deduplication),
//! `webhook-timestamp` (Unix seconds of this attempt) and `webhook-signature`: space-separated `v1,<base64>`
//! entries, each an HMAC-SHA256 under one of the endpoint's secrets of `"{id}.{timestamp}.{body}"`. During a
//! secret rotation the header carries one entry per secret, so a receiver holding either secret accepts it.
//!
//! [`verify`] is the receiver's side, as the merchant documentation shows it; paygate's own tests use it too.

use std::fmt;

use base64::alphabet;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD};
use base64::engine::DecodePaddingMode;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// Header names, lower case as HTTP/2 requires and as the specification writes them.
pub const HEADER_ID: &str = "webhook-id";
pub const HEADER_TIMESTAMP: &str = "webhook-timestamp";
pub const HEADER_SIGNATURE: &str = "webhook-signature";

/// The textual prefix of a secret.
pub const SECRET_PREFIX: &str = "whsec_";
/// Secret key sizes in bytes: the specification asks for 24 to 64.
pub const SECRET_BYTES_MIN: usize = 24;
pub const SECRET_BYTES_MAX: usize = 64;
/// What [`WebhookSecret::generate`] uses.
pub const SECRET_BYTES_GENERATED: usize = 32;

/// How far a timestamp may be from the receiver's clock, either way, by default: 5 minutes.
pub const DEFAULT_TOLERANCE_SECS: i64 = 300;

/// Bounds on what [`verify`] reads from headers, so a hostile sender cannot make a receiver work hard.
pub const MSG_ID_MAX_BYTES: usize = 256;
pub const SIGNATURE_HEADER_MAX_BYTES: usize = 4096;
pub const SIGNATURE_ENTRIES_MAX: usize = 16;

/// Decodes secrets written with or without `=` padding: the specification's own example has none, and some
/// providers strip it.
const LENIENT_STANDARD: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// An endpoint's signing secret: `whsec_` followed by the standard base64 of 24 to 64 random bytes. `Debug` never
/// shows it; [`WebhookSecret::as_str`] is for showing it once to the merchant and for storing it.
#[derive(Clone)]
pub struct WebhookSecret {
    text: String,
    key: Vec<u8>,
}

/// A string that is not a valid secret. Never repeats the string.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    #[error("a webhook secret starts with \"whsec_\"")]
    MissingPrefix,
    #[error("a webhook secret is standard base64 after its prefix")]
    NotBase64,
    #[error("a webhook secret holds {SECRET_BYTES_MIN} to {SECRET_BYTES_MAX} bytes, not {0}")]
    Length(usize),
}

impl WebhookSecret {
    /// A new secret of [`SECRET_BYTES_GENERATED`] bytes from the thread-local CSPRNG (the same source as
    /// `paygate_app::random_bytes`).
    pub fn generate() -> WebhookSecret {
        use rand::Rng as _;
        let mut key = [0u8; SECRET_BYTES_GENERATED];
        rand::rng().fill(&mut key[..]);
        WebhookSecret {
            text: format!("{SECRET_PREFIX}{}", STANDARD.encode(key)),
            key: key.to_vec(),
        }
    }

    /// A secret from key bytes the caller drew (tests, or another entropy source).
    pub fn from_bytes(key: &[u8]) -> Result<WebhookSecret, SecretError> {
        if !(SECRET_BYTES_MIN..=SECRET_BYTES_MAX).contains(&key.len()) {
            return Err(SecretError::Length(key.len()));
        }
        Ok(WebhookSecret {
            text: format!("{SECRET_PREFIX}{}", STANDARD.encode(key)),
            key: key.to_vec(),
        })
    }

    pub fn parse(text: &str) -> Result<WebhookSecret, SecretError> {
        let encoded = text.strip_prefix(SECRET_PREFIX).ok_or(SecretError::MissingPrefix)?;
        // Checked before decoding so that a huge string is refused without allocating for it.
        let max_encoded = SECRET_BYTES_MAX.div_ceil(3) * 4;
        if encoded.len() > max_encoded {
            return Err(SecretError::Length(encoded.len() / 4 * 3));
        }
        let key = LENIENT_STANDARD.decode(encoded).map_err(|_| SecretError::NotBase64)?;
        if !(SECRET_BYTES_MIN..=SECRET_BYTES_MAX).contains(&key.len()) {
            return Err(SecretError::Length(key.len()));
        }
        Ok(WebhookSecret {
            text: text.to_owned(),
            key,
        })
    }

    /// The secret as the merchant sees it (`whsec_…`).
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// `v1,<base64(HMAC-SHA256(key, "{msg_id}.{timestamp_secs}.{body}"))>`.
    pub fn sign(&self, msg_id: &str, timestamp_secs: i64, body: &[u8]) -> String {
        let mac = self.mac(msg_id, &timestamp_secs.to_string(), body);
        format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
    }

    /// The MAC over the specification's signed content; `timestamp` is the header's text.
    fn mac(&self, msg_id: &str, timestamp: &str, body: &[u8]) -> HmacSha256 {
        // HMAC takes keys of any length; the error arm exists only for the trait's other implementations.
        let mut mac = match HmacSha256::new_from_slice(&self.key) {
            Ok(mac) => mac,
            Err(_) => unreachable!("HMAC accepts keys of every length"),
        };
        mac.update(msg_id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.as_bytes());
        mac.update(b".");
        mac.update(body);
        mac
    }
}

impl fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("WebhookSecret(whsec_<redacted>)")
    }
}

/// The `webhook-signature` value: one `v1,…` entry per secret, space-separated (two during a rotation).
pub fn signature_header(secrets: &[WebhookSecret], msg_id: &str, timestamp_secs: i64, body: &[u8]) -> String {
    secrets
        .iter()
        .map(|secret| secret.sign(msg_id, timestamp_secs, body))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The three Standard Webhooks headers for one attempt, ready for [`crate::Deliverer::post`].
pub fn webhook_headers(
    secrets: &[WebhookSecret],
    msg_id: &str,
    timestamp_secs: i64,
    body: &[u8],
) -> Vec<(String, String)> {
    vec![
        (HEADER_ID.to_owned(), msg_id.to_owned()),
        (HEADER_TIMESTAMP.to_owned(), timestamp_secs.to_string()),
        (
            HEADER_SIGNATURE.to_owned(),
            signature_header(secrets, msg_id, timestamp_secs, body),
        ),
    ]
}

/// Why a webhook did not verify.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("no secret to verify with")]
    NoSecrets,
    #[error("the {0} header is missing or empty")]
    MissingHeader(&'static str),
    #[error("the {0} header is too long")]
    HeaderTooLong(&'static str),
    #[error("the webhook-timestamp header is not a whole number of seconds")]
    InvalidTimestamp,
    #[error("the message timestamp is too old")]
    TooOld,
    #[error("the message timestamp is too new")]
    TooNew,
    #[error("no matching signature")]
    NoMatchingSignature,
}

/// Verifies a received webhook: `headers` is (`webhook-id`, `webhook-timestamp`, `webhook-signature`). Accepts it
/// when the timestamp is within `tolerance_secs` of `now_secs` (either way; [`DEFAULT_TOLERANCE_SECS`] normally)
/// and any `v1` entry matches any secret. Entries of other versions are ignored, as the specification says. The
/// comparison is constant-time.
pub fn verify(
    secrets: &[WebhookSecret],
    headers: (&str, &str, &str),
    body: &[u8],
    now_secs: i64,
    tolerance_secs: i64,
) -> Result<(), VerifyError> {
    let (msg_id, timestamp, signatures) = headers;
    if secrets.is_empty() {
        return Err(VerifyError::NoSecrets);
    }
    for (name, value, max) in [
        (HEADER_ID, msg_id, MSG_ID_MAX_BYTES),
        (HEADER_TIMESTAMP, timestamp, 20),
        (HEADER_SIGNATURE, signatures, SIGNATURE_HEADER_MAX_BYTES),
    ] {
        if value.is_empty() {
            return Err(VerifyError::MissingHeader(name));
        }
        if value.len() > max {
            return Err(VerifyError::HeaderTooLong(name));
        }
    }
    if !timestamp.bytes().all(|b| b.is_ascii_digit()) {
        return Err(VerifyError::InvalidTimestamp);
    }
    let timestamp_secs: i64 = timestamp.parse().map_err(|_| VerifyError::InvalidTimestamp)?;
    // Saturating: a timestamp near i64::MAX is simply "too new", never an overflow.
    if timestamp_secs < now_secs.saturating_sub(tolerance_secs) {
        return Err(VerifyError::TooOld);
    }
    if timestamp_secs > now_secs.saturating_add(tolerance_secs) {
        return Err(VerifyError::TooNew);
    }

    let candidates: Vec<Vec<u8>> = signatures
        .split(' ')
        .filter(|entry| !entry.is_empty())
        .take(SIGNATURE_ENTRIES_MAX)
        .filter_map(|entry| entry.strip_prefix("v1,"))
        .filter_map(|encoded| STANDARD.decode(encoded).ok())
        .collect();
    for secret in secrets {
        // The header's own text is what the sender signed.
        let mac = secret.mac(msg_id, timestamp, body);
        for candidate in &candidates {
            // `verify_slice` compares in constant time.
            if mac.clone().verify_slice(candidate).is_ok() {
                return Ok(());
            }
        }
    }
    Err(VerifyError::NoMatchingSignature)
}
