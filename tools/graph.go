package tools

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/entramcp/entramcp/entra"
	"github.com/entramcp/entramcp/graph"
	"github.com/entramcp/entramcp/mcpauth"
)

// Graph is the set of Microsoft Graph tools. Every call runs as the signed-in user: the caller's
// token is exchanged On-Behalf-Of for a Graph token, so Graph enforces the user's own
// permissions and roles.
type Graph struct {
	OBO    *entra.OBOClient
	Client *graph.Client
	// Scopes requested for Graph; default {Client.BaseURL()+"/.default"}.
	Scopes []string
	// AdminGroupID gates the admin-only tools.
	AdminGroupID string
	// MessageCenter is "admins" (default: only AdminGroupID members see the Message Center
	// tools), "all" (anyone; Graph still requires the user's Message Center role) or "off".
	MessageCenter string
	// GroupCacheTTL is how long a Graph group-membership answer is reused per user (default 5m).
	GroupCacheTTL time.Duration
	Logger        *slog.Logger

	groupMu    sync.Mutex
	groupCache map[string]groupAnswer
}

type groupAnswer struct {
	in    bool
	until time.Time
}

func (g *Graph) scopes() []string {
	if len(g.Scopes) > 0 {
		return g.Scopes
	}
	return []string{g.Client.BaseURL() + "/.default"}
}

// Register adds the tools to s and their requirements to p.
func (g *Graph) Register(s *mcp.Server, p *mcpauth.Policy) {
	if g.Logger == nil {
		g.Logger = slog.New(slog.DiscardHandler)
	}
	mcp.AddTool(s, &mcp.Tool{Name: "whoami", Title: "Who am I",
		Description: "Returns the signed-in caller: identity from the access token (tenant, object id, scopes, roles, groups) and the Microsoft Graph profile (display name, job title, mail, office).",
		Annotations: &mcp.ToolAnnotations{ReadOnlyHint: true}}, g.whoami)
	mcp.AddTool(s, &mcp.Tool{Name: "check_group_membership", Title: "Check group membership",
		Description: "Checks whether the signed-in user is a member of an Entra group, directly or through nested groups, and returns the group's name.",
		Annotations: &mcp.ToolAnnotations{ReadOnlyHint: true}}, WithOBO(g.OBO, g.scopes(), g.checkGroup))
	mcp.AddTool(s, &mcp.Tool{Name: "list_my_groups", Title: "List my groups",
		Description: "Lists the Entra groups the signed-in user belongs to (including nested membership), optionally only those whose name starts with a prefix.",
		Annotations: &mcp.ToolAnnotations{ReadOnlyHint: true}}, WithOBO(g.OBO, g.scopes(), g.listGroups))
	mode := g.MessageCenter
	if mode == "" {
		mode = "admins"
	}
	switch {
	case mode == "off":
		return
	case mode == "admins" && g.AdminGroupID == "":
		g.Logger.Warn("Message Center tools are admin-only but ENTRAMCP_ADMIN_GROUP_ID is not set; they are not offered")
		return
	}
	mcp.AddTool(s, &mcp.Tool{Name: "get_service_messages", Title: "Microsoft 365 Message Center",
		Description: "Lists Microsoft 365 Message Center posts (service changes and announcements) with filters. Set top to 0 with count to get only how many match. Needs the Message Center Reader role in Microsoft 365.",
		Annotations: &mcp.ToolAnnotations{ReadOnlyHint: true}}, WithOBO(g.OBO, g.scopes(), g.messages))
	mcp.AddTool(s, &mcp.Tool{Name: "get_message", Title: "Message Center post",
		Description: "Returns one Microsoft 365 Message Center post by id (for example MC172851) with its full body and the admin center link.",
		Annotations: &mcp.ToolAnnotations{ReadOnlyHint: true}}, WithOBO(g.OBO, g.scopes(), g.message))
	if mode == "admins" {
		for _, t := range []string{"get_service_messages", "get_message"} {
			p.Require(t, mcpauth.Requirement{Groups: []string{g.AdminGroupID}})
		}
	}
}

// WhoAmIProfile is the Graph part of whoami.
type WhoAmIProfile struct {
	DisplayName    string `json:"display_name,omitempty"`
	JobTitle       string `json:"job_title,omitempty"`
	Mail           string `json:"mail,omitempty"`
	OfficeLocation string `json:"office_location,omitempty"`
	UPN            string `json:"user_principal_name,omitempty"`
}

// WhoAmIGraphOutput is whoami with the Graph profile.
type WhoAmIGraphOutput struct {
	WhoAmIOutput
	Profile      *WhoAmIProfile `json:"profile,omitempty"`
	ProfileError string         `json:"profile_error,omitempty"`
}

