-- What a payment keeps for Toss Payments v1 compatibility: what the acquirer said about the card (the acquirer's
-- card-company code, the card's type, whose card it is), the request's tax-exempt amount (과세 제외, e.g. a cup
-- deposit), metadata, mobile phone and interest-free installments, and the tax-free part of each cancel.

ALTER TABLE payments ADD COLUMN approval_acquirer_code TEXT;
ALTER TABLE payments ADD COLUMN card_type TEXT CHECK (card_type IN ('CREDIT', 'CHECK', 'GIFT', 'UNKNOWN'));
ALTER TABLE payments ADD COLUMN card_owner_type TEXT CHECK (card_owner_type IN ('PERSONAL', 'CORPORATE', 'UNKNOWN'));
ALTER TABLE payments ADD COLUMN tax_exemption_amount INTEGER NOT NULL DEFAULT 0 CHECK (tax_exemption_amount >= 0);
-- A JSON object of at most 5 string values, as the merchant sent it.
ALTER TABLE payments ADD COLUMN metadata TEXT;
ALTER TABLE payments ADD COLUMN customer_mobile_phone TEXT;
-- 1: the merchant asked for an interest-free installment plan (useFreeInstallmentPlan): it pays the interest.
ALTER TABLE payments ADD COLUMN free_installment INTEGER NOT NULL DEFAULT 0 CHECK (free_installment IN (0, 1));
ALTER TABLE payment_transactions ADD COLUMN tax_free_amount INTEGER NOT NULL DEFAULT 0 CHECK (tax_free_amount >= 0);

-- The sandbox acquirers A, B and C answer as KB국민카드 (11), 하나카드 (21) and BC카드 (31) from now on; their
-- approvals recorded before keep that code too.
UPDATE payments SET approval_acquirer_code = CASE acquirer WHEN 'A' THEN '11' WHEN 'B' THEN '21' ELSE '31' END
WHERE mode = 'test' AND approval_number IS NOT NULL AND acquirer IN ('A', 'B', 'C');
