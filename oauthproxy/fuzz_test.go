package oauthproxy_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/entramcp/entramcp/internal/proxytest"
)

// Bad input at the token endpoint gets an OAuth error: never a 5xx, never a token, always JSON.
func FuzzProxyToken(f *testing.F) {
	e := startProxy(f)
	for _, s := range []string{"grant_type=authorization_code&code=x&redirect_uri=" + url.QueryEscape(proxytest.RedirectURI) + "&code_verifier=" + strings.Repeat("v", 43),
		"grant_type=refresh_token&refresh_token=abc", "grant_type=refresh_token&client_assertion_type=urn:ietf:params:oauth:client-assertion-type:jwt-bearer&client_assertion=eyJhbGciOiJFUzI1NiJ9.e30.x",
		"client_id=https://127.0.0.1/c.json&grant_type=refresh_token", "grant_type=%ff&&&", "client_secret=x&grant_type=authorization_code", "resource=javascript:alert(1)&grant_type=authorization_code"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, body string) {
		if !strings.Contains(body, "client_id=") {
			body += "&client_id=" + url.QueryEscape(e.client)
		}
		resp, err := http.Post(e.ts.URL+"/token", "application/x-www-form-urlencoded", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var m map[string]any
		raw, _ := io.ReadAll(resp.Body)
		if resp.StatusCode >= 500 || resp.StatusCode == 200 || json.Unmarshal(raw, &m) != nil || m["error"] == nil {
			t.Fatalf("%q: %d %s", body, resp.StatusCode, raw)
		}
	})
}

// Bad input at /authorize: never a 5xx; a redirect goes only to the client's registered
// redirect URI (an error there) or to Entra after our consent, never elsewhere.
func FuzzProxyAuthorize(f *testing.F) {
	e := startProxy(f)
	good := url.Values{"client_id": {e.client}, "redirect_uri": {proxytest.RedirectURI}, "response_type": {"code"}, "state": {"st"},
		"code_challenge": {proxytest.Challenge(strings.Repeat("v", 60))}, "code_challenge_method": {"S256"}}
	for _, s := range []string{good.Encode(), good.Encode() + "&prompt=none", good.Encode() + "&redirect_uri=https://evil.example/cb",
		"client_id=mcp_x&redirect_uri=http://127.0.0.1:9/cb", good.Encode() + "&resource=https://evil.example/mcp", "%zz", good.Encode() + "&login_hint=%00"} {
		f.Add(s)
	}
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	f.Fuzz(func(t *testing.T, query string) {
		resp, err := noFollow.Get(e.ts.URL + "/authorize?" + query)
		if err != nil {
			return // not a URL the client library will send
		}
		resp.Body.Close()
		if resp.StatusCode >= 500 {
			t.Fatalf("%q: %d", query, resp.StatusCode)
		}
		if loc := resp.Header.Get("Location"); loc != "" && !strings.HasPrefix(loc, proxytest.RedirectURI+"?") {
			t.Fatalf("%q redirected to %s", query, loc)
		}
	})
}
