package policy

import (
	"crypto/x509"
	"strconv"
	"strings"
)

// Context is what policy variables and condition keys resolve to for one
// connection.
type Context struct {
	// ClientID is the MQTT client id: iot:ClientId
	// (https://docs.aws.amazon.com/iot/latest/developerguide/basic-policy-variables.html).
	ClientID string
	// Region and AccountID name the account the device connects to; they build
	// the topic ARN of iot:LastWillTopic.
	Region, AccountID string
	// SourceIP is the client's address: aws:SourceIp. DomainName is the domain
	// the client connected to: iot:DomainName (same page).
	SourceIP, DomainName string

	// ThingName, ThingTypeName and ThingAttributes are the registry thing the
	// connection is for, and ThingAttached reports that this thing is attached
	// to the certificate the device presented. The caller sets them only when
	// the client id names a thing attached to the certificate: AWS IoT "The
	// thing name is obtained from the client ID in the MQTT Connect message …
	// the value of clientId … must exactly match the thing name"
	// (https://docs.aws.amazon.com/iot/latest/developerguide/thing-policy-variables.html).
	// The iot:Connection.Thing.ThingName, .ThingTypeName and .Attributes[name]
	// variables resolve only when ThingAttached is true; iot:Connection.Thing.IsAttached
	// is "true" or "false".
	ThingName, ThingTypeName string
	ThingAttributes          map[string]string
	ThingAttached            bool

	// Certificate holds the iot:Certificate.* variables of the device
	// certificate, as built by CertificateVariables. When it is nil they are
	// read from Leaf, and only if a policy uses one: most policies do not,
	// and building them costs a connection more than its policies' patterns.
	Certificate map[string][]string
	Leaf        *x509.Certificate

	// ConnectAttributes and LastWillTopic describe the CONNECT packet: the
	// iot:ConnectAttributes condition key ("PersistentConnect", "LastWill", …)
	// and the topic of the will message, whose ARN is the iot:LastWillTopic key
	// (https://docs.aws.amazon.com/iot/latest/developerguide/connect-policy.html).
	// They are present only when the action is iot:Connect.
	ConnectAttributes []string
	LastWillTopic     string
}

// template is a resource or condition value with its policy variables located.
type template struct {
	pieces []piece
	// fixed is set when the template has no variable, and pat is then its
	// pattern, compiled once for every connection.
	fixed bool
	pat   pattern
}

type pieceKind uint8

const (
	pieceText     pieceKind = iota // text in which * and ? are wildcards
	pieceLiteral                   // text matched literally: ${*}, ${?}, ${$}, or text before an ARN's fifth colon
	pieceVariable                  // a policy variable
)

type piece struct {
	kind pieceKind
	text string // the text, or the variable's name as written
}

// parseTemplate locates the policy variables in s. Without variables (a
// document without Version 2012-10-17) all of s is text.
//
// In an ARN, IAM substitutes variables "only in the resource portion of the ARN.
// This portion of the ARN appears after the fifth colon"
// (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_variables.html);
// earlier parts are kept as written, wildcards included.
func parseTemplate(s string, variables, arn bool) template {
	t := parsePieces(s, variables, arn)
	for _, pc := range t.pieces {
		if pc.kind == pieceVariable {
			return t
		}
	}
	t.pat, _ = t.compile(nil)
	t.fixed = true
	return t
}

