package policy

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"sort"
	"strconv"
	"strings"
)

// AWS IoT supports the Condition element: its policies may use policy variables
// "in the Resource or Condition block"
// (https://docs.aws.amazon.com/iot/latest/developerguide/iot-policy-variables.html),
// and its examples use Bool, StringEquals
// (https://docs.aws.amazon.com/iot/latest/developerguide/thing-policy-examples.html),
// ForAllValues:StringEquals, ForAllValues:StringNotEquals,
// ForAnyValue:StringEquals, ArnEquals
// (https://docs.aws.amazon.com/iot/latest/developerguide/connect-policy.html) and
// IpAddress (https://docs.aws.amazon.com/iot/latest/developerguide/basic-policy-variables.html).
// fleetcert evaluates the IAM string, ARN, Bool, Null, IP address and numeric
// operators. The date and binary operators are refused: no key AWS IoT documents
// for a connection holds a date or binary value, so a policy using them could
// never be decided as AWS would.

type opFamily uint8

const (
	famString opFamily = iota
	famStringIgnoreCase
	famStringLike
	famArn
	famBool
	famNull
	famIP
	famNumericEq
	famNumericLT
	famNumericLE
	famNumericGT
	famNumericGE
)

type setQualifier uint8

const (
	setNone setQualifier = iota
	setAnyValue
	setAllValues
)

type conditionOperator struct {
	family   opFamily
	negated  bool
	ifExists bool
	set      setQualifier
}

// conditionOperators are the IAM condition operators fleetcert evaluates
// (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_condition_operators.html).
var conditionOperators = map[string]conditionOperator{
	"StringEquals":              {family: famString},
	"StringNotEquals":           {family: famString, negated: true},
	"StringEqualsIgnoreCase":    {family: famStringIgnoreCase},
	"StringNotEqualsIgnoreCase": {family: famStringIgnoreCase, negated: true},
	"StringLike":                {family: famStringLike},
	"StringNotLike":             {family: famStringLike, negated: true},
	"ArnEquals":                 {family: famArn},
	"ArnLike":                   {family: famArn},
	"ArnNotEquals":              {family: famArn, negated: true},
	"ArnNotLike":                {family: famArn, negated: true},
	"Bool":                      {family: famBool},
	"Null":                      {family: famNull},
	"IpAddress":                 {family: famIP},
	"NotIpAddress":              {family: famIP, negated: true},
	"NumericEquals":             {family: famNumericEq},
	"NumericNotEquals":          {family: famNumericEq, negated: true},
	"NumericLessThan":           {family: famNumericLT},
	"NumericLessThanEquals":     {family: famNumericLE},
	"NumericGreaterThan":        {family: famNumericGT},
	"NumericGreaterThanEquals":  {family: famNumericGE},
}

func parseOperator(s string) (conditionOperator, error) {
	name := s
	set := setNone
	if rest, ok := strings.CutPrefix(name, "ForAnyValue:"); ok {
		name, set = rest, setAnyValue
	} else if rest, ok := strings.CutPrefix(name, "ForAllValues:"); ok {
		name, set = rest, setAllValues
	}
	ifExists := false
	if rest, ok := strings.CutSuffix(name, "IfExists"); ok && name != "Null" {
		name, ifExists = rest, true
	}
	op, ok := conditionOperators[name]
	if !ok {
		if strings.HasPrefix(name, "Date") || strings.HasPrefix(name, "Binary") {
			return op, fmt.Errorf("condition operator %q is not supported by fleetcert: no AWS IoT connection key holds a date or binary value.", s)
		}
		return op, fmt.Errorf("unknown condition operator %q.", s)
	}
	if op.family == famNull && (set != setNone || ifExists) {
		// IAM Access Analyzer: "Null with if exists" is an error.
		return op, fmt.Errorf("condition operator %q cannot be qualified.", s)
	}
	op.set, op.ifExists = set, ifExists
	return op, nil
}

