package awsapi

import (
	"strconv"
	"time"
	"unicode/utf8"
)

// DescribeCertificate's answer is encoded by hand: encoding/json reflects
// over the struct and re-validates each epochTime's MarshalJSON output, a
// sixth of the handler's time once the certificate comes from memory. The
// bytes are exactly encoding/json's (TestDescribeJSONMatchesEncodingJSON).

// jsonAppender is an output that can append its own JSON encoding, the
// same bytes as appendJSON's; ok false leaves it to encoding/json.
type jsonAppender interface {
	appendJSON(b []byte) (out []byte, ok bool)
}

// appendJSON implements jsonAppender. A description with transfer data,
// which few have, goes through encoding/json.
func (o *describeCertificateOutput) appendJSON(b []byte) ([]byte, bool) {
	d := &o.CertificateDescription
	if d.TransferData != nil {
		return b, false
	}
	b = append(b, `{"certificateDescription":{"certificateArn":`...)
	b = appendJSONString(b, d.CertificateARN)
	b = append(b, `,"certificateId":`...)
	b = appendJSONString(b, d.CertificateID)
	if d.CACertificateID != "" {
		b = append(b, `,"caCertificateId":`...)
		b = appendJSONString(b, d.CACertificateID)
	}
	b = append(b, `,"status":`...)
	b = appendJSONString(b, string(d.Status))
	b = append(b, `,"certificatePem":`...)
	b = appendJSONString(b, d.CertificatePEM)
	if d.OwnedBy != "" {
		b = append(b, `,"ownedBy":`...)
		b = appendJSONString(b, d.OwnedBy)
	}
	if d.PreviousOwnedBy != "" {
		b = append(b, `,"previousOwnedBy":`...)
		b = appendJSONString(b, d.PreviousOwnedBy)
	}
	if !d.CreationDate.IsZero() {
		b = append(b, `,"creationDate":`...)
		b = appendEpoch(b, d.CreationDate)
	}
	if !d.LastModifiedDate.IsZero() {
		b = append(b, `,"lastModifiedDate":`...)
		b = appendEpoch(b, d.LastModifiedDate)
	}
	if d.CustomerVersion != 0 {
		b = append(b, `,"customerVersion":`...)
		b = strconv.AppendInt(b, int64(d.CustomerVersion), 10)
	}
	if d.GenerationID != "" {
		b = append(b, `,"generationId":`...)
		b = appendJSONString(b, d.GenerationID)
	}
	// omitzero on a struct without IsZero: omitted when every field is
	// the zero value (reflect.Value.IsZero, which a zero time.Time in UTC
	// or without location is).
	if v := d.Validity; v != (certificateValidity{}) {
		b = append(b, `,"validity":{`...)
		sep := ""
		if !v.NotBefore.IsZero() {
			b = append(b, `"notBefore":`...)
			b = appendEpoch(b, v.NotBefore)
			sep = ","
		}
		if !v.NotAfter.IsZero() {
			b = append(b, sep+`"notAfter":`...)
			b = appendEpoch(b, v.NotAfter)
		}
		b = append(b, '}')
	}
	if d.CertificateMode != "" {
		b = append(b, `,"certificateMode":`...)
		b = appendJSONString(b, string(d.CertificateMode))
	}
	return append(b, "}}"...), true
}

// appendEpoch appends t as epochTime.MarshalJSON does.
func appendEpoch(b []byte, t epochTime) []byte {
	return strconv.AppendFloat(b, float64(time.Time(t).UnixMilli())/1000, 'f', -1, 64)
}

// appendJSONString appends s quoted as encoding/json does without HTML
// escaping (Encoder.SetEscapeHTML(false)): quote, backslash and control
// characters escaped, invalid UTF-8 as U+FFFD, U+2028 and U+2029 escaped
// for JavaScript.
func appendJSONString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		if c := s[i]; c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '\\', '"':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hex[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
