-- Tollgate's schema, Postgres edition: the same tables as the SQLite one
-- (migrations/sqlite/0001_initial.sql explains each), in Postgres types.
-- Times are Unix seconds (BIGINT); lists are TEXT[].

CREATE TABLE subjects (
    subject TEXT PRIMARY KEY,
    kind    TEXT NOT NULL CHECK (kind IN ('user', 'client'))
);

CREATE TABLE users (
    seq           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id            TEXT NOT NULL UNIQUE REFERENCES subjects (subject),
    email         TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    plan          TEXT NOT NULL,
    roles         TEXT[] NOT NULL,
    disabled      BOOLEAN NOT NULL,
    created_at    BIGINT NOT NULL
);

CREATE TABLE sessions (
    seq          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    sid          TEXT NOT NULL UNIQUE,
    user_id      TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    client_id    TEXT NOT NULL,
    scope        TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    last_used_at BIGINT NOT NULL,
    expires_at   BIGINT NOT NULL,
    revoked_at   BIGINT
);
CREATE INDEX sessions_by_user ON sessions (user_id);
CREATE INDEX sessions_by_expiry ON sessions (expires_at);

CREATE TABLE refresh_tokens (
    digest     TEXT PRIMARY KEY,
    sid        TEXT NOT NULL REFERENCES sessions (sid) ON DELETE CASCADE,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at    BIGINT
);
CREATE INDEX refresh_tokens_by_session ON refresh_tokens (sid);
CREATE INDEX refresh_tokens_by_expiry ON refresh_tokens (expires_at);

-- The revocation feed. Cursors come from the one row of revocation_feed,
-- incremented inside each revoking transaction: its row lock is held until
-- commit, so cursors are handed out in commit order and a reader that has
-- seen cursor N has seen every cursor below it. (A sequence would not do:
-- its values are taken at insert, and a transaction holding a lower one can
-- commit after a reader has moved past it.)
CREATE TABLE revocation_feed (
    only_row    BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (only_row),
    last_cursor BIGINT NOT NULL
);
INSERT INTO revocation_feed (only_row, last_cursor) VALUES (TRUE, 0);

CREATE TABLE revocations (
    cursor     BIGINT PRIMARY KEY,
    kind       TEXT NOT NULL CHECK (kind IN ('token', 'session', 'user')),
    value      TEXT NOT NULL,
    at         BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE UNIQUE INDEX revocations_one_per_jti ON revocations (value) WHERE kind = 'token';
CREATE INDEX revocations_by_expiry ON revocations (expires_at);

CREATE TABLE clients (
    seq           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    client_id     TEXT NOT NULL UNIQUE REFERENCES subjects (subject),
    secret_digest TEXT NOT NULL,
    scopes        TEXT[] NOT NULL,
    created_at    BIGINT NOT NULL
);

CREATE TABLE signing_keys (
    seq        BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kid        TEXT NOT NULL UNIQUE,
    alg        TEXT NOT NULL,
    status     TEXT NOT NULL CHECK (status IN ('active', 'verify_only', 'retired')),
    created_at BIGINT NOT NULL,
    retire_at  BIGINT,
    material   BYTEA NOT NULL
);
CREATE UNIQUE INDEX signing_keys_one_active ON signing_keys (status) WHERE status = 'active';
