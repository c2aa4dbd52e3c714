package main

import (
	"context"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/iot"
	"github.com/aws/aws-sdk-go-v2/service/iot/types"
)

// The ceiling answers the SDK's DescribeCertificate and
// RegisterCertificateWithoutCA as the model says, and verifies signatures
// for real.
func TestCeiling(t *testing.T) {
	ctx := context.Background()
	srv := httptest.NewServer(newCeiling("AKIACEILING", "ceiling-secret", "123456789012"))
	t.Cleanup(srv.Close)
	cfg := Config{Region: "us-east-1", AccessKeyID: "AKIACEILING", SecretAccessKey: "ceiling-secret", Concurrency: 1}
	client := newClient(cfg, srv.URL)

	f, err := newCertFactory()
	if err != nil {
		t.Fatal(err)
	}
	pems, err := f.generate(1)
	if err != nil {
		t.Fatal(err)
	}
	reg, err := client.RegisterCertificateWithoutCA(ctx, &iot.RegisterCertificateWithoutCAInput{CertificatePem: aws.String(pems[0]), Status: types.CertificateStatusActive})
	if err != nil {
		t.Fatal(err)
	}
	id := aws.ToString(reg.CertificateId)
	if len(id) != 64 || !strings.HasSuffix(aws.ToString(reg.CertificateArn), ":123456789012:cert/"+id) {
		t.Fatalf("register: id %q arn %q", id, aws.ToString(reg.CertificateArn))
	}
	d, err := client.DescribeCertificate(ctx, &iot.DescribeCertificateInput{CertificateId: aws.String(id)})
	if err != nil {
		t.Fatal(err)
	}
	cd := d.CertificateDescription
	if aws.ToString(cd.CertificateId) != id || cd.Status != types.CertificateStatusActive || aws.ToString(cd.CertificatePem) != pems[0] || cd.Validity == nil || cd.CreationDate == nil {
		t.Fatalf("describe: %+v", cd)
	}

	tests := []struct {
		name   string
		client *iot.Client
		id     string
		code   string
	}{
		{"fail/unknown certificate", client, strings.Repeat("0", 64), "ResourceNotFoundException"},
		{"fail/wrong secret", newClient(Config{Region: "us-east-1", AccessKeyID: "AKIACEILING", SecretAccessKey: "wrong", Concurrency: 1}, srv.URL), id, "InvalidSignatureException"},
		{"fail/unknown key", newClient(Config{Region: "us-east-1", AccessKeyID: "AKIAOTHER", SecretAccessKey: "ceiling-secret", Concurrency: 1}, srv.URL), id, "UnrecognizedClientException"},
		{"fail/other region", newClient(Config{Region: "eu-west-1", AccessKeyID: "AKIACEILING", SecretAccessKey: "ceiling-secret", Concurrency: 1}, srv.URL), id, "ResourceNotFoundException"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := tt.client.DescribeCertificate(ctx, &iot.DescribeCertificateInput{CertificateId: aws.String(tt.id)})
			if got := errorCode(err); got != tt.code {
				t.Fatalf("DescribeCertificate: %v (code %s), want %s", err, got, tt.code)
			}
		})
	}
	if _, err := client.RegisterCertificateWithoutCA(ctx, &iot.RegisterCertificateWithoutCAInput{CertificatePem: aws.String(pems[0])}); errorCode(err) != "ResourceAlreadyExistsException" {
		t.Fatalf("register again: %v, want ResourceAlreadyExistsException", err)
	}
}

func TestCheckLoopbackDatabase(t *testing.T) {
	for url, ok := range map[string]bool{
		"postgres://u:p@127.0.0.1:5432/db":          true,
		"postgres://u@localhost/db?sslmode=disable": true,
		"postgres://u@[::1]:5432/db":                true,
		"postgres:///db?host=/tmp":                  true,
		"postgres://u:p@10.0.0.5:5432/db":           false,
		"postgres://u:p@db.example.com/db":          false,
	} {
		if err := checkLoopbackDatabase(url); (err == nil) != ok {
			t.Errorf("checkLoopbackDatabase(%q) = %v, want ok=%v", url, err, ok)
		}
	}
}
