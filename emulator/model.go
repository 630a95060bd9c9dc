package emulator

import (
	"encoding/json"
	"fmt"
	"time"
)

// The types in this file are shaped like Microsoft Graph resources (field names and JSON tags),
// so the declarative configuration file and the emulator's Graph API speak the same language. A
// few emulator-only fields (passwords, group members, the first-party flag) are marked as such;
// the Graph API never returns them.

// Tenant is the directory the emulator serves.
type Tenant struct {
	// ID is the tenant GUID (tid claim).
	ID string `json:"id"`
	// Domain is the verified domain users sign in with (user@Domain); it also works as a tenant
	// segment in authority URLs, as in Entra.
	Domain string `json:"domain"`
	// DisplayName is the organisation's name shown on the sign-in page.
	DisplayName string `json:"displayName"`
	// Region is the tenant_region_scope published in discovery (e.g. "NA", "EU").
	Region string `json:"region,omitempty"`
}

// Application is an app registration (Graph `application`).
type Application struct {
	ID                     string                   `json:"id"`
	AppID                  string                   `json:"appId"`
	DisplayName            string                   `json:"displayName"`
	SignInAudience         string                   `json:"signInAudience,omitempty"`
	IdentifierURIs         []string                 `json:"identifierUris"`
	IsFallbackPublicClient *bool                    `json:"isFallbackPublicClient,omitempty"`
	GroupMembershipClaims  *string                  `json:"groupMembershipClaims,omitempty"`
	Web                    RedirectSettings         `json:"web"`
	PublicClient           RedirectSettings         `json:"publicClient"`
	SPA                    RedirectSettings         `json:"spa"`
	API                    APISettings              `json:"api"`
	AppRoles               []AppRole                `json:"appRoles"`
	RequiredResourceAccess []RequiredResourceAccess `json:"requiredResourceAccess"`
	PasswordCredentials    []PasswordCredential     `json:"passwordCredentials"`
	KeyCredentials         []KeyCredential          `json:"keyCredentials"`
	CreatedDateTime        *time.Time               `json:"createdDateTime,omitempty"`

	// FederatedIdentityCredentials are a separate Graph collection; kept here for convenience.
	// Emulator-only in this position: the Graph API serves them under their own path.
	FederatedIdentityCredentials []FederatedIdentityCredential `json:"federatedIdentityCredentials,omitempty"`
	// FirstParty marks Microsoft-owned clients (Azure CLI, VS Code) that every tenant trusts for
	// Graph without a consent prompt. Emulator-only.
	FirstParty bool `json:"firstParty,omitempty"`
	// NoServicePrincipal leaves the app without a service principal (to test `doctor`).
	// Emulator-only.
	NoServicePrincipal bool `json:"noServicePrincipal,omitempty"`
}

// RedirectSettings holds one platform's redirect URIs (web, publicClient or spa).
type RedirectSettings struct {
	RedirectURIs []string `json:"redirectUris"`
}

// APISettings is the `api` block of an app that exposes an API.
type APISettings struct {
	RequestedAccessTokenVersion *int                       `json:"requestedAccessTokenVersion"`
	OAuth2PermissionScopes      []PermissionScope          `json:"oauth2PermissionScopes"`
	PreAuthorizedApplications   []PreAuthorizedApplication `json:"preAuthorizedApplications"`
	KnownClientApplications     []string                   `json:"knownClientApplications,omitempty"`
}

// PermissionScope is a delegated permission an API exposes.
type PermissionScope struct {
	ID                      string `json:"id"`
	Value                   string `json:"value"`
	Type                    string `json:"type,omitempty"` // "User" or "Admin"
	IsEnabled               bool   `json:"isEnabled"`
	AdminConsentDisplayName string `json:"adminConsentDisplayName,omitempty"`
	AdminConsentDescription string `json:"adminConsentDescription,omitempty"`
	UserConsentDisplayName  string `json:"userConsentDisplayName,omitempty"`
	UserConsentDescription  string `json:"userConsentDescription,omitempty"`
}

// AppRole is an app role; AllowedMemberTypes "Application" roles are app permissions.
type AppRole struct {
	ID                 string   `json:"id"`
	Value              string   `json:"value"`
	DisplayName        string   `json:"displayName,omitempty"`
	Description        string   `json:"description,omitempty"`
	IsEnabled          bool     `json:"isEnabled"`
	AllowedMemberTypes []string `json:"allowedMemberTypes"`
}

// PreAuthorizedApplication lets a client use some of the API's scopes without consent.
type PreAuthorizedApplication struct {
	AppID                  string   `json:"appId"`
	DelegatedPermissionIDs []string `json:"delegatedPermissionIds"`
}

