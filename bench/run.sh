#!/usr/bin/env bash
# bench/run.sh — load fleetcert and a peer with the same client
# (cmd/fleetcert-bench, aws-sdk-go-v2) and print the results side by side.
# The peer is moto's AWS IoT mock, or the ceiling server (`fleetcert-bench
# ceiling`: net/http, SigV4, an in-memory map, JSON; no store, no rules),
# which says how far fleetcert is from the least any server must do.
#
# Everything runs on loopback, every step has a time limit, and both servers
# are stopped by PID when the script exits.
#
# Settings (environment):
#   DURATION=10s         time of each timed phase (describe, register)
#   CONCURRENCY=16       concurrent callers
#   MAX_OPS=200000       call limit of each timed phase
#   LIST_COUNT=100000    certificates for fleetcert's list-scan
#   MOTO_LIST_COUNT=10000  certificates for the list-scan both servers run
#                        (moto registers ~200 certificates/s and returns all
#                        of them in one page, so 100k is out of reach for it)
#   OPS="list-scan describe register"  which loads to run, in this order
#   PEER=moto            moto, or ceiling (describe and register only)
#   ROUNDS=1             rounds of describe and register, each with one run
#                        of fleetcert and one of the peer (the peer first in
#                        even rounds), so that a change in the machine's
#                        load hits both; with more than one, the last lines
#                        give the median of the rounds' ratios
#   KEEP_TMP=1           keep the temp dir (binaries, logs, JSON results)
#
# The machine's 1-minute load average is printed before and after every run:
# a load well above what the run itself causes means something else was using
# the CPUs and the numbers are low.
set -uo pipefail

cd "$(dirname "$0")/.." || exit 1

DURATION=${DURATION:-10s}
CONCURRENCY=${CONCURRENCY:-16}
MAX_OPS=${MAX_OPS:-200000}
LIST_COUNT=${LIST_COUNT:-100000}
MOTO_LIST_COUNT=${MOTO_LIST_COUNT:-10000}
OPS=${OPS:-list-scan describe register}
PEER=${PEER:-moto}
ROUNDS=${ROUNDS:-1}
case $PEER in moto | ceiling) ;; *) echo "PEER=$PEER: want moto or ceiling" >&2; exit 2 ;; esac

ACCESS_KEY_ID=AKIAFLEETCERTBENCH01
SECRET_ACCESS_KEY=fleetcert-bench-secret-0123456789abcdefghij
ACCOUNT_ID=123456789012

TMP=$(mktemp -d "${TMPDIR:-/tmp}/fleetcert-bench.XXXXXX")
FC_PID=
MOTO_PID=

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

stop_pid() { # stop_pid PID NAME: TERM, wait up to 10s, then KILL
	local pid=$1 name=$2
	[ -n "$pid" ] || return 0
	kill -0 "$pid" 2>/dev/null || return 0
	kill -TERM "$pid" 2>/dev/null
	for _ in $(seq 1 100); do
		kill -0 "$pid" 2>/dev/null || { log "stopped $name (pid $pid)"; return 0; }
		sleep 0.1
	done
	log "$name (pid $pid) did not stop in 10s; killing it"
	kill -KILL "$pid" 2>/dev/null
}

