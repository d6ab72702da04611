#!/usr/bin/env bash
# On-demand benchmark of trove-api's reads: throughput and latency (p50/p99/max) of
# GET /instances/{id} and GET /instances (pages of 100) under 32 concurrent clients, against a real
# trove-api (in the benchmark's process, on a loopback socket) on a control database of its own
# (created on the local PostgreSQL, seeded with instance rows, dropped at the end). RabbitMQ must
# run: the API connects to it at start. Flags pass through to `trove-bench api`:
#   --clients N (32)  --secs N (10, measured per scenario after a 2 s warm-up)  --instances N (200)
# Needs no root. Not part of the test suite.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ -x scripts/ensure-services.sh ]; then
  scripts/ensure-services.sh
fi
cargo build --release -p trove-bench
bin="$(cargo metadata --format-version 1 --no-deps | jq -r .target_directory)/release/trove-bench"
"$bin" api "$@"
