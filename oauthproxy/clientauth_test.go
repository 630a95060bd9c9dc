package oauthproxy_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"math/big"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/entramcp/entramcp/internal/proxytest"
)

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func ecJWK(t *testing.T, kid string) (*ecdsa.PrivateKey, string) {
	t.Helper()
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	raw, _ := k.PublicKey.Bytes() // 0x04 || X || Y
	j, _ := json.Marshal(map[string]string{"kty": "EC", "crv": "P-256", "kid": kid, "x": b64(raw[1:33]), "y": b64(raw[33:])})
	return k, string(j)
}

func rsaJWK(t *testing.T, kid string) (*rsa.PrivateKey, string) {
	t.Helper()
	k, _ := rsa.GenerateKey(rand.Reader, 2048)
	j, _ := json.Marshal(map[string]string{"kty": "RSA", "kid": kid, "n": b64(k.N.Bytes()), "e": b64(big.NewInt(int64(k.E)).Bytes())})
	return k, string(j)
}

var jtiN int

// assertion signs an RFC 7523 client assertion; change edits the claims first.
func assertion(t *testing.T, method jwt.SigningMethod, key any, kid, clientID, aud string, change func(jwt.MapClaims)) string {
	t.Helper()
	jtiN++
	claims := jwt.MapClaims{"iss": clientID, "sub": clientID, "aud": aud, "iat": time.Now().Unix(),
		"exp": time.Now().Add(2 * time.Minute).Unix(), "jti": "jti-" + strings.Repeat("x", jtiN)}
	if change != nil {
		change(claims)
	}
	tok := jwt.NewWithClaims(method, claims)
	if kid != "" {
		tok.Header["kid"] = kid
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// A metadata-document client that declares private_key_jwt must sign a fresh assertion for
// every token request: with its published key (inline jwks or jwks_uri), for our token
// endpoint, short-lived, used once. Everything else is 401 invalid_client and changes nothing.
func TestPrivateKeyJWTDocumentClients(t *testing.T) {
	d := startDocServer(t)
	ecKey, ecPub := ecJWK(t, "ec1")
	rsaKey, rsaPub := rsaJWK(t, "rsa1")
	other, _ := ecJWK(t, "ec1")
	d.docs["/jwt-client.json"] = `{"client_id":"%s","client_name":"Signed Client","redirect_uris":["` + proxytest.RedirectURI + `"],
		"token_endpoint_auth_method":"private_key_jwt","jwks":{"keys":[` + ecPub + `]}}`
	d.docs["/keys.json"] = `{"keys":[` + rsaPub + `]}`
	d.docs["/uri-client.json"] = `{"client_id":"%s","redirect_uris":["` + proxytest.RedirectURI + `"],
		"token_endpoint_auth_method":"private_key_jwt","jwks_uri":"` + d.ts.URL + `/keys.json"}`
	e := startProxy(t)
	e.proxy.Registry.Documents = d.documents(true)
	tokenURL := e.ts.URL + "/token"

	for _, c := range []struct {
		path   string
		method jwt.SigningMethod
		key    any
		kid    string
	}{{"/jwt-client.json", jwt.SigningMethodES256, ecKey, "ec1"}, {"/uri-client.json", jwt.SigningMethodPS256, rsaKey, "rsa1"}} {
		clientID := d.ts.URL + c.path
		verifier := strings.Repeat("k", 60)
		q := proxytest.SignIn(t, e.em.HTTPClient(), e.ts.URL, clientID, verifier, "alice")
		code := url.Values{"grant_type": {"authorization_code"}, "code": {q.Get("code")}, "redirect_uri": {proxytest.RedirectURI}, "code_verifier": {verifier}}
		with := func(a string) url.Values {
			f := url.Values{"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"}, "client_assertion": {a}}
			for k, v := range code {
				f[k] = v
			}
			return f
		}
		bad := map[string]url.Values{
			"no assertion":       code,
			"wrong key":          with(assertion(t, jwt.SigningMethodES256, other, c.kid, clientID, tokenURL, nil)),
			"other audience":     with(assertion(t, c.method, c.key, c.kid, clientID, "https://elsewhere.example/token", nil)),
			"expired":            with(assertion(t, c.method, c.key, c.kid, clientID, tokenURL, func(m jwt.MapClaims) { m["exp"] = time.Now().Add(-time.Minute).Unix() })),
			"lives an hour":      with(assertion(t, c.method, c.key, c.kid, clientID, tokenURL, func(m jwt.MapClaims) { m["exp"] = time.Now().Add(time.Hour).Unix() })),
			"no jti":             with(assertion(t, c.method, c.key, c.kid, clientID, tokenURL, func(m jwt.MapClaims) { delete(m, "jti") })),
			"issued by another":  with(assertion(t, c.method, c.key, c.kid, clientID, tokenURL, func(m jwt.MapClaims) { m["iss"] = "https://evil.example/c.json" })),
			"unknown kid":        with(assertion(t, c.method, c.key, "nope", clientID, tokenURL, nil)),
			"HS256 with the kid": with(assertion(t, jwt.SigningMethodHS256, []byte("secret-secret-secret-secret-1234"), c.kid, clientID, tokenURL, nil)),
			"alg none":           with(strings.Join(strings.Split(assertion(t, c.method, c.key, c.kid, clientID, tokenURL, nil), ".")[:2], ".") + "."),
			"client secret": func() url.Values {
				f := with(assertion(t, c.method, c.key, c.kid, clientID, tokenURL, nil))
				f.Set("client_secret", "x")
				return f
			}(),
		}
		for name, form := range bad {
			if status, body := proxytest.Token(t, e.ts.URL, clientID, form); status != 401 || body["error"] != "invalid_client" {
				t.Errorf("%s %s: %d %v", c.path, name, status, body)
			}
		}
		good := assertion(t, c.method, c.key, c.kid, clientID, tokenURL, nil)
		status, tok := proxytest.Token(t, e.ts.URL, clientID, with(good))
		if status != 200 || tok["refresh_token"] == nil {
			t.Fatalf("%s: code exchange with a good assertion (after the bad ones, so they changed nothing): %d %v", c.path, status, tok)
		}
		refresh := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok["refresh_token"].(string)},
			"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"}, "client_assertion": {good}}
		if status, body := proxytest.Token(t, e.ts.URL, clientID, refresh); status != 401 || !strings.Contains(body["error_description"].(string), "already used") {
			t.Errorf("%s: a replayed assertion: %d %v", c.path, status, body)
		}
		refresh.Set("client_assertion", assertion(t, c.method, c.key, c.kid, clientID, e.ts.URL, nil)) // aud = issuer is fine too
		refresh.Del("client_id")
		if status, body := proxytest.Token(t, e.ts.URL, "", refresh); status != 200 {
			t.Errorf("%s: refresh identified by the assertion alone: %d %v", c.path, status, body)
		}
	}
	// A public client sending an assertion is refused: it cannot switch methods at will.
	pub := proxytest.Register(t, e.ts.URL, "Public")
	if status, body := proxytest.Token(t, e.ts.URL, pub, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {"x"},
		"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"}, "client_assertion": {"a.b.c"}}); status != 401 {
		t.Errorf("public client with an assertion: %d %v", status, body)
	}
}
