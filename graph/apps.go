package graph

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"
)

// The app-registration calls `entramcp setup` and `doctor` make (ENTRA-FACTS section 7), with
// the admin's delegated Graph token.

// Application is the subset of an app registration entramcp reads and writes.
type Application struct {
	ID                     string                   `json:"id,omitempty"`
	AppID                  string                   `json:"appId,omitempty"`
	DisplayName            string                   `json:"displayName,omitempty"`
	SignInAudience         string                   `json:"signInAudience,omitempty"`
	IdentifierURIs         []string                 `json:"identifierUris"`
	Web                    *RedirectSettings        `json:"web,omitempty"`
	PublicClient           *RedirectSettings        `json:"publicClient,omitempty"`
	API                    *APISettings             `json:"api,omitempty"`
	RequiredResourceAccess []RequiredResourceAccess `json:"requiredResourceAccess,omitempty"`
	PasswordCredentials    []Credential             `json:"passwordCredentials,omitempty"`
	KeyCredentials         []Credential             `json:"keyCredentials,omitempty"`
}

// RedirectSettings is a platform's redirect URIs.
type RedirectSettings struct {
	RedirectURIs []string `json:"redirectUris"`
}

// APISettings is an app's exposed API.
type APISettings struct {
	RequestedAccessTokenVersion *int                       `json:"requestedAccessTokenVersion,omitempty"`
	OAuth2PermissionScopes      []PermissionScope          `json:"oauth2PermissionScopes,omitempty"`
	PreAuthorizedApplications   []PreAuthorizedApplication `json:"preAuthorizedApplications,omitempty"`
}

// PermissionScope is a delegated permission an API exposes.
type PermissionScope struct {
	ID                      string `json:"id"`
	Value                   string `json:"value"`
	Type                    string `json:"type,omitempty"`
	IsEnabled               bool   `json:"isEnabled"`
	AdminConsentDisplayName string `json:"adminConsentDisplayName,omitempty"`
	AdminConsentDescription string `json:"adminConsentDescription,omitempty"`
	UserConsentDisplayName  string `json:"userConsentDisplayName,omitempty"`
	UserConsentDescription  string `json:"userConsentDescription,omitempty"`
}

// PreAuthorizedApplication lets a client use scopes without consent.
type PreAuthorizedApplication struct {
	AppID                  string   `json:"appId"`
	DelegatedPermissionIDs []string `json:"delegatedPermissionIds"`
}

// RequiredResourceAccess lists permissions an app needs on one resource.
type RequiredResourceAccess struct {
	ResourceAppID  string           `json:"resourceAppId"`
	ResourceAccess []ResourceAccess `json:"resourceAccess"`
}

// ResourceAccess is one permission ("Scope" delegated, "Role" application).
type ResourceAccess struct {
	ID   string `json:"id"`
	Type string `json:"type"`
}

// Credential is a password or key credential's metadata (never the secret).
type Credential struct {
	KeyID       string     `json:"keyId"`
	DisplayName string     `json:"displayName,omitempty"`
	EndDateTime *time.Time `json:"endDateTime,omitempty"`
}

// ServicePrincipal is an app's instance in the tenant.
type ServicePrincipal struct {
	ID                     string            `json:"id"`
	AppID                  string            `json:"appId"`
	DisplayName            string            `json:"displayName"`
	OAuth2PermissionScopes []PermissionScope `json:"oauth2PermissionScopes"`
}

// PermissionGrant is a delegated permission grant.
type PermissionGrant struct {
	ID          string `json:"id,omitempty"`
	ClientID    string `json:"clientId"`
	ConsentType string `json:"consentType"`
	PrincipalID string `json:"principalId,omitempty"`
	ResourceID  string `json:"resourceId"`
	Scope       string `json:"scope"`
}

// Do sends a JSON request (for writes) and decodes the answer into out (may be nil).
func (c *Client) Do(ctx context.Context, token, method, path string, body, out any) error {
	var r io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, r)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.opts.HTTPClient.Do(req)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrUnavailable, redactURL(err))
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if resp.StatusCode/100 != 2 {
		return parseError(resp, data)
	}
	if out != nil && len(data) > 0 {
		return json.Unmarshal(data, out)
	}
	return nil
}

// ApplicationByAppID finds an app registration by its client id.
func (c *Client) ApplicationByAppID(ctx context.Context, token, appID string) (*Application, error) {
	var a Application
	err := c.Get(ctx, token, Request{Path: "/v1.0/applications(appId='" + url.PathEscape(appID) + "')"}, &a)
	return &a, err
}

// ServicePrincipalByAppID finds an app's service principal.
func (c *Client) ServicePrincipalByAppID(ctx context.Context, token, appID string) (*ServicePrincipal, error) {
	var sp ServicePrincipal
	err := c.Get(ctx, token, Request{Path: "/v1.0/servicePrincipals(appId='" + url.PathEscape(appID) + "')"}, &sp)
	return &sp, err
}

// Grants lists the delegated grants of a client service principal on a resource one.
func (c *Client) Grants(ctx context.Context, token, clientSP, resourceSP string) ([]PermissionGrant, error) {
	grants, _, err := List[PermissionGrant](ctx, c, token, Request{Path: "/v1.0/oauth2PermissionGrants",
		Query: url.Values{"$filter": {"clientId eq " + quote(clientSP) + " and resourceId eq " + quote(resourceSP)}}}, 100)
	return grants, err
}
