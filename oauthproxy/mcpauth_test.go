package oauthproxy_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/entramcp/entramcp/emulator"
	"github.com/entramcp/entramcp/entra"
	"github.com/entramcp/entramcp/internal/emutest"
	"github.com/entramcp/entramcp/mcpauth"
	"github.com/entramcp/entramcp/oauthproxy"
	"github.com/entramcp/entramcp/store"
)

// One server accepts the proxy's ES256 tokens and direct Entra tokens side by side.
func TestProxyAndEntraTokensTogether(t *testing.T) {
	em := emutest.Start(t, nil)
	v, err := entra.NewVerifier(entra.VerifierOptions{TenantID: em.TenantID(), ClientID: emulator.DefaultServerAppID, RequiredScopes: []string{"mcp-access"},
		AuthorityHost: strings.TrimPrefix(em.URL(), "https://"), HTTPClient: em.HTTPClient()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	v.Start(ctx)
	keys, err := oauthproxy.LoadKeys(ctx, store.NewMemory(), "", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	tokens := &oauthproxy.Tokens{Keys: keys, Issuer: "http://127.0.0.1", Resource: "http://127.0.0.1/mcp"}
	a, err := mcpauth.New(mcpauth.Options{Verifier: mcpauth.ByAlgorithm{"RS256": v, "ES256": tokens}, ResourceURL: "http://127.0.0.1/mcp", AuthorizationServers: []string{"http://127.0.0.1"}})
	if err != nil {
		t.Fatal(err)
	}
	var who []string
	h := a.Require(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		who = append(who, entra.IdentityFromContext(r.Context()).ObjectID)
	}))
	proxyTok, _, _, _ := tokens.Issue(oauthproxy.Grant{TenantID: em.TenantID(), ObjectID: em.Info().Users[1].OID, Scopes: []string{"mcp-access"}})
	for _, tok := range []string{emutest.UserToken(t, em, "alice"), proxyTok} {
		req := httptest.NewRequest(http.MethodPost, "/mcp", nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != 200 {
			t.Fatalf("status %d: %s", rec.Code, rec.Body)
		}
	}
	if len(who) != 2 || who[0] != em.Info().Users[0].OID || who[1] != em.Info().Users[1].OID {
		t.Fatalf("identities: %v", who)
	}
	// An HS256 token goes to neither verifier.
	req := httptest.NewRequest(http.MethodPost, "/mcp", nil)
	req.Header.Set("Authorization", "Bearer eyJhbGciOiJIUzI1NiJ9.e30.x")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != 401 {
		t.Fatalf("HS256 token: %d", rec.Code)
	}
}
