-- Retention of backups and WAL in the object store (docs/object-store.md, "Retention").

-- A tenant's override of the operator's policy, per instance; null = the operator's default for
-- that key. The bounds are the API's (a window of 1 s to 3650 days, 0 to 100 backups kept), so a
-- row no request could have written cannot exist either.
ALTER TABLE instances ADD COLUMN retention_window_secs bigint
    CONSTRAINT instances_retention_window_secs CHECK (retention_window_secs BETWEEN 1 AND 315360000);
ALTER TABLE instances ADD COLUMN retention_min_backups integer
    CONSTRAINT instances_retention_min_backups CHECK (retention_min_backups BETWEEN 0 AND 100);

-- When the taskmanager removed a deleted instance's backups and WAL from the store, its retention
-- having run out. Null for a live instance, and for a deleted one whose objects are still kept:
-- until then a point-in-time restore from it is allowed.
ALTER TABLE instances ADD COLUMN store_purged_at timestamptz;

-- The operator's default policy in force: the taskmanager that enforces it writes its
-- `[retention]` section here when it starts, and the API shows it. One row; the values below are
-- the built-in defaults, shown until a taskmanager has started.
CREATE TABLE retention_default (
    singleton   boolean PRIMARY KEY DEFAULT true CONSTRAINT retention_default_one_row CHECK (singleton),
    window_secs bigint NOT NULL CHECK (window_secs BETWEEN 1 AND 315360000),
    min_backups integer NOT NULL CHECK (min_backups BETWEEN 0 AND 100),
    updated     timestamptz NOT NULL DEFAULT now()
);
INSERT INTO retention_default (window_secs, min_backups) VALUES (604800, 1);
