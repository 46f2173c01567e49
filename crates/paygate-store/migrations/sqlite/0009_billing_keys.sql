-- Billing keys (빌링키): a card registered once for a merchant's customer, charged later by the merchant. The card
-- (number and expiry, never the password digits or the identity number) is sealed by the vault beside the key and
-- erased when the key is deleted; only its BIN, last four digits and masked number are in clear. A payment charged
-- through a key names it.

CREATE TABLE billing_keys (
    id TEXT NOT NULL PRIMARY KEY,
    merchant_id TEXT NOT NULL REFERENCES merchants (id),
    mode TEXT NOT NULL CHECK (mode IN ('test', 'live')),
    customer_key TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('ACTIVE', 'DELETED')),
    registration TEXT NOT NULL CHECK (registration IN ('KEY_IN', 'AUTHENTICATED')),
    card_bin TEXT NOT NULL,
    card_last4 TEXT NOT NULL,
    card_masked TEXT NOT NULL,
    issuer_code TEXT NOT NULL,
    acquirer_code TEXT NOT NULL,
    card_type TEXT NOT NULL CHECK (card_type IN ('CREDIT', 'CHECK', 'GIFT', 'UNKNOWN')),
    card_owner_type TEXT NOT NULL CHECK (card_owner_type IN ('PERSONAL', 'CORPORATE', 'UNKNOWN')),
    customer_name TEXT,
    customer_email TEXT,
    card_key_version INTEGER,
    card_sealed BLOB,
    authenticated_at INTEGER NOT NULL,
    deleted_at INTEGER,
    version INTEGER NOT NULL,
    -- An active key has its sealed card; a deleted one has none.
    CHECK ((status = 'ACTIVE') = (card_sealed IS NOT NULL AND card_key_version IS NOT NULL))
) STRICT;

CREATE INDEX billing_keys_customer ON billing_keys (merchant_id, mode, customer_key, id);

ALTER TABLE payments ADD COLUMN billing_key_id TEXT REFERENCES billing_keys (id);
ALTER TABLE payments ADD COLUMN customer_key TEXT;
