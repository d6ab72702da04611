-- The control database. Table and column names follow Trove's where Trove has them.

CREATE TABLE datastores (
    id                 uuid PRIMARY KEY,
    name               text NOT NULL UNIQUE,
    default_version_id uuid
);

CREATE TABLE datastore_versions (
    id           uuid PRIMARY KEY,
    datastore_id uuid NOT NULL REFERENCES datastores(id),
    name         text NOT NULL,
    version      text NOT NULL,
    manager      text NOT NULL,
    packages     text NOT NULL DEFAULT '',
    image_id     text,
    active       boolean NOT NULL DEFAULT true,
    CONSTRAINT ds_versions UNIQUE (datastore_id, name, version)
);

CREATE TABLE flavors (
    id        text PRIMARY KEY,
    name      text NOT NULL UNIQUE,
    ram       integer NOT NULL,
    vcpus     integer NOT NULL,
    disk      integer NOT NULL,
    ephemeral integer NOT NULL DEFAULT 0
);

-- Hosts that run guest agents; an instance is placed on one of them.
CREATE TABLE guest_hosts (
    id             text PRIMARY KEY,
    address        text NOT NULL,
    capacity       integer NOT NULL,
    last_heartbeat timestamptz NOT NULL,
    created        timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE instances (
    id                   uuid PRIMARY KEY,
    name                 text NOT NULL,
    tenant_id            text NOT NULL,
    flavor_id            text NOT NULL REFERENCES flavors(id),
    datastore_version_id uuid NOT NULL REFERENCES datastore_versions(id),
    volume_size          integer,
    task_id              integer NOT NULL,
    task_description     text NOT NULL,
    task_start_time      timestamptz,
    -- When a silent task turns into an error (swept by the taskmanager).
    task_deadline        timestamptz,
    host                 text REFERENCES guest_hosts(id),
    address              text,
    port                 integer,
    access               jsonb,
    region_id            text NOT NULL DEFAULT 'RegionOne',
    restored_from_backup uuid,
    created              timestamptz NOT NULL DEFAULT now(),
    updated              timestamptz NOT NULL DEFAULT now(),
    deleted              boolean NOT NULL DEFAULT false,
    deleted_at           timestamptz
);
CREATE INDEX instances_tenant_id ON instances (tenant_id) WHERE NOT deleted;
CREATE INDEX instances_host ON instances (host) WHERE NOT deleted;

CREATE TABLE service_statuses (
    id                 uuid PRIMARY KEY,
    instance_id        uuid NOT NULL UNIQUE REFERENCES instances(id),
    status_id          integer NOT NULL,
    status_description text NOT NULL,
    -- The heartbeat clock.
    updated_at         timestamptz NOT NULL DEFAULT now()
);

-- Orders guest messages per instance and method, as Trove's conductor does.
CREATE TABLE conductor_lastseen (
    instance_id uuid NOT NULL,
    method_name text NOT NULL,
    sent        double precision NOT NULL,
    PRIMARY KEY (instance_id, method_name)
);

CREATE TABLE backups (
    id                   uuid PRIMARY KEY,
    name                 text NOT NULL,
    description          text,
    location             text,
    backup_type          text NOT NULL DEFAULT 'full',
    size                 double precision,
    checksum             text,
    tenant_id            text NOT NULL,
    state                text NOT NULL,
    instance_id          uuid REFERENCES instances(id),
    parent_id            uuid REFERENCES backups(id),
    datastore_version_id uuid REFERENCES datastore_versions(id),
    storage_driver       text NOT NULL DEFAULT 'local',
    start_lsn            text,
    stop_lsn             text,
    stop_time            timestamptz,
    timeline             integer,
    error                text,
    deadline             timestamptz,
    created              timestamptz NOT NULL DEFAULT now(),
    updated              timestamptz NOT NULL DEFAULT now(),
    deleted              boolean NOT NULL DEFAULT false,
    deleted_at           timestamptz
);
CREATE INDEX backups_instance_id ON backups (instance_id) WHERE NOT deleted;
CREATE INDEX backups_tenant_id ON backups (tenant_id) WHERE NOT deleted;

CREATE TABLE recoveries (
    id           uuid PRIMARY KEY,
    instance_id  uuid NOT NULL REFERENCES instances(id),
    backup_id    uuid NOT NULL REFERENCES backups(id),
    target_time  timestamptz,
    state        text NOT NULL,
    phase        text NOT NULL,
    progress     jsonb,
    error        text,
    deadline     timestamptz NOT NULL,
    created      timestamptz NOT NULL DEFAULT now(),
    updated      timestamptz NOT NULL DEFAULT now(),
    finished     timestamptz
);
-- At most one unfinished recovery per instance, whatever races the API loses.
CREATE UNIQUE INDEX recoveries_one_active ON recoveries (instance_id)
    WHERE state IN ('NEW', 'RUNNING');

CREATE TABLE instance_faults (
    id          uuid PRIMARY KEY,
    instance_id uuid NOT NULL REFERENCES instances(id) ON DELETE CASCADE,
    message     text NOT NULL,
    details     text NOT NULL,
    created     timestamptz NOT NULL DEFAULT now(),
    updated     timestamptz NOT NULL DEFAULT now(),
    deleted     boolean NOT NULL DEFAULT false,
    deleted_at  timestamptz
);
CREATE INDEX instance_faults_instance ON instance_faults (instance_id, created DESC);

-- Transactional outbox: a message is written in the same transaction as the state it
-- belongs to, published after commit, and re-published by the sweeper if that failed.
CREATE TABLE outbox (
    id         bigserial PRIMARY KEY,
    topic      text NOT NULL,
    body       bytea NOT NULL,
    method     text NOT NULL,
    created    timestamptz NOT NULL DEFAULT now(),
    attempts   integer NOT NULL DEFAULT 0,
    next_try   timestamptz NOT NULL DEFAULT now()
);
