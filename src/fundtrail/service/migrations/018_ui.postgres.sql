CREATE TABLE users (
    name TEXT PRIMARY KEY,
    role TEXT NOT NULL,
    pw_hash TEXT NOT NULL,
    created TEXT NOT NULL,
    failed INTEGER NOT NULL DEFAULT 0,
    locked_until TEXT,
    disabled TEXT
);
CREATE TABLE sessions (
    sid_hash TEXT PRIMARY KEY,
    user_name TEXT NOT NULL,
    csrf TEXT NOT NULL,
    created TEXT NOT NULL,
    expires TEXT NOT NULL
);
CREATE INDEX sessions_user ON sessions (user_name);
CREATE TABLE cases (
    case_id TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    title TEXT NOT NULL,
    incident TEXT,
    seeds TEXT NOT NULL,
    model TEXT NOT NULL,
    graph TEXT NOT NULL,
    notes TEXT NOT NULL,
    created TEXT NOT NULL,
    updated TEXT NOT NULL
);
CREATE TABLE case_shares (
    case_id TEXT NOT NULL,
    user_name TEXT NOT NULL,
    PRIMARY KEY (case_id, user_name)
);
CREATE TABLE ui_actions (
    id BIGSERIAL PRIMARY KEY,
    time TEXT NOT NULL,
    user_name TEXT,
    action TEXT NOT NULL,
    target TEXT NOT NULL,
    detail TEXT
);
CREATE FUNCTION ui_actions_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN RAISE EXCEPTION 'ui_actions is append-only'; END $$;
CREATE TRIGGER ui_actions_no_change BEFORE UPDATE OR DELETE ON ui_actions FOR EACH ROW
    EXECUTE FUNCTION ui_actions_append_only();
