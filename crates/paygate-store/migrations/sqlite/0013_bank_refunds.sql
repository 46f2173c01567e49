-- Refunds through the bank of cancels of paid virtual accounts: one per cancel (its transaction), to the account
-- the buyer named, recorded before the bank is asked and asked again under the same reference until answered.

CREATE TABLE bank_refunds (
    id TEXT NOT NULL PRIMARY KEY,
    transaction_key TEXT NOT NULL UNIQUE REFERENCES payment_transactions (transaction_key),
    payment_id TEXT NOT NULL REFERENCES payments (id),
    merchant_id TEXT NOT NULL REFERENCES merchants (id),
    mode TEXT NOT NULL CHECK (mode IN ('test', 'live')),
    bank TEXT NOT NULL,
    account_number TEXT NOT NULL,
    holder_name TEXT NOT NULL,
    currency TEXT NOT NULL,
    amount INTEGER NOT NULL CHECK (amount > 0),
    state TEXT NOT NULL CHECK (state IN ('REQUESTED', 'DONE', 'FAILED')),
    failure_code TEXT,
    bank_refund_id TEXT,
    created_at INTEGER NOT NULL,
    completed_at INTEGER,
    next_attempt_at INTEGER,
    attempts INTEGER NOT NULL,
    version INTEGER NOT NULL,
    CHECK ((state = 'REQUESTED') = (completed_at IS NULL))
) STRICT;

CREATE INDEX bank_refunds_payment_id ON bank_refunds (payment_id);
CREATE INDEX bank_refunds_next_attempt_at ON bank_refunds (next_attempt_at) WHERE next_attempt_at IS NOT NULL;
