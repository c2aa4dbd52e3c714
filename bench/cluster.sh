#!/usr/bin/env bash
# bench/cluster.sh — fleetcert as a cluster on PostgreSQL, measured beside
# one node on the embedded store, in one run on one machine:
#
#   1. API load (cmd/fleetcert-bench): DescribeCertificate and
#      RegisterCertificateWithoutCA against one SQLite node, one PostgreSQL
#      node, and two PostgreSQL nodes on one database (the calls in turn).
#   2. Cross-node revocation: REVOKE devices connected to node B, each
#      revoked through node A's API, timed from the API's 200 to the device
#      seeing its connection close.
#   3. Connect rate (CONNECT→CONNACK) per node.
#
# PostgreSQL is Debian's (initdb/pg_ctl from /usr/lib/postgresql/*/bin), run
# as nobody when this script runs as root, on a loopback port, in a temp dir,
# with synchronous_commit=off: a commit is durable once PostgreSQL has it in
# its WAL buffers, as SQLite's synchronous=NORMAL is durable once in its WAL
# file (both survive the process's death; an OS crash may lose the last
# commits of either). Everything runs on loopback; every load is bounded in
# count and time; every server is stopped by PID when the script exits.
#
# Settings (environment):
#   DURATION=10s  CONCURRENCY=16  MAX_OPS=200000  ROUNDS=2  REVOKE=200
#   CONNECT_DURATION=5s  KEEP_TMP=1
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1

DURATION=${DURATION:-10s}
CONCURRENCY=${CONCURRENCY:-16}
MAX_OPS=${MAX_OPS:-200000}
ROUNDS=${ROUNDS:-2}
REVOKE=${REVOKE:-200}
CONNECT_DURATION=${CONNECT_DURATION:-5s}

export AWS_ACCESS_KEY_ID=AKIACLUSTERBENCH0001 AWS_SECRET_ACCESS_KEY=cluster-bench-secret-0123456789abcdefghij

T=$(mktemp -d "${TMPDIR:-/tmp}/fleetcert-cluster.XXXXXX")
chmod 755 "$T"
PIDS=()
PGBIN=
log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "FAILED: $*"; exit 1; }
load() { echo "   load average: $(cut -d' ' -f1-3 /proc/loadavg) ($(nproc) CPUs)"; }

# asdb runs a PostgreSQL program as an unprivileged user: PostgreSQL refuses
# to run as root.
asdb() {
	if [ "$(id -u)" = 0 ]; then
		setpriv --reuid=65534 --regid=65534 --clear-groups "$@"
	else
		"$@"
	fi
}

