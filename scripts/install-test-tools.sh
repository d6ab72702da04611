#!/usr/bin/env bash
# Installs the Python tools the test suite runs into .venv-test/ (git-ignored): schemathesis, the
# property-based OpenAPI fuzzer the e2e test `openapi::the_api_survives_property_based_fuzzing`
# runs against a live API. Pinned; does nothing when that version is already there.
set -euo pipefail
cd "$(dirname "$0")/.."

SCHEMATHESIS_VERSION=4.32.5
VENV=.venv-test

if "$VENV/bin/schemathesis" --version 2>/dev/null | grep -qx "schemathesis, version $SCHEMATHESIS_VERSION"; then
  exit 0
fi
command -v python3 >/dev/null || { echo "error: python3 is not installed" >&2; exit 1; }
echo "== installing schemathesis $SCHEMATHESIS_VERSION into $VENV"
start=$(date +%s)
python3 -m venv "$VENV"
"$VENV/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION"
"$VENV/bin/schemathesis" --version
echo "== test tools installed in $(( $(date +%s) - start )) s"
