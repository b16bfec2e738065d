-- The audit trail (issue 12): the same tables as migrations/sqlite/0005_audit.sql
-- (which explains them), in Postgres types.

CREATE TABLE audit_chains (
    chain TEXT PRIMARY KEY,
    seq   BIGINT NOT NULL,
    hash  TEXT NOT NULL
);

CREATE TABLE audit_feed (
    only_row    BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (only_row),
    last_cursor BIGINT NOT NULL
);
INSERT INTO audit_feed (only_row, last_cursor) VALUES (TRUE, 0);

CREATE TABLE audit_events (
    cursor     BIGINT PRIMARY KEY,
    chain      TEXT NOT NULL,
    seq        BIGINT NOT NULL,
    at         BIGINT NOT NULL,
    kind       TEXT NOT NULL,
    actor      TEXT NOT NULL,
    subject    TEXT,
    address    TEXT,
    request_id TEXT,
    details    TEXT NOT NULL,
    prev_hash  TEXT NOT NULL,
    hash       TEXT NOT NULL,
    UNIQUE (chain, seq)
);
CREATE INDEX audit_events_by_time ON audit_events (at);
CREATE INDEX audit_events_by_kind ON audit_events (kind, cursor);
CREATE INDEX audit_events_by_subject ON audit_events (subject, cursor);

CREATE FUNCTION audit_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit events are append-only';
END;
$$;
CREATE TRIGGER audit_events_append_only BEFORE UPDATE ON audit_events
    FOR EACH ROW EXECUTE FUNCTION audit_events_append_only();
