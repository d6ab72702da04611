-- Guest hosts are registered by an operator (`trove-manage host-add`), not by their own
-- heartbeats. `broker_user` is the RabbitMQ user issued to the host: the conductor takes a
-- report's sender from the broker-validated `user_id` of the message and maps it to a host through
-- this column, never from a field the sender fills in. `capacity` is only what the operator
-- registered. A removed host keeps its row (instances still reference it) with `enabled = false`
-- and no broker user. `last_heartbeat` is null until the host's first heartbeat.
ALTER TABLE guest_hosts ADD COLUMN broker_user text UNIQUE;
ALTER TABLE guest_hosts ADD COLUMN enabled boolean NOT NULL DEFAULT true;
ALTER TABLE guest_hosts ALTER COLUMN last_heartbeat DROP NOT NULL;
