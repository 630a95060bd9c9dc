package tools

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/entramcp/entramcp/entra"
	"github.com/entramcp/entramcp/graph"
	"github.com/entramcp/entramcp/mcpauth"
)

// OBOHandler is a tool handler that receives a ready token for the downstream API, obtained on
// behalf of the caller (the Go counterpart of FastMCP's EntraOBOToken).
type OBOHandler[In, Out any] func(ctx context.Context, req *mcp.CallToolRequest, in In, tok *entra.DownstreamToken) (*mcp.CallToolResult, Out, error)

// WithOBO wraps h so it runs with a token for scopes, exchanged from the caller's token. Failed
// exchanges become tool errors that say what to do (see ToolErrorForOBO); h never runs then.
func WithOBO[In, Out any](obo *entra.OBOClient, scopes []string, h OBOHandler[In, Out]) mcp.ToolHandlerFor[In, Out] {
	return func(ctx context.Context, req *mcp.CallToolRequest, in In) (*mcp.CallToolResult, Out, error) {
		var zero Out
		id := mcpauth.IdentityFrom(req)
		if id == nil || id.Token() == "" {
			return errorResult("this tool needs a signed-in caller"), zero, nil
		}
		tok, err := obo.Token(ctx, id.Token(), id.Expiry, scopes)
		if err != nil {
			return ToolErrorForOBO(req, err), zero, nil
		}
		return h(ctx, req, in, tok)
	}
}

// ToolErrorForOBO maps an OBO failure to the tool result the caller sees, in one place:
// consent missing names the consent and its URL; MFA needed also asks the transport for an HTTP
// 401 insufficient_claims challenge; an unusable caller token says to sign in again; Entra being
// down is retryable; configuration errors stay generic (the operator log has the details).
func ToolErrorForOBO(req mcp.Request, err error) *mcp.CallToolResult {
	var oe *entra.OBOError
	if !errors.As(err, &oe) {
		if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
			return errorResult("the request was cancelled or timed out; try again")
		}
		return errorResult("could not act on your behalf; try again later")
	}
	switch oe.Kind {
	case entra.OBOConsentRequired:
		return errorResult("Consent is missing: " + oe.Message + ".")
	case entra.OBOInteractionRequired:
		carried := mcpauth.RequestClaimsChallenge(req, oe.Claims)
		msg := "Additional sign-in is required (for example multi-factor authentication). Sign in again"
		if !carried {
			msg += " with these claims: " + oe.Claims
		}
		return errorResult(msg + ".")
	case entra.OBOInvalidAssertion:
		return errorResult("Your sign-in can no longer be used on your behalf; sign in again.")
	case entra.OBOUnavailable:
		return errorResult("Microsoft Entra is temporarily unavailable; this is retryable, try again in a few seconds.")
	case entra.OBOConfiguration:
		return errorResult("The server is misconfigured and cannot act on your behalf; its operator has been notified.")
	}
	return errorResult("Microsoft Entra refused to act on your behalf (AADSTS" + fmt.Sprint(oe.Code) + ").")
}

// toolErrorForGraph maps a Graph failure; forbidden names the permission or role to ask for.
func toolErrorForGraph(err error, forbidden string) *mcp.CallToolResult {
	var ge *graph.Error
	switch {
	case errors.As(err, &ge) && ge.Status == 403:
		return errorResult(forbidden + " (Microsoft Graph: " + ge.Code + ")")
	case errors.As(err, &ge) && ge.Status == 404:
		return errorResult("Not found in Microsoft Graph.")
	case errors.As(err, &ge) && ge.Status == 401:
		return errorResult("Microsoft Graph rejected the delegated token; sign in again.")
	case errors.As(err, &ge) && (ge.Status == 429 || ge.Status >= 500):
		wait := ""
		if ge.RetryAfter > 0 {
			wait = fmt.Sprintf(" in %.0f seconds", ge.RetryAfter.Seconds()+0.5)
		}
		return errorResult("Microsoft Graph is throttling or unavailable; this is retryable, try again" + wait + ".")
	case errors.Is(err, graph.ErrUnavailable):
		return errorResult("Microsoft Graph could not be reached; this is retryable, try again shortly.")
	case errors.As(err, &ge):
		return errorResult("Microsoft Graph refused the request: " + ge.Code + ": " + strings.TrimSpace(ge.Message))
	}
	return errorResult("The Microsoft Graph call failed: " + err.Error())
}

func errorResult(text string) *mcp.CallToolResult {
	return &mcp.CallToolResult{IsError: true, Content: []mcp.Content{&mcp.TextContent{Text: text}}}
}

func textResult(text string) *mcp.CallToolResult {
	return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: text}}}
}
