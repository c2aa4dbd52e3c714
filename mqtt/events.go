package mqtt

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/fleetcert/fleetcert"
)

// Disconnect reasons of the presence events, AWS's documented values
// (AWS IoT developer guide, "Lifecycle events", disconnectReason:
// https://docs.aws.amazon.com/iot/latest/developerguide/life-cycle-events.html).
// AWS has no value of its own for a certificate that stopped being ACTIVE;
// it is an authentication failure of a live connection, AUTH_ERROR ("The
// client failed to authenticate or authorization failed"), for which AWS
// also sends the last will.
const (
	DisconnectAuthError        = "AUTH_ERROR"
	DisconnectClientInitiated  = "CLIENT_INITIATED_DISCONNECT"
	DisconnectClientError      = "CLIENT_ERROR"
	DisconnectConnectionLost   = "CONNECTION_LOST"
	DisconnectDuplicateID      = "DUPLICATE_CLIENTID"
	DisconnectKeepAliveTimeout = "MQTT_KEEP_ALIVE_TIMEOUT"
	DisconnectServerInitiated  = "SERVER_INITIATED_DISCONNECT"
)

// Topics of the events the gateway publishes.
const (
	TopicRegisteredPrefix   = "$aws/events/certificates/registered/" // + caCertificateId
	TopicConnectedPrefix    = "$aws/events/presence/connected/"      // + clientId
	TopicDisconnectedPrefix = "$aws/events/presence/disconnected/"   // + clientId
)

// registeredEvent is the payload AWS publishes on
// $aws/events/certificates/registered/{caCertificateId} when it registers a
// certificate just in time: timestamp is a number of milliseconds,
// certificateRegistrationTimestamp the same kind of value as a string.
type registeredEvent struct {
	CertificateID                    string `json:"certificateId"`
	CACertificateID                  string `json:"caCertificateId"`
	Timestamp                        int64  `json:"timestamp"`
	CertificateStatus                string `json:"certificateStatus"`
	AWSAccountID                     string `json:"awsAccountId"`
	CertificateRegistrationTimestamp string `json:"certificateRegistrationTimestamp"`
}

func registeredPayload(reg *fleetcert.AutoRegistration, now time.Time) []byte {
	b, _ := json.Marshal(registeredEvent{
		CertificateID:                    reg.Certificate.ID,
		CACertificateID:                  reg.CA.ID,
		Timestamp:                        now.UnixMilli(),
		CertificateStatus:                string(reg.Certificate.Status),
		AWSAccountID:                     reg.Certificate.AccountID,
		CertificateRegistrationTimestamp: strconv.FormatInt(reg.Certificate.CreationDate.UnixMilli(), 10),
	})
	return b
}

// presenceEvent is the payload of AWS's connect and disconnect lifecycle
// events. principalIdentifier is the certificate id for mutual TLS.
type presenceEvent struct {
	ClientID                  string `json:"clientId"`
	Timestamp                 int64  `json:"timestamp"`
	EventType                 string `json:"eventType"`
	SessionIdentifier         string `json:"sessionIdentifier"`
	PrincipalIdentifier       string `json:"principalIdentifier"`
	IPAddress                 string `json:"ipAddress,omitempty"`
	ClientInitiatedDisconnect *bool  `json:"clientInitiatedDisconnect,omitempty"`
	DisconnectReason          string `json:"disconnectReason,omitempty"`
	VersionNumber             int64  `json:"versionNumber"`
}

func connectedPayload(s *session, now time.Time) []byte {
	host, _, err := net.SplitHostPort(s.cl.Net.Remote)
	if err != nil {
		host = s.cl.Net.Remote
	}
	b, _ := json.Marshal(presenceEvent{
		ClientID: s.clientID, Timestamp: now.UnixMilli(), EventType: "connected",
		SessionIdentifier: s.sessionID.String(), PrincipalIdentifier: s.certificateID,
		IPAddress: host, VersionNumber: s.version,
	})
	return b
}

func disconnectedPayload(s *session, reason string, now time.Time) []byte {
	clientInitiated := reason == DisconnectClientInitiated
	b, _ := json.Marshal(presenceEvent{
		ClientID: s.clientID, Timestamp: now.UnixMilli(), EventType: "disconnected",
		SessionIdentifier: s.sessionID.String(), PrincipalIdentifier: s.certificateID,
		ClientInitiatedDisconnect: &clientInitiated, DisconnectReason: reason,
		VersionNumber: s.version,
	})
	return b
}

// presenceTopicOK reports whether clientID gets lifecycle events: AWS IoT
// ("Lifecycle events"): "Client IDs that contain # or + do not receive
// lifecycle events".
func presenceTopicOK(clientID string) bool {
	return clientID != "" && !strings.ContainsAny(clientID, "#+")
}

// newSessionID returns a random UUID, AWS's shape of sessionIdentifier.
func newSessionID() sessionID {
	var b sessionID
	rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return b
}

// sessionID is a random (version 4) UUID naming one connection in its
// lifecycle events; it is formatted only for an event someone receives.
type sessionID [16]byte

func (id sessionID) String() string {
	var out [36]byte
	hex.Encode(out[0:8], id[0:4])
	out[8] = '-'
	hex.Encode(out[9:13], id[4:6])
	out[13] = '-'
	hex.Encode(out[14:18], id[6:8])
	out[18] = '-'
	hex.Encode(out[19:23], id[8:10])
	out[23] = '-'
	hex.Encode(out[24:], id[10:])
	return string(out[:])
}
