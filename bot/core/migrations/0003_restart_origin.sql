-- 3: where a restart was asked for (discord, cli, automatic): restarts made with `poracle-bot restart` are
-- audited too. Every restart recorded before this came from Discord.
ALTER TABLE restarts ADD COLUMN origin TEXT NOT NULL DEFAULT 'discord';
