-- Tollgate's schema, SQLite edition. Times are Unix seconds. Secrets are
-- stored only as digests (refresh tokens, client secrets), PHC strings
-- (passwords) or sealed blobs (private keys). `seq` columns record insertion
-- order, which is what "oldest first" and "newest first" mean.

-- Every name a token can carry as `sub`: user ids and client ids share one
-- namespace, so a client can never be registered under a user's id
-- (RFC 9700 §4.15.1) and the check holds even for concurrent writers.
CREATE TABLE subjects (
    subject TEXT PRIMARY KEY,
    kind    TEXT NOT NULL CHECK (kind IN ('user', 'client'))
);

CREATE TABLE users (
    seq           INTEGER PRIMARY KEY AUTOINCREMENT,
    id            TEXT NOT NULL UNIQUE REFERENCES subjects (subject),
    email         TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    plan          TEXT NOT NULL,
    roles         TEXT NOT NULL,  -- JSON array of strings
    disabled      INTEGER NOT NULL CHECK (disabled IN (0, 1)),
    created_at    INTEGER NOT NULL
);

-- A session is the family of one chain of refresh tokens.
CREATE TABLE sessions (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    sid          TEXT NOT NULL UNIQUE,
    user_id      TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    client_id    TEXT NOT NULL,
    scope        TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    last_used_at INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL,
    revoked_at   INTEGER
);
CREATE INDEX sessions_by_user ON sessions (user_id);
CREATE INDEX sessions_by_expiry ON sessions (expires_at);

-- `used_at` is set exactly once: when the token is rotated away, or when its
-- session ends. Rotation is the conditional update `… WHERE used_at IS NULL`.
CREATE TABLE refresh_tokens (
    digest     TEXT PRIMARY KEY,
    sid        TEXT NOT NULL REFERENCES sessions (sid) ON DELETE CASCADE,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    used_at    INTEGER
);
CREATE INDEX refresh_tokens_by_session ON refresh_tokens (sid);
CREATE INDEX refresh_tokens_by_expiry ON refresh_tokens (expires_at);

-- The revocation feed. AUTOINCREMENT: a cursor is never handed out twice,
-- even after the newest entries are purged; under SQLite's single writer
-- cursors are assigned in commit order.
CREATE TABLE revocations (
    cursor     INTEGER PRIMARY KEY AUTOINCREMENT,
    kind       TEXT NOT NULL CHECK (kind IN ('token', 'session', 'user')),
    value      TEXT NOT NULL,
    at         INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);
-- Revoking a token twice returns the first event.
CREATE UNIQUE INDEX revocations_one_per_jti ON revocations (value) WHERE kind = 'token';
CREATE INDEX revocations_by_expiry ON revocations (expires_at);

CREATE TABLE clients (
    seq           INTEGER PRIMARY KEY AUTOINCREMENT,
    client_id     TEXT NOT NULL UNIQUE REFERENCES subjects (subject),
    secret_digest TEXT NOT NULL,
    scopes        TEXT NOT NULL,  -- JSON array of strings
    created_at    INTEGER NOT NULL
);

CREATE TABLE signing_keys (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    kid        TEXT NOT NULL UNIQUE,
    alg        TEXT NOT NULL,
    status     TEXT NOT NULL CHECK (status IN ('active', 'verify_only', 'retired')),
    created_at INTEGER NOT NULL,
    retire_at  INTEGER,
    material   BLOB NOT NULL
);
-- At most one key signs: two processes rotating at once cannot both win.
CREATE UNIQUE INDEX signing_keys_one_active ON signing_keys (status) WHERE status = 'active';