func parsePieces(s string, variables, arn bool) template {
	var t template
	if !variables {
		t.pieces = []piece{{kind: pieceText, text: s}}
		return t
	}
	if arn && s != "*" {
		i, colons := 0, 0
		for ; i < len(s) && colons < 5; i++ {
			if s[i] == ':' {
				colons++
			}
		}
		t.pieces = append(t.pieces, piece{kind: pieceText, text: s[:i]})
		s = s[i:]
	}
	for s != "" {
		i := strings.Index(s, "${")
		if i < 0 {
			t.pieces = append(t.pieces, piece{kind: pieceText, text: s})
			break
		}
		j := strings.IndexByte(s[i+2:], '}')
		if j < 0 {
			// No closing brace: not a variable.
			t.pieces = append(t.pieces, piece{kind: pieceText, text: s})
			break
		}
		if i > 0 {
			t.pieces = append(t.pieces, piece{kind: pieceText, text: s[:i]})
		}
		name := s[i+2 : i+2+j]
		switch name {
		// IAM special characters: "${*} - use where you need an * (asterisk)
		// character. ${?} - … a ? (question mark) character. ${$} - … a $ (dollar
		// sign) character" (reference_policies_variables.html, "Special
		// characters"); AWS IoT lists the same three
		// (https://docs.aws.amazon.com/iot/latest/developerguide/iot-policy-variables.html).
		case "*", "?", "$":
			t.pieces = append(t.pieces, piece{kind: pieceLiteral, text: name})
		default:
			t.pieces = append(t.pieces, piece{kind: pieceVariable, text: name})
		}
		s = s[i+2+j+1:]
	}
	return t
}

// compile substitutes the variables of t. The value of a variable is matched
// literally: a client id of "*" must not become a wildcard. If a variable cannot
// be resolved the pattern matches nothing and the variable's name is returned:
// AWS IoT leaves "the ${policy-variable} text in the policy document. This might
// cause authorization failure"
// (https://docs.aws.amazon.com/iot/latest/developerguide/cert-policy-variables.html),
// and IAM says a value that is not present means "any attempt to match it fails"
// (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_variables.html).
// fleetcert never matches the left-over text, so that a client cannot publish to
// a topic literally named "${iot:Connection.Thing.ThingName}".
func (t template) compile(r *resolver) (pattern, []string) {
	if t.fixed {
		return t.pat, nil
	}
	var p pattern
	var missing []string
	for _, pc := range t.pieces {
		switch pc.kind {
		case pieceText:
			p.appendWild(pc.text)
		case pieceLiteral:
			p.appendLiteral(pc.text)
		case pieceVariable:
			v, ok := r.single(pc.text)
			if !ok {
				p.never = true
				missing = append(missing, pc.text)
				continue
			}
			p.appendLiteral(v)
		}
	}
	return p, missing
}

// resolver answers the policy variables and condition keys of one Context.
type resolver struct {
	ctx  *Context
	cert map[string][]string // Certificate with lower-case keys, once certVars has run
	// connect is set while evaluating for iot:Connect, when the CONNECT packet's
	// keys are present.
	connect bool
}

func newResolver(ctx *Context) *resolver {
	return &resolver{ctx: ctx}
}

// certVars returns the certificate's variables by lower-case key, building
// them on first use.
func (r *resolver) certVars() map[string][]string {
	if r.cert != nil {
		return r.cert
	}
	vars := r.ctx.Certificate
	if vars == nil && r.ctx.Leaf != nil {
		vars = CertificateVariables(r.ctx.Leaf)
	}
	r.cert = make(map[string][]string, len(vars))
	for k, v := range vars {
		r.cert[strings.ToLower(k)] = v
	}
	return r.cert
}

// Attribute limits of certificate variables
// (https://docs.aws.amazon.com/iot/latest/developerguide/cert-policy-variables.html,
// "X.509 Certificate Policy Variable Limitations").
const (
	// "Certificate attributes that contain arrays are limited to five items.
	// Additional items are ignored."
	maxCertificateValues = 5
	// "All string values are limited to 1024 characters … the policy variable
	// is not replaced"
	maxCertificateValueLength = 1024
)

// single resolves a variable to one value. Multi-valued keys (…List,
// iot:ConnectAttributes) do not resolve to one value.
func (r *resolver) single(name string) (string, bool) {
	vals, multi, ok := r.lookup(name)
	if !ok || multi || len(vals) != 1 {
		return "", false
	}
	return vals[0], true
}

