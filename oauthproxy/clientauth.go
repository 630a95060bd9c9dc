package oauthproxy

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/entramcp/entramcp/store"
)

// Client authentication at the token and revocation endpoints. Registered (DCR) clients are
// public: PKCE is their proof. A client whose metadata document says
// token_endpoint_auth_method=private_key_jwt must also prove possession of a key from the
// document's JWKS with an RFC 7523 client assertion on every token request.

const (
	authNone          = "none"
	authPrivateKeyJWT = "private_key_jwt"
	assertionType     = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
	kindAssertion     = "assertion" // spent assertion ids (jti), until they expire

	// maxAssertionLife bounds how far in the future an assertion may expire: a long-lived one
	// is a bearer credential by another name.
	maxAssertionLife = 10 * time.Minute
	assertionLeeway  = 30 * time.Second
)

// assertionAlgs are the signing algorithms accepted for client assertions.
var assertionAlgs = []string{"ES256", "RS256", "PS256"}

// clientAuthError is an invalid_client answer (HTTP 401) with its reason.
type clientAuthError struct{ reason string }

func (e *clientAuthError) Error() string { return e.reason }

// errUnknownKey says the assertion's kid is not in the cached JWKS; the client may have
// rotated keys, so the cached document is dropped and the next request fetches it again.
var errUnknownKey = errors.New("the assertion's key (kid) is not in the client's published JWKS")

// authenticateClient checks the client authentication a token or revocation request carries
// against what the client's registration or document requires. A store outage is returned as
// is (the caller answers 503); anything else is a *clientAuthError.
func (p *Proxy) authenticateClient(ctx context.Context, c *Client, form url.Values) error {
	assertion := form.Get("client_assertion")
	if form.Get("client_secret") != "" {
		return &clientAuthError{"client secrets are not used here: public clients prove themselves with PKCE, document clients with private_key_jwt"}
	}
	if c.AuthMethod != authPrivateKeyJWT {
		if assertion != "" || form.Get("client_assertion_type") != "" {
			return &clientAuthError{"this client is registered as public (token_endpoint_auth_method none); send no client assertion"}
		}
		return nil
	}
	switch {
	case form.Get("client_assertion_type") != assertionType:
		return &clientAuthError{"this client authenticates with private_key_jwt: send client_assertion_type=" + assertionType + " and client_assertion"}
	case assertion == "" || len(assertion) > 8<<10:
		return &clientAuthError{"client_assertion is missing or larger than 8 KiB"}
	}
	keys, err := parseJWKS(c.JWKS)
	if err != nil {
		return &clientAuthError{"the client's published JWKS is unusable: " + err.Error()}
	}
	var claims jwt.RegisteredClaims
	_, err = jwt.ParseWithClaims(assertion, &claims, func(t *jwt.Token) (any, error) {
		kid, _ := t.Header["kid"].(string)
		key, ok := keys[kid]
		if !ok && kid == "" && len(keys) == 1 {
			for _, k := range keys {
				key, ok = k, true
			}
		}
		if !ok {
			return nil, errUnknownKey
		}
		if _, isEC := key.(*ecdsa.PublicKey); isEC != (t.Method.Alg() == "ES256") {
			return nil, fmt.Errorf("algorithm %s does not fit the key %q", t.Method.Alg(), kid)
		}
		return key, nil
	}, jwt.WithValidMethods(assertionAlgs), jwt.WithExpirationRequired(), jwt.WithIssuer(c.ClientID),
		jwt.WithSubject(c.ClientID), jwt.WithLeeway(assertionLeeway), jwt.WithIssuedAt())
	if err != nil {
		if errors.Is(err, errUnknownKey) && p.Registry.Documents != nil {
			p.Registry.Documents.Forget(ctx, c.ClientID)
		}
		return &clientAuthError{"client assertion refused: " + strings.TrimPrefix(err.Error(), "token has invalid claims: ")}
	}
	base := strings.TrimSuffix(p.Issuer, "/")
	if !slices.ContainsFunc(claims.Audience, func(a string) bool { return a == base || a == base+"/token" || a == base+"/revoke" }) {
		return &clientAuthError{"client assertion refused: its aud must be " + base + "/token or the issuer " + base}
	}
	life := time.Until(claims.ExpiresAt.Time)
	if life > maxAssertionLife {
		return &clientAuthError{fmt.Sprintf("client assertion refused: it expires in %s; at most %s is accepted", life.Round(time.Second), maxAssertionLife)}
	}
	if claims.ID == "" || len(claims.ID) > 256 {
		return &clientAuthError{"client assertion refused: it needs a jti (at most 256 characters) so it can be used only once"}
	}
	// Single use: remember the jti until the assertion could no longer be accepted anyway.
	err = p.Store.Create(ctx, kindAssertion, hashKey(c.ClientID+"\x00"+claims.ID), []byte{1}, life+2*assertionLeeway)
	if errors.Is(err, store.ErrAlreadyExists) {
		return &clientAuthError{"client assertion refused: this jti was already used"}
	}
	return err
}

