package postgres

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/fleetcert/fleetcert"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

//go:embed migration/*.sql
var migrationFS embed.FS

// ConnectTimeout bounds each connection attempt when the URL does not set
// connect_timeout: while the server is unreachable, a call fails within it
// with ServiceUnavailableException instead of hanging.
const ConnectTimeout = time.Second

// Advisory locks. Every lock fleetcert takes is in the two-key space
// (lockClass, n), so it cannot collide with another application's one-key
// locks on the same database.
const (
	lockClass     int32 = 0x666c6374 // "flct"
	migrationLock int32 = -1         // held while migrating
	lockBuckets         = 1024       // record keys hash into [0, lockBuckets)
)

// maxAttempts bounds how often Update runs fn when PostgreSQL aborts its
// transaction as a deadlock victim (or a serialization failure).
const maxAttempts = 5

// DB is a fleetcert.Store in one PostgreSQL database, shared by every
// fleetcert process (node) configured with it. Create it with NewDB, set its
// fields, then call Open; or call Open(ctx, url).
type DB struct {
	// URL is the database's connection string, a postgres:// URL or
	// key=value pairs (pgx's ParseConfig). Pool settings (pool_max_conns, …)
	// are honoured; connect_timeout defaults to ConnectTimeout.
	URL string

	// Now returns the current time; it stamps applied migrations. Tests
	// replace it.
	Now func() time.Time

	// Logger receives the change listener's reconnections; nil logs to
	// slog.Default().
	Logger *slog.Logger

	// ListenPing is how long a change listener (NotifyChanges) waits
	// without a notification before it checks that its connection still
	// answers, reconnecting when it does not; 0 means DefaultListenPing.
	ListenPing time.Duration

	pool       *pgxpool.Pool
	connConfig *pgx.ConnConfig // the listeners' connections

	closing context.Context // ends at Close, stopping the listeners
	close   context.CancelFunc
	wg      sync.WaitGroup // the listeners
}

// Check that *DB implements the contract and the notifier.
var (
	_ fleetcert.Store          = (*DB)(nil)
	_ fleetcert.ChangeNotifier = (*DB)(nil)
)

// NewDB returns a DB on the database at url. Call Open before using it.
func NewDB(url string) *DB {
	return &DB{URL: url, Now: time.Now}
}

// Open returns an open DB on the database at url.
func Open(ctx context.Context, url string) (*DB, error) {
	db := NewDB(url)
	if err := db.Open(ctx); err != nil {
		return nil, err
	}
	return db, nil
}

// Open connects to the database and applies the schema migrations it does
// not have yet. Several nodes may open one database at the same moment:
// the migrations are applied once. While the server is unreachable it fails
// with ServiceUnavailableException.
func (db *DB) Open(ctx context.Context) (err error) {
	if db.URL == "" {
		return fmt.Errorf("open database: URL required")
	}
	if db.Now == nil {
		db.Now = time.Now
	}
	if db.Logger == nil {
		db.Logger = slog.Default()
	}
	config, err := pgxpool.ParseConfig(db.URL)
	if err != nil {
		// ParseConfigError masks the password.
		return fmt.Errorf("open database: %w", err)
	}
	if config.ConnConfig.ConnectTimeout == 0 {
		config.ConnConfig.ConnectTimeout = ConnectTimeout
	}
	if _, ok := config.ConnConfig.RuntimeParams["application_name"]; !ok {
		config.ConnConfig.RuntimeParams["application_name"] = "fleetcert"
	}
	db.connConfig = config.ConnConfig.Copy()
	db.connConfig.RuntimeParams["application_name"] += " change listener"
	db.closing, db.close = context.WithCancel(context.Background())
	defer func() {
		if err != nil {
			db.Close()
		}
	}()
	if db.pool, err = pgxpool.NewWithConfig(ctx, config); err != nil {
		return fmt.Errorf("open database: %w", err)
	}
	if err := db.migrate(ctx, config.ConnConfig); err != nil {
		return storeError(ctx, fmt.Errorf("open database: %w", err), "")
	}
	if err := db.backfillSerials(ctx); err != nil {
		return storeError(ctx, fmt.Errorf("open database: %w", err), "")
	}
	return nil
}