cleanup() {
	stop_pid "$FC_PID" fleetcert
	stop_pid "$MOTO_PID" moto
	if [ "${KEEP_TMP:-}" = 1 ]; then
		log "kept $TMP"
	else
		rm -rf "$TMP"
	fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

die() {
	log "FAILED: $*"
	exit 1
}

free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

wait_http() { # wait_http URL PID NAME SECONDS: until URL answers 200
	local url=$1 pid=$2 name=$3 secs=$4 code
	local end=$((SECONDS + secs))
	while [ "$SECONDS" -lt "$end" ]; do
		kill -0 "$pid" 2>/dev/null || return 1
		code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$url" || true)
		[ "$code" = 200 ] && { log "$name is up ($url)"; return 0; }
		sleep 0.2
	done
	log "$name did not answer 200 on $url within ${secs}s"
	return 1
}

# --- 1. build -------------------------------------------------------------
mkdir -p "$TMP/bin" "$TMP/data" "$TMP/out"
log "building ./cmd/fleetcert and ./cmd/fleetcert-bench into $TMP/bin"
timeout 600 go build -o "$TMP/bin/fleetcert" ./cmd/fleetcert || die "go build ./cmd/fleetcert"
timeout 600 go build -o "$TMP/bin/fleetcert-bench" ./cmd/fleetcert-bench || die "go build ./cmd/fleetcert-bench"
BENCH=$TMP/bin/fleetcert-bench

PORT_API=$(free_port)
PORT_MQTT=$(free_port)
PORT_MOTO=$(free_port)
FC_URL=http://127.0.0.1:$PORT_API
MOTO_URL=http://127.0.0.1:$PORT_MOTO

# --- 2. fleetcert -----------------------------------------------------------
log "starting fleetcert serve on $FC_URL (mqtt 127.0.0.1:$PORT_MQTT)"
FLEETCERT_ACCESS_KEY_ID=$ACCESS_KEY_ID FLEETCERT_SECRET_ACCESS_KEY=$SECRET_ACCESS_KEY FLEETCERT_ACCOUNT_ID=$ACCOUNT_ID \
	"$TMP/bin/fleetcert" serve --data-dir "$TMP/data" --api-addr "127.0.0.1:$PORT_API" --mqtt-addr "127.0.0.1:$PORT_MQTT" \
	>"$TMP/fleetcert.log" 2>&1 &
FC_PID=$!
wait_http "$FC_URL/healthz" "$FC_PID" fleetcert 60 || { tail -n 30 "$TMP/fleetcert.log" >&2; die "fleetcert did not start"; }

# --- 3. the peer -------------------------------------------------------------
if [ "$PEER" = ceiling ]; then
	log "starting the ceiling server on $MOTO_URL"
	"$BENCH" ceiling --addr "127.0.0.1:$PORT_MOTO" --access-key-id "$ACCESS_KEY_ID" --secret-access-key "$SECRET_ACCESS_KEY" \
		--account-id "$ACCOUNT_ID" >"$TMP/moto.log" 2>&1 &
	MOTO_PID=$!
	wait_http "$MOTO_URL/healthz" "$MOTO_PID" ceiling 60 || { tail -n 30 "$TMP/moto.log" >&2; die "the ceiling did not start"; }
	PEER_VERSION="ceiling server (fleetcert-bench ceiling)"
else
	log "starting moto server on $MOTO_URL"
	python3 -m moto.server -H 127.0.0.1 -p "$PORT_MOTO" >"$TMP/moto.log" 2>&1 &
	MOTO_PID=$!
	wait_http "$MOTO_URL/moto-api/" "$MOTO_PID" moto 60 || { tail -n 30 "$TMP/moto.log" >&2; die "moto did not start"; }
	PEER_VERSION="moto $(python3 -c 'import moto; print(moto.__version__)')"
fi

# --- 4. load ---------------------------------------------------------------
# cpu_seconds PID: CPU time (user + system) the process has used, in seconds
cpu_seconds() {
	awk -v t="$(getconf CLK_TCK)" '{ print ($14 + $15) / t }' "/proc/$1/stat" 2>/dev/null || echo 0
}

# bench NAME TAG ARGS...: one fleetcert-bench run, bounded by timeout; the
# table goes to stdout, the JSON line to $TMP/out/NAME-TAG.json, the
# server's CPU seconds during the run to $TMP/out/NAME-TAG.cpu (its CPU per
# call is what the machine's other load changes least).
bench() {
	local name=$1 tag=$2 url key secret pid
	shift 2
	case $name in
	fleetcert) url=$FC_URL key=$ACCESS_KEY_ID secret=$SECRET_ACCESS_KEY pid=$FC_PID ;;
	moto) url=$MOTO_URL key=testing secret=testing pid=$MOTO_PID ;;
	ceiling) url=$MOTO_URL key=$ACCESS_KEY_ID secret=$SECRET_ACCESS_KEY pid=$MOTO_PID ;;
	esac
	local cpu0
	cpu0=$(cpu_seconds "$pid")
	log "$name: fleetcert-bench $*"
	local load0
	load0=$(cut -d' ' -f1 /proc/loadavg 2>/dev/null || echo n/a)
	# The server's CPU from the start of the timed phase (the tool logs it)
	# to the end, so that the untimed pool or warm-up is not counted: the
	# sampler polls the tool's log, bounded by the tool's own time limit.
	: >"$TMP/out/$name-$tag.log"
	(
		for _ in $(seq 1 30000); do
			grep -q 'timed phase' "$TMP/out/$name-$tag.log" 2>/dev/null && {
				cpu_seconds "$pid" >"$TMP/out/$name-$tag.cpu-timed"
				head -n 1 /proc/stat >"$TMP/out/$name-$tag.stat"
				exit 0
			}
			sleep 0.05
		done
	) &
	local sampler=$!
	timeout 1500 "$BENCH" --endpoint "$url" --access-key-id "$key" --secret-access-key "$secret" \
		--concurrency "$CONCURRENCY" --duration "$DURATION" --max-ops "$MAX_OPS" --json "$@" \
		>"$TMP/out/$name-$tag.txt" 2>"$TMP/out/$name-$tag.log"
	local rc=$?
	kill "$sampler" 2>/dev/null
	wait "$sampler" 2>/dev/null
	local cpu1
	cpu1=$(cpu_seconds "$pid")
	[ -s "$TMP/out/$name-$tag.stat" ] && head -n 1 /proc/stat >>"$TMP/out/$name-$tag.stat"
	echo "$cpu0 $cpu1" >"$TMP/out/$name-$tag.cpu"
	if [ -s "$TMP/out/$name-$tag.cpu-timed" ]; then
		echo "$(cat "$TMP/out/$name-$tag.cpu-timed") $cpu1" >"$TMP/out/$name-$tag.cpu"
	fi
	grep -v '^{' "$TMP/out/$name-$tag.txt" | sed "s/^/  $name | /"
	echo "  $name |     machine load average: $load0 before, $(cut -d' ' -f1 /proc/loadavg 2>/dev/null || echo n/a) after"
	tail -n 1 "$TMP/out/$name-$tag.txt" | grep '^{' >"$TMP/out/$name-$tag.json" || rm -f "$TMP/out/$name-$tag.json"
	if [ "$rc" != 0 ]; then
		log "$name $tag: fleetcert-bench exited $rc; last lines of its log:"
		tail -n 5 "$TMP/out/$name-$tag.log" >&2
	fi
}

