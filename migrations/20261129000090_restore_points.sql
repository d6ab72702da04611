-- Recovery targets beyond a time and "latest" (issue 10): a WAL position, or a transaction.
-- target_kind gains 'lsn' (target_lsn, 'X/Y' as PostgreSQL prints it) and 'xid' (target_xid, a
-- 32-bit transaction id, with target_inclusive: stop after it (true) or just before it (false)).
ALTER TABLE recoveries ADD COLUMN target_lsn text;
ALTER TABLE recoveries ADD COLUMN target_xid bigint;
ALTER TABLE recoveries ADD COLUMN target_inclusive boolean;
