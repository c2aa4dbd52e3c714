package fleetcert

import (
	"crypto/rand"
	"encoding/base32"
	"encoding/base64"
	"time"
)

// DefaultAccountID is the account of the bootstrap access key when
// FLEETCERT_ACCOUNT_ID is not set.
const DefaultAccountID = "123456789012"

// AccessKey is an AWS-style access key: a SigV4 signing secret that belongs
// to one account.
type AccessKey struct {
	ID        string // AKIA…, 20 characters
	Secret    string // 40 characters; never logged
	AccountID string
	CreatedAt time.Time
}

// ValidAccountID reports whether id is a 12-digit AWS account id.
func ValidAccountID(id string) bool {
	if len(id) != 12 {
		return false
	}
	for i := 0; i < len(id); i++ {
		if id[i] < '0' || id[i] > '9' {
			return false
		}
	}
	return true
}

// ValidRegion reports whether s looks like an AWS region name (us-east-1,
// eu-central-2, us-gov-west-1, …): lowercase letters, digits and inner
// hyphens. A region becomes part of ARNs and endpoint names, so nothing
// else is accepted from a SigV4 scope or a sign-in form.
func ValidRegion(s string) bool {
	if len(s) == 0 || len(s) > 32 || s[0] == '-' || s[len(s)-1] == '-' {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

// NewAccessKey generates a fresh access key for accountID, shaped like AWS's
// long-term keys (AKIA + 16 base32 characters, 40-character secret).
func NewAccessKey(accountID string, now time.Time) (*AccessKey, error) {
	if !ValidAccountID(accountID) {
		return nil, Errorf(EInvalidRequest, "Account id %q is not 12 digits.", accountID)
	}
	idBytes := make([]byte, 10)
	secretBytes := make([]byte, 30)
	if _, err := rand.Read(idBytes); err != nil {
		return nil, err
	}
	if _, err := rand.Read(secretBytes); err != nil {
		return nil, err
	}
	return &AccessKey{
		ID:        "AKIA" + base32.StdEncoding.EncodeToString(idBytes),
		Secret:    base64.StdEncoding.EncodeToString(secretBytes),
		AccountID: accountID,
		CreatedAt: now.UTC(),
	}, nil
}
