-- The hosted page's bank methods (issue 12): the method the merchant asked for (NULL: the buyer picks on the
-- page), the bank the buyer picked with the name its account is for, and the bank's transfer authorization that
-- waits for the merchant's confirm. Then the account transfers (계좌이체) the banks debited.

ALTER TABLE checkout_sessions ADD COLUMN method TEXT CHECK (method IN ('CARD', 'VIRTUAL_ACCOUNT', 'TRANSFER'));
ALTER TABLE checkout_sessions ADD COLUMN bank TEXT;
ALTER TABLE checkout_sessions ADD COLUMN holder_name TEXT;
-- The bank's one-time authorization code (single use, bound to the payment and its amount at the bank).
ALTER TABLE checkout_sessions ADD COLUMN bank_authorization TEXT;

CREATE TABLE transfers (
    payment_id TEXT NOT NULL PRIMARY KEY REFERENCES payments (id),
    merchant_id TEXT NOT NULL REFERENCES merchants (id),
    mode TEXT NOT NULL CHECK (mode IN ('test', 'live')),
    bank TEXT NOT NULL,
    -- The buyer's account as the bank reported it: a cancel refunds to it.
    account_number TEXT NOT NULL,
    holder_name TEXT NOT NULL,
    bank_debit_id TEXT NOT NULL,
    currency TEXT NOT NULL,
    amount INTEGER NOT NULL CHECK (amount > 0),
    debited_at INTEGER NOT NULL,
    settlement_status TEXT NOT NULL CHECK (settlement_status IN ('INCOMPLETED', 'COMPLETED')),
    version INTEGER NOT NULL
) STRICT;

CREATE UNIQUE INDEX transfers_bank_debit ON transfers (mode, bank, bank_debit_id);