// Close stops the change listeners and closes the connections. Pending
// Views and Updates fail.
func (db *DB) Close() error {
	if db.close != nil {
		db.close()
	}
	db.wg.Wait()
	if db.pool != nil {
		db.pool.Close()
	}
	return nil
}

// View runs fn with reads on the pool's connections. Each statement runs
// on its own, outside a transaction, and sees the latest committed state
// (the Store contract asks no more of View): BEGIN and COMMIT would be two
// more round trips for a one-row read.
func (db *DB) View(ctx context.Context, fn func(fleetcert.Tx) error) error {
	return fn(&Tx{q: db.pool})
}

// Update runs fn in a READ COMMITTED transaction and commits it when fn
// returns nil. An error from fn rolls the transaction back and is returned
// unchanged.
//
// Isolation. Rather than SERIALIZABLE, whose conflicts abort transactions
// that must then be retried (on a hot record, such as a certificate being
// revoked by two nodes, some callers would lose the race again and again),
// an Update locks what it reads, and waiters queue:
//
//   - A record read through the Tx is read FOR UPDATE: it stays unchanged
//     until commit, and a reader that waited for another Update gets the
//     record as that one committed it (READ COMMITTED re-reads it). So
//     REVOKED stays REVOKED and a transfer is accepted once.
//   - A record read and not found: the read takes an advisory lock on the
//     record's key and reads again; every insert or upsert takes that lock
//     first. So "absent, then create" is atomic too (a registration code
//     is created once, a bootstrap key stored once).
//   - A set read (CertificatesByID, CACertificatesByID, ListCACertificates by
//     subject) takes the set's key lock in share mode and its rows FOR
//     SHARE; inserts into the set take the key exclusively.
//
// Other lists read in an Update lock the rows they return but not the
// absence of others (the Registry reads no such list in an Update).
//
// Locks are taken when a record is read, before the change feed's lock
// (AppendChange), where the Registry's functions allow: a transaction
// holding the feed's lock then waits for no one that waits for it.
//
// Record keys hash into lockBuckets advisory locks, so a transaction that
// creates thousands of records holds at most that many locks. Two
// transactions locking in opposite orders deadlock; PostgreSQL aborts one
// and Update runs fn again in a new transaction, up to maxAttempts times.
// So fn must have no effect outside the Tx that a second run would repeat
// wrongly; the Registry's functions read what they decide on through the
// Tx and have none.
func (db *DB) Update(ctx context.Context, fn func(fleetcert.Tx) error) error {
	for attempt := 1; ; attempt++ {
		err := db.update(ctx, fn)
		if attempt == maxAttempts || !retryable(err) {
			return err
		}
	}
}

// update runs fn once in a transaction.
func (db *DB) update(ctx context.Context, fn func(fleetcert.Tx) error) error {
	tx, err := db.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.ReadCommitted})
	if err != nil {
		return storeError(ctx, fmt.Errorf("begin transaction: %w", err), "")
	}
	committed := false
	defer func() {
		if !committed { // also when fn panics
			// Bounded: a server gone silent must not hold the caller. A
			// rollback that times out closes the connection, which ends the
			// transaction on the server too.
			rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), ConnectTimeout)
			defer cancel()
			tx.Rollback(rctx)
		}
	}()
	if err := fn(&Tx{q: tx, tx: tx}); err != nil {
		return err
	}
	if err := tx.Commit(ctx); err != nil {
		return storeError(ctx, fmt.Errorf("commit: %w", err), "")
	}
	committed = true
	return nil
}

// retryable reports whether err aborted a transaction that may succeed
// when run again: a deadlock victim or a serialization failure.
func retryable(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && (pe.Code == "40P01" || pe.Code == "40001")
}

// querier is what a Tx runs statements on: the pool (View) or a transaction.
type querier interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// Tx is a transaction on a DB; it implements fleetcert.Tx. It is valid only
// inside the function given to View or Update.
type Tx struct {
	q  querier
	tx pgx.Tx // nil in a View
}

// Check that *Tx implements the contract.
var _ fleetcert.Tx = (*Tx)(nil)

// checkWritable refuses writes in a View.
func (tx *Tx) checkWritable(op string) error {
	if tx.tx == nil {
		return fmt.Errorf("%s: read-only transaction (use Update)", op)
	}
	return nil
}

