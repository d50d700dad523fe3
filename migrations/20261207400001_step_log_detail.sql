-- Step log lines come in two kinds (issue 16): what happened on the server in words ("Stopped
-- BackupServer in 2.1 s", detail = 0), shown on the run page's cards, and the technical lines
-- behind them (the agent action's id, every SQL Server message, detail = 1), kept for the step's
-- own page and its log.txt. Lines written before this column existed are all shown (0).
ALTER TABLE step_log ADD COLUMN detail INTEGER NOT NULL DEFAULT 0 CHECK (detail IN (0, 1));
