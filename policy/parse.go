// Package policy validates and evaluates AWS IoT Core policy documents: the JSON
// accepted by CreatePolicy and CreatePolicyVersion, the policy variables AWS IoT
// substitutes for one MQTT connection, and the decision for each action a device
// attempts (iot:Connect, iot:Publish, iot:Subscribe, iot:Receive, …).
//
// The rules follow AWS's documentation; each is cited beside the code emulating it.
// The package imports only the standard library so that the root package can
// import it.
package policy

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode"
)

// MaxDocumentLength is the longest policy document AWS IoT accepts, counted in
// characters other than white space.
//
// AWS IoT: "Maximum length of 2048, excluding whitespace" (CreatePolicy,
// CreatePolicyVersion: https://docs.aws.amazon.com/iot/latest/apireference/API_CreatePolicyVersion.html);
// IAM grammar: "Policy size calculations do not include white space characters"
// (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_grammar.html).
const MaxDocumentLength = 2048

// Version values of the policy language.
//
// IAM grammar: <version_block> = "Version" : ("2008-10-17" | "2012-10-17")
// (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_grammar.html).
// AWS IoT policies "follow the same conventions as IAM policies"
// (https://docs.aws.amazon.com/iot/latest/developerguide/iot-policies.html).
const (
	Version2012 = "2012-10-17"
	Version2008 = "2008-10-17"
)

// Document is a parsed, valid policy document.
type Document struct {
	// Version is the policy language version, "" when the document has none.
	Version    string
	Statements []Statement

	// variables reports whether ${…} is a policy variable. IAM: "Variables were
	// introduced in version 2012-10-17 … If you don't include the Version element
	// and set it to an appropriate version date, variables like ${aws:username}
	// are treated as literal strings"
	// (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_variables.html).
	variables bool
}

// Statement is one statement of a policy document.
type Statement struct {
	Sid string
	// Deny is true for "Effect": "Deny", false for "Allow".
	Deny bool
	// Actions lists the action patterns; NotAction reports that the statement
	// applies to every action matching none of them.
	Actions   []string
	NotAction bool
	// Resources lists the resource patterns as written; NotResource reports that
	// the statement applies to every resource matching none of them.
	Resources   []string
	NotResource bool
	// Conditions must all hold for the statement to apply.
	Conditions []Condition

	resources []template
	actions   []pattern // Actions compiled, lower-case
}

// Condition is one condition operator applied to one key, as in
// "Condition": {"StringEquals": {"iot:Connection.Thing.ThingTypeName": ["sensor"]}}.
type Condition struct {
	// Operator is the operator as written, with any ForAllValues:/ForAnyValue:
	// prefix and IfExists suffix.
	Operator string
	Key      string
	Values   []string

	op     conditionOperator
	values []template
}

// Parse validates a policy document as AWS IoT does in CreatePolicy and
// CreatePolicyVersion and returns it parsed. The message of a returned error is
// what the caller sends back as a MalformedPolicyException.
func Parse(document string) (*Document, error) {
	if n := documentLength(document); n == 0 {
		// AWS IoT: "Minimum length of 1" (https://docs.aws.amazon.com/iot/latest/apireference/API_CreatePolicy.html).
		return nil, errors.New("The policy document is empty.")
	} else if n > MaxDocumentLength {
		return nil, fmt.Errorf("The policy document is %d characters long, excluding whitespace; the maximum is %d.", n, MaxDocumentLength)
	}
	root, err := decodeJSON(document)
	if err != nil {
		// IAM's MalformedPolicyDocument for a JSON error starts "Syntax errors in policy."
		return nil, fmt.Errorf("Syntax errors in policy. %s", err)
	}
	obj, ok := root.(object)
	if !ok {
		return nil, errors.New("Syntax errors in policy. The policy document must be a JSON object.")
	}
	doc := &Document{}
	var statements any
	haveStatement := false
	for _, m := range obj {
		switch m.key {
		case "Version":
			v, ok := m.value.(string)
			if !ok || (v != Version2012 && v != Version2008) {
				// AWS IoT policy elements: Version "Must be set to 2012-10-17"
				// (https://docs.aws.amazon.com/iot/latest/developerguide/example-iot-policies-elements.html);
				// IAM also accepts 2008-10-17 (grammar, above).
				return nil, fmt.Errorf("The policy failed legacy parsing: Version must be %q or %q.", Version2012, Version2008)
			}
			doc.Version = v
		case "Id":
			// IAM grammar: <id_block> = "Id" : <policy_id_string>.
			if _, ok := m.value.(string); !ok {
				return nil, errors.New("Syntax errors in policy. Id must be a string.")
			}
		case "Statement":
			statements, haveStatement = m.value, true
		default:
			return nil, fmt.Errorf("Syntax errors in policy. Unknown field %q; a policy has Version, Id and Statement.", m.key)
		}
	}
	doc.variables = doc.Version == Version2012
	if !haveStatement {
		return nil, errors.New("Syntax errors in policy. The policy must contain a Statement.")
	}
	// IAM grammar: the statement block is one statement or an array of them
	// ("If the element takes an array … but only one value is included, the
	// brackets are optional").
	var list []any
	switch s := statements.(type) {
	case object:
		list = []any{s}
	case []any:
		list = s
	default:
		return nil, errors.New("Syntax errors in policy. Statement must be an object or an array of objects.")
	}
	if len(list) == 0 {
		return nil, errors.New("Syntax errors in policy. The policy must contain at least one statement.")
	}
	for i, raw := range list {
		st, err := parseStatement(raw, doc.variables)
		if err != nil {
			return nil, fmt.Errorf("Statement %d: %w", i, err)
		}
		doc.Statements = append(doc.Statements, st)
	}
	return doc, nil
}

