package sqlite

import (
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// openWALTest opens a database at dir/name in WAL mode through vfs ("" for
// SQLite's default), with one connection and no automatic checkpoint, with
// a table t of a text column indexed twice, and the extra pragmas.
func openWALTest(t testing.TB, dir, name, vfs string, pragmas ...string) *sql.DB {
	t.Helper()
	if err := registerWALVFS(); err != nil {
		t.Fatal(err)
	}
	dsn := filepath.Join(dir, name) + "?_journal_mode=WAL&_synchronous=NORMAL&_pragma=wal_autocheckpoint(0)"
	for _, p := range pragmas {
		dsn += "&_pragma=" + p
	}
	if vfs != "" {
		dsn += "&vfs=" + vfs
	}
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		t.Fatal(err)
	}
	db.SetMaxOpenConns(1)
	t.Cleanup(func() { db.Close() })
	mustExec(t, db, `CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, v TEXT NOT NULL)`)
	mustExec(t, db, `CREATE INDEX IF NOT EXISTS t_by_v ON t (v)`)
	mustExec(t, db, `CREATE INDEX IF NOT EXISTS t_by_v_id ON t (v, id)`)
	return db
}

func mustExec(t testing.TB, db *sql.DB, query string, args ...any) {
	t.Helper()
	if _, err := db.Exec(query, args...); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
}

