package graph

import (
	"context"
	"fmt"
	"net/url"
	"regexp"
	"strings"
	"time"
)

// User is the profile GET /v1.0/me returns.
type User struct {
	ID                string   `json:"id"`
	DisplayName       string   `json:"displayName"`
	GivenName         string   `json:"givenName"`
	Surname           string   `json:"surname"`
	UserPrincipalName string   `json:"userPrincipalName"`
	Mail              string   `json:"mail"`
	JobTitle          string   `json:"jobTitle"`
	OfficeLocation    string   `json:"officeLocation"`
	BusinessPhones    []string `json:"businessPhones"`
	MobilePhone       string   `json:"mobilePhone"`
	PreferredLanguage string   `json:"preferredLanguage"`
}

// Me returns the signed-in user's profile.
func (c *Client) Me(ctx context.Context, token string) (*User, error) {
	var u User
	err := c.Get(ctx, token, Request{Path: "/v1.0/me", Query: url.Values{"$select": {"id,displayName,givenName,surname,userPrincipalName,mail,jobTitle,officeLocation,businessPhones,mobilePhone,preferredLanguage"}}}, &u)
	return &u, err
}

// Group is a group as membership queries return it.
type Group struct {
	ID              string   `json:"id"`
	DisplayName     string   `json:"displayName"`
	Description     string   `json:"description"`
	SecurityEnabled bool     `json:"securityEnabled"`
	MailEnabled     bool     `json:"mailEnabled"`
	GroupTypes      []string `json:"groupTypes"`
}

var guidRe = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)

// MemberOf reports whether the signed-in user is a member of group, directly or through
// nesting, and returns the group when so. It needs GroupMember.Read.All (or Group.Read.All,
// Directory.Read.All).
func (c *Client) MemberOf(ctx context.Context, token, groupID string) (*Group, bool, error) {
	if !guidRe.MatchString(groupID) {
		return nil, false, fmt.Errorf("group id %q is not a GUID", groupID)
	}
	groups, _, err := List[Group](ctx, c, token, Request{
		Path:     "/v1.0/me/transitiveMemberOf/microsoft.graph.group",
		Query:    url.Values{"$filter": {"id eq '" + strings.ToLower(groupID) + "'"}, "$count": {"true"}, "$select": {"id,displayName,description"}},
		Eventual: true,
	}, 1)
	if err != nil || len(groups) == 0 {
		return nil, false, err
	}
	return &groups[0], true, nil
}

// MyGroups lists the signed-in user's groups (transitive), optionally those whose name starts
// with prefix, at most max.
func (c *Client) MyGroups(ctx context.Context, token, prefix string, max int) ([]Group, int, error) {
	q := url.Values{"$count": {"true"}, "$select": {"id,displayName,description,securityEnabled,mailEnabled,groupTypes"}, "$top": {"100"}}
	if prefix != "" {
		q.Set("$filter", "startswith(displayName,"+quote(prefix)+")")
	}
	groups, count, err := List[Group](ctx, c, token, Request{Path: "/v1.0/me/transitiveMemberOf/microsoft.graph.group", Query: q, Eventual: true}, max)
	total := len(groups)
	if count != nil {
		total = *count
	}
	return groups, total, err
}

// quote makes an OData string literal.
func quote(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// Message is a Microsoft 365 Message Center post.
type Message struct {
	ID                       string     `json:"id"`
	Title                    string     `json:"title"`
	Category                 string     `json:"category"`
	Severity                 string     `json:"severity"`
	IsMajorChange            bool       `json:"isMajorChange"`
	Tags                     []string   `json:"tags"`
	Services                 []string   `json:"services"`
	StartDateTime            *time.Time `json:"startDateTime"`
	EndDateTime              *time.Time `json:"endDateTime"`
	LastModifiedDateTime     *time.Time `json:"lastModifiedDateTime"`
	ActionRequiredByDateTime *time.Time `json:"actionRequiredByDateTime"`
	Body                     *struct {
		ContentType string `json:"contentType"`
		Content     string `json:"content"`
	} `json:"body,omitempty"`
}

// AdminCenterLink is where an admin reads the post in the Microsoft 365 admin center.
func (m Message) AdminCenterLink() string {
	return "https://admin.microsoft.com/#/MessageCenter/:/messages/" + url.PathEscape(m.ID)
}

// MessageQuery selects Message Center posts.
type MessageQuery struct {
	Filter   string // an OData $filter built by the caller (see MessageFilter)
	OrderBy  string
	Top      int // page size; 0 with Count asks only for the count
	Skip     int
	Count    bool
	PageSize int
	Max      int // stop after this many posts
}

// Messages lists Message Center posts (ServiceMessage.Read.All and a Microsoft 365 role such
// as Message Center Reader).
func (c *Client) Messages(ctx context.Context, token string, q MessageQuery) ([]Message, *int, error) {
	v := url.Values{"$select": {"id,title,category,severity,isMajorChange,tags,services,startDateTime,endDateTime,lastModifiedDateTime,actionRequiredByDateTime"}}
	if q.Filter != "" {
		v.Set("$filter", q.Filter)
	}
	if q.OrderBy != "" {
		v.Set("$orderby", q.OrderBy)
	}
	if q.Count {
		v.Set("$count", "true")
	}
	if q.Skip > 0 {
		v.Set("$skip", fmt.Sprint(q.Skip))
	}
	req := Request{Path: "/v1.0/admin/serviceAnnouncement/messages", Query: v, PageSize: q.PageSize}
	if q.Top == 0 && q.Count {
		v.Set("$top", "0")
		var p Page[Message]
		err := c.Get(ctx, token, req, &p)
		return nil, p.Count, err
	}
	if q.Top > 0 {
		v.Set("$top", fmt.Sprint(q.Top))
	}
	max := q.Max
	if max == 0 {
		max = q.Top
	}
	return List[Message](ctx, c, token, req, max)
}

// Message returns one post with its body.
func (c *Client) Message(ctx context.Context, token, id string) (*Message, error) {
	var m Message
	err := c.Get(ctx, token, Request{Path: "/v1.0/admin/serviceAnnouncement/messages/" + url.PathEscape(id)}, &m)
	return &m, err
}

// MessageFilter builds a safe $filter from structured conditions; empty values are ignored.
type MessageFilter struct {
	Category      string // preventOrFixIssue | planForChange | stayInformed
	Severity      string // normal | high | critical
	MajorOnly     bool
	TitleContains string
	Service       string
	ModifiedSince *time.Time
}

// String renders the filter, or "" when there are no conditions.
func (f MessageFilter) String() string {
	var parts []string
	if f.Category != "" {
		parts = append(parts, "category eq "+quote(f.Category))
	}
	if f.Severity != "" {
		parts = append(parts, "severity eq "+quote(f.Severity))
	}
	if f.MajorOnly {
		parts = append(parts, "isMajorChange eq true")
	}
	if f.TitleContains != "" {
		parts = append(parts, "contains(tolower(title),"+quote(strings.ToLower(f.TitleContains))+")")
	}
	if f.Service != "" {
		parts = append(parts, "services/any(s:s eq "+quote(f.Service)+")")
	}
	if f.ModifiedSince != nil {
		parts = append(parts, "lastModifiedDateTime ge "+f.ModifiedSince.UTC().Format("2006-01-02T15:04:05Z"))
	}
	return strings.Join(parts, " and ")
}
