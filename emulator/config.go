package emulator

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"time"
)

// Config is the emulator's declarative configuration: one tenant with its apps, users, groups,
// consents, policies and sample data. Load one with LoadConfig or start from DefaultConfig.
type Config struct {
	Tenant            Tenant                 `json:"tenant"`
	Applications      []*Application         `json:"applications"`
	Users             []*User                `json:"users"`
	Groups            []*Group               `json:"groups"`
	Consents          []ConsentConfig        `json:"consents"`
	RoleAssignments   []RoleAssignmentConfig `json:"roleAssignments"`
	Policies          []*Policy              `json:"policies"`
	ManagedIdentities []*ManagedIdentity     `json:"managedIdentities"`
	ServiceMessages   []*ServiceMessage      `json:"serviceMessages"`
	Settings          Settings               `json:"settings"`
}

// Well-known identifiers (ENTRA-FACTS section 8) and the built-in defaults' fixed ids, fixed so
// that scripts and docs can name them.
const (
	GraphAppID               = "00000003-0000-0000-c000-000000000000"
	GraphResourceURI         = "https://graph.microsoft.com"
	VSCodeAppID              = "aebc6443-996d-45c2-90f0-388ff96faa56"
	AzureCLIAppID            = "04b07795-8ddb-461a-bbee-02f9e1bf7b46"
	TokenExchangeAppID       = "fb60f99c-7a34-4190-8149-302f77469936"
	TokenExchangeAudience    = "api://AzureADTokenExchange"
	DefaultTenantID          = "6d3f2a10-4b8c-4e7a-9f21-0c5e8b7a9d34"
	DefaultTenantDomain      = "contoso.onmicrosoft.com"
	DefaultServerAppID       = "3f1c9a52-7e04-4c1b-8a6d-5b2e9f0d4c71"
	DefaultClientAppID       = "8b6e2d14-93a7-4f5c-b0e8-1d7c4a2f6e95"
	DefaultServerScope       = "mcp-access"
	DefaultAdminGroupID      = "0f4e8c2a-6b1d-4a7e-9c35-8d2f1e6b4a90"
	DefaultManagedIdentityID = "c2a7e9f4-1b3d-4e6a-8f05-7d9b2c4e6a18"
)

// Directory role template ids: the wids claim carries these.
var directoryRoleTemplates = map[string]string{
	"Global Administrator":            "62e90394-69f5-4237-9190-012177145e10",
	"Global Reader":                   "f2ef992c-3afb-46b9-b7cf-a126ee74c451",
	"Message Center Reader":           "790c1fb9-7f7d-4f88-86a1-ef1f95c05c1b",
	"Application Administrator":       "9b895d92-2cd3-44c7-9d02-a6ac2d5ea5c3",
	"Cloud Application Administrator": "158c047a-c907-4556-b7ef-446551a6b5f7",
	"Privileged Role Administrator":   "e8611ab8-c189-46e8-94e1-60213ab1f814",
	"Service Support Administrator":   "f023fd81-a637-4b56-95fd-791ac0226033",
}

// LoadConfig reads a JSON configuration file. Sections left out of the file are filled from
// DefaultConfig only when the whole file is empty; otherwise the file is taken as written.
func LoadConfig(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var c Config
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		return nil, fmt.Errorf("emulator config %s: %w", path, err)
	}
	if _, err := newDirectory(&c); err != nil {
		return nil, fmt.Errorf("emulator config %s: %w", path, err)
	}
	return &c, nil
}

func ptr[T any](v T) *T { return &v }

// graphScope makes one of Microsoft Graph's delegated permissions with its published id.
func graphScope(id, value, typ string) PermissionScope {
	return PermissionScope{ID: id, Value: value, Type: typ, IsEnabled: true, AdminConsentDisplayName: value}
}

