#!/usr/bin/env bash
# bench/scale.sh — fleetcert with 1k, 100k and 1M certificates in its store
# (issue 17 item 1): seeding time, the admission view's load time and memory,
# start-up time, server RSS while serving, DescribeCertificate and
# UpdateCertificate latency and rate, ListCertificatesByCA page times, and
# the store's bytes per certificate.
#
# The store grows in place: each size seeds only the certificates the size
# before it lacks, under one CA (so ListCertificatesByCA pages through every
# certificate), with `fleetcert-bench seed`. Everything runs on loopback,
# every step has a time limit, servers are stopped by PID.
#
# Settings (environment):
#   SIZES="1000 100000 1000000"  store sizes, ascending
#   STORE=sqlite                 sqlite, or postgres (a private PostgreSQL 15
#                                started here from /usr/lib/postgresql/15/bin,
#                                as nobody when run as root)
#   DURATION=10s CONCURRENCY=16  each timed load
#   PAGES=200                    ListCertificatesByCA pages timed per size
#   SEED_TIMEOUT=15m             time limit of one size's seeding (whole h, m
#                                or s); PostgreSQL seeds 1M in ~25 minutes on
#                                two busy cores: give it SEED_TIMEOUT=60m
#   KEEP_TMP=1                   keep the temp dir
set -uo pipefail

cd "$(dirname "$0")/.." || exit 1

SIZES=${SIZES:-1000 100000 1000000}
STORE=${STORE:-sqlite}
DURATION=${DURATION:-10s}
CONCURRENCY=${CONCURRENCY:-16}
PAGES=${PAGES:-200}
SEED_TIMEOUT=${SEED_TIMEOUT:-15m}
PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}
# SEED_TIMEOUT in seconds, for the backstop around the seeder.
[[ $SEED_TIMEOUT =~ ^([0-9]+)([hms])$ ]] || { echo "SEED_TIMEOUT=$SEED_TIMEOUT: want whole hours, minutes or seconds (90m)" >&2; exit 2; }
case ${BASH_REMATCH[2]} in
h) seed_limit=$((BASH_REMATCH[1] * 3600)) ;;
m) seed_limit=$((BASH_REMATCH[1] * 60)) ;;
s) seed_limit=${BASH_REMATCH[1]} ;;
esac

ACCESS_KEY_ID=AKIAFLEETCERTBENCH01
SECRET_ACCESS_KEY=fleetcert-bench-secret-0123456789abcdefghij
ACCOUNT_ID=123456789012

TMP=$(mktemp -d "${TMPDIR:-/tmp}/fleetcert-scale.XXXXXX")
chmod 755 "$TMP"
FC_PID=
PG_STARTED=

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "FAILED: $*"; exit 1; }
load1() { cut -d' ' -f1 /proc/loadavg 2>/dev/null || echo n/a; }

stop_pid() { # stop_pid PID NAME: TERM, wait up to 20s, then KILL
	local pid=$1 name=$2
	[ -n "$pid" ] || return 0
	kill -0 "$pid" 2>/dev/null || return 0
	kill -TERM "$pid" 2>/dev/null
	for _ in $(seq 1 200); do
		kill -0 "$pid" 2>/dev/null || { log "stopped $name (pid $pid)"; return 0; }
		sleep 0.1
	done
	log "$name (pid $pid) did not stop in 20s; killing it"
	kill -KILL "$pid" 2>/dev/null
}

as_pg() { # run a PostgreSQL tool as nobody when root (initdb refuses root)
	if [ "$(id -u)" = 0 ]; then
		runuser -u nobody -- "$@"
	else
		"$@"
	fi
}

cleanup() {
	stop_pid "$FC_PID" fleetcert
	if [ -n "$PG_STARTED" ]; then
		as_pg "$PGBIN/pg_ctl" -D "$TMP/pg" -m fast -w -t 30 stop >/dev/null 2>&1 || log "pg_ctl stop failed"
	fi
	if [ "${KEEP_TMP:-}" = 1 ]; then log "kept $TMP"; else rm -rf "$TMP"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# rss PID FIELD: VmRSS or VmHWM of PID in MiB
rss() { awk -v f="$2:" '$1 == f { printf "%.1f", $2 / 1024 }' "/proc/$1/status" 2>/dev/null; }

mkdir -p "$TMP/bin" "$TMP/out"
log "building ./cmd/fleetcert and ./cmd/fleetcert-bench into $TMP/bin"
timeout 600 go build -o "$TMP/bin/fleetcert" ./cmd/fleetcert || die "go build ./cmd/fleetcert"
timeout 600 go build -o "$TMP/bin/fleetcert-bench" ./cmd/fleetcert-bench || die "go build ./cmd/fleetcert-bench"
BENCH=$TMP/bin/fleetcert-bench

STORE_ARGS=()
case $STORE in
sqlite)
	mkdir -p "$TMP/data"
	STORE_ARGS=(--data-dir "$TMP/data")
	;;