func (g *Graph) whoami(ctx context.Context, req *mcp.CallToolRequest, in WhoAmIInput) (*mcp.CallToolResult, WhoAmIGraphOutput, error) {
	res, base, err := whoami(ctx, req, in)
	if err != nil {
		return nil, WhoAmIGraphOutput{}, err
	}
	out := WhoAmIGraphOutput{WhoAmIOutput: base}
	id := mcpauth.IdentityFrom(req)
	if id.AppOnly {
		return res, out, nil
	}
	text := res.Content[0].(*mcp.TextContent).Text
	tok, err := g.OBO.Token(ctx, id.Token(), id.Expiry, g.scopes())
	var me *graph.User
	if err == nil {
		me, err = g.Client.Me(ctx, tok.AccessToken)
	}
	if err != nil {
		// The identity part stands on its own; say why the profile is missing.
		var oe *entra.OBOError
		var msg string
		if errors.As(err, &oe) {
			msg = ToolErrorForOBO(req, err).Content[0].(*mcp.TextContent).Text
		} else {
			msg = toolErrorForGraph(err, "Microsoft Graph denied reading your profile").Content[0].(*mcp.TextContent).Text
		}
		out.ProfileError = msg
		text += "Profile: unavailable: " + msg + "\n"
	} else {
		out.Profile = &WhoAmIProfile{DisplayName: me.DisplayName, JobTitle: me.JobTitle, Mail: me.Mail, OfficeLocation: me.OfficeLocation, UPN: me.UserPrincipalName}
		text += fmt.Sprintf("Profile: %s, %s, %s, %s\n", me.DisplayName, orDash(me.JobTitle), orDash(me.Mail), orDash(me.OfficeLocation))
	}
	return textResult(text), out, nil
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// GroupInput names a group.
type GroupInput struct {
	GroupID string `json:"group_id" jsonschema:"the group's object id (a GUID), as shown in the Entra admin center"`
}

// GroupOutput answers check_group_membership.
type GroupOutput struct {
	GroupID   string `json:"group_id"`
	Member    bool   `json:"member"`
	GroupName string `json:"group_name,omitempty"`
}

var guidPattern = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)

func (g *Graph) checkGroup(ctx context.Context, _ *mcp.CallToolRequest, in GroupInput, tok *entra.DownstreamToken) (*mcp.CallToolResult, GroupOutput, error) {
	if !guidPattern.MatchString(in.GroupID) {
		return errorResult("group_id must be a group object id (a GUID such as 0f4e8c2a-6b1d-4a7e-9c35-8d2f1e6b4a90)"), GroupOutput{}, nil
	}
	grp, in2, err := g.Client.MemberOf(ctx, tok.AccessToken, in.GroupID)
	if err != nil {
		return toolErrorForGraph(err, "Microsoft Graph denied reading your group memberships; the server app needs GroupMember.Read.All"), GroupOutput{}, nil
	}
	out := GroupOutput{GroupID: strings.ToLower(in.GroupID), Member: in2}
	if !in2 {
		return textResult("You are not a member of group " + out.GroupID + " (directly or through nested groups)."), out, nil
	}
	out.GroupName = grp.DisplayName
	return textResult(fmt.Sprintf("You are a member of %q (%s).", grp.DisplayName, out.GroupID)), out, nil
}

// ListGroupsInput filters list_my_groups.
type ListGroupsInput struct {
	NamePrefix string `json:"name_prefix,omitempty" jsonschema:"only groups whose display name starts with this text"`
	Max        int    `json:"max,omitempty" jsonschema:"at most this many groups, 1 to 999 (default 100)"`
}

// ListGroupsOutput lists groups.
type ListGroupsOutput struct {
	Total  int          `json:"total"`
	Groups []GroupBrief `json:"groups"`
}

// GroupBrief is one group in list_my_groups.
type GroupBrief struct {
	ID          string `json:"id"`
	DisplayName string `json:"display_name"`
	Description string `json:"description,omitempty"`
}

func (g *Graph) listGroups(ctx context.Context, _ *mcp.CallToolRequest, in ListGroupsInput, tok *entra.DownstreamToken) (*mcp.CallToolResult, ListGroupsOutput, error) {
	if in.Max == 0 {
		in.Max = 100
	}
	if in.Max < 1 || in.Max > 999 {
		return errorResult("max must be between 1 and 999"), ListGroupsOutput{}, nil
	}
	if len(in.NamePrefix) > 120 {
		return errorResult("name_prefix is too long (120 characters at most)"), ListGroupsOutput{}, nil
	}
	groups, total, err := g.Client.MyGroups(ctx, tok.AccessToken, in.NamePrefix, in.Max)
	if err != nil {
		return toolErrorForGraph(err, "Microsoft Graph denied reading your group memberships; the server app needs GroupMember.Read.All"), ListGroupsOutput{}, nil
	}
	out := ListGroupsOutput{Total: total, Groups: []GroupBrief{}}
	var b strings.Builder
	fmt.Fprintf(&b, "%d group(s)", total)
	if len(groups) < total {
		fmt.Fprintf(&b, ", showing %d", len(groups))
	}
	b.WriteString(":\n")
	for _, gr := range groups {
		out.Groups = append(out.Groups, GroupBrief{ID: gr.ID, DisplayName: gr.DisplayName, Description: gr.Description})
		fmt.Fprintf(&b, "- %s (%s)\n", gr.DisplayName, gr.ID)
	}
	return textResult(b.String()), out, nil
}

