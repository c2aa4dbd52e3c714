package awsapi_test

import (
	"encoding/json"
	"net/http"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/fleetcert/fleetcert/awsapi"
)

// model is the part of iot-certificate-api.json (and iot-authz-api.json)
// the tests read.
type model struct {
	Operations map[string]struct {
		HTTP struct {
			Method     string `json:"method"`
			RequestURI string `json:"requestUri"`
		} `json:"http"`
		Errors []struct {
			Shape string `json:"shape"`
		} `json:"errors"`
	} `json:"operations"`
	Shapes map[string]struct {
		Exception bool `json:"exception"`
		Error     struct {
			HTTPStatusCode int `json:"httpStatusCode"`
		} `json:"error"`
	} `json:"shapes"`
}

func loadModel(tb testing.TB) *model {
	tb.Helper()
	return loadModelFile(tb, "testdata/iot-certificate-api.json")
}

// loadAuthzModel reads the model of the things and policies operations.
func loadAuthzModel(tb testing.TB) *model {
	tb.Helper()
	return loadModelFile(tb, "testdata/iot-authz-api.json")
}

func loadModelFile(tb testing.TB, file string) *model {
	tb.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		tb.Fatal(err)
	}
	var m model
	if err := json.Unmarshal(b, &m); err != nil {
		tb.Fatal(err)
	}
	return &m
}

// unimplemented are the operations not served yet; they answer
// InvalidRequestException naming themselves. DescribeEndpoint answers so
// while no device gateway sets Handler.Endpoint (see endpoint_test.go).
var unimplemented = map[string]bool{
	"DescribeEndpoint": true,
}

// TestRoutes_Model walks every operation of the model and proves that its
// method and path (with sample path values) reach that operation.
func TestRoutes_Model(t *testing.T) {
	e := newEnv(t)
	m := loadModel(t)
	if len(m.Operations) != 22 {
		t.Fatalf("model has %d operations, want 22", len(m.Operations))
	}
	label := regexp.MustCompile(`\{([^}]+)\}`)
	sampleID := strings.Repeat("ab", 32)
	for name, op := range m.Operations {
		t.Run("ok/"+name, func(t *testing.T) {
			path := label.ReplaceAllString(op.HTTP.RequestURI, sampleID)
			resp := e.Do(e.Request(e.KeyA, testRegion, op.HTTP.Method, path, nil, time.Now()))
			w := readError(t, resp)
			if got := e.Logs.Last(t)["operation"]; got != name {
				t.Errorf("%s %s logged operation %q, want %q", op.HTTP.Method, path, got, name)
			}
			if w.Code == "UnknownOperationException" || w.Status == http.StatusMethodNotAllowed {
				t.Fatalf("%s %s: %d %s", op.HTTP.Method, path, w.Status, w.Code)
			}
			if w.RequestID == "" {
				t.Error("no x-amzn-RequestId")
			}
			if unimplemented[name] {
				if w.Status != 400 || w.Code != "InvalidRequestException" || !strings.Contains(w.Message, "does not implement "+name) {
					t.Errorf("unimplemented %s answered %d %s %q", name, w.Status, w.Code, w.Message)
				}
			} else if strings.Contains(w.Message, "does not implement") {
				t.Errorf("%s answered %d %s %q", name, w.Status, w.Code, w.Message)
			}
		})
	}
}

// unimplementedPolicies are the policy operations of iot-authz-api.json
// not served yet (policyOperations is another branch's): they answer
// UnknownOperationException until their handlers exist. Remove an
// operation from the list when it gets one.
var unimplementedPolicies = map[string]bool{}