// RequiredResourceAccess lists the permissions an app asks for on one resource.
type RequiredResourceAccess struct {
	ResourceAppID  string           `json:"resourceAppId"`
	ResourceAccess []ResourceAccess `json:"resourceAccess"`
}

// ResourceAccess is one permission: Type "Scope" (delegated) or "Role" (application).
type ResourceAccess struct {
	ID   string `json:"id"`
	Type string `json:"type"`
}

// PasswordCredential is a client secret. SecretText is only ever returned by addPassword.
type PasswordCredential struct {
	KeyID         string     `json:"keyId"`
	DisplayName   string     `json:"displayName,omitempty"`
	Hint          string     `json:"hint,omitempty"`
	SecretText    string     `json:"secretText,omitempty"`
	StartDateTime *time.Time `json:"startDateTime,omitempty"`
	EndDateTime   *time.Time `json:"endDateTime,omitempty"`
}

// KeyCredential is a certificate credential; Key is the base64 DER certificate on upload.
type KeyCredential struct {
	KeyID               string     `json:"keyId"`
	DisplayName         string     `json:"displayName,omitempty"`
	Type                string     `json:"type"`  // "AsymmetricX509Cert"
	Usage               string     `json:"usage"` // "Verify"
	Key                 string     `json:"key,omitempty"`
	CustomKeyIdentifier string     `json:"customKeyIdentifier,omitempty"`
	StartDateTime       *time.Time `json:"startDateTime,omitempty"`
	EndDateTime         *time.Time `json:"endDateTime,omitempty"`
}

// FederatedIdentityCredential trusts tokens from another issuer as the app's credential.
type FederatedIdentityCredential struct {
	ID          string   `json:"id"`
	Name        string   `json:"name"`
	Issuer      string   `json:"issuer"`
	Subject     string   `json:"subject"`
	Audiences   []string `json:"audiences"`
	Description string   `json:"description,omitempty"`
}

// ServicePrincipal is an app's instance in the tenant (Graph `servicePrincipal`).
type ServicePrincipal struct {
	ID                     string            `json:"id"`
	AppID                  string            `json:"appId"`
	DisplayName            string            `json:"displayName"`
	ServicePrincipalType   string            `json:"servicePrincipalType"`
	AppRoles               []AppRole         `json:"appRoles"`
	OAuth2PermissionScopes []PermissionScope `json:"oauth2PermissionScopes"`
	ServicePrincipalNames  []string          `json:"servicePrincipalNames"`
}

// User is a directory user. Password and DirectoryRoles are emulator-only.
type User struct {
	ID                string   `json:"id"`
	DisplayName       string   `json:"displayName"`
	GivenName         string   `json:"givenName,omitempty"`
	Surname           string   `json:"surname,omitempty"`
	UserPrincipalName string   `json:"userPrincipalName"`
	Mail              string   `json:"mail,omitempty"`
	JobTitle          string   `json:"jobTitle,omitempty"`
	OfficeLocation    string   `json:"officeLocation,omitempty"`
	BusinessPhones    []string `json:"businessPhones"`
	MobilePhone       *string  `json:"mobilePhone"`
	PreferredLanguage string   `json:"preferredLanguage,omitempty"`
	AccountEnabled    *bool    `json:"accountEnabled,omitempty"`

	// Name is the short sign-in name ("alice"); login_hint accepts it or the UPN. Emulator-only.
	Name string `json:"name"`
	// Password is used by the password grant (ROPC). Emulator-only.
	Password string `json:"password,omitempty"`
	// DirectoryRoles are Entra role names ("Global Administrator", "Message Center Reader").
	// Emulator-only; Graph shows them as directoryRole objects in memberOf.
	DirectoryRoles []string `json:"directoryRoles,omitempty"`
}

// Group is a security group. Members name users (by name, UPN or id) or other groups (by
// displayName or id); nesting is followed for transitive membership. Members is emulator-only.
type Group struct {
	ID              string   `json:"id"`
	DisplayName     string   `json:"displayName"`
	Description     string   `json:"description,omitempty"`
	SecurityEnabled bool     `json:"securityEnabled"`
	MailEnabled     bool     `json:"mailEnabled"`
	GroupTypes      []string `json:"groupTypes"`
	Members         []string `json:"members,omitempty"`
}

// PermissionGrant is a delegated permission grant (Graph `oAuth2PermissionGrant`). ClientID and
// ResourceID are service principal object ids, as in Graph.
type PermissionGrant struct {
	ID          string `json:"id"`
	ClientID    string `json:"clientId"`
	ConsentType string `json:"consentType"` // "AllPrincipals" or "Principal"
	PrincipalID string `json:"principalId"`
	ResourceID  string `json:"resourceId"`
	Scope       string `json:"scope"`
}

