-- 6: pm2 processes behind poracle-gate. What the crash-loop tracker knows of each process (its restart
-- counts of the last hour as JSON [[epoch seconds, count], ...], an open episode), so a bot restarted
-- mid-episode neither repeats its alert nor misses the recovery; and the process an alert or a restart
-- was about (NULL: the whole server).
CREATE TABLE process_watches (
    server_id INTEGER NOT NULL REFERENCES servers(id), name TEXT NOT NULL, pm_id INTEGER NOT NULL,
    samples TEXT NOT NULL, trouble_since REAL, reason TEXT,
    PRIMARY KEY (server_id, name, pm_id)
) WITHOUT ROWID;
ALTER TABLE events ADD COLUMN process TEXT;
ALTER TABLE restarts ADD COLUMN process TEXT;
