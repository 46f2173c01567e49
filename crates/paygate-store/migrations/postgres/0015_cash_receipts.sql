-- Keep in step with migrations/sqlite/0015_cash_receipts.sql (the schema parity test compares them).
-- Cash receipts (현금영수증, issue 12): each request to the tax authority (an issue, or one cancel of an issue) is
-- a row, written IN_PROGRESS with its report due (next_attempt_at: the row is its own outbox entry) in the
-- transaction of the change it belongs to; the report worker records the authority's answer. And the business
-- profile a merchant's receipts are issued under.

CREATE TABLE merchant_business_profiles (
    merchant_id TEXT COLLATE "C" NOT NULL PRIMARY KEY REFERENCES merchants (id),
    business_number TEXT COLLATE "C" NOT NULL,
    representative TEXT NOT NULL,
    address TEXT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE cash_receipts (
    receipt_key TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    merchant_id TEXT COLLATE "C" NOT NULL REFERENCES merchants (id),
    mode TEXT NOT NULL CHECK (mode IN ('test', 'live')),
    payment_id TEXT COLLATE "C" REFERENCES payments (id),
    transaction_key TEXT COLLATE "C" REFERENCES payment_transactions (transaction_key),
    original_key TEXT COLLATE "C" REFERENCES cash_receipts (receipt_key),
    order_id TEXT COLLATE "C" NOT NULL,
    order_name TEXT NOT NULL,
    receipt_type TEXT NOT NULL CHECK (receipt_type IN ('INCOME_DEDUCTION', 'EXPENSE_PROOF')),
    transaction_type TEXT NOT NULL CHECK (transaction_type IN ('CONFIRM', 'CANCEL')),
    currency TEXT NOT NULL,
    amount BIGINT NOT NULL CHECK (amount > 0),
    tax_free_amount BIGINT NOT NULL CHECK (tax_free_amount >= 0 AND tax_free_amount <= amount),
    identity_kind TEXT NOT NULL,
    identity_number TEXT COLLATE "C" NOT NULL,
    business_number TEXT COLLATE "C" NOT NULL,
    issue_status TEXT NOT NULL CHECK (issue_status IN ('IN_PROGRESS', 'COMPLETED', 'FAILED')),
    issue_number TEXT COLLATE "C",
    failure_code TEXT,
    failure_message TEXT,
    cancelled_amount BIGINT NOT NULL CHECK (cancelled_amount >= 0 AND cancelled_amount <= amount),
    requested_at BIGINT NOT NULL,
    completed_at BIGINT,
    next_attempt_at BIGINT,
    attempts BIGINT NOT NULL,
    version BIGINT NOT NULL,
    CHECK ((transaction_type = 'CANCEL') = (original_key IS NOT NULL)),
    CHECK ((issue_status = 'IN_PROGRESS') = (completed_at IS NULL))
);

-- One issue per order (Toss's DUPLICATED_CASH_RECEIPT); cancels share their issue's orderId.
CREATE UNIQUE INDEX cash_receipts_order ON cash_receipts (merchant_id, mode, order_id) WHERE transaction_type = 'CONFIRM';
CREATE INDEX cash_receipts_requested ON cash_receipts (merchant_id, mode, requested_at, receipt_key);
CREATE INDEX cash_receipts_payment ON cash_receipts (payment_id) WHERE payment_id IS NOT NULL;
CREATE INDEX cash_receipts_original ON cash_receipts (original_key) WHERE original_key IS NOT NULL;
CREATE INDEX cash_receipts_next_attempt_at ON cash_receipts (next_attempt_at) WHERE next_attempt_at IS NOT NULL;
