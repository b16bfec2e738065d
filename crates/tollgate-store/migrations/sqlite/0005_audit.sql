-- The audit trail (issue 12): an append-only table of security events, each
-- hash-chained to the one before it on its writer's chain (docs/audit.md).
--
-- audit_chains holds each chain's head (last position and hash), updated in
-- the transaction that appends to it; audit_feed hands out the trail-wide
-- cursors (one row, incremented at the end of each appending transaction, so
-- cursors are handed out in commit order as the revocation feed's are).

CREATE TABLE audit_chains (
    chain TEXT PRIMARY KEY,
    seq   INTEGER NOT NULL,
    hash  TEXT NOT NULL
);

CREATE TABLE audit_feed (
    only_row    INTEGER PRIMARY KEY DEFAULT 1 CHECK (only_row = 1),
    last_cursor INTEGER NOT NULL
);
INSERT INTO audit_feed (only_row, last_cursor) VALUES (1, 0);

CREATE TABLE audit_events (
    cursor     INTEGER PRIMARY KEY,
    chain      TEXT NOT NULL,
    seq        INTEGER NOT NULL,
    at         INTEGER NOT NULL,
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

-- Append-only: events are never changed (pruning deletes old ones). This
-- stops mistakes, not an attacker with the file; the hash chain is what
-- shows an edit.
CREATE TRIGGER audit_events_append_only BEFORE UPDATE ON audit_events
BEGIN
    SELECT RAISE(ABORT, 'audit events are append-only');
END;
