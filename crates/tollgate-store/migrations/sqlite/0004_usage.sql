-- Usage (issue 12): every admitted tool call a service reported, kept by its
-- idempotency key so that a second delivery is counted once, and the hourly
-- counts per user, tool and plan that reports read. Both tables are written
-- in one transaction per batch (Store::record_usage).
--
-- Numbered before the audit trail's 0005 (it was reserved for this): sqlx
-- applies every migration it has not applied yet, in version order, so a
-- database that already has 0005 gains 0004 the next time it is opened.

CREATE TABLE usage_events (
    service     TEXT NOT NULL,
    instance    TEXT NOT NULL,
    seq         INTEGER NOT NULL,
    user_id     TEXT NOT NULL,
    tool        TEXT NOT NULL,
    plan        TEXT NOT NULL,
    at          INTEGER NOT NULL,
    received_at INTEGER NOT NULL,
    -- The idempotency key.
    PRIMARY KEY (service, instance, seq)
) WITHOUT ROWID;

-- Calls per user, tool and plan in the hour starting at `hour` (Unix
-- seconds, a multiple of 3600).
CREATE TABLE usage_hourly (
    user_id TEXT NOT NULL,
    hour    INTEGER NOT NULL,
    tool    TEXT NOT NULL,
    plan    TEXT NOT NULL,
    calls   INTEGER NOT NULL CHECK (calls > 0),
    PRIMARY KEY (user_id, hour, tool, plan)
) WITHOUT ROWID;
CREATE INDEX usage_hourly_by_hour ON usage_hourly (hour);
