package emulator_test

import (
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/entramcp/entramcp/emulator"
)

// Negative tests for the error codes of ENTRA-FACTS sections 4-6: each request must fail with
// the right status, OAuth error, AADSTS code and envelope.

func TestOnBehalfOfErrors(t *testing.T) {
	em := startEmulator(t, nil)
	info := em.Info()
	alice := userToken(t, em, "alice")
	_, graphTok := obo(t, em, alice, graphDefault)
	idToken := password(t, em, "alice", apiScope(em)+" openid")["id_token"].(string)
	// A token for the client app's own API... the client app has none, so use one for Graph.
	status, cc := post(t, em, url.Values{"grant_type": {"client_credentials"}, "client_id": {info.Apps.Server.ClientID},
		"client_secret": {info.Apps.Server.ClientSecret}, "scope": {info.Apps.Server.ClientID + "/.default"}})
	if status != 200 {
		t.Fatalf("client credentials for own API: %d %v", status, cc)
	}
	appOnly := cc["access_token"].(string)

	cases := []struct {
		name      string
		assertion string
		scope     string
		status    int
		err       string
		code      int
	}{
		{"graph token as assertion (signature unverifiable)", graphTok["access_token"].(string), graphDefault, 400, "invalid_grant", 50013},
		{"assertion for another audience", password(t, em, "alice", "User.Read")["access_token"].(string), graphDefault, 400, "invalid_grant", 50013},
		{"id token as assertion", idToken, graphDefault, 400, "invalid_grant", 240002},
		{"app-only assertion", appOnly, graphDefault, 400, "unauthorized_client", 7000114},
		{"garbage assertion", "not.a.jwt", graphDefault, 400, "invalid_grant", 50027},
		{"two resources", alice, graphDefault + " api://" + emulator.DefaultServerAppID + "/mcp-access", 400, "invalid_scope", 28000},
		{"unknown scope", alice, "https://graph.microsoft.com/Nope.Read", 400, "invalid_scope", 70011},
		{".default mixed with explicit", alice, graphDefault + " https://graph.microsoft.com/User.Read", 400, "invalid_scope", 70011},
		{"unknown resource", alice, "api://00000000-1111-2222-3333-444444444444/x", 400, "invalid_resource", 500011},
		{"no consent for explicit scope", alice, "https://graph.microsoft.com/Directory.Read.All", 400, "invalid_grant", 65001},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			status, body := obo(t, em, c.assertion, c.scope)
			wantAAD(t, status, body, c.status, c.err, c.code)
		})
	}

	t.Run("assertion audience is another app", func(t *testing.T) {
		// The dev client app (public) is not a middle tier; give a confidential app in its place.
		em2 := startEmulator(t, func(c *emulator.Config) {
			c.Applications = append(c.Applications, &emulator.Application{AppID: "11111111-2222-4333-8444-555555555555", DisplayName: "other api",
				PasswordCredentials: []emulator.PasswordCredential{{SecretText: "other-secret"}}})
		})
		status, body := post(t, em2, url.Values{"grant_type": {"urn:ietf:params:oauth:grant-type:jwt-bearer"}, "client_id": {"11111111-2222-4333-8444-555555555555"},
			"client_secret": {"other-secret"}, "assertion": {userToken(t, em2, "alice")}, "scope": {graphDefault}, "requested_token_use": {"on_behalf_of"}})
		wantAAD(t, status, body, 400, "invalid_grant", 500131)
	})
	t.Run("expired assertion", func(t *testing.T) {
		em.SetClockOffset(3 * time.Hour)
		defer em.SetClockOffset(0)
		status, body := obo(t, em, alice, graphDefault)
		wantAAD(t, status, body, 400, "invalid_grant", 500133)
	})
	t.Run("consent missing for .default", func(t *testing.T) {
		em2 := startEmulator(t, nil)
		if err := em2.RevokeConsent(emulator.DefaultServerAppID, emulator.GraphAppID, ""); err != nil {
			t.Fatal(err)
		}
		status, body := obo(t, em2, userToken(t, em2, "alice"), graphDefault)
		wantAAD(t, status, body, 400, "invalid_grant", 65001)
		if body["suberror"] != "consent_required" {
			t.Errorf("suberror = %v, want consent_required", body["suberror"])
		}
	})
	t.Run("requested_token_use missing", func(t *testing.T) {
		s := info.Apps.Server
		status, body := post(t, em, url.Values{"grant_type": {"urn:ietf:params:oauth:grant-type:jwt-bearer"}, "client_id": {s.ClientID},
			"client_secret": {s.ClientSecret}, "assertion": {alice}, "scope": {graphDefault}})
		wantAAD(t, status, body, 400, "invalid_request", 900144)
	})
}

