package tools

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/entramcp/entramcp/mcpauth"
)

// WhoAmIOutput is the structured result of the whoami tool.
type WhoAmIOutput struct {
	TenantID          string   `json:"tenant_id"`
	ObjectID          string   `json:"object_id"`
	Name              string   `json:"name,omitempty"`
	PreferredUsername string   `json:"preferred_username,omitempty"`
	ClientAppID       string   `json:"client_app_id"`
	Scopes            []string `json:"scopes"`
	Roles             []string `json:"roles"`
	Groups            []string `json:"groups"`
	GroupsOverage     bool     `json:"groups_overage"`
	AppOnly           bool     `json:"app_only"`
	TokenVersion      string   `json:"token_version"`
	ExpiresAt         string   `json:"expires_at"`
}

// WhoAmIInput takes no arguments.
type WhoAmIInput struct{}

// AddWhoAmI registers whoami: the caller's identity from the verified token's claims alone (no
// network call), useful as the first smoke test of a deployment.
func AddWhoAmI(s *mcp.Server) {
	mcp.AddTool(s, &mcp.Tool{
		Name:        "whoami",
		Title:       "Who am I",
		Description: "Returns the signed-in caller as the server sees them: tenant id, object id, display name, user name, the client app, granted scopes, app roles and group ids from the access token.",
		Annotations: &mcp.ToolAnnotations{ReadOnlyHint: true, OpenWorldHint: ptr(false)},
	}, whoami)
}

func ptr[T any](v T) *T { return &v }

func whoami(_ context.Context, req *mcp.CallToolRequest, _ WhoAmIInput) (*mcp.CallToolResult, WhoAmIOutput, error) {
	id := mcpauth.IdentityFrom(req)
	if id == nil {
		return nil, WhoAmIOutput{}, fmt.Errorf("no authenticated caller")
	}
	out := WhoAmIOutput{
		TenantID: id.TenantID, ObjectID: id.ObjectID, Name: id.Name, PreferredUsername: id.PreferredUsername,
		ClientAppID: id.ClientAppID, Scopes: nonNil(id.Scopes), Roles: nonNil(id.Roles), Groups: nonNil(id.Groups),
		GroupsOverage: id.GroupsOverage, AppOnly: id.AppOnly, TokenVersion: id.Version, ExpiresAt: id.Expiry.UTC().Format(time.RFC3339),
	}
	var b strings.Builder
	who := id.PreferredUsername
	if id.Name != "" {
		who = id.Name + " <" + id.PreferredUsername + ">"
	}
	if id.AppOnly {
		who = "application " + id.ClientAppID
	}
	fmt.Fprintf(&b, "You are %s.\nTenant: %s\nObject id: %s\nClient app: %s\n", strings.TrimSpace(who), id.TenantID, id.ObjectID, id.ClientAppID)
	if len(id.Scopes) > 0 {
		fmt.Fprintf(&b, "Scopes: %s\n", strings.Join(id.Scopes, " "))
	}
	if len(id.Roles) > 0 {
		fmt.Fprintf(&b, "App roles: %s\n", strings.Join(id.Roles, ", "))
	}
	if id.GroupsOverage {
		b.WriteString("Groups: too many for the token (overage); ask Microsoft Graph\n")
	} else if len(id.Groups) > 0 {
		fmt.Fprintf(&b, "Groups: %d (%s)\n", len(id.Groups), strings.Join(id.Groups, ", "))
	}
	return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: b.String()}}}, out, nil
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
