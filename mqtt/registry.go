package mqtt

import (
	"context"
	"time"

	"github.com/fleetcert/fleetcert"
)

// Registry is what the gateway needs of the certificate registry;
// *fleetcert.Registry implements it. The gateway decides nothing itself:
// admission is AdmitDevice's rule, read from the store or from an
// AdmissionView the gateway keeps current from the change feed.
type Registry interface {
	// AdmitDevice, AutoRegistrationCandidate and AutoRegisterDevice
	// decide a device's admission and register it just in time, from
	// the store.
	AdmitDevice(ctx context.Context, q fleetcert.DeviceQuery) (*fleetcert.Certificate, error)
	AutoRegistrationCandidate(ctx context.Context, q fleetcert.DeviceQuery) (bool, error)
	AutoRegisterDevice(ctx context.Context, q fleetcert.DeviceQuery) (*fleetcert.AutoRegistration, error)

	// NewAdmissionView returns an empty copy of the registrations, for
	// the common handshake.
	NewAdmissionView() *fleetcert.AdmissionView

	// The change feed: its entries, its head, and what wakes a reader
	// (this process's commits; every process's, when the store can tell,
	// else a nil channel).
	Changes(ctx context.Context, after int64, limit int) ([]fleetcert.Change, error)
	ChangesHead(ctx context.Context) (int64, error)
	ChangeSignal() <-chan struct{}
	NotifyChanges(ctx context.Context) (<-chan struct{}, error)

	// ConnectionPolicies returns the policies that authorize a device's
	// connection and the thing it connects as (authz.go).
	ConnectionPolicies(ctx context.Context, scope fleetcert.Scope, certificateID, clientID string) (*fleetcert.ConnectionPolicies, error)

	// AnnounceSession records a connection in the change feed, for the
	// other gateways of a cluster (Gateway.AnnounceSessions).
	AnnounceSession(ctx context.Context, scope fleetcert.Scope, certificateID, clientID, sessionID string) (int64, error)

	// ClaimOnce reports whether this process is the first on the store to
	// claim key within ttl: of a cluster's nodes, the one that publishes
	// an event every node sees happen (expiry.go).
	ClaimOnce(ctx context.Context, key string, ttl time.Duration) (bool, error)
}

// The registry the gateway is built for.
var _ Registry = (*fleetcert.Registry)(nil)
