package oauthproxy_test

import (
	"context"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"sync"
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

// BenchmarkProxyFlow is the whole life of a new MCP client, from registration to the first
// MCP call: DCR, /authorize and the consent page, the emulator's sign-in (Entra in the loop:
// its authorize and token endpoints), the callback and the code exchange, then one MCP call
// with the new token. Parallel clients; flows/s is the throughput. Stores: memory, bbolt (the
// embedded default) and Redis (three replicas, each request to the next).
func BenchmarkProxyFlow(b *testing.B) {
	for _, name := range []string{"memory", "bbolt", "redis-3-replicas"} {
		b.Run(name, func(b *testing.B) {
			var e *proxyEnv
			switch name {
			case "memory":
				e = startProxy(b)
			case "bbolt":
				path := filepath.Join(b.TempDir(), "entramcp.db")
				e = startReplicas(b, 1, func() store.Store {
					st, err := store.OpenBolt(path)
					if err != nil {
						b.Fatal(err)
					}
					b.Cleanup(func() { st.Close() })
					return st
				})
			default:
				redis := redistest.Start(b)
				e = startReplicas(b, 3, redisStores(b, redis.URL))
			}
			for _, p := range e.replicas {
				p.Registry.PerMinute = 1 << 30 // every iteration registers from 127.0.0.1
			}
			browser := e.em.HTTPClient()
			verifier := strings.Repeat("v", 60)
			b.SetParallelism(2) // 2 x GOMAXPROCS clients: the emulator and the proxy share the CPUs
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					client := proxytest.Register(b, e.ts.URL, "Bench client")
					q := proxytest.SignIn(b, browser, e.ts.URL, client, verifier, "alice")
					_, tok := proxytest.Token(b, e.ts.URL, client, url.Values{"grant_type": {"authorization_code"}, "code": {q.Get("code")},
						"redirect_uri": {proxytest.RedirectURI}, "code_verifier": {verifier}})
					at, _ := tok["access_token"].(string)
					if status, _ := e.call(b, at); status != 200 {
						b.Errorf("MCP call: %d", status)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "flows/s")
		})
	}
}

// BenchmarkProxyRefreshLatency is refresh-token rotation under load: each parallel client
// signed in once and refreshes in a loop (memory and Redis; the Entra token is fresh, so no
// upstream call). It reports the p50 and p99 of one /token request.
func BenchmarkProxyRefreshLatency(b *testing.B) {
	for _, name := range []string{"memory", "redis"} {
		b.Run(name, func(b *testing.B) {
			e := startProxy(b)
			if name == "redis" {
				redis := redistest.Start(b)
				e = startReplicas(b, 1, redisStores(b, redis.URL))
			}
			var mu sync.Mutex
			var all []time.Duration
			b.SetParallelism(4)
			b.RunParallel(func(pb *testing.PB) {
				verifier := strings.Repeat("v", 60)
				q := proxytest.SignIn(b, e.em.HTTPClient(), e.ts.URL, e.client, verifier, "alice")
				_, tok := proxytest.Token(b, e.ts.URL, e.client, url.Values{"grant_type": {"authorization_code"}, "code": {q.Get("code")}, "redirect_uri": {proxytest.RedirectURI}, "code_verifier": {verifier}})
				rt, _ := tok["refresh_token"].(string)
				var local []time.Duration
				for pb.Next() {
					start := time.Now()
					status, next := proxytest.Token(b, e.ts.URL, e.client, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}})
					local = append(local, time.Since(start))
					if status != 200 {
						b.Errorf("refresh: %d %v", status, next)
						return
					}
					rt = next["refresh_token"].(string)
				}
				mu.Lock()
				all = append(all, local...)
				mu.Unlock()
			})
			slices.Sort(all)
			if len(all) > 0 {
				b.ReportMetric(float64(all[len(all)/2].Microseconds())/1000, "p50-ms")
				b.ReportMetric(float64(all[(len(all)-1)*99/100].Microseconds())/1000, "p99-ms")
				b.ReportMetric(float64(len(all))/b.Elapsed().Seconds(), "refreshes/s")
			}
		})
	}
}