postgres)
	[ -x "$PGBIN/initdb" ] || die "no $PGBIN/initdb: apt-get install postgresql-15 (scripts/test does)"
	PG_PORT=$(free_port)
	mkdir -p "$TMP/pg" "$TMP/pgsock"
	chown nobody "$TMP/pg" "$TMP/pgsock" 2>/dev/null || true
	as_pg timeout 120 "$PGBIN/initdb" -D "$TMP/pg" -U postgres -A trust --no-sync >"$TMP/initdb.log" 2>&1 || die "initdb (see $TMP/initdb.log)"
	as_pg timeout 120 "$PGBIN/pg_ctl" -D "$TMP/pg" -l "$TMP/pg/server.log" -w -t 60 \
		-o "-h 127.0.0.1 -p $PG_PORT -k $TMP/pgsock -c fsync=on -c synchronous_commit=on -c max_connections=200" start >/dev/null || die "pg_ctl start"
	PG_STARTED=1
	STORE_ARGS=(--database-url "postgres://postgres@127.0.0.1:$PG_PORT/postgres?sslmode=disable")
	log "PostgreSQL $("$PGBIN/postgres" --version | awk '{print $3}') on 127.0.0.1:$PG_PORT"
	;;
*) die "STORE=$STORE: want sqlite or postgres" ;;
esac

store_bytes() {
	case $STORE in
	sqlite) du -sb "$TMP/data" | cut -f1 ;;
	postgres) as_pg timeout 30 "$PGBIN/psql" -h 127.0.0.1 -p "$PG_PORT" -U postgres -Atc "select pg_database_size('postgres')" postgres ;;
	esac
}

echo "# fleetcert at scale: store $STORE, sizes $SIZES, $(go version | cut -d' ' -f3), $(nproc) CPUs, concurrency $CONCURRENCY, duration $DURATION"
have=0
: >"$TMP/ids"
# The store's size before any certificate (schema, settings; PostgreSQL's
# catalog), taken off every size's bytes per certificate.
timeout 120 "$BENCH" view "${STORE_ARGS[@]}" >/dev/null 2>&1 || log "could not open the empty store; its size is not subtracted"
base_bytes=$(store_bytes)
for n in $SIZES; do
	missing=$((n - have))
	if [ "$missing" -gt 0 ]; then
		log "seeding $missing certificates (store holds $have, size $n); load $(load1)"
		# The seeder stops itself at SEED_TIMEOUT; this bound is a backstop.
		timeout "$((seed_limit + 300))" "$BENCH" seed -n "$missing" --ca --ca-file "$TMP/ca.pem" --timeout "$SEED_TIMEOUT" \
			--ids-out "$TMP/ids-$n" --ids-sample 1000 "${STORE_ARGS[@]}" >"$TMP/out/seed-$n.txt" 2>"$TMP/out/seed-$n.log" ||
			{ tail -n 5 "$TMP/out/seed-$n.log" >&2; die "seed $n"; }
		# Describe and update pick from ids spread over the whole store.
		cat "$TMP/ids-$n" >>"$TMP/ids"
		have=$n
	fi
	seed_line=$(grep '^{' "$TMP/out/seed-$n.txt" 2>/dev/null || echo '{}')
	CA_ID=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1]).get("caCertificateId",""))' "$seed_line")
	[ -n "$CA_ID" ] || CA_ID=$(cat "$TMP/ca-id" 2>/dev/null)
	echo "$CA_ID" >"$TMP/ca-id"
	shuf -n 1000 "$TMP/ids" >"$TMP/ids-sample" 2>/dev/null || cp "$TMP/ids" "$TMP/ids-sample"

	bytes=$(store_bytes)
	log "size $n: measuring the admission view's load (out of process); load $(load1)"
	timeout 900 "$BENCH" view "${STORE_ARGS[@]}" >"$TMP/out/view-$n.txt" 2>&1 || die "view $n: $(tail -n 3 "$TMP/out/view-$n.txt")"

	port=$(free_port)
	url=http://127.0.0.1:$port
	log "size $n: starting fleetcert serve on $url; load $(load1)"
	t0=$(date +%s.%N)
	FLEETCERT_ACCESS_KEY_ID=$ACCESS_KEY_ID FLEETCERT_SECRET_ACCESS_KEY=$SECRET_ACCESS_KEY FLEETCERT_ACCOUNT_ID=$ACCOUNT_ID \
		"$TMP/bin/fleetcert" serve "${STORE_ARGS[@]}" --api-addr "127.0.0.1:$port" --mqtt-addr 127.0.0.1:0 \
		>"$TMP/out/fleetcert-$n.log" 2>&1 &
	FC_PID=$!
	up=
	for _ in $(seq 1 3000); do # 10 minutes
		kill -0 "$FC_PID" 2>/dev/null || break
		[ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$url/healthz")" = 200 ] && { up=1; break; }
		sleep 0.2
	done
	[ -n "$up" ] || { tail -n 20 "$TMP/out/fleetcert-$n.log" >&2; die "fleetcert did not start with $n certificates"; }
	startup=$(python3 -c "import time; print(f'{time.time() - $t0:.2f}')")
	rss_idle=$(rss "$FC_PID" VmRSS)

	results=()
	for op in describe update list-by-ca; do
		l0=$(load1)
		timeout 600 "$BENCH" --endpoint "$url" --access-key-id "$ACCESS_KEY_ID" --secret-access-key "$SECRET_ACCESS_KEY" \
			--op "$op" --ids-file "$TMP/ids-sample" --ca-certificate-id "$CA_ID" --pages "$PAGES" \
			--concurrency "$CONCURRENCY" --duration "$DURATION" --json >"$TMP/out/$op-$n.txt" 2>"$TMP/out/$op-$n.log"
		rc=$?
		grep -v '^{' "$TMP/out/$op-$n.txt" | sed "s/^/  $n | /"
		echo "  $n |     load average $l0 before, $(load1) after; server VmRSS $(rss "$FC_PID" VmRSS) MiB"
		[ "$rc" = 0 ] || { log "$op at $n: exit $rc"; tail -n 3 "$TMP/out/$op-$n.log" >&2; }
	done
	rss_peak=$(rss "$FC_PID" VmHWM)
	rss_end=$(rss "$FC_PID" VmRSS)
	rss_anon=$(rss "$FC_PID" RssAnon)
	rss_file=$(rss "$FC_PID" RssFile)
	stop_pid "$FC_PID" fleetcert
	FC_PID=
	echo "  $n | seed: $(head -n 1 "$TMP/out/seed-$n.txt" 2>/dev/null)"
	echo "  $n | $(head -n 1 "$TMP/out/view-$n.txt")"
	echo "  $n | serve: /healthz after ${startup}s; VmRSS ${rss_idle} MiB idle, ${rss_end} MiB after the loads, peak (VmHWM) ${rss_peak} MiB; at the end ${rss_anon} MiB anonymous (heap, stacks), ${rss_file} MiB file-backed (the store's memory map: page cache)"
	echo "  $n | store: $bytes bytes, $(((bytes - base_bytes) / n)) bytes per certificate beyond the empty store's $base_bytes"
	printf '%s\n' "{\"size\":$n,\"store\":\"$STORE\",\"startupSeconds\":$startup,\"rssIdleMiB\":${rss_idle:-0},\"rssEndMiB\":${rss_end:-0},\"rssPeakMiB\":${rss_peak:-0},\"rssAnonMiB\":${rss_anon:-0},\"rssFileMiB\":${rss_file:-0},\"storeBytes\":$bytes,\"emptyStoreBytes\":$base_bytes}" >"$TMP/out/serve-$n.json"
