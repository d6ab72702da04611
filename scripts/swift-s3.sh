#!/usr/bin/env bash
# Runs a single-node OpenStack Swift on 127.0.0.1 with its S3 API (the s3api middleware), so the
# tests can talk to a real S3-compatible object store. Installs Debian's Swift and memcached if
# missing, writes its own configs and rings under a state directory, starts whatever is not running
# (on the ports picked at first start), makes sure the test bucket exists, then writes an env file
# with the S3 settings and prints its path as the last line of stdout. Progress goes to stderr.
#
#   scripts/swift-s3.sh         install if needed, start if needed, print the env file's path
#   scripts/swift-s3.sh stop    stop the processes this script started
#
# Settings: TROVE_SWIFT_DIR (state directory, default /var/tmp/trove-swift), TROVE_SWIFT_BUCKET
# (default trove-test), TROVE_SWIFT_TIMEOUT (seconds to wait for health, default 60).
# Needs root (it installs packages and starts servers that drop to the `swift` user).
set -euo pipefail

STATE=${TROVE_SWIFT_DIR:-/var/tmp/trove-swift}
BUCKET=${TROVE_SWIFT_BUCKET:-trove-test}
TIMEOUT=${TROVE_SWIFT_TIMEOUT:-60}
S3_USER=test:tester
S3_KEY=testing
REGION=us-east-1
# Swift's modules live in Debian's interpreter, not in whatever python3 comes first on PATH.
PY=/usr/bin/python3
PACKAGES=(swift swift-proxy swift-object swift-container swift-account memcached)
# Start order: memcached first (tempauth needs it), the proxy last.
COMPONENTS=(memcached account container object proxy)

ETC=$STATE/etc
RUN=$STATE/run
LOG=$STATE/log
DEV=$STATE/srv/node/d1
ENV_FILE=$STATE/env

say() { echo "swift-s3: $*" >&2; }
die() { echo "swift-s3: error: $*" >&2; exit 1; }

# --- processes ---------------------------------------------------------------------------------

# A string that must appear in the command line of the process a pid file names; guards against
# a pid reused by something else after a reboot.
marker() {
  case $1 in
    memcached) echo "memcached -l 127.0.0.1 -U 0 -p $memcached_port " ;;
    *) echo "$ETC/$1-server.conf" ;;
  esac
}

ours() { # pid component: is that pid one of our processes for the component?
  local cmdline
  cmdline=$(tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null) || return 1
  [[ $cmdline == *"$(marker "$2")"* ]]
}

alive() { # component
  local pid
  pid=$(cat "$RUN/$1.pid" 2>/dev/null) || return 1
  ours "$pid" "$1"
}

# Swift servers call setsid, so each one heads its own process group with its worker in it. A
# worker can outlive a parent killed with -9 and keep holding the port: signal the whole group,
# but only the members that are really ours.
signal_group() { # signal component
  local pid member
  pid=$(cat "$RUN/$2.pid" 2>/dev/null) || return 0
  for member in $(pgrep -g "$pid" 2>/dev/null || true); do
    if ours "$member" "$2"; then kill "-$1" "$member" 2>/dev/null || true; fi
  done
}

group_alive() { # component: any process of its group left?
  local pid member
  pid=$(cat "$RUN/$1.pid" 2>/dev/null) || return 1
  for member in $(pgrep -g "$pid" 2>/dev/null || true); do
    if ours "$member" "$1"; then return 0; fi
  done
  return 1
}

stop_component() { # component
  [ -f "$RUN/$1.pid" ] || return 0
  if group_alive "$1"; then
    say "stopping $1"
    signal_group TERM "$1"
    for _ in $(seq 1 100); do
      group_alive "$1" || break
      sleep 0.1
    done
    signal_group KILL "$1"
  fi
  rm -f "$RUN/$1.pid"
}

load_ports() {
  # shellcheck source=/dev/null
  [ -f "$STATE/ports" ] && . "$STATE/ports"
}

