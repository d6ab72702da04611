-- Rewind (issue 10): an instance may keep a delayed copy on its host, rewind_window_secs behind
-- the primary (0: none). rewind_status is what its guest last reported of the copy (a
-- trove_common::rewind::RewindStatus as JSON), rewind_reported_at when.
ALTER TABLE instances ADD COLUMN rewind_window_secs integer NOT NULL DEFAULT 0
    CHECK (rewind_window_secs >= 0);
ALTER TABLE instances ADD COLUMN rewind_status jsonb;
ALTER TABLE instances ADD COLUMN rewind_reported_at timestamptz;
