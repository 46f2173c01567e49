-- Keep in step with migrations/sqlite/0004_checkout.sql (the schema parity test compares them).
-- Hosted checkout: how a checkout payment was started (form POST or API/SDK), where the browser goes afterwards,
-- and the state of a buyer-authentication challenge (OTP) in progress.

CREATE TABLE checkout_sessions (
    payment_id TEXT COLLATE "C" NOT NULL PRIMARY KEY REFERENCES payments (id),
    entry TEXT NOT NULL CHECK (entry IN ('FORM', 'API')),
    return_url TEXT,
    success_url TEXT,
    fail_url TEXT,
    -- SHA-256 of the one-time password the (sandbox) issuer sent; never the password itself.
    challenge_otp_hash BYTEA,
    challenge_attempts INTEGER NOT NULL,
    challenge_expires_at BIGINT,
    created_at BIGINT NOT NULL,
    version BIGINT NOT NULL
);
