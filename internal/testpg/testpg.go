// Package testpg gives tests a real PostgreSQL server: one shared by a test
// binary's tests, started on first use (Shared, NewDatabase), or a private
// one a test may stop and restart (Start). Each server runs from a new
// temporary directory, listens on 127.0.0.1 on a free port only, and is
// stopped by its postmaster's PID when its test or the binary ends (Main);
// a watchdog process stops it even when the test binary is killed.
//
// The server binaries (initdb, pg_ctl) are found in $FLEETCERT_POSTGRES_BIN
// (a directory; a glob is expanded), /usr/lib/postgresql/*/bin (Debian's
// package postgresql, which ./scripts/install-tools installs) or on PATH. As root, the server runs as nobody: PostgreSQL refuses to run as
// root. When FLEETCERT_TEST_DATABASE_URL is set, Shared uses that server
// instead. A test that cannot have a server fails, saying what is missing.
//
// A test package using it stops the shared server in TestMain:
//
//	func TestMain(m *testing.M) { os.Exit(testpg.Main(m)) }
package testpg

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// EnvURL names the variable that points the shared server at an existing
// PostgreSQL server: a URL whose user may create databases.
const EnvURL = "FLEETCERT_TEST_DATABASE_URL"

// Install says how to get a server, in failure messages.
const Install = "install PostgreSQL's server binaries (Debian: apt-get install postgresql; ./scripts/install-tools does it when run as root) " +
	"or set " + EnvURL + " to the URL of a server whose user may create databases"

// nobody runs the server when the tests run as root.
const nobody = 65534

// stopTimeout bounds how long a server takes to start or stop before the
// test calls it a hang.
const stopTimeout = 2 * time.Minute

// Server is a PostgreSQL server for tests.
type Server struct {
	external *url.URL // EnvURL's server; nil for a server run here

	bin      string // directory of initdb, pg_ctl
	dir      string // owned by the server's user: data/, the socket, server.log
	port     int
	watchdog *os.File // write end of the watchdog's stdin

	mu      sync.Mutex
	running bool
}

var (
	sharedOnce sync.Once
	shared     *Server
	sharedErr  error

	serversMu sync.Mutex
	servers   []*Server // started here and not yet removed

	dbCounter atomic.Int64
)

// Main runs the tests, then stops every server still running: the shared
// one, and any a failing test left. Call it from TestMain.
func Main(m *testing.M) int {
	code := m.Run()
	serversMu.Lock()
	left := servers
	servers = nil
	serversMu.Unlock()
	for _, s := range left {
		if err := s.remove(); err != nil {
			fmt.Fprintf(os.Stderr, "testpg: %v\n", err)
			if code == 0 {
				code = 1
			}
		}
	}
	return code
}

// Shared returns the test binary's shared server, starting it on the first
// call, or the server at EnvURL when that is set. It fails tb when no
// server can be had.
func Shared(tb testing.TB) *Server {
	tb.Helper()
	sharedOnce.Do(func() {
		if u := os.Getenv(EnvURL); u != "" {
			parsed, err := url.Parse(u)
			if err != nil || (parsed.Scheme != "postgres" && parsed.Scheme != "postgresql") {
				sharedErr = fmt.Errorf("%s=%q: want a postgres:// URL", EnvURL, u)
				return
			}
			shared = &Server{external: parsed, running: true}
			return
		}
		shared, sharedErr = start()
	})
	if sharedErr != nil {
		tb.Fatalf("testpg: no PostgreSQL server for the tests: %v", sharedErr)
	}
	return shared
}

// NewDatabase creates an empty database on the shared server and returns
// its URL; the database is dropped when tb ends.
func NewDatabase(tb testing.TB) string {
	tb.Helper()
	return Shared(tb).NewDatabase(tb)
}

// Start starts a private server, for a test that stops and restarts it;
// it is stopped and its directory removed when tb ends. It fails tb when no
// server can be started.
func Start(tb testing.TB) *Server {
	tb.Helper()
	s, err := start()
	if err != nil {
		tb.Fatalf("testpg: cannot start a PostgreSQL server: %v", err)
	}
	tb.Cleanup(func() {
		if err := s.remove(); err != nil {
			tb.Error(err)
		}
	})
	return s
}

// URL returns the URL of database dbname on s.
func (s *Server) URL(dbname string) string {
	if s.external != nil {
		u := *s.external
		u.Path = "/" + dbname
		return u.String()
	}
	// connect_timeout: a store's default (1 s, to fail fast when the
	// server is unreachable) is shorter than a new connection can take on
	// a loaded machine under -race; a stopped server still refuses at once.
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable&connect_timeout=10", s.port, url.PathEscape(dbname))
}

// Addr returns the server's address, host:port.
func (s *Server) Addr() string {
	if s.external != nil {
		return s.external.Host
	}
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port))
}

