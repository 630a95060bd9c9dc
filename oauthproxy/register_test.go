package oauthproxy

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/entramcp/entramcp/store"
)

func TestRedirectPolicy(t *testing.T) {
	p := RedirectPolicy{Hosts: DefaultRedirectHosts, URLs: []string{"https://mcp-client.contoso.example/cb"}}
	good := []string{"http://127.0.0.1:33418/callback", "http://localhost/cb", "http://[::1]:9000/", "https://vscode.dev/redirect",
		"https://claude.ai/api/mcp/auth_callback", "https://chatgpt.com/connector_platform_oauth_redirect",
		"https://mcp-client.contoso.example/cb", "com.example.app:/oauth2redirect"}
	bad := []string{"", "javascript:alert(1)", "data:text/html,x", "file:///etc/passwd", "http://evil.example/cb", "https://evil.example/cb",
		"https://claude.ai.evil.example/cb", "https://user@claude.ai/cb", "https://claude.ai@evil.example/cb", "http://127.0.0.1/cb#frag",
		"https://claude.ai/../cb", "https://claude.ai/a/%2e%2e/cb", "https://claude.ai/a/./cb", "https://claude.ai\\@evil.example",
		"https://claude.ai:8443/cb", "/relative/cb", "myapp:/cb", "https://mcp-client.contoso.example/cb/", "http://127.0.0.1/c b",
		"vbscript:x", "https://" + strings.Repeat("a", 2100) + ".example"}
	for _, u := range good {
		if err := p.Check(u); err != nil {
			t.Errorf("%s refused: %v", u, err)
		}
	}
	for _, u := range bad {
		if err := p.Check(u); err == nil {
			t.Errorf("%q accepted", u)
		}
	}
	// At /authorize: exact match, loopback any port; no trailing slash, case or query tricks.
	reg := []string{"http://127.0.0.1/callback", "https://vscode.dev/redirect"}
	for u, want := range map[string]bool{
		"http://127.0.0.1:5555/callback": true, "https://vscode.dev/redirect": true, "https://vscode.dev/redirect/": false,
		"https://VSCODE.dev/redirect": false, "https://vscode.dev/redirect?x=1": false, "http://127.0.0.1:5555/callback/../x": false,
		"http://localhost:5555/callback": false, "https://vscode.dev:444/redirect": false,
	} {
		if got := MatchRedirect(reg, u); got != want {
			t.Errorf("MatchRedirect(%s) = %v", u, got)
		}
	}
}

func register(t *testing.T, r *Registry, body string, remote string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(http.MethodPost, "/register", strings.NewReader(body))
	req.RemoteAddr = remote
	rec := httptest.NewRecorder()
	r.ServeHTTP(rec, req)
	return rec
}