cleanup() {
	for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null; done
	for p in "${PIDS[@]}"; do
		for _ in $(seq 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
		kill -KILL "$p" 2>/dev/null
	done
	if [ -n "$PGBIN" ] && [ -f "$T/pg/data/postmaster.pid" ]; then
		PGPID=$(head -1 "$T/pg/data/postmaster.pid")
		kill -TERM "$PGPID" 2>/dev/null # smart shutdown by PID
		for _ in $(seq 100); do kill -0 "$PGPID" 2>/dev/null || break; sleep 0.1; done
		kill -KILL "$PGPID" 2>/dev/null
	fi
	if [ "${KEEP_TMP:-}" = 1 ]; then log "kept $T"; else rm -rf "$T"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# --- build ------------------------------------------------------------------
log "building"
mkdir -p "$T/bin" "$T/out"
go build -o "$T/bin/fleetcert" ./cmd/fleetcert || die "go build ./cmd/fleetcert"
go build -o "$T/bin/fleetcert-bench" ./cmd/fleetcert-bench || die "go build ./cmd/fleetcert-bench"
go build -o "$T/bin/devicebench" ./cmd/fleetcert-devicebench || die "go build ./cmd/fleetcert-devicebench"
"$T/bin/devicebench" certs --out "$T/certs" || die "device certificates"

# --- PostgreSQL -------------------------------------------------------------
PGBIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
[ -x "$PGBIN/initdb" ] || die "PostgreSQL is not installed (Debian: apt-get install postgresql)"
mkdir -p "$T/pg"
[ "$(id -u)" = 0 ] && chown 65534:65534 "$T/pg"
asdb "$PGBIN/initdb" -D "$T/pg/data" -U fleetcert --auth=trust -E UTF8 >"$T/pg/initdb.log" 2>&1 || { cat "$T/pg/initdb.log"; die initdb; }
PGPORT=$(free_port)
asdb "$PGBIN/pg_ctl" -D "$T/pg/data" -l "$T/pg/server.log" -w -t 60 start -o \
	"-c listen_addresses=127.0.0.1 -p $PGPORT -c unix_socket_directories=$T/pg -c synchronous_commit=off -c max_connections=200" \
	>/dev/null || { cat "$T/pg/server.log"; die "pg_ctl start"; }
DB_URL="postgres://fleetcert@127.0.0.1:$PGPORT/postgres?sslmode=disable"
log "PostgreSQL $("$PGBIN/postgres" --version | awk '{print $3}') on 127.0.0.1:$PGPORT (pid $(head -1 "$T/pg/data/postmaster.pid"))"

# --- nodes ------------------------------------------------------------------
# start NAME ARGS...: a fleetcert node; sets API_<NAME> and MQTT_<NAME>.
start() {
	local name=$1
	shift
	FLEETCERT_ACCESS_KEY_ID=$AWS_ACCESS_KEY_ID FLEETCERT_SECRET_ACCESS_KEY=$AWS_SECRET_ACCESS_KEY \
		"$T/bin/fleetcert" serve --data-dir "$T/$name" --api-addr 127.0.0.1:0 --mqtt-addr 127.0.0.1:0 "$@" \
		>"$T/$name.log" 2>&1 &
	PIDS+=("$!")
	for _ in $(seq 600); do grep -q 'msg="fleetcert ready"' "$T/$name.log" && break; sleep 0.1; done
	local api mqtt
	api=$(sed -nE 's/.*msg="fleetcert ready" api=([^ ]+).*/\1/p' "$T/$name.log")
	mqtt=$(sed -nE 's/.*msg="mqtt gateway ready" mqtt=([^ ]+).*/\1/p' "$T/$name.log")
	[ -n "$api" ] && [ -n "$mqtt" ] || { cat "$T/$name.log"; die "node $name did not start"; }
	printf -v "API_$name" '%s' "http://$api"
	printf -v "MQTT_$name" '%s' "$mqtt"
	log "node $name: api http://$api mqtt $mqtt (pid ${PIDS[-1]})"
}
start sqlite
start pga --database-url "$DB_URL"
start pgb --database-url "$DB_URL"

# --- 1. API load --------------------------------------------------------------
api_bench() { # api_bench LABEL ENDPOINTS OP
	local label=$1 endpoints=$2 op=$3
	timeout 900 "$T/bin/fleetcert-bench" --endpoint "$endpoints" --op "$op" \
		--concurrency "$CONCURRENCY" --duration "$DURATION" --max-ops "$MAX_OPS" \
		>"$T/out/$label-$op.txt" 2>"$T/out/$label-$op.log" || log "$label $op: fleetcert-bench failed (see $T/out)"
	grep -E '^op=[A-Za-z]+ ' "$T/out/$label-$op.txt" | sed "s/^/  $(printf '%-14s' "$label") | /"
}
echo "# fleetcert cluster bench: $(go version | cut -d' ' -f3), $(nproc) CPUs, concurrency $CONCURRENCY, duration $DURATION; every server and the load tool share these CPUs"
for round in $(seq "$ROUNDS"); do
	echo "== API round $round"
	load
	for op in describe register; do
		api_bench sqlite "$API_sqlite" "$op"
		api_bench postgres-1node "$API_pga" "$op"
		api_bench postgres-2nodes "$API_pga,$API_pgb" "$op"
	done
done
load

# --- 2. cross-node revocation --------------------------------------------------
echo "== revoke $REVOKE devices connected to node B, each through node A's API"
"$T/bin/devicebench" revoke --addr "$MQTT_pgb" --cafile "$T/pgb/mqtt-ca.pem" --api "$API_pga" --count "$REVOKE"
echo "== the same on one node (node A's API, node A's gateway)"
"$T/bin/devicebench" revoke --addr "$MQTT_pga" --cafile "$T/pga/mqtt-ca.pem" --api "$API_pga" --count "$REVOKE"
load

# --- 3. connect rate per node ------------------------------------------------------
echo "== connect rate: $CONNECT_DURATION each"
"$T/bin/devicebench" register --api "$API_sqlite" --cert "$T/certs/device.pem" || die "register on sqlite"
"$T/bin/devicebench" register --api "$API_pga" --cert "$T/certs/device.pem" || die "register on the cluster"
DEV=(--cert "$T/certs/device.pem" --key "$T/certs/device.key" --duration "$CONNECT_DURATION" --concurrency 8)
"$T/bin/devicebench" connect --label sqlite --addr "$MQTT_sqlite" --cafile "$T/sqlite/mqtt-ca.pem" "${DEV[@]}"
"$T/bin/devicebench" connect --label postgres-node-a --addr "$MQTT_pga" --cafile "$T/pga/mqtt-ca.pem" "${DEV[@]}"
"$T/bin/devicebench" connect --label postgres-node-b --addr "$MQTT_pgb" --cafile "$T/pgb/mqtt-ca.pem" "${DEV[@]}"
load
