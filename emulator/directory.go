package emulator

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/entramcp/entramcp/internal/ids"
)

// directory is the live tenant: the configuration, indexed, plus everything changed at run time
// through Graph or the test controls. All access goes through its mutex.
type directory struct {
	mu       sync.RWMutex
	tenant   Tenant
	settings Settings

	apps      []*Application
	sps       []*ServicePrincipal
	users     []*User
	groups    []*Group
	grants    []*PermissionGrant
	roles     []roleAssignment
	policies  []*Policy
	mis       []*ManagedIdentity
	messages  []*ServiceMessage
	graphApp  *Application
	exchApp   *Application
	spCounter int
}

// roleAssignment grants one app role of a resource to a principal (app SP, user or group id).
type roleAssignment struct {
	PrincipalID string
	ResourceApp string // appId
	RoleID      string
}

var errConfig = errors.New("invalid emulator configuration")

func configErr(format string, args ...any) error {
	return fmt.Errorf("%w: %s", errConfig, fmt.Sprintf(format, args...))
}

// newDirectory validates cfg and builds the indexes. It deep-copies cfg so the caller's value is
// never mutated by Graph calls.
func newDirectory(cfg *Config) (*directory, error) {
	var c Config
	raw, err := json.Marshal(cfg)
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(raw, &c); err != nil {
		return nil, err
	}
	if !isGUID(c.Tenant.ID) {
		return nil, configErr("tenant.id %q is not a GUID", c.Tenant.ID)
	}
	if c.Tenant.Domain == "" {
		return nil, configErr("tenant.domain is required")
	}
	d := &directory{tenant: c.Tenant, settings: c.Settings, graphApp: graphApplication(), exchApp: tokenExchangeApplication()}
	d.apps = append(d.apps, d.graphApp, d.exchApp)
	for _, a := range c.Applications {
		if !isGUID(a.AppID) {
			return nil, configErr("application %q: appId %q is not a GUID", a.DisplayName, a.AppID)
		}
		if d.appByAppID(a.AppID) != nil {
			return nil, configErr("application %q: appId %s is used twice", a.DisplayName, a.AppID)
		}
		if a.ID == "" {
			a.ID = newGUID()
		}
		for i := range a.PasswordCredentials {
			if a.PasswordCredentials[i].KeyID == "" {
				a.PasswordCredentials[i].KeyID = newGUID()
			}
		}
		d.apps = append(d.apps, a)
	}
	for _, a := range d.apps {
		if !a.NoServicePrincipal {
			d.addServicePrincipal(a)
		}
	}
	seen := map[string]bool{}
	for _, u := range c.Users {
		if !isGUID(u.ID) {
			return nil, configErr("user %q: id %q is not a GUID", u.Name, u.ID)
		}
		if u.Name == "" || u.UserPrincipalName == "" {
			return nil, configErr("user %s: name and userPrincipalName are required", u.ID)
		}
		for _, k := range []string{strings.ToLower(u.Name), strings.ToLower(u.UserPrincipalName), u.ID} {
			if seen[k] {
				return nil, configErr("user %q is defined twice", k)
			}
			seen[k] = true
		}
		for _, r := range u.DirectoryRoles {
			if _, ok := directoryRoleTemplates[r]; !ok {
				return nil, configErr("user %q: unknown directory role %q", u.Name, r)
			}
		}
		if u.BusinessPhones == nil {
			u.BusinessPhones = []string{}
		}
		d.users = append(d.users, u)
	}
	for _, g := range c.Groups {
		if !isGUID(g.ID) {
			return nil, configErr("group %q: id %q is not a GUID", g.DisplayName, g.ID)
		}
		d.groups = append(d.groups, g)
	}
	for _, g := range d.groups {
		for _, m := range g.Members {
			if d.userByHint(m) == nil && d.groupByRef(m) == nil {
				return nil, configErr("group %q: member %q is neither a user nor a group", g.DisplayName, m)
			}
		}
	}
	for _, cc := range c.Consents {
		if err := d.addConsent(cc); err != nil {
			return nil, configErr("consent %s -> %s: %v", cc.Client, cc.Resource, err)
		}
	}
	for _, ra := range c.RoleAssignments {
		if err := d.addRoleAssignment(ra); err != nil {
			return nil, configErr("role assignment on %s: %v", ra.Resource, err)
		}
	}
	for _, p := range c.Policies {
		if p.Require != "mfa" {
			return nil, configErr("policy %q: require must be \"mfa\"", p.DisplayName)
		}
		if p.ID == "" {
			p.ID = newGUID()
		}
		d.policies = append(d.policies, p)
	}
	for _, mi := range c.ManagedIdentities {
		if !isGUID(mi.ClientID) || !isGUID(mi.PrincipalID) {
			return nil, configErr("managed identity %q: clientId and principalId must be GUIDs", mi.Name)
		}
		d.mis = append(d.mis, mi)
	}
	d.messages = c.ServiceMessages
	return d, nil
}

