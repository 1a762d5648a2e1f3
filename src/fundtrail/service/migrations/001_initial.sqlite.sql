CREATE TABLE api_keys (
    name TEXT PRIMARY KEY,
    role TEXT NOT NULL,
    key_hash TEXT NOT NULL UNIQUE,
    prefix TEXT NOT NULL,
    rate_limit REAL NOT NULL,
    created TEXT NOT NULL,
    revoked TEXT
);
CREATE TABLE policies (
    version INTEGER PRIMARY KEY,
    policy_id TEXT NOT NULL,
    body TEXT NOT NULL,
    digest TEXT NOT NULL,
    created TEXT NOT NULL,
    author TEXT
);
CREATE TABLE verdicts (
    verdict_id TEXT PRIMARY KEY,
    created TEXT NOT NULL,
    chain TEXT NOT NULL,
    address TEXT NOT NULL,
    decision TEXT NOT NULL,
    policy_version INTEGER,
    index_version INTEGER,
    key_name TEXT,
    body TEXT NOT NULL
);
CREATE INDEX verdicts_address ON verdicts (chain, address);
CREATE TABLE transfers (
    transfer_id TEXT PRIMARY KEY,
    created TEXT NOT NULL,
    chain TEXT NOT NULL,
    direction TEXT NOT NULL,
    address TEXT NOT NULL,
    counterparty TEXT,
    txid TEXT,
    vout INTEGER,
    asset TEXT NOT NULL,
    amount TEXT NOT NULL,
    time TEXT,
    verdict_id TEXT NOT NULL,
    decision TEXT NOT NULL,
    key_name TEXT
);
CREATE TABLE audit (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    time TEXT NOT NULL,
    key_name TEXT,
    role TEXT,
    method TEXT NOT NULL,
    endpoint TEXT NOT NULL,
    params_hash TEXT NOT NULL,
    status INTEGER NOT NULL,
    decision TEXT
);
CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit BEGIN SELECT RAISE(ABORT, 'audit is append-only'); END;
CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit BEGIN SELECT RAISE(ABORT, 'audit is append-only'); END;
