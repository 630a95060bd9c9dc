// Package setup creates and updates an MCP server's Entra app registration over Microsoft Graph
// (no msgraph SDK): the API app with its scope, identifier URI, v2 tokens and callback redirect,
// its service principal, Graph permissions and their admin consent, pre-authorized clients, an
// optional public client app (two-app model), and a credential. It plans first and applies
// second, so a dry run shows exactly what would change and a second run changes nothing.
package setup

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	"github.com/entramcp/entramcp/entra"
	"github.com/entramcp/entramcp/graph"
	"github.com/entramcp/entramcp/internal/ids"
)

// Well-known clients for Preauthorize.
var KnownClients = map[string]string{"vscode": "aebc6443-996d-45c2-90f0-388ff96faa56", "azure-cli": "04b07795-8ddb-461a-bbee-02f9e1bf7b46"}

// GraphScopes are the delegated Graph permissions the shipped tools need.
var GraphScopes = []string{"User.Read", "GroupMember.Read.All", "ServiceMessage.Read.All", "offline_access", "openid", "profile"}

// Options describe the desired registration.
type Options struct {
	Graph         *graph.Client
	Token         string // the admin's delegated Graph token
	TenantID      string
	AuthorityHost string
	// ClientID selects an existing app; otherwise the app is found (or created) by Name.
	ClientID string
	Name     string
	// Model is "single" (the API app is also the OBO client) or "two-app" (plus a public client).
	Model string
	// Scope is the delegated scope's name (default mcp-access).
	Scope string
	// MultiTenant makes the app AzureADMultipleOrgs instead of AzureADMyOrg.
	MultiTenant bool
	// BaseURL adds {BaseURL}/auth/callback as a web redirect (the OAuth proxy's callback).
	BaseURL string
	// Preauthorize lists clients (vscode, azure-cli or app ids) allowed without consent.
	Preauthorize []string
	// Credential is "", "secret", "certificate" or "managed-identity".
	Credential                 string
	CertificatePEM             []byte // the public certificate to upload (certificate)
	ManagedIdentityPrincipalID string
	// SkipConsent leaves admin consent to someone else.
	SkipConsent bool
}

// Step is one planned change.
type Step struct {
	Title string
	Diff  []string // "+ ..." / "- ..." / "~ ..." lines
	apply func(ctx context.Context, s *state) error
}

// Plan is the list of changes between the tenant and Options.
type Plan struct {
	Steps []Step
	opts  Options
	st    *state
}

// Result is what Apply produced, for the .env file.
type Result struct {
	ClientID       string
	PublicClientID string
	IdentifierURI  string
	SecretText     string // only when a new secret was created
}

// state carries what steps learn (the new app's ids) to later steps.
type state struct {
	app, client  *graph.Application
	sp, clientSP *graph.ServicePrincipal
	graphSP      *graph.ServicePrincipal
	result       Result
	scopeID      string
}

var errInsufficient = errors.New("insufficient privileges")

func (o *Options) defaults() error {
	if o.Graph == nil || o.Token == "" {
		return errors.New("setup needs an admin's Graph token")
	}
	if !ids.IsGUID(o.TenantID) {
		return fmt.Errorf("ENTRA_TENANT_ID %q must be the tenant GUID", o.TenantID)
	}
	if o.Name == "" {
		o.Name = "entramcp MCP server"
	}
	if o.Scope == "" {
		o.Scope = "mcp-access"
	}
	if o.Model == "" {
		o.Model = "single"
	}
	if o.Model != "single" && o.Model != "two-app" {
		return fmt.Errorf("--model must be single or two-app, not %q", o.Model)
	}
	if o.AuthorityHost == "" {
		o.AuthorityHost = entra.PublicCloud.AuthorityHost
	}
	switch o.Credential {
	case "", "secret":
	case "certificate":
		if len(o.CertificatePEM) == 0 {
			return errors.New("--credential certificate needs a certificate (generated or --certificate-file)")
		}
	case "managed-identity":
		if !ids.IsGUID(o.ManagedIdentityPrincipalID) {
			return errors.New("--credential managed-identity needs --mi-principal-id, the identity's object (principal) id")
		}
	default:
		return fmt.Errorf("--credential must be secret, certificate or managed-identity, not %q", o.Credential)
	}
	return nil
}

