package oauthproxy

import (
	"context"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"math/big"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/entramcp/entramcp/entra"
	"github.com/entramcp/entramcp/internal/hashcache"
	"github.com/entramcp/entramcp/internal/ids"
)

// Grant is what an access token asserts about the user and the client.
type Grant struct {
	TenantID, ObjectID      string
	Name, PreferredUsername string
	ClientID                string
	Scopes                  []string // short names of the API's scopes
	Roles, Groups           []string
}

// Tokens issues and verifies the proxy's access tokens.
type Tokens struct {
	Keys     *KeySet
	Issuer   string        // our issuer URL
	Resource string        // the MCP resource URL (aud)
	Lifetime time.Duration // default 1 hour
	Leeway   time.Duration // default 1 minute
	// Upstream resolves a token id (jti) to the user's stored Entra token, for On-Behalf-Of.
	// nil or a miss leaves Identity.Token empty.
	Upstream func(ctx context.Context, jti string) (string, error)
	Now      func() time.Time

	// verified remembers tokens whose signature and claims passed, keyed by SHA-256: an ES256
	// verification costs ~115 µs, and a client presents the same token for an hour. The
	// Upstream lookup (revocation, the current Entra token) still runs on every request.
	cacheOnce sync.Once
	verified  *hashcache.Cache[verifiedToken]
}

type verifiedToken struct {
	claims *accessClaims
	kid    string
}

type accessClaims struct {
	Iss      string   `json:"iss"`
	Aud      string   `json:"aud"`
	Sub      string   `json:"sub"`
	ClientID string   `json:"client_id"`
	Scope    string   `json:"scope"`
	Jti      string   `json:"jti"`
	Iat      int64    `json:"iat"`
	Nbf      int64    `json:"nbf"`
	Exp      int64    `json:"exp"`
	Tid      string   `json:"tid"`
	Oid      string   `json:"oid"`
	Name     string   `json:"name,omitempty"`
	UPN      string   `json:"preferred_username,omitempty"`
	Roles    []string `json:"roles,omitempty"`
	Groups   []string `json:"groups,omitempty"`
}

func (t *Tokens) now() time.Time {
	if t.Now != nil {
		return t.Now()
	}
	return time.Now()
}

// Issue signs an access token for g and returns it with its id (jti) and expiry.
func (t *Tokens) Issue(g Grant) (token, jti string, exp time.Time, err error) {
	life := t.Lifetime
	if life <= 0 {
		life = time.Hour
	}
	now := t.now()
	jti, exp = ids.NewGUID(), now.Add(life)
	c := accessClaims{Iss: t.Issuer, Aud: t.Resource, Sub: g.TenantID + ":" + g.ObjectID, ClientID: g.ClientID, Scope: strings.Join(g.Scopes, " "),
		Jti: jti, Iat: now.Unix(), Nbf: now.Unix(), Exp: exp.Unix(), Tid: g.TenantID, Oid: g.ObjectID, Name: g.Name, UPN: g.PreferredUsername,
		Roles: g.Roles, Groups: g.Groups}
	k := t.Keys.current()
	h, _ := json.Marshal(map[string]string{"alg": "ES256", "typ": "at+jwt", "kid": k.Kid})
	p, _ := json.Marshal(c)
	in := base64.RawURLEncoding.EncodeToString(h) + "." + base64.RawURLEncoding.EncodeToString(p)
	d := sha256.Sum256([]byte(in))
	r, s, err := ecdsa.Sign(rand.Reader, k.priv, d[:])
	if err != nil {
		return "", "", time.Time{}, err
	}
	sig := make([]byte, 64)
	r.FillBytes(sig[:32])
	s.FillBytes(sig[32:])
	return in + "." + base64.RawURLEncoding.EncodeToString(sig), jti, exp, nil
}

func reject(reason, desc string) error { return &entra.VerifyError{Reason: reason, Description: desc} }