// NewDatabase creates an empty database on s and returns its URL; the
// database is dropped when tb ends.
func (s *Server) NewDatabase(tb testing.TB) string {
	tb.Helper()
	name := fmt.Sprintf("fleetcert_test_%d_%d", os.Getpid(), dbCounter.Add(1))
	if err := s.admin(context.Background(), "CREATE DATABASE "+name); err != nil {
		tb.Fatalf("testpg: create database: %v", err)
	}
	tb.Cleanup(func() {
		// FORCE ends the sessions a test left, such as a listener whose
		// store was not closed.
		if err := s.admin(context.Background(), "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil && s.isRunning() {
			tb.Errorf("testpg: drop database: %v", err)
		}
	})
	return s.URL(name)
}

// admin runs sql on the server's maintenance database.
func (s *Server) admin(ctx context.Context, sql string) error {
	ctx, cancel := context.WithTimeout(ctx, stopTimeout)
	defer cancel()
	adminDB := "postgres"
	if s.external != nil {
		adminDB = strings.TrimPrefix(s.external.Path, "/")
	}
	conn, err := pgx.Connect(ctx, s.URL(adminDB))
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	_, err = conn.Exec(ctx, sql)
	return err
}

// Stop stops the server (a fast shutdown: sessions are ended), keeping its
// data for Restart.
func (s *Server) Stop() error {
	if s.external != nil {
		return fmt.Errorf("testpg: cannot stop the server at %s", EnvURL)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.running {
		return nil
	}
	if err := s.stopLocked(); err != nil {
		return err
	}
	s.running = false
	return nil
}

// Restart starts the server again after Stop, on the same port and data.
func (s *Server) Restart() error {
	if s.external != nil {
		return fmt.Errorf("testpg: cannot restart the server at %s", EnvURL)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.running {
		return nil
	}
	if err := s.pgctlStart(); err != nil {
		return err
	}
	s.running = true
	return nil
}

func (s *Server) isRunning() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.running
}

// PID returns the postmaster's process id, from data/postmaster.pid.
func (s *Server) PID() (int, error) {
	b, err := os.ReadFile(filepath.Join(s.dir, "data", "postmaster.pid"))
	if err != nil {
		return 0, err
	}
	first, _, _ := strings.Cut(string(b), "\n")
	pid, err := strconv.Atoi(strings.TrimSpace(first))
	if err != nil || pid <= 0 {
		return 0, fmt.Errorf("postmaster.pid: bad pid %q", first)
	}
	return pid, nil
}

// findBin returns the directory of the newest PostgreSQL's initdb and
// pg_ctl.
func findBin() (string, error) {
	pattern := "/usr/lib/postgresql/*/bin"
	if env := os.Getenv("FLEETCERT_POSTGRES_BIN"); env != "" {
		pattern = env
	}
	dirs, _ := filepath.Glob(pattern)
	sort.Slice(dirs, func(i, j int) bool {
		vi, _ := strconv.Atoi(filepath.Base(filepath.Dir(dirs[i])))
		vj, _ := strconv.Atoi(filepath.Base(filepath.Dir(dirs[j])))
		return vi > vj
	})
	if p, err := exec.LookPath("initdb"); err == nil {
		dirs = append(dirs, filepath.Dir(p))
	}
	for _, d := range dirs {
		if isExec(filepath.Join(d, "initdb")) && isExec(filepath.Join(d, "pg_ctl")) && isExec(filepath.Join(d, "postgres")) {
			return d, nil
		}
	}
	return "", fmt.Errorf("initdb, pg_ctl and postgres not found in %s or on PATH: %s", pattern, Install)
}

func isExec(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0
}

// start initialises a cluster in a new directory and starts it.
func start() (s *Server, err error) {
	bin, err := findBin()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "fleetcert-pg-")
	if err != nil {
		return nil, err
	}
	s = &Server{bin: bin, dir: dir}
	defer func() {
		if err != nil {
			s.remove()
		}
	}()
	if os.Geteuid() == 0 {
		if err := os.Chown(dir, nobody, nobody); err != nil {
			return nil, err
		}
	}
	if err := s.startWatchdog(); err != nil {
		return nil, fmt.Errorf("watchdog: %w", err)
	}
	serversMu.Lock()
	servers = append(servers, s)
	serversMu.Unlock()

	// Trust on loopback only: the server accepts no other address.
	if out, err := s.command("initdb", "-D", filepath.Join(dir, "data"), "-U", "postgres", "--auth=trust",
		"-E", "UTF8", "--no-locale", "--no-sync").CombinedOutput(); err != nil {
		return nil, fmt.Errorf("initdb: %v\n%s", err, out)
	}
	// A free port can be taken by someone else before the server binds it:
	// try another.
	for attempt := 1; ; attempt++ {
		if s.port, err = freePort(); err != nil {
			return nil, err
		}
		if err = s.pgctlStart(); err == nil || attempt == 3 {
			break
		}
	}
	if err != nil {
		return nil, err
	}
	s.running = true
	return s, nil
}

