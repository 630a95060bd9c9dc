package oauthproxy_test

import (
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/entramcp/entramcp/internal/proxytest"
	"github.com/entramcp/entramcp/oauthproxy"
)

// Attacks on the token, revocation and callback endpoints. Each must fail with a clear OAuth
// error and leave the victim's tokens as they were, or revoke them when the attack shows a
// stolen code.
func TestProxyTokenEndpointAttacks(t *testing.T) {
	e := startProxy(t)
	var mu sync.Mutex
	var revoked []string
	e.proxy.OnEvent = func(ev oauthproxy.Event) {
		mu.Lock()
		defer mu.Unlock()
		if ev.Name == "grant.revoked" && ev.ObjectID != "" && ev.ClientID == e.client {
			revoked = append(revoked, ev.Reason)
		}
	}
	verifier := strings.Repeat("v", 60)
	codeGrant := func(code string) url.Values {
		return url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {proxytest.RedirectURI}, "code_verifier": {verifier}}
	}

	// A code stolen by another registered client: refused, and the code is burnt for its owner.
	thief := proxytest.Register(t, e.ts.URL, "Thief")
	code := e.signIn(t, verifier, "alice").Get("code")
	if status, b := proxytest.Token(t, e.ts.URL, thief, codeGrant(code)); status != 400 || b["error"] != "invalid_grant" {
		t.Fatalf("code used by another client: %d %v", status, b)
	}
	if status, _ := e.tokenReq(t, codeGrant(code)); status != 400 {
		t.Fatalf("a code shown to another client must not work afterwards: %d", status)
	}

	// A refresh token presented by another client: refused, and the owner's token still works
	// (the thief learns nothing and spoils nothing it could not use anyway).
	status, tok := e.tokenReq(t, codeGrant(e.signIn(t, verifier, "alice").Get("code")))
	rt, _ := tok["refresh_token"].(string)
	if status != 200 || rt == "" {
		t.Fatalf("code exchange: %d %v", status, tok)
	}
	if status, b := proxytest.Token(t, e.ts.URL, thief, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}}); status != 400 || b["error"] != "invalid_grant" {
		t.Fatalf("refresh by another client: %d %v", status, b)
	}
	if status, b := e.tokenReq(t, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}}); status != 200 {
		t.Fatalf("the owner's refresh after a foreign attempt: %d %v", status, b)
	}
	// A wrong PKCE verifier: refused.
	if status, b := e.tokenReq(t, url.Values{"grant_type": {"authorization_code"}, "code": {e.signIn(t, verifier, "alice").Get("code")},
		"redirect_uri": {proxytest.RedirectURI}, "code_verifier": {strings.Repeat("w", 60)}}); status != 400 || b["error"] != "invalid_grant" {
		t.Fatalf("wrong verifier: %d %v", status, b)
	}

	// Wrong redirect_uri, wrong resource, missing verifier, repeated grant_type, unknown grant.
	for name, form := range map[string]url.Values{
		"redirect_uri mismatch": {"grant_type": {"authorization_code"}, "code": {e.signIn(t, verifier, "alice").Get("code")}, "redirect_uri": {"http://127.0.0.1:9/other"}, "code_verifier": {verifier}},
		"resource mismatch":     {"grant_type": {"authorization_code"}, "code": {e.signIn(t, verifier, "alice").Get("code")}, "redirect_uri": {proxytest.RedirectURI}, "code_verifier": {verifier}, "resource": {"https://evil.example/mcp"}},
		"no verifier":           {"grant_type": {"authorization_code"}, "code": {e.signIn(t, verifier, "alice").Get("code")}, "redirect_uri": {proxytest.RedirectURI}},
		"password grant":        {"grant_type": {"password"}, "username": {"alice"}, "password": {"x"}},
		"client_credentials":    {"grant_type": {"client_credentials"}},
	} {
		status, b := e.tokenReq(t, form)
		if status != 400 || b["error"] == nil || b["error_description"] == nil || b["access_token"] != nil {
			t.Errorf("%s: %d %v", name, status, b)
		}
	}

	// An oversized body is refused before anything is read into memory.
	resp, err := http.Post(e.ts.URL+"/token", "application/x-www-form-urlencoded", strings.NewReader("client_id="+e.client+"&x="+strings.Repeat("a", 200<<10)))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 400 && resp.StatusCode != 413 {
		t.Fatalf("oversized token request: %d", resp.StatusCode)
	}
	// GET on the token endpoint is not a token request.
	if resp, _ := http.Get(e.ts.URL + "/token?grant_type=refresh_token"); resp.StatusCode != http.StatusMethodNotAllowed {
		t.Fatalf("GET /token: %d", resp.StatusCode)
	}

	// Revocation: only the owning client's refresh token revokes, and then the access token
	// stops working at once.
	_, tok = e.tokenReq(t, codeGrant(e.signIn(t, verifier, "bob").Get("code")))
	rt = tok["refresh_token"].(string)
	at := tok["access_token"].(string)
	http.PostForm(e.ts.URL+"/revoke", url.Values{"client_id": {thief}, "token": {rt}})
	if status, _ := e.call(t, at); status != 200 {
		t.Fatalf("another client revoked bob's grant: %d", status)
	}
	resp, _ = http.PostForm(e.ts.URL+"/revoke", url.Values{"client_id": {e.client}, "token": {rt}})
	if resp.StatusCode != 200 {
		t.Fatalf("revoke: %d", resp.StatusCode)
	}
	if status, _ := e.call(t, at); status != 401 {
		t.Fatalf("access token after revocation: %d", status)
	}
	if status, _ := e.tokenReq(t, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}}); status != 400 {
		t.Fatalf("refresh after revocation: %d", status)
	}
	// Both revocations reached the audit hook, with the user and the reason.
	mu.Lock()
	defer mu.Unlock()
	if !slices.Contains(revoked, "code_used_by_another_client") || !slices.Contains(revoked, "revoked_by_client") {
		t.Fatalf("revocation events: %v", revoked)
	}
}

