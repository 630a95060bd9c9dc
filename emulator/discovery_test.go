package emulator_test

import (
	"crypto/sha1"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/golang-jwt/jwt/v5"

	"github.com/entramcp/entramcp/emulator"
)

func getJSON(t *testing.T, em *emulator.Emulator, u string) (*http.Response, map[string]any) {
	t.Helper()
	resp, err := em.HTTPClient().Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body := map[string]any{}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatalf("GET %s: not JSON: %v", u, err)
	}
	return resp, body
}

func TestDiscoveryPerTenantSegment(t *testing.T) {
	em := startEmulator(t, nil)
	cases := map[string]string{
		emulator.DefaultTenantID:     em.URL() + "/" + emulator.DefaultTenantID + "/v2.0",
		emulator.DefaultTenantDomain: em.URL() + "/" + emulator.DefaultTenantID + "/v2.0",
		"organizations":              em.URL() + "/{tenantid}/v2.0",
		"common":                     em.URL() + "/{tenantid}/v2.0",
		"consumers":                  em.URL() + "/9188040d-6c67-4c5b-b112-36a304b66dad/v2.0",
	}
	for seg, issuer := range cases {
		resp, doc := getJSON(t, em, em.URL()+"/"+seg+"/v2.0/.well-known/openid-configuration")
		if resp.StatusCode != 200 || doc["issuer"] != issuer {
			t.Errorf("%s: %d issuer %v, want %s", seg, resp.StatusCode, doc["issuer"], issuer)
		}
		if resp.Header.Get("Cache-Control") != "max-age=86400, private" || resp.Header.Get("Access-Control-Allow-Origin") != "*" {
			t.Errorf("%s: headers %v", seg, resp.Header)
		}
		for _, absent := range []string{"code_challenge_methods_supported", "registration_endpoint", "grant_types_supported"} {
			if _, ok := doc[absent]; ok {
				t.Errorf("%s: Entra's discovery has no %s", seg, absent)
			}
		}
		for _, k := range []string{"authorization_endpoint", "token_endpoint", "jwks_uri", "device_authorization_endpoint", "end_session_endpoint", "userinfo_endpoint", "cloud_instance_name", "msgraph_host"} {
			if s, _ := doc[k].(string); s == "" {
				t.Errorf("%s: discovery lacks %s", seg, k)
			}
		}
	}
	resp, body := getJSON(t, em, em.URL()+"/fabrikam.example/v2.0/.well-known/openid-configuration")
	if resp.StatusCode != 400 || body["error"] != "invalid_tenant" {
		t.Errorf("unknown tenant: %d %v", resp.StatusCode, body)
	}
}