// MessagesInput filters get_service_messages.
type MessagesInput struct {
	Category      string `json:"category,omitempty" jsonschema:"preventOrFixIssue, planForChange or stayInformed"`
	Severity      string `json:"severity,omitempty" jsonschema:"normal, high or critical"`
	MajorOnly     bool   `json:"major_only,omitempty" jsonschema:"only major changes"`
	TitleContains string `json:"title_contains,omitempty" jsonschema:"only posts whose title contains this text (case-insensitive)"`
	Service       string `json:"service,omitempty" jsonschema:"only posts about this service, e.g. Exchange Online"`
	ModifiedSince string `json:"modified_since,omitempty" jsonschema:"only posts changed on or after this date (YYYY-MM-DD or RFC 3339)"`
	OrderBy       string `json:"order_by,omitempty" jsonschema:"lastModifiedDateTime desc (default), lastModifiedDateTime asc, startDateTime desc, title asc"`
	Top           *int   `json:"top,omitempty" jsonschema:"how many posts, 0 to 100 (default 20); 0 with count returns only the count"`
	Skip          int    `json:"skip,omitempty" jsonschema:"skip this many posts (paging)"`
	Count         bool   `json:"count,omitempty" jsonschema:"also return how many posts match"`
}

// MessagesOutput is get_service_messages' structured result.
type MessagesOutput struct {
	Count    *int           `json:"count,omitempty"`
	Messages []MessageBrief `json:"messages"`
}

// MessageBrief is one post in a list.
type MessageBrief struct {
	ID               string   `json:"id"`
	Title            string   `json:"title"`
	Category         string   `json:"category"`
	Severity         string   `json:"severity"`
	IsMajorChange    bool     `json:"is_major_change"`
	Services         []string `json:"services"`
	LastModified     string   `json:"last_modified,omitempty"`
	ActionRequiredBy string   `json:"action_required_by,omitempty"`
	Link             string   `json:"link"`
}

var orderings = []string{"lastModifiedDateTime desc", "lastModifiedDateTime asc", "startDateTime desc", "startDateTime asc", "title asc", "title desc"}

func (g *Graph) messages(ctx context.Context, _ *mcp.CallToolRequest, in MessagesInput, tok *entra.DownstreamToken) (*mcp.CallToolResult, MessagesOutput, error) {
	f := graph.MessageFilter{MajorOnly: in.MajorOnly, TitleContains: in.TitleContains, Service: in.Service}
	switch in.Category {
	case "", "preventOrFixIssue", "planForChange", "stayInformed":
		f.Category = in.Category
	default:
		return errorResult("category must be preventOrFixIssue, planForChange or stayInformed"), MessagesOutput{}, nil
	}
	switch in.Severity {
	case "", "normal", "high", "critical":
		f.Severity = in.Severity
	default:
		return errorResult("severity must be normal, high or critical"), MessagesOutput{}, nil
	}
	if len(in.TitleContains) > 200 || len(in.Service) > 200 {
		return errorResult("title_contains and service take at most 200 characters"), MessagesOutput{}, nil
	}
	if in.ModifiedSince != "" {
		t, err := parseDate(in.ModifiedSince)
		if err != nil {
			return errorResult("modified_since must be a date such as 2026-01-31 or 2026-01-31T00:00:00Z"), MessagesOutput{}, nil
		}
		f.ModifiedSince = &t
	}
	order := in.OrderBy
	if order == "" {
		order = orderings[0]
	}
	valid := false
	for _, o := range orderings {
		valid = valid || o == order
	}
	if !valid {
		return errorResult("order_by must be one of: " + strings.Join(orderings, ", ")), MessagesOutput{}, nil
	}
	top := 20
	if in.Top != nil {
		top = *in.Top
	}
	if top < 0 || top > 100 || in.Skip < 0 || in.Skip > 10_000 {
		return errorResult("top must be 0 to 100 and skip 0 to 10000"), MessagesOutput{}, nil
	}
	if top == 0 && !in.Count {
		return errorResult("top 0 returns nothing; set count to true to get only the number of matching posts"), MessagesOutput{}, nil
	}
	msgs, count, err := g.Client.Messages(ctx, tok.AccessToken, graph.MessageQuery{Filter: f.String(), OrderBy: order, Top: top, Skip: in.Skip, Count: in.Count, Max: top})
	if err != nil {
		return toolErrorForGraph(err, "Your account lacks the Message Center Reader role (or the server app lacks ServiceMessage.Read.All)"), MessagesOutput{}, nil
	}
	out := MessagesOutput{Count: count, Messages: []MessageBrief{}}
	var b strings.Builder
	if count != nil {
		fmt.Fprintf(&b, "%d matching post(s).\n", *count)
	}
	for _, m := range msgs {
		mb := MessageBrief{ID: m.ID, Title: m.Title, Category: m.Category, Severity: m.Severity, IsMajorChange: m.IsMajorChange, Services: m.Services, Link: m.AdminCenterLink()}
		if m.LastModifiedDateTime != nil {
			mb.LastModified = m.LastModifiedDateTime.UTC().Format(time.DateOnly)
		}
		if m.ActionRequiredByDateTime != nil {
			mb.ActionRequiredBy = m.ActionRequiredByDateTime.UTC().Format(time.DateOnly)
		}
		out.Messages = append(out.Messages, mb)
		major := ""
		if m.IsMajorChange {
			major = ", major change"
		}
		fmt.Fprintf(&b, "- %s: %s [%s, %s%s] updated %s %s\n", m.ID, m.Title, m.Category, m.Severity, major, mb.LastModified, mb.Link)
	}
	if len(msgs) == 0 && count == nil {
		b.WriteString("No matching posts.\n")
	}
	return textResult(b.String()), out, nil
}