// insertRows inserts n rows of random-ordered values of size bytes from id
// first, in one transaction.
func insertRows(t testing.TB, db *sql.DB, first, n, size int) {
	t.Helper()
	tx, err := db.Begin()
	if err != nil {
		t.Fatal(err)
	}
	for i := first; i < first+n; i++ {
		v := fmt.Sprintf("%08x", uint32(i)*2654435761) + strings.Repeat("v", size)
		if _, err := tx.Exec(`INSERT INTO t (id, v) VALUES (?, ?)`, i, v); err != nil {
			t.Fatal(err)
		}
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
}

// writeCalls returns this process's write system calls so far (syscw in
// /proc/self/io).
func writeCalls(t *testing.T) int {
	t.Helper()
	b, err := os.ReadFile("/proc/self/io")
	if err != nil {
		t.Skipf("no /proc/self/io: %v", err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "syscw: "); ok {
			n, err := strconv.Atoi(v)
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Skip("no syscw in /proc/self/io")
	return 0
}

// walFrames returns the frames in db's WAL (no checkpoint runs).
func walFrames(t *testing.T, db *sql.DB) int {
	t.Helper()
	var busy, frames, copied int
	if err := db.QueryRow(`PRAGMA wal_checkpoint(PASSIVE)`).Scan(&busy, &frames, &copied); err != nil {
		t.Fatal(err)
	}
	return frames
}

// TestWALVFS_WritesPerCommit: SQLite writes each WAL frame with two write
// calls; through the WAL VFS a commit of ~34 frames (140 KB) takes three:
// two pieces of at most maxUnixWrite, then its commit frame's page. The
// same commits through SQLite's default VFS are the comparison.
func TestWALVFS_WritesPerCommit(t *testing.T) {
	const commits, rows = 50, 15
	for _, tt := range []struct {
		vfs         string
		minPerFrame float64 // write calls per WAL frame, at least
		maxPerFrame float64 // and at most
	}{
		{vfs: "", minPerFrame: 2, maxPerFrame: 2.5},
		{vfs: walVFSName, maxPerFrame: 0.15},
	} {
		t.Run("vfs="+tt.vfs, func(t *testing.T) {
			db := openWALTest(t, t.TempDir(), "w.db", tt.vfs)
			insertRows(t, db, 0, 1000, 40) // an index of many pages
			before, framesBefore := writeCalls(t), walFrames(t, db)
			for c := range commits {
				insertRows(t, db, 1000+c*rows, rows, 40)
			}
			calls, frames := writeCalls(t)-before, walFrames(t, db)-framesBefore
			perCommit, perFrame := float64(calls)/commits, float64(calls)/float64(frames)
			t.Logf("%d commits, %d WAL frames, %d write calls: %.1f per commit, %.2f per frame", commits, frames, calls, perCommit, perFrame)
			if frames < 5*commits {
				t.Fatalf("%d frames for %d commits: want several per commit for the test to mean anything", frames, commits)
			}
			if perFrame < tt.minPerFrame {
				t.Errorf("%.2f write calls per frame, want at least %.0f", perFrame, tt.minPerFrame)
			}
			if perFrame > tt.maxPerFrame {
				t.Errorf("%.2f write calls per frame, want at most %.2f", perFrame, tt.maxPerFrame)
			}
		})
	}
}

// TestWALVFS_CommitsReachTheFile: every commit through the WAL VFS is in
// the files as soon as it returns, for another connection and for a copy
// of the files taken at that moment, as a crash of the process would leave
// them (opening the copy recovers the WAL from its frames and checksums):
// small commits, commits larger than what the VFS holds at once, a
// transaction rolled back after SQLite spilled its frames to the WAL (whose
// frames the next commit overwrites), a transaction that wrote a spilled
// page again (SQLite then rewrites its frames' headers in place), and after
// the WAL starts over.
func TestWALVFS_CommitsReachTheFile(t *testing.T) {
	dir := t.TempDir()
	// A page cache of 20 pages: a transaction of more spills to the WAL.
	db := openWALTest(t, dir, "c.db", walVFSName, "cache_size(20)")
	other := openWALTest(t, dir, "c.db", "")
	rows := 0
	check := func(step string) {
		t.Helper()
		var n int
		if err := other.QueryRow(`SELECT count(*) FROM t`).Scan(&n); err != nil || n != rows {
			t.Fatalf("%s: another connection counts %d rows, %v; want %d", step, n, err, rows)
		}
		crash := t.TempDir()
		for _, name := range []string{"c.db", "c.db-wal"} {
			b, err := os.ReadFile(filepath.Join(dir, name))
			if err != nil {
				t.Fatalf("%s: %v", step, err)
			}
			if err := os.WriteFile(filepath.Join(crash, name), b, 0o600); err != nil {
				t.Fatal(err)
			}
		}
		copied := openWALTest(t, crash, "c.db", "")
		var ok string
		if err := copied.QueryRow(`PRAGMA integrity_check`).Scan(&ok); err != nil || ok != "ok" {
			t.Fatalf("%s: the files as a crash leaves them: integrity_check %q, %v", step, ok, err)
		}
		if err := copied.QueryRow(`SELECT count(*) FROM t`).Scan(&n); err != nil || n != rows {
			t.Fatalf("%s: the files as a crash leaves them hold %d rows, %v; want %d", step, n, err, rows)
		}
		copied.Close()
	}
	for i := range 5 {
		insertRows(t, db, rows, 3, 10)
		rows += 3
		check(fmt.Sprintf("small commit %d", i))
	}
	insertRows(t, db, rows, 3000, 500) // ~3 MiB of frames: held and sent in pieces
	rows += 3000
	check("a commit of ~3 MiB")

	tx, err := db.Begin()
	if err != nil {
		t.Fatal(err)
	}
	for i := range 500 {
		if _, err := tx.Exec(`INSERT INTO t (id, v) VALUES (?, ?)`, 1_000_000+i, strings.Repeat("r", 400)); err != nil {
			t.Fatal(err)
		}
	}
	if err := tx.Rollback(); err != nil {
		t.Fatal(err)
	}
	insertRows(t, db, rows, 200, 100)
	rows += 200
	check("a commit over a rolled-back transaction's spilled frames")

	tx, err = db.Begin()
	if err != nil {
		t.Fatal(err)
	}
	for i := range 400 {
		if _, err := tx.Exec(`INSERT INTO t (id, v) VALUES (?, ?)`, rows+i, strings.Repeat("s", 300)); err != nil {
			t.Fatal(err)
		}
	}
	// The first rows' pages were spilled; writing them again rewrites
	// their frames in place.
	if _, err := tx.Exec(`UPDATE t SET v = v || 'x' WHERE id < 10`); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	rows += 400
	check("a commit that wrote spilled pages again")

	var busy, frames, copied int
	if err := other.QueryRow(`PRAGMA wal_checkpoint(RESTART)`).Scan(&busy, &frames, &copied); err != nil || busy != 0 {
		t.Fatalf("checkpoint: busy %d, %v", busy, err)
	}
	insertRows(t, db, rows, 20, 10)
	rows += 20
	check("the first commit after the WAL started over")
	var updated int
	if err := other.QueryRow(`SELECT count(*) FROM t WHERE id < 10 AND v LIKE '%x'`).Scan(&updated); err != nil || updated != 10 {
		t.Fatalf("%d rows updated, %v; want 10", updated, err)
	}
}

// BenchmarkWALCommit is one commit of 15 rows into a table with two
// indexes (~34 WAL frames, 140 KB), through SQLite's default VFS and
// through the WAL VFS.
func BenchmarkWALCommit(b *testing.B) {
	for _, vfs := range []string{"", walVFSName} {
		b.Run("vfs="+vfs, func(b *testing.B) {
			db := openWALTest(b, b.TempDir(), "b.db", vfs)
			insertRows(b, db, 0, 1000, 40)
			next := 1000
			for b.Loop() {
				insertRows(b, db, next, 15, 40)
				next += 15
				if next%15000 == 0 { // keep the WAL from growing without end
					b.StopTimer()
					mustExec(b, db, `PRAGMA wal_checkpoint(RESTART)`)
					b.StartTimer()
				}
			}
		})
	}
}
