package server_test

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/entramcp/entramcp/emulator"
	"github.com/entramcp/entramcp/internal/server"
	"github.com/entramcp/entramcp/internal/testenv"
)

func get(t *testing.T, u string, headers ...string) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, u, nil)
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func base(env *testenv.Env) string { return strings.TrimSuffix(env.MCPURL, "/mcp") }

func TestProtectedResourceMetadata(t *testing.T) {
	env := testenv.Start(t, testenv.Options{})
	info := env.Emulator.Info()
	for _, path := range []string{"/.well-known/oauth-protected-resource/mcp", "/.well-known/oauth-protected-resource"} {
		resp, body := get(t, base(env)+path)
		var md map[string]any
		if resp.StatusCode != 200 || json.Unmarshal([]byte(body), &md) != nil {
			t.Fatalf("%s: %d %s", path, resp.StatusCode, body)
		}
		as, _ := md["authorization_servers"].([]any)
		sc, _ := md["scopes_supported"].([]any)
		bm, _ := md["bearer_methods_supported"].([]any)
		if md["resource"] != env.MCPURL || len(as) != 1 || as[0] != info.Authority+"/v2.0" || len(sc) != 1 || sc[0] != info.Apps.Server.IdentifierURI+"/mcp-access" ||
			len(bm) != 1 || bm[0] != "header" || md["resource_name"] == "" {
			t.Fatalf("%s: %v", path, md)
		}
		if resp.Header.Get("Access-Control-Allow-Origin") != "*" {
			t.Errorf("%s: no CORS header", path)
		}
	}
}

func TestHostOriginAndBodyChecks(t *testing.T) {
	env := testenv.Start(t, testenv.Options{})
	tok := env.UserToken(t, "alice")
	auth := map[string]string{"Authorization": "Bearer " + tok}
	// DNS rebinding: a foreign Host is refused even with a valid token.
	req, _ := http.NewRequest(http.MethodPost, env.MCPURL, strings.NewReader(testenv.Initialize))
	req.Host = "evil.example:80"
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 403 {
		t.Errorf("foreign Host: %d, want 403", resp.StatusCode)
	}
	withOrigin := map[string]string{"Authorization": "Bearer " + tok, "Origin": "https://evil.example"}
	if resp, _ := env.PostMCP(t, testenv.Initialize, withOrigin); resp.StatusCode != 403 {
		t.Errorf("foreign Origin: %d, want 403", resp.StatusCode)
	}
	withOrigin["Origin"] = base(env)
	if resp, _ := env.PostMCP(t, testenv.Initialize, withOrigin); resp.StatusCode != 200 {
		t.Errorf("own Origin: %d, want 200", resp.StatusCode)
	}
	big := `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"x":"` + strings.Repeat("a", 2<<20) + `"}}`
	if resp, _ := env.PostMCP(t, big, auth); resp.StatusCode != 413 {
		t.Errorf("2 MiB body: %d, want 413", resp.StatusCode)
	}
}

func TestHealthReadinessAndMetrics(t *testing.T) {
	env := testenv.Start(t, testenv.Options{})
	if resp, _ := get(t, base(env)+"/healthz"); resp.StatusCode != 200 {
		t.Errorf("healthz: %d", resp.StatusCode)
	}
	if resp, _ := get(t, base(env)+"/readyz"); resp.StatusCode != 200 {
		t.Errorf("readyz: %d", resp.StatusCode)
	}
	env.PostMCP(t, testenv.Initialize, nil)
	env.PostMCP(t, testenv.Initialize, map[string]string{"Authorization": "Bearer x.y.z"})
	env.PostMCP(t, testenv.Initialize, map[string]string{"Authorization": "Bearer " + env.UserToken(t, "bob")})
	_, m := get(t, base(env)+"/metrics")
	for _, want := range []string{
		`entramcp_auth_failures_total{reason="no_token"} 1`,
		`entramcp_auth_failures_total{reason="malformed"} 1`,
		`entramcp_http_requests_total{code="401"} 2`,
		`entramcp_http_requests_total{code="200"} 1`,
		`entramcp_jwks_refreshes_total{result="ok"} 1`,
		`entramcp_request_duration_seconds_count 3`,
	} {
		if !strings.Contains(m, want) {
			t.Errorf("metrics lack %q:\n%s", want, m)
		}
	}
}

