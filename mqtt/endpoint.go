package mqtt

import (
	"strings"

	"github.com/fleetcert/fleetcert"
)

// DefaultHostname is the host name endpoints are named under when the
// gateway is given none.
const DefaultHostname = "localhost"

// Endpoint types accepted by DescribeEndpoint (AWS IoT, DescribeEndpoint:
// iot:Data, iot:Data-ATS, iot:CredentialProvider, iot:Jobs).
const (
	EndpointData               = "iot:Data"
	EndpointDataATS            = "iot:Data-ATS"
	EndpointCredentialProvider = "iot:CredentialProvider"
	EndpointJobs               = "iot:Jobs"
)

// EndpointAddress returns the host name of scope's endpoint of endpointType
// under hostname, as DescribeEndpoint returns it (a host name without a
// port, as AWS's endpointAddress):
//
//	iot:Data-ATS            {accountId}-ats.iot.{region}.{hostname}
//	iot:Data (or "")        {accountId}.iot.{region}.{hostname}
//	iot:CredentialProvider  {accountId}.credentials.iot.{region}.{hostname}
//	iot:Jobs                {accountId}.jobs.iot.{region}.{hostname}
//
// AWS names endpoints with a random prefix per account; fleetcert uses the
// account id itself so that the gateway can read the account back from the
// TLS server name (see ParseServerName).
//
// Errors: InvalidRequestException for any other endpointType.
func EndpointAddress(hostname string, scope fleetcert.Scope, endpointType string) (string, error) {
	if hostname == "" {
		hostname = DefaultHostname
	}
	suffix := ".iot." + scope.Region + "." + hostname
	switch endpointType {
	case "", EndpointData:
		// AWS IoT (DescribeEndpoint): without endpointType, the legacy
		// iot:Data endpoint.
		return scope.AccountID + suffix, nil
	case EndpointDataATS:
		return scope.AccountID + "-ats" + suffix, nil
	case EndpointCredentialProvider:
		return scope.AccountID + ".credentials" + suffix, nil
	case EndpointJobs:
		return scope.AccountID + ".jobs" + suffix, nil
	}
	return "", fleetcert.Errorf(fleetcert.EInvalidRequest,
		"Unknown endpointType %q; use iot:Data-ATS, iot:Data, iot:CredentialProvider or iot:Jobs.", endpointType)
}

// ParseServerName reads the account and region out of a TLS server name of
// the form {accountId}-ats.iot.{region}.{host} or {accountId}.iot.{region}.{host}
// (the data endpoints EndpointAddress names). It returns ok false for any
// other name, such as a bare host name or an IP address.
func ParseServerName(name string) (accountID, region string, ok bool) {
	labels := strings.SplitN(strings.ToLower(name), ".", 4)
	if len(labels) < 4 || labels[1] != "iot" || labels[2] == "" || labels[3] == "" {
		return "", "", false
	}
	account := strings.TrimSuffix(labels[0], "-ats")
	if !fleetcert.ValidAccountID(account) {
		return "", "", false
	}
	return account, labels[2], true
}