// lockKey returns the advisory lock of a record or set key: its kind and
// the fields that name it.
func lockKey(parts ...string) int32 {
	h := fnv.New32a()
	for _, p := range parts {
		h.Write([]byte(p))
		h.Write([]byte{0})
	}
	return int32(h.Sum32() % lockBuckets)
}

// Lock modes of Tx.locked.
const (
	exclusive = false
	shared    = true
)

// locked sends, in one round trip, statements that take the transaction's
// advisory locks on keys and then query; it returns the batch with query's
// result to read. The caller must close it. Under READ COMMITTED each
// statement takes a new snapshot, so query sees every commit of the
// transactions it waited for.
func (tx *Tx) locked(ctx context.Context, share bool, keys []int32, query string, args ...any) (pgx.BatchResults, error) {
	lock := "SELECT pg_advisory_xact_lock($1, $2)"
	if share {
		lock = "SELECT pg_advisory_xact_lock_shared($1, $2)"
	}
	b := &pgx.Batch{}
	for _, k := range keys {
		b.Queue(lock, lockClass, k)
	}
	b.Queue(query, args...)
	br := tx.tx.SendBatch(ctx, b)
	for range keys {
		if _, err := br.Exec(); err != nil {
			br.Close()
			return nil, err
		}
	}
	return br, nil
}

// lockedExec runs a write after taking the exclusive locks on keys.
func (tx *Tx) lockedExec(ctx context.Context, keys []int32, query string, args ...any) error {
	br, err := tx.locked(ctx, exclusive, keys, query, args...)
	if err != nil {
		return err
	}
	_, err = br.Exec()
	return errors.Join(err, br.Close())
}

// lockedQueryRow runs a one-row query after taking the exclusive locks on
// keys, scanning its row with scan.
func (tx *Tx) lockedQueryRow(ctx context.Context, keys []int32, scan func(pgx.Row) error, query string, args ...any) error {
	br, err := tx.locked(ctx, exclusive, keys, query, args...)
	if err != nil {
		return err
	}
	err = scan(br.QueryRow())
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	return err
}

// readRecord reads one record with query (which has no locking clause)
// and scans it with scan. In an Update the record is locked: FOR UPDATE
// when found; when not found, its key's advisory lock is taken and the
// record read again, so that it stays absent until commit unless this
// transaction creates it.
func (tx *Tx) readRecord(ctx context.Context, key int32, scan func(pgx.Row) error, query string, args ...any) error {
	if tx.tx == nil {
		return scan(tx.q.QueryRow(ctx, query, args...))
	}
	query += " FOR UPDATE"
	err := scan(tx.q.QueryRow(ctx, query, args...))
	if !errors.Is(err, pgx.ErrNoRows) {
		return err
	}
	return tx.lockedQueryRow(ctx, []int32{key}, scan, query, args...)
}

// readSet runs query, which returns a set of records, and calls scan on
// each row. In an Update the set's key is locked in share mode, when the
// set has one, and the rows FOR SHARE.
func (tx *Tx) readSet(ctx context.Context, keys []int32, scan func(pgx.Rows) error, query string, args ...any) error {
	var rows pgx.Rows
	var br pgx.BatchResults
	var err error
	switch {
	case tx.tx == nil:
		rows, err = tx.q.Query(ctx, query, args...)
	case len(keys) == 0:
		rows, err = tx.q.Query(ctx, query+" FOR SHARE", args...)
	default:
		if br, err = tx.locked(ctx, shared, keys, query+" FOR SHARE", args...); err == nil {
			rows, err = br.Query()
		}
	}
	if err == nil {
		for rows.Next() {
			if err = scan(rows); err != nil {
				break
			}
		}
		rows.Close()
		if err == nil {
			err = rows.Err()
		}
	}
	if br != nil {
		if cerr := br.Close(); err == nil {
			err = cerr
		}
	}
	return err
}

// unavailableMessage is what a caller reads while the database is down.
const unavailableMessage = "The service is unavailable: the database cannot be reached. Try again later."

