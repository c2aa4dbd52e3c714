package storetest

import (
	"context"
	"reflect"
	"testing"
	"time"

	"github.com/fleetcert/fleetcert"
)

// changes returns Changes(after, limit).
func changes(tb testing.TB, s fleetcert.Store, after int64, limit int) []fleetcert.Change {
	tb.Helper()
	chs, err := s.Changes(context.Background(), after, limit)
	if err != nil {
		tb.Fatalf("changes after %d: %v", after, err)
	}
	return chs
}

// appendChanges appends chs in one Update, setting their Seq.
func appendChanges(tb testing.TB, s fleetcert.Store, chs ...*fleetcert.Change) {
	tb.Helper()
	ctx := context.Background()
	err := s.Update(ctx, func(tx fleetcert.Tx) error {
		for _, ch := range chs {
			if err := tx.AppendChange(ctx, ch); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		tb.Fatalf("append changes: %v", err)
	}
}

// newChange returns a status change of certificate name.
func newChange(scope fleetcert.Scope, name string, kind fleetcert.ChangeKind, from, to fleetcert.Status, at time.Time) *fleetcert.Change {
	return &fleetcert.Change{Kind: kind, Scope: scope, CertificateID: certificateID(name), OldStatus: from, NewStatus: to, Time: at}
}

func testChanges(t *testing.T, s fleetcert.Store) {
	if got := changes(t, s, 0, 10); len(got) != 0 {
		t.Fatalf("empty store has changes %+v", got)
	}
	want := []*fleetcert.Change{
		newChange(scopeA, "c", fleetcert.ChangeCertificateCreated, "", fleetcert.StatusActive, baseTime),
		newChange(scopeB, "c", fleetcert.ChangeCertificateCreated, "", fleetcert.StatusInactive, baseTime.Add(time.Millisecond)),
		newChange(scopeA, "c", fleetcert.ChangeCertificateUpdated, fleetcert.StatusActive, fleetcert.StatusRevoked, baseTime.Add(2*time.Millisecond)),
		newChange(scopeARegion, "c", fleetcert.ChangeCertificateCreated, "", fleetcert.StatusPendingActivation, baseTime.Add(3*time.Millisecond)),
		newChange(scopeA, "c", fleetcert.ChangeCertificateDeleted, fleetcert.StatusRevoked, "", baseTime.Add(4*time.Millisecond)),
	}
	appendChanges(t, s, want[0])
	appendChanges(t, s, want[1], want[2]) // two in one transaction
	appendChanges(t, s, want[3])
	appendChanges(t, s, want[4])
	for i := 1; i < len(want); i++ {
		if want[i].Seq <= want[i-1].Seq {
			t.Fatalf("change Seq %d after %d, want increasing", want[i].Seq, want[i-1].Seq)
		}
	}
	got := changes(t, s, 0, 100)
	if len(got) != len(want) {
		t.Fatalf("%d changes, want %d: %+v", len(got), len(want), got)
	}
	for i := range got {
		if !reflect.DeepEqual(got[i], *want[i]) {
			t.Fatalf("change %d:\n got %+v\nwant %+v", i, got[i], *want[i])
		}
	}
}

func testChangesAfterLimit(t *testing.T, s fleetcert.Store) {
	var all []*fleetcert.Change
	for i := range 10 {
		ch := newChange(scopeA, "c", fleetcert.ChangeCertificateUpdated, fleetcert.StatusActive, fleetcert.StatusInactive,
			baseTime.Add(time.Duration(i)*time.Millisecond))
		appendChanges(t, s, ch)
		all = append(all, ch)
	}
	seqs := func(chs []fleetcert.Change) []int64 {
		var out []int64
		for _, ch := range chs {
			out = append(out, ch.Seq)
		}
		return out
	}
	wantSeqs := func(chs []*fleetcert.Change) []int64 {
		var out []int64
		for _, ch := range chs {
			out = append(out, ch.Seq)
		}
		return out
	}
	for _, tc := range []struct {
		name  string
		after int64
		limit int
		want  []*fleetcert.Change
	}{
		{"from the start", 0, 4, all[:4]},
		{"middle", all[3].Seq, 4, all[4:8]},
		{"past the end", all[7].Seq, 4, all[8:]},
		{"at the end", all[9].Seq, 4, nil},
		{"all", 0, 100, all},
	} {
		got := changes(t, s, tc.after, tc.limit)
		if g, w := seqs(got), wantSeqs(tc.want); !reflect.DeepEqual(g, w) {
			t.Fatalf("%s: Changes(%d, %d) = %v, want %v", tc.name, tc.after, tc.limit, g, w)
		}
	}
}
