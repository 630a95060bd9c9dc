package entra

import (
	"context"
	"log/slog"
	"slices"
	"time"
)

// Identity is the verified caller of a request: who the user is (or which app, for app-only
// tokens), in which tenant, and what the token allows. It is immutable once made and may be
// shared between requests presenting the same token.
type Identity struct {
	// TenantID and ObjectID identify the user (or the calling app's service principal for
	// app-only tokens) across apps; use them, not Subject, to key per-user data.
	TenantID string
	ObjectID string
	// Subject is the pairwise sub claim: stable per user and app.
	Subject string
	// Name and PreferredUsername are for display only; both may be empty (v2 tokens carry them
	// only when the client asked for the profile scope) and both are mutable.
	Name              string
	PreferredUsername string
	// ClientAppID is the application that obtained the token (azp in v2, appid in v1).
	ClientAppID string
	// Scopes are the delegated permissions granted, short names (scp claim).
	Scopes []string
	// Roles are the app roles granted (roles claim).
	Roles []string
	// Groups are group object ids from the groups claim; GroupsOverage is true when Entra left
	// them out because there were too many (ask Graph instead).
	Groups        []string
	GroupsOverage bool
	// AppOnly marks a token without a user (client credentials).
	AppOnly bool
	// Version is the token format: "2.0" or "1.0".
	Version string
	// Expiry is when the token expires.
	Expiry time.Time

	token string
}

// Token is the raw access token, kept for On-Behalf-Of exchanges. Never log it.
func (id *Identity) Token() string { return id.token }

// UserKey is "tid:oid": the key to bind sessions and per-user state to.
func (id *Identity) UserKey() string { return id.TenantID + ":" + id.ObjectID }

// HasScope reports whether the token grants the delegated scope (short name).
func (id *Identity) HasScope(s string) bool { return slices.Contains(id.Scopes, s) }

// HasRole reports whether the token carries the app role.
func (id *Identity) HasRole(r string) bool { return slices.Contains(id.Roles, r) }

// InGroup reports whether the groups claim lists the group. With GroupsOverage it cannot tell:
// the answer is false and the caller should ask Graph.
func (id *Identity) InGroup(groupID string) bool { return slices.Contains(id.Groups, groupID) }

// String names the caller without any secret.
func (id *Identity) String() string {
	if id.AppOnly {
		return "app " + id.ClientAppID + " (tenant " + id.TenantID + ")"
	}
	return "user " + id.UserKey()
}

// LogValue makes slog print who, never the token.
func (id *Identity) LogValue() slog.Value {
	return slog.GroupValue(slog.String("tid", id.TenantID), slog.String("oid", id.ObjectID), slog.String("app", id.ClientAppID), slog.Bool("app_only", id.AppOnly))
}

type identityKey struct{}

// WithIdentity returns a context carrying id.
func WithIdentity(ctx context.Context, id *Identity) context.Context {
	return context.WithValue(ctx, identityKey{}, id)
}

// IdentityFromContext returns the caller's identity, or nil when the request was not
// authenticated.
func IdentityFromContext(ctx context.Context) *Identity {
	id, _ := ctx.Value(identityKey{}).(*Identity)
	return id
}

// NewIdentity returns a copy of id carrying token as the assertion for On-Behalf-Of. It is for
// other verifiers (the OAuth proxy's own tokens resolve to the user's stored Entra token).
func NewIdentity(id Identity, token string) *Identity {
	id.token = token
	return &id
}