if [ "${1:-}" = stop ]; then
  if [ -d "$STATE" ] && load_ports; then
    for ((i = ${#COMPONENTS[@]} - 1; i >= 0; i--)); do stop_component "${COMPONENTS[i]}"; done
  fi
  exit 0
elif [ $# -gt 0 ]; then
  die "unknown argument '$1' (usage: $0 [stop])"
fi

[ "$(id -u)" = 0 ] || die "must run as root"

# --- install -----------------------------------------------------------------------------------

missing=()
for p in "${PACKAGES[@]}"; do
  [ "$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null)" = "install ok installed" ] || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  say "installing ${missing[*]}"
  mkdir -p "$LOG"
  apt_install() {
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${PACKAGES[@]}" \
      >>"$LOG/apt.log" 2>&1
  }
  # The package lists may be stale or absent: refresh them only when the install needs it.
  if ! apt_install; then
    apt-get update -q >>"$LOG/apt.log" 2>&1 || true
    apt_install || { tail -n 20 "$LOG/apt.log" >&2; die "apt-get install failed (log: $LOG/apt.log)"; }
  fi
fi
for tool in curl pgrep memcached; do
  command -v "$tool" >/dev/null || die "$tool is not installed"
done
id swift >/dev/null 2>&1 || die "the user 'swift' does not exist (the swift package creates it)"

# --- state directory ---------------------------------------------------------------------------

mkdir -p "$ETC" "$RUN" "$LOG" "$DEV"
chmod 755 "$STATE" "$ETC"

# Ports are chosen by the kernel at first start and kept, so the rings (which name the backend
# ports) and anything that remembered the endpoint stay valid across restarts.
if ! load_ports; then
  read -r proxy_port account_port container_port object_port memcached_port < <("$PY" -c '
import socket
socks = [socket.socket() for _ in range(5)]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(*(s.getsockname()[1] for s in socks))
')
  cat >"$STATE/ports.tmp" <<EOF
proxy_port=$proxy_port
account_port=$account_port
container_port=$container_port
object_port=$object_port
memcached_port=$memcached_port
EOF
  mv "$STATE/ports.tmp" "$STATE/ports"
  # Rings from an earlier life of this directory would name other ports.
  rm -f "$ETC"/*.ring.gz "$ETC"/*.builder
fi

write_env() {
  cat >"$ENV_FILE.tmp" <<EOF
TROVE_TEST_S3_ENDPOINT=http://127.0.0.1:$proxy_port
TROVE_TEST_S3_BUCKET=$BUCKET
TROVE_TEST_S3_ACCESS_KEY_ID=$S3_USER
TROVE_TEST_S3_SECRET_ACCESS_KEY=$S3_KEY
TROVE_TEST_S3_REGION=$REGION
EOF
  mv "$ENV_FILE.tmp" "$ENV_FILE"
}

healthy() { # port
  [ "$(curl -fsS --max-time 2 "http://127.0.0.1:$1/healthcheck" 2>/dev/null)" = OK ]
}

# Each parent must be alive too: a worker orphaned by a killed parent still answers, but nothing
# would restart it.
all_healthy() {
  local c
  for c in "${COMPONENTS[@]}"; do alive "$c" || return 1; done
  healthy "$account_port" && healthy "$container_port" && healthy "$object_port" \
    && healthy "$proxy_port"
}

ensure_bucket() {
  local token code
  token=$(curl -fsS --max-time 10 -o /dev/null -D - \
    -H "X-Storage-User: $S3_USER" -H "X-Storage-Pass: $S3_KEY" \
    "http://127.0.0.1:$proxy_port/auth/v1.0" 2>/dev/null \
    | tr -d '\r' | awk 'tolower($1) == "x-auth-token:" { print $2 }') || return 1
  [ -n "$token" ] || return 1
  code=$(curl -sS --max-time 10 -o /dev/null -w '%{http_code}' -X PUT -H "X-Auth-Token: $token" \
    "http://127.0.0.1:$proxy_port/v1/AUTH_test/$BUCKET" 2>/dev/null) || return 1
  [ "$code" = 201 ] || [ "$code" = 202 ]
}

# Fast path: everything already up.
if all_healthy && ensure_bucket; then
  write_env
  echo "$ENV_FILE"
  exit 0
fi

"$PY" -c 'import swift' 2>/dev/null || die "$PY cannot import swift (is python3-swift installed?)"

# The object server keeps its metadata in user xattrs.
"$PY" -c '
import os, sys
p = sys.argv[1]
os.setxattr(p, "user.trove-swift-check", b"1")
os.removexattr(p, "user.trove-swift-check")
' "$DEV" 2>/dev/null \
  || die "the filesystem under $DEV has no user xattrs, which Swift's object server needs; set TROVE_SWIFT_DIR to a directory on ext4/xfs"

# Servers drop to the swift user; it must own the device and reach the configs.
if [ -n "$(find "$STATE/srv" ! -user swift -print -quit)" ]; then
  chown -R swift:swift "$STATE/srv"
fi
runuser -u swift -- test -r "$ETC" -a -w "$DEV" \
  || die "the user swift cannot reach $STATE (a parent directory is not world-searchable?)"

# --- configuration -----------------------------------------------------------------------------

# The hash prefix/suffix place objects on disk: generated once, never changed.
if [ ! -f "$ETC/swift.conf" ]; then
  read -r hash_prefix hash_suffix < <("$PY" -c 'import secrets; print(secrets.token_hex(16), secrets.token_hex(16))')
  cat >"$ETC/swift.conf" <<EOF
[swift-hash]
swift_hash_path_prefix = $hash_prefix
swift_hash_path_suffix = $hash_suffix

[storage-policy:0]
name = Policy-0
default = yes
EOF
fi

# Swift reads swift.conf from a hard-coded /etc/swift path (swift_dir only moves the rings). This
# launcher points it at ours before the rest of Swift is imported, then runs the server the way
# Debian's /usr/bin/swift-*-server scripts do.
cat >"$STATE/swift-server.py" <<'EOF'
# usage: swift-server.py SWIFT_CONF TYPE SERVER_CONF [-v]
import sys

swift_conf, server_type = sys.argv[1], sys.argv[2]
del sys.argv[1:3]

from swift.common import utils
utils.SWIFT_CONF_FILE = swift_conf

from swift.common.wsgi import run_wsgi

kwargs = {}
if server_type == "object":
    from swift.obj import server
    kwargs["global_conf_callback"] = server.global_conf_callback
conf_file, options = utils.parse_options()
options.update(kwargs)
sys.exit(run_wsgi(conf_file, server_type + "-server", **options))
EOF

server_defaults() { # type port
  cat <<EOF
[DEFAULT]
bind_ip = 127.0.0.1
bind_port = $2
# workers = 0 would keep the server running as root; one worker drops to the swift user.
workers = 1
user = swift
swift_dir = $ETC
devices = $STATE/srv/node
mount_check = false
log_name = $1-server
EOF
}

for type in account container object; do
  port_var=${type}_port
  {
    server_defaults "$type" "${!port_var}"
    cat <<EOF

[pipeline:main]
pipeline = healthcheck $type-server

[filter:healthcheck]
use = egg:swift#healthcheck

[app:$type-server]
use = egg:swift#$type
EOF
  } >"$ETC/$type-server.conf"
done

{
  server_defaults proxy "$proxy_port"
  cat <<EOF

[pipeline:main]
# s3api must come before tempauth; slo is what makes S3 multipart uploads work, copy makes
# CopyObject work; tempauth needs the cache.
pipeline = catch_errors gatekeeper healthcheck proxy-logging cache listing_formats bulk s3api tempauth copy slo dlo versioned_writes proxy-logging proxy-server

[app:proxy-server]
use = egg:swift#proxy
account_autocreate = true

[filter:catch_errors]
use = egg:swift#catch_errors

[filter:gatekeeper]
use = egg:swift#gatekeeper

[filter:healthcheck]
use = egg:swift#healthcheck

[filter:proxy-logging]
use = egg:swift#proxy_logging

[filter:cache]
use = egg:swift#memcache
memcache_servers = 127.0.0.1:$memcached_port

[filter:listing_formats]
use = egg:swift#listing_formats

[filter:bulk]
use = egg:swift#bulk

# Path-style only (no storage_domain), no S3 ACLs; room for 10000 parts of at least 5 MiB.
[filter:s3api]
use = egg:swift#s3api
location = $REGION
s3_acl = false
max_upload_part_num = 10000
min_segment_size = 5242880

# S3 access key "test:tester", secret "testing".
[filter:tempauth]
use = egg:swift#tempauth
user_test_tester = $S3_KEY .admin

[filter:copy]
use = egg:swift#copy

# Multipart uploads become SLO manifests: allow as many segments as parts, without throttling.
[filter:slo]
use = egg:swift#slo
max_manifest_segments = 10000
rate_limit_segments_per_sec = 0

[filter:dlo]
use = egg:swift#dlo

# Swift inserts it anyway when missing; naming it keeps the log quiet.
[filter:versioned_writes]
use = egg:swift#versioned_writes
EOF
} >"$ETC/proxy-server.conf"

# One device, one replica, small part power. RingBuilder in one process is much faster than
# nine swift-ring-builder calls.
if [ ! -f "$ETC/object.ring.gz" ] || [ ! -f "$ETC/container.ring.gz" ] || [ ! -f "$ETC/account.ring.gz" ]; then
  say "building rings"
  "$PY" - "$ETC" "$account_port" "$container_port" "$object_port" <<'EOF'
import os, sys
etc = sys.argv[1]
from swift.common import utils
utils.SWIFT_CONF_FILE = os.path.join(etc, "swift.conf")
from swift.common.ring import RingBuilder

for name, port in zip(("account", "container", "object"), sys.argv[2:5]):
    builder = RingBuilder(8, 1, 1)
    builder.add_dev({"id": 0, "region": 1, "zone": 1, "ip": "127.0.0.1", "port": int(port),
                     "device": "d1", "weight": 1, "meta": ""})
    builder.rebalance()
    builder.save(os.path.join(etc, name + ".builder"))
    builder.get_ring().save(os.path.join(etc, name + ".ring.gz"))
EOF
fi

# --- start -------------------------------------------------------------------------------------

port_free() { # port
  "$PY" -c '
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1])))
' "$1" 2>/dev/null
}

# Clears what is left of a dead component and checks that its port is free, before anything starts.
prepare_component() { # component
  local port_var=${1}_port
  # Leftovers of a half-dead group (e.g. a worker whose parent was killed) still hold the port.
  signal_group KILL "$1"
  rm -f "$RUN/$1.pid"
  for _ in $(seq 1 20); do port_free "${!port_var}" && return 0; sleep 0.1; done
  die "port ${!port_var} for $1 is taken by another process; stop it or remove $STATE to pick new ports"
}

start_component() { # component
  local port_var=${1}_port user=memcache
  say "starting $1 on 127.0.0.1:${!port_var}"
  if [ "$1" = memcached ]; then
    # memcached refuses to run as root without -u.
    id "$user" >/dev/null 2>&1 || user=nobody
    setsid memcached -l 127.0.0.1 -U 0 -p "$memcached_port" -u "$user" -m 64 \
      </dev/null >>"$LOG/memcached.log" 2>&1 &
  else
    # -v: log to stdout (there is no syslog here), which goes to a file.
    PYTHONUNBUFFERED=1 setsid "$PY" "$STATE/swift-server.py" "$ETC/swift.conf" "$1" \
      "$ETC/$1-server.conf" -v </dev/null >>"$LOG/$1-server.log" 2>&1 &
  fi
  echo $! >"$RUN/$1.pid"
}

to_start=()
for c in "${COMPONENTS[@]}"; do
  alive "$c" || to_start+=("$c")
done
for c in ${to_start[@]+"${to_start[@]}"}; do prepare_component "$c"; done
for c in ${to_start[@]+"${to_start[@]}"}; do start_component "$c"; done
[ ${#to_start[@]} -gt 0 ] || say "all processes running; waiting for health"

fail() {
  for f in "$LOG"/*.log; do
    if [ ! -f "$f" ] || [ "$f" = "$LOG/apt.log" ]; then continue; fi
    echo "--- tail of $f" >&2
    tail -n 15 "$f" >&2 || true
  done
  die "$*"
}

deadline=$((SECONDS + TIMEOUT))
until all_healthy; do
  for c in "${COMPONENTS[@]}"; do alive "$c" || fail "$c exited during startup"; done
  [ $SECONDS -lt $deadline ] || fail "Swift did not become healthy within $TIMEOUT s"
  sleep 0.2
done
# The first request after start may still find a backend warming up: retry until the deadline.
until ensure_bucket; do
  [ $SECONDS -lt $deadline ] || fail "could not create the bucket $BUCKET within $TIMEOUT s"
  sleep 0.3
done

write_env
say "S3 endpoint http://127.0.0.1:$proxy_port, bucket $BUCKET"
echo "$ENV_FILE"
