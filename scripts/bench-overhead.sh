#!/usr/bin/env bash
# On-demand benchmark of the control plane's overhead on a point-in-time recovery in place: the
# whole stack (trove-api, the taskmanager with its conductor, the guest agent) runs inside
# `trove-bench overhead` on the real RabbitMQ, the control PostgreSQL and the object store the
# tests use (Swift's S3 API on loopback, started by scripts/swift-s3.sh if it is stopped). It
# creates an instance, loads pgbench data, backs it up and writes more through the API, then
# recovers the same backup and WAL to the same target through the API, by the driver alone and
# by PostgreSQL alone, run by run in rotating order. Flags pass through:
#   --scale N (10)  --load-secs N (20)  --runs N (3)  --clients N (4)  --poll-ms N (10)
# Runs as root (the guest agent and the driver switch to the postgres OS user themselves). The
# binary stops its servers and removes its directories and objects at the end, also on error or
# Ctrl-C; if it is killed outright, scripts/bench-stack.sh stops the servers it had announced.
exec "$(dirname "$0")/bench-stack.sh" overhead "$@"
