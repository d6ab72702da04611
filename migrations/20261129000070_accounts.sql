-- Databases, users, grants and root of running instances (docs/api.md, "Databases, users and
-- root").

-- What each instance's guest last reported the server holds; the API lists from here.
CREATE TABLE instance_accounts (
    instance_id uuid PRIMARY KEY REFERENCES instances(id),
    accounts    jsonb NOT NULL,
    -- The guest's clock when it read the catalog: an older report never replaces a newer one.
    sent        double precision NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- Every account change the API accepted, stored before it is sent, settled by the guest's
-- report (PENDING, then SENT once the taskmanager forwarded it, then DONE or FAILED). `op`
-- holds the change; passwords in it are sealed for the taskmanager.
CREATE TABLE account_ops (
    id          uuid PRIMARY KEY,
    instance_id uuid NOT NULL REFERENCES instances(id),
    kind        text NOT NULL,
    op          jsonb NOT NULL,
    state       text NOT NULL DEFAULT 'PENDING' CHECK (state IN ('PENDING', 'SENT', 'DONE', 'FAILED')),
    error       text,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX account_ops_pending ON account_ops (instance_id) WHERE state IN ('PENDING', 'SENT');

-- Trove's root_enabled_history: `root show` says whether root was ever enabled.
CREATE TABLE root_enabled_history (
    instance_id uuid PRIMARY KEY REFERENCES instances(id),
    enabled_at  timestamptz NOT NULL DEFAULT now()
);