// assertionSubject is the unverified sub of a client assertion, for requests that identify
// the client only by its assertion (RFC 7521 makes client_id optional then). The signature
// check that follows binds it.
func assertionSubject(assertion string) string {
	var claims jwt.RegisteredClaims
	if _, _, err := jwt.NewParser().ParseUnverified(assertion, &claims); err != nil {
		return ""
	}
	return claims.Subject
}

// jwk is one public key of a client's JWKS.
type jwk struct {
	Kty string `json:"kty"`
	Kid string `json:"kid,omitempty"`
	Use string `json:"use,omitempty"`
	Alg string `json:"alg,omitempty"`
	Crv string `json:"crv,omitempty"`
	X   string `json:"x,omitempty"`
	Y   string `json:"y,omitempty"`
	N   string `json:"n,omitempty"`
	E   string `json:"e,omitempty"`
}

// usableJWKS keeps the signing keys of a JWKS we can verify with (EC P-256, RSA of at least
// 2048 bits) and returns them re-encoded, or an error naming why none is usable. Private key
// members are dropped by decoding into jwk.
func usableJWKS(raw []byte) (json.RawMessage, error) {
	var doc struct {
		Keys []jwk `json:"keys"`
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		return nil, errors.New("jwks is not a JSON Web Key Set")
	}
	var keep []jwk
	kids := map[string]bool{}
	for _, k := range doc.Keys {
		if (k.Use != "" && k.Use != "sig") || (k.Alg != "" && !slices.Contains(assertionAlgs, k.Alg)) {
			continue
		}
		if _, err := publicKey(k); err != nil {
			continue
		}
		if kids[k.Kid] {
			return nil, fmt.Errorf("the key id %q appears twice", k.Kid)
		}
		kids[k.Kid] = true
		keep = append(keep, k)
	}
	if len(keep) == 0 {
		return nil, errors.New("the JWKS has no usable signing key (EC P-256 or RSA of at least 2048 bits)")
	}
	if len(keep) > 1 && kids[""] {
		return nil, errors.New("with several keys, each needs a kid")
	}
	if len(keep) > 10 {
		return nil, errors.New("the JWKS has more than 10 keys")
	}
	return json.Marshal(map[string]any{"keys": keep})
}

func parseJWKS(raw json.RawMessage) (map[string]any, error) {
	var doc struct {
		Keys []jwk `json:"keys"`
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		return nil, err
	}
	keys := map[string]any{}
	for _, k := range doc.Keys {
		pub, err := publicKey(k)
		if err != nil {
			return nil, err
		}
		keys[k.Kid] = pub
	}
	if len(keys) == 0 {
		return nil, errors.New("no keys")
	}
	return keys, nil
}

func publicKey(k jwk) (any, error) {
	b64 := base64.RawURLEncoding.DecodeString
	switch k.Kty {
	case "EC":
		x, errX := b64(k.X)
		y, errY := b64(k.Y)
		if k.Crv != "P-256" || errX != nil || errY != nil || len(x) != 32 || len(y) != 32 {
			return nil, errors.New("EC keys must be P-256")
		}
		pub, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), append(append([]byte{4}, x...), y...))
		if err != nil { // not a point on the curve
			return nil, errors.New("EC key is not a point on P-256")
		}
		return pub, nil
	case "RSA":
		n, errN := b64(k.N)
		e, errE := b64(k.E)
		if errN != nil || errE != nil || len(e) == 0 || len(e) > 4 {
			return nil, errors.New("RSA key is malformed")
		}
		pub := &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: int(new(big.Int).SetBytes(e).Int64())}
		if pub.N.BitLen() < 2048 || pub.E < 3 || pub.E%2 == 0 {
			return nil, errors.New("RSA keys must have at least 2048 bits and an odd exponent")
		}
		return pub, nil
	}
	return nil, fmt.Errorf("key type %q is not supported", k.Kty)
}
