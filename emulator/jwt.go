package emulator

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
)

// jwtHeader keeps Entra's header field order; Nonce appears only on Microsoft Graph tokens.
type jwtHeader struct {
	Typ   string `json:"typ"`
	Nonce string `json:"nonce,omitempty"`
	Alg   string `json:"alg"`
	X5t   string `json:"x5t,omitempty"`
	Kid   string `json:"kid"`
}

// sign makes an RS256 JWT with the current signing key. When graphNonce is true the token gets
// Graph's `nonce` header: the signature covers the SHA-256 of the nonce instead of the nonce
// itself, so standard validators fail on it exactly as they do on real Graph tokens.
func (em *Emulator) sign(claims map[string]any, v1Header, graphNonce bool) (string, error) {
	em.keyMu.RLock()
	k := em.signing
	em.keyMu.RUnlock()
	h := jwtHeader{Typ: "JWT", Alg: "RS256", Kid: k.kid}
	if v1Header {
		h.X5t = k.kid
	}
	payload, err := json.Marshal(claims)
	if err != nil {
		return "", err
	}
	signed := h
	if graphNonce {
		h.Nonce = randomToken(32)
		signed.Nonce = nonceDigest(h.Nonce)
	}
	hb, _ := json.Marshal(h)
	sb, _ := json.Marshal(signed)
	p64 := base64.RawURLEncoding.EncodeToString(payload)
	digest := sha256.Sum256([]byte(base64.RawURLEncoding.EncodeToString(sb) + "." + p64))
	sig, err := rsa.SignPKCS1v15(rand.Reader, k.key, crypto.SHA256, digest[:])
	if err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(hb) + "." + p64 + "." + base64.RawURLEncoding.EncodeToString(sig), nil
}

func nonceDigest(n string) string {
	s := sha256.Sum256([]byte(n))
	return base64.RawURLEncoding.EncodeToString(s[:])
}

var (
	errMalformed    = errors.New("malformed JWT")
	errBadSignature = errors.New("signature validation failed")
)

// verifyOwn checks a JWT the emulator issued (any published key, including the nonce form) and
// returns its header and claims. Lifetimes are checked by the caller, which knows which AADSTS
// code applies.
func (em *Emulator) verifyOwn(raw string) (jwtHeader, map[string]any, error) {
	var h jwtHeader
	parts := strings.Split(raw, ".")
	if len(parts) != 3 || len(raw) > 16<<10 {
		return h, nil, errMalformed
	}
	hb, err := base64.RawURLEncoding.DecodeString(parts[0])
	if err != nil {
		return h, nil, errMalformed
	}
	dec := json.NewDecoder(bytes.NewReader(hb))
	if err := dec.Decode(&h); err != nil || h.Alg != "RS256" {
		return h, nil, errMalformed
	}
	signedHeader := parts[0]
	if h.Nonce != "" {
		s := h
		s.Nonce = nonceDigest(h.Nonce)
		sb, _ := json.Marshal(s)
		signedHeader = base64.RawURLEncoding.EncodeToString(sb)
	}
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil {
		return h, nil, errMalformed
	}
	var key *signingKey
	em.keyMu.RLock()
	for _, k := range em.published {
		if k.kid == h.Kid {
			key = k
		}
	}
	em.keyMu.RUnlock()
	if key == nil {
		return h, nil, errBadSignature
	}
	digest := sha256.Sum256([]byte(signedHeader + "." + parts[1]))
	if rsa.VerifyPKCS1v15(&key.key.PublicKey, crypto.SHA256, digest[:], sig) != nil {
		return h, nil, errBadSignature
	}
	pb, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return h, nil, errMalformed
	}
	claims := map[string]any{}
	d := json.NewDecoder(bytes.NewReader(pb))
	d.UseNumber()
	if err := d.Decode(&claims); err != nil {
		return h, nil, errMalformed
	}
	return h, claims, nil
}

// RotateKeys makes a new signing key current. With keepOld the previous keys stay published
// (Entra's normal rollover); without it they disappear from the JWKS at once (an emergency
// rollover), so tokens signed by them stop verifying.
func (em *Emulator) RotateKeys(keepOld bool) error {
	k, err := newSigningKey()
	if err != nil {
		return err
	}
	em.keyMu.Lock()
	defer em.keyMu.Unlock()
	if keepOld {
		em.published = append([]*signingKey{k}, em.published...)
	} else {
		em.published = []*signingKey{k}
	}
	em.signing = k
	return nil
}

// SigningKeyIDs lists the published key ids, current first.
func (em *Emulator) SigningKeyIDs() []string {
	em.keyMu.RLock()
	defer em.keyMu.RUnlock()
	var ids []string
	for _, k := range em.published {
		ids = append(ids, k.kid)
	}
	return ids
}

func claimString(c map[string]any, k string) string {
	s, _ := c[k].(string)
	return s
}

func claimInt(c map[string]any, k string) int64 {
	switch v := c[k].(type) {
	case json.Number:
		n, _ := v.Int64()
		return n
	case float64:
		return int64(v)
	}
	return 0
}

// SignToken signs arbitrary claims with the tenant's current key, as a test control: attack
// suites use it to build tokens that are validly signed but wrong in one claim. graphNonce adds
// Graph's nonce header. It is part of the Go API only, never exposed over HTTP.
func (em *Emulator) SignToken(claims map[string]any, graphNonce bool) (string, error) {
	return em.sign(claims, false, graphNonce)
}
