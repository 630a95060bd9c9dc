package server_test

import (
	"context"
	"net"
	"strings"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/entramcp/entramcp/internal/redistest"
	"github.com/entramcp/entramcp/internal/server"
	"github.com/entramcp/entramcp/internal/testenv"
	"github.com/entramcp/entramcp/store"
)

// Two replicas sharing Redis make one On-Behalf-Of exchange per user token and scope set: the
// second replica finds the first one's result in the shared (sealed) tier.
func TestReplicasShareOBOResults(t *testing.T) {
	redis := redistest.Start(t)
	_, key := store.NewRandomKeyring()
	shared := func(c *server.Config) { c.Store, c.EncryptionKey = redis.URL, key }
	a := testenv.Start(t, testenv.Options{Server: shared})
	em := a.Emulator
	// Replica b: the same configuration against the same emulator, on another port.
	b := startReplica(t, a, shared)
	token := a.UserToken(t, "alice")
	for _, env := range []string{a.MCPURL, b.MCPURL()} {
		cs := connectURL(t, env, token)
		for i := 0; i < 20; i++ {
			if res, err := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: "list_my_groups"}); err != nil || res.IsError {
				t.Fatalf("call on %s: %v", env, err)
			}
		}
	}
	if n := em.Stats().Token["on_behalf_of"]; n != 1 {
		t.Fatalf("two replicas made %d OBO requests for one user token, want 1", n)
	}
	// Another user: one more.
	cs := connectURL(t, b.MCPURL(), a.UserToken(t, "bob"))
	cs.CallTool(context.Background(), &mcp.CallToolParams{Name: "list_my_groups"})
	if n := em.Stats().Token["on_behalf_of"]; n != 2 {
		t.Fatalf("after bob: %d OBO requests, want 2", n)
	}
	// The shared tier holds Graph tokens: sealed, so no JWT text is in Redis.
	if dump := redisDump(t, redis.URL); !strings.Contains(dump, "entramcp:obo:") || strings.Contains(dump, "eyJ0eXAi") {
		t.Fatalf("Redis holds no sealed OBO entries, or holds a plaintext JWT:\n%.300s", dump)
	}
}

func startReplica(t *testing.T, a *testenv.Env, edit func(*server.Config)) *server.Server {
	t.Helper()
	info := a.Emulator.Info()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cfg := server.Config{Listen: ln.Addr().String(), BaseURL: "http://" + ln.Addr().String(), TenantID: info.TenantID, ClientID: info.Apps.Server.ClientID,
		RequiredScopes: info.Apps.Server.Scopes[:1], AuthorityHost: strings.TrimPrefix(info.EmulatorURL, "https://"), CAFile: info.CAFile,
		ClientSecret: info.Apps.Server.ClientSecret, GraphBaseURL: info.GraphURL, AdminGroupID: info.AdminGroupID}
	edit(&cfg)
	srv, err := server.New(cfg, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	srv.Start(ctx)
	done := make(chan struct{})
	go func() { srv.Serve(ctx, ln); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return srv
}
