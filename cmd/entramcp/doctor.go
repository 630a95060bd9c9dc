package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/entramcp/entramcp/entra"
	"github.com/entramcp/entramcp/graph"
	"github.com/entramcp/entramcp/internal/cli"
	"github.com/entramcp/entramcp/internal/ids"
	"github.com/entramcp/entramcp/internal/oauthclient"
	"github.com/entramcp/entramcp/internal/server"
	"github.com/entramcp/entramcp/setup"
)

const doctorSummary = `Checks a configuration against the tenant and prints one PASS, WARN, FAIL or SKIP line per check,
with a fix for each failure: discovery, the app registration (exists, audience, identifier URI,
scope, v2 tokens, service principal, callback redirect, pre-authorized clients), the credential
(a client-credentials call) and its expiry, admin consent for each downstream scope, and with
--user-token a live On-Behalf-Of round trip. It reads the same settings as 'serve'. App checks
need an admin's Graph token: --graph-token, or --device-code to sign in. Exits 1 if any check
fails.`

type checkResult struct {
	status, name, detail, fix string
}

func runDoctor(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := cli.NewFlagSet("doctor", "entramcp doctor [flags]", doctorSummary, stderr)
	set := serverSettings(nil)
	set.Register(fs)
	graphToken := fs.String("graph-token", "", "an admin's delegated Graph token (Application.Read.All, DelegatedPermissionGrant.ReadWrite.All or Directory.Read.All)")
	deviceCode := fs.Bool("device-code", false, "sign the admin in with the device code flow (Azure CLI client id) to read the app registration")
	userToken := fs.String("user-token", "", "a user's access token for the API, for a live On-Behalf-Of round trip")
	downstream := fs.String("downstream-scopes", "User.Read,GroupMember.Read.All,ServiceMessage.Read.All", "Graph scopes the server app needs admin consent for")
	preauth := fs.String("preauthorize", "vscode,azure-cli", "clients that should be pre-authorized (vscode, azure-cli or app ids; empty to skip)")
	if err := cli.Parse(fs, args, false); err != nil {
		return err
	}
	set.Resolve(fs)
	cfg, err := buildServerConfig(set)
	if err != nil && !strings.Contains(err.Error(), "ENTRAMCP_BASE_URL") {
		return cli.Usagef("%v", err)
	}
	if !ids.IsGUID(cfg.TenantID) {
		return cli.Usagef("doctor needs ENTRA_TENANT_ID as the tenant GUID")
	}
	httpClient, err := entra.NewHTTPClient(cfg.CAFile)
	if err != nil {
		return cli.Usagef("ENTRAMCP_CA_FILE: %v", err)
	}
	cloud := entra.CloudForHost(cfg.AuthorityHost)
	graphURL := cfg.GraphBaseURL
	if graphURL == "" {
		graphURL = cloud.GraphURL
	}
	gc, err := graph.New(graph.Options{BaseURL: graphURL, HTTPClient: httpClient, MaxRetries: 1})
	if err != nil {
		return cli.Usagef("%v", err)
	}
	authority := "https://" + cfg.AuthorityHost + "/" + cfg.TenantID
	identifierURI := cfg.IdentifierURI
	if identifierURI == "" {
		identifierURI = "api://" + cfg.ClientID
	}
	var results []checkResult
	add := func(status, name, detail, fix string) {
		results = append(results, checkResult{status, name, detail, fix})
		line := fmt.Sprintf("%-4s %-22s %s", status, name, detail)
		if fix != "" && (status == "FAIL" || status == "WARN") {
			line += "\n     fix: " + fix
		}
		fmt.Fprintln(stdout, line)
	}

	// 1. Discovery.
	oc := &oauthclient.Client{HTTP: httpClient}
	if as, err := oc.DiscoverServer(ctx, authority+"/v2.0"); err != nil {
		add("FAIL", "discovery", err.Error(), "check ENTRA_TENANT_ID and ENTRA_AUTHORITY_HOST, and that "+cfg.AuthorityHost+" is reachable")
	} else {
		add("PASS", "discovery", "token endpoint "+as.TokenEndpoint, "")
	}

	// 2-8. The app registration, read with an admin's Graph token.
	token := *graphToken
	if token == "" && *deviceCode {
		t, err := oc.DeviceCode(ctx, authority, azureCLIClientID, []string{cloud.GraphURL + "/Application.Read.All", cloud.GraphURL + "/DelegatedPermissionGrant.ReadWrite.All"},
			func(msg string) { fmt.Fprintln(stderr, msg) })
		if err != nil {
			return fmt.Errorf("admin sign-in: %w", err)
		}
		token = t.AccessToken
	}
	var app *graph.Application
	var sp *graph.ServicePrincipal
	if token == "" {
		add("SKIP", "app registration", "needs an admin's Graph token (--graph-token or --device-code)", "")
	} else {
		app, sp = doctorApp(ctx, gc, token, cfg.ClientID, cfg.TenantID, identifierURI, cfg.RequiredScopes, cfg.BaseURL, *preauth, add)
	}

	// 9. The credential.
	cred, credErr := credentialFor(cfg, httpClient, cloud)
	var obo *entra.OBOClient
	switch {
	case credErr != nil:
		add("FAIL", "credential", credErr.Error(), "fix the credential setting named above")
	case cred == nil:
		add("WARN", "credential", "none configured: tokens are verified but no tool can act as the user", "set ENTRA_CLIENT_CERTIFICATE or ENTRA_MANAGED_IDENTITY_CLIENT_ID (or ENTRA_CLIENT_SECRET)")
	default:
		obo, _ = entra.NewOBOClient(entra.OBOOptions{AuthorityHost: cfg.AuthorityHost, TenantID: cfg.TenantID, ClientID: cfg.ClientID, Credential: cred, HTTPClient: httpClient})
		if _, err := obo.AppToken(ctx, cloud.GraphURL+"/.default"); err != nil {
			var oe *entra.OBOError
			detail := err.Error()
			if errors.As(err, &oe) {
				detail = cred.Kind() + " rejected: " + oe.Description()
			}
			add("FAIL", "credential", detail, "renew or re-upload the "+cred.Kind()+" for app "+cfg.ClientID+" ('entramcp setup --credential ...')")
		} else {
			add("PASS", "credential", cred.Kind()+" accepted by Entra", "")
		}
		if app != nil && cred.Kind() != "managed-identity" {
			doctorExpiry(app, cred.Kind(), add)
		}
	}

	// 10. Admin consent for the downstream scopes.
	if sp != nil {
		doctorConsent(ctx, gc, token, sp, strings.FieldsFunc(*downstream, func(r rune) bool { return r == ',' || r == ' ' }), add)
	}

	// 11. A live On-Behalf-Of round trip.
	switch {
	case *userToken == "":
		add("SKIP", "on-behalf-of", "give --user-token to test a live exchange", "")
	case obo == nil:
		add("FAIL", "on-behalf-of", "no usable credential", "configure a credential")
	default:
		dt, err := obo.Token(ctx, *userToken, time.Now().Add(time.Hour), []string{cloud.GraphURL + "/.default"})
		var me *graph.User
		if err == nil {
			me, err = gc.Me(ctx, dt.AccessToken)
		}
		if err != nil {
			add("FAIL", "on-behalf-of", err.Error(), "see the AADSTS code: consent (65001), assertion audience (500131), expiry (500133)")
		} else {
			add("PASS", "on-behalf-of", "Graph /me as "+me.UserPrincipalName, "")
		}
	}
	for _, r := range results {
		if r.status == "FAIL" {
			return errors.New("some checks failed")
		}
	}
	return nil
}