echo "# fleetcert vs $PEER_VERSION, $(go version | cut -d' ' -f3), $(nproc) CPUs, concurrency $CONCURRENCY, duration $DURATION, max-ops $MAX_OPS"
echo "# both servers and the load tool share this machine's CPUs; rounds: $ROUNDS"

# Same sizes for both first, so the list-scan comparison is fair; fleetcert
# then alone at LIST_COUNT.
for op in $OPS; do
	case $op in
	list-scan)
		bench fleetcert scan-small --op list-scan --list-count "$MOTO_LIST_COUNT"
		if [ "$PEER" = moto ]; then
			bench moto scan-small --op list-scan --list-count "$MOTO_LIST_COUNT"
		fi
		if [ "$LIST_COUNT" != "$MOTO_LIST_COUNT" ]; then
			bench fleetcert scan-large --op list-scan --list-count "$LIST_COUNT" --seed-timeout 15m
		fi
		;;
	describe | register)
		# Even rounds run the peer first, so that a machine that speeds up
		# or slows down during the run favours neither.
		for r in $(seq 1 "$ROUNDS"); do
			if [ $((r % 2)) = 1 ]; then
				bench fleetcert "$op-$r" --op "$op"
				bench "$PEER" "$op-$r" --op "$op"
			else
				bench "$PEER" "$op-$r" --op "$op"
				bench fleetcert "$op-$r" --op "$op"
			fi
		done
		;;
	*) die "OPS: unknown load $op (want list-scan, describe, register)" ;;
	esac
done

# --- side by side ----------------------------------------------------------
OPS=$OPS python3 - "$TMP/out" "$MOTO_LIST_COUNT" "$LIST_COUNT" "$PEER" "$ROUNDS" <<'EOF'
import json, os, sys

