-- Continuous WAL archiving: what the store holds per instance and timeline, from which the
-- recoverable window is computed; and point-in-time targets for recoveries and restores.

CREATE TABLE wal_timelines (
    instance_id     uuid NOT NULL REFERENCES instances(id),
    timeline        integer NOT NULL,
    parent_timeline integer,
    -- Where this timeline forked from its parent (from the .history file).
    switch_lsn      text,
    first_segment   text,
    last_segment    text,
    -- Missing segment ranges between first and last: [[from, to], ...].
    gaps            jsonb NOT NULL DEFAULT '[]',
    -- The last commit record safely in the store on this timeline.
    latest_commit   timestamptz,
    latest_lsn      text,
    updated         timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (instance_id, timeline)
);

-- The timeline the instance's server runs on now.
ALTER TABLE instances ADD COLUMN timeline integer;
-- For an instance restored to a point in time: {"time": ..., "latest": bool, "timeline": n, "source_instance": uuid}.
ALTER TABLE instances ADD COLUMN restore_target jsonb;

-- 'backup' (end of a backup), 'time' or 'latest'.
ALTER TABLE recoveries ADD COLUMN target_kind text NOT NULL DEFAULT 'backup';
ALTER TABLE recoveries ADD COLUMN target_timeline integer;
