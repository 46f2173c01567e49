//! Typed, prefixed, time-ordered and unguessable identifiers.
//!
//! Every entity gets its own newtype (`PaymentId` prints as `pay_01JD…`), so a merchant ID can never be passed where
//! a payment ID is expected. The body is a ULID: 48 bits of milliseconds, then 80 random bits, written in Crockford
//! base32. Sorting the strings sorts by creation time, which keeps B-tree inserts append-mostly and gives cursor
//! pagination a natural order; the 80 random bits make IDs impossible to guess or enumerate.

use std::fmt;
use std::str::FromStr;

use crate::time::UnixMillis;

const CROCKFORD: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
const ULID_LEN: usize = 26;

/// Random bytes that make an ID unguessable; the caller draws them from a CSPRNG.
pub type IdEntropy = [u8; 10];

/// A 128-bit ULID value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Ulid(u128);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("identifier must start with `{expected}_`")]
    WrongPrefix { expected: &'static str },
    #[error("identifier body must be {ULID_LEN} Crockford base32 characters")]
    BadBody,
}

impl Ulid {
    /// Builds a ULID from an instant and 80 random bits. Instants before the epoch clamp to it, and instants past
    /// the 48-bit range (year 10889) clamp to its end; neither happens with a sane clock.
    pub fn from_parts(at: UnixMillis, entropy: IdEntropy) -> Ulid {
        let max_millis: u64 = (1 << 48) - 1;
        let millis = u64::try_from(at.as_millis()).unwrap_or(0).min(max_millis);
        let mut random: u128 = 0;
        for byte in entropy {
            random = (random << 8) | u128::from(byte);
        }
        Ulid((u128::from(millis) << 80) | random)
    }

    pub fn timestamp(self) -> UnixMillis {
        let millis = u64::try_from(self.0 >> 80).unwrap_or(0);
        UnixMillis::new(i64::try_from(millis).unwrap_or(i64::MAX))
    }

    fn encode(self) -> [u8; ULID_LEN] {
        let mut out = [0u8; ULID_LEN];
        let mut value = self.0;
        for slot in out.iter_mut().rev() {
            let index = usize::try_from(value & 0x1f).unwrap_or(0);
            *slot = CROCKFORD[index];
            value >>= 5;
        }
        out
    }

    fn decode(text: &str) -> Option<Ulid> {
        let bytes = text.as_bytes();
        if bytes.len() != ULID_LEN {
            return None;
        }
        // 26 characters carry 130 bits; the first may only hold the top 3 bits of a 128-bit value.
        if !matches!(bytes[0], b'0'..=b'7') {
            return None;
        }
        let mut value: u128 = 0;
        for &byte in bytes {
            let digit = CROCKFORD.iter().position(|&c| c == byte)?;
            value = (value << 5) | u128::try_from(digit).ok()?;
        }
        Some(Ulid(value))
    }
}

impl fmt::Display for Ulid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let encoded = self.encode();
        // The alphabet is ASCII, so this cannot fail; fall back to an error rather than panic.
        f.write_str(std::str::from_utf8(&encoded).map_err(|_| fmt::Error)?)
    }
}

/// Declares an ID newtype with its prefix.
macro_rules! typed_id {
    ($(#[$doc:meta])* $name:ident, $prefix:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(Ulid);

        impl $name {
            pub const PREFIX: &'static str = $prefix;

            pub fn new(at: UnixMillis, entropy: IdEntropy) -> Self {
                $name(Ulid::from_parts(at, entropy))
            }

            pub fn parse(text: &str) -> Result<Self, IdError> {
                let body = text
                    .strip_prefix($prefix)
                    .and_then(|rest| rest.strip_prefix('_'))
                    .ok_or(IdError::WrongPrefix { expected: $prefix })?;
                Ulid::decode(body).map($name).ok_or(IdError::BadBody)
            }

            pub fn created_at(&self) -> UnixMillis {
                self.0.timestamp()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}_{}", $prefix, self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(self, f)
            }
        }

        impl FromStr for $name {
            type Err = IdError;
            fn from_str(text: &str) -> Result<Self, IdError> {
                $name::parse(text)
            }
        }
    };
}