func credentialFor(cfg server.Config, httpClient *http.Client, cloud entra.Cloud) (entra.Credential, error) {
	switch {
	case cfg.ClientCertificate != "":
		return entra.LoadCertificate(cfg.ClientCertificate, cfg.ClientCertificatePassword)
	case cfg.ManagedIdentityClientID != "" || cfg.UseSystemManagedIdentity:
		return entra.ManagedIdentityCredential(entra.ManagedIdentityOptions{ClientID: cfg.ManagedIdentityClientID, Audience: cloud.TokenExchangeAudience, HTTPClient: httpClient}), nil
	case cfg.ClientSecret != "":
		return entra.SecretCredential(cfg.ClientSecret), nil
	}
	return nil, nil
}

func doctorApp(ctx context.Context, gc *graph.Client, token, clientID, tenantID, identifierURI string, scopes []string, baseURL, preauth string,
	add func(status, name, detail, fix string)) (*graph.Application, *graph.ServicePrincipal) {
	app, err := gc.ApplicationByAppID(ctx, token, clientID)
	if err != nil {
		if graph.IsStatus(err, 404) {
			add("FAIL", "app registration", "no app with client id "+clientID+" in tenant "+tenantID, "run 'entramcp setup', or fix ENTRA_CLIENT_ID")
		} else {
			add("FAIL", "app registration", err.Error(), "the Graph token needs Application.Read.All (and an admin)")
		}
		return nil, nil
	}
	add("PASS", "app registration", fmt.Sprintf("%q (%s)", app.DisplayName, app.AppID), "")
	if app.SignInAudience == "AzureADMyOrg" {
		add("PASS", "audience", "single tenant", "")
	} else {
		add("WARN", "audience", "signInAudience is "+app.SignInAudience, "set signInAudience to AzureADMyOrg unless the API is meant for other tenants (then use ENTRA_TENANT_ID=organizations)")
	}
	if slices.Contains(app.IdentifierURIs, identifierURI) {
		add("PASS", "identifier URI", identifierURI, "")
	} else {
		add("FAIL", "identifier URI", fmt.Sprintf("%s is not among %v", identifierURI, app.IdentifierURIs), "add "+identifierURI+" to identifierUris ('entramcp setup'); without it pre-authorization silently does nothing")
	}
	scopeIDs := map[string]string{}
	if app.API != nil {
		for _, s := range app.API.OAuth2PermissionScopes {
			if s.IsEnabled {
				scopeIDs[s.Value] = s.ID
			}
		}
	}
	for _, s := range scopes {
		if _, ok := scopeIDs[s]; ok {
			add("PASS", "scope", s+" exposed and enabled", "")
		} else {
			add("FAIL", "scope", s+" is not an enabled scope of the API", "add the delegated scope "+s+" under 'Expose an API' ('entramcp setup --scope "+s+"')")
		}
	}
	if app.API != nil && app.API.RequestedAccessTokenVersion != nil && *app.API.RequestedAccessTokenVersion == 2 {
		add("PASS", "token version", "v2 access tokens", "")
	} else {
		add("FAIL", "token version", "the API gets v1 tokens", "set api.requestedAccessTokenVersion (manifest accessTokenAcceptedVersion) to 2")
	}
	sp, err := gc.ServicePrincipalByAppID(ctx, token, clientID)
	if err != nil {
		add("FAIL", "service principal", "none in the tenant", "create it: 'entramcp setup' or 'az ad sp create --id "+clientID+"'")
		sp = nil
	} else {
		add("PASS", "service principal", sp.ID, "")
	}
	if baseURL != "" && !strings.HasPrefix(baseURL, "http://127.0.0.1") {
		cb := strings.TrimSuffix(baseURL, "/") + "/auth/callback"
		if app.Web != nil && slices.Contains(app.Web.RedirectURIs, cb) {
			add("PASS", "redirect URI", cb, "")
		} else {
			add("FAIL", "redirect URI", cb+" is not a web redirect URI", "'entramcp setup redirects --base-url "+baseURL+"'")
		}
	}
	for _, c := range strings.FieldsFunc(preauth, func(r rune) bool { return r == ',' || r == ' ' }) {
		id := setup.KnownClients[c]
		if id == "" {
			id = c
		}
		ok := false
		if app.API != nil {
			for _, p := range app.API.PreAuthorizedApplications {
				if strings.EqualFold(p.AppID, id) {
					for _, s := range scopes {
						ok = ok || slices.Contains(p.DelegatedPermissionIDs, scopeIDs[s])
					}
				}
			}
		}
		if ok {
			add("PASS", "pre-authorized", c, "")
		} else {
			add("FAIL", "pre-authorized", c+" ("+id+") is not pre-authorized for the API's scope", "'entramcp setup --preauthorize "+c+"'")
		}
	}
	return app, sp
}