func (d *directory) addServicePrincipal(a *Application) *ServicePrincipal {
	d.spCounter++
	sp := &ServicePrincipal{
		ID: deriveGUID("sp", a.AppID), AppID: a.AppID, DisplayName: a.DisplayName, ServicePrincipalType: "Application",
		AppRoles: a.AppRoles, OAuth2PermissionScopes: a.API.OAuth2PermissionScopes,
		ServicePrincipalNames: append([]string{a.AppID}, a.IdentifierURIs...),
	}
	if sp.AppRoles == nil {
		sp.AppRoles = []AppRole{}
	}
	if sp.OAuth2PermissionScopes == nil {
		sp.OAuth2PermissionScopes = []PermissionScope{}
	}
	d.sps = append(d.sps, sp)
	return sp
}

// addConsent records a grant from configuration, merging scopes into an existing grant.
func (d *directory) addConsent(cc ConsentConfig) error {
	client, resource := d.appByRef(cc.Client), d.appByRef(cc.Resource)
	if client == nil || resource == nil {
		return errors.New("unknown client or resource app")
	}
	cs, rs := d.spByAppID(client.AppID), d.spByAppID(resource.AppID)
	if cs == nil || rs == nil {
		return errors.New("client or resource has no service principal")
	}
	principal := ""
	if cc.User != "" {
		u := d.userByHint(cc.User)
		if u == nil {
			return fmt.Errorf("unknown user %q", cc.User)
		}
		principal = u.ID
	}
	for _, s := range strings.Fields(cc.Scope) {
		if findScope(resource, s) == nil && !isOIDCScope(s) {
			return fmt.Errorf("scope %q is not exposed by %s", s, resource.DisplayName)
		}
	}
	d.mergeGrant(cs.ID, rs.ID, principal, strings.Fields(cc.Scope))
	return nil
}

// mergeGrant adds scopes to the grant for (client, resource, principal), creating it if needed.
func (d *directory) mergeGrant(clientSP, resourceSP, principalID string, scopes []string) *PermissionGrant {
	for _, g := range d.grants {
		if g.ClientID == clientSP && g.ResourceID == resourceSP && g.PrincipalID == principalID {
			have := strings.Fields(g.Scope)
			for _, s := range scopes {
				if !slices.Contains(have, s) {
					have = append(have, s)
				}
			}
			g.Scope = strings.Join(have, " ")
			return g
		}
	}
	ct := "AllPrincipals"
	if principalID != "" {
		ct = "Principal"
	}
	g := &PermissionGrant{ID: newGUID(), ClientID: clientSP, ResourceID: resourceSP, PrincipalID: principalID, ConsentType: ct, Scope: strings.Join(scopes, " ")}
	d.grants = append(d.grants, g)
	return g
}

func (d *directory) addRoleAssignment(ra RoleAssignmentConfig) error {
	res := d.appByRef(ra.Resource)
	if res == nil {
		return errors.New("unknown resource app")
	}
	var principal string
	switch {
	case ra.App != "":
		a := d.appByRef(ra.App)
		if a == nil || d.spByAppID(a.AppID) == nil {
			return fmt.Errorf("unknown app %q", ra.App)
		}
		principal = d.spByAppID(a.AppID).ID
	case ra.User != "":
		u := d.userByHint(ra.User)
		if u == nil {
			return fmt.Errorf("unknown user %q", ra.User)
		}
		principal = u.ID
	case ra.Group != "":
		g := d.groupByRef(ra.Group)
		if g == nil {
			return fmt.Errorf("unknown group %q", ra.Group)
		}
		principal = g.ID
	default:
		return errors.New("one of app, user or group is required")
	}
	for _, v := range ra.Roles {
		role := findRole(res, v)
		if role == nil {
			return fmt.Errorf("app role %q is not defined by %s", v, res.DisplayName)
		}
		d.roles = append(d.roles, roleAssignment{PrincipalID: principal, ResourceApp: res.AppID, RoleID: role.ID})
	}
	return nil
}

func (d *directory) appByAppID(id string) *Application {
	for _, a := range d.apps {
		if strings.EqualFold(a.AppID, id) {
			return a
		}
	}
	return nil
}

