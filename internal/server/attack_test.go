package server_test

import (
	"crypto"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/entramcp/entramcp/emulator"
	"github.com/entramcp/entramcp/internal/testenv"
)

func b64(v any) string {
	var b []byte
	switch x := v.(type) {
	case string:
		b = []byte(x)
	case []byte:
		b = x
	default:
		b, _ = json.Marshal(v)
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

func parts(tok string) (h, p, s string) {
	x := strings.Split(tok, ".")
	return x[0], x[1], x[2]
}

func headerOf(t *testing.T, tok string) map[string]any {
	h, _, _ := parts(tok)
	b, _ := base64.RawURLEncoding.DecodeString(h)
	m := map[string]any{}
	json.Unmarshal(b, &m)
	return m
}

// signRS256 signs header and claims with an arbitrary key (an attacker's).
func signRS256(t *testing.T, key *rsa.PrivateKey, header, claims map[string]any) string {
	in := b64(header) + "." + b64(claims)
	d := sha256.Sum256([]byte(in))
	sig, err := rsa.SignPKCS1v15(rand.Reader, key, crypto.SHA256, d[:])
	if err != nil {
		t.Fatal(err)
	}
	return in + "." + b64(sig)
}

func clone(m map[string]any, edits map[string]any) map[string]any {
	out := map[string]any{}
	for k, v := range m {
		out[k] = v
	}
	for k, v := range edits {
		if v == nil {
			delete(out, k)
		} else {
			out[k] = v
		}
	}
	return out
}

// TestAttackSuite presents forged, tampered and wrong tokens. Every one must be refused with the
// right status and challenge; the suite fails if any is accepted.
func TestAttackSuite(t *testing.T) {
	env := testenv.Start(t, testenv.Options{Config: func(c *emulator.Config) {
		// Another API in the same tenant, to get validly signed tokens for the wrong audience.
		c.Applications = append(c.Applications, &emulator.Application{AppID: "5e7f9a1b-2c3d-4e5f-8a9b-0c1d2e3f4a5b", DisplayName: "other api",
			IdentifierURIs: []string{"api://5e7f9a1b-2c3d-4e5f-8a9b-0c1d2e3f4a5b"}, API: emulator.APISettings{RequestedAccessTokenVersion: ptr(2),
				OAuth2PermissionScopes: []emulator.PermissionScope{{ID: "6f8a0b2c-3d4e-4f5a-9b0c-1d2e3f4a5b6c", Value: "mcp-access", Type: "User", IsEnabled: true}}}})
		c.Consents = append(c.Consents, emulator.ConsentConfig{Client: emulator.DefaultClientAppID, Resource: "other api", Scope: "mcp-access"})
	}})
	em := env.Emulator
	info := em.Info()
	valid := env.UserToken(t, "alice")
	vh, vp, vs := parts(valid)
	vc := testenv.Claims(t, valid)
	kid := headerOf(t, valid)["kid"].(string)
	sign := func(edits map[string]any) string {
		tok, err := em.SignToken(clone(vc, edits), false)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	attacker, _ := rsa.GenerateKey(rand.Reader, 2048)
	now := time.Now().Unix()
	otherTenant := "11111111-2222-4333-8444-555555555555"

	// Tokens from real flows that are for something else.
	graphTok := oboToken(t, em, valid)
	otherAPI := passwordToken(t, em, "alice", "api://5e7f9a1b-2c3d-4e5f-8a9b-0c1d2e3f4a5b/mcp-access")
	userGraph := passwordToken(t, em, "alice", "User.Read")
	idToken := passwordTokenField(t, em, "alice", info.Apps.Server.IdentifierURI+"/mcp-access openid", "id_token")
	appOnly := clientCredentials(t, em, info.Apps.Server.ClientID, info.Apps.Server.ClientSecret, info.Apps.Server.ClientID+"/.default")
	pubDER, _ := x509.MarshalPKIXPublicKey(&attacker.PublicKey)
	hsMAC := hmac.New(sha256.New, pubDER)
	hsIn := b64(map[string]any{"alg": "HS256", "typ": "JWT", "kid": kid}) + "." + vp
	hsMAC.Write([]byte(hsIn))

	type attack struct {
		name   string
		header string // full Authorization header value; "" = none
		extra  map[string]string
		query  string
		status int
		errc   string // error code expected in WWW-Authenticate ("" = bare challenge)
	}
	bearer := func(tok string) string { return "Bearer " + tok }
	attacks := []attack{
		{"no Authorization header", "", nil, "", 401, ""},
		{"empty bearer", "Bearer ", nil, "", 401, "invalid_token"},
		{"bearer without token", "Bearer", nil, "", 401, "invalid_token"},
		{"basic credentials", "Basic YWxpY2U6cGFzc3dvcmQ=", nil, "", 401, ""},
		{"token in the query string", "", nil, "access_token=" + url.QueryEscape(valid), 400, "invalid_request"},
		{"token in query and header", bearer(valid), nil, "access_token=" + url.QueryEscape(valid), 400, "invalid_request"},
		{"garbage", bearer("garbage"), nil, "", 401, "invalid_token"},
		{"two segments", bearer(vh + "." + vp), nil, "", 401, "invalid_token"},
		{"four segments", bearer(valid + ".x"), nil, "", 401, "invalid_token"},
		{"token with spaces", "Bearer " + vh + " " + vp, nil, "", 401, "invalid_token"},
		{"alg none", bearer(b64(map[string]any{"alg": "none", "typ": "JWT"}) + "." + vp + "."), nil, "", 401, "invalid_token"},
		{"alg none with kid", bearer(b64(map[string]any{"alg": "none", "kid": kid}) + "." + vp + "." + vs), nil, "", 401, "invalid_token"},
		{"HS256 keyed with the public key", bearer(hsIn + "." + b64(hsMAC.Sum(nil))), nil, "", 401, "invalid_token"},
		{"RS512 header on an RS256 signature", bearer(b64(map[string]any{"alg": "RS512", "kid": kid}) + "." + vp + "." + vs), nil, "", 401, "invalid_token"},
		{"ES256 header", bearer(b64(map[string]any{"alg": "ES256", "kid": kid}) + "." + vp + "." + vs), nil, "", 401, "invalid_token"},
		{"unknown kid, attacker key", bearer(signRS256(t, attacker, map[string]any{"alg": "RS256", "kid": "attacker"}, vc)), nil, "", 401, "invalid_token"},
		{"real kid, attacker key", bearer(signRS256(t, attacker, map[string]any{"alg": "RS256", "kid": kid}, vc)), nil, "", 401, "invalid_token"},
		{"tampered payload (oid)", bearer(vh + "." + b64(clone(vc, map[string]any{"oid": "c4a2d8f1-6e3b-4f9c-8b2d-7a4e1c9f5b62"})) + "." + vs), nil, "", 401, "invalid_token"},
		{"tampered payload (scp)", bearer(vh + "." + b64(clone(vc, map[string]any{"scp": "mcp-access admin"})) + "." + vs), nil, "", 401, "invalid_token"},
		{"tampered header", bearer(b64(map[string]any{"alg": "RS256", "kid": kid, "typ": "JWT", "x": 1}) + "." + vp + "." + vs), nil, "", 401, "invalid_token"},
		{"signature stripped", bearer(vh + "." + vp + "."), nil, "", 401, "invalid_token"},
		{"signature truncated", bearer(vh + "." + vp + "." + vs[:len(vs)-10]), nil, "", 401, "invalid_token"},
		{"signature not base64", bearer(vh + "." + vp + ".!!!!"), nil, "", 401, "invalid_token"},
		{"header not JSON", bearer(b64("not json") + "." + vp + "." + vs), nil, "", 401, "invalid_token"},
		{"payload not base64", bearer(vh + ".%%%." + vs), nil, "", 401, "invalid_token"},
		{"critical header", bearer(signRS256(t, attacker, map[string]any{"alg": "RS256", "kid": kid, "crit": []string{"exp"}}, vc)), nil, "", 401, "invalid_token"},
		{"oversized token", bearer(vh + "." + strings.Repeat("A", 20000) + "." + vs), nil, "", 401, "invalid_token"},
		{"wrong issuer host", bearer(sign(map[string]any{"iss": "https://login.microsoftonline.com/" + info.TenantID + "/v2.0"})), nil, "", 401, "invalid_token"},
		{"v1 issuer on a v2 token", bearer(sign(map[string]any{"iss": "https://sts.windows.net/" + info.TenantID + "/"})), nil, "", 401, "invalid_token"},
		{"another tenant", bearer(sign(map[string]any{"tid": otherTenant, "iss": em.URL() + "/" + otherTenant + "/v2.0"})), nil, "", 401, "invalid_token"},
		{"tid differs from issuer", bearer(sign(map[string]any{"tid": otherTenant})), nil, "", 401, "invalid_token"},
		{"wrong audience GUID", bearer(sign(map[string]any{"aud": "5e7f9a1b-2c3d-4e5f-8a9b-0c1d2e3f4a5b"})), nil, "", 401, "invalid_token"},
		{"wrong audience URI", bearer(sign(map[string]any{"aud": "api://5e7f9a1b-2c3d-4e5f-8a9b-0c1d2e3f4a5b"})), nil, "", 401, "invalid_token"},
		{"two audiences", bearer(sign(map[string]any{"aud": []string{info.Apps.Server.ClientID, "other"}})), nil, "", 401, "invalid_token"},
		{"token for another API (real)", bearer(otherAPI), nil, "", 401, "invalid_token"},
		{"Graph token from OBO", bearer(graphTok), nil, "", 401, "invalid_token"},
		{"Graph token from the user", bearer(userGraph), nil, "", 401, "invalid_token"},
		{"Graph audience without nonce", bearer(sign(map[string]any{"aud": "https://graph.microsoft.com"})), nil, "", 401, "invalid_token"},
		{"Graph GUID audience", bearer(sign(map[string]any{"aud": "00000003-0000-0000-c000-000000000000"})), nil, "", 401, "invalid_token"},
		{"ID token", bearer(idToken), nil, "", 401, "invalid_token"},
		{"v1 token", bearer(sign(map[string]any{"ver": "1.0", "iss": "https://sts.windows.net/" + info.TenantID + "/"})), nil, "", 401, "invalid_token"},
		{"no version", bearer(sign(map[string]any{"ver": nil})), nil, "", 401, "invalid_token"},
		{"app-only token without app roles configured", bearer(appOnly), nil, "", 401, "invalid_token"},
		{"user token without scp", bearer(sign(map[string]any{"scp": nil})), nil, "", 401, "invalid_token"},
		{"expired", bearer(sign(map[string]any{"exp": now - 3600, "iat": now - 7200, "nbf": now - 7200})), nil, "", 401, "invalid_token"},
		{"expired beyond leeway", bearer(sign(map[string]any{"exp": now - 90})), nil, "", 401, "invalid_token"},
		{"nbf in the future", bearer(sign(map[string]any{"nbf": now + 600})), nil, "", 401, "invalid_token"},
		{"no exp", bearer(sign(map[string]any{"exp": nil})), nil, "", 401, "invalid_token"},
		{"exp not a number", bearer(sign(map[string]any{"exp": "tomorrow"})), nil, "", 401, "invalid_token"},
		{"no oid", bearer(sign(map[string]any{"oid": nil})), nil, "", 401, "invalid_token"},
		{"no tid", bearer(sign(map[string]any{"tid": nil})), nil, "", 401, "invalid_token"},
		{"missing required scope", bearer(sign(map[string]any{"scp": "User.Read"})), nil, "", 403, "insufficient_scope"},
		{"scope of another app", bearer(sign(map[string]any{"scp": "Files.Read"})), nil, "", 403, "insufficient_scope"},
		{"lowercase scheme, tampered token", "bearer " + vh + "." + b64(clone(vc, map[string]any{"name": "x"})) + "." + vs, nil, "", 401, "invalid_token"},
		{"two Authorization headers", bearer(valid), map[string]string{"Authorization2": bearer(valid)}, "", 400, "invalid_request"},
	}
	if len(attacks) < 40 {
		t.Fatalf("the suite must hold at least 40 attacks, has %d", len(attacks))
	}
	for _, a := range attacks {
		t.Run(a.name, func(t *testing.T) {
			resp, body := postWith(t, env, a.header, a.extra, a.query)
			if resp.StatusCode == 200 {
				t.Fatalf("ACCEPTED: %s", a.name)
			}
			if resp.StatusCode != a.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, a.status, body)
			}
			ch := resp.Header.Get("WWW-Authenticate")
			if !strings.HasPrefix(ch, "Bearer ") || !strings.Contains(ch, `resource_metadata="`+env.Server.MCPURL()[:len(env.Server.MCPURL())-4]+`/.well-known/oauth-protected-resource/mcp"`) {
				t.Fatalf("challenge %q lacks Bearer and resource_metadata", ch)
			}
			if a.errc == "" && strings.Contains(ch, "error=") {
				t.Fatalf("a request without credentials must get a bare challenge, got %q", ch)
			}
			if a.errc != "" && !strings.Contains(ch, `error="`+a.errc+`"`) {
				t.Fatalf("challenge %q, want error=%q", ch, a.errc)
			}
			if strings.Contains(ch, vs) || strings.Contains(body, vs) {
				t.Fatal("the response echoes the token")
			}
		})
	}
	// Positive controls: the suite's baseline token and a lowercase scheme are accepted, so the
	// rejections above are about the tokens, not a broken server.
	for _, h := range []string{bearer(valid), "bearer " + valid} {
		if resp, body := postWith(t, env, h, nil, ""); resp.StatusCode != 200 {
			t.Fatalf("valid token (%q scheme) refused: %d %s", h[:6], resp.StatusCode, body)
		}
	}
	// The Graph token gets a description that names Graph (confused-deputy guard).
	resp, _ := postWith(t, env, bearer(graphTok), nil, "")
	if ch := resp.Header.Get("WWW-Authenticate"); !strings.Contains(ch, "Microsoft Graph") {
		t.Errorf("Graph token challenge does not say why: %q", ch)
	}
	// The insufficient-scope challenge names the scope to request.
	resp, _ = postWith(t, env, bearer(sign(map[string]any{"scp": "User.Read"})), nil, "")
	if ch := resp.Header.Get("WWW-Authenticate"); !strings.Contains(ch, `scope="`+info.Apps.Server.IdentifierURI+`/mcp-access"`) {
		t.Errorf("insufficient_scope challenge lacks the scope: %q", ch)
	}
	if log := env.AuditLog(); strings.Contains(log, vs) || !strings.Contains(log, `"event":"auth.denied"`) {
		t.Errorf("audit log has a token or lacks denials:\n%.500s", log)
	}
}

func ptr[T any](v T) *T { return &v }
