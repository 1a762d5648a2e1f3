CREATE TABLE transfer_verdicts (
    transfer_id TEXT NOT NULL,
    verdict_id TEXT NOT NULL,
    previous_verdict_id TEXT,
    decision_before TEXT,
    decision_after TEXT NOT NULL,
    created TEXT NOT NULL,
    cause TEXT,
    PRIMARY KEY (transfer_id, verdict_id)
);
CREATE TABLE watches (
    watch_id TEXT PRIMARY KEY,
    created TEXT NOT NULL,
    chain TEXT NOT NULL,
    target_kind TEXT NOT NULL,
    target TEXT NOT NULL,
    note TEXT,
    from_height BIGINT NOT NULL,
    key_name TEXT,
    removed TEXT
);
CREATE TABLE alerts (
    seq BIGSERIAL PRIMARY KEY,
    alert_id TEXT NOT NULL UNIQUE,
    dedupe_key TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL,
    severity TEXT NOT NULL,
    created TEXT NOT NULL,
    status TEXT NOT NULL,
    chain TEXT,
    height BIGINT,
    block_hash TEXT,
    body TEXT NOT NULL
);
CREATE INDEX alerts_block ON alerts (chain, height);
CREATE TABLE alert_actions (
    id BIGSERIAL PRIMARY KEY,
    alert_id TEXT NOT NULL,
    time TEXT NOT NULL,
    key_name TEXT,
    action TEXT NOT NULL,
    comment TEXT
);
CREATE INDEX alert_actions_alert ON alert_actions (alert_id);
CREATE TABLE webhooks (
    webhook_id TEXT PRIMARY KEY,
    created TEXT NOT NULL,
    url TEXT NOT NULL,
    secret TEXT NOT NULL,
    events TEXT NOT NULL,
    key_name TEXT,
    active INTEGER NOT NULL
);
CREATE TABLE deliveries (
    delivery_id TEXT PRIMARY KEY,
    webhook_id TEXT NOT NULL,
    alert_id TEXT NOT NULL,
    event TEXT NOT NULL,
    body TEXT NOT NULL,
    created TEXT NOT NULL,
    created_epoch DOUBLE PRECISION NOT NULL,
    status TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    next_attempt DOUBLE PRECISION NOT NULL,
    delivered TEXT,
    last_error TEXT,
    UNIQUE (webhook_id, alert_id)
);
CREATE INDEX deliveries_due ON deliveries (status, next_attempt);
CREATE TABLE delivery_attempts (
    id BIGSERIAL PRIMARY KEY,
    delivery_id TEXT NOT NULL,
    time TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    status_code INTEGER,
    error TEXT,
    duration_ms DOUBLE PRECISION NOT NULL
);
CREATE INDEX delivery_attempts_delivery ON delivery_attempts (delivery_id);
CREATE TABLE monitor_state (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
ALTER TABLE transfers ADD COLUMN external_id TEXT;
ALTER TABLE transfers ADD COLUMN customer_id TEXT;
