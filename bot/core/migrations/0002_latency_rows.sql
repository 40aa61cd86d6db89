-- 2: latency histograms as rows, summed by SQLite: a JSON text per server and hour made /poracle status
-- parse and merge 4,800 of them (200 servers, 24 h) in Python for each status (bench/store_week.py).
CREATE TABLE latency (
    server_id INTEGER NOT NULL, hour INTEGER NOT NULL, bucket INTEGER NOT NULL, answers INTEGER NOT NULL,
    PRIMARY KEY (server_id, hour, bucket)
) WITHOUT ROWID;
INSERT INTO latency SELECT server_id, hour, CAST(key AS INTEGER), value FROM hourly, json_each(latency_hist);
ALTER TABLE hourly DROP COLUMN latency_hist;