// The Entra callback cannot be driven by anyone but the browser that started the sign-in.
func TestProxyCallbackAttacks(t *testing.T) {
	e := startProxy(t)
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	// A forged state: an error page, never a redirect.
	resp, _ := noFollow.Get(e.ts.URL + "/auth/callback?code=x&state=forged")
	resp.Body.Close()
	if resp.StatusCode != 400 || resp.Header.Get("Location") != "" {
		t.Fatalf("forged state: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}

	// A real state delivered to another browser (login CSRF): refused.
	jar, _ := cookiejar.New(nil)
	victim := &http.Client{Jar: jar, CheckRedirect: func(r *http.Request, _ []*http.Request) error {
		if strings.HasPrefix(r.URL.Path, "/") && !strings.HasPrefix(r.URL.String(), e.ts.URL) {
			return http.ErrUseLastResponse // stop at Entra
		}
		return nil
	}}
	q := url.Values{"client_id": {e.client}, "redirect_uri": {proxytest.RedirectURI}, "response_type": {"code"}, "state": {"st"},
		"code_challenge": {proxytest.Challenge(strings.Repeat("v", 60))}, "code_challenge_method": {"S256"}}
	resp, err := victim.Get(e.ts.URL + "/authorize?" + q.Encode())
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	resp, _ = proxytest.Approve(t, victim, e.ts.URL, page)
	loc, _ := url.Parse(resp.Header.Get("Location"))
	if resp.StatusCode != http.StatusFound || loc == nil || loc.Query().Get("state") == "" {
		t.Fatalf("consent did not send the browser to Entra: %d %v", resp.StatusCode, loc)
	}
	resp, _ = noFollow.Get(e.ts.URL + "/auth/callback?code=x&state=" + url.QueryEscape(loc.Query().Get("state")))
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden || resp.Header.Get("Location") != "" {
		t.Fatalf("callback from another browser: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	// And the state is spent: the right browser cannot be replayed into it either.
	resp, _ = victim.Get(e.ts.URL + "/auth/callback?code=x&state=" + url.QueryEscape(loc.Query().Get("state")))
	resp.Body.Close()
	if resp.StatusCode != 400 {
		t.Fatalf("spent state: %d", resp.StatusCode)
	}

	// An error on the way back from Entra reaches the client only as a recognisable code: the
	// redirect's query cannot put arbitrary text into the client's error or the audit log.
	resp, _ = victim.Get(e.ts.URL + "/authorize?" + q.Encode())
	page, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	resp, _ = proxytest.Approve(t, victim, e.ts.URL, page)
	loc, _ = url.Parse(resp.Header.Get("Location"))
	junk := "<script>alert(1)</script>" + strings.Repeat("A", 500)
	resp, _ = victim.Get(e.ts.URL + "/auth/callback?error=" + url.QueryEscape(junk) + "&state=" + url.QueryEscape(loc.Query().Get("state")))
	resp.Body.Close()
	back, _ := url.Parse(resp.Header.Get("Location"))
	if back == nil || back.Query().Get("error") != "access_denied" || strings.Contains(back.Query().Get("error_description"), "alert") || !strings.Contains(back.Query().Get("error_description"), "unknown") {
		t.Fatalf("Entra error passed on: %v", back)
	}
}
