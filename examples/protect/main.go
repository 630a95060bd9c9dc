// Command protect is the smallest useful Entra-protected MCP server built on entramcp's
// packages: your own go-sdk server, with a tool that greets the signed-in user and counts their
// calls, keyed by tenant and object id.
//
//	ENTRA_TENANT_ID=... ENTRA_CLIENT_ID=... go run ./examples/protect
//
// Clients need an access token for api://{ENTRA_CLIENT_ID}/mcp-access (v2 tokens: set the app's
// requestedAccessTokenVersion to 2). Against the emulator add ENTRA_AUTHORITY_HOST=127.0.0.1:PORT
// and ENTRAMCP_CA_FILE=.entramcp/ca.pem from `entramcp emulator`'s dev.json.
package main

import (
	"context"
	"fmt"
	"log"
	"net/http"
	"os"
	"os/signal"
	"sync"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/entramcp/entramcp/entra"
	"github.com/entramcp/entramcp/mcpauth"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	addr := envOr("ENTRAMCP_LISTEN", "127.0.0.1:8080")
	verifier, err := entra.NewVerifier(entra.VerifierOptions{
		TenantID: os.Getenv("ENTRA_TENANT_ID"), ClientID: os.Getenv("ENTRA_CLIENT_ID"),
		AuthorityHost: os.Getenv("ENTRA_AUTHORITY_HOST"), RequiredScopes: []string{"mcp-access"}, HTTPClient: httpClient(),
	})
	if err != nil {
		log.Fatal(err)
	}
	if err := verifier.Start(ctx); err != nil {
		log.Printf("Entra not reachable yet (retrying): %v", err)
	}

	server := mcp.NewServer(&mcp.Implementation{Name: "protect-example", Version: "1"}, nil)
	var mu sync.Mutex
	calls := map[string]int{} // per user, keyed by tid:oid, never by name or UPN
	mcp.AddTool(server, &mcp.Tool{Name: "greet", Description: "Greets the signed-in user and says how often they called."},
		func(ctx context.Context, req *mcp.CallToolRequest, _ struct{}) (*mcp.CallToolResult, any, error) {
			id := mcpauth.IdentityFrom(req)
			mu.Lock()
			calls[id.UserKey()]++
			n := calls[id.UserKey()]
			mu.Unlock()
			text := fmt.Sprintf("Hello %s, this is call %d.", id.PreferredUsername, n)
			return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: text}}}, nil, nil
		})

	mux := http.NewServeMux()
	auth, err := mcpauth.New(mcpauth.Options{
		Verifier: verifier, ResourceURL: "http://" + addr + "/mcp", AuthorizationServers: []string{verifier.Authority()},
		Scopes: entra.FullScopes(verifier.IdentifierURIs()[0], verifier.RequiredScopes()), ResourceName: "protect example",
	})
	if err != nil {
		log.Fatal(err)
	}
	auth.Mount(mux)
	mux.Handle("/mcp", auth.Require(mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return server }, nil)))
	srv := &http.Server{Addr: addr, Handler: mux}
	go func() { <-ctx.Done(); srv.Close() }()
	log.Printf("serving http://%s/mcp", addr)
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
