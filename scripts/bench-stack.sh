#!/usr/bin/env bash
# Runs one whole-stack benchmark of `trove-bench` (`overhead` or `rewind`, the first argument;
# the rest passes through): as root, with the services and Swift's S3 API started, the binary
# built in release mode. The binary stops its servers and removes its directories and objects at
# the end, also on error or Ctrl-C; if it is killed outright, the cleanup below stops the servers
# it had announced. Called by scripts/bench-overhead.sh and scripts/bench-rewind.sh.
set -euo pipefail
which=${1:?usage: bench-stack.sh overhead|rewind [flags]}
shift
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

log=$(mktemp /tmp/trove-bench-$which-log.XXXXXX)
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
  done < <(sed -n "s/^trove-bench $which: \\(stack\\|bench root\\) in //p" "$log")
  rm -f "$log"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

"$bin" "$which" "$@" 2> >(tee "$log" >&2)
