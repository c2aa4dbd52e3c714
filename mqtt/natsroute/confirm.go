package natsroute

import (
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
)

// confirmer confirms QoS 1 and 2 messages to their publishers in groups:
// one NATS round trip (a PING after the messages, answered by NATS once it
// has handed them to every matching subscription's connection) for every
// message published since the last one began, as a database commits a
// group of transactions with one sync.
//
// mochi reads a device's packets one at a time and sends the PUBACK of a
// QoS 1 publish once Publish returns, so what a publisher waits for is
// bounded here twice over: a round trip gives up after the confirmation
// timeout, and once one has, the link to NATS is taken as stalled: until
// a round trip is answered again, publishes are not waited for at all
// (ErrUnconfirmed at once). A publisher with a window of queued messages
// thus waits at most one timeout per stall of NATS, not one per message.
type confirmer struct {
	nc      *nats.Conn
	timeout time.Duration
	logger  *slog.Logger

	mu      sync.Mutex
	waiting []chan error // publishes since the last round trip began
	batch   int          // publishes the round trip under way confirms
	closed  bool
	kick    chan struct{}
	stalled atomic.Bool
	// recovered, when set, is called when NATS answers after a stall.
	recovered func()

	roundTrips, timeouts atomic.Uint64
}

func newConfirmer(nc *nats.Conn, timeout time.Duration, logger *slog.Logger) *confirmer {
	return &confirmer{nc: nc, timeout: timeout, logger: logger, kick: make(chan struct{}, 1)}
}

// confirm waits for NATS to confirm the messages published on the
// connection so far: nil once it has, ErrUnconfirmed when it did not
// within the timeout or the link is stalled.
func (c *confirmer) confirm() error {
	if c.stalled.Load() {
		c.timeouts.Add(1)
		return ErrUnconfirmed
	}
	ch := make(chan error, 1)
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return ErrUnconfirmed
	}
	c.waiting = append(c.waiting, ch)
	c.mu.Unlock()
	select {
	case c.kick <- struct{}{}:
	default: // a round trip is queued; it takes this message along
	}
	return <-ch
}

// run makes the round trips until done is closed; a publish that waits
// then is released with ErrUnconfirmed.
func (c *confirmer) run(done <-chan struct{}) {
	defer func() {
		c.mu.Lock()
		batch := c.waiting
		c.waiting, c.closed = nil, true
		c.mu.Unlock()
		for _, ch := range batch {
			ch <- ErrUnconfirmed
		}
	}()
	for {
		if !c.stalled.Load() {
			select {
			case <-done:
				return
			case <-c.kick:
			}
		} else {
			select { // probe the stalled link, waiting or not
			case <-done:
				return
			default:
			}
		}
		c.mu.Lock()
		batch := c.waiting
		c.waiting, c.batch = nil, len(batch)
		c.mu.Unlock()
		// Every message of the batch was published before its waiter was
		// queued, so before this PING.
		start := time.Now()
		err := c.nc.FlushTimeout(c.timeout)
		c.roundTrips.Add(1)
		if err != nil {
			err = ErrUnconfirmed
			c.timeouts.Add(uint64(len(batch)))
			if !c.stalled.Swap(true) {
				c.logger.Warn("nats: no confirmation in time; QoS 1 messages are acknowledged unconfirmed until NATS answers",
					"after", time.Since(start).Round(time.Millisecond), "messages", len(batch))
			}
		} else if c.stalled.Swap(false) {
			c.logger.Info("nats: confirmations again", "round_trip", time.Since(start).Round(time.Millisecond))
			if c.recovered != nil {
				c.recovered()
			}
		}
		c.mu.Lock()
		c.batch = 0
		c.mu.Unlock()
		for _, ch := range batch {
			ch <- err
		}
		if err != nil {
			// Probe again, not in a tight loop when the connection fails
			// at once (closed, reconnecting).
			select {
			case <-done:
				return
			case <-time.After(min(c.timeout, 100*time.Millisecond)):
			}
		}
	}
}