// Entra goes away after start: known tokens keep validating on the cached keys, and a token
// signed by a key the server has never seen fails cleanly (503, retry later) without admitting it.
func TestEntraUnreachableAfterStart(t *testing.T) {
	// Every unknown kid may trigger a refetch here; the one-minute bound is tested in entra.
	env := testenv.Start(t, testenv.Options{Server: func(c *server.Config) { c.MinKeyRefetch = time.Millisecond }})
	em := env.Emulator
	alice := env.UserToken(t, "alice")
	bob := env.UserToken(t, "bob") // never presented before the outage: not in the verified cache
	if err := em.RotateKeys(true); err != nil {
		t.Fatal(err)
	}
	rotated := env.UserToken(t, "alice") // signed by the new key, unknown to the server
	if err := em.SetOutage(emulator.Login, emulator.OutageRefuse, 0); err != nil {
		t.Fatal(err)
	}
	defer em.ClearOutage(emulator.Login)
	for name, tok := range map[string]string{"alice": alice, "bob": bob} {
		if resp, body := env.PostMCP(t, testenv.Initialize, map[string]string{"Authorization": "Bearer " + tok}); resp.StatusCode != 200 {
			t.Errorf("%s's token during the outage: %d %s", name, resp.StatusCode, body)
		}
	}
	resp, body := env.PostMCP(t, testenv.Initialize, map[string]string{"Authorization": "Bearer " + rotated})
	if resp.StatusCode != 503 || resp.Header.Get("Retry-After") == "" || !strings.Contains(body, "temporarily_unavailable") {
		t.Fatalf("token with a new kid during the outage: %d %s", resp.StatusCode, body)
	}
	// Entra comes back: after the refetch bound the new key is fetched and the token accepted.
	em.ClearOutage(emulator.Login)
	deadline := time.Now().Add(90 * time.Second)
	for {
		resp, _ = env.PostMCP(t, testenv.Initialize, map[string]string{"Authorization": "Bearer " + rotated})
		if resp.StatusCode == 200 || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if resp.StatusCode != 200 {
		t.Fatalf("after Entra returned: %d", resp.StatusCode)
	}
}

// A server started while Entra is down is not ready, refuses tokens with 503, and recovers.
func TestStartWithEntraDown(t *testing.T) {
	var em *emulator.Emulator
	env := testenv.Start(t, testenv.Options{Config: func(*emulator.Config) {}, BeforeServer: func(e *emulator.Emulator) {
		em = e
		e.SetOutage(emulator.Login, emulator.Outage503, 0)
	}})
	if resp, _ := get(t, base(env)+"/readyz"); resp.StatusCode != 503 {
		t.Fatalf("readyz with Entra down: %d", resp.StatusCode)
	}
	em.ClearOutage(emulator.Login)
	tok := env.UserToken(t, "alice")
	if resp, _ := env.PostMCP(t, testenv.Initialize, map[string]string{"Authorization": "Bearer " + tok}); resp.StatusCode != 503 && resp.StatusCode != 200 {
		t.Fatalf("token before keys load: %d, want 503 or (if already recovered) 200", resp.StatusCode)
	}
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if resp, _ := get(t, base(env)+"/readyz"); resp.StatusCode == 200 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if resp, _ := env.PostMCP(t, testenv.Initialize, map[string]string{"Authorization": "Bearer " + tok}); resp.StatusCode != 200 {
		t.Fatalf("after recovery: %d", resp.StatusCode)
	}
}
