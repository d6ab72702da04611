#!/usr/bin/env bash
# Runs every test: unit tests, the PostgreSQL driver tests and the end-to-end tests, on the real
# RabbitMQ and PostgreSQL (started here if they are stopped), with the API fuzzer installed.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/ensure-services.sh
scripts/install-test-tools.sh
# A local S3-compatible store (Swift with s3api) for the backup tests; its settings arrive as
# TROVE_TEST_S3_* variables in the env file whose path the script prints last.
swift_env=$(scripts/swift-s3.sh | tail -n 1)
set -a
# shellcheck source=/dev/null
. "$swift_env"
set +a
if cargo nextest --version >/dev/null 2>&1; then
  exec cargo nextest run --workspace --no-fail-fast "$@"
else
  exec cargo test --workspace --no-fail-fast "$@"
fi
