-- 1: servers, monitor state, check samples with hourly rollups, the alert outbox, the restart audit, mutes.
CREATE TABLE servers (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);
CREATE TABLE watches (
    server_id INTEGER PRIMARY KEY REFERENCES servers(id),
    state TEXT NOT NULL, failures INTEGER NOT NULL, successes INTEGER NOT NULL,
    first_failure REAL, down_since REAL, last_alert REAL
);
-- status: the HTTP status when the server answered, NULL when it did not.
CREATE TABLE samples (
    server_id INTEGER NOT NULL, at_ms INTEGER NOT NULL, status INTEGER, latency_ms INTEGER,
    PRIMARY KEY (server_id, at_ms)
) WITHOUT ROWID;
CREATE TABLE hourly (
    server_id INTEGER NOT NULL, hour INTEGER NOT NULL, checks INTEGER NOT NULL, online INTEGER NOT NULL,
    latency_hist TEXT NOT NULL, PRIMARY KEY (server_id, hour)
) WITHOUT ROWID;
-- The alert outbox: delivery is pending until the post succeeded, or muted/off when nobody is told.
CREATE TABLE events (
    id INTEGER PRIMARY KEY, round INTEGER NOT NULL, kind TEXT NOT NULL,
    server_id INTEGER NOT NULL REFERENCES servers(id),
    reason TEXT, since REAL NOT NULL, at REAL NOT NULL, delivery TEXT NOT NULL DEFAULT 'pending'
);
CREATE INDEX events_pending ON events(id) WHERE delivery = 'pending';
CREATE INDEX events_server ON events(server_id, at);
CREATE TABLE restarts (
    id INTEGER PRIMARY KEY, server_id INTEGER NOT NULL REFERENCES servers(id), at REAL NOT NULL,
    requested_by TEXT NOT NULL, outcome TEXT NOT NULL, reason TEXT NOT NULL, exit_code INTEGER,
    duration_s REAL, healthy_after INTEGER
);
CREATE INDEX restarts_server ON restarts(server_id, at);
CREATE TABLE mutes (server_id INTEGER PRIMARY KEY REFERENCES servers(id), until REAL NOT NULL, by TEXT NOT NULL);
CREATE TABLE kv (key TEXT PRIMARY KEY, value TEXT NOT NULL);