func parseDate(s string) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	return time.Parse(time.DateOnly, s)
}

// MessageInput names a post.
type MessageInput struct {
	ID string `json:"id" jsonschema:"the post id, for example MC172851"`
}

// MessageOutput is one post.
type MessageOutput struct {
	MessageBrief
	Body string `json:"body"`
}

var messageID = regexp.MustCompile(`^MC[0-9]{3,10}$`)

func (g *Graph) message(ctx context.Context, _ *mcp.CallToolRequest, in MessageInput, tok *entra.DownstreamToken) (*mcp.CallToolResult, MessageOutput, error) {
	id := strings.ToUpper(strings.TrimSpace(in.ID))
	if !messageID.MatchString(id) {
		return errorResult("id must look like MC172851"), MessageOutput{}, nil
	}
	m, err := g.Client.Message(ctx, tok.AccessToken, id)
	if err != nil {
		return toolErrorForGraph(err, "Your account lacks the Message Center Reader role (or the server app lacks ServiceMessage.Read.All)"), MessageOutput{}, nil
	}
	out := MessageOutput{MessageBrief: MessageBrief{ID: m.ID, Title: m.Title, Category: m.Category, Severity: m.Severity, IsMajorChange: m.IsMajorChange, Services: m.Services, Link: m.AdminCenterLink()}}
	if m.Body != nil {
		out.Body = m.Body.Content
	}
	return textResult(fmt.Sprintf("%s: %s\n%s\n\n%s", m.ID, m.Title, out.Link, out.Body)), out, nil
}

// InAnyGroup implements mcpauth.GroupChecker: the token's groups claim when it has one, and
// Microsoft Graph (On-Behalf-Of) when the claim is absent or overflowed, with answers cached per
// user for GroupCacheTTL. Errors deny.
func (g *Graph) InAnyGroup(ctx context.Context, id *entra.Identity, groups []string) (bool, error) {
	if id.Groups != nil && !id.GroupsOverage {
		return mcpauth.ClaimsGroups{}.InAnyGroup(ctx, id, groups)
	}
	ttl := g.GroupCacheTTL
	if ttl == 0 {
		ttl = 5 * time.Minute
	}
	now := time.Now()
	var tok *entra.DownstreamToken
	for _, grp := range groups {
		key := id.UserKey() + "|" + strings.ToLower(grp)
		g.groupMu.Lock()
		a, ok := g.groupCache[key]
		g.groupMu.Unlock()
		if !ok || now.After(a.until) {
			if tok == nil {
				t, err := g.OBO.Token(ctx, id.Token(), id.Expiry, g.scopes())
				if err != nil {
					return false, err
				}
				tok = t
			}
			_, in, err := g.Client.MemberOf(ctx, tok.AccessToken, grp)
			if err != nil {
				return false, err
			}
			a = groupAnswer{in: in, until: now.Add(ttl)}
			g.groupMu.Lock()
			if g.groupCache == nil || len(g.groupCache) > 50_000 {
				g.groupCache = map[string]groupAnswer{}
			}
			g.groupCache[key] = a
			g.groupMu.Unlock()
		}
		if a.in {
			return true, nil
		}
	}
	return false, nil
}
