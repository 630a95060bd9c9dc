package emulator

import (
	"slices"
	"strings"
)

// scopeRequest is a parsed `scope` parameter: one resource and its scope values, plus the
// OpenID Connect scopes, which are never prefixed and never appear in scp.
type scopeRequest struct {
	resource  *Application
	via       string   // how the client named the resource: identifier URI, appId, or "" (bare Graph scope)
	values    []string // scope values without prefix; [".default"] for the default scope
	isDefault bool
	oidc      []string // lower-cased openid, profile, email, offline_access
	implicit  bool     // only OIDC scopes were asked: Entra returns a Graph token
}

func (s *scopeRequest) has(oidc string) bool { return slices.Contains(s.oidc, oidc) }

// parseScopes resolves a scope string as Entra does: one resource per request, bare names are
// Microsoft Graph scopes, and .default cannot be mixed with explicit scopes of that resource.
// The caller holds the directory lock.
func (d *directory) parseScopes(raw string) (*scopeRequest, *aadError) {
	fields := strings.Fields(raw)
	if len(fields) == 0 {
		return nil, aad("invalid_request", 900144, "The request body must contain the following parameter: 'scope'.")
	}
	sr := &scopeRequest{}
	for _, s := range fields {
		if isOIDCScope(s) {
			if l := strings.ToLower(s); !slices.Contains(sr.oidc, l) {
				sr.oidc = append(sr.oidc, l)
			}
			continue
		}
		res, via, value := d.splitScope(s)
		if res == nil {
			return nil, aad("invalid_resource", 500011, "The resource principal named %s was not found in the tenant named %s. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You might have sent your authentication request to the wrong tenant.", via, d.tenant.DisplayName)
		}
		if sr.resource != nil && sr.resource != res {
			return nil, aad("invalid_scope", 28000, "Provided value for the input parameter scope is not valid because it contains more than one resource. Scope %s is not valid.", raw)
		}
		if d.spByAppID(res.AppID) == nil {
			return nil, aad("invalid_resource", 500011, "The resource principal named %s was not found in the tenant named %s. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You might have sent your authentication request to the wrong tenant.", via, d.tenant.DisplayName)
		}
		sr.resource, sr.via = res, via
		if value == ".default" {
			sr.isDefault = true
		} else {
			ps := findScope(res, value)
			if ps == nil || !ps.IsEnabled {
				return nil, aad("invalid_scope", 70011, "The provided request must include a 'scope' input parameter. The provided value for the input parameter 'scope' is not valid. The scope '%s' does not exist on the resource '%s'.", s, res.AppID)
			}
			value = ps.Value
		}
		if !slices.Contains(sr.values, value) {
			sr.values = append(sr.values, value)
		}
	}
	if sr.isDefault && len(sr.values) > 1 {
		return nil, aad("invalid_scope", 70011, "The provided value for the input parameter 'scope' is not valid. The scope '%s' is not valid: .default scope can't be combined with resource-specific scopes.", raw)
	}
	if sr.resource == nil {
		sr.resource, sr.via, sr.implicit = d.graphApp, GraphAppID, true
		sr.values = []string{"User.Read"}
	}
	return sr, nil
}

// splitScope finds the resource a scope belongs to by its longest known prefix. Bare scope
// names belong to Microsoft Graph.
func (d *directory) splitScope(s string) (*Application, string, string) {
	if !strings.Contains(s, "/") {
		return d.graphApp, "", s
	}
	for i := strings.LastIndex(s, "/"); i > 0; i = strings.LastIndex(s[:i], "/") {
		if res := d.resourceByIdentifier(s[:i]); res != nil {
			return res, s[:i], s[i+1:]
		}
	}
	via := s[:strings.LastIndex(s, "/")]
	return nil, via, ""
}

// audience is the v1 aud value: the identifier the client used, or the appId for bare scopes.
func (sr *scopeRequest) audience() string {
	if sr.via == "" {
		return sr.resource.AppID
	}
	return sr.via
}

// grantScopes decides which requested scopes client may have for user, and which still need
// consent. For .default, every scope already granted is returned; nothing granted means consent
// is missing.
func (d *directory) grantScopes(client *Application, u *User, sr *scopeRequest) (granted, missing []string) {
	if sr.implicit {
		return []string{"User.Read"}, nil
	}
	if client.AppID == sr.resource.AppID { // an app may always call its own API
		if sr.isDefault {
			for _, s := range sr.resource.API.OAuth2PermissionScopes {
				if s.IsEnabled {
					granted = append(granted, s.Value)
				}
			}
			return granted, nil
		}
		return sr.values, nil
	}
	have := d.grantedScopes(client, sr.resource, u)
	if sr.isDefault {
		for _, s := range sr.resource.API.OAuth2PermissionScopes {
			if s.IsEnabled && have[s.Value] && !isOIDCScope(s.Value) {
				granted = append(granted, s.Value)
			}
		}
		if len(granted) == 0 {
			missing = d.requiredScopes(client, sr.resource)
			if len(missing) == 0 {
				missing = []string{".default"}
			}
		}
		return granted, missing
	}
	for _, v := range sr.values {
		if have[v] {
			granted = append(granted, v)
		} else {
			missing = append(missing, v)
		}
	}
	return granted, missing
}

// requiredScopes lists the delegated scopes the client's registration asks for on resource (what
// a .default consent prompt shows).
func (d *directory) requiredScopes(client, resource *Application) []string {
	var out []string
	for _, rra := range client.RequiredResourceAccess {
		if !strings.EqualFold(rra.ResourceAppID, resource.AppID) {
			continue
		}
		for _, ra := range rra.ResourceAccess {
			for _, s := range resource.API.OAuth2PermissionScopes {
				if ra.Type == "Scope" && ra.ID == s.ID && s.IsEnabled {
					out = append(out, s.Value)
				}
			}
		}
	}
	return out
}

// responseScope is the `scope` of a token response: prefixed the way the client named the
// resource (short names for bare Graph scopes).
func (sr *scopeRequest) responseScope(granted []string) string {
	out := make([]string, 0, len(granted))
	for _, g := range granted {
		if sr.via == "" || sr.implicit {
			out = append(out, g)
		} else {
			out = append(out, sr.via+"/"+g)
		}
	}
	if sr.isDefault {
		// Entra echoes the .default scope after the expanded list; MSAL treats a requested
		// scope missing from the response as declined.
		out = append(out, sr.via+"/.default")
	}
	for _, o := range sr.oidc {
		if o != "offline_access" && sr.implicit {
			out = append(out, o)
		}
	}
	return strings.Join(out, " ")
}
