package main

import (
	"context"
	"flag"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

type deviceFlags struct {
	addr, caFile, certFile, keyFile, serverName string
}

func (d *deviceFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&d.addr, "addr", "127.0.0.1:8883", "broker address (loopback)")
	fs.StringVar(&d.caFile, "cafile", "", "CA of the broker's server certificate")
	fs.StringVar(&d.certFile, "cert", "", "device certificate (PEM)")
	fs.StringVar(&d.keyFile, "key", "", "device key (PEM)")
	fs.StringVar(&d.serverName, "server-name", "127.0.0.1", "TLS server name to verify and send (SNI unless an IP)")
}

// runConnect opens new connections with concurrency workers for duration
// (or until count), each a full handshake + CONNECT/CONNACK + DISCONNECT.
func runConnect(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("connect", flag.ContinueOnError)
	var df deviceFlags
	df.register(fs)
	concurrency := fs.Int("concurrency", 8, "concurrent devices connecting")
	duration := fs.Duration("duration", 10*time.Second, "how long to connect")
	count := fs.Int("count", 200000, "stop after this many connections")
	label := fs.String("label", "", "name printed with the result")
	things := fs.Int("things", 64, "things bench-0 … bench-N-1 the certificate is attached to (register --things)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *things < 1 {
		return fmt.Errorf("--things must be at least 1")
	}
	if err := checkLoopback(df.addr); err != nil {
		return err
	}
	cfg, err := clientConfig(df.caFile, df.certFile, df.keyFile, df.serverName)
	if err != nil {
		return err
	}
	var n, failed atomic.Int64
	var firstErr atomic.Value
	lat := make([][]time.Duration, *concurrency)
	deadline := time.Now().Add(*duration)
	start := time.Now()
	var wg sync.WaitGroup
	for w := 0; w < *concurrency; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; time.Now().Before(deadline) && ctx.Err() == nil; i++ {
				if n.Add(1) > int64(*count) {
					return
				}
				t0 := time.Now()
				// As one of the things bench-0 … bench-{things-1} (see
				// register --things), each worker taking them in turn: a
				// device connects under its thing's name, and the next
				// connection under that name comes only after every
				// worker has used another, so that it never finds the
				// previous one still open (a session takeover, which is
				// another load).
				thing := (w + *concurrency*i) % *things
				c, err := dialMQTT(df.addr, cfg, fmt.Sprintf("bench-%d", thing), 60, 10*time.Second)
				if err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
					continue
				}
				lat[w] = append(lat[w], time.Since(t0))
				c.Write(disconnectPacket)
				c.Close()
			}
		}(w)
	}
	wg.Wait()
	elapsed := time.Since(start)
	var all []time.Duration
	for _, l := range lat {
		all = append(all, l...)
	}
	fmt.Printf("connect %s: %d connections in %s = %.0f conn/s, %d failed, concurrency %d, %s\n",
		*label, len(all), elapsed.Round(time.Millisecond), float64(len(all))/elapsed.Seconds(), failed.Load(), *concurrency, summary(all))
	if e := firstErr.Load(); e != nil {
		fmt.Printf("  first error: %s\n", e)
	}
	return nil
}