// command returns a command running tool from the server's binaries as the
// server's user.
func (s *Server) command(tool string, args ...string) *exec.Cmd {
	cmd := exec.Command(filepath.Join(s.bin, tool), args...)
	cmd.Dir = s.dir
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	if os.Geteuid() == 0 {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobody, Gid: nobody, Groups: []uint32{}}}
	}
	return cmd
}

// pgctlStart starts the server on s.port and waits until it accepts
// connections.
func (s *Server) pgctlStart() error {
	opts := strings.Join([]string{
		"-c listen_addresses=127.0.0.1",
		"-p " + strconv.Itoa(s.port),
		"-c unix_socket_directories=" + s.dir,
		// Tests need no durability across a power loss.
		"-c fsync=off",
		"-c full_page_writes=off",
		"-c max_connections=300",
	}, " ")
	cmd := s.command("pg_ctl", "start", "-D", filepath.Join(s.dir, "data"), "-l", filepath.Join(s.dir, "server.log"),
		"-w", "-t", strconv.Itoa(int(stopTimeout.Seconds())), "-o", opts)
	if out, err := cmd.CombinedOutput(); err != nil {
		log, _ := os.ReadFile(filepath.Join(s.dir, "server.log"))
		return fmt.Errorf("pg_ctl start: %v\n%s\nserver.log:\n%s", err, out, tail(log, 2000))
	}
	return nil
}

// stopLocked sends the postmaster SIGINT (fast shutdown) and waits until
// it has gone: its pid file removed, or the process gone.
func (s *Server) stopLocked() error {
	pid, err := s.PID()
	if errors.Is(err, os.ErrNotExist) {
		return nil
	} else if err != nil {
		return err
	}
	if err := syscall.Kill(pid, syscall.SIGINT); err != nil {
		if errors.Is(err, syscall.ESRCH) {
			return nil
		}
		return fmt.Errorf("stop postmaster %d: %w", pid, err)
	}
	pidFile := filepath.Join(s.dir, "data", "postmaster.pid")
	for deadline := time.Now().Add(stopTimeout); ; time.Sleep(10 * time.Millisecond) {
		_, statErr := os.Stat(pidFile)
		if errors.Is(statErr, os.ErrNotExist) || errors.Is(syscall.Kill(pid, 0), syscall.ESRCH) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("postmaster %d still running %v after SIGINT", pid, stopTimeout)
		}
	}
}

// remove stops the server if it runs and removes its directory.
func (s *Server) remove() error {
	serversMu.Lock()
	for i, o := range servers {
		if o == s {
			servers = append(servers[:i], servers[i+1:]...)
			break
		}
	}
	serversMu.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	var errs []error
	if s.dir != "" {
		if err := s.stopLocked(); err != nil {
			errs = append(errs, err)
		} else if err := os.RemoveAll(s.dir); err != nil {
			errs = append(errs, err)
		}
	}
	s.running = false
	if s.watchdog != nil {
		s.watchdog.Close() // the watchdog exits: nothing left to stop
		s.watchdog = nil
	}
	return errors.Join(errs...)
}

// startWatchdog starts a process that stops the server and removes its
// directory when this process ends, however it ends: it waits for EOF on a
// pipe whose write end only this process holds.
func (s *Server) startWatchdog() error {
	r, w, err := os.Pipe()
	if err != nil {
		return err
	}
	defer r.Close()
	// After EOF the tests are gone, perhaps in the middle of initdb or
	// pg_ctl start: stop any server that is or comes up in the next few
	// seconds, then remove the directory. A directory already removed
	// means the tests cleaned up.
	script := `read _ignored
i=0
while [ -d "$1" ] && [ $i -lt 50 ]; do
	if pid=$(head -n 1 "$1/data/postmaster.pid" 2>/dev/null); then
		kill -INT "$pid" 2>/dev/null
		j=0
		while [ -e "$1/data/postmaster.pid" ] && [ $j -lt 600 ]; do sleep 0.1; j=$((j+1)); done
	fi
	sleep 0.1
	i=$((i+1))
done
rm -rf "$1"`
	cmd := exec.Command("/bin/sh", "-c", script, "testpg-watchdog", s.dir)
	cmd.Stdin = r
	// Its own process group: an interrupt of the test run must not end it
	// before it has done its job.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		w.Close()
		return err
	}
	go cmd.Wait()
	s.watchdog = w
	return nil
}

// freePort returns a TCP port of 127.0.0.1 free at the moment.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// tail returns the last n bytes of b.
func tail(b []byte, n int) string {
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}