func TestDynamicClientRegistration(t *testing.T) {
	r := &Registry{Store: store.NewMemory(), Policy: RedirectPolicy{Hosts: DefaultRedirectHosts}, PerMinute: 5}
	rec := register(t, r, `{"client_name":"Inspector","redirect_uris":["http://127.0.0.1:6274/oauth/callback"],"token_endpoint_auth_method":"none","grant_types":["authorization_code","refresh_token"]}`, "10.0.0.1:1")
	if rec.Code != 201 {
		t.Fatalf("register: %d %s", rec.Code, rec.Body)
	}
	var out map[string]any
	json.Unmarshal(rec.Body.Bytes(), &out)
	id, _ := out["client_id"].(string)
	if !strings.HasPrefix(id, "mcp_") || out["token_endpoint_auth_method"] != "none" || rec.Header().Get("Cache-Control") != "no-store" {
		t.Fatalf("response: %v", out)
	}
	c, err := r.Lookup(context.Background(), id)
	if err != nil || c.ClientName != "Inspector" || c.RedirectURIs[0] != "http://127.0.0.1:6274/oauth/callback" {
		t.Fatalf("lookup: %v %+v", err, c)
	}
	if _, err := r.Lookup(context.Background(), "mcp_unknown"); !errors.Is(err, ErrUnknownClient) {
		t.Fatalf("unknown client: %v", err)
	}
	for name, body := range map[string]string{
		"no redirects":        `{"redirect_uris":[]}`,
		"evil redirect":       `{"redirect_uris":["https://evil.example/cb"]}`,
		"confidential client": `{"redirect_uris":["http://127.0.0.1/cb"],"token_endpoint_auth_method":"client_secret_post"}`,
		"implicit grant":      `{"redirect_uris":["http://127.0.0.1/cb"],"grant_types":["implicit"]}`,
		"not JSON":            `redirect_uris=x`,
	} {
		if rec := register(t, r, body, "10.0.0.2:1"); rec.Code != 400 || !strings.Contains(rec.Body.String(), "invalid_") {
			t.Errorf("%s: %d %s", name, rec.Code, rec.Body)
		}
	}
	big := `{"client_name":"` + strings.Repeat("x", 20000) + `","redirect_uris":["http://127.0.0.1/cb"]}`
	if rec := register(t, r, big, "10.0.0.3:1"); rec.Code != 413 {
		t.Errorf("oversized body: %d", rec.Code)
	}
	// A flood from one address is cut off; others are unaffected.
	codes := []int{}
	for i := 0; i < 7; i++ {
		codes = append(codes, register(t, r, `{"redirect_uris":["http://127.0.0.1/cb"]}`, "10.0.0.9:1").Code)
	}
	if codes[4] != 201 || codes[5] != 429 || codes[6] != 429 {
		t.Fatalf("rate limit: %v", codes)
	}
	if rec := register(t, r, `{"redirect_uris":["http://127.0.0.1/cb"]}`, "10.0.0.10:1"); rec.Code != 201 {
		t.Fatalf("another address: %d", rec.Code)
	}
	// Unused registrations expire.
	short := &Registry{Store: store.NewMemory(), Policy: r.Policy, TTL: 50 * time.Millisecond}
	rec = register(t, short, `{"redirect_uris":["http://127.0.0.1/cb"]}`, "10.0.0.1:1")
	json.Unmarshal(rec.Body.Bytes(), &out)
	time.Sleep(80 * time.Millisecond) // waiting for the TTL to pass is what is tested
	if _, err := short.Lookup(context.Background(), out["client_id"].(string)); !errors.Is(err, ErrUnknownClient) {
		t.Fatalf("expired registration: %v", err)
	}
}

func TestMetadataDocument(t *testing.T) {
	m := Metadata{Issuer: "https://mcp.contoso.example", Scopes: []string{"api://x/mcp-access"}}
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/.well-known/oauth-authorization-server", nil))
	var doc map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	if doc["registration_endpoint"] != "https://mcp.contoso.example/register" || doc["client_id_metadata_document_supported"] != false ||
		!bytes.Contains(rec.Body.Bytes(), []byte(`"code_challenge_methods_supported":["S256"]`)) || doc["authorization_response_iss_parameter_supported"] != true {
		t.Fatalf("metadata: %s", rec.Body)
	}
}

// Touch extends a registration, but writes at most once a day: token requests call it on
// every refresh.
func TestTouchWritesAtMostDaily(t *testing.T) {
	ctx := context.Background()
	r := &Registry{Store: store.NewMemory(), TTL: time.Hour}
	c := &Client{ClientID: "mcp_touch", RedirectURIs: []string{"http://127.0.0.1/cb"}, IssuedAt: time.Now()}
	if err := r.Touch(ctx, c); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Lookup(ctx, c.ClientID); err != nil {
		t.Fatalf("first Touch must write: %v", err)
	}
	r.Store.Delete(ctx, clientKind, c.ClientID)
	got, _ := r.Lookup(ctx, c.ClientID)
	if err := r.Touch(ctx, c); err != nil || got != nil {
		t.Fatal(err)
	}
	if _, err := r.Lookup(ctx, c.ClientID); !errors.Is(err, ErrUnknownClient) {
		t.Fatalf("a second Touch within a day wrote again: %v", err)
	}
	c.TouchedAt = time.Now().Add(-25 * time.Hour)
	r.Touch(ctx, c)
	if _, err := r.Lookup(ctx, c.ClientID); err != nil {
		t.Fatalf("Touch after a day must write: %v", err)
	}
}