func TestOnBehalfOfMFAChallenge(t *testing.T) {
	for _, code := range []int{50079, 50076} {
		em := startEmulator(t, nil)
		alice := userToken(t, em, "alice") // signed in before the policy: no MFA in the session
		policy, err := em.SetMFAPolicy("alice", emulator.GraphAppID, code)
		if err != nil {
			t.Fatal(err)
		}
		status, body := obo(t, em, alice, graphDefault)
		wantAAD(t, status, body, 400, "interaction_required", code)
		var claimsJSON map[string]map[string]map[string]any
		if err := json.Unmarshal([]byte(body["claims"].(string)), &claimsJSON); err != nil {
			t.Fatalf("claims is not JSON: %v", body["claims"])
		}
		if vals := claimsJSON["access_token"]["polids"]["values"].([]any); len(vals) != 1 || vals[0] != policy {
			t.Fatalf("claims challenge names %v, want policy %s", vals, policy)
		}
		// The password grant cannot satisfy MFA at all.
		info := em.Info()
		status, body = post(t, em, url.Values{"grant_type": {"password"}, "client_id": {info.Apps.Client.ClientID}, "username": {"alice"},
			"password": {info.Users[0].Password}, "scope": {apiScope(em)}})
		wantAAD(t, status, body, 400, "invalid_grant", 50076)
		// bob has no policy and is unaffected.
		if status, body := obo(t, em, userToken(t, em, "bob"), graphDefault); status != 200 {
			t.Fatalf("bob: %d %v", status, body)
		}
	}
}

