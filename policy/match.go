package policy

import (
	"strings"
	"unicode/utf8"
)

// A pattern is a compiled action or resource pattern: literal runs separated by
// the wildcards * (any run of characters, "/" included) and ? (one character).
//
// AWS IoT: "Inserting an * (asterik) in the string can be treated as a wildcard,
// matching any characters … The characters + and # are treated as literal strings
// in a policy"
// (https://docs.aws.amazon.com/iot/latest/developerguide/iot-policy-variables.html);
// ? matches one character as in IAM
// (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_variables.html,
// "Special characters").
type pattern struct {
	segs []seg
	// never is set when the pattern holds a policy variable that could not be
	// resolved: it matches nothing (see template.compile).
	never bool
}

type segKind uint8

const (
	segLiteral segKind = iota
	segStar
	segOne
)

type seg struct {
	kind segKind
	lit  string
}

// appendLiteral adds text that is matched literally, wildcard characters included.
func (p *pattern) appendLiteral(s string) {
	if s == "" {
		return
	}
	if n := len(p.segs); n > 0 && p.segs[n-1].kind == segLiteral {
		p.segs[n-1].lit += s
		return
	}
	p.segs = append(p.segs, seg{kind: segLiteral, lit: s})
}

// appendWild adds text in which * and ? are wildcards.
func (p *pattern) appendWild(s string) {
	for s != "" {
		i := strings.IndexAny(s, "*?")
		if i < 0 {
			p.appendLiteral(s)
			return
		}
		p.appendLiteral(s[:i])
		if s[i] == '*' {
			// Consecutive stars are one star.
			if n := len(p.segs); n == 0 || p.segs[n-1].kind != segStar {
				p.segs = append(p.segs, seg{kind: segStar})
			}
		} else {
			p.segs = append(p.segs, seg{kind: segOne})
		}
		s = s[i+1:]
	}
}

// lower folds the literals to ASCII lower case, for action patterns.
func (p *pattern) lower() {
	for i := range p.segs {
		p.segs[i].lit = strings.ToLower(p.segs[i].lit)
	}
}

func wildPattern(s string) pattern {
	var p pattern
	p.appendWild(s)
	return p
}

// match reports whether s matches p. With fold, p's literals must be lower case
// and s is compared ignoring ASCII case. It does not allocate.
func (p *pattern) match(s string, fold bool) bool {
	if p.never {
		return false
	}
	segs := p.segs
	si, pi := 0, 0
	starP, starS := -1, 0
	for {
		if pi < len(segs) {
			switch sg := segs[pi]; sg.kind {
			case segStar:
				starP, starS = pi, si
				pi++
				continue
			case segOne:
				if si < len(s) {
					_, n := utf8.DecodeRuneInString(s[si:])
					si += n
					pi++
					continue
				}
			case segLiteral:
				if hasPrefix(s[si:], sg.lit, fold) {
					si += len(sg.lit)
					pi++
					continue
				}
			}
		} else if si == len(s) {
			return true
		}
		// Mismatch: let the last star swallow one more character and retry.
		if starP < 0 || starS >= len(s) {
			return false
		}
		_, n := utf8.DecodeRuneInString(s[starS:])
		starS += n
		si, pi = starS, starP+1
	}
}

func hasPrefix(s, prefix string, fold bool) bool {
	if len(s) < len(prefix) {
		return false
	}
	if !fold {
		return s[:len(prefix)] == prefix
	}
	for i := 0; i < len(prefix); i++ {
		c := s[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != prefix[i] {
			return false
		}
	}
	return true
}

// equalFoldASCII compares ASCII case-insensitively without allocating.
func equalFoldASCII(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		x, y := a[i], b[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}
