package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/entramcp/entramcp/entra"
	"github.com/entramcp/entramcp/mcpauth"
	"github.com/entramcp/entramcp/store"
)

// Config wires the example together.
type Config struct {
	Verifier     *entra.Verifier
	Store        store.Store
	ResourceURL  string
	AdminGroupID string
	// Groups decides admin membership; default: the token's groups claim.
	Groups mcpauth.GroupChecker
}

// Expense is one record.
type Expense struct {
	ID          int     `json:"id"`
	Amount      float64 `json:"amount"`
	Category    string  `json:"category"`
	Description string  `json:"description"`
	Date        string  `json:"date"`
}

var categories = []string{"travel", "meals", "equipment", "software", "other"}

// New returns the HTTP handler: protected resource metadata and the protected MCP endpoint.
func New(c Config) (http.Handler, error) {
	if c.Store == nil || c.Verifier == nil {
		return nil, errors.New("a verifier and a store are required")
	}
	policy := mcpauth.NewPolicy(c.Groups, nil)
	server := mcp.NewServer(&mcp.Implementation{Name: "expenses", Version: "1"}, nil)
	server.AddReceivingMiddleware(policy.Middleware())
	x := &expenses{db: c.Store}
	mcp.AddTool(server, &mcp.Tool{Name: "add_expense", Description: "Records an expense for the signed-in user."}, x.add)
	mcp.AddTool(server, &mcp.Tool{Name: "list_my_expenses", Description: "Lists the signed-in user's expenses.", Annotations: &mcp.ToolAnnotations{ReadOnlyHint: true}}, x.list)
	if c.AdminGroupID != "" {
		mcp.AddTool(server, &mcp.Tool{Name: "expense_stats", Description: "Totals by category across all users (administrators only).", Annotations: &mcp.ToolAnnotations{ReadOnlyHint: true}}, x.stats)
		policy.Require("expense_stats", mcpauth.Requirement{Groups: []string{c.AdminGroupID}})
	}
	auth, err := mcpauth.New(mcpauth.Options{Verifier: c.Verifier, ResourceURL: c.ResourceURL, AuthorizationServers: []string{c.Verifier.Authority()},
		Scopes: entra.FullScopes(c.Verifier.IdentifierURIs()[0], c.Verifier.RequiredScopes()), ResourceName: "expenses"})
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	auth.Mount(mux)
	mux.Handle("/mcp", auth.Require(mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return server }, nil)))
	return mux, nil
}

type expenses struct{ db store.Store }

// userKey keys data by tenant and object id: stable, unique, and the same across apps.
func userKey(req mcp.Request) (string, error) {
	id := mcpauth.IdentityFrom(req)
	if id == nil || id.AppOnly {
		return "", errors.New("a signed-in user is required")
	}
	return id.UserKey(), nil
}

// AddInput is one new expense.
type AddInput struct {
	Amount      float64 `json:"amount" jsonschema:"the amount, greater than 0"`
	Category    string  `json:"category" jsonschema:"travel, meals, equipment, software or other"`
	Description string  `json:"description" jsonschema:"what it was for"`
	Date        string  `json:"date,omitempty" jsonschema:"YYYY-MM-DD (default today)"`
}