func graphRole(id, value string) AppRole {
	return AppRole{ID: id, Value: value, DisplayName: value, IsEnabled: true, AllowedMemberTypes: []string{"Application"}}
}

// graphApplication is Microsoft Graph as a resource: the scopes and app roles entramcp's tools
// and setup command use, with Graph's real permission ids.
func graphApplication() *Application {
	return &Application{
		ID: "9f7c2a41-0000-4000-8000-000000000003", AppID: GraphAppID, DisplayName: "Microsoft Graph",
		SignInAudience: "AzureADMultipleOrgs", IdentifierURIs: []string{GraphResourceURI, "https://graph.microsoft.com/", "https://canary.graph.microsoft.com"},
		API: APISettings{RequestedAccessTokenVersion: ptr(1), OAuth2PermissionScopes: []PermissionScope{
			graphScope("e1fe6dd8-ba31-4d61-89e7-88639da4683d", "User.Read", "User"),
			graphScope("a154be20-db9c-4678-8ab7-66f6cc099a59", "User.Read.All", "Admin"),
			graphScope("b340eb25-3456-403f-be2f-af7a0d370277", "User.ReadBasic.All", "User"),
			graphScope("bc024368-1153-4739-b217-4326f2e966d0", "GroupMember.Read.All", "Admin"),
			graphScope("5f8c59db-677d-491f-a6b8-5f174b11ec1d", "Group.Read.All", "Admin"),
			graphScope("06da0dbc-49e2-44d2-8312-53f166ab848a", "Directory.Read.All", "Admin"),
			graphScope("eda39fa6-f8cf-4c3c-a909-432c683e4c9b", "ServiceMessage.Read.All", "Admin"),
			graphScope("c79f8feb-a9db-4090-85f9-90d820caa0eb", "Application.Read.All", "Admin"),
			graphScope("bdfbf15f-ee85-4955-8675-146e8e5296b5", "Application.ReadWrite.All", "Admin"),
			graphScope("41ce6ca6-6826-4807-84f1-1c82854f7ee5", "DelegatedPermissionGrant.ReadWrite.All", "Admin"),
			graphScope("7427e0e9-2fba-42fe-b0c0-848c9e6a8182", "offline_access", "User"),
			graphScope("37f7f235-527c-4136-accd-4a02d197296e", "openid", "User"),
			graphScope("14dad69e-099b-42c9-810b-d002981feec1", "profile", "User"),
			graphScope("64a6cdd6-aab1-4aaf-94b8-3cc8405e90d0", "email", "User"),
		}},
		AppRoles: []AppRole{
			graphRole("9a5d68dd-52b0-4cc2-bd40-abcf44ac3a30", "Application.Read.All"),
			graphRole("1bfefb4e-e0b5-418b-a88f-73c46d2cc8e9", "Application.ReadWrite.All"),
			graphRole("7ab1d382-f21e-4acd-a863-ba3e13f7da61", "Directory.Read.All"),
			graphRole("df021288-bdef-4463-88db-98f22de89214", "User.Read.All"),
			graphRole("98830695-27a2-44f7-8c18-0c3ebc9698f6", "GroupMember.Read.All"),
			graphRole("8e8e4742-1d95-4f68-9d56-6ee75648c72a", "DelegatedPermissionGrant.ReadWrite.All"),
			graphRole("1b620472-6534-4fe6-9df2-4680e8aa28ec", "ServiceMessage.Read.All"),
		},
	}
}

// tokenExchangeApplication is the AzureADTokenExchange resource that managed-identity tokens used
// as federated credentials are issued for.
func tokenExchangeApplication() *Application {
	return &Application{
		ID: "9f7c2a41-0000-4000-8000-0000000000fb", AppID: TokenExchangeAppID, DisplayName: "AzureADTokenExchange",
		SignInAudience: "AzureADMultipleOrgs",
		IdentifierURIs: []string{TokenExchangeAudience, "api://AzureADTokenExchangeUSGov", "api://AzureADTokenExchangeChina"},
		API:            APISettings{RequestedAccessTokenVersion: ptr(2)},
	}
}