func (d *directory) appByObjectID(id string) *Application {
	for _, a := range d.apps {
		if strings.EqualFold(a.ID, id) {
			return a
		}
	}
	return nil
}

// appByRef finds an app by appId, display name or identifier URI (configuration convenience).
func (d *directory) appByRef(ref string) *Application {
	if a := d.appByAppID(ref); a != nil {
		return a
	}
	for _, a := range d.apps {
		if a.DisplayName == ref || slices.Contains(a.IdentifierURIs, ref) {
			return a
		}
	}
	return nil
}

// resourceByIdentifier resolves the resource part of a scope or a `resource` parameter: the
// appId GUID or one of the identifier URIs (compared case-insensitively, as Entra does).
func (d *directory) resourceByIdentifier(id string) *Application {
	if a := d.appByAppID(id); a != nil {
		return a
	}
	for _, a := range d.apps {
		for _, u := range a.IdentifierURIs {
			if strings.EqualFold(u, id) {
				return a
			}
		}
	}
	return nil
}

func (d *directory) spByAppID(appID string) *ServicePrincipal {
	for _, s := range d.sps {
		if strings.EqualFold(s.AppID, appID) {
			return s
		}
	}
	return nil
}

func (d *directory) spByID(id string) *ServicePrincipal {
	for _, s := range d.sps {
		if strings.EqualFold(s.ID, id) {
			return s
		}
	}
	return nil
}

// userByHint finds a user by short name, UPN or object id (login_hint accepts all three).
func (d *directory) userByHint(h string) *User {
	for _, u := range d.users {
		if strings.EqualFold(u.Name, h) || strings.EqualFold(u.UserPrincipalName, h) || strings.EqualFold(u.ID, h) {
			return u
		}
	}
	return nil
}

func (d *directory) userByID(id string) *User {
	for _, u := range d.users {
		if u.ID == id {
			return u
		}
	}
	return nil
}

func (d *directory) groupByRef(ref string) *Group {
	for _, g := range d.groups {
		if strings.EqualFold(g.ID, ref) || g.DisplayName == ref {
			return g
		}
	}
	return nil
}

func (d *directory) managedIdentity(clientID, principalID string) *ManagedIdentity {
	for _, mi := range d.mis {
		if (clientID != "" && strings.EqualFold(mi.ClientID, clientID)) || (principalID != "" && strings.EqualFold(mi.PrincipalID, principalID)) {
			return mi
		}
	}
	if clientID == "" && principalID == "" && len(d.mis) > 0 {
		return d.mis[0] // the "system-assigned" identity: the first one configured
	}
	return nil
}

// transitiveGroups returns every group the user belongs to, directly or through nesting.
func (d *directory) transitiveGroups(u *User) []*Group {
	in := map[string]bool{}
	var out []*Group
	changed := true
	for changed {
		changed = false
		for _, g := range d.groups {
			if in[g.ID] {
				continue
			}
			for _, m := range g.Members {
				if mu := d.userByHint(m); mu != nil && mu.ID == u.ID {
					in[g.ID] = true
				} else if mg := d.groupByRef(m); mg != nil && in[mg.ID] {
					in[g.ID] = true
				}
				if in[g.ID] {
					out = append(out, g)
					changed = true
					break
				}
			}
		}
	}
	return out
}

// directMemberOf reports whether principal (a user) is a direct member of g.
func (d *directory) directMember(g *Group, u *User) bool {
	for _, m := range g.Members {
		if mu := d.userByHint(m); mu != nil && mu.ID == u.ID {
			return true
		}
	}
	return false
}

// grantedScopes is the set of delegated scopes client may use on resource for user: admin
// consent, the user's own consent, and pre-authorization.
func (d *directory) grantedScopes(client, resource *Application, u *User) map[string]bool {
	out := map[string]bool{}
	cs, rs := d.spByAppID(client.AppID), d.spByAppID(resource.AppID)
	if cs != nil && rs != nil {
		for _, g := range d.grants {
			if g.ClientID == cs.ID && g.ResourceID == rs.ID && (g.ConsentType == "AllPrincipals" || (u != nil && g.PrincipalID == u.ID)) {
				for _, s := range strings.Fields(g.Scope) {
					out[s] = true
				}
			}
		}
	}
	for _, p := range resource.API.PreAuthorizedApplications {
		if strings.EqualFold(p.AppID, client.AppID) {
			for _, id := range p.DelegatedPermissionIDs {
				for _, s := range resource.API.OAuth2PermissionScopes {
					if s.ID == id && s.IsEnabled {
						out[s.Value] = true
					}
				}
			}
		}
	}
	if client.FirstParty && resource.AppID == GraphAppID {
		for _, s := range resource.API.OAuth2PermissionScopes {
			out[s.Value] = true
		}
	}
	return out
}

