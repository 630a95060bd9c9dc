package server_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"strings"
	"sync"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/entramcp/entramcp/emulator"
	"github.com/entramcp/entramcp/internal/testenv"
)

func call(t *testing.T, cs *mcp.ClientSession, tool string, args map[string]any) (*mcp.CallToolResult, string, map[string]any) {
	t.Helper()
	res, err := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: tool, Arguments: args})
	if err != nil {
		t.Fatalf("%s: %v", tool, err)
	}
	text := ""
	if len(res.Content) > 0 {
		text = res.Content[0].(*mcp.TextContent).Text
	}
	var out map[string]any
	b, _ := json.Marshal(res.StructuredContent)
	json.Unmarshal(b, &out)
	return res, text, out
}

func TestGraphToolsAsTheUser(t *testing.T) {
	env := testenv.Start(t, testenv.Options{})
	alice := connect(t, env, env.UserToken(t, "alice"))
	bob := connect(t, env, env.UserToken(t, "bob"))

	_, text, out := call(t, alice, "whoami", nil)
	if p, _ := out["profile"].(map[string]any); p["job_title"] != "Platform Administrator" || !strings.Contains(text, "Building 1") {
		t.Fatalf("whoami profile: %v\n%s", out, text)
	}
	res, _, out := call(t, alice, "check_group_membership", map[string]any{"group_id": "3c7a1f5b-9d4e-4a0c-88e3-1b5d7f9a4c62"})
	if res.IsError || out["member"] != true || out["group_name"] != "Engineering" {
		t.Fatalf("alice in Engineering (nested): %v", out)
	}
	if _, _, out = call(t, bob, "check_group_membership", map[string]any{"group_id": "3c7a1f5b-9d4e-4a0c-88e3-1b5d7f9a4c62"}); out["member"] != false {
		t.Fatalf("bob in Engineering: %v", out)
	}
	if res, text, _ = call(t, bob, "check_group_membership", map[string]any{"group_id": "not-a-guid"}); !res.IsError || !strings.Contains(text, "GUID") {
		t.Fatalf("bad group id: %v %s", res.IsError, text)
	}
	if _, _, out = call(t, alice, "list_my_groups", map[string]any{"name_prefix": "P"}); out["total"] != float64(1) {
		t.Fatalf("list_my_groups prefix P: %v", out)
	}
	_, text, out = call(t, alice, "get_service_messages", map[string]any{"major_only": true, "count": true, "top": 2})
	msgs, _ := out["messages"].([]any)
	if out["count"] != float64(5) || len(msgs) != 2 || !strings.HasPrefix(msgs[0].(map[string]any)["link"].(string), "https://admin.microsoft.com/#/MessageCenter/:/messages/MC") {
		t.Fatalf("get_service_messages: %v\n%s", out, text)
	}
	if _, _, out = call(t, alice, "get_service_messages", map[string]any{"top": 0, "count": true, "severity": "high"}); out["count"] != float64(3) {
		t.Fatalf("count only: %v", out)
	}
	if res, text, _ = call(t, alice, "get_service_messages", map[string]any{"severity": "apocalyptic"}); !res.IsError || !strings.Contains(text, "severity must be") {
		t.Fatalf("bad severity: %s", text)
	}
	if _, text, out = call(t, alice, "get_message", map[string]any{"id": "mc180234"}); out["id"] != "MC180234" || !strings.Contains(text, "Basic authentication") {
		t.Fatalf("get_message: %v", out)
	}
	// bob cannot see or call the admin-only Message Center tools.
	if _, err := bob.CallTool(context.Background(), &mcp.CallToolParams{Name: "get_service_messages"}); err == nil || !strings.Contains(err.Error(), "unknown tool") {
		t.Fatalf("bob calls get_service_messages: %v", err)
	}
	// Exactly one OBO exchange per user token, however many calls.
	stats := env.Emulator.Stats()
	if n := stats.Token["on_behalf_of"]; n != 2 {
		t.Fatalf("%d OBO requests for two users, want 2", n)
	}
}

// With the Message Center tools open to all, Graph's own role check speaks for bob.
func TestMessageCenterRoleExplained(t *testing.T) {
	env := testenv.Start(t, testenv.Options{Server: func(c *serverConfig) { c.MessageCenter = "all" }})
	bob := connect(t, env, env.UserToken(t, "bob"))
	res, text, _ := call(t, bob, "get_service_messages", nil)
	if !res.IsError || !strings.Contains(text, "lacks the Message Center Reader role") {
		t.Fatalf("bob without the role: %s", text)
	}
}

func TestOBOCacheCounts(t *testing.T) {
	env := testenv.Start(t, testenv.Options{})
	cs := connect(t, env, env.UserToken(t, "alice"))
	env.Emulator.ResetStats()
	var wg sync.WaitGroup
	for i := 0; i < 100; i++ { // 100 concurrent first calls
		wg.Add(1)
		go func() {
			defer wg.Done()
			if res, err := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: "list_my_groups"}); err != nil || res.IsError {
				t.Errorf("call: %v", err)
			}
		}()
	}
	wg.Wait()
	if n := env.Emulator.Stats().Token["on_behalf_of"]; n != 1 {
		t.Fatalf("100 concurrent first calls made %d OBO requests, want 1", n)
	}
	for i := 0; i < 1000; i++ {
		if res, err := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: "check_group_membership", Arguments: map[string]any{"group_id": emulator.DefaultAdminGroupID}}); err != nil || res.IsError {
			t.Fatalf("call %d: %v", i, err)
		}
	}
	if n := env.Emulator.Stats().Token["on_behalf_of"]; n != 1 {
		t.Fatalf("1,000 more calls made %d OBO requests in all, want 1", n)
	}
	// A new token for the same user is a new assertion: one new exchange.
	cs2 := connect(t, env, env.UserToken(t, "alice"))
	call(t, cs2, "list_my_groups", nil)
	if n := env.Emulator.Stats().Token["on_behalf_of"]; n != 2 {
		t.Fatalf("a new user token made %d OBO requests in all, want 2", n)
	}
}

