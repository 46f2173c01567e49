//! Signing and verifying the sandbox bank's deposit notifications (입금통보, `BANK-PROTOCOL.md`).
//!
//! A notification carries `Bank-Timestamp` (Unix seconds) and `Bank-Signature: v1=<hex HMAC-SHA256(secret,
//! timestamp + "." + body)>`. paygate refuses a notification whose signature does not verify, or whose timestamp
//! is further than [`TOLERANCE_SECS`] from its clock (a replay of an old, captured notification). Several `v1=`
//! values separated by spaces are accepted, so the bank can sign with an old and a new secret while they rotate.

use hmac::{Hmac, Mac};
use paygate_domain::money::Money;
use sha2::Sha256;

use crate::sandbox::{fnv1a64, splitmix64};

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

/// The notification faults of the bank simulator, drawn per deposit from a seeded PRNG, so a seed replays the same
/// faults (`BANK-PROTOCOL.md`, "Faults"). Lost, duplicated and delayed are bands of one draw (at most one of them
/// per deposit; rates adding up to more than 1000 are cut in that order); a wrong amount is drawn apart.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NotificationFaults {
    /// Never sent: only the deposit feed finds the deposit.
    pub lost_per_mille: u16,
    /// Sent [`NotificationFaults::DUPLICATES`] times (every copy retried until acknowledged).
    pub duplicate_per_mille: u16,
    /// Sent after `delay_ms`, so later deposits overtake it.
    pub delayed_per_mille: u16,
    pub delay_ms: u32,
    /// The deposit is made for one unit less than asked (a buyer's typo): paygate must refund it, not accept it.
    pub wrong_amount_per_mille: u16,
    pub seed: u64,
}

/// How one deposit's notification goes out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NotificationPlan {
    /// How many copies are sent: 0 (lost), 1, or [`NotificationFaults::DUPLICATES`].
    pub copies: u32,
    /// Waited before the first copy.
    pub delay_ms: u32,
}

impl NotificationFaults {
    /// Copies of a duplicated notification; each has its own `notificationId` after the first, as banks do.
    pub const DUPLICATES: u32 = 3;
    const BAND_SALT: u64 = 0x6E6F_7469_6679;
    const AMOUNT_SALT: u64 = 0x616D_6F75_6E74;

    fn draw(&self, reference: &str, salt: u64) -> u64 {
        splitmix64(splitmix64(self.seed ^ fnv1a64(reference.as_bytes())) ^ salt) % 1000
    }

    /// The plan for the notification of `deposit_id`. Pure: the same arguments always give the same plan.
    pub fn plan(&self, deposit_id: &str) -> NotificationPlan {
        let draw = self.draw(deposit_id, NotificationFaults::BAND_SALT);
        let lost_end = u64::from(self.lost_per_mille);
        let duplicate_end = lost_end + u64::from(self.duplicate_per_mille);
        let delayed_end = duplicate_end + u64::from(self.delayed_per_mille);
        let normal = NotificationPlan { copies: 1, delay_ms: 0 };
        if draw < lost_end {
            NotificationPlan { copies: 0, ..normal }
        } else if draw < duplicate_end {
            NotificationPlan {
                copies: NotificationFaults::DUPLICATES,
                ..normal
            }
        } else if draw < delayed_end {
            NotificationPlan {
                delay_ms: self.delay_ms,
                ..normal
            }
        } else {
            normal
        }
    }

    /// The amount a deposit asked for `amount` under `reference` is really made for.
    pub fn deposited_amount(&self, reference: &str, amount: Money) -> Money {
        let wrong = self.draw(reference, NotificationFaults::AMOUNT_SALT) < u64::from(self.wrong_amount_per_mille);
        match amount.checked_sub(Money::new(1, amount.currency())) {
            Ok(less) if wrong && less.is_positive() => less,
            _ => amount,
        }
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

    #[test]
    fn fault_rates_hold_and_a_seed_replays() {
        let faults = NotificationFaults {
            lost_per_mille: 100,
            duplicate_per_mille: 100,
            delayed_per_mille: 100,
            delay_ms: 2_000,
            wrong_amount_per_mille: 100,
            seed: 42,
        };
        let ids: Vec<String> = (0..10_000).map(|n| format!("dep_{n:012}")).collect();
        let plans: Vec<NotificationPlan> = ids.iter().map(|id| faults.plan(id)).collect();
        let count = |f: &dyn Fn(&NotificationPlan) -> bool| plans.iter().filter(|p| f(p)).count();
        let lost = count(&|p| p.copies == 0);
        let duplicated = count(&|p| p.copies == NotificationFaults::DUPLICATES);
        let delayed = count(&|p| p.delay_ms == 2_000);
        for (name, n) in [("lost", lost), ("duplicated", duplicated), ("delayed", delayed)] {
            assert!((800..=1_200).contains(&n), "{name}: {n} of 10,000");
        }
        assert_eq!(
            count(&|p| p.copies == 1 && p.delay_ms == 0),
            10_000 - lost - duplicated - delayed
        );
        let wrong = ids
            .iter()
            .filter(|id| faults.deposited_amount(id, Money::krw(15_000)) == Money::krw(14_999))
            .count();
        assert!((800..=1_200).contains(&wrong), "wrong amounts: {wrong}");
        assert_eq!(faults.plan("dep_000000000007"), plans[7], "the same seed replays");
        let other = NotificationFaults { seed: 43, ..faults };
        assert_ne!(ids.iter().map(|id| other.plan(id)).collect::<Vec<_>>(), plans);
        let none = NotificationFaults::default();
        assert!(ids
            .iter()
            .all(|id| none.plan(id).copies == 1 && none.plan(id).delay_ms == 0));
        assert_eq!(
            faults.deposited_amount("x", Money::krw(1)),
            Money::krw(1),
            "never a zero deposit"
        );
    }
}
