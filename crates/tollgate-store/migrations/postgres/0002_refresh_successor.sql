-- The successor of a rotated refresh token and the salt it was derived
-- with, so that a retry within the reuse grace gets the same successor.
ALTER TABLE refresh_tokens ADD COLUMN successor TEXT;
ALTER TABLE refresh_tokens ADD COLUMN successor_salt TEXT;
