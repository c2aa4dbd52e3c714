package policy

import (
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"fmt"
	"net"
	"sort"
)

// Distinguished name attributes AWS IoT exposes for Subject and Issuer
// (https://docs.aws.amazon.com/iot/latest/developerguide/cert-policy-variables.html).
var nameAttributes = []struct {
	oid  asn1.ObjectIdentifier
	name string
}{
	{asn1.ObjectIdentifier{2, 5, 4, 46}, "DistinguishedNameQualifier"},
	{asn1.ObjectIdentifier{2, 5, 4, 6}, "Country"},
	{asn1.ObjectIdentifier{2, 5, 4, 10}, "Organization"},
	{asn1.ObjectIdentifier{2, 5, 4, 11}, "OrganizationalUnit"},
	{asn1.ObjectIdentifier{2, 5, 4, 8}, "State"},
	{asn1.ObjectIdentifier{2, 5, 4, 3}, "CommonName"},
	{asn1.ObjectIdentifier{2, 5, 4, 5}, "SerialNumber"},
	{asn1.ObjectIdentifier{2, 5, 4, 12}, "Title"},
	{asn1.ObjectIdentifier{2, 5, 4, 4}, "Surname"},
	{asn1.ObjectIdentifier{2, 5, 4, 42}, "GivenName"},
	{asn1.ObjectIdentifier{2, 5, 4, 43}, "Initials"},
	{asn1.ObjectIdentifier{2, 5, 4, 65}, "Pseudonym"},
	{asn1.ObjectIdentifier{2, 5, 4, 44}, "GenerationQualifier"},
}

var (
	oidSubjectAltName = asn1.ObjectIdentifier{2, 5, 29, 17}
	oidIssuerAltName  = asn1.ObjectIdentifier{2, 5, 29, 18}
)

// CertificateVariables returns the iot:Certificate.* policy variables of cert,
// keyed without the "iot:Certificate." prefix: "Subject.CommonName",
// "Issuer.Organization", "Subject.AlternativeName.DNSName", "SerialNumber",
// "AvailableKeys". Each key holds the attribute's values in certificate order;
// Compile applies AWS's rules for multi-valued attributes (the first value by
// default, ".N" for the N-th from zero, ".List" for all, at most five).
func CertificateVariables(cert *x509.Certificate) map[string][]string {
	vars := map[string][]string{}
	names := func(prefix string, n pkix.Name) {
		for _, atv := range n.Names {
			for _, a := range nameAttributes {
				if atv.Type.Equal(a.oid) {
					vars[prefix+a.name] = append(vars[prefix+a.name], fmt.Sprint(atv.Value))
				}
			}
		}
	}
	names("Subject.", cert.Subject)
	names("Issuer.", cert.Issuer)
	for _, ext := range cert.Extensions {
		switch {
		case ext.Id.Equal(oidSubjectAltName):
			generalNames("Subject.AlternativeName.", ext.Value, vars)
		case ext.Id.Equal(oidIssuerAltName):
			generalNames("Issuer.AlternativeName.", ext.Value, vars)
		}
	}
	// "You can use iot:Certificate.SerialNumber to allow or deny access … based
	// on the serial number of a certificate" (same page). AWS does not document
	// the format; fleetcert uses lower-case hexadecimal without separators.
	if cert.SerialNumber != nil {
		vars["SerialNumber"] = []string{fmt.Sprintf("%x", cert.SerialNumber)}
	}
	// "The iot:Certificate.AvailableKeys policy variable contains the name of
	// all certificate policy variables that contain values" (same page).
	var keys []string
	for k := range vars {
		keys = append(keys, "iot:Certificate."+k)
	}
	sort.Strings(keys)
	if len(keys) > 0 {
		vars["AvailableKeys"] = keys
	}
	return vars
}

// generalNames reads a GeneralNames extension (RFC 5280 §4.2.1.6) into the
// AlternativeName variables AWS IoT lists: RFC822Name, DNSName, DirectoryName,
// UniformResourceIdentifier and IPAddress.
func generalNames(prefix string, der []byte, vars map[string][]string) {
	var seq asn1.RawValue
	if rest, err := asn1.Unmarshal(der, &seq); err != nil || len(rest) > 0 || !seq.IsCompound || seq.Tag != asn1.TagSequence {
		return
	}
	b := seq.Bytes
	for len(b) > 0 {
		var v asn1.RawValue
		rest, err := asn1.Unmarshal(b, &v)
		if err != nil {
			return
		}
		b = rest
		if v.Class != asn1.ClassContextSpecific {
			continue
		}
		switch v.Tag {
		case 1:
			vars[prefix+"RFC822Name"] = append(vars[prefix+"RFC822Name"], string(v.Bytes))
		case 2:
			vars[prefix+"DNSName"] = append(vars[prefix+"DNSName"], string(v.Bytes))
		case 4:
			var rdn pkix.RDNSequence
			if _, err := asn1.Unmarshal(v.Bytes, &rdn); err == nil {
				var n pkix.Name
				n.FillFromRDNSequence(&rdn)
				vars[prefix+"DirectoryName"] = append(vars[prefix+"DirectoryName"], n.String())
			}
		case 6:
			vars[prefix+"UniformResourceIdentifier"] = append(vars[prefix+"UniformResourceIdentifier"], string(v.Bytes))
		case 7:
			if len(v.Bytes) == net.IPv4len || len(v.Bytes) == net.IPv6len {
				vars[prefix+"IPAddress"] = append(vars[prefix+"IPAddress"], net.IP(v.Bytes).String())
			}
		}
	}
}
