package server_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"golang.org/x/oauth2"

	"github.com/entramcp/entramcp/emulator"
	"github.com/entramcp/entramcp/internal/server"
	"github.com/entramcp/entramcp/internal/testenv"
	"github.com/entramcp/entramcp/mcpauth"
)

// bearerTransport adds the token to every request, as an MCP client with a token does.
type bearerTransport struct {
	token string
	base  http.RoundTripper
}

func (b bearerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.token)
	return b.base.RoundTrip(r)
}

func connect(t *testing.T, env *testenv.Env, token string) *mcp.ClientSession {
	t.Helper()
	client := mcp.NewClient(&mcp.Implementation{Name: "go-sdk-test-client", Version: "1"}, nil)
	cs, err := client.Connect(context.Background(), &mcp.StreamableClientTransport{
		Endpoint: env.MCPURL, HTTPClient: &http.Client{Transport: bearerTransport{token, http.DefaultTransport}},
	}, nil)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(func() { cs.Close() })
	return cs
}

// authCodeToken signs alice in at the emulator with authorization code + PKCE through the
// sign-in page, as VS Code does as a pre-authorized client.
func authCodeToken(t *testing.T, em *emulator.Emulator, user string) string {
	t.Helper()
	info := em.Info()
	conf := &oauth2.Config{ClientID: emulator.VSCodeAppID, RedirectURL: "http://127.0.0.1:33418",
		Endpoint: oauth2.Endpoint{AuthURL: em.Authority() + "/oauth2/v2.0/authorize", TokenURL: em.Authority() + "/oauth2/v2.0/token", AuthStyle: oauth2.AuthStyleInParams},
		Scopes:   []string{info.Apps.Server.IdentifierURI + "/mcp-access", "openid", "profile", "offline_access"}}
	verifier := oauth2.GenerateVerifier()
	browser := em.HTTPClient()
	browser.Jar, _ = cookiejar.New(nil)
	browser.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := browser.Get(conf.AuthCodeURL("state-1", oauth2.S256ChallengeOption(verifier)))
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(page), `id="user-`+user+`"`) {
		t.Fatalf("no sign-in page: %.300s", page)
	}
	form := url.Values{"emu_user": {user}}
	for _, k := range []string{"client_id", "response_type", "redirect_uri", "scope", "state", "code_challenge", "code_challenge_method"} {
		form.Set(k, pageValue(string(page), k))
	}
	resp, err = browser.PostForm(em.Authority()+"/oauth2/v2.0/authorize", form)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc, _ := url.Parse(resp.Header.Get("Location"))
	if loc.Query().Get("state") != "state-1" || loc.Query().Get("code") == "" {
		t.Fatalf("redirect: %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	tok, err := conf.Exchange(context.WithValue(context.Background(), oauth2.HTTPClient, em.HTTPClient()), loc.Query().Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatalf("exchange: %v", err)
	}
	return tok.AccessToken
}

func pageValue(page, name string) string {
	marker := `name="` + name + `" value="`
	i := strings.Index(page, marker)
	if i < 0 {
		return ""
	}
	rest := page[i+len(marker):]
	v := rest[:strings.Index(rest, `"`)]
	return strings.NewReplacer("&amp;", "&", "&#43;", "+", "&#34;", `"`, "&lt;", "<", "&gt;", ">").Replace(v)
}

func TestGoSDKClientEndToEnd(t *testing.T) {
	for _, stateless := range []bool{false, true} {
		env := testenv.Start(t, testenv.Options{Server: func(c *server.Config) { c.Stateless = stateless }})
		token := authCodeToken(t, env.Emulator, "alice")
		if c := testenv.Claims(t, token); c["azp"] != emulator.VSCodeAppID {
			t.Fatalf("token not obtained through VS Code's client id: %v", c["azp"])
		}
		cs := connect(t, env, token)
		tools, err := cs.ListTools(context.Background(), nil)
		if err != nil || !slices.ContainsFunc(tools.Tools, func(tl *mcp.Tool) bool { return tl.Name == "whoami" }) {
			t.Fatalf("stateless=%v tools/list: %v %+v", stateless, err, tools)
		}
		res, err := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: "whoami"})
		if err != nil || res.IsError {
			t.Fatalf("whoami: %v %+v", err, res)
		}
		var out map[string]any
		b, _ := json.Marshal(res.StructuredContent)
		json.Unmarshal(b, &out)
		text := res.Content[0].(*mcp.TextContent).Text
		if out["object_id"] != "b7e1c9a4-5d2f-4e8b-9a3c-6f1d8e2b4a71" || out["preferred_username"] != "alice@contoso.onmicrosoft.com" || !strings.Contains(text, "Alice Example") {
			t.Fatalf("whoami: %v\n%s", out, text)
		}
		if strings.Contains(text, token) || strings.Contains(string(b), token) {
			t.Fatal("whoami returned the token")
		}
		log := env.AuditLog()
		if !strings.Contains(log, `"tool":"whoami"`) || !strings.Contains(log, `"oid":"b7e1c9a4-5d2f-4e8b-9a3c-6f1d8e2b4a71"`) || strings.Contains(log, token[len(token)-20:]) {
			t.Fatalf("audit log:\n%s", log)
		}
	}
}

