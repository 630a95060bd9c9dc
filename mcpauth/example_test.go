package mcpauth_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/entramcp/entramcp/emulator"
	"github.com/entramcp/entramcp/entra"
	"github.com/entramcp/entramcp/mcpauth"
)

// Example puts Entra in front of an existing go-sdk server. The emulator stands in for Entra
// here; against a real tenant leave AuthorityHost and HTTPClient unset.
func Example() {
	em, _ := emulator.Start(emulator.Options{})
	defer em.Close()
	ctx := context.Background()

	// 1. Verify Entra access tokens for your API.
	verifier, _ := entra.NewVerifier(entra.VerifierOptions{
		TenantID: em.TenantID(), ClientID: emulator.DefaultServerAppID, RequiredScopes: []string{"mcp-access"},
		AuthorityHost: strings.TrimPrefix(em.URL(), "https://"), HTTPClient: em.HTTPClient(),
	})
	verifier.Start(ctx)

	// 2. Your MCP server, with a tool that knows who calls it.
	server := mcp.NewServer(&mcp.Implementation{Name: "notes", Version: "1"}, nil)
	mcp.AddTool(server, &mcp.Tool{Name: "hello"}, func(ctx context.Context, req *mcp.CallToolRequest, _ struct{}) (*mcp.CallToolResult, any, error) {
		id := mcpauth.IdentityFrom(req)
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "hello " + id.Name}}}, nil, nil
	})

	// 3. Wrap its handler and publish the protected resource metadata.
	mux := http.NewServeMux()
	ts := httptest.NewServer(mux)
	defer ts.Close()
	auth, _ := mcpauth.New(mcpauth.Options{
		Verifier: verifier, ResourceURL: ts.URL + "/mcp", AuthorizationServers: []string{verifier.Authority()},
		Scopes: entra.FullScopes(verifier.IdentifierURIs()[0], verifier.RequiredScopes()),
	})
	auth.Mount(mux)
	mux.Handle("/mcp", auth.Require(mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return server }, nil)))

	// Without a token: 401 and a challenge pointing at the metadata.
	resp, _ := http.Post(ts.URL+"/mcp", "application/json", strings.NewReader(`{}`))
	fmt.Println(resp.StatusCode, strings.Contains(resp.Header.Get("WWW-Authenticate"), "resource_metadata"))

	// With alice's token: the tool sees her.
	token := exampleToken(em)
	client := mcp.NewClient(&mcp.Implementation{Name: "client", Version: "1"}, nil)
	session, err := client.Connect(ctx, &mcp.StreamableClientTransport{Endpoint: ts.URL + "/mcp",
		HTTPClient: &http.Client{Transport: headerTransport{"Bearer " + token}}}, nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer session.Close()
	res, _ := session.CallTool(ctx, &mcp.CallToolParams{Name: "hello"})
	fmt.Println(res.Content[0].(*mcp.TextContent).Text)
	// Output:
	// 401 true
	// hello Alice Example
}

type headerTransport struct{ authz string }

func (h headerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", h.authz)
	return http.DefaultTransport.RoundTrip(r)
}

func exampleToken(em *emulator.Emulator) string {
	info := em.Info()
	resp, err := em.HTTPClient().PostForm(em.Authority()+"/oauth2/v2.0/token", url.Values{"grant_type": {"password"},
		"client_id": {info.Apps.Client.ClientID}, "username": {"alice"}, "password": {info.Users[0].Password},
		"scope": {info.Apps.Server.IdentifierURI + "/mcp-access profile"}})
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	var body struct {
		AccessToken string `json:"access_token"`
	}
	_ = jsonDecode(resp, &body)
	return body.AccessToken
}