// lookup resolves a condition key or policy variable. Key names are
// case-insensitive: IAM "Key names are case-insensitive"
// (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_variables.html);
// AWS IoT's own example writes ${iot:clientId}
// (https://docs.aws.amazon.com/iot/latest/developerguide/connect-and-pub.html).
// An attribute name inside Attributes[…] keeps its case, as thing attribute
// names do.
func (r *resolver) lookup(name string) (vals []string, multi, ok bool) {
	ctx := r.ctx
	key := strings.ToLower(name)
	one := func(v string) ([]string, bool, bool) {
		if v == "" {
			return nil, false, false
		}
		return []string{v}, false, true
	}
	switch key {
	case "iot:clientid":
		return one(ctx.ClientID)
	case "aws:sourceip":
		return one(ctx.SourceIP)
	case "iot:domainname":
		return one(ctx.DomainName)
	case "iot:connection.thing.isattached":
		// "This variable has values true or false"
		// (https://docs.aws.amazon.com/iot/latest/developerguide/thing-policy-variables.html).
		return one(strconv.FormatBool(ctx.ThingAttached))
	case "iot:connection.thing.thingname":
		if !ctx.ThingAttached {
			return nil, false, false
		}
		return one(ctx.ThingName)
	case "iot:connection.thing.thingtypename":
		if !ctx.ThingAttached {
			return nil, false, false
		}
		return one(ctx.ThingTypeName)
	case "iot:connectattributes":
		if !r.connect {
			return nil, true, false
		}
		return ctx.ConnectAttributes, true, true
	case "iot:lastwilltopic":
		if !r.connect || ctx.LastWillTopic == "" {
			return nil, false, false
		}
		return one(TopicARN(ctx.Region, ctx.AccountID, ctx.LastWillTopic))
	}
	const attrs = "iot:connection.thing.attributes["
	if strings.HasPrefix(key, attrs) && strings.HasSuffix(key, "]") {
		// "If the device certificate is not associated with the thing, this
		// variable won't be resolved and will result in an access denied error"
		// (https://docs.aws.amazon.com/iot/latest/developerguide/thing-policy-examples.html).
		if !ctx.ThingAttached {
			return nil, false, false
		}
		v, found := ctx.ThingAttributes[name[len(attrs):len(name)-1]]
		if !found {
			return nil, false, false
		}
		return []string{v}, false, true
	}
	const certPrefix = "iot:certificate."
	if strings.HasPrefix(key, certPrefix) {
		return r.certificate(key[len(certPrefix):])
	}
	return nil, false, false
}

// certificate resolves iot:Certificate.<attr>, <attr>.<index> and <attr>.List.
//
// AWS IoT: "By default, the policy variables for each multi-value attribute
// return the first value … iot:Certificate.Subject.Country.1 is replaced by the
// second country name … If you specify an index value that does not exist … no
// substitution is made and authorization fails. You can use the .List suffix on
// the policy variable name to specify all values of the attribute"
// (https://docs.aws.amazon.com/iot/latest/developerguide/cert-policy-variables.html).
func (r *resolver) certificate(attr string) ([]string, bool, bool) {
	cert := r.certVars()
	if vals, found := cert[attr]; found && attr == "availablekeys" {
		return vals, true, len(vals) > 0
	}
	index, multi := 0, false
	if base, ok := strings.CutSuffix(attr, ".list"); ok {
		attr, multi = base, true
	} else if dot := strings.LastIndexByte(attr, '.'); dot >= 0 {
		if n, err := strconv.Atoi(attr[dot+1:]); err == nil && n >= 0 && attr[dot+1] != '+' {
			if _, found := cert[attr]; !found {
				attr, index = attr[:dot], n
			}
		}
	}
	vals := cert[attr]
	if len(vals) > maxCertificateValues {
		vals = vals[:maxCertificateValues]
	}
	for _, v := range vals {
		// "If wildcard characters are present in certificate attributes, the
		// policy variable is not replaced"; likewise for values over 1024
		// characters (same page, "Limitations").
		if strings.ContainsAny(v, "*?") || len([]rune(v)) > maxCertificateValueLength {
			return nil, multi, false
		}
	}
	if multi {
		return vals, true, len(vals) > 0
	}
	if index >= len(vals) {
		return nil, false, false
	}
	return vals[index : index+1], false, true
}
