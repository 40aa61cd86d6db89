-- 5: the degraded state (a server that answers but refuses the bot or is stuck): the monitor's degraded
-- streaks, the cause of a degraded alert, degraded checks in the hourly rollups (uptime still counts
-- answers, as before), and PoracleNG's webhook counters as last seen (stuck detection).
ALTER TABLE watches ADD COLUMN degraded INTEGER NOT NULL DEFAULT 0;
ALTER TABLE watches ADD COLUMN healthy INTEGER NOT NULL DEFAULT 0;
ALTER TABLE watches ADD COLUMN first_degraded REAL;
ALTER TABLE watches ADD COLUMN degraded_since REAL;
ALTER TABLE events ADD COLUMN cause TEXT;
ALTER TABLE hourly ADD COLUMN degraded INTEGER NOT NULL DEFAULT 0;
CREATE TABLE webhook_counters (
    server_id INTEGER PRIMARY KEY REFERENCES servers(id), total REAL NOT NULL, quiet_since REAL NOT NULL
);
