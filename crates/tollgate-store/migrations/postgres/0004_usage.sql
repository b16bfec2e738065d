-- Usage (issue 12): the same tables as migrations/sqlite/0004_usage.sql
-- (which explains them and their number), in Postgres types.

CREATE TABLE usage_events (
    service     TEXT NOT NULL,
    instance    TEXT NOT NULL,
    seq         BIGINT NOT NULL,
    user_id     TEXT NOT NULL,
    tool        TEXT NOT NULL,
    plan        TEXT NOT NULL,
    at          BIGINT NOT NULL,
    received_at BIGINT NOT NULL,
    PRIMARY KEY (service, instance, seq)
);

CREATE TABLE usage_hourly (
    user_id TEXT NOT NULL,
    hour    BIGINT NOT NULL,
    tool    TEXT NOT NULL,
    plan    TEXT NOT NULL,
    calls   BIGINT NOT NULL CHECK (calls > 0),
    PRIMARY KEY (user_id, hour, tool, plan)
);
CREATE INDEX usage_hourly_by_hour ON usage_hourly (hour);