out, small, large, peer, rounds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], int(sys.argv[5])

def load(name, tag):
    p = os.path.join(out, f"{name}-{tag}.json")
    try:
        with open(p) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None

def server_cpu_us(name, tag, r):
    # CPU of the server per timed call, in microseconds, from the start of
    # the timed phase (sampled within 50 ms of the tool logging it) to the
    # end of the run; the whole run's when the start was not caught.
    try:
        with open(os.path.join(out, f"{name}-{tag}.cpu")) as f:
            a, b = (float(x) for x in f.read().split())
    except (OSError, ValueError):
        return None
    return None if not r or not r.get("ops") else (b - a) / r["ops"] * 1e6

def machine_percent(name, tag, fields):
    # A share of the machine's time (the given fields of /proc/stat's cpu
    # line: 3 idle, 4 iowait, 7 steal) from the start of the timed phase to
    # the end of the run, in percent.
    try:
        with open(os.path.join(out, f"{name}-{tag}.stat")) as f:
            a, b = ([int(x) for x in line.split()[1:9]] for line in f.read().splitlines()[:2])
    except (OSError, ValueError):
        return None
    d = [y - x for x, y in zip(a, b)]
    return 100 * sum(d[i] for i in fields) / sum(d) if sum(d) else None

def cpu_per_call_us(name, tag, r):
    # The server's and the tool's CPU per timed call: what the machine
    # spends on one call.
    srv = server_cpu_us(name, tag, r)
    if srv is None or not r.get("opsPerSec") or r.get("clientCpuCores") is None:
        return None
    return srv + r["clientCpuCores"] / r["opsPerSec"] * 1e6

def result(rep, op, phase="timed"):
    for r in (rep or {}).get("results") or []:
        if r["op"] == op and r["phase"] == phase:
            return r
    return None

def num(v, unit=""):
    if v is None:
        return "n/a"
    if unit == "ms":
        return f"{v:.2f}ms" if v < 100 else f"{v:.0f}ms"
    if unit == "s":
        return f"{v:.3f}s"
    if unit == "cores":
        return f"{v:.2f}"
    return f"{v:.0f}"

def ratio(a, b):
    if a is None or b is None or b == 0:
        return "n/a"
    return f"{a / b:.2f}x"

rows = []
def add(label, metric, f, m, unit=""):
    if f is None and m is None:
        return
    rows.append((label, metric, num(f, unit), num(m, unit), ratio(f, m)))

for tag0, op in (("describe", "DescribeCertificate"), ("register", "RegisterCertificateWithoutCA")):
  for rnd in range(1, rounds + 1):
    tag = f"{tag0}-{rnd}"
    f, m = result(load("fleetcert", tag), op), result(load(peer, tag), op)
    g = lambda r, k: None if r is None else r[k]
    add(op if rounds == 1 else f"{op} r{rnd}", "ops/s", g(f, "opsPerSec"), g(m, "opsPerSec"))
    for k in ("p50ms", "p90ms", "p99ms", "maxMs"):
        add("", k[:-2] if k != "maxMs" else "max", g(f, k), g(m, k), "ms")
    add("", "ops", g(f, "ops"), g(m, "ops"))
    add("", "errors", g(f, "errors"), g(m, "errors"))
    add("", "tool cpu", g(f, "clientCpuCores"), g(m, "clientCpuCores"), "cores")
    add("", "srv us/op", server_cpu_us("fleetcert", tag, f), server_cpu_us(peer, tag, m))
    add("", "all us/op", cpu_per_call_us("fleetcert", tag, f), cpu_per_call_us(peer, tag, m))
    add("", "idle %", machine_percent("fleetcert", tag, (3, 4)), machine_percent(peer, tag, (3, 4)))
    add("", "steal %", machine_percent("fleetcert", tag, (7,)), machine_percent(peer, tag, (7,)))

