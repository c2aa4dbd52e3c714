package main

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/fleetcert/fleetcert"
)

// DefaultChangeRetention is how long the change feed keeps an entry
// (--change-retention): far longer than any watcher of a running node
// takes to read it; one that stopped for longer reloads its view.
const DefaultChangeRetention = 24 * time.Hour

// DefaultAuditRetention is how long the audit log keeps an entry
// (--audit-retention): 90 days.
const DefaultAuditRetention = 90 * 24 * time.Hour

// pruneInterval is how often entries older than retention are removed: a
// 24th of it, between a second and an hour, so the feed holds at most
// about 1/24 more than retention.
func pruneInterval(retention time.Duration) time.Duration {
	return min(max(retention/24, time.Second), time.Hour)
}

// changePruner removes the old entries of the change feed or the audit
// log, at start and then every pruneInterval, until stopped. Every node of
// a cluster runs one of each; pruning twice is harmless.
type changePruner struct {
	cancel context.CancelFunc
	done   sync.WaitGroup
}

// startChangePruner starts pruning reg's feed by retention; retention 0 or
// less disables it (nil is returned, and stopping it does nothing).
func startChangePruner(reg *fleetcert.Registry, retention time.Duration, logger *slog.Logger) *changePruner {
	return startPruner("change feed", reg.PruneChanges, retention, logger)
}

// startAuditPruner starts pruning reg's audit log by retention; retention 0
// or less keeps it for ever.
func startAuditPruner(reg *fleetcert.Registry, retention time.Duration, logger *slog.Logger) *changePruner {
	return startPruner("audit log", reg.PruneAudit, retention, logger)
}

// startPruner runs prune(retention) at once and every pruneInterval.
func startPruner(what string, prune func(context.Context, time.Duration) (int64, error), retention time.Duration, logger *slog.Logger) *changePruner {
	if retention <= 0 {
		return nil
	}
	ctx, cancel := context.WithCancel(context.Background())
	p := &changePruner{cancel: cancel}
	p.done.Add(1)
	go func() {
		defer p.done.Done()
		tick := time.NewTicker(pruneInterval(retention))
		defer tick.Stop()
		for {
			n, err := prune(ctx, retention)
			switch {
			case err != nil && ctx.Err() == nil:
				logger.Error("prune "+what, "err", err)
			case n > 0:
				logger.Info("pruned "+what, "removed", n, "retention", retention)
			}
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	}()
	return p
}

// stop ends the pruning and waits for a prune under way.
func (p *changePruner) stop() {
	if p == nil {
		return
	}
	p.cancel()
	p.done.Wait()
}