func TestOBOFailuresAreMapped(t *testing.T) {
	env := testenv.Start(t, testenv.Options{})
	em := env.Emulator

	// Consent missing: the tool says which consent and where to grant it.
	em.RevokeConsent(emulator.DefaultServerAppID, emulator.GraphAppID, "")
	cs := connect(t, env, env.UserToken(t, "alice"))
	res, text, _ := call(t, cs, "list_my_groups", nil)
	if !res.IsError || !strings.Contains(text, "Consent is missing") || !strings.Contains(text, "/v2.0/adminconsent?client_id="+emulator.DefaultServerAppID) {
		t.Fatalf("consent missing: %s", text)
	}
	em.GrantConsent(emulator.DefaultServerAppID, emulator.GraphAppID, "User.Read GroupMember.Read.All ServiceMessage.Read.All", "")

	// Entra down: a retryable tool error.
	cs = connect(t, env, env.UserToken(t, "bob"))
	em.SetOutage(emulator.Login, emulator.Outage503, 0)
	res, text, _ = call(t, cs, "list_my_groups", nil)
	em.ClearOutage(emulator.Login)
	if !res.IsError || !strings.Contains(text, "retryable") {
		t.Fatalf("Entra down: %s", text)
	}

	// Graph throttling: a short Retry-After is absorbed by the client's retries.
	em.ThrottleNext(emulator.Graph, 1, "0.2")
	if res, text, _ = call(t, cs, "list_my_groups", nil); res.IsError {
		t.Fatalf("after one 429: %s", text)
	}
	// A long one is reported as retryable, with the wait.
	em.ThrottleNext(emulator.Graph, 10, "30")
	res, text, _ = call(t, cs, "list_my_groups", nil)
	em.ResetFaults()
	if !res.IsError || !strings.Contains(text, "retryable, try again in 30 seconds") {
		t.Fatalf("long throttling: %s", text)
	}
}

// MFA required by conditional access: the client gets HTTP 401 insufficient_claims with the
// claims challenge, which an MCP client can use to sign the user in again.
func TestMFAClaimsChallenge(t *testing.T) {
	env := testenv.Start(t, testenv.Options{})
	tok := env.UserToken(t, "alice") // signed in before the policy
	policy, err := env.Emulator.SetMFAPolicy("alice", emulator.GraphAppID, 50079)
	if err != nil {
		t.Fatal(err)
	}
	h := map[string]string{"Authorization": "Bearer " + tok}
	resp, _ := env.PostMCP(t, testenv.Initialize, h)
	h["Mcp-Session-Id"], h["Mcp-Protocol-Version"] = resp.Header.Get("Mcp-Session-Id"), "2025-06-18"
	resp, body := env.PostMCP(t, `{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"list_my_groups","arguments":{}}}`, h)
	ch := resp.Header.Get("WWW-Authenticate")
	if resp.StatusCode != 401 || !strings.Contains(ch, `error="insufficient_claims"`) {
		t.Fatalf("MFA required: %d %q %s", resp.StatusCode, ch, body)
	}
	i := strings.Index(ch, `claims="`)
	rest := ch[i+8:]
	claims, err := base64.StdEncoding.DecodeString(rest[:strings.Index(rest, `"`)])
	if err != nil || !strings.Contains(string(claims), policy) {
		t.Fatalf("claims %q do not name policy %s (%v)", claims, policy, err)
	}
	// Other tools that need no OBO still work on the same session.
	resp, body = env.PostMCP(t, `{"jsonrpc":"2.0","id":6,"method":"tools/list","params":{}}`, h)
	if resp.StatusCode != 200 || !strings.Contains(body, "whoami") {
		t.Fatalf("tools/list after the challenge: %d", resp.StatusCode)
	}
}

// When the groups claim overflows, admin tools are decided by asking Graph (On-Behalf-Of).
func TestGroupGuardFallsBackToGraphOnOverage(t *testing.T) {
	env := testenv.Start(t, testenv.Options{Config: func(c *emulator.Config) { c.Settings.GroupsOverageLimit = 2 }})
	tok := env.UserToken(t, "alice")
	if c := testenv.Claims(t, tok); c["groups"] != nil || c["_claim_names"] == nil {
		t.Fatalf("expected an overage token: %v", c)
	}
	alice := connect(t, env, tok)
	before := env.Emulator.Stats().Graph["GET /v1.0/me/transitiveMemberOf/{cast}"]
	if res, text, _ := call(t, alice, "get_service_messages", map[string]any{"top": 1}); res.IsError {
		t.Fatalf("alice (admin via Graph): %s", text)
	}
	if n := env.Emulator.Stats().Graph["GET /v1.0/me/transitiveMemberOf/{cast}"] - before; n < 1 {
		t.Fatal("the group guard did not ask Graph")
	}
	// The answer is cached per user: more calls, no more membership queries.
	mid := env.Emulator.Stats().Graph["GET /v1.0/me/transitiveMemberOf/{cast}"]
	for i := 0; i < 5; i++ {
		call(t, alice, "get_message", map[string]any{"id": "MC172851"})
	}
	if n := env.Emulator.Stats().Graph["GET /v1.0/me/transitiveMemberOf/{cast}"] - mid; n != 0 {
		t.Fatalf("%d more membership queries, want 0 (cached)", n)
	}
}