func parseStatement(raw any, variables bool) (Statement, error) {
	var st Statement
	obj, ok := raw.(object)
	if !ok {
		return st, errors.New("a statement must be a JSON object.")
	}
	var haveEffect, haveAction, haveResource bool
	for _, m := range obj {
		switch m.key {
		case "Sid":
			s, ok := m.value.(string)
			if !ok {
				return st, errors.New("Sid must be a string.")
			}
			st.Sid = s
		case "Effect":
			// IAM grammar: <effect_block> = "Effect" : ("Allow" | "Deny").
			switch m.value {
			case "Allow":
			case "Deny":
				st.Deny = true
			default:
				return st, fmt.Errorf("Effect must be \"Allow\" or \"Deny\", not %s.", describe(m.value))
			}
			haveEffect = true
		case "Action", "NotAction":
			if haveAction {
				return st, errors.New("a statement has either Action or NotAction, not both.")
			}
			list, err := stringList(m.key, m.value)
			if err != nil {
				return st, err
			}
			for _, a := range list {
				// IAM: an action is "a service namespace, a colon, and the name of
				// an action" or "*"
				// (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_grammar.html);
				// IAM's message for a bare name is this one.
				if a != "*" && !strings.Contains(a, ":") {
					return st, fmt.Errorf("Actions/Conditions must be prefaced by a vendor, e.g., iot, not %q.", a)
				}
			}
			st.Actions, st.NotAction, haveAction = list, m.key == "NotAction", true
			st.actions = st.actions[:0]
			for _, a := range list {
				// AWS IoT does not substitute variables in Action
				// ("policy variables … in the Resource or Condition block",
				// https://docs.aws.amazon.com/iot/latest/developerguide/iot-policy-variables.html);
				// action names match case-insensitively, as IAM's do
				// (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_action.html).
				p := wildPattern(a)
				p.lower()
				st.actions = append(st.actions, p)
			}
		case "Resource", "NotResource":
			if haveResource {
				return st, errors.New("a statement has either Resource or NotResource, not both.")
			}
			list, err := stringList(m.key, m.value)
			if err != nil {
				return st, err
			}
			for _, r := range list {
				// AWS IoT: "To specify a resource for an AWS IoT Core policy
				// action, you must use the ARN of the resource"
				// (https://docs.aws.amazon.com/iot/latest/developerguide/iot-action-resources.html);
				// the message is IAM's.
				if r != "*" && !isARN(r) {
					return st, fmt.Errorf("Resource %s must be in ARN format or \"*\".", r)
				}
				st.resources = append(st.resources, parseTemplate(r, variables, true))
			}
			st.Resources, st.NotResource, haveResource = list, m.key == "NotResource", true
		case "Condition":
			conds, err := parseConditions(m.value, variables)
			if err != nil {
				return st, err
			}
			st.Conditions = conds
		case "Principal", "NotPrincipal":
			// IAM grammar notes: the principal block "must not be included in
			// identity-based policies"; AWS IoT policies attach to principals.
			return st, fmt.Errorf("%s is not allowed in an AWS IoT policy, which is attached to its principals.", m.key)
		default:
			return st, fmt.Errorf("unknown field %q; a statement has Sid, Effect, Action or NotAction, Resource or NotResource, and Condition.", m.key)
		}
	}
	// AWS IoT: "Each statement contains: Effect … Action … Resource"
	// (https://docs.aws.amazon.com/iot/latest/developerguide/iot-policies.html).
	switch {
	case !haveEffect:
		return st, errors.New("Policy statement must contain an Effect.")
	case !haveAction:
		return st, errors.New("Policy statement must contain actions.")
	case !haveResource:
		return st, errors.New("Policy statement must contain resources.")
	}
	return st, nil
}

