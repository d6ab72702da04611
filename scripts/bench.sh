#!/usr/bin/env bash
# On-demand benchmark of the PostgreSQL driver against the object store: backup and restore
# throughput, RPO under pgbench load, WAL upload bytes per WAL byte, and point-in-time recovery wall
# time from the store against a local directory and against PostgreSQL alone. The store is the
# local Swift s3api that scripts/swift-s3.sh runs (started here if it is stopped). Flags pass
# through to trove-bench (crates/bench):
#   --scale N (10)  --load-secs N (30)  --runs N (3)  --clients N (4)  --keep
# Runs as root (the driver switches to the postgres OS user itself). Every server started under the
# work directory is stopped and the directory removed at the end, also on error or Ctrl-C, unless
# --keep is given.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" -ne 0 ]; then
  echo "error: run as root (sudo $0 $*)" >&2
  exit 1
fi
keep=0
for arg in "$@"; do
  case "$arg" in
    --keep) keep=1 ;;
    --workdir) echo "error: bench.sh chooses the work directory itself" >&2; exit 1 ;;
  esac
done

if [ -x scripts/ensure-services.sh ]; then
  scripts/ensure-services.sh
fi
# The S3 store (OpenStack Swift with s3api on loopback); its settings arrive as TROVE_TEST_S3_*
# variables in the env file whose path the script prints last. Objects go under a prefix of their
# own per run.
swift_env=$(scripts/swift-s3.sh | tail -n 1)
set -a
# shellcheck source=/dev/null
. "$swift_env"
set +a

command -v pgbench >/dev/null || [ -x /usr/lib/postgresql/15/bin/pgbench ] || {
  echo "error: pgbench is missing (apt-get install postgresql-contrib-15 or postgresql-15)" >&2; exit 1; }

cargo build --release -p trove-bench
bin="$(cargo metadata --format-version 1 --no-deps | jq -r .target_directory)/release/trove-bench"

workdir="/tmp/trove-bench-$(date +%Y%m%d-%H%M%S)-$$"
cleanup() {
  local status=$?
  trap - EXIT INT TERM
  if [ -d "$workdir" ]; then
    # The binary cleans up after itself; this catches a kill -9 or a panic.
    while IFS= read -r pid_file; do
      runuser -u postgres -- /usr/lib/postgresql/15/bin/pg_ctl -D "$(dirname "$pid_file")" \
        -m immediate -w stop >/dev/null 2>&1 || true
    done < <(find "$workdir" -name postmaster.pid 2>/dev/null)
    if [ "$keep" = 1 ]; then
      echo "kept $workdir" >&2
    else
      rm -rf "$workdir"
    fi
  fi
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

"$bin" --workdir "$workdir" "$@"
