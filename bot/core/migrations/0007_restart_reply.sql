-- 7: a restart is written when it starts (outcome 'running') and completed when it ends, so one that a crash
-- cut off is found at the next start. `reply` is where its requester watches the outcome (a Discord
-- message), kept until the outcome has been shown there.
ALTER TABLE restarts ADD COLUMN reply TEXT;
CREATE INDEX restarts_reply ON restarts(reply) WHERE reply IS NOT NULL;
