-- Keep in step with migrations/sqlite/0011_vault_data_keys.sql (the schema parity test compares them).
-- The vault's data keys (envelope encryption): every sealed blob names the data key version that sealed it, and each
-- data key is stored here wrapped (AES-256-GCM) under a master key from the secrets file, never in clear. One key is
-- ACTIVE (it seals new data); RETIRING keys still open what they sealed until `paygate vault rotate` has re-encrypted
-- it; a RETIRED key seals and opens nothing, and a write of data sealed under it is refused.

CREATE TABLE vault_data_keys (
    version BIGINT NOT NULL PRIMARY KEY CHECK (version > 0),
    master_version BIGINT NOT NULL,
    wrapped BYTEA NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('ACTIVE', 'RETIRING', 'RETIRED')),
    created_at BIGINT NOT NULL,
    retired_at BIGINT
);
