-- Issue 14: separation of duties compares people, not account names. Every account carries the
-- person it belongs to: a verified e-mail given by an admin, or for single sign-on the
-- provider's subject. Existing local accounts are backfilled with their own name (one account,
-- one person, as the system assumed until now); single sign-on accounts with `sso:` issuer and
-- subject. Unique: a second account for the same person is refused at creation.
ALTER TABLE users ADD COLUMN person TEXT;
UPDATE users SET person = CASE
    WHEN sso_subject IS NOT NULL THEN 'sso:' || sso_issuer || '#' || sso_subject
    ELSE name END;
CREATE UNIQUE INDEX users_by_person ON users (person);
