package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fleetcert/fleetcert"
	"github.com/fleetcert/fleetcert/sqlite"
)

func lastJSON[T any](t *testing.T, out string) T {
	t.Helper()
	lines := strings.Split(strings.TrimSpace(out), "\n")
	var v T
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &v); err != nil {
		t.Fatalf("last line of %q: %v", out, err)
	}
	return v
}

// pageSizeMax is ListCertificatesByCA's largest page.
var pageSizeMax = 250

// seed writes distinct, valid certificates through the store's normal
// path, under one CA across runs with --ca-file, and view loads them.
func TestSeedAndView(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	data, caFile, ids := filepath.Join(dir, "data"), filepath.Join(dir, "ca.pem"), filepath.Join(dir, "ids")
	var reps []SeedReport
	for _, n := range []string{"25", "30"} {
		var out bytes.Buffer
		if err := run(ctx, []string{"seed", "-n", n, "--ca", "--ca-file", caFile, "--batch", "7", "--data-dir", data, "--ids-out", ids, "--ids-sample", "5"}, &out, io.Discard); err != nil {
			t.Fatalf("seed -n %s: %v", n, err)
		}
		reps = append(reps, lastJSON[SeedReport](t, out.String()))
	}
	if reps[0].Certificates != 25 || reps[1].Certificates != 30 || reps[0].CACertificateID == "" || reps[1].CACertificateID != reps[0].CACertificateID {
		t.Fatalf("reports %+v", reps)
	}
	sample, err := readIDs(ids)
	if err != nil || len(sample) != 5 {
		t.Fatalf("ids file: %v, %v", sample, err)
	}

	db := sqlite.NewDB(filepath.Join(data, "fleetcert.db"))
	if err := db.Open(); err != nil {
		t.Fatal(err)
	}
	reg := fleetcert.NewRegistry(db, nil)
	scope := fleetcert.Scope{AccountID: "123456789012", Region: "us-east-1"}
	page, err := reg.ListCertificatesByCA(ctx, scope, reps[0].CACertificateID, fleetcert.ListOptions{PageSize: &pageSizeMax})
	if err != nil || len(page.Certificates) != 55 {
		t.Fatalf("ListCertificatesByCA: %d certificates, %v; want 55", len(page.Certificates), err)
	}
	c, err := reg.DescribeCertificate(ctx, scope, sample[0])
	if err != nil || c.Status != fleetcert.StatusActive || c.CACertificateID != reps[0].CACertificateID {
		t.Fatalf("DescribeCertificate %s: %+v, %v", sample[0], c, err)
	}
	if _, err := fleetcert.ParseCertificatePEM("pem", c.PEM); err != nil {
		t.Fatal(err)
	}
	head, err := db.ChangesHead(ctx)
	if err != nil || head < 55 {
		t.Fatalf("change head %d, %v: want a change per certificate", head, err)
	}
	db.Close()

	var out bytes.Buffer
	if err := run(ctx, []string{"view", "--data-dir", data}, &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	if v := lastJSON[ViewReport](t, out.String()); v.Certificates != 55 {
		t.Fatalf("view: %+v, want 55 certificates", v)
	}
}

func TestSeedFlags(t *testing.T) {
	for _, tt := range []struct {
		name string
		args []string
	}{
		{"fail/no store", []string{"-n", "5"}},
		{"fail/two stores", []string{"-n", "5", "--data-dir", "x", "--database-url", "postgres://127.0.0.1/db"}},
		{"fail/remote database", []string{"-n", "5", "--database-url", "postgres://db.example.com/db"}},
		{"fail/batch too big", []string{"-n", "5", "--data-dir", "x", "--batch", "999999"}},
		{"fail/zero", []string{"-n", "0", "--data-dir", "x"}},
		{"fail/bad account", []string{"-n", "5", "--data-dir", "x", "--account-id", "12"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := parseSeedFlags(tt.args, io.Discard); err == nil {
				t.Fatalf("parseSeedFlags(%q): no error", tt.args)
			}
		})
	}
	if _, err := parseSeedFlags([]string{"-n", "5", "--data-dir", "x"}, io.Discard); err != nil {
		t.Fatalf("ok/data-dir: %v", err)
	}
}
