package console

import (
	"bytes"
	"encoding/json"
)

// jsonPart is a run of a policy document as the page shows it: Class is
// the highlight of a key, a string, a number, a literal (true, false,
// null) or punctuation, "" for whitespace. The template writes each part
// in a span, escaped by html/template: no script highlights anything.
type jsonPart struct {
	Class, Text string
}

// highlightJSON pretty-prints doc (two-space indent, keys in the order
// written) and splits it into parts. A document that is not JSON (never
// one the registry stored) is one plain part.
func highlightJSON(doc string) []jsonPart {
	var buf bytes.Buffer
	if err := json.Indent(&buf, []byte(doc), "", "  "); err != nil {
		return []jsonPart{{Text: doc}}
	}
	s := buf.String()
	var parts []jsonPart
	add := func(class, text string) {
		if n := len(parts); n > 0 && parts[n-1].Class == class {
			parts[n-1].Text += text
			return
		}
		parts = append(parts, jsonPart{class, text})
	}
	for i := 0; i < len(s); {
		switch c := s[i]; {
		case c == '"':
			j := i + 1
			for j < len(s) && s[j] != '"' {
				if s[j] == '\\' {
					j++
				}
				j++
			}
			j++ // the closing quote: json.Indent checked there is one
			// A string followed by a colon is a key.
			k := j
			for k < len(s) && (s[k] == ' ' || s[k] == '\n') {
				k++
			}
			class := "j-str"
			if k < len(s) && s[k] == ':' {
				class = "j-key"
			}
			add(class, s[i:j])
			i = j
		case c == ' ' || c == '\n' || c == '\t' || c == '\r':
			add("", s[i:i+1])
			i++
		case bytes.IndexByte([]byte("{}[],:"), c) >= 0:
			add("j-punct", s[i:i+1])
			i++
		default:
			j := i
			for j < len(s) && bytes.IndexByte([]byte("{}[],: \n\t\r\""), s[j]) < 0 {
				j++
			}
			class := "j-num"
			if w := s[i:j]; w == "true" || w == "false" || w == "null" {
				class = "j-lit"
			}
			add(class, s[i:j])
			i = j
		}
	}
	return parts
}
