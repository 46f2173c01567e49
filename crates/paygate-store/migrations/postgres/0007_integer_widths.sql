-- Every integer column becomes BIGINT, as wide as SQLite's INTEGER: both backends bind and read 64-bit integers,
-- and no value that one backend stores can overflow the other. Keep in step with migrations/sqlite/0007 (which
-- has nothing to change). The rewrite takes each table's lock once, while the migration runs.

ALTER TABLE payments ALTER COLUMN installment_months TYPE BIGINT, ALTER COLUMN inquiry_attempts TYPE BIGINT;
ALTER TABLE payment_transactions ALTER COLUMN attempts TYPE BIGINT;
ALTER TABLE ledger_postings ALTER COLUMN seq TYPE BIGINT;
ALTER TABLE checkout_cards ALTER COLUMN key_version TYPE BIGINT;
ALTER TABLE merchant_enc_keys ALTER COLUMN version TYPE BIGINT, ALTER COLUMN vault_key_version TYPE BIGINT;
ALTER TABLE webhook_endpoints ALTER COLUMN secret_key_version TYPE BIGINT,
    ALTER COLUMN previous_secret_key_version TYPE BIGINT;
ALTER TABLE deliveries ALTER COLUMN attempts TYPE BIGINT, ALTER COLUMN last_status_code TYPE BIGINT;
ALTER TABLE delivery_attempts ALTER COLUMN attempt TYPE BIGINT, ALTER COLUMN latency_ms TYPE BIGINT,
    ALTER COLUMN status_code TYPE BIGINT, ALTER COLUMN succeeded TYPE BIGINT;
ALTER TABLE checkout_sessions ALTER COLUMN challenge_attempts TYPE BIGINT;
