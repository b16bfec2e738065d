-- `plan` notices on the feed (issue 12): an admin changed a user's plan, and
-- SDKs apply the new plan's limits without waiting for a new token. Not a
-- revocation. SQLite cannot change a CHECK constraint, so the table is
-- rebuilt with its rows, indexes and AUTOINCREMENT counter (as 0003 did).

CREATE TABLE revocations_new (
    cursor     INTEGER PRIMARY KEY AUTOINCREMENT,
    kind       TEXT NOT NULL CHECK (kind IN ('token', 'session', 'user', 'keys', 'plan')),
    value      TEXT NOT NULL,
    at         INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);
INSERT INTO revocations_new (cursor, kind, value, at, expires_at)
    SELECT cursor, kind, value, at, expires_at FROM revocations;
-- A cursor is never handed out twice, even when the newest rows were purged:
-- the new table's counter starts where the old one was.
INSERT INTO sqlite_sequence (name, seq)
    SELECT 'revocations_new', 0
    WHERE NOT EXISTS (SELECT 1 FROM sqlite_sequence WHERE name = 'revocations_new');
UPDATE sqlite_sequence
    SET seq = max(seq, coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'revocations'), 0))
    WHERE name = 'revocations_new';
DROP TABLE revocations;
ALTER TABLE revocations_new RENAME TO revocations;
CREATE UNIQUE INDEX revocations_one_per_jti ON revocations (value) WHERE kind = 'token';
CREATE INDEX revocations_by_expiry ON revocations (expires_at);
