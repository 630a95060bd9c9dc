// Command expenses is a small Entra-protected MCP server built on entramcp's packages, after the
// well-known Azure sample: each user records and lists their own expenses, kept in the embedded
// store under their tenant and object id (never their name or e-mail, which change), and an
// admin-only statistics tool is offered only to members of an Entra admin group.
//
//	ENTRA_TENANT_ID=... ENTRA_CLIENT_ID=... ENTRAMCP_ADMIN_GROUP_ID=... go run ./examples/expenses
//
// Against the emulator add ENTRA_AUTHORITY_HOST and ENTRAMCP_CA_FILE from `entramcp emulator`'s
// dev.json.
package main

import (
	"context"
	"log"
	"net/http"
	"os"
	"os/signal"

	"github.com/entramcp/entramcp/entra"
	"github.com/entramcp/entramcp/store"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	addr := envOr("ENTRAMCP_LISTEN", "127.0.0.1:8081")
	verifier, err := entra.NewVerifier(entra.VerifierOptions{
		TenantID: os.Getenv("ENTRA_TENANT_ID"), ClientID: os.Getenv("ENTRA_CLIENT_ID"), AuthorityHost: os.Getenv("ENTRA_AUTHORITY_HOST"),
		RequiredScopes: []string{"mcp-access"}, HTTPClient: httpClient(),
	})
	if err != nil {
		log.Fatal(err)
	}
	if err := verifier.Start(ctx); err != nil {
		log.Printf("Entra not reachable yet (retrying): %v", err)
	}
	db, err := store.OpenBolt(envOr("EXPENSES_DB", "expenses.db"))
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()
	h, err := New(Config{Verifier: verifier, Store: db, ResourceURL: "http://" + addr + "/mcp", AdminGroupID: os.Getenv("ENTRAMCP_ADMIN_GROUP_ID")})
	if err != nil {
		log.Fatal(err)
	}
	srv := &http.Server{Addr: addr, Handler: h}
	go func() { <-ctx.Done(); srv.Close() }()
	log.Printf("expenses MCP server on http://%s/mcp", addr)
	if err := srv.ListenAndServe(); err != http.ErrServerClosed {
		log.Fatal(err)
	}
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

// httpClient trusts ENTRAMCP_CA_FILE too (the emulator's CA), besides the system roots.
func httpClient() *http.Client {
	c, err := entra.NewHTTPClient(os.Getenv("ENTRAMCP_CA_FILE"))
	if err != nil {
		log.Fatal(err)
	}
	return c
}
