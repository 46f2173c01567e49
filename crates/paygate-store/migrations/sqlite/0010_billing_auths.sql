-- Billing-key registrations on paygate's page (빌링키 인증창): the buyer's card waits here, sealed, while the issuer's
-- challenge runs, and until the merchant exchanges the one-time authKey (kept as its SHA-256 only) for the key. The
-- sealed card is erased when the registration ends (issued, failed or expired).

CREATE TABLE billing_auths (
    id TEXT NOT NULL PRIMARY KEY,
    merchant_id TEXT NOT NULL REFERENCES merchants (id),
    mode TEXT NOT NULL CHECK (mode IN ('test', 'live')),
    customer_key TEXT NOT NULL,
    success_url TEXT NOT NULL,
    fail_url TEXT NOT NULL,
    customer_name TEXT,
    customer_email TEXT,
    status TEXT NOT NULL CHECK (status IN ('READY', 'CHALLENGED', 'AUTHENTICATED', 'ISSUED', 'FAILED', 'EXPIRED')),
    card_bin TEXT,
    card_last4 TEXT,
    card_masked TEXT,
    issuer_code TEXT,
    acquirer_code TEXT,
    card_type TEXT CHECK (card_type IN ('CREDIT', 'CHECK', 'GIFT', 'UNKNOWN')),
    card_owner_type TEXT CHECK (card_owner_type IN ('PERSONAL', 'CORPORATE', 'UNKNOWN')),
    challenge_otp_hash BLOB,
    challenge_attempts INTEGER NOT NULL,
    challenge_expires_at INTEGER,
    auth_key_hash BLOB UNIQUE,
    billing_key_id TEXT REFERENCES billing_keys (id),
    failure_code TEXT,
    card_key_version INTEGER,
    card_sealed BLOB,
    expires_at INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    version INTEGER NOT NULL,
    -- A finished registration keeps no card.
    CHECK (status IN ('READY', 'CHALLENGED', 'AUTHENTICATED') OR card_sealed IS NULL)
) STRICT;
