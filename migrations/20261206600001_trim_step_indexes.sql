-- Fewer pages per transition (issue 19). `steps_by_status (run_id, status)` is a prefix of
-- `steps_claim_scan (run_id, status, seq, undo_of, id)`: every query that searched it searches the
-- longer index the same way (checked with EXPLAIN QUERY PLAN for each statement on `steps`), and
-- each status change rewrote an entry in both. One index less to update per step transition.
DROP INDEX IF EXISTS steps_by_status;
