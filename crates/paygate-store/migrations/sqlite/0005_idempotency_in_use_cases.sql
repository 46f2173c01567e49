-- Idempotency records written by the use cases, in the same transaction as the change they belong to.
-- Keys are scoped by key kind too (a client-key request can no longer occupy a secret-key request's key), and a
-- record names the payment it works on, so a retry after a crash is answered from the payment.
-- Existing records were all made with secret keys' namespace semantics; they are kept as secret-key records.

CREATE TABLE idempotency_keys_next (
    merchant_id TEXT NOT NULL REFERENCES merchants (id),
    mode TEXT NOT NULL CHECK (mode IN ('test', 'live')),
    key_kind TEXT NOT NULL CHECK (key_kind IN ('sk', 'ck')),
    idempotency_key TEXT NOT NULL,
    fingerprint BLOB NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('IN_FLIGHT', 'COMPLETED')),
    lock_token INTEGER NOT NULL,
    locked_until INTEGER NOT NULL,
    payment_id TEXT,
    focus_key TEXT,
    response_status INTEGER,
    response_content_type TEXT,
    response_body BLOB,
    created_at INTEGER NOT NULL,
    completed_at INTEGER,
    PRIMARY KEY (merchant_id, mode, key_kind, idempotency_key)
) STRICT;

INSERT INTO idempotency_keys_next
    (merchant_id, mode, key_kind, idempotency_key, fingerprint, state, lock_token, locked_until, payment_id,
     focus_key, response_status, response_content_type, response_body, created_at, completed_at)
SELECT merchant_id, mode, 'sk', idempotency_key, fingerprint, state, lock_token, locked_until, NULL, NULL,
       response_status, response_content_type, response_body, created_at, completed_at
FROM idempotency_keys;

DROP TABLE idempotency_keys;
ALTER TABLE idempotency_keys_next RENAME TO idempotency_keys;
CREATE INDEX idempotency_keys_created_at ON idempotency_keys (created_at);