// storeError translates a driver error into the domain: no row becomes
// ResourceNotFoundException, a unique-key violation
// ResourceAlreadyExistsException, a server that cannot be reached
// ServiceUnavailableException (wrapping err); anything else is wrapped as
// an internal failure. what names the record, as "certificate 0a1b…".
func storeError(ctx context.Context, err error, what string) error {
	if err == nil {
		return nil
	} else if errors.Is(err, pgx.ErrNoRows) {
		return fleetcert.Errorf(fleetcert.EResourceNotFound, "The %s does not exist.", what)
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) && pe.Code == "23505" { // unique_violation
		return fleetcert.Errorf(fleetcert.EResourceAlreadyExists, "The %s already exists.", what)
	}
	if what != "" {
		err = fmt.Errorf("%s: %w", what, err)
	}
	if unreachable(ctx, err) {
		return fmt.Errorf("%w: %w", fleetcert.Errorf(fleetcert.EServiceUnavailable, unavailableMessage), err)
	}
	return err
}

// unreachable reports whether err says the server cannot be reached or
// went away: a failed connection attempt, a broken connection, or the
// server refusing work while it shuts down or starts. A context that the
// caller cancelled is not the server's fault.
func unreachable(ctx context.Context, err error) bool {
	if ctx.Err() != nil {
		return false
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch pe.Code {
		case "57P01", "57P02", "57P03": // admin_shutdown, crash_shutdown, cannot_connect_now
			return true
		}
		return strings.HasPrefix(pe.Code, "08") // connection_exception
	}
	var ce *pgconn.ConnectError
	var ne net.Error
	return errors.As(err, &ce) || errors.As(err, &ne) || pgconn.Timeout(err) ||
		errors.Is(err, pgconn.ErrConnClosed) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

// migrate applies the embedded migrations newer than the database's schema
// version, each in its own transaction, under a session advisory lock on a
// connection of its own: nodes opening a new database at once wait for the
// first, then find its work done. Closing the connection releases the lock
// even when an unlock could not be sent.
func (db *DB) migrate(ctx context.Context, config *pgx.ConnConfig) error {
	ms, err := migrations()
	if err != nil {
		return err
	}
	conn, err := pgx.ConnectConfig(ctx, config.Copy())
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock($1, $2)", lockClass, migrationLock); err != nil {
		return fmt.Errorf("migrate: lock: %w", err)
	}
	if _, err := conn.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    integer     PRIMARY KEY,
		name       text        NOT NULL,
		applied_at timestamptz NOT NULL
	)`); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	var current int
	if err := conn.QueryRow(ctx, `SELECT coalesce(max(version), 0) FROM schema_migrations`).Scan(&current); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	if latest := ms[len(ms)-1].version; current > latest {
		return fmt.Errorf("schema version %d is newer than this build knows (%d); run a newer fleetcert", current, latest)
	}
	for _, m := range ms {
		if m.version <= current {
			continue
		}
		body, err := fs.ReadFile(migrationFS, m.name)
		if err != nil {
			return fmt.Errorf("migration %s: %w", m.name, err)
		}
		err = pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, string(body)); err != nil { // no arguments: simple protocol, many statements
				return err
			}
			_, err := tx.Exec(ctx, `INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)`,
				m.version, filepath.Base(m.name), db.Now().UTC())
			return err
		})
		if err != nil {
			return fmt.Errorf("migration %s: %w", m.name, err)
		}
	}
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_unlock($1, $2)", lockClass, migrationLock); err != nil {
		return fmt.Errorf("migrate: unlock: %w", err)
	}
	return nil
}

// migration is an embedded schema migration, migration/NNNN_name.sql.
type migration struct {
	version int
	name    string
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
	if len(ms) == 0 {
		return nil, fmt.Errorf("no migrations embedded")
	}
	sort.Slice(ms, func(i, j int) bool { return ms[i].version < ms[j].version })
	for i := 1; i < len(ms); i++ {
		if ms[i].version == ms[i-1].version {
			return nil, fmt.Errorf("migrations %s and %s have the same version", ms[i-1].name, ms[i].name)
		}
	}
	return ms, nil
}

// timeArg returns t in UTC as a column value, NULL for the zero time.
func timeArg(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UTC()
}

// fromTime is the inverse of timeArg.
func fromTime(t *time.Time) time.Time {
	if t == nil {
		return time.Time{}
	}
	return t.UTC()
}
