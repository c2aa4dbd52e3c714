package policy_test

import (
	"strings"
	"testing"

	"github.com/fleetcert/fleetcert/policy"
)

func TestParse(t *testing.T) {
	long := `{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"iot:Connect","Resource":"arn:aws:iot:us-east-1:123456789012:client/` +
		strings.Repeat("a", policy.MaxDocumentLength) + `"}}`
	// White space does not count towards the limit
	// (https://docs.aws.amazon.com/iot/latest/apireference/API_CreatePolicy.html).
	spaced := `{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"iot:Connect","Resource":"*"}}` + strings.Repeat(" \n\t", 3000)

	tests := []struct {
		name, doc string
		wantErr   string // substring; "" means valid
	}{
		// https://docs.aws.amazon.com/iot/latest/developerguide/connect-policy.html
		{"ok/connect example", `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["iot:Connect"],"Resource":["arn:aws:iot:us-east-1:123456789012:client/client1"]}]}`, ""},
		// IAM grammar: one statement without brackets, string Action and Resource
		// (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_grammar.html).
		{"ok/statement object", `{"Version":"2012-10-17","Statement":{"Effect":"Deny","Action":"iot:*","Resource":"*"}}`, ""},
		{"ok/2008 version", `{"Version":"2008-10-17","Statement":{"Effect":"Allow","Action":"iot:*","Resource":"*"}}`, ""},
		{"ok/no version", `{"Statement":{"Effect":"Allow","Action":"iot:*","Resource":"*"}}`, ""},
		{"ok/sid and id", `{"Id":"x","Version":"2012-10-17","Statement":{"Sid":"1","Effect":"Allow","Action":"iot:*","Resource":"*"}}`, ""},
		{"ok/not action not resource", `{"Version":"2012-10-17","Statement":{"Effect":"Deny","NotAction":"iot:Connect","NotResource":"arn:aws:iot:*:*:topic/ok/*"}}`, ""},
		// https://docs.aws.amazon.com/iot/latest/developerguide/thing-policy-examples.html
		{"ok/condition bool", `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["iot:Connect"],"Resource":["*"],"Condition":{"Bool":{"iot:Connection.Thing.IsAttached":["true"]}}}]}`, ""},
		// https://docs.aws.amazon.com/iot/latest/developerguide/connect-policy.html
		{"ok/condition empty list", `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["iot:Connect"],"Resource":"*","Condition":{"ForAllValues:StringEquals":{"iot:ConnectAttributes":[]}}}]}`, ""},
		{"ok/white space not counted", spaced, ""},

		{"fail/empty", "  ", "empty"},
		{"fail/too long", long, "maximum is 2048"},
		{"fail/not json", `{"Version":`, "Syntax errors in policy"},
		{"fail/trailing data", `{"Statement":{"Effect":"Allow","Action":"iot:*","Resource":"*"}} x`, "Syntax errors in policy"},
		{"fail/array root", `[]`, "must be a JSON object"},
		{"fail/bad version", `{"Version":"2020-01-01","Statement":{"Effect":"Allow","Action":"iot:*","Resource":"*"}}`, "Version must be"},
		{"fail/unknown top field", `{"Version":"2012-10-17","Statements":[]}`, `Unknown field "Statements"`},
		{"fail/no statement", `{"Version":"2012-10-17"}`, "must contain a Statement"},
		{"fail/empty statements", `{"Version":"2012-10-17","Statement":[]}`, "at least one statement"},
		{"fail/statement string", `{"Version":"2012-10-17","Statement":"x"}`, "Statement must be"},
		{"fail/duplicate key", `{"Version":"2012-10-17","Statement":{"Effect":"Allow","Effect":"Deny","Action":"iot:*","Resource":"*"}}`, `Duplicate key "Effect"`},
		{"fail/missing effect", `{"Version":"2012-10-17","Statement":{"Action":"iot:*","Resource":"*"}}`, "Statement 0: Policy statement must contain an Effect."},
		{"fail/lower-case effect", `{"Version":"2012-10-17","Statement":{"Effect":"allow","Action":"iot:*","Resource":"*"}}`, `Effect must be "Allow" or "Deny"`},
		{"fail/missing action", `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"iot:*","Resource":"*"},{"Effect":"Allow","Resource":"*"}]}`, "Statement 1: Policy statement must contain actions."},
		{"fail/empty action list", `{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":[],"Resource":"*"}}`, "must contain actions"},
		{"fail/missing resource", `{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"iot:*"}}`, "must contain resources"},
		{"fail/action without vendor", `{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"Publish","Resource":"*"}}`, "prefaced by a vendor"},
		{"fail/action number", `{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":[1],"Resource":"*"}}`, "Action must hold non-empty strings"},
		{"fail/both action and not action", `{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"iot:*","NotAction":"iot:Connect","Resource":"*"}}`, "either Action or NotAction"},
		{"fail/resource not arn", `{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"iot:*","Resource":"topic/a"}}`, `Resource topic/a must be in ARN format or "*".`},
		{"fail/principal", `{"Version":"2012-10-17","Statement":{"Effect":"Allow","Principal":"*","Action":"iot:*","Resource":"*"}}`, "Principal is not allowed"},
		{"fail/unknown statement field", `{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"iot:*","Resource":"*","Conditions":{}}}`, `unknown field "Conditions"`},
		{"fail/unknown operator", `{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"iot:*","Resource":"*","Condition":{"StringSorta":{"iot:ClientId":"a"}}}}`, "unknown condition operator"},
		{"fail/date operator", `{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"iot:*","Resource":"*","Condition":{"DateLessThan":{"aws:CurrentTime":"2030-01-01T00:00:00Z"}}}}`, "not supported by fleetcert"},
		{"fail/bool value", `{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"iot:*","Resource":"*","Condition":{"Bool":{"iot:Connection.Thing.IsAttached":"yes"}}}}`, `takes "true" or "false"`},
		{"fail/ip value", `{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"iot:*","Resource":"*","Condition":{"IpAddress":{"aws:SourceIp":"nowhere"}}}}`, "IP addresses"},
		{"fail/condition key without vendor", `{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"iot:*","Resource":"*","Condition":{"StringEquals":{"ClientId":"a"}}}}`, "prefaced by a vendor"},
		{"fail/condition not object", `{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"iot:*","Resource":"*","Condition":[]}}`, "Condition must be an object"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			doc, err := policy.Parse(tt.doc)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Parse: %v", err)
				}
				if len(doc.Statements) == 0 {
					t.Fatal("no statements")
				}
				return
			}
			if err == nil {
				t.Fatalf("Parse succeeded, want error containing %q", tt.wantErr)
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("error %q does not contain %q", err, tt.wantErr)
			}
		})
	}
}

func TestParseShape(t *testing.T) {
	doc, err := policy.Parse(`{"Version":"2012-10-17","Statement":{"Sid":"s","Effect":"Deny","NotAction":["iot:Connect","iot:Subscribe"],"Resource":"*",
		"Condition":{"StringEquals":{"iot:ClientId":["a","b"]},"Bool":{"iot:Connection.Thing.IsAttached":true}}}}`)
	if err != nil {
		t.Fatal(err)
	}
	st := doc.Statements[0]
	if !st.Deny || !st.NotAction || st.NotResource || st.Sid != "s" || len(st.Actions) != 2 || len(st.Resources) != 1 {
		t.Fatalf("statement = %+v", st)
	}
	if len(st.Conditions) != 2 || st.Conditions[1].Values[0] != "true" {
		t.Fatalf("conditions = %+v", st.Conditions)
	}
}
