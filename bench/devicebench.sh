#!/usr/bin/env bash
# bench/devicebench.sh — the device side: new mTLS connections per second
# (CONNECT→CONNACK) against fleetcert's gateway, a bare Go crypto/tls server
# doing the same handshake (the ceiling) and mosquitto with
# require_certificate true (when the Debian package is installed); then
# HOLD idle devices (each with a certificate of its own) on fleetcert with
# its RSS, and REVOKE revocations timed from the API's 200 response to the
# device seeing its TCP connection close.
#
# Everything runs on loopback; every load is bounded in count and time;
# every server is stopped by PID when the script exits.
#
# Settings (environment):
#   DURATION=10s  CONCURRENCY=8  ROUNDS=2  HOLD=19900  REVOKE=200  KEEP_TMP=1
#   MEMORY_LIMIT=920MiB  runs fleetcert with --memory-limit (Go's soft memory
#                        limit; 920MiB is what it derives from a 1 GiB
#                        container); unset: none, Go's defaults
#
# The connect loads run ROUNDS times, one target after the other in each
# round, so that a change in the machine's load hits every target.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1

DURATION=${DURATION:-10s}
CONCURRENCY=${CONCURRENCY:-8}
ROUNDS=${ROUNDS:-2}
# The container's hard limit on open files is 20,000 per process, and the
# broker needs a few descriptors besides the devices': 19,900 by default.
# fleetcert's default device cap keeps 1,280 descriptors for the API and the
# store; the run sets the caps for this machine (64 API connections, HOLD
# devices), as an operator sizing a gateway would.
HOLD=${HOLD:-19900}
REVOKE=${REVOKE:-200}

# 20,000 devices need 20,000 descriptors in the broker and in the client.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
echo "== open files limit: $(ulimit -n)"

T=$(mktemp -d)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null; done
  if [ "${KEEP_TMP:-}" = 1 ]; then echo "== kept $T"; else rm -rf "$T"; fi
}
trap cleanup EXIT

load() { echo "== load average: $(cut -d' ' -f1-3 /proc/loadavg) ($(nproc) CPUs)"; }

echo "== building"
go build -o "$T/fleetcert" ./cmd/fleetcert || exit 1
go build -o "$T/devicebench" ./cmd/fleetcert-devicebench || exit 1
B="$T/devicebench"
"$B" certs --out "$T/certs" || exit 1

export AWS_ACCESS_KEY_ID=AKIADEVICEBENCH00001 AWS_SECRET_ACCESS_KEY=devicebench-secret-0123456789abcdefghijk
env FLEETCERT_MEMORY_LIMIT="${MEMORY_LIMIT:-off}" \
  FLEETCERT_ACCESS_KEY_ID=$AWS_ACCESS_KEY_ID FLEETCERT_SECRET_ACCESS_KEY=$AWS_SECRET_ACCESS_KEY \
  "$T/fleetcert" serve --data-dir "$T/data" --api-addr 127.0.0.1:0 --mqtt-addr 127.0.0.1:0 \
  --region us-east-1 --api-max-connections 64 --mqtt-max-connections "$((HOLD + 100))" \
  >"$T/fleetcert.log" 2>&1 &
FPID=$!; PIDS+=("$FPID")
for _ in $(seq 200); do grep -q 'msg="fleetcert ready"' "$T/fleetcert.log" && break; sleep 0.05; done
API=$(sed -nE 's/.*msg="fleetcert ready" api=([^ ]+).*/\1/p' "$T/fleetcert.log")
MQTT=$(sed -nE 's/.*msg="mqtt gateway ready" mqtt=([^ ]+).*/\1/p' "$T/fleetcert.log")
[ -n "$API" ] && [ -n "$MQTT" ] || { echo "fleetcert did not start:"; cat "$T/fleetcert.log"; exit 1; }
echo "== fleetcert pid $FPID api $API mqtt $MQTT memory limit ${MEMORY_LIMIT:-off}"
"$B" register --api "http://$API" --cert "$T/certs/device.pem" || exit 1

