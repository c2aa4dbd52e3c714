// Package sqlite implements fleetcert.Store on SQLite (modernc.org/sqlite,
// pure Go), the embedded default store.
package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/fleetcert/fleetcert"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

//go:embed migration/*.sql
var migrationFS embed.FS

// BusyTimeout is how long a statement waits for a lock held by another
// connection, such as `fleetcert keys create` writing to the file while the
// server runs, before it fails with SQLITE_BUSY.
const BusyTimeout = 10 * time.Second

// DB is a fleetcert.Store in one SQLite database file. Create it with NewDB,
// set its fields, then call Open.
//
// Writes go through a single connection whose transactions begin with BEGIN
// IMMEDIATE, so an Update holds the write lock from its first statement and
// a read-check-write in it is atomic, in this process and against other
// processes on the same file. Reads use a pool of read-only connections and
// run concurrently with the writer (WAL).
type DB struct {
	// Path is the database file; its directory is created when missing.
	// The file is created with mode 0600: it holds access-key secrets.
	Path string

	// Now returns the current time; it stamps applied migrations. Tests
	// replace it.
	Now func() time.Time

	write *sql.DB  // one connection, BEGIN IMMEDIATE
	read  *sql.DB  // query_only connections
	lock  *os.File // shared lock on LockPath(Path): Restore waits for none

	writeStmts *statements
	readStmts  *statements

	writer writer // takes turns on the write connection (group commit)

	stamps *commitStamps // the WAL index's header; nil where it cannot be read
}

// Check that *DB implements the contract.
var _ fleetcert.Store = (*DB)(nil)

// NewDB returns a DB on the file at path. Call Open before using it.
func NewDB(path string) *DB {
	return &DB{Path: path, Now: time.Now}
}