func doctorExpiry(app *graph.Application, kind string, add func(status, name, detail, fix string)) {
	creds := app.PasswordCredentials
	if kind == "certificate" {
		creds = app.KeyCredentials
	}
	var soonest *time.Time
	for _, c := range creds {
		if c.EndDateTime != nil && c.EndDateTime.After(time.Now()) && (soonest == nil || c.EndDateTime.Before(*soonest)) {
			soonest = c.EndDateTime
		}
	}
	switch {
	case soonest == nil:
		add("WARN", "credential expiry", "no expiry date recorded on the app", "")
	case time.Until(*soonest) < 30*24*time.Hour:
		add("WARN", "credential expiry", "a "+kind+" expires on "+soonest.Format(time.DateOnly), "add a new "+kind+" now ('entramcp setup --credential "+kind+"') and switch to it")
	default:
		add("PASS", "credential expiry", "earliest "+kind+" expires "+soonest.Format(time.DateOnly), "")
	}
}

func doctorConsent(ctx context.Context, gc *graph.Client, token string, sp *graph.ServicePrincipal, scopes []string, add func(status, name, detail, fix string)) {
	graphSP, err := gc.ServicePrincipalByAppID(ctx, token, entra.GraphAppID)
	if err != nil {
		add("FAIL", "admin consent", "cannot read Microsoft Graph's service principal: "+err.Error(), "")
		return
	}
	grants, err := gc.Grants(ctx, token, sp.ID, graphSP.ID)
	if err != nil {
		add("FAIL", "admin consent", err.Error(), "the Graph token needs DelegatedPermissionGrant.ReadWrite.All or Directory.Read.All")
		return
	}
	have := map[string]bool{}
	for _, g := range grants {
		if g.ConsentType == "AllPrincipals" {
			for _, s := range strings.Fields(g.Scope) {
				have[s] = true
			}
		}
	}
	for _, s := range scopes {
		if have[s] {
			add("PASS", "admin consent", "Graph "+s, "")
		} else {
			add("FAIL", "admin consent", "Graph "+s+" is not admin-consented for the server app", "'entramcp setup' as a Global or Privileged Role Administrator, or grant it in the portal")
		}
	}
}
