// Package mcpauth is the resource-server side of MCP authorization for Entra-protected servers:
// the bearer-token middleware with RFC 6750 / MCP challenges, RFC 9728 protected resource
// metadata, the caller's identity in the request context (and in the go-sdk's TokenInfo, so
// sessions are bound to the user), and tool guards by scope, app role and group.
//
// Put it in front of any go-sdk server in a few lines:
//
//	v, _ := entra.NewVerifier(entra.VerifierOptions{TenantID: tid, ClientID: cid, RequiredScopes: []string{"mcp-access"}})
//	v.Start(ctx)
//	a, _ := mcpauth.New(mcpauth.Options{Verifier: v, ResourceURL: "https://mcp.contoso.com/mcp",
//		AuthorizationServers: []string{v.Authority()}, Scopes: entra.FullScopes(v.IdentifierURIs()[0], v.RequiredScopes())})
//	a.Mount(mux)
//	mux.Handle("/mcp", a.Require(mcp.NewStreamableHTTPHandler(getServer, nil)))
//
// It never logs or echoes a token: challenges and error descriptions describe what is wrong
// with a token without quoting it.
package mcpauth