done

# --- the table --------------------------------------------------------------
python3 - "$TMP/out" "$SIZES" "$STORE" <<'PY'
import json, os, sys
out, sizes, store = sys.argv[1], [int(s) for s in sys.argv[2].split()], sys.argv[3]
def last_json(path):
    try:
        with open(path) as f:
            lines = [l for l in f if l.startswith("{")]
        return json.loads(lines[-1]) if lines else None
    except OSError:
        return None
def op(n, name):
    rep = last_json(os.path.join(out, f"{name}-{n}.txt"))
    return (rep or {}).get("results", [None])[0] if rep else None
rows = []
for n in sizes:
    d, u, l = op(n, "describe"), op(n, "update"), op(n, "list-by-ca")
    v = last_json(os.path.join(out, f"view-{n}.txt")) or {}
    s = last_json(os.path.join(out, f"serve-{n}.json")) or {}
    seed = last_json(os.path.join(out, f"seed-{n}.txt")) or {}
    f = lambda r, k, fmt="{:.2f}": "n/a" if not r else fmt.format(r[k])
    rows.append([f"{n:,}",
        f(d, "opsPerSec", "{:.0f}") + f" ({f(d, 'p50ms')} / {f(d, 'p99ms')})",
        f(u, "opsPerSec", "{:.0f}") + f" ({f(u, 'p50ms')} / {f(u, 'p99ms')})",
        f(l, "p50ms") + " / " + f(l, "p99ms") + " / " + f(l, "maxMs"),
        f"{v.get('loadSeconds', 0):.2f} s, {v.get('retainedBytes', 0) / 2**20:.1f} MiB ({v.get('bytesPerCert', 0):.0f} B/cert), peak RSS {v.get('peakRssBytes', 0) / 2**20:.0f} MiB",
        f"{s.get('startupSeconds', 0):.1f} s",
        f"{s.get('rssEndMiB', 0):.0f} / {s.get('rssPeakMiB', 0):.0f} MiB ({s.get('rssAnonMiB', 0):.0f} anon)",
        f"{(s.get('storeBytes', 0) - s.get('emptyStoreBytes', 0)) / n:.0f}",
        f"{seed.get('perSecond', 0):.0f}/s" if seed else "-"])
hdr = ["certificates", "Describe ops/s (p50/p99 ms)", "Update ops/s (p50/p99 ms)", "ByCA page p50/p99/max ms",
       "admission view load", "serve start", "server RSS end/peak", "store B/cert", "seed rate"]
print()
print(f"store: {store}")
print("| " + " | ".join(hdr) + " |")
print("|" + "---|" * len(hdr))
for r in rows:
    print("| " + " | ".join(r) + " |")
PY
