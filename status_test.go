package fleetcert_test

import (
	"strings"
	"testing"

	"github.com/fleetcert/fleetcert"
)

// TestCheckTransition is the client-certificate state machine: every
// from × to pair and its outcome.
func TestCheckTransition(t *testing.T) {
	const (
		A  = fleetcert.StatusActive
		I  = fleetcert.StatusInactive
		R  = fleetcert.StatusRevoked
		PT = fleetcert.StatusPendingTransfer
		PA = fleetcert.StatusPendingActivation
		RI = fleetcert.StatusRegisterInactive
	)
	const (
		ok    = "ok"
		noop  = "noop"
		state = fleetcert.ECertificateState
		inval = fleetcert.EInvalidRequest
	)
	tests := []struct {
		from, to fleetcert.Status
		want     string
	}{
		{A, A, noop}, {A, I, ok}, {A, R, ok}, {A, RI, ok},
		{I, A, ok}, {I, I, noop}, {I, R, ok}, {I, RI, noop},
		// AWS IoT: REVOKED is terminal.
		{R, A, state}, {R, I, state}, {R, RI, state}, {R, R, noop},
		// A certificate in transfer is settled only by the transfer operations.
		{PT, A, state}, {PT, I, state}, {PT, R, state},
		// JITR: the provisioning service activates (or refuses) the device.
		{PA, A, ok}, {PA, I, ok}, {PA, R, ok},
		// System-only statuses are refused as a target, from anywhere.
		{A, PT, inval}, {I, PT, inval}, {R, PT, inval}, {PT, PT, inval},
		{A, PA, inval}, {I, PA, inval}, {R, PA, inval}, {PA, PA, inval},
		{A, "ENABLED", inval}, {A, "", inval}, {A, "active", inval},
	}
	for _, tt := range tests {
		name := "ok/"
		if tt.want != ok && tt.want != noop {
			name = "fail/"
		}
		t.Run(name+string(tt.from)+"->"+string(tt.to), func(t *testing.T) {
			changed, err := fleetcert.CheckTransition(tt.from, tt.to)
			switch tt.want {
			case ok:
				if err != nil || !changed {
					t.Fatalf("got changed=%v err=%v, want a change", changed, err)
				}
			case noop:
				if err != nil || changed {
					t.Fatalf("got changed=%v err=%v, want a successful no-op", changed, err)
				}
			default:
				if code := fleetcert.ErrorCode(err); code != tt.want {
					t.Fatalf("got code %q (err %v), want %s", code, err, tt.want)
				}
			}
		})
	}
}

func TestCheckRegistrationStatus(t *testing.T) {
	tests := []struct {
		in   fleetcert.Status
		want fleetcert.Status
		code string
	}{
		{"", fleetcert.StatusInactive, ""},
		{fleetcert.StatusActive, fleetcert.StatusActive, ""},
		{fleetcert.StatusInactive, fleetcert.StatusInactive, ""},
		{fleetcert.StatusRevoked, fleetcert.StatusRevoked, ""},
		{fleetcert.StatusRegisterInactive, fleetcert.StatusInactive, ""},
		{fleetcert.StatusPendingTransfer, "", fleetcert.EInvalidRequest},
		{fleetcert.StatusPendingActivation, "", fleetcert.EInvalidRequest},
		{"BOGUS", "", fleetcert.EInvalidRequest},
	}
	for _, tt := range tests {
		t.Run(string(tt.in), func(t *testing.T) {
			got, err := fleetcert.CheckRegistrationStatus(tt.in)
			if code := fleetcert.ErrorCode(err); code != tt.code || got != tt.want {
				t.Fatalf("got %q, %q; want %q, %q", got, code, tt.want, tt.code)
			}
		})
	}
}

func TestCanDelete(t *testing.T) {
	tests := []struct {
		s    fleetcert.Status
		code string
	}{
		{fleetcert.StatusActive, fleetcert.ECertificateState},
		{fleetcert.StatusPendingTransfer, fleetcert.ECertificateState},
		{fleetcert.StatusInactive, ""},
		{fleetcert.StatusRevoked, ""},
		{fleetcert.StatusPendingActivation, ""},
	}
	for _, tt := range tests {
		if code := fleetcert.ErrorCode(fleetcert.CanDelete("c0ffee", tt.s)); code != tt.code {
			t.Errorf("CanDelete(%s) = %q, want %q", tt.s, code, tt.code)
		}
	}
}

func TestParseStatus(t *testing.T) {
	for _, s := range []string{"ACTIVE", "INACTIVE", "REVOKED", "PENDING_TRANSFER", "REGISTER_INACTIVE", "PENDING_ACTIVATION"} {
		if _, err := fleetcert.ParseStatus(s); err != nil {
			t.Errorf("ParseStatus(%s): %v", s, err)
		}
	}
	for _, s := range []string{"", "active", "DELETED"} {
		if code := fleetcert.ErrorCode(func() error { _, err := fleetcert.ParseStatus(s); return err }()); code != fleetcert.EInvalidRequest {
			t.Errorf("ParseStatus(%q) code = %q", s, code)
		}
	}
}

func TestValidRegion(t *testing.T) {
	for s, want := range map[string]bool{
		"us-east-1": true, "eu-central-2": true, "us-gov-west-1": true, "cn-north-1": true,
		"": false, "-us": false, "us-": false, "US-EAST-1": false, "us_east_1": false,
		"us-east-1/x": false, "a.b": false, "abcdefghijklmnopqrstuvwxyz0123456789": false,
	} {
		if got := fleetcert.ValidRegion(s); got != want {
			t.Errorf("ValidRegion(%q) = %v, want %v", s, got, want)
		}
	}
}

// Every refusal names the status as the caller sent it, and where AWS's
// own message is known it is AWS's, word for word: scripts match on it.
func TestMessages(t *testing.T) {
	id := strings.Repeat("ab", 32)
	tests := []struct {
		name string
		err  error
		want string
	}{
		{"revoked-to-register-inactive", second(fleetcert.CheckTransition(fleetcert.StatusRevoked, fleetcert.StatusRegisterInactive)),
			"The certificate is revoked; a revoked certificate cannot be set to REGISTER_INACTIVE."},
		{"pending-transfer-to-register-inactive", second(fleetcert.CheckTransition(fleetcert.StatusPendingTransfer, fleetcert.StatusRegisterInactive)),
			"cancel or reject the transfer before setting it to REGISTER_INACTIVE."},
		{"unknown-update", second(fleetcert.CheckTransition(fleetcert.StatusActive, "active")), `Unknown certificate status "active".`},
		{"register-pending-transfer", second(fleetcert.CheckRegistrationStatus(fleetcert.StatusPendingTransfer)),
			"A certificate cannot be registered with status PENDING_TRANSFER; use ACTIVE, INACTIVE, REGISTER_INACTIVE or REVOKED."},
		{"register-unknown", second(fleetcert.CheckRegistrationStatus("ENABLED")),
			`Unknown certificate status "ENABLED"; use ACTIVE, INACTIVE, REGISTER_INACTIVE or REVOKED.`},
		// AWS's text, quoted in rebuy-de/aws-nuke#374.
		{"delete-active", fleetcert.CanDelete(id, fleetcert.StatusActive),
			"Certificate must be deactivated (not ACTIVE) before deletion. Id: " + id},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := fleetcert.ErrorMessage(tt.err); !strings.Contains(got, tt.want) {
				t.Errorf("message %q, want %q", got, tt.want)
			}
		})
	}
}

func second[T any](_ T, err error) error { return err }
