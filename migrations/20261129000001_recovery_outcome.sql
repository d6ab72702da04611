-- What a finished recovery reached, as the guest's final `update_recovery` reports it
-- (`RecoveryOutcome`: new_timeline, last_replayed_commit, stop_lsn, duration_ms). Null while the
-- recovery runs, and for recoveries that failed or finished before this column existed.
ALTER TABLE recoveries ADD COLUMN outcome jsonb;
