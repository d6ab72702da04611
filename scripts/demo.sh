#!/usr/bin/env bash
# The main job, end to end on this machine: build, start the services and the three daemons,
# then create an instance, write data, back it up, damage it, recover it in place, and show that
# the rows are back; then recover it to a point in time between two commits, find an accident in
# the WAL and undo it, and undo another one from a delayed copy (rewind). Every step prints
# what it does. KEEP=1 leaves the stack running afterwards.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
VAR=$ROOT/var/demo
PORT=${TROVE_DEMO_PORT:-8779}
API=http://127.0.0.1:$PORT/v1.0/demo
TOKEN=demo-token
VHOST=trove-demo
DB=trove_demo

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
api() { # method path [json]
  local out; out=$(curl -sS -X "$1" "$API$2" -H "X-Auth-Token: $TOKEN" -H 'Content-Type: application/json' ${3:+-d "$3"} -w '\n%{http_code}')
  HTTP_STATUS=${out##*$'\n'}; BODY=${out%$'\n'*}
}
show() { echo "$BODY" | jq "${1:-.}"; }

step "checking PostgreSQL and RabbitMQ"
scripts/ensure-services.sh

step "building trove-rs"
cargo build --workspace --bins --quiet
BIN=${CARGO_TARGET_DIR:-$ROOT/target}/debug

if curl -s "http://127.0.0.1:$PORT/" >/dev/null 2>&1; then
  echo "error: port $PORT is in use; set TROVE_DEMO_PORT to a free port" >&2; exit 1
fi

step "resetting the demo's control database ($DB), vhost ($VHOST) and files ($VAR)"
stop_managed() {
  for d in "$VAR"/instances/*/data "$VAR"/instances/*/data.staging "$VAR"/instances/*/data.rewind; do
    [ -f "$d/postmaster.pid" ] && runuser -u postgres -- /usr/lib/postgresql/15/bin/pg_ctl -D "$d" -m fast -w stop >/dev/null 2>&1 || true
  done
}
stop_managed
rm -rf "$VAR"; mkdir -p "$VAR/logs" "$VAR/instances"; chmod 0755 "$ROOT/var" "$VAR"
psql -h 127.0.0.1 -U postgres -d postgres -qc "DROP DATABASE IF EXISTS $DB WITH (FORCE)" -c "CREATE DATABASE $DB"
rabbitmqctl -q delete_vhost "$VHOST" >/dev/null 2>&1 || true
rabbitmqctl -q add_vhost "$VHOST" >/dev/null
# The control plane's broker user (here the local `guest`); the guest host gets its own below.
rabbitmqctl -q set_permissions -p "$VHOST" guest '.*' '.*' '.*' >/dev/null
echo "{\"$TOKEN\": {\"project_id\": \"demo\", \"roles\": [\"member\"], \"user\": \"demo\"}}" > "$VAR/tokens.json"

export TROVE_DATABASE_URL=postgres://postgres@127.0.0.1:5432/$DB
AMQP_URL=amqp://guest:guest@127.0.0.1:5672/$VHOST
step "trove-manage db-sync && trove-manage bootstrap"
"$BIN/trove-manage" db-sync
"$BIN/trove-manage" bootstrap

step "trove-manage host-add demo-host: the guest host's own broker user, capacity 10"
# The password goes to a 0600 file the guest agent reads (amqp.password_file).
"$BIN/trove-manage" --vhost "$VHOST" host-add demo-host --capacity 10 --credentials-out "$VAR/guest-amqp.secret"
ls -l "$VAR/guest-amqp.secret"

step "trove-manage keygen: the taskmanager's key pair (passwords travel sealed for it)"
mkdir -p "$VAR/keys"; chmod 0700 "$VAR/keys"
TM_PUBLIC_KEY=$("$BIN/trove-manage" keygen --out "$VAR/keys/taskmanager.key")
echo "   private key $VAR/keys/taskmanager.key (mode $(stat -c %a "$VAR/keys/taskmanager.key")), public key $TM_PUBLIC_KEY"
echo "   (the guest agent makes its own key pair at first start and reports the public key in its heartbeat)"

step "starting trove-api (:$PORT), trove-taskmanager and trove-guestagent; logs in $VAR/logs"
PIDS=()
cleanup() {
  if [ "${KEEP:-0}" = 1 ]; then
    echo; echo "KEEP=1: daemons still running (pids ${PIDS[*]}); stop them with: kill ${PIDS[*]}"; return
  fi
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  stop_managed
}
trap cleanup EXIT
TROVE_API__LISTEN=127.0.0.1:$PORT TROVE_API__TOKEN_FILE=$VAR/tokens.json TROVE_API__TASKMANAGER_PUBLIC_KEY=$TM_PUBLIC_KEY \
  TROVE_API__DATABASE__URL=$TROVE_DATABASE_URL TROVE_API__AMQP__URL=$AMQP_URL \
  "$BIN/trove-api" >"$VAR/logs/api.log" 2>&1 & PIDS+=($!)
TROVE_TASKMANAGER__STORE__PATH=$VAR/store TROVE_TASKMANAGER__DATABASE__URL=$TROVE_DATABASE_URL \
  TROVE_TASKMANAGER__AMQP__URL=$AMQP_URL TROVE_TASKMANAGER__SECRET_KEY_FILE=$VAR/keys/taskmanager.key \
  "$BIN/trove-taskmanager" >"$VAR/logs/taskmanager.log" 2>&1 & PIDS+=($!)
TROVE_GUEST__HOST=demo-host TROVE_GUEST__DATA_ROOT=$VAR/instances TROVE_GUEST__STORE__PATH=$VAR/store \
  TROVE_GUEST__HEARTBEAT_INTERVAL_MS=1000 TROVE_GUEST__AMQP__URL=amqp://trove-host-demo-host@127.0.0.1:5672/$VHOST \
  TROVE_GUEST__AMQP__PASSWORD_FILE=$VAR/guest-amqp.secret TROVE_GUEST__SECRET_KEY_FILE=$VAR/keys/guest.key \
  "$BIN/trove-guestagent" >"$VAR/logs/guestagent.log" 2>&1 & PIDS+=($!)
for _ in $(seq 1 60); do curl -s "http://127.0.0.1:$PORT/" >/dev/null && break; sleep 0.5; done
curl -sS "http://127.0.0.1:$PORT/" | jq -c .
# New instances go to a registered host only once its agent has reported in.
for _ in $(seq 1 60); do
  [ "$(psql "$TROVE_DATABASE_URL" -Atc "SELECT last_heartbeat IS NOT NULL FROM guest_hosts WHERE id = 'demo-host'")" = t ] && break
  sleep 0.5
done
"$BIN/trove-manage" host-list

wait_instance() { # id status operating
  for _ in $(seq 1 240); do
    api GET "/instances/$1"
    local s o; s=$(echo "$BODY" | jq -r .instance.status); o=$(echo "$BODY" | jq -r .instance.operating_status)
    if [ "$s" != "${LAST_SEEN:-}" ]; then echo "   status: $s ${o:+/ $o}$(echo "$BODY" | jq -r 'if .instance.recovery then " (phase: \(.instance.recovery.phase))" else "" end')"; LAST_SEEN=$s; fi
    [ "$s" = "$2" ] && [ "$o" = "$3" ] && return 0
    [ "$s" = ERROR ] && { show .instance; return 1; }
    sleep 0.25
  done
  echo "timed out waiting for $2/$3" >&2; return 1
}

step "POST /instances: a PostgreSQL 15 instance with database appdb and user app"
api POST /instances '{"instance": {"name": "demo-pg", "flavorRef": "1", "volume": {"size": 1},
  "datastore": {"type": "postgresql", "version": "15"},
  "databases": [{"name": "appdb"}],
  "users": [{"name": "app", "password": "demo-secret", "databases": [{"name": "appdb"}]}]}}'
echo "   HTTP $HTTP_STATUS"; show '.instance | {id, name, status}'
ID=$(echo "$BODY" | jq -r .instance.id)
wait_instance "$ID" ACTIVE HEALTHY
api GET "/instances/$ID"; show '.instance.addresses'
PGHOST=$(echo "$BODY" | jq -r '.instance.addresses[0].address'); PGPORT=$(echo "$BODY" | jq -r '.instance.addresses[0].port')
sql() { PGPASSWORD=demo-secret psql "host=$PGHOST port=$PGPORT user=app dbname=appdb" -v ON_ERROR_STOP=1 -q "$@"; }

step "writing data over TCP as app@appdb"
sql -c "CREATE TABLE orders (id int PRIMARY KEY, item text, qty int)" \
    -c "INSERT INTO orders VALUES (1, 'apples', 3), (2, 'pears', 5), (3, 'plums', 7)" \
    -c "CREATE TABLE customers (name text)" -c "INSERT INTO customers VALUES ('ada'), ('grace')"
sql -c "SELECT * FROM orders ORDER BY id"

step "POST /backups"
api POST /backups "{\"backup\": {\"name\": \"before-the-accident\", \"instance\": \"$ID\", \"incremental\": 0}}"
echo "   HTTP $HTTP_STATUS"; BID=$(echo "$BODY" | jq -r .backup.id)
for _ in $(seq 1 240); do api GET "/backups/$BID"; [ "$(echo "$BODY" | jq -r .backup.status)" = COMPLETED ] && break; sleep 0.25; done
show '.backup | {id, status, size, locationRef, checksum, stop_time}'

step "damaging the data: update, delete, insert, drop"
sql -c "UPDATE orders SET qty = 0" -c "DELETE FROM orders WHERE id = 2" -c "INSERT INTO orders VALUES (99, 'oops', 1)" \
    -c "DROP TABLE customers"
sql -c "SELECT * FROM orders ORDER BY id" -c "\\dt"

step "POST /instances/$ID/recover from backup $BID"
START=$(date +%s%N)
api POST "/instances/$ID/recover" "{\"recovery\": {\"instance\": \"$ID\", \"backup\": \"$BID\"}}"
echo "   HTTP $HTTP_STATUS"; show
LAST_SEEN=
wait_instance "$ID" ACTIVE HEALTHY
echo "   recovered in $(( ($(date +%s%N) - START) / 1000000 )) ms (from the request to ACTIVE/HEALTHY)"

step "the rows are back"
sql -c "SELECT * FROM orders ORDER BY id" -c "SELECT * FROM customers"
ROWS=$(sql -At -c "SELECT string_agg(id || ':' || item || ':' || qty, ',' ORDER BY id) FROM orders")
CUSTOMERS=$(sql -At -c "SELECT string_agg(name, ',' ORDER BY name) FROM customers")
if [ "$ROWS" = "1:apples:3,2:pears:5,3:plums:7" ] && [ "$CUSTOMERS" = "ada,grace" ]; then
  echo "OK: the instance holds exactly the backup's rows"
else
  echo "FAILED: unexpected rows $ROWS" >&2; exit 1
fi

now_utc() { sql -At -c "SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')"; }
wait_window_past() { # time: until the store holds a commit after it
  for _ in $(seq 1 120); do
    api GET "/instances/$ID/recovery-window"
    LATEST=$(echo "$BODY" | jq -r '.recovery_window.latest // empty')
    [ -n "$LATEST" ] && [[ "$LATEST" > "$1" ]] && return 0
    sleep 0.25
  done
}
recover_and_check() { # recovery-json jq-view expected-events what-ok
  START=$(date +%s%N)
  api POST "/instances/$ID/recover" "{\"recovery\": $1}"
  echo "   HTTP $HTTP_STATUS"; show ".recovery | $2"
  [ "$HTTP_STATUS" = 202 ] || exit 1
  LAST_SEEN=
  wait_instance "$ID" ACTIVE HEALTHY
  echo "   recovered in $(( ($(date +%s%N) - START) / 1000000 )) ms (from the request to ACTIVE/HEALTHY)"
  sql -c "SELECT * FROM events ORDER BY id"
  EVENTS=$(sql -At -c "SELECT string_agg(id::text, ',' ORDER BY id) FROM events")
  if [ "$EVENTS" = "$3" ]; then
    echo "OK: $4"
  else
    echo "FAILED: unexpected events $EVENTS" >&2; exit 1
  fi
}

step "point in time: ten events, one every 200 ms, while WAL streams to the store"
sql -c "CREATE TABLE events (id int PRIMARY KEY, at timestamptz DEFAULT clock_timestamp())"
for i in $(seq 1 10); do
  sql -c "INSERT INTO events (id) VALUES ($i)"
  # The moment right after event 5 committed is the point we will go back to.
  [ "$i" = 5 ] && TARGET=$(now_utc)
  sleep 0.2
done
sql -c "SELECT * FROM events ORDER BY id"
echo "   target: $TARGET (after event 5, before event 6)"
wait_window_past "$TARGET"
echo "   GET /instances/$ID/recovery-window"; show '.recovery_window | {earliest, latest, timeline, lineage}'

step "POST /instances/$ID/recover to $TARGET"
recover_and_check "{\"point_in_time\": \"$TARGET\"}" '{status, point_in_time, recovered_from_backup, timeline}' \
  "1,2,3,4,5" "exactly the events committed before $TARGET"

step "find the accident: two more events, then someone deletes every event, then one more insert"
SINCE=$(now_utc)
sql -c "INSERT INTO events (id) VALUES (6)" -c "INSERT INTO events (id) VALUES (7)"
sql -c "DELETE FROM events" -c "INSERT INTO events (id) VALUES (100)"
AFTER=$(now_utc)
sql -c "SELECT * FROM events ORDER BY id"
wait_window_past "$AFTER"
echo "   GET /instances/$ID/transactions?since=$SINCE (what the WAL says happened since then)"
for _ in $(seq 1 60); do
  api GET "/instances/$ID/transactions?since=$SINCE"
  [ "$HTTP_STATUS" = 200 ] && [ "$(echo "$BODY" | jq '[.listing.transactions[].changes[] | select(.kind == "DELETE")] | length')" -ge 1 ] && break
  sleep 0.5
done
show '.listing.transactions[] | {xid, commit_time, changes: [.changes[] | "\(.kind) \(.relation) \(.rows // "")"], undo}'
UNDO=$(echo "$BODY" | jq -c '[.listing.transactions[] | select(any(.changes[]; .kind == "DELETE" and .relation == "public.events"))][0].undo')
echo "   the delete is undone by the target $UNDO (just before its transaction)"

step "POST /instances/$ID/recover to that target"
recover_and_check "{\"target\": $UNDO}" '{status, target, recovered_from_backup, timeline}' \
  "1,2,3,4,5,6,7" "every event committed before the delete, and nothing after it"

step "rewind: keep a delayed copy of the instance 10 minutes behind it (PUT /instances/$ID/rewind)"
api PUT "/instances/$ID/rewind" '{"rewind": {"window_minutes": 10}}'
echo "   HTTP $HTTP_STATUS"; show '.rewind | {window_minutes, status}'
[ "$HTTP_STATUS" = 202 ] || exit 1
for _ in $(seq 1 240); do
  api GET "/instances/$ID/rewind"
  [ "$(echo "$BODY" | jq -r .rewind.status)" = READY ] && break
  sleep 0.5
done
show '.rewind | {status, rewindable_from, disk_bytes}'

step "another accident, inside the window: event 8, then every event deleted again"
sql -c "INSERT INTO events (id) VALUES (8)"
TARGET=$(now_utc)
sql -c "DELETE FROM events" -c "INSERT INTO events (id) VALUES (200)"
wait_window_past "$(now_utc)"
sql -c "SELECT * FROM events ORDER BY id"
echo "   target: $TARGET (after event 8, before the delete)"

step "POST /instances/$ID/recover to $TARGET: only the gap is replayed, from the delayed copy"
recover_and_check "{\"point_in_time\": \"$TARGET\"}" '{status, point_in_time, timeline}' \
  "1,2,3,4,5,6,7,8" "every event committed before the second delete"
api GET "/instances/$ID/recoveries?limit=1"
echo "   the recovery's outcome (GET /instances/$ID/recoveries):"
show '.recoveries[0].outcome | {source, duration_ms, downtime_ms}'
[ "$(echo "$BODY" | jq -r '.recoveries[0].outcome.source')" = rewind ] || { echo "FAILED: not from the delayed copy" >&2; exit 1; }
