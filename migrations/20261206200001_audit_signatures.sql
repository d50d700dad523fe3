-- The audit chain is signed (issue #14): each event carries an Ed25519 signature over its hash,
-- made with a key kept in a file outside the database (`audit-signing.key`), so someone holding
-- only this file cannot append, truncate or rebuild the log unnoticed. NULL only for events
-- recorded before signing began. The column is not part of the hash (the signature is over it).
ALTER TABLE events ADD COLUMN sig TEXT;
