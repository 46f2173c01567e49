-- Hosted checkout: how a checkout payment was started (form POST or API/SDK), where the browser goes afterwards,
-- and the state of a buyer-authentication challenge (OTP) in progress.

CREATE TABLE checkout_sessions (
    payment_id TEXT NOT NULL PRIMARY KEY REFERENCES payments (id),
    entry TEXT NOT NULL CHECK (entry IN ('FORM', 'API')),
    return_url TEXT,
    success_url TEXT,
    fail_url TEXT,
    -- SHA-256 of the one-time password the (sandbox) issuer sent; never the password itself.
    challenge_otp_hash BLOB,
    challenge_attempts INTEGER NOT NULL,
    challenge_expires_at INTEGER,
    created_at INTEGER NOT NULL,
    version INTEGER NOT NULL
) STRICT;
