-- API tokens expire and can be revoked from the page and the API (issue #14). The expiry is set
-- when a token is created (default 90 days, at most 365); a token made before this migration
-- expires 90 days after it was made. `revoked_at` says when a token was revoked (the flag stays).
ALTER TABLE api_tokens ADD COLUMN expires_at INTEGER NOT NULL DEFAULT 0;
UPDATE api_tokens SET expires_at = created_at + 90 * 86400;
ALTER TABLE api_tokens ADD COLUMN revoked_at INTEGER;
