package main

import (
	"context"
	"crypto/tls"
	"flag"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/iot"
)

// runHold opens count idle connections (keepalive 0: the broker sets no
// deadline), reports the broker's RSS with them all open, then closes them.
// With --api, every device has a certificate of its own, registered ACTIVE
// through the API before it connects and onboarded as thing idle-{i} with
// the benchmark's policy, as in a fleet; otherwise they all present --cert,
// whose policies must then allow client ids idle-* (or the broker runs
// with --device-policies off).
func runHold(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("hold", flag.ContinueOnError)
	var df deviceFlags
	df.register(fs)
	count := fs.Int("count", 20000, "idle connections to hold")
	concurrency := fs.Int("concurrency", 16, "concurrent dialers")
	pid := fs.Int("pid", 0, "broker process whose RSS to report")
	holdFor := fs.Duration("hold", 5*time.Second, "how long to keep them open after the last one connected")
	timeout := fs.Duration("timeout", 5*time.Minute, "give up after this long")
	label := fs.String("label", "", "name printed with the result")
	api := fs.String("api", "", "fleetcert API endpoint (loopback): register a certificate of its own for each device")
	region := fs.String("region", "us-east-1", "region to register the devices' certificates in (with --api)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := checkLoopback(df.addr); err != nil {
		return err
	}
	var cfg *tls.Config
	var err error
	var client *iot.Client
	if *api != "" {
		if client, err = apiClient(*api, *region); err != nil {
			return err
		}
		cfg, err = serverRoots(df.caFile, df.serverName)
	} else {
		cfg, err = clientConfig(df.caFile, df.certFile, df.keyFile, df.serverName)
	}
	if err != nil {
		return err
	}
	var before float64
	if *pid > 0 {
		before, _ = rssMiB(*pid)
	}
	conns := make([]*tls.Conn, *count)
	var next, failed atomic.Int64
	var firstErr atomic.Value
	deadline := time.Now().Add(*timeout)
	start := time.Now()
	var wg sync.WaitGroup
	for w := 0; w < *concurrency; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil && time.Now().Before(deadline) {
				i := next.Add(1) - 1
				if i >= int64(*count) {
					return
				}
				devCfg := cfg
				if client != nil {
					cert, _, err := registerNew(ctx, client, fmt.Sprintf("idle-%d", i))
					if err != nil {
						failed.Add(1)
						firstErr.CompareAndSwap(nil, err.Error())
						continue
					}
					devCfg = cfg.Clone()
					devCfg.Certificates = []tls.Certificate{cert}
				}
				c, err := dialMQTT(df.addr, devCfg, fmt.Sprintf("idle-%d", i), 0, 30*time.Second)
				if err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
					continue
				}
				conns[i] = c
			}
		}()
	}
	wg.Wait()
	open := 0
	for _, c := range conns {
		if c != nil {
			open++
		}
	}
	elapsed := time.Since(start)
	select {
	case <-ctx.Done():
	case <-time.After(*holdFor):
	}
	fmt.Printf("hold %s: %d/%d idle connections open after %s (%d failed)", *label, open, *count, elapsed.Round(time.Millisecond), failed.Load())
	if *pid > 0 {
		after, err := rssMiB(*pid)
		if err != nil {
			return err
		}
		fmt.Printf(", broker RSS %.0f MiB (%.0f MiB before, %.1f KiB per connection)", after, before, (after-before)*1024/float64(max(open, 1)))
	}
	fmt.Println()
	if e := firstErr.Load(); e != nil {
		fmt.Printf("  first error: %s\n", e)
	}
	for _, c := range conns {
		if c != nil {
			c.Close()
		}
	}
	return nil
}
