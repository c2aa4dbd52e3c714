#!/usr/bin/env bash
# bench/ab.sh — compare two fleetcert binaries (before/after a change) under
# the same API load, in alternating rounds, so that a change in the
# machine's load hits both. Each round starts each binary on a fresh data
# dir, runs one fleetcert-bench load against it, and prints ops/s, p50/p99
# and the server's CPU time and write system calls per call during the
# timed phase (from /proc/PID/stat and /proc/PID/io: steadier than the
# rates on a shared machine). Rounds alternate which binary runs first; the
# last lines give B/A round by round and their medians, for differences
# smaller than this host's swings between rounds.
#
#   go build -o /tmp/a/fleetcert ./cmd/fleetcert          # at the commit before
#   go build -o /tmp/b/fleetcert ./cmd/fleetcert          # at the commit after
#   bench/ab.sh /tmp/a/fleetcert /tmp/b/fleetcert
#
# Settings (environment): OPS="describe register", ROUNDS=2, DURATION=8s,
# CONCURRENCY=16, EXTRA_ARGS (more `fleetcert serve` flags for both).
# Everything is on loopback; every step has a time limit; servers are
# stopped by PID.
set -uo pipefail

cd "$(dirname "$0")/.." || exit 1
[ $# = 2 ] || { echo "usage: bench/ab.sh BINARY_A BINARY_B" >&2; exit 2; }
A=$1 B=$2
OPS=${OPS:-describe register}
ROUNDS=${ROUNDS:-2}
DURATION=${DURATION:-8s}
CONCURRENCY=${CONCURRENCY:-16}
EXTRA_ARGS=${EXTRA_ARGS:-}
KEY=AKIAFLEETCERTBENCH01
SECRET=fleetcert-bench-secret-0123456789abcdefghij

TMP=$(mktemp -d "${TMPDIR:-/tmp}/fleetcert-ab.XXXXXX")
PID=
cleanup() {
	if [ -n "$PID" ] && kill -0 "$PID" 2>/dev/null; then
		kill -TERM "$PID"
		for _ in $(seq 1 100); do kill -0 "$PID" 2>/dev/null || break; sleep 0.1; done
		kill -KILL "$PID" 2>/dev/null
	fi
	rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

timeout 600 go build -o "$TMP/fleetcert-bench" ./cmd/fleetcert-bench || exit 1
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'; }
cpu() { awk -v t="$(getconf CLK_TCK)" '{ print ($14 + $15) / t }' "/proc/$1/stat"; }
# writes PID: the process's write system calls so far (WAL frames are two each).
writes() { awk '/^syscw/ { print $2 }' "/proc/$1/io"; }

# one BIN LABEL OP: a fresh server, one load, one result line.
one() {
	local bin=$1 label=$2 op=$3 d=$TMP/run api mqtt
	rm -rf "$d" && mkdir -p "$d"
	api=$(port) mqtt=$(port)
	# shellcheck disable=SC2086
	FLEETCERT_ACCESS_KEY_ID=$KEY FLEETCERT_SECRET_ACCESS_KEY=$SECRET FLEETCERT_ACCOUNT_ID=123456789012 \
		"$bin" serve --data-dir "$d/data" --api-addr "127.0.0.1:$api" --mqtt-addr "127.0.0.1:$mqtt" $EXTRA_ARGS >"$d/server.log" 2>&1 &
	PID=$!
	for _ in $(seq 1 300); do curl -sf -o /dev/null --max-time 1 "http://127.0.0.1:$api/healthz" && break; sleep 0.2; done
	: >"$d/tool.log"
	(
		for _ in $(seq 1 6000); do
			grep -q 'timed phase' "$d/tool.log" && { cpu "$PID" >"$d/cpu0"; writes "$PID" >"$d/writes0"; exit 0; }
			sleep 0.05
		done
	) &
	local sampler=$! load0
	load0=$(cut -d' ' -f1 /proc/loadavg)
	timeout 300 "$TMP/fleetcert-bench" --endpoint "http://127.0.0.1:$api" --access-key-id "$KEY" --secret-access-key "$SECRET" \
		--concurrency "$CONCURRENCY" --duration "$DURATION" --op "$op" --json >"$d/out.txt" 2>"$d/tool.log"
	local cpu1 writes1
	cpu1=$(cpu "$PID")
	writes1=$(writes "$PID")
	kill "$sampler" 2>/dev/null
	wait "$sampler" 2>/dev/null
	tail -n 1 "$d/out.txt" | python3 -c '
import json, sys
label, cpu0, cpu1, load0, load1 = sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.argv[4], sys.argv[5]
writes0, writes1 = sys.argv[6], float(sys.argv[7])
r = [x for x in json.load(sys.stdin)["results"] if x["phase"] == "timed"][0]
us = (cpu1 - float(cpu0)) / r["ops"] * 1e6 if cpu0 else float("nan")
w = (writes1 - float(writes0)) / r["ops"] if writes0 else float("nan")
op, rate, p50, p99, errs = r["op"], r["opsPerSec"], r["p50ms"], r["p99ms"], r["errors"]
print(f"{label:<6} {op:<30} {rate:>8.0f} ops/s  p50 {p50:6.2f} ms  p99 {p99:7.2f} ms  "
      f"server {us:6.0f} us/op  {w:5.1f} writes/op  errors {errs}  load {load0} -> {load1}")
with open(sys.argv[8], "a") as f:
    print(label.split()[0], label.split()[1], op, rate, us, file=f)
' "$label" "$(cat "$d/cpu0" 2>/dev/null)" "$cpu1" "$load0" "$(cut -d' ' -f1 /proc/loadavg)" \
		"$(cat "$d/writes0" 2>/dev/null)" "$writes1" "$TMP/results" || tail -n 5 "$d/tool.log"
	kill -TERM "$PID"
	for _ in $(seq 1 100); do kill -0 "$PID" 2>/dev/null || break; sleep 0.1; done
	kill -KILL "$PID" 2>/dev/null
	wait "$PID" 2>/dev/null
	PID=
}

echo "# A=$A B=$B ops=[$OPS] rounds=$ROUNDS duration=$DURATION concurrency=$CONCURRENCY $(nproc) CPUs"
# Odd rounds run A first, even rounds B first, so that a machine that
# speeds up or slows down during the run favours neither.
for op in $OPS; do
	for r in $(seq 1 "$ROUNDS"); do
		if [ $((r % 2)) = 1 ]; then
			one "$A" "A r$r" "$op"
			one "$B" "B r$r" "$op"
		else
			one "$B" "B r$r" "$op"
			one "$A" "A r$r" "$op"
		fi
	done
done

# B against A, round by round (each round's two runs were back to back).
[ -s "$TMP/results" ] && python3 -c '
import statistics, sys
runs = {}
for line in open(sys.argv[1]):
    who, r, op, rate, us = line.split()
    runs.setdefault(op, {}).setdefault(r, {})[who] = (float(rate), float(us))
for op, rounds in runs.items():
    pairs = [v for v in rounds.values() if "A" in v and "B" in v]
    if not pairs:
        continue
    rate = [v["B"][0] / v["A"][0] for v in pairs]
    cpu = [v["B"][1] / v["A"][1] for v in pairs]
    each = " ".join("%.2f" % x for x in rate)
    print(f"# {op}: B/A ops/s per round {each} (median {statistics.median(rate):.3f}, "
          f"B ahead in {sum(x > 1 for x in rate)} of {len(rate)}); server us/op B/A median {statistics.median(cpu):.3f}")
' "$TMP/results"
