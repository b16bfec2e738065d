-- Seamless rotation: a `next` key (published before it signs; at most one)
-- and `keys` events on the feed (a rotation, for followers to refetch the
-- key set at once).
ALTER TABLE signing_keys DROP CONSTRAINT signing_keys_status_check;
ALTER TABLE signing_keys ADD CONSTRAINT signing_keys_status_check
    CHECK (status IN ('next', 'active', 'verify_only', 'retired'));
CREATE UNIQUE INDEX signing_keys_one_next ON signing_keys (status) WHERE status = 'next';

ALTER TABLE revocations DROP CONSTRAINT revocations_kind_check;
ALTER TABLE revocations ADD CONSTRAINT revocations_kind_check
    CHECK (kind IN ('token', 'session', 'user', 'keys'));