// An issuer with a path publishes its metadata where RFC 8414 and OIDC clients look for it.
func TestMetadataForAnIssuerWithAPath(t *testing.T) {
	ks, err := LoadKeys(context.Background(), store.NewMemory(), "", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	p := &Proxy{Issuer: "https://gw.contoso.example/hr-mcp", Registry: &Registry{}, Tokens: &Tokens{Keys: ks}}
	mux := http.NewServeMux()
	p.Mount(mux)
	for _, path := range []string{"/.well-known/oauth-authorization-server/hr-mcp", "/.well-known/openid-configuration/hr-mcp",
		"/hr-mcp/.well-known/openid-configuration", "/.well-known/oauth-authorization-server"} {
		rec := httptest.NewRecorder()
		mux.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
		var doc map[string]any
		if rec.Code != 200 || json.Unmarshal(rec.Body.Bytes(), &doc) != nil || doc["issuer"] != p.Issuer || doc["token_endpoint"] != p.Issuer+"/token" {
			t.Errorf("GET %s: %d %s", path, rec.Code, rec.Body)
		}
	}
}

// The address a request counts against: the peer, or behind trusted proxies the first
// untrusted hop of X-Forwarded-For from the right. Nobody else's header is believed.
func TestClientAddress(t *testing.T) {
	ingress := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}
	for _, c := range []struct {
		peer, xff string
		trusted   []netip.Prefix
		want      string
	}{
		{"203.0.113.7:5000", "", nil, "203.0.113.7"},
		{"203.0.113.7:5000", "198.51.100.1", nil, "203.0.113.7"},     // header ignored: no trusted proxies
		{"203.0.113.7:5000", "198.51.100.1", ingress, "203.0.113.7"}, // header ignored: the peer is not the ingress
		{"10.1.2.3:5000", "198.51.100.1", ingress, "198.51.100.1"},
		{"10.1.2.3:5000", "1.2.3.4, 198.51.100.1, 10.9.9.9", ingress, "198.51.100.1"}, // the client's own claim (1.2.3.4) is skipped
		{"10.1.2.3:5000", "garbage, 198.51.100.1", ingress, "198.51.100.1"},
		{"10.1.2.3:5000", "198.51.100.1, garbage", ingress, "10.1.2.3"},
		{"10.1.2.3:5000", "10.4.4.4", ingress, "10.4.4.4"}, // every hop trusted: the leftmost
		{"[::ffff:10.1.2.3]:5000", "::ffff:198.51.100.1", ingress, "198.51.100.1"},
	} {
		req := httptest.NewRequest(http.MethodGet, "/", nil)
		req.RemoteAddr = c.peer
		if c.xff != "" {
			req.Header.Set("X-Forwarded-For", c.xff)
		}
		if got := ClientAddress(req, c.trusted); got != c.want {
			t.Errorf("peer %s, X-Forwarded-For %q: %s, want %s", c.peer, c.xff, got, c.want)
		}
	}
	// Behind a trusted ingress, two users do not share one registration budget.
	r := &Registry{Store: store.NewMemory(), PerMinute: 1, TrustedProxies: ingress}
	body := `{"client_name":"x","redirect_uris":["http://127.0.0.1/cb"]}`
	for i, xff := range []string{"198.51.100.1", "198.51.100.2", "198.51.100.1"} {
		req := httptest.NewRequest(http.MethodPost, "/register", strings.NewReader(body))
		req.RemoteAddr, req.Header["X-Forwarded-For"] = "10.0.0.1:1234", []string{xff}
		rec := httptest.NewRecorder()
		r.ServeHTTP(rec, req)
		if want := map[int]int{0: 201, 1: 201, 2: 429}[i]; rec.Code != want {
			t.Errorf("registration %d from %s behind the ingress: %d, want %d", i, xff, rec.Code, want)
		}
	}
}