func TestJWKSKidIsX5tAndTokensVerifyWithStandardLibraries(t *testing.T) {
	em := startEmulator(t, nil)
	_, jwks := getJSON(t, em, em.Authority()+"/discovery/v2.0/keys")
	keys := jwks["keys"].([]any)
	if len(keys) != 1 {
		t.Fatalf("keys: %v", keys)
	}
	k := keys[0].(map[string]any)
	der, _ := base64.StdEncoding.DecodeString(k["x5c"].([]any)[0].(string))
	sum := sha1.Sum(der)
	if want := base64.RawURLEncoding.EncodeToString(sum[:]); k["kid"] != want || k["x5t"] != want || k["kty"] != "RSA" || k["use"] != "sig" || k["e"] != "AQAB" {
		t.Fatalf("jwk %v: kid and x5t must be the base64url SHA-1 of the certificate %s", k, want)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	keyfunc := func(*jwt.Token) (any, error) { return cert.PublicKey, nil }
	// A v2 API token verifies with golang-jwt and the published key.
	api := userToken(t, em, "alice")
	if _, err := jwt.Parse(api, keyfunc, jwt.WithValidMethods([]string{"RS256"}), jwt.WithIssuer(em.Issuer()), jwt.WithAudience(emulator.DefaultServerAppID)); err != nil {
		t.Fatalf("v2 token does not verify: %v", err)
	}
	// A Graph token does not: its nonce header makes the signature unverifiable by third parties.
	_, g := obo(t, em, api, graphDefault)
	graphTok := g["access_token"].(string)
	if h := header(t, graphTok); h["nonce"] == nil || h["x5t"] == nil {
		t.Fatalf("graph token header %v lacks nonce or x5t", h)
	}
	if _, err := jwt.Parse(graphTok, keyfunc, jwt.WithValidMethods([]string{"RS256"})); err == nil {
		t.Fatal("a Graph token verified with the public key; real ones do not")
	}
	// Key rotation: a new kid signs, the old one stays published with keepOld.
	if err := em.RotateKeys(true); err != nil {
		t.Fatal(err)
	}
	_, jwks = getJSON(t, em, em.Authority()+"/discovery/v2.0/keys")
	if n := len(jwks["keys"].([]any)); n != 2 {
		t.Fatalf("after rotation: %d keys, want 2", n)
	}
	if kid := header(t, userToken(t, em, "bob"))["kid"]; kid == k["kid"] {
		t.Fatalf("after rotation tokens are still signed with %v", kid)
	}
	if status, _ := graphGet(t, em, graphTok, "/v1.0/me"); status != 200 {
		t.Fatalf("a token signed by the previous key stopped working at Graph: %d", status)
	}
	em.RotateKeys(false)
	if status, _ := graphGet(t, em, graphTok, "/v1.0/me"); status != 401 {
		t.Fatalf("after an emergency rotation the old token still works: %d", status)
	}
}

func TestInstanceDiscovery(t *testing.T) {
	em := startEmulator(t, nil)
	ae := url.QueryEscape(em.Authority() + "/oauth2/v2.0/authorize")
	resp, body := getJSON(t, em, em.URL()+"/common/discovery/instance?api-version=1.1&authorization_endpoint="+ae)
	host := strings.TrimPrefix(em.URL(), "https://")
	md, _ := body["metadata"].([]any)
	if resp.StatusCode != 200 || len(md) != 1 || md[0].(map[string]any)["preferred_network"] != host ||
		body["tenant_discovery_endpoint"] != em.Authority()+"/v2.0/.well-known/openid-configuration" {
		t.Fatalf("instance discovery: %d %v", resp.StatusCode, body)
	}
	resp, body = getJSON(t, em, em.URL()+"/common/discovery/instance?api-version=1.1&authorization_endpoint="+url.QueryEscape("https://login.example.org/x/oauth2/v2.0/authorize"))
	if resp.StatusCode != 400 || body["error"] != "invalid_instance" {
		t.Fatalf("unknown instance: %d %v", resp.StatusCode, body)
	}
}

func TestTokenShapes(t *testing.T) {
	em := startEmulator(t, func(c *emulator.Config) {
		// A v1 API (requestedAccessTokenVersion unset) to see v1 tokens from the v2 endpoint.
		c.Applications = append(c.Applications, &emulator.Application{AppID: "33333333-4444-4555-8666-777777777777", DisplayName: "legacy api",
			IdentifierURIs: []string{"api://33333333-4444-4555-8666-777777777777"},
			API:            emulator.APISettings{OAuth2PermissionScopes: []emulator.PermissionScope{{ID: "44444444-5555-4666-8777-888888888888", Value: "read", Type: "User", IsEnabled: true}}}})
		c.Consents = append(c.Consents, emulator.ConsentConfig{Client: emulator.DefaultClientAppID, Resource: "legacy api", Scope: "read"})
		c.Settings.GroupsOverageLimit = 3
	})
	v2 := claims(t, userToken(t, em, "alice"))
	for _, k := range []string{"aud", "iss", "iat", "nbf", "exp", "aio", "azp", "azpacr", "name", "preferred_username", "oid", "sub", "scp", "tid", "uti", "ver", "rh", "roles"} {
		if v2[k] == nil {
			t.Errorf("v2 token lacks %s: %v", k, v2)
		}
	}
	if v2["ver"] != "2.0" || v2["aud"] != emulator.DefaultServerAppID || v2["azpacr"] != "0" {
		t.Errorf("v2 claims: %v", v2)
	}
	// alice is in 4 groups, over the limit of 3: the overage indicator replaces the claim.
	if v2["groups"] != nil || v2["_claim_names"] == nil {
		t.Errorf("groups overage: groups=%v _claim_names=%v", v2["groups"], v2["_claim_names"])
	}
	if life := v2["exp"].(float64) - v2["iat"].(float64); life < 3600 || life > 5400 {
		t.Errorf("lifetime %v s, want 60-90 minutes", life)
	}
	bob := claims(t, userToken(t, em, "bob"))
	if g, _ := bob["groups"].([]any); len(g) != 1 || bob["roles"] != nil || bob["wids"] != nil {
		t.Errorf("bob: groups=%v roles=%v wids=%v", bob["groups"], bob["roles"], bob["wids"])
	}
	// Without the profile scope there is no name in a v2 token.
	noProfile := claims(t, password(t, em, "alice", apiScope(em))["access_token"].(string))
	if noProfile["name"] != nil || noProfile["preferred_username"] != nil {
		t.Errorf("v2 token without profile carries name claims: %v", noProfile)
	}
	v1 := claims(t, password(t, em, "alice", "api://33333333-4444-4555-8666-777777777777/read")["access_token"].(string))
	if v1["ver"] != "1.0" || v1["iss"] != "https://sts.windows.net/"+emulator.DefaultTenantID+"/" || v1["appid"] == nil || v1["upn"] == nil ||
		v1["aud"] != "api://33333333-4444-4555-8666-777777777777" || v1["azp"] != nil {
		t.Errorf("v1 claims: %v", v1)
	}
	_, g := obo(t, em, userToken(t, em, "alice"), "https://graph.microsoft.com/User.Read")
	gc := claims(t, g["access_token"].(string))
	if gc["aud"] != "https://graph.microsoft.com" || gc["ver"] != "1.0" || gc["scp"] != "User.Read" || gc["appidacr"] != "1" {
		t.Errorf("graph token claims: %v", gc)
	}
}
