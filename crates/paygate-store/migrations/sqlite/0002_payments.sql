-- Card payments: payments, their money movements (approval and cancels), ledger postings, acquirer routing,
-- the short-lived encrypted card of a checkout awaiting confirmation, and merchants' encData keys.

CREATE TABLE acquirer_contracts (
    merchant_id TEXT NOT NULL REFERENCES merchants (id),
    mode TEXT NOT NULL CHECK (mode IN ('test', 'live')),
    -- '' is the fallback contract; otherwise the longest matching BIN prefix wins.
    bin_prefix TEXT NOT NULL,
    acquirer TEXT NOT NULL,
    acquirer_merchant_id TEXT NOT NULL,
    PRIMARY KEY (merchant_id, mode, bin_prefix)
) STRICT;

CREATE TABLE payments (
    id TEXT NOT NULL PRIMARY KEY,
    merchant_id TEXT NOT NULL REFERENCES merchants (id),
    mode TEXT NOT NULL CHECK (mode IN ('test', 'live')),
    order_id TEXT NOT NULL,
    order_name TEXT NOT NULL,
    flow TEXT NOT NULL CHECK (flow IN ('KEY_IN', 'CHECKOUT')),
    status TEXT NOT NULL CHECK (status IN ('READY', 'IN_PROGRESS', 'WAITING_FOR_DEPOSIT', 'DONE', 'CANCELED',
                                           'PARTIAL_CANCELED', 'ABORTED', 'EXPIRED')),
    approval_state TEXT NOT NULL CHECK (approval_state IN ('NOT_REQUESTED', 'REQUESTED', 'UNKNOWN', 'COMPLETED')),
    currency TEXT NOT NULL,
    total_amount INTEGER NOT NULL CHECK (total_amount > 0),
    tax_free_amount INTEGER NOT NULL CHECK (tax_free_amount >= 0),
    vat_amount INTEGER NOT NULL CHECK (vat_amount >= 0),
    balance_amount INTEGER NOT NULL CHECK (balance_amount >= 0 AND balance_amount <= total_amount),
    card_bin TEXT,
    card_last4 TEXT,
    card_masked TEXT,
    installment_months INTEGER NOT NULL,
    acquirer TEXT,
    acquirer_merchant_id TEXT,
    approval_number TEXT,
    issuer_code TEXT,
    acquirer_transaction_id TEXT,
    approved_at INTEGER,
    customer_name TEXT,
    customer_email TEXT,
    failure_code TEXT,
    failure_message TEXT,
    failure_acquirer_code TEXT,
    requested_at INTEGER NOT NULL,
    expires_at INTEGER,
    next_inquiry_at INTEGER,
    inquiry_attempts INTEGER NOT NULL,
    version INTEGER NOT NULL,
    UNIQUE (merchant_id, mode, order_id)
) STRICT;

-- Partial indexes keep the workers' scans small: only payments with work pending are indexed.
CREATE INDEX payments_next_inquiry_at ON payments (next_inquiry_at) WHERE next_inquiry_at IS NOT NULL;
CREATE INDEX payments_expires_at ON payments (expires_at) WHERE expires_at IS NOT NULL;

CREATE TABLE payment_transactions (
    transaction_key TEXT NOT NULL PRIMARY KEY,
    payment_id TEXT NOT NULL REFERENCES payments (id),
    merchant_id TEXT NOT NULL REFERENCES merchants (id),
    mode TEXT NOT NULL CHECK (mode IN ('test', 'live')),
    kind TEXT NOT NULL CHECK (kind IN ('APPROVAL', 'CANCEL')),
    status TEXT NOT NULL CHECK (status IN ('PENDING', 'DONE', 'FAILED')),
    currency TEXT NOT NULL,
    amount INTEGER NOT NULL CHECK (amount > 0),
    reason TEXT,
    created_at INTEGER NOT NULL,
    completed_at INTEGER,
    acquirer_transaction_id TEXT,
    next_attempt_at INTEGER,
    attempts INTEGER NOT NULL
) STRICT;

CREATE INDEX payment_transactions_payment_id ON payment_transactions (payment_id);
CREATE INDEX payment_transactions_merchant ON payment_transactions (merchant_id, mode, transaction_key);
CREATE INDEX payment_transactions_next_attempt_at ON payment_transactions (next_attempt_at)
    WHERE next_attempt_at IS NOT NULL;

CREATE TABLE ledger_postings (
    journal_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    account TEXT NOT NULL,
    currency TEXT NOT NULL,
    amount INTEGER NOT NULL,
    payment_id TEXT NOT NULL REFERENCES payments (id),
    transaction_key TEXT NOT NULL REFERENCES payment_transactions (transaction_key),
    created_at INTEGER NOT NULL,
    PRIMARY KEY (journal_id, seq)
) STRICT;

CREATE INDEX ledger_postings_payment_id ON ledger_postings (payment_id);

CREATE TABLE checkout_cards (
    payment_id TEXT NOT NULL PRIMARY KEY REFERENCES payments (id),
    key_version INTEGER NOT NULL,
    sealed BLOB NOT NULL,
    created_at INTEGER NOT NULL
) STRICT;

CREATE TABLE merchant_enc_keys (
    merchant_id TEXT NOT NULL REFERENCES merchants (id),
    mode TEXT NOT NULL CHECK (mode IN ('test', 'live')),
    version INTEGER NOT NULL,
    -- The merchant's AES key, sealed under the server's vault key (never stored in clear).
    vault_key_version INTEGER NOT NULL,
    sealed_key BLOB NOT NULL,
    created_at INTEGER NOT NULL,
    retires_at INTEGER,
    PRIMARY KEY (merchant_id, mode, version)
) STRICT;