func (x *expenses) add(ctx context.Context, req *mcp.CallToolRequest, in AddInput) (*mcp.CallToolResult, Expense, error) {
	user, err := userKey(req)
	if err != nil {
		return nil, Expense{}, err
	}
	if in.Amount <= 0 || in.Amount > 1e7 || !slices.Contains(categories, in.Category) || len(in.Description) > 500 {
		return toolError("amount must be positive, category one of " + strings.Join(categories, ", ") + ", description at most 500 characters"), Expense{}, nil
	}
	if in.Date == "" {
		in.Date = time.Now().UTC().Format(time.DateOnly)
	} else if _, err := time.Parse(time.DateOnly, in.Date); err != nil {
		return toolError("date must be YYYY-MM-DD"), Expense{}, nil
	}
	e := Expense{Amount: in.Amount, Category: in.Category, Description: in.Description, Date: in.Date}
	// Append atomically: concurrent calls by the same user must not lose an expense.
	err = x.db.Create(ctx, "expenses", user, []byte("[]"), 0)
	if err != nil && !errors.Is(err, store.ErrAlreadyExists) {
		return nil, Expense{}, err
	}
	err = x.db.Update(ctx, "expenses", user, func(old []byte) ([]byte, time.Duration, error) {
		var list []Expense
		if err := json.Unmarshal(old, &list); err != nil {
			return nil, 0, err
		}
		e.ID = len(list) + 1
		b, err := json.Marshal(append(list, e))
		return b, 0, err
	})
	if err != nil {
		return nil, Expense{}, err
	}
	if err := x.remember(ctx, user); err != nil {
		return nil, Expense{}, err
	}
	return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: fmt.Sprintf("Recorded expense %d: %.2f for %s.", e.ID, e.Amount, e.Category)}}}, e, nil
}

// remember adds the user to the index the statistics read.
func (x *expenses) remember(ctx context.Context, user string) error {
	if err := x.db.Create(ctx, "index", "users", []byte("[]"), 0); err != nil && !errors.Is(err, store.ErrAlreadyExists) {
		return err
	}
	return x.db.Update(ctx, "index", "users", func(old []byte) ([]byte, time.Duration, error) {
		var users []string
		json.Unmarshal(old, &users)
		if !slices.Contains(users, user) {
			users = append(users, user)
		}
		b, err := json.Marshal(users)
		return b, 0, err
	})
}

// ListOutput is the user's expenses.
type ListOutput struct {
	Expenses []Expense `json:"expenses"`
	Total    float64   `json:"total"`
}

func (x *expenses) list(ctx context.Context, req *mcp.CallToolRequest, _ struct{}) (*mcp.CallToolResult, ListOutput, error) {
	user, err := userKey(req)
	if err != nil {
		return nil, ListOutput{}, err
	}
	out := ListOutput{Expenses: []Expense{}}
	raw, err := x.db.Get(ctx, "expenses", user)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return nil, out, err
	}
	if raw != nil {
		json.Unmarshal(raw, &out.Expenses)
	}
	var b strings.Builder
	for _, e := range out.Expenses {
		out.Total += e.Amount
		fmt.Fprintf(&b, "%d. %s %.2f %s: %s\n", e.ID, e.Date, e.Amount, e.Category, e.Description)
	}
	fmt.Fprintf(&b, "Total: %.2f\n", out.Total)
	return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: b.String()}}}, out, nil
}

// StatsOutput totals across users.
type StatsOutput struct {
	Users      int                `json:"users"`
	ByCategory map[string]float64 `json:"by_category"`
	Total      float64            `json:"total"`
}

func (x *expenses) stats(ctx context.Context, _ *mcp.CallToolRequest, _ struct{}) (*mcp.CallToolResult, StatsOutput, error) {
	out := StatsOutput{ByCategory: map[string]float64{}}
	raw, err := x.db.Get(ctx, "index", "users")
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return nil, out, err
	}
	var users []string
	json.Unmarshal(raw, &users)
	out.Users = len(users)
	for _, u := range users {
		data, err := x.db.Get(ctx, "expenses", u)
		if err != nil {
			continue
		}
		var list []Expense
		json.Unmarshal(data, &list)
		for _, e := range list {
			out.ByCategory[e.Category] += e.Amount
			out.Total += e.Amount
		}
	}
	cats := make([]string, 0, len(out.ByCategory))
	for c := range out.ByCategory {
		cats = append(cats, c)
	}
	sort.Strings(cats)
	var b strings.Builder
	fmt.Fprintf(&b, "%d user(s), total %.2f\n", out.Users, out.Total)
	for _, c := range cats {
		fmt.Fprintf(&b, "- %s: %.2f\n", c, out.ByCategory[c])
	}
	return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: b.String()}}}, out, nil
}

func toolError(msg string) *mcp.CallToolResult {
	return &mcp.CallToolResult{IsError: true, Content: []mcp.Content{&mcp.TextContent{Text: msg}}}
}
