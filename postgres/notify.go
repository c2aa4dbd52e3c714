package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Reconnection backoff of a change listener: it doubles from
// minListenBackoff after each failed attempt, up to maxListenBackoff, and
// starts again from minListenBackoff once connected.
const (
	minListenBackoff = 50 * time.Millisecond
	maxListenBackoff = 2 * time.Second
)

// DefaultListenPing is how long a change listener waits without a
// notification before it pings its connection (DB.ListenPing).
const DefaultListenPing = 5 * time.Second

// NotifyChanges returns a channel that receives a value soon after a change
// commits in any process sharing the database, and once each time the
// listener (re)connects, since changes may have committed unannounced while
// it was cut off: the first value comes once it listens. Values coalesce.
// The channel is closed when ctx ends or the DB is closed.
//
// Each call has its own connection, outside the pool, that LISTENs on the
// feed's channel; appends NOTIFY it in their transaction (AppendChange).
// When the connection breaks (the server restarts, the database is
// unreachable), the listener reconnects with backoff until it succeeds.
func (db *DB) NotifyChanges(ctx context.Context) (<-chan struct{}, error) {
	if db.pool == nil || db.closing.Err() != nil {
		return nil, fmt.Errorf("notify changes: database not open")
	}
	ch := make(chan struct{}, 1)
	ctx, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(db.closing, cancel)
	db.wg.Add(1)
	go func() {
		defer db.wg.Done()
		defer close(ch)
		defer stop()
		defer cancel()
		db.listen(ctx, ch)
	}()
	return ch, nil
}

// listen connects, LISTENs and signals ch for each notification, and
// reconnects after any failure, until ctx ends.
func (db *DB) listen(ctx context.Context, ch chan<- struct{}) {
	signal := func() {
		select {
		case ch <- struct{}{}:
		default: // a value is pending: it stands for this one too
		}
	}
	backoff := minListenBackoff
	timer := time.NewTimer(0)
	defer timer.Stop()
	<-timer.C
	for {
		err := db.listenOnce(ctx, func() {
			backoff = minListenBackoff
			signal()
		}, signal)
		if ctx.Err() != nil {
			return
		}
		db.Logger.Warn("change listener: connection lost; reconnecting", "err", err, "retry_in", backoff)
		timer.Reset(backoff)
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		}
		backoff = min(2*backoff, maxListenBackoff)
	}
}

// listenOnce connects and LISTENs, calls listening, then calls notified for
// each notification until the connection fails or ctx ends.
func (db *DB) listenOnce(ctx context.Context, listening, notified func()) error {
	conn, err := pgx.ConnectConfig(ctx, db.connConfig.Copy())
	if err != nil {
		return err
	}
	defer func() {
		closeCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), ConnectTimeout)
		defer cancel()
		conn.Close(closeCtx)
	}()
	if _, err := conn.Exec(ctx, "LISTEN "+notifyChannel); err != nil {
		return err
	}
	listening()
	quiet := db.ListenPing
	if quiet <= 0 {
		quiet = DefaultListenPing
	}
	for {
		wait, cancel := context.WithTimeout(ctx, quiet)
		_, err := conn.WaitForNotification(wait)
		cancel()
		if err == nil {
			notified()
			continue
		} else if ctx.Err() != nil || !pgconn.Timeout(err) {
			return err
		}
		// Quiet for a while: a connection cut off on the way (a partition,
		// a proxy gone silent) would be quiet forever, and notifications
		// lost. It must answer a ping within the connect timeout. (A read
		// cut short by the deadline leaves the connection usable.)
		ping, cancel := context.WithTimeout(ctx, ConnectTimeout)
		err = conn.Ping(ping)
		cancel()
		if err != nil {
			return fmt.Errorf("ping: %w", err)
		}
	}
}