// parseConditions reads a Condition block:
// "Condition" : { <condition_type_string> : { <condition_key_string> : <condition_value_list> }, … }
// (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_grammar.html).
func parseConditions(v any, variables bool) ([]Condition, error) {
	block, ok := v.(object)
	if !ok {
		return nil, errors.New("Condition must be an object of condition operators.")
	}
	var out []Condition
	for _, opm := range block {
		op, err := parseOperator(opm.key)
		if err != nil {
			return nil, err
		}
		keys, ok := opm.value.(object)
		if !ok || len(keys) == 0 {
			return nil, fmt.Errorf("condition operator %q must map condition keys to values.", opm.key)
		}
		for _, km := range keys {
			if !strings.Contains(km.key, ":") {
				return nil, fmt.Errorf("Actions/Conditions must be prefaced by a vendor, e.g., iot, not %q.", km.key)
			}
			vals, err := conditionValues(opm.key, km.key, km.value)
			if err != nil {
				return nil, err
			}
			c := Condition{Operator: opm.key, Key: km.key, Values: vals, op: op}
			// IAM: "You can use a policy variable for Condition values in any
			// condition that involves the string operators or the ARN operators"
			// (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_variables.html).
			subst := variables && (op.family == famString || op.family == famStringIgnoreCase || op.family == famStringLike || op.family == famArn)
			for _, s := range vals {
				c.values = append(c.values, parseTemplate(s, subst, false))
			}
			if err := checkValues(c); err != nil {
				return nil, err
			}
			out = append(out, c)
		}
	}
	return out, nil
}

// conditionValues reads a value or a list of values; IAM grammar:
// <condition_value> = ("string" | "number" | "Boolean").
func conditionValues(op, key string, v any) ([]string, error) {
	one := func(e any) (string, bool) {
		switch e := e.(type) {
		case string:
			return e, true
		case bool:
			return strconv.FormatBool(e), true
		case json.Number:
			return e.String(), true
		}
		return "", false
	}
	if list, ok := v.([]any); ok {
		out := make([]string, 0, len(list))
		for _, e := range list {
			s, ok := one(e)
			if !ok {
				return nil, fmt.Errorf("the values of %q in %q must be strings, numbers or Booleans.", key, op)
			}
			out = append(out, s)
		}
		return out, nil
	}
	s, ok := one(v)
	if !ok {
		return nil, fmt.Errorf("the value of %q in %q must be a string, number, Boolean or a list of them.", key, op)
	}
	return []string{s}, nil
}

func checkValues(c Condition) error {
	for _, v := range c.Values {
		switch c.op.family {
		case famBool, famNull:
			if !strings.EqualFold(v, "true") && !strings.EqualFold(v, "false") {
				return fmt.Errorf("%q takes \"true\" or \"false\", not %q.", c.Operator, v)
			}
		case famIP:
			if _, err := parseIPRange(v); err != nil {
				return fmt.Errorf("%q takes IP addresses or CIDR ranges, not %q.", c.Operator, v)
			}
		case famNumericEq, famNumericLT, famNumericLE, famNumericGT, famNumericGE:
			if _, err := strconv.ParseFloat(v, 64); err != nil {
				return fmt.Errorf("%q takes numbers, not %q.", c.Operator, v)
			}
		}
	}
	return nil
}

