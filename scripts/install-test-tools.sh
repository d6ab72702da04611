#!/usr/bin/env bash
# Installs the Python tools the test suite runs into .venv-test/ (git-ignored), pinned:
# - schemathesis, the property-based OpenAPI fuzzer the e2e test
#   `openapi::the_api_survives_property_based_fuzzing` runs against a live API;
# - python-troveclient, with python-openstackclient, whose unchanged `openstack database …`
#   commands the e2e module `cli` drives against the real stack.
# Does nothing when those versions are already there.
set -euo pipefail
cd "$(dirname "$0")/.."

SCHEMATHESIS_VERSION=4.32.5
TROVECLIENT_VERSION=8.11.0
VENV=.venv-test

installed() {
  "$VENV/bin/schemathesis" --version 2>/dev/null | grep -qx "schemathesis, version $SCHEMATHESIS_VERSION" &&
    "$VENV/bin/pip" show python-troveclient 2>/dev/null | grep -qx "Version: $TROVECLIENT_VERSION" &&
    [ -x "$VENV/bin/openstack" ]
}

if installed; then
  exit 0
fi
command -v python3 >/dev/null || { echo "error: python3 is not installed" >&2; exit 1; }
echo "== installing schemathesis $SCHEMATHESIS_VERSION and python-troveclient $TROVECLIENT_VERSION into $VENV"
start=$(date +%s)
[ -x "$VENV/bin/pip" ] || python3 -m venv "$VENV"
"$VENV/bin/pip" install --quiet --disable-pip-version-check \
  "schemathesis==$SCHEMATHESIS_VERSION" "python-troveclient==$TROVECLIENT_VERSION"
"$VENV/bin/schemathesis" --version
"$VENV/bin/openstack" --version
echo "== test tools installed in $(( $(date +%s) - start )) s"
