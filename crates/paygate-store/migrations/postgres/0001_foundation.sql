-- Foundation: merchants, API keys, idempotency records.
-- Instants are BIGINT milliseconds since the Unix epoch; IDs are prefixed ULID text.
-- Keep in step with migrations/sqlite: the schema parity test compares the two.
-- ID columns use the "C" collation so that text order is byte order (ULIDs sort by time), as in SQLite.

CREATE TABLE merchants (
    id TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    name TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('ACTIVE', 'SUSPENDED', 'TERMINATED')),
    created_at BIGINT NOT NULL
);

CREATE TABLE api_keys (
    id TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    merchant_id TEXT COLLATE "C" NOT NULL REFERENCES merchants (id),
    mode TEXT NOT NULL CHECK (mode IN ('test', 'live')),
    kind TEXT NOT NULL CHECK (kind IN ('sk', 'ck')),
    key_hash BYTEA NOT NULL UNIQUE,
    display_prefix TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    revoked_at BIGINT
);

CREATE INDEX api_keys_merchant_id ON api_keys (merchant_id);

CREATE TABLE idempotency_keys (
    merchant_id TEXT COLLATE "C" NOT NULL REFERENCES merchants (id),
    mode TEXT NOT NULL CHECK (mode IN ('test', 'live')),
    idempotency_key TEXT NOT NULL,
    fingerprint BYTEA NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('IN_FLIGHT', 'COMPLETED')),
    lock_token BIGINT NOT NULL,
    locked_until BIGINT NOT NULL,
    response_status INTEGER,
    response_content_type TEXT,
    response_body BYTEA,
    created_at BIGINT NOT NULL,
    completed_at BIGINT,
    PRIMARY KEY (merchant_id, mode, idempotency_key)
);

CREATE INDEX idempotency_keys_created_at ON idempotency_keys (created_at);
