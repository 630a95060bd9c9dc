package emulator

import "strings"

// Info is what `entramcp dev` and `entramcp emulator` write to dev.json: everything a script or
// test needs to talk to the emulator. Its JSON names are a stable contract (see DESIGN.md).
type Info struct {
	EmulatorURL     string     `json:"emulator_url"`
	CAFile          string     `json:"ca_file"`
	TenantID        string     `json:"tenant_id"`
	TenantDomain    string     `json:"tenant_domain"`
	Authority       string     `json:"authority"`
	GraphURL        string     `json:"graph_url"`
	MCPURL          string     `json:"mcp_url,omitempty"`
	Apps            InfoApps   `json:"apps"`
	Users           []InfoUser `json:"users"`
	AdminGroupID    string     `json:"admin_group_id,omitempty"`
	ManagedIdentity *InfoMI    `json:"managed_identity,omitempty"`
}

// InfoApps names the dev server and client apps.
type InfoApps struct {
	Server InfoServerApp `json:"server"`
	Client InfoClientApp `json:"client"`
}

// InfoServerApp is the MCP API app (also the On-Behalf-Of client).
type InfoServerApp struct {
	ClientID      string   `json:"client_id"`
	ClientSecret  string   `json:"client_secret,omitempty"`
	IdentifierURI string   `json:"identifier_uri"`
	Scopes        []string `json:"scopes"`
}

// InfoClientApp is the public client app.
type InfoClientApp struct {
	ClientID string `json:"client_id"`
}

// InfoUser is a test user and its password (dev only).
type InfoUser struct {
	Name     string `json:"name"`
	OID      string `json:"oid"`
	UPN      string `json:"upn"`
	Password string `json:"password"`
}

// InfoMI tells a workload how to reach the emulator's managed-identity endpoints.
type InfoMI struct {
	ClientID         string `json:"client_id"`
	PrincipalID      string `json:"principal_id"`
	IMDSEndpoint     string `json:"imds_endpoint"`
	IdentityEndpoint string `json:"identity_endpoint"`
	IdentityHeader   string `json:"identity_header"`
}

// Info describes the running emulator.
func (em *Emulator) Info() Info {
	em.dir.mu.RLock()
	defer em.dir.mu.RUnlock()
	info := Info{
		EmulatorURL: em.URL(), CAFile: em.caFile, TenantID: em.dir.tenant.ID, TenantDomain: em.dir.tenant.Domain,
		Authority: em.Authority(), GraphURL: em.GraphURL(), Users: []InfoUser{},
	}
	if s := em.dir.devServerApp(); s != nil {
		info.Apps.Server = InfoServerApp{ClientID: s.AppID, ClientSecret: em.secrets[s.AppID], Scopes: []string{}}
		if len(s.IdentifierURIs) > 0 {
			info.Apps.Server.IdentifierURI = s.IdentifierURIs[0]
		}
		for _, sc := range s.API.OAuth2PermissionScopes {
			if sc.IsEnabled {
				info.Apps.Server.Scopes = append(info.Apps.Server.Scopes, sc.Value)
			}
		}
	}
	if c := em.dir.devClientApp(); c != nil {
		info.Apps.Client.ClientID = c.AppID
	}
	for _, u := range em.dir.users {
		info.Users = append(info.Users, InfoUser{Name: u.Name, OID: u.ID, UPN: u.UserPrincipalName, Password: u.Password})
	}
	for _, g := range em.dir.groups {
		if strings.EqualFold(g.ID, DefaultAdminGroupID) {
			info.AdminGroupID = g.ID
		}
	}
	if len(em.dir.mis) > 0 {
		mi := em.dir.mis[0]
		info.ManagedIdentity = &InfoMI{ClientID: mi.ClientID, PrincipalID: mi.PrincipalID, IMDSEndpoint: em.IMDSEndpoint(),
			IdentityEndpoint: em.IdentityEndpoint(), IdentityHeader: em.IdentityHeader()}
	}
	return info
}
