-- Foundation: merchants, API keys, idempotency records.
-- Instants are INTEGER milliseconds since the Unix epoch; IDs are prefixed ULID text.
-- Tables are STRICT so SQLite enforces column types the way PostgreSQL does.

CREATE TABLE merchants (
    id TEXT NOT NULL PRIMARY KEY,
    name TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('ACTIVE', 'SUSPENDED', 'TERMINATED')),
    created_at INTEGER NOT NULL
) STRICT;

CREATE TABLE api_keys (
    id TEXT NOT NULL PRIMARY KEY,
    merchant_id TEXT NOT NULL REFERENCES merchants (id),
    mode TEXT NOT NULL CHECK (mode IN ('test', 'live')),
    kind TEXT NOT NULL CHECK (kind IN ('sk', 'ck')),
    key_hash BLOB NOT NULL UNIQUE,
    display_prefix TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    revoked_at INTEGER
) STRICT;

CREATE INDEX api_keys_merchant_id ON api_keys (merchant_id);

CREATE TABLE idempotency_keys (
    merchant_id TEXT NOT NULL REFERENCES merchants (id),
    mode TEXT NOT NULL CHECK (mode IN ('test', 'live')),
    idempotency_key TEXT NOT NULL,
    fingerprint BLOB NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('IN_FLIGHT', 'COMPLETED')),
    lock_token INTEGER NOT NULL,
    locked_until INTEGER NOT NULL,
    response_status INTEGER,
    response_content_type TEXT,
    response_body BLOB,
    created_at INTEGER NOT NULL,
    completed_at INTEGER,
    PRIMARY KEY (merchant_id, mode, idempotency_key)
) STRICT;

CREATE INDEX idempotency_keys_created_at ON idempotency_keys (created_at);
