-- Bank methods (issue 12): what pays a payment, the virtual accounts banks issue for payments, the deposits banks
-- report, and journals that belong to a deposit rather than to a payment's transaction (a deposit that paid
-- nothing is held for its depositor, then returned).

ALTER TABLE payments ADD COLUMN method TEXT NOT NULL DEFAULT 'CARD'
    CHECK (method IN ('CARD', 'VIRTUAL_ACCOUNT', 'TRANSFER'));

-- One account per payment. A bank may hand an account number out again once its account is no longer open, so
-- the number is unique only among open accounts of a bank (per mode: a sandbox bank and a real one share codes).
CREATE TABLE virtual_accounts (
    payment_id TEXT NOT NULL PRIMARY KEY REFERENCES payments (id),
    merchant_id TEXT NOT NULL REFERENCES merchants (id),
    mode TEXT NOT NULL CHECK (mode IN ('test', 'live')),
    bank TEXT NOT NULL,
    account_number TEXT NOT NULL,
    customer_name TEXT NOT NULL,
    currency TEXT NOT NULL,
    amount INTEGER NOT NULL CHECK (amount > 0),
    issued_at INTEGER NOT NULL,
    due_at INTEGER NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('OPEN', 'PAID', 'EXPIRED', 'CLOSED')),
    paid_by TEXT,
    deposited_at INTEGER,
    depositor_name TEXT,
    refund_status TEXT NOT NULL CHECK (refund_status IN ('NONE', 'PENDING', 'FAILED', 'PARTIAL_FAILED', 'COMPLETED')),
    settlement_status TEXT NOT NULL CHECK (settlement_status IN ('INCOMPLETED', 'COMPLETED')),
    version INTEGER NOT NULL,
    CHECK ((status = 'PAID') = (paid_by IS NOT NULL))
) STRICT;

CREATE UNIQUE INDEX virtual_accounts_open_number ON virtual_accounts (mode, bank, account_number)
    WHERE status = 'OPEN';
CREATE INDEX virtual_accounts_number ON virtual_accounts (bank, account_number);
CREATE INDEX virtual_accounts_open_due ON virtual_accounts (due_at) WHERE status = 'OPEN';

-- Every deposit a bank reported, once: the bank's deposit ID is unique per bank and mode, so a notification
-- repeated or found again in the bank's feed inserts nothing.
CREATE TABLE bank_deposits (
    id TEXT NOT NULL PRIMARY KEY,
    mode TEXT NOT NULL CHECK (mode IN ('test', 'live')),
    bank TEXT NOT NULL,
    bank_deposit_id TEXT NOT NULL,
    account_number TEXT NOT NULL,
    payment_id TEXT NOT NULL REFERENCES payments (id),
    merchant_id TEXT NOT NULL REFERENCES merchants (id),
    currency TEXT NOT NULL,
    amount INTEGER NOT NULL CHECK (amount > 0),
    depositor_name TEXT NOT NULL,
    deposited_at INTEGER NOT NULL,
    received_at INTEGER NOT NULL,
    held_because TEXT CHECK (held_because IN ('WRONG_AMOUNT', 'AFTER_DUE_DATE', 'NOT_WAITING')),
    return_status TEXT NOT NULL CHECK (return_status IN ('NOT_NEEDED', 'REQUESTED', 'RETURNED', 'FAILED')),
    return_refund TEXT,
    next_attempt_at INTEGER,
    attempts INTEGER NOT NULL,
    version INTEGER NOT NULL,
    UNIQUE (mode, bank, bank_deposit_id),
    CHECK ((held_because IS NULL) = (return_status = 'NOT_NEEDED'))
) STRICT;

CREATE INDEX bank_deposits_payment_id ON bank_deposits (payment_id);
CREATE INDEX bank_deposits_next_attempt_at ON bank_deposits (next_attempt_at) WHERE next_attempt_at IS NOT NULL;

-- A posting belongs to a payment's transaction (approval, cancel) or to a deposit, never both. SQLite cannot drop a
-- NOT NULL constraint: the table is rebuilt (nothing refers to it), keeping its columns' order.
CREATE TABLE ledger_postings_0012 (
    journal_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    account TEXT NOT NULL,
    currency TEXT NOT NULL,
    amount INTEGER NOT NULL,
    payment_id TEXT NOT NULL REFERENCES payments (id),
    transaction_key TEXT REFERENCES payment_transactions (transaction_key),
    created_at INTEGER NOT NULL,
    deposit_id TEXT REFERENCES bank_deposits (id),
    PRIMARY KEY (journal_id, seq),
    CHECK ((transaction_key IS NULL) <> (deposit_id IS NULL))
) STRICT;

INSERT INTO ledger_postings_0012 (journal_id, seq, account, currency, amount, payment_id, transaction_key, created_at)
    SELECT journal_id, seq, account, currency, amount, payment_id, transaction_key, created_at FROM ledger_postings;
DROP TABLE ledger_postings;
ALTER TABLE ledger_postings_0012 RENAME TO ledger_postings;
CREATE INDEX ledger_postings_payment_id ON ledger_postings (payment_id);
CREATE INDEX ledger_postings_deposit_id ON ledger_postings (deposit_id) WHERE deposit_id IS NOT NULL;
