-- Keep in step with migrations/sqlite/0013_bank_refunds.sql (the schema parity test compares them).
-- Refunds through the bank of cancels of paid virtual accounts: one per cancel (its transaction), to the account
-- the buyer named, recorded before the bank is asked and asked again under the same reference until answered.

CREATE TABLE bank_refunds (
    id TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    transaction_key TEXT COLLATE "C" NOT NULL UNIQUE REFERENCES payment_transactions (transaction_key),
    payment_id TEXT COLLATE "C" NOT NULL REFERENCES payments (id),
    merchant_id TEXT COLLATE "C" NOT NULL REFERENCES merchants (id),
    mode TEXT NOT NULL CHECK (mode IN ('test', 'live')),
    bank TEXT COLLATE "C" NOT NULL,
    account_number TEXT COLLATE "C" NOT NULL,
    holder_name TEXT NOT NULL,
    currency TEXT NOT NULL,
    amount BIGINT NOT NULL CHECK (amount > 0),
    state TEXT NOT NULL CHECK (state IN ('REQUESTED', 'DONE', 'FAILED')),
    failure_code TEXT,
    bank_refund_id TEXT COLLATE "C",
    created_at BIGINT NOT NULL,
    completed_at BIGINT,
    next_attempt_at BIGINT,
    attempts BIGINT NOT NULL,
    version BIGINT NOT NULL,
    CHECK ((state = 'REQUESTED') = (completed_at IS NULL))
);

CREATE INDEX bank_refunds_payment_id ON bank_refunds (payment_id);
CREATE INDEX bank_refunds_next_attempt_at ON bank_refunds (next_attempt_at) WHERE next_attempt_at IS NOT NULL;
