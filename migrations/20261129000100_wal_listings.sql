-- The accident listing (issue 10): each request for what happened in an instance's WAL between
-- two times is a row, NEW until the taskmanager hands it to the guest (SENT), then COMPLETED with
-- the guest's listing in `result` or FAILED with `error`. The API waits a bounded time for it and
-- answers from the row; a repeated identical request joins the row while it runs.
CREATE TABLE wal_listings (
    id          uuid PRIMARY KEY,
    instance_id uuid NOT NULL REFERENCES instances (id),
    tenant_id   text NOT NULL,
    since       timestamptz NOT NULL,
    until       timestamptz NOT NULL,
    kind        text,
    relation    text,
    state       text NOT NULL DEFAULT 'NEW' CHECK (state IN ('NEW', 'SENT', 'COMPLETED', 'FAILED')),
    result      jsonb,
    error       text,
    created     timestamptz NOT NULL DEFAULT now(),
    updated     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX wal_listings_instance_idx ON wal_listings (instance_id, created);