# Over several rounds, the median of the rounds' ratios: one round's ratio
# moves with the host between its two runs.
medians = []
if rounds > 1:
    import statistics
    for tag0, op in (("describe", "DescribeCertificate"), ("register", "RegisterCertificateWithoutCA")):
        pairs = [(result(load("fleetcert", f"{tag0}-{r}"), op), result(load(peer, f"{tag0}-{r}"), op)) for r in range(1, rounds + 1)]
        pairs = [(f, m) for f, m in pairs if f and m and m["opsPerSec"]]
        if pairs:
            each = [f["opsPerSec"] / m["opsPerSec"] for f, m in pairs]
            medians.append(f"{op}: ops/s ratio per round {' '.join(f'{x:.2f}' for x in each)}; "
                           f"median {statistics.median(each):.2f}x; fleetcert p99 median "
                           f"{statistics.median(f['p99ms'] for f, _ in pairs):.2f} ms")

fs, ms_ = load("fleetcert", "scan-small"), load("moto", "scan-small")
f, m = result(fs, "RegisterCertificateWithoutCA", "seed"), result(ms_, "RegisterCertificateWithoutCA", "seed")
add("Register (seeding, list-scan)", "ops/s", f and f["opsPerSec"], m and m["opsPerSec"])
fl, ml = (fs or {}).get("listScan"), (ms_ or {}).get("listScan")
def best(ls, k):
    return None if not ls or not ls.get("bestSeconds") else (ls["bestSeconds"] if k == "s" else ls["bestItems"] / ls["bestSeconds"])
def pages(ls):
    return None if not ls or not ls.get("scans") else ls["scans"][0]["pages"]
add(f"ListCertificates scan, >={small}", "best time", best(fl, "s"), best(ml, "s"), "s")
add("", "items", fl and fl.get("bestItems"), ml and ml.get("bestItems"))
add("", "items/s", best(fl, "i"), best(ml, "i"))
add("", "pages", pages(fl), pages(ml))

print()
print(f"{'operation':<34} {'metric':<10} {'fleetcert':>12} {peer:>12} {'fleetcert/' + peer:>18}")
for r in rows:
    print(f"{r[0]:<34} {r[1]:<10} {r[2]:>12} {r[3]:>12} {r[4]:>18}")
for line in medians:
    print(line)
print(f"ratio = fleetcert value / {peer} value: higher is better for ops/s and items/s, lower for latencies and times")
print("tool cpu = CPU cores the load tool itself used during the phase (it shares the machine with the server)")
print("srv us/op = the server's CPU time from the start of the timed phase to the end of the run, per timed call, in microseconds")
print("all us/op = srv us/op plus the tool's CPU per timed call: what the machine spends on one call")
print("idle % = the machine's idle time over the same span; with both runs as idle, the ops/s ratio is the inverse of all us/op's")
print("steal % = the time the hypervisor gave this machine's CPUs to others over the same span (a noisy host)")
if large != small and "list-scan" in os.environ.get("OPS", "list-scan"):
    print(f"describe and register ran after the list-scans: fleetcert then held >= {large} certificates, moto >= {small}")
if ml and any("pageSize" in n for n in ml.get("notes") or []):
    print(f"moto: ListCertificates ignores pageSize/marker and returns every certificate in one page")
if large != small and "list-scan" in os.environ.get("OPS", "list-scan"):
    fb = load("fleetcert", "scan-large")
    ll = (fb or {}).get("listScan")
    sd = result(fb, "RegisterCertificateWithoutCA", "seed")
    if ll and ll.get("bestSeconds"):
        scans = ", ".join(f"{s['seconds']:.3f}s" for s in ll["scans"])
        print(f"fleetcert only, list-scan >={large}: scans {scans}; best {ll['bestSeconds']:.3f}s for {ll['bestItems']} items "
              f"({ll['bestItems'] / ll['bestSeconds']:.0f} items/s, {ll['scans'][0]['pages']} pages of 250)"
              + (f"; seeded {sd['ops']} at {sd['opsPerSec']:.0f}/s" if sd else ""))
    else:
        print(f"fleetcert only, list-scan >={large}: no result (see the log above)")
    print(f"moto was not loaded with {large} certificates: at its registration rate that would take too long (MOTO_LIST_COUNT={small})")
EOF
