-- 9: the notice of an automatic restart goes through the outbox like every alert (kind 'auto-restarted': kept
-- while Discord is away, held by mutes and windows). What it says beyond the server, the process (process), the
-- trouble (reason) and when it ended (since, at): how it ended, why, whether the server answered after it, its
-- attempt and the limit, as JSON {"word", "why", "answers", "attempt", "limit"}.
ALTER TABLE events ADD COLUMN detail TEXT;