// A session belongs to the user who created it: bob cannot use alice's session id.
func TestSessionBoundToUser(t *testing.T) {
	env := testenv.Start(t, testenv.Options{})
	alice, bob := env.UserToken(t, "alice"), env.UserToken(t, "bob")
	resp, _ := env.PostMCP(t, testenv.Initialize, map[string]string{"Authorization": "Bearer " + alice})
	sid := resp.Header.Get("Mcp-Session-Id")
	if resp.StatusCode != 200 || sid == "" {
		t.Fatalf("initialize: %d, session %q", resp.StatusCode, sid)
	}
	list := `{"jsonrpc":"2.0","id":2,"method":"tools/list","params":{}}`
	resp, _ = env.PostMCP(t, list, map[string]string{"Authorization": "Bearer " + bob, "Mcp-Session-Id": sid, "Mcp-Protocol-Version": "2025-06-18"})
	if resp.StatusCode == 200 {
		t.Fatal("bob used alice's session")
	}
	resp, body := env.PostMCP(t, list, map[string]string{"Authorization": "Bearer " + alice, "Mcp-Session-Id": sid, "Mcp-Protocol-Version": "2025-06-18"})
	if resp.StatusCode != 200 || !strings.Contains(body, "whoami") {
		t.Fatalf("alice's own session: %d %s", resp.StatusCode, body)
	}
}

// Tool guards: a role-restricted tool, a group-restricted tool and a scope (step-up) tool.
func TestToolGuards(t *testing.T) {
	env := testenv.Start(t, testenv.Options{
		Config: func(c *emulator.Config) {
			c.Applications[0].API.OAuth2PermissionScopes = append(c.Applications[0].API.OAuth2PermissionScopes,
				emulator.PermissionScope{ID: "9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d", Value: "mcp-admin", Type: "User", IsEnabled: true})
			c.Consents = append(c.Consents, emulator.ConsentConfig{Client: emulator.DefaultClientAppID, Resource: emulator.DefaultServerAppID, Scope: "mcp-admin"})
		},
		Before: func(s *server.Server) {
			for _, name := range []string{"admin_role_tool", "admin_group_tool", "elevated_tool"} {
				s.MCPServer().AddTool(&mcp.Tool{Name: name, InputSchema: json.RawMessage(`{"type":"object"}`)}, func(context.Context, *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
					return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "done"}}}, nil
				})
			}
			s.Policy().Require("admin_role_tool", mcpauth.Requirement{Roles: []string{"MCP.Admin"}})
			s.Policy().Require("admin_group_tool", mcpauth.Requirement{Groups: []string{emulator.DefaultAdminGroupID}})
			s.Policy().Require("elevated_tool", mcpauth.Requirement{Scopes: []string{"mcp-admin"}})
		},
	})
	names := func(cs *mcp.ClientSession) []string {
		res, err := cs.ListTools(context.Background(), nil)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, tl := range res.Tools {
			out = append(out, tl.Name)
		}
		return out
	}
	alice := connect(t, env, env.UserToken(t, "alice"))
	bob := connect(t, env, env.UserToken(t, "bob"))
	if got := strings.Join(names(alice), ","); got != "admin_group_tool,admin_role_tool,check_group_membership,elevated_tool,get_message,get_service_messages,list_my_groups,whoami" {
		t.Errorf("alice sees %s", got)
	}
	if got := strings.Join(names(bob), ","); got != "check_group_membership,elevated_tool,list_my_groups,whoami" {
		t.Errorf("bob sees %s", got)
	}
	for _, tool := range []string{"admin_role_tool", "admin_group_tool"} {
		if res, err := alice.CallTool(context.Background(), &mcp.CallToolParams{Name: tool}); err != nil || res.IsError {
			t.Errorf("alice calls %s: %v", tool, err)
		}
		_, err := bob.CallTool(context.Background(), &mcp.CallToolParams{Name: tool})
		if err == nil || !strings.Contains(err.Error(), "unknown tool") {
			t.Errorf("bob calls %s: %v, want the unknown-tool refusal", tool, err)
		}
	}
	// Step-up: without mcp-admin the call gets HTTP 403 insufficient_scope naming both scopes.
	token := env.UserToken(t, "alice")
	call := `{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"elevated_tool","arguments":{}}}`
	resp, _ := env.PostMCP(t, call, map[string]string{"Authorization": "Bearer " + token})
	ch := resp.Header.Get("WWW-Authenticate")
	api := env.Emulator.Info().Apps.Server.IdentifierURI
	if resp.StatusCode != 403 || !strings.Contains(ch, `error="insufficient_scope"`) || !strings.Contains(ch, api+"/mcp-access "+api+"/mcp-admin") {
		t.Fatalf("step-up: %d %q", resp.StatusCode, ch)
	}
	// With the scope, it works.
	elevated := connect(t, env, env.UserToken(t, "bob", api+"/mcp-admin"))
	if res, err := elevated.CallTool(context.Background(), &mcp.CallToolParams{Name: "elevated_tool"}); err != nil || res.IsError {
		t.Fatalf("after step-up: %v", err)
	}
	if log := env.AuditLog(); !strings.Contains(log, `"outcome":"denied"`) {
		t.Errorf("audit log lacks denials:\n%s", log)
	}
}
