-- Preview, then confirm or cancel: a recovery asked with `preview` stops before the cut-over and
-- keeps its staged copy running, paused at the target and read-only, on a port of its own, until
-- the user confirms it (cut-over as usual), cancels it, or it expires.
-- `preview`: asked as a preview; such a recovery takes one of its host's capacity slots from
--   acceptance until it is finished (the staged server is a second server on the host).
-- `preview_port`, `preview_expires_at`: set while it is ready (state PREVIEW); the address is
--   the instance's own.
-- `preview_action`: what the user (or the sweeper, on expiry) decided, `confirm` or `cancel`,
--   recorded before the taskmanager is asked to carry it out, so a redelivery finds it.
-- `cancel_reason`: why a preview was cancelled (by request, or expired).
ALTER TABLE recoveries ADD COLUMN preview boolean NOT NULL DEFAULT false;
ALTER TABLE recoveries ADD COLUMN preview_port integer;
ALTER TABLE recoveries ADD COLUMN preview_expires_at timestamptz;
ALTER TABLE recoveries ADD COLUMN preview_action text;
ALTER TABLE recoveries ADD COLUMN cancel_reason text;

-- A waiting preview holds the instance as a running recovery does: at most one of them.
DROP INDEX recoveries_one_active;
CREATE UNIQUE INDEX recoveries_one_active ON recoveries (instance_id)
    WHERE state IN ('NEW', 'RUNNING', 'PREVIEW');
-- The sweeper finds expired previews by their expiry.
CREATE INDEX recoveries_preview_expiry ON recoveries (preview_expires_at) WHERE state = 'PREVIEW';
