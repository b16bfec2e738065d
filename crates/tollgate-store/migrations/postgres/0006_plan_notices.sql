-- `plan` notices on the feed (issue 12): an admin changed a user's plan, and
-- SDKs apply the new plan's limits without waiting for a new token. Not a
-- revocation.
ALTER TABLE revocations DROP CONSTRAINT revocations_kind_check;
ALTER TABLE revocations ADD CONSTRAINT revocations_kind_check
    CHECK (kind IN ('token', 'session', 'user', 'keys', 'plan'));
