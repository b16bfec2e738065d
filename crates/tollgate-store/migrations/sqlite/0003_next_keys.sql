-- Seamless rotation: a `next` key (published before it signs; at most one)
-- and `keys` events on the feed (a rotation, for followers to refetch the
-- key set at once). SQLite cannot change a CHECK constraint, so both tables
-- are rebuilt with their rows, indexes and AUTOINCREMENT counters.

CREATE TABLE signing_keys_new (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    kid        TEXT NOT NULL UNIQUE,
    alg        TEXT NOT NULL,
    status     TEXT NOT NULL CHECK (status IN ('next', 'active', 'verify_only', 'retired')),
    created_at INTEGER NOT NULL,
    retire_at  INTEGER,
    material   BLOB NOT NULL
);
INSERT INTO signing_keys_new (seq, kid, alg, status, created_at, retire_at, material)
    SELECT seq, kid, alg, status, created_at, retire_at, material FROM signing_keys;
DROP TABLE signing_keys;
ALTER TABLE signing_keys_new RENAME TO signing_keys;
-- At most one key signs, and one waits: two processes rotating at once
-- cannot both win.
CREATE UNIQUE INDEX signing_keys_one_active ON signing_keys (status) WHERE status = 'active';
CREATE UNIQUE INDEX signing_keys_one_next ON signing_keys (status) WHERE status = 'next';

CREATE TABLE revocations_new (
    cursor     INTEGER PRIMARY KEY AUTOINCREMENT,
    kind       TEXT NOT NULL CHECK (kind IN ('token', 'session', 'user', 'keys')),
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
