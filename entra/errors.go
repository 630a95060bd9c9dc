package entra

import (
	"errors"
	"net/http"
)

// ErrInvalidToken is what every token rejection unwraps to.
var ErrInvalidToken = errors.New("invalid token")

// ErrKeysUnavailable means the tenant's signing keys could not be fetched, so a token could not
// be checked; the request should be retried later (HTTP 503), never accepted.
var ErrKeysUnavailable = errors.New("signing keys unavailable")

// Rejection reasons, used as metric labels and in tests. They are stable.
const (
	ReasonMalformed         = "malformed"
	ReasonAlgorithm         = "algorithm"
	ReasonKeyNotFound       = "key_not_found"
	ReasonSignature         = "signature"
	ReasonIssuer            = "issuer"
	ReasonTenant            = "tenant"
	ReasonAudience          = "audience"
	ReasonGraphToken        = "graph_token"
	ReasonExpired           = "expired"
	ReasonNotYetValid       = "not_yet_valid"
	ReasonVersion           = "version"
	ReasonAppOnly           = "app_only"
	ReasonMissingClaims     = "missing_claims"
	ReasonInsufficientScope = "insufficient_scope"
	ReasonUnavailable       = "keys_unavailable"
)

// VerifyError is a rejected token. Description is safe to send to the client in
// error_description: it never quotes the token.
type VerifyError struct {
	Reason      string
	Description string
	// Scopes lists what an insufficient_scope rejection needs (full names, as clients request them).
	Scopes []string
}

func (e *VerifyError) Error() string { return "invalid token (" + e.Reason + "): " + e.Description }

// Unwrap lets errors.Is match ErrInvalidToken, or ErrKeysUnavailable when keys could not be read.
func (e *VerifyError) Unwrap() error {
	if e.Reason == ReasonUnavailable {
		return ErrKeysUnavailable
	}
	return ErrInvalidToken
}

// HTTPStatus is the status RFC 6750 gives this rejection: 403 for insufficient scope, 503 when
// keys are unavailable, 401 otherwise.
func (e *VerifyError) HTTPStatus() int {
	switch e.Reason {
	case ReasonInsufficientScope:
		return http.StatusForbidden
	case ReasonUnavailable:
		return http.StatusServiceUnavailable
	}
	return http.StatusUnauthorized
}

func reject(reason, desc string) *VerifyError { return &VerifyError{Reason: reason, Description: desc} }
