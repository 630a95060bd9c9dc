package mcpauth_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/entramcp/entramcp/emulator"
	"github.com/entramcp/entramcp/entra"
	"github.com/entramcp/entramcp/mcpauth"
)

// BenchmarkRequire is the whole per-request cost entramcp's auth layer adds in front of an MCP
// handler, for a token seen before: header parsing, the verified-token cache, the identity in
// the context and the hand-over to the go-sdk's TokenInfo.
func BenchmarkRequire(b *testing.B) {
	em, err := emulator.Start(emulator.Options{StateDir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	defer em.Close()
	v, _ := entra.NewVerifier(entra.VerifierOptions{TenantID: em.TenantID(), ClientID: emulator.DefaultServerAppID, RequiredScopes: []string{"mcp-access"},
		AuthorityHost: strings.TrimPrefix(em.URL(), "https://"), HTTPClient: em.HTTPClient()})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := v.Start(ctx); err != nil {
		b.Fatal(err)
	}
	a, _ := mcpauth.New(mcpauth.Options{Verifier: v, ResourceURL: "http://127.0.0.1:1/mcp", AuthorizationServers: []string{v.Authority()}})
	var seen int
	h := a.Require(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if entra.IdentityFromContext(r.Context()) != nil {
			seen++
		}
	}))
	authz := "Bearer " + exampleToken(em)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		req := httptest.NewRequest(http.MethodPost, "/mcp", nil)
		req.Header.Set("Authorization", authz)
		h.ServeHTTP(httptest.NewRecorder(), req)
	}
	b.StopTimer()
	if seen != b.N {
		b.Fatalf("%d of %d requests passed", seen, b.N)
	}
}

// BenchmarkRequestBaseline is the same request construction without the auth layer, to subtract.
func BenchmarkRequestBaseline(b *testing.B) {
	h := http.HandlerFunc(func(http.ResponseWriter, *http.Request) {})
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		req := httptest.NewRequest(http.MethodPost, "/mcp", nil)
		req.Header.Set("Authorization", "Bearer x")
		h.ServeHTTP(httptest.NewRecorder(), req)
	}
}
