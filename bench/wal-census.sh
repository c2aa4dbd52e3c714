#!/usr/bin/env bash
# bench/wal-census.sh — which B-trees a registration's commits write. Starts
# a fleetcert binary on a fresh data dir, runs one fleetcert-bench register
# load against it, kills the server with SIGKILL so that its WAL is left as
# the last commits wrote it, and counts the WAL's frames per commit by the
# table or index each frame's page belongs to (SQLite's dbstat, read from a
# copy of the database with the WAL applied). Each frame is a page written
# by a commit and copied again by the next checkpoint; a page written at a
# random place (an index keyed on a hash) costs one per registration, a
# page at an index's end is shared by the commit's registrations.
#
#   go build -o /tmp/b/fleetcert ./cmd/fleetcert
#   bench/wal-census.sh /tmp/b/fleetcert
#
# Settings (environment): DURATION=4s, CONCURRENCY=16. Needs python3 and
# the sqlite3 command-line shell (Debian: sqlite3). Everything is on
# loopback; every step has a time limit; the server is stopped by PID.
set -uo pipefail

cd "$(dirname "$0")/.." || exit 1
[ $# = 1 ] || { echo "usage: bench/wal-census.sh BINARY" >&2; exit 2; }
BIN=$1
DURATION=${DURATION:-4s}
CONCURRENCY=${CONCURRENCY:-16}
KEY=AKIAFLEETCERTBENCH01
SECRET=fleetcert-bench-secret-0123456789abcdefghij
command -v sqlite3 >/dev/null || { echo "wal-census: needs the sqlite3 shell (apt-get install sqlite3)" >&2; exit 2; }

TMP=$(mktemp -d "${TMPDIR:-/tmp}/fleetcert-census.XXXXXX")
PID=
cleanup() {
	if [ -n "$PID" ] && kill -0 "$PID" 2>/dev/null; then kill -KILL "$PID"; fi
	rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

timeout 600 go build -o "$TMP/fleetcert-bench" ./cmd/fleetcert-bench || exit 1
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'; }
api=$(port) mqtt=$(port)
FLEETCERT_ACCESS_KEY_ID=$KEY FLEETCERT_SECRET_ACCESS_KEY=$SECRET FLEETCERT_ACCOUNT_ID=123456789012 \
	"$BIN" serve --data-dir "$TMP/data" --api-addr "127.0.0.1:$api" --mqtt-addr "127.0.0.1:$mqtt" >"$TMP/server.log" 2>&1 &
PID=$!
for _ in $(seq 1 300); do curl -sf -o /dev/null --max-time 1 "http://127.0.0.1:$api/healthz" && break; sleep 0.2; done
timeout 300 "$TMP/fleetcert-bench" --endpoint "http://127.0.0.1:$api" --access-key-id "$KEY" --secret-access-key "$SECRET" \
	--concurrency "$CONCURRENCY" --duration "$DURATION" --op register --json >"$TMP/out.txt" 2>"$TMP/tool.log" ||
	{ tail -n 5 "$TMP/tool.log" >&2; exit 1; }
kill -KILL "$PID"
wait "$PID" 2>/dev/null
PID=

# The WAL first (opening the database checkpoints and removes it).
cp "$TMP/data/fleetcert.db-wal" "$TMP/wal" && cp "$TMP/data/fleetcert.db" "$TMP/copy.db" &&
	cp "$TMP/data/fleetcert.db-wal" "$TMP/copy.db-wal" || exit 1
timeout 300 sqlite3 "$TMP/copy.db" 'SELECT pageno, name FROM dbstat' >"$TMP/pages" || exit 1
python3 - "$TMP/wal" "$TMP/pages" <<'EOF'
import collections, struct, sys
wal, pages = sys.argv[1], sys.argv[2]
owner = {}
for line in open(pages):
    page, name = line.rstrip("\n").split("|", 1)
    owner[int(page)] = name
b = open(wal, "rb").read()
_, _, size, _, salt1, salt2 = struct.unpack(">6I", b[:24])
commits, frames, off = [], [], 32
while off + 24 + size <= len(b):
    page, commit, s1, s2 = struct.unpack(">4I", b[off:off + 16])
    if (s1, s2) != (salt1, salt2):
        break  # a frame of an earlier pass through the file
    frames.append(page)
    if commit:
        commits.append(frames)
        frames = []
    off += 24 + size
if len(commits) < 4:
    sys.exit(f"wal-census: only {len(commits)} commits in the WAL; run longer")
middle = commits[len(commits) // 4: 3 * len(commits) // 4]  # neither the first nor the last
count = collections.Counter(owner.get(p, "(freed since)") for c in middle for p in c)
print(f"{len(middle)} commits (the middle half of {len(commits)} in the WAL), "
      f"{sum(map(len, middle)) / len(middle):.1f} pages written per commit:")
for name, n in count.most_common():
    print(f"{n / len(middle):7.2f}  {name}")
EOF
python3 - "$TMP/out.txt" "$CONCURRENCY" <<'EOF'
import json, sys
r = [x for x in json.loads(open(sys.argv[1]).read().strip().splitlines()[-1])["results"] if x["phase"] == "timed"][0]
print(f"the load: {r['opsPerSec']:.0f} registrations/s at concurrency {sys.argv[2]}")
EOF
