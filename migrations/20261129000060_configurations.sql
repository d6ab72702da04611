-- Configuration groups, flavor and volume resize (docs/configuration-groups.md).

-- A tenant's named set of parameter overrides for one datastore version (Trove's
-- `configurations`). Deleting one only marks it, as Trove does.
CREATE TABLE configurations (
    id                   uuid PRIMARY KEY,
    name                 text NOT NULL,
    description          text,
    tenant_id            text NOT NULL,
    datastore_version_id uuid NOT NULL REFERENCES datastore_versions(id),
    created              timestamptz NOT NULL DEFAULT now(),
    updated              timestamptz NOT NULL DEFAULT now(),
    deleted              boolean NOT NULL DEFAULT false,
    deleted_at           timestamptz
);
CREATE INDEX configurations_tenant ON configurations (tenant_id) WHERE NOT deleted;

-- The values of a group (Trove's `configuration_parameters`), keyed by lowercase name; the value
-- is the JSON the client sent, already checked against the datastore's rule set.
CREATE TABLE configuration_parameters (
    configuration_id uuid NOT NULL REFERENCES configurations(id),
    key              text NOT NULL,
    value            jsonb NOT NULL,
    PRIMARY KEY (configuration_id, key)
);

-- The group attached to an instance, if any. `configuration_revision` counts changes of what the
-- instance should run (attach, detach, the group's values); the guest's report names the
-- revision it applied, so a late report for an older revision settles nothing.
ALTER TABLE instances ADD COLUMN configuration_id uuid REFERENCES configurations(id);
ALTER TABLE instances ADD COLUMN configuration_revision bigint NOT NULL DEFAULT 0;
ALTER TABLE instances ADD COLUMN configuration_applied bigint NOT NULL DEFAULT 0;
CREATE INDEX instances_configuration ON instances (configuration_id) WHERE NOT deleted;

-- A flavor resize in flight: the flavor the instance gets once the guest reports it running
-- with that flavor's memory settings.
ALTER TABLE instances ADD COLUMN resize_flavor_id text REFERENCES flavors(id);

-- Bytes the instance's data directory uses, as the guest last measured it (`volume.used`).
ALTER TABLE instances ADD COLUMN volume_used_bytes bigint;
