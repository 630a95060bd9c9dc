package server_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/entramcp/entramcp/emulator"
	"github.com/entramcp/entramcp/internal/proxytest"
	"github.com/entramcp/entramcp/internal/server"
	"github.com/entramcp/entramcp/internal/testenv"
	"github.com/entramcp/entramcp/mcpauth"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

func getJSON(t *testing.T, url string) map[string]any {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var m map[string]any
	if resp.StatusCode != 200 || json.NewDecoder(resp.Body).Decode(&m) != nil {
		t.Fatalf("GET %s: %d", url, resp.StatusCode)
	}
	return m
}

// In proxy mode a client that only knows MCP discovers our authorization server, registers,
// signs the user in through Entra and calls Graph tools as that user: the proxy token resolves
// to the stored Entra token for On-Behalf-Of. Pre-authorized clients' Entra tokens still work.
func TestProxyModeEndToEnd(t *testing.T) {
	env := testenv.Start(t, testenv.Options{Server: func(c *server.Config) { c.Mode, c.AccessTokenLifetime = "proxy", 20*time.Minute }})
	base := strings.TrimSuffix(env.MCPURL, "/mcp")
	prm := getJSON(t, base+"/.well-known/oauth-protected-resource/mcp")
	if as, _ := prm["authorization_servers"].([]any); len(as) != 1 || as[0] != base {
		t.Fatalf("protected resource metadata must name the proxy: %v", prm["authorization_servers"])
	}
	asm := getJSON(t, base+"/.well-known/oauth-authorization-server")
	if asm["issuer"] != base || asm["registration_endpoint"] != base+"/register" || asm["client_id_metadata_document_supported"] != true {
		t.Fatalf("authorization server metadata: %v", asm)
	}

	// Hosted clients' callbacks are allowed out of the box; other https hosts are not.
	for redirect, want := range map[string]int{"https://claude.ai/api/mcp/auth_callback": 201, "https://evil.example/cb": 400} {
		resp, err := http.Post(base+"/register", "application/json", strings.NewReader(`{"client_name":"x","redirect_uris":["`+redirect+`"]}`))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("register %s: %d, want %d", redirect, resp.StatusCode, want)
		}
	}

	token := proxytest.AccessToken(t, env.Emulator.HTTPClient(), base, "alice")
	if c := testenv.Claims(t, token); c["iss"] != base || c["aud"] != env.MCPURL || c["exp"].(float64)-c["iat"].(float64) != 1200 {
		t.Fatalf("proxy token claims (lifetime set to 20 minutes): %v", c)
	}
	alice := connect(t, env, token)
	_, text, out := call(t, alice, "whoami", nil)
	if p, _ := out["profile"].(map[string]any); p["job_title"] != "Platform Administrator" || out["object_id"] != env.Emulator.Info().Users[0].OID {
		t.Fatalf("whoami through the proxy (Graph via On-Behalf-Of): %v\n%s", out, text)
	}
	if res, _, out := call(t, alice, "check_group_membership", map[string]any{"group_id": env.Emulator.Info().AdminGroupID}); res.IsError || out["member"] != true {
		t.Fatalf("group check through the proxy: %v", out)
	}
	log := env.AuditLog()
	if strings.Contains(log, token[len(token)-20:]) {
		t.Fatal("the audit log holds the proxy token")
	}
	aliceOID := `"oid":"` + env.Emulator.Info().Users[0].OID + `"`
	for _, want := range []string{`"event":"proxy.signin.completed"`, `"event":"proxy.token.issued"`, `"reason":"authorization_code"`, aliceOID} {
		if !strings.Contains(log, want) {
			t.Errorf("audit log lacks %s:\n%s", want, log)
		}
	}

	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{`entramcp_proxy_events_total{event="signin.completed"} 1`, `entramcp_proxy_events_total{event="token.issued"} 1`} {
		if !strings.Contains(string(metrics), want) {
			t.Errorf("/metrics lacks %s:\n%s", want, metrics)
		}
	}

	// VS Code and other pre-authorized clients keep using Entra tokens directly.
	direct := connect(t, env, env.UserToken(t, "bob"))
	if _, _, out := call(t, direct, "whoami", nil); out["object_id"] != env.Emulator.Info().Users[1].OID {
		t.Fatalf("Entra token in proxy mode: %v", out)
	}
}

