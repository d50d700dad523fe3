-- When a failed notification delivery will be tried again (issue 6: the run page shows each
-- delivery's next retry). Milliseconds since the Unix epoch, like `at`; NULL once delivered or
-- given up, and for attempts recorded before this column existed.
ALTER TABLE notification_attempts ADD COLUMN retry_at INTEGER;
