-- Every phase a recovery went through, with when it started and ended, so its history shows
-- where the time went (`GET /instances/{id}/recoveries`). One row per (recovery, phase): a
-- redelivered report finds its row already there. `rank` is the phase's place in the order a
-- recovery moves through; the conductor ignores a report of a phase that ranks below the newest
-- recorded one, so an out-of-order report cannot reopen a phase.
-- `first_progress`/`first_progress_at` keep the first progress reported in the phase: the base
-- from which the time left is estimated (rate = progress since then / time since then).
CREATE TABLE recovery_phases (
    recovery_id       uuid NOT NULL REFERENCES recoveries(id) ON DELETE CASCADE,
    phase             text NOT NULL,
    rank              integer NOT NULL,
    started_at        timestamptz NOT NULL DEFAULT now(),
    ended_at          timestamptz,
    first_progress    jsonb,
    first_progress_at timestamptz,
    PRIMARY KEY (recovery_id, phase)
);

-- The stable code of a failed recovery (the guest's, or the control plane's own), as the
-- instance's fault carries it. Null while it runs, when it completed, and for recoveries that
-- failed before this column existed.
ALTER TABLE recoveries ADD COLUMN error_code text;
