#!/usr/bin/env bash
# On-demand benchmark of rewind: a recovery in place to a time inside the rewind window (from the
# delayed copy, replaying only the gap) through the API, against a full restore from the base
# backup through the API and PostgreSQL alone restoring the same backup and replaying the same
# WAL; and what keeping the copy costs (build time, disk, CPU idle and under load). The whole
# stack runs inside `trove-bench rewind` on the real RabbitMQ, the control PostgreSQL and the
# object store the tests use (Swift's S3 API on loopback, started by scripts/swift-s3.sh).
# Flags pass through:
#   --scale N (100, about 1.5 GB)  --load-secs N (30)  --window-minutes N (30)  --clients N (4)
#   --poll-ms N (10)
# Runs as root. The binary stops its servers and removes its directories and objects at the end,
# also on error or Ctrl-C; if it is killed outright, the cleanup below stops what it announced.
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

log=$(mktemp /tmp/trove-bench-rewind-log.XXXXXX)
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
  done < <(sed -n 's/^trove-bench rewind: \(stack\|bench root\) in //p' "$log")
  rm -f "$log"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

"$bin" rewind "$@" 2> >(tee "$log" >&2)
