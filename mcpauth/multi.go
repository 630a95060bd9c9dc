package mcpauth

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"strings"

	"github.com/entramcp/entramcp/entra"
)

// ByAlgorithm routes each token to the verifier for its signing algorithm, so one server accepts
// both its own OAuth proxy's tokens (ES256) and direct Entra tokens (RS256). Tokens with any
// other algorithm are refused; the chosen verifier still checks everything else.
type ByAlgorithm map[string]TokenVerifier

// Verify implements TokenVerifier.
func (b ByAlgorithm) Verify(ctx context.Context, raw string) (*entra.Identity, error) {
	h, _, ok := strings.Cut(raw, ".")
	var hdr struct {
		Alg string `json:"alg"`
	}
	if hb, err := base64.RawURLEncoding.DecodeString(h); !ok || err != nil || json.Unmarshal(hb, &hdr) != nil {
		return nil, &entra.VerifyError{Reason: entra.ReasonMalformed, Description: "the token is not a signed JWT"}
	}
	v, found := b[hdr.Alg]
	if !found {
		return nil, &entra.VerifyError{Reason: entra.ReasonAlgorithm, Description: "tokens signed with " + hdr.Alg + " are not accepted"}
	}
	return v.Verify(ctx, raw)
}