func TestProxyModeConfiguration(t *testing.T) {
	em := testenv.Start(t, testenv.Options{}).Emulator
	info := em.Info()
	_, err := server.New(server.Config{Mode: "proxy", BaseURL: "http://127.0.0.1:1", TenantID: info.TenantID, ClientID: info.Apps.Server.ClientID,
		AuthorityHost: strings.TrimPrefix(info.EmulatorURL, "https://"), CAFile: info.CAFile}, nil, nil)
	var ce *server.ConfigError
	if !errors.As(err, &ce) || ce.Setting != "ENTRAMCP_MODE" || !strings.Contains(ce.Msg, "confidential client") {
		t.Fatalf("proxy mode without a credential: %v", err)
	}
	for _, bad := range []string{"http://client.example/cb", "client.example/cb", "https://client.example/cb#frag", "user@client.example"} {
		_, err = server.New(server.Config{Mode: "proxy", BaseURL: "http://127.0.0.1:1", TenantID: info.TenantID, ClientID: info.Apps.Server.ClientID,
			AuthorityHost: strings.TrimPrefix(info.EmulatorURL, "https://"), CAFile: info.CAFile, ClientSecret: info.Apps.Server.ClientSecret,
			AllowedRedirects: []string{bad}}, nil, nil)
		if !errors.As(err, &ce) || ce.Setting != "ENTRAMCP_ALLOWED_REDIRECTS" {
			t.Errorf("ENTRAMCP_ALLOWED_REDIRECTS=%s: %v", bad, err)
		}
	}
	_, err = server.New(server.Config{Mode: "proxy", BaseURL: "http://127.0.0.1:1", TenantID: info.TenantID, ClientID: info.Apps.Server.ClientID,
		AuthorityHost: strings.TrimPrefix(info.EmulatorURL, "https://"), CAFile: info.CAFile, ClientSecret: info.Apps.Server.ClientSecret,
		TrustedProxies: []string{"10.0.0.0/8", "ingress.internal"}}, nil, nil)
	if !errors.As(err, &ce) || ce.Setting != "ENTRAMCP_TRUSTED_PROXIES" || !strings.Contains(ce.Msg, "ingress.internal") {
		t.Errorf("ENTRAMCP_TRUSTED_PROXIES with a host name: %v", err)
	}
	_, err = server.New(server.Config{Mode: "gateway", BaseURL: "http://127.0.0.1:1", TenantID: info.TenantID, ClientID: info.Apps.Server.ClientID}, nil, nil)
	if !errors.As(err, &ce) || ce.Setting != "ENTRAMCP_MODE" {
		t.Fatalf("unknown mode: %v", err)
	}
}

// Step-up through the proxy, as an MCP client does it: a tool needs mcp-admin, the call gets
// 403 insufficient_scope naming the scopes, the client signs in again asking for exactly
// those, and the proxy's new token carries mcp-admin (the proxy asked Entra for it because the
// server's policy lists it), so the call works.
func TestProxyModeStepUp(t *testing.T) {
	env := testenv.Start(t, testenv.Options{
		Config: func(c *emulator.Config) {
			c.Applications[0].API.OAuth2PermissionScopes = append(c.Applications[0].API.OAuth2PermissionScopes,
				emulator.PermissionScope{ID: "9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d", Value: "mcp-admin", Type: "User", IsEnabled: true})
		},
		Server: func(c *server.Config) { c.Mode = "proxy" },
		Before: func(s *server.Server) {
			s.MCPServer().AddTool(&mcp.Tool{Name: "elevated_tool", InputSchema: json.RawMessage(`{"type":"object"}`)}, func(context.Context, *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
				return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "done"}}}, nil
			})
			s.Policy().Require("elevated_tool", mcpauth.Requirement{Scopes: []string{"mcp-admin"}})
		},
	})
	base := strings.TrimSuffix(env.MCPURL, "/mcp")
	call := `{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"elevated_tool","arguments":{}}}`
	resp, _ := env.PostMCP(t, call, map[string]string{"Authorization": "Bearer " + proxytest.AccessToken(t, env.Emulator.HTTPClient(), base, "alice")})
	m := regexp.MustCompile(`scope="([^"]+)"`).FindStringSubmatch(resp.Header.Get("WWW-Authenticate"))
	if resp.StatusCode != 403 || m == nil || !strings.Contains(m[1], "/mcp-admin") {
		t.Fatalf("without mcp-admin: %d %q", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
	}
	client := proxytest.Register(t, base, "Step-up client")
	verifier := strings.Repeat("s", 60)
	q := proxytest.SignInWith(t, env.Emulator.HTTPClient(), base, client, verifier, "alice", url.Values{"scope": {m[1]}})
	status, tok := proxytest.Token(t, base, client, url.Values{"grant_type": {"authorization_code"}, "code": {q.Get("code")}, "redirect_uri": {proxytest.RedirectURI}, "code_verifier": {verifier}})
	if status != 200 {
		t.Fatalf("step-up sign-in: %d %v", status, tok)
	}
	elevated := connect(t, env, tok["access_token"].(string))
	if res, err := elevated.CallTool(context.Background(), &mcp.CallToolParams{Name: "elevated_tool"}); err != nil || res.IsError {
		t.Fatalf("after step-up through the proxy: %v %+v", err, res)
	}
}
