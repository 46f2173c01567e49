//! Signing and verifying the sandbox bank's deposit notifications (입금통보, `BANK-PROTOCOL.md`).
//!
//! A notification carries `Bank-Timestamp` (Unix seconds) and `Bank-Signature: v1=<hex HMAC-SHA256(secret,
//! timestamp + "." + body)>`. paygate refuses a notification whose signature does not verify, or whose timestamp
//! is further than [`TOLERANCE_SECS`] from its clock (a replay of an old, captured notification). Several `v1=`
//! values separated by spaces are accepted, so the bank can sign with an old and a new secret while they rotate.

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// How far a notification's timestamp may be from paygate's clock, in seconds.
pub const TOLERANCE_SECS: i64 = 300;

pub const TIMESTAMP_HEADER: &str = "Bank-Timestamp";
pub const SIGNATURE_HEADER: &str = "Bank-Signature";

/// Why a notification was refused. Its sender sees only "unauthorized"; the reason goes to paygate's log.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum NotifyRefusal {
    #[error("the Bank-Timestamp header is missing or not a number")]
    BadTimestamp,
    #[error("the notification's timestamp is more than {TOLERANCE_SECS} s from the gateway's clock")]
    Stale,
    #[error("the Bank-Signature header is missing or has no v1 signature")]
    NoSignature,
    #[error("no signature matches")]
    Mismatch,
}

fn mac(secret: &[u8], timestamp: i64, body: &[u8]) -> Hmac<Sha256> {
    // HMAC accepts a key of any length; `new_from_slice` cannot fail for it.
    let mut mac = match Hmac::<Sha256>::new_from_slice(secret) {
        Ok(mac) => mac,
        Err(_) => unreachable!("HMAC takes keys of any length"),
    };
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

/// The `Bank-Signature` value for `body` sent at `timestamp` (Unix seconds).
pub fn sign(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    format!(
        "v1={}",
        hex::encode(mac(secret, timestamp, body).finalize().into_bytes())
    )
}

/// Checks a notification's headers against its body, at `now` (Unix seconds). The comparison is constant-time.
pub fn verify(
    secret: &[u8],
    timestamp_header: Option<&str>,
    signature_header: Option<&str>,
    body: &[u8],
    now: i64,
) -> Result<(), NotifyRefusal> {
    let timestamp: i64 = timestamp_header
        .and_then(|t| t.trim().parse().ok())
        .ok_or(NotifyRefusal::BadTimestamp)?;
    if now.abs_diff(timestamp) > TOLERANCE_SECS.unsigned_abs() {
        return Err(NotifyRefusal::Stale);
    }
    let signatures: Vec<Vec<u8>> = signature_header
        .unwrap_or_default()
        .split_ascii_whitespace()
        .filter_map(|part| part.strip_prefix("v1="))
        .filter_map(|hex_text| hex::decode(hex_text).ok())
        .collect();
    if signatures.is_empty() {
        return Err(NotifyRefusal::NoSignature);
    }
    let expected = mac(secret, timestamp, body);
    if signatures
        .iter()
        .any(|signature| expected.clone().verify_slice(signature).is_ok())
    {
        Ok(())
    } else {
        Err(NotifyRefusal::Mismatch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"whsec-bank-test";
    const BODY: &[u8] = br#"{"depositId":"dep_000000000001"}"#;
    const AT: i64 = 1_749_945_600;

    /// Timestamp header, signature header, body, now, expected refusal.
    type Case<'a> = (Option<&'a str>, Option<&'a str>, &'a [u8], i64, NotifyRefusal);

    #[test]
    fn the_signature_is_hmac_sha256_of_timestamp_dot_body() {
        // Computed independently: Python's hmac.new(b'whsec-bank-test', b'1749945600.' + BODY, sha256).
        assert_eq!(
            sign(SECRET, AT, BODY),
            "v1=30795c7c0c32a4ebaad56c17bcf43adc17a949919ada20553cb7f016477ed32e"
        );
    }

    #[test]
    fn verification_refuses_every_kind_of_forgery() {
        let good = sign(SECRET, AT, BODY);
        let ts = AT.to_string();
        assert_eq!(verify(SECRET, Some(&ts), Some(&good), BODY, AT + 10), Ok(()));
        let rotating = format!("v1=00ff {good}");
        assert_eq!(verify(SECRET, Some(&ts), Some(&rotating), BODY, AT), Ok(()));
        let cases: [Case<'_>; 7] = [
            (None, Some(&good), BODY, AT, NotifyRefusal::BadTimestamp),
            (Some("soon"), Some(&good), BODY, AT, NotifyRefusal::BadTimestamp),
            (Some(&ts), Some(&good), BODY, AT + 301, NotifyRefusal::Stale),
            (Some(&ts), Some(&good), BODY, AT - 301, NotifyRefusal::Stale),
            (Some(&ts), None, BODY, AT, NotifyRefusal::NoSignature),
            (
                Some(&ts),
                Some(&good),
                br#"{"depositId":"dep_000000000002"}"#,
                AT,
                NotifyRefusal::Mismatch,
            ),
            (Some("1749945601"), Some(&good), BODY, AT, NotifyRefusal::Mismatch),
        ];
        for (timestamp, signature, body, now, refusal) in cases {
            assert_eq!(
                verify(SECRET, timestamp, signature, body, now),
                Err(refusal),
                "{timestamp:?} {now}"
            );
        }
        assert_eq!(
            verify(b"another secret", Some(&ts), Some(&good), BODY, AT),
            Err(NotifyRefusal::Mismatch)
        );
    }
}
