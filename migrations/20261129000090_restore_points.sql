-- Recovery targets beyond a time and "latest" (issue 10): a WAL position, or a transaction.
-- target_kind gains 'lsn' (target_lsn, 'X/Y' as PostgreSQL prints it) and 'xid' (target_xid, a
-- 32-bit transaction id, with target_inclusive: stop after it (true) or just before it (false)).
ALTER TABLE recoveries ADD COLUMN target_lsn text;
ALTER TABLE recoveries ADD COLUMN target_xid bigint;
ALTER TABLE recoveries ADD COLUMN target_inclusive boolean;

-- Named restore points (pg_create_restore_point) of an instance, created through the guest. A row
-- is NEW until the guest reports the point's LSN, time and timeline (COMPLETED) or its failure
-- (FAILED). The WAL record itself is in the shipped WAL; a JSON copy of each row also sits under
-- the instance's WAL prefix in the object store.
CREATE TABLE restore_points (
    id          uuid PRIMARY KEY,
    instance_id uuid NOT NULL REFERENCES instances (id),
    tenant_id   text NOT NULL,
    name        text NOT NULL,
    state       text NOT NULL DEFAULT 'NEW',
    lsn         text,
    timeline    integer,
    point_time  timestamptz,
    error       text,
    created     timestamptz NOT NULL DEFAULT now(),
    updated     timestamptz NOT NULL DEFAULT now(),
    -- Recovery finds a restore point by its name; PostgreSQL stops at the first of equal names.
    CONSTRAINT restore_points_instance_name_key UNIQUE (instance_id, name)
);

-- A recovery to a restore point: target_kind 'restore_point', target_name, and target_lsn where the
-- point's record ends.
ALTER TABLE recoveries ADD COLUMN target_name text;