// Verify implements mcpauth.TokenVerifier for the proxy's own tokens: ES256 with a published
// kid, our issuer, the MCP resource as audience, within the lifetime.
func (t *Tokens) Verify(ctx context.Context, raw string) (*entra.Identity, error) {
	if len(raw) > 16<<10 {
		return nil, reject(entra.ReasonMalformed, "the token is too large")
	}
	t.cacheOnce.Do(func() { t.verified = hashcache.New[verifiedToken](50_000) })
	now := t.now()
	ck := hashcache.Key(raw)
	v, ok := t.verified.Get(ck, now.Add(-t.leeway()))
	if !ok || t.Keys.byKid(v.kid) == nil { // a removed key ends its tokens at once
		c, kid, err := t.verifyClaims(ctx, raw, now)
		if err != nil {
			return nil, err
		}
		v = verifiedToken{c, kid}
		t.verified.Put(ck, v, time.Unix(c.Exp, 0))
	}
	c := v.claims
	upstream := ""
	if t.Upstream != nil {
		if u, err := t.Upstream(ctx, c.Jti); err == nil {
			upstream = u
		} else if errors.Is(err, ErrRevoked) {
			return nil, reject("revoked", "the sign-in behind this token was revoked; sign in again")
		} else if !errors.Is(err, ErrNoUpstream) {
			return nil, &entra.VerifyError{Reason: entra.ReasonUnavailable, Description: "the session store is unavailable; try again shortly"}
		}
	}
	return entra.NewIdentity(entra.Identity{TenantID: c.Tid, ObjectID: c.Oid, Subject: c.Sub, Name: c.Name, PreferredUsername: c.UPN,
		ClientAppID: c.ClientID, Scopes: strings.Fields(c.Scope), Roles: slices.Clone(c.Roles), Groups: slices.Clone(c.Groups), Version: "entramcp",
		Expiry: time.Unix(c.Exp, 0)}, upstream), nil
}

func (t *Tokens) leeway() time.Duration {
	if t.Leeway == 0 {
		return time.Minute
	}
	return t.Leeway
}

// verifyClaims checks the signature and the claims of a token not seen before.
func (t *Tokens) verifyClaims(ctx context.Context, raw string, now time.Time) (*accessClaims, string, error) {
	parts := strings.Split(raw, ".")
	if len(parts) != 3 {
		return nil, "", reject(entra.ReasonMalformed, "the token is not a signed JWT")
	}
	var h struct{ Alg, Kid, Typ string }
	hb, err := base64.RawURLEncoding.DecodeString(parts[0])
	if err != nil || json.Unmarshal(hb, &h) != nil {
		return nil, "", reject(entra.ReasonMalformed, "the token header is not valid")
	}
	if h.Alg != "ES256" {
		return nil, "", reject(entra.ReasonAlgorithm, "only ES256 tokens from this server are accepted")
	}
	k := t.Keys.byKid(h.Kid)
	if k == nil {
		_ = t.Keys.Reload(ctx) // another replica may have rotated
		if k = t.Keys.byKid(h.Kid); k == nil {
			return nil, "", reject(entra.ReasonKeyNotFound, "the token's signing key is not one of this server's")
		}
	}
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil || len(sig) != 64 {
		return nil, "", reject(entra.ReasonSignature, "the token signature is not valid")
	}
	d := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	if !ecdsa.Verify(&k.priv.PublicKey, d[:], new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:])) {
		return nil, "", reject(entra.ReasonSignature, "the token signature is not valid")
	}
	var c accessClaims
	pb, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil || json.Unmarshal(pb, &c) != nil {
		return nil, "", reject(entra.ReasonMalformed, "the token payload is not valid")
	}
	leeway := t.leeway()
	switch {
	case c.Iss != t.Issuer:
		return nil, "", reject(entra.ReasonIssuer, "the token was not issued by this server")
	case c.Aud != t.Resource:
		return nil, "", reject(entra.ReasonAudience, "the token is for another resource")
	case now.After(time.Unix(c.Exp, 0).Add(leeway)):
		return nil, "", reject(entra.ReasonExpired, "the token has expired")
	case now.Add(leeway).Before(time.Unix(c.Nbf, 0)):
		return nil, "", reject(entra.ReasonNotYetValid, "the token is not valid yet")
	case !ids.IsGUID(c.Tid) || !ids.IsGUID(c.Oid) || c.Sub != c.Tid+":"+c.Oid:
		return nil, "", reject(entra.ReasonMissingClaims, "the token does not name a user")
	}
	return &c, k.Kid, nil
}

// ErrNoUpstream is what an Upstream resolver returns when no Entra token is stored for the jti
// (as opposed to the store being unavailable, which refuses the request with 503).
var ErrNoUpstream = errors.New("no upstream token")