// Summary prints the plan as a diff.
func (p *Plan) Summary(w io.Writer) {
	if len(p.Steps) == 0 {
		fmt.Fprintln(w, "Nothing to change: the registration already matches.")
		return
	}
	for i, s := range p.Steps {
		fmt.Fprintf(w, "%d. %s\n", i+1, s.Title)
		for _, d := range s.Diff {
			fmt.Fprintf(w, "     %s\n", d)
		}
	}
}

// Apply carries the plan out, printing progress.
func (p *Plan) Apply(ctx context.Context, progress io.Writer) (*Result, error) {
	for i, s := range p.Steps {
		fmt.Fprintf(progress, "[%d/%d] %s ... ", i+1, len(p.Steps), s.Title)
		if err := s.apply(ctx, p.st); err != nil {
			fmt.Fprintln(progress, "failed")
			return &p.st.result, err
		}
		fmt.Fprintln(progress, "done")
	}
	r := p.st.result
	if p.st.app != nil {
		r.ClientID = p.st.app.AppID
	}
	return &r, nil
}

func scopeByValue(sp *graph.ServicePrincipal, value string) string {
	for _, s := range sp.OAuth2PermissionScopes {
		if s.Value == value {
			return s.ID
		}
	}
	return ""
}

func union(have, want []string) ([]string, []string) {
	out := slices.Clone(have)
	var added []string
	for _, w := range want {
		if !slices.Contains(out, w) {
			out = append(out, w)
			added = append(added, w)
		}
	}
	return out, added
}

func lines(prefix string, items []string) []string {
	out := make([]string, 0, len(items))
	for _, it := range items {
		out = append(out, prefix+" "+it)
	}
	return out
}

func resolveClient(c string) string {
	if id, ok := KnownClients[strings.ToLower(c)]; ok {
		return id
	}
	return c
}

// AddRedirect adds a web redirect URI to an app (set union). It reports whether anything changed.
func AddRedirect(ctx context.Context, gc *graph.Client, token, clientID, uri string) (bool, error) {
	app, err := gc.ApplicationByAppID(ctx, token, clientID)
	if err != nil {
		return false, explain(err, "reading the application")
	}
	var have []string
	if app.Web != nil {
		have = app.Web.RedirectURIs
	}
	uris, added := union(have, []string{uri})
	if len(added) == 0 {
		return false, nil
	}
	return true, explain(o2patch(ctx, gc, token, app.ID, map[string]any{"web": map[string]any{"redirectUris": uris}}), "adding the redirect URI")
}

func o2patch(ctx context.Context, gc *graph.Client, token, objectID string, patch map[string]any) error {
	return gc.Do(ctx, token, "PATCH", "/v1.0/applications/"+objectID, patch, nil)
}

// WriteEnv merges settings into a .env file (mode 0600), keeping lines it does not set.
func WriteEnv(path string, settings map[string]string) error {
	var lines []string
	if data, err := os.ReadFile(path); err == nil {
		lines = strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	}
	done := map[string]bool{}
	for i, l := range lines {
		k, _, ok := strings.Cut(l, "=")
		if v, set := settings[strings.TrimSpace(k)]; ok && set {
			lines[i] = strings.TrimSpace(k) + "=" + v
			done[strings.TrimSpace(k)] = true
		}
	}
	keys := make([]string, 0, len(settings))
	for k := range settings {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		if !done[k] && settings[k] != "" {
			lines = append(lines, k+"="+settings[k])
		}
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
