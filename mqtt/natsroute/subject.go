package natsroute

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"

	"github.com/fleetcert/fleetcert"
)

// Subjects. A device topic T of scope (account, region) travels on
//
//	{prefix}.t.{account}.{region}.{level}.{level}…
//
// or, when T begins with "$" ($aws/events/…), on {prefix}.s.… instead: apart,
// so that a filter whose first level is a wildcard matches no $ topic
// [MQTT-4.7.1-1], as on one broker. Each MQTT level is one NATS token,
// escaped so that no byte NATS treats specially survives: every byte but
// A–Z, a–z, 0–9 and "-" becomes "_XX" (upper-case hex), and an empty level
// becomes "_" alone (NATS has no empty tokens; an escaped non-empty level
// is never "_" alone). The account and region are escaped the same way.
// The mapping is one-to-one, so a subject names exactly one (scope, topic)
// and ParseSubject inverts TopicSubject.
//
// A filter becomes one or two subjects: "+" is "*", a final "#" is ">" and,
// since MQTT's "a/#" also matches "a" where NATS's "a.>" does not, also the
// subject of its parent level (unless that level is "+": mochi, which
// delivers on each node, matches "+/#" against "a/b" but not against "a",
// and shared subscriptions, delivered through NATS, match as the others
// do). A filter whose first level is "+" or "#" is on the t branch only.
const (
	topicBranch  = "t"
	dollarBranch = "s"
)

// TopicSubject returns the subject that carries topic (a device topic,
// without wildcards) in scope.
func TopicSubject(prefix string, scope fleetcert.Scope, topic string) string {
	b := make([]byte, 0, len(prefix)+len(topic)+len(scope.AccountID)+len(scope.Region)+8)
	b = appendScope(b, prefix, scope, strings.HasPrefix(topic, "$"))
	for i, level := range strings.Split(topic, "/") {
		if i > 0 {
			b = append(b, '.')
		}
		b = appendLevel(b, level)
	}
	return string(b)
}

// FilterSubjects returns the subjects whose union matches exactly the
// topics of scope that the MQTT filter (not shared, valid) matches.
func FilterSubjects(prefix string, scope fleetcert.Scope, filter string) []string {
	levels := strings.Split(filter, "/")
	dollar := strings.HasPrefix(levels[0], "$")
	b := appendScope(nil, prefix, scope, dollar)
	for i, level := range levels {
		if level == "#" {
			// "a/#" matches "a" and everything under it; "#" alone
			// matches every topic, each of which has a level.
			parent := string(b[:len(b)-1]) // without the '.'
			if i == 0 || levels[i-1] == "+" {
				// mochi matches "+/#" against "a/b" but not "a": the
				// gateway's shared subscriptions match as its plain ones.
				return []string{string(append(b, '>'))}
			}
			return []string{parent, string(append(b, '>'))}
		}
		if level == "+" {
			b = append(b, '*')
		} else {
			b = appendLevel(b, level)
		}
		if i < len(levels)-1 {
			b = append(b, '.')
		}
	}
	return []string{string(b)}
}

// ParseSubject returns the scope and device topic a subject of prefix
// carries; ok false when it is not one TopicSubject makes.
func ParseSubject(prefix, subject string) (scope fleetcert.Scope, topic string, ok bool) {
	rest, ok := strings.CutPrefix(subject, prefix+".")
	if !ok {
		return scope, "", false
	}
	tokens := strings.Split(rest, ".")
	if len(tokens) < 4 {
		return scope, "", false
	}
	account, ok1 := decodeLevel(tokens[1])
	region, ok2 := decodeLevel(tokens[2])
	if !ok1 || !ok2 || account == "" || region == "" {
		return scope, "", false
	}
	var b strings.Builder
	for i, tok := range tokens[3:] {
		level, ok := decodeLevel(tok)
		if !ok {
			return scope, "", false
		}
		if i > 0 {
			b.WriteByte('/')
		}
		b.WriteString(level)
	}
	topic = b.String()
	if (tokens[0] == dollarBranch) != strings.HasPrefix(topic, "$") || tokens[0] != topicBranch && tokens[0] != dollarBranch {
		return scope, "", false
	}
	return fleetcert.Scope{AccountID: account, Region: region}, topic, true
}

// QueueName returns the NATS queue group of the shared subscription
// "$share/{group}/{filter}" of scope: the same on every node, and
// different for another scope, group or filter.
func QueueName(prefix string, scope fleetcert.Scope, group, filter string) string {
	h := sha256.New()
	for _, s := range []string{prefix, scope.AccountID, scope.Region, group, filter} {
		h.Write([]byte(s))
		h.Write([]byte{0})
	}
	return "fcshare-" + hex.EncodeToString(h.Sum(nil)[:20])
}

func appendScope(b []byte, prefix string, scope fleetcert.Scope, dollar bool) []byte {
	b = append(b, prefix...)
	b = append(b, '.')
	if dollar {
		b = append(b, dollarBranch...)
	} else {
		b = append(b, topicBranch...)
	}
	b = append(b, '.')
	b = appendLevel(b, scope.AccountID)
	b = append(b, '.')
	b = appendLevel(b, scope.Region)
	return append(b, '.')
}

const hexDigits = "0123456789ABCDEF"

func plain(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-'
}

func appendLevel(b []byte, level string) []byte {
	if level == "" {
		return append(b, '_')
	}
	for i := 0; i < len(level); i++ {
		c := level[i]
		if plain(c) {
			b = append(b, c)
			continue
		}
		b = append(b, '_', hexDigits[c>>4], hexDigits[c&15])
	}
	return b
}

func decodeLevel(tok string) (string, bool) {
	if tok == "_" {
		return "", true
	}
	if tok == "" {
		return "", false
	}
	if strings.IndexByte(tok, '_') < 0 {
		for i := 0; i < len(tok); i++ {
			if !plain(tok[i]) {
				return "", false
			}
		}
		return tok, true
	}
	out := make([]byte, 0, len(tok))
	for i := 0; i < len(tok); i++ {
		c := tok[i]
		switch {
		case plain(c):
			out = append(out, c)
		case c == '_' && i+2 < len(tok):
			hi, lo := strings.IndexByte(hexDigits, tok[i+1]), strings.IndexByte(hexDigits, tok[i+2])
			if hi < 0 || lo < 0 {
				return "", false
			}
			v := byte(hi<<4 | lo)
			if plain(v) {
				return "", false // one spelling per level
			}
			out = append(out, v)
			i += 2
		default:
			return "", false
		}
	}
	return string(out), true
}