// DefaultConfig is the built-in tenant: a server app (the MCP API, also the OBO client), a public
// client app, users alice (admin group member, Message Center reader, Global Administrator) and
// bob (neither), nested groups, the two first-party clients MCP users meet (VS Code, Azure CLI),
// a managed identity and sample Message Center posts.
func DefaultConfig() *Config {
	serverScopeID := "5a3e1c7b-9d2f-4b8a-a6e4-3c1f7b9d2e58"
	server := &Application{
		ID: "a1b2c3d4-1111-4aaa-8bbb-000000000001", AppID: DefaultServerAppID, DisplayName: "entramcp server",
		SignInAudience: "AzureADMyOrg",
		IdentifierURIs: []string{"api://" + DefaultServerAppID},
		Web: RedirectSettings{RedirectURIs: []string{
			"http://127.0.0.1/auth/callback", "http://localhost/auth/callback",
		}},
		API: APISettings{
			RequestedAccessTokenVersion: ptr(2),
			OAuth2PermissionScopes: []PermissionScope{{
				ID: serverScopeID, Value: DefaultServerScope, Type: "User", IsEnabled: true,
				AdminConsentDisplayName: "Access the MCP server", AdminConsentDescription: "Lets the app call the MCP server's tools as the signed-in user.",
				UserConsentDisplayName: "Access the MCP server", UserConsentDescription: "Lets the app call the MCP server's tools as you.",
			}},
			PreAuthorizedApplications: []PreAuthorizedApplication{
				{AppID: VSCodeAppID, DelegatedPermissionIDs: []string{serverScopeID}},
				{AppID: AzureCLIAppID, DelegatedPermissionIDs: []string{serverScopeID}},
			},
		},
		AppRoles: []AppRole{{
			ID: "7c5d3e1f-2a4b-4c6d-8e0f-1a3b5c7d9e02", Value: "MCP.Admin", DisplayName: "MCP administrators",
			Description: "Administer the MCP server.", IsEnabled: true, AllowedMemberTypes: []string{"User", "Application"},
		}},
		GroupMembershipClaims: ptr("SecurityGroup"),
		RequiredResourceAccess: []RequiredResourceAccess{{ResourceAppID: GraphAppID, ResourceAccess: []ResourceAccess{
			{ID: "e1fe6dd8-ba31-4d61-89e7-88639da4683d", Type: "Scope"},
			{ID: "bc024368-1153-4739-b217-4326f2e966d0", Type: "Scope"},
			{ID: "eda39fa6-f8cf-4c3c-a909-432c683e4c9b", Type: "Scope"},
		}}},
	}
	client := &Application{
		ID: "a1b2c3d4-2222-4aaa-8bbb-000000000002", AppID: DefaultClientAppID, DisplayName: "entramcp client",
		SignInAudience: "AzureADMyOrg", IsFallbackPublicClient: ptr(true),
		PublicClient: RedirectSettings{RedirectURIs: []string{"http://localhost", "http://127.0.0.1", "https://vscode.dev/redirect"}},
		RequiredResourceAccess: []RequiredResourceAccess{
			{ResourceAppID: DefaultServerAppID, ResourceAccess: []ResourceAccess{{ID: serverScopeID, Type: "Scope"}}},
			{ResourceAppID: GraphAppID, ResourceAccess: []ResourceAccess{{ID: "e1fe6dd8-ba31-4d61-89e7-88639da4683d", Type: "Scope"}}},
		},
	}
	vscode := &Application{
		ID: "a1b2c3d4-3333-4aaa-8bbb-000000000003", AppID: VSCodeAppID, DisplayName: "Visual Studio Code",
		SignInAudience: "AzureADandPersonalMicrosoftAccount", IsFallbackPublicClient: ptr(true), FirstParty: true,
		PublicClient: RedirectSettings{RedirectURIs: []string{"https://vscode.dev/redirect", "http://127.0.0.1:33418", "http://localhost"}},
	}
	azcli := &Application{
		ID: "a1b2c3d4-4444-4aaa-8bbb-000000000004", AppID: AzureCLIAppID, DisplayName: "Microsoft Azure CLI",
		SignInAudience: "AzureADMultipleOrgs", IsFallbackPublicClient: ptr(true), FirstParty: true,
		PublicClient: RedirectSettings{RedirectURIs: []string{"http://localhost", "https://login.microsoftonline.com/common/oauth2/nativeclient"}},
	}
	users := []*User{
		{
			ID: "b7e1c9a4-5d2f-4e8b-9a3c-6f1d8e2b4a71", Name: "alice", DisplayName: "Alice Example", GivenName: "Alice", Surname: "Example",
			UserPrincipalName: "alice@" + DefaultTenantDomain, Mail: "alice@" + DefaultTenantDomain, JobTitle: "Platform Administrator",
			OfficeLocation: "Building 1", BusinessPhones: []string{"+1 425 555 0101"}, PreferredLanguage: "en-US",
			Password: "alice-dev-password", DirectoryRoles: []string{"Global Administrator", "Message Center Reader"},
		},
		{
			ID: "c4a2d8f1-6e3b-4f9c-8b2d-7a4e1c9f5b62", Name: "bob", DisplayName: "Bob Example", GivenName: "Bob", Surname: "Example",
			UserPrincipalName: "bob@" + DefaultTenantDomain, Mail: "bob@" + DefaultTenantDomain, JobTitle: "Engineer",
			OfficeLocation: "Building 2", BusinessPhones: []string{}, PreferredLanguage: "en-US",
			Password: "bob-dev-password",
		},
	}
	groups := []*Group{
		{ID: DefaultAdminGroupID, DisplayName: "MCP Admins", Description: "Administrators of the MCP server", SecurityEnabled: true, GroupTypes: []string{}, Members: []string{"alice"}},
		{ID: "1e5a9c3f-7b2d-4e8a-a6c1-9f3b5d7e2a40", DisplayName: "All Staff", SecurityEnabled: true, GroupTypes: []string{}, Members: []string{"alice", "bob"}},
		{ID: "2d6b0e4a-8c3f-4f9b-b7d2-0a4c6e8f3b51", DisplayName: "Platform Team", SecurityEnabled: true, GroupTypes: []string{}, Members: []string{"alice"}},
		{ID: "3c7a1f5b-9d4e-4a0c-88e3-1b5d7f9a4c62", DisplayName: "Engineering", Description: "Contains Platform Team (nested)", SecurityEnabled: true, GroupTypes: []string{}, Members: []string{"Platform Team"}},
	}
	return &Config{
		Tenant:       Tenant{ID: DefaultTenantID, Domain: DefaultTenantDomain, DisplayName: "Contoso (entramcp emulator)", Region: "NA"},
		Applications: []*Application{server, client, vscode, azcli},
		Users:        users,
		Groups:       groups,
		Consents: []ConsentConfig{
			{Client: DefaultServerAppID, Resource: GraphAppID, Scope: "User.Read GroupMember.Read.All ServiceMessage.Read.All offline_access openid profile"},
			{Client: DefaultClientAppID, Resource: DefaultServerAppID, Scope: DefaultServerScope},
			{Client: DefaultClientAppID, Resource: GraphAppID, Scope: "User.Read offline_access openid profile"},
		},
		RoleAssignments: []RoleAssignmentConfig{{Resource: DefaultServerAppID, Roles: []string{"MCP.Admin"}, User: "alice"}},
		ManagedIdentities: []*ManagedIdentity{{
			Name: "entramcp-identity", ClientID: DefaultManagedIdentityID, PrincipalID: "d9e3b7a1-4c2f-4a8e-b6d0-2f8a4c6e1b93",
		}},
		ServiceMessages: defaultServiceMessages(),
	}
}

