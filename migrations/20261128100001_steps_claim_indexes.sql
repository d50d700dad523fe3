-- The driver's claim asks, on every pass, which pending steps have all their dependencies done.
-- Step rows carry the whole step spec (kilobytes of JSON, spilling onto overflow pages), so
-- answering from the table read every pending row and every dependency's row each time: most of
-- a 200-server rehearsal's time went into those page reads. These two indexes hold everything
-- that question reads, so it is answered from the indexes alone (issue 9).
CREATE INDEX steps_claim_scan ON steps (run_id, status, seq, undo_of, id);
CREATE INDEX steps_status_by_id ON steps (run_id, id, status);
