package awsapi_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/service/iot"
	"github.com/aws/aws-sdk-go-v2/service/iot/types"
	"github.com/fleetcert/fleetcert"
	"github.com/fleetcert/fleetcert/awsapi"
)

// testClock is a clock that moves only when told: buckets refill only then.
type testClock struct{ ns atomic.Int64 }

func newTestClock(t time.Time) *testClock {
	c := &testClock{}
	c.ns.Store(t.UnixNano())
	return c
}

func (c *testClock) Now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *testClock) Advance(d time.Duration) { c.ns.Add(int64(d)) }

func mustParseThrottle(tb testing.TB, spec string) *awsapi.Throttle {
	tb.Helper()
	th, err := awsapi.ParseThrottle(spec)
	if err != nil {
		tb.Fatal(err)
	}
	return th
}

func TestParseThrottle(t *testing.T) {
	aws := awsapi.AWSRates()
	withAWS := func(changes map[string]*awsapi.Rate) map[string]awsapi.Rate {
		rates := awsapi.AWSRates()
		for op, r := range changes {
			if r == nil {
				delete(rates, op)
			} else {
				rates[op] = *r
			}
		}
		return rates
	}
	for _, tt := range []struct {
		name  string
		spec  string
		want  map[string]awsapi.Rate // nil: no Throttle
		error string                 // part of the error, which names the item
	}{
		{name: "ok/empty", spec: ""},
		{name: "ok/off", spec: "off"},
		{name: "ok/off with spaces", spec: " off "},
		{name: "ok/aws", spec: "aws", want: aws},
		{name: "ok/aws with an override", spec: "aws,DescribeCertificate=500",
			want: withAWS(map[string]*awsapi.Rate{"DescribeCertificate": {PerSecond: 500, Burst: 500}})},
		{name: "ok/aws with an override and burst", spec: "aws, ListCertificates = 20/40 ",
			want: withAWS(map[string]*awsapi.Rate{"ListCertificates": {PerSecond: 20, Burst: 40}})},
		{name: "ok/aws with an operation off", spec: "aws,DescribeEndpoint=off",
			want: withAWS(map[string]*awsapi.Rate{"DescribeEndpoint": nil})},
		{name: "ok/only the operations named", spec: "DescribeCertificate=5,UpdateCertificate=0.5/2",
			want: map[string]awsapi.Rate{"DescribeCertificate": {5, 5}, "UpdateCertificate": {0.5, 2}}},
		{name: "ok/fractional rate rounds the burst up", spec: "DescribeCertificate=2.5",
			want: map[string]awsapi.Rate{"DescribeCertificate": {2.5, 3}}},
		{name: "ok/slow rate bursts one", spec: "DescribeCertificate=0.01",
			want: map[string]awsapi.Rate{"DescribeCertificate": {0.01, 1}}},
		{name: "ok/huge rate", spec: "DescribeCertificate=1e12",
			want: map[string]awsapi.Rate{"DescribeCertificate": {1e12, 1<<31 - 1}}},
		{name: "fail/unknown operation", spec: "aws,DescribeCertifcate=5", error: `throttle item "DescribeCertifcate=5": unknown operation "DescribeCertifcate"`},
		{name: "ok/a thing operation", spec: "DescribeThing=5", want: map[string]awsapi.Rate{"DescribeThing": {5, 5}}},
		{name: "fail/operation of another service", spec: "GetThingShadow=5", error: `"GetThingShadow=5"`},
		{name: "fail/operation in other case", spec: "describecertificate=5", error: "did you mean DescribeCertificate?"},
		{name: "fail/rate not a number", spec: "DescribeCertificate=fast", error: `throttle item "DescribeCertificate=fast": rate "fast"`},
		{name: "fail/zero rate", spec: "DescribeCertificate=0", error: `"DescribeCertificate=0"`},
		{name: "fail/negative rate", spec: "DescribeCertificate=-1", error: `"DescribeCertificate=-1"`},
		{name: "fail/NaN rate", spec: "DescribeCertificate=NaN", error: `"DescribeCertificate=NaN"`},
		{name: "fail/infinite rate", spec: "DescribeCertificate=Inf", error: `"DescribeCertificate=Inf"`},
		{name: "fail/no rate", spec: "DescribeCertificate=", error: `"DescribeCertificate="`},
		{name: "fail/zero burst", spec: "DescribeCertificate=5/0", error: `throttle item "DescribeCertificate=5/0": burst "0"`},
		{name: "fail/fractional burst", spec: "DescribeCertificate=5/1.5", error: `burst "1.5"`},
		{name: "fail/no equals sign", spec: "DescribeCertificate", error: `throttle item "DescribeCertificate": want Operation=rate`},
		{name: "fail/aws not first", spec: "DescribeCertificate=5,aws", error: `throttle item "aws": "aws" must come first`},
		{name: "fail/operation twice", spec: "aws,DescribeCertificate=5,DescribeCertificate=6", error: `"DescribeCertificate=6": DescribeCertificate is given twice`},
		{name: "fail/empty item", spec: "aws,,DescribeCertificate=5", error: `throttle item ""`},
		{name: "fail/trailing comma", spec: "aws,", error: `throttle item ""`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			th, err := awsapi.ParseThrottle(tt.spec)
			if tt.error != "" {
				if err == nil || !strings.Contains(err.Error(), tt.error) {
					t.Fatalf("error %v, want %q", err, tt.error)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tt.want == nil {
				if th != nil {
					t.Fatalf("throttle %v, want none", th)
				}
				return
			}
			got := th.Rates()
			if len(got) != len(tt.want) {
				t.Errorf("%d rates, want %d: %v", len(got), len(tt.want), th)
			}
			for op, want := range tt.want {
				if got[op] != want {
					t.Errorf("%s: %v, want %v", op, got[op], want)
				}
			}
			// String reads back as the same rates.
			if again := mustParseThrottle(t, th.String()); again.String() != th.String() {
				t.Errorf("String %q reads back as %q", th, again)
			}
		})
	}
}

// TestAWSRates checks the "aws" table against the models: a rate for each
// of their operations (22 of certificates, 43 of things and policies), no
// other, and ParseThrottle("aws") takes them all.
func TestAWSRates(t *testing.T) {
	rates := awsapi.AWSRates()
	n := 0
	for _, m := range []*model{loadModel(t), loadAuthzModel(t)} {
		for name := range m.Operations {
			n++
			r, ok := rates[name]
			if !ok || r.PerSecond < 10 || r.Burst < 1 {
				t.Errorf("%s: rate %v", name, r)
			}
		}
	}
	if len(rates) != n || n != 22+43 {
		t.Errorf("%d rates for %d operations", len(rates), n)
	}
	if th := mustParseThrottle(t, "aws"); len(th.Rates()) != n {
		t.Errorf("ParseThrottle(aws) has %d rates, want %d", len(th.Rates()), n)
	}
	// A few of AWS's published defaults, one per value they take.
	for op, want := range map[string]float64{
		"CreateCertificateFromCsr": 15, "DescribeCertificate": 10,
		"DescribeThing": 350, "CreateThing": 100, "CreateThingGroup": 25,
		"ListThingsInThingGroup": 25, "UpdateThingGroup": 15, "ListThings": 10,
	} {
		if got := rates[op].PerSecond; got != want {
			t.Errorf("%s: %v a second, want AWS's %v", op, got, want)
		}
	}
}

// TestThrottle_Client drives the real IoT client against a throttled
// handler whose clock moves only when the test says, so that buckets refill
// only then.
func TestThrottle_Client(t *testing.T) {
	e := newEnv(t)
	clock := newTestClock(time.Now())
	e.Handler.Now = clock.Now
	e.Handler.Throttle = mustParseThrottle(t, "DescribeCertificate=1/2,UpdateCertificate=1/1")
	ctx := context.Background()
	idA := e.mustRegister(e.KeyA, testRegion, fleetcert.StatusActive)
	idB := e.mustRegister(e.KeyB, testRegion, fleetcert.StatusActive)
	clientA, clientB := e.Client(e.KeyA, testRegion), e.Client(e.KeyB, testRegion)
	describe := func(c *iot.Client, id string) error {
		_, err := c.DescribeCertificate(ctx, &iot.DescribeCertificateInput{CertificateId: aws.String(id)})
		return err
	}
	wrongSecret := *e.KeyB
	wrongSecret.Secret = strings.Repeat("x", 40)
	steps := []struct {
		name string
		call func() error
		code string // "" for success
	}{
		{"ok/first of the burst", func() error { return describe(clientA, idA) }, ""},
		{"ok/second of the burst", func() error { return describe(clientA, idA) }, ""},
		{"fail/over the rate", func() error { return describe(clientA, idA) }, "ThrottlingException"},
		{"fail/over the rate for an unknown id too", func() error { return describe(clientA, strings.Repeat("0", 64)) }, "ThrottlingException"},
		{"ok/another account has its own bucket", func() error { return describe(clientB, idB) }, ""},
		{"ok/another operation has its own bucket", func() error {
			_, err := clientA.ListCertificates(ctx, &iot.ListCertificatesInput{})
			return err
		}, ""},
		{"ok/another region has its own bucket", func() error {
			return describe(e.Client(e.KeyA, "eu-west-1"), strings.Repeat("0", 64))
		}, "ResourceNotFoundException"},
		{"fail/unauthenticated requests are refused before the throttle", func() error {
			return describe(e.Client(&wrongSecret, testRegion), idB)
		}, "InvalidSignatureException"},
		{"ok/and took no token of the account", func() error { return describe(clientB, idB) }, ""},
		{"fail/then the account is over its rate", func() error { return describe(clientB, idB) }, "ThrottlingException"},
		{"ok/a second later the bucket has refilled one", func() error {
			clock.Advance(time.Second)
			return describe(clientA, idA)
		}, ""},
		{"fail/and only one", func() error { return describe(clientA, idA) }, "ThrottlingException"},
		{"ok/update", func() error {
			_, err := clientA.UpdateCertificate(ctx, &iot.UpdateCertificateInput{CertificateId: aws.String(idA), NewStatus: types.CertificateStatusInactive})
			return err
		}, ""},
		{"fail/a throttled update does not run", func() error {
			_, err := clientA.UpdateCertificate(ctx, &iot.UpdateCertificateInput{CertificateId: aws.String(idA), NewStatus: types.CertificateStatusRevoked})
			return err
		}, "ThrottlingException"},
	}
	for _, s := range steps {
		err := s.call()
		if s.code == "" {
			if err != nil {
				t.Fatalf("%s: %v", s.name, err)
			}
			continue
		}
		code, status := apiError(t, err)
		if code != s.code {
			t.Fatalf("%s: %s %d, want %s", s.name, code, status, s.code)
		}
		if code != "ThrottlingException" {
			continue
		}
		var te *types.ThrottlingException
		if !errors.As(err, &te) || status != 400 {
			t.Errorf("%s: SDK raised %T %d, want the typed ThrottlingException with 400", s.name, err, status)
		} else if te.ErrorMessage() != "Rate exceeded" {
			t.Errorf("%s: message %q, want AWS's %q", s.name, te.ErrorMessage(), "Rate exceeded")
		}
		if retry.IsErrorThrottles(retry.DefaultThrottles).IsErrorThrottle(err) != aws.TrueTernary {
			t.Errorf("%s: the SDK does not take %v for throttling", s.name, err)
		}
		if rec := e.Logs.Last(t); rec["errorCode"] != "ThrottlingException" || rec["status"] != "400" || rec["level"] != "INFO" {
			t.Errorf("%s: logged %v", s.name, rec)
		}
	}
	c, err := e.Registry.DescribeCertificate(ctx, fleetcert.Scope{AccountID: accountA, Region: testRegion}, idA)
	if err != nil || c.Status != fleetcert.StatusInactive {
		t.Errorf("after a throttled update: %v, %v", c, err)
	}
}

// TestThrottle_Retried shows that the SDK's standard retryer retries a
// throttled call: three attempts reach the server for one call.
func TestThrottle_Retried(t *testing.T) {
	e := newEnv(t)
	clock := newTestClock(time.Now())
	e.Handler.Now = clock.Now
	e.Handler.Throttle = mustParseThrottle(t, "ListCertificates=1/1")
	client := iot.New(iot.Options{
		Region:       testRegion,
		BaseEndpoint: aws.String(e.URL()),
		Credentials:  staticCredentials(e.KeyA),
		HTTPClient:   e.server.Client(),
		Retryer: retry.NewStandard(func(o *retry.StandardOptions) {
			o.MaxAttempts = 3
			o.Backoff = retry.BackoffDelayerFunc(func(int, error) (time.Duration, error) { return 0, nil })
		}),
	})
	ctx := context.Background()
	if _, err := client.ListCertificates(ctx, &iot.ListCertificatesInput{}); err != nil {
		t.Fatal(err)
	}
	before := strings.Count(e.Logs.String(), "errorCode=ThrottlingException")
	_, err := client.ListCertificates(ctx, &iot.ListCertificatesInput{})
	if code, _ := apiError(t, err); code != "ThrottlingException" {
		t.Fatalf("got %v", err)
	}
	if n := strings.Count(e.Logs.String(), "errorCode=ThrottlingException") - before; n != 3 {
		t.Errorf("%d throttled attempts reached the server, want the SDK's 3", n)
	}
}

// TestThrottle_Isolation floods one account from several goroutines while
// another account makes its calls: the flood gets its burst and no more,
// the other account every call it is due.
func TestThrottle_Isolation(t *testing.T) {
	e := newEnv(t)
	clock := newTestClock(time.Now())
	e.Handler.Now = clock.Now
	const burst = 5
	e.Handler.Throttle = mustParseThrottle(t, fmt.Sprintf("DescribeCertificate=1/%d", burst))
	idA := e.mustRegister(e.KeyA, testRegion, fleetcert.StatusActive)
	idB := e.mustRegister(e.KeyB, testRegion, fleetcert.StatusActive)
	signed := e.Request(e.KeyA, testRegion, "GET", "/certificates/"+idA, nil, clock.Now())

	const flooders, each = 8, 50
	var ok, throttled atomic.Int64
	var wg sync.WaitGroup
	for range flooders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range each {
				resp := e.Do(signed.Clone(context.Background()))
				switch w := readError(t, resp); {
				case w.Status == 200:
					ok.Add(1)
				case w.Code == "ThrottlingException":
					throttled.Add(1)
				default:
					t.Errorf("flood: %d %s", w.Status, w.Code)
				}
			}
		}()
	}
	for i := range burst {
		resp := e.Do(e.Request(e.KeyB, testRegion, "GET", "/certificates/"+idB, nil, clock.Now()))
		if w := readError(t, resp); w.Status != 200 {
			t.Errorf("account B's call %d during A's flood: %d %s", i+1, w.Status, w.Code)
		}
	}
	wg.Wait()
	if ok.Load() != burst || throttled.Load() != flooders*each-burst {
		t.Errorf("flood: %d ok, %d throttled; want %d ok", ok.Load(), throttled.Load(), burst)
	}
}

