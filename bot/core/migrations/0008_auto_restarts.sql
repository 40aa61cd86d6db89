-- 8: automatic restarts (PORACLE_SERVER_<N>_AUTO_RESTART=on): what the guard rails remember of each server,
-- so a restarted bot neither forgets its limit nor repeats its "needs a human" alert (that alert is an event
-- of kind 'needs-human' in the outbox, held and delivered once like the others). attempts: the automatic
-- restarts started in the last 6 h, as JSON [epoch seconds, ...].
CREATE TABLE auto_restarts (
    server_id INTEGER PRIMARY KEY REFERENCES servers(id), attempts TEXT NOT NULL, last_attempt REAL,
    streak INTEGER NOT NULL, failures INTEGER NOT NULL, up_since REAL,
    needs_human_since REAL, needs_human_reason TEXT
);
