-- A stable code per instance fault (`fault.error_code` in the API), so a tenant can tell
-- failures apart without `details`, which may name host paths and hold tool output and is
-- shown to admins only. Faults recorded before this migration have no code.
ALTER TABLE instance_faults ADD COLUMN error_code text;
