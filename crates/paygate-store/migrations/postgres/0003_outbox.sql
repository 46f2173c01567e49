-- Keep in step with migrations/sqlite/0003_outbox.sql (the schema parity test compares them).
-- As in 0001 and 0002, ID columns (and other keys that are compared or ordered) use the "C" collation.
-- The transactional outbox: events, their deliveries (webhooks and notification URLs) and every attempt, plus
-- webhook endpoints and the notification settings of merchants and payments.

ALTER TABLE payments ADD COLUMN notification_url TEXT;

CREATE TABLE merchant_settings (
    merchant_id TEXT COLLATE "C" NOT NULL REFERENCES merchants (id),
    mode TEXT NOT NULL CHECK (mode IN ('test', 'live')),
    notification_url TEXT,
    notification_format TEXT NOT NULL CHECK (notification_format IN ('FORM', 'JSON')),
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (merchant_id, mode)
);

CREATE TABLE webhook_endpoints (
    id TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    merchant_id TEXT COLLATE "C" NOT NULL REFERENCES merchants (id),
    mode TEXT NOT NULL CHECK (mode IN ('test', 'live')),
    url TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('ENABLED', 'DISABLED', 'DELETED')),
    disabled_reason TEXT,
    -- The signing secret, sealed under the vault key; during a rotation the previous one signs too until it expires.
    secret_key_version INTEGER NOT NULL,
    secret_sealed BYTEA NOT NULL,
    previous_secret_key_version INTEGER,
    previous_secret_sealed BYTEA,
    previous_secret_expires_at BIGINT,
    -- Since when every delivery to it has failed; cleared by a success. Drives automatic disabling.
    failing_since BIGINT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    version BIGINT NOT NULL
);

CREATE INDEX webhook_endpoints_merchant ON webhook_endpoints (merchant_id, mode);

CREATE TABLE webhook_endpoint_events (
    endpoint_id TEXT COLLATE "C" NOT NULL REFERENCES webhook_endpoints (id),
    event_type TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (endpoint_id, event_type)
);

CREATE TABLE events (
    id TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    merchant_id TEXT COLLATE "C" NOT NULL REFERENCES merchants (id),
    mode TEXT NOT NULL CHECK (mode IN ('test', 'live')),
    type TEXT NOT NULL,
    object_id TEXT NOT NULL,
    -- The object's version when the event happened: receivers order and deduplicate by it.
    sequence BIGINT NOT NULL,
    previous_status TEXT,
    -- The event's `data` as JSON, and the notification URL's form fields as JSON, frozen at event time.
    data TEXT NOT NULL,
    notification_fields TEXT,
    created_at BIGINT NOT NULL
);

CREATE INDEX events_merchant ON events (merchant_id, mode, id);

CREATE TABLE deliveries (
    -- `{event_id}:{endpoint_id or "notification"}{resend suffix}`: ordered byte by byte like the other IDs.
    id TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    event_id TEXT COLLATE "C" NOT NULL REFERENCES events (id),
    merchant_id TEXT COLLATE "C" NOT NULL REFERENCES merchants (id),
    mode TEXT NOT NULL CHECK (mode IN ('test', 'live')),
    kind TEXT NOT NULL CHECK (kind IN ('WEBHOOK', 'NOTIFICATION')),
    endpoint_id TEXT COLLATE "C" REFERENCES webhook_endpoints (id),
    url TEXT NOT NULL,
    notification_format TEXT CHECK (notification_format IN ('FORM', 'JSON')),
    status TEXT NOT NULL CHECK (status IN ('PENDING', 'SUCCEEDED', 'FAILED')),
    attempts INTEGER NOT NULL,
    next_attempt_at BIGINT,
    -- A worker's claim: until `locked_until` no other worker takes the delivery; completion checks the token.
    lock_token BIGINT,
    locked_until BIGINT,
    last_status_code INTEGER,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE INDEX deliveries_due ON deliveries (next_attempt_at) WHERE status = 'PENDING';
CREATE INDEX deliveries_event ON deliveries (event_id);
CREATE INDEX deliveries_endpoint ON deliveries (endpoint_id);

CREATE TABLE delivery_attempts (
    delivery_id TEXT COLLATE "C" NOT NULL REFERENCES deliveries (id),
    attempt INTEGER NOT NULL,
    started_at BIGINT NOT NULL,
    latency_ms INTEGER NOT NULL,
    status_code INTEGER,
    error TEXT,
    -- The response body, truncated; what the merchant's server answered.
    response_body TEXT,
    succeeded INTEGER NOT NULL CHECK (succeeded IN (0, 1)),
    PRIMARY KEY (delivery_id, attempt)
);
