package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/fleetcert/fleetcert"
)

// runAudit is "fleetcert audit".
func runAudit(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("audit", "fleetcert audit [--since T] [--until T] [--certificate ID] [--resource R] [--account-id ID]\n       [--limit N] [--data-dir D | --database-url URL]", `
Prints the audit log of the store as JSON lines, oldest first: one object
per mutation with time, operation, kind, accountId, region, certificateId,
oldStatus and newStatus, resource and target, and who made it (actor: the
access key id, "console:" and the key id, "device", "cli" or "system";
actorAccountId; sourceIp). Times (--since, --until) are RFC 3339
(2026-12-01T00:00:00Z), a date (2026-12-01, UTC) or a duration back from
now (24h). The server may be running.`)
	dataDir, databaseURL := storeFlags(fs)
	since := fs.String("since", "", "only entries at or after this time (RFC 3339, a date, or a duration before now such as 24h)")
	until := fs.String("until", "", "only entries before this time (as --since)")
	certificateID := fs.String("certificate", "", "only entries of this certificate or CA certificate id")
	resource := fs.String("resource", "", "only entries of this resource: thing/NAME, policy/NAME, thing-principal/NAME, an access key id…")
	accountID := fs.String("account-id", "", "only entries of this 12-digit account")
	limit := fs.Int("limit", 0, "print at most this many entries (0: every entry that matches)")
	if err := fs.parse(args, stdout, stderr); err != nil {
		return err
	}
	now := time.Now()
	q := fleetcert.AuditQuery{CertificateID: strings.ToLower(*certificateID), Resource: *resource,
		AccountID: *accountID}
	var err error
	if q.Since, err = parseAuditTime(*since, now); err != nil {
		fs.writeUsage(stderr)
		return usagef("audit: --since: %v", err)
	}
	if q.Until, err = parseAuditTime(*until, now); err != nil {
		fs.writeUsage(stderr)
		return usagef("audit: --until: %v", err)
	}
	if *limit < 0 {
		fs.writeUsage(stderr)
		return usagef("audit: --limit must not be negative")
	}
	reg, closeStore, err := openKeysStore(ctx, "audit", *dataDir, *databaseURL)
	if err != nil {
		return err
	}
	defer closeStore()
	enc := json.NewEncoder(stdout)
	printed := 0
	for {
		q.Limit = fleetcert.MaxAuditLimit
		if *limit > 0 {
			q.Limit = min(q.Limit, *limit-printed)
		}
		entries, next, err := reg.Audit(ctx, q)
		if err != nil {
			return fmt.Errorf("audit: %s", errorText(err))
		}
		for _, e := range entries {
			if err := enc.Encode(auditJSONOf(e)); err != nil {
				return fmt.Errorf("audit: %w", err)
			}
		}
		printed += len(entries)
		if next == nil || (*limit > 0 && printed >= *limit) {
			return nil
		}
		q.After = next
	}
}

// parseAuditTime reads --since and --until: RFC 3339, a date (UTC), or a
// duration before now; "" is no bound.
func parseAuditTime(s string, now time.Time) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	if t, err := time.Parse(time.DateOnly, s); err == nil {
		return t, nil
	}
	if d, err := time.ParseDuration(s); err == nil && d >= 0 {
		return now.Add(-d), nil
	}
	return time.Time{}, fmt.Errorf("%q is neither an RFC 3339 time (2026-12-01T00:00:00Z), a date (2026-12-01) nor a duration (24h)", s)
}

// auditJSON is one line of fleetcert audit.
type auditJSON struct {
	Time           string `json:"time"`
	Seq            int64  `json:"seq"`
	Operation      string `json:"operation"`
	Kind           string `json:"kind"`
	AccountID      string `json:"accountId"`
	Region         string `json:"region,omitempty"`
	CertificateID  string `json:"certificateId,omitempty"`
	OldStatus      string `json:"oldStatus,omitempty"`
	NewStatus      string `json:"newStatus,omitempty"`
	Resource       string `json:"resource,omitempty"`
	Target         string `json:"target,omitempty"`
	Actor          string `json:"actor"`
	ActorAccountID string `json:"actorAccountId,omitempty"`
	SourceIP       string `json:"sourceIp,omitempty"`
}

func auditJSONOf(e fleetcert.AuditEntry) auditJSON {
	return auditJSON{
		Time: e.Time.UTC().Format("2006-01-02T15:04:05.000Z07:00"), Seq: e.Seq, Operation: e.Operation, Kind: string(e.Kind),
		AccountID: e.Scope.AccountID, Region: e.Scope.Region, CertificateID: e.CertificateID,
		OldStatus: string(e.OldStatus), NewStatus: string(e.NewStatus), Resource: e.Resource, Target: e.Target,
		Actor: e.Actor, ActorAccountID: e.ActorAccount, SourceIP: e.SourceIP,
	}
}