// TestThrottle_Eviction checks that idle accounts' buckets go and busy
// ones stay.
func TestThrottle_Eviction(t *testing.T) {
	scope := func(i int) fleetcert.Scope {
		return fleetcert.Scope{AccountID: fmt.Sprintf("%012d", i), Region: testRegion}
	}
	const accounts = 1000
	for _, tt := range []struct {
		name  string
		spec  string
		later time.Duration // when one more account calls
		want  int           // buckets then
	}{
		// Full again after 1 s; swept at the latest a minute after the last
		// sweep.
		{"ok/idle buckets go", "DescribeCertificate=1/1", 2 * time.Minute, 1},
		// Not full again until 100 s after their call: kept, they still
		// hold the accounts back.
		{"ok/draining buckets stay", "DescribeCertificate=0.01/1", 61 * time.Second, accounts + 1},
		{"ok/drained buckets go", "DescribeCertificate=0.01/1", 101 * time.Second, 1},
		// Unthrottled operations have no buckets.
		{"ok/no bucket without a rate", "ListCertificates=1/1", 0, 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			th := mustParseThrottle(t, tt.spec)
			start := time.Now()
			for i := range accounts {
				if !th.Allow(scope(i), "DescribeCertificate", start) {
					t.Fatalf("account %d throttled on its first call", i)
				}
			}
			th.Allow(scope(accounts), "DescribeCertificate", start.Add(tt.later))
			if got := th.Buckets(); got != tt.want {
				t.Errorf("%d buckets, want %d", got, tt.want)
			}
		})
	}

	// A map that doubles sweeps without waiting for the minute: accounts
	// that each called once and went quiet cannot pile up.
	th := mustParseThrottle(t, "DescribeCertificate=1/1")
	start := time.Now()
	for i := range 1024 {
		th.Allow(scope(i), "DescribeCertificate", start)
	}
	for i := range 2048 {
		th.Allow(scope(2000+i), "DescribeCertificate", start.Add(2*time.Second))
	}
	if got := th.Buckets(); got > 2048 {
		t.Errorf("%d buckets, want the first 1024 idle ones swept", got)
	}
}

// staticCredentials is key as SDK credentials.
func staticCredentials(key *fleetcert.AccessKey) aws.CredentialsProvider {
	return aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) {
		return aws.Credentials{AccessKeyID: key.ID, SecretAccessKey: key.Secret}, nil
	})
}
