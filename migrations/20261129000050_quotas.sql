-- Per-project quotas (docs/api.md, "Quotas and limits"), named as Trove names them. A project
-- without a row for a resource has the API's configured default for it. Usage is not stored: it
-- is counted from the live instances and backups when a create is checked, so it is right after
-- every delete without a usage table to keep in step.
CREATE TABLE quotas (
    tenant_id  text NOT NULL,
    resource   text NOT NULL CONSTRAINT quotas_resource
        CHECK (resource IN ('instances', 'backups', 'volumes', 'ram')),
    -- -1 = unlimited, as in Trove.
    hard_limit integer NOT NULL CONSTRAINT quotas_hard_limit CHECK (hard_limit >= -1),
    created    timestamptz NOT NULL DEFAULT now(),
    updated    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, resource)
);
