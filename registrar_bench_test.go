package fleetcert_test

import (
	"context"
	"sync/atomic"
	"testing"

	"github.com/fleetcert/fleetcert"
	"github.com/fleetcert/fleetcert/internal/testpki"
)

// BenchmarkRegisterCertificateUnderCA: RegisterCertificate of new
// certificates signed by a registered CA, the issuer found by subject as
// `aws iot register-certificate` without --ca-certificate-pem finds it,
// from 8 callers per CPU at once, on the SQLite store with its audit log.
// The certificates are made before the timer starts.
func BenchmarkRegisterCertificateUnderCA(b *testing.B) {
	ctx := context.Background()
	reg, _ := mustOpenRegistry(b)
	caCert := testpki.New(b, testpki.Options{IsCA: true, CommonName: "Bench CA"})
	_, err := reg.RegisterCACertificate(ctx, scope, fleetcert.RegisterCAInput{CACertificatePEM: caCert.PEM, Mode: fleetcert.ModeSNIOnly, SetAsActive: true})
	if err != nil {
		b.Fatal(err)
	}
	leaves := make([]string, b.N)
	key := testpki.New(b, testpki.Options{}).Key
	for i := range leaves {
		leaves[i] = testpki.New(b, testpki.Options{Parent: caCert, Key: key}).PEM
	}
	var next atomic.Int64
	b.SetParallelism(8)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			pem := leaves[next.Add(1)-1]
			if _, err := reg.RegisterCertificate(ctx, scope, fleetcert.RegisterCertificateInput{CertificatePEM: pem, SetAsActive: true}); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
