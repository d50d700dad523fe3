-- Accounts that sign in through the company's OpenID provider (issue 10). Such an account is
-- found by the provider's issuer and subject (never by name, which the provider may reuse), has
-- no usable password (password_hash holds '!sso', which no password verifies against), and
-- takes its role from the provider's claims at every sign-in. Local accounts (both columns
-- NULL) stay for break-glass access when the provider is down.
ALTER TABLE users ADD COLUMN sso_issuer TEXT;
ALTER TABLE users ADD COLUMN sso_subject TEXT;
CREATE UNIQUE INDEX users_by_sso ON users (sso_issuer, sso_subject) WHERE sso_subject IS NOT NULL;