// stringList reads an element that is a string or a non-empty array of strings.
// IAM grammar: "Action": [<action_string>] or "Action": <action_string>.
func stringList(field string, v any) ([]string, error) {
	switch v := v.(type) {
	case string:
		if v == "" {
			return nil, fmt.Errorf("%s must not be empty.", field)
		}
		return []string{v}, nil
	case []any:
		if len(v) == 0 {
			if field == "Action" || field == "NotAction" {
				return nil, errors.New("Policy statement must contain actions.")
			}
			return nil, errors.New("Policy statement must contain resources.")
		}
		out := make([]string, 0, len(v))
		for _, e := range v {
			s, ok := e.(string)
			if !ok || s == "" {
				return nil, fmt.Errorf("%s must hold non-empty strings, not %s.", field, describe(e))
			}
			out = append(out, s)
		}
		return out, nil
	}
	return nil, fmt.Errorf("%s must be a string or an array of strings, not %s.", field, describe(v))
}

// isARN reports whether s has the six colon-separated parts of an ARN:
// arn:partition:service:region:account-id:resource
// (https://docs.aws.amazon.com/iot/latest/developerguide/iot-action-resources.html).
func isARN(s string) bool {
	return strings.HasPrefix(s, "arn:") && strings.Count(s, ":") >= 5
}

// documentLength counts the characters of document that are not white space, as
// AWS counts the policy size limit.
func documentLength(document string) int {
	n := 0
	for _, r := range document {
		if !unicode.IsSpace(r) {
			n++
		}
	}
	return n
}

func describe(v any) string {
	switch v := v.(type) {
	case nil:
		return "null"
	case string:
		return fmt.Sprintf("%q", v)
	case object:
		return "an object"
	case []any:
		return "an array"
	case json.Number:
		return v.String()
	case bool:
		return fmt.Sprint(v)
	}
	return fmt.Sprintf("%T", v)
}

// object is a JSON object with its members in document order.
type object []member

type member struct {
	key   string
	value any
}

// decodeJSON decodes one JSON value, rejecting duplicate keys. IAM grammar notes:
// "Individual elements must not contain multiple instances of the same key"
// (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_grammar.html).
func decodeJSON(s string) (any, error) {
	dec := json.NewDecoder(strings.NewReader(s))
	dec.UseNumber()
	v, err := decodeValue(dec, 0)
	if err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("Unexpected data after the policy document.")
	}
	return v, nil
}

// maxDepth bounds nesting; no valid policy is deeper than a handful of levels.
const maxDepth = 32

func decodeValue(dec *json.Decoder, depth int) (any, error) {
	if depth > maxDepth {
		return nil, errors.New("The policy document is nested too deeply.")
	}
	tok, err := dec.Token()
	if err != nil {
		return nil, jsonError(err)
	}
	switch tok {
	case json.Delim('{'):
		var obj object
		for dec.More() {
			kt, err := dec.Token()
			if err != nil {
				return nil, jsonError(err)
			}
			key, _ := kt.(string)
			for _, m := range obj {
				if m.key == key {
					return nil, fmt.Errorf("Duplicate key %q.", key)
				}
			}
			v, err := decodeValue(dec, depth+1)
			if err != nil {
				return nil, err
			}
			obj = append(obj, member{key, v})
		}
		if _, err := dec.Token(); err != nil {
			return nil, jsonError(err)
		}
		if obj == nil {
			obj = object{}
		}
		return obj, nil
	case json.Delim('['):
		list := []any{}
		for dec.More() {
			v, err := decodeValue(dec, depth+1)
			if err != nil {
				return nil, err
			}
			list = append(list, v)
		}
		if _, err := dec.Token(); err != nil {
			return nil, jsonError(err)
		}
		return list, nil
	}
	return tok, nil
}

func jsonError(err error) error {
	if err == io.EOF {
		return errors.New("Unexpected end of the policy document.")
	}
	var b bytes.Buffer
	b.WriteString("Invalid JSON: ")
	b.WriteString(err.Error())
	b.WriteString(".")
	return errors.New(b.String())
}