# The same handshake everywhere: the ceiling and mosquitto present the
# gateway's own server certificate (the one devices see: a name for each AWS
# region, signed by mqtt-ca.pem), and every client trusts mqtt-ca.pem.
SRV_CERT=$T/data/mqtt-server.pem SRV_KEY=$T/data/mqtt-server.key SRV_CA=$T/data/mqtt-ca.pem
"$B" bare --listen 127.0.0.1:0 --dir "$T/certs" --cert "$SRV_CERT" --key "$SRV_KEY" >"$T/bare.log" 2>&1 &
BPID=$!; PIDS+=("$BPID")
for _ in $(seq 100); do grep -q listening "$T/bare.log" && break; sleep 0.05; done
BARE=$(sed -nE 's/^listening (.*)/\1/p' "$T/bare.log")

MOSQ=""
if command -v mosquitto >/dev/null 2>&1; then
  PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  cat >"$T/mosquitto.conf" <<CONF
listener $PORT 127.0.0.1
cafile $T/certs/ca.pem
certfile $SRV_CERT
keyfile $SRV_KEY
require_certificate true
allow_anonymous true
max_connections -1
persistence false
user root
log_dest file $T/mosquitto.log
CONF
  mosquitto -c "$T/mosquitto.conf" &
  MPID=$!; PIDS+=("$MPID")
  MOSQ=127.0.0.1:$PORT
  sleep 0.5
  echo "== mosquitto $(mosquitto -h 2>/dev/null | head -1 | awk '{print $3}') pid $MPID on $MOSQ"
else
  echo "== mosquitto not installed (Debian package mosquitto): skipped"
fi

DEV=(--cert "$T/certs/device.pem" --key "$T/certs/device.key")
# connect PID ARGS…: one connect load, then the server's CPU time (user +
# system, from /proc) per connection it accepted: what the rates cannot
# show when client and servers share the CPUs.
connect() {
  local pid=$1; shift
  local c0 c1 out n
  c0=$(awk '{print $14+$15}' "/proc/$pid/stat")
  out=$("$B" connect "$@")
  c1=$(awk '{print $14+$15}' "/proc/$pid/stat")
  echo "$out"
  n=$(echo "$out" | sed -nE 's/^connect [^:]*: ([0-9]+) connections.*/\1/p')
  [ -n "$n" ] && [ "$n" -gt 0 ] && echo "  server CPU: $(( (c1 - c0) * 1000000 / $(getconf CLK_TCK) / n )) µs per connection"
}
echo; echo "== connect: $DURATION each, concurrency $CONCURRENCY, $ROUNDS rounds"
for round in $(seq "$ROUNDS"); do
  echo "-- round $round"
  load
  connect "$BPID" --label bare-tls --addr "$BARE" --cafile "$SRV_CA" "${DEV[@]}" --duration "$DURATION" --concurrency "$CONCURRENCY"
  connect "$FPID" --label fleetcert --addr "$MQTT" --cafile "$T/data/mqtt-ca.pem" "${DEV[@]}" --duration "$DURATION" --concurrency "$CONCURRENCY"
  [ -n "$MOSQ" ] && connect "$MPID" --label mosquitto --addr "$MOSQ" --cafile "$SRV_CA" "${DEV[@]}" --duration "$DURATION" --concurrency "$CONCURRENCY"
done
load

echo; echo "== hold $HOLD idle devices on fleetcert"
# As in a fleet, every device has a certificate of its own, registered
# through the API just before it connects.
"$B" hold --label fleetcert --addr "$MQTT" --cafile "$T/data/mqtt-ca.pem" --api "http://$API" --count "$HOLD" --pid "$FPID"
load

echo; echo "== revoke $REVOKE devices on fleetcert"
"$B" revoke --addr "$MQTT" --cafile "$T/data/mqtt-ca.pem" --api "http://$API" --count "$REVOKE"
load
echo; echo "== fleetcert metrics (revocation histogram)"
curl -s "http://$API/metrics" | grep -vE '^#' | grep -E 'revocation_drop_seconds_(sum|count)|connected_devices '
echo "== fleetcert RSS now: $(grep VmRSS /proc/$FPID/status)"