typed_id!(
    /// A merchant (가맹점): the MID merchants quote in every integration.
    MerchantId,
    "mid"
);
typed_id!(
    /// An API key record (not the key itself, which only the merchant holds).
    ApiKeyId,
    "key"
);
typed_id!(
    /// A payment; printed as the `paymentKey` of the API.
    PaymentId,
    "pay"
);
typed_id!(
    /// One money movement of a payment (its approval, or one cancel): the `transactionKey` of the API.
    TransactionKey,
    "txn"
);
typed_id!(
    /// A double-entry journal (a set of balanced ledger postings).
    JournalId,
    "jrn"
);
typed_id!(
    /// An event (a payment's status changed, an endpoint was disabled…): the `id` of webhook envelopes.
    EventId,
    "evt"
);
typed_id!(
    /// A merchant's webhook endpoint.
    WebhookEndpointId,
    "whk"
);
typed_id!(
    /// A billing key (빌링키): a customer's card registered with a merchant, charged without the buyer. The
    /// `billingKey` of the API.
    BillingKeyId,
    "bil"
);
typed_id!(
    /// A billing-key registration on paygate's page (the buyer's card, then the issuer's challenge).
    BillingAuthId,
    "bau"
);
typed_id!(
    /// A deposit paygate received from a bank (by notification or from the bank's feed), recorded once per bank
    /// deposit whatever the number of notifications.
    DepositId,
    "dep"
);
typed_id!(
    /// A refund paygate asked a bank to pay to a named account (a cancel of a bank payment, or a deposit that paid
    /// nothing going back to its depositor).
    BankRefundId,
    "brf"
);
typed_id!(
    /// A cash receipt (현금영수증) request: an issue, or one (partial) cancel of an issue. The `receiptKey` of
    /// the API.
    CashReceiptKey,
    "rcp"
);
typed_id!(
    /// One HTTP request, echoed in `X-Request-Id` and error objects.
    RequestId,
    "req"
);

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn formats_and_parses() {
        let id = PaymentId::new(UnixMillis::new(1_700_000_000_000), [7; 10]);
        let text = id.to_string();
        assert!(text.starts_with("pay_"));
        assert_eq!(text.len(), 4 + ULID_LEN);
        assert_eq!(PaymentId::parse(&text).unwrap(), id);
        assert_eq!(id.created_at(), UnixMillis::new(1_700_000_000_000));
    }

    #[test]
    fn rejects_bad_input() {
        let cases: &[(&str, IdError)] = &[
            ("", IdError::WrongPrefix { expected: "pay" }),
            ("mid_01JD5M7Q0000000000000000", IdError::WrongPrefix { expected: "pay" }),
            ("pay01JD5M7Q0000000000000000", IdError::WrongPrefix { expected: "pay" }),
            ("pay_01JD5M7Q000000000000000", IdError::BadBody),
            ("pay_01JD5M7Q00000000000000000", IdError::BadBody),
            ("pay_01JD5M7Q000000000000000U", IdError::BadBody),
            ("pay_01jd5m7q0000000000000000", IdError::BadBody),
            ("pay_81JD5M7Q0000000000000000", IdError::BadBody),
        ];
        for (input, expected) in cases {
            assert_eq!(PaymentId::parse(input).unwrap_err(), *expected, "input {input:?}");
        }
    }

    proptest! {
        #[test]
        fn round_trips(millis in 0i64..(1i64 << 48), entropy in any::<[u8; 10]>()) {
            let id = MerchantId::new(UnixMillis::new(millis), entropy);
            prop_assert_eq!(MerchantId::parse(&id.to_string()).unwrap(), id);
            prop_assert_eq!(id.created_at().as_millis(), millis);
        }

        #[test]
        fn string_order_is_time_order(a in 0i64..(1i64 << 48), b in 0i64..(1i64 << 48), ea in any::<[u8; 10]>(), eb in any::<[u8; 10]>()) {
            let ida = PaymentId::new(UnixMillis::new(a), ea);
            let idb = PaymentId::new(UnixMillis::new(b), eb);
            if a < b {
                prop_assert!(ida.to_string() < idb.to_string());
            }
            prop_assert_eq!(ida.cmp(&idb), ida.to_string().cmp(&idb.to_string()));
        }
    }
}
