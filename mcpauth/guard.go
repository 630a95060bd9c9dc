package mcpauth

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/entramcp/entramcp/entra"
)

// IdentityFrom returns the verified caller of an MCP request, for tool handlers and MCP
// middleware; nil when the request did not pass Require.
func IdentityFrom(req mcp.Request) *entra.Identity {
	if req == nil || req.GetExtra() == nil {
		return nil
	}
	return identityFromTokenInfo(req.GetExtra().TokenInfo)
}

// Requirement restricts one tool. Every listed scope is needed; of roles and of groups, any one
// suffices. Scope requirements are step-up: the tool stays listed and a call without the scope
// gets a 403 insufficient_scope challenge, so the client can ask the user for it. Role and group
// requirements hide the tool from users who lack them.
type Requirement struct {
	Scopes []string // short scope names
	Roles  []string // app role values
	Groups []string // group object ids
}

// GroupChecker decides group membership when a requirement names groups. ClaimsGroups (the
// default) reads the token's groups claim; a Graph-backed checker handles overage.
type GroupChecker interface {
	InAnyGroup(ctx context.Context, id *entra.Identity, groups []string) (bool, error)
}

// ClaimsGroups checks the groups claim only. With a groups overage it answers false: it fails
// closed rather than guess.
type ClaimsGroups struct{}

// InAnyGroup implements GroupChecker.
func (ClaimsGroups) InAnyGroup(_ context.Context, id *entra.Identity, groups []string) (bool, error) {
	return slices.ContainsFunc(groups, id.InGroup), nil
}

// Policy holds the tool requirements of a server.
type Policy struct {
	mu     sync.RWMutex
	reqs   map[string]Requirement
	groups GroupChecker
	audit  func(ctx context.Context, e AuditEvent)
	// stepUp holds the tools with scope requirements, for the HTTP step-up check.
	stepUp map[string][]string
}

// AuditEvent is one authenticated MCP request, as the audit log records it.
type AuditEvent struct {
	Identity *entra.Identity
	Method   string
	Tool     string
	Outcome  string // "ok", "error" (the tool reported an error), "denied", "failed" (protocol error)
	Duration time.Duration
}

// NewPolicy makes an empty policy. groups may be nil (ClaimsGroups); audit may be nil.
func NewPolicy(groups GroupChecker, audit func(context.Context, AuditEvent)) *Policy {
	if groups == nil {
		groups = ClaimsGroups{}
	}
	return &Policy{reqs: map[string]Requirement{}, groups: groups, audit: audit, stepUp: map[string][]string{}}
}

// Require sets the requirement of a tool.
func (p *Policy) Require(tool string, r Requirement) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.reqs[tool] = r
	if len(r.Scopes) > 0 {
		p.stepUp[tool] = r.Scopes
	} else {
		delete(p.stepUp, tool)
	}
}

// StepUpScopes are the scopes (short names) some tool requires beyond the server's own: what
// a client may have to come back for after a 403 insufficient_scope. Sorted, no duplicates.
func (p *Policy) StepUpScopes() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var all []string
	for _, scopes := range p.stepUp {
		all = append(all, scopes...)
	}
	slices.Sort(all)
	return slices.Compact(all)
}

// visible reports whether id may see (and, scopes aside, call) the tool.
func (p *Policy) visible(ctx context.Context, id *entra.Identity, tool string) bool {
	p.mu.RLock()
	r, ok := p.reqs[tool]
	p.mu.RUnlock()
	if !ok {
		return true
	}
	if id == nil {
		return false
	}
	if len(r.Roles) > 0 && !slices.ContainsFunc(r.Roles, id.HasRole) {
		return false
	}
	if len(r.Groups) > 0 {
		in, err := p.groups.InAnyGroup(ctx, id, r.Groups)
		if err != nil || !in {
			return false
		}
	}
	return true
}

// missingScopes lists the tool's scopes the identity lacks.
func (p *Policy) missingScopes(id *entra.Identity, tool string) []string {
	p.mu.RLock()
	scopes := p.stepUp[tool]
	p.mu.RUnlock()
	var missing []string
	for _, s := range scopes {
		if id == nil || !id.HasScope(s) {
			missing = append(missing, s)
		}
	}
	return missing
}

