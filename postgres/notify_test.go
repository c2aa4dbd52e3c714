package postgres_test

import (
	"context"
	"net"
	neturl "net/url"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/fleetcert/fleetcert/internal/testpg"
	"github.com/fleetcert/fleetcert/internal/testwait"
	"github.com/fleetcert/fleetcert/postgres"
)

// receive waits for a value on ch; what names it in a failure.
func receive(tb testing.TB, ch <-chan struct{}, what string) {
	tb.Helper()
	select {
	case _, ok := <-ch:
		if !ok {
			tb.Fatalf("channel closed while waiting for %s", what)
		}
	case <-time.After(testwait.Hang):
		tb.Fatalf("waited %s for %s", testwait.Hang, what)
	}
}

// listenerPIDs returns the backend pids of the database's change listeners.
func listenerPIDs(tb testing.TB, url string) []int32 {
	tb.Helper()
	rows, err := raw(tb, url).Query(context.Background(), `SELECT pid FROM pg_stat_activity
		WHERE datname = current_database() AND application_name = 'fleetcert change listener' ORDER BY pid`)
	if err != nil {
		tb.Fatal(err)
	}
	defer rows.Close()
	var pids []int32
	for rows.Next() {
		var pid int32
		if err := rows.Scan(&pid); err != nil {
			tb.Fatal(err)
		}
		pids = append(pids, pid)
	}
	return pids
}

func TestDB_NotifyChanges(t *testing.T) {
	url := testpg.NewDatabase(t)
	a, b := mustOpenDBAt(t, url), mustOpenDBAt(t, url) // two nodes
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ch, err := a.NotifyChanges(ctx)
	if err != nil {
		t.Fatal(err)
	}
	receive(t, ch, "the value sent once the listener listens")

	appendChange(t, b, baseTime)
	receive(t, ch, "the notification of another node's commit")

	// The listener's connection dies: it reconnects and says so, since
	// changes may have committed unannounced meanwhile.
	pids := listenerPIDs(t, url)
	if len(pids) != 1 {
		t.Fatalf("listener backends %v, want one", pids)
	}
	var killed bool
	if err := raw(t, url).QueryRow(context.Background(), `SELECT pg_terminate_backend($1)`, pids[0]).Scan(&killed); err != nil || !killed {
		t.Fatalf("terminate listener %d: %v %v", pids[0], killed, err)
	}
	receive(t, ch, "the value sent after reconnecting")
	if now := listenerPIDs(t, url); len(now) != 1 || now[0] == pids[0] {
		t.Fatalf("listener backends %v after terminating %d, want one new", now, pids[0])
	}
	appendChange(t, b, baseTime)
	receive(t, ch, "a notification after reconnecting")

	// Ending ctx closes the channel and the connection.
	cancel()
	for range ch {
	}
	testwait.For(t, "the listener's connection to close", func() bool { return len(listenerPIDs(t, url)) == 0 })
}

func TestDB_NotifyChangesClose(t *testing.T) {
	url := testpg.NewDatabase(t)
	a := mustOpenDBAt(t, url)
	ch, err := a.NotifyChanges(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	receive(t, ch, "the value sent once the listener listens")
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	// Close waits for the listeners: the channel is closed already.
	select {
	case _, ok := <-ch:
		if ok {
			t.Fatal("a value after Close")
		}
	default:
		t.Fatal("channel open after Close")
	}
}

// proxy forwards TCP connections to a server. After freeze, the
// connections it had carry nothing more, without being closed: a network
// partition. Connections made later are forwarded.
type proxy struct {
	l      net.Listener
	target string

	mu     sync.Mutex
	frozen chan struct{} // closed by freeze, for the connections before it
	conns  []net.Conn
	closed chan struct{}
}

// newProxy starts a proxy to target on a loopback port, closed when tb ends.
func newProxy(tb testing.TB, target string) *proxy {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	p := &proxy{l: l, target: target, frozen: make(chan struct{}), closed: make(chan struct{})}
	go p.serve()
	tb.Cleanup(p.close)
	return p
}

func (p *proxy) serve() {
	for {
		c, err := p.l.Accept()
		if err != nil {
			return
		}
		s, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, c, s)
		frozen := p.frozen
		p.mu.Unlock()
		go p.pipe(s, c, frozen)
		go p.pipe(c, s, frozen)
	}
}

// pipe copies src to dst until either fails, or drops what it reads once
// frozen is closed.
func (p *proxy) pipe(dst, src net.Conn, frozen <-chan struct{}) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		select {
		case <-frozen:
			n = 0 // cut off
		default:
		}
		if n > 0 {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			select {
			case <-frozen: // a partition does not close the other side
			default:
				dst.Close()
			}
			return
		}
	}
}

// freeze cuts off the connections open now.
func (p *proxy) freeze() {
	p.mu.Lock()
	defer p.mu.Unlock()
	close(p.frozen)
	p.frozen = make(chan struct{})
}

func (p *proxy) close() {
	p.l.Close()
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		c.Close()
	}
}

// TestDB_NotifyChangesPartition cuts the listener's connection off without
// closing it: the listener finds out by its ping, reconnects and signals.
func TestDB_NotifyChangesPartition(t *testing.T) {
	ctx := context.Background()
	url := testpg.NewDatabase(t)
	p := newProxy(t, testpg.Shared(t).Addr())
	u, err := neturl.Parse(url)
	if err != nil {
		t.Fatal(err)
	}
	u.Host = p.l.Addr().String()
	db := postgres.NewDB(u.String())
	db.ListenPing = 50 * time.Millisecond
	if err := db.Open(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	ch, err := db.NotifyChanges(ctx)
	if err != nil {
		t.Fatal(err)
	}
	receive(t, ch, "the value sent once the listener listens")
	before := listenerPIDs(t, url)

	p.freeze()
	receive(t, ch, "the value sent after the listener found its connection cut off and reconnected")
	testwait.For(t, "a new listener backend", func() bool {
		for _, pid := range listenerPIDs(t, url) {
			if !slices.Contains(before, pid) {
				return true
			}
		}
		return false
	})
	appendChange(t, mustOpenDBAt(t, url), baseTime)
	receive(t, ch, "a notification on the new connection")
}
