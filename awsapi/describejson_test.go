package awsapi

import (
	"bytes"
	"testing"
	"time"
)

// The hand encoding of DescribeCertificate's answer is byte for byte
// encoding/json's, for every member set or empty and every kind of string.
func TestDescribeJSONMatchesEncodingJSON(t *testing.T) {
	at := epochTime(time.Date(2026, 12, 2, 9, 48, 1, 123e6, time.UTC))
	whole := epochTime(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC))
	full := certificateDescription{
		CertificateARN: "arn:aws:iot:us-east-1:123456789012:cert/ab", CertificateID: "ab", CACertificateID: "cd",
		Status: "ACTIVE", CertificatePEM: "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
		OwnedBy: "123456789012", PreviousOwnedBy: "210987654321", CreationDate: at, LastModifiedDate: whole,
		CustomerVersion: 7, GenerationID: "8e400081-3b92-47ab-a329-048bfde8982c",
		Validity: certificateValidity{NotBefore: at, NotAfter: whole}, CertificateMode: "SNI_ONLY",
	}
	strange := "quote\" backslash\\ tab\t cr\r nl\n bs\b ff\f nul\x00 us\x1f del\x7f <html>&amp; é € 😀 \u2028\u2029 bad\xff\xfe end"
	for _, tt := range []struct {
		name string
		edit func(d *certificateDescription)
	}{
		{"ok/every member", func(d *certificateDescription) {}},
		{"ok/empty optional members", func(d *certificateDescription) { *d = certificateDescription{} }},
		{"ok/no CA, no previous owner, version 0", func(d *certificateDescription) {
			d.CACertificateID, d.PreviousOwnedBy, d.CustomerVersion = "", "", 0
		}},
		{"ok/validity start only", func(d *certificateDescription) { d.Validity.NotAfter = epochTime{} }},
		{"ok/validity end only", func(d *certificateDescription) { d.Validity.NotBefore = epochTime{} }},
		{"ok/times before 1970 and far ahead", func(d *certificateDescription) {
			d.CreationDate = epochTime(time.Date(1950, 6, 1, 0, 0, 0, 1e6, time.UTC))
			d.Validity.NotAfter = epochTime(time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC))
		}},
		{"ok/strange strings", func(d *certificateDescription) {
			d.CertificateARN, d.CertificatePEM, d.OwnedBy, d.GenerationID = strange, strange, strange, strange
			d.Status, d.CertificateMode = "\x01", "\u2029"
		}},
		{"ok/negative version", func(d *certificateDescription) { d.CustomerVersion = -3 }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			d := full
			tt.edit(&d)
			out := &describeCertificateOutput{CertificateDescription: d}
			want, err := appendJSON(new(bytes.Buffer), out)
			if err != nil {
				t.Fatal(err)
			}
			got, ok := out.appendJSON(nil)
			if !ok || !bytes.Equal(got, want) {
				t.Errorf("hand encoding (ok %v):\n got %s\nwant %s", ok, got, want)
			}
		})
	}
	out := &describeCertificateOutput{CertificateDescription: full}
	out.CertificateDescription.TransferData = &transferData{TransferMessage: "m"}
	if _, ok := out.appendJSON(nil); ok {
		t.Error("a description with transfer data: want encoding/json's")
	}
}

// Fuzzed strings encode as encoding/json encodes them.
func FuzzAppendJSONString(f *testing.F) {
	for _, s := range []string{"", "plain", "\"\\\n\x00\x7f", "é€😀", "\u2028\u2029", "\xff\xfe\xc3", "<>&"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		want, err := appendJSON(new(bytes.Buffer), s)
		if err != nil {
			t.Fatal(err)
		}
		if got := appendJSONString(nil, s); !bytes.Equal(got, want) {
			t.Errorf("%q:\n got %s\nwant %s", s, got, want)
		}
	})
}
