#!/usr/bin/env bash
# bench/scale-ab.sh — two builds of fleetcert on one seeded embedded store,
# in alternating rounds (A, B, A, B …), so that a shared machine's load
# weighs on both alike: the admission view's load time and memory
# (`fleetcert-bench view`), `serve`'s start-up, and the server's CPU time
# per call and latency of ListCertificatesByCA pages, DescribeCertificate
# and UpdateCertificate, with the 1-minute load average beside each.
#
# Usage:
#   bench/scale-ab.sh A_DIR B_DIR DATA_DIR CA_ID IDS_FILE
# where A_DIR and B_DIR each hold a `fleetcert` and a `fleetcert-bench`
# binary (e.g. built from main and from a branch), DATA_DIR is a store
# seeded by bench/scale.sh (run it with KEEP_TMP=1: DATA_DIR is its
# $TMP/data, CA_ID the content of $TMP/ca-id, IDS_FILE $TMP/ids-sample).
#
# Settings (environment): ROUNDS=2, PAGES=200, DURATION=10s,
# CONCURRENCY=16, OPS="list-by-ca describe update". Everything on
# loopback; every step has a time limit; servers are stopped by PID.
set -uo pipefail

[ $# = 5 ] || { sed -n '2,17p' "$0" >&2; exit 2; }
A=$1 B=$2 DATA=$3 CA_ID=$4 IDS=$5
ROUNDS=${ROUNDS:-2}
PAGES=${PAGES:-200}
DURATION=${DURATION:-10s}
CONCURRENCY=${CONCURRENCY:-16}
OPS=${OPS:-list-by-ca describe update}

ACCESS_KEY_ID=AKIAFLEETCERTBENCH01
SECRET_ACCESS_KEY=fleetcert-bench-secret-0123456789abcdefghij
ACCOUNT_ID=123456789012
FC_PID=

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
load1() { cut -d' ' -f1 /proc/loadavg; }
stop_fc() {
	[ -n "$FC_PID" ] || return 0
	kill -TERM "$FC_PID" 2>/dev/null
	for _ in $(seq 1 200); do
		kill -0 "$FC_PID" 2>/dev/null || { FC_PID=; return 0; }
		sleep 0.1
	done
	kill -KILL "$FC_PID" 2>/dev/null
	FC_PID=
}
trap stop_fc EXIT
trap 'exit 130' INT TERM
# cpu_ms PID: the process's CPU time (user + system) in milliseconds.
cpu_ms() { awk -v hz="$(getconf CLK_TCK)" '{ print ($14 + $15) * 1000 / hz }' "/proc/$1/stat"; }
free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

echo "# scale A/B: A=$A B=$B store=$DATA rounds=$ROUNDS, $(nproc) CPUs"
for round in $(seq 1 "$ROUNDS"); do
	for side in A B; do
		dir=$A
		[ "$side" = B ] && dir=$B
		echo "## round $round, $side ($dir), load $(load1)"
		timeout 900 "$dir/fleetcert-bench" view --data-dir "$DATA" | grep -v "^{" | sed "s/^/  $side | /"
		port=$(free_port)
		url=http://127.0.0.1:$port
		t0=$(date +%s.%N)
		FLEETCERT_ACCESS_KEY_ID=$ACCESS_KEY_ID FLEETCERT_SECRET_ACCESS_KEY=$SECRET_ACCESS_KEY FLEETCERT_ACCOUNT_ID=$ACCOUNT_ID \
			"$dir/fleetcert" serve --data-dir "$DATA" --api-addr "127.0.0.1:$port" --mqtt-addr 127.0.0.1:0 \
			>"/tmp/scale-ab-serve.log" 2>&1 &
		FC_PID=$!
		up=
		for _ in $(seq 1 3000); do # 10 minutes
			kill -0 "$FC_PID" 2>/dev/null || break
			[ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$url/healthz")" = 200 ] && { up=1; break; }
			sleep 0.2
		done
		[ -n "$up" ] || { tail -n 20 /tmp/scale-ab-serve.log >&2; log "$side did not start"; exit 1; }
		echo "  $side | serve: /healthz after $(python3 -c "import time; print(f'{time.time() - $t0:.1f}')") s; VmRSS $(awk '$1 == "VmRSS:" { printf "%.0f", $2 / 1024 }' "/proc/$FC_PID/status") MiB"
		for op in $OPS; do
			c0=$(cpu_ms "$FC_PID") l0=$(load1)
			out=$(timeout 600 "$dir/fleetcert-bench" --endpoint "$url" --access-key-id "$ACCESS_KEY_ID" \
				--secret-access-key "$SECRET_ACCESS_KEY" --op "$op" --ids-file "$IDS" --ca-certificate-id "$CA_ID" \
				--pages "$PAGES" --concurrency "$CONCURRENCY" --duration "$DURATION" 2>&1)
			c1=$(cpu_ms "$FC_PID")
			line=$(grep '^op=' <<<"$out" | head -n 1)
			ops=$(sed -n 's/.* ops=\([0-9]*\) .*/\1/p' <<<"$line")
			echo "  $side | $line"
			echo "  $side |     server CPU $(python3 -c "print(f'{($c1 - $c0) / max(1, ${ops:-0}):.3f}')") ms per call; load $l0 -> $(load1)"
		done
		echo "  $side | server VmRSS $(awk '$1 == "VmRSS:" { printf "%.0f", $2 / 1024 }' "/proc/$FC_PID/status") MiB, RssAnon $(awk '$1 == "RssAnon:" { printf "%.0f", $2 / 1024 }' "/proc/$FC_PID/status") MiB at the end"
		stop_fc
	done
done
