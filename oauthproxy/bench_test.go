package oauthproxy_test

import (
	"context"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/entramcp/entramcp/internal/proxytest"
	"github.com/entramcp/entramcp/internal/redistest"
	"github.com/entramcp/entramcp/oauthproxy"
	"github.com/entramcp/entramcp/store"
)

// BenchmarkProxyTokenVerify is the per-request cost of a proxy access token on the MCP
// endpoint: ES256 signature and claims, then the lookup of the Entra token in the sealed store.
func BenchmarkProxyTokenVerify(b *testing.B) {
	ctx := context.Background()
	kr, _ := store.NewRandomKeyring()
	st := store.Encrypted(store.NewMemory(), kr)
	keys, err := oauthproxy.LoadKeys(ctx, st, "", time.Hour)
	if err != nil {
		b.Fatal(err)
	}
	tk := &oauthproxy.Tokens{Keys: keys, Issuer: "https://mcp.contoso.example", Resource: "https://mcp.contoso.example/mcp",
		Upstream: func(context.Context, string) (string, error) { return "entra-token", nil }}
	tok, _, _, err := tk.Issue(oauthproxy.Grant{TenantID: "6d3f2a10-4b8c-4e7a-9f21-0c5e8b7a9d34", ObjectID: "b7e1c9a4-5d2f-4e8b-9a3c-6f1d8e2b4a71", Scopes: []string{"mcp-access"}})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := tk.Verify(ctx, tok); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkProxyRefresh is one refresh-token rotation through the HTTP token endpoint (memory
// store; the Entra token is fresh, so no upstream call): what a client pays each hour.
func BenchmarkProxyRefresh(b *testing.B) {
	e := startProxy(b)
	verifier := strings.Repeat("v", 60)
	q := proxytest.SignIn(b, e.em.HTTPClient(), e.ts.URL, e.client, verifier, "alice")
	_, tok := proxytest.Token(b, e.ts.URL, e.client, url.Values{"grant_type": {"authorization_code"}, "code": {q.Get("code")}, "redirect_uri": {proxytest.RedirectURI}, "code_verifier": {verifier}})
	rt, _ := tok["refresh_token"].(string)
	b.ReportAllocs()
	for b.Loop() {
		status, next := proxytest.Token(b, e.ts.URL, e.client, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}})
		if status != 200 {
			b.Fatalf("refresh: %d %v", status, next)
		}
		rt = next["refresh_token"].(string)
	}
}

// BenchmarkProxyFlow is one complete user sign-in of a registered client (registration is
// once per client, and rate-limited per address): /authorize and the consent page, the emulator's sign-in (Entra in the loop: its authorize and token endpoints),
// the callback and the code exchange, then one MCP call with the new token. Memory and Redis
// (three replicas, each request to the next) stores.
func BenchmarkProxyFlow(b *testing.B) {
	for _, name := range []string{"memory", "redis-3-replicas"} {
		b.Run(name, func(b *testing.B) {
			var e *proxyEnv
			if name == "memory" {
				e = startProxy(b)
			} else {
				redis := redistest.Start(b)
				e = startReplicas(b, 3, redisStores(b, redis.URL))
			}
			browser := e.em.HTTPClient()
			verifier := strings.Repeat("v", 60)
			for b.Loop() {
				q := proxytest.SignIn(b, browser, e.ts.URL, e.client, verifier, "alice")
				_, tok := proxytest.Token(b, e.ts.URL, e.client, url.Values{"grant_type": {"authorization_code"}, "code": {q.Get("code")},
					"redirect_uri": {proxytest.RedirectURI}, "code_verifier": {verifier}})
				at, _ := tok["access_token"].(string)
				if status, _ := e.call(b, at); status != 200 {
					b.Fatalf("MCP call: %d", status)
				}
			}
		})
	}
}
