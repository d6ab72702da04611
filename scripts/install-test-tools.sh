#!/usr/bin/env bash
# Installs the Python tools the test suite runs into .venv-test/ (git-ignored), pinned:
# - schemathesis, the property-based OpenAPI fuzzer the e2e test
#   `openapi::the_api_survives_property_based_fuzzing` runs against a live API;
# - python-troveclient, with python-openstackclient, whose unchanged `openstack database …`
#   commands the e2e module `cli` drives against the real stack;
# - this repository's plugin clients/osc-plugin (trove-rs-osc: `openstack database instance
#   recover`, `recovery list|show`, …), which the e2e module `cli_recovery` drives. It is built
#   from a copy of the directory without build isolation and without an index, so it needs no
#   network; a hash of its files, kept in the venv, tells when it changed and must be reinstalled.
# Does nothing when those versions are already there.
set -euo pipefail
cd "$(dirname "$0")/.."

SCHEMATHESIS_VERSION=4.32.5
TROVECLIENT_VERSION=8.11.0
# What builds the plugin: setuptools' wheel builder needs `wheel` before setuptools 70.1.
SETUPTOOLS_VERSION=80.9.0
VENV=.venv-test
PLUGIN=clients/osc-plugin
PLUGIN_STAMP=$VENV/trove-rs-osc.sha256

plugin_hash() {
  (cd "$PLUGIN" && find . -type f \( -name '*.py' -o -name '*.toml' -o -name '*.md' \) \
    -not -path '*/build/*' -not -path '*.egg-info/*' -not -path '*/__pycache__/*' -print0 |
    LC_ALL=C sort -z | xargs -0 sha256sum) | sha256sum | cut -d' ' -f1
}

versions() {
  "$VENV/bin/python" -c 'import importlib.metadata as m, sys
print(" ".join(m.version(p) for p in sys.argv[1:]))' schemathesis python-troveclient setuptools 2>/dev/null
}

tools_installed() {
  [ "$(versions)" = "$SCHEMATHESIS_VERSION $TROVECLIENT_VERSION $SETUPTOOLS_VERSION" ] &&
    [ -x "$VENV/bin/openstack" ]
}

plugin_installed() {
  [ "$(cat "$PLUGIN_STAMP" 2>/dev/null)" = "$(plugin_hash)" ]
}

if tools_installed && plugin_installed; then
  exit 0
fi
command -v python3 >/dev/null || { echo "error: python3 is not installed" >&2; exit 1; }
start=$(date +%s)
if ! tools_installed; then
  echo "== installing schemathesis $SCHEMATHESIS_VERSION and python-troveclient $TROVECLIENT_VERSION into $VENV"
  [ -x "$VENV/bin/pip" ] || python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check \
    "schemathesis==$SCHEMATHESIS_VERSION" "python-troveclient==$TROVECLIENT_VERSION" \
    "setuptools==$SETUPTOOLS_VERSION"
  "$VENV/bin/schemathesis" --version
  "$VENV/bin/openstack" --version
fi
echo "== installing $PLUGIN into $VENV"
rm -f "$PLUGIN_STAMP"
hash=$(plugin_hash)
build=$(mktemp -d)
trap 'rm -rf "$build"' EXIT
cp -r "$PLUGIN/." "$build/"
# A `pip install clients/osc-plugin` run by hand leaves setuptools' build/ and egg-info in the
# tree; copied along, their older modules could win over the sources (same mtimes after cp).
rm -rf "$build/build" "$build"/*.egg-info
"$VENV/bin/pip" install --quiet --disable-pip-version-check --no-build-isolation --no-index \
  --no-deps --force-reinstall "$build"
echo "$hash" >"$PLUGIN_STAMP"
echo "== test tools installed in $(( $(date +%s) - start )) s"
