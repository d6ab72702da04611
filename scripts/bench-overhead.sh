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
# Ctrl-C; if it is killed outright, the cleanup below stops the servers it had announced.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" -ne 0 ]; then
  echo "error: run as root (sudo $0 $*)" >&2
  exit 1
fi
if [ -x scripts/ensure-services.sh ]; then
  scripts/ensure-services.sh
fi
swift_env=$(scripts/swift-s3.sh | tail -n 1)
set -a
# shellcheck source=/dev/null
. "$swift_env"
set +a

command -v pgbench >/dev/null || [ -x /usr/lib/postgresql/15/bin/pgbench ] || {
  echo "error: pgbench is missing (apt-get install postgresql-contrib-15 or postgresql-15)" >&2; exit 1; }

cargo build --release -p trove-bench
bin="$(cargo metadata --format-version 1 --no-deps | jq -r .target_directory)/release/trove-bench"

log=$(mktemp /tmp/trove-bench-overhead-log.XXXXXX)
cleanup() {
  local status=$?
  trap - EXIT INT TERM
  # The binary cleans up after itself; this catches a kill -9.
  while IFS= read -r dir; do
    [ -d "$dir" ] || continue
    while IFS= read -r pid_file; do
      runuser -u postgres -- /usr/lib/postgresql/15/bin/pg_ctl -D "$(dirname "$pid_file")" \
        -m immediate -w stop >/dev/null 2>&1 || true
    done < <(find "$dir" -name postmaster.pid 2>/dev/null)
    echo "left behind: $dir" >&2
  done < <(sed -n 's/^trove-bench overhead: \(stack\|bench root\) in //p' "$log")
  rm -f "$log"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

"$bin" overhead "$@" 2> >(tee "$log" >&2)
