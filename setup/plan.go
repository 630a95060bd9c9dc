package setup

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/entramcp/entramcp/entra"
	"github.com/entramcp/entramcp/graph"
	"github.com/entramcp/entramcp/internal/ids"
)

func ptr[T any](v T) *T { return &v }

// NewPlan reads the tenant and computes the changes Options need.
func NewPlan(ctx context.Context, o Options) (*Plan, error) {
	if err := o.defaults(); err != nil {
		return nil, err
	}
	st := &state{}
	p := &Plan{opts: o, st: st}
	gc, tok := o.Graph, o.Token
	var err error
	if st.graphSP, err = gc.ServicePrincipalByAppID(ctx, tok, entra.GraphAppID); err != nil {
		return nil, explain(err, "reading Microsoft Graph's service principal")
	}
	graphIDs := map[string]string{}
	for _, s := range GraphScopes {
		id := scopeByValue(st.graphSP, s)
		if id == "" {
			return nil, fmt.Errorf("microsoft Graph does not expose %s in this tenant", s)
		}
		graphIDs[s] = id
	}
	app, err := findApp(ctx, gc, tok, o.ClientID, o.Name)
	if err != nil {
		return nil, err
	}
	audience := "AzureADMyOrg"
	if o.MultiTenant {
		audience = "AzureADMultipleOrgs"
	}
	var redirects []string
	if o.BaseURL != "" {
		redirects = []string{strings.TrimSuffix(o.BaseURL, "/") + "/auth/callback"}
	}
	graphAccess := graph.RequiredResourceAccess{ResourceAppID: entra.GraphAppID}
	for _, s := range GraphScopes {
		graphAccess.ResourceAccess = append(graphAccess.ResourceAccess, graph.ResourceAccess{ID: graphIDs[s], Type: "Scope"})
	}
	var preauth []string
	for _, c := range o.Preauthorize {
		preauth = append(preauth, resolveClient(c))
	}

	if app == nil {
		scopeID := ids.NewGUID()
		scope := graph.PermissionScope{ID: scopeID, Value: o.Scope, Type: "User", IsEnabled: true,
			AdminConsentDisplayName: "Access " + o.Name, AdminConsentDescription: "Lets the app call " + o.Name + "'s tools as the signed-in user.",
			UserConsentDisplayName: "Access " + o.Name, UserConsentDescription: "Lets the app call " + o.Name + "'s tools as you."}
		diff := []string{"+ displayName " + o.Name, "+ signInAudience " + audience, "+ identifierUris api://<new app id>",
			"+ scope " + o.Scope, "+ requestedAccessTokenVersion 2", "+ Graph permissions " + strings.Join(GraphScopes, " ")}
		diff = append(diff, lines("+ web redirect", redirects)...)
		diff = append(diff, lines("+ pre-authorized", o.Preauthorize)...)
		p.Steps = append(p.Steps, Step{Title: "create the app registration " + o.Name, Diff: diff, apply: func(ctx context.Context, st *state) error {
			var created graph.Application
			body := graph.Application{DisplayName: o.Name, SignInAudience: audience, IdentifierURIs: []string{},
				API:                    &graph.APISettings{RequestedAccessTokenVersion: ptr(2), OAuth2PermissionScopes: []graph.PermissionScope{scope}},
				Web:                    &graph.RedirectSettings{RedirectURIs: nonNil(redirects)},
				RequiredResourceAccess: []graph.RequiredResourceAccess{graphAccess}}
			if err := gc.Do(ctx, tok, http.MethodPost, "/v1.0/applications", body, &created); err != nil {
				return explain(err, "creating the application")
			}
			st.app, st.scopeID = &created, scopeID
			patch := map[string]any{"identifierUris": []string{"api://" + created.AppID}}
			if len(preauth) > 0 {
				patch["api"] = map[string]any{"preAuthorizedApplications": preauthList(nil, preauth, scopeID)}
			}
			if err := gc.Do(ctx, tok, http.MethodPatch, "/v1.0/applications/"+created.ID, patch, nil); err != nil {
				return explain(err, "setting the identifier URI")
			}
			created.IdentifierURIs = []string{"api://" + created.AppID}
			st.result.IdentifierURI = created.IdentifierURIs[0]
			return nil
		}})
	} else {
		st.app = app
		st.result.IdentifierURI = firstOr(app.IdentifierURIs, "api://"+app.AppID)
		if step := updateStep(o, app, audience, redirects, preauth, graphAccess); step != nil {
			p.Steps = append(p.Steps, *step)
		}
		for _, s := range app.API.OAuth2PermissionScopes {
			if s.Value == o.Scope {
				st.scopeID = s.ID
			}
		}
	}

	// The service principal.
	if app != nil {
		if sp, err := gc.ServicePrincipalByAppID(ctx, tok, app.AppID); err == nil {
			st.sp = sp
		}
	}
	if st.sp == nil {
		p.Steps = append(p.Steps, Step{Title: "create the service principal", Diff: []string{"+ servicePrincipal for the app"}, apply: func(ctx context.Context, st *state) error {
			var sp graph.ServicePrincipal
			if err := gc.Do(ctx, tok, http.MethodPost, "/v1.0/servicePrincipals", map[string]string{"appId": st.app.AppID}, &sp); err != nil {
				return explain(err, "creating the service principal")
			}
			st.sp = &sp
			return nil
		}})
	}

	if o.Model == "two-app" {
		if err := p.planClientApp(ctx); err != nil {
			return nil, err
		}
	}
	if err := p.planCredential(ctx, app); err != nil {
		return nil, err
	}
	if !o.SkipConsent {
		p.planConsent(ctx, graphIDs)
	}
	return p, nil
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func firstOr(s []string, def string) string {
	if len(s) > 0 {
		return s[0]
	}
	return def
}

func findApp(ctx context.Context, gc *graph.Client, tok, clientID, name string) (*graph.Application, error) {
	if clientID != "" {
		app, err := gc.ApplicationByAppID(ctx, tok, clientID)
		if graph.IsStatus(err, 404) {
			return nil, fmt.Errorf("no app registration with client id %s", clientID)
		}
		return app, explain(err, "reading the application")
	}
	apps, _, err := graph.List[graph.Application](ctx, gc, tok, graph.Request{Path: "/v1.0/applications",
		Query: url.Values{"$filter": {"displayName eq '" + strings.ReplaceAll(name, "'", "''") + "'"}}}, 10)
	if err != nil {
		return nil, explain(err, "looking for the application")
	}
	switch len(apps) {
	case 0:
		return nil, nil
	case 1:
		return &apps[0], nil
	}
	return nil, fmt.Errorf("%d app registrations are named %q; pass --client-id", len(apps), name)
}

func preauthList(have []graph.PreAuthorizedApplication, clients []string, scopeID string) []graph.PreAuthorizedApplication {
	out := slices.Clone(have)
	for _, c := range clients {
		i := slices.IndexFunc(out, func(p graph.PreAuthorizedApplication) bool { return strings.EqualFold(p.AppID, c) })
		if i < 0 {
			out = append(out, graph.PreAuthorizedApplication{AppID: c, DelegatedPermissionIDs: []string{scopeID}})
		} else if !slices.Contains(out[i].DelegatedPermissionIDs, scopeID) {
			out[i].DelegatedPermissionIDs = append(out[i].DelegatedPermissionIDs, scopeID)
		}
	}
	return out
}

// updateStep compares an existing app with the wanted one; nil means nothing to change.
func updateStep(o Options, app *graph.Application, audience string, redirects, preauth []string, graphAccess graph.RequiredResourceAccess) *Step {
	patch := map[string]any{}
	var diff []string
	if app.SignInAudience != audience {
		patch["signInAudience"] = audience
		diff = append(diff, "~ signInAudience "+app.SignInAudience+" -> "+audience)
	}
	if uris, added := union(app.IdentifierURIs, []string{"api://" + app.AppID}); len(added) > 0 {
		patch["identifierUris"] = uris
		diff = append(diff, lines("+ identifierUri", added)...)
	}
	api := app.API
	if api == nil {
		api = &graph.APISettings{}
	}
	apiPatch := map[string]any{}
	if api.RequestedAccessTokenVersion == nil || *api.RequestedAccessTokenVersion != 2 {
		apiPatch["requestedAccessTokenVersion"] = 2
		diff = append(diff, "~ requestedAccessTokenVersion -> 2")
	}
	scopes := slices.Clone(api.OAuth2PermissionScopes)
	scopeID := ""
	i := slices.IndexFunc(scopes, func(s graph.PermissionScope) bool { return s.Value == o.Scope })
	switch {
	case i < 0:
		scopeID = ids.NewGUID()
		scopes = append(scopes, graph.PermissionScope{ID: scopeID, Value: o.Scope, Type: "User", IsEnabled: true,
			AdminConsentDisplayName: "Access " + o.Name, AdminConsentDescription: "Lets the app call " + o.Name + "'s tools as the signed-in user."})
		apiPatch["oauth2PermissionScopes"] = scopes
		diff = append(diff, "+ scope "+o.Scope)
	case !scopes[i].IsEnabled:
		scopeID = scopes[i].ID
		scopes[i].IsEnabled = true
		apiPatch["oauth2PermissionScopes"] = scopes
		diff = append(diff, "~ scope "+o.Scope+" enabled")
	default:
		scopeID = scopes[i].ID
	}
	pa := preauthList(api.PreAuthorizedApplications, preauth, scopeID)
	if len(pa) != len(api.PreAuthorizedApplications) || !samePreauth(pa, api.PreAuthorizedApplications) {
		apiPatch["preAuthorizedApplications"] = pa
		for _, c := range preauth {
			diff = append(diff, "+ pre-authorized "+c)
		}
	}
	if len(apiPatch) > 0 {
		patch["api"] = apiPatch
	}
	var have []string
	if app.Web != nil {
		have = app.Web.RedirectURIs
	}
	if uris, added := union(have, redirects); len(added) > 0 {
		patch["web"] = map[string]any{"redirectUris": uris}
		diff = append(diff, lines("+ web redirect", added)...)
	}
	rra := slices.Clone(app.RequiredResourceAccess)
	j := slices.IndexFunc(rra, func(r graph.RequiredResourceAccess) bool { return strings.EqualFold(r.ResourceAppID, entra.GraphAppID) })
	if j < 0 {
		rra = append(rra, graphAccess)
		patch["requiredResourceAccess"] = rra
		diff = append(diff, "+ Graph permissions "+strings.Join(GraphScopes, " "))
	} else {
		var missing []string
		for _, ra := range graphAccess.ResourceAccess {
			if !slices.Contains(rra[j].ResourceAccess, ra) {
				rra[j].ResourceAccess = append(rra[j].ResourceAccess, ra)
				missing = append(missing, ra.ID)
			}
		}
		if len(missing) > 0 {
			patch["requiredResourceAccess"] = rra
			diff = append(diff, fmt.Sprintf("+ %d Graph permission(s)", len(missing)))
		}
	}
	if len(patch) == 0 {
		return nil
	}
	return &Step{Title: "update the app registration " + app.DisplayName, Diff: diff, apply: func(ctx context.Context, st *state) error {
		if err := o.Graph.Do(ctx, o.Token, http.MethodPatch, "/v1.0/applications/"+app.ID, patch, nil); err != nil {
			return explain(err, "updating the application")
		}
		st.scopeID = scopeID
		return nil
	}}
}

func samePreauth(a, b []graph.PreAuthorizedApplication) bool {
	for i := range a {
		if !strings.EqualFold(a[i].AppID, b[i].AppID) || !slices.Equal(a[i].DelegatedPermissionIDs, b[i].DelegatedPermissionIDs) {
			return false
		}
	}
	return true
}

// explain turns Graph's 403 into advice.
func explain(err error, what string) error {
	if err == nil {
		return nil
	}
	if graph.IsStatus(err, 403) {
		return fmt.Errorf("%s: %w: the signed-in account lacks the right (Application Administrator or Global Administrator, and Application.ReadWrite.All consented to the Azure CLI): %v", what, errInsufficient, err)
	}
	return fmt.Errorf("%s: %w", what, err)
}

// IsInsufficientPrivileges reports whether setup failed for lack of admin rights.
func IsInsufficientPrivileges(err error) bool { return errors.Is(err, errInsufficient) }

func (p *Plan) planClientApp(ctx context.Context) error {
	o, gc, tok := p.opts, p.opts.Graph, p.opts.Token
	name := o.Name + " (client)"
	client, err := findApp(ctx, gc, tok, "", name)
	if err != nil {
		return err
	}
	redirects := []string{"http://localhost", "http://127.0.0.1", "https://vscode.dev/redirect"}
	if client == nil {
		p.Steps = append(p.Steps, Step{Title: "create the public client app " + name, Diff: append([]string{"+ displayName " + name, "+ public client"}, lines("+ redirect", redirects)...),
			apply: func(ctx context.Context, st *state) error {
				var created graph.Application
				body := map[string]any{"displayName": name, "signInAudience": "AzureADMyOrg", "isFallbackPublicClient": true,
					"publicClient":           map[string]any{"redirectUris": redirects},
					"requiredResourceAccess": []graph.RequiredResourceAccess{{ResourceAppID: st.app.AppID, ResourceAccess: []graph.ResourceAccess{{ID: st.scopeID, Type: "Scope"}}}}}
				if err := gc.Do(ctx, tok, http.MethodPost, "/v1.0/applications", body, &created); err != nil {
					return explain(err, "creating the client app")
				}
				var sp graph.ServicePrincipal
				if err := gc.Do(ctx, tok, http.MethodPost, "/v1.0/servicePrincipals", map[string]string{"appId": created.AppID}, &sp); err != nil {
					return explain(err, "creating the client's service principal")
				}
				st.client, st.clientSP = &created, &sp
				st.result.PublicClientID = created.AppID
				return nil
			}})
	} else {
		p.st.client = client
		p.st.result.PublicClientID = client.AppID
		if sp, err := gc.ServicePrincipalByAppID(ctx, tok, client.AppID); err == nil {
			p.st.clientSP = sp
		}
	}
	if o.SkipConsent {
		return nil
	}
	// The client app's consent to the API's scope.
	needed := true
	if p.st.clientSP != nil && p.st.sp != nil {
		grants, err := gc.Grants(ctx, tok, p.st.clientSP.ID, p.st.sp.ID)
		if err == nil {
			for _, g := range grants {
				if g.ConsentType == "AllPrincipals" && slices.Contains(strings.Fields(g.Scope), o.Scope) {
					needed = false
				}
			}
		}
	}
	if needed {
		p.Steps = append(p.Steps, Step{Title: "grant the client app " + o.Scope, Diff: []string{"+ admin consent " + o.Scope + " for the client app"}, apply: func(ctx context.Context, st *state) error {
			return grant(ctx, gc, tok, st.clientSP.ID, st.sp.ID, []string{o.Scope})
		}})
	}
	return nil
}

// grant merges scopes into the AllPrincipals grant of client on resource, creating it if needed.
func grant(ctx context.Context, gc *graph.Client, tok, clientSP, resourceSP string, scopes []string) error {
	grants, err := gc.Grants(ctx, tok, clientSP, resourceSP)
	if err != nil {
		return explainConsent(err)
	}
	for _, g := range grants {
		if g.ConsentType != "AllPrincipals" {
			continue
		}
		merged, added := union(strings.Fields(g.Scope), scopes)
		if len(added) == 0 {
			return nil
		}
		return explainConsent(gc.Do(ctx, tok, http.MethodPatch, "/v1.0/oauth2PermissionGrants/"+g.ID, map[string]string{"scope": strings.Join(merged, " ")}, nil))
	}
	return explainConsent(gc.Do(ctx, tok, http.MethodPost, "/v1.0/oauth2PermissionGrants",
		graph.PermissionGrant{ClientID: clientSP, ConsentType: "AllPrincipals", ResourceID: resourceSP, Scope: strings.Join(scopes, " ")}, nil))
}

func explainConsent(err error) error {
	if err != nil && graph.IsStatus(err, 403) {
		return fmt.Errorf("granting admin consent: %w: only a Global Administrator or Privileged Role Administrator can grant it", errInsufficient)
	}
	return err
}

func (p *Plan) planConsent(ctx context.Context, graphIDs map[string]string) {
	o, gc, tok := p.opts, p.opts.Graph, p.opts.Token
	var missing []string
	if p.st.sp == nil {
		missing = GraphScopes
	} else {
		grants, err := gc.Grants(ctx, tok, p.st.sp.ID, p.st.graphSP.ID)
		have := map[string]bool{}
		if err == nil {
			for _, g := range grants {
				if g.ConsentType == "AllPrincipals" {
					for _, s := range strings.Fields(g.Scope) {
						have[s] = true
					}
				}
			}
		}
		for _, s := range GraphScopes {
			if !have[s] {
				missing = append(missing, s)
			}
		}
	}
	if len(missing) == 0 {
		return
	}
	p.Steps = append(p.Steps, Step{Title: "grant admin consent for Microsoft Graph", Diff: lines("+ consent", missing), apply: func(ctx context.Context, st *state) error {
		err := grant(ctx, gc, tok, st.sp.ID, st.graphSP.ID, GraphScopes)
		if IsInsufficientPrivileges(err) {
			return fmt.Errorf("%w; ask an administrator to open https://%s/%s/adminconsent?client_id=%s", err, o.AuthorityHost, o.TenantID, st.app.AppID)
		}
		return err
	}})
}

func (p *Plan) planCredential(ctx context.Context, app *graph.Application) error {
	o, gc, tok := p.opts, p.opts.Graph, p.opts.Token
	switch o.Credential {
	case "secret":
		if app != nil {
			for _, c := range app.PasswordCredentials {
				if c.DisplayName == "entramcp" && c.EndDateTime != nil && time.Until(*c.EndDateTime) > 30*24*time.Hour {
					return nil // a secret exists and is not about to expire: keep it (its text is only in the .env written when it was made)
				}
			}
		}
		p.Steps = append(p.Steps, Step{Title: "add a client secret (valid 180 days)", Diff: []string{"+ passwordCredential entramcp"}, apply: func(ctx context.Context, st *state) error {
			var pc struct {
				SecretText string `json:"secretText"`
			}
			body := map[string]any{"passwordCredential": map[string]any{"displayName": "entramcp", "endDateTime": time.Now().Add(180 * 24 * time.Hour).UTC()}}
			if err := gc.Do(ctx, tok, http.MethodPost, "/v1.0/applications/"+st.app.ID+"/addPassword", body, &pc); err != nil {
				return explain(err, "adding a secret")
			}
			st.result.SecretText = pc.SecretText
			return nil
		}})
	case "certificate":
		der, thumb, err := parseCert(o.CertificatePEM)
		if err != nil {
			return err
		}
		if app != nil {
			for _, k := range app.KeyCredentials {
				if strings.EqualFold(k.DisplayName, "entramcp "+thumb[:8]) {
					return nil
				}
			}
		}
		p.Steps = append(p.Steps, Step{Title: "upload the certificate " + thumb[:8], Diff: []string{"+ keyCredential sha1 " + thumb}, apply: func(ctx context.Context, st *state) error {
			keys := []map[string]any{}
			for _, k := range st.app.KeyCredentials {
				keys = append(keys, map[string]any{"keyId": k.KeyID, "type": "AsymmetricX509Cert", "usage": "Verify", "displayName": k.DisplayName})
			}
			keys = append(keys, map[string]any{"type": "AsymmetricX509Cert", "usage": "Verify", "key": der, "displayName": "entramcp " + thumb[:8]})
			return explain(gc.Do(ctx, tok, http.MethodPatch, "/v1.0/applications/"+st.app.ID, map[string]any{"keyCredentials": keys}, nil), "uploading the certificate")
		}})
	case "managed-identity":
		issuer := "https://" + o.AuthorityHost + "/" + o.TenantID + "/v2.0"
		audience := entra.CloudForHost(o.AuthorityHost).TokenExchangeAudience
		if app != nil {
			type fic struct {
				Issuer  string `json:"issuer"`
				Subject string `json:"subject"`
			}
			list, _, err := graph.List[fic](ctx, gc, tok, graph.Request{Path: "/v1.0/applications/" + app.ID + "/federatedIdentityCredentials"}, 20)
			if err != nil {
				return explain(err, "reading federated credentials")
			}
			for _, f := range list {
				if f.Issuer == issuer && f.Subject == o.ManagedIdentityPrincipalID {
					return nil
				}
			}
		}
		p.Steps = append(p.Steps, Step{Title: "trust the managed identity as a federated credential", Diff: []string{"+ federatedIdentityCredential subject " + o.ManagedIdentityPrincipalID, "  issuer " + issuer, "  audience " + audience},
			apply: func(ctx context.Context, st *state) error {
				body := map[string]any{"name": "entramcp-" + o.ManagedIdentityPrincipalID[:8], "issuer": issuer, "subject": o.ManagedIdentityPrincipalID, "audiences": []string{audience}}
				return explain(gc.Do(ctx, tok, http.MethodPost, "/v1.0/applications/"+st.app.ID+"/federatedIdentityCredentials", body, nil), "adding the federated credential")
			}})
	}
	return nil
}