// TestRoutes_AuthzModel walks every operation of the things and policies
// model: a thing operation routes to thingOperations, a policy operation
// to policyOperations, or is listed in unimplementedPolicies and not
// routed at all.
func TestRoutes_AuthzModel(t *testing.T) {
	e := newEnv(t)
	m := loadAuthzModel(t)
	if len(m.Operations) != 43 {
		t.Fatalf("model has %d operations, want 43", len(m.Operations))
	}
	things, policies := map[string]bool{}, map[string]bool{}
	for _, n := range awsapi.ThingOperationNames() {
		things[n] = true
	}
	for _, n := range awsapi.PolicyOperationNames() {
		policies[n] = true
	}
	label := regexp.MustCompile(`\{([^}]+)\}`)
	for name, op := range m.Operations {
		t.Run("ok/"+name, func(t *testing.T) {
			isPolicy := strings.Contains(name, "Polic") || name == "TestAuthorization"
			switch {
			case isPolicy && unimplementedPolicies[name] && policies[name]:
				t.Fatalf("%s is served now: remove it from unimplementedPolicies", name)
			case isPolicy && !unimplementedPolicies[name] && !policies[name]:
				t.Fatalf("%s is in neither policyOperations nor unimplementedPolicies", name)
			case !isPolicy && !things[name]:
				t.Fatalf("%s is not in thingOperations", name)
			}
			path := label.ReplaceAllString(op.HTTP.RequestURI, "sample")
			path, _, _ = strings.Cut(path, "?")
			n := e.Logs.Len()
			resp := e.Do(e.Request(e.KeyA, testRegion, op.HTTP.Method, path, nil, time.Now()))
			w := readError(t, resp)
			if e.Logs.Len() != n+1 {
				t.Fatal("no log line")
			}
			got := e.Logs.Last(t)["operation"]
			if unimplementedPolicies[name] {
				if w.Code != "UnknownOperationException" && got != name {
					t.Errorf("unimplemented %s answered %d %s %q (operation %q)", name, w.Status, w.Code, w.Message, got)
				}
				return
			}
			if got != name {
				t.Errorf("%s %s logged operation %q, want %q", op.HTTP.Method, path, got, name)
			}
			if w.Code == "UnknownOperationException" || w.Status == http.StatusMethodNotAllowed || strings.Contains(w.Message, "does not implement") {
				t.Fatalf("%s %s: %d %s %q", op.HTTP.Method, path, w.Status, w.Code, w.Message)
			}
		})
	}
}

// TestRoutes_Unknown checks that a method and path outside the model get
// a well-formed AWS error, never a text or HTML page.
func TestRoutes_Unknown(t *testing.T) {
	e := newEnv(t)
	for _, tt := range []struct {
		name, method, target string
		signed               bool
		status               int
		code                 string
		allow                string
		msg                  string // part of the message
	}{
		{"fail/unknown path", "GET", "/widgets", true, 404, "UnknownOperationException", "", "fleetcert does not support GET /widgets"},
		{"fail/root", "GET", "/", true, 404, "UnknownOperationException", "", ""},
		{"fail/trailing slash", "GET", "/certificates/", true, 404, "UnknownOperationException", "", ""},
		{"fail/extra segment", "GET", "/certificates/" + strings.Repeat("a", 64) + "/x", true, 404, "UnknownOperationException", "", ""},
		{"fail/unclean path", "GET", "/x/../certificates", true, 404, "UnknownOperationException", "", ""},
		{"fail/double slash", "GET", "//certificates", true, 404, "UnknownOperationException", "", ""},
		{"fail/wrong method", "PATCH", "/certificates", true, 405, "UnknownOperationException", "GET, POST", ""},
		{"fail/wrong method on id", "POST", "/certificates/" + strings.Repeat("a", 64), true, 405, "UnknownOperationException", "GET, PUT, DELETE", ""},
		{"fail/unknown path unauthenticated", "GET", "/widgets", false, 403, "MissingAuthenticationTokenException", "", ""},
		{"fail/wrong method unauthenticated", "PATCH", "/certificates", false, 403, "MissingAuthenticationTokenException", "", ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var r *http.Request
			if tt.signed {
				r = e.Request(e.KeyA, testRegion, tt.method, tt.target, nil, time.Now())
			} else {
				r = newRequest(tt.method, tt.target, nil)
			}
			resp := e.Do(r)
			w := readError(t, resp)
			if w.Status != tt.status || w.Code != tt.code || w.ContentType != "application/json" || w.Message == "" {
				t.Fatalf("got %d %s %q (%s), want %d %s", w.Status, w.Code, w.Message, w.ContentType, tt.status, tt.code)
			}
			if !strings.Contains(w.Message, tt.msg) {
				t.Errorf("message %q, want %q", w.Message, tt.msg)
			}
			if got := resp.Header.Get("Allow"); got != tt.allow {
				t.Errorf("Allow %q, want %q", got, tt.allow)
			}
		})
	}
}
