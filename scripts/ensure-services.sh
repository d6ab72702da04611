#!/usr/bin/env bash
# Starts the local PostgreSQL and RabbitMQ if they are installed but stopped, then waits until
# both accept connections. Used by the demo and the test command.
set -euo pipefail

wait_for() { # what, command...
  local what=$1; shift
  for _ in $(seq 1 60); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 1
  done
  echo "error: $what did not come up within 60 s" >&2
  return 1
}

if ! pg_isready -h 127.0.0.1 -p 5432 >/dev/null 2>&1; then
  echo "== starting PostgreSQL"
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start
fi
wait_for "PostgreSQL on 127.0.0.1:5432" pg_isready -h 127.0.0.1 -p 5432

if ! rabbitmqctl -q status >/dev/null 2>&1; then
  echo "== starting RabbitMQ"
  rabbitmq-server -detached
fi
wait_for "RabbitMQ" rabbitmqctl -q await_startup
wait_for "RabbitMQ on 127.0.0.1:5672" bash -c 'exec 3<>/dev/tcp/127.0.0.1/5672'

for tool in runuser zstd tar psql curl jq; do
  command -v "$tool" >/dev/null || { echo "error: $tool is not installed (apt-get install it)" >&2; exit 1; }
done
[ -x /usr/lib/postgresql/15/bin/pg_basebackup ] || {
  echo "error: PostgreSQL 15 server binaries are missing (apt-get install postgresql-15)" >&2; exit 1; }
id postgres >/dev/null 2>&1 || { echo "error: the OS user postgres does not exist" >&2; exit 1; }
