-- The origins (scheme://host[:port]) a merchant registered for the browser redirects of client-key payments
-- (successUrl, failUrl), one per line; empty: none registered, so client keys cannot start payments.

ALTER TABLE merchant_settings ADD COLUMN redirect_origins TEXT NOT NULL DEFAULT '';
