-- Keep in step with migrations/sqlite/0012_bank_methods.sql (the schema parity test compares them).
-- Bank methods (issue 12): what pays a payment, the virtual accounts banks issue for payments, the deposits banks
-- report, and journals that belong to a deposit rather than to a payment's transaction (a deposit that paid
-- nothing is held for its depositor, then returned).

ALTER TABLE payments ADD COLUMN method TEXT NOT NULL DEFAULT 'CARD'
    CHECK (method IN ('CARD', 'VIRTUAL_ACCOUNT', 'TRANSFER'));

-- One account per payment. A bank may hand an account number out again once its account is no longer open, so
-- the number is unique only among open accounts of a bank (per mode: a sandbox bank and a real one share codes).
CREATE TABLE virtual_accounts (
    payment_id TEXT COLLATE "C" NOT NULL PRIMARY KEY REFERENCES payments (id),
    merchant_id TEXT COLLATE "C" NOT NULL REFERENCES merchants (id),
    mode TEXT NOT NULL CHECK (mode IN ('test', 'live')),
    bank TEXT COLLATE "C" NOT NULL,
    account_number TEXT COLLATE "C" NOT NULL,
    customer_name TEXT NOT NULL,
    currency TEXT NOT NULL,
    amount BIGINT NOT NULL CHECK (amount > 0),
    issued_at BIGINT NOT NULL,
    due_at BIGINT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('OPEN', 'PAID', 'EXPIRED', 'CLOSED')),
    paid_by TEXT COLLATE "C",
    deposited_at BIGINT,
    depositor_name TEXT,
    refund_status TEXT NOT NULL CHECK (refund_status IN ('NONE', 'PENDING', 'FAILED', 'PARTIAL_FAILED', 'COMPLETED')),
    settlement_status TEXT NOT NULL CHECK (settlement_status IN ('INCOMPLETED', 'COMPLETED')),
    version BIGINT NOT NULL,
    CHECK ((status = 'PAID') = (paid_by IS NOT NULL))
);

CREATE UNIQUE INDEX virtual_accounts_open_number ON virtual_accounts (mode, bank, account_number)
    WHERE status = 'OPEN';
CREATE INDEX virtual_accounts_number ON virtual_accounts (bank, account_number);
CREATE INDEX virtual_accounts_open_due ON virtual_accounts (due_at) WHERE status = 'OPEN';

-- Every deposit a bank reported, once: the bank's deposit ID is unique per bank and mode, so a notification
-- repeated or found again in the bank's feed inserts nothing.
CREATE TABLE bank_deposits (
    id TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    mode TEXT NOT NULL CHECK (mode IN ('test', 'live')),
    bank TEXT COLLATE "C" NOT NULL,
    bank_deposit_id TEXT COLLATE "C" NOT NULL,
    account_number TEXT COLLATE "C" NOT NULL,
    payment_id TEXT COLLATE "C" NOT NULL REFERENCES payments (id),
    merchant_id TEXT COLLATE "C" NOT NULL REFERENCES merchants (id),
    currency TEXT NOT NULL,
    amount BIGINT NOT NULL CHECK (amount > 0),
    depositor_name TEXT NOT NULL,
    deposited_at BIGINT NOT NULL,
    received_at BIGINT NOT NULL,
    held_because TEXT CHECK (held_because IN ('WRONG_AMOUNT', 'AFTER_DUE_DATE', 'NOT_WAITING')),
    return_status TEXT NOT NULL CHECK (return_status IN ('NOT_NEEDED', 'REQUESTED', 'RETURNED', 'FAILED')),
    return_refund TEXT COLLATE "C",
    next_attempt_at BIGINT,
    attempts BIGINT NOT NULL,
    version BIGINT NOT NULL,
    UNIQUE (mode, bank, bank_deposit_id),
    CHECK ((held_because IS NULL) = (return_status = 'NOT_NEEDED'))
);

CREATE INDEX bank_deposits_payment_id ON bank_deposits (payment_id);
CREATE INDEX bank_deposits_next_attempt_at ON bank_deposits (next_attempt_at) WHERE next_attempt_at IS NOT NULL;

-- A posting belongs to a payment's transaction (approval, cancel) or to a deposit, never both.
ALTER TABLE ledger_postings ALTER COLUMN transaction_key DROP NOT NULL;
ALTER TABLE ledger_postings ADD COLUMN deposit_id TEXT COLLATE "C" REFERENCES bank_deposits (id);
ALTER TABLE ledger_postings ADD CONSTRAINT ledger_postings_one_owner
    CHECK ((transaction_key IS NULL) <> (deposit_id IS NULL));
CREATE INDEX ledger_postings_deposit_id ON ledger_postings (deposit_id) WHERE deposit_id IS NOT NULL;
