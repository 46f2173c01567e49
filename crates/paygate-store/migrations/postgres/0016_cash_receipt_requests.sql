-- Keep in step with migrations/sqlite/0016_cash_receipt_requests.sql (the schema parity test compares them).
-- A buyer's request for a cash receipt with a bank payment (issue 12), kept until the payment is paid: its issue is
-- written with the payment's DONE (a virtual account's deposit, a transfer's debit).

CREATE TABLE cash_receipt_requests (
    payment_id TEXT COLLATE "C" NOT NULL PRIMARY KEY REFERENCES payments (id),
    receipt_type TEXT NOT NULL CHECK (receipt_type IN ('INCOME_DEDUCTION', 'EXPENSE_PROOF')),
    identity_kind TEXT NOT NULL,
    identity_number TEXT COLLATE "C" NOT NULL,
    requested_at BIGINT NOT NULL
);