func TestTokenEndpointErrors(t *testing.T) {
	em := startEmulator(t, func(c *emulator.Config) {
		c.Applications = append(c.Applications, &emulator.Application{AppID: "22222222-3333-4444-8555-666666666666", DisplayName: "spa",
			SPA: emulator.RedirectSettings{RedirectURIs: []string{"https://spa.example/cb"}}, IdentifierURIs: []string{}})
		c.Consents = append(c.Consents, emulator.ConsentConfig{Client: "22222222-3333-4444-8555-666666666666", Resource: emulator.DefaultServerAppID, Scope: "mcp-access"})
		c.Settings.AutoApprove = true
	})
	info := em.Info()
	s, client := info.Apps.Server, info.Apps.Client.ClientID
	rt := password(t, em, "alice", apiScope(em)+" offline_access")["refresh_token"].(string)
	cases := []struct {
		name    string
		form    url.Values
		headers []string
		status  int
		err     string
		code    int
	}{
		{"no grant_type", url.Values{"client_id": {client}}, nil, 400, "invalid_request", 900144},
		{"unknown grant_type", url.Values{"grant_type": {"implicit"}, "client_id": {client}}, nil, 400, "unsupported_grant_type", 70003},
		{"unknown client", url.Values{"grant_type": {"client_credentials"}, "client_id": {"99999999-9999-4999-8999-999999999999"}, "client_secret": {"x"}, "scope": {graphDefault}}, nil, 400, "unauthorized_client", 700016},
		{"client_id not a GUID", url.Values{"grant_type": {"client_credentials"}, "client_id": {"nope"}, "client_secret": {"x"}, "scope": {graphDefault}}, nil, 400, "unauthorized_client", 700038},
		{"wrong secret is 401", url.Values{"grant_type": {"client_credentials"}, "client_id": {s.ClientID}, "client_secret": {"wrong"}, "scope": {graphDefault}}, nil, 401, "invalid_client", 7000215},
		{"confidential without credential", url.Values{"grant_type": {"client_credentials"}, "client_id": {s.ClientID}, "scope": {graphDefault}}, nil, 401, "invalid_client", 7000218},
		{"public client with a secret", url.Values{"grant_type": {"password"}, "client_id": {client}, "client_secret": {"x"}, "username": {"alice"}, "password": {"x"}, "scope": {apiScope(em)}}, nil, 401, "invalid_client", 7000215},
		{"client credentials without .default", url.Values{"grant_type": {"client_credentials"}, "client_id": {s.ClientID}, "client_secret": {s.ClientSecret}, "scope": {"https://graph.microsoft.com/User.Read"}}, nil, 400, "invalid_scope", 1002012},
		{"token for itself by URI", url.Values{"grant_type": {"client_credentials"}, "client_id": {s.ClientID}, "client_secret": {s.ClientSecret}, "scope": {s.IdentifierURI + "/.default"}}, nil, 400, "invalid_request", 90009},
		{"missing scope", url.Values{"grant_type": {"password"}, "client_id": {client}, "username": {"alice"}, "password": {info.Users[0].Password}}, nil, 400, "invalid_request", 900144},
		{"wrong password", url.Values{"grant_type": {"password"}, "client_id": {client}, "username": {"alice"}, "password": {"nope"}, "scope": {apiScope(em)}}, nil, 400, "invalid_grant", 50126},
		{"unknown user", url.Values{"grant_type": {"password"}, "client_id": {client}, "username": {"carol@" + emulator.DefaultTenantDomain}, "password": {"nope"}, "scope": {apiScope(em)}}, nil, 400, "invalid_grant", 50034},
		{"garbage refresh token", url.Values{"grant_type": {"refresh_token"}, "client_id": {client}, "refresh_token": {"junk"}, "scope": {apiScope(em)}}, nil, 400, "invalid_grant", 9002313},
		{"refresh token of another client", url.Values{"grant_type": {"refresh_token"}, "client_id": {emulator.AzureCLIAppID}, "refresh_token": {rt}, "scope": {apiScope(em)}}, nil, 400, "invalid_grant", 70000},
		{"duplicated parameter", url.Values{"grant_type": {"password", "password"}, "client_id": {client}}, nil, 400, "invalid_request", 9002313},
		{"garbage code", url.Values{"grant_type": {"authorization_code"}, "client_id": {client}, "code": {"junk"}, "redirect_uri": {"http://localhost"}}, nil, 400, "invalid_grant", 9002313},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			status, body := post(t, em, c.form, c.headers...)
			wantAAD(t, status, body, c.status, c.err, c.code)
		})
	}

	t.Run("public client must not present a secret", func(t *testing.T) {
		code, verifier := authorizeCode(t, em, client, "http://localhost:5555", apiScope(em))
		status, body := post(t, em, url.Values{"grant_type": {"authorization_code"}, "client_id": {client}, "client_secret": {"x"},
			"code": {code}, "redirect_uri": {"http://localhost:5555"}, "code_verifier": {verifier}})
		wantAAD(t, status, body, 401, "invalid_client", 700025)
	})
	t.Run("redirect_uri differs at redemption", func(t *testing.T) {
		code, verifier := authorizeCode(t, em, client, "http://localhost:5555", apiScope(em))
		status, body := post(t, em, url.Values{"grant_type": {"authorization_code"}, "client_id": {client},
			"code": {code}, "redirect_uri": {"http://localhost:5556"}, "code_verifier": {verifier}})
		wantAAD(t, status, body, 400, "invalid_grant", 500112)
	})
	t.Run("blank scope at redemption", func(t *testing.T) {
		code, verifier := authorizeCode(t, em, client, "http://localhost:5555", apiScope(em))
		status, body := post(t, em, url.Values{"grant_type": {"authorization_code"}, "client_id": {client}, "scope": {" "},
			"code": {code}, "redirect_uri": {"http://localhost:5555"}, "code_verifier": {verifier}})
		wantAAD(t, status, body, 400, "invalid_request", 28003)
	})
	t.Run("expired code", func(t *testing.T) {
		code, verifier := authorizeCode(t, em, client, "http://localhost:5555", apiScope(em))
		em.SetClockOffset(11 * time.Minute)
		defer em.SetClockOffset(0)
		status, body := post(t, em, url.Values{"grant_type": {"authorization_code"}, "client_id": {client},
			"code": {code}, "redirect_uri": {"http://localhost:5555"}, "code_verifier": {verifier}})
		wantAAD(t, status, body, 400, "invalid_grant", 70008)
	})
	t.Run("SPA code redeemed without Origin", func(t *testing.T) {
		code, verifier := authorizeCode(t, em, "22222222-3333-4444-8555-666666666666", "https://spa.example/cb", apiScope(em)+" offline_access")
		form := url.Values{"grant_type": {"authorization_code"}, "client_id": {"22222222-3333-4444-8555-666666666666"},
			"code": {code}, "redirect_uri": {"https://spa.example/cb"}, "code_verifier": {verifier}}
		status, body := post(t, em, form)
		wantAAD(t, status, body, 400, "invalid_request", 9002327)
		code, verifier = authorizeCode(t, em, "22222222-3333-4444-8555-666666666666", "https://spa.example/cb", apiScope(em)+" offline_access")
		form.Set("code", code)
		form.Set("code_verifier", verifier)
		if status, body := post(t, em, form, "Origin", "https://spa.example"); status != 200 || body["refresh_token_expires_in"] == nil {
			t.Fatalf("SPA redemption with Origin: %d %v", status, body)
		}
	})
	t.Run("expired refresh token", func(t *testing.T) {
		em.SetClockOffset(91 * 24 * time.Hour)
		defer em.SetClockOffset(0)
		status, body := post(t, em, url.Values{"grant_type": {"refresh_token"}, "client_id": {client}, "refresh_token": {rt}, "scope": {apiScope(em)}})
		wantAAD(t, status, body, 400, "invalid_grant", 700082)
	})
	t.Run("revoked refresh token", func(t *testing.T) {
		rt := password(t, em, "bob", apiScope(em)+" offline_access")["refresh_token"].(string)
		em.SetClockOffset(time.Second)
		if err := em.RevokeSessions("bob"); err != nil {
			t.Fatal(err)
		}
		em.SetClockOffset(0)
		status, body := post(t, em, url.Values{"grant_type": {"refresh_token"}, "client_id": {client}, "refresh_token": {rt}, "scope": {apiScope(em)}})
		wantAAD(t, status, body, 400, "invalid_grant", 50173)
	})
	t.Run("GET is refused", func(t *testing.T) {
		req, _ := http.NewRequest(http.MethodGet, tokenURL(em), nil)
		status, body := do(t, em, req)
		wantAAD(t, status, body, 400, "invalid_request", 900561)
	})
	t.Run("unknown tenant", func(t *testing.T) {
		req, _ := http.NewRequest(http.MethodPost, em.URL()+"/fabrikam.example/oauth2/v2.0/token", strings.NewReader("grant_type=password"))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		status, body := do(t, em, req)
		wantAAD(t, status, body, 400, "invalid_tenant", 90002)
	})
	t.Run("Basic client authentication works", func(t *testing.T) {
		req, _ := http.NewRequest(http.MethodPost, tokenURL(em), strings.NewReader(url.Values{"grant_type": {"client_credentials"}, "scope": {graphDefault}}.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.SetBasicAuth(url.QueryEscape(s.ClientID), url.QueryEscape(s.ClientSecret))
		if status, body := do(t, em, req); status != 200 {
			t.Fatalf("client_secret_basic: %d %v", status, body)
		}
	})
}

// authorizeCode gets a code non-interactively (auto-approve with login_hint) with PKCE S256.
func authorizeCode(t *testing.T, em *emulator.Emulator, clientID, redirect, scope string) (code, verifier string) {
	t.Helper()
	verifier = strings.Repeat("v", 50)
	sum := sha256sum(verifier)
	q := url.Values{"client_id": {clientID}, "response_type": {"code"}, "redirect_uri": {redirect}, "scope": {scope},
		"login_hint": {"alice"}, "code_challenge": {sum}, "code_challenge_method": {"S256"}, "state": {"s"}}
	resp, err := noRedirect(em).Get(em.Authority() + "/oauth2/v2.0/authorize?" + q.Encode())
	if err != nil {
		t.Fatal(err)
	}
	p := redirectParams(t, resp)
	if p.Get("code") == "" {
		t.Fatalf("no code: %v", p)
	}
	return p.Get("code"), verifier
}

func TestAuthorizeErrors(t *testing.T) {
	em := startEmulator(t, func(c *emulator.Config) { c.Settings.AutoApprove = true })
	client := em.Info().Apps.Client.ClientID
	base := func() url.Values {
		return url.Values{"client_id": {client}, "response_type": {"code"}, "redirect_uri": {"http://localhost:7000/cb"}, "scope": {apiScope(em)},
			"login_hint": {"alice"}, "state": {"st"}}
	}
	em.AddRedirectURI(client, "publicClient", "http://localhost/cb")
	get := func(q url.Values) *http.Response {
		r, err := noRedirect(em).Get(em.Authority() + "/oauth2/v2.0/authorize?" + q.Encode())
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	// Errors before the redirect URI is known are shown on a page and never redirected.
	pageCases := []struct {
		name string
		edit func(url.Values)
		code string
	}{
		{"redirect mismatch", func(q url.Values) { q.Set("redirect_uri", "https://evil.example/cb") }, "AADSTS50011"},
		{"redirect differs in case", func(q url.Values) { q.Set("redirect_uri", "http://localhost:7000/CB") }, "AADSTS50011"},
		{"redirect with trailing slash", func(q url.Values) { q.Set("redirect_uri", "http://localhost:7000/cb/") }, "AADSTS50011"},
		{"IPv6 loopback unsupported", func(q url.Values) { q.Set("redirect_uri", "http://[::1]:7000/cb") }, "AADSTS50011"},
		{"https loopback is not port-free", func(q url.Values) { q.Set("redirect_uri", "https://localhost:7000/cb") }, "AADSTS50011"},
		{"unknown client", func(q url.Values) { q.Set("client_id", "99999999-9999-4999-8999-999999999999") }, "AADSTS700016"},
		{"duplicated redirect_uri", func(q url.Values) { q.Add("redirect_uri", "http://localhost/cb") }, "AADSTS9002313"},
	}
	for _, c := range pageCases {
		t.Run(c.name, func(t *testing.T) {
			q := base()
			c.edit(q)
			resp := get(q)
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 400 || resp.Header.Get("Location") != "" || !strings.Contains(string(body), c.code) {
				t.Fatalf("got %d Location=%q body %.200s; want a 400 page with %s", resp.StatusCode, resp.Header.Get("Location"), body, c.code)
			}
		})
	}
	// After the redirect URI is validated, errors go back to the client with state.
	redirectCases := []struct {
		name string
		edit func(url.Values)
		err  string
		code string
	}{
		{"resource does not match scopes", func(q url.Values) { q.Set("resource", "https://mcp.example/mcp") }, "invalid_target", "AADSTS9010010"},
		{"no scope", func(q url.Values) { q.Del("scope") }, "invalid_request", "AADSTS900144"},
		{"unsupported response_type", func(q url.Values) { q.Set("response_type", "token") }, "unsupported_response_type", "AADSTS700054"},
		{"bad code_challenge_method", func(q url.Values) {
			q.Set("code_challenge", strings.Repeat("a", 43))
			q.Set("code_challenge_method", "S512")
		}, "invalid_request", "AADSTS501478"},
		{"short code_challenge", func(q url.Values) { q.Set("code_challenge", "short") }, "invalid_request", "AADSTS501491"},
		{"two resources", func(q url.Values) { q.Set("scope", apiScope(em)+" User.Read") }, "invalid_scope", "AADSTS28000"},
		{"unknown prompt", func(q url.Values) { q.Set("prompt", "sometimes") }, "invalid_request", "AADSTS90023"},
	}
	for _, c := range redirectCases {
		t.Run(c.name, func(t *testing.T) {
			q := base()
			c.edit(q)
			p := redirectParams(t, get(q))
			if p.Get("error") != c.err || !strings.HasPrefix(p.Get("error_description"), c.code+":") || p.Get("state") != "st" || !strings.Contains(p.Get("error_uri"), "/error?code=") {
				t.Fatalf("redirect params %v, want error %s %s with state and error_uri", p, c.err, c.code)
			}
		})
	}
	t.Run("resource equal to the scope's identifier URI is accepted", func(t *testing.T) {
		q := base()
		q.Set("resource", em.Info().Apps.Server.IdentifierURI)
		if p := redirectParams(t, get(q)); p.Get("code") == "" {
			t.Fatalf("params %v", p)
		}
	})
	t.Run("plain PKCE and fragment response mode", func(t *testing.T) {
		q := base()
		q.Set("code_challenge", strings.Repeat("p", 43))
		q.Set("response_mode", "fragment")
		resp := get(q)
		loc, _ := url.Parse(resp.Header.Get("Location"))
		frag, _ := url.ParseQuery(loc.Fragment)
		if frag.Get("code") == "" {
			t.Fatalf("fragment response: %v", resp.Header.Get("Location"))
		}
		status, body := post(t, em, url.Values{"grant_type": {"authorization_code"}, "client_id": {client}, "code": {frag.Get("code")},
			"redirect_uri": {"http://localhost:7000/cb"}, "code_verifier": {strings.Repeat("p", 43)}})
		if status != 200 {
			t.Fatalf("plain PKCE redemption: %d %v", status, body)
		}
	})
	t.Run("form_post response mode", func(t *testing.T) {
		q := base()
		q.Set("response_mode", "form_post")
		resp := get(q)
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(string(body), `name="code"`) || !strings.Contains(string(body), `action="http://localhost:7000/cb"`) {
			t.Fatalf("form_post: %d %.300s", resp.StatusCode, body)
		}
	})
}

func sha256sum(v string) string {
	return base64.RawURLEncoding.EncodeToString(sha256Bytes([]byte(v)))
}