// Middleware is the go-sdk receiving middleware that enforces the policy: tools/list shows only
// visible tools; tools/call of a tool the caller may not use fails exactly as an unknown tool
// does (so its existence is not revealed). Every request is audited.
func (p *Policy) Middleware() mcp.Middleware {
	return func(next mcp.MethodHandler) mcp.MethodHandler {
		return func(ctx context.Context, method string, req mcp.Request) (mcp.Result, error) {
			id := IdentityFrom(req)
			start := time.Now()
			tool := ""
			switch method {
			case "tools/call":
				if params, ok := req.GetParams().(*mcp.CallToolParamsRaw); ok {
					tool = params.Name
				}
				if !p.visible(ctx, id, tool) || len(p.missingScopes(id, tool)) > 0 {
					p.record(ctx, AuditEvent{Identity: id, Method: method, Tool: tool, Outcome: "denied", Duration: time.Since(start)})
					return nil, &jsonrpc.Error{Code: jsonrpc.CodeInvalidParams, Message: fmt.Sprintf("unknown tool %q", tool)}
				}
			}
			res, err := next(ctx, method, req)
			if method == "tools/list" && err == nil {
				if lr, ok := res.(*mcp.ListToolsResult); ok {
					filtered := *lr
					filtered.Tools = slices.DeleteFunc(slices.Clone(lr.Tools), func(t *mcp.Tool) bool { return !p.visible(ctx, id, t.Name) })
					res = &filtered
				}
			}
			outcome := "ok"
			if err != nil {
				outcome = "failed"
			} else if cr, ok := res.(*mcp.CallToolResult); ok && cr.IsError {
				outcome = "error"
			}
			p.record(ctx, AuditEvent{Identity: id, Method: method, Tool: tool, Outcome: outcome, Duration: time.Since(start)})
			return res, err
		}
	}
}

func (p *Policy) record(ctx context.Context, e AuditEvent) {
	if p.audit != nil && e.Identity != nil {
		p.audit(ctx, e)
	}
}

// StepUp is HTTP middleware, inside Require, that answers a tools/call for a tool whose scopes
// the token lacks with 403 insufficient_scope naming every scope needed (the API's own plus the
// tool's), so an MCP client can obtain them and retry. It reads at most maxBody bytes of the
// JSON-RPC body and puts them back for the MCP handler.
func (p *Policy) StepUp(a *Auth, maxBody int64) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			p.mu.RLock()
			active := len(p.stepUp) > 0
			p.mu.RUnlock()
			if !active || r.Method != http.MethodPost {
				next.ServeHTTP(w, r)
				return
			}
			body, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
			r.Body.Close()
			if err != nil {
				http.Error(w, "could not read the request body", http.StatusBadRequest)
				return
			}
			r.Body = io.NopCloser(bytes.NewReader(body))
			id := entra.IdentityFromContext(r.Context())
			for _, tool := range calledTools(body) {
				if missing := p.missingScopes(id, tool); len(missing) > 0 {
					p.record(r.Context(), AuditEvent{Identity: id, Method: "tools/call", Tool: tool, Outcome: "denied"})
					need := append(slices.Clone(a.opts.Scopes), p.fullScopes(a, missing)...)
					a.denyScope(w, r, entra.ReasonInsufficientScope, "the tool "+tool+" needs more permissions: "+joinSpace(p.fullScopes(a, missing)), need)
					return
				}
			}
			next.ServeHTTP(w, r)
		})
	}
}

// fullScopes turns short tool scopes into the full form, using the prefix of the API's first
// advertised scope.
func (p *Policy) fullScopes(a *Auth, short []string) []string {
	prefix := ""
	if len(a.opts.Scopes) > 0 {
		s := a.opts.Scopes[0]
		if i := lastSlash(s); i >= 0 {
			prefix = s[:i]
		}
	}
	if prefix == "" {
		return short
	}
	return entra.FullScopes(prefix, short)
}

func lastSlash(s string) int {
	for i := len(s) - 1; i >= 0; i-- {
		if s[i] == '/' {
			return i
		}
	}
	return -1
}

func joinSpace(s []string) string {
	out := ""
	for i, x := range s {
		if i > 0 {
			out += " "
		}
		out += x
	}
	return out
}

// calledTools returns the tool names of tools/call messages in a JSON-RPC body (one message or
// a batch). Unparseable bodies yield nothing: the MCP handler reports the parse error.
func calledTools(body []byte) []string {
	type msg struct {
		Method string `json:"method"`
		Params struct {
			Name string `json:"name"`
		} `json:"params"`
	}
	body = bytes.TrimSpace(body)
	var msgs []msg
	if len(body) > 0 && body[0] == '[' {
		if json.Unmarshal(body, &msgs) != nil {
			return nil
		}
	} else {
		var m msg
		if json.Unmarshal(body, &m) != nil {
			return nil
		}
		msgs = []msg{m}
	}
	var out []string
	for _, m := range msgs {
		if m.Method == "tools/call" {
			out = append(out, m.Params.Name)
		}
	}
	return out
}