// ConsentConfig is the configuration-file form of a grant, naming apps by name or appId.
type ConsentConfig struct {
	Client   string `json:"client"`
	Resource string `json:"resource"`
	Scope    string `json:"scope"`
	// User, when set, makes a per-user ("Principal") grant; otherwise admin consent for all.
	User string `json:"user,omitempty"`
}

// RoleAssignmentConfig grants app roles of Resource to an app (application permissions, used by
// client credentials) or to a user or group (roles claim in user tokens).
type RoleAssignmentConfig struct {
	Resource string   `json:"resource"`
	Roles    []string `json:"roles"`
	App      string   `json:"app,omitempty"`
	User     string   `json:"user,omitempty"`
	Group    string   `json:"group,omitempty"`
}

// Policy is a conditional-access style rule: the listed users need multi-factor authentication
// for the listed resources. "*" matches everyone or every resource.
type Policy struct {
	ID          string   `json:"id"`
	DisplayName string   `json:"displayName"`
	Users       []string `json:"users"`
	Resources   []string `json:"resources"`
	// Require is the grant control; "mfa" is the one modelled.
	Require string `json:"require"`
	// ErrorCode is the AADSTS code On-Behalf-Of and refresh return while MFA is missing: 50079
	// (the default, "enroll") or 50076 ("use").
	ErrorCode int `json:"errorCode,omitempty"`
}

// ManagedIdentity is a user-assigned managed identity the emulator's IMDS and App Service
// endpoints can issue tokens for.
type ManagedIdentity struct {
	Name        string `json:"name"`
	ClientID    string `json:"clientId"`
	PrincipalID string `json:"principalId"`
}

// ServiceMessage is a Microsoft 365 Message Center post (Graph `serviceUpdateMessage`).
type ServiceMessage struct {
	ID                       string          `json:"id"`
	Title                    string          `json:"title"`
	Category                 string          `json:"category"`
	Severity                 string          `json:"severity"`
	IsMajorChange            bool            `json:"isMajorChange"`
	Tags                     []string        `json:"tags"`
	Services                 []string        `json:"services"`
	StartDateTime            time.Time       `json:"startDateTime"`
	EndDateTime              *time.Time      `json:"endDateTime"`
	LastModifiedDateTime     time.Time       `json:"lastModifiedDateTime"`
	ActionRequiredByDateTime *time.Time      `json:"actionRequiredByDateTime"`
	Details                  []KeyValue      `json:"details"`
	Body                     ItemBody        `json:"body"`
	HasAttachments           bool            `json:"hasAttachments"`
	ViewPoint                json.RawMessage `json:"viewPoint"`
}

// KeyValue is a name/value pair in a message's details.
type KeyValue struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// ItemBody is a message body.
type ItemBody struct {
	ContentType string `json:"contentType"`
	Content     string `json:"content"`
}

// Settings tune the emulator's behaviour; zero values take Entra's defaults.
type Settings struct {
	// AccessTokenLifetimeMin and Max bound access-token lifetimes; Entra picks 60-90 minutes.
	AccessTokenLifetimeMin Duration `json:"accessTokenLifetimeMin,omitempty"`
	AccessTokenLifetimeMax Duration `json:"accessTokenLifetimeMax,omitempty"`
	// RefreshTokenLifetime is 90 days in Entra; SPARefreshTokenLifetime is 24 hours.
	RefreshTokenLifetime    Duration `json:"refreshTokenLifetime,omitempty"`
	SPARefreshTokenLifetime Duration `json:"spaRefreshTokenLifetime,omitempty"`
	// AuthorizationCodeLifetime is about 10 minutes in Entra.
	AuthorizationCodeLifetime Duration `json:"authorizationCodeLifetime,omitempty"`
	// AutoApprove signs in the user named by login_hint without showing the sign-in page, and
	// records user consent without a prompt: the non-interactive path for tests and scripts.
	AutoApprove bool `json:"autoApprove,omitempty"`
	// DisableUserConsent stops users consenting for themselves (admin consent only).
	DisableUserConsent bool `json:"disableUserConsent,omitempty"`
	// GroupsOverageLimit is the number of groups above which the groups claim is replaced by an
	// overage indicator (200 in Entra's JWTs).
	GroupsOverageLimit int `json:"groupsOverageLimit,omitempty"`
}

// Duration is a time.Duration written as a Go duration string ("90m", "24h") in JSON.
type Duration time.Duration

// MarshalJSON writes the duration as a string.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// UnmarshalJSON reads a duration string such as "1h30m".
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("duration must be a string such as \"90m\": %w", err)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return err
	}
	if v < 0 {
		return fmt.Errorf("duration %q is negative", s)
	}
	*d = Duration(v)
	return nil
}
