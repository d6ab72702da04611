-- Moving a waiting preview on to a later target without starting over
-- (`POST /instances/{id}/recoveries/{rid}/move`): the recovery runs again (replaying) and waits
-- at the new target. Its target columns hold the new target.
-- `preview_moves`: how many moves were asked; the move's number travels with the message to the
--   guest and back with its reports, so a redelivered move is not applied twice and a late report
--   of an older move is ignored.
-- `moved_from`: the target before the pending move (as the API's view shows a target), put back
--   when the move fails but the preview still waits at it.
-- `preview_lsn`, `preview_commit_at`: where the waiting preview's replay paused (the LSN, and the
--   last commit replayed): a move must name a target past them.
ALTER TABLE recoveries ADD COLUMN preview_moves integer NOT NULL DEFAULT 0;
ALTER TABLE recoveries ADD COLUMN moved_from jsonb;
ALTER TABLE recoveries ADD COLUMN preview_lsn text;
ALTER TABLE recoveries ADD COLUMN preview_commit_at timestamptz;

-- A moved preview goes through `replaying`, `verifying_target` and `preview` again: each pass is
-- a round of its own (0 for the first staging, then the move's number), so the history keeps
-- every pass instead of one row per phase name.
ALTER TABLE recovery_phases ADD COLUMN round integer NOT NULL DEFAULT 0;
ALTER TABLE recovery_phases DROP CONSTRAINT recovery_phases_pkey;
ALTER TABLE recovery_phases ADD PRIMARY KEY (recovery_id, round, phase);
