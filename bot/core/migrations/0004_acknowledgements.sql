-- 4: acknowledgements: an admin taking on one outage, named by its server and its start (the outage's since).
-- The first acknowledgement of an outage is kept; the recovery ends the outage (a later one has another
-- start), and its alert names who had acknowledged it.
CREATE TABLE acks (
    server_id INTEGER NOT NULL REFERENCES servers(id), since REAL NOT NULL,
    by TEXT NOT NULL, at REAL NOT NULL, reason TEXT NOT NULL,
    PRIMARY KEY (server_id, since)
) WITHOUT ROWID;