// roleValues returns the app role values of resource assigned to the principal ids given.
func (d *directory) roleValues(resource *Application, principals ...string) []string {
	var out []string
	for _, ra := range d.roles {
		if ra.ResourceApp != resource.AppID || !slices.Contains(principals, ra.PrincipalID) {
			continue
		}
		for _, r := range resource.AppRoles {
			if r.ID == ra.RoleID && r.IsEnabled && !slices.Contains(out, r.Value) {
				out = append(out, r.Value)
			}
		}
	}
	return out
}

// userRoleValues includes roles assigned to the user's groups, as Entra does.
func (d *directory) userRoleValues(resource *Application, u *User) []string {
	ids := []string{u.ID}
	for _, g := range d.transitiveGroups(u) {
		ids = append(ids, g.ID)
	}
	return d.roleValues(resource, ids...)
}

// mfaPolicy returns the first policy that requires MFA for u on resource, or nil.
func (d *directory) mfaPolicy(u *User, resource *Application) *Policy {
	for _, p := range d.policies {
		userMatch := false
		for _, x := range p.Users {
			if x == "*" || (d.userByHint(x) != nil && d.userByHint(x).ID == u.ID) {
				userMatch = true
			}
		}
		if !userMatch {
			continue
		}
		for _, r := range p.Resources {
			if r == "*" || (resource != nil && (strings.EqualFold(r, resource.AppID) || slices.Contains(resource.IdentifierURIs, r) || r == resource.DisplayName)) {
				return p
			}
		}
	}
	return nil
}

func (d *directory) anyMFAPolicy(u *User) *Policy {
	for _, p := range d.policies {
		for _, x := range p.Users {
			if x == "*" || (d.userByHint(x) != nil && d.userByHint(x).ID == u.ID) {
				return p
			}
		}
	}
	return nil
}

func findScope(a *Application, value string) *PermissionScope {
	for i := range a.API.OAuth2PermissionScopes {
		if strings.EqualFold(a.API.OAuth2PermissionScopes[i].Value, value) {
			return &a.API.OAuth2PermissionScopes[i]
		}
	}
	return nil
}

func findRole(a *Application, value string) *AppRole {
	for i := range a.AppRoles {
		if a.AppRoles[i].Value == value {
			return &a.AppRoles[i]
		}
	}
	return nil
}

// tokenVersion is the access-token format the resource asked for: 2, or 1 when unset.
func tokenVersion(a *Application) int {
	if a.API.RequestedAccessTokenVersion != nil && *a.API.RequestedAccessTokenVersion == 2 {
		return 2
	}
	return 1
}

func isOIDCScope(s string) bool {
	switch strings.ToLower(s) {
	case "openid", "profile", "email", "offline_access":
		return true
	}
	return false
}

func isGUID(s string) bool { return ids.IsGUID(s) }

func newGUID() string { return ids.NewGUID() }

// wids lists the directory role template ids of the user's roles, plus the default user role,
// or nothing when the user holds no role (as Entra omits the claim then).
func (d *directory) wids(u *User) []string {
	if len(u.DirectoryRoles) == 0 {
		return nil
	}
	out := []string{}
	for _, r := range u.DirectoryRoles {
		out = append(out, directoryRoleTemplates[r])
	}
	return append(out, defaultUserRoleTemplate)
}

// devServerApp is the app dev.json calls "server": the first configured, non-first-party app
// that exposes a delegated scope.
func (d *directory) devServerApp() *Application {
	for _, a := range d.apps {
		if !a.FirstParty && a.AppID != GraphAppID && a.AppID != TokenExchangeAppID && len(a.API.OAuth2PermissionScopes) > 0 {
			return a
		}
	}
	return nil
}

// devClientApp is dev.json's "client": the first configured public client that is not
// first-party.
func (d *directory) devClientApp() *Application {
	for _, a := range d.apps {
		if !a.FirstParty && a.IsFallbackPublicClient != nil && *a.IsFallbackPublicClient {
			return a
		}
	}
	return nil
}

// hasDirectoryRole reports whether u holds any of the named roles.
func (u *User) hasDirectoryRole(names ...string) bool {
	for _, r := range u.DirectoryRoles {
		if slices.Contains(names, r) {
			return true
		}
	}
	return false
}
