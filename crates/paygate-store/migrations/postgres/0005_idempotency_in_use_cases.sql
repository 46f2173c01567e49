-- Idempotency records written by the use cases, in the same transaction as the change they belong to.
-- Keep in step with migrations/sqlite/0005: keys are scoped by key kind too, and a record names the payment it
-- works on. Existing records are kept as secret-key records. Integer columns are BIGINT (no conversions).

CREATE TABLE idempotency_keys_next (
    merchant_id TEXT COLLATE "C" NOT NULL REFERENCES merchants (id),
    mode TEXT NOT NULL CHECK (mode IN ('test', 'live')),
    key_kind TEXT NOT NULL CHECK (key_kind IN ('sk', 'ck')),
    idempotency_key TEXT NOT NULL,
    fingerprint BYTEA NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('IN_FLIGHT', 'COMPLETED')),
    lock_token BIGINT NOT NULL,
    locked_until BIGINT NOT NULL,
    payment_id TEXT COLLATE "C",
    focus_key TEXT COLLATE "C",
    response_status BIGINT,
    response_content_type TEXT,
    response_body BYTEA,
    created_at BIGINT NOT NULL,
    completed_at BIGINT,
    PRIMARY KEY (merchant_id, mode, key_kind, idempotency_key)
);

INSERT INTO idempotency_keys_next
    (merchant_id, mode, key_kind, idempotency_key, fingerprint, state, lock_token, locked_until, payment_id,
     focus_key, response_status, response_content_type, response_body, created_at, completed_at)
SELECT merchant_id, mode, 'sk', idempotency_key, fingerprint, state, lock_token, locked_until, NULL, NULL,
       response_status, response_content_type, response_body, created_at, completed_at
FROM idempotency_keys;

DROP TABLE idempotency_keys;
ALTER TABLE idempotency_keys_next RENAME TO idempotency_keys;
ALTER INDEX idempotency_keys_next_pkey RENAME TO idempotency_keys_pkey;
CREATE INDEX idempotency_keys_created_at ON idempotency_keys (created_at);
