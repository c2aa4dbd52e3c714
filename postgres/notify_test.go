package postgres_test

import (
	"context"
	"testing"
	"time"

	"github.com/fleetcert/fleetcert/internal/testpg"
	"github.com/fleetcert/fleetcert/internal/testwait"
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