func defaultServiceMessages() []*ServiceMessage {
	base := time.Date(2026, 9, 1, 8, 0, 0, 0, time.UTC)
	type m struct {
		id, title, category, severity string
		major                         bool
		services, tags                []string
		daysAgo                       int
		action                        bool
	}
	list := []m{
		{"MC172851", "Microsoft Teams: new meeting recap experience", "stayInformed", "normal", false, []string{"Microsoft Teams"}, []string{"User impact", "New feature"}, 0, false},
		{"MC180234", "Exchange Online: retirement of Basic authentication for SMTP AUTH", "planForChange", "high", true, []string{"Exchange Online"}, []string{"Retirement", "Admin impact"}, 3, true},
		{"MC181990", "SharePoint Online: action required to update custom scripts", "preventOrFixIssue", "high", true, []string{"SharePoint Online"}, []string{"Admin impact"}, 5, true},
		{"MC185512", "Microsoft Entra: conditional access policy templates updated", "stayInformed", "normal", false, []string{"Microsoft Entra"}, []string{"Updated message"}, 8, false},
		{"MC190077", "Microsoft 365 apps: Copilot chat pinned in Outlook", "planForChange", "normal", true, []string{"Microsoft 365 apps", "Exchange Online"}, []string{"User impact", "New feature"}, 12, false},
		{"MC192345", "OneDrive: storage quota reporting changes", "stayInformed", "normal", false, []string{"OneDrive for Business"}, []string{"Admin impact"}, 15, false},
		{"MC195501", "Microsoft Purview: critical fix for retention labels", "preventOrFixIssue", "critical", true, []string{"Microsoft Purview"}, []string{"Admin impact", "Data privacy"}, 18, true},
		{"MC198420", "Teams admin center: new policy assignment report", "stayInformed", "normal", false, []string{"Microsoft Teams"}, []string{"Admin impact", "New feature"}, 22, false},
		{"MC201118", "Exchange Online: mailbox auditing defaults changing", "planForChange", "high", false, []string{"Exchange Online"}, []string{"Admin impact", "Feature update"}, 26, true},
		{"MC204776", "Microsoft Intune: plan for Android device administrator end of support", "planForChange", "normal", true, []string{"Microsoft Intune"}, []string{"Retirement"}, 31, true},
		{"MC207003", "Viva Engage: new community analytics", "stayInformed", "normal", false, []string{"Microsoft Viva"}, []string{"New feature"}, 37, false},
		{"MC210640", "SharePoint Online: site sharing settings reminder", "preventOrFixIssue", "normal", false, []string{"SharePoint Online"}, []string{"User impact"}, 44, false},
	}
	out := make([]*ServiceMessage, 0, len(list))
	for i, x := range list {
		mod := base.AddDate(0, 0, -x.daysAgo)
		start := mod.AddDate(0, 0, -2)
		msg := &ServiceMessage{
			ID: x.id, Title: x.title, Category: x.category, Severity: x.severity, IsMajorChange: x.major,
			Tags: x.tags, Services: x.services, StartDateTime: start, LastModifiedDateTime: mod,
			EndDateTime: ptr(start.AddDate(0, 3, 0)), Details: []KeyValue{{Name: "ExternalLink", Value: "https://learn.microsoft.com/microsoft-365/"}},
			Body:      ItemBody{ContentType: "html", Content: fmt.Sprintf("<p>%s.</p><p>How this will affect your organization: sample message %d from the entramcp emulator.</p>", x.title, i+1)},
			ViewPoint: json.RawMessage(`null`),
		}
		if x.action {
			msg.ActionRequiredByDateTime = ptr(mod.AddDate(0, 2, 0))
		}
		out = append(out, msg)
	}
	return out
}
