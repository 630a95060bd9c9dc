package main

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/entramcp/entramcp/emulator"
	"github.com/entramcp/entramcp/entra"
	"github.com/entramcp/entramcp/internal/emutest"
	"github.com/entramcp/entramcp/store"
)

type bearer struct{ tok string }

func (b bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.tok)
	return http.DefaultTransport.RoundTrip(r)
}

func TestExpensesPerUserAndAdminStats(t *testing.T) {
	em := emutest.Start(t, nil)
	ctx := context.Background()
	v, err := entra.NewVerifier(entra.VerifierOptions{TenantID: em.TenantID(), ClientID: emulator.DefaultServerAppID, RequiredScopes: []string{"mcp-access"},
		AuthorityHost: strings.TrimPrefix(em.URL(), "https://"), HTTPClient: em.HTTPClient()})
	if err != nil {
		t.Fatal(err)
	}
	vctx, cancel := context.WithCancel(ctx)
	defer cancel()
	v.Start(vctx)
	db, err := store.OpenBolt(filepath.Join(t.TempDir(), "expenses.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	mux := http.NewServeMux()
	ts := httptest.NewServer(mux)
	t.Cleanup(ts.Close) // registered first, so it runs after the sessions' cleanups close them
	h, err := New(Config{Verifier: v, Store: db, ResourceURL: ts.URL + "/mcp", AdminGroupID: emulator.DefaultAdminGroupID})
	if err != nil {
		t.Fatal(err)
	}
	mux.Handle("/", h)
	connect := func(user string) *mcp.ClientSession {
		c := mcp.NewClient(&mcp.Implementation{Name: "t", Version: "1"}, nil)
		cs, err := c.Connect(ctx, &mcp.StreamableClientTransport{Endpoint: ts.URL + "/mcp", HTTPClient: &http.Client{Transport: bearer{emutest.UserToken(t, em, user)}}}, nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cs.Close() })
		return cs
	}
	call := func(cs *mcp.ClientSession, tool string, args map[string]any) (map[string]any, bool) {
		res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: tool, Arguments: args})
		if err != nil {
			t.Fatalf("%s: %v", tool, err)
		}
		var out map[string]any
		b, _ := json.Marshal(res.StructuredContent)
		json.Unmarshal(b, &out)
		return out, res.IsError
	}
	alice, bob := connect("alice"), connect("bob")
	var wg sync.WaitGroup
	for i := 0; i < 10; i++ { // concurrent adds by one user lose nothing
		wg.Add(1)
		go func() {
			defer wg.Done()
			call(alice, "add_expense", map[string]any{"amount": 10, "category": "meals", "description": "lunch"})
		}()
	}
	wg.Wait()
	call(bob, "add_expense", map[string]any{"amount": 99.5, "category": "travel", "description": "train", "date": "2026-11-01"})
	if _, isErr := call(bob, "add_expense", map[string]any{"amount": -1, "category": "yachts"}); !isErr {
		t.Fatal("invalid expense accepted")
	}
	if out, _ := call(bob, "list_my_expenses", nil); out["total"] != 99.5 || len(out["expenses"].([]any)) != 1 {
		t.Fatalf("bob sees: %v", out)
	}
	if out, _ := call(alice, "list_my_expenses", nil); out["total"] != float64(100) {
		t.Fatalf("alice sees: %v", out)
	}
	tools, _ := bob.ListTools(ctx, nil)
	for _, tl := range tools.Tools {
		if tl.Name == "expense_stats" {
			t.Fatal("bob, not an admin, sees expense_stats")
		}
	}
	if _, err := bob.CallTool(ctx, &mcp.CallToolParams{Name: "expense_stats"}); err == nil {
		t.Fatal("bob called expense_stats")
	}
	out, _ := call(alice, "expense_stats", nil)
	if out["users"] != float64(2) || out["total"] != 199.5 || out["by_category"].(map[string]any)["travel"] != 99.5 {
		t.Fatalf("stats: %v", out)
	}
}