// Open creates the database file if needed, configures it and applies the
// schema migrations it does not have yet.
func (db *DB) Open() (err error) {
	if db.Path == "" {
		return fmt.Errorf("open database: path required")
	} else if strings.ContainsRune(db.Path, '?') || strings.HasPrefix(db.Path, "file:") || strings.HasPrefix(db.Path, ":memory:") {
		// The driver reads everything after '?' as its parameters, and an
		// in-memory database would differ per connection.
		return fmt.Errorf("open database %s: the path must be a plain file name", db.Path)
	}
	if db.Now == nil {
		db.Now = time.Now
	}
	if err := os.MkdirAll(filepath.Dir(db.Path), 0o700); err != nil {
		return fmt.Errorf("open database: %w", err)
	}
	// A shared lock for as long as the store is open, so that Restore
	// never replaces the file under a process that uses it.
	db.lock, err = lockFile(LockPath(db.Path), false)
	if errors.Is(err, errLocked) {
		return fmt.Errorf("open database %s: it is being restored (fleetcert restore); start again when that is done", db.Path)
	} else if err != nil {
		return fmt.Errorf("open database: %w", err)
	}
	defer func() {
		if err != nil {
			db.Close()
		}
	}()
	// Create the file ourselves: SQLite would create it with 0644, and it
	// holds access-key secrets. SQLite gives the -wal and -shm files the
	// permissions of the database file.
	f, err := os.OpenFile(db.Path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("open database: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("open database: %w", err)
	}

	params := "?_busy_timeout=" + strconv.FormatInt(BusyTimeout.Milliseconds(), 10)
	if strconv.IntSize == 64 {
		// Read pages through a memory map of the file rather than a read
		// system call per page missing from the connection's small cache:
		// about a third less time per single-row read (BenchmarkCertificate)
		// and faster scans. SQLite caps the map at its compiled maximum
		// (2 GiB) and reads the rest of a larger file as usual. The cost: a
		// disk read error surfaces as SIGBUS rather than SQLITE_IOERR.
		params += "&_pragma=mmap_size(1073741824)"
	}
	// Durability: WAL with synchronous=NORMAL. A commit returns once its
	// frames are written to the WAL file, that is, handed to the operating
	// system, so every acknowledged write survives a crash of the process
	// (kill -9). Only a power loss or kernel crash can lose the last commits
	// before the next checkpoint fsyncs them; the database is never corrupted.
	// synchronous=FULL would fsync every commit, which costs most of the
	// insert rate on ordinary disks; fleetcert promises to survive a crash of
	// the process (TestDB_KillDurability), not of the machine.
	//
	// temp_store=MEMORY keeps the sub-journal of the savepoints group
	// commit runs each Update in (the pages it changed, as they were
	// before) in memory: past 64 KiB SQLite spills it to a temporary file,
	// a write system call per page, which cost a registration as much as
	// its share of the commit.
	//
	// vfs: the WAL's writes go to the kernel in two system calls per
	// commit rather than two per page (walvfs.go).
	if err := registerWALVFS(); err != nil {
		return fmt.Errorf("open database %s: %w", db.Path, err)
	}
	db.write, err = sql.Open("sqlite", db.Path+params+
		"&_journal_mode=WAL&_synchronous=NORMAL&_foreign_keys=1&_txlock=immediate&_pragma=temp_store(MEMORY)&vfs="+walVFSName)
	if err != nil {
		return fmt.Errorf("open database %s: %w", db.Path, err)
	}
	// One writer: SQLite has one write lock per file anyway, and queuing in
	// the pool is cheaper than spinning on SQLITE_BUSY. The connection stays
	// open so its prepared statements stay prepared.
	db.write.SetMaxOpenConns(1)
	db.write.SetMaxIdleConns(1)
	db.write.SetConnMaxLifetime(0)
	db.write.SetConnMaxIdleTime(0)
	if err := db.migrate(context.Background()); err != nil {
		return fmt.Errorf("open database %s: %w", db.Path, err)
	}
	if err := db.backfillCertificates(context.Background()); err != nil {
		return fmt.Errorf("open database %s: %w", db.Path, err)
	}

	// The write connection is open in WAL mode, so the WAL index exists.
	// Without its mapping, CommitStamp says it cannot tell, and readers
	// read the feed instead: slower, as correct.
	db.stamps, _ = openCommitStamps(db.Path)
	if db.stamps != nil {
		if _, ok := db.stamps.frames(); ok {
			// Checkpoints run beside the writer (checkpointer).
			ck, err := sql.Open("sqlite", db.Path+params+"&_journal_mode=WAL&_synchronous=NORMAL")
			if err != nil {
				return fmt.Errorf("open database %s: %w", db.Path, err)
			}
			ck.SetMaxOpenConns(1)
			ck.SetMaxIdleConns(1)
			ck.SetConnMaxLifetime(0)
			ck.SetConnMaxIdleTime(0)
			if _, err := db.write.Exec("PRAGMA wal_autocheckpoint = 0"); err != nil {
				ck.Close()
				return fmt.Errorf("open database %s: %w", db.Path, err)
			}
			db.writer.ckpt = startCheckpointer(ck, db.stamps.frames)
		}
	}

	db.read, err = sql.Open("sqlite", db.Path+params+"&_query_only=1")
	if err != nil {
		return fmt.Errorf("open database %s: %w", db.Path, err)
	}
	n := max(4, 2*runtime.GOMAXPROCS(0))
	db.read.SetMaxOpenConns(n)
	db.read.SetMaxIdleConns(n)
	db.read.SetConnMaxLifetime(0)
	db.read.SetConnMaxIdleTime(0)

	if db.writeStmts, err = prepare(db.write); err != nil {
		return fmt.Errorf("open database %s: %w", db.Path, err)
	}
	if err = db.writeStmts.prepareBatch(db.write); err != nil {
		return fmt.Errorf("open database %s: %w", db.Path, err)
	}
	if db.readStmts, err = prepare(db.read); err != nil {
		return fmt.Errorf("open database %s: %w", db.Path, err)
	}
	return nil
}

// Close closes the database. Pending Views and Updates fail.
func (db *DB) Close() error {
	errs := []error{db.writer.ckpt.close()}
	db.writer.ckpt = nil
	for _, p := range []*sql.DB{db.read, db.write} {
		if p != nil {
			errs = append(errs, p.Close())
		}
	}
	db.stamps.close()
	db.stamps = nil
	if db.lock != nil {
		errs = append(errs, db.lock.Close()) // after the pools: no connection outlives the lock
		db.lock = nil
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("close database %s: %w", db.Path, err)
	}
	return nil
}

// View runs fn on the read-only connections. Each statement runs on its
// own, in autocommit mode, and sees the latest committed state (the Store
// contract asks no more of View). Not opening a transaction halves the
// cost of a single-row read: BEGIN and ROLLBACK are two more statements
// for SQLite to run, and database/sql watches each transaction's context.
func (db *DB) View(ctx context.Context, fn func(fleetcert.Tx) error) error {
	return fn(&Tx{stmts: db.readStmts, pool: db.read})
}

// Update runs fn in a write transaction that holds the database's write lock
// from its start (BEGIN IMMEDIATE) and returns once that transaction has
// committed. An error from fn undoes what fn did and is returned unchanged.
// fn must not call Update itself: the writer is one connection.
//
// Concurrent Updates share transactions (group commit, see writer): each
// runs its fn alone on the connection, in turn, in the transaction the
// first of them began (each later one inside a savepoint), and one commit
// makes all of them durable. Each still succeeds or fails alone: a failing
// fn is undone, leaving the others' writes; a failed commit fails every
// Update of the group, none of whose writes then exists.
func (db *DB) Update(ctx context.Context, fn func(fleetcert.Tx) error) error {
	return db.writer.update(ctx, db, shared, fn)
}

// UpdateFailFirst implements fleetcert.FailFirstUpdater: Update without
// the member's savepoint, for an fn that can fail only before it has
// changed a row. Under 16 clients registering certificates, the
// savepoints (their SAVEPOINT and RELEASE, and the copy of each page a
// member changes that they keep) were ~9 % of the server's CPU
// (BENCHMARKS.md, "Registrations without a savepoint").
func (db *DB) UpdateFailFirst(ctx context.Context, fn func(fleetcert.Tx) error) error {
	return db.writer.update(ctx, db, failFirst, fn)
}

// UpdateBulk implements fleetcert.BulkUpdater: Update in a transaction
// shared with no other Update, for writes of many rows (imports, a job's
// batch, pruning): a savepoint keeps a copy in memory of every page its
// member changes. A batch of 1,000 imported certificates spent 17 % of the
// writer's time copying pages into one (memjrnlWrite, sqlite3_malloc) when
// it joined a group; a transaction of its own costs one commit.
func (db *DB) UpdateBulk(ctx context.Context, fn func(fleetcert.Tx) error) error {
	return db.writer.update(ctx, db, alone, fn)
}

// ReportCommits implements fleetcert.CommitReporter: the writer keeps a
// copy of each change its transaction appends, and hands them to fn once
// it commits (writer.end).
func (db *DB) ReportCommits(fn func(fleetcert.Commit)) {
	db.writer.mu.Lock()
	defer db.writer.mu.Unlock()
	db.writer.reporters = append(db.writer.reporters, fn)
	db.writer.stamp = db.CommitStamp
}

// Check that *DB reports its commits.
var _ fleetcert.CommitReporter = (*DB)(nil)

// Check that *DB runs bulk Updates alone.
var _ fleetcert.BulkUpdater = (*DB)(nil)

// CommitStamp implements fleetcert.CommitStamper from the WAL index's
// header (commitStamps), which every process's commit rewrites.
func (db *DB) CommitStamp() (uint64, bool) {
	if db.stamps == nil {
		return 0, false
	}
	return db.stamps.stamp()
}

// Check that *DB offers commit stamps.
var _ fleetcert.CommitStamper = (*DB)(nil)

// Tx is a transaction on a DB; it implements fleetcert.Tx. It is valid only
// inside the function given to View or Update.
type Tx struct {
	tx       *sql.Tx // nil in a View: statements run on the read pool
	pool     *sql.DB // the read pool, in a View
	stmts    *statements
	writable bool

	// reported collects copies of the change-feed entries appended, in a
	// write group's transaction when the store reports its commits
	// (DB.ReportCommits); report says whether to.
	report   bool
	reported []fleetcert.Change

	// bound holds the statements already bound to tx, so that a
	// transaction running one many times (a bulk job's thousands of
	// changes and audit entries) binds it once: each Tx.StmtContext
	// allocates a statement the transaction keeps until it ends.
	bound []boundStmt

	// changed counts the statements run in tx that changed rows, so that
	// the writer can tell whether an Update without a savepoint that
	// failed changed any (writer.undo).
	changed int

	// numbered is the certificate id CreateCertificate numbered or looked
	// up last (numberSubject) and its number, so that the audit entry that follows
	// it needs no lookup; the writer clears it when it undoes a member,
	// whose number SQLite may then give another id.
	numbered struct {
		id string
		n  int64
	}
}

type boundStmt struct{ prepared, bound *sql.Stmt }

// querier runs a statement that is not prepared.
type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// query returns where to run a statement that is not prepared: the
// transaction, or in a View the read pool.
func (tx *Tx) query() querier {
	if tx.tx != nil {
		return tx.tx
	}
	return tx.pool
}

// queryAdhoc runs query, a listing built for its filters, as a statement
// prepared once (see adhocStatements).
func (tx *Tx) queryAdhoc(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	s, err := tx.stmts.adhoc.get(ctx, query)
	if err != nil {
		return nil, err
	}
	if s == nil {
		return tx.query().QueryContext(tx.context(ctx), query, args...)
	}
	return tx.stmt(ctx, s).QueryContext(ctx, args...)
}

// Check that *Tx implements the contract.
var _ fleetcert.Tx = (*Tx)(nil)

// stmt returns s bound to the transaction, binding it on first use.
// database/sql reuses the statement already prepared on the transaction's
// connection. The binding is kept for the group's later Updates, so it
// does not take ctx, this caller's: bound under a context that had ended,
// it would keep that context's error for them all.
func (tx *Tx) stmt(ctx context.Context, s *sql.Stmt) stmt {
	if tx.tx == nil {
		return stmt{Stmt: s, tx: tx}
	}
	for _, b := range tx.bound {
		if b.prepared == s {
			return stmt{Stmt: b.bound, tx: tx}
		}
	}
	b := tx.tx.StmtContext(context.WithoutCancel(ctx), s)
	tx.bound = append(tx.bound, boundStmt{s, b})
	return stmt{Stmt: b, tx: tx}
}

// context returns the context a statement of tx runs with. In a write
// transaction, which the writer's group of Updates shares, a statement
// runs to its end once it has begun, whatever becomes of ctx: the driver
// interrupts a statement whose context ends while it runs, and SQLite rolls
// the whole transaction back when it interrupts a write
// (https://sqlite.org/c3ref/interrupt.html), so one caller whose client
// went away would fail every other Update of its group. A ctx that has
// ended before a statement begins still fails it, with ctx's error, and
// the writer undoes that Update alone. Statements here take microseconds,
// the longest a bulk batch's milliseconds. A View's statements, on the
// read pool, still stop when ctx ends.
func (tx *Tx) context(ctx context.Context) context.Context {
	if tx.tx == nil || ctx.Err() != nil {
		return ctx
	}
	return context.WithoutCancel(ctx)
}

// stmt is a prepared statement ready to run in a Tx: with the Tx's
// context for ctx (Tx.context).
type stmt struct {
	*sql.Stmt
	tx *Tx
}

func (s stmt) ExecContext(ctx context.Context, args ...any) (sql.Result, error) {
	res, err := s.Stmt.ExecContext(s.tx.context(ctx), args...)
	if err == nil {
		if n, _ := res.RowsAffected(); n > 0 {
			s.tx.changed++
		}
	}
	return res, err
}

// QueryContext runs s. A statement that changes rows and returns some
// (UPDATE … RETURNING) counts itself in Tx.changed.
func (s stmt) QueryContext(ctx context.Context, args ...any) (*sql.Rows, error) {
	return s.Stmt.QueryContext(s.tx.context(ctx), args...)
}

func (s stmt) QueryRowContext(ctx context.Context, args ...any) *sql.Row {
	return s.Stmt.QueryRowContext(s.tx.context(ctx), args...)
}

// checkWritable refuses writes in a View, before SQLite's query_only does
// with a less helpful message.
func (tx *Tx) checkWritable(op string) error {
	if !tx.writable {
		return fmt.Errorf("%s: read-only transaction (use Update)", op)
	}
	return nil
}

// storeError translates a driver error into the domain: no row becomes
// ResourceNotFoundException, a unique-key violation
// ResourceAlreadyExistsException; anything else is wrapped as an internal
// failure. what names the record, as "certificate 0a1b…".
func storeError(err error, what string) error {
	if err == nil {
		return nil
	} else if errors.Is(err, sql.ErrNoRows) {
		return fleetcert.Errorf(fleetcert.EResourceNotFound, "The %s does not exist.", what)
	}
	var se *sqlite.Error
	if errors.As(err, &se) {
		switch se.Code() {
		case sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY, sqlite3.SQLITE_CONSTRAINT_UNIQUE:
			return fleetcert.Errorf(fleetcert.EResourceAlreadyExists, "The %s already exists.", what)
		}
	}
	return fmt.Errorf("%s: %w", what, err)
}

// migrate applies, in one write transaction, the embedded migrations newer
// than the database's schema version. BEGIN IMMEDIATE makes two processes
// opening a new file at once apply them once.
func (db *DB) migrate(ctx context.Context) error { return db.migrateTo(ctx, math.MaxInt) }

// migrateTo is migrate up to version last (tests build older stores).
func (db *DB) migrateTo(ctx context.Context, last int) error {
	ms, err := migrations()
	if err != nil {
		return err
	}

	tx, err := db.write.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    INTEGER PRIMARY KEY,
		name       TEXT    NOT NULL,
		applied_at INTEGER NOT NULL
	) STRICT`); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	var current int
	if err := tx.QueryRowContext(ctx, `SELECT coalesce(max(version), 0) FROM schema_migrations`).Scan(&current); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	if latest := ms[len(ms)-1].version; current > latest {
		return fmt.Errorf("schema version %d is newer than this build knows (%d); run a newer fleetcert", current, latest)
	}
	for _, m := range ms {
		if m.version <= current || m.version > last {
			continue
		}
		body, err := fs.ReadFile(migrationFS, m.name)
		if err != nil {
			return fmt.Errorf("migration %s: %w", m.name, err)
		}
		if _, err := tx.ExecContext(ctx, string(body)); err != nil {
			return fmt.Errorf("migration %s: %w", m.name, err)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)`,
			m.version, filepath.Base(m.name), db.Now().UTC().UnixNano()); err != nil {
			return fmt.Errorf("migration %s: %w", m.name, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	return nil
}

// migration is one embedded schema migration.
type migration struct {
	version int
	name    string // path in migrationFS
}

// migrations returns the embedded migrations in version order.
func migrations() ([]migration, error) {
	names, err := fs.Glob(migrationFS, "migration/*.sql")
	if err != nil {
		return nil, err
	}
	var ms []migration
	for _, name := range names {
		base := filepath.Base(name)
		prefix, _, _ := strings.Cut(base, "_")
		v, err := strconv.Atoi(prefix)
		if err != nil || v <= 0 {
			return nil, fmt.Errorf("migration %s: name must start with a positive version number", base)
		}
		ms = append(ms, migration{version: v, name: name})
	}
	sort.Slice(ms, func(i, j int) bool { return ms[i].version < ms[j].version })
	for i := 1; i < len(ms); i++ {
		if ms[i].version == ms[i-1].version {
			return nil, fmt.Errorf("migrations %s and %s have the same version", ms[i-1].name, ms[i].name)
		}
	}
	return ms, nil
}

// Limits of a time stored as int64 Unix nanoseconds.
var (
	minNanoTime = time.Unix(0, math.MinInt64)
	maxNanoTime = time.Unix(0, math.MaxInt64)
)

// encoder converts domain values to column values, keeping the first error.
type encoder struct{ err error }

// nanos returns t as Unix nanoseconds, or NULL for the zero time.
func (e *encoder) nanos(t time.Time) sql.NullInt64 {
	if t.IsZero() {
		return sql.NullInt64{}
	} else if t.Before(minNanoTime) || t.After(maxNanoTime) {
		if e.err == nil {
			e.err = fmt.Errorf("time %s is outside the years 1678-2262 the store keeps", t)
		}
		return sql.NullInt64{}
	}
	return sql.NullInt64{Int64: t.UnixNano(), Valid: true}
}

// micros returns t as Unix microseconds, or NULL for the zero time.
func (e *encoder) micros(t time.Time) sql.NullInt64 {
	if t.IsZero() {
		return sql.NullInt64{}
	}
	return sql.NullInt64{Int64: t.UnixMicro(), Valid: true}
}

// fromNanos is the inverse of encoder.nanos.
func fromNanos(n sql.NullInt64) time.Time {
	if !n.Valid {
		return time.Time{}
	}
	return time.Unix(0, n.Int64).UTC()
}

// fromMicros is the inverse of encoder.micros.
func fromMicros(n sql.NullInt64) time.Time {
	if !n.Valid {
		return time.Time{}
	}
	return time.UnixMicro(n.Int64).UTC()
}

// statements are the prepared statements of one connection pool. Preparing
// once saves SQLite's parse and plan on every call.
type statements struct {
	// A write group's member savepoint (writer.go), prepared once rather
	// than parsed twice per member.
	savepoint, release, rollbackTo *sql.Stmt

	certificate             *sql.Stmt
	insertCertificate       *sql.Stmt
	updateCertificate       *sql.Stmt
	updateCertificateStatus *sql.Stmt
	statusesByCA            *sql.Stmt
	deleteCertificate       *sql.Stmt
	listCertificates        [2][certificateFilters]*sql.Stmt // [ascending][filters]

	ca       *sql.Stmt
	casByID  *sql.Stmt
	insertCA *sql.Stmt
	updateCA *sql.Stmt
	deleteCA *sql.Stmt
	listCAs  [2][caFilters]*sql.Stmt // [ascending][filters]

	registrationCode       *sql.Stmt
	putRegistrationCode    *sql.Stmt
	deleteRegistrationCode *sql.Stmt

	putTransfer    *sql.Stmt
	latestTransfer *sql.Stmt

	accessKey            *sql.Stmt
	certificatesByID     *sql.Stmt
	certificatesAfter    *sql.Stmt
	certificatesBySerial *sql.Stmt
	unusableByIssuer     *sql.Stmt
	insertAccessKey      *sql.Stmt
	countAccessKeys      *sql.Stmt
	deleteAccessKey      *sql.Stmt
	listAccessKeys       *sql.Stmt

	insertChange     *sql.Stmt
	insertAudit      *sql.Stmt
	insertAuditRange *sql.Stmt
	insertSubject    *sql.Stmt
	subject          *sql.Stmt
	numberSubjects   *sql.Stmt
	fillSubjects     *sql.Stmt
	changes          *sql.Stmt
	changesHorizon   *sql.Stmt
	changesHead      *sql.Stmt

	setting       *sql.Stmt
	insertSetting *sql.Stmt

	expiring       *sql.Stmt
	putExpiring    *sql.Stmt
	deleteExpiring *sql.Stmt
	pruneExpiring  *sql.Stmt

	object        *sql.Stmt
	insertObject  *sql.Stmt
	updateObject  *sql.Stmt
	objectVersion *sql.Stmt
	deleteObject  *sql.Stmt
	listObjects   [objectFilters]*sql.Stmt // [filters]
	link          *sql.Stmt
	insertLink    *sql.Stmt
	deleteLink    *sql.Stmt
	listLinks     [linkListings]*sql.Stmt // [listing]

	adhoc adhocStatements // the listings built for their filters (find.go)

	// The writer's statements of many rows (batch.go), by log2 of their
	// rows; prepared up front, since preparing needs the one write
	// connection that the transaction using them holds.
	updateStatuses, insertChanges [maxBatchShift + 1]*sql.Stmt
	// Registrations stored together (create.go).
	insertSubjects, subjects, held, insertCertificates [maxBatchShift + 1]*sql.Stmt
}

// adhocStatements are the statements built for a listing's filters,
// prepared on first use and kept: preparing was a third of a console page's
// time in the store. Their texts depend only on which filters are set (the
// values are parameters), so there are a few dozen; maxAdhocStatements
// bounds them all the same, and a text beyond it is run unprepared.
type adhocStatements struct {
	pool *sql.DB
	mu   sync.Mutex
	m    map[string]*sql.Stmt
}

const maxAdhocStatements = 256

// get returns the statement of query, preparing it on first use, or nil
// when the cache is full.
func (a *adhocStatements) get(ctx context.Context, query string) (*sql.Stmt, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if s := a.m[query]; s != nil {
		return s, nil
	}
	if len(a.m) >= maxAdhocStatements {
		return nil, nil
	}
	// Preparing under the lock keeps two callers from preparing one text
	// twice; it happens once per text for the life of the process.
	s, err := a.pool.PrepareContext(ctx, query)
	if err != nil {
		return nil, err
	}
	if a.m == nil {
		a.m = make(map[string]*sql.Stmt)
	}
	a.m[query] = s
	return s, nil
}

// prepare prepares every statement on pool p.
func prepare(p *sql.DB) (*statements, error) {
	var s statements
	type entry struct {
		stmt  **sql.Stmt
		query string
	}
	list := []entry{
		{&s.savepoint, "SAVEPOINT member"},
		{&s.release, "RELEASE member"},
		{&s.rollbackTo, "ROLLBACK TO member"},
		{&s.certificate, selectCertificateSQL},
		{&s.insertCertificate, insertCertificateSQL},
		{&s.updateCertificate, updateCertificateSQL},
		{&s.updateCertificateStatus, updateCertificateStatusSQL},
		{&s.statusesByCA, statusesByCASQL},
		{&s.deleteCertificate, deleteCertificateSQL},
		{&s.ca, selectCASQL},
		{&s.casByID, selectCAsByIDSQL},
		{&s.insertCA, insertCASQL},
		{&s.updateCA, updateCASQL},
		{&s.deleteCA, deleteCASQL},
		{&s.registrationCode, selectRegistrationCodeSQL},
		{&s.putRegistrationCode, putRegistrationCodeSQL},
		{&s.deleteRegistrationCode, deleteRegistrationCodeSQL},
		{&s.putTransfer, putTransferSQL},
		{&s.latestTransfer, latestTransferSQL},
		{&s.accessKey, selectAccessKeySQL},
		{&s.certificatesByID, certificatesByIDSQL},
		{&s.certificatesAfter, certificatesAfterSQL},
		{&s.certificatesBySerial, certificatesBySerialSQL},
		{&s.unusableByIssuer, unusableByIssuerSQL},
		{&s.insertAccessKey, insertAccessKeySQL},
		{&s.countAccessKeys, countAccessKeysSQL},
		{&s.deleteAccessKey, deleteAccessKeySQL},
		{&s.listAccessKeys, listAccessKeysSQL},
		{&s.insertChange, insertChangeSQL},
		{&s.insertAudit, insertAuditSQL},
		{&s.insertAuditRange, insertAuditRangeSQL},
		{&s.insertSubject, insertSubjectSQL},
		{&s.subject, subjectSQL},
		{&s.numberSubjects, numberSubjectsSQL},
		{&s.fillSubjects, fillSubjectsSQL},
		{&s.changes, selectChangesSQL},
		{&s.changesHorizon, selectChangesHorizonSQL},
		{&s.changesHead, selectChangesHeadSQL},
		{&s.setting, selectSettingSQL},
		{&s.insertSetting, insertSettingSQL},
		{&s.expiring, selectExpiringSQL},
		{&s.putExpiring, putExpiringSQL},
		{&s.deleteExpiring, deleteExpiringSQL},
		{&s.pruneExpiring, pruneExpiringSQL},
		{&s.object, selectObjectSQL},
		{&s.insertObject, insertObjectSQL},
		{&s.updateObject, updateObjectSQL},
		{&s.objectVersion, selectObjectVersionSQL},
		{&s.deleteObject, deleteObjectSQL},
		{&s.link, selectLinkSQL},
		{&s.insertLink, insertLinkSQL},
		{&s.deleteLink, deleteLinkSQL},
	}
	for f := range objectFilters {
		list = append(list, entry{&s.listObjects[f], listObjectsSQL(f)})
	}
	for l := range linkListings {
		list = append(list, entry{&s.listLinks[l], listLinksSQL(l)})
	}
	for asc := range 2 {
		for f := range certificateFilters {
			list = append(list, entry{&s.listCertificates[asc][f], listCertificatesSQL(asc == 1, f)})
		}
		for f := range caFilters {
			list = append(list, entry{&s.listCAs[asc][f], listCAsSQL(asc == 1, f)})
		}
	}
	for _, st := range list {
		var err error
		if *st.stmt, err = p.Prepare(st.query); err != nil {
			return nil, fmt.Errorf("prepare %q: %w", st.query, err)
		}
	}
	s.adhoc.pool = p
	return &s, nil
}