func parseIPRange(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		return netip.ParsePrefix(s)
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// eval decides the condition for the request described by r. The second
// result lists policy variables in its values that could not be resolved; IAM:
// a value that is not present "causes the statement to be invalid"
// (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_variables.html),
// so the caller drops the statement.
func (c *Condition) eval(r *resolver) (bool, []string) {
	vals, _, present := r.lookup(c.Key)
	if c.op.family == famNull {
		// Null: "true" asks that the key be absent, "false" that it be present.
		want := strings.EqualFold(c.Values[0], "true")
		return want == !present, nil
	}
	// Resolve the policy's values once.
	var policy []pattern
	var missing []string
	for _, t := range c.values {
		p, m := t.compile(r)
		if len(m) > 0 {
			missing = append(missing, m...)
			continue
		}
		policy = append(policy, p)
	}
	if len(missing) > 0 {
		return false, missing
	}
	switch c.op.set {
	case setAnyValue:
		// ForAnyValue: at least one request value satisfies the operator; an
		// absent or empty key does not.
		for _, v := range vals {
			if c.satisfied(v, policy) {
				return true, nil
			}
		}
		return false, nil
	case setAllValues:
		// ForAllValues: every request value satisfies the operator; an absent or
		// empty key does (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_multi-value-conditions.html).
		for _, v := range vals {
			if !c.satisfied(v, policy) {
				return false, nil
			}
		}
		return true, nil
	}
	if !present || len(vals) == 0 {
		// IAM: "If the key that you specify in a policy condition is not present
		// in the request context, the values do not match and the condition is
		// false. If the policy condition requires that the key is not matched,
		// such as StringNotLike or ArnNotLike, and the right key is not present,
		// the condition is true"; …IfExists is true when the key is absent
		// (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_condition_operators.html).
		return c.op.ifExists || c.op.negated, nil
	}
	for _, v := range vals {
		if c.satisfied(v, policy) {
			return true, nil
		}
	}
	return false, nil
}

// satisfied applies the operator to one request value: a positive operator
// holds when some policy value matches, a negated one when none does.
func (c *Condition) satisfied(v string, policy []pattern) bool {
	matched := false
	for i := range policy {
		if c.matchOne(v, &policy[i]) {
			matched = true
			break
		}
	}
	return matched != c.op.negated
}

func (c *Condition) matchOne(v string, p *pattern) bool {
	lit := p.literal()
	switch c.op.family {
	case famString:
		return v == lit
	case famStringIgnoreCase:
		return strings.EqualFold(v, lit)
	case famStringLike:
		return p.match(v, false)
	case famArn:
		return matchARN(v, p)
	case famBool:
		return strings.EqualFold(v, lit)
	case famIP:
		prefix, err := parseIPRange(lit)
		a, err2 := netip.ParseAddr(v)
		return err == nil && err2 == nil && prefix.Contains(a.Unmap())
	default:
		x, err := strconv.ParseFloat(v, 64)
		y, err2 := strconv.ParseFloat(lit, 64)
		if err != nil || err2 != nil {
			return false
		}
		switch c.op.family {
		case famNumericEq:
			return x == y
		case famNumericLT:
			return x < y
		case famNumericLE:
			return x <= y
		case famNumericGT:
			return x > y
		}
		return x >= y
	}
}

// matchARN compares ARNs as IAM's ARN operators do: "Each of the six
// colon-delimited components of the ARN is checked separately and each can
// include multi-character match wildcards (*) or single-character match
// wildcards (?)"
// (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_condition_operators.html).
func matchARN(v string, p *pattern) bool {
	want := strings.SplitN(p.literal(), ":", 6)
	got := strings.SplitN(v, ":", 6)
	if len(want) != 6 || len(got) != 6 {
		return false
	}
	for i := range want {
		wp := wildPattern(want[i])
		if !wp.match(got[i], false) {
			return false
		}
	}
	return true
}

// literal is the pattern's text with wildcards written as * and ?, for the
// operators that compare exactly.
func (p *pattern) literal() string {
	var b strings.Builder
	for _, s := range p.segs {
		switch s.kind {
		case segLiteral:
			b.WriteString(s.lit)
		case segStar:
			b.WriteByte('*')
		case segOne:
			b.WriteByte('?')
		}
	}
	return b.String()
}

// sortedUnique sorts names and drops repeats.
func sortedUnique(names []string) []string {
	sort.Strings(names)
	out := names[:0]
	for i, n := range names {
		if i == 0 || n != names[i-1] {
			out = append(out, n)
		}
	}
	return out
}
